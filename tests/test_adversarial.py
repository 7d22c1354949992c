"""skbdl.adversarial: gradients against references, attacks that work, pipelines."""

import inspect
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from torch import nn

from skbdl import (
    BayesianMLPClassifier,
    DeepEnsembleClassifier,
    LastLayerLaplaceClassifier,
    MCDropoutClassifier,
    MCDropoutRegressor,
    SWAGClassifier,
)
from skbdl._base import BasePredictor
from skbdl.adversarial import _log_likelihood, fgsm, input_gradient, pgd
from skbdl.uncertainty import mixture_log_likelihood


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def mc_dropout(digits):
    X_train, _, y_train, _ = digits
    return MCDropoutClassifier(
        hidden_layer_sizes=(64,),
        dropout=0.2,
        max_epochs=30,
        lr=5e-3,
        n_samples=20,
        calibrate=False,
        random_state=0,
        verbose=0,
    ).fit(X_train, y_train)


class Linear(nn.Module):
    """A linear layer behind a dropout layer of rate 0: a deterministic linear model."""

    def __init__(self, n_features_in, n_outputs):
        super().__init__()
        self.dropout = nn.Dropout(0.0)
        self.linear = nn.Linear(n_features_in, n_outputs)

    def forward(self, x):
        return self.linear(self.dropout(x))


@pytest.fixture(scope="module")
def linear_model():
    rng = np.random.RandomState(0)
    X = rng.randn(80, 3)
    y = np.array(["a", "b", "c"])[X.argmax(axis=1)]
    clf = MCDropoutClassifier(
        Linear, max_epochs=30, lr=1e-2, calibrate=False, random_state=0, verbose=0
    ).fit(X, y)
    return clf, X, y


def _reference_gradient(clf, X, y):
    """``d(-log softmax(x W^T + b)[y]) / dx = W^T (p - onehot(y))`` by hand, float64."""
    W = clf.module_.linear.weight.detach().double().numpy()
    b = clf.module_.linear.bias.detach().double().numpy()
    logits = X @ W.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = (clf.classes_[None, :] == y[:, None]).astype(float)
    return (p - onehot) @ W


def test_gradient_of_a_linear_model_is_the_closed_form(linear_model):
    clf, X, y = linear_model
    expected = _reference_gradient(clf, X, y)
    for deterministic in (False, True):
        grad = input_gradient(clf, X, y, deterministic=deterministic)
        np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)
    X_adv = fgsm(clf, X, y, epsilon=0.1)
    np.testing.assert_allclose(X_adv, X + 0.1 * np.sign(expected))


def test_gradient_matches_finite_differences(mc_dropout, digits):
    """The Monte Carlo objective with its draws fixed is a smooth function of the
    input (almost everywhere): central differences agree with autograd."""
    _, X_test, _, y_test = digits
    X, y = X_test[:3].astype(np.float64), y_test[:3]
    grad = input_gradient(mc_dropout, X, y, n_samples=5)
    rng = np.random.RandomState(0)
    direction = rng.randn(*X.shape)
    h = 1e-3

    def nll(Z):  # per-row -log of the 5-draw model average, by predict-time code
        proba = mc_dropout.sample_predictions(Z, n_samples=5).mean(axis=0)
        return -np.log(proba[np.arange(len(Z)), np.searchsorted(mc_dropout.classes_, y)])

    numeric = (nll(X + h * direction) - nll(X - h * direction)) / (2 * h)
    np.testing.assert_allclose((grad * direction).sum(axis=1), numeric, rtol=2e-2, atol=2e-3)


