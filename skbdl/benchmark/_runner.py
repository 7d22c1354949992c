"""Fit and score the UCI splits: one task per (data set, method, protocol, split)."""

import json
import math
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from ..datasets import list_uci_datasets, load_uci_split, read_uci_settings, uci_n_splits
from ..metrics import gaussian_mixture_nll, gaussian_nll, interval_coverage, rmse
from ..uncertainty import _gaussian_interval, decompose_regression
from ._published import published_name
from ._registry import METHODS

PROTOCOLS = ("default", "tuned")

#: Hidden units when a data folder has no ``n_hidden.txt`` (the papers' network).
DEFAULT_N_HIDDEN = 50

#: Folds of the tuned protocol's grid search (on the training split only).
TUNED_CV = 3

#: Confidence of the central interval whose test coverage is reported (``coverage90``).
COVERAGE_CONFIDENCE = 0.9

#: Start of the ``status`` of a split skipped by its method's ``max_train_rows``.
SKIPPED_STATUS_PREFIX = "skipped: "


def nll_scorer(kind="mixture", n_samples=None):
    """A scikit-learn scorer: minus the test NLL of a fitted regressor (or pipeline).

    ``kind='mixture'`` scores the mixture of ``sample_predictions``;
    ``'gaussian'`` the single Gaussian of ``predict(X, return_std=True)``.  Greater
    is better, as ``GridSearchCV`` expects.
    """

    def score(estimator, X, y):
        if kind == "gaussian":
            mean, std = estimator.predict(X, return_std=True)
            return -gaussian_nll(y, mean, std**2)
        mean_samples, var_samples = _sample_predictions(estimator, X, n_samples)
        return -gaussian_mixture_nll(y, mean_samples, var_samples)

    return score


def _sample_predictions(estimator, X, n_samples):
    """``sample_predictions`` through a pipeline's transformers."""
    if hasattr(estimator, "steps"):
        X = estimator[:-1].transform(X)
        estimator = estimator[-1]
    return estimator.sample_predictions(X, n_samples=n_samples)


def _split_seed(seed, split):
    return int(seed) * 10_007 + int(split)


