"""UCI benchmark tooling: the loader, the log-likelihood formulas, the command."""

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.base import BaseEstimator, RegressorMixin, clone

from skbdl import MCDropoutRegressor, benchmark
from skbdl.__main__ import main
from skbdl.benchmark import _published, _report
from skbdl.datasets import list_uci_datasets, load_uci_split, read_uci_settings, uci_n_splits
from skbdl.metrics import gaussian_mixture_nll, gaussian_nll, rmse

SHARED_UCI = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "uci"


def _write_folder(folder, n_rows=40, n_features=3, n_splits=2, seed=0, extras=True):
    """A tiny UCI folder: target in the middle column, 75% / 25% splits."""
    rng = np.random.RandomState(seed)
    folder.mkdir(parents=True)
    X = rng.normal(size=(n_rows, n_features))
    y = X @ np.arange(1.0, n_features + 1) + 0.1 * rng.normal(size=n_rows)
    data = np.column_stack([X[:, :1], y, X[:, 1:]])
    np.savetxt(folder / "data.txt", data)
    np.savetxt(folder / "index_features.txt", [0] + list(range(2, n_features + 1)), fmt="%d")
    np.savetxt(folder / "index_target.txt", [1], fmt="%d")
    n_train = int(0.75 * n_rows)
    for k in range(n_splits):
        perm = rng.permutation(n_rows)
        np.savetxt(folder / f"index_train_{k}.txt", perm[:n_train], fmt="%d")
        np.savetxt(folder / f"index_test_{k}.txt", perm[n_train:], fmt="%d")
    if extras:
        np.savetxt(folder / "n_splits.txt", [n_splits], fmt="%d")
        np.savetxt(folder / "n_hidden.txt", [8], fmt="%d")
        np.savetxt(folder / "n_epochs.txt", [2], fmt="%d")
    return data


# ---------------------------------------------------------------------- loader
def test_load_uci_split_reads_the_standard_layout(tmp_path):
    data = _write_folder(tmp_path / "toy")
    X_train, y_train, X_test, y_test = load_uci_split(tmp_path / "toy", 1)
    train = np.loadtxt(tmp_path / "toy" / "index_train_1.txt", dtype=int)
    test = np.loadtxt(tmp_path / "toy" / "index_test_1.txt", dtype=int)
    assert X_train.dtype == np.float64 and y_train.dtype == np.float64
    np.testing.assert_array_equal(X_train, data[train][:, [0, 2, 3]])
    np.testing.assert_array_equal(y_train, data[train, 1])
    np.testing.assert_array_equal(X_test, data[test][:, [0, 2, 3]])
    np.testing.assert_array_equal(y_test, data[test, 1])
    assert X_train.shape == (30, 3) and X_test.shape == (10, 3)


def test_loader_counts_splits_settings_and_folders(tmp_path):
    _write_folder(tmp_path / "b", n_splits=3, extras=False)
    _write_folder(tmp_path / "a", n_splits=2)
    (tmp_path / "not_data").mkdir()
    # The MC dropout repository's own layout: files in a ``data`` sub-folder.
    _write_folder(tmp_path / "c" / "data", n_splits=1, extras=False)
    assert list_uci_datasets(tmp_path) == ["a", "b", "c"]
    assert uci_n_splits(tmp_path / "b") == 3  # counted from the index files
    assert uci_n_splits(tmp_path / "a") == 2  # from n_splits.txt
    assert uci_n_splits(tmp_path / "c") == 1
    assert read_uci_settings(tmp_path / "a") == {"n_splits": 2, "n_hidden": 8, "n_epochs": 2}
    assert read_uci_settings(tmp_path / "b") == {"n_splits": 3}


def test_loader_errors(tmp_path):
    _write_folder(tmp_path / "toy")
    with pytest.raises(FileNotFoundError, match="Split 5"):
        load_uci_split(tmp_path / "toy", 5)
    with pytest.raises(FileNotFoundError, match="missing data.txt"):
        load_uci_split(tmp_path, 0)
    np.savetxt(tmp_path / "toy" / "index_test_0.txt", [0, 999], fmt="%d")
    with pytest.raises(ValueError, match="outside"):
        load_uci_split(tmp_path / "toy", 0)


