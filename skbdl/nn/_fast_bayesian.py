"""Hand-written forward and backward passes of the ELBO for the default BayesianMLP.

The training step of a small Bayesian network costs dispatch overhead, not FLOPs: the
local reparameterisation trick doubles the matrix products of a layer and adds a
dozen element-wise operations on the parameters (softplus, squares, the KL divergence
and its gradient), each of which autograd records and replays.  This module computes
the loss (mean negative log-likelihood plus ``kl_scale * KL``) and every gradient of
a :class:`~skbdl.nn.BayesianMLP` with a Gaussian prior directly, using one
``torch._foreach_*`` call per element-wise operation over all the parameters, and
writes ``param.grad`` as autograd would.  ``tests/test_bbb.py`` checks it against
autograd.  Other modules, priors, activations or criteria return ``None`` from
:func:`make_fast_elbo_step` and train through autograd.

With ``s = sqrt(x^2 sigma^2 + b_sigma^2)`` and the sampled pre-activation
``z = x mu + b_mu + s * eps``, the gradients of a layer are, for ``g = dL/dz`` and
``g2 = g * eps / s``::

    dL/dmu_w = g^T x          dL/dsigma_w = sigma_w * (g2^T x^2)
    dL/dmu_b = sum(g)         dL/dsigma_b = sigma_b * sum(g2)
    dL/dx    = g mu_w + x * (g2 sigma_w^2)

and the KL divergence to ``N(0, s0^2)`` adds ``mu / s0^2`` and ``sigma / s0^2 - 1 / sigma``;
``dsigma / drho = sigmoid(rho)``.
"""

import math

import torch
from torch import nn

from ._bayesian import _HALF_LOG_2PI, BayesianLinear, BayesianMLP, GaussianPrior, ScaleMixturePrior
from ._fast import (
    _ACT,
    _DERIVATIVES,
    _cross_entropy,
    _heteroscedastic,
    _homoscedastic,
    plain_gaussian_head,
)
from ._mlp import GaussianNLLLoss, GaussianRegressionModule
from ._random import generator_for

#: torch's softplus writing into a preallocated tensor (private API, guarded): where a
#: torch release lacks it, the public F.softplus and a copy give the same values.
_SOFTPLUS_OUT = getattr(getattr(torch._C, "_nn", None), "softplus", None)


def _softplus_into(rho, out):
    """``out[:] = softplus(rho)`` (beta 1, threshold 20, as F.softplus)."""
    if _SOFTPLUS_OUT is not None:
        _SOFTPLUS_OUT(rho, 1, 20, out=out)
    else:
        out.copy_(torch.nn.functional.softplus(rho))


def _bayesian_mlp_layers(mlp):
    """``[(layer, activation_type), ...]`` and the output layer, or None if unsupported."""
    if type(mlp) is not BayesianMLP:
        return None
    modules = list(mlp.features)
    if len(modules) % 2:
        return None
    layers = []
    for layer, act in zip(modules[0::2], modules[1::2]):
        if type(layer) is not BayesianLinear or type(act) not in _DERIVATIVES:
            return None
        layers.append((layer, type(act)))
    layers.append((mlp.output, None))
    if any(layer.bias_mu is None for layer, _ in layers):
        return None
    priors = {layer.prior for layer, _ in layers}
    if len(priors) != 1 or type(next(iter(priors))) not in (GaussianPrior, ScaleMixturePrior):
        return None
    return layers


