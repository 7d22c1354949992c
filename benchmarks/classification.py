"""Test NLL, ECE and accuracy of skbdl's classifiers under their library defaults.

Run ``python benchmarks/classification.py`` (``--quick`` for a smoke run,
``--datasets digits,wine`` / ``--methods mc_dropout,mlp_calibrated`` for a subset,
``--seeds N`` for more splits, ``--n-jobs 2`` to run tasks in parallel, ``--csv PATH``
to keep one row per fit).  See ``benchmarks/README.md`` for the latest results.

Every skbdl classifier is built with no arguments except ``random_state``
(``MCDropoutClassifier()``, ``DeepEnsembleClassifier()``, ``BayesianMLPClassifier()``,
``LastLayerLaplaceClassifier()``, whose default inner network it trains itself) and
compared with what a tabular user would build with scikit-learn alone:
``CalibratedClassifierCV(MLPClassifier())`` with scikit-learn's defaults (the
reference), and plain ``MLPClassifier()`` for context.  Every model sits in
``make_pipeline(StandardScaler(), model)``.

Data: scikit-learn's bundled ``load_digits``, ``load_breast_cancer`` and
``load_wine``.  Seed ``s`` (0, 1, ...) is a stratified 75/25 ``train_test_split``
with ``random_state=s``, and every model of that task gets ``random_state=s``, so all
methods see the same splits.  Metrics on the test rows: NLL (log loss, nats,
``skbdl.metrics.categorical_nll``), ECE (``skbdl.metrics.expected_calibration_error``:
top-label, 15 equal-width bins), accuracy (of ``predict``), fit seconds.

The table gives mean +- standard error over seeds.  The target, for each skbdl
classifier and data set: mean test NLL and mean ECE no worse (<=) than the
reference's on the same splits.  The comparison lines also give the paired
difference (skbdl - reference) and its standard error over seeds, to show how
much of a gap the seeds can explain.

It measures the installed skbdl (``pip install -e .`` for a checkout) and records
its commit (``git rev-parse --short HEAD`` of the checkout holding the imported
package) and whether that tree had uncommitted changes.

Warnings raised while fitting and predicting (mostly scikit-learn's
ConvergenceWarning from ``MLPClassifier``'s default 200 iterations) are recorded
rather than printed, so the table stays readable; they are counted per row and
summarised at the end.  A task that raises is reported (``ERROR``) and the others
still run; the script exits with status 1 only then.
"""

import argparse
import csv
import datetime
import os
import platform
import subprocess
import sys
import time
import traceback
import warnings
from collections import Counter, defaultdict

import numpy as np

#: Rows kept per data set with ``--quick`` (a stratified subsample, before the split).
QUICK_ROWS = 300
TEST_SIZE = 0.25
REFERENCE = "mlp_calibrated"


# ------------------------------------------------------------------------ data
def _load(name):
    from sklearn import datasets

    loader = {
        "digits": datasets.load_digits,
        "breast_cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
    }[name]
    return loader(return_X_y=True)


DATASETS = ("digits", "breast_cancer", "wine")


def split(dataset, seed, max_rows=None):
    """Stratified 75/25 split of ``dataset`` for ``seed`` (after an optional subsample)."""
    from sklearn.model_selection import train_test_split

    X, y = _load(dataset)
    if max_rows is not None and len(y) > max_rows:
        X, _, y, _ = train_test_split(X, y, train_size=max_rows, stratify=y, random_state=seed)
    return train_test_split(X, y, test_size=TEST_SIZE, stratify=y, random_state=seed)


# --------------------------------------------------------------------- methods
def _mlp(seed):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(random_state=seed)


def _mlp_calibrated(seed):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.neural_network import MLPClassifier

    return CalibratedClassifierCV(MLPClassifier(random_state=seed))


