"""What ``n_jobs`` costs a deep ensemble: the stacked model against joblib workers.

Run ``python benchmarks/ensemble_n_jobs.py`` (``--repeats N``, default 3).  It fits
``DeepEnsembleRegressor(n_estimators=5, random_state=0, verbose=0)`` with default
settings on 200 x 10 rows three ways and prints the median wall-clock seconds of each
and its ratio to the default:

- ``default``: ``n_jobs=None``, strategy ``'auto'`` (the stacked, vectorised model);
- ``n_jobs=-1``: what a scikit-learn user sets by habit; since issue 12 it keeps the
  stacked model (before, it switched to joblib workers);
- ``strategy='joblib', n_jobs=2``: every member as its own joblib task in loky
  worker processes, what ``n_jobs=2`` used to select.

Each configuration is run once as a warm-up (imports, the loky workers' start-up),
then ``--repeats`` times; the configurations alternate so that load from other
processes hits them alike.  Worker start-up is excluded from the medians because loky
reuses its workers between fits; the warm-up column shows it.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

# Benchmark the checkout this file lives in, installed or not.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CONFIGS = {
    "default": dict(),
    "n_jobs=-1": dict(n_jobs=-1),
    "strategy='joblib', n_jobs=2": dict(strategy="joblib", n_jobs=2),
}


def make_data(n_rows=200, n_features=10, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n_rows, n_features)
    y = X[:, 0] - 0.5 * X[:, 1] + np.sin(2 * X[:, 2]) + X[:, 3] * X[:, 4]
    return X, y + 0.3 * rng.randn(n_rows)


def fit_seconds(params, X, y):
    from skbdl import DeepEnsembleRegressor

    est = DeepEnsembleRegressor(n_estimators=5, random_state=0, verbose=0, **params)
    start = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - start, est.strategy_


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    X, y = make_data()
    warmup, times, strategies = {}, {name: [] for name in CONFIGS}, {}
    for name, params in CONFIGS.items():
        warmup[name], strategies[name] = fit_seconds(params, X, y)
        print(f"  warm-up {name}: {warmup[name]:.2f} s", file=sys.stderr, flush=True)
    for _ in range(args.repeats):
        for name, params in CONFIGS.items():
            times[name].append(fit_seconds(params, X, y)[0])
            print(f"  {name}: {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
    base = statistics.median(times["default"])
    print(f"{'configuration':<30} {'strategy_':<11} {'warm-up s':>9} {'median s':>9} {'ratio':>7}")
    for name in CONFIGS:
        median = statistics.median(times[name])
        print(
            f"{name:<30} {strategies[name]:<11} {warmup[name]:>9.2f} {median:>9.2f} "
            f"{median / base:>7.1f}"
        )


if __name__ == "__main__":
    main()
