"""The deterministic pass (``deterministic=True``): every sampling estimator
evaluated once without sampling, against the network computed by hand."""

import copy
import threading
import warnings

import numpy as np
import pytest
import torch

from skbdl import (
    BayesianMLPClassifier,
    BayesianMLPRegressor,
    DeepEnsembleClassifier,
    DeepEnsembleRegressor,
    MCDropoutClassifier,
    MCDropoutRegressor,
    PBPRegressor,
)

FAST = dict(max_epochs=15, batch_size=32, random_state=0, verbose=0, calibrate=False)


@pytest.fixture(scope="module")
def regression_data():
    rng = np.random.RandomState(0)
    X = rng.uniform(-2, 2, size=(120, 3)).astype(np.float32)
    y = 3.0 * np.sin(X[:, 0]) + X[:, 1] + 5.0 + 0.3 * rng.randn(120)
    return X, y


@pytest.fixture(scope="module")
def classification_data():
    rng = np.random.RandomState(1)
    X = rng.randn(150, 4).astype(np.float32)
    y = np.where(X[:, 0] + X[:, 1] > 0, "a", np.where(X[:, 2] > 0.5, "b", "c"))
    return X, y


@pytest.fixture(scope="module")
def mc_regressor(regression_data):
    return MCDropoutRegressor(hidden_layer_sizes=(16,), dropout=0.3, **FAST).fit(*regression_data)


@pytest.fixture(scope="module")
def mc_classifier(classification_data):
    est = MCDropoutClassifier(hidden_layer_sizes=(16,), dropout=0.3, **FAST)
    return est.fit(*classification_data)


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}, [
        m.training for m in module.modules()
    ]


def test_mc_dropout_regressor_is_the_network_in_eval_mode(mc_regressor, regression_data):
    X, _ = regression_data
    est = mc_regressor
    before = _state(est.net_.module_)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no single-draw warning for this deliberate pass
        means, variances = est.sample_predictions(X, deterministic=True)
        u = est.predict_uncertainty(X, deterministic=True)
    # By hand: a copy of the fitted module in eval mode (dropout off).
    network = copy.deepcopy(est.net_.module_).eval()
    with torch.no_grad():
        mean, var = network(torch.from_numpy(X))
    expected_mean = mean.double().numpy()[:, 0] * est.y_scale_[0] + est.y_mean_[0]
    expected_var = var.double().numpy()[:, 0] * est.y_scale_[0] ** 2
    assert means.shape == variances.shape == (1, len(X))
    np.testing.assert_array_equal(means[0], expected_mean)
    np.testing.assert_array_equal(variances[0], expected_var)
    np.testing.assert_array_equal(u.mean, expected_mean)
    np.testing.assert_array_equal(u.aleatoric_var, expected_var)
    np.testing.assert_array_equal(u.epistemic_var, np.zeros(len(X)))
    np.testing.assert_array_equal(est.predict(X, deterministic=True), expected_mean)
    # The fitted module is not changed (parameters, buffers, train/eval flags).
    after = _state(est.net_.module_)
    assert before[1] == after[1]
    for name, value in before[0].items():
        assert torch.equal(value, after[0][name])
    # And dropout on still samples: the sampling path differs from the deterministic one.
    assert est.predict_uncertainty(X).epistemic_var.min() > 0


def test_mc_dropout_regressor_intervals(mc_regressor, regression_data):
    X, _ = regression_data
    u = mc_regressor.predict_uncertainty(X[:5], deterministic=True)
    gaussian = mc_regressor.predict_interval(X[:5], confidence=0.8, deterministic=True)
    z = 1.2815515655446004  # Phi^-1(0.9)
    np.testing.assert_allclose(gaussian[:, 0], u.mean - z * np.sqrt(u.aleatoric_var))
    np.testing.assert_allclose(gaussian[:, 1], u.mean + z * np.sqrt(u.aleatoric_var))
    # One Gaussian: the mixture's quantiles are the Gaussian ones.
    mixture = mc_regressor.predict_interval(
        X[:5], confidence=0.8, method="mixture", deterministic=True
    )
    np.testing.assert_allclose(mixture, gaussian, rtol=1e-6, atol=1e-6)


