"""Screen candidate default settings of one regressor on the UCI sets, quickly.

The loop used to choose skbdl's defaults (docs/defaults.md): for each data set and
split, ``make_pipeline(StandardScaler(), Estimator(hidden_layer_sizes=(50,),
random_state=split, **params))`` is fitted on the standard training rows and scored
on the test rows: test RMSE, test log-likelihood of the predictive mixture (as
``python -m skbdl benchmark uci`` scores it) and the coverage of the central 90%
interval of ``predict_interval``.  One line per run: per set ``RMSE / LL / coverage
/ fit seconds / epochs``, then the sum of the five LLs.  The 20-split evaluation of
the chosen defaults is ``python -m skbdl benchmark uci`` (docs/benchmarks.md).

Usage::

    python benchmarks/defaults_screening.py MCDropoutRegressor '{"lr": 0.003}' \\
        --data-dir ../shared/data/uci --splits 0-4 --n-jobs 2
"""

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
from joblib import Parallel, delayed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SETS = ("bostonHousing", "concrete", "energy", "wine-quality-red", "yacht")


def run_split(data_dir, dataset, split, estimator_name, params):
    """``(rmse, ll, coverage, fit_seconds, epochs)`` of one split."""
    import torch
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import skbdl
    from skbdl.datasets import load_uci_split
    from skbdl.metrics import gaussian_mixture_nll

    torch.set_num_threads(1)
    X_train, y_train, X_test, y_test = load_uci_split(os.path.join(data_dir, dataset), split)
    params = {"hidden_layer_sizes": (50,), "verbose": 0, **params}
    estimator = getattr(skbdl, estimator_name)(random_state=split, **params)
    model = make_pipeline(StandardScaler(), estimator)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - start
    X_scaled = model[0].transform(X_test)
    mean_samples, var_samples = estimator.sample_predictions(X_scaled)
    mean = estimator.predict(X_scaled)
    low, high = estimator.predict_interval(X_scaled, confidence=0.9).T
    return (
        float(np.sqrt(np.mean((mean - y_test) ** 2))),
        -gaussian_mixture_nll(y_test, mean_samples, var_samples),
        float(np.mean((y_test >= low) & (y_test <= high))),
        fit_seconds,
        getattr(estimator, "n_iter_", -1),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("estimator", help="an skbdl regressor class name")
    parser.add_argument("params", nargs="?", default="{}", help="JSON of estimator parameters")
    parser.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "data", "uci"))
    parser.add_argument("--datasets", default=",".join(SETS))
    parser.add_argument("--splits", default="0-4", help="first-last split, inclusive")
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args(argv)
    first, last = (int(s) for s in args.splits.split("-"))
    params = json.loads(args.params)
    datasets = args.datasets.split(",")
    tasks = [(d, s) for d in datasets for s in range(first, last + 1)]
    start = time.time()
    results = Parallel(n_jobs=args.n_jobs)(
        delayed(run_split)(args.data_dir, d, s, args.estimator, params) for d, s in tasks
    )
    cells, total = [], 0.0
    for dataset in datasets:
        rows = np.array([r for (d, _), r in zip(tasks, results) if d == dataset])
        rmse, ll, coverage, seconds, epochs = rows.mean(axis=0)
        total += ll
        cells.append(
            f"{dataset[:6]} {rmse:.3g}/{ll:.3f}/c{coverage:.2f}/{seconds:.1f}s/e{epochs:.0f}"
        )
    print(
        f"{args.estimator} {args.params} | {' | '.join(cells)} | sumLL {total:.2f} | "
        f"{time.time() - start:.0f}s"
    )


if __name__ == "__main__":
    main()
