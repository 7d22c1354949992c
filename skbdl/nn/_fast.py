"""One hand-written training step -- forward, loss and backward -- for skbdl's networks.

For the small networks of tabular data, a training step costs Python and dispatch
overhead, not FLOPs: autograd's graph building and engine take more time than the
arithmetic.  :func:`make_fast_step` computes the loss and the gradients of skbdl's
default networks directly with matrix products and writes ``param.grad`` as autograd
would, so the optimizer and skorch's callbacks are unchanged.

Scope -- everything else returns ``None`` from :func:`make_fast_step` and trains
through autograd:

============================================  =========================================
module                                        criterion
============================================  =========================================
:class:`~skbdl.nn.MLP`                        ``CrossEntropyLoss()`` (default settings)
:class:`~skbdl.nn.StackedMLP`                 :class:`~skbdl.nn.EnsembleCrossEntropyLoss`
:class:`~skbdl.nn.BayesianMLP` (``kl_scale``) ``CrossEntropyLoss()`` (default settings)
a Gaussian head around any of the three       ``GaussianNLLLoss`` /
(:class:`~skbdl.nn.GaussianRegressionModule`, ``EnsembleGaussianNLLLoss`` for the stack
its stacked twin) with a learned or predicted
variance and no output activation
============================================  =========================================

The layers' activations are any of skbdl's (ReLU, tanh, logistic, identity, exact
GELU, ELU, SiLU); an MLP's dropout is supported; a BayesianMLP needs biases and one
:class:`~skbdl.nn.GaussianPrior` or :class:`~skbdl.nn.ScaleMixturePrior` for all its
layers.  Batches may carry sample
weights (the weighted loss of ``skbdl._net.weighted_loss``).  The training loop
(``skbdl._net.SkbdlNet.train_step``) further leaves to autograd modules with an
``extra_loss``, closure optimizers (LBFGS) and adversarial training; any optimizer
steps the gradients, a fused Adam/AdamW by a direct kernel call
(``skbdl._net._FusedAdamStep``).

The three networks share one step, :class:`_FastStep`: the activations, dropout,
losses and the backward recursion are written once; a network contributes only its
kind of layer (:class:`_Dense` ``x W^T + b``, :class:`_Stacked` ``x_m W_m + b_m``
per member, :class:`_LocalReparameterisation` for a Bayesian layer) and, for the
Bayesian one, the KL term.  ``tests/test_fast_path.py`` checks every supported
combination against autograd.

A Bayesian layer's gradients, with ``s = sqrt(x^2 sigma^2 + b_sigma^2)``, the sampled
pre-activation ``z = x mu + b_mu + s * eps``, ``g = dL/dz`` and ``g2 = g * eps / s``::

    dL/dmu_w = g^T x          dL/dsigma_w = sigma_w * (g2^T x^2)
    dL/dmu_b = sum(g)         dL/dsigma_b = sigma_b * sum(g2)
    dL/dx    = g mu_w + x * (g2 sigma_w^2)

and the KL divergence to ``N(0, s0^2)`` adds ``mu / s0^2`` and ``sigma / s0^2 - 1 / sigma``;
``dsigma / drho = sigmoid(rho)``.
"""

import torch
from torch import nn
from torch.nn import functional as F

from ._bayesian import (
    BayesianLinear,
    BayesianMLP,
    GaussianPrior,
    ScaleMixturePrior,
    gaussian_kl,
    gaussian_neg_entropy,
)
from ._ensemble import (
    EnsembleCrossEntropyLoss,
    EnsembleGaussianNLLLoss,
    StackedGaussianRegressionModule,
    StackedMLP,
)
from ._mlp import MIN_VARIANCE, MLP, GaussianNLLLoss, GaussianRegressionModule
from ._random import Dropout, generator_for

