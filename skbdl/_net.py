"""The skorch net that trains every skbdl estimator.

skorch supplies the training loop, callbacks, device handling and history; this
subclass removes its per-step overhead for in-memory tabular data (tensors are
pre-loaded and sliced with ``randperm``, not collated by a ``DataLoader``; one lean
optimisation step without a closure) and adds divergence detection.
"""

import math
import time

import torch
from skorch import NeuralNet
from skorch.callbacks import Callback
from skorch.dataset import Dataset
from skorch.utils import TeeGenerator

from .nn._fast import make_fast_step


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


class _TensorBatches:
    """Re-iterable mini-batches over in-memory tensors (shuffled when training)."""

    def __init__(self, X, y, batch_size, shuffle):
        self.X, self.y, self.batch_size, self.shuffle = X, y, batch_size, shuffle

    def __len__(self):
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self):
        X, y = self.X, self.y
        if self.shuffle:
            perm = torch.randperm(len(X), device=X.device)
            X, y = X[perm], y[perm]
        return zip(X.split(self.batch_size), y.split(self.batch_size))


def _as_tensors(dataset):
    """``(X, y)`` tensors behind a skorch ``Dataset`` (or a ``Subset`` of one), else None."""
    indices = None
    if isinstance(dataset, torch.utils.data.Subset):
        dataset, indices = dataset.dataset, torch.as_tensor(dataset.indices)
    if not (
        isinstance(dataset, Dataset)
        and isinstance(dataset.X, torch.Tensor)
        and isinstance(dataset.y, torch.Tensor)
    ):
        return None
    if indices is None:
        return dataset.X, dataset.y
    return dataset.X[indices], dataset.y[indices]


class DivergenceCheck(Callback):
    """Raise :class:`DivergenceError` when training has broken down.

    After each epoch the training loss must be finite; after training, the
    parameters and the network's outputs on (up to 256 of) the training rows must
    be finite too, which catches a run whose loss stayed finite while its weights
    or predicted variances overflowed.
    """

    _ADVICE = (
        "Lower the learning rate (lr), scale the inputs (e.g. StandardScaler) or add "
        "weight decay."
    )

    def on_epoch_end(self, net, **kwargs):
        loss = net.history[-1].get("train_loss", 0.0)
        if not math.isfinite(loss):
            raise DivergenceError(
                f"Training diverged: the training loss is {loss} at epoch "
                f"{len(net.history)}. {self._ADVICE}"
            )

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if not all(torch.isfinite(p).all() for p in net.module_.parameters()):
            raise DivergenceError(f"Training diverged: some weights are not finite. {self._ADVICE}")
        if isinstance(X, torch.Tensor):
            training = net.module_.training
            net.module_.eval()
            with torch.no_grad():
                out = net.module_(X[:256].to(net.device))
            net.module_.train(training)
            outputs = out if isinstance(out, tuple) else (out,)
            if not all(torch.isfinite(o).all() for o in outputs):
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


class _FusedAdamStep:
    """``optimizer.step()`` for a fused Adam/AdamW, without its per-step Python.

    ``torch.optim.Adam.step`` spends far longer grouping tensors and checking
    options than its fused kernel takes on a small network.  This calls the same
    kernel on lists gathered once, after a first ordinary step has created the
    optimizer's state, and reads ``lr``, ``betas``, ``eps`` and ``weight_decay`` from
    the param groups at every step (so learning-rate schedulers keep working).
    Only used when every parameter receives a gradient at every step (the
    hand-written MLP path).
    """

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.groups = None

    @staticmethod
    def supports(optimizer):
        return type(optimizer) in (torch.optim.Adam, torch.optim.AdamW) and all(
            group.get("fused")
            and not any(group.get(k) for k in ("amsgrad", "maximize", "capturable"))
            and not group.get("differentiable")
            for group in optimizer.param_groups
        )

    def step(self):
        if self.groups is None:
            self.optimizer.step()  # creates exp_avg, exp_avg_sq and step
            state = self.optimizer.state
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
            return
        decoupled = isinstance(self.optimizer, torch.optim.AdamW)
        for group, params, exp_avgs, exp_avg_sqs, steps in self.groups:
            kernel = (
                torch._fused_adamw_
                if group.get("decoupled_weight_decay", decoupled)
                else torch._fused_adam_
            )
            torch._foreach_add_(steps, 1)
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


class SkbdlNet(NeuralNet):
    """skorch ``NeuralNet`` with a fast path for in-memory tensors.

    The loss is ``criterion_(y_pred, y_true)`` plus, when the module defines it,
    ``module_.extra_loss()`` (e.g. a KL term), so methods customise the objective in
    the module or criterion without touching the loop.
    """

    def initialize(self):
        super().initialize()
        self._grad_hook = any(
            type(cb).on_grad_computed is not Callback.on_grad_computed
            for _, cb in self.callbacks_
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
        if self._fast_step is None and self._extra_loss is None and not self._closure:
            self._fast_step = make_fast_step(self.module_, self.criterion_)
        self._fast_optimizer_step = self.optimizer_.step
        if self._fast_step is not None and _FusedAdamStep.supports(self.optimizer_):
            self._fast_optimizer_step = _FusedAdamStep(self.optimizer_).step

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        # Both hold views of the parameters and state: rebuilt per fit, not pickled.
        self._fast_step = self._fast_optimizer_step = None

    def get_iterator(self, dataset, training=False):
        tensors = _as_tensors(dataset)
        if tensors is None:
            return super().get_iterator(dataset, training=training)
        X, y = (t.to(self.device) for t in tensors)
        batch_size = self.batch_size if training else max(self.batch_size, 4096)
        return _TensorBatches(X, y, batch_size, shuffle=training)

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if iterator is not None:
            self._set_training(training)
        super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = self.criterion_(y_pred, y_true)
        if self._extra_loss is not None:
            loss = loss + self._extra_loss()
        return loss

    def validation_step(self, batch, **fit_params):
        Xi, yi = batch
        with torch.no_grad():
            y_pred = self.module_(Xi)
            return {"loss": self.get_loss(y_pred, yi, X=Xi), "y_pred": y_pred}

    def _notify_grad(self, batch):
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(self.get_all_learnable_params()),
            batch=batch,
        )

    def train_step(self, batch, **fit_params):
        if self._closure or fit_params:
            return super().train_step(batch, **fit_params)
        Xi, yi = batch
        if self._fast_step is not None:
            with torch.no_grad():
                loss, y_pred = self._fast_step(Xi, yi)
            if self._grad_hook:
                self._notify_grad(batch)
            self._fast_optimizer_step()
            return {"loss": loss, "y_pred": y_pred}
        self.optimizer_.zero_grad(set_to_none=True)
        y_pred = self.module_(Xi)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        loss.backward()
        if self._grad_hook:
            self._notify_grad(batch)
        self.optimizer_.step()
        return {"loss": loss, "y_pred": y_pred}
