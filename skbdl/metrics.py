"""Metrics and scorers for probabilistic predictions.

Every metric takes numpy-compatible arrays and returns a Python ``float``; the
functions named ``*_curve`` return the arrays behind a figure.  The scorers at the
end of the module wrap the metrics for ``scoring=`` in ``GridSearchCV`` and
``cross_validate``.

Conventions
-----------
* **Units.** Everything is in the units of ``y``: a root mean squared error, a CRPS
  and an interval width are in the target's units; a negative log-likelihood (NLL)
  is a log-density of ``y`` in nats, so it changes by ``log c`` when ``y`` is
  multiplied by ``c``.  The UCI benchmark reports both in the target's original
  (unstandardised) units, as the papers do.  Probabilities, coverages, calibration
  errors and AUROC values are fractions in ``[0, 1]``.
* **Sign.** Metrics are reported as the literature reports them: lower is better
  for losses and errors (NLL, CRPS, ECE, MCE, Brier score, FPR at 95% TPR), higher
  is better for AUROC, AUPR and accuracy.  The scorers follow scikit-learn's rule
  "greater is better": ``neg_nll_scorer`` returns ``-nll`` and so on.
* **Means over rows.** NLLs, CRPS and Brier scores are means over rows (and over
  outputs for multi-output regression).  NLLs include the full normalising
  constant ``0.5 log 2 pi``; the test log-likelihood reported by the Bayesian deep
  learning literature is exactly ``-nll`` (higher is better).
* **Shapes.** Regression: ``y``, ``mean`` and ``std`` share a shape,
  ``(n_rows,)`` or ``(n_rows, n_outputs)``; Monte Carlo samples carry an extra
  leading axis ``(n_samples, ...)``, as returned by ``sample_predictions``;
  intervals carry an extra trailing axis of length 2 (lower, upper), as returned by
  ``predict_interval``.  Classification: ``proba`` has shape
  ``(n_rows, n_classes)``, columns in the order of ``classes`` (by default the
  labels ``0 .. n_classes - 1``; pass the estimator's ``classes_`` otherwise).
* **Calibration bins.** Classification calibration uses the top-label confidence
  (the highest probability of a row) and whether the predicted class is right.
  ``strategy='uniform'``: ``n_bins`` equal-width bins ``(k/n_bins, (k+1)/n_bins]``
  (a confidence of exactly 0 falls in the first); ``strategy='quantile'``
  (adaptive): ``n_bins`` bins holding equal numbers of rows (sizes differ by at most
  one) after sorting by confidence.  Empty bins are skipped.
* **Out-of-distribution scores.** Any per-row uncertainty (predictive entropy,
  mutual information, predictive standard deviation, ``1 - max proba``) with
  *higher meaning more likely out-of-distribution*; out-of-distribution rows are the
  positive class.
"""

import numbers

import numpy as np
from scipy.special import logsumexp, ndtr
from scipy.stats import norm
from sklearn.base import is_classifier
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = [
    "UncertaintyScorer",
    "accuracy_rejection_curve",
    "area_under_rejection_curve",
    "brier_score",
    "categorical_nll",
    "crps_gaussian",
    "crps_gaussian_mixture",
    "expected_calibration_error",
    "gaussian_mixture_nll",
    "gaussian_nll",
    "get_scorer",
    "get_scorer_names",
    "interval_coverage",
    "maximum_calibration_error",
    "mean_interval_width",
    "neg_brier_scorer",
    "neg_crps_scorer",
    "neg_ece_scorer",
    "neg_nll_scorer",
    "neg_regression_calibration_error_scorer",
    "ood_aupr",
    "ood_auroc",
    "ood_fpr_at_tpr",
    "regression_calibration_curve",
    "regression_calibration_error",
    "reliability_curve",
    "rmse",
]

_LOG_2PI = float(np.log(2.0 * np.pi))

#: Component pairs evaluated at once by ``crps_gaussian_mixture`` (bounds memory).
_CRPS_PAIRS_PER_CHUNK = 2**22


def _as_float_arrays(*arrays):
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


# ------------------------------------------------------------------ regression
def rmse(y, mean):
    """Root mean squared error.

    Parameters
    ----------
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Observed targets.
    mean : array-like of the same shape
        Point predictions.

    Returns
    -------
    rmse : float
        ``sqrt(mean((y - mean)**2))`` over all entries, in the units of ``y``
        (lower is better).

    Examples
    --------
    >>> from skbdl.metrics import rmse
    >>> rmse([0.0, 0.0], [3.0, -4.0])  # sqrt((9 + 16) / 2)
    3.5355339059327378
    """
    y, mean = _as_float_arrays(y, mean)
    if y.shape != mean.shape:
        raise ValueError(f"y and mean must have the same shape; got {y.shape} and {mean.shape}.")
    return float(np.sqrt(np.mean((y - mean) ** 2)))


def gaussian_nll(y, mean, var):
    """Mean negative log-likelihood of ``y`` under one Gaussian per row.

    Parameters
    ----------
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Observed targets.
    mean : array-like of the same shape
        Predictive means.
    var : array-like, broadcastable to the same shape
        Predictive variances (strictly positive), in squared units of ``y``.  For a
        model with epistemic uncertainty this is the total variance (noise plus
        model), as in probabilistic backpropagation's
        ``ll = mean(-0.5 log(2 pi (v + v_noise)) - (y - m)**2 / (2 (v + v_noise)))``.

    Returns
    -------
    nll : float
        ``mean(0.5 log(2 pi var) + (y - mean)**2 / (2 var))`` over all entries, in
        nats (lower is better).  The test log-likelihood is ``-nll``.

    See Also
    --------
    gaussian_mixture_nll : The NLL of a mixture of Gaussians (MC samples, ensembles).

    Examples
    --------
    A standard normal evaluated at its mean, and one standard deviation away:

    >>> from skbdl.metrics import gaussian_nll
    >>> round(gaussian_nll([0.0], [0.0], [1.0]), 6)  # 0.5 log(2 pi)
    0.918939
    >>> round(gaussian_nll([1.0], [0.0], [1.0]), 6)  # 0.5 log(2 pi) + 0.5
    1.418939
    """
    y, mean, var = _as_float_arrays(y, mean, var)
    if y.shape != mean.shape:
        raise ValueError(f"y and mean must have the same shape; got {y.shape} and {mean.shape}.")
    var = np.broadcast_to(var, y.shape)
    if not np.all(var > 0):
        raise ValueError("var must be strictly positive.")
    return float(np.mean(0.5 * (_LOG_2PI + np.log(var)) + 0.5 * (y - mean) ** 2 / var))