def test_mc_dropout_classifier_is_the_network_in_eval_mode(mc_classifier, classification_data):
    X, _ = classification_data
    est = mc_classifier
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        samples = est.sample_predictions(X, deterministic=True)
        u = est.predict_uncertainty(X, deterministic=True)
    network = copy.deepcopy(est.net_.module_).eval()
    with torch.no_grad():
        proba = torch.softmax(network(torch.from_numpy(X)).double(), dim=-1).numpy()
    assert samples.shape == (1, len(X), 3)
    np.testing.assert_array_equal(samples[0], proba)
    np.testing.assert_allclose(est.predict_proba(X, deterministic=True), proba, rtol=1e-12)
    np.testing.assert_array_equal(
        est.predict(X, deterministic=True), est.classes_[proba.argmax(axis=1)]
    )
    np.testing.assert_array_equal(u.epistemic, np.zeros(len(X)))
    np.testing.assert_array_equal(u.aleatoric, u.total)
    assert est.predict_uncertainty(X).epistemic.max() > 0


def test_bbb_regressor_is_the_network_at_posterior_means(regression_data):
    X, y = regression_data
    est = BayesianMLPRegressor(hidden_layer_sizes=(8,), **FAST).fit(X, y)
    means, variances = est.sample_predictions(X, deterministic=True)
    # By hand, from the posterior means of the weights.
    body = est.module_
    hidden, output = body.features[0], body.output
    h = torch.relu(torch.from_numpy(X).double() @ hidden.weight_mu.double().T + hidden.bias_mu)
    out = (h @ output.weight_mu.double().T + output.bias_mu).detach().numpy()
    expected_mean = out[:, 0] * est.y_scale_[0] + est.y_mean_[0]
    np.testing.assert_allclose(means[0], expected_mean, rtol=1e-5, atol=1e-5)
    u = est.predict_uncertainty(X, deterministic=True)
    np.testing.assert_array_equal(u.epistemic_var, 0.0)
    np.testing.assert_array_equal(u.aleatoric_var, variances[0])
    # Sampled weights differ from the means.
    assert est.predict_uncertainty(X).epistemic_var.min() > 0


