"""The skorch net that trains every skbdl estimator.

skorch supplies the training loop, callbacks, device handling and history; this
subclass removes its per-step overhead for in-memory tabular data (tensors are
pre-loaded and sliced with ``randperm``, not collated by a ``DataLoader``; one lean
optimisation step without a closure) and adds divergence detection.
"""

import math
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from skorch import NeuralNet
from skorch.callbacks import Callback
from skorch.dataset import Dataset
from skorch.utils import TeeGenerator
from torch import nn
from torch.nn import functional as F

from .nn import EnsembleCrossEntropyLoss, EnsembleGaussianNLLLoss, GaussianNLLLoss
from .nn._fast import make_fast_step
from .nn._random import generator_for
from .uncertainty import gaussian_nll_terms


class DivergenceError(RuntimeError):
    """Raised by ``fit`` when training produces a non-finite loss.

    The estimator is left as it was before the call (a previous fit is kept), so
    no NaN predictions can follow a diverged fit.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl import DivergenceError, MCDropoutRegressor
    >>> X = np.random.RandomState(0).randn(50, 2) * 1e20
    >>> try:
    ...     MCDropoutRegressor(max_epochs=2, optimizer="sgd", lr=1e10).fit(X, X[:, 0])
    ... except DivergenceError as error:
    ...     print("diverged")
    diverged
    """


class SparseRows:
    """The rows of a sparse matrix, held on a torch device in CSR form.

    Training on sparse input (e.g. a one-hot encoded column of many levels) keeps
    the data in this form and densifies one mini-batch at a time, so training
    memory is that of the sparse matrix plus one dense batch.  It supports what the
    training loop does with its input tensor: ``len``, ``shape``, ``.to(device)``,
    row indexing (a slice or an index array or tensor gives ``SparseRows``; a 2-D
    index array gives the dense rows, shaped ``(*index.shape, n_features)``),
    ``split(size)`` (dense blocks of rows, as ``Tensor.split``) and
    :meth:`to_dense`.  torch's own sparse CSR tensors cannot select rows
    (``index_select`` is not implemented for them), hence this class.

    Parameters
    ----------
    crow : torch.Tensor of shape (n_rows + 1,), int64
        Row pointers.
    col : torch.Tensor of shape (nnz,), int64
        Column of each stored value.
    values : torch.Tensor of shape (nnz,)
        The stored values.
    n_features : int
        Number of columns.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skbdl._net import SparseRows
    >>> X = sp.csr_matrix(np.array([[0.0, 1.0], [2.0, 0.0], [0.0, 0.0]]))
    >>> rows = SparseRows.from_scipy(X)
    >>> rows[[1, 0]].to_dense()
    tensor([[2., 0.],
            [0., 1.]])
    >>> [block.shape for block in rows.split(2)]
    [torch.Size([2, 2]), torch.Size([1, 2])]
    """

    def __init__(self, crow, col, values, n_features):
        self.crow, self.col, self.values = crow, col, values
        self.shape = (len(crow) - 1, int(n_features))

    @classmethod
    def from_scipy(cls, X, dtype=torch.float32):
        """From a scipy sparse matrix or array (converted to CSR, duplicates summed)."""
        X = X.tocsr(copy=True)
        X.sum_duplicates()
        return cls(
            torch.from_numpy(X.indptr.astype(np.int64)),
            torch.from_numpy(X.indices.astype(np.int64)),
            torch.from_numpy(np.asarray(X.data)).to(dtype),
            X.shape[1],
        )

    def __len__(self):
        return self.shape[0]

    @property
    def ndim(self):
        return 2

    @property
    def device(self):
        return self.values.device

    @property
    def dtype(self):
        return self.values.dtype

    def to(self, device):
        """A copy on ``device`` (``self`` if already there)."""
        if torch.device(device) == self.device:
            return self
        return SparseRows(
            self.crow.to(device), self.col.to(device), self.values.to(device), self.shape[1]
        )

    def _take(self, rows):
        """The rows ``rows`` (a 1-D int64 tensor), as SparseRows."""
        starts = self.crow[rows]
        lengths = self.crow[rows + 1] - starts
        crow = torch.zeros(len(rows) + 1, dtype=torch.int64, device=self.device)
        torch.cumsum(lengths, 0, out=crow[1:])
        owner = torch.repeat_interleave(torch.arange(len(rows), device=self.device), lengths)
        within = torch.arange(len(owner), device=self.device) - crow[owner]
        where = starts[owner] + within
        return SparseRows(crow, self.col[where], self.values[where], self.shape[1])

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                stop = max(start, stop)
                begin, end = self.crow[start], self.crow[stop]
                return SparseRows(
                    self.crow[start : stop + 1] - begin,
                    self.col[begin:end],
                    self.values[begin:end],
                    self.shape[1],
                )
            index = torch.arange(start, stop, step)
        rows = torch.as_tensor(np.asarray(index) if isinstance(index, list) else index)
        rows = rows.to(device=self.device, dtype=torch.int64)
        if rows.ndim == 0:
            return self._take(rows.reshape(1)).to_dense()[0]
        if rows.ndim == 2:  # e.g. per-member rows of an ensemble: a dense block
            return self._take(rows.reshape(-1)).to_dense().reshape(*rows.shape, self.shape[1])
        return self._take(rows)

    def to_dense(self):
        """The rows as a dense tensor of shape ``(n_rows, n_features)``."""
        out = torch.zeros(self.shape, dtype=self.dtype, device=self.device)
        owner = torch.repeat_interleave(
            torch.arange(len(self), device=self.device), self.crow.diff()
        )
        out[owner, self.col] = self.values
        return out

    def split(self, size):
        """Dense blocks of ``size`` rows (the last may be shorter)."""
        return tuple(self[start : start + size].to_dense() for start in range(0, len(self), size))


