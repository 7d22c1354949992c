"""Bayesian convolutions: their maths against truth, and inside a Bayes by Backprop estimator."""

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F

from skbdl import BayesianMLPClassifier, BayesianMLPRegressor
from skbdl.nn import (
    BayesianConv1d,
    BayesianConv2d,
    BayesianLinear,
    GaussianPrior,
    ScaleMixturePrior,
    kl_divergence,
    sampled_network,
)
from skbdl.nn._bayesian import bayesian_layers

LAYERS = [
    (BayesianConv1d, nn.Conv1d, F.conv1d, (3, 10)),
    (BayesianConv2d, nn.Conv2d, F.conv2d, (3, 6, 5)),
]
IDS = ["1d", "2d"]


def _moments_by_hand(layer, x):
    """Output mean and variance under the posterior, written from the definitions."""
    conv = F.conv1d if isinstance(layer, BayesianConv1d) else F.conv2d
    args = (layer.stride, layer.padding, layer.dilation, layer.groups)
    mean = conv(x, layer.weight_mu, layer.bias_mu, *args)
    var = conv(x.square(), layer.weight_sigma.square(), layer.bias_sigma.square(), *args)
    return mean, var


@pytest.mark.parametrize(("cls", "torch_cls", "conv", "shape"), LAYERS, ids=IDS)
@pytest.mark.parametrize("options", [{}, dict(stride=2, padding=1, dilation=1, groups=3)])
def test_zero_posterior_scale_is_the_torch_convolution(cls, torch_cls, conv, shape, options):
    layer = cls(3, 6, kernel_size=3, posterior_scale_init=1e-12, **options)
    reference = torch_cls(3, 6, kernel_size=3, **options)
    with torch.no_grad():
        reference.weight.copy_(layer.weight_mu)
        reference.bias.copy_(layer.bias_mu)
    x = torch.randn(4, *shape)
    expected = reference(x)
    layer.train()
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=0)
    layer.eval()
    torch.testing.assert_close(layer(x), expected, atol=0, rtol=0)
    view = sampled_network(layer, n_samples=3, seed=0)
    with torch.no_grad():
        drawn = view.sample(x)
    assert drawn.shape == (3, *expected.shape)
    torch.testing.assert_close(drawn, expected.expand_as(drawn).detach(), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("cls", "torch_cls", "conv", "shape"), LAYERS, ids=IDS)
def test_local_reparameterisation_matches_monte_carlo_over_weights(cls, torch_cls, conv, shape):
    """The training pass's samples and whole-kernel draws have the closed-form
    moments per output unit: z-tests with a Bonferroni correction over the units."""
    torch.manual_seed(1)
    layer = cls(3, 2, kernel_size=3, padding=1, posterior_scale_init=0.3)
    x = torch.randn(1, *shape)
    mean, var = _moments_by_hand(layer, x)
    mean, var = mean.detach()[0], var.detach()[0]
    n = 4000
    layer.train()
    with torch.no_grad():
        local = layer(x.expand(n, *shape))
        weights = sampled_network(layer, n_samples=n, seed=3).sample(x)[:, 0]
    threshold = stats.norm.ppf(1 - 0.001 / (4 * mean.numel()))
    for draws in (local, weights):
        z_mean = (draws.mean(0) - mean) / (var / n).sqrt()
        assert z_mean.abs().max() < threshold
        # var of the sample variance of a Gaussian: 2 var^2 / (n - 1)
        z_var = (draws.var(0) - var) / (var * math.sqrt(2 / (n - 1)))
        assert z_var.abs().max() < threshold


def test_whole_kernel_draws_match_a_loop_of_convolutions():
    layer = BayesianConv2d(4, 6, kernel_size=3, groups=2, padding=1, posterior_scale_init=0.2)
    view = sampled_network(layer, n_samples=5, seed=0)
    x = torch.randn(7, 4, 5, 5)
    with torch.no_grad():
        out = view.sample(x)
        drawn = view.module
        for s in range(5):
            expected = F.conv2d(x, drawn.weight[s], drawn.bias[s], padding=1, groups=2)
            torch.testing.assert_close(out[s], expected, atol=1e-5, rtol=1e-5)
    # the same draws for any chunking of the rows, and the layer is untouched
    with torch.no_grad():
        again = sampled_network(layer, n_samples=5, seed=0).sample(x[3:])
    torch.testing.assert_close(again, out[:, 3:], atol=1e-6, rtol=1e-6)
    assert layer.training


