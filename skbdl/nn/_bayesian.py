"""Bayesian linear layers for mean-field variational inference (Bayes by Backprop).

A :class:`BayesianLinear` layer holds a factorised Gaussian posterior
``q(w) = N(mu, sigma^2)`` over each weight and bias, with ``sigma = softplus(rho)``,
and a prior (:class:`GaussianPrior` or the scale mixture :class:`ScaleMixturePrior`
of Blundell et al. 2015).  It has three forward modes:

* training (``module.train()``): the *local reparameterisation trick* (Kingma,
  Salimans & Welling 2015).  Instead of sampling a weight matrix and multiplying, the
  layer samples its pre-activations, which are exactly Gaussian under the mean-field
  posterior: ``mean = x mu^T + b_mu``, ``var = x^2 (sigma^2)^T + b_sigma^2``,
  ``out = mean + sqrt(var) * eps``, with one ``eps`` per row and unit.  Each row thus
  sees its own weight sample at the cost of two matrix products, and the gradient's
  variance is lower than with one weight sample shared by the mini-batch.  (Flipout,
  Wen et al. 2018, also decorrelates rows but costs the same two products plus sign
  vectors and its per-row samples are only pseudo-independent; the local trick is exact
  for dense layers, so skbdl uses it.)
* evaluation (``module.eval()``): the posterior means.

Monte Carlo prediction uses :func:`sampled_network`: a view of the network in which
every layer holds ``n_samples`` complete weight draws, made at once on the weights'
device from explicitly seeded generators, and applies draw ``s`` to every row by a
batched matrix product (one coherent network per draw, so a row's prediction does
not depend on which rows are batched with it, and the fitted network is never
changed, so concurrent predictions cannot disturb each other).
"""

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..uncertainty import HALF_LOG_2PI as _HALF_LOG_2PI
from ._mlp import ACTIVATIONS
from ._random import init_like_torch, randn_like
from ._views import DrawnNetwork, Draws, in_place_layers, module_view

#: Added to the local variance before its square root (finite gradients at zero).
_VAR_EPS = 1e-16


class Prior(ABC):
    """A prior over weights that factorises over the entries; the base of skbdl's priors.

    A subclass defines :meth:`log_prob` and :meth:`kl_divergence`; any instance can be
    passed as ``prior`` to :class:`BayesianLinear`, :class:`BayesianMLP` and the
    ``BayesianMLP*`` estimators.

    See Also
    --------
    GaussianPrior, ScaleMixturePrior : The two priors skbdl provides.

    Examples
    --------
    >>> from skbdl.nn import GaussianPrior, Prior
    >>> isinstance(GaussianPrior(), Prior)
    True
    """

    @abstractmethod
    def log_prob(self, weight):
        """Element-wise log density of ``weight`` (a tensor of the same shape)."""

    @abstractmethod
    def kl_divergence(self, mu, sigma):
        """``KL(N(mu, sigma^2) || prior)`` summed over all entries (a scalar tensor)."""


def gaussian_kl(mu, var, log_var, prior_var=1.0, dim=None):
    """``KL(N(mu, var) || N(0, prior_var))``, element-wise, summed over ``dim``.

    ``0.5 * sum((var + mu^2) / prior_var - 1 - log_var + log prior_var)``: the one
    closed form of the KL terms of Bayes by Backprop (:class:`GaussianPrior`, its
    hand-written training step) and of the variational autoencoder.

    Parameters
    ----------
    mu, var, log_var : torch.Tensor
        Means, variances and log variances of the factorised Gaussian (one shape).
    prior_var : float, default=1.0
        Variance of the zero-mean prior.
    dim : int, optional
        The axis to sum over; all entries when None.

    Returns
    -------
    kl : torch.Tensor
        A scalar, or the input's shape without ``dim``.
    """
    terms = (var + mu.square()) / prior_var - log_var
    if dim is None:
        total, count = terms.sum(), terms.numel()
    else:
        total, count = terms.sum(dim), terms.shape[dim]
    return 0.5 * (total + count * (math.log(prior_var) - 1.0))


