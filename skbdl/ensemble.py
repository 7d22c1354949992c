"""Deep ensembles (Lakshminarayanan, Pritzel & Blundell 2017).

Members differ by initialisation and data order (and optionally by a bootstrap
resample).  They are trained either together, as one stacked (vectorised) model in
one process, or as independent joblib tasks, which a Dask cluster can run.  Member
``m``'s initialisation, data order and bootstrap sample depend only on its own seed,
so both strategies train the same members.
"""

import asyncio
import copy
import math
import numbers
import time
import warnings

import numpy as np
import torch
from joblib import Parallel, delayed
from joblib.parallel import BACKENDS, get_active_backend
from sklearn.utils._param_validation import Interval, StrOptions
from skorch.history import History
from skorch.utils import TeeGenerator
from torch import nn

from . import _net
from ._base import (
    CRITERION_DOC,
    NOISE_SCALE_DOC,
    OUTPUT_ACTIVATION_DOC,
    BayesianClassifierMixin,
    BayesianRegressorMixin,
    regression_option_constraints,
)
from ._reductions import log_model_average
from ._training import (
    CALIBRATION_DOC,
    CLASS_WEIGHT_DOC,
    CLASSIFIER_CALIBRATION_ATTRIBUTES_DOC,
    REGRESSOR_CALIBRATION_ATTRIBUTES_DOC,
    TRAINING_ATTRIBUTES_DOC,
    TRAINING_BUDGET_DOC,
    WARM_START_DOC,
    BaseBayesianNetwork,
    _torch_threads,
)
from .nn import (
    MLP,
    EnsembleCrossEntropyLoss,
    EnsembleGaussianNLLLoss,
    LoopEnsemble,
    StackedGaussianRegressionModule,
    StackedMLP,
    VmapEnsemble,
)
from .nn._mlp import _AutogradGaussianNLLLoss
from .nn._random import GLOBAL_RNG_LOCK, training_generators
from .nn._views import module_view

#: Floats gathered at once when building an epoch's per-member batches.
_GATHER_BUDGET = 2**22


_CONTAINERS = {"stacked": StackedMLP, "vmap": VmapEnsemble, "loop": LoopEnsemble}

#: joblib's own backends, which run tasks on this machine (processes or threads).
_LOCAL_BACKENDS = ("loky", "multiprocessing", "threading", "sequential")


def _cluster_backend_active():
    """Whether an enclosing ``joblib.parallel_config`` selects a backend that runs tasks
    beyond this machine's joblib pools (Dask, Ray, any registered custom backend).

    On one machine the stacked model trains every member in one pass per batch,
    faster than separate members in joblib workers whatever their number; only a
    cluster backend is a reason to train members as tasks.
    """
    backend, _ = get_active_backend()
    local = tuple(BACKENDS[name] for name in _LOCAL_BACKENDS if name in BACKENDS)
    return type(backend) not in local


#: Seconds a fit on a Dask cluster waits while the cluster has no worker before it
#: fails, unless Dask's ``distributed.scheduler.no-workers-timeout`` is set.
_DASK_NO_WORKERS_TIMEOUT = 60.0

#: Seconds between two looks at the Dask cluster while members train there.
_DASK_POLL_SECONDS = 1.0


def _active_dask_client():
    """The client of an enclosing ``joblib.parallel_config(backend="dask")``, or None."""
    backend, _ = get_active_backend()
    dask_backend = BACKENDS.get("dask")  # registered once the dask backend is asked for
    if dask_backend is not None and isinstance(backend, dask_backend):
        return backend.client
    return None


def _dask_no_workers_timeout():
    """Dask's ``distributed.scheduler.no-workers-timeout`` in seconds, or
    ``_DASK_NO_WORKERS_TIMEOUT`` when Dask leaves it unset (Dask would wait forever)."""
    import dask
    from dask.utils import parse_timedelta

    value = dask.config.get("distributed.scheduler.no-workers-timeout", None)
    return _DASK_NO_WORKERS_TIMEOUT if value is None else parse_timedelta(value, default="s")


