"""SWAG and MultiSWAG (Maddox et al. 2019; Wilson & Izmailov 2020)."""

import math
import numbers

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from skorch.callbacks import Callback
from torch import nn

from ._base import BayesianClassifierMixin, BayesianRegressorMixin, _seed_from
from ._posterior import AllWeights, SWAGMoments, unflatten
from ._training import (
    CALIBRATION_DOC,
    CLASS_WEIGHT_DOC,
    CLASSIFIER_CALIBRATION_ATTRIBUTES_DOC,
    REGRESSOR_CALIBRATION_ATTRIBUTES_DOC,
    TRAINING_ATTRIBUTES_DOC,
    TRAINING_BUDGET_DOC,
    WARM_START_DOC,
    BaseBayesianNetwork,
)
from .ensemble import _MemberAverage
from .nn import MLP
from .nn._views import functional_copy, module_view

__all__ = ["SWAGClassifier", "SWAGRegressor"]


class _SWAGCollector(Callback):
    """skorch callback: the SWAG moments of the weights at the end of every epoch
    after the first ``start_epoch`` (:class:`skbdl._posterior.SWAGMoments`)."""

    def __init__(self, start_epoch, max_rank):
        self.start_epoch, self.max_rank = start_epoch, max_rank

    def initialize(self):
        self.moments_ = SWAGMoments(self.max_rank)
        return self

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) > self.start_epoch:
            self.moments_.update(AllWeights().parameters(net.module_))


class _SWAGPosterior(nn.Module):
    """The trained network and, per model, the SWAG mean ``(n_params,)`` and
    covariance (:class:`skbdl._posterior.LowRankDiagonalCovariance`) of its weights
    ``names``."""

    def __init__(self, network, names, moments):
        super().__init__()
        self.network, self.names = network, names
        self.register_buffer("mean", torch.stack([m.mean for m in moments]))
        self.covariances = nn.ModuleList([m.covariance() for m in moments])


class _SampledNetworks(nn.Module):
    """One prediction call's weight draws ``thetas`` ``(S, n_params)`` of a network."""

    def __init__(self, network, names, thetas):
        super().__init__()
        self.view, self.names, self.thetas = functional_copy(module_view(network)), names, thetas
        dtypes = {n: p.dtype for n, p in network.named_parameters()}
        self.draws = [
            {n: t.to(dtypes[n]) for n, t in unflatten(network, names, theta).items()}
            for theta in thetas
        ]

    def sample(self, X):
        outs = [torch.func.functional_call(self.view, params, (X,)) for params in self.draws]
        if isinstance(outs[0], tuple):
            return tuple(torch.stack(parts) for parts in zip(*outs))
        return torch.stack(outs)


