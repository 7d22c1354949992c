"""Bayes by Backprop: the maths of BayesianLinear and the behaviour of the estimators."""

import math
import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_diabetes, make_blobs
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback, LRScheduler
from test_fast_path import ACTIVATIONS, row_weights
from torch import nn

from skbdl import BayesianMLPClassifier, BayesianMLPRegressor
from skbdl._net import weighted_loss
from skbdl.nn import (
    BayesianLinear,
    BayesianMLP,
    GaussianNLLLoss,
    GaussianPrior,
    GaussianRegressionModule,
    ScaleMixturePrior,
    kl_divergence,
    sampled_network,
)
from skbdl.nn._fast import make_fast_step

FAST = dict(hidden_layer_sizes=(16,), max_epochs=20, lr=0.01, n_samples=20)
MIXTURE = ScaleMixturePrior(weight=0.3, scale1=0.8, scale2=math.exp(-3))


def _sine(n, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-1, 1, size=(n, 1))
    return X, np.sin(3 * X[:, 0]) + 0.1 * rng.randn(n)


@pytest.fixture(scope="module")
def reg_data():
    return _sine(120)


@pytest.fixture(scope="module")
def clf_data():
    return make_blobs(n_samples=90, centers=3, n_features=4, cluster_std=1.5, random_state=0)


@pytest.fixture(scope="module")
def fitted_reg(reg_data):
    return BayesianMLPRegressor(**FAST, random_state=0).fit(*reg_data)


@pytest.fixture(scope="module")
def fitted_clf(clf_data):
    return BayesianMLPClassifier(**FAST, random_state=0).fit(*clf_data)