def _fit_members_on_dask(client, calls, name):
    """Run ``_fit_member(*args)`` for each ``args`` of ``calls`` as a Dask task; return
    the results in order.

    joblib's Dask backend waits forever once every worker is gone (the tasks stay
    queued on the scheduler); this loop watches the cluster instead and fails once it
    has had no worker for the no-workers timeout.  A member whose worker dies is
    rerun by Dask elsewhere (the arguments travel with the task, not scattered to one
    worker that could be lost), so losing some workers only slows the fit.  Called
    from a task on a worker (a search over ensembles under the Dask backend), it
    leaves the worker's thread pool while it waits, as joblib does, so that waiting
    fits cannot hold every thread their members need.
    """
    from distributed import rejoin, secede, wait
    from distributed.worker import thread_state

    timeout = _dask_no_workers_timeout()
    futures = [client.submit(_fit_member, *args, pure=False) for args in calls]
    in_worker = hasattr(thread_state, "execution_state")
    if in_worker:
        secede()
    finished = False
    try:
        without_workers_since = None
        while True:
            try:
                wait(futures, timeout=_DASK_POLL_SECONDS)
                break
            except (TimeoutError, asyncio.TimeoutError):
                pass
            for future in futures:
                if future.status == "error":
                    future.result()  # a member failed: raise its error now
            if client.nthreads():
                without_workers_since = None
            elif without_workers_since is None:
                without_workers_since = time.monotonic()
            elif time.monotonic() - without_workers_since > timeout:
                done = sum(future.status == "finished" for future in futures)
                raise RuntimeError(
                    f"{name}.fit lost every worker of the Dask cluster at "
                    f"{client.scheduler.address}: none for {timeout:g} s, with "
                    f"{len(futures) - done} of {len(futures)} members untrained.  Restart "
                    "the workers (a Nanny restarts killed ones) and fit again; for a "
                    "cluster that takes longer to start workers (adaptive scaling), raise "
                    "dask's 'distributed.scheduler.no-workers-timeout' (unset: "
                    f"{_DASK_NO_WORKERS_TIMEOUT:g} s)."
                )
        results = [future.result() for future in futures]
        finished = True
        return results
    finally:
        if not finished:
            client.cancel(futures)
        if in_worker:
            rejoin()


class _MemberAverage(nn.Module):
    """An ensemble evaluated as one predictor (its deterministic pass).

    ``members`` returns each member's output on a leading members axis.  A
    regressor's ``(mean, var)`` become the members' mean mean and mean variance (the
    mixture's mean and aleatoric variance; the members' disagreement is left out); a
    classifier's logits become ``temperature * log(mean_m softmax(logits_m /
    temperature))``, whose softmax at that temperature is the members' average
    probabilities: the ensemble's own prediction, as one draw.
    """

    def __init__(self, members, temperature=1.0):
        super().__init__()
        self.members, self.temperature = members, float(temperature)

    def forward(self, x):
        out = self.members(x)
        if isinstance(out, tuple):
            return tuple(part.mean(dim=0) for part in out)
        return self.temperature * log_model_average(out, self.temperature)


class _AutogradEnsembleGaussianNLLLoss(EnsembleGaussianNLLLoss):
    """:class:`~skbdl.nn.EnsembleGaussianNLLLoss` for members with head options the
    hand-written training steps do not implement (a fixed noise variance, an output
    activation); see ``skbdl.nn._mlp._AutogradGaussianNLLLoss``."""

    def __init__(self, noise_variance=None):
        super().__init__()
        self.noise_variance = noise_variance

    null_loss = _AutogradGaussianNLLLoss.null_loss


def _member_seeds(seed, n_members):
    """``[(init_seed, data_seed), ...]``, one pair per member, drawn from ``seed``.

    Member ``m``'s pair does not depend on ``n_members``: the first members of a
    larger ensemble are the members of a smaller one.
    """
    draws = np.random.RandomState(seed).randint(np.iinfo(np.int32).max, size=n_members)
    return [tuple(int(s) for s in np.random.SeedSequence(int(d)).generate_state(2)) for d in draws]


