"""Fit and prediction speed of every skbdl estimator on a GPU, beside plain torch.

Run ``python benchmarks/gpu.py`` on a machine with CUDA (``--quick`` for a smoke run
of a few seconds per estimator).  Without CUDA it prints why and exits 0.

Every estimator (``device='cuda'``) is fitted on 200 000 x 20 rows, hidden layers
(256, 256), 5 epochs, mini-batches of 1024 (no recalibration, no early stopping), then
``predict_uncertainty`` runs on 1 000 000 rows with 100 draws (an ensemble's draws
are its 5 members; PBP and the Bayesian last layer also report their closed-form
moments).  The reference, measured in the same run, is a plain torch loop over the
trained MC-dropout regressor's own network: the 1 000 000 rows moved to the GPU as
one float32 tensor, 100 passes in train mode (torch's dropout), the sums of the
means, squared means and variances kept on the GPU, the summaries copied back.  The
target: every ``predict_uncertainty`` within 1.5 times the reference.

PBP trains by per-row assumed density filtering on the CPU, which does not scale to
200 000 rows in a benchmark: it is fitted on 5 000 rows (2 epochs) and predicts the
same 1 000 000 rows.  Each prediction is warmed up once on 10 000 rows first (lazy
CUDA initialisation is not counted); fits are timed once, cold.

The output is a markdown table (paste it into ``benchmarks/README.md``).
"""

import argparse
import datetime
import gc
import os
import platform
import subprocess
import sys
import time
import traceback
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

HIDDEN = (256, 256)
N_FEATURES = 20
N_CLASSES = 3
DRAWS = 100
TARGET = 1.5


def settings(quick):
    """Sizes of the run: ``--quick`` is a smoke test, not a measurement."""
    if quick:
        return dict(fit_rows=20_000, predict_rows=100_000, epochs=1, pbp_rows=500, pbp_epochs=1)
    return dict(fit_rows=200_000, predict_rows=1_000_000, epochs=5, pbp_rows=5_000, pbp_epochs=2)


def make_data(n_rows, seed):
    """Float64 inputs, a noisy regression target and 3 classes cut from it."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n_rows, N_FEATURES)
    y = X[:, 0] - 0.5 * X[:, 1] + np.sin(2 * X[:, 2]) + X[:, 3] * X[:, 4] + 0.3 * rng.randn(n_rows)
    classes = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))
    return X, y, classes


#: Set by ``--device`` (``cpu`` only to smoke-test this script without a GPU).
DEVICE = "cuda"


def synchronize():
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed(fn, *args, **kwargs):
    """``(seconds, fn(*args, **kwargs))``, the GPU's queue drained at both ends."""
    synchronize()
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    synchronize()
    return time.perf_counter() - start, result


def measure(factory, X, y, X_test, n_samples):
    """Seconds of the fit and of ``predict_uncertainty`` (after a 10 000-row warm-up)."""
    fit_s, est = timed(lambda: factory().fit(X, y))
    est.predict_uncertainty(X_test[:10_000], n_samples=n_samples)
    predict_s, _ = timed(est.predict_uncertainty, X_test, n_samples=n_samples)
    return fit_s, predict_s


def network_params(cls, cfg, **extra):
    """The shared settings, restricted to what ``cls`` takes."""
    wanted = dict(
        hidden_layer_sizes=HIDDEN,
        max_epochs=cfg["epochs"],
        batch_size=1024,
        device=DEVICE,
        random_state=0,
        verbose=0,
        calibrate=False,
        early_stopping=False,
        n_samples=DRAWS,
    )
    wanted.update(extra)
    names = cls().get_params()
    return {k: v for k, v in wanted.items() if k in names}


def estimators(cfg):
    """``[(name, factory, task, fit_rows, n_samples for predict_uncertainty, note)]``."""
    import skbdl

    def plain(cls, **extra):
        return lambda: cls(**network_params(cls, cfg, **extra))

    def last_layer(cls, inner):
        return lambda: cls(inner(**network_params(inner, cfg, dropout=0.05)), n_samples=DRAWS)

    n_fit, n_pbp = cfg["fit_rows"], cfg["pbp_rows"]
    pbp = plain(skbdl.PBPRegressor, max_epochs=cfg["pbp_epochs"])
    pbp_note = f"fit on {n_pbp} rows, {cfg['pbp_epochs']} epochs (per-row ADF on the CPU)"
    llb = last_layer(skbdl.LastLayerBayesianRegressor, skbdl.MCDropoutRegressor)
    return [
        ("MCDropoutRegressor", plain(skbdl.MCDropoutRegressor), "reg", n_fit, DRAWS, ""),
        ("MCDropoutClassifier", plain(skbdl.MCDropoutClassifier), "clf", n_fit, DRAWS, ""),
        (
            "DeepEnsembleRegressor (5)",
            plain(skbdl.DeepEnsembleRegressor, n_estimators=5),
            "reg",
            n_fit,
            None,
            "5 members = 5 draws",
        ),
        (
            "DeepEnsembleClassifier (5)",
            plain(skbdl.DeepEnsembleClassifier, n_estimators=5),
            "clf",
            n_fit,
            None,
            "5 members = 5 draws",
        ),
        ("BayesianMLPRegressor", plain(skbdl.BayesianMLPRegressor), "reg", n_fit, DRAWS, ""),
        ("BayesianMLPClassifier", plain(skbdl.BayesianMLPClassifier), "clf", n_fit, DRAWS, ""),
        (
            "LastLayerLaplaceClassifier (on MC dropout)",
            last_layer(skbdl.LastLayerLaplaceClassifier, skbdl.MCDropoutClassifier),
            "clf",
            n_fit,
            DRAWS,
            "fit includes the MC-dropout network's",
        ),
        ("PBPRegressor", pbp, "reg", n_pbp, None, pbp_note + "; closed-form moments"),
        ("PBPRegressor", pbp, "reg", n_pbp, DRAWS, pbp_note + "; 100 weight draws"),
        (
            "LastLayerBayesianRegressor (on MC dropout)",
            llb,
            "reg",
            n_fit,
            None,
            "closed-form moments",
        ),
        (
            "LastLayerBayesianRegressor (on MC dropout)",
            llb,
            "reg",
            n_fit,
            DRAWS,
            "100 last-layer draws",
        ),
    ]


