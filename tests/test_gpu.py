"""Training and prediction on a CUDA device (skipped without one)."""

import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import is_classifier

from skbdl import MCDropoutClassifier, MCDropoutRegressor

pytestmark = pytest.mark.gpu

FAST = dict(hidden_layer_sizes=(16,), max_epochs=10, lr=0.01, n_samples=10)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(120, 3)
    return X, (X[:, 0] + X[:, 1] > 0).astype(int), np.sin(X[:, 0]) + 0.1 * rng.randn(120)


def _y(cls, data):
    return data[1] if cls is MCDropoutClassifier else data[2]


def _predictions(est, X):
    u = est.predict_uncertainty(X)
    return [np.asarray(v) for v in vars(u).values()]


@pytest.mark.parametrize("cls", [MCDropoutClassifier, MCDropoutRegressor])
def test_fit_predict_on_cuda(cls, data):
    X, y = data[0], _y(cls, data)
    first = cls(**FAST, device="cuda", random_state=0).fit(X, y)
    second = cls(**FAST, device="cuda", random_state=0).fit(X, y)
    assert next(first.net_.module_.parameters()).device.type == "cuda"

    predictions = _predictions(first, X)
    for a in predictions:
        assert np.isfinite(a).all()
    if is_classifier(first):
        assert first.score(X, y) > 0.8
        assert set(first.predict(X)) <= {0, 1}
        assert first.sample_predictions(X, n_samples=3).shape == (3, len(X), 2)
    else:
        assert first.predict(X).shape == (len(X),)
    # Identical seeds give the same fit (up to non-deterministic GPU reductions).
    assert_allclose(first.loss_curve_, second.loss_curve_, rtol=1e-4)
    for a, b in zip(predictions, _predictions(second, X)):
        assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    # Predictions do not depend on batching on the GPU either.
    first.set_params(predict_batch_size=7)
    for a, b in zip(predictions, _predictions(first, X)):
        assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cls", [MCDropoutClassifier, MCDropoutRegressor])
def test_cuda_model_pickles(cls, data):
    X, y = data[0], _y(cls, data)
    est = cls(**FAST, device="cuda", random_state=0).fit(X, y)
    loaded = pickle.loads(pickle.dumps(est))
    assert next(loaded.net_.module_.parameters()).device.type == "cuda"
    for a, b in zip(_predictions(est, X), _predictions(loaded, X)):
        assert_array_equal(a, b)


def test_cuda_fit_leaves_the_cuda_rng_alone(data):
    X, y = data[0], data[1]
    state = torch.cuda.get_rng_state()
    MCDropoutClassifier(**FAST, device="cuda", random_state=0).fit(X, y)
    assert torch.equal(torch.cuda.get_rng_state(), state)