def gaussian_neg_entropy(log_sigma_sum, count):
    """Negative entropy of ``count`` independent Gaussians whose log standard
    deviations sum to ``log_sigma_sum``: ``-sum(log sigma) - count (1/2 + log 2 pi / 2)``."""
    return -log_sigma_sum - count * (0.5 + _HALF_LOG_2PI)


def _check_positive(name, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number; got {value!r}.")


@dataclass(frozen=True)
class GaussianPrior(Prior):
    """Independent ``N(0, scale^2)`` prior on every weight and bias.

    The KL divergence from a Gaussian posterior has a closed form, so training with
    this prior has no Monte Carlo noise in the KL term.

    Parameters
    ----------
    scale : float, default=1.0
        Standard deviation of the prior.

    See Also
    --------
    ScaleMixturePrior : The scale mixture prior of Blundell et al. (2015).
    BayesianLinear : The layer that uses a prior.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import GaussianPrior
    >>> prior = GaussianPrior(scale=1.0)
    >>> float(prior.kl_divergence(torch.zeros(3), torch.ones(3)))  # q equals the prior
    0.0
    """

    scale: float = 1.0

    def __post_init__(self):
        _check_positive("scale", self.scale)

    def log_prob(self, weight):
        """Element-wise log density.

        Parameters
        ----------
        weight : torch.Tensor
            Weights.

        Returns
        -------
        log_prob : torch.Tensor
            Same shape as ``weight``.
        """
        return -0.5 * (weight / self.scale).square() - math.log(self.scale) - _HALF_LOG_2PI

    def kl_divergence(self, mu, sigma):
        """Closed-form ``KL(N(mu, sigma^2) || N(0, scale^2))``, summed.

        Parameters
        ----------
        mu, sigma : torch.Tensor
            Posterior means and standard deviations (same shape).

        Returns
        -------
        kl : torch.Tensor
            A scalar: ``sum(log(scale / sigma) + (sigma^2 + mu^2) / (2 scale^2) - 1/2)``.
        """
        return gaussian_kl(mu, sigma.square(), 2 * sigma.log(), self.scale**2)


@dataclass(frozen=True)
class ScaleMixturePrior(Prior):
    """Scale mixture of two zero-mean Gaussians (Blundell et al. 2015, eq. 7).

    ``p(w) = weight * N(0, scale1^2) + (1 - weight) * N(0, scale2^2)``, with a wide
    component (``scale1``) and a narrow one (``scale2``) that pulls unneeded weights to
    zero.  The KL divergence has no closed form; :meth:`kl_divergence` returns an
    unbiased one-sample Monte Carlo estimate: the posterior's entropy in closed form
    minus the prior's log density at one reparameterised weight sample.

    Parameters
    ----------
    weight : float, default=0.5
        Mixing weight ``pi`` of the wide component, in (0, 1).
    scale1 : float, default=1.0
        Standard deviation of the wide component.
    scale2 : float, default=exp(-6)
        Standard deviation of the narrow component.

    See Also
    --------
    GaussianPrior : A single Gaussian, with a closed-form KL divergence.

    References
    ----------
    C. Blundell, J. Cornebise, K. Kavukcuoglu and D. Wierstra, "Weight Uncertainty in
    Neural Networks", ICML 2015.

    Examples
    --------
    >>> import math, torch
    >>> from skbdl.nn import ScaleMixturePrior
    >>> prior = ScaleMixturePrior(weight=0.5, scale1=1.0, scale2=math.exp(-6))
    >>> prior.log_prob(torch.zeros(2)).shape
    torch.Size([2])
    """

    weight: float = 0.5
    scale1: float = 1.0
    scale2: float = math.exp(-6)

    def __post_init__(self):
        if not (isinstance(self.weight, (int, float)) and 0 < self.weight < 1):
            raise ValueError(f"weight must lie in (0, 1); got {self.weight!r}.")
        _check_positive("scale1", self.scale1)
        _check_positive("scale2", self.scale2)

    def log_prob(self, weight):
        """Element-wise log density.

        Parameters
        ----------
        weight : torch.Tensor
            Weights.

        Returns
        -------
        log_prob : torch.Tensor
            Same shape as ``weight``.
        """
        weight_sq = weight.square()
        return self._narrow_log_prob(weight_sq) + F.softplus(self._log_wide_ratio(weight_sq))

    def _narrow_log_prob(self, weight_sq):
        """``log((1 - weight) N(w; 0, scale2^2))`` from ``w^2``."""
        return weight_sq * (-0.5 / self.scale2**2) + (
            math.log1p(-self.weight) - math.log(self.scale2) - _HALF_LOG_2PI
        )

    def _log_wide_ratio(self, weight_sq):
        """``log(weight N(w; 0, scale1^2) / ((1 - weight) N(w; 0, scale2^2)))`` from
        ``w^2``; its sigmoid is the wide component's responsibility for ``w``."""
        p1, p2 = 1.0 / self.scale1**2, 1.0 / self.scale2**2
        return weight_sq * (0.5 * (p2 - p1)) + (
            math.log(self.weight / (1 - self.weight)) + math.log(self.scale2 / self.scale1)
        )

    def kl_divergence(self, mu, sigma):
        """One-sample Monte Carlo estimate of ``KL(N(mu, sigma^2) || prior)``, summed.

        Parameters
        ----------
        mu, sigma : torch.Tensor
            Posterior means and standard deviations (same shape).

        Returns
        -------
        kl : torch.Tensor
            A scalar: ``-H[q] - log p(mu + sigma * eps)`` with ``eps ~ N(0, 1)`` from
            the fit's generator (:mod:`skbdl.nn._random`; torch's global one outside a
            fit); unbiased, differentiable in ``mu`` and ``sigma``.
        """
        sample = mu + sigma * randn_like(mu)
        return gaussian_neg_entropy(sigma.log().sum(), mu.numel()) - self.log_prob(sample).sum()


def draw_weights(mu, sigma, n_samples, generator):
    """``n_samples`` draws ``mu + sigma * eps`` of a factorised Gaussian posterior,
    stacked on a new axis 0, ``eps`` from ``generator`` (on its device, then moved to
    ``mu``'s): the one weight-sampling routine of the Bayesian layers' prediction views."""
    eps = torch.randn(
        (n_samples, *mu.shape), generator=generator, device=generator.device, dtype=mu.dtype
    )
    return torch.addcmul(mu, sigma, eps.to(mu.device))


def _rho(scale):
    """The ``rho`` with ``softplus(rho) = scale``."""
    return math.log(math.expm1(scale))


class _BayesianLayer(nn.Module):
    """Base of skbdl's Bayesian layers: a factorised Gaussian posterior over a weight
    tensor and an optional bias, with a prior.

    A subclass stores its shape attributes, calls :meth:`_init_posterior`, and
    defines :meth:`_reference` (the torch layer whose initialisation the means copy),
    :meth:`_transform` (the layer's linear map for given weights) and
    :meth:`_sampled` (the layer holding a prediction call's weight draws).  The
    rest is shared: ``sigma = softplus(rho)``, the KL divergence, and the forward
    pass (posterior means in eval mode; the local reparameterisation trick in
    training, whose per-unit output distribution is exact for any map that is linear
    in the weights: ``mean = transform(x, mu, b_mu)``,
    ``var = transform(x^2, sigma^2, b_sigma^2)``).
    :func:`bayesian_layers`, :func:`kl_divergence` and :func:`sampled_network` see
    every subclass.
    """

    def _init_posterior(self, weight_shape, bias_shape, prior, posterior_scale_init):
        _check_positive("posterior_scale_init", posterior_scale_init)
        if prior is not None and not isinstance(prior, Prior):
            raise TypeError(f"prior must be a skbdl.nn.Prior instance; got {prior!r}.")
        self.prior = GaussianPrior() if prior is None else prior
        self.posterior_scale_init = posterior_scale_init
        self.weight_mu = nn.Parameter(torch.empty(weight_shape))
        self.weight_rho = nn.Parameter(torch.empty(weight_shape))
        if bias_shape is not None:
            self.bias_mu = nn.Parameter(torch.empty(bias_shape))
            self.bias_rho = nn.Parameter(torch.empty(bias_shape))
        else:
            self.register_parameter("bias_mu", None)
            self.register_parameter("bias_rho", None)
        self.reset_parameters()

    def _reference(self):
        """A freshly initialised torch layer of the same shape (weights and bias)."""
        raise NotImplementedError

    def _transform(self, x, weight, bias):
        """The layer's map of ``x`` for the given weights and bias (linear in them)."""
        raise NotImplementedError

    def _sampled(self, draws, generator):
        """The layer with ``draws.n_samples`` weight draws, for :func:`sampled_network`."""
        raise NotImplementedError

    def reset_parameters(self):
        """Means as the torch layer initialises its weights; scales to their initial value."""
        # The initialisation of torch's Linear and ConvNd layers (what _reference
        # builds), drawn from the fit's generator (nn/_random.py).
        init_like_torch(self.weight_mu, self.bias_mu)
        with torch.no_grad():
            self.weight_rho.fill_(_rho(self.posterior_scale_init))
            if self.bias_mu is not None:
                self.bias_rho.fill_(_rho(self.posterior_scale_init))

    @property
    def weight_sigma(self):
        """Posterior standard deviations of the weights, ``softplus(weight_rho)``."""
        return F.softplus(self.weight_rho)

    @property
    def bias_sigma(self):
        """Posterior standard deviations of the biases (None without a bias)."""
        return None if self.bias_rho is None else F.softplus(self.bias_rho)

    def kl_divergence(self):
        """KL divergence from the posterior to the prior, summed over weights and biases.

        Returns
        -------
        kl : torch.Tensor
            A scalar (closed form for a Gaussian prior, a one-sample estimate for
            the scale mixture).
        """
        kl = self.prior.kl_divergence(self.weight_mu, self.weight_sigma)
        if self.bias_mu is not None:
            kl = kl + self.prior.kl_divergence(self.bias_mu, self.bias_sigma)
        return kl

    def _local_moments(self, x):
        """Mean and variance of every output under the posterior, for fixed ``x``."""
        mean = self._transform(x, self.weight_mu, self.bias_mu)
        bias_var = None if self.bias_rho is None else self.bias_sigma.square()
        var = self._transform(x.square(), self.weight_sigma.square(), bias_var)
        return mean, var

    def forward(self, x):
        if not self.training:
            return self._transform(x, self.weight_mu, self.bias_mu)
        mean, var = self._local_moments(x)
        return mean + (var + _VAR_EPS).sqrt() * randn_like(mean)


class BayesianLinear(_BayesianLayer):
    """Linear layer with a factorised Gaussian posterior over its weights and biases.

    A drop-in replacement for :class:`torch.nn.Linear` in networks trained by
    variational inference: every weight has a mean ``mu`` and a standard deviation
    ``softplus(rho)``.  In training mode the layer samples its outputs with the local
    reparameterisation trick (one independent weight draw per row, exact for the
    mean-field posterior); in eval mode it uses the posterior means;
    :func:`sampled_network` evaluates ``n_samples`` whole weight draws at once.  Add
    :func:`kl_divergence` of the network, divided by the number of training rows, to
    the mean loss over a mini-batch to train by the ELBO.

    Parameters
    ----------
    in_features : int
        Size of each input row.
    out_features : int
        Size of each output row.
    bias : bool, default=True
        Whether the layer has a (Bayesian) bias.
    prior : Prior, default=None
        Prior of the weights and biases; ``None`` means ``GaussianPrior(1.0)``.
    posterior_scale_init : float, default=0.01
        Initial standard deviation of every weight's posterior.  Means are initialised
        as in :class:`torch.nn.Linear`.

    Attributes
    ----------
    weight_mu, weight_rho : torch.nn.Parameter of shape (out_features, in_features)
        Posterior means and unconstrained scales of the weights.
    bias_mu, bias_rho : torch.nn.Parameter of shape (out_features,) or None
        The same for the biases.

    See Also
    --------
    kl_divergence : Sum of the KL divergences of every Bayesian layer of a module.
    BayesianMLP : A multi-layer perceptron made of these layers.
    skbdl.BayesianMLPRegressor, skbdl.BayesianMLPClassifier : The estimators.

    References
    ----------
    C. Blundell, J. Cornebise, K. Kavukcuoglu and D. Wierstra, "Weight Uncertainty in
    Neural Networks", ICML 2015.

    D. P. Kingma, T. Salimans and M. Welling, "Variational Dropout and the Local
    Reparameterization Trick", NeurIPS 2015.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import BayesianLinear, kl_divergence
    >>> layer = BayesianLinear(3, 2)
    >>> layer(torch.zeros(5, 3)).shape
    torch.Size([5, 2])
    >>> bool(kl_divergence(layer) > 0)
    True
    """

    def __init__(self, in_features, out_features, bias=True, prior=None, posterior_scale_init=0.01):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._init_posterior(
            (out_features, in_features),
            (out_features,) if bias else None,
            prior,
            posterior_scale_init,
        )

    def _reference(self):
        return nn.Linear(self.in_features, self.out_features, bias=self.bias_mu is not None)

    def _transform(self, x, weight, bias):
        return F.linear(x, weight, bias)

    def _sampled(self, draws, generator):
        return _SampledLinear(self, draws, generator)

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias_mu is not None}, prior={self.prior!r}"
        )