class _FastELBOStep:
    """Loss and gradients of the ELBO of a BayesianMLP (inside an optional Gaussian head).

    For the step's lifetime the posterior parameters (and their gradients) are views
    into flat buffers, so the element-wise work on all of them (softplus, the KL
    divergence and its gradient) is a handful of operations on one vector each;
    :meth:`release` gives every parameter its own storage again.
    """

    def __init__(self, layers, loss, kl_scale):
        self.layers, self.loss, self.kl_scale = layers, loss, kl_scale
        self.prior = layers[0][0].prior
        mus = [p for layer, _ in layers for p in (layer.weight_mu, layer.bias_mu)]
        rhos = [p for layer, _ in layers for p in (layer.weight_rho, layer.bias_rho)]
        self.params = mus + rhos
        n = sum(p.numel() for p in mus)
        self.n_params = n
        like = mus[0]
        self.mu, self.rho, self.grad_mu, self.grad_rho, self.sigma, self.variance = (
            torch.empty(n, dtype=like.dtype, device=like.device) for _ in range(6)
        )
        self.ones = torch.ones_like(self.mu)
        self.variances, self.grad_mu_views, self.grad_rho_views, self.noise_views = [], [], [], []
        self.noise = torch.empty_like(self.mu)
        # Built in on_train_begin, inside the fit's generator block (nn/_random.py).
        self.generator = generator_for(self.mu)
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
            self.grad_mu_views.append(mu.grad)
            self.grad_rho_views.append(rho.grad)
            self.variances.append(self.variance[size].view_as(mu))
            self.noise_views.append(self.noise[size].view_as(mu))

    def release(self):
        """Give every parameter (and gradient) its own storage again."""
        for param in self.params:
            param.data = param.data.clone()
            param.grad = param.grad.clone()

    def __call__(self, X, y):
        n = X.shape[0]
        for param, grad in self.grads:
            if param.grad is not grad:  # e.g. after zero_grad(set_to_none=True)
                param.grad = grad
        sigma, variance = self.sigma, self.variance
        _softplus_into(self.rho, sigma)
        torch.mul(sigma, sigma, out=variance)

        saved = []
        h = X
        for i, (layer, act_type) in enumerate(self.layers):
            h2 = h * h
            mean = torch.addmm(layer.bias_mu, h, layer.weight_mu.t())
            # The bias variance keeps the local variance positive: no epsilon needed.
            std = torch.addmm(self.variances[2 * i + 1], h2, self.variances[2 * i].t()).sqrt_()
            eps = torch.randn(
                mean.shape, generator=self.generator, device=mean.device, dtype=mean.dtype
            )
            z = torch.addcmul(mean, std, eps)
            local = None
            if act_type is not None and act_type is not nn.Identity:
                a = _ACT[act_type](z)
                local = _DERIVATIVES[act_type](z, a)
            else:
                a = z
            saved.append((h, h2, eps.div_(std), local))
            h = a

        loss, g = self.loss(h, y, n)
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i][0]
            x, x2, eps_over_std, _ = saved[i]
            g2 = g * eps_over_std
            torch.mm(g.t(), x, out=self.grad_mu_views[2 * i])
            torch.sum(g, 0, out=self.grad_mu_views[2 * i + 1])
            torch.mm(g2.t(), x2, out=self.grad_rho_views[2 * i])
            torch.sum(g2, 0, out=self.grad_rho_views[2 * i + 1])
            if i:
                g = torch.addcmul(g.mm(layer.weight_mu), x, g2.mm(self.variances[2 * i]))
                local = saved[i - 1][3]
                if local is not None:
                    g = g * local

        scale = float(self.kl_scale())
        if type(self.prior) is GaussianPrior:
            kl = self._gaussian_kl(scale)
        else:
            kl = self._scale_mixture_kl(scale)
        self.grad_rho.mul_(torch.sigmoid(self.rho))  # dsigma / drho
        return loss + scale * kl, h

    def _gaussian_kl(self, scale):
        """Closed-form KL value; adds its gradient (times ``scale``) to the gradients.

        On entry ``grad_rho`` holds the data term's ``dL/dsigma / sigma``; on exit it
        holds the total ``dL/dsigma``.
        """
        precision = 1.0 / self.prior.scale**2
        sigma, grad_rho = self.sigma, self.grad_rho
        kl = (
            (self.variance.sum() + self.mu.dot(self.mu)) * (0.5 * precision)
            - sigma.log().sum()
            + self.n_params * (math.log(self.prior.scale) - 0.5)
        )
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
        p1, p2 = 1.0 / prior.scale1**2, 1.0 / prior.scale2**2
        # log of wide minus narrow weighted densities at w, and log p(w) from it
        log_ratio = w2 * (0.5 * (p2 - p1)) + (
            math.log(prior.weight / (1 - prior.weight)) + math.log(prior.scale2 / prior.scale1)
        )
        narrow = -0.5 * p2 * w2.sum() + self.n_params * (
            math.log1p(-prior.weight) - math.log(prior.scale2) - _HALF_LOG_2PI
        )
        log_prior = narrow + torch.nn.functional.softplus(log_ratio).sum()
        kl = -sigma.log().sum() - self.n_params * (0.5 + _HALF_LOG_2PI) - log_prior
        grad_rho.mul_(sigma)
        if scale:
            dw = torch.sigmoid(log_ratio).mul_(p1 - p2).add_(p2).mul_(w)  # -d log p / dw
            self.grad_mu.add_(dw, alpha=scale)
            grad_rho.addcmul_(dw, self.noise, value=scale)
            grad_rho.addcdiv_(self.ones, sigma, value=-scale)  # the entropy's - 1 / sigma
        return kl


def make_fast_elbo_step(module, criterion, kl_scale):
    """A function ``(X, y) -> (loss, output)`` that also fills ``param.grad``, or None.

    Parameters
    ----------
    module : torch.nn.Module
        The trained module: a :class:`~skbdl.nn.BayesianMLP` (classification) or a
        :class:`~skbdl.nn.GaussianRegressionModule` around one, with biases, a
        supported activation and one :class:`~skbdl.nn.GaussianPrior` for all layers.
    criterion : torch.nn.Module
        ``CrossEntropyLoss`` (default settings) for a BayesianMLP, ``GaussianNLLLoss``
        for a Gaussian head.
    kl_scale : callable
        Returns the current weight of the KL divergence in the loss.

    Returns
    -------
    step : callable or None
        None when the combination is not supported (autograd is used instead).
    """
    if isinstance(module, GaussianRegressionModule):
        if not plain_gaussian_head(module):
            return None
        layers = _bayesian_mlp_layers(module.body)
        if layers is None or type(criterion) is not GaussianNLLLoss:
            return None
        loss = (
            _heteroscedastic(module.n_targets) if module.heteroscedastic else _homoscedastic(module)
        )
        return _FastELBOStep(layers, loss, kl_scale)
    layers = _bayesian_mlp_layers(module)
    if (
        layers is None
        or type(criterion) is not nn.CrossEntropyLoss
        or criterion.weight is not None
        or criterion.label_smoothing
        or criterion.reduction != "mean"
    ):
        return None
    return _FastELBOStep(layers, _cross_entropy, kl_scale)
