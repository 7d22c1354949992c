"""Metrics and scorers for probabilistic predictions.

Every metric takes numpy-compatible arrays and returns a Python ``float``; the
functions named ``*_curve`` return the arrays behind a figure.  The scorers
(``neg_nll_scorer`` ..., :func:`uncertainty_scorers`) wrap the metrics as
``scoring=`` values of ``cross_val_score``, ``cross_validate``, ``GridSearchCV`` and
every other scikit-learn tool that takes a scorer.

The functions live in private modules, as in ``sklearn.metrics``, and are all
imported from here: ``_regression`` (likelihoods, CRPS, calibration, intervals),
``_classification`` (calibration errors, Brier score, log loss), ``_ranking``
(out-of-distribution detection and rejection curves from an uncertainty score) and
``_scorers``.  None of them imports an estimator, torch or skorch: the metrics work
on arrays from any model.

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

from ._classification import (
    brier_score,
    categorical_nll,
    expected_calibration_error,
    maximum_calibration_error,
    reliability_curve,
)
from ._ranking import (
    accuracy_rejection_curve,
    area_under_rejection_curve,
    ood_aupr,
    ood_auroc,
    ood_fpr_at_tpr,
)
from ._regression import (
    crps_gaussian,
    crps_gaussian_mixture,
    gaussian_mixture_nll,
    gaussian_nll,
    interval_coverage,
    mean_interval_width,
    regression_calibration_curve,
    regression_calibration_error,
    rmse,
)
from ._scorers import (
    UncertaintyScorer,
    get_scorer,
    get_scorer_names,
    neg_adaptive_ece_scorer,
    neg_brier_scorer,
    neg_crps_scorer,
    neg_ece_scorer,
    neg_mce_scorer,
    neg_nll_scorer,
    neg_regression_calibration_error_scorer,
    uncertainty_scorers,
)

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
    "neg_adaptive_ece_scorer",
    "neg_brier_scorer",
    "neg_crps_scorer",
    "neg_ece_scorer",
    "neg_mce_scorer",
    "neg_nll_scorer",
    "neg_regression_calibration_error_scorer",
    "ood_aupr",
    "ood_auroc",
    "ood_fpr_at_tpr",
    "regression_calibration_curve",
    "regression_calibration_error",
    "reliability_curve",
    "rmse",
    "uncertainty_scorers",
]
