"""Speed and memory of skbdl against plain baselines, measured side by side.

Run ``python benchmarks/speed.py`` (``--quick`` for a smoke run, ``--only a,c`` for
some rows, ``--repeats N`` for more timing repetitions).  It prints one table row per
comparison: the median seconds of each side, their ratio, the target and PASS/MISS.
See ``benchmarks/README.md`` for what each row measures and the latest results.

Timings on a shared CPU are noisy, so every ratio is measured within one run: each
side is warmed up once, then the two sides alternate (A B, B A, A B, ...) and the
medians are compared.  The ``spread`` column gives the smallest and largest ratio of
the individual A/B pairs, to show how noisy the run was.

Adding a row
------------
Write a function that takes a :class:`Config` and returns either
``interleave(numerator_fn, denominator_fn, cfg)`` (a :class:`Ratio`) or a
:class:`Value`, and register it with ``@comparison(key, name, target)``.  Import
estimators from skbdl *inside* the function: a row whose estimator does not exist
yet raises ``ImportError`` and is reported as ``skipped``.
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
import traceback
import warnings
from collections.abc import Callable

import numpy as np

# Benchmark the checkout this file lives in, installed or not.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# ---------------------------------------------------------------- shared settings
#: The network and training settings every fit in this file uses.
HIDDEN = (50, 50)
EPOCHS = 40
BATCH = 32
LR = 1e-3
#: One training run, as MLPRegressor's: the default recalibration (``calibrate='auto'``)
#: holds rows out and trains a second time below 10 000 rows, which rows i/i2/i3 (the
#: library defaults on 200 000 rows) include and these like-for-like rows do not.
SKBDL_FIT = dict(
    hidden_layer_sizes=HIDDEN, max_epochs=EPOCHS, batch_size=BATCH, lr=LR, calibrate=False
)


@dataclasses.dataclass
class Config:
    repeats: int = 5
    quick: bool = False
    seed: int = 0


def make_data(n_rows, seed=0, n_features=10):
    """Float64 inputs and a noisy target with linear and non-linear parts."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n_rows, n_features)
    y = X[:, 0] - 0.5 * X[:, 1] + np.sin(2 * X[:, 2]) + X[:, 3] * X[:, 4] + 0.3 * rng.randn(n_rows)
    return X, y


def train_data(cfg):
    return make_data(1000, cfg.seed)