def _skbdl(class_name):
    def build(seed):
        import skbdl

        cls = getattr(skbdl, class_name, None)
        if cls is None:
            raise ImportError(f"skbdl does not export {class_name}", name=class_name)
        params = {"verbose": 0} if "verbose" in cls().get_params() else {}
        return cls(random_state=seed, **params)  # defaults; no progress bars in workers

    build.__name__ = f"_build_{class_name}"
    return build


#: key -> (display name, factory(seed) -> unfitted model, is it an skbdl classifier)
METHODS = {
    "mlp": ("MLPClassifier", _mlp, False),
    REFERENCE: ("MLPClassifier+CalibratedClassifierCV", _mlp_calibrated, False),
    "mc_dropout": ("MCDropoutClassifier", _skbdl("MCDropoutClassifier"), True),
    "deep_ensemble": ("DeepEnsembleClassifier", _skbdl("DeepEnsembleClassifier"), True),
    "bayesian_mlp": ("BayesianMLPClassifier", _skbdl("BayesianMLPClassifier"), True),
    "last_layer_laplace": (
        "LastLayerLaplaceClassifier",
        _skbdl("LastLayerLaplaceClassifier"),
        True,
    ),
    "hyper_deep_ensemble": (
        "HyperDeepEnsembleClassifier",
        _skbdl("HyperDeepEnsembleClassifier"),
        True,
    ),
}

# Parameters left out of the printed defaults (plumbing, not modelling choices).
_PLUMBING = {"callbacks", "device", "verbose", "predict_batch_size", "module", "random_state"}


def describe_defaults(key):
    """The modelling defaults of a method, as one line (for the record of a run)."""
    try:
        model = METHODS[key][1](0)
    except ImportError as exc:
        return f"not available ({exc})"
    if not METHODS[key][2]:
        return f"{model!r} (scikit-learn's defaults)"
    params = model.get_params(deep=False)
    shown = {k: v for k, v in sorted(params.items()) if k not in _PLUMBING and v is not None}
    text = ", ".join(f"{k}={v!r}" for k, v in shown.items())
    if params.get("estimator", "absent") is None and hasattr(model, "_default_estimator"):
        n_train = 1000  # the default network may depend on the number of rows
        inner = model._default_estimator(0, n_train)
        defaults = type(inner)().get_params(deep=False)
        changed = {
            k: v
            for k, v in sorted(inner.get_params(deep=False).items())
            if k not in _PLUMBING and defaults.get(k) != v
        }
        args = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        text += f"; estimator=None trains {type(inner).__name__}({args}) for {n_train} rows"
    return text


# -------------------------------------------------------------------- one task
def run_task(dataset, key, seed, max_rows, threads):
    """Fit one method on one split; metrics, timings and the warnings it raised."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skbdl.metrics import categorical_nll, expected_calibration_error

    if threads is not None:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(threads)
        limits = threadpool_limits(threads)
    else:
        limits = None
    result = dict(dataset=dataset, method=key, seed=seed, status="ok", error="")
    caught = []
    try:
        X_train, X_test, y_train, y_test = split(dataset, seed, max_rows)
        result.update(n_train=len(y_train), n_test=len(y_test))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = make_pipeline(StandardScaler(), METHODS[key][1](seed))
            start = time.perf_counter()
            model.fit(X_train, y_train)
            result["fit_s"] = time.perf_counter() - start
            start = time.perf_counter()
            proba = model.predict_proba(X_test)
            y_pred = model.predict(X_test)
            result["predict_s"] = time.perf_counter() - start
        classes = model.classes_
        result["nll"] = categorical_nll(y_test, proba, classes=classes)
        result["ece"] = expected_calibration_error(y_test, proba, classes=classes)
        result["accuracy"] = float(np.mean(y_pred == y_test))
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == "skbdl":
            raise  # skbdl itself is missing: nothing to benchmark
        result.update(status="skipped", error=str(exc))
    except Exception:  # one broken task must not hide the others
        result.update(status="error", error=traceback.format_exc())
    finally:
        if limits is not None:
            limits.restore_original_limits()
    result["warnings"] = [(w.category.__name__, str(w.message).splitlines()[0]) for w in caught]
    return result


# -------------------------------------------------------------------- summaries
def mean_se(values):
    """Mean and standard error (``std(ddof=1) / sqrt(n)``; nan for one value)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return np.nan, np.nan
    if len(values) == 1:
        return float(values[0]), np.nan
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def fmt(mean, se, digits=4, sign=""):
    """``mean ± se`` (``sign='+'`` prints the mean's sign); ``-`` when undefined."""
    if np.isnan(mean):
        return "-"
    if np.isnan(se):
        return f"{mean:{sign}.{digits}f}"
    return f"{mean:{sign}.{digits}f} ± {se:.{digits}f}"


