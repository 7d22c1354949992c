"""Hyper-deep ensembles (Wenzel, Snoek, Tran & Jenatton 2020).

A population of networks that differ in their hyperparameters (L2 penalty and
learning rate) as well as in their seeds is trained as one stacked model; members
are then chosen greedily (Caruana et al. 2004) by the held-out log-likelihood of
the ensemble they join, and, by default, the chosen configurations are retrained
on all the rows.  Stacking makes a population of twenty small networks cost little
more than one.
"""

import copy
import numbers

import numpy as np
import torch
from scipy.special import logsumexp
from sklearn.utils._param_validation import Interval
from skorch.callbacks import Callback

from ._base import (
    NOISE_SCALE_DOC,
    BayesianClassifierMixin,
    BayesianRegressorMixin,
    regression_option_constraints,
)
from ._training import CLASS_WEIGHT_DOC, held_out_weight
from .ensemble import _AutogradEnsembleGaussianNLLLoss, _BaseDeepEnsemble, _member_seeds
from .nn import EnsembleCrossEntropyLoss, EnsembleGaussianNLLLoss, StackedGaussianRegressionModule
from .uncertainty import HALF_LOG_2PI, gaussian_nll_terms


class _MemberHyperparameters(Callback):
    """Per-member L2 penalty and learning-rate factor for members trained stacked.

    Every parameter of the trained module carries the members on its first axis.
    Before the optimiser step, member ``m``'s gradient gains ``l2[m] * w`` (the
    gradient of ``l2[m] / 2 * ||w||^2``, so Adam sees the penalty as with its own
    ``weight_decay``); after the step, member ``m``'s update is multiplied by
    ``lr_factor[m]``.  The learned noise variance is left unpenalised.
    """

    def __init__(self, l2, lr_factor):
        self.l2, self.lr_factor = l2, lr_factor

    def on_train_begin(self, net, **kwargs):
        named = list(net.module_.named_parameters())
        device = next(iter(net.module_.parameters())).device
        shapes = [(1,) * (p.ndim - 1) for _, p in named]
        self.params_ = [p for _, p in named]
        self.l2_ = [
            torch.zeros(())
            if name.endswith("log_noise_var")
            else torch.as_tensor(self.l2, dtype=p.dtype).reshape(-1, *shape)
            for (name, p), shape in zip(named, shapes)
        ]
        self.l2_ = [t.to(device) for t in self.l2_]
        self.lr_factor_ = [
            torch.as_tensor(self.lr_factor, dtype=p.dtype, device=device).reshape(-1, *shape)
            for p, shape in zip(self.params_, shapes)
        ]
        self.before_ = [torch.empty_like(p) for p in self.params_]

    def on_batch_begin(self, net, training=False, **kwargs):
        if training:
            with torch.no_grad():
                for before, param in zip(self.before_, self.params_):
                    before.copy_(param)

    def on_grad_computed(self, net, named_parameters, **kwargs):
        with torch.no_grad():
            for p, l2 in zip(self.params_, self.l2_):
                if p.grad is not None and l2.ndim:
                    p.grad.addcmul_(p, l2)

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            with torch.no_grad():
                for p, before, factor in zip(self.params_, self.before_, self.lr_factor_):
                    p.sub_(before).mul_(factor).add_(before)

    def on_train_end(self, net, **kwargs):
        for name in ("params_", "l2_", "lr_factor_", "before_"):
            vars(self).pop(name, None)


def _select_members(module, indices):
    """A copy of a stacked ensemble module keeping the members ``indices``, in order."""
    selected = copy.deepcopy(module)
    n_members = next(iter(module.parameters())).shape[0]
    index = torch.as_tensor(indices, device=next(iter(module.parameters())).device)
    with torch.no_grad():
        for tensor in [*selected.parameters(), *selected.buffers()]:
            if tensor.ndim and tensor.shape[0] == n_members:
                tensor.data = tensor.data.index_select(0, index).clone()
    for sub in selected.modules():
        if hasattr(sub, "n_members"):
            sub.n_members = len(indices)
    return selected


