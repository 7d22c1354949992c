"""Results of the UCI benchmark: aggregation over splits, the CSV, the markdown report."""

import csv
import math
from pathlib import Path

import numpy as np
from scipy.special import ndtri

from ._published import PUBLISHED_COLUMNS, PUBLISHED_RESULTS, published_name, published_value
from ._registry import METHODS
from ._runner import COVERAGE_CONFIDENCE, SKIPPED_STATUS_PREFIX, _is_failed, _is_skipped


def summarize(rows):
    """Mean ± standard error over splits per (data set, method, protocol).

    Returns
    -------
    summary : list of dict
        Keys ``dataset, method, protocol, n_ok, n_total, failed_splits,
        skipped_splits, skip_reasons`` and, for each of ``rmse, ll, ll_mixture,
        ll_gaussian, coverage90, fit_seconds``, ``<key>_mean`` and ``<key>_se``
        (population std over the successful splits / sqrt(n_ok)); NaN when no split
        succeeded.  Skipped splits (above a method's ``max_train_rows``) count in
        ``n_total`` but neither as successes nor as failures.
    """
    groups = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["method"], row["protocol"]), []).append(row)
    summary = []
    for (dataset, method, protocol), group in groups.items():
        ok = [r for r in group if r["status"] == "ok"]
        entry = {
            "dataset": dataset,
            "method": method,
            "protocol": protocol,
            "n_ok": len(ok),
            "n_total": len(group),
            "failed_splits": sorted(r["split"] for r in group if _is_failed(r)),
            "skipped_splits": sorted(r["split"] for r in group if _is_skipped(r)),
            "skip_reasons": sorted(
                {r["status"].removeprefix(SKIPPED_STATUS_PREFIX) for r in group if _is_skipped(r)}
            ),
        }
        for key in ("rmse", "ll", "ll_mixture", "ll_gaussian", "coverage90", "fit_seconds"):
            values = np.array([r[key] for r in ok], dtype=np.float64)
            if values.size:
                entry[f"{key}_mean"] = float(values.mean())
                entry[f"{key}_se"] = float(values.std() / math.sqrt(values.size))
            else:
                entry[f"{key}_mean"] = entry[f"{key}_se"] = math.nan
        summary.append(entry)
    return summary


_CSV_FIELDS = (
    "dataset",
    "method",
    "protocol",
    "split",
    "status",
    "rmse",
    "ll",
    "ll_mixture",
    "ll_gaussian",
    "coverage90",
    "fit_seconds",
    "predict_seconds",
    "n_train",
    "n_test",
    "params",
)


def write_csv(rows, path):
    """Write one line per task (the fields of :func:`run_uci_benchmark`'s rows)."""
    path = Path(path)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row[k]) for k in _CSV_FIELDS})