def test_deterministic_gradient_matches_the_deterministic_prediction(mc_dropout, digits):
    """``deterministic=True`` differentiates exactly what ``predict_proba(X,
    deterministic=True)`` computes: central differences of its log agree."""
    if "deterministic" not in inspect.signature(mc_dropout.predict_proba).parameters:
        pytest.skip("predict_proba has no deterministic pass yet")
    _, X_test, _, y_test = digits
    X, y = X_test[:3].astype(np.float64), y_test[:3]
    grad = input_gradient(mc_dropout, X, y, deterministic=True)
    direction = np.random.RandomState(1).randn(*X.shape)
    h = 1e-3

    def nll(Z):
        proba = mc_dropout.predict_proba(Z, deterministic=True)
        return -np.log(proba[np.arange(len(Z)), np.searchsorted(mc_dropout.classes_, y)])

    numeric = (nll(X + h * direction) - nll(X - h * direction)) / (2 * h)
    np.testing.assert_allclose((grad * direction).sum(axis=1), numeric, rtol=2e-2, atol=2e-3)
    # and it is not the Monte Carlo objective's gradient
    assert not np.allclose(grad, input_gradient(mc_dropout, X, y), rtol=1e-2)


def test_epsilon_zero_returns_X(mc_dropout, digits):
    _, X_test, _, y_test = digits
    np.testing.assert_array_equal(fgsm(mc_dropout, X_test, y_test, epsilon=0.0), X_test)
    np.testing.assert_array_equal(
        pgd(mc_dropout, X_test[:5], y_test[:5], 0.0, n_steps=2), X_test[:5]
    )


def test_attacks_lower_accuracy_and_stay_in_the_ball(mc_dropout, digits):
    _, X_test, _, y_test = digits
    clean = mc_dropout.score(X_test, y_test)
    X_fgsm = fgsm(mc_dropout, X_test, y_test, epsilon=0.1, clip=(0, 1))
    X_pgd = pgd(mc_dropout, X_test, y_test, epsilon=0.1, n_steps=5, clip=(0, 1))
    assert X_fgsm.dtype == X_test.dtype and X_fgsm.shape == X_test.shape
    for X_adv in (X_fgsm, X_pgd):
        assert np.abs(X_adv - X_test).max() <= 0.1 + 1e-6
        assert X_adv.min() >= 0 and X_adv.max() <= 1
    fgsm_accuracy = mc_dropout.score(X_fgsm, y_test)
    pgd_accuracy = mc_dropout.score(X_pgd, y_test)
    assert clean > 0.9
    assert fgsm_accuracy < clean - 0.2
    assert pgd_accuracy <= fgsm_accuracy
    # reproducible: the same seeded draws every call
    np.testing.assert_array_equal(X_fgsm, fgsm(mc_dropout, X_test, y_test, 0.1, clip=(0, 1)))


def test_pipeline_of_affine_scalers(digits):
    X_train, X_test, y_train, y_test = digits
    X_train, X_test = X_train * 16, X_test[:40] * 16  # raw intensities 0-16
    pipe = make_pipeline(
        MinMaxScaler(),
        StandardScaler(),
        MCDropoutClassifier(
            hidden_layer_sizes=(32,),
            max_epochs=5,
            n_samples=5,
            calibrate=False,
            random_state=0,
            verbose=0,
        ),
    ).fit(X_train, y_train)
    grad = input_gradient(pipe, X_test, y_test[:40])
    # the chain rule through the scalers, computed on the transformed inputs
    Xt = pipe[:-1].transform(X_test)
    inner = input_gradient(pipe[-1], Xt, y_test[:40])
    minmax, standard = pipe[0], pipe[1]
    np.testing.assert_allclose(grad, inner * minmax.scale_ / standard.scale_, rtol=1e-4, atol=1e-7)
    X_adv = fgsm(pipe, X_test, y_test[:40], epsilon=1.0)  # in raw units
    assert np.abs(X_adv - X_test).max() == pytest.approx(1.0)
    assert pipe.score(X_adv, y_test[:40]) < pipe.score(X_test, y_test[:40])