class _MemberBatches:
    """Per-member mini-batches of shape ``(n_members, batch, ...)``.

    Each member shuffles its rows (or its bootstrap sample, drawn once) every epoch
    with its own generator, so its data order does not depend on the other members.
    ``X`` may be :class:`~skbdl._net.SparseRows` (densified a block of batches at a
    time); with ``weight`` (normalised sample weights) batches are ``(X, y,
    weight)``, the weights of shape ``(n_members, batch)``.
    """

    def __init__(self, X, y, batch_size, data_seeds, bootstrap, weight=None):
        self.X, self.y, self.batch_size, self.weight = X, y, batch_size, weight
        self.generators = [torch.Generator().manual_seed(int(s)) for s in data_seeds]
        n = len(X)
        self.rows = None
        if bootstrap:
            self.rows = torch.stack(
                [torch.randint(n, (n,), generator=g) for g in self.generators]
            ).to(X.device)

    def __len__(self):
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self):
        n, batch = len(self.X), self.batch_size
        order = torch.stack([torch.randperm(n, generator=g) for g in self.generators])
        order = order.to(self.y.device)
        if self.rows is not None:
            order = self.rows.gather(1, order)
        row_width = math.prod(self.X.shape[1:]) + self.y[0].numel()
        row_floats = len(self.generators) * max(1, row_width)
        block = max(1, _GATHER_BUDGET // (row_floats * batch)) * batch
        for start in range(0, n, block):
            rows = order[:, start : start + block]
            parts = (self.X[rows].split(batch, dim=1), self.y[rows].split(batch, dim=1))
            if self.weight is not None:
                parts += (self.weight[rows].split(batch, dim=1),)
            yield from zip(*parts)


class _EnsembleNet(_net.SkbdlNet):
    """SkbdlNet over an ensemble container: per-member data order, optional FGSM.

    Training batches have shape ``(n_members, batch, n_features)``; validation
    batches ``(batch, n_features)`` are shared by all members.
    """

    def __init__(self, *args, data_seeds=(), bootstrap=False, adversarial_epsilon=None, **kw):
        super().__init__(*args, **kw)
        self.data_seeds = data_seeds
        self.bootstrap = bootstrap
        self.adversarial_epsilon = adversarial_epsilon

    def _make_fast_step(self):
        # Adversarial training differentiates with respect to the inputs: autograd.
        return super()._make_fast_step() if self.adversarial_epsilon is None else None

    def get_iterator(self, dataset, training=False):
        tensors = _net._as_tensors(dataset) if training else None
        if tensors is None:
            return super().get_iterator(dataset, training=training)
        X, y, *weight = (t.to(self.device) for t in tensors)
        weight = _net.normalised_weights(*weight) if weight else None
        batches = _MemberBatches(X, y, self.batch_size, self.data_seeds, self.bootstrap, weight)
        # Continued training (warm_start, partial_fit) continues each member's order.
        for generator, state in zip(batches.generators, getattr(self, "_data_states", ())):
            generator.set_state(state)
        self._member_batches = batches
        return batches

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        batches = getattr(self, "_member_batches", None)
        if batches is not None:
            self._data_states = [g.get_state() for g in batches.generators]
            self._member_batches = None

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        # skorch's loop, recording the number of rows (not of members) per batch.
        if iterator is None:
            return
        self._set_training(training)
        batch_count = 0
        row_ndim = getattr(getattr(self.module_, "body", self.module_), "row_ndim", 1)
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            self.history.record_batch(prefix + "_loss", step["loss"].item())
            self.history.record_batch(prefix + "_batch_size", batch[0].shape[-1 - row_ndim])
            self.notify("on_batch_end", batch=batch, training=training, **step)
            batch_count += 1
        self.history.record(prefix + "_batch_count", batch_count)

    def train_step(self, batch, **fit_params):
        if self.adversarial_epsilon is None or self._closure or fit_params:
            return super().train_step(batch, **fit_params)
        # Fast gradient sign method: loss(x) + loss(x + eps * sign(grad_x loss(x))).
        # The loss sums the members' losses and member m only sees X[m], so the input
        # gradient of X[m] is member m's own.
        Xi, yi, *weight = batch
        weight = weight[0] if weight else None
        epsilon = torch.as_tensor(self.adversarial_epsilon, dtype=Xi.dtype, device=Xi.device)
        self.optimizer_.zero_grad(set_to_none=True)
        Xi = Xi.detach().requires_grad_(True)
        y_pred = self.module_(Xi)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True, sample_weight=weight)
        (grad,) = torch.autograd.grad(loss, Xi, retain_graph=True)
        X_adversarial = (Xi + epsilon * grad.sign()).detach()
        loss = loss + self.get_loss(
            self.module_(X_adversarial), yi, X=X_adversarial, training=True, sample_weight=weight
        )
        loss.backward()
        if self._grad_hook:
            self.notify(
                "on_grad_computed",
                named_parameters=TeeGenerator(self.get_all_learnable_params()),
                batch=batch,
            )
        self.optimizer_.step()
        return {"loss": loss.detach(), "y_pred": y_pred}