def _csv_value(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def _decimals(mean, se):
    """Decimals showing the SE's first significant digit and 2 digits of the mean."""
    decimals = 2
    if se and math.isfinite(se) and se > 0:
        decimals = max(decimals, -math.floor(math.log10(se)))
    if mean and math.isfinite(mean) and abs(mean) < 1:
        decimals = max(decimals, -math.floor(math.log10(abs(mean))) + 1)
    return min(decimals, 6)


def format_mean_se(mean, se):
    """``'-2.46±0.06'`` (unicode minus, like the published tables); '—' for NaN."""
    if not math.isfinite(mean):
        return "—"
    d = _decimals(mean, se)
    return f"{mean:.{d}f}±{se:.{d}f}".replace("-", "−")


def _column_label(method, protocol):
    owner = "baseline" if _is_baseline(method) else "skbdl"
    return f"{owner} {method}" + ("" if protocol == "default" else f" ({protocol})")


def to_markdown(summary, *, title=None, notes=()):
    """The results as markdown: published columns beside skbdl's, targets, failures.

    Cells read ``mean±SE``; a cell computed from fewer than all splits is marked
    ``(k/n splits)``, one whose splits were all skipped reads ``skipped``.  Data sets
    without published numbers show '—' there.  The 90% interval coverage has no
    published columns (the papers did not report it).
    """
    datasets = list(dict.fromkeys(s["dataset"] for s in summary))
    columns = list(dict.fromkeys((s["method"], s["protocol"]) for s in summary))
    cells = {(s["dataset"], s["method"], s["protocol"]): s for s in summary}
    lines = []
    if title:
        lines += [f"# {title}", ""]
    lines += [f"{note}" for note in notes]
    if notes:
        lines.append("")
    for metric, heading, published_columns in (
        ("rmse", "Test RMSE (lower is better)", PUBLISHED_COLUMNS),
        ("ll", "Test log-likelihood (higher is better)", PUBLISHED_COLUMNS),
        (
            "coverage90",
            f"Test coverage of the central {COVERAGE_CONFIDENCE:.0%} interval "
            f"(mean ± {ndtri(0.5 + COVERAGE_CONFIDENCE / 2):.3f} std; "
            f"{COVERAGE_CONFIDENCE:.2f} is calibrated)",
            (),
        ),
    ):
        lines += [f"## {heading}", ""]
        header = ["data set", *published_columns, *(_column_label(*c) for c in columns)]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for dataset in datasets:
            ref = PUBLISHED_RESULTS.get(metric, {}).get(published_name(dataset) or "", {})
            row = [dataset, *(ref.get(c, "—") for c in published_columns)]
            for method, protocol in columns:
                s = cells.get((dataset, method, protocol))
                if s is None:
                    row.append("")
                elif len(s["skipped_splits"]) == s["n_total"]:
                    row.append("skipped")
                else:
                    text = format_mean_se(s[f"{metric}_mean"], s[f"{metric}_se"])
                    if s["n_ok"] != s["n_total"]:
                        text += f" ({s['n_ok']}/{s['n_total']} splits)"
                    row.append(text)
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += _targets_markdown(datasets, columns, cells)
    lines += ["## Per-split cost", ""]
    lines.append(
        "| data set | column | splits ok | mean fit seconds per split "
        "| LL of the Gaussian summary |"
    )
    lines.append("|---|---|---|---|---|")
    for dataset in datasets:
        for method, protocol in columns:
            s = cells.get((dataset, method, protocol))
            if s is None:
                continue
            fit_seconds = s["fit_seconds_mean"]
            lines.append(
                f"| {dataset} | {_column_label(method, protocol)} | {s['n_ok']}/{s['n_total']} "
                f"| {f'{fit_seconds:.2f}' if math.isfinite(fit_seconds) else '—'} "
                f"| {format_mean_se(s['ll_gaussian_mean'], s['ll_gaussian_se'])} |"
            )
    lines.append("")
    skipped = [s for s in summary if s["skipped_splits"]]
    if skipped:
        lines += ["## Skipped splits", ""]
        for s in skipped:
            lines.append(
                f"- {s['dataset']} / {_column_label(s['method'], s['protocol'])}: splits "
                f"{', '.join(map(str, s['skipped_splits']))} ({'; '.join(s['skip_reasons'])})"
            )
        lines.append("")
    failures = [s for s in summary if s["failed_splits"]]
    lines += ["## Failed splits", ""]
    if failures:
        for s in failures:
            lines.append(
                f"- {s['dataset']} / {_column_label(s['method'], s['protocol'])}: splits "
                f"{', '.join(map(str, s['failed_splits']))} (see the CSV's status column)"
            )
    else:
        lines.append("None.")
    lines.append("")
    return "\n".join(lines)


def _is_baseline(method):
    spec = METHODS.get(method)
    return spec is not None and spec.baseline


def _targets_markdown(datasets, columns, cells):
    """The issue's targets, per data set with published numbers.

    Only skbdl's columns compete; the baselines of the run (``MethodSpec.baseline``)
    are numbers to beat, in (d).
    """
    baselines = [c for c in columns if _is_baseline(c[0])]
    columns = [c for c in columns if not _is_baseline(c[0])]
    lines = [
        "## Targets",
        "",
        "Best skbdl column versus the published columns: (a) LL ≥ best published LL − "
        "that entry's ±; (b) RMSE ≤ the MC dropout paper's (MCD); (c) LL above every "
        "published LL; (d) LL above every published LL and every baseline's LL in this "
        "run (— when the run has no baseline).",
        "",
        "| data set | best published LL | best baseline LL | best skbdl LL | (a) | MCD RMSE "
        "| best skbdl RMSE | (b) | (c) | (d) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    n_rows = n_c = n_d = 0
    for dataset in datasets:
        name = published_name(dataset)
        if name is None or name not in PUBLISHED_RESULTS["ll"]:
            continue
        ref_ll = {c: published_value(v) for c, v in PUBLISHED_RESULTS["ll"][name].items()}
        ref_ll = {c: v for c, v in ref_ll.items() if v is not None}
        best_col = max(ref_ll, key=lambda c: ref_ll[c][0])
        best_ll, best_se = ref_ll[best_col]
        mcd_rmse = published_value(PUBLISHED_RESULTS["rmse"][name]["MCD"])
        ours = [cells[(dataset, *c)] for c in columns if (dataset, *c) in cells]
        ours = [s for s in ours if math.isfinite(s["ll_mean"])]
        theirs = [cells[(dataset, *c)] for c in baselines if (dataset, *c) in cells]
        theirs = [s for s in theirs if math.isfinite(s["ll_mean"])]
        if not ours:
            continue
        top_ll = max(ours, key=lambda s: s["ll_mean"])
        top_rmse = min(ours, key=lambda s: s["rmse_mean"])
        a = top_ll["ll_mean"] >= best_ll - (best_se or 0.0)
        b = mcd_rmse is not None and top_rmse["rmse_mean"] <= mcd_rmse[0]
        c = top_ll["ll_mean"] > best_ll
        baseline_cell, d = "—", None
        if theirs:
            top_baseline = max(theirs, key=lambda s: s["ll_mean"])
            baseline_cell = (
                f"{format_mean_se(top_baseline['ll_mean'], top_baseline['ll_se'])} "
                f"({_column_label(top_baseline['method'], top_baseline['protocol'])})"
            )
            d = c and top_ll["ll_mean"] > top_baseline["ll_mean"]
            n_d += d
        n_rows += 1
        n_c += c
        lines.append(
            f"| {dataset} | {PUBLISHED_RESULTS['ll'][name][best_col]} ({best_col}) "
            f"| {baseline_cell} "
            f"| {format_mean_se(top_ll['ll_mean'], top_ll['ll_se'])} "
            f"({_column_label(top_ll['method'], top_ll['protocol'])}) | {_yes(a)} "
            f"| {PUBLISHED_RESULTS['rmse'][name]['MCD']} "
            f"| {format_mean_se(top_rmse['rmse_mean'], top_rmse['rmse_se'])} | {_yes(b)} "
            f"| {_yes(c)} | {'—' if d is None else _yes(d)} |"
        )
    lines += ["", f"(c) holds on {n_c} of {n_rows} data sets."]
    if baselines:
        lines.append(f"(d) holds on {n_d} of {n_rows} data sets.")
    lines.append("")
    return lines


def _yes(flag):
    return "met" if flag else "missed"