class _BaseSWAG(BaseBayesianNetwork):
    _parameter_constraints = {
        **BaseBayesianNetwork._parameter_constraints,
        "swag_start": [Interval(numbers.Real, 0, 1, closed="left")],
        "max_rank": [Interval(numbers.Integral, 0, None, closed="left")],
        "n_models": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    @property
    def _incremental(self):
        """Continued training (``partial_fit``; ``warm_start``) continues one SWAG
        run: MultiSWAG keeps only its last run's network, so it has no
        ``partial_fit``."""
        return self.n_models == 1

    def _make_default_module(self, n_features_in, n_outputs):
        sizes = self._validate_hidden_layer_sizes()
        return MLP(n_features_in, n_outputs, hidden_layer_sizes=sizes, activation=self.activation)

    def _callbacks(self):
        return self._net_callbacks(self.max_epochs_, ("swag", self._collector))

    def _train_network(self, X, y, n_outputs, seed, device):
        """Train ``n_models`` networks (model 0 from ``seed``), collecting each one's
        SWAG moments; keep them in the prediction module; return the last net."""
        start = min(math.floor(self.swag_start * self.max_epochs_), self.max_epochs_ - 1)
        if self.max_epochs_ >= 2:
            start = min(start, self.max_epochs_ - 2)  # at least two iterates
        rng, moments = np.random.RandomState(seed), []
        for m in range(self.n_models):
            model_seed = seed if m == 0 else _seed_from(rng)
            self._collector = _SWAGCollector(start, self.max_rank)
            try:
                if m == 0:  # the fit's own streams, seeded by `seed`: kept for continuing
                    net = super()._train_network(X, y, n_outputs, seed, device)
                else:  # each further model's own streams, as a fit from model_seed's
                    with self._training_randomness(device, seed=model_seed):
                        net = super()._train_network(X, y, n_outputs, model_seed, device)
            finally:
                del self._collector
            moments.append(net.callbacks_[[n for n, _ in net.callbacks_].index("swag")][1].moments_)
        self._swag = _SWAGPosterior(net.module_, AllWeights().names(net.module_), moments)
        self._swag.to(device)
        return net

    def _continue_fit(self, X, y, sample_weight=None, epochs=None):
        n_models = len(self._swag.covariances)
        if n_models > 1:
            raise ValueError(
                f"Continued training (warm_start, partial_fit) continues one SWAG run, but "
                f"this {type(self).__name__} was fitted with n_models={n_models} "
                "(MultiSWAG), whose other runs' networks are not kept. Refit it "
                "(warm_start=False), or fit with n_models=1 to continue training."
            )
        return super()._continue_fit(X, y, sample_weight=sample_weight, epochs=epochs)

    def _continue_prediction_module(self, net):
        # The collector continued in the net's callbacks: every continued epoch's
        # weights join the run's moments (the burn-in was the first fit's).
        moments = dict(net.callbacks_)["swag"].moments_
        swag = _SWAGPosterior(net.module_, AllWeights().names(net.module_), [moments])
        self._swag = swag.to(torch.device(net.device))

    def _prediction_module(self):
        return self._swag, torch.device(self.net_.device)

    def _sampling_view(self, module, n_samples, seed, device):
        """``n_samples`` draws ``mean + Sigma^(1/2) z``, split evenly over the models."""
        generator = torch.Generator(device=device).manual_seed(seed)
        n_models = len(module.covariances)
        counts = [n_samples // n_models + (m < n_samples % n_models) for m in range(n_models)]
        thetas = [
            module.mean[m] + cov.sample(k, generator)
            for m, (cov, k) in enumerate(zip(module.covariances, counts))
            if k > 0
        ]
        return _SampledNetworks(module.network, module.names, torch.cat(thetas))

    def _sample_outputs(self, module, X, n_samples, seed):
        return module.sample(X)

    def _deterministic_view(self, module):
        # The network at the SWA mean of its weights; for MultiSWAG, the models' SWA
        # networks averaged as an ensemble's members are.
        networks = _SampledNetworks(module.network, module.names, module.mean)
        return _MemberAverage(networks.sample, getattr(self, "temperature_", 1.0))

    def _fitted_moments(self):
        """The SWAG fitted attributes, from the prediction module."""
        swag = self._swag
        self.swag_mean_ = swag.mean.cpu().numpy()
        self.swag_variance_ = torch.stack([c.variance for c in swag.covariances]).cpu().numpy()
        self.swag_rank_ = swag.covariances[0].low_rank.shape[1]

    def _finish_fit(self, net):
        super()._finish_fit(net)
        self._fitted_moments()
        return self


_COMMON_DOC = (
    """
    Parameters
    ----------
    module : torch.nn.Module class or instance, default=None
        The network.  ``None`` builds an :class:`skbdl.nn.MLP` from
        ``hidden_layer_sizes`` and ``activation`` at fit time (without dropout).  A
        class is instantiated with the ``module__*`` arguments; if its constructor
        takes ``n_features_in`` or ``n_outputs`` and they are not given, skbdl fills
        them in.
    hidden_layer_sizes : tuple of int, default=(100,)
        Hidden layer widths of the default MLP.
    activation : {'relu', 'tanh', 'logistic', 'identity', 'gelu', 'elu', 'silu'}, default='relu'
        Activation of the default MLP.
"""
    + TRAINING_BUDGET_DOC
    + """    lr : float, default=3e-3
        Learning rate, constant throughout (SWAG samples the iterates of a constant
        learning rate).
    weight_decay : float, default=0.0
        L2 penalty passed to the optimizer.
    optimizer : {'adam', 'adamw', 'sgd'} or torch.optim.Optimizer class, default='adam'
        Optimizer; ``optimizer__*`` keyword arguments are passed to it (the paper
        uses ``'sgd'`` with momentum and a large learning rate).
    swag_start : float, default=0.5
        Fraction of the epochs run before the iterates are collected (burn-in); the
        weights are then recorded at the end of every epoch (at least two).
    max_rank : int, default=20
        ``K``: the last ``K`` iterates' deviations from the running mean form the
        low-rank part of the covariance (0: diagonal only, SWAG-Diagonal).
    n_models : int, default=1
        Independently trained networks, each with its own SWAG posterior
        (MultiSWAG); the draws are split evenly between them.
    n_samples : int, default=100
        Weight draws at prediction time.
"""
    + CALIBRATION_DOC
    + """    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks (or ``(name, callback)`` pairs); copied at fit time.
    predict_batch_size : int, default=None
        Rows times samples evaluated at once at prediction time; ``None`` chooses
        for the device.
    device : str or torch.device, default='cpu'
        Where to train and predict.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, data order and the weight draws at prediction time.
    verbose : int or 'auto', default='auto'
        ``'auto'``: a progress bar once the fit is expected to take longer than 5
        seconds; 0: silent; 1: a progress bar; 2: skorch's table per epoch.
"""
    + WARM_START_DOC
    + """        For SWAG, continued training continues the run's collection: the
        weights at the end of every continued epoch join its moments (the
        burn-in ``swag_start`` was the first fit's).  MultiSWAG (``n_models >
        1``) keeps only its last run's network, so it cannot continue: it has no
        ``partial_fit``, and ``warm_start`` is a ``ValueError``.
"""
)

_ATTRIBUTES_DOC = """
    swag_mean_ : ndarray of shape (n_models, n_params)
        Mean of the collected iterates of each model's weights (flattened in the
        order of ``module.named_parameters()``).
    swag_variance_ : ndarray of shape (n_models, n_params)
        Their variance (the diagonal part of the covariance).
    swag_rank_ : int
        Columns of the low-rank part (``min(max_rank, iterates collected)``).
    net_ : skbdl._net.SkbdlNet
        The trained skorch net (of the last model).
    module_ : torch.nn.Module
        The trained network at the end of training (of the last model).
    history_ : skorch.History
        Per-epoch training record (of the last model).
    loss_curve_ : list of float
        Training loss per epoch.
    n_iter_ : int
        Number of epochs run.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.
"""

_SUMMARY = """
    Trains a network with a constant learning rate and records its weights at the
    end of every epoch after a burn-in: their running mean ``theta_bar``, the
    diagonal of their covariance and the deviations ``D`` of the last ``K``
    iterates from the running mean.  At prediction, weights are drawn from
    ``N(theta_bar, diag / 2 + D D^T / (2 (K - 1)))`` (Maddox et al. 2019) and the
    predictions of ``n_samples`` draws averaged; ``n_models > 1`` does this for
    independently trained networks and mixes them (MultiSWAG).  Batch norm
    statistics are not recomputed per draw.
"""

_REFERENCES = """
    References
    ----------
    W. Maddox, T. Garipov, P. Izmailov, D. Vetrov and A. G. Wilson, "A Simple
    Baseline for Bayesian Uncertainty in Deep Learning", NeurIPS 2019.
    A. G. Wilson and P. Izmailov, "Bayesian Deep Learning and a Probabilistic
    Perspective of Generalization", NeurIPS 2020 (MultiSWAG).
"""


class SWAGClassifier(BayesianClassifierMixin, _BaseSWAG):
    __doc__ = (
        """Classifier with a SWAG posterior over its weights (SWAG, MultiSWAG).
"""
        + _SUMMARY
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
    SWAGRegressor : The regression counterpart.
    DeepEnsembleClassifier : ``n_models`` networks without the SWAG posterior.
"""
        + _REFERENCES
        + """
    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skbdl import SWAGClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SWAGClassifier(hidden_layer_sizes=(16,), max_epochs=30, lr=0.01,
    ...                      random_state=0, verbose=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    >>> clf.swag_mean_.shape == clf.swag_variance_.shape
    True
    """
    )

    def __init__(
        self,
        module=None,
        *,
        hidden_layer_sizes=(100,),
        activation="relu",
        max_epochs="auto",
        batch_size="auto",
        lr=3e-3,
        weight_decay=0.0,
        optimizer="adam",
        swag_start=0.5,
        max_rank=20,
        n_models=1,
        n_samples=100,
        calibrate="auto",
        class_weight=None,
        validation_fraction=0.1,
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
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.swag_start = swag_start
        self.max_rank = max_rank
        self.n_models = n_models
        self.n_samples = n_samples
        self.calibrate = calibrate
        self.class_weight = class_weight
        self.validation_fraction = validation_fraction
        self.callbacks = callbacks
        self.predict_batch_size = predict_batch_size
        self.device = device
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self._store_routed(kwargs)


class SWAGRegressor(BayesianRegressorMixin, _BaseSWAG):
    __doc__ = (
        """Regressor with a SWAG posterior over its weights (SWAG, MultiSWAG).
"""
        + _SUMMARY
        + """    Each draw predicts a Gaussian (mean and noise variance); the draws form a
    mixture: ``aleatoric_var`` is the mean noise variance, ``epistemic_var`` the
    variance of the means, in the target's original units.
"""
        + _COMMON_DOC
        + """    likelihood : {'homoscedastic', 'heteroscedastic'}, default='heteroscedastic'
        Heteroscedastic adds a variance head (the network outputs ``2 * n_outputs``
        values); homoscedastic learns one noise variance per target.

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
    SWAGClassifier : The classification counterpart.
    DeepEnsembleRegressor : ``n_models`` networks without the SWAG posterior.
"""
        + _REFERENCES
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from skbdl import SWAGRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(200, 1))
    >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.randn(200)
    >>> reg = SWAGRegressor(hidden_layer_sizes=(32,), max_epochs=20, n_models=2,
    ...                     random_state=0, verbose=0).fit(X, y)
    >>> mean, std = reg.predict(X[:3], return_std=True)
    >>> mean.shape, bool((std > 0).all()), reg.swag_mean_.shape[0]
    ((3,), True, 2)
    """
    )

    _parameter_constraints = {
        **_BaseSWAG._parameter_constraints,
        "likelihood": [StrOptions({"homoscedastic", "heteroscedastic"})],
    }

    def __init__(
        self,
        module=None,
        *,
        hidden_layer_sizes=(100,),
        activation="relu",
        likelihood="heteroscedastic",
        max_epochs="auto",
        batch_size="auto",
        lr=3e-3,
        weight_decay=0.0,
        optimizer="adam",
        swag_start=0.5,
        max_rank=20,
        n_models=1,
        n_samples=100,
        calibrate="auto",
        validation_fraction=0.1,
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
        self.likelihood = likelihood
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.swag_start = swag_start
        self.max_rank = max_rank
        self.n_models = n_models
        self.n_samples = n_samples
        self.calibrate = calibrate
        self.validation_fraction = validation_fraction
        self.callbacks = callbacks
        self.predict_batch_size = predict_batch_size
        self.device = device
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self._store_routed(kwargs)