def git_state():
    """``rev-parse --short HEAD`` of the checkout holding the imported skbdl, plus
    ``(dirty)`` when that tree has uncommitted changes; ``?`` outside a git checkout."""
    import skbdl

    folder = os.path.dirname(os.path.abspath(skbdl.__file__))

    def git(*cmd):
        return subprocess.run(
            ["git", "-C", folder, *cmd], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain"))
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return f"{commit} (dirty)" if dirty else commit


def machine_header(args, seeds, threads, state):
    import sklearn
    import torch

    import skbdl

    cpu = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")),
            cpu,
        )
    except OSError:
        pass
    threads_text = (
        f"{threads} thread(s) per task"
        if threads is not None
        else f"torch {torch.get_num_threads()} threads"
    )
    return (
        f"date {datetime.datetime.now().isoformat(timespec='seconds')}; "
        f"{os.cpu_count()} CPUs ({cpu}); python {platform.python_version()}; "
        f"torch {torch.__version__}; sklearn {sklearn.__version__}; numpy {np.__version__}; "
        f"skbdl {skbdl.__version__} at commit {state}\n"
        f"seeds {list(seeds)}; n_jobs {args.n_jobs} ({threads_text})"
        f"{f'; quick: at most {QUICK_ROWS} rows per data set' if args.quick else ''}"
    )


def print_table(results, datasets, keys, out):
    by_cell = defaultdict(list)
    for r in results:
        by_cell[r["dataset"], r["method"]].append(r)
    width = max(len(METHODS[k][0]) for k in keys) + 2
    dwidth = max(len(d) for d in [*datasets, "data set"]) + 2
    print(
        f"{'data set':<{dwidth}}{'method':<{width}}{'n':>2}  {'NLL':<17} {'ECE':<17} "
        f"{'accuracy':<17} {'fit s':<13} warnings",
        file=out,
    )
    for dataset in datasets:
        for key in keys:
            rows = by_cell[dataset, key]
            ok = [r for r in rows if r["status"] == "ok"]
            head = f"{dataset:<{dwidth}}{METHODS[key][0]:<{width}}{len(ok):>2}  "
            bad = [r for r in rows if r["status"] != "ok"]
            if not ok:
                status = bad[0]["status"].upper() if bad else "-"
                reason = bad[0]["error"].strip().splitlines()[-1] if bad else ""
                print(f"{head}{status} {reason}", file=out)
                continue
            cells = [
                fmt(*mean_se([r["nll"] for r in ok])),
                fmt(*mean_se([r["ece"] for r in ok])),
                fmt(*mean_se([r["accuracy"] for r in ok])),
                fmt(*mean_se([r["fit_s"] for r in ok]), digits=2),
            ]
            n_warn = sum(len(r["warnings"]) for r in rows)
            line = f"{head}{cells[0]:<17} {cells[1]:<17} {cells[2]:<17} {cells[3]:<13} {n_warn}"
            if bad:
                line += f"  ({len(bad)} seed(s) {bad[0]['status']})"
            print(line, file=out)


