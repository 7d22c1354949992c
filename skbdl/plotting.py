"""Figures for reading uncertainty (matplotlib, an optional dependency).

``pip install "skbdl[plot]"`` installs matplotlib; it is imported only when a
function here is called, so ``import skbdl.plotting`` works without it.

Every function draws on ``ax`` (a matplotlib ``Axes``) when given one, else on a
new figure from ``matplotlib.pyplot.subplots()``, and returns the ``Axes``; call
``ax.figure`` for the figure.  Calling a function several times on the same
``ax`` with different ``label=`` overlays models for comparison.
"""

import numpy as np
from scipy.special import ndtri

from . import metrics

__all__ = [
    "plot_accuracy_rejection",
    "plot_dataset_shift",
    "plot_predictive_band",
    "plot_regression_calibration",
    "plot_reliability_diagram",
    "plot_uncertainty_histograms",
]


def _axes(ax):
    if ax is not None:
        return ax
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "skbdl.plotting needs matplotlib: pip install 'skbdl[plot]' (or matplotlib)."
        ) from error
    _, ax = plt.subplots()
    return ax


def _diagonal(ax):
    """The diagonal of perfect calibration, once per axes."""
    if not any(line.get_label() == "perfect calibration" for line in ax.lines):
        ax.plot([0, 1], [0, 1], color="0.5", lw=1, ls="--", label="perfect calibration")


def _with_legend(ax):
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))  # a repeated diagonal is listed once
    ax.legend(unique.values(), unique.keys(), fontsize="small")


