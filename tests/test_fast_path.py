"""The hand-written MLP gradients (skbdl.nn._fast) against autograd, the reference."""

import pytest
import torch
from torch import nn

from skbdl.nn import MLP, GaussianNLLLoss, GaussianRegressionModule
from skbdl.nn._fast import make_fast_step

ACTIVATIONS = ["relu", "tanh", "logistic", "identity"]


def _autograd_reference(module, criterion, X, y):
    module.zero_grad(set_to_none=True)
    loss = criterion(module(X), y)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters()}


def _fast(module, criterion, X, y):
    module.zero_grad(set_to_none=True)
    step = make_fast_step(module, criterion)
    assert step is not None
    with torch.no_grad():
        loss, _ = step(X, y)
    return loss, {n: p.grad.clone() for n, p in module.named_parameters()}


def _compare(module, criterion, X, y, dropout):
    # The same dropout masks in both passes: reseed before each.
    torch.manual_seed(1)
    ref_loss, ref_grads = _autograd_reference(module, criterion, X, y)
    torch.manual_seed(1)
    fast_loss, fast_grads = _fast(module, criterion, X, y)
    torch.testing.assert_close(fast_loss, ref_loss, rtol=1e-5, atol=1e-6)
    assert ref_grads.keys() == fast_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(fast_grads[name], ref_grads[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("hidden", [(), (7,), (6, 5)])
def test_cross_entropy_gradients_match_autograd(activation, dropout, hidden):
    torch.manual_seed(0)
    module = MLP(4, 3, hidden_layer_sizes=hidden, activation=activation, dropout=dropout)
    X, y = torch.randn(11, 4), torch.randint(0, 3, (11,))
    _compare(module, nn.CrossEntropyLoss(), X, y, dropout)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("likelihood", ["homoscedastic", "heteroscedastic"])
@pytest.mark.parametrize("n_targets", [1, 2])
def test_gaussian_gradients_match_autograd(activation, likelihood, n_targets):
    torch.manual_seed(0)
    width = 2 * n_targets if likelihood == "heteroscedastic" else n_targets
    body = MLP(4, width, hidden_layer_sizes=(6, 5), activation=activation, dropout=0.2)
    module = GaussianRegressionModule(body, n_targets, likelihood)
    if likelihood == "homoscedastic":
        with torch.no_grad():
            module.log_noise_var.copy_(torch.linspace(-0.5, 0.5, n_targets))
    X, y = torch.randn(9, 4), torch.randn(9, n_targets)
    _compare(module, GaussianNLLLoss(), X, y, 0.2)


def test_unsupported_modules_fall_back_to_autograd():
    gelu = MLP(3, 2, hidden_layer_sizes=(4,), activation="gelu")
    assert make_fast_step(gelu, nn.CrossEntropyLoss()) is None
    custom = nn.Sequential(nn.Linear(3, 2))
    assert make_fast_step(custom, nn.CrossEntropyLoss()) is None
    weighted = nn.CrossEntropyLoss(weight=torch.ones(2))
    assert make_fast_step(MLP(3, 2), weighted) is None
    assert make_fast_step(MLP(3, 2), nn.MSELoss()) is None


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_direct_fused_adam_equals_the_optimizer_step(monkeypatch, optimizer):
    import numpy as np

    from skbdl import MCDropoutRegressor
    from skbdl._net import _FusedAdamStep

    rng = np.random.RandomState(0)
    X = rng.randn(64, 3)
    y = X @ rng.randn(3)
    params = dict(
        hidden_layer_sizes=(8,), max_epochs=4, batch_size=16, optimizer=optimizer,
        weight_decay=0.01, random_state=0,
    )
    fast = MCDropoutRegressor(**params).fit(X, y)
    monkeypatch.setattr(_FusedAdamStep, "supports", staticmethod(lambda optimizer: False))
    reference = MCDropoutRegressor(**params).fit(X, y)
    for a, b in zip(fast.module_.parameters(), reference.module_.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert fast.loss_curve_ == reference.loss_curve_