def test_one_by_one_convolution_is_bayesian_linear_on_each_pixel():
    conv = BayesianConv2d(3, 4, kernel_size=1, posterior_scale_init=0.2)
    linear = BayesianLinear(3, 4)
    with torch.no_grad():
        linear.weight_mu.copy_(conv.weight_mu[:, :, 0, 0])
        linear.weight_rho.copy_(conv.weight_rho[:, :, 0, 0] + 0.1 * torch.randn(4, 3))
        conv.weight_rho.copy_(linear.weight_rho[:, :, None, None])
        linear.bias_mu.copy_(conv.bias_mu)
        linear.bias_rho.copy_(conv.bias_rho)
    x = torch.randn(5, 3, 4, 4)
    pixels = x.permute(0, 2, 3, 1).reshape(-1, 3)
    for conv_part, linear_part in zip(conv._local_moments(x), linear._local_moments(pixels)):
        torch.testing.assert_close(conv_part.permute(0, 2, 3, 1).reshape(-1, 4), linear_part)
    conv.eval(), linear.eval()
    torch.testing.assert_close(conv(x).permute(0, 2, 3, 1).reshape(-1, 4), linear(pixels))
    torch.testing.assert_close(conv.kl_divergence(), linear.kl_divergence())
    # On 1x1 images the training pass draws the same noise in the same order.
    conv.train(), linear.train()
    one = torch.randn(6, 3, 1, 1)
    torch.manual_seed(0)
    a = conv(one)[:, :, 0, 0]
    torch.manual_seed(0)
    torch.testing.assert_close(a, linear(one[:, :, 0, 0]))


def test_kl_divergence_is_the_closed_form():
    layer = BayesianConv2d(2, 3, kernel_size=(2, 3), prior=GaussianPrior(0.7))
    with torch.no_grad():
        layer.weight_rho.copy_(torch.randn_like(layer.weight_rho))
        layer.bias_rho.copy_(torch.randn_like(layer.bias_rho))
    mu = np.concatenate([p.detach().numpy().ravel() for p in (layer.weight_mu, layer.bias_mu)])
    rho = np.concatenate([p.detach().numpy().ravel() for p in (layer.weight_rho, layer.bias_rho)])
    sigma = np.log1p(np.exp(rho.astype(np.float64)))
    s0 = 0.7
    expected = np.sum(np.log(s0 / sigma) + (sigma**2 + mu**2) / (2 * s0**2) - 0.5)
    assert float(layer.kl_divergence().detach()) == pytest.approx(expected, rel=1e-5)
    net = nn.Sequential(layer, nn.Flatten(), BayesianLinear(3 * 3 * 2, 2))
    assert bayesian_layers(net) == [net[0], net[2]]
    total = float(kl_divergence(net).detach())
    assert total == pytest.approx(expected + float(net[2].kl_divergence().detach()), rel=1e-5)


def test_scale_mixture_prior_and_no_bias():
    layer = BayesianConv1d(2, 3, 3, bias=False, prior=ScaleMixturePrior())
    assert layer.bias_mu is None and layer.bias_sigma is None
    assert layer(torch.randn(4, 2, 8)).shape == (4, 3, 6)
    assert torch.isfinite(layer.kl_divergence())


def test_gradients_flow_to_means_and_scales():
    layer = BayesianConv2d(1, 2, kernel_size=3)
    x = torch.randn(8, 1, 6, 6, requires_grad=True)
    loss = layer(x).square().mean() + kl_divergence(layer) / 100
    loss.backward()
    for p in (layer.weight_mu, layer.weight_rho, layer.bias_mu, layer.bias_rho, x):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_invalid_arguments():
    with pytest.raises(ValueError, match="divisible by groups"):
        BayesianConv2d(3, 4, 3, groups=2)
    with pytest.raises(TypeError, match="skbdl.nn.Prior"):
        BayesianConv2d(1, 1, 3, prior=1.0)
    with pytest.raises(ValueError, match="posterior_scale_init"):
        BayesianConv1d(1, 1, 3, posterior_scale_init=0)