def _feature_range(X):
    """Each feature's range (max - min) over the rows of ``X`` (a tensor, or
    :class:`~skbdl._net.SparseRows`, read a block of rows at a time)."""
    low = high = None
    for block in X.split(4096):
        block_low, block_high = block.min(dim=0).values, block.max(dim=0).values
        low = block_low if low is None else torch.minimum(low, block_low)
        high = block_high if high is None else torch.maximum(high, block_high)
    return high - low


def _vmappable(bodies, X_probe):
    """Whether ``torch.func.vmap`` can train these members (forward and backward)."""
    try:
        with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):  # a user's module
            ensemble = VmapEnsemble(bodies).train()
            ensemble.row_ndim = X_probe.ndim - 1
            out = ensemble(X_probe.expand(len(bodies), *X_probe.shape))
            out.float().sum().backward()
    except Exception:  # any failure under vmap means: train members one by one
        return False
    return True


def _combine_histories(histories):
    """One history whose losses are, per epoch, the sums of the members' losses.

    A member that stopped early (early stopping) contributes its last epoch's loss.
    """
    combined = History()
    for epoch in range(max(len(h) for h in histories)):
        combined.new_epoch()
        combined.record("epoch", epoch + 1)
        rows = [h[min(epoch, len(h) - 1)] for h in histories]
        for key in ("train_loss", "valid_loss", "dur"):
            if all(key in row for row in rows):
                combined.record(key, float(sum(row[key] for row in rows)))
    return combined


def _fit_member(estimator, X, y, width, kind, seed, member_seed, device, epsilon):
    """Train one member as a 1-member ensemble (a joblib task; module level to pickle)."""
    threads = 1 if device.type == "cpu" and estimator.batch_size_ <= 512 else None
    # The member's own random stream: generators for skbdl's networks, torch's global
    # generator (seeded, restored, locked) for a user module (see _training_randomness).
    with _torch_threads(threads), estimator._training_randomness(device, seed=member_seed[1]):
        module = estimator._build_ensemble([member_seed], X, width, kind)
        net = estimator._make_ensemble_net(module, [member_seed], seed, device, epsilon)
        net = estimator._fit_net(net, X, y)
    return net.module_.cpu(), net.history