def reference_loop(module, X):
    """The plain-torch MC-dropout prediction: 100 train-mode passes, sums on the GPU."""
    import copy

    import torch

    net = copy.deepcopy(module).train()  # the estimator's network stays as it is
    with torch.no_grad():
        X_gpu = torch.as_tensor(X, dtype=torch.float32).to(DEVICE)
        total_mean = total_square = total_var = 0.0
        for _ in range(DRAWS):
            mean, var = net(X_gpu)
            total_mean = total_mean + mean
            total_square = total_square + mean.square()
            total_var = total_var + var
        mean = total_mean / DRAWS
        epistemic = total_square / DRAWS - mean.square()
        return mean.cpu(), (total_var / DRAWS).cpu(), epistemic.cpu()


def machine_line():
    import torch

    import skbdl

    try:
        commit = subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        commit = f"{commit}{' + uncommitted changes' if dirty else ''}" or "?"
    except OSError:
        commit = "?"
    if DEVICE == "cuda":
        props = torch.cuda.get_device_properties(0)
        device = f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    else:
        device = f"CPU ({os.cpu_count()} cores), a smoke run of the script only"
    return (
        f"{datetime.datetime.now().isoformat(timespec='seconds')}; {device}; "
        f"torch {torch.__version__} "
        f"(CUDA {torch.version.cuda}); python {platform.python_version()}; "
        f"skbdl {skbdl.__version__} at {commit}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", default="", help="comma-separated substrings of estimator names")
    parser.add_argument(
        "--device", default="cuda", help="'cuda' (default); 'cpu' only smoke-tests the script"
    )
    args = parser.parse_args(argv)

    import torch

    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("benchmarks/gpu.py: CUDA is not available here; nothing measured (skipped).")
        return 0
    warnings.filterwarnings("ignore")
    cfg = settings(args.quick)
    if DEVICE == "cpu":  # a smoke run of the script: tiny sizes
        cfg.update(fit_rows=2_000, predict_rows=20_000, epochs=1, pbp_rows=200, pbp_epochs=1)
    start_all = time.perf_counter()
    X, y, classes = make_data(cfg["fit_rows"], seed=0)
    X_test, _, _ = make_data(cfg["predict_rows"], seed=1)
    targets = {"reg": y, "clf": classes}

    print(f"# skbdl on the GPU{' (--quick: a smoke run)' if args.quick else ''}\n")
    print(machine_line() + "\n")
    print(
        f"Fit: {cfg['fit_rows']} x {N_FEATURES} rows, hidden {HIDDEN}, {cfg['epochs']} "
        f"epochs, batch 1024.  predict_uncertainty: {cfg['predict_rows']} rows.\n"
    )
    rows = []

    # The reference: the MC-dropout regressor's own network, plain torch.
    from skbdl import MCDropoutRegressor

    fit_s, reference_est = timed(
        lambda: MCDropoutRegressor(**network_params(MCDropoutRegressor, cfg)).fit(X, y)
    )
    module = reference_est.net_.module_  # the Gaussian head: (mean, var)
    reference_loop(module, X_test[:10_000])  # warm-up
    ref_s, _ = timed(reference_loop, module, X_test)
    rows.append(("plain torch loop, the MC-dropout network", "", fit_s, ref_s, "", ""))
    del reference_est, module
    gc.collect()
    if DEVICE == "cuda":
        torch.cuda.empty_cache()

    only = [s.strip() for s in args.only.split(",") if s.strip()]
    for name, factory, task, n_fit, n_samples, note in estimators(cfg):
        if only and not any(s in name for s in only):
            continue
        draws = "members" if "Ensemble" in name else (n_samples or "closed form")
        try:
            fit_s, predict_s = measure(factory, X[:n_fit], targets[task][:n_fit], X_test, n_samples)
            ratio = predict_s / ref_s
            status = f"{'PASS' if ratio <= TARGET else 'MISS'} {note}".strip()
            rows.append((name, draws, fit_s, predict_s, f"{ratio:.2f}x", status))
        except Exception as error:  # one failure must not hide the others
            message = f"{type(error).__name__}: {error}".replace("\n", " ")[:200]
            rows.append((name, draws, float("nan"), float("nan"), "", f"ERROR {message}"))
            traceback.print_exc(file=sys.stderr)
        gc.collect()
        if DEVICE == "cuda":
            torch.cuda.empty_cache()

    print(
        f"| estimator (device='cuda') | draws | fit s | predict_uncertainty s "
        f"| / reference (target <= {TARGET}x) | status, notes |"
    )
    print("|---|---|---|---|---|---|")
    for name, draws, fit_s, predict_s, ratio, status in rows:
        print(f"| {name} | {draws} | {fit_s:.2f} | {predict_s:.3f} | {ratio} | {status} |")
    print(f"\nTotal {time.perf_counter() - start_all:.0f} s.")
    return 1 if any("ERROR" in r[-1] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
