"""Prediction intervals: mixture quantiles, ``predict_interval``, conformal intervals with MAPIE."""

import numpy as np
import pytest
from scipy import stats
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbdl import MCDropoutRegressor
from skbdl.metrics import interval_coverage, mean_interval_width
from skbdl.uncertainty import gaussian_mixture_cdf, gaussian_mixture_quantile

CONFIDENCES = (0.5, 0.8, 0.9, 0.99)


def _linear_data(n, rng, noise=0.5):
    X = rng.uniform(-2, 2, size=(n, 1))
    return X, 2 * X[:, 0] + noise * rng.randn(n)


@pytest.fixture(scope="module")
def fitted():
    """A heteroscedastic MC dropout regressor on a linear problem with noise 0.5."""
    X, y = _linear_data(1000, np.random.RandomState(0))
    est = MCDropoutRegressor(
        hidden_layer_sizes=(64,),
        dropout=0.05,
        likelihood="heteroscedastic",
        max_epochs=60,
        lr=0.01,
        batch_size=100,
        n_samples=30,
        calibrate=False,  # the interval maths on a model as trained (see test_calibration)
        random_state=0,
    )
    return est.fit(X, y)


# --------------------------------------------------------- mixture quantiles
def test_mixture_quantile_inverts_the_mixture_cdf():
    rng = np.random.RandomState(0)
    means, variances = rng.randn(5, 40, 2) * 3, rng.uniform(0.01, 4, (5, 40, 2))
    levels = np.array([0.001, 0.05, 0.5, 0.95, 0.999])
    quantiles = gaussian_mixture_quantile(levels, means, variances)
    assert quantiles.shape == (5, 40, 2)
    cdf = gaussian_mixture_cdf(quantiles, means, variances)
    np.testing.assert_allclose(cdf, np.broadcast_to(levels[:, None, None], cdf.shape), atol=1e-8)
    assert np.all(np.diff(quantiles, axis=0) > 0)
    # A scalar level drops the levels axis.
    np.testing.assert_allclose(gaussian_mixture_quantile(0.5, means, variances), quantiles[2])


def test_mixture_quantile_of_one_component_is_the_gaussian_quantile():
    means, variances = np.array([[1.0, -2.0]]), np.array([[4.0, 0.25]])
    got = gaussian_mixture_quantile([0.05, 0.95], means, variances)
    expected = stats.norm.ppf([[0.05], [0.95]], means, np.sqrt(variances))
    np.testing.assert_allclose(got, expected, atol=1e-8)


def test_mixture_intervals_cover_draws_from_the_mixture():
    # y drawn from each row's mixture falls in its central interval with probability
    # exactly ``confidence``: the count is Binomial(n, confidence).  Two-sided exact
    # tests, Bonferroni-corrected over the levels.
    rng = np.random.RandomState(0)
    n_rows, n_draws, n_components = 100, 50, 4
    means = rng.randn(n_components, n_rows) * 2
    variances = rng.uniform(0.1, 2, (n_components, n_rows))
    pick = rng.randint(n_components, size=(n_draws, n_rows))
    columns = np.arange(n_rows)
    y = means[pick, columns] + np.sqrt(variances[pick, columns]) * rng.randn(n_draws, n_rows)
    for confidence in CONFIDENCES:
        low, high = gaussian_mixture_quantile(
            [(1 - confidence) / 2, (1 + confidence) / 2], means, variances
        )
        inside = int(np.sum((low <= y) & (y <= high)))
        p_value = stats.binomtest(inside, y.size, confidence).pvalue
        assert p_value > 0.01 / len(CONFIDENCES), (confidence, inside / y.size)


def test_mixture_quantile_rejects_bad_levels():
    with pytest.raises(ValueError, match="strictly between"):
        gaussian_mixture_quantile([0.0, 0.5], [[0.0]], [[1.0]])
    with pytest.raises(ValueError, match="positive"):
        gaussian_mixture_quantile(0.5, [[0.0]], [[0.0]])


# ------------------------------------------------------------ predict_interval
def test_gaussian_interval_is_mean_plus_minus_z_std(fitted):
    X = np.linspace(-3, 3, 50)[:, None]
    mean, std = fitted.predict(X, return_std=True)
    intervals = fitted.predict_interval(X, confidence=0.9)
    assert intervals.shape == (50, 2)
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(intervals[:, 0], mean - z * std)
    np.testing.assert_allclose(intervals[:, 1], mean + z * std)


def test_mixture_interval_is_the_quantile_of_the_sampled_mixture(fitted):
    X = np.linspace(-3, 3, 50)[:, None]
    means, variances = fitted.sample_predictions(X)
    expected = gaussian_mixture_quantile([0.05, 0.95], means, variances).T
    np.testing.assert_allclose(fitted.predict_interval(X, method="mixture"), expected, atol=1e-6)
    # Row batches do not change the answer.
    chunked = fitted.set_params(predict_batch_size=30 * 7)  # 7 rows per batch
    try:
        np.testing.assert_allclose(
            chunked.predict_interval(X, method="mixture"), expected, atol=1e-6
        )
    finally:
        fitted.set_params(predict_batch_size=None)