class _BaseDeepEnsemble(BaseBayesianNetwork):
    _incremental = True

    _parameter_constraints = {
        **{k: v for k, v in BaseBayesianNetwork._parameter_constraints.items() if k != "n_samples"},
        "n_estimators": [Interval(numbers.Integral, 1, None, closed="left")],
        "bootstrap": ["boolean"],
        "adversarial_epsilon": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "strategy": [StrOptions({"auto", "vectorized", "joblib"})],
        "n_jobs": [None, numbers.Integral],
    }

    # ------------------------------------------------------------- members
    def _make_default_module(self, n_features_in, n_outputs):
        return MLP(
            n_features_in,
            n_outputs,
            hidden_layer_sizes=self._validate_hidden_layer_sizes(),
            activation=self.activation,
        )

    def _build_bodies(self, seeds, X, width):
        """One freshly initialised body per member, seeded by the member's init seed."""
        bodies = []
        for init_seed, _ in seeds:
            if self.module is None:  # skbdl's network: its own generator, nothing global
                with training_generators(init_seed, "cpu"):
                    bodies.append(self._build_body(X.shape[1], width))
                continue
            with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                body = self._build_body(X.shape[1], width)
                if isinstance(self.module, nn.Module):  # a copied instance: re-initialise
                    for layer in body.modules():
                        if callable(getattr(layer, "reset_parameters", None)):
                            layer.reset_parameters()
            bodies.append(body)
        self._check_output_shape(bodies[0], X[:2], width)
        return bodies

    def _build_ensemble(self, seeds, X, width, kind):
        """The trainable module: the members in one container, wrapped for the task."""
        bodies = self._build_bodies(seeds, X, width)
        container = StackedMLP.from_mlps(bodies) if kind == "stacked" else _CONTAINERS[kind](bodies)
        container.row_ndim = X.ndim - 1  # axes of one row: images pass to a user's module
        return self._wrap_module(container)

    def _container_kind(self, X, width):
        if self.module is None:
            return "stacked"
        bodies = self._build_bodies(_member_seeds(0, 2), X, width)
        return "vmap" if _vmappable(bodies, _net.as_dense(X[:2])) else "loop"

    def _strategy(self, kind):
        if self.strategy == "vectorized" and kind == "loop":
            raise ValueError(
                "strategy='vectorized' needs a module that torch.func.vmap can train "
                "(no data-dependent Python control flow, no .item() calls, ...); this "
                "one raised under vmap. Use strategy='joblib' or 'auto'."
            )
        if self.strategy != "auto":
            return self.strategy
        # n_jobs alone never switches: joblib workers on one machine are many times
        # slower than the stacked model (benchmarks/ensemble_n_jobs.py).
        if kind == "loop" or _cluster_backend_active():
            return "joblib"
        return "vectorized"

    # ------------------------------------------------------------- training
    def _make_ensemble_net(self, module, seeds, seed, device, epsilon):
        return self._make_net(
            module,
            seed,
            device,
            net_class=_EnsembleNet,
            data_seeds=[data_seed for _, data_seed in seeds],
            bootstrap=self.bootstrap,
            adversarial_epsilon=epsilon,
        )

    def _train_network(self, X, y, n_outputs, seed, device):
        width = self._body_width(n_outputs)
        seeds = _member_seeds(seed, self.n_estimators)
        kind = self._container_kind(X, width)
        strategy = self._strategy(kind)
        epsilon = None
        if self.adversarial_epsilon is not None:
            epsilon = self.adversarial_epsilon * _feature_range(X)
        if strategy == "vectorized":
            module = self._build_ensemble(seeds, X, width, kind)
            net = self._make_ensemble_net(module, seeds, seed, device, epsilon)
            net = self._fit_net(net, X, y)
        else:
            # What a task needs: the parameters and target settings, not a previous fit.
            task = copy.copy(self)
            for name in ("net_", "history_", "loss_curve_"):
                vars(task).pop(name, None)
            calls = [(task, X, y, width, kind, seed, s, device, epsilon) for s in seeds]
            client = _active_dask_client()
            if client is None:
                results = Parallel(n_jobs=self.n_jobs)(delayed(_fit_member)(*a) for a in calls)
            else:
                results = _fit_members_on_dask(client, calls, type(self).__name__)
            modules, histories = zip(*results)
            module = type(modules[0]).concatenate(list(modules))
            container = getattr(module, "body", module)
            container.row_ndim = getattr(getattr(modules[0], "body", modules[0]), "row_ndim", 1)
            net = self._make_ensemble_net(module, seeds, seed, device, epsilon)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*initialized.*", module="skorch")
                net.initialize()
            net.history = _combine_histories(histories)
        self.strategy_ = strategy
        return net

    # ----------------------------------------------------------- prediction
    def _check_n_samples(self, n_samples):
        n_members = self.n_estimators_
        if n_samples is not None and n_samples != n_members:
            raise ValueError(
                f"A deep ensemble's draws are its {n_members} members: n_samples must be "
                f"None or {n_members} (n_estimators); got {n_samples!r}."
            )
        return n_members

    def _sample_outputs(self, module, X, n_samples, seed):
        return module(X)

    def _deterministic_view(self, module):
        # The members' average as one predictor: predict and predict_proba are those
        # of the sampling path; the epistemic part (the members' spread) is zero.
        return _MemberAverage(module_view(module), getattr(self, "temperature_", 1.0))

    @property
    def n_estimators_(self):
        """Number of trained members."""
        return self.module_.n_members

    @property
    def members_(self):
        """The trained member networks, as separate torch modules (copies for the
        default MLP, which is trained stacked)."""
        return self.module_.unstack()


