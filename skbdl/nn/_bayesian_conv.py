"""Bayesian convolutions for mean-field variational inference (Bayes by Backprop).

:class:`BayesianConv1d` and :class:`BayesianConv2d` are :class:`BayesianLinear`'s
counterparts for :class:`torch.nn.Conv1d` and :class:`torch.nn.Conv2d`: a factorised
Gaussian posterior ``N(mu, softplus(rho)^2)`` over every kernel weight and bias, the
same priors, the same KL divergence, and the same three forward modes (they share
:class:`~skbdl.nn._bayesian._BayesianLayer` with :class:`BayesianLinear`):

* training: the *local reparameterisation trick* (Kingma, Salimans & Welling 2015).
  A convolution is linear in its weights, so under the mean-field posterior every
  output unit (row, channel, position) is Gaussian with
  ``mean = conv(x, mu) + b_mu`` and ``var = conv(x^2, sigma^2) + b_sigma^2``; the
  layer samples ``mean + sqrt(var) * eps`` with one ``eps`` per output unit.
* evaluation: the posterior means (``conv(x, mu) + b_mu``).
* Monte Carlo prediction (:func:`sampled_network`): ``n_samples`` whole kernels
  drawn once per call, applied to copy ``s`` of the rows by one grouped convolution
  over the draws, so every draw is a coherent network.

Why the local reparameterisation rather than Flipout (Wen et al. 2018)?  It is what
:class:`BayesianLinear` uses, so a network mixing both layers trains one way; it
draws an independent output per row, so its gradients have lower variance than one
kernel draw shared by the mini-batch, and it costs two convolutions, as Flipout
does.  Its approximation: it samples the output units *independently*, also across
the positions of one row, whereas one kernel draw would make the outputs at
different positions of a row correlated (they share the kernel).  Each output
unit's marginal distribution is exact, and so is the expectation of anything linear
in the outputs; the joint over positions, hence the likelihood term seen by later
non-linear layers, is an approximation during training only.  (Flipout keeps that
joint exact per row, at the price of random sign flips whose rows are only
pseudo-independent.)  Prediction does not use it: it draws whole kernels.
"""

from torch import nn
from torch.nn import functional as F
from torch.nn.modules.utils import _pair, _single

from ._bayesian import _BayesianLayer, draw_weights


class _BayesianConvNd(_BayesianLayer):
    """Shared code of :class:`BayesianConv1d` and :class:`BayesianConv2d`."""

    _torch_layer = None  # nn.Conv1d or nn.Conv2d
    _tuple = None  # _single or _pair
    _conv = None  # F.conv1d or F.conv2d (a staticmethod)

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        prior=None,
        posterior_scale_init=0.01,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = self._tuple(kernel_size)
        self.stride = self._tuple(stride)
        self.padding = padding if isinstance(padding, str) else self._tuple(padding)
        self.dilation = self._tuple(dilation)
        self.groups = groups
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must both "
                f"be divisible by groups ({groups})."
            )
        self._init_posterior(
            (out_channels, in_channels // groups, *self.kernel_size),
            (out_channels,) if bias else None,
            prior,
            posterior_scale_init,
        )

    def _reference(self):
        return self._torch_layer(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            bias=self.bias_mu is not None,
        )

    def _transform(self, x, weight, bias, groups=None):
        conv = type(self)._conv
        groups = self.groups if groups is None else groups
        return conv(x, weight, bias, self.stride, self.padding, self.dilation, groups)

    def _sampled(self, draws, generator):
        return _SampledConv(self, draws, generator)

    def extra_repr(self):
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, bias={self.bias_mu is not None}, prior={self.prior!r}"
        )


