"""Metrics of class probabilities: calibration errors, reliability, proper scores.

The conventions (label order, calibration bins) are those of :mod:`skbdl.metrics`.
"""

import numbers

import numpy as np


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
