"""``python -m skbdl demo``: uncertainty that earns its place, measured at run time.

Two short stories, each seconds on a laptop CPU:

* regression on a generated heteroscedastic wave (``y = sin(2x) + 0.3x`` plus noise
  whose standard deviation grows with ``|x|``; training inputs in ``[-5, 5]``):
  accuracy (RMSE) and honesty (Gaussian NLL, coverage of the 90% predictive
  interval) of a :class:`~skbdl.DeepEnsembleRegressor` with its default settings,
  against a linear model with a constant noise level; whether its noise estimate
  follows the true noise; and how its epistemic uncertainty grows beyond the
  training range, where its errors grow;
* classification on ``load_digits`` with digits 8 and 9 held out of training:
  accuracy, log loss and calibration (ECE) of :class:`~skbdl.MCDropoutClassifier`
  on the digits it has seen, and how much more uncertain it is on the digits it
  has not (ratios of mutual information and predictive entropy, and the AUROC of
  telling the two apart by mutual information).

It prints a results table (every number computed by the run) and writes a PNG
figure (needs matplotlib).
"""

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LinearRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from . import metrics
from ._meta import predict_uncertainty
from .ensemble import DeepEnsembleRegressor
from .mc_dropout import MCDropoutClassifier
from .uncertainty import _gaussian_interval

#: Digits the classifier is trained on; the others are out-of-distribution.
SEEN_DIGITS = tuple(range(8))
_SEEN_TEXT = f"{SEEN_DIGITS[0]}-{SEEN_DIGITS[-1]}"
_HELD_OUT_TEXT = ", ".join(str(d) for d in range(10) if d not in SEEN_DIGITS)

#: Central probability of the regression prediction interval whose coverage is reported.
INTERVAL_LEVEL = 0.9

#: The regression inputs: training and test rows uniform on ``[-X_RANGE, X_RANGE]``,
#: the rows "beyond the training range" on ``X_RANGE < |x| < X_BEYOND``.
X_RANGE, X_BEYOND = 5.0, 6.5

#: Rows of the generated regression data: training, test, beyond the training range.
N_TRAIN, N_TEST, N_BEYOND = 600, 600, 200

#: Settings of the full run and of ``--quick`` (used by the tests).  The full
#: regression uses DeepEnsembleRegressor's defaults.
SETTINGS = {
    "full": {
        "regression": {},
        "classification": dict(
            hidden_layer_sizes=(100,), dropout=0.2, max_epochs=30, lr=1e-3, n_samples=100
        ),
    },
    "quick": {
        "regression": dict(
            hidden_layer_sizes=(32,), n_estimators=3, max_epochs=8, lr=3e-3, calibrate=False
        ),
        "classification": dict(
            hidden_layer_sizes=(64,), dropout=0.2, max_epochs=4, lr=3e-3, n_samples=20
        ),
    },
}


def wave(x):
    """The regression function, ``sin(2x) + 0.3x``.

    >>> float(wave(0.0))
    0.0
    """
    return np.sin(2 * x) + 0.3 * x


def wave_noise_std(x):
    """Standard deviation of the noise at ``x``: ``0.05 + 0.12 |x|`` (heteroscedastic).

    >>> float(wave_noise_std(-5.0))
    0.65
    """
    return 0.05 + 0.12 * np.abs(x)


def make_wave(n_rows, rng, beyond=False):
    """``(X, y)``: ``X`` of shape (n_rows, 1) uniform on ``[-X_RANGE, X_RANGE]`` (or,
    with ``beyond=True``, on ``X_RANGE < |x| < X_BEYOND``), ``y = wave(x) + noise``.

    >>> X, y = make_wave(4, np.random.RandomState(0), beyond=True)
    >>> X.shape, y.shape, bool(np.all(np.abs(X) > X_RANGE))
    ((4, 1), (4,), True)
    """
    if beyond:
        x = rng.choice([-1.0, 1.0], size=n_rows) * rng.uniform(X_RANGE, X_BEYOND, size=n_rows)
    else:
        x = rng.uniform(-X_RANGE, X_RANGE, size=n_rows)
    return x[:, None], wave(x) + wave_noise_std(x) * rng.randn(n_rows)


# ------------------------------------------------------------------------ metrics
def _gaussian_nll(y, mean, std):
    """Mean negative log-likelihood of ``y`` under ``Normal(mean, std**2)``, per row.

    :func:`skbdl.metrics.gaussian_nll` with ``var = std**2``: in the units of ``y``
    (it includes ``log std`` and the constant ``0.5 log 2 pi``), so it changes by
    ``log c`` when ``y`` is scaled by ``c``.

    >>> round(_gaussian_nll([0.0], [0.0], [1.0]), 4)  # 0.5 * log(2 pi)
    0.9189
    """
    return metrics.gaussian_nll(y, mean, np.square(np.asarray(std, dtype=np.float64)))


