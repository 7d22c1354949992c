"""Inputs of more than two dimensions (images, sequences): a user's module receives
them as they are; the default networks flatten them to rows."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.base import is_classifier
from sklearn.datasets import load_digits
from torch import nn

from skbdl import (
    BayesianMLPClassifier,
    DeepEnsembleRegressor,
    MCDropoutClassifier,
    MCDropoutRegressor,
    PBPRegressor,
)

FAST = dict(hidden_layer_sizes=(16,), max_epochs=3, n_samples=4, verbose=0, random_state=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(60, 2, 3)
    return X, (X[:, 0, 0] > 0).astype(int), X[:, 0, 0] + 0.1 * rng.randn(60)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (MCDropoutClassifier, FAST),
        (MCDropoutRegressor, FAST),
        (BayesianMLPClassifier, FAST),
        (DeepEnsembleRegressor, {**FAST, "n_estimators": 2, "n_samples": None}),
        (PBPRegressor, dict(hidden_layer_sizes=(8,), max_epochs=2, random_state=0, verbose=0)),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_default_networks_flatten_nd_rows(cls, kwargs, data):
    """A fit on (n, 2, 3) arrays is the fit on the same rows flattened to (n, 6)."""
    X, y_clf, y_reg = data
    y = y_clf if is_classifier(cls()) else y_reg
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    nd = cls(**kwargs).fit(X, y)
    flat = cls(**kwargs).fit(X.reshape(len(X), -1), y)
    assert nd.input_shape_ == (2, 3) and flat.input_shape_ == (6,)
    if is_classifier(cls()):
        assert_array_equal(nd.predict_proba(X), flat.predict_proba(X.reshape(len(X), -1)))
    else:
        for a, b in zip(nd.predict(X, return_std=True), flat.predict(X.reshape(60, -1), True)):
            assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"rows of shape \(2, 2\).*fitted on rows of shape"):
        nd.predict(X[:, :, :2])
    with pytest.raises(ValueError, match="features"):
        nd.predict(X.reshape(60, 3, 2))


class TinyCNN(nn.Module):
    """A small convolutional network for 8x8 single-channel images."""

    def __init__(self, n_outputs=10, channels=4, p=0.1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Dropout(p),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(channels * 16, n_outputs)

    def forward(self, X):
        return self.head(self.features(X).flatten(1))


def test_user_cnn_receives_images():
    X, y = load_digits(return_X_y=True)
    images = (X / 16.0).reshape(-1, 1, 8, 8)
    seen = []

    class Recording(TinyCNN):
        def forward(self, X):
            seen.append(tuple(X.shape[1:]))
            return super().forward(X)

    clf = MCDropoutClassifier(
        module=Recording, max_epochs=5, n_samples=4, lr=1e-2, verbose=0, random_state=0
    ).fit(images[:1200], y[:1200])
    assert set(seen) == {(1, 8, 8)}
    assert clf.n_features_in_ == 1 and clf.input_shape_ == (1, 8, 8)
    accuracy = np.mean(clf.predict(images[1200:]) == y[1200:])
    assert accuracy > 0.8, accuracy
    u = clf.predict_uncertainty(images[1200:1210])
    assert u.proba.shape == (10, 10) and np.all(u.epistemic >= 0)
    # MC dropout draws different masks per draw: the conv net's dropout is sampled.
    assert np.any(u.epistemic > 0)
    assert torch.get_default_dtype() == torch.float32


@pytest.mark.parametrize("strategy", ["vectorized", "joblib"])
def test_deep_ensemble_of_cnns_receives_images(strategy):
    from skbdl import DeepEnsembleClassifier

    X, y = load_digits(return_X_y=True)
    images = (X / 16.0).reshape(-1, 1, 8, 8)
    if strategy == "joblib":  # (n, 8, 8) images: 3-D like a batch per member
        images = images[:, 0]

        class Squeezed(TinyCNN):
            def forward(self, X):
                return super().forward(X[:, None])

        module = Squeezed
    else:
        module = TinyCNN
    ens = DeepEnsembleClassifier(
        module=module,
        module__p=0.0,
        n_estimators=3,
        max_epochs=4,
        lr=1e-2,
        strategy=strategy,
        verbose=0,
        random_state=0,
    ).fit(images[:1000], y[:1000])
    assert ens.input_shape_ == images.shape[1:]
    assert np.mean(ens.predict(images[1000:]) == y[1000:]) > 0.8
    assert ens.sample_predictions(images[1000:1010]).shape == (3, 10, 10)
    if strategy == "vectorized":  # rows per batch, not image height
        assert set(ens.history_[-1, "batches", :, "train_batch_size"]) <= {32, 1000 % 32}
