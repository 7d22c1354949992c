"""Bayesian last layers for trained networks: no retraining, closed-form posteriors.

This module holds what every last-layer method shares -- the trained network read up
to its last linear layer (:class:`_FeatureNetwork`) and the estimator base
(:class:`_BaseLastLayer`) -- and the Bayesian linear regression of the last layer
(:class:`LastLayerBayesianRegressor`).  The last-layer Laplace classifier is in
:mod:`skbdl.last_layer_laplace`, last-layer MC dropout in
:mod:`skbdl.last_layer_dropout`.
"""

import numbers

import numpy as np
import torch
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._base import BayesianRegressorMixin
from ._posterior import (
    last_linear,
    layer_inputs,
    standard_normal,
)
from ._posthoc import (
    DEFAULT_NETWORK_DOC,
    ESTIMATOR_DOC,
    BasePostHoc,
    float64_copy,
    transformed,
    unwrap,
)

__all__ = ["LastLayerBayesianRegressor"]

#: Rows per forward pass when extracting features.
_FEATURE_BATCH = 8192

#: Gamma hyper-priors of the evidence maximisation (as in BayesianRidge).
_HYPER = 1e-6


# ------------------------------------------------------------------ the network
class _FeatureNetwork(nn.Module):
    """A trained network read up to the input of its last linear layer.

    ``forward(X)`` runs the network (in eval mode) on ``X`` (first through
    ``transform``, the transformers of a pipeline, if any) and returns, as float64,
    the input of ``layer``, i.e. the penultimate features.  The network is never
    changed: each call runs a view of it in eval mode whose ``layer`` also records
    its input for that call only (no hooks, so concurrent calls are safe).
    :meth:`build` runs a float64 copy of it when the network allows
    (:func:`skbdl._posthoc.float64_copy`), else the network itself.
    """

    def __init__(self, network, layer, transform=None, dtype=torch.float32):
        super().__init__()
        self.network = network
        self.layer = layer
        self.transform = transform
        self.dtype = dtype

    @classmethod
    def build(cls, network, layer_name, transform, X_probe):
        network, dtype = float64_copy(network, transform, X_probe)
        return cls(network, network.get_submodule(layer_name), transform, dtype)

    def forward(self, X):
        X = transformed(self.transform, X)  # a Pipeline's transformers, if any
        with torch.no_grad():
            _, (features,) = layer_inputs(self.network, [self.layer], X.to(self.dtype))
        if features is None:
            raise RuntimeError("The network's forward pass did not call its last layer.")
        return features.reshape(len(X), -1).to(torch.float64)


class _BaseLastLayer(BasePostHoc):
    _parameter_constraints = {
        **BasePostHoc._parameter_constraints,
        "last_layer": [None, str],
    }

    def _read_network(self, estimator, X):
        """``(features_net, features of X, device)`` of a fitted network."""
        network, device, transform, _ = unwrap(estimator)
        layer_name, _ = last_linear(network, self.last_layer)
        X_rows = X.astype(np.float32)  # rounded as at prediction time
        probe = torch.tensor(X_rows[:2], device=device)
        features_net = _FeatureNetwork.build(network, layer_name, transform, probe)
        return features_net, self._features(features_net, X_rows, device), device

    def _fit_posterior(self, estimator, X, y, selected, sample_weight=None):
        features_net, features, device = self._read_network(estimator, X)
        head = self._fit_head(features_net, features, y, selected, sample_weight=sample_weight)
        return head, device

    @staticmethod
    def _features(features_net, X, device):
        parts = []
        for start in range(0, len(X), _FEATURE_BATCH):
            chunk = torch.tensor(np.ascontiguousarray(X[start : start + _FEATURE_BATCH]))
            parts.append(features_net(chunk.to(device)).cpu().numpy())
        return np.concatenate(parts) if parts else np.empty((0, 0))

    @property
    def module_(self):
        """The network read up to its last layer, with the Bayesian last layer."""
        check_is_fitted(self)
        return self._head


_LAST_LAYER_DOC = """    last_layer : str, default=None
        Name (as in ``module.get_submodule``) of the ``torch.nn.Linear`` layer that
        maps the penultimate features to the network's outputs; its input is the
        feature vector.  ``None`` takes the last ``nn.Linear`` the module registers
        (``output`` in skbdl's MLP).
"""

