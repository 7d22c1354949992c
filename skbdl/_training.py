"""The training layer: skorch training for the SGD-trained methods.

:class:`BaseBayesianNetwork` adds to the prediction core (:mod:`skbdl._base`) what a
network trained by stochastic gradient descent needs: the module (a default MLP or
the user's, with ``module__*`` arguments), the optimizer (``optimizer__*``), the
training budget, early stopping, recalibration on held-out rows, callbacks, the
progress bar, and the skorch net (:class:`skbdl._net.SkbdlNet`) that runs the loop.
MC dropout, deep ensembles, Bayes by Backprop and the hyper-deep ensembles opt into
it; PBP and the post-hoc methods do not.
"""

import contextlib
import copy
import inspect
import math
import numbers
import warnings
from abc import abstractmethod

import numpy as np
import torch
from sklearn.base import _fit_context, is_classifier
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import _check_partial_fit_first_call
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import EarlyStopping
from skorch.helper import predefined_split
from torch import nn

from ._base import BasePredictor
from ._net import DivergenceCheck, EpochProgressBar, RowData, SkbdlNet, as_dense
from .nn import ACTIVATIONS
from .nn._random import GLOBAL_RNG_LOCK, generator_states, training_generators

#: Keyword-argument prefixes routed to the module and optimizer constructors.
ROUTED_PREFIXES = ("module__", "optimizer__")

_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}

#: ``batch_size='auto'``: ``clip(n_train // AUTO_BATCH_DIVISOR, AUTO_BATCH_MIN,
#: AUTO_BATCH_MAX)`` rows (never more than ``n_train``).  Chosen on the UCI sets
#: (docs/defaults.md).
AUTO_BATCH_MIN, AUTO_BATCH_MAX, AUTO_BATCH_DIVISOR = 32, 256, 64

#: ``max_epochs='auto'``: enough epochs for ``AUTO_STEPS`` optimisation steps, at least
#: ``AUTO_MIN_EPOCHS`` and at most ``AUTO_MAX_EPOCHS`` (docs/defaults.md).
AUTO_STEPS, AUTO_MIN_EPOCHS, AUTO_MAX_EPOCHS = 20_000, 10, 400

#: Parameter docs shared by the trained estimators' docstrings (numpydoc entries).
TRAINING_BUDGET_DOC = """    max_epochs : int or 'auto', default='auto'
        Number of passes over the training data.  ``'auto'``: 400, or fewer where
        400 epochs would take more than 20 000 optimisation steps (at least 10), so
        small data sets are trained long enough and large ones not for hours; the
        value used is ``max_epochs_`` (chosen on the UCI sets: see the user guide's
        "Defaults" page).
    batch_size : int or 'auto', default='auto'
        Mini-batch size for training (of each member, for ensembles).  ``'auto'``:
        32 up to 2 048 training rows, then ``n_train // 64`` up to 256; the value
        used is ``batch_size_``.
"""
CALIBRATION_DOC = """    calibrate : bool or 'auto', default='auto'
        Hold out ``validation_fraction`` of the training rows, train on the rest,
        recalibrate the predictive distribution on the held-out rows by maximum
        likelihood, then (below 10 000 rows) retrain the network on all rows with
        the same seeds, keeping the recalibration: a classifier divides every
        draw's logits by a temperature (``temperature_``), a regressor scales its
        predictive standard deviation by one factor per target
        (``calibration_scale_``).  Every prediction method reflects it.  Below
        10 000 rows training costs twice as much.  With ``early_stopping`` the
        held-out rows serve both and there is no retraining.  ``'auto'``: only when
        the held-out rows number at least 20 (200 training rows at the default
        ``validation_fraction``).
    validation_fraction : float, default=0.1
        Fraction of the training rows held out when ``early_stopping`` or
        ``calibrate`` is True (the same rows serve both); stratified by class for
        classifiers where every class has two rows.
"""