def _run_one(task):
    """Fit and evaluate one (data set, method, protocol, split); never raises."""
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    row = {
        "dataset": task["dataset"],
        "method": task["method"],
        "protocol": task["protocol"],
        "split": task["split"],
        "status": "ok",
        "rmse": math.nan,
        "ll": math.nan,
        "ll_mixture": math.nan,
        "ll_gaussian": math.nan,
        "coverage90": math.nan,
        "fit_seconds": math.nan,
        "predict_seconds": math.nan,
        "n_train": 0,
        "n_test": 0,
        "params": "",
    }
    spec = task["spec"]
    try:
        X_train, y_train, X_test, y_test = load_uci_split(task["path"], task["split"])
        row["n_train"], row["n_test"] = len(y_train), len(y_test)
        if spec.max_train_rows is not None and len(y_train) > spec.max_train_rows:
            row["status"] = (
                f"{SKIPPED_STATUS_PREFIX}{len(y_train)} training rows > the method's "
                f"max_train_rows={spec.max_train_rows}"
            )
            return row
        estimator = spec.make_estimator(
            n_hidden=task["n_hidden"],
            epochs=task["epochs"],
            random_state=_split_seed(task["seed"], task["split"]),
            quick=task["quick"],
            overrides=task["overrides"],
        )
        model = Pipeline([("scale", StandardScaler()), ("model", estimator)])
        eval_samples = spec.eval_samples
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if task["protocol"] == "tuned" and spec.param_grid:
                grid = {f"model__{k}": list(v) for k, v in spec.param_grid.items()}
                if task["quick"]:
                    grid = {k: v[:2] for k, v in grid.items()}
                search = GridSearchCV(
                    model,
                    grid,
                    scoring=nll_scorer(spec.ll, eval_samples),
                    cv=KFold(
                        2 if task["quick"] else TUNED_CV,
                        shuffle=True,
                        random_state=_split_seed(task["seed"], task["split"]),
                    ),
                    refit=True,
                    # A grid point whose fit fails (e.g. diverges) loses; the split
                    # fails only if the refit of the chosen point fails.
                    error_score=np.nan,
                    n_jobs=1,
                )
                search.fit(X_train, y_train)
                model = search.best_estimator_
                chosen = {**spec.params, **task["overrides"]}
                chosen.update(
                    {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
                )
                n_failed = int(np.isnan(search.cv_results_["mean_test_score"]).sum())
                if n_failed:
                    chosen["_grid_points_failed"] = n_failed
            else:
                model.fit(X_train, y_train)
                chosen = {**spec.params, **task["overrides"]}
        row["fit_seconds"] = time.perf_counter() - start
        row["params"] = json.dumps(chosen, sort_keys=True, default=str)
        start = time.perf_counter()
        mean_samples, var_samples = _sample_predictions(model, X_test, eval_samples)
        row["predict_seconds"] = time.perf_counter() - start
        mean, total_var, _, _ = decompose_regression(mean_samples, var_samples)
        row["rmse"] = rmse(y_test, mean)
        row["ll_mixture"] = -gaussian_mixture_nll(y_test, mean_samples, var_samples)
        row["ll_gaussian"] = -gaussian_nll(y_test, mean, total_var)
        row["ll"] = row["ll_mixture"] if spec.ll == "mixture" else row["ll_gaussian"]
        row["coverage90"] = gaussian_interval_coverage(y_test, mean, total_var, COVERAGE_CONFIDENCE)
        if not all(math.isfinite(row[k]) for k in ("rmse", "ll")):
            raise FloatingPointError("non-finite test metric")
    except Exception as exc:  # reported in the results, never dropped
        message = f"{type(exc).__name__}: {exc}".replace("\n", " ").strip()
        row["status"] = message or type(exc).__name__
        row["traceback"] = traceback.format_exc()
        for key in ("rmse", "ll", "ll_mixture", "ll_gaussian", "coverage90"):
            row[key] = math.nan
    return row


def gaussian_interval_coverage(y, mean, var, confidence=COVERAGE_CONFIDENCE):
    """Fraction of targets inside the central interval of a Gaussian predictive.

    The interval is ``mean ± z std`` with ``z = Phi^-1((1 + confidence) / 2)`` (1.645
    for 0.9): what ``predict_interval(method='gaussian')`` gives when ``var`` is the
    total variance of the predictive mixture.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        Observed targets.
    mean : array-like of shape (n_rows,)
        Predictive means.
    var : array-like of shape (n_rows,)
        Predictive variances.
    confidence : float, default=COVERAGE_CONFIDENCE
        Probability mass of the central interval, in ``(0, 1)``.

    Returns
    -------
    coverage : float
        In ``[0, 1]``; close to ``confidence`` for a calibrated predictive.

    Examples
    --------
    >>> from skbdl.benchmark import gaussian_interval_coverage
    >>> gaussian_interval_coverage([0.0, 1.6, 1.7], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    0.6666666666666666
    """
    mean = np.asarray(mean, dtype=np.float64)
    std = np.sqrt(np.asarray(var, dtype=np.float64))
    return interval_coverage(y, _gaussian_interval(mean, std, confidence))


def _is_skipped(row):
    return row["status"].startswith(SKIPPED_STATUS_PREFIX)


def _is_failed(row):
    return row["status"] != "ok" and not _is_skipped(row)


def _resolve_datasets(data_dir, names):
    """``{name: folder}`` for the requested data sets (all folders when None)."""
    root = Path(data_dir)
    try:
        available = list_uci_datasets(root)
    except FileNotFoundError:
        available = []
    try:  # the directory is itself one data folder
        uci_n_splits(root)
        own = [root.name]
    except FileNotFoundError:
        own = []
    if own and not available:
        folders = {root.name: root}
    else:
        folders = {name: root / name for name in available}
    if not folders:
        raise FileNotFoundError(
            f"No UCI data folders (data.txt, index_features.txt, index_target.txt) in "
            f"{os.fspath(root)!r}."
        )
    if not names:
        return folders
    by_lower = {name.lower(): name for name in folders}
    by_alias = {published_name(name): name for name in folders if published_name(name)}
    chosen = {}
    for name in names:
        match = by_lower.get(name.lower()) or by_alias.get(published_name(name) or name)
        if match is None:
            raise ValueError(
                f"No data set {name!r} in {os.fspath(root)!r}; available: {', '.join(folders)}."
            )
        chosen[match] = folders[match]
    return chosen


def run_uci_benchmark(
    data_dir,
    *,
    datasets=None,
    methods=("mc_dropout",),
    splits=None,
    protocols=("default",),
    n_jobs=1,
    epochs=None,
    quick=False,
    seed=0,
    params=None,
    progress=True,
):
    """Run the UCI protocol; return one result row (a dict) per task.

    Parameters
    ----------
    data_dir : str or path-like
        A directory of data folders in the standard layout (or one such folder).
    datasets : list of str, default=None
        Folder names (case-insensitive; ``boston``, ``wine`` ... also work); None:
        every folder under ``data_dir``.
    methods : list of str, default=('mc_dropout',)
        Names registered in :data:`METHODS`.
    splits : list of int, default=None
        Split numbers; None: all of each data set.  Splits a data set lacks are
        skipped (e.g. Protein has 5).
    protocols : list of {'default', 'tuned'}, default=('default',)
        See the module docstring.
    n_jobs : int, default=1
        Tasks run in parallel by joblib (each task is one split of one method).
    epochs : int, 'paper' or None, default=None
        Override the method's epochs (``'paper'``: the folder's ``n_epochs.txt``);
        None keeps the method's default.
    quick : bool, default=False
        Smoke-test settings: 1 epoch unless ``epochs`` is given, the method's
        ``quick_params``, a 2-fold search over at most 2 values per parameter.
    seed : int, default=0
        Base of the per-split random seeds.
    params : dict, default=None
        Estimator parameters set for every method in both protocols (``--set``),
        after the method's own; a grid of the tuned protocol still wins for its
        parameters.  Every method must accept them.
    progress : bool, default=True
        Show a progress bar (on stderr) over finished tasks.

    Returns
    -------
    rows : list of dict
        Keys: ``dataset, method, protocol, split, status, rmse, ll, ll_mixture,
        ll_gaussian, coverage90, fit_seconds, predict_seconds, n_train, n_test,
        params`` (and ``traceback`` for failures), in task order.  ``status`` is
        ``'ok'``, the error of a failed split, or ``'skipped: ...'`` for a split above
        the method's ``max_train_rows``.

    Raises
    ------
    ValueError
        For an unknown method or protocol, a parameter a method does not accept,
        or nothing to run.
    ImportError
        When a method's optional package (``MethodSpec.requires``) is not installed.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown methods {unknown}; registered: {', '.join(METHODS)}.")
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad:
        raise ValueError(f"Unknown protocols {bad}; choose from {PROTOCOLS}.")
    for method in methods:
        missing = METHODS[method].missing_requirements()
        if missing:
            raise ImportError(
                f"Method {method!r} needs {', '.join(missing)}, which cannot be imported "
                f"here: pip install {' '.join(missing)}"
            )
    tasks = []
    for name, path in _resolve_datasets(data_dir, datasets).items():
        settings = read_uci_settings(path)
        n_splits = settings["n_splits"]
        wanted = range(n_splits) if splits is None else [s for s in splits if s < n_splits]
        task_epochs = settings.get("n_epochs") if epochs == "paper" else epochs
        if quick and task_epochs is None:
            task_epochs = 1
        for method in methods:
            for protocol in protocols:
                for split in wanted:
                    tasks.append(
                        {
                            "dataset": name,
                            "path": os.fspath(path),
                            "method": method,
                            "spec": METHODS[method],
                            "protocol": protocol,
                            "split": int(split),
                            "n_hidden": settings.get("n_hidden", DEFAULT_N_HIDDEN),
                            "epochs": task_epochs,
                            "quick": quick,
                            "seed": seed,
                        }
                    )
    overrides = dict(params or {})
    for method in methods:
        accepted = _accepted_params(METHODS[method])
        rejected = sorted(
            k for k in overrides if accepted is not None and k not in accepted and "__" not in k
        )
        if rejected:
            raise ValueError(f"Method {method!r} has no parameters {rejected}.")
    for task in tasks:
        task["overrides"] = overrides
    if not tasks:
        raise ValueError("Nothing to run: no split of the chosen data sets matches --splits.")
    rows = [None] * len(tasks)
    results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        delayed(_with_index)(i, task) for i, task in enumerate(tasks)
    )
    failed = 0
    with tqdm(total=len(tasks), desc="uci", disable=not progress, file=sys.stderr) as bar:
        for index, row in results:
            rows[index] = row
            failed += _is_failed(row)
            bar.set_postfix_str(
                f"{row['dataset']}/{row['method']} split {row['split']}"
                + (f", {failed} failed" if failed else ""),
                refresh=False,
            )
            bar.update()
    return rows


def _accepted_params(spec):
    """Parameter names of the method's estimator, or None if they cannot be listed."""
    get_params = getattr(spec.estimator, "get_params", None)
    if get_params is None:
        return None
    try:
        return set(spec.estimator().get_params())
    except Exception:
        return None


def _with_index(index, task):
    return index, _run_one(task)
