"""Metrics of regression predictions: likelihoods, CRPS, calibration, intervals.

The conventions (units, sign, shapes) are those of :mod:`skbdl.metrics`.
"""

import numbers

import numpy as np
from scipy.special import ndtr
from scipy.stats import norm

from ..uncertainty import HALF_LOG_2PI, _mixture_log_density, gaussian_nll_terms

#: Component pairs evaluated at once by ``crps_gaussian_mixture`` (bounds memory).
_CRPS_PAIRS_PER_CHUNK = 2**22


def _as_float_arrays(*arrays):
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


def _mixture_arrays(y, mean_samples, var_samples):
    """``y`` and a Gaussian mixture's draws as float64, the variances broadcast to
    the means' shape ``(n_samples,) + y.shape`` (checked)."""
    y, mean_samples, var_samples = _as_float_arrays(y, mean_samples, var_samples)
    if mean_samples.ndim < 2 or mean_samples.shape[1:] != y.shape:
        raise ValueError(
            "mean_samples must have shape (n_samples,) + y.shape; got "
            f"{mean_samples.shape} for y of shape {y.shape}."
        )
    return y, mean_samples, np.broadcast_to(var_samples, mean_samples.shape)


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
    return float(np.mean(gaussian_nll_terms(y, mean, var)) + HALF_LOG_2PI)


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
    y, mean_samples, var_samples = _mixture_arrays(y, mean_samples, var_samples)
    if not np.all(var_samples > 0):
        raise ValueError("var_samples must be strictly positive.")
    return float(-np.mean(_mixture_log_density(y, mean_samples, var_samples)))


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
    y, mean_samples, var_samples = _mixture_arrays(y, mean_samples, var_samples)
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