def bayesian_layers(module):
    """Every Bayesian layer (:class:`BayesianLinear`, :class:`BayesianConv1d`,
    :class:`BayesianConv2d`) inside ``module`` (including itself), in order."""
    return [m for m in module.modules() if isinstance(m, _BayesianLayer)]


def kl_divergence(module):
    """Sum of the KL divergences of every Bayesian layer of a module.

    Parameters
    ----------
    module : torch.nn.Module
        Any module; layers other than :class:`BayesianLinear`,
        :class:`BayesianConv1d` and :class:`BayesianConv2d` add nothing.

    Returns
    -------
    kl : torch.Tensor
        A scalar tensor (zero when the module has no Bayesian layer).  For the ELBO
        of a mini-batch, use ``mean_nll + kl_divergence(module) / n_train``.

    See Also
    --------
    BayesianLinear, BayesianConv2d : Layers whose KL divergences are summed.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import BayesianMLP, kl_divergence
    >>> net = BayesianMLP(4, 1, hidden_layer_sizes=(8,))
    >>> kl_divergence(net).shape
    torch.Size([])
    """
    layers = bayesian_layers(module)
    if not layers:
        return torch.zeros(())
    kl = layers[0].kl_divergence()
    for layer in layers[1:]:
        kl = kl + layer.kl_divergence()
    return kl