def gaussian_mixture_nll(y, mean_samples, var_samples):
    """Mean negative log-likelihood of ``y`` under an equal-weight mixture of Gaussians.

    The predictive density of row ``i`` is ``(1/S) sum_s N(y_i; mu_si, var_si)``: the
    exact predictive distribution of a model represented by ``S`` samples (MC
    dropout masks, ensemble members, weight samples), as opposed to the single
    Gaussian with the mixture's mean and variance that :func:`gaussian_nll` scores.
    Computed with ``logsumexp`` so that it is stable when the components are far
    from ``y``.

    With every ``var_si = 1 / tau`` this is exactly the test log-likelihood of Gal &
    Ghahramani (2016) for MC dropout with ``T = S`` passes::

        ll_i = logsumexp_t(-tau/2 (y_i - mu_ti)**2) - log T - 0.5 log 2 pi + 0.5 log tau

    Parameters
    ----------
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Observed targets.
    mean_samples : array-like of shape (n_samples, n_rows) or (n_samples, n_rows, n_outputs)
        Mean of each mixture component (samples on axis 0), as returned by
        ``sample_predictions`` of skbdl's regressors.
    var_samples : array-like, broadcastable to the shape of ``mean_samples``
        Variance of each component (strictly positive), in squared units of ``y``.

    Returns
    -------
    nll : float
        ``-mean_i log((1/S) sum_s N(y_i; mu_si, var_si))`` in nats, averaged over
        rows (and outputs, each scored by its own marginal mixture).  Lower is
        better; the test log-likelihood is ``-nll``.

    See Also
    --------
    gaussian_nll : A single Gaussian per row.

    Examples
    --------
    One component is the single Gaussian; two coincident components too:

    >>> from skbdl.metrics import gaussian_mixture_nll, gaussian_nll
    >>> round(gaussian_mixture_nll([0.0], [[0.0]], [[1.0]]), 6)
    0.918939
    >>> round(gaussian_mixture_nll([0.0], [[0.0], [0.0]], [[1.0], [1.0]]), 6)
    0.918939

    Two components at -1 and +1 with unit variance, observed at 0: the density is
    ``N(0; 1, 1)``, so the NLL is ``0.5 log(2 pi) + 0.5``.

    >>> round(gaussian_mixture_nll([0.0], [[-1.0], [1.0]], [[1.0], [1.0]]), 6)
    1.418939
    """
    y, mean_samples, var_samples = _as_float_arrays(y, mean_samples, var_samples)
    if mean_samples.ndim < 2 or mean_samples.shape[1:] != y.shape:
        raise ValueError(
            "mean_samples must have shape (n_samples,) + y.shape; got "
            f"{mean_samples.shape} for y of shape {y.shape}."
        )
    var_samples = np.broadcast_to(var_samples, mean_samples.shape)
    if not np.all(var_samples > 0):
        raise ValueError("var_samples must be strictly positive.")
    log_components = -0.5 * (_LOG_2PI + np.log(var_samples) + (y - mean_samples) ** 2 / var_samples)
    log_density = logsumexp(log_components, axis=0) - np.log(mean_samples.shape[0])
    return float(-np.mean(log_density))


def _expected_abs_gaussian(m, var):
    """``E|Z|`` for ``Z ~ N(m, var)`` (elementwise); ``|m|`` where ``var == 0``."""
    sd = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, m / np.where(sd > 0, sd, 1.0), 0.0)
    folded = m * (2.0 * ndtr(z) - 1.0) + 2.0 * sd * norm.pdf(z)
    return np.where(sd > 0, folded, np.abs(m))


def crps_gaussian(y, mean, std):
    """Mean continuous ranked probability score (CRPS) of Gaussian predictions.

    ``CRPS(F, y) = integral (F(t) - 1[t >= y])**2 dt`` compares the whole predictive
    distribution ``F`` with the observation: it is the mean absolute error for a
    point prediction (``std = 0``) and rewards a spread that matches the errors.
    For ``F = N(mean, std**2)`` it has the closed form (Gneiting & Raftery 2007)
    ``std * (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi))`` with
    ``z = (y - mean) / std``.

    Parameters
    ----------
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Observed targets.
    mean : array-like of the same shape
        Predictive means.
    std : array-like, broadcastable to the same shape
        Predictive standard deviations (non-negative; 0 gives the absolute error).

    Returns
    -------
    crps : float
        Mean over all entries, in the units of ``y`` (lower is better).

    See Also
    --------
    crps_gaussian_mixture : The CRPS of a mixture of Gaussians (Monte Carlo samples).

    References
    ----------
    T. Gneiting and A. E. Raftery, "Strictly Proper Scoring Rules, Prediction, and
    Estimation", Journal of the American Statistical Association 102(477), 2007.

    Examples
    --------
    >>> from skbdl.metrics import crps_gaussian
    >>> round(crps_gaussian([0.0], [0.0], [1.0]), 6)  # (2 - sqrt 2) / sqrt(2 pi)
    0.233695
    >>> crps_gaussian([3.0], [1.0], [0.0])  # a point prediction: the absolute error
    2.0
    """
    y, mean, std = _as_float_arrays(y, mean, std)
    if y.shape != mean.shape:
        raise ValueError(f"y and mean must have the same shape; got {y.shape} and {mean.shape}.")
    std = np.broadcast_to(std, y.shape)
    if not np.all(std >= 0):
        raise ValueError("std must be non-negative.")
    crps = _expected_abs_gaussian(y - mean, std**2) - std / np.sqrt(np.pi)
    return float(np.mean(crps))