def as_dense(X):
    """``X`` itself if it is a dense tensor, else its rows densified."""
    return X.to_dense() if isinstance(X, SparseRows) else X


class RowData(torch.utils.data.Dataset):
    """In-memory training rows: inputs, targets and optional sample weights.

    The dataset skbdl hands to skorch.  ``X`` is a tensor or :class:`SparseRows`;
    ``sample_weight`` (a float tensor of shape ``(n_rows,)``, or None) travels with
    the rows into every mini-batch, which then is ``(X, y, weight)`` with the
    weights divided by their mean over the dataset (see :func:`weighted_loss`).
    """

    def __init__(self, X, y, sample_weight=None):
        self.X, self.y = X, y
        self.sample_weight = None
        if sample_weight is not None:
            self.sample_weight = torch.as_tensor(sample_weight, dtype=torch.float32)

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        item = (as_dense(self.X[i : i + 1])[0], self.y[i])
        return item if self.sample_weight is None else (*item, self.sample_weight[i])

    @property
    def n_effective(self):
        """The number of rows the data stand for: the sum of the weights (with integer
        weights, the number of rows of the data with every row repeated)."""
        if self.sample_weight is None:
            return len(self)
        return float(self.sample_weight.sum())


def normalised_weights(sample_weight, where="training"):
    """``sample_weight`` divided by its mean, so that the weighted loss of a batch is on
    the scale of the unweighted one; an error when every weight is zero."""
    total = float(sample_weight.sum())
    if not total > 0:
        raise ValueError(
            f"Every {where} row has zero sample weight, so the {where} loss is "
            "undefined. Give some of these rows a positive weight (with held-out rows: "
            "change random_state or validation_fraction, or set early_stopping=False "
            "and calibrate=False)."
        )
    return sample_weight * (len(sample_weight) / total)


def per_row_loss(criterion, y_pred, y_true):
    """The loss of each row: shape ``(n_rows,)``, or ``(n_members, n_rows)`` for the
    ensemble criteria.  Its mean over rows, summed over members, is
    ``criterion(y_pred, y_true)``."""
    if isinstance(criterion, EnsembleCrossEntropyLoss):
        n_members, n_rows = y_pred.shape[:2]
        y = y_true.expand(n_members, n_rows)
        losses = F.cross_entropy(y_pred.flatten(0, 1), y.flatten(), reduction="none")
        return losses.reshape(n_members, n_rows)
    if isinstance(criterion, (GaussianNLLLoss, EnsembleGaussianNLLLoss)):
        mean, var = y_pred
        losses = gaussian_nll_terms(y_true, mean, var)
        rows_axis = 1 if isinstance(criterion, EnsembleGaussianNLLLoss) else 0
        return losses.flatten(rows_axis + 1).mean(dim=-1)
    if type(criterion) is nn.CrossEntropyLoss:
        return F.cross_entropy(
            y_pred,
            y_true,
            weight=criterion.weight,
            ignore_index=criterion.ignore_index,
            reduction="none",
            label_smoothing=criterion.label_smoothing,
        )
    raise NotImplementedError(
        f"Sample weights need the loss of each row; skbdl does not know how to compute "
        f"it for the criterion {type(criterion).__name__}."
    )


