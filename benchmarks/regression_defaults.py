"""Regressors under library defaults on data the defaults were NOT chosen on.

The defaults were chosen on five UCI sets (docs/defaults.md).  This script checks
them elsewhere: scikit-learn's bundled ``load_diabetes`` (442 patients) and
``make_friedman1`` (1000 rows, 10 features of which 5 matter, noise 1), each over 5
seeds of a 75/25 split.  Every model sits behind a ``StandardScaler``.  Reported per
data set and model, mean ± standard error over the seeds: test RMSE, test
log-likelihood of the model's predictive mixture (``sample_predictions``, in the
target's units; one Gaussian for the GP), and the coverage of the central 90%
interval (``predict_interval``; for the GP, mean ± 1.645 std).  The reference is
scikit-learn's ``GaussianProcessRegressor`` with an ARD RBF kernel plus white noise,
standardised target.

Usage::

    python benchmarks/regression_defaults.py [--seeds 5] [--n-jobs 2] [--models NAME ...]
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
from joblib import Parallel, delayed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODELS = (
    "MCDropoutRegressor",
    "DeepEnsembleRegressor",
    "BayesianMLPRegressor",
    "HyperDeepEnsembleRegressor",
    "PBPRegressor",
    "GaussianProcessRegressor",
)
Z90 = 1.6448536269514722


def load(name, seed):
    from sklearn.datasets import load_diabetes, make_friedman1

    if name == "diabetes":
        return load_diabetes(return_X_y=True)
    return make_friedman1(n_samples=1000, noise=1.0, random_state=seed)


def run(dataset, model_name, seed):
    """``(rmse, ll, coverage, fit_seconds)`` of one model on one split."""
    import torch
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import skbdl
    from skbdl.metrics import gaussian_mixture_nll

    torch.set_num_threads(1)
    X, y = load(dataset, seed)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=seed)
    if model_name == "GaussianProcessRegressor":
        kernel = ConstantKernel() * RBF(length_scale=np.ones(X.shape[1])) + WhiteKernel()
        model = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed)
    else:
        model = getattr(skbdl, model_name)(random_state=seed, verbose=0)
    pipe = make_pipeline(StandardScaler(), model)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    X_scaled = pipe[0].transform(X_test)
    if model_name == "GaussianProcessRegressor":
        mean, std = model.predict(X_scaled, return_std=True)
        means, variances = mean[None], std[None] ** 2
        low, high = mean - Z90 * std, mean + Z90 * std
    else:
        means, variances = model.sample_predictions(X_scaled)
        mean = model.predict(X_scaled)
        low, high = model.predict_interval(X_scaled, confidence=0.9).T
    return (
        float(np.sqrt(np.mean((mean - y_test) ** 2))),
        -gaussian_mixture_nll(y_test, means, variances),
        float(np.mean((y_test >= low) & (y_test <= high))),
        seconds,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--datasets", nargs="+", default=["diabetes", "friedman1"])
    args = parser.parse_args(argv)
    tasks = [(d, m, s) for d in args.datasets for m in args.models for s in range(args.seeds)]
    start = time.time()
    results = Parallel(n_jobs=args.n_jobs)(delayed(run)(*task) for task in tasks)
    header = f"{'data set':10} {'model':28} {'RMSE':>14} {'test LL':>16} {'90% cover':>14}"
    print(f"{header} {'fit s':>7}")
    for dataset in args.datasets:
        for model_name in args.models:
            rows = np.array(
                [r for (d, m, _), r in zip(tasks, results) if d == dataset and m == model_name]
            )
            mean, se = rows.mean(axis=0), rows.std(axis=0) / np.sqrt(len(rows))
            print(
                f"{dataset:10} {model_name:28} {mean[0]:7.3f} ± {se[0]:5.3f} "
                f"{mean[1]:8.3f} ± {se[1]:5.3f} {mean[2]:6.3f} ± {se[2]:5.3f} {mean[3]:7.1f}"
            )
    print(f"wall time {time.time() - start:.0f} s, {args.seeds} seeds")


if __name__ == "__main__":
    main()