def crps_gaussian_mixture(y, mean_samples, var_samples):
    """Mean CRPS of an equal-weight mixture of Gaussians, in closed form.

    The predictive distribution of row ``i`` is ``(1/S) sum_s N(mu_si, var_si)``,
    the exact predictive of a model represented by ``S`` samples.  With
    ``CRPS(F, y) = E|X - y| - 0.5 E|X - X'|`` (``X, X'`` independent draws of
    ``F``) and ``E|N(m, v)| = m (2 Phi(m / sqrt v) - 1) + 2 sqrt(v) phi(m / sqrt v)``,
    both expectations are sums over components (``S**2`` pairs for the second, so
    the cost grows with the square of the number of samples); rows are processed in
    chunks of bounded memory.  With every variance 0 this is
    the CRPS of the empirical distribution of the sampled means.

    Parameters
    ----------
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Observed targets.
    mean_samples : array-like of shape (n_samples, n_rows) or (n_samples, n_rows, n_outputs)
        Mean of each component (samples on axis 0), as returned by
        ``sample_predictions``.
    var_samples : array-like, broadcastable to the shape of ``mean_samples``
        Variance of each component (non-negative), in squared units of ``y``.

    Returns
    -------
    crps : float
        Mean over rows (and outputs), in the units of ``y`` (lower is better).

    See Also
    --------
    crps_gaussian : A single Gaussian per row.

    Examples
    --------
    One component is the single Gaussian:

    >>> from skbdl.metrics import crps_gaussian, crps_gaussian_mixture
    >>> import numpy as np
    >>> bool(np.isclose(crps_gaussian_mixture([0.5], [[0.0]], [[1.0]]),
    ...                 crps_gaussian([0.5], [0.0], [1.0])))
    True

    Two point masses at -1 and +1, observed at 0: ``E|X - y| = 1`` and
    ``E|X - X'| = 1`` (half the pairs differ by 2), so the CRPS is 0.5.

    >>> crps_gaussian_mixture([0.0], [[-1.0], [1.0]], [[0.0], [0.0]])
    0.5
    """
    y, mean_samples, var_samples = _as_float_arrays(y, mean_samples, var_samples)
    if mean_samples.ndim < 2 or mean_samples.shape[1:] != y.shape:
        raise ValueError(
            "mean_samples must have shape (n_samples,) + y.shape; got "
            f"{mean_samples.shape} for y of shape {y.shape}."
        )
    var_samples = np.broadcast_to(var_samples, mean_samples.shape)
    if not np.all(var_samples >= 0):
        raise ValueError("var_samples must be non-negative.")
    n_samples = mean_samples.shape[0]
    means = mean_samples.reshape(n_samples, -1)
    variances = var_samples.reshape(n_samples, -1)
    y_flat = y.reshape(-1)
    total = 0.0
    step = max(1, _CRPS_PAIRS_PER_CHUNK // n_samples**2)
    for start in range(0, y_flat.size, step):
        cols = slice(start, start + step)
        mu, var = means[:, cols], variances[:, cols]
        to_y = _expected_abs_gaussian(y_flat[cols] - mu, var).mean(axis=0)
        pairs = _expected_abs_gaussian(mu[:, None] - mu[None, :], var[:, None] + var[None, :]).mean(
            axis=(0, 1)
        )
        total += float(np.sum(to_y - 0.5 * pairs))
    return total / y_flat.size


def _check_regression(y, mean, std):
    y, mean, std = _as_float_arrays(y, mean, std)
    if y.shape != mean.shape:
        raise ValueError(f"y and mean must have the same shape; got {y.shape} and {mean.shape}.")
    std = np.broadcast_to(std, y.shape)
    if not np.all(std > 0):
        raise ValueError("std must be strictly positive.")
    return y, mean, std


def regression_calibration_curve(y, mean, std, n_levels=19):
    """Observed against expected frequency of ``y`` below each predictive quantile.

    For a calibrated regressor the probability integral transform ``Phi((y - mean)
    / std)`` is uniform, so for every level ``p`` a fraction ``p`` of the rows have
    ``y`` below their predictive ``p``-quantile (Kuleshov, Fenner & Ermon 2018).
    The curve compares the two; a calibrated model follows the diagonal, an
    over-confident one (intervals too narrow) gives an S-shaped curve steeper than
    the diagonal in the middle.

    Parameters
    ----------
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Observed targets.
    mean : array-like of the same shape
        Predictive means.
    std : array-like, broadcastable to the same shape
        Predictive standard deviations (strictly positive).  The predictive
        distribution is taken to be ``N(mean, std**2)``, the Gaussian summary that
        ``predict(X, return_std=True)`` returns.
    n_levels : int, default=19
        Number of levels ``p = k / (n_levels + 1)``, ``k = 1 .. n_levels``
        (0.05, 0.10, ..., 0.95 by default).

    Returns
    -------
    expected : ndarray of shape (n_levels,)
        The levels ``p``.
    observed : ndarray of shape (n_levels,)
        Fraction of entries of ``y`` at or below their ``p``-quantile.

    See Also
    --------
    regression_calibration_error : The mean distance of this curve from the diagonal.

    References
    ----------
    V. Kuleshov, N. Fenner and S. Ermon, "Accurate Uncertainties for Deep Learning
    Using Calibrated Regression", ICML 2018.

    Examples
    --------
    >>> from skbdl.metrics import regression_calibration_curve
    >>> expected, observed = regression_calibration_curve(
    ...     [-1.0, 0.1, 2.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], n_levels=3)
    >>> expected.tolist(), observed.round(3).tolist()  # quantiles -0.674, 0, 0.674
    ([0.25, 0.5, 0.75], [0.333, 0.333, 0.667])
    """
    y, mean, std = _check_regression(y, mean, std)
    if not isinstance(n_levels, numbers.Integral) or n_levels < 1:
        raise ValueError(f"n_levels must be a positive integer; got {n_levels!r}.")
    expected = np.arange(1, n_levels + 1) / (n_levels + 1)
    pit = ndtr((y - mean) / std).reshape(-1)
    observed = np.mean(pit[:, None] <= expected[None, :], axis=0)
    return expected, observed


def regression_calibration_error(y, mean, std, n_levels=19):
    """Mean absolute gap between observed and expected quantile coverage.

    The mean over the levels of :func:`regression_calibration_curve` of
    ``|observed - expected|``: 0 for a calibrated Gaussian predictive, up to 0.5.
    For rows drawn from the predictive itself it is of the order of
    ``sqrt(p (1 - p) / n_rows)``, the sampling noise of the observed fractions.

    Parameters
    ----------
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Observed targets.
    mean : array-like of the same shape
        Predictive means.
    std : array-like, broadcastable to the same shape
        Predictive standard deviations (strictly positive).
    n_levels : int, default=19
        Number of levels ``p = k / (n_levels + 1)``.

    Returns
    -------
    error : float
        In ``[0, 0.5]``, a fraction of rows (lower is better).

    Examples
    --------
    Errors of standard deviation 1 predicted with standard deviation 0.1 (far too
    sure): almost every row lies below the low quantiles or above the high ones.

    >>> import numpy as np
    >>> from skbdl.metrics import regression_calibration_error
    >>> rng = np.random.RandomState(0)
    >>> y = rng.randn(10_000)
    >>> regression_calibration_error(y, np.zeros_like(y), 1.0) < 0.01
    True
    >>> round(regression_calibration_error(y, np.zeros_like(y), 0.1), 2)
    0.21
    """
    expected, observed = regression_calibration_curve(y, mean, std, n_levels=n_levels)
    return float(np.mean(np.abs(observed - expected)))


def interval_coverage(y, intervals):
    """Fraction of targets inside their prediction interval.

    Parameters
    ----------
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Observed targets.
    intervals : array-like of shape y.shape + (2,)
        Lower and upper ends on the last axis, as returned by ``predict_interval``.
        Ends count as inside.

    Returns
    -------
    coverage : float
        In ``[0, 1]``; a well-calibrated interval of confidence ``c`` covers about
        ``c`` of held-out rows.

    See Also
    --------
    mean_interval_width : The other half of the story: narrow intervals that cover.

    Examples
    --------
    >>> from skbdl.metrics import interval_coverage
    >>> interval_coverage([0.0, 1.0, 3.0], [[-1, 1], [-1, 1], [-1, 1]])
    0.6666666666666666
    """
    y, intervals = _as_float_arrays(y, intervals)
    if intervals.shape != y.shape + (2,):
        raise ValueError(
            f"intervals must have shape y.shape + (2,) = {y.shape + (2,)}; got {intervals.shape}."
        )
    return float(np.mean((intervals[..., 0] <= y) & (y <= intervals[..., 1])))


def mean_interval_width(intervals):
    """Mean width of prediction intervals.

    Parameters
    ----------
    intervals : array-like of shape (..., 2)
        Lower and upper ends on the last axis.

    Returns
    -------
    width : float
        Mean of ``upper - lower``, in the units of ``y`` (narrower is better, at a
        given coverage).

    Examples
    --------
    >>> from skbdl.metrics import mean_interval_width
    >>> mean_interval_width([[-1.0, 1.0], [0.0, 4.0]])
    3.0
    """
    intervals = np.asarray(intervals, dtype=np.float64)
    if intervals.ndim < 1 or intervals.shape[-1] != 2:
        raise ValueError(f"intervals must have shape (..., 2); got {intervals.shape}.")
    return float(np.mean(intervals[..., 1] - intervals[..., 0]))


# -------------------------------------------------------------- classification
def _check_proba(y_true, proba, classes):
    """Validated ``(proba, index of the true class per row)``."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2:
        raise ValueError(f"proba must have shape (n_rows, n_classes); got {proba.shape}.")
    y_true = np.asarray(y_true)
    if y_true.shape != (proba.shape[0],):
        raise ValueError(
            f"y_true must have shape ({proba.shape[0]},) to match proba; got {y_true.shape}."
        )
    classes = np.arange(proba.shape[1]) if classes is None else np.asarray(classes)
    if classes.shape != (proba.shape[1],):
        raise ValueError(
            f"classes must have one label per column of proba ({proba.shape[1]}); "
            f"got {classes.shape[0] if classes.ndim else classes} labels."
        )
    order = np.argsort(classes, kind="stable")
    position = np.searchsorted(classes[order], y_true)
    position = np.clip(position, 0, len(classes) - 1)
    index = order[position]
    unknown = classes[index] != y_true
    if np.any(unknown):
        raise ValueError(
            f"y_true contains labels not in classes: {np.unique(y_true[unknown])[:5].tolist()}."
        )
    return proba, index


def _calibration_bins(y_true, proba, n_bins, strategy, classes):
    """Per non-empty bin: mean confidence, accuracy and row count."""
    proba, index = _check_proba(y_true, proba, classes)
    if not isinstance(n_bins, numbers.Integral) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}.")
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == index).astype(np.float64)
    if strategy == "uniform":
        bins = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    elif strategy == "quantile":
        bins = np.empty(len(confidence), dtype=int)
        for b, rows in enumerate(np.array_split(np.argsort(confidence, kind="stable"), n_bins)):
            bins[rows] = b
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile'; got {strategy!r}.")
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    filled = counts > 0
    sum_confidence = np.bincount(bins, weights=confidence, minlength=n_bins)
    sum_correct = np.bincount(bins, weights=correct, minlength=n_bins)
    counts = counts[filled]
    return sum_confidence[filled] / counts, sum_correct[filled] / counts, counts


def reliability_curve(y_true, proba, *, n_bins=15, strategy="uniform", classes=None):
    """Accuracy against mean top-label confidence, per confidence bin.

    The data behind a reliability diagram: rows are binned by their confidence
    (highest probability); for a calibrated model each bin's accuracy equals its
    mean confidence.

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
        True labels.
    proba : array-like of shape (n_rows, n_classes)
        Predicted probabilities, columns in the order of ``classes``.
    n_bins : int, default=15
        Number of bins.
    strategy : {'uniform', 'quantile'}, default='uniform'
        ``'uniform'``: equal-width bins ``(k/n_bins, (k+1)/n_bins]``;
        ``'quantile'``: bins with equal numbers of rows (adaptive binning).
    classes : array-like of shape (n_classes,), default=None
        Labels of the columns of ``proba``; ``None`` means ``0 .. n_classes - 1``.

    Returns
    -------
    confidence : ndarray of shape (n_filled_bins,)
        Mean confidence of the rows of each non-empty bin, in increasing order.
    accuracy : ndarray of shape (n_filled_bins,)
        Fraction of those rows whose predicted class (the arg-max) is right.
    counts : ndarray of shape (n_filled_bins,)
        Number of rows per bin.

    Examples
    --------
    >>> from skbdl.metrics import reliability_curve
    >>> proba = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]
    >>> confidence, accuracy, counts = reliability_curve([0, 1, 1, 0], proba, n_bins=4)
    >>> confidence.round(2).tolist(), accuracy.tolist(), counts.tolist()
    ([0.65, 0.85], [0.0, 1.0], [2.0, 2.0])
    """
    return _calibration_bins(y_true, proba, n_bins, strategy, classes)


def expected_calibration_error(y_true, proba, *, n_bins=15, strategy="uniform", classes=None):
    """Expected calibration error (ECE) of the top-label confidence.

    ``ECE = sum_b (n_b / n) |accuracy_b - confidence_b|`` over the bins of
    :func:`reliability_curve` (Naeini et al. 2015; Guo et al. 2017): the
    row-weighted mean gap between how sure the model is and how often it is right.

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
        True labels.
    proba : array-like of shape (n_rows, n_classes)
        Predicted probabilities, columns in the order of ``classes``.
    n_bins : int, default=15
        Number of bins.
    strategy : {'uniform', 'quantile'}, default='uniform'
        Equal-width bins ``(k/n_bins, (k+1)/n_bins]``, or adaptive bins with equal
        numbers of rows (``'quantile'``, sometimes called ACE).
    classes : array-like of shape (n_classes,), default=None
        Labels of the columns of ``proba``; ``None`` means ``0 .. n_classes - 1``.

    Returns
    -------
    ece : float
        In ``[0, 1]`` (lower is better).  Even a perfectly calibrated model has a
        small positive ECE on a finite sample: each bin's accuracy is a binomial
        estimate, so expect about ``sqrt(n_bins / n_rows)`` times a constant below 1.

    See Also
    --------
    maximum_calibration_error : The largest gap instead of the mean.
    reliability_curve : The per-bin numbers.

    References
    ----------
    M. P. Naeini, G. Cooper and M. Hauskrecht, "Obtaining Well Calibrated
    Probabilities Using Bayesian Binning", AAAI 2015.
    C. Guo, G. Pleiss, Y. Sun and K. Q. Weinberger, "On Calibration of Modern
    Neural Networks", ICML 2017.

    Examples
    --------
    >>> from skbdl.metrics import expected_calibration_error
    >>> proba = [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]
    >>> round(expected_calibration_error([0, 1, 1], proba), 4)  # (0.1 + 0.6 + 0.3) / 3
    0.3333
    """
    confidence, accuracy, counts = _calibration_bins(y_true, proba, n_bins, strategy, classes)
    return float(np.sum(counts * np.abs(accuracy - confidence)) / np.sum(counts))


def maximum_calibration_error(y_true, proba, *, n_bins=15, strategy="uniform", classes=None):
    """Maximum calibration error (MCE): the largest gap over non-empty bins.

    ``MCE = max_b |accuracy_b - confidence_b|``, with the bins of
    :func:`expected_calibration_error`.  Sensitive to bins holding few rows.

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
        True labels.
    proba : array-like of shape (n_rows, n_classes)
        Predicted probabilities, columns in the order of ``classes``.
    n_bins : int, default=15
        Number of bins.
    strategy : {'uniform', 'quantile'}, default='uniform'
        Equal-width or equal-count bins.
    classes : array-like of shape (n_classes,), default=None
        Labels of the columns of ``proba``; ``None`` means ``0 .. n_classes - 1``.

    Returns
    -------
    mce : float
        In ``[0, 1]`` (lower is better).

    Examples
    --------
    >>> from skbdl.metrics import maximum_calibration_error
    >>> proba = [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]
    >>> round(maximum_calibration_error([0, 1, 1], proba), 4)
    0.6
    """
    confidence, accuracy, _ = _calibration_bins(y_true, proba, n_bins, strategy, classes)
    return float(np.max(np.abs(accuracy - confidence)))


def brier_score(y_true, proba, classes=None):
    """Multi-class Brier score: mean squared distance to the one-hot label.

    ``mean_i sum_k (proba_ik - 1[y_i = k])**2`` (Brier 1950), a proper scoring rule
    in ``[0, 2]``.  For two classes it is twice scikit-learn's
    ``brier_score_loss``, which scores the positive class only.

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
        True labels.
    proba : array-like of shape (n_rows, n_classes)
        Predicted probabilities, columns in the order of ``classes``.
    classes : array-like of shape (n_classes,), default=None
        Labels of the columns of ``proba``; ``None`` means ``0 .. n_classes - 1``.

    Returns
    -------
    brier : float
        In ``[0, 2]`` (lower is better).

    Examples
    --------
    >>> from skbdl.metrics import brier_score
    >>> round(brier_score(["a", "b"], [[0.8, 0.2], [0.5, 0.5]], classes=["a", "b"]), 4)
    0.29
    """
    proba, index = _check_proba(y_true, proba, classes)
    onehot = np.zeros_like(proba)
    onehot[np.arange(len(index)), index] = 1.0
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def categorical_nll(y_true, proba, classes=None):
    """Mean negative log-likelihood of the true labels (log loss), in nats.

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
        True labels.
    proba : array-like of shape (n_rows, n_classes)
        Predicted probabilities, columns in the order of ``classes``.  The
        probability of the true class is clipped below at the machine epsilon
        (``2.2e-16``, as ``sklearn.metrics.log_loss`` does), so a confident mistake
        costs at most about 36 nats.
    classes : array-like of shape (n_classes,), default=None
        Labels of the columns of ``proba``; ``None`` means ``0 .. n_classes - 1``.

    Returns
    -------
    nll : float
        ``-mean_i log proba_i[y_i]`` (lower is better).

    Examples
    --------
    >>> from skbdl.metrics import categorical_nll
    >>> round(categorical_nll([0, 1], [[0.5, 0.5], [0.5, 0.5]]), 6)  # log 2
    0.693147
    """
    proba, index = _check_proba(y_true, proba, classes)
    p_true = np.clip(proba[np.arange(len(index)), index], np.finfo(np.float64).eps, None)
    return float(-np.mean(np.log(p_true)))


# ------------------------------------------------------ out-of-distribution
def _ood_scores(score_in, score_out):
    score_in = np.asarray(score_in, dtype=np.float64).reshape(-1)
    score_out = np.asarray(score_out, dtype=np.float64).reshape(-1)
    if score_in.size == 0 or score_out.size == 0:
        raise ValueError("score_in and score_out must both be non-empty.")
    if not (np.all(np.isfinite(score_in)) and np.all(np.isfinite(score_out))):
        raise ValueError("score_in and score_out must be finite.")
    return score_in, score_out


def _ood_labels(score_in, score_out):
    score_in, score_out = _ood_scores(score_in, score_out)
    labels = np.r_[np.zeros(score_in.size), np.ones(score_out.size)]
    return labels, np.r_[score_in, score_out]


def ood_auroc(score_in, score_out):
    """Area under the ROC curve of telling out-of-distribution rows by a score.

    Parameters
    ----------
    score_in : array-like of shape (n_in,)
        Uncertainty score of in-distribution rows (higher: more likely
        out-of-distribution), e.g. ``predict_uncertainty(X).epistemic``.
    score_out : array-like of shape (n_out,)
        The same score on out-of-distribution rows (the positives).

    Returns
    -------
    auroc : float
        The probability that a random out-of-distribution row scores higher than a
        random in-distribution row (ties count one half): 0.5 is chance, 1 is
        perfect separation (higher is better).  Equal to
        ``sklearn.metrics.roc_auc_score`` with the out-of-distribution rows as
        positives.

    Examples
    --------
    >>> from skbdl.metrics import ood_auroc
    >>> ood_auroc([0.1, 0.2, 0.6], [0.5, 0.9])  # 5 of the 6 pairs are ordered
    0.8333333333333334
    """
    labels, scores = _ood_labels(score_in, score_out)
    return float(roc_auc_score(labels, scores))


def ood_aupr(score_in, score_out, positive="out"):
    """Area under the precision-recall curve (average precision) of OOD detection.

    Parameters
    ----------
    score_in : array-like of shape (n_in,)
        Uncertainty score of in-distribution rows (higher: more likely
        out-of-distribution).
    score_out : array-like of shape (n_out,)
        The same score on out-of-distribution rows.
    positive : {'out', 'in'}, default='out'
        Which rows are the positive class: ``'out'`` (AUPR-Out, the
        out-of-distribution rows found by high scores) or ``'in'`` (AUPR-In, the
        in-distribution rows found by low scores), as in Hendrycks & Gimpel (2017).

    Returns
    -------
    aupr : float
        ``sklearn.metrics.average_precision_score``; a chance-level score gives the
        positives' share of the rows, a perfect one 1 (higher is better).

    References
    ----------
    D. Hendrycks and K. Gimpel, "A Baseline for Detecting Misclassified and
    Out-of-Distribution Examples in Neural Networks", ICLR 2017.

    Examples
    --------
    >>> from skbdl.metrics import ood_aupr
    >>> ood_aupr([0.1, 0.2], [0.5, 0.9])
    1.0
    >>> round(ood_aupr([0.1, 0.6], [0.5, 0.9]), 4)  # precisions 1 and 2/3
    0.8333
    """
    labels, scores = _ood_labels(score_in, score_out)
    if positive == "out":
        return float(average_precision_score(labels, scores))
    if positive == "in":
        return float(average_precision_score(1 - labels, -scores))
    raise ValueError(f"positive must be 'out' or 'in'; got {positive!r}.")


def ood_fpr_at_tpr(score_in, score_out, tpr=0.95):
    """False positive rate of OOD detection at a given true positive rate.

    The threshold ``t`` is the highest that flags at least a fraction ``tpr`` of the
    out-of-distribution rows (``score >= t``); the result is the fraction of
    in-distribution rows that it flags too.  With ``tpr=0.95``: "FPR at 95% TPR".

    Parameters
    ----------
    score_in : array-like of shape (n_in,)
        Uncertainty score of in-distribution rows (higher: more likely
        out-of-distribution).
    score_out : array-like of shape (n_out,)
        The same score on out-of-distribution rows (the positives).
    tpr : float, default=0.95
        Required fraction of out-of-distribution rows detected, in ``(0, 1]``.

    Returns
    -------
    fpr : float
        In ``[0, 1]`` (lower is better).

    Examples
    --------
    >>> from skbdl.metrics import ood_fpr_at_tpr
    >>> score_out = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    >>> ood_fpr_at_tpr([0, 0, 2.5, 5], score_out, tpr=0.8)  # threshold 3
    0.25
    """
    score_in, score_out = _ood_scores(score_in, score_out)
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1]; got {tpr!r}.")
    n_flagged = int(np.ceil(tpr * score_out.size - 1e-9))
    threshold = np.sort(score_out)[::-1][max(n_flagged, 1) - 1]
    return float(np.mean(score_in >= threshold))


# ------------------------------------------------------------------ rejection
def _tie_averaged_correct(correct, uncertainty):
    """``correct`` sorted by increasing uncertainty, averaged within tied groups."""
    order = np.argsort(uncertainty, kind="stable")
    _, group = np.unique(uncertainty[order], return_inverse=True)
    sums = np.bincount(group, weights=correct[order])
    return (sums / np.bincount(group))[group]


def accuracy_rejection_curve(y_true, y_pred, uncertainty, rejection_rates=None):
    """Accuracy on the rows kept after rejecting the most uncertain ones.

    For a rejection rate ``r`` the ``floor(r * n_rows)`` rows of highest uncertainty
    are set aside (deferred to a human, say) and the accuracy of the others is
    measured.  A useful uncertainty gives a curve that rises with ``r``; a useless
    one a flat curve at the overall accuracy.  Rows with equal uncertainty are
    treated as interchangeable: where a tied group is split, its mean accuracy is
    used, so a constant score gives exactly the flat curve.

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
        True labels.
    y_pred : array-like of shape (n_rows,)
        Predicted labels.
    uncertainty : array-like of shape (n_rows,)
        Per-row uncertainty (higher: rejected first), e.g. the predictive entropy.
    rejection_rates : array-like of shape (n_rates,), default=None
        Rates in ``[0, 1)``; ``None`` means every ``k / n_rows``, ``k = 0 ..
        n_rows - 1``.

    Returns
    -------
    rejection_rates : ndarray of shape (n_rates,)
        The rates.
    accuracy : ndarray of shape (n_rates,)
        Accuracy on the kept rows at each rate.

    See Also
    --------
    area_under_rejection_curve : The curve's mean height, one number.

    Examples
    --------
    >>> from skbdl.metrics import accuracy_rejection_curve
    >>> rates, accuracy = accuracy_rejection_curve(
    ...     [0, 1, 1, 0], [0, 1, 0, 1], [0.1, 0.2, 0.9, 0.8], rejection_rates=[0, 0.5])
    >>> accuracy.tolist()  # rejecting the two most uncertain rows removes both mistakes
    [0.5, 1.0]
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    uncertainty = np.asarray(uncertainty, dtype=np.float64).reshape(-1)
    n_rows = len(uncertainty)
    if n_rows == 0 or y_true.shape != (n_rows,) or y_pred.shape != (n_rows,):
        raise ValueError(
            "y_true, y_pred and uncertainty must be non-empty with one value per row; got "
            f"shapes {y_true.shape}, {y_pred.shape} and {uncertainty.shape}."
        )
    if np.any(np.isnan(uncertainty)):
        raise ValueError("uncertainty must not contain NaN.")
    if rejection_rates is None:
        rejection_rates = np.arange(n_rows) / n_rows
    rejection_rates = np.asarray(rejection_rates, dtype=np.float64).reshape(-1)
    if np.any((rejection_rates < 0) | (rejection_rates >= 1)):
        raise ValueError("rejection_rates must lie in [0, 1).")
    correct = (y_true == y_pred).astype(np.float64)
    kept_correct = np.cumsum(_tie_averaged_correct(correct, uncertainty))
    n_kept = n_rows - np.floor(rejection_rates * n_rows + 1e-9).astype(int)
    n_kept = np.maximum(n_kept, 1)
    return rejection_rates, kept_correct[n_kept - 1] / n_kept


