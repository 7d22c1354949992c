"""skbdl.plotting: each figure draws what the metrics compute, on a given or a new Axes."""

import subprocess
import sys

import numpy as np
import pytest
from scipy.special import ndtri

from skbdl import metrics
from skbdl.uncertainty import RegressionUncertainty

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from skbdl import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def classification():
    rng = np.random.RandomState(0)
    proba = rng.dirichlet([0.5, 0.5, 0.5], size=400)
    y = (proba.cumsum(axis=1) < rng.uniform(size=(400, 1))).sum(axis=1)
    return y, proba


@pytest.fixture
def band():
    x = np.linspace(-3, 3, 60)
    aleatoric, epistemic = 0.05 + 0.01 * x**2, 0.2 * np.abs(x)
    total = aleatoric + epistemic
    return x, RegressionUncertainty(np.sin(x), np.sqrt(total), total, aleatoric, epistemic)


def _new_axes():
    return plt.subplots()[1]


def _shift_report():
    """A report shaped as skbdl.shift.dataset_shift_report returns it."""
    import pandas as pd

    rows = [("clean", 0, 0.9)] + [
        (kind, severity, 0.9 - 0.1 * severity)
        for kind in ("contrast", "rotate")
        for severity in range(1, 6)
    ]
    return pd.DataFrame(rows, columns=["corruption", "severity", "accuracy"])


def test_every_function_returns_axes_and_draws_on_the_given_one(classification, band):
    y, proba = classification
    x, u = band
    rng = np.random.RandomState(1)
    calls = [
        lambda ax: plotting.plot_reliability_diagram(y, proba, ax=ax),
        lambda ax: plotting.plot_predictive_band(x, u, ax=ax),
        lambda ax: plotting.plot_regression_calibration(rng.randn(100), np.zeros(100), 1.0, ax=ax),
        lambda ax: plotting.plot_accuracy_rejection(y, proba.argmax(1), proba.max(1), ax=ax),
        lambda ax: plotting.plot_uncertainty_histograms(rng.rand(50), rng.rand(30) + 0.5, ax=ax),
        lambda ax: plotting.plot_dataset_shift(_shift_report(), "accuracy", ax=ax),
    ]
    assert len(calls) == len(plotting.__all__)
    for call in calls:
        ax = _new_axes()
        assert call(ax) is ax
        new = call(None)
        assert isinstance(new, Axes) and new is not ax


def test_reliability_diagram_draws_the_reliability_curve(classification):
    y, proba = classification
    ax = plotting.plot_reliability_diagram(y, proba, n_bins=10, label="model")
    confidence, accuracy, _ = metrics.reliability_curve(y, proba, n_bins=10)
    curve = ax.lines[-1]
    np.testing.assert_allclose(curve.get_xdata(), confidence)
    np.testing.assert_allclose(curve.get_ydata(), accuracy)
    ece = metrics.expected_calibration_error(y, proba, n_bins=10)
    assert f"model: ECE {ece:.3f}" in [t.get_text() for t in ax.get_legend().get_texts()]
    # A second model on the same axes: one diagonal in the legend, two entries.
    plotting.plot_reliability_diagram(y, np.full_like(proba, 1 / 3), label="uniform", ax=ax)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts.count("perfect calibration") == 1 and len(texts) == 3


def test_predictive_band_shades_aleatoric_inside_total(band):
    x, u = band
    ax = plotting.plot_predictive_band(x, u, confidence=0.9, X_train=x[::5], y_train=u.mean[::5])
    z = ndtri(0.95)
    upper_epistemic, lower_epistemic, aleatoric = ax.collections[:3]
    # fill_between polygons: the extreme y of each band are its outer edges.
    top = upper_epistemic.get_paths()[0].vertices[:, 1]
    inner = aleatoric.get_paths()[0].vertices[:, 1]
    assert top.max() == pytest.approx(np.max(u.mean + z * u.std))
    assert inner.max() == pytest.approx(np.max(u.mean + z * np.sqrt(u.aleatoric_var)))
    assert inner.min() == pytest.approx(np.min(u.mean - z * np.sqrt(u.aleatoric_var)))
    assert lower_epistemic.get_paths()[0].vertices[:, 1].min() == pytest.approx(
        np.min(u.mean - z * u.std)
    )
    np.testing.assert_allclose(ax.lines[0].get_ydata(), u.mean)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["+ epistemic", "aleatoric (90%)", "predictive mean", "training data"]


