"""Prediction is re-entrant: concurrent calls return exactly what sequential calls return.

A web server's thread pool calls ``predict`` on one fitted estimator from many threads
at once.  Every public estimator (found by walking the package, as test_common.py
does), plus networks with other dropout layers, is called from several threads with
different rows, numbers of draws and methods, and every result must equal, bit for
bit, the result of the same call made alone.  Prediction must also leave the fitted
module as it found it, and copies of a fitted estimator must predict identically.
"""

import copy
import functools
import pickle
import threading

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.base import clone, is_classifier
from sklearn.datasets import make_blobs
from test_common import public_predictors
from torch import nn
from torch.nn import functional as F

import skbdl

N_THREADS = 4
FAST = dict(hidden_layer_sizes=(16,), max_epochs=8, lr=0.01, n_samples=10)
#: FAST for a user module (the default network's width does not apply to it).
MODULE_FAST = {k: v for k, v in FAST.items() if k != "hidden_layer_sizes"}


# ------------------------------------------------------- networks of other kinds
class AlphaDropoutNet(nn.Module):
    """SELU network with alpha dropout, feature alpha dropout and plain dropout."""

    def __init__(self, n_features_in, n_outputs, hidden=16):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_features_in, hidden),
            nn.SELU(),
            nn.AlphaDropout(0.2),
            nn.Linear(hidden, hidden),
            nn.SELU(),
            nn.FeatureAlphaDropout(0.1),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(hidden, n_outputs),
        )

    def forward(self, x):
        return self.layers(x)


class CustomDropout(nn.modules.dropout._DropoutNd):
    """A dropout layer skbdl does not know: it runs in train mode on torch's generator."""

    def forward(self, x):
        return F.dropout(x, self.p, self.training) * 1.0


class CustomDropoutNet(nn.Module):
    def __init__(self, n_features_in, n_outputs, hidden=16):
        super().__init__()
        self.hidden = nn.Linear(n_features_in, hidden)
        self.dropout = CustomDropout(0.2)
        self.out = nn.Linear(hidden, n_outputs)

    def forward(self, x):
        return self.out(self.dropout(torch.relu(self.hidden(x))))


class SmallNet(nn.Module):
    """A user module for ensembles: members evaluated by torch.func.vmap."""

    def __init__(self, n_features_in, n_outputs, hidden=8):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features_in, hidden), nn.Tanh(), nn.Linear(hidden, n_outputs)
        )

    def forward(self, x):
        return self.net(x)


def _default_case(cls):
    params = {k: v for k, v in FAST.items() if k in cls().get_params()}
    if "population_size" in cls().get_params():
        params.update(population_size=4, n_estimators=3)
    if "estimator" in cls().get_params():  # a last-layer method on an MC dropout network
        inner = skbdl.MCDropoutClassifier if is_classifier(cls()) else skbdl.MCDropoutRegressor
        params["estimator"] = inner(**FAST, dropout=0.1, random_state=0)
    return cls(**params, random_state=0)


CASES = {cls.__name__: functools.partial(_default_case, cls) for cls in public_predictors()}
CASES.update(
    {
        "MCDropoutClassifier-alpha-dropout": lambda: skbdl.MCDropoutClassifier(
            module=AlphaDropoutNet, **MODULE_FAST, random_state=0
        ),
        "MCDropoutRegressor-custom-dropout": lambda: skbdl.MCDropoutRegressor(
            module=CustomDropoutNet, **MODULE_FAST, random_state=0
        ),
        "MCDropoutRegressor-heteroscedastic": lambda: skbdl.MCDropoutRegressor(
            **FAST, likelihood="heteroscedastic", random_state=0
        ),
        "DeepEnsembleRegressor-vmap": lambda: skbdl.DeepEnsembleRegressor(
            module=SmallNet, n_estimators=3, max_epochs=8, random_state=0
        ),
        "BayesianMLPClassifier-two-layers": lambda: skbdl.BayesianMLPClassifier(
            **dict(FAST, hidden_layer_sizes=(16, 8)), random_state=0
        ),
    }
)


def _data(classifier):
    if classifier:
        return make_blobs(n_samples=150, centers=3, n_features=4, cluster_std=2.0, random_state=0)
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(150, 4))
    return X, np.sin(3 * X[:, 0]) + X[:, 1] + 0.1 * rng.randn(150)


@functools.cache
def fitted(name):
    est = CASES[name]()
    X, y = _data(is_classifier(est))
    # Small chunks (odd sizes): every call runs several, where threads interleave.
    return est.fit(X, y).set_params(predict_batch_size=97), X