def weighted_loss(criterion, y_pred, y_true, weight):
    """The batch's weighted mean loss ``mean_i(w_i * loss_i)``, summed over members.

    ``weight`` holds the rows' sample weights divided by their mean over the whole
    dataset (training or validation rows), so an unweighted batch's weights are ones
    and its loss is ``criterion(y_pred, y_true)``.  Over a full pass this is
    ``sum_i w_i loss_i / sum_i w_i``: with integer weights, exactly the mean loss over
    the data with row ``i`` repeated ``w_i`` times (a full batch gives identical
    gradients), and each mini-batch's loss is an unbiased estimate of it.
    """
    return (per_row_loss(criterion, y_pred, y_true) * weight).mean(dim=-1).sum()


class _TensorBatches:
    """Re-iterable mini-batches over in-memory tensors (shuffled when training).

    ``X`` may be :class:`SparseRows`, densified one batch at a time.  With
    ``weight`` (already normalised, :func:`normalised_weights`) the batches are
    ``(X, y, weight)`` triples.
    """

    def __init__(self, X, y, batch_size, shuffle, weight=None):
        self.X, self.y, self.batch_size, self.shuffle = X, y, batch_size, shuffle
        self.weight = weight

    def __len__(self):
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self):
        X, y, weight = self.X, self.y, self.weight
        if self.shuffle:
            perm = torch.randperm(len(X), device=y.device, generator=generator_for(y))
            X, y = X[perm], y[perm]
            weight = None if weight is None else weight[perm]
        parts = (X.split(self.batch_size), y.split(self.batch_size))
        if weight is not None:
            parts += (weight.split(self.batch_size),)
        return zip(*parts)


def _as_tensors(dataset):
    """``(X, y)`` tensors behind a skorch ``Dataset``, a :class:`RowData` (then ``(X, y,
    weight)`` when it has sample weights) or a ``Subset`` of one; else None."""
    indices = None
    if isinstance(dataset, torch.utils.data.Subset):
        dataset, indices = dataset.dataset, torch.as_tensor(dataset.indices)
    if isinstance(dataset, RowData):
        tensors = (dataset.X, dataset.y)
        if dataset.sample_weight is not None:
            tensors += (dataset.sample_weight,)
    elif (
        isinstance(dataset, Dataset)
        and isinstance(dataset.X, torch.Tensor)
        and isinstance(dataset.y, torch.Tensor)
    ):
        tensors = (dataset.X, dataset.y)
    else:
        return None
    if indices is None:
        return tensors
    return tuple(t[indices] for t in tensors)