def test_predictive_band_separate_style_draws_each_part_around_the_mean(band):
    x, u = band
    ax = plotting.plot_predictive_band(x, u, confidence=0.9, style="separate")
    z = ndtri(0.95)
    aleatoric, epistemic = ax.collections[:2]
    assert aleatoric.get_paths()[0].vertices[:, 1].max() == pytest.approx(
        np.max(u.mean + z * np.sqrt(u.aleatoric_var))
    )
    assert epistemic.get_paths()[0].vertices[:, 1].min() == pytest.approx(
        np.min(u.mean - z * np.sqrt(u.epistemic_var))
    )


def test_predictive_band_needs_a_1d_regression(band):
    x, u = band
    with pytest.raises(ValueError, match="1-D regression"):
        plotting.plot_predictive_band(x[:10], u)
    with pytest.raises(ValueError, match="style"):
        plotting.plot_predictive_band(x, u, style="total")


def test_regression_calibration_curve_with_end_points():
    rng = np.random.RandomState(0)
    y = rng.randn(500)
    ax = plotting.plot_regression_calibration(y, np.zeros(500), 0.5, n_levels=9, label="narrow")
    expected, observed = metrics.regression_calibration_curve(y, np.zeros(500), 0.5, n_levels=9)
    curve = ax.lines[-1]
    np.testing.assert_allclose(curve.get_xdata(), np.r_[0, expected, 1])
    np.testing.assert_allclose(curve.get_ydata(), np.r_[0, observed, 1])
    plotting.plot_regression_calibration(y, np.zeros(500), 1.0, ax=ax)
    assert len(ax.lines) == 3  # one diagonal, two curves


def test_accuracy_rejection_plot_draws_the_curve(classification):
    y, proba = classification
    y_pred, score = proba.argmax(1), 1 - proba.max(1)
    ax = plotting.plot_accuracy_rejection(y, y_pred, score, label="1 - max p")
    rates, accuracy = metrics.accuracy_rejection_curve(y, y_pred, score)
    np.testing.assert_allclose(ax.lines[0].get_xdata(), rates)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), accuracy)
    area = metrics.area_under_rejection_curve(y, y_pred, score)
    assert ax.get_legend().get_texts()[0].get_text() == f"1 - max p: area {area:.3f}"


@pytest.mark.parametrize("log_scale", [False, True])
def test_uncertainty_histograms_report_auroc(log_scale):
    rng = np.random.RandomState(0)
    score_in, score_out = rng.gamma(1, 0.1, 400), rng.gamma(3, 0.1, 100)
    score_in[:5] = 0.0  # exact zeros are clipped on a log axis
    ax = plotting.plot_uncertainty_histograms(score_in, score_out, bins=20, log_scale=log_scale)
    assert ax.get_title() == f"AUROC {metrics.ood_auroc(score_in, score_out):.3f}"
    assert ax.get_xscale() == ("log" if log_scale else "linear")
    heights = [sum(p.get_height() for p in c) for c in ax.containers]
    np.testing.assert_allclose(heights, 1.0)  # each histogram is normalised


def test_plotting_imports_without_matplotlib():
    code = (
        "import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib.pyplot'] = None\n"
        "import skbdl.plotting\n"
        "try:\n"
        "    skbdl.plotting.plot_uncertainty_histograms([0.0, 1.0], [2.0, 3.0])\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert "pip install" in result.stdout