def test_float_formatted_indices_are_accepted(tmp_path):
    data = _write_folder(tmp_path / "toy", n_splits=1)
    train = np.loadtxt(tmp_path / "toy" / "index_train_0.txt", dtype=int)
    np.savetxt(tmp_path / "toy" / "index_train_0.txt", train.astype(float))  # 1.0e+00 style
    _, y_train, _, _ = load_uci_split(tmp_path / "toy", 0)
    np.testing.assert_array_equal(y_train, data[train, 1])


# --------------------------------------------------------------------- metrics
def test_gaussian_nll_by_hand():
    # Rows: y=1 under N(0, 1); y=0 under N(0, 4).
    by_hand = np.mean([0.5 * math.log(2 * math.pi) + 0.5, 0.5 * math.log(2 * math.pi * 4.0)])
    assert gaussian_nll([1.0, 0.0], [0.0, 0.0], [1.0, 4.0]) == pytest.approx(by_hand, rel=1e-12)
    assert -gaussian_nll([1.0, 0.0], [0.0, 0.0], [1.0, 4.0]) == pytest.approx(
        np.mean(norm.logpdf([1.0, 0.0], 0.0, [1.0, 2.0])), rel=1e-12
    )
    # Units: scaling y, mean and std by c adds log c.
    assert gaussian_nll([10.0, 0.0], [0.0, 0.0], [100.0, 400.0]) == pytest.approx(
        by_hand + math.log(10.0)
    )
    assert rmse([1.0, 2.0], [1.0, 4.0]) == pytest.approx(math.sqrt(2.0))


def test_mixture_of_two_gaussians_by_hand():
    # y = 0.5 under 0.5 N(0, 1) + 0.5 N(2, 0.25); y = 3 likewise.
    def density(y):
        a = math.exp(-0.5 * y**2) / math.sqrt(2 * math.pi)
        b = math.exp(-0.5 * (y - 2.0) ** 2 / 0.25) / math.sqrt(2 * math.pi * 0.25)
        return 0.5 * a + 0.5 * b

    by_hand = -(math.log(density(0.5)) + math.log(density(3.0))) / 2
    mean_samples = [[0.0, 0.0], [2.0, 2.0]]
    var_samples = [[1.0, 1.0], [0.25, 0.25]]
    got = gaussian_mixture_nll([0.5, 3.0], mean_samples, var_samples)
    assert got == pytest.approx(by_hand, rel=1e-12)
    # Far from every component: logsumexp keeps it finite (a Gaussian tail, no underflow).
    far = gaussian_mixture_nll([1e3], [[0.0], [1.0]], [[1.0], [1.0]])
    expected = -(np.log(0.5) + np.logaddexp(norm.logpdf(1e3, 0.0, 1.0), norm.logpdf(1e3, 1.0, 1.0)))
    assert math.isfinite(far) and far == pytest.approx(expected, rel=1e-12)


def test_mixture_with_one_component_is_the_single_gaussian():
    rng = np.random.RandomState(0)
    y, mean, var = rng.normal(size=5), rng.normal(size=5), rng.uniform(0.5, 2, size=5)
    assert gaussian_mixture_nll(y, mean[None], var[None]) == pytest.approx(
        gaussian_nll(y, mean, var), rel=1e-12
    )


def test_mixture_is_the_mc_dropout_paper_formula_when_variances_are_one_over_tau():
    rng = np.random.RandomState(1)
    T, n, tau = 50, 7, 2.5
    y = rng.normal(size=n)
    y_hat = rng.normal(size=(T, n))  # T stochastic forward passes
    # Gal & Ghahramani (2016), the test LL of their experiments code:
    # ll = logsumexp(-0.5 tau (y - y_hat)**2, 0) - log T - 0.5 log 2 pi + 0.5 log tau
    sq = -0.5 * tau * (y - y_hat) ** 2
    peak = sq.max(axis=0)
    lse = peak + np.log(np.exp(sq - peak).sum(axis=0))
    paper_ll = np.mean(lse - np.log(T) - 0.5 * np.log(2 * np.pi) + 0.5 * np.log(tau))
    got = -gaussian_mixture_nll(y, y_hat, np.full((T, n), 1.0 / tau))
    assert got == pytest.approx(paper_ll, rel=1e-12)
    assert -gaussian_mixture_nll(y, y_hat, 1.0 / tau) == pytest.approx(paper_ll, rel=1e-12)