def test_non_affine_step_is_refused(digits):
    X_train, X_test, y_train, y_test = digits
    pipe = make_pipeline(
        PCA(n_components=10),
        MCDropoutClassifier(hidden_layer_sizes=(8,), max_epochs=2, random_state=0, verbose=0),
    ).fit(X_train, y_train)
    with pytest.raises(ValueError, match="'pca' \\(PCA\\).*affine scalers"):
        fgsm(pipe, X_test, y_test, epsilon=0.1)


def test_other_estimators_and_regressors():
    rng = np.random.RandomState(0)
    X = rng.randn(120, 2).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    common = dict(hidden_layer_sizes=(16,), max_epochs=20, lr=1e-2, calibrate=False, verbose=0)
    for model in (
        BayesianMLPClassifier(n_samples=10, random_state=0, **common),
        DeepEnsembleClassifier(n_estimators=3, random_state=0, **common),
    ):
        model.fit(X, y)
        X_adv = fgsm(model, X, y, epsilon=0.5)
        assert model.score(X_adv, y) < model.score(X, y)
    # a regressor: the attack lowers the predictive mixture's log-likelihood
    target = np.sin(2 * X[:, 0])
    reg = MCDropoutRegressor(n_samples=10, random_state=0, **common).fit(X, target)
    X_adv = fgsm(reg, X, target, epsilon=0.3)
    assert np.abs(X_adv - X).max() == pytest.approx(0.3)

    def mean_nll(Z):
        u = reg.predict_uncertainty(Z)
        return np.mean(
            0.5 * np.log(2 * np.pi * u.total_var) + (target - u.mean) ** 2 / (2 * u.total_var)
        )

    random = np.sign(rng.randn(*X.shape)) * 0.3  # a random perturbation of the same size
    assert mean_nll(X_adv) > mean_nll(X) + 0.2
    assert mean_nll(X_adv) > mean_nll(X + random) + 0.1


def test_regression_objective_is_the_recalibrated_mixture_log_density():
    # A regressor's attack objective is the log-density of its recalibrated
    # predictive mixture: per target, what the calibration fit maximises
    # (uncertainty.mixture_log_likelihood); jointly over targets, the mixture of
    # each draw's independent Gaussians, by hand.
    rng = np.random.RandomState(0)
    n_draws, n_rows, n_targets = 7, 20, 2
    mean = 2.0 * rng.randn(n_draws, n_rows, n_targets)
    var = rng.gamma(2.0, 0.5, size=(n_draws, n_rows, n_targets))
    y = rng.randn(n_rows, n_targets)
    scale = np.array([0.5, 2.0])
    t = torch.from_numpy
    joint = _log_likelihood(SimpleNamespace(calibration_scale_=scale), (t(mean), t(var)), t(y))
    for j in range(n_targets):
        one = _log_likelihood(
            SimpleNamespace(calibration_scale_=scale[j : j + 1]),
            (t(mean[..., j : j + 1]), t(var[..., j : j + 1])),
            t(y[:, j : j + 1]),
        )
        assert one.numpy().mean() == pytest.approx(
            mixture_log_likelihood(y[:, j], mean[..., j], var[..., j], scale[j]), rel=1e-12
        )
    centre = mean.mean(axis=0)
    mean_scaled, var_scaled = centre + scale * (mean - centre), var * scale**2
    density = np.exp(-((y - mean_scaled) ** 2) / (2 * var_scaled)) / np.sqrt(2 * np.pi * var_scaled)
    np.testing.assert_allclose(
        joint.numpy(), np.log(density.prod(axis=-1).mean(axis=0)), rtol=1e-10
    )


def test_errors(linear_model):
    clf, X, y = linear_model
    with pytest.raises(ValueError, match="labels \\['z'\\]"):
        fgsm(clf, X[:2], np.array(["a", "z"]), epsilon=0.1)
    with pytest.raises(ValueError, match="epsilon"):
        fgsm(clf, X, y, epsilon=-1)
    with pytest.raises(ValueError, match="n_steps"):
        pgd(clf, X, y, epsilon=0.1, n_steps=0)
    with pytest.raises(TypeError, match="skbdl estimators"):
        fgsm(StandardScaler().fit(X), X, y, epsilon=0.1)
    with pytest.raises(ValueError, match="rows"):
        fgsm(clf, X, y[:-1], epsilon=0.1)


