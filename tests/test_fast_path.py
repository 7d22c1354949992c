"""The hand-written MLP gradients (skbdl.nn._fast) against autograd, the reference."""

import pytest
import torch
from torch import nn

from skbdl._net import weighted_loss
from skbdl.nn import MLP, GaussianNLLLoss, GaussianRegressionModule
from skbdl.nn._fast import make_fast_step

ACTIVATIONS = ["relu", "tanh", "logistic", "identity", "gelu", "elu", "silu"]


def row_weights(*shape):
    """Sample weights as training normalises them (mean 1), one of them zero."""
    weight = torch.rand(*shape, generator=torch.Generator().manual_seed(5)) * 3
    weight[..., 0] = 0.0
    return weight * (shape[-1] / weight.sum(-1, keepdim=True))


def _autograd_reference(module, criterion, X, y, weight=None):
    module.zero_grad(set_to_none=True)
    if weight is None:
        loss = criterion(module(X), y)
    else:  # the loss of a sample-weighted batch on the autograd path
        loss = weighted_loss(criterion, module(X), y, weight)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters()}


def _fast(module, criterion, X, y, weight=None):
    module.zero_grad(set_to_none=True)
    step = make_fast_step(module, criterion)
    assert step is not None
    with torch.no_grad():
        loss, _ = step(X, y, weight)
    return loss, {n: p.grad.clone() for n, p in module.named_parameters()}