def area_under_rejection_curve(y_true, y_pred, uncertainty):
    """Mean accuracy over all rejection rates ``0, 1/n, ..., (n-1)/n``.

    The area under :func:`accuracy_rejection_curve` on ``[0, 1)``, as a Riemann sum
    over every possible number of rejected rows.  Compare methods on the same rows:
    a constant (useless) score gives exactly the overall accuracy, an oracle that
    rejects the mistakes first gives the most.

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
        True labels.
    y_pred : array-like of shape (n_rows,)
        Predicted labels.
    uncertainty : array-like of shape (n_rows,)
        Per-row uncertainty (higher: rejected first).

    Returns
    -------
    area : float
        In ``[0, 1]`` (higher is better).

    Examples
    --------
    >>> from skbdl.metrics import area_under_rejection_curve
    >>> y_true, y_pred = [0, 1, 1, 0], [0, 1, 0, 1]
    >>> area_under_rejection_curve(y_true, y_pred, [0.0, 0.0, 0.0, 0.0])  # accuracy
    0.5
    >>> area_under_rejection_curve(y_true, y_pred, [0.1, 0.2, 0.9, 0.8])  # (1/2 + 2/3 + 1 + 1) / 4
    0.7916666666666666
    """
    _, accuracy = accuracy_rejection_curve(y_true, y_pred, uncertainty)
    return float(np.mean(accuracy))