_COMMON_DOC = (
    """
    Parameters
    ----------
    module : torch.nn.Module class or instance, default=None
        The member network.  ``None`` builds an :class:`skbdl.nn.MLP` from
        ``hidden_layer_sizes`` and ``activation`` per member; the members are
        then trained stacked, as one :class:`skbdl.nn.StackedMLP`.  A class is
        instantiated once per member with the ``module__*`` arguments (filling in
        ``n_features_in`` and ``n_outputs`` if its constructor takes them and they
        are not given); an instance is copied per member and re-initialised by the
        ``reset_parameters()`` of its layers.  Members are seeded independently.
    hidden_layer_sizes : tuple of int, default=(100,)
        Hidden layer widths of the default MLP.
    activation : {'relu', 'tanh', 'logistic', 'identity', 'gelu', 'elu', 'silu'}, default='relu'
        Activation of the default MLP.
    n_estimators : int, default=5
        Number of members.  They are the draws of every prediction method
        (``n_samples`` must be None or ``n_estimators``).
    bootstrap : bool, default=False
        Train each member on its own bootstrap resample of the training rows (the
        paper found plain data-order and initialisation diversity better).
    adversarial_epsilon : float, default=None
        Adversarial training as in the paper: each step also fits the fast gradient
        sign perturbation ``x + eps * sign(grad_x loss)``, with ``eps`` this
        fraction of each feature's range in the training data, and minimises the sum
        of the clean and adversarial losses.  ``None`` turns it off.
    strategy : {'auto', 'vectorized', 'joblib'}, default='auto'
        How the members are trained.  ``'vectorized'``: all together, as one stacked
        model in this process (batched matrix products for the default MLP,
        ``torch.func.vmap`` for a user module), each member with its own data order
        and its own (element-wise) optimizer state.  ``'joblib'``: each member as
        an independent ``joblib`` task with ``n_jobs`` workers, so that inside
        ``with joblib.parallel_config(backend="dask"):`` members train on a Dask
        cluster (a member whose worker dies is rerun on another; a cluster left
        with no worker for Dask's ``distributed.scheduler.no-workers-timeout``, 60 s
        when unset, fails the fit with a ``RuntimeError``).  ``'auto'``: ``'joblib'``
        when an enclosing
        ``joblib.parallel_config`` selects a cluster backend (Dask, Ray: any backend
        other than joblib's local ``'loky'``, ``'threading'``, ``'multiprocessing'``
        and ``'sequential'``) or when the user module raises under ``vmap`` (e.g.
        Python control flow on tensor values; batch norm is fine, each member keeps
        its own running statistics); ``'vectorized'`` otherwise, whatever ``n_jobs``
        says.  Both give the same members for the same ``random_state``, up to float
        round-off, except with ``early_stopping`` or random layers (dropout) in a
        user module.
    n_jobs : int, default=None
        Number of joblib workers when the ``'joblib'`` strategy runs (``None``: one,
        unless an enclosing ``joblib.parallel_config`` says otherwise; ``-1``: all
        CPUs).  It does not choose the strategy and the ``'vectorized'`` strategy
        ignores it: on one machine the stacked model is many times faster than
        members in separate workers (docs/ensembles.md), so ``n_jobs=-1`` set out of
        habit costs nothing.  Ask for ``strategy='joblib'`` to train members as
        separate tasks.
"""
    + TRAINING_BUDGET_DOC
    + """    lr : float, default=3e-3
        Learning rate (Adam's; chosen on the UCI sets, docs/defaults.md).
    weight_decay : float, default=0.0
        L2 penalty passed to the optimizer.
    optimizer : {'adam', 'adamw', 'sgd'} or torch.optim.Optimizer class, default='adam'
        Optimizer; ``optimizer__*`` keyword arguments are passed to it.  Stacked
        members keep separate state under any element-wise optimizer (Adam, SGD);
        an optimizer that mixes parameters (LBFGS) would couple them.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (the same rows for
        every member) and stop when the validation loss has not improved for
        ``n_iter_no_change`` epochs, restoring the best weights.  The vectorised
        strategy watches the loss summed over the members, so all members stop at
        the same epoch; the joblib strategy stops each member on its own loss.
"""
    + CALIBRATION_DOC
    + """    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks (or ``(name, callback)`` pairs); copied at fit time
        (per member with the joblib strategy).
    predict_batch_size : int, default=None
        Rows times members evaluated in one forward pass at prediction time;
        ``None`` chooses for the device: 16384 on the CPU, on CUDA a quarter of the
        GPU's memory at 32 bytes per row, member and unit of the widest layer.
    device : str or torch.device, default='cpu'
        Where to train and predict, e.g. ``'cuda'``.
    random_state : int, RandomState instance or None, default=None
        Seeds every member (initialisation, data order, bootstrap sample).  Member
        ``m`` depends only on its own seed, so the first members of a larger
        ensemble are those of a smaller one with the same ``random_state``.
    verbose : int or 'auto', default='auto'
        ``'auto'``: a progress bar over epochs once the fit is expected to take
        longer than 5 seconds (estimated as it runs), else silent; 0: silent; 1: a
        progress bar; 2: skorch's table per epoch.
"""
    + WARM_START_DOC
)