def plot_reliability_diagram(
    y_true, proba, *, n_bins=15, strategy="uniform", classes=None, label=None, ax=None
):
    """Reliability diagram: accuracy against confidence, per confidence bin.

    Draws :func:`skbdl.metrics.reliability_curve` as a line with a marker per
    non-empty bin (marker area proportional to the bin's rows) and the diagonal of
    perfect calibration.  Below the diagonal the model is over-confident.  The
    legend gives the ECE.

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
        True labels.
    proba : array-like of shape (n_rows, n_classes)
        Predicted probabilities, columns in the order of ``classes``.
    n_bins : int, default=15
        Number of bins.
    strategy : {'uniform', 'quantile'}, default='uniform'
        Equal-width or equal-count bins (see :mod:`skbdl.metrics`).
    classes : array-like of shape (n_classes,), default=None
        Labels of the columns of ``proba``; ``None`` means ``0 .. n_classes - 1``.
    label : str, default=None
        Name of the model in the legend.
    ax : matplotlib Axes, default=None
        Where to draw; ``None`` makes a new figure.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> from skbdl.plotting import plot_reliability_diagram
    >>> rng = np.random.RandomState(0)
    >>> proba = rng.dirichlet([1, 1, 1], size=500)
    >>> y = (proba.cumsum(axis=1) < rng.uniform(size=(500, 1))).sum(axis=1)
    >>> ax = plot_reliability_diagram(y, proba, label="calibrated", ax=Figure().subplots())
    >>> ax.get_xlabel()
    'confidence (top-label probability)'
    """
    confidence, accuracy, counts = metrics.reliability_curve(
        y_true, proba, n_bins=n_bins, strategy=strategy, classes=classes
    )
    ece = metrics.expected_calibration_error(
        y_true, proba, n_bins=n_bins, strategy=strategy, classes=classes
    )
    ax = _axes(ax)
    _diagonal(ax)
    name = f"{label}: " if label else ""
    (line,) = ax.plot(confidence, accuracy, lw=1.5, label=f"{name}ECE {ece:.3f}")
    ax.scatter(
        confidence,
        accuracy,
        s=20 + 200 * counts / counts.sum(),
        color=line.get_color(),
        zorder=3,
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-label probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability diagram")
    _with_legend(ax)
    return ax


def plot_predictive_band(
    x,
    uncertainty,
    *,
    confidence=0.95,
    style="stacked",
    X_train=None,
    y_train=None,
    label=None,
    ax=None,
):
    """1-D predictive mean with its aleatoric and epistemic parts shaded separately.

    With ``style='stacked'`` the inner band is ``mean +- z * aleatoric_std``, the
    interval the noise alone would give, and the outer band, shaded in another
    colour, extends it to ``mean +- z * std`` with the total standard deviation:
    its extra width is what the model's own (epistemic) uncertainty adds to the
    predictive interval.  Variances add, so a small epistemic part adds little
    width.  With ``style='separate'`` the two bands are ``mean +- z *
    aleatoric_std`` and ``mean +- z * epistemic_std``, overlaid, so that each part
    can be read at its own size.  ``z = Phi^-1((1 + confidence) / 2)``: the bands
    are Gaussian intervals of the stated confidence.

    Parameters
    ----------
    x : array-like of shape (n_rows,)
        The 1-D inputs the uncertainty was predicted at (sorted, for a clean band).
    uncertainty : RegressionUncertainty
        ``predict_uncertainty(x[:, None])`` of a regressor fitted on a 1-D ``y``.
    confidence : float, default=0.95
        Confidence of the bands.
    style : {'stacked', 'separate'}, default='stacked'
        Stack the epistemic part on the aleatoric band (the total interval), or
        draw the two bands separately around the mean.
    X_train, y_train : array-like of shape (n_train,) or (n_train, 1), default=None
        Training data to show as points.
    label : str, default=None
        Title of the axes (e.g. the method's name).
    ax : matplotlib Axes, default=None
        Where to draw; ``None`` makes a new figure.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> from skbdl.plotting import plot_predictive_band
    >>> from skbdl.uncertainty import RegressionUncertainty
    >>> x = np.linspace(-3, 3, 50)
    >>> aleatoric, epistemic = np.full(50, 0.04), 0.1 * x**2
    >>> u = RegressionUncertainty(np.sin(x), np.sqrt(aleatoric + epistemic),
    ...                           aleatoric + epistemic, aleatoric, epistemic)
    >>> ax = plot_predictive_band(x, u, ax=Figure().subplots())
    >>> len(ax.collections)  # the aleatoric band and the two epistemic bands
    3
    >>> ax = plot_predictive_band(x, u, style="separate", ax=Figure().subplots())
    >>> [c.get_label() for c in ax.collections]
    ['aleatoric (95%)', 'epistemic (95%)']
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    mean = np.asarray(uncertainty.mean, dtype=np.float64)
    if mean.shape != x.shape:
        raise ValueError(
            f"uncertainty must be of a 1-D regression at the {x.size} points of x; its "
            f"mean has shape {mean.shape}."
        )
    if style not in ("stacked", "separate"):
        raise ValueError(f"style must be 'stacked' or 'separate'; got {style!r}.")
    z = ndtri(0.5 + confidence / 2)
    aleatoric = z * np.sqrt(np.asarray(uncertainty.aleatoric_var, dtype=np.float64))
    ax = _axes(ax)
    aleatoric_style = dict(color="tab:blue", alpha=0.3, lw=0)
    epistemic_style = dict(color="tab:orange", alpha=0.35, lw=0)
    if style == "stacked":
        total = z * np.asarray(uncertainty.std, dtype=np.float64)
        ax.fill_between(x, mean + aleatoric, mean + total, label="+ epistemic", **epistemic_style)
        ax.fill_between(x, mean - total, mean - aleatoric, **epistemic_style)
        ax.fill_between(
            x,
            mean - aleatoric,
            mean + aleatoric,
            label=f"aleatoric ({confidence:.0%})",
            **aleatoric_style,
        )
    else:
        epistemic = z * np.sqrt(np.asarray(uncertainty.epistemic_var, dtype=np.float64))
        ax.fill_between(
            x,
            mean - aleatoric,
            mean + aleatoric,
            label=f"aleatoric ({confidence:.0%})",
            **aleatoric_style,
        )
        ax.fill_between(
            x,
            mean - epistemic,
            mean + epistemic,
            label=f"epistemic ({confidence:.0%})",
            **{**epistemic_style, "alpha": 0.6},
        )
    ax.plot(x, mean, color="tab:blue", lw=1.5, label="predictive mean")
    if X_train is not None and y_train is not None:
        ax.scatter(
            np.asarray(X_train).reshape(-1),
            np.asarray(y_train).reshape(-1),
            s=6,
            color="0.2",
            alpha=0.6,
            label="training data",
            zorder=3,
        )
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    if label:
        ax.set_title(label)
    ax.legend(fontsize="small")
    return ax


def plot_regression_calibration(y, mean, std, *, n_levels=19, label=None, ax=None):
    """Regression calibration curve: observed against expected quantile coverage.

    Draws :func:`skbdl.metrics.regression_calibration_curve` (with the end points
    ``(0, 0)`` and ``(1, 1)``) and the diagonal.  A curve steeper than the diagonal
    in the middle (an S) means intervals that are too narrow; flatter, too wide.
    The legend gives :func:`skbdl.metrics.regression_calibration_error`.

    Parameters
    ----------
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Observed targets.
    mean : array-like of the same shape
        Predictive means.
    std : array-like, broadcastable to the same shape
        Predictive standard deviations, e.g. from ``predict(X, return_std=True)``.
    n_levels : int, default=19
        Number of quantile levels.
    label : str, default=None
        Name of the model in the legend.
    ax : matplotlib Axes, default=None
        Where to draw; ``None`` makes a new figure.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> from skbdl.plotting import plot_regression_calibration
    >>> y = np.random.RandomState(0).randn(1000)
    >>> ax = Figure().subplots()
    >>> for scale in (0.5, 1.0, 2.0):
    ...     ax = plot_regression_calibration(y, np.zeros(1000), scale, label=f"std {scale}", ax=ax)
    >>> len(ax.lines)  # the diagonal and three curves
    4
    """
    expected, observed = metrics.regression_calibration_curve(y, mean, std, n_levels=n_levels)
    error = metrics.regression_calibration_error(y, mean, std, n_levels=n_levels)
    ax = _axes(ax)
    _diagonal(ax)
    name = f"{label}: " if label else ""
    ax.plot(
        np.r_[0, expected, 1],
        np.r_[0, observed, 1],
        marker="o",
        ms=3,
        lw=1.5,
        label=f"{name}calibration error {error:.3f}",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("expected fraction below the predictive quantile")
    ax.set_ylabel("observed fraction")
    ax.set_title("Regression calibration")
    _with_legend(ax)
    return ax


def plot_accuracy_rejection(y_true, y_pred, uncertainty, *, label=None, ax=None):
    """Accuracy–rejection curve: accuracy on the rows kept after rejecting the most uncertain.

    Draws :func:`skbdl.metrics.accuracy_rejection_curve` over every rejection rate;
    the legend gives the area under it
    (:func:`skbdl.metrics.area_under_rejection_curve`).  A flat line is a useless
    uncertainty score.

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
        True labels.
    y_pred : array-like of shape (n_rows,)
        Predicted labels.
    uncertainty : array-like of shape (n_rows,)
        Per-row uncertainty (higher: rejected first).
    label : str, default=None
        Name of the model or score in the legend.
    ax : matplotlib Axes, default=None
        Where to draw; ``None`` makes a new figure.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> from skbdl.plotting import plot_accuracy_rejection
    >>> y_true, y_pred = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 1])
    >>> ax = plot_accuracy_rejection(y_true, y_pred, [0.1, 0.2, 0.9, 0.8],
    ...                              label="entropy", ax=Figure().subplots())
    >>> ax.get_legend().get_texts()[0].get_text()
    'entropy: area 0.792'
    """
    rates, accuracy = metrics.accuracy_rejection_curve(y_true, y_pred, uncertainty)
    area = float(np.mean(accuracy))
    ax = _axes(ax)
    name = f"{label}: " if label else ""
    ax.plot(rates, accuracy, lw=1.5, label=f"{name}area {area:.3f}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of rows rejected (most uncertain first)")
    ax.set_ylabel("accuracy on the rows kept")
    ax.set_title("Accuracy–rejection curve")
    _with_legend(ax)
    return ax


def plot_uncertainty_histograms(
    score_in,
    score_out,
    *,
    bins=30,
    log_scale=False,
    labels=("in-distribution", "out-of-distribution"),
    xlabel="uncertainty",
    ax=None,
):
    """Histograms of an uncertainty score on in- and out-of-distribution rows.

    The two normalised histograms share their bins; the title gives the AUROC of
    telling the two apart by the score (:func:`skbdl.metrics.ood_auroc`).

    Parameters
    ----------
    score_in : array-like of shape (n_in,)
        Score of in-distribution rows (higher: more likely out-of-distribution).
    score_out : array-like of shape (n_out,)
        Score of out-of-distribution rows.
    bins : int, default=30
        Number of bins.
    log_scale : bool, default=False
        Logarithmic bins and x axis (for scores such as mutual information that pile
        up near zero); values are clipped below at the smallest positive score.
    labels : tuple of two str, default=('in-distribution', 'out-of-distribution')
        Legend entries.
    xlabel : str, default='uncertainty'
        Name of the score.
    ax : matplotlib Axes, default=None
        Where to draw; ``None`` makes a new figure.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> from skbdl.plotting import plot_uncertainty_histograms
    >>> rng = np.random.RandomState(0)
    >>> ax = plot_uncertainty_histograms(rng.gamma(1, 0.1, 300), rng.gamma(3, 0.1, 100),
    ...                                  log_scale=True, ax=Figure().subplots())
    >>> ax.get_title().startswith("AUROC")
    True
    """
    score_in = np.asarray(score_in, dtype=np.float64).reshape(-1)
    score_out = np.asarray(score_out, dtype=np.float64).reshape(-1)
    auroc = metrics.ood_auroc(score_in, score_out)
    both = np.r_[score_in, score_out]
    if log_scale:
        positive = both[both > 0]
        low = positive.min() if positive.size else 1e-12
        high = max(both.max(), low * 10)
        edges = np.geomspace(low, high, bins + 1)
        score_in, score_out = np.clip(score_in, low, None), np.clip(score_out, low, None)
    else:
        edges = np.histogram_bin_edges(both, bins=bins)
    ax = _axes(ax)
    for values, color, name in zip((score_in, score_out), ("tab:blue", "tab:orange"), labels):
        ax.hist(
            values,
            bins=edges,
            weights=np.full(values.size, 1 / values.size),
            alpha=0.6,
            color=color,
            label=f"{name} ({values.size} rows)",
        )
    if log_scale:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of rows")
    ax.set_title(f"AUROC {auroc:.3f}")
    ax.legend(fontsize="small")
    return ax


#: Axis labels of the columns of :func:`skbdl.shift.dataset_shift_report`.
_SHIFT_METRICS = {
    "accuracy": "accuracy",
    "nll": "negative log-likelihood (nats)",
    "ece": "expected calibration error",
    "brier": "Brier score",
    "entropy": "mean predictive entropy (nats)",
    "epistemic": "mean epistemic uncertainty (nats)",
}


def plot_dataset_shift(report, metric="accuracy", *, kind="box", ax=None):
    """A metric against the severity of the corruption, as in Ovadia et al. (2019).

    With ``kind='box'`` each severity has one box per model, summarising the
    metric over the corruptions (the clean images, severity 0, are one value: a
    flat box).  With ``kind='line'``, a single report draws one thin line per
    corruption and their mean in bold; several reports draw their means, each
    with a band from the smallest to the largest corruption's value.  Each model
    has the same colour in every figure drawn from the same dict; a model whose
    column is all NaN (``epistemic`` of a model without a decomposition) is left
    out.

    Parameters
    ----------
    report : pandas.DataFrame or dict of str to pandas.DataFrame
        The output of :func:`skbdl.shift.dataset_shift_report`, or several of them
        by model name, to compare models side by side.
    metric : {'accuracy', 'nll', 'ece', 'brier', 'entropy', 'epistemic'}, \