def test_metric_shape_errors():
    with pytest.raises(ValueError, match="same shape"):
        gaussian_nll([0.0, 1.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="n_samples"):
        gaussian_mixture_nll([0.0, 1.0], [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        gaussian_nll([0.0], [0.0], [0.0])


# ------------------------------------------------------------------- harness
def test_published_table_is_parsed():
    published, value = benchmark.PUBLISHED_RESULTS, _published.published_value
    assert value(published["ll"]["Boston"]["MCD"]) == (-2.46, 0.06)
    assert value(published["rmse"]["Year"]["PBP"]) == (8.879, None)
    assert value(published["rmse"]["Year"]["MCD-grid"]) is None
    assert _published.published_name("bostonHousing") == "Boston"
    assert _published.published_name("protein-tertiary-structure") == "Protein"
    assert _report.format_mean_se(-2.4567, 0.061) == "−2.46±0.06"
    assert _report.format_mean_se(0.6301, 0.0092) == "0.630±0.009"


def test_published_tables_are_complete_package_data():
    # Both tables cover the same ten data sets, every cell of every column parses,
    # and the JSON file ships with the package (pyproject.toml's package-data).
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    published = benchmark.PUBLISHED_RESULTS
    assert set(published) == {"rmse", "ll"}
    assert list(published["rmse"]) == list(published["ll"])
    assert len(published["ll"]) == 10
    for rows in published.values():
        for cells in rows.values():
            assert tuple(cells) == benchmark.PUBLISHED_COLUMNS
            for text in cells.values():
                parsed = _published.published_value(text)
                assert parsed is None or all(math.isfinite(v) for v in parsed if v is not None)
    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    package_data = config["tool"]["setuptools"]["package-data"]
    assert "published_uci.json" in package_data["skbdl.benchmark"]
    assert (root / "skbdl" / "benchmark" / "published_uci.json").is_file()


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_command_smoke_run_on_a_tiny_folder(tmp_path, capsys):
    _write_folder(tmp_path / "data" / "toy", n_rows=40, n_splits=2)
    _write_folder(tmp_path / "data" / "yacht", n_rows=30, n_splits=2, seed=1)
    out = tmp_path / "res" / "uci.csv"
    status = main(
        [
            "benchmark", "uci", "--data-dir", str(tmp_path / "data"), "--quick",
            "--splits", "0-1", "--protocol", "default", "tuned", "--out", str(out),
            "--no-progress",
        ]
    )  # fmt: skip
    assert status == 0
    rows = _read_csv(out)
    assert len(rows) == 2 * 2 * 2  # data sets x protocols x splits
    assert {r["status"] for r in rows} == {"ok"}
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("rmse", "ll", "ll_gaussian"))
    tuned = [r for r in rows if r["protocol"] == "tuned"]
    assert all("dropout" in r["params"] for r in tuned)
    markdown = out.with_suffix(".md").read_text()
    assert markdown in capsys.readouterr().out
    # The published columns sit beside skbdl's; a set without published numbers gets '—'.
    assert "| yacht | 6.89±0.67 | 1.02±0.05 | 1.11±0.09 | 1.58±0.48 | 0.67±0.05 |" in markdown
    assert "| toy | — | — | — | — | — |" in markdown
    assert "skbdl mc_dropout (tuned)" in markdown


def test_default_protocol_uses_the_folder_architecture_and_the_training_statistics(tmp_path):
    _write_folder(tmp_path / "toy", n_splits=1)
    seen = {}

    class Spy(MCDropoutRegressor):
        def fit(self, X, y):
            seen["hidden"] = self.hidden_layer_sizes
            seen["epochs"] = self.max_epochs
            seen["lr"] = self.lr
            seen["X_mean"], seen["X_std"] = X.mean(axis=0), X.std(axis=0)
            return super().fit(X, y)

    spec = benchmark.MethodSpec(Spy, params={"n_samples": 5})
    benchmark.register_method("spy", spec)
    try:
        rows = benchmark.run_uci_benchmark(
            tmp_path / "toy", methods=["spy"], epochs="paper", params={"lr": 0.005}, progress=False
        )
        with pytest.raises(ValueError, match=r"no parameters \['nope'\]"):
            benchmark.run_uci_benchmark(tmp_path / "toy", methods=["spy"], params={"nope": 1})
    finally:
        del benchmark.METHODS["spy"]
    assert rows[0]["status"] == "ok"
    assert seen["hidden"] == (8,) and seen["epochs"] == 2  # n_hidden.txt, n_epochs.txt
    assert seen["lr"] == 0.005 and '"lr": 0.005' in rows[0]["params"]
    np.testing.assert_allclose(seen["X_mean"], 0.0, atol=1e-12)
    np.testing.assert_allclose(seen["X_std"], 1.0, atol=1e-12)


def _broken(**params):
    raise RuntimeError("this method always fails")


def test_a_failing_split_is_reported_not_dropped(tmp_path, capsys):
    _write_folder(tmp_path / "data" / "toy", n_splits=2)
    benchmark.register_method("broken", benchmark.MethodSpec(_broken))
    try:
        out = tmp_path / "uci.csv"
        status = main(
            [
                "benchmark", "uci", "--data-dir", str(tmp_path / "data"), "--quick",
                "--methods", "mc_dropout", "broken", "--out", str(out), "--no-progress",
            ]
        )  # fmt: skip
    finally:
        del benchmark.METHODS["broken"]
    assert status == 1
    rows = _read_csv(out)
    broken = [r for r in rows if r["method"] == "broken"]
    assert len(broken) == 2
    assert all(r["status"] == "RuntimeError: this method always fails" for r in broken)
    assert all(r["ll"] == "" for r in broken)
    assert {r["status"] for r in rows if r["method"] == "mc_dropout"} == {"ok"}
    captured = capsys.readouterr()
    assert "FAILED toy / broken (default) split 0" in captured.err
    assert "2 of 4 splits failed" in captured.err
    markdown = out.with_suffix(".md").read_text()
    assert "toy / skbdl broken: splits 0, 1" in markdown
    assert "— (0/2 splits)" in markdown


def test_registry_rejects_duplicates_and_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="already registered"):
        benchmark.register_method("mc_dropout", benchmark.METHODS["mc_dropout"])
    _write_folder(tmp_path / "toy", n_splits=1)
    with pytest.raises(ValueError, match="Unknown methods"):
        benchmark.run_uci_benchmark(tmp_path, methods=["nope"], progress=False)
    with pytest.raises(ValueError, match="No data set 'nope'"):
        benchmark.run_uci_benchmark(tmp_path, datasets=["nope"], progress=False)


@pytest.mark.skipif(not (SHARED_UCI / "yacht").is_dir(), reason="shared UCI data absent")
def test_command_on_one_real_split(tmp_path):
    out = tmp_path / "uci.csv"
    status = main(
        [
            "benchmark", "uci", "--data-dir", str(SHARED_UCI), "--datasets", "yacht",
            "--splits", "0", "--epochs", "1", "--out", str(out), "--no-progress",
        ]
    )  # fmt: skip
    assert status == 0
    (row,) = _read_csv(out)
    assert row["dataset"] == "yacht" and row["status"] == "ok"
    assert (row["n_train"], row["n_test"]) == ("277", "31")
    assert math.isfinite(float(row["ll"]))


# ------------------------------------------------------------ tabular baselines
def test_gp_method_runs_on_a_tiny_folder_and_is_scored_like_the_networks(tmp_path):
    _write_folder(tmp_path / "toy", n_rows=40, n_splits=2)
    rows = benchmark.run_uci_benchmark(tmp_path / "toy", methods=["gp"], progress=False)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for row in rows:
        assert all(math.isfinite(row[k]) for k in ("rmse", "ll", "coverage90"))
        # One Gaussian: its mixture LL, its Gaussian LL and the reported LL coincide.
        assert row["ll"] == row["ll_gaussian"] == pytest.approx(row["ll_mixture"], rel=1e-12)
        assert row["rmse"] < 1.0  # a linear target with noise 0.1, std about 3.7
    spec = benchmark.METHODS["gp"]
    assert (spec.ll, spec.hidden_param, spec.epochs_param) == ("gaussian", None, None)
    assert spec.max_train_rows == benchmark.GP_MAX_TRAIN_ROWS


def test_gaussian_baseline_sample_predictions_are_one_gaussian_in_original_units():
    rng = np.random.RandomState(0)
    X = rng.uniform(-2, 2, size=(40, 2))
    y = 1000.0 + 50.0 * np.sin(X[:, 0]) + 5.0 * rng.normal(size=40)
    gp = benchmark.GaussianProcessBaseline(random_state=0).fit(X, y)
    mean_samples, var_samples = gp.sample_predictions(X[:7], n_samples=100)
    assert mean_samples.shape == var_samples.shape == (1, 7)
    mean, std = gp.predict(X[:7], return_std=True)
    np.testing.assert_array_equal(mean_samples[0], mean)
    np.testing.assert_allclose(var_samples[0], std**2)
    np.testing.assert_array_equal(gp.predict(X[:7]), mean)
    # Original units: means near the targets, a noise std of about 5 (not about 0.1).
    assert np.abs(mean - y[:7]).max() < 20.0
    assert np.all((std > 1.0) & (std < 20.0))
    assert gp.set_params(random_state=3).get_params() == {"random_state": 3}


def test_gp_baseline_clones_and_refits_like_a_scikit_learn_regressor():
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(30, 3)), rng.normal(size=30)
    gp = benchmark.GaussianProcessBaseline(random_state=0)
    copy = clone(gp).fit(X, y)
    assert "model_" not in vars(gp) and copy.n_features_in_ == 3
    assert copy.model_.kernel_.k1.k2.length_scale.shape == (3,)  # one length scale per feature
    with pytest.raises(ValueError, match="features"):
        copy.predict(X[:, :2])
    assert math.isfinite(copy.score(X, y))