_COMMON_PARAMS = (
    """
    Parameters
    ----------
"""
    + ESTIMATOR_DOC
    + _LAST_LAYER_DOC
    + """    n_samples : int, default=100
        Monte Carlo draws of the last-layer weights for :meth:`sample_predictions`
        {mc_use}.
    predict_batch_size : int, default=None
        Rows times samples evaluated at once at prediction time; ``None`` chooses
        for the device: 16384 on the CPU, on CUDA from the GPU's memory.
    random_state : int, RandomState instance or None, default=None
        Seeds the default network (when ``estimator`` is None) and the draws of the
        last-layer weights at prediction time.
"""
)


# ------------------------------------------------------------------ regression
class _BayesianLinearHead(nn.Module):
    """Gaussian posterior of linear weights on top of a feature network.

    All buffers are float64 and in standardised target units; ``coef`` is
    ``(n_features, n_outputs)``, ``covariance`` ``(n_outputs, n_features,
    n_features)``, ``noise_var`` ``(n_outputs,)``; the features are centred by
    ``feature_mean`` first.
    """

    def __init__(self, features, feature_mean, coef, intercept, covariance, noise_var):
        super().__init__()
        self.features = features
        for name, value in dict(
            feature_mean=feature_mean,
            coef=coef,
            intercept=intercept,
            covariance=covariance,
            noise_var=noise_var,
        ).items():
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float64))
        self.register_buffer("cholesky", torch.linalg.cholesky(self._jittered(self.covariance)))

    @staticmethod
    def _jittered(covariance):
        scale = covariance.diagonal(dim1=-2, dim2=-1).mean(dim=-1).clamp_min(1e-300)
        eye = torch.eye(covariance.shape[-1], dtype=covariance.dtype)
        return covariance + 1e-10 * scale[:, None, None] * eye

    def centred(self, X):
        return self.features(X) - self.feature_mean

    def moments(self, X):
        phi = self.centred(X)
        mean = phi @ self.coef + self.intercept
        epistemic = torch.einsum("ni,oij,nj->no", phi, self.covariance, phi)
        return mean, self.noise_var.expand_as(mean), epistemic.clamp_min(0.0)

    def sample(self, X, n_samples, generator):
        phi = self.centred(X)
        n_outputs, n_features = self.coef.shape[1], self.coef.shape[0]
        noise = standard_normal((n_samples, n_outputs, n_features), generator, self.coef.device)
        weights = self.coef.T + torch.einsum("oij,soj->soi", self.cholesky, noise)  # (S, O, F)
        mean = torch.einsum("nf,sof->sno", phi, weights) + self.intercept
        return mean, self.noise_var.expand_as(mean)