default='accuracy'
        The column to draw.
    kind : {'box', 'line'}, default='box'
        Box plots over corruptions, or lines.
    ax : matplotlib Axes, default=None
        Where to draw; ``None`` makes a new figure.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skbdl.plotting import plot_dataset_shift
    >>> from skbdl.shift import dataset_shift_report
    >>> X, y = load_digits(return_X_y=True)
    >>> model = LogisticRegression(max_iter=2000).fit(X[:1000], y[:1000])
    >>> report = dataset_shift_report(model, X[1000:], y[1000:], ["contrast", "rotate"],
    ...                               random_state=0)
    >>> ax = plot_dataset_shift({"logistic": report}, "ece", ax=Figure().subplots())
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('severity (0: clean)', 'expected calibration error')
    """
    if metric not in _SHIFT_METRICS:
        raise ValueError(f"metric must be one of {sorted(_SHIFT_METRICS)}; got {metric!r}.")
    if kind not in ("box", "line"):
        raise ValueError(f"kind must be 'box' or 'line'; got {kind!r}.")
    reports = dict(report) if isinstance(report, dict) else {None: report}
    ax = _axes(ax)
    severities = sorted({int(s) for r in reports.values() for s in r["severity"]})
    colors = [f"C{i}" for i in range(len(reports))]
    width = 0.8 / len(reports)
    for i, ((name, frame), color) in enumerate(zip(reports.items(), colors)):
        values = [frame.loc[frame["severity"] == s, metric].to_numpy(float) for s in severities]
        if np.all(np.isnan(np.concatenate(values))):
            continue  # e.g. no epistemic part; the model keeps its colour
        if kind == "box":
            positions = np.array(severities) - 0.4 + width * (i + 0.5)
            ax.boxplot(
                values,
                positions=positions,
                widths=0.9 * width,
                patch_artist=True,
                boxprops=dict(facecolor=color, alpha=0.5, edgecolor=color),
                medianprops=dict(color="0.15"),
                whiskerprops=dict(color=color),
                capprops=dict(color=color),
                flierprops=dict(marker=".", markeredgecolor=color),
                manage_ticks=False,
            )
            ax.plot([], [], color=color, lw=6, alpha=0.5, label=name)  # legend entry
        elif len(reports) == 1:
            for corruption, rows in frame[frame["severity"] > 0].groupby("corruption", sort=False):
                clean = frame.loc[frame["severity"] == 0, metric].to_numpy(float)
                x = np.r_[np.zeros(len(clean)), rows["severity"].to_numpy(float)]
                ax.plot(
                    x,
                    np.r_[clean, rows[metric].to_numpy(float)],
                    lw=0.8,
                    alpha=0.6,
                    label=corruption,
                )
            means = [np.mean(v) for v in values]
            ax.plot(severities, means, color="k", lw=2.5, marker="o", label="mean")
        else:
            means = [np.mean(v) for v in values]
            ax.fill_between(
                severities,
                [np.min(v) for v in values],
                [np.max(v) for v in values],
                color=color,
                alpha=0.15,
                lw=0,
            )
            ax.plot(severities, means, color=color, lw=2, marker="o", label=name)
    ax.set_xticks(severities)
    ax.set_xlabel("severity (0: clean)")
    ax.set_ylabel(_SHIFT_METRICS[metric])
    ax.set_title(f"{_SHIFT_METRICS[metric].split(' (')[0].capitalize()} under dataset shift")
    one_report_lines = kind == "line" and len(reports) == 1
    if one_report_lines or any(name is not None for name in reports):
        ax.legend(fontsize="small", ncol=2 if one_report_lines else 1)
    return ax