class DivergenceCheck(Callback):
    """Raise :class:`DivergenceError` when training has broken down.

    Before training, the loss of the untrained network on (up to
    ``probe_rows``) training rows is the reference.  After each epoch the
    training loss must be finite and must not exceed the reference by more than
    ``explode_factor`` times its scale (``max(1, |reference|)``); when training
    ends, the last epoch's loss must not exceed it by more than ``end_factor``
    times its scale: a run whose loss ends far above where it started has
    diverged, finite or not.  The parameters and the network's outputs on the
    probe rows must be finite too, which catches a run whose loss stayed finite
    while its weights or predicted variances overflowed.  The error names the
    epoch and the settings to change.  The checks cost two forward passes over the
    probe rows: one before training, one after.

    Parameters
    ----------
    explode_factor : float, default=1e4
        Stop at the first epoch whose loss exceeds the reference by this many times
        its scale.
    end_factor : float, default=10.0
        Fail a run whose last loss exceeds the reference by this many times its
        scale.  Training that works ends below the reference (it is the loss of
        random weights); these margins are far above what dropout noise or a
        learning-rate warm-up produce.
    probe_rows : int, default=1024
        Training rows on which the reference loss is computed (without dropout).
    """

    _ADVICE = (
        "Lower the learning rate (lr), scale the inputs (e.g. StandardScaler) or add weight decay."
    )

    def __init__(self, explode_factor=1e4, end_factor=10.0, probe_rows=1024):
        self.explode_factor = explode_factor
        self.end_factor = end_factor
        self.probe_rows = probe_rows

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.initial_loss_ = self._reference_loss(net, X, y)

    def _probe(self, net, X, y):
        """The first ``probe_rows`` training rows on the net's device, ``(X, y)`` with
        ``X`` dense (``y`` None where it is not a tensor), or None where the data are
        not in-memory tensors."""
        tensors = _as_tensors(X)
        if tensors is not None:
            X, y = tensors[:2]  # (X, y) or (X, y, sample_weight)
        if not isinstance(X, (torch.Tensor, SparseRows)):
            return None
        rows = slice(0, self.probe_rows)
        y0 = y[rows].to(net.device) if isinstance(y, torch.Tensor) else None
        return as_dense(X[rows].to(net.device)), y0

    @staticmethod
    def _outputs(net, X0):
        """The network's outputs on ``X0`` in eval mode (no random draws consumed)."""
        training = net.module_.training
        net.module_.eval()
        try:
            with torch.no_grad():
                return net.module_(X0)
        finally:
            net.module_.train(training)

    def _reference_loss(self, net, X, y):
        """The untrained network's loss on the probe rows, or None where it cannot be
        computed (PBP has no criterion; data that are not in-memory tensors)."""
        if getattr(net, "criterion_", None) is None:
            return None
        probe = self._probe(net, X, y)
        if probe is None or probe[1] is None:
            return None
        X0, y0 = probe
        try:
            loss = float(net.get_loss(self._outputs(net, X0), y0, X=X0))
        except Exception:  # a user's module or criterion that needs more than (X, y)
            return None
        return loss if math.isfinite(loss) else None

    def _limit(self, factor):
        reference = getattr(self, "initial_loss_", None)
        if reference is None:
            return None
        return reference + factor * max(1.0, abs(reference))

    def _raise_above(self, loss, epoch, limit, when):
        raise DivergenceError(
            f"Training diverged: the training loss rose from {self.initial_loss_:.4g} "
            f"for the untrained network to {loss:.4g} {when} epoch {epoch} (limit "
            f"{limit:.4g}). {self._ADVICE}"
        )

    def _warn_if_no_better_than_null(self, net, outputs, y0):
        """A ConvergenceWarning when the trained network's ``outputs`` (eval mode) on
        the probe rows fit their targets ``y0`` no better than the null model: the
        class frequencies for a classifier, the mean (with unit variance) of the
        standardised targets for a Gaussian regressor.  Such a fit is useless, finite
        or not (a learning rate so large that training settles on a constant, say)."""
        if getattr(self, "initial_loss_", None) is None or y0 is None:
            return
        null_loss = getattr(net.criterion_, "null_loss", None)
        if null_loss is not None:  # a criterion that knows its null model's loss
            null = null_loss(y0)
        elif y0.dtype == torch.int64:  # labels: cross-entropy of the class frequencies
            counts = torch.bincount(y0.flatten()).double()
            proba = counts[counts > 0] / counts.sum()
            null = float(-(proba * proba.log()).sum())
        elif y0.is_floating_point():  # standardised targets: NLL of N(0, 1) (no constant)
            null = float(0.5 * y0.double().pow(2).mean())
        else:
            return
        module = net.module_
        n_members = getattr(module, "n_members", None) or getattr(
            getattr(module, "body", None), "n_members", 1
        )
        null *= n_members  # the stacked losses sum the members' mean losses
        try:
            with torch.no_grad():
                fitted = float(net.criterion_(outputs, y0))
        except Exception:
            return
        if math.isfinite(fitted) and fitted >= null:
            warnings.warn(
                f"Training did not converge: the trained network's loss on the training "
                f"rows ({fitted:.4g}) is no better than that of predicting "
                + ("the class frequencies" if y0.dtype == torch.int64 else "the mean")
                + f" ({null:.4g}) after {len(net.history)} epochs. Lower the learning rate "
                "(lr), scale the inputs (e.g. StandardScaler) or train for more epochs.",
                ConvergenceWarning,
                stacklevel=2,
            )

    def on_epoch_end(self, net, **kwargs):
        loss = net.history[-1].get("train_loss", 0.0)
        epoch = len(net.history)
        if not math.isfinite(loss):
            raise DivergenceError(
                f"Training diverged: the training loss is {loss} at epoch {epoch}. {self._ADVICE}"
            )
        limit = self._limit(self.explode_factor)
        if limit is not None and loss > limit:
            self._raise_above(loss, epoch, limit, "at")

    def on_train_end(self, net, X=None, y=None, **kwargs):
        limit = self._limit(self.end_factor)
        if limit is not None and len(net.history):
            loss = net.history[-1].get("train_loss", 0.0)
            if loss > limit:
                self._raise_above(loss, len(net.history), limit, "after the last,")
        if not all(torch.isfinite(p).all() for p in net.module_.parameters()):
            raise DivergenceError(f"Training diverged: some weights are not finite. {self._ADVICE}")
        probe = self._probe(net, X, y)
        if probe is None:
            return
        # One pass of the trained network over the probe rows serves both checks.
        outputs = self._outputs(net, probe[0])
        self._warn_if_no_better_than_null(net, outputs, probe[1])
        parts = outputs if isinstance(outputs, tuple) else (outputs,)
        if not all(torch.isfinite(o).all() for o in parts):
            raise DivergenceError(
                "Training diverged: the trained network's outputs on the training "
                f"data are not finite. {self._ADVICE}"
            )