def compare(results, datasets, keys, out):
    """The target lines; returns (hits, misses, incomplete) as lists of labels."""
    ok = {(r["dataset"], r["method"], r["seed"]): r for r in results if r["status"] == "ok"}
    candidates = [k for k in keys if METHODS[k][2]]
    hits, misses, incomplete = [], [], []
    if not candidates:
        return hits, misses, incomplete
    ref_name = METHODS[REFERENCE][0]
    print(
        f"\nTarget: mean test NLL and mean ECE of each skbdl classifier <= those of {ref_name}"
        "\n(same splits; diff = skbdl - reference, mean ± standard error of the paired"
        " differences)",
        file=out,
    )
    if REFERENCE not in keys:
        print(f"  not checked: the reference ({REFERENCE}) is not among --methods", file=out)
        return hits, misses, incomplete
    width = max(len(METHODS[k][0]) for k in candidates) + 2
    dwidth = max(len(d) for d in [*datasets, "data set"]) + 2
    print(
        f"{'data set':<{dwidth}}{'classifier':<{width}}{'n':>2}  "
        f"{'NLL':>7} {'ref':>7} {'diff':<18} {'':4}  {'ECE':>7} {'ref':>7} {'diff':<18} {'':4}  "
        "target",
        file=out,
    )
    for dataset in datasets:
        ref_seeds = {s for (d, m, s) in ok if d == dataset and m == REFERENCE}
        for key in candidates:
            name = METHODS[key][0]
            seeds = sorted(ref_seeds & {s for (d, m, s) in ok if d == dataset and m == key})
            head = f"{dataset:<{dwidth}}{name:<{width}}{len(seeds):>2}  "
            if not seeds:
                print(f"{head}no seed where both ran", file=out)
                incomplete.append(f"{dataset} {name}")
                continue
            verdicts, cells = [], []
            for metric in ("nll", "ece"):
                mine = np.array([ok[dataset, key, s][metric] for s in seeds])
                ref = np.array([ok[dataset, REFERENCE, s][metric] for s in seeds])
                good = mine.mean() <= ref.mean()
                verdicts.append(good)
                diff = fmt(*mean_se(mine - ref), sign="+")
                cells.append(
                    f"{mine.mean():7.4f} {ref.mean():7.4f} {diff:<18} {'ok' if good else 'MISS':4}"
                )
            met = all(verdicts)
            print(f"{head}{cells[0]}  {cells[1]}  {'HIT' if met else 'MISS'}", file=out)
            label = f"{dataset} {name}"
            (hits if met else misses).append(label)
            if len(seeds) < len({r["seed"] for r in results}):
                incomplete.append(label)
    return hits, misses, incomplete


def summarise_warnings(results, keys, out):
    counts = Counter()
    example = {}
    for r in results:
        for category, message in r["warnings"]:
            counts[r["method"], category] += 1
            example.setdefault((r["method"], category), message)
    if not counts:
        print("\nwarnings: none", file=out)
        return
    print("\nwarnings recorded (not printed while running):", file=out)
    for key in keys:
        for (method, category), n in sorted(counts.items()):
            if method == key:
                message = example[method, category]
                if len(message) > 110:
                    message = message[:107] + "..."
                print(f"  {METHODS[key][0]}: {n} x {category}: {message}", file=out)


def write_csv(path, results):
    fields = [
        "dataset",
        "method",
        "seed",
        "status",
        "n_train",
        "n_test",
        "nll",
        "ece",
        "accuracy",
        "fit_s",
        "predict_s",
        "n_warnings",
        "warning_categories",
        "error",
    ]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in results:
            row = dict(r)
            row["method"] = METHODS[r["method"]][0]
            row["n_warnings"] = len(r["warnings"])
            cats = Counter(c for c, _ in r["warnings"])
            row["warning_categories"] = ";".join(f"{c}:{n}" for c, n in sorted(cats.items()))
            row["error"] = r["error"].strip().splitlines()[-1] if r["error"] else ""
            writer.writerow(row)


