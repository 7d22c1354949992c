"""skbdl.metrics: hand-computed values, known identities, statistical checks, scorers."""

import ast
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import GridSearchCV, cross_validate

from skbdl import MCDropoutRegressor, metrics
from skbdl.metrics import (
    accuracy_rejection_curve,
    area_under_rejection_curve,
    brier_score,
    categorical_nll,
    crps_gaussian,
    crps_gaussian_mixture,
    expected_calibration_error,
    gaussian_mixture_nll,
    gaussian_nll,
    get_scorer,
    get_scorer_names,
    interval_coverage,
    maximum_calibration_error,
    mean_interval_width,
    neg_brier_scorer,
    neg_crps_scorer,
    neg_ece_scorer,
    neg_nll_scorer,
    neg_regression_calibration_error_scorer,
    ood_aupr,
    ood_auroc,
    ood_fpr_at_tpr,
    regression_calibration_curve,
    regression_calibration_error,
    reliability_curve,
    rmse,
)


def _calibrated_classification(n, n_classes, rng, concentration=1.0):
    """Probabilities from a Dirichlet and labels drawn from them: calibrated by design."""
    proba = rng.dirichlet(np.full(n_classes, concentration), size=n)
    y = (proba.cumsum(axis=1) < rng.uniform(size=(n, 1))).sum(axis=1)
    return y, proba


def _temper(proba, temperature):
    logits = np.log(proba) / temperature
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- NLL (kept)
def test_nll_functions_keep_their_values():
    assert rmse([0.0, 0.0], [3.0, -4.0]) == pytest.approx(math.sqrt(12.5))
    assert gaussian_nll([1.0], [0.0], [4.0]) == pytest.approx(
        0.5 * math.log(2 * math.pi * 4) + 1 / 8
    )
    # Gal & Ghahramani's MC dropout test log-likelihood, by hand:
    y, means, tau = 0.3, np.array([0.0, 1.0, -0.5]), 4.0
    ll = (
        np.log(np.mean(np.exp(-0.5 * tau * (y - means) ** 2)))
        - 0.5 * math.log(2 * math.pi)
        + 0.5 * math.log(tau)
    )
    assert gaussian_mixture_nll([y], means[:, None], 1 / tau) == pytest.approx(-ll)


# ------------------------------------------------------------------------ CRPS
def _crps_by_integration(cdf, y, low, high):
    below, _ = integrate.quad(lambda t: cdf(t) ** 2, low, y, limit=200)
    above, _ = integrate.quad(lambda t: (1 - cdf(t)) ** 2, y, high, limit=200)
    return below + above


@pytest.mark.parametrize(
    ("y", "mean", "std"), [(0.0, 0.0, 1.0), (2.5, -1.0, 0.7), (-3.0, 1.0, 4.0)]
)
def test_crps_of_a_gaussian_matches_its_definition(y, mean, std):
    # CRPS(F, y) = integral (F(t) - 1[t >= y])^2 dt, numerically.
    expected = _crps_by_integration(
        lambda t: stats.norm.cdf(t, mean, std), y, mean - 12 * std, mean + 12 * std
    )
    assert crps_gaussian([y], [mean], [std]) == pytest.approx(expected, rel=1e-7)


def test_crps_gaussian_closed_form_and_properties():
    # At the mean: std (2 phi(0) - 1/sqrt(pi)) = std (sqrt 2 - 1) / sqrt(pi).
    assert crps_gaussian([0.0], [0.0], [2.0]) == pytest.approx(
        2 * (math.sqrt(2) - 1) / math.sqrt(math.pi)
    )
    # Zero spread: the absolute error.
    assert crps_gaussian([1.0, -2.0], [0.0, 0.0], 0.0) == pytest.approx(1.5)
    # In the units of y: scaling everything by c scales the CRPS by c.
    rng = np.random.RandomState(0)
    y, mean, std = rng.randn(50), rng.randn(50), rng.uniform(0.2, 2, 50)
    assert crps_gaussian(7 * y, 7 * mean, 7 * std) == pytest.approx(7 * crps_gaussian(y, mean, std))
    # Proper: for y ~ N(0, 1) the true spread beats a too narrow and a too wide one.
    y = rng.randn(20_000)
    scores = {s: crps_gaussian(y, np.zeros_like(y), s) for s in (0.5, 1.0, 2.0)}
    assert scores[1.0] < scores[0.5] and scores[1.0] < scores[2.0]