#: activation type -> (function, its derivative from the pre-activation z and output a)
_ACTIVATIONS = {
    nn.ReLU: (torch.relu, lambda z, a: z > 0),
    nn.Tanh: (torch.tanh, lambda z, a: 1 - a * a),
    nn.Sigmoid: (torch.sigmoid, lambda z, a: a * (1 - a)),
    nn.Identity: (None, None),
    nn.SiLU: (F.silu, lambda z, a: torch.sigmoid(z).mul_(1 + z - a)),  # s (1 + z (1 - s))
    # the exact GELU, z Phi(z): Phi(z) + z phi(z)
    nn.GELU: (F.gelu, lambda z, a: torch.special.ndtr(z).add_(z * _std_normal_pdf(z))),
}

_INV_SQRT_2PI = 0.3989422804014327


def _std_normal_pdf(z):
    return torch.exp(-0.5 * z * z).mul_(_INV_SQRT_2PI)


def _activation(module):
    """``(function, derivative)`` of an activation module, or None if not in scope."""
    if type(module) is nn.ELU:  # alpha (e^z - 1) below 0: derivative a + alpha there
        alpha = module.alpha
        return (
            lambda z: F.elu(z, alpha),
            lambda z, a: torch.where(z > 0, torch.ones_like(a), a + alpha),
        )
    if type(module) is nn.GELU and module.approximate != "none":
        return None
    return _ACTIVATIONS.get(type(module))


#: torch's softplus writing into a preallocated tensor (private API, guarded): where a
#: torch release lacks it, the public F.softplus and a copy give the same values.
_SOFTPLUS_OUT = getattr(getattr(torch._C, "_nn", None), "softplus", None)


def _softplus_into(rho, out):
    """``out[:] = softplus(rho)`` (beta 1, threshold 20, as F.softplus)."""
    if _SOFTPLUS_OUT is not None:
        _SOFTPLUS_OUT(rho, 1, 20, out=out)
    else:
        out.copy_(F.softplus(rho))


def _set_grad(param, grad):
    """Write ``grad`` as ``param.grad``, as autograd would (reusing the tensor)."""
    if param.grad is None:
        param.grad = grad
    else:
        param.grad.copy_(grad)


# ------------------------------------------------------------------------ the layers
# ``forward(h) -> (z, saved)``; ``backward(g, saved, propagate)`` writes the layer's
# parameter gradients from ``g = dL/dz`` and returns ``dL/dh`` when ``propagate``.
class _Dense:
    """An ``nn.Linear``: ``z = h W^T + b`` (rows on axis 0)."""

    def __init__(self, linear):
        self.weight, self.bias = linear.weight, linear.bias
        # Transposed views stay valid: optimizers update parameters in place.
        self.weight_t = linear.weight.t()

    def forward(self, h):
        return torch.addmm(self.bias, h, self.weight_t), h

    def backward(self, g, h, propagate):
        _set_grad(self.weight, g.t().mm(h))
        _set_grad(self.bias, g.sum(0))
        return g.mm(self.weight) if propagate else None


class _Stacked:
    """One layer of a StackedMLP: ``z_m = h_m W_m + b_m`` for every member ``m``."""

    def __init__(self, weight, bias):
        self.weight, self.bias = weight, bias  # (members, in, out), (members, 1, out)
        self.weight_t = weight.transpose(1, 2)

    def forward(self, h):
        return torch.baddbmm(self.bias, h, self.weight), h

    def backward(self, g, h, propagate):
        _set_grad(self.weight, torch.bmm(h.transpose(1, 2), g))
        _set_grad(self.bias, g.sum(1, keepdim=True))
        return torch.bmm(g, self.weight_t) if propagate else None