# -------------------------------------------------------------------- scorers
def _gaussian_nll_from_std(y, mean, std):
    std = np.asarray(std, dtype=np.float64)
    return gaussian_nll(y, mean, std**2)


class UncertaintyScorer:
    """A scorer (``scoring=``) built from an uncertainty metric.

    Calls the estimator's ``predict_proba(X)`` (classifiers) or
    ``predict(X, return_std=True)`` (regressors, the Gaussian summary of the
    predictive) and scores the result with a metric of this module, so that
    ``GridSearchCV`` and ``cross_validate`` can choose hyper-parameters for the
    quality of the uncertainty rather than for accuracy alone.  Works with any
    estimator that has these methods: skbdl's, a ``Pipeline`` ending in one,
    ``GaussianProcessRegressor``, ``CalibratedClassifierCV``...

    Parameters
    ----------
    classification_metric : callable, default=None
        ``metric(y_true, proba, classes=estimator.classes_, **metric_kwargs)``, used
        when the estimator is a classifier; ``None``: the scorer refuses
        classifiers.
    regression_metric : callable, default=None
        ``metric(y, mean, std, **metric_kwargs)``, used for regressors; ``None``: the
        scorer refuses regressors.
    greater_is_better : bool, default=False
        If False (a loss), the scorer returns ``-metric``, following scikit-learn's
        rule that greater scores are better.
    name : str, default=None
        Shown by ``repr``.
    **metric_kwargs : dict
        Extra keyword arguments of the metric (e.g. ``n_bins=10,
        strategy='quantile'``).

    Examples
    --------
    A scorer for the adaptive-bin ECE, and the ready-made negative NLL:

    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.datasets import load_iris
    >>> from skbdl.metrics import UncertaintyScorer, expected_calibration_error, neg_nll_scorer
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=500).fit(X, y)
    >>> adaptive_ece = UncertaintyScorer(expected_calibration_error, strategy="quantile")
    >>> -0.2 < adaptive_ece(clf, X, y) <= 0.0
    True
    >>> round(neg_nll_scorer(clf, X, y), 2)
    -0.12

    In a grid search, by name or as the object:

    >>> from sklearn.model_selection import GridSearchCV
    >>> search = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.01, 1.0]},
    ...                       scoring={"nll": neg_nll_scorer, "accuracy": "accuracy"},
    ...                       refit="nll", cv=3).fit(X, y)
    >>> search.best_params_
    {'C': 1.0}
    """

    def __init__(
        self,
        classification_metric=None,
        regression_metric=None,
        *,
        greater_is_better=False,
        name=None,
        **metric_kwargs,
    ):
        if classification_metric is None and regression_metric is None:
            raise ValueError("Give a classification_metric, a regression_metric or both.")
        self.classification_metric = classification_metric
        self.regression_metric = regression_metric
        self.greater_is_better = greater_is_better
        self.name = name
        self.metric_kwargs = metric_kwargs

    def __call__(self, estimator, X, y_true):
        """Score a fitted estimator on ``X, y_true``.

        Parameters
        ----------
        estimator : estimator
            A fitted classifier with ``predict_proba`` and ``classes_``, or a fitted
            regressor whose ``predict`` accepts ``return_std=True``.
        X : array-like of shape (n_rows, n_features)
            Inputs.
        y_true : array-like of shape (n_rows,) or (n_rows, n_outputs)
            True labels or targets.

        Returns
        -------
        score : float
            The metric (``greater_is_better=True``) or its negative.
        """
        if is_classifier(estimator):
            if self.classification_metric is None:
                raise TypeError(f"{self!r} scores regressors only; got a classifier.")
            proba = estimator.predict_proba(X)
            value = self.classification_metric(
                np.asarray(y_true), proba, classes=estimator.classes_, **self.metric_kwargs
            )
        else:
            if self.regression_metric is None:
                raise TypeError(f"{self!r} scores classifiers only; got {type(estimator)}.")
            mean, std = estimator.predict(X, return_std=True)
            y_true = np.asarray(y_true, dtype=np.float64).reshape(np.shape(mean))
            value = self.regression_metric(y_true, mean, std, **self.metric_kwargs)
        return float(value) if self.greater_is_better else -float(value)

    def __repr__(self):
        if self.name is not None:
            return f"<UncertaintyScorer {self.name}>"
        metrics = [
            m.__name__
            for m in (self.classification_metric, self.regression_metric)
            if m is not None
        ]
        return f"<UncertaintyScorer {'/'.join(metrics)}>"


