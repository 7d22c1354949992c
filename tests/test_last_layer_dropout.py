"""Last-layer MC dropout: a dropout head on a network's frozen features."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator

from skbdl import (
    LastLayerMCDropoutClassifier,
    LastLayerMCDropoutRegressor,
    MCDropoutClassifier,
    MCDropoutRegressor,
)

QUIET = dict(verbose=0, random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    net = MCDropoutClassifier(dropout=0.0, max_epochs=15, calibrate=False, **QUIET)
    return X, y, net.fit(X[:1000], y[:1000])


def test_head_is_trained_on_the_frozen_features(digits):
    X, y, net = digits
    before = {k: v.clone() for k, v in net.module_.state_dict().items()}
    clf = LastLayerMCDropoutClassifier(FrozenEstimator(net), dropout=0.5, random_state=0)
    clf.fit(X[:1000], y[:1000])
    # The network is not changed; the head is a Dropout -> Linear on its penultimate features.
    after = net.module_.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    head = clf.head_.module_
    assert head.linear.in_features == net.hidden_layer_sizes[-1] and head.dropout.p == 0.5
    # A new last layer trained on the frozen features: as accurate as the network's own.
    accuracy = np.mean(clf.predict(X[1000:]) == y[1000:])
    assert accuracy > np.mean(net.predict(X[1000:]) == y[1000:]) - 0.03


def test_epistemic_from_the_head_only_and_larger_far_from_the_data(digits):
    X, y, net = digits
    clf = LastLayerMCDropoutClassifier(FrozenEstimator(net), random_state=0).fit(X[:1000], y[:1000])
    u_in = clf.predict_uncertainty(X[1000:1300])
    noise = np.random.RandomState(0).uniform(0, 1, size=(300, 64))
    u_out = clf.predict_uncertainty(noise)
    assert np.median(u_out.epistemic) > 2 * np.median(u_in.epistemic)
    # One draw per call is the head with one dropout mask: same seed, same result.
    np.testing.assert_array_equal(clf.predict_proba(X[:20]), clf.predict_proba(X[:20]))


def test_regressor_in_target_units():
    rng = np.random.RandomState(0)
    X = rng.uniform(-2, 2, size=(300, 1))
    y = 100 * np.sin(2 * X[:, 0]) + 10 * rng.randn(300) + 500
    reg = LastLayerMCDropoutRegressor(random_state=0).fit(X, y)
    mean, std = reg.predict(X, return_std=True)
    assert np.sqrt(np.mean((mean - y) ** 2)) < 40
    assert np.all(std > 0) and reg.y_mean_[0] == pytest.approx(y.mean())
    u = reg.predict_uncertainty(X[:5])
    np.testing.assert_allclose(u.total_var, u.aleatoric_var + u.epistemic_var)


def test_inner_network_validated_and_last_layer_named(digits):
    X, y, _ = digits
    with pytest.raises(ValueError, match="n_samples"):
        LastLayerMCDropoutRegressor(MCDropoutRegressor(n_samples=0)).fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="names no layer"):
        LastLayerMCDropoutClassifier(
            MCDropoutClassifier(max_epochs=2, **QUIET), last_layer="nope"
        ).fit(X[:100], y[:100])


def test_deterministic_pass_is_the_head_without_dropout(digits):
    X, y, net = digits
    clf = LastLayerMCDropoutClassifier(FrozenEstimator(net), random_state=0).fit(X[:1000], y[:1000])
    features = clf.module_.features(torch.tensor(X[1000:1010], dtype=torch.float32))
    head = clf.head_.module_
    with torch.no_grad():
        logits = head.linear(features.float())  # dropout off: the linear layer alone
    expected = torch.softmax(logits.double(), dim=1).numpy()
    np.testing.assert_allclose(
        clf.predict_proba(X[1000:1010], deterministic=True), expected, rtol=1e-6
    )
    assert np.all(clf.predict_uncertainty(X[1000:1010], deterministic=True).epistemic == 0)


def test_skorch_network_is_fitted_on_class_codes():
    """An unfitted skorch net is fitted on the codes 0 .. n_classes - 1 of any labels
    (as by the other post-hoc classifiers); predictions come back as the labels."""
    from skorch import NeuralNetClassifier
    from torch import nn

    rng = np.random.RandomState(0)
    X = rng.randn(200, 2).astype(np.float32)
    y = np.where(X[:, 0] > 0, "high", "low")
    torch.manual_seed(0)
    net = NeuralNetClassifier(
        nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2)),
        criterion=nn.CrossEntropyLoss,
        max_epochs=20,
        lr=0.5,
        train_split=None,
        verbose=0,
    )
    clf = LastLayerMCDropoutClassifier(net, random_state=0).fit(X, y)
    assert set(clf.predict(X)) <= {"high", "low"}
    assert np.mean(clf.predict(X) == y) > 0.9


def _head_state(model):
    return {k: v.clone() for k, v in model.head_.module_.state_dict().items()}


@pytest.mark.parametrize("task", ["classifier", "regressor"])
def test_sample_weight_reaches_the_head(digits, task):
    """The head is fitted with the weights: bit-identical to its estimator fitted
    directly on the frozen features with them; rows of weight zero do not count
    (their targets shuffled among themselves, the fit is unchanged), and the
    weights change the fit."""
    X, y, net = digits
    X, y = X[:300], y[:300].astype(np.float64)
    rng = np.random.RandomState(0)
    weights = rng.randint(0, 4, size=len(y)).astype(np.float64)
    if task == "classifier":
        model = LastLayerMCDropoutClassifier(FrozenEstimator(net), max_epochs=5, random_state=0)
        y = y.astype(int)
    else:  # a regressor on the classifier's penultimate features
        model = LastLayerMCDropoutRegressor(FrozenEstimator(net), max_epochs=5, random_state=0)
    model.fit(X, y, sample_weight=weights)
    features = model.module_.features(torch.tensor(X, dtype=torch.float32)).numpy()
    direct = clone(model.head_).fit(features, y, sample_weight=weights)
    state, expected = _head_state(model), direct.module_.state_dict()
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    # Its outputs read in the same units (a regressor's weighted standardisation).
    np.testing.assert_allclose(
        model.predict(X[:20], deterministic=True),
        direct.predict(features[:20].astype(np.float32), deterministic=True),
        rtol=1e-12,
    )

    zero = np.flatnonzero(weights == 0)
    shuffled = y.copy()
    shuffled[zero] = y[rng.permutation(zero)]
    assert not np.array_equal(shuffled, y)
    other = clone(model).fit(X, shuffled, sample_weight=weights)
    assert all(torch.equal(state[k], v) for k, v in _head_state(other).items())
    unweighted = _head_state(clone(model).fit(X, y))
    assert not torch.equal(unweighted["linear.weight"], state["linear.weight"])
