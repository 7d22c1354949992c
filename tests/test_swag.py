"""SWAG and MultiSWAG: moments of the recorded iterates, draws, prediction contract."""

import numpy as np
import pytest
import torch
from scipy.stats import norm
from sklearn.datasets import load_iris
from skorch.callbacks import Callback

from skbdl import SWAGClassifier, SWAGRegressor

FAST = dict(hidden_layer_sizes=(4,), lr=0.05, calibrate=False, verbose=0, random_state=0)


class Recorder(Callback):
    """Records every epoch's weights, flattened in ``named_parameters`` order."""

    def initialize(self):
        self.thetas_ = []
        return self

    def on_epoch_end(self, net, **kwargs):
        params = [p.detach().double().reshape(-1) for p in net.module_.parameters()]
        self.thetas_.append(torch.cat(params).numpy().copy())


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def recorded(iris):
    X, y = iris
    clf = SWAGClassifier(
        max_epochs=12, swag_start=0.5, max_rank=4, callbacks=[("record", Recorder())], **FAST
    ).fit(X, y)
    thetas = np.array(dict(clf.net_.callbacks_)["record"].thetas_)
    return clf, thetas


def test_moments_are_those_of_the_iterates_after_burn_in(recorded):
    clf, thetas = recorded
    kept = thetas[6:]  # 12 epochs, the first half is burn-in
    np.testing.assert_allclose(clf.swag_mean_[0], kept.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(clf.swag_variance_[0], kept.var(0), rtol=1e-6, atol=1e-12)
    running = np.cumsum(kept, 0) / np.arange(1, 7)[:, None]
    deviations = (kept - running)[-4:].T
    low_rank = clf._swag.covariances[0].low_rank.numpy() * np.sqrt(2 * (4 - 1))
    np.testing.assert_allclose(low_rank, deviations, rtol=1e-8, atol=1e-12)
    assert clf.swag_rank_ == 4


def test_continued_training_adds_every_epoch_to_the_run(iris):
    """warm_start and partial_fit continue the run's collection: after 6 epochs
    (the last 3 collected) and then 2 more by warm_start and 1 by partial_fit, the
    moments are those of epochs 4 to 9's weights; predictions use them."""
    X, y = iris
    clf = SWAGClassifier(
        max_epochs=6,
        swag_start=0.5,
        max_rank=4,
        warm_start=True,
        callbacks=[("record", Recorder())],
        **FAST,
    ).fit(X, y)
    before = clf.predict_proba(X[:5])
    clf.set_params(max_epochs=2).fit(X, y)
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 9
    kept = np.array(dict(clf.net_.callbacks_)["record"].thetas_)[3:]
    assert len(kept) == 6
    np.testing.assert_allclose(clf.swag_mean_[0], kept.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(clf.swag_variance_[0], kept.var(0), rtol=1e-6, atol=1e-12)
    running = np.cumsum(kept, 0) / np.arange(1, 7)[:, None]
    low_rank = clf._swag.covariances[0].low_rank.numpy() * np.sqrt(2 * (4 - 1))
    np.testing.assert_allclose(low_rank, (kept - running)[-4:].T, rtol=1e-8, atol=1e-12)
    assert not np.allclose(clf.predict_proba(X[:5]), before)


def test_multiswag_cannot_continue_and_is_left_as_it_was(iris):
    X, y = iris
    clf = SWAGClassifier(max_epochs=3, n_models=2, warm_start=True, **FAST).fit(X, y)
    before = clf.predict_proba(X[:5])
    with pytest.raises(ValueError, match="n_models=2"):
        clf.fit(X, y)
    assert not hasattr(clf, "partial_fit")
    assert clf.n_iter_ == 3
    np.testing.assert_array_equal(clf.predict_proba(X[:5]), before)


def test_draws_have_the_swag_mean_and_variance(recorded):
    """Per weight, the mean and variance of 20 000 draws of a prediction call are
    within Bonferroni-corrected normal bands of the stated ``theta_bar`` and
    ``diag(Sigma) = var / 2 + rowsum(D^2) / (2 (K - 1))``."""
    clf, thetas = recorded
    n = 20_000
    view = clf._sampling_view(clf._swag, n, seed=0, device=torch.device("cpu"))
    draws = view.thetas.numpy()
    stated = clf._swag.covariances[0].dense().numpy().diagonal()
    assert np.sum(stated > 0) > 10  # (weights of dead units never move)
    z = norm.isf(0.001 / (4 * draws.shape[1]))
    assert np.all(np.abs(draws.mean(0) - clf.swag_mean_[0]) <= z * np.sqrt(stated / n))
    assert np.all(np.abs(draws.var(0) - stated) <= z * stated * np.sqrt(2 / n))


def test_prediction_is_reproducible_and_does_not_depend_on_batching(iris, recorded):
    X, _ = iris
    clf, _ = recorded
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(proba, clf.predict_proba(X))
    small = clf.set_params(predict_batch_size=300)
    np.testing.assert_allclose(small.predict_proba(X), proba, rtol=1e-5)
    clf.set_params(predict_batch_size=None)


def test_multiswag_models_differ_and_the_first_is_swag(iris):
    X, y = iris
    one = SWAGClassifier(max_epochs=6, **FAST).fit(X, y)
    three = SWAGClassifier(max_epochs=6, n_models=3, **FAST).fit(X, y)
    assert three.swag_mean_.shape == (3, one.swag_mean_.shape[1])
    np.testing.assert_allclose(three.swag_mean_[0], one.swag_mean_[0])
    assert not np.allclose(three.swag_mean_[1], three.swag_mean_[2])
    samples = three.sample_predictions(X[:5], n_samples=7)  # 3 + 2 + 2 draws
    assert samples.shape == (7, 5, 3)


def test_regressor_and_diagonal_only():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(120, 2))
    y = X[:, 0] - 2 * X[:, 1] + 0.1 * rng.randn(120)
    reg = SWAGRegressor(max_epochs=10, max_rank=0, **FAST).fit(X, y)
    assert reg.swag_rank_ == 0
    u = reg.predict_uncertainty(X[:4])
    assert u.mean.shape == (4,) and np.all(u.epistemic_var > 0) and np.all(u.aleatoric_var > 0)
    mean, var = reg.sample_predictions(X[:4], n_samples=5)
    assert mean.shape == var.shape == (5, 4)
    # One epoch: one iterate, no spread: every draw is the network itself.
    still = SWAGRegressor(max_epochs=1, **FAST).fit(X, y)
    assert np.all(still.swag_variance_ == 0) and still.swag_rank_ == 1
    np.testing.assert_allclose(still.predict_uncertainty(X[:4]).epistemic_var, 0, atol=1e-12)