def test_mixture_and_gaussian_agree_when_the_draws_are_identical():
    X, y = _linear_data(200, np.random.RandomState(1))
    est = MCDropoutRegressor(hidden_layer_sizes=(8,), dropout=0.0, max_epochs=5, random_state=0)
    est.fit(X, y)
    np.testing.assert_allclose(
        est.predict_interval(X, confidence=0.8, method="mixture"),
        est.predict_interval(X, confidence=0.8),
        atol=1e-6,
    )


def test_multi_output_intervals_have_an_outputs_axis():
    rng = np.random.RandomState(2)
    X = rng.uniform(-1, 1, (150, 2))
    Y = np.column_stack([X[:, 0], 10 * X[:, 1]]) + 0.1 * rng.randn(150, 2)
    est = MCDropoutRegressor(hidden_layer_sizes=(8,), max_epochs=5, n_samples=10, random_state=0)
    est.fit(X, Y)
    for method in ("gaussian", "mixture"):
        intervals = est.predict_interval(X[:7], method=method)
        assert intervals.shape == (7, 2, 2)
        assert np.all(intervals[..., 0] < intervals[..., 1])


@pytest.mark.parametrize("method", ["gaussian", "mixture"])
def test_intervals_cover_held_out_targets_at_their_confidence(fitted, method):
    # The model learned noise 0.5 from 1000 rows: its intervals should cover fresh
    # draws at the stated rate.  Tolerance: 4 binomial standard errors of the 4000
    # test rows plus 0.02 for the model's own error in the noise level.
    X, y = _linear_data(4000, np.random.RandomState(3))
    coverages = []
    for confidence in CONFIDENCES:
        coverage = interval_coverage(y, fitted.predict_interval(X, confidence, method=method))
        tolerance = 4 * np.sqrt(confidence * (1 - confidence) / len(y)) + 0.02
        assert abs(coverage - confidence) < tolerance, (confidence, coverage)
        coverages.append(coverage)
    assert np.all(np.diff(coverages) > 0)


def test_predict_interval_rejects_bad_arguments(fitted):
    X = np.zeros((2, 1))
    for confidence in (0, 1, 1.5, "0.9"):
        with pytest.raises(ValueError, match="confidence"):
            fitted.predict_interval(X, confidence=confidence)
    with pytest.raises(ValueError, match="method"):
        fitted.predict_interval(X, method="conformal")


# ----------------------------------------------------------------------- MAPIE
def test_mapie_split_conformal_intervals_from_a_skbdl_pipeline():
    mapie_regression = pytest.importorskip("mapie.regression")
    rng = np.random.RandomState(0)

    # Heavy-tailed noise (Student t, 3 degrees of freedom): the Gaussian intervals of
    # the network are miscalibrated, conformalizing with the std-normalised score
    # (|y - mean| / std, from predict(X, return_std=True)) restores coverage.
    def data(n):
        X = rng.uniform(-2, 2, size=(n, 1))
        return X, 2 * X[:, 0] + 0.3 * (1 + np.abs(X[:, 0])) * rng.standard_t(3, size=n)

    X_train, y_train = data(800)
    model = make_pipeline(
        StandardScaler(),
        MCDropoutRegressor(
            hidden_layer_sizes=(16,),
            dropout=0.05,
            likelihood="heteroscedastic",
            max_epochs=30,
            lr=0.01,
            batch_size=100,
            n_samples=20,
            random_state=0,
        ),
    ).fit(X_train, y_train)
    X_pool, y_pool = data(3000)

    coverages, widths = [], []
    for _ in range(10):
        order = rng.permutation(len(y_pool))
        calibrate, test = order[:1000], order[1000:]
        conformal = mapie_regression.SplitConformalRegressor(
            model, confidence_level=0.9, conformity_score="std_normalized", prefit=True
        ).conformalize(X_pool[calibrate], y_pool[calibrate])
        points, intervals = conformal.predict_interval(X_pool[test])
        assert intervals.shape == (len(test), 2, 1)
        np.testing.assert_allclose(points, model.predict(X_pool[test]))
        coverages.append(interval_coverage(y_pool[test], intervals[:, :, 0]))
        widths.append(mean_interval_width(intervals[:, :, 0]))
    # Split conformal: coverage >= 0.9 in expectation over calibration sets.  One-sided
    # t-test of the mean coverage against 0.9 (as MAPIE's own tests do), and not far
    # above it either (1 / (n_calibrate + 1) plus sampling noise).
    coverages = np.array(coverages)
    assert stats.ttest_1samp(coverages, 0.9, alternative="less").pvalue > 0.01, coverages
    assert coverages.mean() < 0.9 + 0.03
    assert np.all(np.array(widths) > 0)