def sklearn_mlp_fit(X, y, seed):
    """scikit-learn's MLPRegressor with the same settings, for exactly EPOCHS epochs."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    mlp = MLPRegressor(
        hidden_layer_sizes=HIDDEN,
        batch_size=BATCH,
        max_iter=EPOCHS,
        learning_rate_init=LR,
        tol=0,
        n_iter_no_change=10**9,
        solver="adam",
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return mlp.fit(X, y)


# ---------------------------------------------------------------- measurement kit
@dataclasses.dataclass
class Ratio:
    """Seconds of the numerator (skbdl) and denominator (baseline) runs, paired."""

    numerator: list
    denominator: list
    #: Process CPU seconds (all threads) of the same runs; a diagnostic only.
    numerator_cpu: list = dataclasses.field(default_factory=list)
    denominator_cpu: list = dataclasses.field(default_factory=list)
    #: Printed under the row (e.g. which baseline ran).
    note: str = ""


@dataclasses.dataclass
class Value:
    """A single measured quantity (e.g. megabytes), compared with the target."""

    value: float
    unit: str
    note: str = ""


@dataclasses.dataclass
class Comparison:
    key: str
    name: str
    target: float | None  # the row passes when its ratio / value <= target
    func: Callable[[Config], "Ratio | Value"]


REGISTRY: dict[str, Comparison] = {}


def comparison(key, name, target):
    """Register ``func(cfg) -> Ratio | Value`` as a row of the table."""

    def register(func):
        REGISTRY[key] = Comparison(key, name, target, func)
        return func

    return register


def interleave(numerator, denominator, cfg, warm_up=True):
    """Time two zero-argument callables: one warm-up each, then alternating runs."""
    if warm_up:
        numerator()
        denominator()
    wall, cpu = {numerator: [], denominator: []}, {numerator: [], denominator: []}
    for i in range(cfg.repeats):
        order = (numerator, denominator) if i % 2 == 0 else (denominator, numerator)
        for fn in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[fn].append(time.perf_counter() - start)
            cpu[fn].append(time.process_time() - start_cpu)
    return Ratio(wall[numerator], wall[denominator], cpu[numerator], cpu[denominator])


# ----------------------------------------------------------------------- the rows
@comparison("a", "MCDropoutRegressor.fit / MLPRegressor.fit", target=1.5)
def fit_vs_sklearn(cfg):
    from skbdl import MCDropoutRegressor

    X, y = train_data(cfg)
    return interleave(
        lambda: MCDropoutRegressor(**SKBDL_FIT, random_state=cfg.seed).fit(X, y),
        lambda: sklearn_mlp_fit(X, y, cfg.seed),
        cfg,
    )


@comparison("b", "predict_uncertainty(10k rows, 100 samples) / loop of 100 passes", target=1.0)
def predict_vs_loop(cfg):
    import torch

    from skbdl import MCDropoutRegressor

    X, y = train_data(cfg)
    est = MCDropoutRegressor(**SKBDL_FIT, random_state=cfg.seed).fit(X, y)
    X_test, _ = make_data(10_000, cfg.seed + 1)
    module = est.module_
    dropouts = [m for m in module.modules() if isinstance(m, torch.nn.Dropout)]
    X_tensor = torch.tensor(X_test, dtype=torch.float32)

    def loop():
        module.eval()
        for layer in dropouts:
            layer.train()
        with torch.no_grad():
            outputs = [module(X_tensor) for _ in range(100)]
        module.eval()
        return outputs

    return interleave(lambda: est.predict_uncertainty(X_test, n_samples=100), loop, cfg)


# The child process of row c.  It builds everything first, then records the baseline
# RSS, then samples RSS from a thread while predict_uncertainty runs.  The peak is
# the larger of the sampled peak and getrusage's ru_maxrss when that rose during the
# prediction (ru_maxrss is the process's lifetime peak, so it is exact whenever it
# moved and a lower bound otherwise).
_MEMORY_CHILD = textwrap.dedent(
    """
    import gc, json, os, resource, sys, threading, time
    sys.path[:0] = [sys.argv[4], os.path.dirname(sys.argv[4])]
    from speed import SKBDL_FIT, make_data
    from skbdl import MCDropoutRegressor

    n_rows, n_samples, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    X, y = make_data(1000, seed)
    fit = dict(SKBDL_FIT, max_epochs=2)  # the weights do not matter for memory
    est = MCDropoutRegressor(**fit, random_state=seed).fit(X, y)
    X_big, _ = make_data(n_rows, seed + 2)
    est.predict_uncertainty(X_big[:1000], n_samples=n_samples)  # one-off lazy init
    del X, y
    gc.collect()

    page = os.sysconf("SC_PAGE_SIZE")
    statm = open("/proc/self/statm", "rb")

    def rss():
        statm.seek(0)
        return int(statm.read().split()[1]) * page

    def ru_maxrss():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

    peak, done, n_reads = [0], threading.Event(), [0]

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            n_reads[0] += 1
            time.sleep(0.002)

    baseline, ru_before = rss(), ru_maxrss()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    u = est.predict_uncertainty(X_big, n_samples=n_samples)
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    ru_after = ru_maxrss()
    sampled = max(peak[0], rss())
    top = max(sampled, ru_after if ru_after > ru_before else 0)
    print(json.dumps(dict(
        baseline_mb=baseline / 2**20, extra_mb=(top - baseline) / 2**20,
        sampled_extra_mb=(sampled - baseline) / 2**20,
        ru_maxrss_rose=ru_after > ru_before, n_reads=n_reads[0], seconds=seconds,
        result_mb=sum(a.nbytes for a in (u.mean, u.std, u.total_var, u.aleatoric_var,
                                         u.epistemic_var)) / 2**20,
    )))
    """
)


def measure_predict_memory(n_rows, n_samples, seed):
    """Peak RSS growth of ``predict_uncertainty`` in a fresh Python process."""
    here = os.path.dirname(os.path.abspath(__file__))
    cmd = [sys.executable, "-c", _MEMORY_CHILD, str(n_rows), str(n_samples), str(seed), here]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@comparison("c", "predict_uncertainty(1M rows, 100 samples) peak extra RSS", target=500)
def predict_memory(cfg):
    import skbdl  # noqa: F401  (skip cleanly when skbdl cannot be imported)

    n_rows = 100_000 if cfg.quick else 1_000_000
    r = measure_predict_memory(n_rows, 100, cfg.seed)
    note = (
        f"{n_rows} rows in {r['seconds']:.1f} s; baseline {r['baseline_mb']:.0f} MB; "
        f"result arrays {r['result_mb']:.0f} MB; sampled {r['sampled_extra_mb']:.1f} MB "
        f"({r['n_reads']} reads); ru_maxrss rose: {r['ru_maxrss_rose']}"
    )
    return Value(r["extra_mb"], "MB", note)


# Rows for the deep ensembles and Bayes by Backprop.  A row whose estimator skbdl does
# not export is reported as 'skipped' (ImportError), so rows may precede their code.
@comparison("d", "DeepEnsembleRegressor(5).fit / 5 sequential 1-member fits", target=0.35)
def ensemble_vs_sequential(cfg):
    from skbdl import DeepEnsembleRegressor

    X, y = train_data(cfg)

    def sequential():
        for i in range(5):
            DeepEnsembleRegressor(n_estimators=1, **SKBDL_FIT, random_state=i).fit(X, y)

    return interleave(
        lambda: DeepEnsembleRegressor(n_estimators=5, **SKBDL_FIT, random_state=cfg.seed).fit(X, y),
        sequential,
        cfg,
    )


@comparison("d2", "DeepEnsembleRegressor(5).fit / 5 MCDropoutRegressor(p=0) fits", target=0.35)
def ensemble_vs_single_networks(cfg):
    # The same check as row d against skbdl's plain single-network path (one MLP with
    # a heteroscedastic Gaussian head, dropout off), so that a slow 1-member ensemble
    # could not flatter the ratio.
    from skbdl import DeepEnsembleRegressor, MCDropoutRegressor

    X, y = train_data(cfg)
    single = dict(SKBDL_FIT, dropout=0.0, likelihood="heteroscedastic")

    def sequential():
        for i in range(5):
            MCDropoutRegressor(**single, random_state=i).fit(X, y)

    return interleave(
        lambda: DeepEnsembleRegressor(n_estimators=5, **SKBDL_FIT, random_state=cfg.seed).fit(X, y),
        sequential,
        cfg,
    )


@comparison("e", "DeepEnsembleRegressor(5).fit / 5 MLPRegressor fits", target=1.0)
def ensemble_vs_sklearn(cfg):
    from skbdl import DeepEnsembleRegressor

    X, y = train_data(cfg)

    def sequential():
        for i in range(5):
            sklearn_mlp_fit(X, y, i)

    return interleave(
        lambda: DeepEnsembleRegressor(n_estimators=5, **SKBDL_FIT, random_state=cfg.seed).fit(X, y),
        sequential,
        cfg,
    )


@comparison("f", "BayesianMLPRegressor.fit / MCDropoutRegressor.fit", target=2.0)
def bbb_vs_mc_dropout(cfg):
    """Bayes by Backprop (local reparameterisation, Gaussian prior) against MC dropout."""
    from skbdl import BayesianMLPRegressor, MCDropoutRegressor

    X, y = train_data(cfg)
    return interleave(
        lambda: BayesianMLPRegressor(**SKBDL_FIT, random_state=cfg.seed).fit(X, y),
        lambda: MCDropoutRegressor(**SKBDL_FIT, random_state=cfg.seed).fit(X, y),
        cfg,
    )


@comparison("k", "fit(sample_weight) / fit, MC dropout + ensemble(5) + BBB", target=1.15)
def weighted_vs_unweighted(cfg):
    """Sample-weighted training against unweighted: the same hand-written step, so
    row weights should cost (almost) nothing.  Each side fits the three SGD-trained
    estimators once; the weights are uniform on [0.5, 2]."""
    import numpy as np

    from skbdl import BayesianMLPRegressor, DeepEnsembleRegressor, MCDropoutRegressor

    X, y = train_data(cfg)
    weight = np.random.RandomState(cfg.seed).uniform(0.5, 2.0, len(y))
    classes = (MCDropoutRegressor, DeepEnsembleRegressor, BayesianMLPRegressor)

    def fits(**fit_params):
        for cls in classes:
            cls(**SKBDL_FIT, random_state=cfg.seed).fit(X, y, **fit_params)

    return interleave(lambda: fits(sample_weight=weight), fits, cfg)


def _posthoc_vs_epoch(cfg, network_cls, last_layer_cls, X, y):
    """A last-layer fit on a frozen trained network against one more training epoch.

    The denominator is one epoch of the network's own skorch loop on the same rows
    (``partial_fit`` of an already trained twin: no set-up cost), so the ratio is the
    post-hoc step's cost in training epochs.
    """
    import torch
    from sklearn.frozen import FrozenEstimator

    fit = dict(SKBDL_FIT, max_epochs=1)
    frozen = FrozenEstimator(network_cls(**fit, dropout=0.0, random_state=cfg.seed).fit(X, y))
    twin = network_cls(**fit, dropout=0.0, random_state=cfg.seed).fit(X, y)
    X_tensor = torch.tensor(X, dtype=torch.float32)
    y_tensor = _net_targets(twin, y)
    return interleave(
        lambda: last_layer_cls(frozen).fit(X, y),
        lambda: twin.net_.partial_fit(X_tensor, y_tensor),
        cfg,
    )


def _net_targets(estimator, y):
    """``y`` as the estimator's skorch net trains on it."""
    import torch

    if hasattr(estimator, "classes_"):
        return torch.as_tensor(np.searchsorted(estimator.classes_, y), dtype=torch.int64)
    y_std = (y.reshape(len(y), -1) - estimator.y_mean_) / estimator.y_scale_
    return torch.as_tensor(y_std, dtype=torch.float32)


