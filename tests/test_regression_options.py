"""Regression options: ``likelihood='fixed'`` with ``noise_scale``, a user's
``criterion`` on the predicted means, and ``output_activation``."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from skbdl import (
    BayesianMLPRegressor,
    DeepEnsembleRegressor,
    HyperDeepEnsembleRegressor,
    MCDropoutRegressor,
)
from skbdl.nn import MLP, GaussianRegressionModule

FAST = dict(batch_size=32, random_state=0, verbose=0, calibrate=False)
ESTIMATORS = {
    "mc_dropout": lambda **kw: MCDropoutRegressor(
        hidden_layer_sizes=(32,), dropout=0.2, max_epochs=40, **FAST, **kw
    ),
    "ensemble": lambda **kw: DeepEnsembleRegressor(
        n_estimators=3, hidden_layer_sizes=(32,), max_epochs=40, **FAST, **kw
    ),
    "bbb": lambda **kw: BayesianMLPRegressor(
        hidden_layer_sizes=(32,), max_epochs=40, lr=0.01, **FAST, **kw
    ),
}


@pytest.fixture(scope="module")
def data():
    """A target in large units (scale ~10, offset 50): the noise scale must be
    converted to standardised units for the variances to come out right."""
    rng = np.random.RandomState(0)
    X = rng.uniform(-2, 2, size=(160, 2)).astype(np.float32)
    y = 50.0 + 10.0 * np.sin(X[:, 0]) + 2.0 * X[:, 1] + 1.5 * rng.randn(160)
    return X, y


def _fast_step(est):
    """The hand-written step the estimator's training would use (None: autograd)."""
    return est.net_._make_fast_step()


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_fixed_noise_is_noise_scale_squared_in_original_units(name, data):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor a spurious "did not converge" warning
        est = ESTIMATORS[name](likelihood="fixed", noise_scale=3.0).fit(X, y)
    u = est.predict_uncertainty(X)
    # float32 network: the variance is exact to float32 rounding.
    np.testing.assert_allclose(u.aleatoric_var, 9.0, rtol=1e-6)
    _, variances = est.sample_predictions(X[:5])
    np.testing.assert_allclose(variances, 9.0, rtol=1e-6)
    np.testing.assert_allclose(
        est.predict_uncertainty(X, deterministic=True).aleatoric_var, 9.0, rtol=1e-6
    )
    assert u.epistemic_var.min() > 0
    # The variance is given, not learned: not a parameter, and the hand-written
    # training steps (which learn one) are not used for this head.
    names = [n for n, _ in est.net_.module_.named_parameters()]
    assert not any(n.endswith("log_noise_var") for n in names)
    assert _fast_step(est) is None
    # The means are fitted: far better than the target's spread.
    assert np.sqrt(np.mean((u.mean - y) ** 2)) < 0.5 * y.std()