def greedy_ensemble_selection(member_log_likelihoods, n_select, sample_weight=None):
    """Caruana-style forward selection of ensemble members by held-out likelihood.

    Parameters
    ----------
    member_log_likelihoods : ndarray of shape (n_members, n_rows)
        ``log p_m(y_i | x_i)``: each member's predictive log-density of each
        held-out target.
    n_select : int
        Number of members to choose (without replacement).
    sample_weight : ndarray of shape (n_rows,), default=None
        Weights of the held-out rows in the mean log-likelihood.

    Returns
    -------
    selected : list of int
        Member indices in the order chosen: each maximises the mean held-out
        log-likelihood of the equal-weight mixture of the members chosen so far.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl.hyper_ensemble import greedy_ensemble_selection
    >>> ll = np.log([[0.9, 0.1], [0.1, 0.9], [0.5, 0.5]])
    >>> greedy_ensemble_selection(ll, 2)   # the middle one first, then a complement
    [2, 0]
    """
    member_log_likelihoods = np.asarray(member_log_likelihoods, dtype=np.float64)
    n_members = len(member_log_likelihoods)
    if not 1 <= n_select <= n_members:
        raise ValueError(f"n_select must be in [1, {n_members}]; got {n_select}.")
    selected, pooled = [], None
    for size in range(1, n_select + 1):
        best, best_score = None, -np.inf
        for m in range(n_members):
            if m in selected:
                continue
            candidate = member_log_likelihoods[m]
            if pooled is not None:
                candidate = np.logaddexp(pooled, candidate)
            score = float(np.average(candidate - np.log(size), weights=sample_weight))
            if score > best_score:
                best, best_score = m, score
        selected.append(best)
        member = member_log_likelihoods[best]
        pooled = member if pooled is None else np.logaddexp(pooled, member)
    return selected


class _BaseHyperDeepEnsemble(_BaseDeepEnsemble):
    _parameter_constraints = {
        **{
            k: v
            for k, v in _BaseDeepEnsemble._parameter_constraints.items()
            if k not in ("bootstrap", "adversarial_epsilon", "strategy", "n_jobs", "early_stopping")
        },
        "population_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "weight_decay_range": [tuple],
        "lr_factor_range": [tuple],
        "refit": ["boolean"],
    }

    # Fixed for the parent's code paths: members are always trained stacked.  No
    # continued training: the fit is a selection from a population that it does not
    # keep (and the selected members' optimizer state is the population's).
    _incremental = False
    warm_start = False
    bootstrap = False
    adversarial_epsilon = None
    strategy = "vectorized"
    n_jobs = None
    early_stopping = False

    def _population(self, seed):
        """Per member: ``(init_seed, data_seed)``, L2 penalty and learning-rate factor."""
        for name, bounds in (
            ("weight_decay_range", self.weight_decay_range),
            ("lr_factor_range", self.lr_factor_range),
        ):
            if len(bounds) != 2 or not 0 < bounds[0] <= bounds[1]:
                raise ValueError(
                    f"{name} must be (low, high) with 0 < low <= high; got {bounds!r}."
                )
        if self.population_size < self.n_estimators:
            raise ValueError(
                f"population_size={self.population_size} must be at least "
                f"n_estimators={self.n_estimators}."
            )
        rng = np.random.RandomState(seed)
        seeds = _member_seeds(seed, self.population_size)
        log_uniform = lambda low, high: np.exp(  # noqa: E731
            rng.uniform(np.log(low), np.log(high), self.population_size)
        )
        return seeds, log_uniform(*self.weight_decay_range), log_uniform(*self.lr_factor_range)

    def _train_network(self, X, y, n_outputs, seed, device):
        # The members being trained: ``self._members`` = (seeds, l2, lr_factor).
        seeds, l2, lr_factor = self._members
        width = self._body_width(n_outputs)
        kind = self._container_kind(X, width)
        if kind == "loop":
            raise ValueError(
                "A hyper-deep ensemble trains its population stacked: the module must be "
                "usable under torch.func.vmap (see DeepEnsembleRegressor's strategy)."
            )
        module = self._build_ensemble(seeds, X, width, kind)
        net = self._make_ensemble_net(module, seeds, seed, device, None)
        net.callbacks = [
            *net.callbacks,
            ("member_hyperparameters", _MemberHyperparameters(l2, lr_factor)),
        ]
        return self._fit_net(net, X, y)

    def _fit(self, X, y, sample_weight=None):
        data = self._start_fit(X, y, sample_weight)
        X, y, X_tensor, y_tensor, n_outputs, seed, device, weight = data
        fit_rows, valid_rows = self._holdout_rows(y, seed)
        valid_weight = held_out_weight(
            weight,
            valid_rows,
            "the members cannot be selected by held-out likelihood",
            "Change random_state or validation_fraction.",
        )
        seeds, l2, lr_factor = self._population(seed)
        self._members = (seeds, l2, lr_factor)
        try:
            population = self._train(
                X_tensor[fit_rows],
                y_tensor[fit_rows],
                n_outputs,
                seed,
                device,
                sample_weight=None if weight is None else weight[fit_rows],
            )
            self.net_ = population
            log_lik = self._member_log_likelihoods(X[valid_rows], y[valid_rows])
            selected = greedy_ensemble_selection(log_lik, self.n_estimators, valid_weight)
            population.module_ = _select_members(population.module_, selected)
            self._reset_calibration()
            if self._calibrates(len(y)):
                self._fit_calibration(X[valid_rows], y[valid_rows], sample_weight=valid_weight)
            net = population
            if self.refit:
                self._members = ([seeds[m] for m in selected], l2[selected], lr_factor[selected])
                net = self._train(X_tensor, y_tensor, n_outputs, seed, device, sample_weight=weight)
        finally:
            del self._members
        self.population_weight_decay_ = l2
        self.population_lr_factor_ = lr_factor
        self.selected_members_ = np.asarray(selected)
        self.population_log_likelihood_ = np.average(log_lik, axis=1, weights=valid_weight)
        self.strategy_ = "vectorized"
        return self._finish_fit(net)


