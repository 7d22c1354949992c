"""The ``swag`` and ``laplace`` rows of the UCI command."""

import csv
import math

from test_uci import _write_folder

from skbdl import LaplaceRegressor, SWAGRegressor
from skbdl.__main__ import main
from skbdl.benchmark import METHODS


def test_registered_specs_build_the_estimators():
    swag = METHODS["swag"].make_estimator(n_hidden=8, epochs=3, random_state=1)
    assert isinstance(swag, SWAGRegressor)
    assert (swag.hidden_layer_sizes, swag.max_epochs, swag.verbose) == ((8,), 3, 0)
    laplace = METHODS["laplace"].make_estimator(n_hidden=8, epochs=3, random_state=1)
    assert isinstance(laplace, LaplaceRegressor)  # its own default MAP network
    assert laplace.random_state == 1 and METHODS["laplace"].ll == "gaussian"


def test_command_runs_both_on_a_tiny_folder(tmp_path):
    _write_folder(tmp_path / "data" / "toy", n_rows=40, n_splits=1)
    out = tmp_path / "uci.csv"
    status = main(
        [
            "benchmark", "uci", "--data-dir", str(tmp_path / "data"), "--quick",
            "--methods", "swag", "laplace", "--splits", "0",
            "--protocol", "default", "tuned", "--out", str(out), "--no-progress",
        ]
    )  # fmt: skip
    assert status == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2  # methods x protocols
    assert {r["status"] for r in rows} == {"ok"}
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("rmse", "ll", "coverage90"))
    tuned = {r["method"]: r["params"] for r in rows if r["protocol"] == "tuned"}
    assert "swag_start" in tuned["swag"] and "hessian_structure" in tuned["laplace"]
