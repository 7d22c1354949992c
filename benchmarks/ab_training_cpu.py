"""CPU seconds of one training run of three estimators, for comparing two checkouts.

Usage: ``python benchmarks/ab_training_cpu.py PATH`` imports skbdl from the checkout at
``PATH`` and prints the median CPU time (``time.process_time``, less sensitive to a
shared machine's load than wall time) of three fits each of MCDropoutRegressor,
DeepEnsembleRegressor (5 members) and BayesianMLPRegressor: 1 000 x 10 rows, (50, 50),
40 epochs, batch 32, lr 1e-3, ``calibrate=False``, after one warm-up fit.  Run it
alternately on two checkouts (e.g. a ``git worktree`` of an older commit and this one)
and compare the medians.
"""

import statistics
import sys
import time
import warnings

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else ".")
warnings.simplefilter("ignore")

import numpy as np  # noqa: E402

from skbdl import BayesianMLPRegressor, DeepEnsembleRegressor, MCDropoutRegressor  # noqa: E402

rng = np.random.RandomState(0)
X = rng.randn(1000, 10)
y = X @ rng.randn(10) + 0.1 * rng.randn(1000)
settings = dict(
    hidden_layer_sizes=(50, 50),
    max_epochs=40,
    batch_size=32,
    lr=1e-3,
    calibrate=False,
    verbose=0,
    random_state=0,
)
medians = {}
for name, cls in [
    ("mc_dropout", MCDropoutRegressor),
    ("deep_ensemble", DeepEnsembleRegressor),
    ("bbb", BayesianMLPRegressor),
]:
    cls(**settings).fit(X, y)
    times = []
    for _ in range(3):
        start = time.process_time()
        cls(**settings).fit(X, y)
        times.append(time.process_time() - start)
    medians[name] = round(statistics.median(times), 4)
print(medians)