class EpochProgressBar(Callback):
    """A tqdm progress bar over epochs, showing the latest training loss by its name.

    Parameters
    ----------
    total : int
        Number of epochs.
    desc : str, default='fit'
        Text before the bar (the estimator's name).
    loss_name : str, default='loss'
        Name shown for the training loss (e.g. ``'nll'``: the mean Gaussian negative
        log-likelihood per target in standardised units, which is negative once
        the predicted variance is below one).
    min_seconds : float or None, default=None
        ``None``: always show the bar.  A number: show it only once the fit is
        expected to take longer than this, estimated from the epochs done so far.
    """

    def __init__(self, total, desc="fit", loss_name="loss", min_seconds=None):
        self.total, self.desc, self.loss_name = total, desc, loss_name
        self.min_seconds = min_seconds

    def _open(self, done):
        from tqdm.auto import tqdm

        self.bar_ = tqdm(total=self.total, initial=done, desc=self.desc, leave=False)

    def on_train_begin(self, net, **kwargs):
        self.bar_ = None
        self.start_ = time.perf_counter()
        if self.min_seconds is None:
            self._open(0)

    def on_epoch_end(self, net, **kwargs):
        done = len(net.history)
        if self.bar_ is None:
            expected = (time.perf_counter() - self.start_) / done * self.total
            if expected <= self.min_seconds or done >= self.total:
                return
            self._open(done - 1)
        postfix = {self.loss_name: f"{net.history[-1].get('train_loss', float('nan')):.4f}"}
        if "valid_loss" in net.history[-1]:
            postfix["valid"] = f"{net.history[-1]['valid_loss']:.4f}"
        self.bar_.set_postfix(postfix, refresh=False)
        self.bar_.update(1)

    def on_train_end(self, net, **kwargs):
        if self.bar_ is not None:
            self.bar_.close()

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("bar_", None)
        return state


#: torch's fused Adam kernels and in-place list add, which ``Adam(fused=True).step()``
#: itself calls.  They are private API: where a torch release lacks one (it was
#: renamed or removed), :class:`_FusedAdamStep` is not used and training calls the
#: public ``optimizer.step()``, which gives the same updates (tests/test_fast_path.py
#: trains both ways).
_FUSED_KERNELS = {
    "adam": getattr(torch, "_fused_adam_", None),
    "adamw": getattr(torch, "_fused_adamw_", None),
    "add": getattr(torch, "_foreach_add_", None),
}