_COMMON_DOC = """
    Parameters
    ----------
    module : torch.nn.Module class or instance, default=None
        The member network, as for :class:`DeepEnsembleRegressor`; it must be usable
        under ``torch.func.vmap`` (every member of the population is trained in one
        stacked model).  ``None``: an :class:`skbdl.nn.MLP` of
        ``hidden_layer_sizes`` and ``activation``.
    hidden_layer_sizes : tuple of int, default=(100,)
        Hidden layer widths of the default MLP.
    activation : {'relu', 'tanh', 'logistic', 'identity', 'gelu', 'elu', 'silu'}, default='relu'
        Activation of the default MLP.
    n_estimators : int, default=5
        Number of members chosen from the population: the draws of every
        prediction method.
    population_size : int, default=20
        Number of candidate networks, each with its own seeds, L2 penalty and
        learning-rate factor.
    weight_decay_range : tuple of (float, float), default=(1e-6, 1e-1)
        Bounds of the log-uniform distribution of the members' L2 penalties
        (coefficient ``lambda`` of ``lambda / 2 * ||w||^2`` added to the mean
        training loss, on standardised targets for regressors).
    lr_factor_range : tuple of (float, float), default=(0.3, 3.0)
        Bounds of the log-uniform distribution of the members' learning-rate
        factors (a member's learning rate is ``lr`` times its factor).
    refit : bool, default=True
        Retrain the chosen configurations (same seeds and hyperparameters) on all
        the rows after the selection; False keeps the selected members as trained
        on the rows not held out.
    max_epochs : int or 'auto', default='auto'
        Number of passes over the training data, as for
        :class:`DeepEnsembleRegressor`.
    batch_size : int or 'auto', default='auto'
        Mini-batch size of each member, as for :class:`DeepEnsembleRegressor`.
    lr : float, default=3e-3
        Base learning rate (Adam's; chosen on the UCI sets, docs/defaults.md).
    weight_decay : float, default=0.0
        L2 penalty passed to the optimizer, on top of each member's own.
    optimizer : {'adam', 'adamw', 'sgd'} or torch.optim.Optimizer class, default='adam'
        Optimizer; ``optimizer__*`` keyword arguments are passed to it.
    calibrate : bool or 'auto', default='auto'
        Also recalibrate the chosen ensemble on the held-out rows (as trained
        before the refit): a temperature for classifiers, a factor on the
        predictive standard deviation for regressors.  ``'auto'``: only when the
        held-out rows number at least 20.
    validation_fraction : float, default=0.1
        Fraction of the training rows held out to choose the members (stratified by
        class for classifiers where possible).
    n_iter_no_change : int, default=10
        Unused (kept for the shared parameter set); hyper-deep ensembles do not
        stop early.
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks; copied at fit time.
    predict_batch_size : int, default=None
        Rows times members evaluated in one forward pass at prediction time;
        ``None`` chooses for the device: 16384 on the CPU, on CUDA a quarter of the
        GPU's memory at 32 bytes per row, member and unit of the widest layer.
    device : str or torch.device, default='cpu'
        Where to train and predict.
    random_state : int, RandomState instance or None, default=None
        Seeds the population (hyperparameters, initialisation, data order), the
        held-out rows and prediction.
    verbose : int or 'auto', default='auto'
        ``'auto'``: a progress bar over epochs once the fit is expected to take
        longer than 5 seconds (estimated as it runs), else silent; 0: silent; 1: a
        progress bar; 2: skorch's table per epoch.
"""

