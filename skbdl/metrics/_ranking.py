"""Metrics of an uncertainty score as a ranking: out-of-distribution detection and
selective prediction (rejection curves).

The score of a row is any per-row uncertainty, higher meaning "less sure"; see
:mod:`skbdl.metrics`.
"""

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


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