class _LocalReparameterisation:
    """A BayesianLinear layer, its pre-activations sampled by the local
    reparameterisation trick.  ``variances`` and the gradient tensors are views of
    the flat buffers of :class:`_ELBOStep`; ``grad_rho`` receives ``dL/dsigma /
    sigma`` (the step finishes the chain rule on the whole buffer)."""

    def __init__(self, layer, variances, grad_mu, grad_rho, generator):
        self.layer, self.generator = layer, generator
        self.weight_var, self.bias_var = variances
        self.grad_mu, self.grad_rho = grad_mu, grad_rho

    def forward(self, h):
        layer, h2 = self.layer, h * h
        mean = torch.addmm(layer.bias_mu, h, layer.weight_mu.t())
        # The bias variance keeps the local variance positive: no epsilon needed.
        std = torch.addmm(self.bias_var, h2, self.weight_var.t()).sqrt_()
        eps = torch.randn(
            mean.shape, generator=self.generator, device=mean.device, dtype=mean.dtype
        )
        return torch.addcmul(mean, std, eps), (h, h2, eps.div_(std))

    def backward(self, g, saved, propagate):
        x, x2, eps_over_std = saved
        g2 = g * eps_over_std
        torch.mm(g.t(), x, out=self.grad_mu[0])
        torch.sum(g, 0, out=self.grad_mu[1])
        torch.mm(g2.t(), x2, out=self.grad_rho[0])
        torch.sum(g2, 0, out=self.grad_rho[1])
        if propagate:
            return torch.addcmul(g.mm(self.layer.weight_mu), x, g2.mm(self.weight_var))
        return None


# ------------------------------------------------------------------------ the losses
# Each returns the loss and its gradient with respect to the network's output.  They
# serve the single network (outputs ``(n_rows, width)``) and the stacked ensemble
# (``(n_members, n_rows, width)``) alike: rows on axis -2, the mean over rows (and
# targets), summed over any leading (member) axes, as the criteria compute it.
# ``weight`` (None, or the rows' normalised sample weights, ``(n_rows,)`` or
# ``(n_members, n_rows)``) makes it the weighted mean ``mean_i(w_i * loss_i)`` of
# ``skbdl._net.weighted_loss``.
def _cross_entropy(out, y, weight=None):
    n_rows = out.shape[-2]
    y = y.expand(out.shape[:-1]).unsqueeze(-1)
    log_proba = torch.log_softmax(out, dim=-1)
    minus_one = torch.full(y.shape, -1.0, dtype=out.dtype, device=out.device)
    if weight is None:
        loss = -log_proba.gather(-1, y).sum() / n_rows
        g = log_proba.exp_().scatter_add_(-1, y, minus_one)
        return loss, g.div_(n_rows)
    w = weight.unsqueeze(-1)
    loss = -(log_proba.gather(-1, y) * w).sum() / n_rows
    g = log_proba.exp_().scatter_add_(-1, y, minus_one)
    return loss, g.mul_(w).div_(n_rows)


def _homoscedastic(head):
    def loss_fn(out, y, weight=None):
        log_var = head.log_noise_var  # (n_targets,), or (n_members, 1, n_targets)
        n_rows = out.shape[-2]
        count = n_rows * out.shape[-1]
        resid = out - y
        scaled = resid * torch.exp(-log_var)  # residual / variance
        if weight is None:
            sq_sum = (scaled * resid).sum(-2, keepdim=True)  # per (member and) target
            loss = 0.5 * (log_var.sum() * n_rows + sq_sum.sum()) / count
            _set_grad(log_var, (n_rows - sq_sum).mul_(0.5 / count).reshape(log_var.shape))
            return loss, scaled.div_(count)
        w = weight.unsqueeze(-1)
        total = w.sum(-2, keepdim=True)  # the weights' sum (per member)
        scaled = scaled * w
        sq_sum = (scaled * resid).sum(-2, keepdim=True)
        loss = 0.5 * ((log_var * total).sum() + sq_sum.sum()) / count
        _set_grad(log_var, (total - sq_sum).mul_(0.5 / count).reshape(log_var.shape))
        return loss, scaled.div_(count)

    return loss_fn


