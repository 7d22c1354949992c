"""The last-layer Laplace approximation of a trained classifier.

:class:`LastLayerLaplaceClassifier` is the Gaussian posterior of the softmax layer on
the penultimate features of a trained network, from the generalised Gauss-Newton
curvature of the training rows' cross-entropy and a prior precision chosen by the
marginal likelihood or on held-out rows.  The network read up to its last layer and
the estimator base are shared with the other last-layer methods
(:mod:`skbdl.last_layer`).
"""

import math
import numbers
import warnings

import numpy as np
import torch
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from torch import nn

from ._base import BayesianClassifierMixin, _seed_from
from ._posterior import (
    FullCurvature,
    laplace_prior_precision,
    log_marginal_likelihood,
    probit_log_proba,
)
from ._posthoc import (
    CLASS_WEIGHT_CONSTRAINT,
    CLASS_WEIGHT_DOC,
    DEFAULT_NETWORK_DOC,
    ProbitPredictiveMixin,
)
from .last_layer import _COMMON_PARAMS, _BaseLastLayer

__all__ = ["LastLayerLaplaceClassifier"]

#: Candidate prior precisions for ``prior_precision='holdout'``: 1e-4 to 1e4, ten per
#: decade (the range of laplace-torch's ``optimize_prior_precision(method='gridsearch')``).
_PRIOR_PRECISION_GRID = np.logspace(-4.0, 4.0, 81)