_ATTRIBUTES_DOC = """
    net_ : skbdl._net.SkbdlNet
        The trained skorch net over the chosen members.
    module_ : torch.nn.Module
        The chosen members in one stacked container.
    members_ : list of torch.nn.Module
        The chosen members as separate networks.
    n_estimators_ : int
        Number of chosen members.
    selected_members_ : ndarray of shape (n_estimators,)
        Indices into the population of the chosen members, in the order chosen.
    population_weight_decay_ : ndarray of shape (population_size,)
        Each candidate's L2 penalty.
    population_lr_factor_ : ndarray of shape (population_size,)
        Each candidate's learning-rate factor.
    population_log_likelihood_ : ndarray of shape (population_size,)
        Each candidate's mean held-out log-likelihood, alone.
    batch_size_ : int
        The mini-batch size used.
    max_epochs_ : int
        The number of epochs used (of the final training).
    history_ : skorch.History
        Per-epoch record of the final training.
    loss_curve_ : list of float
        Training loss per epoch of the final training, summed over members.
    n_iter_ : int
        Number of epochs of the final training.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.
"""

_REFERENCES = """
    References
    ----------
    F. Wenzel, J. Snoek, D. Tran and R. Jenatton, "Hyperparameter Ensembles for
    Robustness and Uncertainty Quantification", NeurIPS 2020.
    R. Caruana, A. Niculescu-Mizil, G. Crew and A. Ksikes, "Ensemble Selection from
    Libraries of Models", ICML 2004.
"""


def _init(
    self,
    module,
    *,
    hidden_layer_sizes,
    activation,
    n_estimators,
    population_size,
    weight_decay_range,
    lr_factor_range,
    refit,
    max_epochs,
    batch_size,
    lr,
    weight_decay,
    optimizer,
    calibrate,
    validation_fraction,
    n_iter_no_change,
    callbacks,
    predict_batch_size,
    device,
    random_state,
    verbose,
    kwargs,
    **classifier_params,
):
    self.module = module
    self.hidden_layer_sizes = hidden_layer_sizes
    self.activation = activation
    self.n_estimators = n_estimators
    self.population_size = population_size
    self.weight_decay_range = weight_decay_range
    self.lr_factor_range = lr_factor_range
    self.refit = refit
    self.max_epochs = max_epochs
    self.batch_size = batch_size
    self.lr = lr
    self.weight_decay = weight_decay
    self.optimizer = optimizer
    self.calibrate = calibrate
    self.validation_fraction = validation_fraction
    self.n_iter_no_change = n_iter_no_change
    self.callbacks = callbacks
    self.predict_batch_size = predict_batch_size
    self.device = device
    self.random_state = random_state
    self.verbose = verbose
    for name, value in classifier_params.items():  # class_weight
        setattr(self, name, value)
    self._store_routed(kwargs)