_LAYER_DOC = """{summary}

    A drop-in replacement for :class:`torch.nn.{torch_name}` in networks trained by
    variational inference (for example a user's module passed to
    :class:`skbdl.BayesianMLPClassifier` or :class:`skbdl.BayesianMLPRegressor`):
    every kernel weight and bias has a Gaussian posterior ``N(mu, softplus(rho)^2)``
    and a prior, and the layer's KL divergence is counted in the ELBO by
    :func:`kl_divergence`.  In training mode it samples its outputs by the local
    reparameterisation trick, ``conv(x, mu) + b_mu + sqrt(conv(x^2, sigma^2) +
    b_sigma^2) * eps``; in eval mode it uses the posterior means;
    :func:`sampled_network` (what the estimators use to predict) evaluates
    ``n_samples`` whole kernel draws at once.  Zero padding only.

    Parameters
    ----------
    in_channels : int
        Channels of the input, shape ``(n_rows, in_channels, {spatial})``.
    out_channels : int
        Channels of the output.
    kernel_size : int or tuple of int
        Size of the kernel.
    stride : int or tuple of int, default=1
        Stride of the convolution.
    padding : int, tuple of int or {{'valid', 'same'}}, default=0
        Zero padding added on both sides of the input.
    dilation : int or tuple of int, default=1
        Spacing between kernel elements.
    groups : int, default=1
        Blocked connections from input to output channels, as in torch.
    bias : bool, default=True
        Whether the layer has a (Bayesian) bias per output channel.
    prior : Prior, default=None
        Prior of the weights and biases; ``None`` means ``GaussianPrior(1.0)``.
    posterior_scale_init : float, default=0.01
        Initial standard deviation of every weight's posterior.  Means are
        initialised as in :class:`torch.nn.{torch_name}`.

    Attributes
    ----------
    weight_mu, weight_rho : torch.nn.Parameter
        Posterior means and unconstrained scales of the kernel weights
        (``weight_sigma = softplus(weight_rho)``), of shape
        ``(out_channels, in_channels // groups, {kernel})``.
    bias_mu, bias_rho : torch.nn.Parameter of shape (out_channels,) or None
        The same for the biases.

    See Also
    --------
    BayesianLinear : The dense layer, with the same posterior, priors and modes.
    kl_divergence : Sum of the KL divergences of every Bayesian layer of a module.
    sampled_network : The network with whole weight draws fixed, for prediction.

    Notes
    -----
    The local reparameterisation trick (rather than Flipout, Wen et al. 2018) is
    used in training, as in :class:`BayesianLinear`: lower-variance gradients than
    one kernel draw per mini-batch, two convolutions per layer.  It samples every
    output unit independently, also across the positions of one row, whereas one
    kernel draw correlates the positions: each output unit's marginal is exact, the
    joint over positions is not (Flipout keeps it, with pseudo-independent rows).
    Prediction draws whole kernels and is exact in both respects.

    References
    ----------
    C. Blundell, J. Cornebise, K. Kavukcuoglu and D. Wierstra, "Weight Uncertainty in
    Neural Networks", ICML 2015.

    D. P. Kingma, T. Salimans and M. Welling, "Variational Dropout and the Local
    Reparameterization Trick", NeurIPS 2015.

    Y. Wen, P. Vicol, J. Ba, D. Tran and R. Grosse, "Flipout: Efficient
    Pseudo-Independent Weight Perturbations on Mini-Batches", ICLR 2018.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import {name}, kl_divergence
    >>> _ = torch.manual_seed(0)
    >>> layer = {name}(1, 4, kernel_size=3, padding=1)
    >>> layer(torch.zeros({example_shape})).shape
    torch.Size([{example_out}])
    >>> bool(kl_divergence(layer) > 0)
    True
    """


class BayesianConv1d(_BayesianConvNd):
    _torch_layer = nn.Conv1d
    _tuple = staticmethod(_single)
    _conv = staticmethod(F.conv1d)


class BayesianConv2d(_BayesianConvNd):
    _torch_layer = nn.Conv2d
    _tuple = staticmethod(_pair)
    _conv = staticmethod(F.conv2d)


BayesianConv1d.__doc__ = _LAYER_DOC.format(
    summary="1-D convolution with a factorised Gaussian posterior over its kernel and bias.",
    torch_name="Conv1d",
    name="BayesianConv1d",
    spatial="length",
    kernel="kernel_size",
    example_shape="5, 1, 16",
    example_out="5, 4, 16",
)
BayesianConv2d.__doc__ = _LAYER_DOC.format(
    summary="2-D convolution with a factorised Gaussian posterior over its kernel and bias.",
    torch_name="Conv2d",
    name="BayesianConv2d",
    spatial="height, width",
    kernel="kernel_height, kernel_width",
    example_shape="5, 1, 8, 8",
    example_out="5, 4, 8, 8",
)


class _SampledConv(nn.Module):
    """A Bayesian convolution's ``draws.n_samples`` kernel draws, applied by one
    grouped convolution: copy ``s`` of the rows (sample-major) uses the ``s``-th of
    the draws being evaluated."""

    def __init__(self, layer, draws, generator):
        super().__init__()
        n_samples = draws.n_samples
        self.weight = draw_weights(layer.weight_mu, layer.weight_sigma, n_samples, generator)
        self.bias = None
        if layer.bias_mu is not None:
            self.bias = draw_weights(layer.bias_mu, layer.bias_sigma, n_samples, generator)
        # The layer's map, not the layer: a view must not hold the fitted module.
        self.draws, self.groups, self.transform = draws, layer.groups, layer._transform

    def forward(self, x):
        n_draws = len(self.draws)
        weight = self.draws.select(self.weight)
        bias = None if self.bias is None else self.draws.select(self.bias).reshape(-1)
        n_rows, channels, spatial = x.shape[0] // n_draws, x.shape[1], x.shape[2:]
        # (draws * rows, c, ...) -> (rows, draws * c, ...): draw s owns channel group s.
        grouped = x.reshape(n_draws, n_rows, channels, *spatial).transpose(0, 1)
        grouped = grouped.reshape(n_rows, n_draws * channels, *spatial)
        out = self.transform(
            grouped, weight.reshape(-1, *weight.shape[2:]), bias, groups=n_draws * self.groups
        )
        out = out.reshape(n_rows, n_draws, -1, *out.shape[2:]).transpose(0, 1)
        return out.reshape(n_draws * n_rows, *out.shape[2:])
