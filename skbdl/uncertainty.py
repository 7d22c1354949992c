"""Uncertainty summaries computed from Monte Carlo samples of a predictive distribution.

Every function here is pure: numpy arrays in, numpy arrays out.  The estimators of
skbdl draw samples of the predictive distribution's parameters (class probabilities,
or a Gaussian mean and variance per sample) and summarise them with these functions,
so that every method decomposes uncertainty in exactly the same way.

Conventions
-----------
* The samples axis is always axis 0: class probabilities have shape
  ``(n_samples, n_rows, n_classes)``; Gaussian means and variances have shape
  ``(n_samples, n_rows)`` or ``(n_samples, n_rows, n_outputs)``.
* Entropies are in nats (natural logarithm), with ``0 log 0 = 0``.
* Classification: total = entropy of the mean prediction (predictive entropy),
  aleatoric = mean entropy of the samples (expected entropy), epistemic = their
  difference (the mutual information between the prediction and the parameters).
* Regression: by the law of total variance, total variance = mean of the variances
  (aleatoric) + variance of the means (epistemic, population variance over samples).
"""

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ClassificationUncertainty",
    "RegressionUncertainty",
    "entropy",
    "gaussian_nll_terms",
    "decompose_classification",
    "decompose_regression",
    "gaussian_mixture_cdf",
    "gaussian_mixture_quantile",
    "mixture_log_likelihood",
    "fit_log_scale",
    "fit_log_temperature",
]

#: Search range of the log recalibration factors (a factor between e^-6 and e^6).
_LOG_FACTOR_BOUNDS = (-6.0, 6.0)


#: ``0.5 log(2 pi)``, the constant of the Gaussian negative log-density.
HALF_LOG_2PI = 0.5 * float(np.log(2 * np.pi))


def gaussian_nll_terms(y, mean, var):
    """The Gaussian negative log-density without its constant, elementwise:
    ``0.5 * (log(var) + (y - mean)**2 / var)``.

    The training criteria (torch tensors), the metrics and the mixture likelihoods
    (numpy arrays) call it; the hand-written fast training steps (``skbdl.nn._fast``)
    compute it fused with its gradient.  Add :data:`HALF_LOG_2PI` for the full
    density.

    Parameters
    ----------
    y, mean, var : ndarray or torch.Tensor
        Targets, means and variances (broadcastable; numpy arrays or torch tensors,
        not mixed).

    Returns
    -------
    terms : ndarray or torch.Tensor
        The broadcast shape, of the inputs' kind.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl.uncertainty import HALF_LOG_2PI, gaussian_nll_terms
    >>> float(gaussian_nll_terms(np.array(1.0), 0.0, np.array(1.0)))
    0.5
    >>> round(float(gaussian_nll_terms(np.array(0.0), 0.0, np.array(1.0)) + HALF_LOG_2PI), 6)
    0.918939
    """
    resid = y - mean
    if hasattr(var, "log") and hasattr(resid, "square"):  # torch tensors
        return 0.5 * (var.log() + resid.square() / var)
    return 0.5 * (np.log(var) + np.square(resid) / var)


