"""``python -m skbdl benchmark``: the command's options and its run."""

import os
import sys
import time
from pathlib import Path

from ._registry import METHODS
from ._report import summarize, to_markdown, write_csv
from ._runner import PROTOCOLS, _is_failed, _is_skipped, run_uci_benchmark


def _parse_splits(values):
    splits = []
    for value in values:
        for part in str(value).split(","):
            if not part:
                continue
            start, dash, stop = part.partition("-")
            if dash:
                splits.extend(range(int(start), int(stop) + 1))
            else:
                splits.append(int(part))
    return sorted(set(splits))


def _parse_epochs(value):
    if value == "paper":
        return value
    epochs = int(value)
    if epochs < 1:
        raise ValueError("--epochs must be a positive integer or 'paper'.")
    return epochs


def _parse_assignment(text):
    import argparse
    import ast

    key, eq, value = text.partition("=")
    if not eq or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"--set expects NAME=VALUE; got {text!r}.")
    try:
        value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        pass  # a bare string, e.g. optimizer=adamw
    return key.strip(), value


def add_arguments(parser):
    """Options of ``python -m skbdl benchmark``: one sub-command per suite (``uci``)."""
    suites = parser.add_subparsers(dest="suite", metavar="SUITE", required=True)
    uci = suites.add_parser(
        "uci",
        help="UCI regression sets, standard splits: test RMSE and log-likelihood",
        description=(
            "Run the UCI regression protocol of the Bayesian deep learning literature "
            "on data folders in the standard layout; write a CSV (one row per split) "
            "and a markdown table beside the published numbers. Exit status 1 if any "
            "split failed (a split skipped for a method's row limit is no failure), 2 "
            "if the run cannot start (unknown name, missing optional package)."
        ),
    )
    uci.add_argument("--data-dir", required=True, help="directory of UCI data folders")
    uci.add_argument("--datasets", nargs="+", help="folder names (default: all)")
    uci.add_argument(
        "--methods",
        nargs="+",
        default=["mc_dropout"],
        help=f"registered methods (default: mc_dropout; available: {', '.join(METHODS)})",
    )
    uci.add_argument(
        "--splits", nargs="+", help="split numbers or ranges, e.g. 0 1 5-9 (default: all)"
    )
    uci.add_argument(
        "--protocol",
        nargs="+",
        choices=PROTOCOLS,
        default=["default"],
        help="'default' (library defaults, no tuning) and/or 'tuned' (per-split grid search)",
    )
    uci.add_argument("--n-jobs", type=int, default=1, help="parallel tasks (joblib)")
    uci.add_argument(
        "--epochs",
        type=_parse_epochs,
        help="training epochs for every method; 'paper': the folder's n_epochs.txt",
    )
    uci.add_argument(
        "--set",
        dest="params",
        action="append",
        type=_parse_assignment,
        default=[],
        metavar="NAME=VALUE",
        help="estimator parameter for every method, e.g. --set lr=0.003 (repeatable)",
    )
    uci.add_argument("--quick", action="store_true", help="smoke test: 1 epoch, few draws")
    uci.add_argument("--seed", type=int, default=0, help="base of the per-split seeds")
    uci.add_argument("--out", default="uci_results.csv", help="CSV path (default: %(default)s)")
    uci.add_argument("--markdown", help="markdown path (default: the CSV path with the suffix .md)")
    uci.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    """Run ``benchmark uci`` from parsed arguments; return the exit status."""
    start = time.perf_counter()
    try:
        rows = run_uci_benchmark(
            args.data_dir,
            datasets=args.datasets,
            methods=args.methods,
            splits=None if not args.splits else _parse_splits(args.splits),
            protocols=args.protocol,
            n_jobs=args.n_jobs,
            epochs=args.epochs,
            quick=args.quick,
            seed=args.seed,
            params=dict(args.params),
            progress=not args.no_progress,
        )
    except (ValueError, ImportError, FileNotFoundError) as exc:  # nothing ran
        print(f"skbdl benchmark uci: error: {exc}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - start
    write_csv(rows, args.out)
    markdown_path = args.markdown or os.fspath(Path(args.out).with_suffix(".md"))
    summary = summarize(rows)
    notes = [
        f"Command: `python -m skbdl benchmark uci {_describe(args)}`",
        "",
        f"Wall time: {wall:.0f} s with --n-jobs {args.n_jobs} "
        f"({os.cpu_count()} CPUs visible). Methods: "
        + "; ".join(f"{m}: {METHODS[m].description or METHODS[m].estimator}" for m in args.methods)
        + "."
        + (
            " Overridden for every method (--set): "
            + ", ".join(f"{k}={v!r}" for k, v in args.params)
            + "."
            if args.params
            else ""
        ),
    ]
    markdown = to_markdown(summary, title="UCI regression benchmark", notes=notes)
    Path(markdown_path).write_text(markdown)
    print(markdown)
    print(f"Wrote {args.out} and {markdown_path} ({wall:.0f} s).", file=sys.stderr)
    n_skipped = sum(map(_is_skipped, rows))
    if n_skipped:
        print(
            f"{n_skipped} of {len(rows)} splits skipped (row limits; see 'Skipped splits').",
            file=sys.stderr,
        )
    failed = [r for r in rows if _is_failed(r)]
    for r in failed:
        print(
            f"FAILED {r['dataset']} / {r['method']} ({r['protocol']}) split {r['split']}: "
            f"{r['status']}",
            file=sys.stderr,
        )
    if failed:
        print(f"{len(failed)} of {len(rows)} splits failed.", file=sys.stderr)
        return 1
    return 0


def _describe(args):
    parts = [f"--data-dir {args.data_dir}"]
    if args.datasets:
        parts.append("--datasets " + " ".join(args.datasets))
    parts.append("--methods " + " ".join(args.methods))
    if args.splits:
        parts.append("--splits " + " ".join(map(str, args.splits)))
    parts.append("--protocol " + " ".join(args.protocol))
    if args.epochs is not None:
        parts.append(f"--epochs {args.epochs}")
    parts += [f"--set {k}={v!r}" for k, v in args.params]
    if args.quick:
        parts.append("--quick")
    parts.append(f"--n-jobs {args.n_jobs}")
    return " ".join(parts)