#: Negative mean NLL: ``-categorical_nll`` (classifiers), ``-gaussian_nll`` of the
#: Gaussian summary ``N(mean, std**2)`` (regressors).  Greater is better.
neg_nll_scorer = UncertaintyScorer(categorical_nll, _gaussian_nll_from_std, name="neg_nll")

#: Negative mean CRPS of the Gaussian summary (regressors).  Greater is better.
neg_crps_scorer = UncertaintyScorer(regression_metric=crps_gaussian, name="neg_crps")

#: Negative ECE, 15 equal-width bins (classifiers).  Greater is better.
neg_ece_scorer = UncertaintyScorer(expected_calibration_error, name="neg_ece")

#: Negative multi-class Brier score (classifiers).  Greater is better.
neg_brier_scorer = UncertaintyScorer(brier_score, name="neg_brier")

#: Negative regression calibration error, 19 levels (regressors).  Greater is better.
neg_regression_calibration_error_scorer = UncertaintyScorer(
    regression_metric=regression_calibration_error, name="neg_regression_calibration_error"
)

_SCORERS = {
    "neg_nll": neg_nll_scorer,
    "neg_crps": neg_crps_scorer,
    "neg_ece": neg_ece_scorer,
    "neg_adaptive_ece": UncertaintyScorer(
        expected_calibration_error, strategy="quantile", name="neg_adaptive_ece"
    ),
    "neg_mce": UncertaintyScorer(maximum_calibration_error, name="neg_mce"),
    "neg_brier": neg_brier_scorer,
    "neg_regression_calibration_error": neg_regression_calibration_error_scorer,
}