def evidence_maximisation(features, y, max_iter=300, tol=1e-6, sample_weight=None):
    """Bayesian linear regression with precisions chosen by type-II maximum likelihood.

    MacKay's fixed-point updates of the noise precision ``alpha`` and the weight
    precision ``lambda`` (the algorithm of ``sklearn.linear_model.BayesianRidge``,
    with its Gamma(1e-6, 1e-6) hyper-priors and starting values), on centred
    features and targets.  With ``sample_weight`` the likelihood of row ``i`` is
    raised to the power ``w_i``: the rows are multiplied by ``sqrt(w_i)`` and the
    number of rows in the noise update (and the starting noise precision, one over
    the targets' variance) is ``sum(w)``, weighted, so that integer weights give
    the fit of the rows repeated.

    Parameters
    ----------
    features : ndarray of shape (n_rows, n_features)
        Features, already centred.
    y : ndarray of shape (n_rows,)
        Targets, already centred.
    max_iter : int, default=300
        Most updates.
    tol : float, default=1e-6
        Stop when the coefficients move by less than this (sum of absolute changes).
    sample_weight : ndarray of shape (n_rows,), default=None
        Non-negative row weights, not normalised (their sum counts as the number
        of rows); the features and targets must be centred by the weighted means.

    Returns
    -------
    coef : ndarray of shape (n_features,)
        Posterior mean.
    covariance : ndarray of shape (n_features, n_features)
        Posterior covariance.
    alpha, lambda_ : float
        Noise and weight precisions.
    n_iter : int
        Updates run.

    See Also
    --------
    LastLayerBayesianRegressor : Uses it on a network's penultimate features.
    sklearn.linear_model.BayesianRidge : The same algorithm as an estimator.

    References
    ----------
    D. J. C. MacKay, "Bayesian Interpolation", Neural Computation 4(3), 1992.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl.last_layer import evidence_maximisation
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(200, 2); y = X @ [1.0, -1.0] + 0.1 * rng.randn(200)
    >>> coef, cov, alpha, lambda_, _ = evidence_maximisation(X - X.mean(0), y - y.mean())
    >>> coef.round(2), round(1 / alpha, 3)  # 1 / alpha estimates the noise variance 0.01
    (array([ 1.  , -0.99]), 0.011)
    """
    n_rows, n_features = features.shape
    eps = np.finfo(np.float64).eps
    if sample_weight is None:
        alpha, lambda_ = 1.0 / (y.var() + eps), 1.0
    else:
        y_mean = np.average(y, weights=sample_weight)
        alpha = 1.0 / (np.average((y - y_mean) ** 2, weights=sample_weight) + eps)
        lambda_ = 1.0
        root = np.sqrt(sample_weight)
        features, y = features * root[:, None], y * root
    n_counted = n_rows if sample_weight is None else float(np.sum(sample_weight))
    if n_rows > n_features:  # eigenvectors of the Gram matrix: no (n_rows, n) factor
        eigen, V = np.linalg.eigh(features.T @ features)
        eigen, Vh_full = np.clip(eigen[::-1], 0.0, None), V[:, ::-1].T
    else:
        _, S, Vh_full = np.linalg.svd(features, full_matrices=True)
        eigen = S**2
    eigen_full = np.zeros(n_features)
    eigen_full[: len(eigen)] = eigen
    Vh = Vh_full[: len(eigen)]
    projected = Vh @ (features.T @ y)

    def posterior_mean(alpha, lambda_):
        return Vh.T @ (projected / (eigen + lambda_ / alpha))

    coef_old = None
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        coef = posterior_mean(alpha, lambda_)
        sse = np.sum((y - features @ coef) ** 2)
        gamma = np.sum(alpha * eigen / (lambda_ + alpha * eigen))
        lambda_ = (gamma + 2 * _HYPER) / (np.sum(coef**2) + 2 * _HYPER)
        alpha = (n_counted - gamma + 2 * _HYPER) / (sse + 2 * _HYPER)
        if coef_old is not None and np.sum(np.abs(coef_old - coef)) < tol:
            break
        coef_old = coef
    coef = posterior_mean(alpha, lambda_)
    covariance = Vh_full.T @ (Vh_full / (alpha * eigen_full + lambda_)[:, None])
    return coef, covariance, float(alpha), float(lambda_), n_iter