@comparison("g", "LastLayerBayesianRegressor.fit (frozen net) / 1 epoch, 10k rows", target=0.35)
def last_layer_regression_posthoc(cfg):
    """Bayesian last layer (features + evidence maximisation) on 10 000 rows."""
    from skbdl import LastLayerBayesianRegressor, MCDropoutRegressor

    X, y = make_data(10_000, cfg.seed)
    return _posthoc_vs_epoch(cfg, MCDropoutRegressor, LastLayerBayesianRegressor, X, y)


@comparison("g2", "LastLayerLaplaceClassifier.fit (frozen net) / 1 epoch, 10k rows", target=0.35)
def last_layer_classification_posthoc(cfg):
    """Last-layer Laplace (features, GGN Hessian, evidence) on 10 000 rows, 3 classes."""
    from skbdl import LastLayerLaplaceClassifier, MCDropoutClassifier

    X, y = make_data(10_000, cfg.seed)
    classes = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))
    return _posthoc_vs_epoch(cfg, MCDropoutClassifier, LastLayerLaplaceClassifier, X, classes)


@comparison("h", "PBPRegressor: one ADF epoch, 450 rows x 13, 50 hidden (s)", target=None)
def pbp_epoch(cfg):
    """Seconds of one pass of per-row ADF updates plus the EP prior refinement (the
    Boston-sized case of the paper's protocol, which runs 40 of them)."""
    import torch

    from skbdl.nn import ADFTrainer, PBPNetwork

    rng = np.random.RandomState(cfg.seed)
    X, y = make_data(450, cfg.seed, n_features=13)
    y = ((y - y.mean()) / y.std())[:, None]
    torch.manual_seed(cfg.seed)
    trainer = ADFTrainer(PBPNetwork(13, 1, hidden_layer_sizes=(50,)))
    times = []
    for _ in range(cfg.repeats + 1):
        start = time.perf_counter()
        trainer.adf_pass(X, y, rng)
        trainer.refine_prior()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times[1:])
    note = f"{seconds / 450 * 1e6:.0f} us per row; 40 epochs: {40 * seconds:.1f} s"
    return Value(seconds, "s", note)


