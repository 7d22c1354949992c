"""Recalibration on held-out rows: variance scaling (regressors), temperature (classifiers).

The maths is checked against truth (a known scale or temperature recovered from data
drawn with it); the estimators' calibrated intervals are checked statistically.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.stats import binomtest, norm

from skbdl import (
    BayesianMLPClassifier,
    BayesianMLPRegressor,
    DeepEnsembleClassifier,
    DeepEnsembleRegressor,
    MCDropoutClassifier,
    MCDropoutRegressor,
)
from skbdl.uncertainty import fit_log_scale, fit_log_temperature, mixture_log_likelihood

FAST = dict(hidden_layer_sizes=(16,), max_epochs=30, lr=0.01)
REGRESSORS = [MCDropoutRegressor, DeepEnsembleRegressor, BayesianMLPRegressor]
CLASSIFIERS = [MCDropoutClassifier, DeepEnsembleClassifier, BayesianMLPClassifier]


# ----------------------------------------------------------------------- maths
def test_mixture_log_likelihood_matches_a_direct_sum():
    rng = np.random.RandomState(0)
    means, variances = rng.randn(4, 6), rng.uniform(0.2, 2.0, (4, 6))
    y, scale = rng.randn(6), 1.7
    centre = means.mean(axis=0)
    density = norm.pdf(y, centre + scale * (means - centre), scale * np.sqrt(variances))
    assert_allclose(
        mixture_log_likelihood(y, means, variances, scale), np.log(density.mean(axis=0)).mean()
    )


@pytest.mark.parametrize("true_scale", [0.3, 1.0, 2.5])
def test_fit_log_scale_recovers_a_known_scale(true_scale):
    # A 3-component mixture per row; targets drawn from it with its spread scaled
    # by true_scale about its mean: the fitted factor must recover it.
    rng = np.random.RandomState(1)
    n_rows = 20_000
    means = rng.randn(3, n_rows) * 0.8
    variances = rng.uniform(0.1, 1.0, (3, n_rows))
    component = rng.randint(3, size=n_rows)
    rows = np.arange(n_rows)
    draw = means[component, rows] + np.sqrt(variances[component, rows]) * rng.randn(n_rows)
    centre = means.mean(axis=0)
    y = centre + true_scale * (draw - centre)
    fitted = np.exp(fit_log_scale(means, variances, y))
    assert fitted == pytest.approx(true_scale, rel=0.03)


def test_fit_log_scale_single_gaussian_is_the_closed_form():
    rng = np.random.RandomState(2)
    mean, var = rng.randn(1, 500), rng.uniform(0.5, 2.0, (1, 500))
    y = rng.randn(500) * 3.0
    closed_form = 0.5 * np.log(np.mean((y - mean[0]) ** 2 / var[0]))
    assert fit_log_scale(mean, var, y) == pytest.approx(closed_form, abs=1e-5)


@pytest.mark.parametrize("true_temperature", [0.5, 2.0])
def test_fit_log_temperature_recovers_a_known_temperature(true_temperature):
    rng = np.random.RandomState(3)
    n_rows, n_classes = 20_000, 4
    logits = rng.randn(1, n_rows, n_classes) * 2.0
    proba = np.exp(logits[0] / true_temperature)
    proba /= proba.sum(axis=1, keepdims=True)
    labels = (proba.cumsum(axis=1) > rng.rand(n_rows, 1)).argmax(axis=1)
    fitted = np.exp(fit_log_temperature(logits, labels))
    assert fitted == pytest.approx(true_temperature, rel=0.05)


# ------------------------------------------------------------------ estimators
def heteroscedastic_data(n, seed):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, size=(n, 1))
    y = np.sin(2 * X[:, 0]) + (0.1 + 0.3 * np.abs(X[:, 0])) * rng.randn(n)
    return X, y


@pytest.mark.parametrize("cls", REGRESSORS)
def test_regressor_calibration_is_reflected_everywhere(cls):
    X, y = heteroscedastic_data(200, 0)
    plain = cls(**FAST, calibrate=False, random_state=0).fit(X, y)
    assert_allclose(plain.calibration_scale_, [1.0])
    calibrated = cls(**FAST, calibrate=True, random_state=0).fit(X, y)
    scale = calibrated.calibration_scale_[0]
    assert scale != 1.0
    # Everything the estimator reports uses the same factor on its own draws: the
    # uncalibrated predictive of the same fitted network, scaled about its mean.
    reference = cls(**FAST, calibrate=True, random_state=0).fit(X, y)
    reference.calibration_scale_ = np.ones(1)
    u, u0 = calibrated.predict_uncertainty(X[:20]), reference.predict_uncertainty(X[:20])
    assert_allclose(u.mean, u0.mean, rtol=1e-10)
    assert_allclose(u.std, scale * u0.std, rtol=1e-10)
    assert_allclose(u.epistemic_var, scale**2 * u0.epistemic_var, rtol=1e-10)
    assert_allclose(calibrated.predict(X[:20], return_std=True)[1], u.std)
    means, variances = calibrated.sample_predictions(X[:20])
    means0, variances0 = reference.sample_predictions(X[:20])
    assert_allclose(variances, scale**2 * variances0, rtol=1e-10)
    assert_allclose(means - u.mean, scale * (means0 - u0.mean), atol=1e-10)
    interval = calibrated.predict_interval(X[:20], confidence=0.8)
    assert_allclose(interval[:, 1] - u.mean, norm.ppf(0.9) * u.std, rtol=1e-10)


def test_calibration_fixes_a_deliberately_overconfident_model():
    # A wide network trained 1000 epochs on 150 rows overfits: its 90% intervals
    # cover ~0.79 of new rows.  The factor fitted on 30% held-out rows (then the
    # network retrained on all rows) widens them, bringing the coverage near nominal.
    X, y = heteroscedastic_data(150, 1)
    X_test, y_test = heteroscedastic_data(3000, 2)
    params = dict(
        hidden_layer_sizes=(64, 64),
        max_epochs=1000,
        lr=0.01,
        validation_fraction=0.3,
        random_state=0,
    )
    raw = DeepEnsembleRegressor(**params, calibrate=False).fit(X, y)
    calibrated = DeepEnsembleRegressor(**params, calibrate=True).fit(X, y)
    assert calibrated.calibration_scale_[0] > 1.2

    def coverage(model):
        low, high = model.predict_interval(X_test, confidence=0.9).T
        return np.mean((y_test >= low) & (y_test <= high))

    assert coverage(raw) < 0.85
    assert abs(coverage(calibrated) - 0.9) < 0.04


def test_calibrated_intervals_cover_their_nominal_rate():
    # Well-specified heteroscedastic model, enough data: after recalibration the 90%
    # intervals' coverage on 2000 fresh rows must be consistent with 0.9 (two-sided
    # exact binomial test at level 0.001).
    X, y = heteroscedastic_data(2000, 3)
    X_test, y_test = heteroscedastic_data(2000, 4)
    model = DeepEnsembleRegressor(
        hidden_layer_sizes=(32, 32),
        n_estimators=5,
        max_epochs=60,
        lr=0.01,
        calibrate=True,
        validation_fraction=0.25,
        random_state=0,
    ).fit(X, y)
    low, high = model.predict_interval(X_test, confidence=0.9).T
    hits = int(np.sum((y_test >= low) & (y_test <= high)))
    assert binomtest(hits, len(y_test), 0.9).pvalue > 0.001, hits / len(y_test)


@pytest.mark.parametrize("cls", CLASSIFIERS)
def test_classifier_temperature(cls):
    rng = np.random.RandomState(0)
    X = rng.randn(300, 2)
    y = np.where(X[:, 0] + 0.8 * rng.randn(300) > 0, "yes", "no")  # noisy labels
    plain = cls(**FAST, calibrate=False, random_state=0).fit(X, y)
    assert plain.temperature_ == 1.0
    calibrated = cls(**FAST, calibrate=True, random_state=0).fit(X, y)
    assert calibrated.temperature_ != 1.0
    proba = calibrated.predict_proba(X[:10])
    assert_allclose(proba.sum(axis=1), 1.0)
    reference = cls(**FAST, calibrate=True, random_state=0).fit(X, y)
    reference.temperature_ = 1.0
    # Dividing every draw's logits by T > 1 flattens each draw: less confident.
    flatter = calibrated.temperature_ > 1.0
    confidence, confidence0 = proba.max(axis=1), reference.predict_proba(X[:10]).max(axis=1)
    assert np.all((confidence <= confidence0 + 1e-12) == flatter)


def test_calibration_holds_out_rows_then_retrains_on_all():
    X, y = heteroscedastic_data(100, 5)
    params = dict(**FAST, calibrate=True, validation_fraction=0.2, random_state=0)
    model = MCDropoutRegressor(**params).fit(X, y)
    # The final network saw all 100 rows (the factor came from one trained on 80).
    assert model.history_[-1]["train_batch_count"] == int(np.ceil(100 / model.batch_size_))
    # With early stopping the held-out rows serve both, and there is no retraining.
    stopped = MCDropoutRegressor(**params, early_stopping=True).fit(X, y)
    assert stopped.history_[-1]["train_batch_count"] == int(np.ceil(80 / stopped.batch_size_))
    assert "valid_loss" in stopped.history_[-1]
    model.set_params(calibrate=False).fit(X, y)
    assert_allclose(model.calibration_scale_, [1.0])


@pytest.mark.parametrize("cls", [MCDropoutRegressor, MCDropoutClassifier])
def test_calibrate_auto_needs_twenty_held_out_rows(cls):
    X, y = heteroscedastic_data(400, 6)
    if cls is MCDropoutClassifier:  # noisy labels: 20 held-out rows are not separable
        y = (y + np.random.RandomState(1).randn(len(y))) > 0
    attribute = "temperature_" if cls is MCDropoutClassifier else "calibration_scale_"
    small = cls(**FAST, random_state=0).fit(X[:190], y[:190])  # 19 held-out rows: off
    assert np.all(getattr(small, attribute) == 1.0)
    large = cls(**FAST, random_state=0).fit(X[:200], y[:200])  # 20: on
    assert np.all(getattr(large, attribute) != 1.0)


def test_validation_fraction_too_large_for_tiny_data_is_a_clear_error():
    X, y = heteroscedastic_data(3, 5)
    with pytest.raises(ValueError, match="validation_fraction"):
        MCDropoutRegressor(**FAST, calibrate=True, validation_fraction=0.1).fit(X[:1], y[:1])


def test_large_data_keeps_the_network_trained_without_the_held_out_rows(monkeypatch):
    import skbdl._training

    X, y = heteroscedastic_data(100, 7)
    monkeypatch.setattr(skbdl._training, "RETRAIN_MAX_ROWS", 100)  # 100 rows count as large
    model = MCDropoutRegressor(**FAST, calibrate=True, random_state=0).fit(X, y)
    assert model.history_[-1]["train_batch_count"] == int(np.ceil(90 / model.batch_size_))
    assert model.calibration_scale_[0] != 1.0


def test_separated_held_out_rows_leave_the_temperature_at_one():
    """On held-out rows every draw classifies with a margin, the likelihood has no
    maximum (T -> 0 makes every probability 0 or 1): no recalibration, a warning."""
    from sklearn.datasets import make_blobs

    from skbdl import MCDropoutClassifier

    X, y = make_blobs(400, centers=[[-6, 0], [6, 0]], cluster_std=0.5, random_state=0)
    with pytest.warns(UserWarning, match="could not recalibrate"):
        clf = MCDropoutClassifier(max_epochs=30, calibrate=True, verbose=0, random_state=0)
        clf.fit(X, y)
    assert clf.temperature_ == 1.0
    assert np.all(clf.predict_proba(X).max(axis=1) < 1.0)