def _fixed_draws(est):
    """Ensembles' draws are their members: n_samples must be None."""
    return isinstance(est, skbdl.ensemble._BaseDeepEnsemble)


def calls(est, X):
    """``[(description, zero-argument callable)]``: different rows, draws and methods."""
    rows = [X[:37], X[10:120], X[::-1][:55], 3.0 * X[:20], X[5:6]]
    draws = [None] if _fixed_draws(est) else [None, 3, 7, 12, 1]
    jobs = []
    for i, (X_rows, n) in enumerate(zip(rows, draws * len(rows))):
        jobs.append(
            (f"predict_uncertainty[{i}]", est.predict_uncertainty, (X_rows,), {"n_samples": n})
        )
        jobs.append(
            (f"sample_predictions[{i}]", est.sample_predictions, (X_rows,), {"n_samples": n})
        )
        jobs.append((f"predict[{i}]", est.predict, (X_rows,), {}))
        if is_classifier(est):
            jobs.append((f"predict_proba[{i}]", est.predict_proba, (X_rows,), {}))
        else:
            jobs.append((f"predict_std[{i}]", est.predict, (X_rows,), {"return_std": True}))
            method = "mixture" if i % 2 else "gaussian"
            jobs.append(
                (
                    f"predict_interval[{i}]",
                    est.predict_interval,
                    (X_rows,),
                    {"method": method, "n_samples": n},
                )
            )
    return [(name, functools.partial(f, *args, **kwargs)) for name, f, args, kwargs in jobs]


def _arrays(result):
    if isinstance(result, tuple):
        return [a for part in result for a in _arrays(part)]
    if hasattr(result, "__dataclass_fields__"):
        return [np.asarray(v) for v in vars(result).values()]
    return [np.asarray(result)]


def assert_same(a, b, what):
    a, b = _arrays(a), _arrays(b)
    assert len(a) == len(b), what
    for x, y in zip(a, b):
        assert_array_equal(x, y, err_msg=what)


@pytest.mark.parametrize("name", sorted(CASES))
def test_concurrent_calls_return_the_sequential_results(name):
    est, X = fitted(name)
    jobs = calls(est, X)
    expected = {what: call() for what, call in jobs}
    got, errors = [], []
    start = threading.Barrier(N_THREADS)

    def worker(seed):
        order = np.random.RandomState(seed).permutation(2 * len(jobs)) % len(jobs)
        start.wait()
        for index in order:
            what, call = jobs[index]
            try:
                got.append((what, call()))
            except Exception as error:  # noqa: BLE001  (reported below)
                errors.append((what, error))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(N_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert len(got) == 2 * N_THREADS * len(jobs)
    for what, result in got:
        assert_same(result, expected[what], f"{name}: {what}")


def _module_snapshot(module):
    """What a prediction could leave behind on a module: modes, hooks, attributes."""
    return [
        (
            type(m).__name__,
            m.training,
            len(m._forward_hooks),
            len(m._forward_pre_hooks),
            sorted(vars(m)),
            sorted(m._modules),
        )
        for m in module.modules()
    ]


def _fitted_modules(est):
    modules = [est.module_]
    if hasattr(est, "net_"):
        modules.append(est.net_.module_)
    return modules


@pytest.mark.parametrize("name", sorted(CASES))
def test_prediction_leaves_the_fitted_modules_untouched(name):
    est, X = fitted(name)
    before = [(_module_snapshot(m), copy.deepcopy(m.state_dict())) for m in _fitted_modules(est)]
    for _, call in calls(est, X):
        call()
    after = [(_module_snapshot(m), m.state_dict()) for m in _fitted_modules(est)]
    for (snap_a, state_a), (snap_b, state_b) in zip(before, after):
        assert snap_a == snap_b
        assert state_a.keys() == state_b.keys()
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


@pytest.mark.parametrize("name", sorted(CASES))
def test_copies_predict_bit_identically(name):
    est, X = fitted(name)
    copies = [pickle.loads(pickle.dumps(est)), copy.deepcopy(est)]
    for what, call in calls(est, X)[:6]:
        expected = call()
        for other in copies:
            method = getattr(other, call.func.__name__)
            assert_same(method(*call.args, **call.keywords), expected, f"{name}: {what}")
    # clone gives an unfitted estimator with the same parameters
    assert clone(est).get_params().keys() == est.get_params().keys()