class HyperDeepEnsembleClassifier(BayesianClassifierMixin, _BaseHyperDeepEnsemble):
    __doc__ = (
        """Hyper-deep ensemble classifier: members chosen from a population of
    hyperparameters and seeds by held-out log-likelihood.

    Trains ``population_size`` networks stacked, each with its own L2 penalty,
    learning-rate factor and seeds, on all but ``validation_fraction`` of the rows;
    greedily picks ``n_estimators`` of them whose averaged probabilities score the
    best held-out log-likelihood; by default retrains the picked configurations on
    every row.  Predicts like :class:`DeepEnsembleClassifier`.
"""
        + _COMMON_DOC
        + CLASS_WEIGHT_DOC
        + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    temperature_ : float
        The temperature dividing the logits (1 unless ``calibrate``)."""
        + _ATTRIBUTES_DOC
        + """
    See Also
    --------
    HyperDeepEnsembleRegressor : The regression counterpart.
    DeepEnsembleClassifier : Members that differ only by their seeds.
"""
        + _REFERENCES
        + """
    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skbdl import HyperDeepEnsembleClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = HyperDeepEnsembleClassifier(n_estimators=3, population_size=6,
    ...                                   hidden_layer_sizes=(16,), lr=0.01,
    ...                                   max_epochs=20, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    >>> len(clf.selected_members_)
    3
    """
    )

    def __init__(
        self,
        module=None,
        *,
        hidden_layer_sizes=(100,),
        activation="relu",
        n_estimators=5,
        population_size=20,
        weight_decay_range=(1e-6, 1e-1),
        lr_factor_range=(0.3, 3.0),
        refit=True,
        max_epochs="auto",
        batch_size="auto",
        lr=3e-3,
        weight_decay=0.0,
        optimizer="adam",
        calibrate="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        predict_batch_size=None,
        device="cpu",
        random_state=None,
        class_weight=None,
        verbose="auto",
        **kwargs,
    ):
        _init(**{k: v for k, v in locals().items() if k != "__class__"})

    def _criterion(self):
        return EnsembleCrossEntropyLoss

    def _member_log_likelihoods(self, X, y):
        (logits,) = self._predict_rows(X, rows_axis=1, validated=True)
        labels = np.searchsorted(self.classes_, y)
        log_proba = logits - logsumexp(logits, axis=-1, keepdims=True)
        return log_proba[:, np.arange(len(labels)), labels]


class HyperDeepEnsembleRegressor(BayesianRegressorMixin, _BaseHyperDeepEnsemble):
    __doc__ = (
        """Hyper-deep ensemble regressor: Gaussian members chosen from a population
    of hyperparameters and seeds by held-out log-likelihood.

    Trains ``population_size`` Gaussian networks stacked, each with its own L2
    penalty, learning-rate factor and seeds, on all but ``validation_fraction`` of
    the rows; greedily picks ``n_estimators`` of them whose equal-weight mixture
    scores the best held-out log-likelihood; by default retrains the picked
    configurations on every row.  Predicts like :class:`DeepEnsembleRegressor`.
"""
        + _COMMON_DOC
        + """\
    likelihood : {'homoscedastic', 'heteroscedastic', 'fixed'}, default='heteroscedastic'
        Heteroscedastic: each member predicts a mean and a variance; homoscedastic:
        each member learns one noise variance per target; fixed: every member's
        noise variance is ``noise_scale**2`` (members are then selected by their
        means' held-out likelihood under that noise).
"""
        + NOISE_SCALE_DOC
        + """
    Attributes
    ----------
    n_outputs_ : int
        Number of targets.
    y_mean_ : ndarray of shape (n_outputs_,)
        Target means used for standardisation.
    y_scale_ : ndarray of shape (n_outputs_,)
        Target standard deviations used for standardisation.
    calibration_scale_ : ndarray of shape (n_outputs_,)
        Factor on the predictive standard deviation (ones unless ``calibrate``)."""
        + _ATTRIBUTES_DOC
        + """
    See Also
    --------
    HyperDeepEnsembleClassifier : The classification counterpart.
    DeepEnsembleRegressor : Members that differ only by their seeds.
"""
        + _REFERENCES
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from skbdl import HyperDeepEnsembleRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(200, 1))
    >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.randn(200)
    >>> reg = HyperDeepEnsembleRegressor(n_estimators=3, population_size=6,
    ...                                  hidden_layer_sizes=(16,), max_epochs=30,
    ...                                  random_state=0).fit(X, y)
    >>> mean, std = reg.predict(X[:3], return_std=True)
    >>> mean.shape, len(reg.selected_members_)
    ((3,), 3)
    """
    )

    _parameter_constraints = {
        **_BaseHyperDeepEnsemble._parameter_constraints,
        "likelihood": regression_option_constraints()["likelihood"],
        "noise_scale": regression_option_constraints()["noise_scale"],
    }

    def __init__(
        self,
        module=None,
        *,
        hidden_layer_sizes=(100,),
        activation="relu",
        n_estimators=5,
        population_size=20,
        weight_decay_range=(1e-6, 1e-1),
        lr_factor_range=(0.3, 3.0),
        likelihood="heteroscedastic",
        noise_scale=1.0,
        refit=True,
        max_epochs="auto",
        batch_size="auto",
        lr=3e-3,
        weight_decay=0.0,
        optimizer="adam",
        calibrate="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        predict_batch_size=None,
        device="cpu",
        random_state=None,
        verbose="auto",
        **kwargs,
    ):
        self.likelihood = likelihood
        self.noise_scale = noise_scale
        _init(
            **{
                k: v
                for k, v in locals().items()
                if k not in ("__class__", "likelihood", "noise_scale")
            }
        )

    def _wrap_module(self, body):
        return StackedGaussianRegressionModule(
            body, self.n_outputs_, self.likelihood, **self._head_options()
        )

    def _criterion(self):
        return self._regression_criterion(
            EnsembleGaussianNLLLoss, _AutogradEnsembleGaussianNLLLoss, stacked=True
        )

    def _member_log_likelihoods(self, X, y):
        mean, var = self._predict_rows(X, rows_axis=1, validated=True)
        mean, var = self._mean_to_original(mean), self._variance_to_original(var)
        y = y.reshape(mean.shape[1:])
        log_density = -(gaussian_nll_terms(y, mean, var) + HALF_LOG_2PI)
        return log_density.reshape(len(mean), len(y), -1).sum(axis=-1)