# ---------------------------------------------------------------- KL divergence
@pytest.mark.parametrize("mu, sigma, scale", [(0.3, 0.2, 1.0), (-1.5, 0.7, 0.5), (0.0, 2.0, 1.0)])
def test_gaussian_kl_matches_monte_carlo(mu, sigma, scale):
    prior = GaussianPrior(scale)
    closed = float(prior.kl_divergence(torch.tensor([mu]), torch.tensor([sigma])))
    gen = torch.Generator().manual_seed(0)
    w = mu + sigma * torch.randn(400_000, generator=gen, dtype=torch.float64)
    log_q = -0.5 * ((w - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)
    terms = log_q - prior.log_prob(w)
    # the Monte Carlo mean is within 4 standard errors of the exact value
    assert abs(float(terms.mean()) - closed) < 4 * float(terms.std()) / math.sqrt(len(w))


@pytest.mark.parametrize("prior_var", [1.0, 0.3])
def test_gaussian_kl_equals_torch_distributions(prior_var):
    """The one closed form (Bayes by Backprop's prior, its fast step, the VAE)
    against torch.distributions, summed over all entries or over one axis."""
    from torch.distributions import Normal, kl_divergence

    from skbdl.nn._bayesian import gaussian_kl

    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    var = torch.rand(4, 5, generator=gen, dtype=torch.float64) + 0.1
    reference = kl_divergence(Normal(mu, var.sqrt()), Normal(0.0, math.sqrt(prior_var)))
    torch.testing.assert_close(gaussian_kl(mu, var, var.log(), prior_var), reference.sum())
    per_row = gaussian_kl(mu, var, var.log(), prior_var, dim=-1)
    torch.testing.assert_close(per_row, reference.sum(-1))


def test_scale_mixture_log_prob_is_the_mixture_density():
    """log p(w) of the scale mixture against scipy's normal densities mixed by hand,
    where the narrow component dominates (w ~ 0), where the wide one does, and in
    between."""
    from scipy.stats import norm

    prior = ScaleMixturePrior(weight=0.3, scale1=1.5, scale2=math.exp(-4))
    w = np.array([0.0, 1e-3, 0.02, 0.05, 0.5, 3.0, -7.0])
    density = 0.3 * norm.pdf(w, scale=1.5) + 0.7 * norm.pdf(w, scale=math.exp(-4))
    assert_allclose(prior.log_prob(torch.tensor(w)).numpy(), np.log(density), rtol=1e-12)


@pytest.mark.parametrize("mu, sigma", [(0.3, 0.2), (-0.05, 0.02), (1.0, 0.5)])
def test_scale_mixture_kl_estimate_is_unbiased(mu, sigma):
    # exact KL by quadrature on a fine grid over +-10 posterior standard deviations
    w = np.linspace(mu - 10 * sigma, mu + 10 * sigma, 200_001)
    q = np.exp(-0.5 * ((w - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    log_p = MIXTURE.log_prob(torch.tensor(w)).numpy()
    exact = np.trapezoid(q * (np.log(q) - log_p), w)
    torch.manual_seed(0)
    mu_t = torch.full((200_000,), mu, dtype=torch.float64)
    sigma_t = torch.full((200_000,), sigma, dtype=torch.float64)
    # one call sums 200000 independent one-sample estimates of the same KL
    estimate = float(MIXTURE.kl_divergence(mu_t, sigma_t)) / len(mu_t)
    assert abs(estimate - exact) < 0.01 * max(1.0, abs(exact))


def test_kl_divergence_sums_bayesian_layers():
    net = BayesianMLP(3, 2, hidden_layer_sizes=(4,), prior=GaussianPrior(0.5))
    layers = [net.features[0], net.output]
    expected = sum(float(layer.kl_divergence().detach()) for layer in layers)
    assert float(kl_divergence(net).detach()) == pytest.approx(expected, rel=1e-6)
    assert float(kl_divergence(nn.Linear(2, 2))) == 0.0


# ----------------------------------------------------------- the layer's modes
def test_local_reparameterisation_has_the_weight_sampling_distribution():
    torch.manual_seed(0)
    layer = BayesianLinear(3, 2, posterior_scale_init=0.4)
    x = torch.tensor([[1.0, -2.0, 0.5]])
    expected_mean = (x @ layer.weight_mu.T + layer.bias_mu).detach()
    expected_var = (x**2 @ layer.weight_sigma.T**2 + layer.bias_sigma**2).detach()
    with torch.no_grad():
        local = layer.train()(x.repeat(100_000, 1))
        layer.eval()
        shared = sampled_network(layer, n_samples=100_000, seed=0)(x.repeat(100_000, 1))
    for out in (local, shared):
        torch.testing.assert_close(out.mean(0, keepdim=True), expected_mean, atol=0.02, rtol=0)
        torch.testing.assert_close(out.var(0, keepdim=True), expected_var, atol=0, rtol=0.03)
    # eval mode, and the layer itself is unchanged by the view: the posterior means
    torch.testing.assert_close(layer(x).detach(), expected_mean)


def test_sampled_network_draws_do_not_depend_on_the_rows():
    torch.manual_seed(0)
    net = BayesianMLP(2, 1, hidden_layer_sizes=(8,)).eval()
    X = torch.randn(6, 2)

    def sample(rows, seed=3):
        with torch.no_grad():
            return sampled_network(net, n_samples=4, seed=seed)(rows.repeat(4, 1)).reshape(4, -1)

    torch.testing.assert_close(sample(X)[:, 2:4], sample(X[2:4]))
    assert sample(X).std(0).min() > 0  # the draws differ
    assert not torch.equal(sample(X), sample(X, seed=4))
    # One view serves any number of chunks with the same draws.
    view = sampled_network(net, n_samples=4, seed=3)
    with torch.no_grad():
        chunks = [view(X[i : i + 2].repeat(4, 1)).reshape(4, 2) for i in (0, 2, 4)]
    torch.testing.assert_close(torch.cat(chunks, dim=1), sample(X))
    # The network itself is untouched: still the posterior means, in eval mode.
    assert not any(m.training for m in net.modules())
    means = net.output(net.features(X))
    torch.testing.assert_close(net(X), means)


# ----------------------------------------------------- hand-written gradients
@pytest.mark.parametrize("prior", [GaussianPrior(0.7), MIXTURE], ids=["gaussian", "mixture"])
@pytest.mark.parametrize("task", ["classification", "homoscedastic", "heteroscedastic"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_fast_elbo_step_matches_autograd(prior, task, activation, weighted):
    torch.manual_seed(0)
    width = {"classification": 3, "homoscedastic": 2, "heteroscedastic": 4}[task]
    body = BayesianMLP(
        4, width, (6, 5), activation=activation, prior=prior, posterior_scale_init=0.3
    )
    if task == "classification":
        module, criterion, y = body, nn.CrossEntropyLoss(), torch.randint(0, 3, (11,))
    else:
        module = GaussianRegressionModule(body, 2, task)
        criterion, y = GaussianNLLLoss(), torch.randn(11, 2)
    X, scale = torch.randn(11, 4), 0.37
    weight = row_weights(11) if weighted else None
    module.train()
    torch.manual_seed(1)
    if weighted:  # the loss of a sample-weighted batch on the autograd path
        reference = weighted_loss(criterion, module(X), y, weight)
    else:
        reference = criterion(module(X), y)
    reference = reference + scale * kl_divergence(module)
    reference.backward()
    expected = {name: p.grad.clone() for name, p in module.named_parameters()}
    step = make_fast_step(module, criterion, lambda: scale)
    assert step is not None
    torch.manual_seed(1)
    with torch.no_grad():
        loss, _ = step(X, y, weight)
    torch.testing.assert_close(loss, reference.detach(), rtol=1e-5, atol=1e-5)
    for name, p in module.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-4, atol=1e-5)
    step.release()
    for p in module.parameters():  # each parameter owns its storage again
        assert p.untyped_storage().nbytes() == p.numel() * p.element_size()


def test_fit_uses_the_fast_step_and_releases_the_parameters(reg_data):
    class Record(Callback):
        def on_epoch_end(self, net, **kwargs):
            self.fast = net._fast_step is not None

    record = Record()
    est = BayesianMLPRegressor(**FAST, callbacks=[record], random_state=0).fit(*reg_data)
    assert est.net_.callbacks_[-1][1].fast
    for p in est.net_.module_.parameters():
        assert p.untyped_storage().nbytes() == p.numel() * p.element_size()


# -------------------------------------------------------- the exact posterior
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
def test_no_hidden_layer_recovers_the_exact_mean_field_posterior():
    """Bayesian linear regression: the ELBO's optimum is known in closed form.

    For a linear-Gaussian model with prior N(0, s^2 I) and noise variance v, the
    exact posterior is N(m, inv(L)) with L = Phi^T Phi / v + I / s^2 and
    m = inv(L) Phi^T y / v.  The best fully factorised Gaussian has the same means m
    and variances 1 / diag(L).  (The noise variance is learned by the ELBO; the
    optimum given the learned value is compared.)

    Tolerance: means within 0.1 posterior standard deviations and standard
    deviations within 5 %.  The remaining error comes from stochastic optimisation
    in float32 (local reparameterisation noise, Adam); with a cosine learning rate
    decay over 300 full-batch steps and 16 draws per step it is about 0.02 standard
    deviations and 1 %, so the tolerance has a 5x margin, while a KL weight off by
    10 % (e.g. divided by the rows minus one, or per batch) moves the standard
    deviations by about 5 % and a missing 1 / n_train by a factor of sqrt(n).
    """
    rng = np.random.RandomState(0)
    n, d = 60, 3
    X = rng.randn(n, d)
    y = X @ np.array([1.0, -0.5, 0.0]) + 0.8 * rng.randn(n)
    y = (y - y.mean()) / y.std()  # the estimator's own standardisation is then the identity
    epochs = 300
    est = BayesianMLPRegressor(
        hidden_layer_sizes=(),
        prior_scale=1.0,
        posterior_scale_init=0.1,
        n_train_samples=16,
        max_epochs=epochs,
        batch_size=n,
        lr=0.05,
        callbacks=[LRScheduler(policy="CosineAnnealingLR", T_max=epochs)],
        likelihood="homoscedastic",  # the conjugate model: one learned noise variance
        calibrate=False,  # the posterior of all n rows, untouched
        random_state=0,
    ).fit(X, y)
    assert_allclose(est.y_mean_, 0, atol=1e-12)
    assert_allclose(est.y_scale_, 1, rtol=1e-12)
    layer = est.module_.output
    with torch.no_grad():
        noise_var = float(est.net_.module_.log_noise_var.exp())
        mean = torch.cat([layer.weight_mu.ravel(), layer.bias_mu]).double().numpy()
        std = torch.cat([layer.weight_sigma.ravel(), layer.bias_sigma]).double().numpy()
    Phi = np.c_[X, np.ones(n)]
    precision = Phi.T @ Phi / noise_var + np.eye(d + 1)
    exact_mean = np.linalg.solve(precision, Phi.T @ y / noise_var)
    mean_field_std = 1 / np.sqrt(np.diag(precision))
    assert np.all(np.abs(mean - exact_mean) < 0.1 * mean_field_std)
    assert_allclose(std, mean_field_std, rtol=0.05)


# ------------------------------------------------------------ uncertainty
def test_epistemic_uncertainty_grows_away_from_the_data():
    X, y = _sine(200)
    est = BayesianMLPRegressor(
        hidden_layer_sizes=(32,), max_epochs=100, lr=0.01, random_state=0
    ).fit(X, y)
    inside = est.predict_uncertainty(np.linspace(-1, 1, 21)[:, None]).epistemic_var
    outside = est.predict_uncertainty(np.r_[np.linspace(-4, -3, 5), np.linspace(3, 4, 5)][:, None])
    # measured ratio of the means is 130-200 over seeds 0-2
    assert outside.epistemic_var.mean() > 20 * inside.mean()
    assert outside.epistemic_var.min() > inside.max()


def test_epistemic_uncertainty_shrinks_as_the_training_set_grows():
    grid = np.linspace(-1, 1, 21)[:, None]
    epistemic = []
    for n in (40, 160, 640):  # same number of steps (600) for every size
        est = BayesianMLPRegressor(
            hidden_layer_sizes=(16,),
            max_epochs=150,
            batch_size=n // 4,
            lr=0.01,
            posterior_scale_init=0.1,
            random_state=0,
        ).fit(*_sine(n))
        epistemic.append(est.predict_uncertainty(grid).epistemic_var.mean())
    # measured over seeds 0-2: each step shrinks it at least 2.9 times
    assert epistemic[0] > 1.5 * epistemic[1] > 1.5**2 * epistemic[2]


def test_regressor_on_small_standardised_data_has_a_sensible_log_likelihood():
    # The UCI protocol's setting: one hidden layer of 50 units, a few hundred rows.
    X, y = load_diabetes(return_X_y=True)
    X_train, y_train, X_test, y_test = X[:350], y[:350], X[350:], y[350:]
    model = make_pipeline(
        StandardScaler(), BayesianMLPRegressor(hidden_layer_sizes=(50,), random_state=0)
    ).fit(X_train, y_train)
    mean, var = model[-1].sample_predictions(model[0].transform(X_test), n_samples=200)
    log_density = -0.5 * np.log(2 * np.pi * var) - 0.5 * (y_test - mean) ** 2 / var
    ll = np.mean(np.logaddexp.reduce(log_density, axis=0) - np.log(len(mean)))
    # a Gaussian with the training mean and variance scores about -5.5 here
    baseline = np.mean(
        -0.5 * np.log(2 * np.pi * y_train.var())
        - 0.5 * (y_test - y_train.mean()) ** 2 / y_train.var()
    )
    assert ll > baseline + 0.3
    assert np.sqrt(np.mean((mean.mean(0) - y_test) ** 2)) < 0.8 * y_test.std()


# --------------------------------------------------------------- estimators
def test_predictions_are_reproducible_and_batch_independent(fitted_reg, reg_data):
    X = reg_data[0]
    mean, std = fitted_reg.predict(X, return_std=True)
    # equal up to float32 rounding (matrix products of other shapes): relative to the
    # targets' scale (about 1), so absolute near zero
    assert_allclose(fitted_reg.predict(X[10:15]), mean[10:15], rtol=1e-6, atol=1e-7)
    assert_array_equal(fitted_reg.predict(X), mean)
    small = pickle.loads(pickle.dumps(fitted_reg)).set_params(predict_batch_size=7)
    assert_allclose(small.predict(X, return_std=True), (mean, std), rtol=1e-6, atol=1e-7)


def test_classifier_uncertainty(fitted_clf, clf_data):
    X, y = clf_data
    assert fitted_clf.score(X, y) > 0.8
    u = fitted_clf.predict_uncertainty(X)
    assert_allclose(u.proba.sum(1), 1)
    assert (u.epistemic >= -1e-12).all() and (u.epistemic > 0).any()
    assert fitted_clf.sample_predictions(X[:4], n_samples=3).shape == (3, 4, 3)


@pytest.mark.parametrize(
    "params",
    [
        dict(prior="scale_mixture"),
        dict(prior=MIXTURE, n_train_samples=3),
        dict(likelihood="heteroscedastic"),
        dict(hidden_layer_sizes=(), kl_annealing_epochs=5),
        dict(activation="tanh", early_stopping=True, n_iter_no_change=3),
        dict(kl_weight=0.0),
    ],
)
def test_regressor_variants(params, reg_data):
    est = BayesianMLPRegressor(**{**FAST, **params}, random_state=0).fit(*reg_data)
    mean, std = est.predict(reg_data[0], return_std=True)
    assert np.isfinite(mean).all() and (std > 0).all()
    assert np.isfinite(est.loss_curve_).all()


def test_kl_term_is_divided_by_the_training_rows(reg_data):
    X, y = reg_data
    est = BayesianMLPRegressor(
        **FAST, early_stopping=True, validation_fraction=0.25, random_state=0
    ).fit(X, np.c_[y, -y])
    assert est.net_.n_train_ == 90  # the 30 validation rows do not count
    assert est.net_.targets_per_row == 2
    net, module = est.net_, est.net_.module_
    module.eval()
    X_t = torch.tensor(X, dtype=torch.float32)
    y_t = torch.tensor((np.c_[y, -y] - est.y_mean_) / est.y_scale_, dtype=torch.float32)
    with torch.no_grad():
        nll = net.criterion_(module(X_t), y_t)
        expected = nll + kl_divergence(module) / (90 * 2)
        torch.testing.assert_close(net.get_loss(module(X_t), y_t), expected)


def test_kl_annealing_ramps_the_weight(reg_data):
    class Record(Callback):
        def __init__(self):
            self.weights = []

        def on_epoch_end(self, net, **kwargs):
            self.weights.append(net.kl_annealing_)

    est = BayesianMLPRegressor(
        **{**FAST, "max_epochs": 6}, kl_annealing_epochs=4, callbacks=[Record()], random_state=0
    ).fit(*reg_data)
    record = dict(est.net_.callbacks_)["Record"]
    assert record.weights == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert est.net_.kl_annealing_ == 1.0


class TwoLayerBayesianNet(nn.Module):
    """A user network: a deterministic layer, then Bayesian ones."""

    def __init__(self, n_features_in, n_outputs, hidden=8):
        super().__init__()
        self.embed = nn.Linear(n_features_in, hidden)
        self.hidden = BayesianLinear(hidden, hidden, prior=GaussianPrior(0.5))
        self.out = BayesianLinear(hidden, n_outputs, bias=False)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(torch.relu(self.embed(x)))))


def test_user_module_with_bayesian_layers(clf_data, reg_data):
    clf = BayesianMLPClassifier(
        module=TwoLayerBayesianNet,
        module__hidden=12,
        max_epochs=20,
        lr=0.01,
        n_samples=10,
        random_state=0,
    ).fit(*clf_data)
    assert clf.module_.hidden.out_features == 12
    assert clf.score(*clf_data) > 0.7
    assert clf.predict_uncertainty(clf_data[0]).epistemic.max() > 0
    reg = BayesianMLPRegressor(
        module=TwoLayerBayesianNet(1, 1),
        likelihood="homoscedastic",  # the module outputs one value per target
        max_epochs=5,
        n_samples=10,
        random_state=0,
    ).fit(*reg_data)
    assert reg.predict_uncertainty(reg_data[0][:5]).epistemic_var.min() > 0


def test_user_module_without_bayesian_layers_is_rejected(reg_data):
    est = BayesianMLPRegressor(module=nn.Sequential(nn.Linear(1, 1)), max_epochs=2)
    with pytest.raises(ValueError, match="no skbdl.nn.BayesianLinear layer"):
        est.fit(*reg_data)
    assert not hasattr(est, "net_")


def test_bad_priors_are_rejected(reg_data):
    with pytest.raises(ValueError, match="prior"):
        BayesianMLPRegressor(prior="laplace").fit(*reg_data)
    with pytest.raises(ValueError, match="weight"):
        ScaleMixturePrior(weight=1.5)
    with pytest.raises(ValueError, match="scale"):
        GaussianPrior(scale=0)


def test_grid_search_and_calibration(clf_data):
    X, y = clf_data
    base = BayesianMLPClassifier(**{**FAST, "max_epochs": 5}, random_state=0)
    grid = GridSearchCV(
        base, {"prior": [GaussianPrior(1.0), MIXTURE], "prior_scale": [0.5]}, cv=2
    ).fit(X, y)
    assert grid.best_estimator_.prior in (GaussianPrior(1.0), MIXTURE)
    calibrated = CalibratedClassifierCV(base, cv=2).fit(X, y)
    assert_allclose(calibrated.predict_proba(X).sum(1), 1)


# ------------------------------------------------------------------------ CUDA
@pytest.mark.gpu
@pytest.mark.parametrize("prior", [GaussianPrior(0.7), MIXTURE], ids=["gaussian", "mixture"])
def test_fast_elbo_step_matches_autograd_on_cuda(prior):
    torch.manual_seed(0)
    body = BayesianMLP(4, 2, (6, 5), prior=prior, posterior_scale_init=0.3)
    module = GaussianRegressionModule(body, 1, "heteroscedastic").cuda().train()
    X, y = torch.randn(11, 4, device="cuda"), torch.randn(11, 1, device="cuda")
    torch.manual_seed(1)
    reference = GaussianNLLLoss()(module(X), y) + 0.37 * kl_divergence(module)
    reference.backward()
    expected = {name: p.grad.clone() for name, p in module.named_parameters()}
    step = make_fast_step(module, GaussianNLLLoss(), lambda: 0.37)
    torch.manual_seed(1)
    with torch.no_grad():
        loss, _ = step(X, y)
    torch.testing.assert_close(loss, reference.detach(), rtol=1e-4, atol=1e-5)
    for name, p in module.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-3, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("cls", [BayesianMLPClassifier, BayesianMLPRegressor])
def test_fit_predict_on_cuda(cls, clf_data, reg_data):
    X, y = clf_data if cls is BayesianMLPClassifier else reg_data
    first = cls(**FAST, device="cuda", random_state=0).fit(X, y)
    second = cls(**FAST, device="cuda", random_state=0).fit(X, y)
    assert next(first.net_.module_.parameters()).device.type == "cuda"
    u = vars(first.predict_uncertainty(X))
    assert all(np.isfinite(v).all() for v in u.values())
    assert_allclose(first.loss_curve_, second.loss_curve_, rtol=1e-4)
    for a, b in zip(u.values(), vars(second.predict_uncertainty(X)).values()):
        assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    first.set_params(predict_batch_size=7)  # batching does not change the draws
    for a, b in zip(u.values(), vars(first.predict_uncertainty(X)).values()):
        assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    loaded = pickle.loads(pickle.dumps(first))
    assert_allclose(loaded.predict(X[:5]), first.predict(X[:5]))