def _interval_coverage(y, mean, std, level=INTERVAL_LEVEL):
    """Fraction of ``y`` inside the central ``level`` Gaussian interval.

    The interval is ``mean ± z std`` with ``z = Φ⁻¹((1 + level) / 2)`` (1.645 for
    ``level=0.9``), as ``predict_interval`` builds it; ends count as inside
    (:func:`skbdl.metrics.interval_coverage`).

    >>> _interval_coverage([0.0, 1.0, 3.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    0.6666666666666666
    """
    mean, std = (np.asarray(a, dtype=np.float64) for a in (mean, std))
    return metrics.interval_coverage(y, _gaussian_interval(mean, std, level))


def _expected_calibration_error(y_true, proba, classes=None, n_bins=15):
    """Expected calibration error of the top-label confidence, equal-width bins.

    :func:`skbdl.metrics.expected_calibration_error`: rows are put into ``n_bins``
    bins ``(k/n, (k+1)/n]`` of their highest probability (the confidence); ECE is
    the row-weighted mean over bins of ``|accuracy - mean confidence|``, in
    ``[0, 1]``; 0 for a perfectly calibrated model.

    >>> proba = [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]
    >>> round(_expected_calibration_error([0, 1, 1], proba), 4)  # (0.1 + 0.6 + 0.3) / 3
    0.3333
    """
    return metrics.expected_calibration_error(y_true, proba, n_bins=n_bins, classes=classes)


# ---------------------------------------------------------------------- the stories
def _regression(seed, settings, verbose):
    rng = np.random.RandomState(seed)
    X_train, y_train = make_wave(N_TRAIN, rng)
    X_test, y_test = make_wave(N_TEST, rng)
    X_beyond, y_beyond = make_wave(N_BEYOND, rng, beyond=True)
    model = make_pipeline(
        StandardScaler(),
        DeepEnsembleRegressor(**settings, random_state=seed, verbose=verbose),
    )
    model.fit(X_train, y_train)
    u = predict_uncertainty(model, X_test)
    u_beyond = predict_uncertainty(model, X_beyond)
    linear = make_pipeline(StandardScaler(), LinearRegression()).fit(X_train, y_train)
    linear_mean = linear.predict(X_test)
    # The reference's predictive: its prediction, and the training residuals' spread.
    linear_std = np.full(len(X_test), np.std(y_train - linear.predict(X_train)))
    grid = np.linspace(-X_BEYOND, X_BEYOND, 400)
    return {
        "n_train": len(X_train),
        "n_beyond": len(X_beyond),
        "X_train": X_train[:, 0],
        "y_train": y_train,
        "y_test": y_test,
        "mean": u.mean,
        "std": u.std,
        "grid": grid,
        "grid_uncertainty": predict_uncertainty(model, grid[:, None]),
        "rmse": float(np.sqrt(np.mean((y_test - u.mean) ** 2))),
        "rmse_linear": float(np.sqrt(np.mean((y_test - linear_mean) ** 2))),
        "nll": _gaussian_nll(y_test, u.mean, u.std),
        "nll_linear": _gaussian_nll(y_test, linear_mean, linear_std),
        "coverage": _interval_coverage(y_test, u.mean, u.std),
        "noise_correlation": float(
            np.corrcoef(u.aleatoric_std, wave_noise_std(X_test[:, 0]))[0, 1]
        ),
        "rmse_beyond": float(np.sqrt(np.mean((y_beyond - u_beyond.mean) ** 2))),
        "epistemic_ratio": float(u_beyond.epistemic_std.mean() / u.epistemic_std.mean()),
        "coverage_beyond": _interval_coverage(y_beyond, u_beyond.mean, u_beyond.std),
    }