# --------------------------------------------------------------- classification
def _logit_roots(phi, basis):
    """Yield ``(rows, A)`` over row blocks of ``phi`` ``(n_rows, width)``: ``A = J V``,
    ``(n_block, n_classes, k)``, for the Jacobian ``J_n = I (x) phi_n^T`` of a linear
    layer's logits in its row-major weights and ``V`` ``(n_classes * width, k)`` given
    as ``basis`` ``(n_classes, width, k)``; blocks of at most 2**22 entries (32 MB)."""
    n_classes, _, k = basis.shape
    step = max(1, 2**22 // (n_classes * k))
    for start in range(0, len(phi), step):
        rows = slice(start, start + step)
        yield rows, torch.einsum("nw,cwk->nck", phi[rows], basis)


class _LaplaceHead(nn.Module):
    """Gaussian (Laplace) posterior of a linear softmax layer on a feature network.

    ``weight_mean`` is ``(n_classes, n_features + 1)`` (the bias last);
    ``posterior`` a :class:`skbdl._posterior.DenseCovariance` over its row-major
    flattening (the full-covariance structure on the last-layer subset), held once,
    as its square root ``R`` (``Sigma = R R^T``).
    """

    def __init__(self, features, weight_mean, posterior):
        super().__init__()
        self.features = features
        self.register_buffer("weight_mean", torch.as_tensor(weight_mean, dtype=torch.float64))
        self.posterior = posterior

    def augmented(self, X):
        phi = self.features(X)
        return torch.cat([phi, torch.ones(len(phi), 1, dtype=phi.dtype, device=phi.device)], 1)

    def logit_moments(self, X):
        """Mean ``(n_rows, n_classes)`` and covariance ``(n_rows, n_classes, n_classes)``
        of the logits under the posterior: ``J Sigma J^T = (J R)(J R)^T`` with ``J = I
        (x) phi^T``, in row blocks (no ``(n_rows, n_classes, n_params)`` Jacobian)."""
        phi = self.augmented(X)
        n_classes, width = self.weight_mean.shape
        basis = self.posterior.root.view(n_classes, width, -1)
        covs = [A @ A.transpose(1, 2) for _, A in _logit_roots(phi, basis)]
        cov = torch.cat(covs) if covs else phi.new_empty(0, n_classes, n_classes)
        return phi @ self.weight_mean.T, cov

    def probit(self, X):
        """Pairwise-probit predictive probabilities, ``(1, n_rows, n_classes)`` (see
        :func:`skbdl._posterior.probit_log_proba`)."""
        return torch.exp(probit_log_proba(*self.logit_moments(X)))[None]

    def sample(self, X, n_samples, generator):
        """Logits of ``n_samples`` last layers drawn from the posterior, ``(S, n, C)``."""
        phi = self.augmented(X)
        weights = self.weight_mean.reshape(-1) + self.posterior.sample(n_samples, generator)
        weights = weights.view(n_samples, *self.weight_mean.shape)
        return torch.einsum("nj,scj->snc", phi, weights)


def _ggn_hessian(features, weight_mean, sample_weight=None):
    """Generalised Gauss-Newton Hessian of the softmax cross-entropy of a linear layer.

    ``sum_n w_n J_n^T (diag p_n - p_n p_n^T) J_n`` over the row-major flattening of
    ``weight_mean`` (``(n_classes, n_features + 1)``, bias last); ``features`` are
    augmented with the constant 1; ``w_n`` is ``sample_weight`` (all 1 when None).
    Exact (GGN = Hessian) for a linear layer.  Returns the Hessian and the
    probabilities ``(n_rows, n_classes)``.
    """
    logits = features @ weight_mean.T
    logits -= logits.max(axis=1, keepdims=True)
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    n_classes, width = weight_mean.shape
    # The diag(p) part weighs p_n by w_n, the outer part p_n by sqrt(w_n).
    diagonal = proba if sample_weight is None else proba * sample_weight[:, None]
    rooted = proba if sample_weight is None else proba * np.sqrt(sample_weight)[:, None]
    hessian = np.zeros((n_classes, width, n_classes, width))
    for c in range(n_classes):  # diag(p) part: one block per class
        hessian[c, :, c, :] = (features * diagonal[:, c : c + 1]).T @ features
    outer = (rooted[:, :, None] * features[:, None, :]).reshape(len(features), -1)
    hessian = hessian.reshape(n_classes * width, -1) - outer.T @ outer
    return hessian, proba


def holdout_prior_precision(
    features,
    weight_mean,
    valid_features,
    valid_y,
    grid=None,
    *,
    sample_weight=None,
    valid_weight=None,
):
    """The prior precision whose probit predictive best predicts held-out rows.

    For each candidate ``delta`` the Laplace posterior ``N(theta, (H + delta I)^-1)``
    of a softmax layer with weights ``weight_mean`` (``H``: the GGN Hessian on
    ``features``, ``y``) gives the pairwise-probit predictive probabilities of the
    held-out rows; the ``delta`` with the smallest mean negative log-likelihood of
    ``valid_y`` wins (the first on ties), as laplace-torch's
    ``optimize_prior_precision(method='gridsearch')`` does with a validation set.
    One eigendecomposition of ``H`` serves every candidate.  Row weights weigh the
    Hessian's sum over the training rows (``sample_weight``) and the held-out
    negative log-likelihood (``valid_weight``, a weighted mean).

    Parameters
    ----------
    features : ndarray of shape (n_rows, n_features)
        Penultimate features of the rows the network was trained on (the Hessian
        depends on them through the predicted probabilities only, not the labels).
    weight_mean : ndarray of shape (n_classes, n_features + 1)
        The trained last layer, the bias last.
    valid_features : ndarray of shape (n_valid, n_features)
        Features of held-out rows, which the network has not seen.
    valid_y : ndarray of shape (n_valid,)
        Their class codes, ``0 .. n_classes - 1``.
    grid : array-like of float, default=None
        Candidate precisions; ``None`` means ``10**k`` for ``k`` from -4 to 4 in
        steps of 0.1.
    sample_weight : ndarray of shape (n_rows,), default=None
        Weights of the training rows in the Hessian (None: all 1).
    valid_weight : ndarray of shape (n_valid,), default=None
        Weights of the held-out rows in the mean negative log-likelihood (None:
        all 1).

    Returns
    -------
    delta : float
        The chosen precision.
    nll : ndarray of shape (len(grid),)
        Mean (weighted by ``valid_weight``) held-out negative log-likelihood
        (nats) of every candidate.

    See Also
    --------
    LastLayerLaplaceClassifier : Uses it with ``prior_precision='holdout'``.
    laplace_prior_precision : The marginal-likelihood choice.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl.last_layer_laplace import holdout_prior_precision
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(300, 2)
    >>> y = (X[:, 0] + 0.5 * rng.randn(300) > 0).astype(int)  # noisy labels
    >>> weights = np.array([[-5.0, 0.0, 0.0], [5.0, 0.0, 0.0]])  # overconfident
    >>> delta, nll = holdout_prior_precision(X[:200], weights, X[200:], y[200:])
    >>> nll.shape, bool(nll.min() < nll[-1])  # widening the posterior helps here
    ((81,), True)
    """
    grid = _PRIOR_PRECISION_GRID if grid is None else np.asarray(grid, dtype=np.float64)
    augmented = np.hstack([features, np.ones((len(features), 1))])
    curvature = FullCurvature(_ggn_hessian(augmented, weight_mean, sample_weight)[0])
    eigenvalues, eigenvectors = torch.as_tensor(curvature.eigenvalues()), curvature.vectors
    n_classes, width = weight_mean.shape
    n_params = weight_mean.size
    basis = torch.as_tensor(eigenvectors).reshape(n_classes, width, n_params)
    phi = torch.as_tensor(np.hstack([valid_features, np.ones((len(valid_features), 1))]))
    mean = phi @ torch.as_tensor(weight_mean).T
    labels = torch.as_tensor(np.asarray(valid_y, dtype=np.int64))
    weights = None if valid_weight is None else torch.as_tensor(valid_weight, dtype=torch.float64)
    total = torch.zeros(len(grid), dtype=torch.float64)
    for rows, A in _logit_roots(phi, basis):
        # Logit covariance of row n: A_n diag(1 / (e + delta)) A_n^T, A_n = J_n V.
        index = torch.arange(len(A))
        for i, delta in enumerate(grid):
            cov = (A / (eigenvalues + delta)) @ A.transpose(1, 2)
            log_proba = probit_log_proba(mean[rows], cov)[index, labels[rows]]
            total[i] -= log_proba.sum() if weights is None else weights[rows] @ log_proba
    count = max(len(phi), 1) if valid_weight is None else float(np.sum(valid_weight))
    nll = (total / count).numpy()
    return float(grid[int(np.argmin(nll))]), nll


def _holdout_rows(codes, fraction, seed):
    """Stratified ``(fit_rows, valid_rows)`` holding out ``fraction`` of the rows, or
    None when the data are too small for every class to appear on both sides."""
    n_rows = len(codes)
    counts = np.bincount(codes)
    n_valid = math.ceil(n_rows * fraction)
    n_classes = len(counts)
    if n_classes < 2 or counts.min() < 2 or min(n_valid, n_rows - n_valid) < n_classes:
        return None
    fit_rows, valid_rows = train_test_split(
        np.arange(n_rows), test_size=n_valid, stratify=codes, random_state=seed
    )
    if len(np.unique(codes[fit_rows])) < n_classes:
        return None
    return np.sort(fit_rows), np.sort(valid_rows)


class LastLayerLaplaceClassifier(ProbitPredictiveMixin, BayesianClassifierMixin, _BaseLastLayer):
    __doc__ = (
        """Make a trained network's last layer Bayesian: classification (Laplace).

    Keeps the trained network, weights and all, and puts a Gaussian posterior on
    its last linear layer by a Laplace approximation around the trained weights:
    covariance ``(H + delta I)^-1`` with ``H`` the generalised Gauss-Newton (here
    exact) Hessian of the softmax cross-entropy on the training rows and ``delta``
    the precision of an isotropic Gaussian prior, chosen by the log-likelihood of
    held-out rows or by the Laplace approximation of the marginal likelihood
    (``prior_precision``).  Probabilities average the softmax over that posterior,
    by the probit approximation or by Monte Carlo (``predictive``).
"""
        + _COMMON_PARAMS.format(
            default=DEFAULT_NETWORK_DOC.format(cls="Classifier"),
            mc_use=(
                "and :meth:`predict_uncertainty`, and for ``predict_proba`` when "
                "``predictive='mc'``"
            ),
        )
        + """    predictive : {'probit', 'mc'}, default='probit'
        How ``predict_proba`` averages the softmax over the posterior: ``'probit'``,
        the closed-form probit approximation applied to every pair of logits,
        ``p_c = 1 / sum_d exp(-(mu_c - mu_d) / sqrt(1 + pi var(f_c - f_d) / 8))``
        normalised (deterministic, cheap; MacKay's for two classes); ``'mc'``,
        ``n_samples`` draws of the last layer.  :meth:`predict_uncertainty` always
        uses draws, since its entropy decomposition needs them.
    prior_precision : {'auto', 'holdout', 'marglik'} or float, default='auto'
        Precision ``delta`` of the isotropic Gaussian prior on the last layer.
        ``'holdout'``: hold out ``validation_fraction`` of the rows (stratified),
        fit a clone of the network on the others, and take the ``delta`` on a grid
        (``10**-4`` to ``10**4``, ten per decade) whose probit predictive gives the
        held-out rows the highest log-likelihood; then fit the network on all rows
        (so it is fitted twice) and use that ``delta``.  Needs a network that
        ``fit`` trains (not a ``FrozenEstimator``).  ``'marglik'``: maximise the
        Laplace approximation of the marginal likelihood on the training rows
        (no held-out rows, one fit).  ``'auto'``: ``'holdout'``, unless the network
        is a ``FrozenEstimator`` (or the data are too small to hold out a row of
        every class, with a warning), then ``'marglik'``.  A float fixes it.
    validation_fraction : float, default=0.2
        Fraction of the rows held out by ``prior_precision='holdout'``.
"""
        + CLASS_WEIGHT_DOC
        + """
    Attributes
    ----------
    estimator_ : estimator
        The fitted network (``estimator`` itself when frozen).
    module_ : torch.nn.Module
        The network read up to its last layer (a float64 copy of it, when it runs
        in float64), with the posterior as float64 buffers.
    classes_ : ndarray of shape (n_classes,)
        Class labels (the network's output ``k`` is ``classes_[k]``).
    coef_ : ndarray of shape (n_classes, n_features_last)
        The trained last layer's weights (the posterior mean).
    intercept_ : ndarray of shape (n_classes,)
        Its biases.
    prior_precision_ : float
        The prior precision used.
    prior_precision_method_ : {'holdout', 'marglik', 'fixed'}
        How it was chosen.
    posterior_covariance_ : ndarray of shape (n_params, n_params)
        Covariance over the row-major flattening of ``[coef_, intercept_]``
        (``n_params = n_classes * (n_features_last + 1)``).
    log_marginal_likelihood_ : float
        Laplace approximation of the log marginal likelihood at
        ``prior_precision_``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    LastLayerBayesianRegressor : The regression counterpart.

    References
    ----------
    D. J. C. MacKay, "The Evidence Framework Applied to Classification Networks",
    Neural Computation 4(5), 1992 (Laplace approximation, probit predictive).
    A. Kristiadi, M. Hein and P. Hennig, "Being Bayesian, Even Just a Bit, Fixes
    Overconfidence in ReLU Networks", ICML 2020 (last-layer Laplace; prior
    precision tuned on held-out data).
    E. Daxberger et al., "Laplace Redux -- Effortless Bayesian Deep Learning",
    NeurIPS 2021 (prior precision by marginal likelihood or by a grid search on
    validation data).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.frozen import FrozenEstimator
    >>> from skbdl import LastLayerLaplaceClassifier, MCDropoutClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> net = MCDropoutClassifier(hidden_layer_sizes=(32,), dropout=0.0, max_epochs=30,
    ...                           lr=0.01, random_state=0).fit(X, y)
    >>> clf = LastLayerLaplaceClassifier(FrozenEstimator(net)).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    >>> far = X[:1] * 20  # far from the data: less confident than the network alone
    >>> bool(clf.predict_proba(far).max() < net.predict_proba(far).max())
    True
    """
    )

    _parameter_constraints = {
        **_BaseLastLayer._parameter_constraints,
        **CLASS_WEIGHT_CONSTRAINT,
        "predictive": [StrOptions({"probit", "mc"})],
        "prior_precision": [
            StrOptions({"auto", "holdout", "marglik"}),
            Interval(numbers.Real, 0, None, closed="neither"),
        ],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
    }

    def __init__(
        self,
        estimator=None,
        *,
        last_layer=None,
        predictive="probit",
        prior_precision="auto",
        validation_fraction=0.2,
        class_weight=None,
        n_samples=100,
        predict_batch_size=None,
        random_state=None,
    ):
        self.estimator = estimator
        self.last_layer = last_layer
        self.predictive = predictive
        self.prior_precision = prior_precision
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.n_samples = n_samples
        self.predict_batch_size = predict_batch_size
        self.random_state = random_state

    @staticmethod
    def _layer_weights(features_net, n_classes):
        """``(weight, bias, [weight, bias])`` of the network's last layer, float64."""
        layer = features_net.layer
        if layer.out_features != n_classes:
            raise ValueError(
                f"The network's last layer has {layer.out_features} outputs but y has "
                f"{n_classes} classes; the output k must score classes_[k]."
            )
        weight = layer.weight.detach().to("cpu", torch.float64).numpy()
        bias = (
            layer.bias.detach().to("cpu", torch.float64).numpy()
            if layer.bias is not None
            else np.zeros(len(weight))
        )
        return weight, bias, np.hstack([weight, bias[:, None]])

    def _select(self, X, y, sample_weight=None):
        """``(delta, method)``: the prior precision, or None to maximise the evidence.

        ``'holdout'`` fits the network on the fit rows with their weights and scores
        the held-out rows by their weighted mean negative log-likelihood."""
        if not isinstance(self.prior_precision, str):
            return float(self.prior_precision), "fixed"
        frozen = isinstance(self.estimator, FrozenEstimator)
        if self.prior_precision == "marglik" or (self.prior_precision == "auto" and frozen):
            return None, "marglik"
        if frozen:
            raise ValueError(
                "prior_precision='holdout' fits the network on part of the rows, but the "
                "network is a FrozenEstimator; use prior_precision='marglik' or a float, "
                "or pass the unfitted network."
            )
        check_classification_targets(y)
        codes = np.unique(y, return_inverse=True)[1]
        if codes.max(initial=0) < 1:
            return None, "marglik"  # one class: fitting the network says so
        seed = _seed_from(np.random.RandomState(_seed_from(self.random_state)))
        split = _holdout_rows(codes, self.validation_fraction, seed)
        if split is not None and sample_weight is not None:
            if not all(sample_weight[rows].sum() > 0 for rows in split):
                split = None  # every fit (or held-out) row has zero weight
        if split is None:
            message = (
                f"Too few rows to hold out validation_fraction={self.validation_fraction} "
                "of them with every class on both sides"
                + ("" if sample_weight is None else " and a positive total weight on each")
            )
            if self.prior_precision == "holdout":
                raise ValueError(message + "; use prior_precision='marglik' or a float.")
            warnings.warn(
                message + "; prior_precision chosen by marginal likelihood.", stacklevel=2
            )
            return None, "marglik"
        fit_rows, valid_rows = split
        fit_weight, valid_weight = (
            (None, None)
            if sample_weight is None
            else (sample_weight[fit_rows], sample_weight[valid_rows])
        )
        estimator, _ = self._fit_estimator(
            X[fit_rows], y[fit_rows], self._network_targets(y[fit_rows]), fit_weight
        )
        features_net, features, device = self._read_network(estimator, X[fit_rows])
        _, _, weight_mean = self._layer_weights(features_net, codes.max() + 1)
        valid = self._features(features_net, X[valid_rows].astype(np.float32), device)
        delta, _ = holdout_prior_precision(
            features,
            weight_mean,
            valid,
            codes[valid_rows],
            sample_weight=fit_weight,
            valid_weight=valid_weight,
        )
        return delta, "holdout"

    def _fit_head(self, features_net, features, y, selected=None, sample_weight=None):
        y_codes, n_outputs = self._prepare_targets(y)  # sets classes_
        y_codes = y_codes.numpy()
        weight, bias, weight_mean = self._layer_weights(features_net, n_outputs)
        augmented = np.hstack([features, np.ones((len(features), 1))])
        hessian, proba = _ggn_hessian(augmented, weight_mean, sample_weight)
        curvature = FullCurvature(hessian)
        delta, method = selected if selected is not None else (None, "marglik")
        if delta is None:
            delta = laplace_prior_precision(curvature.eigenvalues(), weight_mean)
        posterior = curvature.covariance(delta)
        observed = np.clip(proba[np.arange(len(y_codes)), y_codes], 1e-300, None)
        self.log_marginal_likelihood_ = log_marginal_likelihood(
            np.log(observed), weight_mean, delta, curvature.eigenvalues(), sample_weight
        )
        self.coef_, self.intercept_ = weight, bias
        self.prior_precision_ = delta
        self.prior_precision_method_ = method
        head = _LaplaceHead(features_net, weight_mean, posterior)
        self.posterior_covariance_ = posterior.dense().numpy()
        return head