class _SampledLinear(nn.Module):
    """A :class:`BayesianLinear` layer's ``draws.n_samples`` weight draws, applied by
    a batched matrix product: copy ``s`` of the rows (sample-major) uses the ``s``-th
    of the draws being evaluated."""

    def __init__(self, layer, draws, generator):
        super().__init__()
        n_samples = draws.n_samples
        # (n_samples, in, out): x @ weight[s] is F.linear(x, draw s)
        self.weight = draw_weights(
            layer.weight_mu.t(), layer.weight_sigma.t(), n_samples, generator
        )
        self.bias = None
        if layer.bias_mu is not None:  # (n_samples, 1, out)
            self.bias = draw_weights(
                layer.bias_mu[None], layer.bias_sigma[None], n_samples, generator
            )
        self.draws, self.in_features = draws, layer.in_features

    def forward(self, x):
        grouped = x.reshape(len(self.draws), -1, self.in_features)
        weight = self.draws.select(self.weight)
        if self.bias is None:
            out = torch.bmm(grouped, weight)
        else:
            out = torch.baddbmm(self.draws.select(self.bias), grouped, weight)
        return out.reshape(*x.shape[:-1], out.shape[-1])


def sampled_network(module, n_samples, seed, device=None):
    """The network with ``n_samples`` weight draws of every Bayesian layer fixed.

    Returns a view of ``module`` (which is not changed, and shares its parameters
    with the view) whose input must hold the rows repeated ``n_samples`` times,
    sample-major (``X.repeat(n_samples, 1)``): every :class:`BayesianLinear` layer
    applies weight draw ``s`` to copy ``s`` of the rows, by one batched matrix
    product over the draws (a :class:`BayesianConv1d` or :class:`BayesianConv2d`
    layer by one grouped convolution over the draws); every other module is in eval
    mode.  The draws are made
    when the view is built, all at once, on ``device``, from generators seeded by
    ``seed`` and each layer's position: they do not depend on the rows, so a row's
    prediction is the same in any batch, and the view can be applied to any number
    of row chunks.  Each draw is a whole network (a function-space sample), unlike
    the local reparameterisation of training, which draws independent
    pre-activations per row.

    Parameters
    ----------
    module : torch.nn.Module
        A network containing Bayesian layers (:class:`BayesianLinear`,
        :class:`BayesianConv1d`, :class:`BayesianConv2d`), with rows on the first
        axis of every layer's input.
    n_samples : int
        Number of weight draws.
    seed : int
        Seed of the draws.
    device : torch.device or str, default=None
        Where to draw (the generators' device); ``None``: each layer's device.

    Returns
    -------
    view : torch.nn.Module
        Holds ``n_samples * n_parameters`` drawn weights.  Its ``sample(X)`` method
        returns the outputs of every draw for rows ``X``, shape ``(n_samples,
        n_rows, ...)``.

    See Also
    --------
    BayesianLinear : The layer whose weights are drawn.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import BayesianMLP, sampled_network
    >>> net = BayesianMLP(2, 1, hidden_layer_sizes=(8,))
    >>> X = torch.randn(5, 2)
    >>> with torch.no_grad():
    ...     out = sampled_network(net, n_samples=3, seed=0)(X.repeat(3, 1)).reshape(3, 5, 1)
    >>> out.shape
    torch.Size([3, 5, 1])
    """
    index = {id(layer): i for i, layer in enumerate(bayesian_layers(module))}
    draws = Draws(int(n_samples))
    in_place = in_place_layers(module, (BayesianMLP,))

    def replace(layer):
        if id(layer) in in_place:
            return nn.ReLU(inplace=True)
        if id(layer) not in index:
            return None
        where = layer.weight_mu.device if device is None else device
        generator = torch.Generator(device=where).manual_seed(int(seed) + 7919 * index[id(layer)])
        return layer._sampled(draws, generator)

    return DrawnNetwork(module_view(module, replace), draws)