def _heteroscedastic(n_targets):
    def loss_fn(out, y, weight=None):
        mean, raw = out[..., :n_targets], out[..., n_targets:]
        var = F.softplus(raw) + MIN_VARIANCE
        resid = mean - y
        sq = resid * resid / var
        count = sq.shape[-2] * sq.shape[-1]  # rows x targets (per member)
        g_mean = resid / var / count
        g_raw = 0.5 * (1 - sq) / var * torch.sigmoid(raw) / count
        if weight is None:
            loss = 0.5 * (var.log().sum() + sq.sum()) / count
            return loss, torch.cat([g_mean, g_raw], dim=-1)
        w = weight.unsqueeze(-1)
        loss = 0.5 * ((var.log() + sq) * w).sum() / count
        return loss, torch.cat([g_mean * w, g_raw * w], dim=-1)

    return loss_fn


def plain_gaussian_head(head):
    """Whether a Gaussian head is one the hand-written step differentiates: a learned
    (homoscedastic) or predicted (heteroscedastic) variance and no output activation.
    A fixed noise variance or an activation on the means trains through autograd."""
    return (
        getattr(head, "likelihood", None) in ("homoscedastic", "heteroscedastic")
        and getattr(head, "output_activation", None) is None
    )


# -------------------------------------------------------------------------- the steps
class _FastStep:
    """Loss and gradients of a stack of layers: ``layers`` is a list of ``(layer,
    activation, derivative, dropout_p)``, the output layer last (no activation)."""

    def __init__(self, layers, loss, generator):
        self.layers, self.loss, self.generator = layers, loss, generator

    def __call__(self, X, y, weight=None):
        saved, h = [], X
        for layer, activation, derivative, p in self.layers:
            z, inputs = layer.forward(h)
            if activation is None:
                h, local = z, None
            else:
                h = activation(z)
                local = derivative(z, h)
            if p:
                mask = torch.empty_like(h).bernoulli_(1 - p, generator=self.generator)
                mask.div_(1 - p)
                h = h * mask
                local = mask if local is None else local * mask
            saved.append((inputs, local))
        loss, g = self.loss(h, y, weight)
        for i in range(len(self.layers) - 1, -1, -1):
            inputs, local = saved[i]
            if local is not None:
                g = g * local
            g = self.layers[i][0].backward(g, inputs, i > 0)
        return loss, h


class _StackedStep(_FastStep):
    """The step of a StackedMLP: a batch shared by all members is broadcast."""

    def __init__(self, layers, loss, generator, n_members):
        super().__init__(layers, loss, generator)
        self.n_members = n_members

    def __call__(self, X, y, weight=None):
        if X.ndim == 2:
            X = X.expand(self.n_members, *X.shape)
        return super().__call__(X, y, weight)