def entropy(proba, axis=-1):
    """Shannon entropy in nats of categorical distributions.

    Parameters
    ----------
    proba : array-like of shape (..., n_classes)
        Probabilities along ``axis``; each slice should sum to one.
    axis : int, default=-1
        The axis holding the classes.

    Returns
    -------
    entropy : ndarray
        ``-sum(p * log p)`` along ``axis`` (the axis is removed), with
        ``0 log 0 = 0``.  Values lie in ``[0, log n_classes]``.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl.uncertainty import entropy
    >>> float(entropy([0.5, 0.5]))  # log 2
    0.6931...
    >>> float(entropy([1.0, 0.0]))
    0.0
    """
    proba = np.asarray(proba, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(proba > 0, proba * np.log(proba), 0.0)
    return 0.0 - terms.sum(axis=axis)  # 0.0 - x avoids printing -0.0


def decompose_classification(proba_samples):
    """Split predictive uncertainty of a classifier into aleatoric and epistemic parts.

    Parameters
    ----------
    proba_samples : array-like of shape (n_samples, n_rows, n_classes)
        Class probabilities predicted by ``n_samples`` draws of the model.

    Returns
    -------
    proba : ndarray of shape (n_rows, n_classes)
        The Bayesian model average ``mean_s p_s``.
    total : ndarray of shape (n_rows,)
        Predictive entropy ``H[mean_s p_s]``.
    aleatoric : ndarray of shape (n_rows,)
        Expected entropy ``mean_s H[p_s]``.
    epistemic : ndarray of shape (n_rows,)
        Mutual information ``total - aleatoric`` (non-negative by concavity of the
        entropy; round-off below zero is clipped to zero).

    Examples
    --------
    Two samples that are each certain but disagree: all uncertainty is epistemic.

    >>> import numpy as np
    >>> from skbdl.uncertainty import decompose_classification
    >>> p = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    >>> proba, total, aleatoric, epistemic = decompose_classification(p)
    >>> proba.tolist(), float(aleatoric[0]), round(float(epistemic[0]), 4)
    ([[0.5, 0.5]], 0.0, 0.6931)
    """
    proba_samples = np.asarray(proba_samples, dtype=np.float64)
    if proba_samples.ndim != 3:
        raise ValueError(
            "proba_samples must have shape (n_samples, n_rows, n_classes); got "
            f"shape {proba_samples.shape}."
        )
    proba = proba_samples.mean(axis=0)
    total = entropy(proba)
    aleatoric = entropy(proba_samples).mean(axis=0)
    epistemic = np.maximum(total - aleatoric, 0.0)
    return proba, total, aleatoric, epistemic


def decompose_regression(mean_samples, var_samples):
    """Moments of an equally weighted mixture of Gaussians (law of total variance).

    Parameters
    ----------
    mean_samples : array-like of shape (n_samples, n_rows) or (n_samples, n_rows, n_outputs)
        Predictive means of ``n_samples`` draws of the model.
    var_samples : array-like of the same shape as ``mean_samples``
        Predictive (noise) variances of the same draws.

    Returns
    -------
    mean : ndarray of shape (n_rows,) or (n_rows, n_outputs)
        Mixture mean ``mean_s mu_s``.
    total_var : ndarray, same shape as ``mean``
        Mixture variance ``aleatoric_var + epistemic_var``.
    aleatoric_var : ndarray, same shape as ``mean``
        ``mean_s sigma_s**2``.
    epistemic_var : ndarray, same shape as ``mean``
        ``mean_s (mu_s - mean)**2`` (population variance over the samples).

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl.uncertainty import decompose_regression
    >>> mean, total, alea, epi = decompose_regression([[0.0], [2.0]], [[1.0], [3.0]])
    >>> mean.tolist(), alea.tolist(), epi.tolist(), total.tolist()
    ([1.0], [2.0], [1.0], [3.0])
    """
    mean_samples = np.asarray(mean_samples, dtype=np.float64)
    var_samples = np.asarray(var_samples, dtype=np.float64)
    if mean_samples.shape != var_samples.shape or mean_samples.ndim < 2:
        raise ValueError(
            "mean_samples and var_samples must share a shape (n_samples, n_rows[, "
            f"n_outputs]); got {mean_samples.shape} and {var_samples.shape}."
        )
    mean = mean_samples.mean(axis=0)
    aleatoric_var = var_samples.mean(axis=0)
    epistemic_var = np.mean((mean_samples - mean) ** 2, axis=0)
    return mean, aleatoric_var + epistemic_var, aleatoric_var, epistemic_var


@dataclass(frozen=True)
class ClassificationUncertainty:
    """Predictive uncertainty of a classifier, per row.

    Returned by ``predict_uncertainty`` of every skbdl classifier.  Entropies are in
    nats; ``total == aleatoric + epistemic`` holds exactly (up to round-off).

    Attributes
    ----------
    proba : ndarray of shape (n_rows, n_classes)
        Bayesian model average of the class probabilities (as ``predict_proba``).
    total : ndarray of shape (n_rows,)
        Predictive entropy, in ``[0, log n_classes]``.
    aleatoric : ndarray of shape (n_rows,)
        Expected entropy of the sampled predictions: noise the model cannot remove.
    epistemic : ndarray of shape (n_rows,)
        Mutual information between prediction and model parameters: what more data
        would remove.  Non-negative.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl.uncertainty import ClassificationUncertainty, decompose_classification
    >>> u = ClassificationUncertainty(*decompose_classification(np.full((4, 1, 2), 0.5)))
    >>> round(float(u.total[0]), 4), float(u.mutual_information[0])
    (0.6931, 0.0)
    """

    proba: np.ndarray
    total: np.ndarray
    aleatoric: np.ndarray
    epistemic: np.ndarray

    @property
    def predictive_entropy(self):
        """Alias of ``total``."""
        return self.total

    @property
    def expected_entropy(self):
        """Alias of ``aleatoric``."""
        return self.aleatoric

    @property
    def mutual_information(self):
        """Alias of ``epistemic``."""
        return self.epistemic


@dataclass(frozen=True)
class RegressionUncertainty:
    """Predictive mean and variance decomposition of a regressor, per row.

    Returned by ``predict_uncertainty`` of every skbdl regressor, in the target's
    original units.  Arrays have shape ``(n_rows,)`` when the model was fitted on a
    1-D ``y`` and ``(n_rows, n_outputs)`` otherwise.

    Attributes
    ----------
    mean : ndarray
        Predictive mean (as ``predict``).
    std : ndarray
        Predictive standard deviation, ``sqrt(total_var)``.
    total_var : ndarray
        ``aleatoric_var + epistemic_var``.
    aleatoric_var : ndarray
        Expected noise variance ``E[sigma**2]``.
    epistemic_var : ndarray
        Variance of the sampled means ``Var[mu]``.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl.uncertainty import RegressionUncertainty, decompose_regression
    >>> mean, total, alea, epi = decompose_regression([[0.0], [2.0]], [[1.0], [3.0]])
    >>> u = RegressionUncertainty(mean, np.sqrt(total), total, alea, epi)
    >>> round(float(u.std[0]) ** 2, 6), float(u.epistemic_std[0])
    (3.0, 1.0)
    """

    mean: np.ndarray
    std: np.ndarray
    total_var: np.ndarray
    aleatoric_var: np.ndarray
    epistemic_var: np.ndarray

    @property
    def aleatoric_std(self):
        """``sqrt(aleatoric_var)``."""
        return np.sqrt(self.aleatoric_var)

    @property
    def epistemic_std(self):
        """``sqrt(epistemic_var)``."""
        return np.sqrt(self.epistemic_var)


def _gaussian_interval(mean, std, confidence):
    """Central intervals ``mean -+ Phi^-1((1 + confidence) / 2) * std`` of Gaussians,
    holding a draw with probability ``confidence``: shape ``mean.shape + (2,)``,
    lower and upper ends on the last axis."""
    from scipy.special import ndtri

    half_width = ndtri(0.5 + confidence / 2) * std
    return np.stack([mean - half_width, mean + half_width], axis=-1)


def gaussian_mixture_cdf(y, mean_samples, var_samples):
    """Cumulative distribution function of an equally weighted mixture of Gaussians.

    Parameters
    ----------
    y : array-like of shape (n_rows,) or (n_rows, n_outputs), or (n_levels, n_rows[, n_outputs])
        Where to evaluate the CDF of each row's mixture (several points per row
        with a leading axis).
    mean_samples : array-like of shape (n_samples, n_rows) or (n_samples, n_rows, n_outputs)
        Means of the components (samples on axis 0).
    var_samples : array-like, broadcastable to the shape of ``mean_samples``
        Variances of the components (strictly positive).

    Returns
    -------
    cdf : ndarray, shape of ``y``
        ``mean_s Phi((y - mu_s) / sigma_s)``.

    Examples
    --------
    >>> from skbdl.uncertainty import gaussian_mixture_cdf
    >>> gaussian_mixture_cdf([0.0], [[-1.0], [1.0]], [[1.0], [1.0]]).tolist()  # symmetric
    [0.5]
    """
    from scipy.special import ndtr

    y = np.asarray(y, dtype=np.float64)
    mean_samples = np.asarray(mean_samples, dtype=np.float64)
    var_samples = np.broadcast_to(np.asarray(var_samples, dtype=np.float64), mean_samples.shape)
    rows = mean_samples.shape[1:]
    if y.shape[-len(rows) :] != rows:
        raise ValueError(
            f"y of shape {y.shape} does not end with the rows shape {rows} of mean_samples."
        )
    lead = y.shape[: y.ndim - len(rows)]
    y = y.reshape(lead + (1,) + rows)
    z = (y - mean_samples) / np.sqrt(var_samples)
    return ndtr(z).mean(axis=len(lead))


def gaussian_mixture_quantile(q, mean_samples, var_samples, tol=1e-9, max_iter=200):
    """Quantiles of an equally weighted mixture of Gaussians, by bisection.

    The mixture's ``q``-quantile lies between the smallest and the largest of its
    components' ``q``-quantiles; bisection on :func:`gaussian_mixture_cdf` narrows
    that bracket until it is shorter than ``tol`` times the largest component
    standard deviation.

    Parameters
    ----------
    q : float or array-like of shape (n_levels,)
        Probabilities in ``(0, 1)``.
    mean_samples : array-like of shape (n_samples, n_rows) or (n_samples, n_rows, n_outputs)
        Means of the components (samples on axis 0).
    var_samples : array-like, broadcastable to the shape of ``mean_samples``
        Variances of the components (strictly positive).
    tol : float, default=1e-9
        Relative precision (in units of the largest component standard deviation).
    max_iter : int, default=200
        Most bisection steps.

    Returns
    -------
    quantile : ndarray of shape (n_rows[, n_outputs]) or (n_levels, n_rows[, n_outputs])
        The values ``x`` with ``gaussian_mixture_cdf(x) = q``; the leading axis only
        when ``q`` is an array.

    Examples
    --------
    One component: the Gaussian's quantiles.  Two components: the median of a
    symmetric mixture is its centre.

    >>> from skbdl.uncertainty import gaussian_mixture_quantile
    >>> gaussian_mixture_quantile([0.5, 0.975], [[1.0]], [[4.0]]).round(4).tolist()
    [[1.0], [4.9199]]
    >>> round(float(gaussian_mixture_quantile(0.5, [[0.0], [4.0]], [[1.0], [1.0]])[0]), 6)
    2.0
    """
    from scipy.special import ndtri

    q = np.asarray(q, dtype=np.float64)
    if np.any((q <= 0) | (q >= 1)):
        raise ValueError("q must lie strictly between 0 and 1.")
    mean_samples = np.asarray(mean_samples, dtype=np.float64)
    var_samples = np.broadcast_to(np.asarray(var_samples, dtype=np.float64), mean_samples.shape)
    if mean_samples.ndim < 2 or not np.all(var_samples > 0):
        raise ValueError(
            "mean_samples must have shape (n_samples, n_rows[, n_outputs]) and var_samples "
            "must be strictly positive."
        )
    levels = q.reshape((-1,) + (1,) * mean_samples.ndim)
    component_quantiles = mean_samples + np.sqrt(var_samples) * ndtri(levels)
    low, high = component_quantiles.min(axis=1), component_quantiles.max(axis=1)
    scale = np.sqrt(var_samples.max(axis=0))
    for _ in range(max_iter):
        if np.all(high - low <= tol * scale):
            break
        middle = 0.5 * (low + high)
        below = gaussian_mixture_cdf(middle, mean_samples, var_samples) < q.reshape(
            (-1,) + (1,) * (mean_samples.ndim - 1)
        )
        low = np.where(below, middle, low)
        high = np.where(below, high, middle)
    result = 0.5 * (low + high)
    return result[0] if q.ndim == 0 else result


def _scale_spread(mean_samples, var_samples, scale):
    """The draws ``(mean_samples, var_samples)`` (numpy arrays or torch tensors,
    draws on axis 0) with the mixture's spread scaled by ``scale`` about its mean:
    every mean moves ``scale`` times as far from the draws' average, every variance
    ``scale**2`` times, so the total variance (both parts) scales by ``scale**2``
    and the mean stays.  Variance scaling, as fitted by :func:`fit_log_scale`."""
    centre = mean_samples.mean(axis=0, keepdims=True)
    return centre + scale * (mean_samples - centre), var_samples * scale**2


def _log_mean_exp(log_terms):
    """``log mean_s exp(log_terms_s)`` over axis 0, by ``logsumexp``: the log of an
    equal-weight mixture from its components' logs.  Numpy form of
    :func:`skbdl._reductions.log_mean_exp`."""
    from scipy.special import logsumexp

    return logsumexp(log_terms, axis=0) - np.log(len(log_terms))


def _mixture_log_density(y, mean_samples, var_samples):
    """``log (1/S) sum_s N(y; mean_s, var_s)``, elementwise (draws on axis 0 of the
    means and variances): the log-density of the equal-weight Gaussian mixture."""
    return _log_mean_exp(-(gaussian_nll_terms(y, mean_samples, var_samples) + HALF_LOG_2PI))


def mixture_log_likelihood(y, mean_samples, var_samples, scale=1.0, sample_weight=None):
    """Mean log-density of ``y`` under the equal-weight Gaussian mixture of the draws,
    with the mixture's spread scaled by ``scale`` about its mean.

    Draw ``s`` contributes ``N(c + scale * (mean_s - c), scale**2 * var_s)`` with ``c``
    the average of the draws' means: the mixture keeps its mean, shape and the split
    of its variance, and its total variance is multiplied by ``scale**2``.

    Parameters
    ----------
    y : ndarray of shape (n_rows,)
        Observed targets.
    mean_samples, var_samples : ndarray of shape (n_samples, n_rows)
        The draws' means and (positive) variances.
    scale : float, default=1.0
        Positive factor applied to the predictive standard deviation.
    sample_weight : ndarray of shape (n_rows,), default=None
        Row weights: the mean becomes ``sum_i w_i log p(y_i) / sum_i w_i``.

    Returns
    -------
    log_likelihood : float
        ``mean_i log p(y_i)``, in nats.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl.uncertainty import mixture_log_likelihood
    >>> round(mixture_log_likelihood(np.zeros(1), np.zeros((1, 1)), np.ones((1, 1))), 4)
    -0.9189
    """
    y, mean_samples, var_samples = (
        np.asarray(a, dtype=np.float64) for a in (y, mean_samples, var_samples)
    )
    log_density = _mixture_log_density(y, *_scale_spread(mean_samples, var_samples, scale))
    return float(np.average(log_density, weights=sample_weight))


def fit_log_scale(mean_samples, var_samples, y, sample_weight=None):
    """The log of the factor on the predictive standard deviation that maximises the
    held-out log-likelihood of a Gaussian mixture (variance scaling).

    Parameters
    ----------
    mean_samples, var_samples : ndarray of shape (n_samples, n_rows)
        The draws' means and variances on held-out rows.
    y : ndarray of shape (n_rows,)
        Their targets.
    sample_weight : ndarray of shape (n_rows,), default=None
        Row weights of the log-likelihood.

    Returns
    -------
    log_scale : float
        ``argmax_t mixture_log_likelihood(y, mean_samples, var_samples, exp(t))``,
        searched in ``[-6, 6]``.  For a single Gaussian draw this is the closed form
        ``0.5 * log(mean((y - mean)**2 / var))``.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl.uncertainty import fit_log_scale
    >>> y = 3.0 * np.random.RandomState(0).randn(20000)   # true scale 3, model says 1
    >>> round(float(np.exp(fit_log_scale(np.zeros((1, 20000)), np.ones((1, 20000)), y))), 1)
    3.0
    """
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(
        lambda t: -mixture_log_likelihood(y, mean_samples, var_samples, np.exp(t), sample_weight),
        bounds=_LOG_FACTOR_BOUNDS,
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(result.x)


def _log_model_average(logit_samples, temperature=1.0, labels=None):
    """``log mean_s softmax(logit_samples_s / temperature)``: the log class
    probabilities of the draws' model average at a temperature, of shape (n_rows,
    n_classes), or (n_rows,) for the class ``labels[i]`` of each row when given.

    The numpy reference of :func:`skbdl._reductions.log_model_average`.
    """
    from scipy.special import log_softmax

    log_proba = log_softmax(np.asarray(logit_samples, dtype=np.float64) / temperature, axis=-1)
    if labels is not None:
        log_proba = log_proba[:, np.arange(log_proba.shape[1]), labels]
    return _log_mean_exp(log_proba)


def fit_log_temperature(logit_samples, labels, sample_weight=None):
    """The log temperature that maximises the held-out log-likelihood of the model
    average ``mean_s softmax(logits_s / T)`` (temperature scaling, Guo et al. 2017,
    applied to every draw).

    Parameters
    ----------
    logit_samples : ndarray of shape (n_samples, n_rows, n_classes)
        The draws' logits on held-out rows.
    labels : ndarray of shape (n_rows,)
        Their class indices.
    sample_weight : ndarray of shape (n_rows,), default=None
        Row weights of the log-likelihood.

    Returns
    -------
    log_temperature : float
        Searched in ``[-6, 6]``; ``-6`` when the likelihood has no maximum inside
        (it grows as the temperature falls: the draws separate the rows).

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl.uncertainty import fit_log_temperature
    >>> rng = np.random.RandomState(0)
    >>> logits = rng.randn(1, 5000, 2) * 4.0         # confident logits...
    >>> labels = (rng.rand(5000) < 0.5).astype(int)   # ... for coin flips
    >>> bool(np.exp(fit_log_temperature(logits, labels)) > 10)
    True
    """
    from scipy.optimize import minimize_scalar

    logit_samples = np.asarray(logit_samples, dtype=np.float64)

    def nll(t):
        log_lik = _log_model_average(logit_samples, np.exp(t), labels)
        return -float(np.average(log_lik, weights=sample_weight))

    result = minimize_scalar(
        nll, bounds=_LOG_FACTOR_BOUNDS, method="bounded", options={"xatol": 1e-6}
    )
    # No interior maximum: the likelihood still grows (or is flat at its float limit)
    # as T -> 0, i.e. the draws separate the rows.  Report the lower bound.
    if nll(result.x - 0.5) <= nll(result.x) + 1e-12:
        return float(_LOG_FACTOR_BOUNDS[0])
    return float(result.x)
