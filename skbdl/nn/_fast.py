"""Hand-written forward and backward passes for the default MLP.

For the small networks of tabular data, a training step costs Python and dispatch
overhead, not FLOPs: autograd's graph building and engine take more time than the
arithmetic.  This module computes the loss and the gradients of the default
:class:`~skbdl.nn.MLP` (ReLU, tanh, logistic or identity activations, dropout) under
the cross-entropy and Gaussian losses directly with matrix products, writing
``param.grad`` as autograd would, so the optimizer and skorch's callbacks are
unchanged.  ``tests/test_fast_path.py`` checks every supported combination against
autograd.  Any other module, activation or criterion returns ``None`` from
:func:`make_fast_step` and trains through autograd.
"""

import torch
from torch import nn
from torch.nn import functional as F

from ._mlp import MIN_VARIANCE, MLP, GaussianNLLLoss, GaussianRegressionModule
from ._random import Dropout, generator_for

_DERIVATIVES = {
    nn.ReLU: lambda z, a: z > 0,
    nn.Tanh: lambda z, a: 1 - a * a,
    nn.Sigmoid: lambda z, a: a * (1 - a),
    nn.Identity: None,
}


def _mlp_layers(mlp):
    """``[(linear, activation_type, dropout_p), ...]`` and the output layer, or None."""
    if type(mlp) is not MLP:
        return None
    modules = list(mlp.features)
    if len(modules) % 3:
        return None
    layers = []
    for linear, act, drop in zip(modules[0::3], modules[1::3], modules[2::3]):
        if type(act) not in _DERIVATIVES or type(drop) not in (nn.Dropout, Dropout):
            return None
        layers.append((linear, type(act), drop.p))
    return layers, mlp.output


class _FastMLPStep:
    """Loss and gradients of an MLP (inside an optional Gaussian head)."""

    def __init__(self, module, layers, output, loss):
        self.module, self.layers, self.output, self.loss = module, layers, output, loss
        # Transposed views stay valid: optimizers update parameters in place.
        self.weights_t = [linear.weight.t() for linear, _, _ in layers]
        self.output_weight_t = output.weight.t()
        # Built in on_train_begin, inside the fit's generator block: the fit's generator
        # for dropout masks (None outside a fit: torch's global one).
        self.generator = generator_for(output.weight)

    def __call__(self, X, y):
        n = X.shape[0]
        inputs, grads_of_act = [], []
        h = X
        for (linear, act_type, p), weight_t in zip(self.layers, self.weights_t):
            inputs.append(h)
            z = torch.addmm(linear.bias, h, weight_t)
            a = z if act_type is nn.Identity else _ACT[act_type](z)
            derivative = _DERIVATIVES[act_type]
            local = None if derivative is None else derivative(z, a)
            if p > 0:
                mask = torch.empty_like(a).bernoulli_(1 - p, generator=self.generator)
                mask.div_(1 - p)
                a = a * mask
                local = mask if local is None else local * mask
            grads_of_act.append(local)
            h = a
        out = torch.addmm(self.output.bias, h, self.output_weight_t)
        loss, g = self.loss(out, y, n)
        _set_grad(self.output.weight, g.t().mm(h))
        _set_grad(self.output.bias, g.sum(0))
        g = g.mm(self.output.weight)
        for i in range(len(self.layers) - 1, -1, -1):
            linear = self.layers[i][0]
            local = grads_of_act[i]
            if local is not None:
                g = g * local
            _set_grad(linear.weight, g.t().mm(inputs[i]))
            _set_grad(linear.bias, g.sum(0))
            if i:
                g = g.mm(linear.weight)
        return loss, out


_ACT = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh, nn.Sigmoid: torch.sigmoid}


def _set_grad(param, grad):
    """Write ``grad`` as ``param.grad``, as autograd would (reusing the tensor)."""
    if param.grad is None:
        param.grad = grad
    else:
        param.grad.copy_(grad)


def _cross_entropy(out, y, n):
    proba = torch.softmax(out, dim=1)
    loss = F.cross_entropy(out, y)
    g = proba.index_put_((torch.arange(n), y), torch.tensor(-1.0), accumulate=True)
    return loss, g.div_(n)


# The Gaussian losses below serve the single network (outputs ``(n_rows, width)``) and
# the stacked ensemble (``(n_members, n_rows, width)``) alike: rows on axis -2,
# targets on axis -1, the mean per row and target, summed over any leading (member)
# axes.  They return the loss and its gradient with respect to the outputs.
def _homoscedastic(head):
    def loss_fn(out, y, n=None):
        log_var = head.log_noise_var  # (n_targets,), or (n_members, 1, n_targets)
        n_rows = out.shape[-2]
        count = n_rows * out.shape[-1]
        resid = out - y
        scaled = resid * torch.exp(-log_var)  # residual / variance
        sq_sum = (scaled * resid).sum(-2, keepdim=True)  # per (member and) target
        loss = 0.5 * (log_var.sum() * n_rows + sq_sum.sum()) / count
        _set_grad(log_var, (n_rows - sq_sum).mul_(0.5 / count).reshape(log_var.shape))
        return loss, scaled.div_(count)

    return loss_fn


def _heteroscedastic(n_targets):
    def loss_fn(out, y, n=None):
        mean, raw = out[..., :n_targets], out[..., n_targets:]
        var = F.softplus(raw) + MIN_VARIANCE
        resid = mean - y
        sq = resid * resid / var
        count = sq.shape[-2] * sq.shape[-1]  # rows x targets (per member)
        loss = 0.5 * (var.log().sum() + sq.sum()) / count
        g_mean = resid / var / count
        g_raw = 0.5 * (1 - sq) / var * torch.sigmoid(raw) / count
        return loss, torch.cat([g_mean, g_raw], dim=-1)

    return loss_fn


def plain_gaussian_head(head):
    """Whether a Gaussian head is one the hand-written steps differentiate: a learned
    (homoscedastic) or predicted (heteroscedastic) variance and no output activation.
    A fixed noise variance or an activation on the means trains through autograd."""
    return (
        getattr(head, "likelihood", None) in ("homoscedastic", "heteroscedastic")
        and getattr(head, "output_activation", None) is None
    )


def make_fast_step(module, criterion):
    """A function ``(X, y) -> (loss, output)`` that also fills ``param.grad``, or None.

    Parameters
    ----------
    module : torch.nn.Module
        The trained module: an :class:`~skbdl.nn.MLP` (classification) or a
        :class:`~skbdl.nn.GaussianRegressionModule` around one.
    criterion : torch.nn.Module
        ``CrossEntropyLoss`` (default settings) for an MLP, ``GaussianNLLLoss`` for a
        Gaussian head.

    Returns
    -------
    step : callable or None
        None when the combination is not supported (autograd is used instead).
    """
    if isinstance(module, GaussianRegressionModule):
        if not plain_gaussian_head(module):
            return None
        parsed = _mlp_layers(module.body)
        if parsed is None or type(criterion) is not GaussianNLLLoss:
            return None
        loss = (
            _heteroscedastic(module.n_targets) if module.heteroscedastic else _homoscedastic(module)
        )
        return _FastMLPStep(module, *parsed, loss)
    parsed = _mlp_layers(module)
    if (
        parsed is None
        or type(criterion) is not nn.CrossEntropyLoss
        or criterion.weight is not None
        or criterion.label_smoothing
        or criterion.reduction != "mean"
    ):
        return None
    return _FastMLPStep(module, *parsed, _cross_entropy)