# Prediction of Bayes by Backprop (weight draws) against MC dropout and a plain
# bayesian-torch loop, on one thread: 100 draws on 10 000 rows of the row-a network.
def _one_thread(ratio_fn):
    """Run a row with torch on one thread (restored afterwards)."""

    def row(cfg):
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return ratio_fn(cfg)
        finally:
            torch.set_num_threads(previous)

    row.__doc__ = ratio_fn.__doc__
    return row


def _fitted_bbb(cfg):
    from skbdl import BayesianMLPRegressor

    X, y = train_data(cfg)
    X_test, _ = make_data(10_000, cfg.seed + 1)
    return BayesianMLPRegressor(**SKBDL_FIT, random_state=cfg.seed).fit(X, y), X_test


@comparison("j", "BBB predict_uncertainty / MC dropout's (10k rows, 100 draws, 1 thread)", 1.0)
@_one_thread
def bbb_predict_vs_mc_dropout(cfg):
    """Both at their row-a fits: Bayes by Backprop's 100 weight draws (batched matrix
    products) against MC dropout's 100 dropout masks, summaries included."""
    from skbdl import MCDropoutRegressor

    bbb, X_test = _fitted_bbb(cfg)
    X, y = train_data(cfg)
    mc = MCDropoutRegressor(**SKBDL_FIT, random_state=cfg.seed).fit(X, y)
    return interleave(
        lambda: bbb.predict_uncertainty(X_test, n_samples=100),
        lambda: mc.predict_uncertainty(X_test, n_samples=100),
        cfg,
    )