#: The ``fit`` docstring of the estimators trained here.
FIT_DOC = """Fit the model to data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_rows, n_features) or (n_rows, ...)
            Training inputs (numpy, pandas, lists, scipy sparse; cast to float32
            internally).  A sparse matrix (CSR or CSC; other formats are converted
            to CSR) stays sparse: it is densified a mini-batch at a time, so
            training memory is that of the sparse matrix plus a batch.  Arrays of
            more than two dimensions (images ``(n_rows, channels, height, width)``,
            sequences) are passed to a user's module as they are, and flattened to
            rows for the default networks.
        y : array-like of shape (n_rows,) or (n_rows, n_outputs)
            Targets: class labels for classifiers (any type), real values for
            regressors.
        sample_weight : array-like of shape (n_rows,), default=None
            Non-negative row weights (not all zero), as counts: the training loss
            is ``sum_i w_i loss_i / sum_i w_i`` (each mini-batch's mean of
            ``w_i * loss_i``, divided by the mean weight of the training rows), so a
            row of integer weight ``k`` counts as ``k`` copies of it, and a weight of
            0 as leaving the row out.  The weights also enter the target
            standardisation of regressors, the held-out loss of early stopping and
            the held-out likelihood of the recalibration (held-out rows keep their
            weights), and, for Bayes by Backprop, the number of rows ``N`` dividing
            the KL term (``N = sum_i w_i``).  Multiplied by the ``class_weight``
            of a classifier.

        Returns
        -------
        self : object
            The fitted estimator.  If fitting fails (bad input, a diverging loss),
            the exception propagates and the estimator is left exactly as it was.
        """

#: Parameter docs of the classifiers' class weights and of continued training.
CLASS_WEIGHT_DOC = """    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes in the training loss, as in scikit-learn: a dict
        ``{label: weight}`` (labels as in ``y``; classes not listed weigh 1),
        ``'balanced'`` (``n_rows / (n_classes * np.bincount(y))``) or None (equal).
        Applied as sample weights (multiplying ``sample_weight`` of ``fit``), so
        they also weigh the held-out rows of early stopping and recalibration.
"""
WARM_START_DOC = """    warm_start : bool, default=False
        When True and the estimator is fitted, ``fit`` continues training the
        fitted network (its weights, optimizer state and random stream) for
        ``max_epochs`` more epochs on the rows given, instead of starting afresh,
        as ``partial_fit`` does for one epoch.  Continued training keeps what the
        first fit set up -- the classes, the target standardisation, the
        recalibration (not refitted) -- and holds no rows out (no early
        stopping), as scikit-learn's ``MLPClassifier.partial_fit``.  The optimizer
        is the first fit's (a changed ``lr`` applies to it; other optimizer
        settings do not).
"""

#: Fitted attributes every trained estimator's docstring lists (numpydoc entries).
TRAINING_ATTRIBUTES_DOC = """
    batch_size_ : int
        The mini-batch size used (``batch_size``, resolved).
    max_epochs_ : int
        The number of epochs trained for (``max_epochs``, resolved)."""
CLASSIFIER_CALIBRATION_ATTRIBUTES_DOC = """
    temperature_ : float
        Temperature dividing every draw's logits (1 when not recalibrated)."""
REGRESSOR_CALIBRATION_ATTRIBUTES_DOC = """
    calibration_scale_ : ndarray of shape (n_outputs_,)
        Factor on the predictive standard deviation per target (ones when not
        recalibrated)."""

#: ``calibrate='auto'`` recalibrates when ``validation_fraction`` of the rows is at least
#: this many rows (a factor fitted on fewer rows is too noisy to trust).
AUTO_CALIBRATION_MIN_ROWS = 20

#: After recalibration, the network is retrained on all rows below this many rows;
#: above it, the held-out tenth costs little and the network trained without it is
#: kept (retraining would double the fit time where fits take longest: on 200 000
#: rows a deep ensemble's fit took 2.9x MLPRegressor's with the retrain).
RETRAIN_MAX_ROWS = 10_000

#: ``verbose='auto'`` shows a progress bar once a fit is expected to take longer than
#: this many seconds (estimated after each epoch).
AUTO_PROGRESS_SECONDS = 5.0

#: The learned homoscedastic noise variance trains with this multiple of ``lr``, so it
#: reaches the residual variance within the budget (Adam moves a parameter by about
#: ``lr`` per step, and Yacht's residual variance is ~e^-6 of the target's).
NOISE_LR_FACTOR = 10.0