def test_bbb_classifier(classification_data):
    X, y = classification_data
    est = BayesianMLPClassifier(hidden_layer_sizes=(8,), **FAST).fit(X, y)
    u = est.predict_uncertainty(X, deterministic=True)
    body = est.module_
    hidden, output = body.features[0], body.output
    h = torch.relu(torch.from_numpy(X).double() @ hidden.weight_mu.double().T + hidden.bias_mu)
    logits = h @ output.weight_mu.double().T + output.bias_mu
    proba = torch.softmax(logits, dim=-1).detach().numpy()
    np.testing.assert_allclose(u.proba, proba, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(u.epistemic, 0.0)


def test_ensemble_regressor_is_the_member_average(regression_data):
    X, y = regression_data
    est = DeepEnsembleRegressor(n_estimators=3, hidden_layer_sizes=(8,), **FAST).fit(X, y)
    means, variances = est.sample_predictions(X)  # one draw per member
    det_means, det_variances = est.sample_predictions(X, deterministic=True)
    assert det_means.shape == (1, len(X))
    np.testing.assert_allclose(det_means[0], means.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(det_variances[0], variances.mean(axis=0), rtol=1e-6)
    sampled = est.predict_uncertainty(X)
    u = est.predict_uncertainty(X, deterministic=True)
    np.testing.assert_allclose(u.mean, sampled.mean, rtol=1e-6)
    np.testing.assert_allclose(u.aleatoric_var, sampled.aleatoric_var, rtol=1e-6)
    np.testing.assert_array_equal(u.epistemic_var, 0.0)
    assert sampled.epistemic_var.min() > 0


def test_ensemble_classifier_is_the_member_average(classification_data):
    X, y = classification_data
    est = DeepEnsembleClassifier(n_estimators=3, hidden_layer_sizes=(8,), **FAST).fit(X, y)
    est.temperature_ = 1.7  # the average holds at any temperature
    sampled = est.predict_uncertainty(X)
    u = est.predict_uncertainty(X, deterministic=True)
    np.testing.assert_allclose(u.proba, sampled.proba, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(est.predict(X, deterministic=True), est.predict(X))
    np.testing.assert_array_equal(u.epistemic, 0.0)
    np.testing.assert_allclose(u.aleatoric, sampled.total, rtol=1e-10)
    assert sampled.epistemic.max() > 0


def test_pbp_is_the_network_at_posterior_means(regression_data):
    X, y = regression_data
    est = PBPRegressor(hidden_layer_sizes=(10,), max_epochs=3, random_state=0, verbose=0)
    est.fit(X, y)
    posterior = est.module_
    # By hand in numpy: ReLU network with the posterior mean weights, PBP's scaling.
    h = X.astype(np.float64)
    weights = [w.numpy() for w in posterior.layer_views(posterior.weight_mean.cpu())]
    for index, (W, scale) in enumerate(zip(weights, posterior.scales)):
        h = scale * (h @ W[:, :-1].T + W[:, -1])
        if index < len(weights) - 1:
            h = np.maximum(h, 0.0)
    u = est.predict_uncertainty(X, deterministic=True)
    np.testing.assert_allclose(u.mean, h[:, 0] * est.y_scale_[0] + est.y_mean_[0], rtol=1e-10)
    noise = posterior.noise_variance().cpu().numpy()[0] * est.y_scale_[0] ** 2
    np.testing.assert_allclose(u.aleatoric_var, noise, rtol=1e-12)
    np.testing.assert_array_equal(u.epistemic_var, 0.0)
    # Not the moment-propagated mean, whose epistemic part is positive.
    assert est.predict_uncertainty(X).epistemic_var.min() > 0


def test_deterministic_arguments_are_validated(mc_regressor, mc_classifier, regression_data):
    X, _ = regression_data
    with pytest.raises(ValueError, match="n_samples must then be None"):
        mc_regressor.predict_uncertainty(X, n_samples=10, deterministic=True)
    with pytest.raises(ValueError, match="n_samples must then be None"):
        mc_regressor.sample_predictions(X, n_samples=1, deterministic=True)
    with pytest.raises(ValueError, match="deterministic must be True or False"):
        mc_regressor.predict(X, deterministic="yes")
    with pytest.raises(ValueError, match="deterministic must be True or False"):
        mc_classifier.predict_proba(np.zeros((2, 4)), deterministic=1)


def test_deterministic_and_sampling_calls_are_reentrant(mc_regressor, regression_data):
    """Threads mixing deterministic and sampling calls on one estimator get what
    serial calls get: no call switches the shared module's mode."""
    X, _ = regression_data
    det = mc_regressor.predict_uncertainty(X, deterministic=True)
    sampled = mc_regressor.predict_uncertainty(X, n_samples=20)
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(3):
                if i % 2:
                    u = mc_regressor.predict_uncertainty(X, deterministic=True)
                else:
                    u = mc_regressor.predict_uncertainty(X, n_samples=20)
                results.setdefault(i, []).append(u)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, us in results.items():
        reference = det if i % 2 else sampled
        for u in us:
            np.testing.assert_array_equal(u.mean, reference.mean)
            np.testing.assert_array_equal(u.epistemic_var, reference.epistemic_var)


def test_methods_without_a_deterministic_pass_say_so(mc_regressor, regression_data):
    """The default hook refuses a prediction module that is not a network (a
    last-layer posterior), rather than evaluating something else."""
    from sklearn.frozen import FrozenEstimator

    from skbdl import LastLayerBayesianRegressor

    X, y = regression_data
    est = LastLayerBayesianRegressor(FrozenEstimator(mc_regressor)).fit(X, y)
    with pytest.raises(ValueError, match="has no deterministic pass"):
        est.predict(X, deterministic=True)
    assert est.predict(X).shape == (len(X),)


def test_swag_is_the_network_at_the_swa_mean(regression_data):
    from skbdl import SWAGRegressor
    from skbdl._posterior import unflatten

    X, y = regression_data
    est = SWAGRegressor(
        hidden_layer_sizes=(8,),
        max_epochs=12,
        **{k: v for k, v in FAST.items() if k != "max_epochs"},
    ).fit(X, y)
    posterior = est._swag
    network = copy.deepcopy(posterior.network).eval()
    weights = unflatten(network, posterior.names, posterior.mean[0])
    weights = {name: w.to(torch.float32) for name, w in weights.items()}  # as trained
    with torch.no_grad():
        mean, var = torch.func.functional_call(network, weights, (torch.from_numpy(X),))
    u = est.predict_uncertainty(X, deterministic=True)
    expected = mean.double().numpy()[:, 0] * est.y_scale_[0] + est.y_mean_[0]
    np.testing.assert_allclose(u.mean, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        u.aleatoric_var, var.double().numpy()[:, 0] * est.y_scale_[0] ** 2, rtol=1e-6
    )
    np.testing.assert_array_equal(u.epistemic_var, 0.0)
    assert est.predict_uncertainty(X).epistemic_var.min() > 0


def test_laplace_is_the_trained_network(
    mc_regressor, mc_classifier, regression_data, classification_data
):
    """The Laplace approximation's mode is the network it was fitted around: its
    deterministic pass is that network's, dropout off."""
    from sklearn.frozen import FrozenEstimator

    from skbdl import LaplaceClassifier, LaplaceRegressor

    X, y = regression_data
    reg = LaplaceRegressor(FrozenEstimator(mc_regressor), hessian_structure="diag").fit(X, y)
    u = reg.predict_uncertainty(X, deterministic=True)
    network = mc_regressor.predict_uncertainty(X, deterministic=True)
    np.testing.assert_allclose(u.mean, network.mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(u.aleatoric_var, network.aleatoric_var, rtol=1e-5)
    np.testing.assert_array_equal(u.epistemic_var, 0.0)
    assert reg.predict_uncertainty(X).epistemic_var.min() > 0
    Xc, yc = classification_data
    clf = LaplaceClassifier(FrozenEstimator(mc_classifier), hessian_structure="diag").fit(Xc, yc)
    np.testing.assert_allclose(
        clf.predict_proba(Xc, deterministic=True),
        mc_classifier.predict_proba(Xc, deterministic=True),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_array_equal(clf.predict_uncertainty(Xc, deterministic=True).epistemic, 0.0)


def test_multiswag_averages_its_swa_networks(regression_data):
    from skbdl import SWAGRegressor
    from skbdl._posterior import unflatten

    X, y = regression_data
    options = {k: v for k, v in FAST.items() if k != "max_epochs"}
    est = SWAGRegressor(hidden_layer_sizes=(8,), max_epochs=12, n_models=2, **options)
    est.fit(X, y)
    posterior = est._swag
    network = copy.deepcopy(posterior.network).eval()
    means, variances = [], []
    for theta in posterior.mean:
        weights = {
            n: w.to(torch.float32) for n, w in unflatten(network, posterior.names, theta).items()
        }
        with torch.no_grad():
            mean, var = torch.func.functional_call(network, weights, (torch.from_numpy(X),))
        means.append(mean.double().numpy()[:, 0])
        variances.append(var.double().numpy()[:, 0])
    means, variances = np.mean(means, axis=0), np.mean(variances, axis=0)
    u = est.predict_uncertainty(X, deterministic=True)
    np.testing.assert_allclose(u.mean, means * est.y_scale_[0] + est.y_mean_[0], rtol=1e-6)
    np.testing.assert_allclose(u.aleatoric_var, variances * est.y_scale_[0] ** 2, rtol=1e-6)
    np.testing.assert_array_equal(u.epistemic_var, 0.0)