def test_row_limit_skips_splits_without_failing_the_command(tmp_path, capsys):
    _write_folder(tmp_path / "data" / "toy", n_rows=40, n_splits=2)  # 30 training rows
    small_gp = dataclasses.replace(benchmark.METHODS["gp"], max_train_rows=20)
    benchmark.register_method("gp_small", small_gp)
    try:
        out = tmp_path / "uci.csv"
        status = main(
            [
                "benchmark", "uci", "--data-dir", str(tmp_path / "data"),
                "--methods", "gp", "gp_small", "--out", str(out), "--no-progress",
            ]
        )  # fmt: skip
        summary = benchmark.summarize(
            benchmark.run_uci_benchmark(tmp_path / "data", methods=["gp_small"], progress=False)
        )
    finally:
        del benchmark.METHODS["gp_small"]
    assert status == 0
    rows = _read_csv(out)
    skipped = [r for r in rows if r["method"] == "gp_small"]
    assert [r["status"] for r in skipped] == [
        "skipped: 30 training rows > the method's max_train_rows=20"
    ] * 2
    assert all(r["ll"] == r["coverage90"] == r["fit_seconds"] == "" for r in skipped)
    assert {r["status"] for r in rows if r["method"] == "gp"} == {"ok"}
    captured = capsys.readouterr()
    assert "2 of 4 splits skipped" in captured.err and "FAILED" not in captured.err
    markdown = out.with_suffix(".md").read_text()
    assert "| toy | — | — | — | — | — |" in markdown  # published columns, then gp
    assert "| skipped |" in markdown
    assert "## Skipped splits" in markdown
    assert "toy / baseline gp_small: splits 0, 1 (30 training rows > the method's" in markdown
    assert "## Failed splits\n\nNone." in markdown
    (entry,) = summary
    assert (entry["n_ok"], entry["n_total"]) == (0, 2)
    assert entry["failed_splits"] == [] and entry["skipped_splits"] == [0, 1]
    assert math.isnan(entry["ll_mean"])


