"""Laplace over all weights (LaplaceClassifier, LaplaceRegressor) against exact answers."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetRegressor
from torch import nn

from skbdl import (
    DeepEnsembleRegressor,
    LaplaceClassifier,
    LaplaceRegressor,
    LastLayerLaplaceClassifier,
    MCDropoutClassifier,
    MCDropoutRegressor,
    SWAGClassifier,
)

SMALL_NET = dict(hidden_layer_sizes=(16,), dropout=0.0, max_epochs=30, lr=0.01, random_state=0)


def float32_exact(X):
    return X.astype(np.float32).astype(np.float64)


def linear_net(weight, bias):
    """A fitted skorch net that is one linear layer with the given weights."""
    net = NeuralNetRegressor(
        nn.Linear, module__in_features=weight.shape[1], module__out_features=1, verbose=0
    ).initialize()
    with torch.no_grad():
        net.module_.weight.copy_(torch.as_tensor(weight))
        net.module_.bias.copy_(torch.as_tensor(bias))
    return net


@pytest.mark.parametrize("structure", ["full", "kron"])
def test_linear_gaussian_model_is_the_exact_bayesian_linear_regression(structure):
    """A single linear layer with a Gaussian likelihood: the Laplace posterior (full,
    or Kronecker-factored, exact here) is the conjugate posterior of Bayesian linear
    regression with the network's noise variance (the mean squared residual), its
    linearised predictive the exact predictive, its evidence the exact evidence."""
    rng = np.random.RandomState(0)
    X = float32_exact(rng.randn(60, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 3.0 + 0.5 * rng.randn(60)
    Xa, delta = np.hstack([X, np.ones((60, 1))]), 0.8
    w = np.zeros(4)
    for _ in range(100):  # the MAP at the noise variance its own residuals give
        w32 = w.astype(np.float32).astype(np.float64)
        s2 = np.mean((y - Xa @ w32) ** 2)
        w = np.linalg.solve(Xa.T @ Xa / s2 + delta * np.eye(4), Xa.T @ y / s2)
    w32 = w.astype(np.float32).astype(np.float64)
    s2 = np.mean((y - Xa @ w32) ** 2)
    covariance = np.linalg.inv(Xa.T @ Xa / s2 + delta * np.eye(4))

    net = FrozenEstimator(linear_net(w32[None, :3], w32[3:]))
    reg = LaplaceRegressor(net, hessian_structure=structure, prior_precision=delta).fit(X, y)
    np.testing.assert_allclose(reg.module_.covariance.dense().numpy(), covariance, rtol=1e-8)

    X_test = np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 2.0], [5.0, 5.0, -5.0]])
    Xt = np.hstack([X_test, np.ones((3, 1))])
    u = reg.predict_uncertainty(X_test)
    np.testing.assert_allclose(u.mean, Xt @ w, rtol=1e-6)
    np.testing.assert_allclose(
        u.epistemic_var, np.einsum("ni,ij,nj->n", Xt, covariance, Xt), rtol=1e-8
    )
    np.testing.assert_allclose(u.aleatoric_var, s2, rtol=1e-8)

    C = s2 * np.eye(60) + Xa @ Xa.T / delta
    exact = -0.5 * (np.linalg.slogdet(2 * np.pi * C)[1] + y @ np.linalg.solve(C, y))
    np.testing.assert_allclose(reg.log_marginal_likelihood_, exact, rtol=1e-7)


def test_linearised_draws_match_the_closed_form_moments():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(100, 2))
    y = np.sin(3 * X[:, 0]) + X[:, 1] + 0.1 * rng.randn(100)
    net = MCDropoutRegressor(**SMALL_NET, verbose=0, calibrate=False).fit(X, y)
    reg = LaplaceRegressor(FrozenEstimator(net), hessian_structure="diag", random_state=0)
    reg.fit(X, y)
    X_test = np.array([[0.0, 0.0], [2.0, -2.0]])
    exact = reg.predict_uncertainty(X_test)
    mc = reg.predict_uncertainty(X_test, n_samples=20_000)
    np.testing.assert_allclose(mc.epistemic_var, exact.epistemic_var, rtol=0.05)  # SE 1%
    assert np.all(np.abs(mc.mean - exact.mean) < 5 * np.sqrt(exact.epistemic_var / 20_000))
    # The heteroscedastic network's own noise variance is the aleatoric part.
    np.testing.assert_allclose(
        exact.aleatoric_var, net.predict_uncertainty(X_test).aleatoric_var, rtol=1e-5
    )
    assert exact.epistemic_var[1] > 10 * exact.epistemic_var[0]  # away from the data


def test_last_layer_subset_with_full_structure_is_the_last_layer_laplace():
    """The two axes compose: subset_of_weights='last_layer' x hessian_structure='full'
    is the last-layer Laplace (its own, closed-form implementation)."""
    X, y = load_iris(return_X_y=True)
    X = float32_exact(X)
    net = FrozenEstimator(MCDropoutClassifier(**SMALL_NET, verbose=0).fit(X, y))
    for prior in (2.0, "marglik"):
        kw = dict(subset_of_weights="last_layer", hessian_structure="full", prior_precision=prior)
        general = LaplaceClassifier(net, **kw).fit(X, y)
        last = LastLayerLaplaceClassifier(net, prior_precision=prior).fit(X, y)
        np.testing.assert_allclose(general.prior_precision_, last.prior_precision_, rtol=1e-6)
        np.testing.assert_allclose(
            general.predict_proba(X[::10]), last.predict_proba(X[::10]), rtol=1e-6
        )
        np.testing.assert_allclose(
            general.log_marginal_likelihood_, last.log_marginal_likelihood_, rtol=1e-6
        )


@pytest.mark.parametrize("structure", ["diag", "kron"])
def test_classifier_is_less_confident_away_from_the_data(structure):
    X, y = load_iris(return_X_y=True)
    net = MCDropoutClassifier(**SMALL_NET, verbose=0).fit(X, y)
    clf = LaplaceClassifier(FrozenEstimator(net), hessian_structure=structure).fit(X, y)
    far = X[:5] * 20
    assert np.all(clf.predict_proba(far).max(1) < net.predict_proba(far).max(1))
    assert clf.prior_precision_ > 0 and np.isfinite(clf.log_marginal_likelihood_)
    mc = clone(clf).set_params(predictive="mc", n_samples=2000).fit(X, y)
    np.testing.assert_allclose(mc.predict_proba(X[::15]), clf.predict_proba(X[::15]), atol=0.05)
    u = clf.predict_uncertainty(far)
    assert np.all(u.epistemic > 0)


def test_default_network_pipeline_clone_and_pickle():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(80, 2))
    y = X[:, 0] - X[:, 1] + 0.1 * rng.randn(80)
    model = make_pipeline(StandardScaler(), LaplaceRegressor(random_state=0)).fit(X, y)
    reg = model[-1]
    assert reg.estimator_.likelihood == "homoscedastic"
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(again.predict(X[:5]), model.predict(X[:5]))
    # A network inside a frozen pipeline: the transformers run first.
    inner = make_pipeline(StandardScaler(), MCDropoutRegressor(**SMALL_NET, verbose=0)).fit(X, y)
    frozen = LaplaceRegressor(FrozenEstimator(inner)).fit(X, y)
    mean = frozen.predict(X[:5])
    np.testing.assert_allclose(mean, inner.predict(X[:5]), rtol=1e-5)


def test_errors_name_the_cause():
    X, y = load_iris(return_X_y=True)

    class Normed(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden, self.norm, self.out = nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 3)

        def forward(self, x):
            return self.out(self.norm(self.hidden(x)))

    # Any SGD-trained skbdl network will do, e.g. a SWAG one (its weights at the end).
    net = FrozenEstimator(SWAGClassifier(Normed, max_epochs=3, verbose=0).fit(X, y))
    with pytest.raises(ValueError, match="hessian_structure='diag'"):
        LaplaceClassifier(net).fit(X, y)
    assert LaplaceClassifier(net, hessian_structure="diag").fit(X, y).n_params_ == 8 * 5 + 16 + 27
    ensemble = DeepEnsembleRegressor(n_estimators=2, max_epochs=2, verbose=0).fit(X, y)
    with pytest.raises(ValueError, match="an ensemble is not one network"):
        LaplaceRegressor(FrozenEstimator(ensemble)).fit(X, y)
    binary = y.clip(max=1)
    with pytest.raises(ValueError, match="3 outputs but y has 2 classes"):
        LaplaceClassifier(net, hessian_structure="diag").fit(X, binary)


# ---------------------------------------------------------------- sample_weight
@pytest.fixture(scope="module")
def weighted_problem():
    """40 rows, integer weights 0 to 3 (each present), and three frozen networks: an
    skbdl regressor (its own noise variance), a plain skorch net (the weighted mean
    squared residual as noise variance) and a classifier."""
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(40, 3))
    y_reg = np.sin(2 * X[:, 0]) + X[:, 1] + 0.1 * rng.randn(40)
    y_clf = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    weight = np.tile([0, 1, 2, 3], 10)[rng.permutation(40)]
    kw = dict(hidden_layer_sizes=(8,), dropout=0.0, max_epochs=20, random_state=0, verbose=0)
    torch.manual_seed(0)
    skorch_net = NeuralNetRegressor(
        nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)),
        max_epochs=20,
        lr=0.05,
        verbose=0,
    ).fit(X.astype(np.float32), y_reg[:, None].astype(np.float32))
    nets = {
        "regressor": (MCDropoutRegressor(**kw).fit(X, y_reg), y_reg),
        "skorch": (skorch_net, y_reg),
        "classifier": (MCDropoutClassifier(**kw).fit(X, y_clf), y_clf),
    }
    X_test = rng.uniform(-2, 2, size=(7, 3))
    return X, weight, nets, X_test


def assert_same_posterior(a, b, X_test, rtol=1e-8):
    """Two fitted Laplace estimators have the same posterior and predictions."""
    np.testing.assert_allclose(a.prior_precision_, b.prior_precision_, rtol=rtol)
    np.testing.assert_allclose(a.log_marginal_likelihood_, b.log_marginal_likelihood_, rtol=rtol)
    cov_a, cov_b = a.module_.covariance.dense().numpy(), b.module_.covariance.dense().numpy()
    np.testing.assert_allclose(cov_a, cov_b, rtol=rtol, atol=rtol * np.abs(cov_b).max())
    if isinstance(a, LaplaceClassifier):
        np.testing.assert_allclose(a.predict_proba(X_test), b.predict_proba(X_test), rtol=rtol)
    else:
        u, v = a.predict_uncertainty(X_test), b.predict_uncertainty(X_test)
        for name in ("mean", "epistemic_var", "aleatoric_var"):
            np.testing.assert_allclose(getattr(u, name), getattr(v, name), rtol=rtol)


@pytest.mark.parametrize("subset", ["all", "last_layer"])
@pytest.mark.parametrize("structure", ["full", "diag", "kron"])
@pytest.mark.parametrize("net", ["regressor", "skorch", "classifier"])
def test_integer_sample_weights_are_repeated_rows(weighted_problem, net, structure, subset):
    """The weighted-likelihood posterior: a row of weight k (0 to 3) counts as k
    copies of it, in the curvature (both Kronecker factors and their row count), the
    residuals' noise variance, the evidence and the prior precision it selects."""
    X, weight, nets, X_test = weighted_problem
    network, y = nets[net]
    cls = LaplaceClassifier if net == "classifier" else LaplaceRegressor
    laplace = cls(FrozenEstimator(network), hessian_structure=structure, subset_of_weights=subset)
    weighted = clone(laplace).fit(X, y, sample_weight=weight)
    repeated = clone(laplace).fit(np.repeat(X, weight, axis=0), np.repeat(y, weight))
    assert_same_posterior(weighted, repeated, X_test)
    unweighted = clone(laplace).fit(X, y)  # the weights do change the posterior
    assert not np.isclose(weighted.prior_precision_, unweighted.prior_precision_, rtol=1e-3)