# ----------------------------------------------------------------------- running
def _parse_list(text, known, what, parser):
    items = [s.strip() for s in text.split(",") if s.strip()] if text else list(known)
    unknown = [s for s in items if s not in known]
    if unknown:
        parser.error(f"unknown {what} {unknown}; known: {list(known)}")
    return [k for k in known if k in items]  # canonical order


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="", help=f"comma-separated, of {list(DATASETS)}")
    parser.add_argument(
        "--methods",
        default="",
        help=f"comma-separated, of {list(METHODS)}; {REFERENCE} (the reference) is "
        "added whenever an skbdl classifier is chosen",
    )
    parser.add_argument(
        "--seeds", type=int, default=None, help="splits per data set: seeds 0..N-1 (5; 1 quick)"
    )
    parser.add_argument(
        "--n-jobs", type=int, default=1, help="tasks run in parallel by joblib (default 1)"
    )
    parser.add_argument("--csv", default=None, metavar="PATH", help="write one row per task")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: 1 seed, at most {QUICK_ROWS} rows per data set",
    )
    args = parser.parse_args(argv)
    n_seeds = args.seeds if args.seeds is not None else (1 if args.quick else 5)
    if n_seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.n_jobs < 1:
        parser.error("--n-jobs must be at least 1")
    datasets = _parse_list(args.datasets, DATASETS, "data sets", parser)
    keys = _parse_list(args.methods, METHODS, "methods", parser)
    if any(METHODS[k][2] for k in keys) and REFERENCE not in keys:
        keys = _parse_list(",".join([*keys, REFERENCE]), METHODS, "methods", parser)
    seeds = range(n_seeds)
    max_rows = QUICK_ROWS if args.quick else None
    # Parallel tasks share the cores: give each an equal share of threads.
    threads = max(1, (os.cpu_count() or 1) // args.n_jobs) if args.n_jobs > 1 else None

    print(machine_header(args, seeds, threads, git_state()))
    print("defaults:")
    for key in keys:
        print(f"  {METHODS[key][0]}: {describe_defaults(key)}")
    print(flush=True)

    from joblib import Parallel, delayed

    tasks = [(d, k, s) for d in datasets for s in seeds for k in keys]
    start = time.perf_counter()
    results = []
    jobs = Parallel(n_jobs=args.n_jobs, return_as="generator_unordered")(
        delayed(run_task)(d, k, s, max_rows, threads) for d, k, s in tasks
    )
    for r in jobs:
        results.append(r)
        if r["status"] == "ok":
            what = (
                f"nll {r['nll']:.4f}  ece {r['ece']:.4f}  acc {r['accuracy']:.4f}  "
                f"fit {r['fit_s']:.1f} s  warnings {len(r['warnings'])}"
            )
        else:
            what = f"{r['status'].upper()}: {r['error'].strip().splitlines()[-1]}"
        print(
            f"[{len(results)}/{len(tasks)} {time.perf_counter() - start:6.0f} s] "
            f"{r['dataset']} {METHODS[r['method']][0]} seed {r['seed']}: {what}",
            file=sys.stderr,
            flush=True,
        )
    wall = time.perf_counter() - start
    order = {t: i for i, t in enumerate(tasks)}
    results.sort(key=lambda r: order[r["dataset"], r["method"], r["seed"]])

    print_table(results, datasets, keys, sys.stdout)
    hits, misses, incomplete = compare(results, datasets, keys, sys.stdout)
    summarise_warnings(results, keys, sys.stdout)
    errors = [r for r in results if r["status"] == "error"]
    for r in errors:
        print(f"\nERROR {r['dataset']} {METHODS[r['method']][0]} seed {r['seed']}:\n{r['error']}")
    if args.csv:
        write_csv(args.csv, results)
        print(f"\nwrote {len(results)} rows to {args.csv}")
    checked = len(hits) + len(misses)
    if checked:
        line = f"\nsummary: target met for {len(hits)} of {checked} (classifier, data set) pairs"
        if misses:
            line += f"; missed: {', '.join(misses)}"
        if incomplete:
            line += f"; on fewer seeds: {', '.join(incomplete)}"
        print(line)
    print(f"total {wall:.0f} s wall, {len(results)} tasks, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