class LastLayerBayesianRegressor(BayesianRegressorMixin, _BaseLastLayer):
    __doc__ = (
        """Make a trained network's last layer Bayesian: regression.

    Reads the penultimate features of a trained network (its last linear layer's
    input) and fits Bayesian linear regression on them, choosing the noise
    precision and the weights' prior precision by evidence maximisation (type-II
    maximum likelihood, MacKay's updates as in ``BayesianRidge``); the network's
    own last layer is replaced by that posterior, the rest of the network is not
    retrained.  The predictive distribution is Gaussian: ``epistemic_var`` is the
    variance of the last layer's output under its posterior (it grows as the
    features move away from the training features), ``aleatoric_var`` the inverse
    noise precision.
"""
        + _COMMON_PARAMS.format(
            default=DEFAULT_NETWORK_DOC.format(cls="Regressor"),
            mc_use="and for ``predict_uncertainty(X, n_samples=k)``",
        )
        + """    max_iter : int, default=300
        Most evidence-maximisation updates.
    tol : float, default=1e-6
        Stop the updates when the coefficients (standardised units) move by less
        than this in total.

    Attributes
    ----------
    estimator_ : estimator
        The fitted network (``estimator`` itself when frozen).
    module_ : torch.nn.Module
        The network read up to its last layer (a float64 copy of it, when it runs
        in float64), with the posterior as float64 buffers (standardised target
        units).
    coef_ : ndarray of shape (n_outputs_, n_features_last)
        Posterior mean of the last-layer weights, in the target's units per unit
        of feature.
    intercept_ : ndarray of shape (n_outputs_,)
        Intercept, in the target's units.
    sigma_ : ndarray of shape (n_outputs_, n_features_last, n_features_last)
        Posterior covariance of the weights, in the target's squared units.
    alpha_ : ndarray of shape (n_outputs_,)
        Noise precision, in the target's units (``1 / alpha_`` is the noise
        variance).
    lambda_ : ndarray of shape (n_outputs_,)
        Precision of the weights' prior, in the target's units.
    n_iter_ : ndarray of shape (n_outputs_,)
        Evidence-maximisation updates run per target.
    n_outputs_ : int
        Number of targets.
    y_mean_ : ndarray of shape (n_outputs_,)
        Target means used for standardisation.
    y_scale_ : ndarray of shape (n_outputs_,)
        Target standard deviations used for standardisation.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    LastLayerLaplaceClassifier : The classification counterpart.
    sklearn.linear_model.BayesianRidge : The same model on fixed features.

    References
    ----------
    D. J. C. MacKay, "Bayesian Interpolation", Neural Computation 4(3), 1992.
    J. Snoek et al., "Scalable Bayesian Optimization Using Deep Neural Networks",
    ICML 2015 (Bayesian linear regression on a network's last hidden layer).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.frozen import FrozenEstimator
    >>> from skbdl import LastLayerBayesianRegressor, MCDropoutRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(200, 1))
    >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.randn(200)
    >>> net = MCDropoutRegressor(hidden_layer_sizes=(32,), dropout=0.0, max_epochs=50,
    ...                          lr=0.01, random_state=0).fit(X, y)
    >>> reg = LastLayerBayesianRegressor(FrozenEstimator(net)).fit(X, y)
    >>> u = reg.predict_uncertainty(np.array([[0.0], [4.0]]))
    >>> bool(u.epistemic_var[1] > 10 * u.epistemic_var[0])  # far from the data
    True
    """
    )

    _parameter_constraints = {
        **_BaseLastLayer._parameter_constraints,
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
    }

    _closed_form_moments = True

    def __init__(
        self,
        estimator=None,
        *,
        last_layer=None,
        max_iter=300,
        tol=1e-6,
        n_samples=100,
        predict_batch_size=None,
        random_state=None,
    ):
        self.estimator = estimator
        self.last_layer = last_layer
        self.max_iter = max_iter
        self.tol = tol
        self.n_samples = n_samples
        self.predict_batch_size = predict_batch_size
        self.random_state = random_state

    def _fit_head(self, features_net, features, y, selected=None, sample_weight=None):
        # Weighted means and moments: with integer weights, those of repeated rows.
        _, n_outputs = self._prepare_targets(y, sample_weight)  # sets y_mean_, y_scale_
        y_std = (y.reshape(len(y), -1) - self.y_mean_) / self.y_scale_
        if sample_weight is None:
            feature_mean = features.mean(axis=0)
            y_offset = y_std.mean(axis=0)
        else:
            feature_mean = np.average(features, axis=0, weights=sample_weight)
            y_offset = np.average(y_std, axis=0, weights=sample_weight)
        centred = features - feature_mean
        results = [
            evidence_maximisation(
                centred, y_std[:, o] - y_offset[o], self.max_iter, self.tol, sample_weight
            )
            for o in range(n_outputs)
        ]
        coef = np.stack([r[0] for r in results], axis=1)
        covariance = np.stack([r[1] for r in results])
        alpha = np.array([r[2] for r in results])
        lambda_ = np.array([r[3] for r in results])
        self.n_iter_ = np.array([r[4] for r in results])
        # In the target's units (the posterior above is in standardised units).
        scale = self.y_scale_
        self.coef_ = coef.T * scale[:, None]
        self.intercept_ = (y_offset - feature_mean @ coef) * scale + self.y_mean_
        self.sigma_ = covariance * (scale**2)[:, None, None]
        self.alpha_ = alpha / scale**2
        self.lambda_ = lambda_ / scale**2
        return _BayesianLinearHead(
            features_net, feature_mean, coef, y_offset, covariance, 1.0 / alpha
        )

    def _predictive_moments(self, module, X, n_samples, seed):
        return module.moments(X)