@pytest.mark.parametrize("structure", ["full", "diag", "kron"])
@pytest.mark.parametrize("net", ["skorch", "classifier"])
def test_fractional_sample_weights_scale_the_likelihood(weighted_problem, net, structure):
    """Weights 2.0 on every row are every row twice; weights c on every row multiply
    the curvature by c, so that at prior precision c * delta the covariance is that of
    the unweighted fit at delta divided by c (``(c H + c delta I)^-1``)."""
    X, _, nets, X_test = weighted_problem
    network, y = nets[net]
    cls = LaplaceClassifier if net == "classifier" else LaplaceRegressor
    laplace = cls(FrozenEstimator(network), hessian_structure=structure)
    twice = clone(laplace).fit(X, y, sample_weight=np.full(len(X), 2.0))
    assert_same_posterior(twice, clone(laplace).fit(np.tile(X, (2, 1)), np.tile(y, 2)), X_test)
    c, delta = 0.37, 0.8
    scaled = clone(laplace).set_params(prior_precision=c * delta)
    scaled.fit(X, y, sample_weight=np.full(len(X), c))
    plain = clone(laplace).set_params(prior_precision=delta).fit(X, y)
    np.testing.assert_allclose(
        scaled.module_.covariance.dense().numpy(),
        plain.module_.covariance.dense().numpy() / c,
        rtol=1e-8,
        atol=1e-12,
    )