def test_crps_of_a_mixture_matches_integration_and_monte_carlo():
    means, variances, y = np.array([-1.0, 0.5, 3.0]), np.array([0.25, 1.0, 2.0]), 0.8

    def cdf(t):
        return np.mean(stats.norm.cdf(t, means, np.sqrt(variances)))

    expected = _crps_by_integration(cdf, y, -20, 25)
    got = crps_gaussian_mixture([y], means[:, None], variances[:, None])
    assert got == pytest.approx(expected, rel=1e-7)
    # E|X - y| - E|X - X'| / 2 by Monte Carlo.
    rng = np.random.RandomState(0)
    n = 400_000
    pick = rng.randint(3, size=(2, n))
    draws = means[pick] + np.sqrt(variances[pick]) * rng.randn(2, n)
    monte_carlo = np.mean(np.abs(draws[0] - y)) - 0.5 * np.mean(np.abs(draws[0] - draws[1]))
    assert got == pytest.approx(monte_carlo, abs=0.01)


def test_crps_of_a_mixture_reduces_to_known_cases():
    rng = np.random.RandomState(1)
    y, mean, std = rng.randn(30, 2), rng.randn(30, 2), rng.uniform(0.5, 2, (30, 2))
    # One component, or identical components: the Gaussian.
    assert crps_gaussian_mixture(y, mean[None], std[None] ** 2) == pytest.approx(
        crps_gaussian(y, mean, std)
    )
    assert crps_gaussian_mixture(y, np.stack([mean] * 4), np.stack([std**2] * 4)) == pytest.approx(
        crps_gaussian(y, mean, std)
    )
    # Point masses: the empirical CRPS mean|x_s - y| - mean|x_s - x_t| / 2.
    samples = rng.randn(7, 30)
    target = rng.randn(30)
    empirical = np.mean(
        np.abs(samples - target).mean(axis=0)
        - 0.5 * np.abs(samples[:, None] - samples[None]).mean(axis=(0, 1))
    )
    assert crps_gaussian_mixture(target, samples, 0.0) == pytest.approx(empirical)


def test_crps_mixture_chunks_give_the_same_answer(monkeypatch):
    rng = np.random.RandomState(2)
    y, means, var = rng.randn(50, 2), rng.randn(8, 50, 2), rng.uniform(0.1, 1, (8, 50, 2))
    whole = crps_gaussian_mixture(y, means, var)  # one chunk
    # 3 entries per chunk
    monkeypatch.setattr(metrics._regression, "_CRPS_PAIRS_PER_CHUNK", 3 * 8**2)
    assert crps_gaussian_mixture(y, means, var) == pytest.approx(whole)
    assert crps_gaussian_mixture(y, np.tile(means, (3, 1, 1)), np.tile(var, (3, 1, 1))) == (
        pytest.approx(whole)
    )