def get_scorer_names():
    """Names accepted by :func:`get_scorer`.

    Returns
    -------
    names : list of str
        Sorted.

    Examples
    --------
    >>> from skbdl.metrics import get_scorer_names
    >>> get_scorer_names()[:3]
    ['neg_adaptive_ece', 'neg_brier', 'neg_crps']
    """
    return sorted(_SCORERS)


def get_scorer(name):
    """The uncertainty scorer of a name, for ``scoring=``.

    Parameters
    ----------
    name : str
        One of :func:`get_scorer_names`: ``'neg_nll'`` (classifiers and
        regressors), ``'neg_ece'``, ``'neg_adaptive_ece'``, ``'neg_mce'``,
        ``'neg_brier'`` (classifiers), ``'neg_crps'``,
        ``'neg_regression_calibration_error'`` (regressors).  scikit-learn's own
        names (``'accuracy'``, ``'neg_log_loss'``, ...) are not here: pass them to
        ``scoring=`` directly.

    Returns
    -------
    scorer : UncertaintyScorer
        Callable as ``scorer(estimator, X, y)``; greater is better.

    Examples
    --------
    >>> from skbdl.metrics import get_scorer
    >>> get_scorer("neg_ece")
    <UncertaintyScorer neg_ece>
    """
    try:
        return _SCORERS[name]
    except KeyError:
        raise ValueError(f"Unknown scorer {name!r}; choose one of {get_scorer_names()}.") from None
