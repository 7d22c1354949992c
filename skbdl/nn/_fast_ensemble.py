"""Hand-written forward and backward passes for a :class:`~skbdl.nn.StackedMLP`.

The stacked counterpart of :mod:`skbdl.nn._fast`: for small tabular networks a
training step costs Python and dispatch overhead rather than FLOPs, so computing the
members' losses and gradients with batched matrix products (``torch.baddbmm`` /
``torch.bmm``) instead of autograd's graph makes the ensemble's step much cheaper.
Gradients are written to ``param.grad`` as autograd would write them, so the
optimizer and skorch's callbacks are unchanged.  ``tests/test_ensemble.py`` checks
every supported combination against autograd.  Any other container, activation or
criterion gives ``None`` from :func:`make_stacked_fast_step` (autograd is used).
"""

import torch

from ._ensemble import (
    EnsembleCrossEntropyLoss,
    EnsembleGaussianNLLLoss,
    StackedGaussianRegressionModule,
    StackedMLP,
)
from ._fast import (
    _ACT,
    _DERIVATIVES,
    _heteroscedastic,
    _homoscedastic,
    _set_grad,
    plain_gaussian_head,
)

#: activation type -> (function, derivative from the pre-activation z and output a),
#: as the single network's step has them
_ACTIVATIONS = {kind: (_ACT.get(kind), derivative) for kind, derivative in _DERIVATIVES.items()}


class _FastStackedStep:
    """Loss and gradients of a StackedMLP (inside an optional Gaussian head)."""

    def __init__(self, stacked, loss):
        self.weights, self.biases, self.loss = list(stacked.weights), list(stacked.biases), loss
        # Transposed views stay valid: optimizers update parameters in place.
        self.weights_t = [w.transpose(1, 2) for w in self.weights]
        self.activation, self.derivative = _ACTIVATIONS[type(stacked.activation)]
        self.n_members = stacked.n_members

    def __call__(self, X, y):
        if X.ndim == 2:
            X = X.expand(self.n_members, *X.shape)
        last = len(self.weights) - 1
        inputs, locals_ = [], []
        h = X
        for weight, bias in zip(self.weights[:last], self.biases[:last]):
            inputs.append(h)
            z = torch.baddbmm(bias, h, weight)
            if self.activation is None:
                h, local = z, None
            else:
                h = self.activation(z)
                local = self.derivative(z, h)
            locals_.append(local)
        inputs.append(h)
        out = torch.baddbmm(self.biases[last], h, self.weights[last])
        loss, g = self.loss(out, y)
        for layer in range(last, -1, -1):
            _set_grad(self.weights[layer], torch.bmm(inputs[layer].transpose(1, 2), g))
            _set_grad(self.biases[layer], g.sum(1, keepdim=True))
            if layer:
                g = torch.bmm(g, self.weights_t[layer])
                if locals_[layer - 1] is not None:
                    g = g * locals_[layer - 1]
        return loss, out


def _cross_entropy(out, y):
    n_members, n_rows = out.shape[:2]
    y = y.expand(n_members, n_rows).unsqueeze(-1)
    log_proba = torch.log_softmax(out, dim=-1)
    loss = -log_proba.gather(-1, y).sum() / n_rows
    minus_one = torch.full(y.shape, -1.0, dtype=out.dtype, device=out.device)
    g = log_proba.exp_().scatter_add_(-1, y, minus_one)
    return loss, g.div_(n_rows)


def make_stacked_fast_step(module, criterion):
    """A function ``(X, y) -> (loss, output)`` that also fills ``param.grad``, or None.

    Parameters
    ----------
    module : torch.nn.Module
        A :class:`~skbdl.nn.StackedMLP` (classification) or a
        :class:`~skbdl.nn.StackedGaussianRegressionModule` around one.
    criterion : torch.nn.Module
        :class:`~skbdl.nn.EnsembleCrossEntropyLoss` for a StackedMLP,
        :class:`~skbdl.nn.EnsembleGaussianNLLLoss` for a Gaussian head.

    Returns
    -------
    step : callable or None
        None when the combination is not supported (autograd is used instead).
    """
    if isinstance(module, StackedGaussianRegressionModule):
        if not plain_gaussian_head(module):
            return None
        stacked = module.body
        if type(stacked) is not StackedMLP or type(criterion) is not EnsembleGaussianNLLLoss:
            return None
        if module.heteroscedastic:
            loss = _heteroscedastic(module.n_targets)
        else:
            loss = _homoscedastic(module)
    elif type(module) is StackedMLP and type(criterion) is EnsembleCrossEntropyLoss:
        stacked, loss = module, _cross_entropy
    else:
        return None
    if type(stacked.activation) not in _ACTIVATIONS:
        return None
    return _FastStackedStep(stacked, loss)