def _classification(seed, settings, verbose):
    X, y = load_digits(return_X_y=True)
    seen = np.isin(y, SEEN_DIGITS)
    X_train, X_test, y_train, y_test = train_test_split(
        X[seen], y[seen], test_size=0.25, random_state=seed, stratify=y[seen]
    )
    X_ood = X[~seen]
    model = make_pipeline(
        StandardScaler(),
        MCDropoutClassifier(**settings, random_state=seed, verbose=verbose),
    )
    model.fit(X_train, y_train)
    scaler, clf = model[:-1], model[-1]
    u_in = clf.predict_uncertainty(scaler.transform(X_test))
    u_ood = clf.predict_uncertainty(scaler.transform(X_ood))
    is_ood = np.r_[np.zeros(len(X_test)), np.ones(len(X_ood))]
    return {
        "n_train": len(X_train),
        "n_ood": len(X_ood),
        "mi_in": u_in.epistemic,
        "mi_ood": u_ood.epistemic,
        "accuracy": float(np.mean(clf.classes_[u_in.proba.argmax(axis=1)] == y_test)),
        "log_loss": float(log_loss(y_test, u_in.proba, labels=clf.classes_)),
        "ece": _expected_calibration_error(y_test, u_in.proba, clf.classes_),
        "mi_ratio": float(u_ood.epistemic.mean() / u_in.epistemic.mean()),
        "entropy_ratio": float(u_ood.total.mean() / u_in.total.mean()),
        "auroc": float(roc_auc_score(is_ood, np.r_[u_in.epistemic, u_ood.epistemic])),
    }


def _results_rows(reg, clf):
    """``(dataset, metric, formatted value)`` rows of the results table."""
    within, beyond = f"|x| < {X_RANGE:g}", f"{X_RANGE:g} < |x| < {X_BEYOND:g}"
    return [
        ("wave", f"test RMSE ({within}, as trained)", f"{reg['rmse']:.3f}"),
        ("wave", "test RMSE of a linear model (reference)", f"{reg['rmse_linear']:.3f}"),
        ("wave", "test NLL (Gaussian, per row)", f"{reg['nll']:.3f}"),
        ("wave", "test NLL of the linear model, constant noise", f"{reg['nll_linear']:.3f}"),
        ("wave", f"{INTERVAL_LEVEL:.0%} interval coverage", f"{reg['coverage']:.3f}"),
        ("wave", "correlation of predicted and true noise std", f"{reg['noise_correlation']:.3f}"),
        ("wave", f"RMSE beyond the training range ({beyond})", f"{reg['rmse_beyond']:.3f}"),
        ("wave", "epistemic std ratio, beyond / within range", f"{reg['epistemic_ratio']:.1f}"),
        (
            "wave",
            f"{INTERVAL_LEVEL:.0%} interval coverage beyond the range",
            f"{reg['coverage_beyond']:.3f}",
        ),
        ("digits", f"test accuracy (seen digits {_SEEN_TEXT})", f"{clf['accuracy']:.3f}"),
        ("digits", "test NLL (log loss, seen digits)", f"{clf['log_loss']:.3f}"),
        ("digits", "test ECE (15 bins, seen digits)", f"{clf['ece']:.3f}"),
        ("digits", "mutual information ratio, held-out / seen", f"{clf['mi_ratio']:.2f}"),
        ("digits", "predictive entropy ratio, held-out / seen", f"{clf['entropy_ratio']:.2f}"),
        ("digits", "AUROC held-out vs seen (mutual information)", f"{clf['auroc']:.3f}"),
    ]