class DigitsCNN(nn.Module):
    """A small Bayesian CNN for 8x8 digit images."""

    def __init__(self, n_outputs=10):
        super().__init__()
        self.features = nn.Sequential(
            BayesianConv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            BayesianConv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.head = BayesianLinear(16 * 2 * 2, n_outputs)

    def forward(self, x):
        return self.head(self.features(x))


def test_bbb_estimator_with_bayesian_cnn_fits_digits():
    X, y = load_digits(return_X_y=True)
    images = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    X_train, X_test, y_train, y_test = train_test_split(images, y, test_size=0.3, random_state=0)
    clf = BayesianMLPClassifier(
        DigitsCNN, max_epochs=15, lr=1e-2, n_samples=20, calibrate=False, random_state=0, verbose=0
    ).fit(X_train, y_train)
    assert clf.score(X_test, y_test) > 0.85
    module = clf.module_
    convs = [m for m in module.modules() if isinstance(m, BayesianConv2d)]
    assert len(convs) == 2
    # the ELBO's KL term is every Bayesian layer's, the convolutions' included
    with torch.no_grad():
        parts = [float(layer.kl_divergence()) for layer in bayesian_layers(module)]
        assert len(parts) == 3 and min(parts) > 0
        net = clf.net_
        logits = torch.zeros(4, 10)
        labels = torch.tensor([0, 1, 2, 3])
        kl_term = float(net.get_loss(logits, labels)) - float(F.cross_entropy(logits, labels))
    assert kl_term * net.n_train_ == pytest.approx(sum(parts), rel=1e-4)
    # the convolutions learned a posterior: their scales moved from the initial 0.01
    assert any(abs(float(c.weight_sigma.detach().mean()) - 0.01) > 1e-3 for c in convs)
    # predictions are reproducible, do not depend on batching, and draw whole kernels
    proba = clf.predict_proba(X_test[:50])
    np.testing.assert_array_equal(proba, clf.predict_proba(X_test[:50]))
    clf.set_params(predict_batch_size=7)
    np.testing.assert_allclose(proba[10:20], clf.predict_proba(X_test[10:20]), atol=1e-6)
    assert (clf.predict_uncertainty(X_test[:50]).epistemic > 0).all()
    # re-entrant: concurrent calls see only their own draws
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: clf.predict_proba(X_test[:50]), range(4)))
    for result in results:
        np.testing.assert_allclose(result, proba, atol=1e-6)


class SequenceNet(nn.Module):
    """A Bayesian 1-D CNN for sequences of shape (1, 16)."""

    def __init__(self, n_outputs):
        super().__init__()
        self.conv = BayesianConv1d(1, 4, kernel_size=3, padding=1)
        self.output = BayesianLinear(4 * 16, n_outputs)

    def forward(self, x):
        return self.output(torch.relu(self.conv(x)).flatten(1))


def test_bbb_regressor_with_bayesian_conv1d_on_sequences():
    rng = np.random.RandomState(0)
    X = rng.randn(300, 1, 16).astype(np.float32)
    y = X[:, 0, 4:8].sum(axis=1) + 0.1 * rng.randn(300)
    reg = BayesianMLPRegressor(
        SequenceNet,
        max_epochs=40,
        lr=1e-2,
        n_samples=20,
        calibrate=False,
        random_state=0,
        verbose=0,
    ).fit(X[:200], y[:200])
    assert [type(m) for m in bayesian_layers(reg.module_)] == [BayesianConv1d, BayesianLinear]
    u = reg.predict_uncertainty(X[200:])
    assert u.mean.shape == (100,) and (u.epistemic_var > 0).all()
    assert reg.score(X[200:], y[200:]) > 0.9  # 0.98-0.996 over seeds 0-2