def test_crps_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        crps_gaussian([0.0, 1.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="non-negative"):
        crps_gaussian([0.0], [0.0], [-1.0])
    with pytest.raises(ValueError, match="n_samples"):
        crps_gaussian_mixture([0.0, 1.0], [0.0, 1.0], [1.0, 1.0])


# -------------------------------------------------- regression calibration
def test_regression_calibration_curve_hand_computed():
    # Quantiles of N(0, 1) at 0.25, 0.5, 0.75: -0.674, 0, 0.674.
    y = np.array([-1.0, -0.5, 0.1, 2.0])
    expected, observed = regression_calibration_curve(y, np.zeros(4), np.ones(4), n_levels=3)
    np.testing.assert_allclose(expected, [0.25, 0.5, 0.75])
    np.testing.assert_allclose(observed, [1 / 4, 2 / 4, 3 / 4])
    assert regression_calibration_error(y, np.zeros(4), np.ones(4), n_levels=3) == 0.0
    # Shift by 1: y - mean = [-2, -1.5, -0.9, 1]: below -0.674 three times, below 0
    # three times, below 0.674 three times.
    assert regression_calibration_error(y, np.ones(4), np.ones(4), n_levels=3) == pytest.approx(
        np.mean([0.5, 0.25, 0.0])
    )


def test_regression_calibration_of_calibrated_predictions_is_within_sampling_noise():
    rng = np.random.RandomState(0)
    n = 20_000
    mean, std = rng.randn(n, 2), rng.uniform(0.1, 3, (n, 2))
    y = mean + std * rng.randn(n, 2)
    _, observed = regression_calibration_curve(y, mean, std)
    # Each observed fraction is a binomial mean over 2n entries: sd <= 0.5 / sqrt(2n).
    assert np.all(np.abs(observed - np.arange(1, 20) / 20) < 5 * 0.5 / math.sqrt(2 * n))
    assert regression_calibration_error(y, mean, std) < 0.01
    # Over-confident and under-confident predictions are far off, by the known amount.
    for scale in (0.5, 2.0):
        expected_curve = stats.norm.cdf(stats.norm.ppf(np.arange(1, 20) / 20) * scale)
        expected_error = np.mean(np.abs(expected_curve - np.arange(1, 20) / 20))
        got = regression_calibration_error(y, mean, std * scale)
        assert got == pytest.approx(expected_error, abs=0.01)
        assert got > 0.05


def test_interval_coverage_and_width():
    y = np.array([0.0, 1.0, -1.6, 1.7, -3.0])
    intervals = np.array([[-1.645, 1.645]] * 5)
    assert interval_coverage(y, intervals) == pytest.approx(3 / 5)
    assert interval_coverage([1.0], [[1.0, 2.0]]) == 1.0  # ends count as inside
    assert mean_interval_width(np.array([[0.0, 1.0], [2.0, 5.0]])) == 2.0
    two_outputs = np.zeros((3, 2, 2))
    two_outputs[..., 1] = 1.0
    assert interval_coverage(np.full((3, 2), 0.5), two_outputs) == 1.0
    with pytest.raises(ValueError, match="shape"):
        interval_coverage(y, intervals[:, :1])
    with pytest.raises(ValueError, match="shape"):
        mean_interval_width([1.0, 2.0, 3.0])


# --------------------------------------------------------- ECE, MCE, Brier
def test_ece_hand_computed_equal_width_bins():
    # 15 bins: 0.9 in (0.867, 0.933], 0.95 in (0.933, 1], both 0.6 in (0.533, 0.6].
    proba = np.array([[0.9, 0.1], [0.05, 0.95], [0.4, 0.6], [0.6, 0.4]])
    y = np.array([0, 1, 0, 0])  # right, right, wrong, right
    expected = (1 / 4) * 0.1 + (1 / 4) * 0.05 + (2 / 4) * abs(0.5 - 0.6)
    assert expected_calibration_error(y, proba) == pytest.approx(expected)
    assert maximum_calibration_error(y, proba) == pytest.approx(0.1)
    confidence, accuracy, counts = reliability_curve(y, proba)
    np.testing.assert_allclose(confidence, [0.6, 0.9, 0.95])
    np.testing.assert_allclose(accuracy, [0.5, 1.0, 1.0])
    np.testing.assert_array_equal(counts, [2, 1, 1])


def test_ece_adaptive_bins_hand_computed():
    # Confidences sorted: 0.5 0.6 | 0.7 0.8 | 0.9 1.0 with two rows per adaptive bin.
    confidence = np.array([0.9, 0.5, 0.7, 1.0, 0.6, 0.8])
    proba = np.column_stack([confidence, 1 - confidence])
    y = np.array([0, 1, 0, 0, 0, 1])  # right: 0.9, 0.7, 1.0, 0.6
    # Bins: {0.5 wrong, 0.6 right}: |0.5 - 0.55|; {0.7 right, 0.8 wrong}: |0.5 - 0.75|;
    # {0.9 right, 1.0 right}: |1 - 0.95|.
    expected = (0.05 + 0.25 + 0.05) / 3
    assert expected_calibration_error(y, proba, n_bins=3, strategy="quantile") == pytest.approx(
        expected
    )
    assert maximum_calibration_error(y, proba, n_bins=3, strategy="quantile") == pytest.approx(0.25)
    _, _, counts = reliability_curve(y, proba, n_bins=4, strategy="quantile")
    np.testing.assert_array_equal(counts, [2, 2, 1, 1])


def test_ece_uses_class_labels():
    proba = np.array([[0.8, 0.2], [0.3, 0.7]])
    ece = expected_calibration_error(np.array(["a", "b"]), proba, classes=np.array(["a", "b"]))
    assert ece == pytest.approx(0.5 * 0.2 + 0.5 * 0.3)
    # Unsorted classes: column k is classes[k].
    ece = expected_calibration_error(np.array(["b", "a"]), proba, classes=np.array(["b", "a"]))
    assert ece == pytest.approx(0.5 * 0.2 + 0.5 * 0.3)
    with pytest.raises(ValueError, match="not in classes"):
        expected_calibration_error(np.array(["a", "z"]), proba, classes=np.array(["a", "b"]))


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("n_classes", [2, 10])
def test_ece_of_calibrated_predictions_is_within_its_sampling_bound(strategy, n_classes):
    # For calibrated predictions E[ECE] <= sum_b (n_b/n) sqrt(1 / (4 n_b)) <= 0.5 sqrt(B/n)
    # (Cauchy-Schwarz), and ECE moves by at most 2/n when one row changes, so by
    # McDiarmid ECE - E[ECE] <= sqrt(2 log(1/delta) / n) with probability 1 - delta.
    n, n_bins, delta = 20_000, 15, 1e-6
    bound = 0.5 * math.sqrt(n_bins / n) + math.sqrt(2 * math.log(1 / delta) / n)
    for seed in range(3):
        y, proba = _calibrated_classification(n, n_classes, np.random.RandomState(seed))
        assert expected_calibration_error(y, proba, n_bins=n_bins, strategy=strategy) < bound
        # The same probabilities made over-confident are well above the bound.
        assert expected_calibration_error(y, _temper(proba, 0.3), strategy=strategy) > 2 * bound


def test_ece_of_an_always_right_model_is_one_minus_mean_confidence():
    rng = np.random.RandomState(0)
    confidence = rng.uniform(0.5, 1.0, 1000)
    proba = np.column_stack([confidence, 1 - confidence])
    assert expected_calibration_error(np.zeros(1000, int), proba) == pytest.approx(
        1 - confidence.mean()
    )


def test_calibration_rejects_bad_arguments():
    proba = np.array([[0.5, 0.5]])
    with pytest.raises(ValueError, match="strategy"):
        expected_calibration_error([0], proba, strategy="equal")
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([0], proba, n_bins=0)
    with pytest.raises(ValueError, match="y_true"):
        expected_calibration_error([0, 1], proba)
    with pytest.raises(ValueError, match="classes"):
        expected_calibration_error([0], proba, classes=[0, 1, 2])


def test_brier_score_and_nll_hand_computed_and_against_scikit_learn():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    y = np.array([0, 1])
    expected = ((0.3**2 + 0.2**2 + 0.1**2) + (0.1**2 + 0.9**2 + 0.8**2)) / 2
    assert brier_score(y, proba) == pytest.approx(expected)
    assert categorical_nll(y, proba) == pytest.approx(-(math.log(0.7) + math.log(0.1)) / 2)

    rng = np.random.RandomState(0)
    y, proba = _calibrated_classification(200, 4, rng)
    assert brier_score(y, proba) == pytest.approx(brier_score_loss(y, proba, labels=[0, 1, 2, 3]))
    assert categorical_nll(y, proba) == pytest.approx(log_loss(y, proba, labels=[0, 1, 2, 3]))
    y2, proba2 = _calibrated_classification(200, 2, rng)
    assert brier_score(y2, proba2) == pytest.approx(2 * brier_score_loss(y2, proba2[:, 1]))
    # A confident mistake costs a bounded amount.
    assert categorical_nll([1], [[1.0, 0.0]]) == pytest.approx(-math.log(np.finfo(float).eps))


# ------------------------------------------------------------------- OOD
def test_ood_metrics_hand_computed():
    score_in, score_out = [0.1, 0.2, 0.6], [0.5, 0.9]
    assert ood_auroc(score_in, score_out) == pytest.approx(5 / 6)
    assert ood_auroc([0.5], [0.5]) == 0.5  # ties count one half
    # Ranked by score: 0.9 (out), 0.6 (in), 0.5 (out): precision 1 at recall 1/2,
    # 2/3 at recall 1.
    assert ood_aupr(score_in, score_out) == pytest.approx((1 + 2 / 3) / 2)
    # In-distribution as positives, found by low scores: 0.1, 0.2 (in, in), 0.5 (out),
    # 0.6 (in): precision 1, 1, 3/4 at recalls 1/3, 2/3, 1.
    assert ood_aupr(score_in, score_out, positive="in") == pytest.approx((1 + 1 + 3 / 4) / 3)
    # Separated scores: perfect.
    assert ood_auroc([0, 1], [2, 3]) == 1.0
    assert ood_fpr_at_tpr([0, 1], [2, 3]) == 0.0
    # Threshold flagging >= 95% of 20 out rows: the 19th highest, 2.
    out = np.arange(1, 21, dtype=float)
    assert ood_fpr_at_tpr([0.0, 1.5, 2.0, 30.0], out) == pytest.approx(2 / 4)


def test_ood_metrics_match_scikit_learn_on_random_scores_with_ties():
    rng = np.random.RandomState(0)
    for _ in range(5):
        score_in = rng.randint(0, 20, size=300).astype(float)
        score_out = rng.randint(5, 25, size=120).astype(float)
        labels = np.r_[np.zeros(300), np.ones(120)]
        scores = np.r_[score_in, score_out]
        assert ood_auroc(score_in, score_out) == pytest.approx(roc_auc_score(labels, scores))
        assert ood_aupr(score_in, score_out) == pytest.approx(
            average_precision_score(labels, scores)
        )
        assert ood_aupr(score_in, score_out, positive="in") == pytest.approx(
            average_precision_score(1 - labels, -scores)
        )
        # FPR at the first ROC point whose TPR reaches 0.95.
        fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
        assert ood_fpr_at_tpr(score_in, score_out) == pytest.approx(fpr[np.argmax(tpr >= 0.95)])


def test_ood_metrics_of_identical_distributions_are_chance():
    rng = np.random.RandomState(0)
    score_in, score_out = rng.randn(20_000), rng.randn(20_000)
    assert ood_auroc(score_in, score_out) == pytest.approx(0.5, abs=0.01)
    assert ood_aupr(score_in, score_out) == pytest.approx(0.5, abs=0.01)
    assert ood_fpr_at_tpr(score_in, score_out) == pytest.approx(0.95, abs=0.01)


def test_ood_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        ood_auroc([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        ood_auroc([np.nan], [1.0])
    with pytest.raises(ValueError, match="positive"):
        ood_aupr([0.0], [1.0], positive="both")
    with pytest.raises(ValueError, match="tpr"):
        ood_fpr_at_tpr([0.0], [1.0], tpr=0.0)


# ------------------------------------------------------------- rejection
def test_accuracy_rejection_curve_hand_computed():
    y_true = np.array([0, 1, 1, 0, 1])
    y_pred = np.array([0, 1, 0, 1, 1])  # right, right, wrong, wrong, right
    uncertainty = np.array([0.1, 0.3, 0.9, 0.8, 0.2])
    rates, accuracy = accuracy_rejection_curve(y_true, y_pred, uncertainty)
    np.testing.assert_allclose(rates, [0, 0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(accuracy, [3 / 5, 3 / 4, 1, 1, 1])
    assert area_under_rejection_curve(y_true, y_pred, uncertainty) == pytest.approx(
        np.mean([3 / 5, 3 / 4, 1, 1, 1])
    )
    _, accuracy = accuracy_rejection_curve(y_true, y_pred, uncertainty, rejection_rates=[0.5])
    np.testing.assert_allclose(accuracy, [1.0])  # floor(2.5) = 2 rows rejected


def test_accuracy_rejection_curve_treats_ties_as_interchangeable():
    y_true = np.array([1, 1, 1, 1])
    y_pred = np.array([1, 0, 1, 0])
    # A constant score rejects nothing in particular: the curve is flat.
    _, accuracy = accuracy_rejection_curve(y_true, y_pred, np.zeros(4))
    np.testing.assert_allclose(accuracy, 0.5)
    # Rows 0 and 1 tie at the lowest score; row 2 (right) next, row 3 (wrong) last.
    _, accuracy = accuracy_rejection_curve(y_true, y_pred, [0.0, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(accuracy, [2 / 4, 2 / 3, 1 / 2, 1 / 2])


def test_area_under_rejection_curve_orders_scores():
    rng = np.random.RandomState(0)
    n = 2000
    y_true = rng.randint(2, size=n)
    wrong = rng.uniform(size=n) < 0.3
    y_pred = np.where(wrong, 1 - y_true, y_true)
    oracle = area_under_rejection_curve(y_true, y_pred, wrong + 0.0)
    noisy = area_under_rejection_curve(y_true, y_pred, wrong + rng.uniform(0, 2, n))
    useless = area_under_rejection_curve(y_true, y_pred, rng.uniform(size=n))
    assert oracle > noisy > useless
    assert useless == pytest.approx(np.mean(~wrong), abs=0.03)
    with pytest.raises(ValueError, match="\\[0, 1\\)"):
        accuracy_rejection_curve(y_true, y_pred, wrong, rejection_rates=[1.0])
    with pytest.raises(ValueError, match="per row"):
        accuracy_rejection_curve(y_true[:3], y_pred, wrong)


# --------------------------------------------------------------- scorers
class _TemperedClassifier(ClassifierMixin, BaseEstimator):
    """Knows the true class probabilities of the synthetic problem; reports them tempered."""

    def __init__(self, temperature=1.0):
        self.temperature = temperature

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return _temper(np.asarray(X), self.temperature)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class _ScaledStdRegressor(RegressorMixin, BaseEstimator):
    """Knows the true mean and noise of the synthetic problem; reports std times a factor."""

    def __init__(self, std_factor=1.0):
        self.std_factor = std_factor

    def fit(self, X, y):
        return self

    def predict(self, X, return_std=False):
        X = np.asarray(X)
        mean, std = X[:, 0], X[:, 1] * self.std_factor
        return (mean, std) if return_std else mean


def test_scorers_follow_the_greater_is_better_sign():
    rng = np.random.RandomState(0)
    y, proba = _calibrated_classification(3000, 3, rng)
    clf = _TemperedClassifier().fit(proba, y)
    assert neg_nll_scorer(clf, proba, y) == pytest.approx(-categorical_nll(y, proba))
    assert neg_ece_scorer(clf, proba, y) == pytest.approx(-expected_calibration_error(y, proba))
    assert neg_brier_scorer(clf, proba, y) == pytest.approx(-brier_score(y, proba))

    mean, std = rng.randn(3000), rng.uniform(0.5, 2, 3000)
    target = mean + std * rng.randn(3000)
    X = np.column_stack([mean, std])
    reg = _ScaledStdRegressor().fit(X, target)
    assert neg_nll_scorer(reg, X, target) == pytest.approx(-gaussian_nll(target, mean, std**2))
    assert neg_crps_scorer(reg, X, target) == pytest.approx(-crps_gaussian(target, mean, std))
    assert neg_regression_calibration_error_scorer(reg, X, target) == pytest.approx(
        -regression_calibration_error(target, mean, std)
    )
    with pytest.raises(TypeError, match="regressors only"):
        neg_crps_scorer(clf, proba, y)
    with pytest.raises(TypeError, match="classifiers only"):
        neg_ece_scorer(reg, X, target)


def test_get_scorer_by_name():
    assert set(get_scorer_names()) >= {"neg_nll", "neg_ece", "neg_crps", "neg_brier"}
    assert get_scorer("neg_nll") is neg_nll_scorer
    assert "neg_adaptive_ece" in repr(get_scorer("neg_adaptive_ece"))
    with pytest.raises(ValueError, match="Unknown scorer"):
        get_scorer("accuracy")
    with pytest.raises(ValueError, match="metric"):
        metrics.UncertaintyScorer()


@pytest.mark.parametrize("scorer", ["neg_nll", "neg_ece", "neg_adaptive_ece", "neg_brier"])
def test_grid_search_picks_the_calibrated_classifier(scorer):
    # Every temperature predicts the same classes (same accuracy); only T=1 is calibrated.
    rng = np.random.RandomState(0)
    y, proba = _calibrated_classification(3000, 4, rng, concentration=0.5)
    grid = {"temperature": [0.5, 1.0, 2.0]}
    search = GridSearchCV(_TemperedClassifier(), grid, scoring=get_scorer(scorer), cv=3)
    search.fit(proba, y)
    assert search.best_params_ == {"temperature": 1.0}
    accuracy = GridSearchCV(_TemperedClassifier(), grid, scoring="accuracy", cv=3).fit(proba, y)
    assert np.ptp(accuracy.cv_results_["mean_test_score"]) == 0  # accuracy cannot choose


@pytest.mark.parametrize("scorer", ["neg_nll", "neg_crps", "neg_regression_calibration_error"])
def test_grid_search_picks_the_calibrated_regressor(scorer):
    rng = np.random.RandomState(0)
    mean, std = rng.randn(3000), rng.uniform(0.2, 2, 3000)
    y = mean + std * rng.randn(3000)
    X = np.column_stack([mean, std])
    grid = {"std_factor": [0.5, 1.0, 2.0]}
    search = GridSearchCV(_ScaledStdRegressor(), grid, scoring=get_scorer(scorer), cv=3).fit(X, y)
    assert search.best_params_ == {"std_factor": 1.0}


def test_grid_search_over_a_skbdl_regressor_picks_the_likelihood_that_fits_the_noise():
    # The noise grows 20-fold across the inputs: a heteroscedastic likelihood models
    # it, a homoscedastic one cannot.  Both fit the mean about equally well (R^2),
    # but the NLL, CRPS and calibration scorers prefer the heteroscedastic network.
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(600, 1))
    noise = 0.05 + 0.95 * (X[:, 0] + 1) / 2
    y = 2 * X[:, 0] + noise * rng.randn(600)
    est = MCDropoutRegressor(
        hidden_layer_sizes=(16,),
        dropout=0.0,
        max_epochs=60,
        lr=0.01,
        batch_size=100,
        random_state=0,
    )
    scoring = {
        "nll": neg_nll_scorer,
        "crps": neg_crps_scorer,
        "calibration": neg_regression_calibration_error_scorer,
        "r2": "r2",
    }
    search = GridSearchCV(
        est,
        {"likelihood": ["homoscedastic", "heteroscedastic"]},
        scoring=scoring,
        refit="nll",
        cv=2,
    ).fit(X, y)
    assert search.best_params_ == {"likelihood": "heteroscedastic"}
    results = search.cv_results_
    for name in ("nll", "crps", "calibration"):
        assert np.all(np.isfinite(results[f"mean_test_{name}"]))
    assert results["mean_test_nll"][1] > results["mean_test_nll"][0] + 0.3
    assert results["mean_test_crps"][1] > results["mean_test_crps"][0]
    assert abs(results["mean_test_r2"][1] - results["mean_test_r2"][0]) < 0.05


def test_scorers_in_cross_validate_with_a_skbdl_classifier_pipeline():
    from sklearn.datasets import load_iris
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skbdl import MCDropoutClassifier

    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]  # string labels
    model = make_pipeline(
        StandardScaler(),
        MCDropoutClassifier(
            hidden_layer_sizes=(16,), max_epochs=20, lr=0.01, n_samples=10, random_state=0
        ),
    )
    scores = cross_validate(
        model,
        X,
        names,
        cv=2,
        scoring={"nll": neg_nll_scorer, "ece": neg_ece_scorer, "brier": neg_brier_scorer},
    )
    for key in ("test_nll", "test_ece", "test_brier"):
        assert np.all(np.isfinite(scores[key])) and np.all(scores[key] <= 0)


# ------------------------------------------------------------ package layout
METRICS_DIR = Path(metrics.__file__).parent
#: What a metric module may import from skbdl: other metric modules, the pure
#: uncertainty functions.  Never an estimator, torch or skorch.
ALLOWED_SKBDL_IMPORTS = {"skbdl.uncertainty"}


def _skbdl_imports(path):
    """Absolute names of the skbdl modules (and torch/skorch) a source file imports."""
    package = "skbdl.metrics"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
                names.add(module)
                if not node.module:  # from . import x
                    names |= {f"{base}.{alias.name}" for alias in node.names}
            else:
                names.add(node.module)
    return {n for n in names if n.split(".")[0] in ("skbdl", "torch", "skorch")}


@pytest.mark.parametrize("path", sorted(METRICS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_metric_modules_import_no_estimator(path):
    imported = _skbdl_imports(path)
    bad = {n for n in imported if not n.startswith("skbdl.metrics")} - ALLOWED_SKBDL_IMPORTS
    assert not bad, f"skbdl/metrics/{path.name} imports {sorted(bad)}"


def test_import_skbdl_metrics_loads_no_estimator_torch_or_skorch():
    # skbdl/__init__.py imports the estimators, so a plain "import skbdl.metrics" would
    # load them whatever skbdl.metrics does.  Bypass it: register a bare "skbdl"
    # package whose __path__ is the source folder, then import skbdl.metrics in a
    # fresh interpreter and list what it loaded.
    code = f"""
import sys, types
package = types.ModuleType("skbdl")
package.__path__ = [{str(METRICS_DIR.parent)!r}]
sys.modules["skbdl"] = package
import skbdl.metrics
assert skbdl.metrics.rmse([0.0, 0.0], [3.0, -4.0]) > 3.5
print(sorted(m for m in sys.modules if m.split(".")[0] in ("skbdl", "torch", "skorch")))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(ast.literal_eval(result.stdout.strip().splitlines()[-1]))
    assert "skbdl.metrics._scorers" in loaded  # the bypass did import the package
    bad = {m for m in loaded if m != "skbdl" and not m.startswith("skbdl.metrics")}
    assert bad <= ALLOWED_SKBDL_IMPORTS, f"import skbdl.metrics loaded {sorted(bad)}"