def test_fast_step_still_used_for_learned_noise(data):
    """The check above can fail: a homoscedastic head does get the fast step."""
    X, y = data
    est = MCDropoutRegressor(
        hidden_layer_sizes=(8,), likelihood="homoscedastic", max_epochs=2, **FAST
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    assert _fast_step(est) is not None


def test_fixed_noise_with_a_learned_network_changes_with_noise_scale(data):
    X, y = data
    small = ESTIMATORS["mc_dropout"](likelihood="fixed", noise_scale=0.5).fit(X, y)
    large = ESTIMATORS["mc_dropout"](likelihood="fixed", noise_scale=5.0).fit(X, y)
    np.testing.assert_allclose(small.predict_uncertainty(X).aleatoric_var, 0.25, rtol=1e-6)
    np.testing.assert_allclose(large.predict_uncertainty(X).aleatoric_var, 25.0, rtol=1e-6)


def test_fixed_noise_hyper_ensemble(data):
    X, y = data
    est = HyperDeepEnsembleRegressor(
        n_estimators=2,
        population_size=3,
        hidden_layer_sizes=(16,),
        max_epochs=20,
        likelihood="fixed",
        noise_scale=2.0,
        refit=False,
        **FAST,
    ).fit(X, y)
    np.testing.assert_allclose(est.predict_uncertainty(X).aleatoric_var, 4.0, rtol=1e-6)
    # Its deterministic pass is the selected members' average.
    u = est.predict_uncertainty(X, deterministic=True)
    np.testing.assert_allclose(u.mean, est.predict(X), rtol=1e-6)
    np.testing.assert_array_equal(u.epistemic_var, 0.0)


@pytest.mark.parametrize("name", ["mc_dropout", "ensemble"])
def test_huber_criterion_trains_and_differs_from_the_likelihood(name, data):
    X, y = data
    loss = torch.nn.HuberLoss(delta=0.5)
    huber = ESTIMATORS[name](likelihood="fixed", criterion=loss).fit(X, y)
    assert huber.criterion is loss  # the parameter is not changed by training
    assert huber.loss_curve_[-1] < 0.5 * huber.loss_curve_[0]
    gaussian = ESTIMATORS[name](likelihood="fixed").fit(X, y)
    difference = np.abs(huber.predict(X) - gaussian.predict(X))
    assert difference.max() > 1e-2
    # The training loss is the Huber loss of the standardised means.
    module = huber.net_.module_.eval()
    with torch.no_grad():
        mean, _ = module(torch.from_numpy(X))
    y_std = torch.as_tensor((y - huber.y_mean_[0]) / huber.y_scale_[0], dtype=torch.float32)
    expected = torch.nn.functional.huber_loss(mean, y_std[:, None].expand_as(mean), delta=0.5)
    members = mean.shape[0] if mean.ndim == 3 else 1
    assert float(huber.net_.criterion_((mean, None), y_std[:, None])) == pytest.approx(
        members * float(expected), rel=1e-5
    )
    # A class is instantiated.
    ESTIMATORS[name](likelihood="fixed", criterion=torch.nn.L1Loss).fit(X, y)


@pytest.mark.parametrize("likelihood", ["heteroscedastic", "homoscedastic"])
def test_criterion_needs_the_fixed_likelihood(likelihood, data):
    X, y = data
    est = ESTIMATORS["mc_dropout"](likelihood=likelihood, criterion=torch.nn.HuberLoss)
    with pytest.raises(ValueError, match="likelihood='fixed'"):
        est.fit(X, y)
    assert not hasattr(est, "net_")


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_softplus_output_activation_gives_non_negative_means(name):
    rng = np.random.RandomState(1)
    X = rng.uniform(-3, 3, size=(160, 1)).astype(np.float32)
    y = np.maximum(X[:, 0], 0.0) ** 2 + 0.05 * rng.rand(160)  # zero over half the inputs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # trains (by autograd: the fast steps lack it)
        est = ESTIMATORS[name](output_activation="softplus").fit(X, y)
    assert _fast_step(est) is None
    plain = ESTIMATORS[name]().fit(X, y)
    assert est.loss_curve_[-1] != plain.loss_curve_[-1]
    X_far = np.linspace(-20, 20, 201, dtype=np.float32)[:, None]
    for rows in (X, X_far):
        assert est.predict(rows).min() >= 0
        assert est.predict(rows, deterministic=True).min() >= 0
        assert est.sample_predictions(rows)[0].min() >= 0
    assert np.corrcoef(est.predict(X), y)[0, 1] > 0.9


def test_output_activation_acts_in_original_units():
    """The head's mean is ``(act(out * scale + shift) - shift) / scale``."""
    body = MLP(3, 2, hidden_layer_sizes=(4,))
    head = GaussianRegressionModule(
        body,
        2,
        "homoscedastic",
        output_activation="sigmoid",
        target_mean=[5.0, -1.0],
        target_scale=[2.0, 0.5],
    )
    x = torch.randn(6, 3)
    with torch.no_grad():
        raw = body(x)
        mean, _ = head(x)
    shift, scale = torch.tensor([5.0, -1.0]), torch.tensor([2.0, 0.5])
    original = mean * scale + shift
    torch.testing.assert_close(original, torch.sigmoid(raw * scale + shift))


def test_sigmoid_output_activation_bounds_the_means(data):
    X, y = data
    est = ESTIMATORS["ensemble"](output_activation="sigmoid")
    est.fit(X, (y - y.min()) / (y.max() - y.min()))
    means = est.predict(np.linspace(-30, 30, 122, dtype=np.float32).reshape(-1, 2))
    assert means.min() >= 0 and means.max() <= 1


@pytest.mark.parametrize(
    "params",
    [
        {"likelihood": "gaussian"},
        {"noise_scale": 0.0},
        {"noise_scale": -1.0},
        {"noise_scale": "1"},
        {"output_activation": "exp"},
    ],
)
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_new_parameters_are_validated(name, params, data):
    with pytest.raises(InvalidParameterError):
        ESTIMATORS[name](**params).fit(*data)


@pytest.mark.parametrize("name", ["mc_dropout", "ensemble"])
def test_criterion_is_validated(name, data):
    with pytest.raises(InvalidParameterError, match="criterion"):
        ESTIMATORS[name](likelihood="fixed", criterion="huber").fit(*data)


def test_bbb_has_no_criterion(data):
    with pytest.raises(TypeError, match="criterion"):
        BayesianMLPRegressor(criterion=torch.nn.HuberLoss).fit(*data)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_new_parameters_round_trip_clone_and_search(name, data):
    X, y = data
    params = dict(likelihood="fixed", noise_scale=2.5, output_activation="relu")
    if name != "bbb":
        params["criterion"] = torch.nn.HuberLoss(delta=2.0)
    est = ESTIMATORS[name](**params)
    copied = clone(est)
    for key, value in params.items():
        if key == "criterion":
            assert type(copied.criterion) is torch.nn.HuberLoss
            assert copied.criterion.delta == 2.0
        else:
            assert copied.get_params()[key] == value
    base = ESTIMATORS[name](likelihood="fixed")
    base.set_params(max_epochs=3)
    grid = {"noise_scale": [1.0, 4.0], "output_activation": [None, "softplus"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GridSearchCV(base, grid, cv=2).fit(X, y)
    assert set(search.best_params_) == set(grid)
    best = search.best_estimator_
    np.testing.assert_allclose(
        best.predict_uncertainty(X[:3]).aleatoric_var, best.noise_scale**2, rtol=1e-6
    )


def test_laplace_refuses_an_output_activation(data):
    """The Laplace approximation linearises the network's raw output; it would
    silently drop the activation, so it refuses it."""
    from sklearn.frozen import FrozenEstimator

    from skbdl import LaplaceRegressor

    X, y = data
    est = ESTIMATORS["mc_dropout"](output_activation="softplus").set_params(max_epochs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    with pytest.raises(ValueError, match="output_activation=None"):
        LaplaceRegressor(FrozenEstimator(est), hessian_structure="diag").fit(X, y)
    # likelihood='fixed' is supported: its noise is the fixed one.
    fixed = ESTIMATORS["mc_dropout"](likelihood="fixed", noise_scale=2.0).fit(X, y)
    laplace = LaplaceRegressor(FrozenEstimator(fixed), hessian_structure="diag").fit(X, y)
    np.testing.assert_allclose(laplace.predict_uncertainty(X).aleatoric_var, 4.0, rtol=1e-5)