class _ELBOStep(_FastStep):
    """The step of a BayesianMLP: the data term's gradients by the shared backward
    pass, plus ``kl_scale() * KL`` and its gradient.

    For the step's lifetime the posterior parameters (and their gradients) are views
    into flat buffers, so the element-wise work on all of them (softplus, the KL
    divergence and its gradient) is a handful of operations on one vector each;
    :meth:`release` gives every parameter its own storage again.
    """

    def __init__(self, bayesian_layers, activations, loss, kl_scale):
        self.kl_scale, self.prior = kl_scale, bayesian_layers[0].prior
        mus = [p for layer in bayesian_layers for p in (layer.weight_mu, layer.bias_mu)]
        rhos = [p for layer in bayesian_layers for p in (layer.weight_rho, layer.bias_rho)]
        self.params = mus + rhos
        self.n_params = n = sum(p.numel() for p in mus)
        like = mus[0]
        self.mu, self.rho, self.grad_mu, self.grad_rho, self.sigma, self.variance = (
            torch.empty(n, dtype=like.dtype, device=like.device) for _ in range(6)
        )
        self.ones = torch.ones_like(self.mu)
        self.noise = torch.empty_like(self.mu)
        # Built in on_train_begin, inside the fit's generator block (nn/_random.py).
        generator = generator_for(self.mu)
        views = {"variance": [], "grad_mu": [], "grad_rho": [], "noise": []}
        self.grads = []  # (parameter, its gradient: a view of a flat buffer)
        offset = 0
        for mu, rho in zip(mus, rhos):
            size = slice(offset, offset + mu.numel())
            offset += mu.numel()
            for param, flat, grad in ((mu, self.mu, self.grad_mu), (rho, self.rho, self.grad_rho)):
                view = flat[size].view_as(param)
                view.copy_(param.detach())
                param.data = view
                param.grad = grad[size].view_as(param)
                self.grads.append((param, param.grad))
            views["grad_mu"].append(mu.grad)
            views["grad_rho"].append(rho.grad)
            views["variance"].append(self.variance[size].view_as(mu))
            views["noise"].append(self.noise[size].view_as(mu))
        self.noise_views = views["noise"]
        layers = []
        for i, (layer, activation) in enumerate(zip(bayesian_layers, activations)):
            pair = slice(2 * i, 2 * i + 2)
            op = _LocalReparameterisation(
                layer,
                views["variance"][pair],
                views["grad_mu"][pair],
                views["grad_rho"][pair],
                generator,
            )
            layers.append((op, *activation, 0.0))
        super().__init__(layers, loss, generator)

    def release(self):
        """Give every parameter (and gradient) its own storage again."""
        for param in self.params:
            param.data = param.data.clone()
            param.grad = param.grad.clone()

    def __call__(self, X, y, weight=None):
        for param, grad in self.grads:
            if param.grad is not grad:  # e.g. after zero_grad(set_to_none=True)
                param.grad = grad
        _softplus_into(self.rho, self.sigma)
        torch.mul(self.sigma, self.sigma, out=self.variance)
        loss, out = super().__call__(X, y, weight)
        scale = float(self.kl_scale())
        if type(self.prior) is GaussianPrior:
            kl = self._gaussian_kl(scale)
        else:
            kl = self._scale_mixture_kl(scale)
        self.grad_rho.mul_(torch.sigmoid(self.rho))  # dsigma / drho
        return loss + scale * kl, out

    def _gaussian_kl(self, scale):
        """Closed-form KL value; adds its gradient (times ``scale``) to the gradients.

        On entry ``grad_rho`` holds the data term's ``dL/dsigma / sigma``; on exit it
        holds the total ``dL/dsigma``.
        """
        prior_var = self.prior.scale**2
        precision = 1.0 / prior_var
        sigma, grad_rho = self.sigma, self.grad_rho
        kl = gaussian_kl(self.mu, self.variance, self.variance.log(), prior_var)
        if scale:
            self.grad_mu.add_(self.mu, alpha=scale * precision)
            grad_rho.add_(scale * precision).mul_(sigma)
            grad_rho.addcdiv_(self.ones, sigma, value=-scale)  # - scale / sigma
        else:
            grad_rho.mul_(sigma)
        return kl

    def _scale_mixture_kl(self, scale):
        """One-sample KL estimate (as ScaleMixturePrior.kl_divergence) and its gradient.

        With ``w = mu + sigma * eps`` and ``r`` the posterior responsibility of the
        wide component at ``w``: ``d(-log p(w))/dw = w * (r / s1^2 + (1 - r) / s2^2)``.
        """
        prior, sigma, grad_rho = self.prior, self.sigma, self.grad_rho
        for view in self.noise_views:  # the draws of the autograd path, in its order
            view.normal_(generator=self.generator)
        w = torch.addcmul(self.mu, sigma, self.noise)
        w2 = w * w
        log_ratio = prior._log_wide_ratio(w2)
        log_prior = prior._narrow_log_prob(w2).sum() + F.softplus(log_ratio).sum()
        kl = gaussian_neg_entropy(sigma.log().sum(), self.n_params) - log_prior
        grad_rho.mul_(sigma)
        if scale:
            p1, p2 = 1.0 / prior.scale1**2, 1.0 / prior.scale2**2
            dw = torch.sigmoid(log_ratio).mul_(p1 - p2).add_(p2).mul_(w)  # -d log p / dw
            self.grad_mu.add_(dw, alpha=scale)
            grad_rho.addcmul_(dw, self.noise, value=scale)
            grad_rho.addcdiv_(self.ones, sigma, value=-scale)  # the entropy's - 1 / sigma
        return kl