def resolve_training_budget(batch_size, max_epochs, n_train):
    """The ``(batch_size, max_epochs)`` a fit on ``n_train`` rows uses.

    ``'auto'`` values adapt to the data: mini-batches of 32 rows up to 2 048 rows, then
    growing with the data (``n_train // 64``, at most 256); 400 epochs (the MC dropout
    paper's final training), fewer where that would exceed ``AUTO_STEPS`` optimiser
    steps, so small data sets are trained long enough and large ones not for hours.

    Examples
    --------
    >>> from skbdl._training import resolve_training_budget
    >>> resolve_training_budget("auto", "auto", 300)      # Yacht-sized
    (32, 400)
    >>> resolve_training_budget("auto", "auto", 200_000)  # 782 steps an epoch
    (256, 26)
    >>> resolve_training_budget(64, 5, 300)
    (64, 5)
    """
    n_train = max(int(n_train), 1)
    if batch_size == "auto":
        batch_size = min(AUTO_BATCH_MAX, max(AUTO_BATCH_MIN, n_train // AUTO_BATCH_DIVISOR))
        batch_size = min(batch_size, n_train)
    if max_epochs == "auto":
        steps_per_epoch = math.ceil(n_train / batch_size)
        max_epochs = min(
            AUTO_MAX_EPOCHS, max(AUTO_MIN_EPOCHS, math.ceil(AUTO_STEPS / steps_per_epoch))
        )
    return int(batch_size), int(max_epochs)


def network_constraints(*names):
    """The ``_parameter_constraints`` entries of the network and its training that
    the estimators training one share, for the settings ``names`` (all of them when
    none is given): ``hidden_layer_sizes``, ``activation``, ``max_epochs``,
    ``batch_size``, ``lr``, ``weight_decay``, ``callbacks``, ``verbose``.

    Examples
    --------
    >>> from skbdl._training import network_constraints
    >>> list(network_constraints("hidden_layer_sizes", "lr"))
    ['hidden_layer_sizes', 'lr']
    """
    constraints = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "max_epochs": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "callbacks": [None, list],
        "verbose": [StrOptions({"auto"}), "verbose"],
    }
    return {name: constraints[name] for name in names} if names else constraints


def held_out_weight(sample_weight, rows, consequence, fix):
    """The sample weights of the held-out ``rows`` (None without weights); a
    ValueError naming the ``consequence`` and the ``fix`` when they are all zero."""
    weight = None if sample_weight is None else sample_weight[rows]
    if weight is not None and not weight.sum() > 0:
        raise ValueError(f"Every held-out row has zero sample weight, so {consequence}. {fix}")
    return weight


def _same_setting(value, default):
    """Whether a parameter is at its default (sequences compared element-wise, so that
    ``[50]`` equals ``(50,)``)."""
    if isinstance(value, (list, tuple, np.ndarray)) and isinstance(default, (list, tuple)):
        return list(np.ravel(value)) == list(default)
    try:
        return bool(value == default)
    except Exception:  # objects whose == is not a bool
        return value is default


def _silent(*args):
    """A sink that prints nothing (module level, so that nets with it pickle)."""


def validate_hidden_layer_sizes(sizes):
    """``hidden_layer_sizes`` (an int or a sequence of positive ints) as a tuple."""
    given = sizes
    sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
    if any(not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
        raise ValueError(f"hidden_layer_sizes must contain positive integers; got {given!r}.")
    return tuple(int(s) for s in sizes)


def progress_callbacks(estimator, total_epochs):
    """The progress bar for ``estimator``'s fit: always for ``verbose=1``; for
    ``'auto'``, once the fit is expected to take longer than ``AUTO_PROGRESS_SECONDS``."""
    if estimator.verbose not in ("auto", 1):
        return []
    bar = EpochProgressBar(
        total_epochs,
        type(estimator).__name__,
        estimator._loss_name,
        min_seconds=AUTO_PROGRESS_SECONDS if estimator.verbose == "auto" else None,
    )
    return [("progress", bar)]


def table_options(verbose):
    """skorch's per-epoch table: printed for ``verbose >= 2`` only."""
    if verbose != "auto" and verbose >= 2:
        return {"verbose": 1}
    return {"verbose": 0, "callbacks__print_log": None}


@contextlib.contextmanager
def _torch_threads(n_threads):
    """Temporarily set torch's intra-op thread count."""
    previous = torch.get_num_threads()
    if n_threads is None or n_threads == previous:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _rng_state(device):
    """torch's global random state (CPU, and ``device``'s when it is a GPU)."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state, device):
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda, device)


def _has_noise_parameter(module):
    return any(name.endswith("log_noise_var") for name, _ in module.named_parameters())


class TrainedNetMixin:
    """What every estimator trained in a skorch net shares: the net's callbacks
    (divergence check, progress bar, the user's), the fitted record (``net_``,
    ``history_``, ``n_iter_``, ``loss_curve_``), ``module_`` and the prediction
    module.  :class:`BaseBayesianNetwork` (gradient descent) and
    :class:`~skbdl.PBPRegressor` (its own loop in a skorch net) use it."""

    def _table_options(self):
        return table_options(self.verbose)

    def _net_callbacks(self, total_epochs, *extra):
        """The callbacks of a net trained for ``total_epochs``: the divergence check,
        the progress bar, the ``extra`` ``(name, callback)`` pairs, then (copies of)
        the user's ``callbacks``."""
        return [
            ("divergence_check", DivergenceCheck()),
            *progress_callbacks(self, total_epochs),
            *extra,
            *copy.deepcopy(self.callbacks or []),
        ]

    def _finish_fit(self, net):
        """Keep the trained net and its training record; return ``self``."""
        self.net_ = net
        self.history_ = net.history
        self.n_iter_ = len(net.history)
        self.loss_curve_ = [float(v) for v in net.history[:, "train_loss"]]
        return self

    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    @property
    def module_(self):
        """The trained torch module (the user's module or the default network;
        without a regressor's Gaussian head)."""
        check_is_fitted(self)
        return self._body(self.net_.module_)

    def _body(self, module):
        return module

    def _prediction_module(self):
        """The trained skorch net's module, and its device."""
        return self.net_.module_, torch.device(self.net_.device)


class BaseBayesianNetwork(TrainedNetMixin, BasePredictor):
    """The training layer of the SGD-trained skbdl estimators; not for direct use.

    Subclasses define ``__init__`` (listing every parameter, as scikit-learn
    requires), ``_make_default_module`` and ``_sample_outputs``.  Extra keyword
    arguments prefixed with ``module__`` are passed to ``module`` when it is a
    class, and ``optimizer__`` ones to the optimizer; both are ordinary parameters
    for ``get_params`` / ``set_params`` / ``GridSearchCV``.
    """

    _parameter_constraints: dict = {
        **BasePredictor._parameter_constraints,
        **network_constraints(),
        "module": [None, type, nn.Module],
        "optimizer": [StrOptions(set(_OPTIMIZERS)), type],
        "early_stopping": ["boolean"],
        "calibrate": [StrOptions({"auto"}), "boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        # Of the estimators that have them: continued training, classifiers' weights.
        "warm_start": ["boolean"],
        "class_weight": [None, dict, StrOptions({"balanced"})],
    }

    def _store_routed(self, kwargs):
        # Stored as given; names are checked in ``fit`` (scikit-learn convention).
        for key, value in kwargs.items():
            setattr(self, key, value)

    def _extra_params(self):
        """Keyword parameters beyond the signature (``module__*``, ``optimizer__*``)."""
        named = set(self._get_param_names())
        return {
            k: v
            for k, v in vars(self).items()
            if k not in named and not k.startswith("_") and not k.endswith("_")
        }

    def _routed(self, prefix):
        return {
            key[len(prefix) :]: value
            for key, value in self._extra_params().items()
            if key.startswith(prefix)
        }

    def _check_extra_params(self):
        unknown = [k for k in self._extra_params() if not k.startswith(ROUTED_PREFIXES)]
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected parameters {sorted(unknown)}; "
                f"extra parameters must start with one of {ROUTED_PREFIXES}."
            )

    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        params.update(self._extra_params())
        return params

    def set_params(self, **params):
        for key in [k for k in params if k.startswith(ROUTED_PREFIXES)]:
            setattr(self, key, params.pop(key))
        return super().set_params(**params)

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _make_default_module(self, n_features_in, n_outputs):
        """Build the network used when ``module`` is None."""

    def _check_module(self, module):
        """Raise if a user module cannot be used by this method."""

    @abstractmethod
    def _wrap_module(self, body):
        """Wrap the body (e.g. in a Gaussian head); return the trained module."""

    @abstractmethod
    def _criterion(self):
        """Return the criterion class."""

    # ---------------------------------------------------------------- fitting
    #: Parameters that configure only the default network (``module=None``).
    _default_network_params = ("hidden_layer_sizes", "activation")

    def _check_settings_apply(self):
        """Raise for settings that cannot apply: ``module__*`` arguments without a
        user module, or default-network settings changed while a user module is given
        (a search over them would compare identical fits)."""
        if self.module is None:
            routed = sorted(k for k in self._extra_params() if k.startswith("module__"))
            if routed:
                raise ValueError(
                    f"{routed} are arguments for a user module, but module=None builds "
                    f"the default network, which takes {list(self._default_network_params)}."
                )
            return
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [
            name
            for name in self._default_network_params
            if not _same_setting(getattr(self, name), defaults[name].default)
        ]
        if changed:
            raise ValueError(
                f"{', '.join(f'{n}={getattr(self, n)!r}' for n in changed)} configure the "
                f"default network only and would be ignored with module="
                f"{getattr(self.module, '__name__', type(self.module).__name__)}; pass such "
                "settings to your module as module__<name> arguments, or leave them at "
                "their defaults."
            )

    def _build_body(self, n_features_in, n_outputs):
        self._check_settings_apply()
        if self.module is None:
            # float32 whatever torch's default dtype (the inputs are cast to float32).
            return self._make_default_module(n_features_in, n_outputs).float()
        kwargs = self._routed("module__")
        if isinstance(self.module, nn.Module):
            if kwargs:
                raise ValueError(
                    "module__* arguments need `module` to be a class, not an instance."
                )
            body = copy.deepcopy(self.module)
        else:
            signature = inspect.signature(self.module)
            for name, value in (("n_features_in", n_features_in), ("n_outputs", n_outputs)):
                if name in signature.parameters and name not in kwargs:
                    kwargs[name] = value
            body = self.module(**kwargs)
        self._check_module(body)
        return body.float()

    def _validate_hidden_layer_sizes(self):
        return validate_hidden_layer_sizes(self.hidden_layer_sizes)

    #: Name of the training loss in the progress bar.
    _loss_name = "loss"

    def _callbacks(self):
        extra = []
        if self.early_stopping:
            stopping = EarlyStopping(patience=self.n_iter_no_change, load_best=True, sink=_silent)
            extra.append(("early_stopping", stopping))
        return self._net_callbacks(self.max_epochs_, *extra)

    #: Mini-batch training densifies sparse input one batch at a time.
    _accepts_sparse = True

    #: Whether the method supports continued training (``warm_start``, ``partial_fit``).
    _incremental = False

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        if getattr(self, "warm_start", False) and self.__sklearn_is_fitted__():
            fit = self._continue_fit
        else:
            fit = self._fit
        return self._fit_restoring_state(X, y, fit=fit, sample_weight=sample_weight)

    fit.__doc__ = FIT_DOC

    @available_if(lambda self: self._incremental)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train for one epoch on the rows given, continuing from the fitted network.

        The first call builds the network and fixes what every later call keeps:
        the classes (``classes`` must list them all, as for scikit-learn's
        ``MLPClassifier.partial_fit``), the target standardisation of a regressor
        (from the first call's ``y``), the input width and the mini-batch size
        (from ``batch_size`` and the first call's rows).  Each call runs one epoch
        of mini-batches over its rows, with the optimizer state and the random
        stream carried over, so calls over the chunks of a data set train as
        epochs over it.  Nothing is held out: no early stopping and no
        recalibration (``temperature_`` or ``calibration_scale_`` stay at 1); for
        those, ``fit`` on the whole data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_rows, n_features)
            Training inputs (as for ``fit``).
        y : array-like of shape (n_rows,) or (n_rows, n_outputs)
            Targets (as for ``fit``); a classifier's labels must be in ``classes_``.
        classes : array-like of shape (n_classes,), default=None
            Every class label, required on the first call of a classifier (they
            need not all appear in its ``y``); later calls may omit it or must
            repeat it.  Not used by regressors.
        sample_weight : array-like of shape (n_rows,), default=None
            Row weights, as for ``fit``.

        Returns
        -------
        self : object
            The estimator, trained one more epoch.  If the call fails the
            estimator is left as it was.
        """
        if getattr(self, "class_weight", None) == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit: the class "
                "frequencies of the whole data are unknown. Compute the weights on the "
                "whole data (sklearn.utils.class_weight.compute_class_weight) and pass "
                "them as a dict."
            )
        return self._fit_restoring_state(
            X, y, fit=self._partial_fit, classes=classes, sample_weight=sample_weight
        )

    def _partial_fit(self, X, y, classes=None, sample_weight=None):
        first_call = not self.__sklearn_is_fitted__()
        if is_classifier(self):
            if first_call:
                vars(self).pop("classes_", None)  # a fresh start takes `classes`
            # Sets classes_ on the first call, raises if `classes` is missing then, or
            # if a later call's `classes` differ.
            _check_partial_fit_first_call(self, classes)
        elif classes is not None:
            raise ValueError(
                f"classes is for classifiers; {type(self).__name__} is a regressor "
                "(leave classes=None)."
            )
        if not first_call:
            return self._continue_fit(X, y, sample_weight=sample_weight, epochs=1)
        data = self._start_fit(X, y, sample_weight, classes=getattr(self, "classes_", None))
        X, y, X_tensor, y_tensor, n_outputs, seed, device, weight = data
        net = self._train(
            X_tensor, y_tensor, n_outputs, seed, device, sample_weight=weight, epochs=1
        )
        self._reset_calibration()
        return self._finish_fit(net)

    def _continue_fit(self, X, y, sample_weight=None, epochs=None):
        """Continue training the fitted net on ``X``, ``y`` for ``epochs`` (None:
        ``max_epochs``, resolved for these rows) more epochs; see ``warm_start``."""
        self._check_extra_params()
        data = self._validate_training_data(X, y, sample_weight, reset=False)
        _, y, X_tensor, y_tensor, _, _, device, weight = data
        if device != torch.device(self.net_.device):
            raise ValueError(
                f"Continued training must run on the device of the first fit "
                f"({self.net_.device}); got device={self.device!r}."
            )
        self._resolve_budget(len(y), epochs)
        # A copy: if training fails, the fitted net is left as it was.
        net = copy.deepcopy(self.net_)
        net.batch_size = self.batch_size_
        if self.lr != net.lr:  # a changed learning rate applies to every param group
            for group in net.optimizer_.param_groups:
                group["lr"] *= self.lr / net.lr
            net.lr = self.lr
        if net.train_split is not None:
            net.set_params(train_split=None)  # nothing held out
        # Nothing is held out, so no early stopping (as MLPClassifier.partial_fit).
        net.callbacks_ = [(name, cb) for name, cb in net.callbacks_ if name != "early_stopping"]
        net.callbacks = [
            cb for cb in net.callbacks if not (isinstance(cb, tuple) and cb[0] == "early_stopping")
        ]
        with self._training_run(device, weight, state=getattr(self, "_training_rng_state", None)):
            self._fit_net(net, X_tensor, y_tensor, epochs=self.max_epochs_)
        net.module_.eval()
        self._continue_prediction_module(net)
        return self._finish_fit(net)

    def _continue_prediction_module(self, net):
        """Hook: update what prediction uses after continued training of ``net``."""

    def _start_fit(self, X, y, sample_weight=None, classes=None):
        """Validate parameters and data, set the target and seed attributes; return
        ``(X, y, X_tensor, y_tensor, n_outputs, train_seed, device, sample_weight)``
        (see :meth:`~skbdl._base.BasePredictor._validate_training_data`)."""
        self._check_extra_params()
        data = self._validate_training_data(X, y, sample_weight, classes=classes)
        self._validate_hidden_layer_sizes()
        return data

    def _fit(self, X, y, sample_weight=None):
        data = self._start_fit(X, y, sample_weight)
        X, y, X_tensor, y_tensor, n_outputs, train_seed, device, weight = data
        early_stopping = getattr(self, "early_stopping", False)
        calibrate = self._calibrates(len(y))
        if early_stopping or calibrate:
            fit_rows, valid_rows = self._holdout_rows(y, train_seed)
            valid_data = None
            if early_stopping:
                valid_data = (X_tensor[valid_rows], y_tensor[valid_rows])
                if weight is not None:
                    valid_data += (weight[valid_rows],)
            net = self._train(
                X_tensor[fit_rows],
                y_tensor[fit_rows],
                n_outputs,
                train_seed,
                device,
                valid_data,
                sample_weight=None if weight is None else weight[fit_rows],
            )
        else:
            net = self._train(
                X_tensor, y_tensor, n_outputs, train_seed, device, sample_weight=weight
            )
        self._reset_calibration()
        if calibrate:
            self.net_ = net
            valid_weight = held_out_weight(
                weight,
                valid_rows,
                "the recalibration is undefined",
                "Set calibrate=False, or change random_state or validation_fraction.",
            )
            self._fit_calibration(X[valid_rows], y[valid_rows], sample_weight=valid_weight)
            if len(y) < RETRAIN_MAX_ROWS and not early_stopping:
                # The factor is fitted on rows the network did not see; the network
                # used for prediction is then retrained, with the same seeds, on all.
                net = self._train(
                    X_tensor, y_tensor, n_outputs, train_seed, device, sample_weight=weight
                )
        return self._finish_fit(net)

    def _calibrates(self, n_rows):
        """Whether this fit recalibrates: ``calibrate=True``, or ``'auto'`` with at least
        ``AUTO_CALIBRATION_MIN_ROWS`` held-out rows."""
        calibrate = getattr(self, "calibrate", False)
        if calibrate == "auto":
            return math.ceil(n_rows * self.validation_fraction) >= AUTO_CALIBRATION_MIN_ROWS
        return bool(calibrate)

    def _train(
        self, X, y, n_outputs, seed, device, valid_data=None, sample_weight=None, epochs=None
    ):
        """Train on tensors ``X``, ``y`` (``valid_data``: ``(X, y)`` or ``(X, y,
        sample_weight)`` for early stopping, or None) with row weights
        ``sample_weight`` (an array, or None) for ``epochs`` (None: ``max_epochs``);
        set ``batch_size_`` and ``max_epochs_``; return the fitted net."""
        self._resolve_budget(len(X), epochs)
        with self._training_run(device, sample_weight, valid_data, seed=seed):
            net = self._train_network(X, y, n_outputs, seed, device)
        net.module_.eval()
        return net

    def _resolve_budget(self, n_train, epochs=None):
        """Set ``batch_size_`` and ``max_epochs_`` for a run on ``n_train`` rows of
        ``epochs`` (None: ``max_epochs``) epochs."""
        self.batch_size_, self.max_epochs_ = resolve_training_budget(
            self.batch_size, self.max_epochs if epochs is None else epochs, n_train
        )

    @contextlib.contextmanager
    def _training_run(self, device, sample_weight, valid_data=None, seed=None, state=None):
        """The setting of one training run (a fit, or continued training): the row
        weights and held-out data that :meth:`_make_net` and :meth:`_fit_net` read
        (also in a joblib task's copy of the estimator), the random streams of
        :meth:`_training_randomness` (``seed`` or ``state``) and the thread count."""
        self._valid_data = valid_data
        self._sample_weight = sample_weight
        try:
            with (
                self._training_randomness(device, seed=seed, state=state),
                _torch_threads(self._training_threads(device)),
            ):
                yield
        finally:
            del self._valid_data, self._sample_weight

    @contextlib.contextmanager
    def _training_randomness(self, device, seed=None, state=None):
        """The random streams of a training run, seeded by ``seed`` or continuing
        ``state`` (an earlier run's ``_training_rng_state``: ``warm_start``,
        ``partial_fit``); the final streams are kept in ``_training_rng_state``.

        skbdl's own networks (``module=None``) draw from generators held for this
        thread (:mod:`skbdl.nn._random`): torch's global generator is neither seeded
        nor consumed, so no other thread's or the caller's stream changes.  A user's
        module may draw from torch's global generator in ways skbdl cannot redirect
        (``nn.Dropout``, ``torch.randn`` in ``forward``, its initialisation), so it
        trains under that generator, seeded, restored afterwards, and under a lock
        that keeps concurrent fits from interleaving their draws; a thread drawing
        from torch's global generator meanwhile sees the seeded stream.
        """
        kind = "generators" if self.module is None else "global"
        if state is not None and state[0] != kind:
            state, seed = None, 0  # the network kind changed: a fresh stream
        if kind == "generators":
            states = None if state is None else state[1]
            with training_generators(0 if seed is None else seed, device, states):
                yield
                self._training_rng_state = (kind, generator_states())
            return
        fork_devices = [device] if device.type == "cuda" else []
        with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=fork_devices):
            if state is None:
                torch.manual_seed(seed)
            else:
                _set_rng_state(state[1], device)
            yield
            self._training_rng_state = (kind, _rng_state(device))

    def _training_threads(self, device):
        """torch's intra-op thread count while training (None: leave it): one thread on
        the CPU for mini-batches up to 512 rows, where a second thread costs more in
        synchronisation than it saves."""
        return 1 if device.type == "cpu" and self.batch_size_ <= 512 else None

    def _train_network(self, X, y, n_outputs, seed, device):
        """Build the module and train it; return the fitted skorch net.

        Runs inside :meth:`_training_randomness` (the fit's own generators for a
        default network, torch's seeded global generator for a user's module).
        Methods that train differently (e.g. several members) override this.
        """
        width = self._body_width(n_outputs)
        body = self._build_body(X.shape[1], width)
        self._check_output_shape(body, X[:2], width)
        net_class, net_kwargs = self._net_options(y)
        net = self._make_net(self._wrap_module(body), seed, device, net_class, **net_kwargs)
        return self._fit_net(net, X, y)

    def _net_options(self, y):
        """The skorch net class and its extra keyword arguments for training on ``y``."""
        return SkbdlNet, {}

    def _make_net(self, module, seed, device, net_class=SkbdlNet, **kwargs):
        """The skorch net that trains ``module`` with this estimator's settings."""
        optimizer = self.optimizer
        if isinstance(optimizer, str):
            optimizer = _OPTIMIZERS[optimizer]
        optimizer_kwargs = {"weight_decay": self.weight_decay, **self._routed("optimizer__")}
        if "param_groups" not in optimizer_kwargs and _has_noise_parameter(module):
            optimizer_kwargs["param_groups"] = [
                ("*log_noise_var", {"lr": self.lr * NOISE_LR_FACTOR, "weight_decay": 0.0})
            ]
        if optimizer in (torch.optim.Adam, torch.optim.AdamW) and not (
            {"fused", "foreach"} & set(optimizer_kwargs)
        ):
            # One fused kernel per step: the fastest Adam for small networks.
            optimizer_kwargs["fused"] = True
        train_split = None
        if getattr(self, "_valid_data", None) is not None:
            train_split = predefined_split(RowData(*self._valid_data))
        return net_class(
            module,
            criterion=self._criterion(),
            optimizer=optimizer,
            lr=self.lr,
            max_epochs=self.max_epochs_,
            batch_size=self.batch_size_,
            train_split=train_split,
            callbacks=self._callbacks(),
            device=device,
            **{f"optimizer__{k}": v for k, v in optimizer_kwargs.items()},
            **self._table_options(),
            **kwargs,
        )

    def _fit_net(self, net, X, y, epochs=None):
        """Fit ``net`` on the rows ``X``, ``y`` and this fit's sample weights; with
        ``epochs``, continue training it (``partial_fit``) for that many epochs."""
        data = RowData(X, y, getattr(self, "_sample_weight", None))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*initialized.*", module="skorch")
            if epochs is None:
                return net.fit(data, None)
            return net.partial_fit(data, None, epochs=epochs)

    def _check_output_shape(self, body, X_probe, width):
        X_probe = as_dense(X_probe)
        body.eval()
        with torch.no_grad():
            out = body(X_probe)
        body.train()
        shape = tuple(getattr(out, "shape", ()))
        if len(shape) != 2 or shape[1] != width:
            raise ValueError(
                f"The module's output for {len(X_probe)} input rows has shape {shape}; "
                f"{type(self).__name__} needs a tensor of shape (n_rows, {width})."
            )

    def _body_width(self, n_outputs):
        """Width of the network's last layer for ``n_outputs`` classes or targets."""
        return n_outputs