class _FusedAdamStep:
    """``optimizer.step()`` for a fused Adam/AdamW, without its per-step Python.

    ``torch.optim.Adam.step`` spends far longer grouping tensors and checking
    options than its fused kernel takes on a small network.  This calls the same
    kernel on lists gathered from the optimizer's state, and reads ``lr``,
    ``betas``, ``eps`` and ``weight_decay`` from the param groups at every step (so
    learning-rate schedulers keep working).  The lists are the optimizer's own
    tensors, updated in place, so its ``state_dict()`` is always current; they are
    gathered again whenever the optimizer's groups or state were replaced (e.g. by
    ``optimizer.load_state_dict``), which is checked at every step.  Only used when
    every parameter receives a gradient at every step (the hand-written MLP path),
    and when this torch release has the kernels (:data:`_FUSED_KERNELS`).
    """

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.groups = None

    @staticmethod
    def supports(optimizer):
        if any(kernel is None for kernel in _FUSED_KERNELS.values()):
            return False
        return type(optimizer) in (torch.optim.Adam, torch.optim.AdamW) and all(
            group.get("fused")
            and not any(group.get(k) for k in ("amsgrad", "maximize", "capturable"))
            and not group.get("differentiable")
            for group in optimizer.param_groups
        )

    def _current(self):
        """Whether the gathered lists are still the optimizer's groups and state."""
        groups, state = self.optimizer.param_groups, self.optimizer.state
        if self.groups is None or len(groups) != len(self.groups):
            return False
        for group, (cached, params, _, _, steps) in zip(groups, self.groups):
            if group is not cached or group["params"] is not params:
                return False
            if params and state.get(params[0], {}).get("step") is not steps[0]:
                return False
        return True

    def _gather(self):
        state = self.optimizer.state
        if not all(p in state for group in self.optimizer.param_groups for p in group["params"]):
            return False
        self.groups = [
            (
                group,
                group["params"],
                [state[p]["exp_avg"] for p in group["params"]],
                [state[p]["exp_avg_sq"] for p in group["params"]],
                [state[p]["step"] for p in group["params"]],
            )
            for group in self.optimizer.param_groups
        ]
        return True

    def step(self):
        if not self._current() and not self._gather():
            self.optimizer.step()  # creates exp_avg, exp_avg_sq and step
            self._gather()
            return
        decoupled = isinstance(self.optimizer, torch.optim.AdamW)
        for group, params, exp_avgs, exp_avg_sqs, steps in self.groups:
            kernel = _FUSED_KERNELS[
                "adamw" if group.get("decoupled_weight_decay", decoupled) else "adam"
            ]
            _FUSED_KERNELS["add"](steps, 1)
            beta1, beta2 = group["betas"]
            kernel(
                params,
                [p.grad for p in params],
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                amsgrad=False,
                lr=float(group["lr"]),
                beta1=float(beta1),
                beta2=float(beta2),
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
                grad_scale=None,
                found_inf=None,
            )


def _module_output(module, out):
    """The fast training steps' raw output ``out`` as ``module``'s forward returns
    it: ``(mean, var)`` for a Gaussian head (the body's output through the head),
    logits as they are."""
    head_outputs = getattr(module, "head_outputs", None)
    return out if head_outputs is None else head_outputs(out)