_ATTRIBUTES_DOC = """
    net_ : skbdl._net.SkbdlNet
        The trained skorch net over all members.
    module_ : skbdl.nn.StackedMLP, skbdl.nn.VmapEnsemble or skbdl.nn.LoopEnsemble
        The members in one container: inputs ``(n_rows, n_features)`` give outputs
        ``(n_estimators, n_rows, width)``.
    members_ : list of torch.nn.Module
        The trained members as separate networks (an :class:`skbdl.nn.MLP` each by
        default).  A regressor's members output standardised means and, for the
        heteroscedastic likelihood, raw variances (before ``softplus``).
    n_estimators_ : int
        Number of members.
    strategy_ : {'vectorized', 'joblib'}
        The strategy that trained the members.
    history_ : skorch.History
        Per-epoch training record; ``train_loss`` (and ``valid_loss``) are the sums
        of the members' mean losses.
    loss_curve_ : list of float
        Training loss per epoch, summed over members.
    n_iter_ : int
        Number of epochs run.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.
"""

_REFERENCES = """
    References
    ----------
    B. Lakshminarayanan, A. Pritzel and C. Blundell, "Simple and Scalable Predictive
    Uncertainty Estimation using Deep Ensembles", NeurIPS 2017.
"""


class DeepEnsembleClassifier(BayesianClassifierMixin, _BaseDeepEnsemble):
    __doc__ = (
        """Deep ensemble classifier: independently trained networks, averaged.

    Trains ``n_estimators`` networks with cross-entropy, each from its own random
    initialisation and data order, and predicts the average of their class
    probabilities.  The members' disagreement is the epistemic uncertainty (mutual
    information) of :meth:`predict_uncertainty`.
"""
        + _COMMON_DOC
        + CLASS_WEIGHT_DOC
        + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels."""
        + CLASSIFIER_CALIBRATION_ATTRIBUTES_DOC
        + TRAINING_ATTRIBUTES_DOC
        + _ATTRIBUTES_DOC
        + """
    See Also
    --------
    DeepEnsembleRegressor : The regression counterpart.
    MCDropoutClassifier : One network, with dropout as the source of draws.
"""
        + _REFERENCES
        + """
    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skbdl import DeepEnsembleClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = DeepEnsembleClassifier(n_estimators=3, hidden_layer_sizes=(16,), lr=0.01,
    ...                              max_epochs=20, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    >>> clf.sample_predictions(X[:2]).shape  # one row of probabilities per member
    (3, 2, 3)
    >>> u = clf.predict_uncertainty(X[:2])
    >>> bool((u.epistemic >= 0).all())
    True
    """
    )

    def __init__(
        self,
        module=None,
        *,
        hidden_layer_sizes=(100,),
        activation="relu",
        n_estimators=5,
        bootstrap=False,
        adversarial_epsilon=None,
        strategy="auto",
        n_jobs=None,
        max_epochs="auto",
        batch_size="auto",
        lr=3e-3,
        weight_decay=0.0,
        optimizer="adam",
        early_stopping=False,
        calibrate="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        predict_batch_size=None,
        device="cpu",
        random_state=None,
        class_weight=None,
        warm_start=False,
        verbose="auto",
        **kwargs,
    ):
        self.module = module
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.n_estimators = n_estimators
        self.bootstrap = bootstrap
        self.adversarial_epsilon = adversarial_epsilon
        self.strategy = strategy
        self.n_jobs = n_jobs
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.calibrate = calibrate
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.callbacks = callbacks
        self.predict_batch_size = predict_batch_size
        self.device = device
        self.random_state = random_state
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.verbose = verbose
        self._store_routed(kwargs)

    def _criterion(self):
        return EnsembleCrossEntropyLoss


class DeepEnsembleRegressor(BayesianRegressorMixin, _BaseDeepEnsemble):
    __doc__ = (
        """Deep ensemble regressor: Gaussian networks combined as a mixture.

    Trains ``n_estimators`` networks on standardised targets, each from its own
    random initialisation and data order.  By default each member predicts a mean
    and a variance (heteroscedastic Gaussian, trained by the negative
    log-likelihood), and the ensemble is the equally weighted mixture of the
    members' Gaussians, summarised by its moments as in the paper: the mean of the
    members' means, aleatoric variance = mean of the members' variances, epistemic
    variance = variance of the members' means.  Every output is in the target's
    original units.
"""
        + _COMMON_DOC
        + """\
    likelihood : {'homoscedastic', 'heteroscedastic', 'fixed'}, default='heteroscedastic'
        Heteroscedastic: each member's network outputs ``2 * n_outputs`` values,
        means and (through ``softplus``) variances.  Homoscedastic: each member
        learns one noise variance per target.  Fixed: the noise variance is
        ``noise_scale**2`` for every member, which predicts means only.
"""
        + NOISE_SCALE_DOC
        + CRITERION_DOC
        + OUTPUT_ACTIVATION_DOC
        + """
    Attributes
    ----------
    n_outputs_ : int
        Number of targets.
    y_mean_ : ndarray of shape (n_outputs_,)
        Target means used for standardisation.
    y_scale_ : ndarray of shape (n_outputs_,)
        Target standard deviations used for standardisation."""
        + REGRESSOR_CALIBRATION_ATTRIBUTES_DOC
        + TRAINING_ATTRIBUTES_DOC
        + _ATTRIBUTES_DOC
        + """
    See Also
    --------
    DeepEnsembleClassifier : The classification counterpart.
    MCDropoutRegressor : One network, with dropout as the source of draws.
"""
        + _REFERENCES
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from skbdl import DeepEnsembleRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(200, 1))
    >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.randn(200)
    >>> reg = DeepEnsembleRegressor(n_estimators=3, hidden_layer_sizes=(32,),
    ...                             max_epochs=20, random_state=0).fit(X, y)
    >>> mean, std = reg.predict(X[:4], return_std=True)
    >>> mean.shape, bool((std > 0).all())
    ((4,), True)
    >>> means, variances = reg.sample_predictions(X[:4])  # one row per member
    >>> means.shape
    (3, 4)
    >>> u = reg.predict_uncertainty(X[:4])
    >>> np.allclose(u.epistemic_var, means.var(axis=0))
    True
    """
    )

    _parameter_constraints = {
        **_BaseDeepEnsemble._parameter_constraints,
        **regression_option_constraints(),
        "criterion": [None, callable],
    }

    def __init__(
        self,
        module=None,
        *,
        hidden_layer_sizes=(100,),
        activation="relu",
        n_estimators=5,
        likelihood="heteroscedastic",
        noise_scale=1.0,
        criterion=None,
        output_activation=None,
        bootstrap=False,
        adversarial_epsilon=None,
        strategy="auto",
        n_jobs=None,
        max_epochs="auto",
        batch_size="auto",
        lr=3e-3,
        weight_decay=0.0,
        optimizer="adam",
        early_stopping=False,
        calibrate="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        predict_batch_size=None,
        device="cpu",
        random_state=None,
        warm_start=False,
        verbose="auto",
        **kwargs,
    ):
        self.module = module
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.n_estimators = n_estimators
        self.likelihood = likelihood
        self.noise_scale = noise_scale
        self.criterion = criterion
        self.output_activation = output_activation
        self.bootstrap = bootstrap
        self.adversarial_epsilon = adversarial_epsilon
        self.strategy = strategy
        self.n_jobs = n_jobs
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.calibrate = calibrate
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.callbacks = callbacks
        self.predict_batch_size = predict_batch_size
        self.device = device
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self._store_routed(kwargs)

    def _wrap_module(self, body):
        return StackedGaussianRegressionModule(
            body, self.n_outputs_, self.likelihood, **self._head_options()
        )

    def _criterion(self):
        return self._regression_criterion(
            EnsembleGaussianNLLLoss, _AutogradEnsembleGaussianNLLLoss, stacked=True
        )