# ------------------------------------------------------------------- what is in scope
def _mlp_layers(mlp):
    """An MLP's ``[(Dense, activation, derivative, dropout_p), ...]``, or None."""
    modules = list(mlp.features)
    if len(modules) % 3:
        return None
    layers = []
    for linear, act, drop in zip(modules[0::3], modules[1::3], modules[2::3]):
        activation = _activation(act)
        if activation is None or type(drop) not in (nn.Dropout, Dropout):
            return None
        layers.append((_Dense(linear), *activation, drop.p))
    layers.append((_Dense(mlp.output), None, None, 0.0))
    if any(layer.bias is None for layer, *_ in layers):
        return None
    return layers


def _stacked_layers(stacked):
    """A StackedMLP's layers (one activation for all), or None."""
    act = _activation(stacked.activation)
    if act is None:
        return None
    layers = [(_Stacked(w, b), *act, 0.0) for w, b in zip(stacked.weights, stacked.biases)]
    layers[-1] = (layers[-1][0], None, None, 0.0)
    return layers


def _bayesian_layers(mlp):
    """A BayesianMLP's layers and their activations (``(function, derivative)``), or
    None if unsupported."""
    modules = list(mlp.features)
    if len(modules) % 2:
        return None
    layers = [*modules[0::2], mlp.output]
    activations = [_activation(act) for act in modules[1::2]] + [(None, None)]
    if any(type(layer) is not BayesianLinear or layer.bias_mu is None for layer in layers):
        return None
    if any(act is None for act in activations):
        return None
    priors = {layer.prior for layer in layers}
    if len(priors) != 1 or type(next(iter(priors))) not in (GaussianPrior, ScaleMixturePrior):
        return None
    return layers, activations


def _default_cross_entropy(criterion):
    return (
        type(criterion) is nn.CrossEntropyLoss
        and criterion.weight is None
        and not criterion.label_smoothing
        and criterion.reduction == "mean"
    )


def make_fast_step(module, criterion, kl_scale=None):
    """A function ``(X, y, weight=None) -> (loss, output)`` that also fills
    ``param.grad``, or None.

    ``output`` is the network's raw output (before a Gaussian head's split into mean
    and variance).

    Parameters
    ----------
    module : torch.nn.Module
        The trained module: see the module docstring for what is in scope.
    criterion : torch.nn.Module
        The training criterion.
    kl_scale : callable, optional
        Returns the current weight of the KL divergence in the loss (Bayes by
        Backprop).  A BayesianMLP is in scope only with it.

    Returns
    -------
    step : callable or None
        None when the combination is not in scope (autograd is used instead).
    """
    head, body = None, module
    if isinstance(module, GaussianRegressionModule):
        if not plain_gaussian_head(module):
            return None
        head, body = module, module.body
    if head is None:
        loss = _cross_entropy
    elif head.heteroscedastic:
        loss = _heteroscedastic(head.n_targets)
    else:
        loss = _homoscedastic(head)

    if type(body) is StackedMLP:
        if head is not None and not isinstance(head, StackedGaussianRegressionModule):
            return None
        expected = EnsembleCrossEntropyLoss if head is None else EnsembleGaussianNLLLoss
        layers = _stacked_layers(body) if type(criterion) is expected else None
        if layers is None:
            return None
        return _StackedStep(layers, loss, generator_for(body.weights[0]), body.n_members)
    if isinstance(module, StackedGaussianRegressionModule):
        return None
    if head is None and not _default_cross_entropy(criterion):
        return None
    if head is not None and type(criterion) is not GaussianNLLLoss:
        return None
    if type(body) is MLP:
        layers = _mlp_layers(body)
        return (
            None if layers is None else _FastStep(layers, loss, generator_for(body.output.weight))
        )
    if type(body) is BayesianMLP and kl_scale is not None:
        parsed = _bayesian_layers(body)
        return None if parsed is None else _ELBOStep(*parsed, loss, kl_scale)
    return None