def test_a_missing_optional_package_stops_the_run_with_the_pip_command(tmp_path, capsys):
    _write_folder(tmp_path / "data" / "toy", n_splits=1)
    assert "ngboost" in benchmark.METHODS  # registered whether ngboost is installed or not
    assert benchmark.METHODS["ngboost"].requires == ("ngboost",)
    spec = dataclasses.replace(benchmark.METHODS["gp"], requires=("skbdl_no_such_module",))
    benchmark.register_method("needs_missing", spec)
    try:
        with pytest.raises(ImportError, match="pip install skbdl_no_such_module"):
            benchmark.run_uci_benchmark(
                tmp_path / "data", methods=["needs_missing"], progress=False
            )
        status = main(
            [
                "benchmark", "uci", "--data-dir", str(tmp_path / "data"),
                "--methods", "needs_missing", "--out", str(tmp_path / "uci.csv"),
            ]
        )  # fmt: skip
    finally:
        del benchmark.METHODS["needs_missing"]
    assert status == 2
    assert "pip install skbdl_no_such_module" in capsys.readouterr().err
    assert not (tmp_path / "uci.csv").exists()  # nothing ran


def test_ngboost_method_runs_on_a_tiny_folder(tmp_path):
    pytest.importorskip("ngboost")
    _write_folder(tmp_path / "toy", n_rows=40, n_splits=1)
    (row,) = benchmark.run_uci_benchmark(tmp_path / "toy", methods=["ngboost"], progress=False)
    assert row["status"] == "ok"
    assert all(math.isfinite(row[k]) for k in ("rmse", "ll", "coverage90"))
    assert row["ll"] == row["ll_gaussian"] == pytest.approx(row["ll_mixture"], rel=1e-12)