def format_table(rows, header=("dataset", "metric", "value")):
    """Left-aligned text columns, right-aligned last column, one line per row."""
    rows = [tuple(header)] + [tuple(r) for r in rows]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = []
    for i, row in enumerate(rows):
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths)]
        cells.append(str(row[-1]).rjust(widths[-1]))
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ------------------------------------------------------------------------ figure
def _plot(reg, clf, path):
    """Write the two-panel figure to ``path`` (matplotlib needed)."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    from .plotting import plot_predictive_band

    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax_reg, ax_clf = fig.subplots(1, 2)

    grid = reg["grid"]
    for side in (-1, 1):
        ax_reg.axvspan(side * X_RANGE, side * X_BEYOND, color="0.9", lw=0)
    plot_predictive_band(
        grid,
        reg["grid_uncertainty"],
        confidence=INTERVAL_LEVEL,
        X_train=reg["X_train"],
        y_train=reg["y_train"],
        ax=ax_reg,
    )
    ax_reg.plot(grid, wave(grid), color="0.2", lw=1, ls="--", label="true function")
    ax_reg.set_xlim(-X_BEYOND, X_BEYOND)
    ax_reg.set_title(
        f"Regression (deep ensemble): RMSE {reg['rmse']:.2f} vs linear "
        f"{reg['rmse_linear']:.2f}\n{INTERVAL_LEVEL:.0%} coverage {reg['coverage']:.2f}; "
        f"shaded: beyond the training range",
        fontsize=10,
    )
    ax_reg.legend(loc="upper left", fontsize=8)

    mi_in, mi_ood = clf["mi_in"], clf["mi_ood"]
    # Log-spaced bins: mutual information of seen digits piles up near zero.
    low = max(min(mi_in.min(), mi_ood.min()), 1e-6)
    high = max(mi_in.max(), mi_ood.max(), low * 10)
    bins = np.geomspace(low, high, 40)
    for values, color, label in (
        (mi_in, "tab:blue", f"seen digits {_SEEN_TEXT}, test set"),
        (mi_ood, "tab:orange", f"held-out digits {_HELD_OUT_TEXT}"),
    ):
        ax_clf.hist(
            np.clip(values, low, None),
            bins=bins,
            weights=np.full(len(values), 1 / len(values)),
            alpha=0.6,
            color=color,
            label=f"{label} ({len(values)} rows)",
        )
    ax_clf.set_xscale("log")
    ax_clf.set_xlabel(f"mutual information (epistemic, nats; below {low:.0e} shown at it)")
    ax_clf.set_ylabel("fraction of rows")
    ax_clf.set_title(
        f"Classification (MC dropout), digits: accuracy {clf['accuracy']:.3f}\n"
        f"AUROC held-out vs seen digits {clf['auroc']:.2f}",
        fontsize=10,
    )
    ax_clf.legend(loc="upper left", fontsize=8)
    fig.suptitle("skbdl demo: networks that know when they do not know", fontsize=12)
    fig.savefig(path, dpi=110)


def _matplotlib_missing():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return True
    return False


# ----------------------------------------------------------------------- command
def add_arguments(parser):
    """Add the ``demo`` options to an ``argparse`` (sub)parser."""
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--out",
        default="skbdl_demo.png",
        metavar="PATH",
        help="where to write the figure (default: skbdl_demo.png)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="few epochs and samples: seconds, rough numbers"
    )


def run_demo(seed=0, out="skbdl_demo.png", quick=False, verbose=1):
    """Train both models, print the results table, write the figure.

    Parameters
    ----------
    seed : int, default=0
        Seeds the train/test splits and the estimators.
    out : str or path-like or None, default='skbdl_demo.png'
        Where to write the PNG figure; ``None`` writes none.
    quick : bool, default=False
        Few epochs and Monte Carlo samples (for tests): fast, rough numbers.
    verbose : int, default=1
        0: print the table only; 1: also a line per stage and a progress bar over
        epochs for each fit.

    Returns
    -------
    results : dict
        ``{"regression": {...}, "classification": {...}}``, the metrics and the
        arrays behind the figure.
    """
    settings = SETTINGS["quick" if quick else "full"]

    def say(message):
        if verbose:
            print(message, flush=True)

    start = time.perf_counter()
    if out is not None and _matplotlib_missing():
        print(
            "Note: matplotlib is not installed, so no figure will be written. "
            "Install it with: pip install 'skbdl[plot]'  (or: pip install matplotlib)",
            flush=True,
        )
        out = None
    mode = " (quick mode: rough numbers)" if quick else ""
    say(f"skbdl demo: uncertainty on generated and bundled data{mode}")

    say(
        f"[1/3] Regression: a heteroscedastic wave ({N_TRAIN} training rows, |x| < "
        f"{X_RANGE:g}), StandardScaler + DeepEnsembleRegressor "
        f"{_describe(settings['regression'])}"
    )
    reg = _regression(seed, settings["regression"], verbose)
    say(
        f"      trained on {reg['n_train']} rows, tested on {len(reg['y_test'])} within "
        f"and {reg['n_beyond']} beyond the training range"
    )

    say(
        f"[2/3] Classification: load_digits, trained on digits {_SEEN_TEXT} only, "
        f"StandardScaler + MCDropoutClassifier {_describe(settings['classification'])}"
    )
    clf = _classification(seed, settings["classification"], verbose)
    say(
        f"      trained on {clf['n_train']} rows, tested on {len(clf['mi_in'])} seen "
        f"and {clf['n_ood']} held-out digits"
    )

    if out is not None:
        say(f"[3/3] Writing the figure to {out}")
        _plot(reg, clf, out)
    else:
        say("[3/3] No figure written")

    print()
    print(format_table(_results_rows(reg, clf)))
    print()
    say(f"Done in {time.perf_counter() - start:.1f} s.")
    return {"regression": reg, "classification": clf}


def _describe(settings):
    if not settings:
        return "(default settings)"
    return "(" + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")"


def run(args):
    """Entry point of ``skbdl demo``; returns the exit status."""
    run_demo(seed=args.seed, out=args.out, quick=args.quick)
    return 0