def _compare(module, criterion, X, y, dropout, weight=None):
    # The same dropout masks in both passes: reseed before each.
    torch.manual_seed(1)
    ref_loss, ref_grads = _autograd_reference(module, criterion, X, y, weight)
    torch.manual_seed(1)
    fast_loss, fast_grads = _fast(module, criterion, X, y, weight)
    torch.testing.assert_close(fast_loss, ref_loss, rtol=1e-5, atol=1e-6)
    assert ref_grads.keys() == fast_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(fast_grads[name], ref_grads[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("hidden", [(), (7,), (6, 5)])
def test_cross_entropy_gradients_match_autograd(activation, dropout, hidden, weighted):
    torch.manual_seed(0)
    module = MLP(4, 3, hidden_layer_sizes=hidden, activation=activation, dropout=dropout)
    X, y = torch.randn(11, 4), torch.randint(0, 3, (11,))
    _compare(module, nn.CrossEntropyLoss(), X, y, dropout, row_weights(11) if weighted else None)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("likelihood", ["homoscedastic", "heteroscedastic"])
@pytest.mark.parametrize("n_targets", [1, 2])
def test_gaussian_gradients_match_autograd(activation, likelihood, n_targets, weighted):
    torch.manual_seed(0)
    width = 2 * n_targets if likelihood == "heteroscedastic" else n_targets
    body = MLP(4, width, hidden_layer_sizes=(6, 5), activation=activation, dropout=0.2)
    module = GaussianRegressionModule(body, n_targets, likelihood)
    if likelihood == "homoscedastic":
        with torch.no_grad():
            module.log_noise_var.copy_(torch.linspace(-0.5, 0.5, n_targets))
    X, y = torch.randn(9, 4), torch.randn(9, n_targets)
    _compare(module, GaussianNLLLoss(), X, y, 0.2, row_weights(9) if weighted else None)


def test_unsupported_modules_fall_back_to_autograd():
    for activation in (nn.GELU(approximate="tanh"), nn.Softplus()):
        mlp = MLP(3, 2, hidden_layer_sizes=(4,), activation="gelu")
        mlp.features[1] = activation  # an activation outside the fast step's table
        assert make_fast_step(mlp, nn.CrossEntropyLoss()) is None
    elu = MLP(3, 2, hidden_layer_sizes=(4,), activation="elu")
    elu.features[1] = nn.ELU(alpha=0.5)  # any alpha is in scope
    assert make_fast_step(elu, nn.CrossEntropyLoss()) is not None
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
        hidden_layer_sizes=(8,),
        max_epochs=4,
        batch_size=16,
        optimizer=optimizer,
        weight_decay=0.01,
        random_state=0,
    )
    fast = MCDropoutRegressor(**params).fit(X, y)
    monkeypatch.setattr(_FusedAdamStep, "supports", staticmethod(lambda optimizer: False))
    reference = MCDropoutRegressor(**params).fit(X, y)
    for a, b in zip(fast.module_.parameters(), reference.module_.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert fast.loss_curve_ == reference.loss_curve_


# ----------------------------------------------- the direct fused-Adam optimiser step
def _fitted_weights(monkeypatch, kernels_available, estimator="MCDropoutRegressor"):
    import numpy as np

    import skbdl
    import skbdl._net

    if not kernels_available:  # as on a torch release without the private kernels
        monkeypatch.setattr(skbdl._net, "_FUSED_KERNELS", dict.fromkeys(skbdl._net._FUSED_KERNELS))
    calls = []
    step = skbdl._net._FusedAdamStep.step
    monkeypatch.setattr(
        skbdl._net._FusedAdamStep, "step", lambda self: calls.append(1) or step(self)
    )
    X = np.random.RandomState(0).randn(200, 4)
    reg = getattr(skbdl, estimator)(max_epochs=5, calibrate=False, verbose=0, random_state=0)
    reg.fit(X, X[:, 0] - X[:, 1])
    monkeypatch.undo()
    assert bool(calls) == kernels_available  # the direct step ran exactly when it could
    return {k: v.clone() for k, v in reg.net_.module_.state_dict().items()}, reg


@pytest.mark.parametrize(
    "estimator", ["MCDropoutRegressor", "DeepEnsembleRegressor", "BayesianMLPRegressor"]
)
def test_direct_fused_step_equals_the_public_optimizer_step(monkeypatch, estimator):
    """The direct kernel call and the public ``Adam(fused=True).step()`` (used where a
    torch release lacks the private kernels) give bit-identical training, for every
    network the hand-written step trains (single, stacked, Bayesian)."""
    direct, _ = _fitted_weights(monkeypatch, True, estimator)
    public, _ = _fitted_weights(monkeypatch, False, estimator)
    assert direct.keys() == public.keys()
    for name in direct:
        assert torch.equal(direct[name], public[name]), name


def test_optimizer_state_stays_true_after_load_state_dict():
    """The direct step updates the optimizer's own state, also after its state was
    replaced by ``load_state_dict`` (the lists are gathered again): weights, step
    counts and moments equal those of the public ``Adam(fused=True).step()`` run
    through the same sequence."""
    from skbdl._net import _FusedAdamStep

    torch.manual_seed(0)
    X, y = torch.randn(16, 3), torch.randn(16, 1)
    modules = [nn.Linear(3, 1) for _ in range(2)]
    modules[1].load_state_dict(modules[0].state_dict())
    optimizers = [torch.optim.Adam(m.parameters(), lr=1e-2, fused=True) for m in modules]
    direct = _FusedAdamStep(optimizers[0])
    steps = [direct.step, optimizers[1].step]

    def train(n):
        for module, step in zip(modules, steps):
            for _ in range(n):
                module.zero_grad()
                ((module(X) - y) ** 2).mean().backward()
                step()

    train(10)
    for optimizer in optimizers:
        optimizer.load_state_dict(optimizer.state_dict())  # new state tensors
    train(20)
    counts = [float(s["step"]) for s in optimizers[0].state_dict()["state"].values()]
    assert counts == [30.0, 30.0]
    assert torch.equal(modules[0].weight, modules[1].weight)
    for name in ("exp_avg", "exp_avg_sq", "step"):
        for a, b in zip(*(o.state_dict()["state"].values() for o in optimizers)):
            assert torch.equal(a[name], b[name]), name


def test_bayes_by_backprop_fast_step_without_private_softplus(monkeypatch):
    """The Bayes by Backprop fast step's private ``softplus(out=...)`` and its public
    fallback train bit-identically."""
    import numpy as np

    import skbdl.nn._fast
    from skbdl import BayesianMLPRegressor

    X = np.random.RandomState(0).randn(150, 3)
    y = X[:, 0] * X[:, 1]

    def weights():
        reg = BayesianMLPRegressor(max_epochs=4, calibrate=False, verbose=0, random_state=0)
        return reg.fit(X, y).net_.module_.state_dict()

    calls = []
    into = skbdl.nn._fast._softplus_into
    monkeypatch.setattr(skbdl.nn._fast, "_softplus_into", lambda *a: calls.append(1) or into(*a))
    private = weights()
    assert calls  # the fast ELBO step ran
    monkeypatch.setattr(skbdl.nn._fast, "_SOFTPLUS_OUT", None)
    public = weights()
    for name in private:
        assert torch.equal(private[name], public[name]), name


@pytest.mark.parametrize(
    "kwargs",
    [dict(likelihood="fixed", noise_variance=0.5), dict(output_activation="softplus")],
    ids=["fixed-noise", "output-activation"],
)
def test_heads_outside_the_declared_scope_train_through_autograd(kwargs):
    """The hand-written steps differentiate learned or predicted variances without an
    output activation; any other Gaussian head gets no fast step (autograd)."""
    from skbdl.nn import StackedGaussianRegressionModule, StackedMLP
    from skbdl.nn._fast import make_fast_step

    kwargs = dict(kwargs)  # the parametrized dict is shared between runs
    width = 2 if kwargs.get("likelihood") != "fixed" else 1
    likelihood = kwargs.pop("likelihood", "heteroscedastic")
    head = GaussianRegressionModule(MLP(3, width, (8,)), 1, likelihood, **kwargs)
    assert make_fast_step(head, GaussianNLLLoss()) is None
    stacked = StackedGaussianRegressionModule(
        StackedMLP(2, 3, width, (8,)), 1, likelihood, **kwargs
    )
    from skbdl.nn import EnsembleGaussianNLLLoss

    assert make_fast_step(stacked, EnsembleGaussianNLLLoss()) is None
    plain = GaussianRegressionModule(MLP(3, 2, (8,)), 1, "heteroscedastic")
    assert make_fast_step(plain, GaussianNLLLoss()) is not None


def test_callbacks_see_the_same_y_pred_on_both_paths(monkeypatch):
    """A callback's ``y_pred`` is the module's output format whether the batch ran
    through the hand-written step or autograd: ``(mean, var)``."""
    import numpy as np
    from skorch.callbacks import Callback

    import skbdl._net
    from skbdl import DeepEnsembleRegressor, MCDropoutRegressor

    class Record(Callback):
        def on_batch_end(self, net, batch=None, training=None, y_pred=None, **kwargs):
            if training:
                self.seen_ = getattr(self, "seen_", []) + [y_pred]

    X = np.random.RandomState(0).randn(64, 3)
    y = X[:, 0]
    for cls in (MCDropoutRegressor, DeepEnsembleRegressor):
        shapes = {}
        made = []  # the steps the fast-path fit made
        make = skbdl._net.SkbdlNet._make_fast_step
        for path in ("fast", "autograd"):
            if path == "fast":

                def step(self, made=made, make=make):
                    made.append(make(self))
                    return made[-1]
            else:

                def step(self):
                    return None

            monkeypatch.setattr(skbdl._net.SkbdlNet, "_make_fast_step", step)
            est = cls(
                max_epochs=1,
                batch_size=32,
                calibrate=False,
                callbacks=[("record", Record())],
                verbose=0,
                random_state=0,
            ).fit(X, y)
            seen = dict(est.net_.callbacks_)["record"].seen_
            assert all(isinstance(p, tuple) and len(p) == 2 for p in seen), (cls, path)
            shapes[path] = [tuple(t.shape) for t in seen[0]]
            assert torch.all(seen[0][1] > 0)  # variances
        monkeypatch.undo()
        assert made and all(step is not None for step in made)  # the fast path ran
        assert shapes["fast"] == shapes["autograd"]