class SkbdlNet(NeuralNet):
    """skorch ``NeuralNet`` with a fast path for in-memory tensors.

    The loss is ``criterion_(y_pred, y_true)`` plus, when the module defines it,
    ``module_.extra_loss()`` (e.g. a KL term), so methods customise the objective in
    the module or criterion without touching the loop.
    """

    def initialize_module(self):
        super().initialize_module()
        # skbdl networks compute in float32 whatever torch's default dtype is (a
        # module built after torch.set_default_dtype(torch.float64) has float64
        # weights): inputs are cast to float32, so the weights are too.
        self.module_.float()
        return self

    def initialize(self):
        super().initialize()
        # A callback that reads the batch's y_pred (skorch's own do not): the fast
        # path then hands it the module's output format, as the autograd path does.
        self._batch_hook = any(
            type(cb).on_batch_end is not Callback.on_batch_end for _, cb in self.callbacks_
        )
        self._grad_hook = any(
            type(cb).on_grad_computed is not Callback.on_grad_computed for _, cb in self.callbacks_
        )
        self._closure = isinstance(self.optimizer_, torch.optim.LBFGS)
        self._extra_loss = getattr(self.module_, "extra_loss", None)
        if getattr(self.module_, "body", None) is not None and not hasattr(
            self.module_.body, "extra_loss"
        ):
            self._extra_loss = None  # a wrapper whose body adds nothing
        self._fast_step = None
        return self

    def get_params_for_optimizer(self, prefix, named_parameters):
        # skorch lists the groups matched by ``param_groups`` patterns first and the
        # remaining parameters last; put those first, so that ``param_groups[0]`` (what
        # LRScheduler records as ``event_lr``) has the learning rate the user set.
        (groups, *rest), kwargs = super().get_params_for_optimizer(prefix, named_parameters)
        if isinstance(groups, list) and len(groups) > 1 and isinstance(groups[-1], dict):
            groups = [groups[-1], *groups[:-1]]
        return (groups, *rest), kwargs

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self._fast_step = None
        if self._extra_loss is None and not self._closure:
            self._fast_step = self._make_fast_step()
        self._fast_optimizer_step = self.optimizer_.step
        if self._fast_step is not None and _FusedAdamStep.supports(self.optimizer_):
            self._fast_optimizer_step = _FusedAdamStep(self.optimizer_).step

    def _make_fast_step(self):
        """The hand-written training step for this module and criterion
        (:func:`skbdl.nn._fast.make_fast_step`), or None to train through autograd."""
        return make_fast_step(self.module_, self.criterion_)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        # Both hold views of the parameters and state: rebuilt per fit, not pickled.
        self._fast_step = self._fast_optimizer_step = None

    def get_iterator(self, dataset, training=False):
        tensors = _as_tensors(dataset)
        if tensors is None:
            return super().get_iterator(dataset, training=training)
        X, y, *weight = (t.to(self.device) for t in tensors)
        weight = (
            normalised_weights(*weight, "training" if training else "validation")
            if weight
            else None
        )
        batch_size = self.batch_size if training else max(self.batch_size, 4096)
        return _TensorBatches(X, y, batch_size, shuffle=training, weight=weight)

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if iterator is not None:
            self._set_training(training)
        super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False, sample_weight=None):
        """The criterion's loss on the batch (:func:`weighted_loss` when the batch
        carries ``sample_weight``), plus ``module_.extra_loss()`` when defined."""
        if sample_weight is None:
            loss = self.criterion_(y_pred, y_true)
        else:
            loss = weighted_loss(self.criterion_, y_pred, y_true, sample_weight)
        if self._extra_loss is not None:
            loss = loss + self._extra_loss()
        return loss

    def validation_step(self, batch, **fit_params):
        Xi, yi, *weight = batch
        weight = weight[0] if weight else None
        with torch.no_grad():
            y_pred = self.module_(Xi)
            loss = self.get_loss(y_pred, yi, X=Xi, sample_weight=weight)
            return {"loss": loss, "y_pred": y_pred}

    def _notify_grad(self, batch):
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(self.get_all_learnable_params()),
            batch=batch,
        )

    def train_step(self, batch, **fit_params):
        weighted = len(batch) == 3
        if (self._closure and not weighted) or fit_params:
            return super().train_step(batch, **fit_params)
        Xi, yi, *weight = batch
        weight = weight[0] if weighted else None
        if self._fast_step is not None:
            with torch.no_grad():
                loss, y_pred = self._fast_step(Xi, yi, weight)
                if self._batch_hook:  # what the module's forward returns, as on autograd
                    y_pred = _module_output(self.module_, y_pred)
            if self._grad_hook:
                self._notify_grad(batch)
            self._fast_optimizer_step()
            return {"loss": loss, "y_pred": y_pred}

        def step():
            self.optimizer_.zero_grad(set_to_none=True)
            y_pred = self.module_(Xi)
            loss = self.get_loss(y_pred, yi, X=Xi, training=True, sample_weight=weight)
            loss.backward()
            if self._grad_hook:
                self._notify_grad(batch)
            step.result = {"loss": loss.detach(), "y_pred": y_pred}
            return loss

        if self._closure:  # e.g. LBFGS, which re-evaluates the loss
            self.optimizer_.step(step)
        else:
            step()
            self.optimizer_.step()
        return step.result