def _weight_sampling_loop(bbb, X_test):
    """``(loop, what)``: 100 forward passes of the trained posterior, each with one
    weight draw shared by the rows, outputs kept in a list (no summaries), as a
    bayesian-torch user writes it (``LinearReparameterization`` layers holding the
    trained means and scales, ``return_kl=False``); a plain torch loop that samples
    the weights per pass if bayesian-torch is not installed."""
    import torch
    from torch.nn import functional as F

    from skbdl.nn import BayesianLinear

    layers = [m for m in bbb.module_.modules() if isinstance(m, BayesianLinear)]
    X_tensor = torch.tensor(X_test, dtype=torch.float32)
    try:
        from bayesian_torch.layers import LinearReparameterization
    except ImportError:
        params = [(m.weight_mu, m.weight_sigma, m.bias_mu, m.bias_sigma) for m in layers]

        def forward(x):
            for i, (w_mu, w_sigma, b_mu, b_sigma) in enumerate(params):
                weight = w_mu + w_sigma * torch.randn_like(w_mu)
                x = F.linear(x, weight, b_mu + b_sigma * torch.randn_like(b_mu))
                x = torch.relu(x) if i < len(params) - 1 else x
            return x

        what = "B: plain torch loop sampling weights per pass (bayesian-torch not installed)"
    else:
        twins = []
        for m in layers:
            twin = LinearReparameterization(m.in_features, m.out_features)
            with torch.no_grad():
                twin.mu_weight.copy_(m.weight_mu)
                twin.rho_weight.copy_(m.weight_rho)  # both use sigma = softplus(rho)
                twin.mu_bias.copy_(m.bias_mu)
                twin.rho_bias.copy_(m.bias_rho)
            twins.append(twin.eval())

        def forward(x):
            for i, twin in enumerate(twins):
                x = twin(x, return_kl=False)
                x = torch.relu(x) if i < len(twins) - 1 else x
            return x

        from importlib.metadata import version

        what = f"B: bayesian-torch {version('bayesian-torch')} LinearReparameterization loop"

    def loop():
        with torch.no_grad():
            return [forward(X_tensor) for _ in range(100)]

    return loop, what


@comparison("j2", "BBB predict_uncertainty / bayesian-torch loop (10k rows, 100, 1 thread)", 1.0)
@_one_thread
def bbb_predict_vs_bayesian_torch(cfg):
    """skbdl's prediction (summaries included) against a plain loop of the same
    trained network in bayesian-torch (no summaries)."""
    bbb, X_test = _fitted_bbb(cfg)
    loop, what = _weight_sampling_loop(bbb, X_test)
    ratio = interleave(lambda: bbb.predict_uncertainty(X_test, n_samples=100), loop, cfg)
    ratio.note = what
    return ratio


# ----------------------------------------------------------------------- running
#: Rows x features of the large-data rows (``i*``): fits with every setting at its default.
LARGE = (200_000, 20)


def large_data(cfg):
    n_rows = 20_000 if cfg.quick else LARGE[0]
    return make_data(n_rows, cfg.seed, n_features=LARGE[1])


def _defaults_vs_sklearn(cfg, estimator_class):
    """``estimator_class()`` against ``MLPRegressor()``, both at their defaults, on
    LARGE rows; one timed pair per repeat (at most 2), no warm-up (minutes per fit)."""
    from sklearn.neural_network import MLPRegressor

    X, y = large_data(cfg)
    runs = dataclasses.replace(cfg, repeats=min(cfg.repeats, 2))

    def sklearn_fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            MLPRegressor(random_state=cfg.seed).fit(X, y)

    return interleave(
        lambda: estimator_class(random_state=cfg.seed, verbose=0).fit(X, y),
        sklearn_fit,
        runs,
        warm_up=False,
    )