class BayesianMLP(nn.Module):
    """Multi-layer perceptron of :class:`BayesianLinear` layers.

    ``BayesianLinear -> activation`` per hidden layer, then a ``BayesianLinear``
    output layer; every weight and bias has a Gaussian posterior and the same prior.

    Parameters
    ----------
    n_features_in : int
        Number of input features.
    n_outputs : int
        Width of the output layer (logits, or means and raw variances).
    hidden_layer_sizes : tuple of int, default=(100,)
        Width of each hidden layer; ``()`` gives Bayesian linear (or logistic)
        regression.
    activation : {'relu', 'tanh', 'logistic', 'identity', 'gelu', 'elu', 'silu'}, default='relu'
        Non-linearity after each hidden layer.
    prior : Prior, default=None
        Prior of every weight and bias; ``None`` means ``GaussianPrior(1.0)``.
    posterior_scale_init : float, default=0.01
        Initial posterior standard deviation of every weight and bias.

    Attributes
    ----------
    features : torch.nn.Sequential
        Everything up to the penultimate representation.
    output : BayesianLinear
        The last layer.

    See Also
    --------
    BayesianLinear : The layer.
    skbdl.BayesianMLPRegressor, skbdl.BayesianMLPClassifier : Estimators that train it.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import BayesianMLP
    >>> net = BayesianMLP(3, 2, hidden_layer_sizes=(8, 8))
    >>> net(torch.zeros(5, 3)).shape
    torch.Size([5, 2])
    """

    def __init__(
        self,
        n_features_in,
        n_outputs,
        hidden_layer_sizes=(100,),
        activation="relu",
        prior=None,
        posterior_scale_init=0.01,
    ):
        super().__init__()
        layers = []
        width = n_features_in
        for size in hidden_layer_sizes:
            layers += [
                BayesianLinear(width, size, prior=prior, posterior_scale_init=posterior_scale_init),
                ACTIVATIONS[activation](),
            ]
            width = size
        self.features = nn.Sequential(*layers)
        self.output = BayesianLinear(
            width, n_outputs, prior=prior, posterior_scale_init=posterior_scale_init
        )

    def forward(self, x):
        return self.output(self.features(x))
