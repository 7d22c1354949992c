"""The command line demo and its metric helpers."""

import math

import numpy as np
import pytest

from skbdl import _demo
from skbdl.__main__ import COMMANDS, build_parser, main

METRIC_NAMES = [
    "test RMSE",
    "test RMSE of a linear model",
    "test NLL (Gaussian, per row)",
    "test NLL of the linear model",
    "90% interval coverage",
    "correlation of predicted and true noise std",
    "RMSE beyond the training range",
    "epistemic std ratio, beyond / within range",
    "90% interval coverage beyond the range",
    "test accuracy",
    "test NLL (log loss, seen digits)",
    "test ECE (15 bins, seen digits)",
    "mutual information ratio",
    "predictive entropy ratio",
    "AUROC held-out vs seen",
]
N_ROWS = 15


def _table_values(text):
    """``{metric: value}`` from the results table printed by the demo."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["dataset"])
    values = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        dataset, rest = line.split(maxsplit=1)
        metric, value = rest.rsplit(maxsplit=1)
        values[metric.strip()] = float(value)
    return values


def test_demo_quick_runs_prints_table_and_writes_figure(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--quick", "--seed", "1"]) == 0
    out = capsys.readouterr().out

    values = _table_values(out)
    assert len(values) == N_ROWS
    for name in METRIC_NAMES:
        assert any(metric.startswith(name) for metric in values), name
    assert all(math.isfinite(v) for v in values.values()), values
    assert 0 <= values["90% interval coverage"] <= 1
    assert 0 <= values["90% interval coverage beyond the range"] <= 1
    assert 0 <= values["test ECE (15 bins, seen digits)"] <= 1
    assert "[1/3]" in out and "[3/3]" in out

    figure = tmp_path / "skbdl_demo.png"  # the default --out, in the working directory
    assert figure.is_file()
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure.stat().st_size > 10_000


def test_demo_without_matplotlib_still_prints_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_demo, "_matplotlib_missing", lambda: True)
    out_path = tmp_path / "figure.png"
    results = _demo.run_demo(seed=0, out=out_path, quick=True)
    out = capsys.readouterr().out
    assert "matplotlib is not installed" in out
    assert "pip install" in out
    assert not out_path.exists()
    values = _table_values(out)
    assert len(values) == N_ROWS
    assert 0 <= results["classification"]["accuracy"] <= 1
    # The table prints what the run computed (nothing staged).
    reg = results["regression"]
    printed = {
        "rmse": "test RMSE (|x| < 5, as trained)",
        "rmse_linear": "test RMSE of a linear model (reference)",
        "nll": "test NLL (Gaussian, per row)",
        "coverage": "90% interval coverage",
    }
    for key, metric in printed.items():
        assert values[metric] == pytest.approx(reg[key], abs=5e-4), key
    # Recomputed from the returned arrays.
    assert reg["rmse"] == pytest.approx(np.sqrt(np.mean((reg["y_test"] - reg["mean"]) ** 2)))
    assert reg["coverage"] == pytest.approx(
        np.mean(np.abs(reg["y_test"] - reg["mean"]) <= 1.6448536 * reg["std"])
    )


@pytest.mark.slow
def test_readme_quotes_what_the_full_demo_prints(tmp_path, capsys):
    # The full demo (about 30 s on two cores): the README's table is this run's output.
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    quoted = readme.split("It prints (seed 0")[1].split("```text\n")[1].split("```")[0]
    _demo.run_demo(seed=0, out=None, verbose=0)
    printed = capsys.readouterr().out
    assert quoted.strip() in printed


def test_wave_data_has_the_stated_noise():
    rng = np.random.RandomState(0)
    X, y = _demo.make_wave(40_000, rng)
    assert X.shape == (40_000, 1) and np.all(np.abs(X) <= _demo.X_RANGE)
    standardised = (y - _demo.wave(X[:, 0])) / _demo.wave_noise_std(X[:, 0])
    # Standard normal: the mean's standard error is 0.005, the std's 0.0035.
    assert abs(standardised.mean()) < 0.02
    assert standardised.std() == pytest.approx(1.0, abs=0.015)
    X_beyond, _ = _demo.make_wave(2_000, rng, beyond=True)
    assert np.all((np.abs(X_beyond) > _demo.X_RANGE) & (np.abs(X_beyond) < _demo.X_BEYOND))
    assert 0.4 < np.mean(X_beyond > 0) < 0.6  # both sides of the training range


def test_command_line_lists_demo_and_needs_a_command(capsys):
    assert "demo" in COMMANDS
    with pytest.raises(SystemExit) as excinfo:
        main([])
    assert excinfo.value.code == 2
    args = build_parser().parse_args(["demo", "--out", "x.png", "--quick"])
    assert (args.command, args.out, args.quick, args.seed) == ("demo", "x.png", True, 0)


# ------------------------------------------------------------------- metric helpers
def test_gaussian_nll_matches_hand_computation():
    # -log N(y | m, s^2) = 0.5 log(2 pi s^2) + (y - m)^2 / (2 s^2)
    y, mean, std = np.array([1.0, 0.0]), np.array([0.0, 0.0]), np.array([2.0, 1.0])
    expected = np.mean([0.5 * math.log(2 * math.pi * 4) + 1 / 8, 0.5 * math.log(2 * math.pi)])
    assert _demo._gaussian_nll(y, mean, std) == pytest.approx(expected)


def test_gaussian_nll_is_in_the_units_of_y():
    rng = np.random.RandomState(0)
    y, mean, std = rng.randn(50), rng.randn(50), rng.uniform(0.5, 2, 50)
    nll = _demo._gaussian_nll(y, mean, std)
    assert _demo._gaussian_nll(10 * y, 10 * mean, 10 * std) == pytest.approx(nll + math.log(10))


def test_interval_coverage_of_known_intervals():
    mean, std = np.zeros(5), np.ones(5)
    y = np.array([0.0, 1.0, -1.6, 1.7, -3.0])  # |y| <= 1.645 for the first three
    assert _demo._interval_coverage(y, mean, std) == pytest.approx(3 / 5)
    assert _demo._interval_coverage(y, mean, std, level=0.99) == pytest.approx(4 / 5)


def test_interval_coverage_of_gaussian_draws_is_the_level():
    rng = np.random.RandomState(0)
    mean, std = rng.randn(20_000), rng.uniform(0.5, 3, 20_000)
    y = mean + std * rng.randn(20_000)
    # Binomial standard error at n = 20000 is 0.002: 0.01 is five of them.
    assert _demo._interval_coverage(y, mean, std) == pytest.approx(0.9, abs=0.01)


def test_ece_hand_computed():
    # Bins of width 1/15: confidence 0.9 is in (0.867, 0.933], 0.95 in (0.933, 1],
    # both rows of confidence 0.6 in (0.533, 0.6].
    proba = np.array([[0.9, 0.1], [0.05, 0.95], [0.4, 0.6], [0.6, 0.4]])
    y = np.array([0, 1, 0, 0])  # correct, correct, wrong, correct
    # bins: {0.9: acc 1}, {0.95: acc 1}, {0.6, 0.6: acc 1/2, conf 0.6}
    expected = (1 / 4) * 0.1 + (1 / 4) * 0.05 + (2 / 4) * abs(0.5 - 0.6)
    assert _demo._expected_calibration_error(y, proba) == pytest.approx(expected)


def test_ece_uses_class_labels():
    proba = np.array([[0.8, 0.2], [0.3, 0.7]])
    assert _demo._expected_calibration_error(
        np.array(["a", "b"]), proba, classes=np.array(["a", "b"])
    ) == pytest.approx(0.5 * 0.2 + 0.5 * 0.3)


def test_ece_of_a_calibrated_model_is_near_zero():
    # Confidence c, correct with probability c: calibrated by construction.
    rng = np.random.RandomState(0)
    n = 50_000
    confidence = rng.uniform(0.5, 1.0, n)
    proba = np.column_stack([confidence, 1 - confidence])
    y = np.where(rng.uniform(size=n) < confidence, 0, 1)
    assert _demo._expected_calibration_error(y, proba) < 0.01
    # The same probabilities, always right: ECE is 1 - mean confidence = 0.25.
    assert _demo._expected_calibration_error(np.zeros(n), proba) == pytest.approx(
        1 - confidence.mean()
    )


def test_format_table_aligns_columns():
    table = _demo.format_table([("a", "long metric", "1.0"), ("bbb", "m", "22.25")])
    lines = table.splitlines()
    assert len({len(line) for line in lines}) == 1  # last column right-aligned
    assert lines[0].startswith("dataset") and set(lines[1]) <= {"-", " "}
    assert lines[2].index("long metric") == lines[3].index("m")