@comparison("i", "MCDropoutRegressor().fit / MLPRegressor().fit, 200k x 20", target=1.5)
def large_fit_mc_dropout(cfg):
    from skbdl import MCDropoutRegressor

    return _defaults_vs_sklearn(cfg, MCDropoutRegressor)


@comparison("i2", "DeepEnsembleRegressor().fit / MLPRegressor().fit, 200k x 20", target=1.5)
def large_fit_ensemble(cfg):
    from skbdl import DeepEnsembleRegressor

    return _defaults_vs_sklearn(cfg, DeepEnsembleRegressor)


@comparison("i3", "BayesianMLPRegressor().fit / MLPRegressor().fit, 200k x 20", target=1.5)
def large_fit_bbb(cfg):
    from skbdl import BayesianMLPRegressor

    return _defaults_vs_sklearn(cfg, BayesianMLPRegressor)


def machine_header(cfg):
    import sklearn
    import skorch
    import torch

    cpu = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")),
            cpu,
        )
    except OSError:
        pass
    return (
        f"date {datetime.datetime.now().isoformat(timespec='seconds')}; "
        f"{os.cpu_count()} CPUs ({cpu}); python {platform.python_version()}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"sklearn {sklearn.__version__}; skorch {skorch.__version__}; numpy {np.__version__}; "
        f"repeats {cfg.repeats}{'; quick' if cfg.quick else ''}"
    )


def run_row(row, cfg, width=66):
    """One table line (and an optional note line) for ``row``; the status word."""
    head = f"{row.key:<3}{row.name:<{width}}"
    target = "" if row.target is None else f"{row.target:g}"
    try:
        result = row.func(cfg)
    except ImportError as exc:
        if exc.name == "skbdl" and isinstance(exc, ModuleNotFoundError):
            raise  # skbdl itself is missing: not a row to skip
        return f"{head} skipped ({exc})", "skipped"
    except Exception:  # a broken row must not hide the others
        return f"{head} ERROR\n{traceback.format_exc()}", "error"
    if isinstance(result, Ratio):
        a, b = statistics.median(result.numerator), statistics.median(result.denominator)
        value = a / b
        pairs = [n / d for n, d in zip(result.numerator, result.denominator)]
        cells = f"{a:9.3f} {b:9.3f} {value:7.2f}x {'<=' + target if target else '-':>8}"
        extra = f"  spread {min(pairs):.2f}-{max(pairs):.2f}"
        if result.numerator_cpu and result.denominator_cpu:
            cpu_a = statistics.median(result.numerator_cpu)
            cpu_b = statistics.median(result.denominator_cpu)
            extra += f"  cpu {cpu_a:.2f}/{cpu_b:.2f}={cpu_a / cpu_b:.2f}x"
        if result.note:
            extra += f"\n   {result.note}"
    else:
        value = result.value
        cells = (
            f"{'':9} {'':9} {f'{value:.1f} {result.unit}':>8} {'<' + target if target else '-':>8}"
        )
        extra = f"\n   {result.note}" if result.note else ""
    if row.target is None:
        status = "-"
    elif isinstance(result, Ratio):
        status = "PASS" if value <= row.target else "MISS"
    else:
        status = "PASS" if value < row.target else "MISS"
    return f"{head}{cells}  {status:<4}{extra}", status


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs per side (5; 2 with --quick)"
    )
    parser.add_argument("--only", default="", help="comma-separated row keys, e.g. a,c")
    parser.add_argument(
        "--quick", action="store_true", help="2 repeats, 100k rows for the memory row c"
    )
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else 5)
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    cfg = Config(repeats=repeats, quick=args.quick)
    keys = [k.strip() for k in args.only.split(",") if k.strip()] or list(REGISTRY)
    unknown = [k for k in keys if k not in REGISTRY]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {list(REGISTRY)}")

    print(machine_header(cfg))
    width = max(len(REGISTRY[k].name) for k in keys) + 1
    print(
        f"{'':3}{'comparison':<{width}}{'A (s)':>9} {'B (s)':>9} {'ratio':>8} {'target':>8}  status"
    )
    statuses = []
    start = time.perf_counter()
    for key in keys:
        line, status = run_row(REGISTRY[key], cfg, width)
        print(line, flush=True)
        statuses.append(status)
    print(f"total {time.perf_counter() - start:.0f} s")
    return 1 if "error" in statuses else 0


if __name__ == "__main__":
    sys.exit(main())