def test_deterministic_pass_only_where_the_method_has_one():
    rng = np.random.RandomState(0)
    X = rng.randn(60, 2)
    y = (X[:, 0] > 0).astype(int)
    clf = SWAGClassifier(max_epochs=10, n_samples=5, random_state=0, verbose=0).fit(X, y)
    assert input_gradient(clf, X, y).shape == X.shape  # its draws are differentiable
    # SWAG's deterministic pass is the network at the SWA mean (its _deterministic_view).
    assert fgsm(clf, X, y, epsilon=0.1, deterministic=True).shape == X.shape
    # A method whose hook refuses (the core's default, for a module that is not a
    # network) is refused by the attack too.
    clf._deterministic_view = lambda module: BasePredictor._deterministic_view(clf, module)
    with pytest.raises(ValueError, match="SWAGClassifier has no deterministic pass"):
        fgsm(clf, X, y, epsilon=0.1, deterministic=True)


def test_the_fitted_module_is_untouched(mc_dropout, digits):
    _, X_test, _, y_test = digits
    before = mc_dropout.predict_proba(X_test[:20])
    training = [m.training for m in mc_dropout.module_.modules()]
    inplace = [getattr(m, "inplace", None) for m in mc_dropout.module_.modules()]
    grads = [None if p.grad is None else p.grad.clone() for p in mc_dropout.module_.parameters()]
    pgd(mc_dropout, X_test[:20], y_test[:20], epsilon=0.05, n_steps=2)
    assert training == [m.training for m in mc_dropout.module_.modules()]
    assert inplace == [getattr(m, "inplace", None) for m in mc_dropout.module_.modules()]
    for grad, p in zip(grads, mc_dropout.module_.parameters()):  # no gradient accumulated
        assert (grad is None and p.grad is None) or torch.equal(grad, p.grad)
    np.testing.assert_array_equal(before, mc_dropout.predict_proba(X_test[:20]))
    assert isinstance(mc_dropout.module_, torch.nn.Module)


class DropoutCNN(nn.Module):
    def __init__(self, n_outputs):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, kernel_size=3, padding=1)
        self.dropout = nn.Dropout(0.2)
        self.output = nn.Linear(8 * 4 * 4, n_outputs)

    def forward(self, x):
        hidden = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2).flatten(1)
        return self.output(self.dropout(hidden))


def test_images_are_attacked_in_their_own_shape(digits):
    X_train, X_test, y_train, y_test = digits
    images_train, images_test = X_train.reshape(-1, 1, 8, 8), X_test[:100].reshape(-1, 1, 8, 8)
    clf = MCDropoutClassifier(
        DropoutCNN,
        max_epochs=10,
        lr=1e-2,
        n_samples=10,
        calibrate=False,
        random_state=0,
        verbose=0,
    ).fit(images_train, y_train)
    X_adv = fgsm(clf, images_test, y_test[:100], epsilon=0.1, clip=(0, 1))
    assert X_adv.shape == images_test.shape
    assert clf.score(X_adv, y_test[:100]) < clf.score(images_test, y_test[:100]) - 0.1
    # the gradient of the sum over draws: per-row, whatever rows are batched together
    grad = input_gradient(clf, images_test, y_test[:100])
    np.testing.assert_allclose(
        grad[:7], input_gradient(clf, images_test[:7], y_test[:7]), rtol=1e-5, atol=1e-8
    )


def test_post_hoc_estimators_without_autograd_are_refused():
    rng = np.random.RandomState(0)
    X = rng.randn(60, 2)
    y = (X[:, 0] > 0).astype(int)
    clf = LastLayerLaplaceClassifier().fit(X, y)
    with pytest.raises(TypeError, match="without automatic differentiation"):
        fgsm(clf, X, y, epsilon=0.1)