# -------------------------------------------------------------------- coverage
def test_gaussian_interval_coverage_by_hand():
    # z = 1.6449 for 90%: 1.64 is inside mean ± z std, 1.65 and -1.65 are not.
    y, mean, var = [0.0, 1.64, 1.65, -1.65], np.zeros(4), np.ones(4)
    assert benchmark.gaussian_interval_coverage(y, mean, var) == 0.5
    # Units: std 10 scales the interval.
    assert benchmark.gaussian_interval_coverage([16.4, 16.5], [0.0, 0.0], [100.0, 100.0]) == 0.5
    assert benchmark.gaussian_interval_coverage([0.5, 0.7], [0.0, 0.0], [1.0, 1.0], 0.5) == 0.5


class _TwoGaussians(RegressorMixin, BaseEstimator):
    """Predicts the mixture 0.5 N(-1, 1) + 0.5 N(1, 1) everywhere: mean 0, variance 2."""

    def fit(self, X, y):
        self.fitted_ = True
        return self

    def sample_predictions(self, X, n_samples=None):
        n_rows = len(X)
        return np.array([[-1.0] * n_rows, [1.0] * n_rows]), np.ones((2, n_rows))


def test_coverage90_is_the_gaussian_summary_interval_of_the_mixture(tmp_path):
    _write_folder(tmp_path / "data" / "toy", n_rows=40, n_splits=2)
    spec = benchmark.MethodSpec(
        _TwoGaussians, hidden_param=None, epochs_param=None, seed_param=None
    )
    benchmark.register_method("two_gaussians", spec)
    try:
        out = tmp_path / "uci.csv"
        status = main(
            [
                "benchmark", "uci", "--data-dir", str(tmp_path / "data"),
                "--methods", "two_gaussians", "--out", str(out), "--no-progress",
            ]
        )  # fmt: skip
    finally:
        del benchmark.METHODS["two_gaussians"]
    assert status == 0
    coverages = []
    for row in _read_csv(out):
        *_, y_test = load_uci_split(tmp_path / "data" / "toy", int(row["split"]))
        # Mixture mean 0 and total variance 1 + 1 = 2 (law of total variance).
        expected = np.mean(np.abs(y_test) <= norm.ppf(0.95) * math.sqrt(2.0))
        assert 0.0 < expected < 1.0
        assert expected != np.mean(np.abs(y_test) <= norm.ppf(0.95))  # not the noise alone
        assert float(row["coverage90"]) == pytest.approx(expected, abs=1e-12)
        coverages.append(expected)
    markdown = out.with_suffix(".md").read_text()
    assert "## Test coverage of the central 90% interval" in markdown
    cell = _report.format_mean_se(np.mean(coverages), np.std(coverages) / math.sqrt(2))
    assert f"| toy | {cell} |" in markdown


def test_targets_never_credit_skbdl_with_a_baseline():
    # A baseline that beats every published LL on Yacht, beside an skbdl method that
    # does not: (c) must judge the skbdl column only, and (d) must be "missed".
    def entry(method, ll):
        return {
            "dataset": "yacht", "method": method, "protocol": "default", "n_ok": 20,
            "n_total": 20, "ll_mean": ll, "ll_se": 0.01, "rmse_mean": 0.5, "rmse_se": 0.01,
        }  # fmt: skip

    summary = [entry("mc_dropout", -1.3), entry("gp", 0.5)]
    cells = {(s["dataset"], s["method"], s["protocol"]): s for s in summary}
    lines = _report._targets_markdown(
        ["yacht"], [("mc_dropout", "default"), ("gp", "default")], cells
    )
    (row,) = [line for line in lines if line.startswith("| yacht")]
    assert "(skbdl mc_dropout)" in row and "0.50±0.01 (baseline gp)" in row
    assert row.endswith("| missed | missed |")  # (c) and (d)
    summary[0]["ll_mean"] = 0.6  # now skbdl beats the papers and the baseline
    (row,) = [
        line
        for line in _report._targets_markdown(
            ["yacht"], [("mc_dropout", "default"), ("gp", "default")], cells
        )
        if line.startswith("| yacht")
    ]
    assert row.endswith("| met | met |")
