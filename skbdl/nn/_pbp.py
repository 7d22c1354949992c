"""Probabilistic backpropagation (Hernández-Lobato & Adams 2015): the building blocks.

Three pieces, each usable and testable on its own:

* :func:`relu_moments` (torch) and :func:`relu_moments_numpy`: mean and variance of
  ``max(0, z)`` for a Gaussian ``z``, and (numpy) their partial derivatives.
* :class:`PBPNetwork`: the posterior of a ReLU network with one factorised Gaussian
  per weight (all layers in one flat buffer), Gamma posteriors over the noise
  precision and the weight-prior precision, and prediction by moment propagation
  or by sampling weights.
* :class:`ADFTrainer`: the paper's training algorithm on a :class:`PBPNetwork`, in
  numpy float64: one assumed-density-filtering update per data point, with the log
  normaliser's gradients in closed form (a hand-written backward pass through the
  moment propagation), and the expectation-propagation refinement of the prior
  factors of every weight at once after each pass.

Parametrisation (as in the paper's code): layer ``l`` maps its input ``a`` (with a
constant 1 appended for the bias) to ``W_l [a; 1] / sqrt(n_in + 1)``; the prior is
``w ~ N(0, 1 / lambda)`` on every entry of every ``W_l``, ``lambda ~ Gamma``; the
likelihood is ``y ~ N(f(x), 1 / gamma)``, ``gamma ~ Gamma``, per output.
"""

import math

import numpy as np
import torch
from scipy.special import log_ndtr, ndtr
from torch import nn

__all__ = ["ADFTrainer", "PBPNetwork", "relu_moments", "relu_moments_numpy"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

#: Smallest variance kept for a hidden unit (moment propagation floor).
_MIN_VARIANCE = 1e-12

#: Updates that leave a weight variance at or below this are rejected (as in the
#: paper's code).
_MIN_WEIGHT_VARIANCE = 1e-100


# ------------------------------------------------------------ rectified Gaussians
def relu_moments(mean, var):
    """Mean and variance of ``max(0, z)`` for ``z ~ N(mean, var)`` (torch, elementwise).

    Parameters
    ----------
    mean : torch.Tensor
        Means of the Gaussian inputs.
    var : torch.Tensor
        Their variances (positive), broadcastable with ``mean``.

    Returns
    -------
    out_mean, out_var : torch.Tensor
        ``E[max(0, z)] = Phi(a) (m + s g)`` and ``Var[max(0, z)]`` with
        ``a = m / s`` and ``g = phi(a) / Phi(a)``, written as the variance of the
        truncated Gaussian plus the Bernoulli part, which stays accurate in float64
        from ``a = -35`` (values below ~1e-270) to ``a = +inf``.

    See Also
    --------
    relu_moments_numpy : The numpy twin, with derivatives.

    References
    ----------
    J. M. Hernández-Lobato and R. P. Adams, "Probabilistic Backpropagation for
    Scalable Learning of Bayesian Neural Networks", ICML 2015.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import relu_moments
    >>> m, v = relu_moments(torch.tensor([0.0]), torch.tensor([1.0]))
    >>> round(m.item(), 4), round(v.item(), 4)  # 1/sqrt(2 pi), 1/2 - 1/(2 pi)
    (0.3989, 0.3408)
    """
    sd = var.sqrt()
    alpha = mean / sd
    log_cdf = torch.special.log_ndtr(alpha)
    cdf = log_cdf.exp()
    mills = torch.exp(-0.5 * alpha * alpha - _LOG_SQRT_2PI - log_cdf)  # phi / Phi
    truncated_mean = mean + sd * mills
    out_mean = cdf * truncated_mean
    out_var = out_mean * truncated_mean * torch.special.ndtr(-alpha) + cdf * var * (
        1.0 - mills * (mills + alpha)
    )
    return out_mean, out_var.clamp_min(_MIN_VARIANCE)


def relu_moments_numpy(mean, var):
    """Mean and variance of ``max(0, z)``, ``z ~ N(mean, var)``, and their derivatives.

    The numpy twin of :func:`relu_moments`, used by the training loop.

    Parameters
    ----------
    mean, var : ndarray
        Means and (positive) variances of the Gaussian inputs.

    Returns
    -------
    out_mean, out_var : ndarray
        The moments of the rectified Gaussian.
    derivatives : tuple of ndarray
        ``(d out_mean / d mean, d out_mean / d var, d out_var / d mean,
        d out_var / d var)``: ``Phi(a)``, ``phi(a) / (2 s)``,
        ``2 out_mean Phi(-a)`` and ``Phi(a) - out_mean phi(a) / s``.

    See Also
    --------
    relu_moments : The torch version used at prediction time.

    References
    ----------
    J. M. Hernández-Lobato and R. P. Adams, "Probabilistic Backpropagation for
    Scalable Learning of Bayesian Neural Networks", ICML 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl.nn import relu_moments_numpy
    >>> m, v, (dm_dmean, *_) = relu_moments_numpy(np.array([0.0]), np.array([1.0]))
    >>> m.round(4), v.round(4), dm_dmean
    (array([0.3989]), array([0.3408]), array([0.5]))
    """
    sd = np.sqrt(var)
    alpha = mean / sd
    log_cdf = log_ndtr(alpha)
    cdf = np.exp(log_cdf)
    mills = np.exp(-0.5 * alpha * alpha - _LOG_SQRT_2PI - log_cdf)
    truncated_mean = mean + sd * mills
    out_mean = cdf * truncated_mean
    upper = ndtr(-alpha)
    out_var = out_mean * truncated_mean * upper + cdf * var * (1.0 - mills * (mills + alpha))
    np.maximum(out_var, _MIN_VARIANCE, out=out_var)
    pdf_over_sd = cdf * mills / sd  # phi(a) / s
    derivatives = (
        cdf,
        0.5 * pdf_over_sd,
        2.0 * out_mean * upper,
        cdf - out_mean * pdf_over_sd,
    )
    return out_mean, out_var, derivatives


# ------------------------------------------------------------------ the network
class PBPNetwork(nn.Module):
    """Factorised Gaussian posterior of a ReLU network, with Gamma noise and prior.

    Holds the state of probabilistic backpropagation; :class:`ADFTrainer` fits it.
    Every quantity is a float64 buffer (nothing here is trained by gradient
    descent): ``weight_mean`` and ``weight_var`` hold every weight of every layer
    in one flat vector (layer ``l`` is the ``(n_out, n_in + 1)`` block
    :meth:`layer_views` returns; the last column multiplies the constant 1, i.e.
    is the bias), ``noise_shape`` / ``noise_rate`` the Gamma posterior of each
    output's noise precision, ``prior_shape`` / ``prior_rate`` the Gamma posterior of
    the weights' prior precision, and ``site_*`` the expectation-propagation
    factors of each weight's prior (natural parameters).

    Parameters
    ----------
    n_features_in : int
        Number of inputs.
    n_outputs : int
        Number of (standardised) regression targets.
    hidden_layer_sizes : tuple of int, default=(50,)
        Widths of the ReLU hidden layers; ``()`` is Bayesian linear regression.
    noise_precision_prior : tuple of float, default=(6.0, 6.0)
        Shape and rate of the Gamma prior on each output's noise precision.
    weight_precision_prior : tuple of float, default=(6.0, 6.0)
        Shape and rate of the Gamma prior on the weights' prior precision.
    generator : torch.Generator, default=None
        Draws the initial weight means (torch's global generator when None).

    Attributes
    ----------
    layer_shapes : list of tuple
        ``(n_out, n_in + 1)`` per layer.
    scales : list of float
        ``1 / sqrt(n_in + 1)`` per layer.

    See Also
    --------
    ADFTrainer : Fits this posterior.
    skbdl.PBPRegressor : The estimator built on it.

    References
    ----------
    J. M. Hernández-Lobato and R. P. Adams, "Probabilistic Backpropagation for
    Scalable Learning of Bayesian Neural Networks", ICML 2015.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import PBPNetwork
    >>> net = PBPNetwork(3, 1, hidden_layer_sizes=(8,))
    >>> mean, var = net(torch.zeros(5, 3))
    >>> mean.shape, bool((var > 0).all()), net.noise_variance().tolist()
    (torch.Size([5, 1]), True, [1.2])
    """

    def __init__(
        self,
        n_features_in,
        n_outputs,
        hidden_layer_sizes=(50,),
        noise_precision_prior=(6.0, 6.0),
        weight_precision_prior=(6.0, 6.0),
        generator=None,
    ):
        super().__init__()
        widths = [int(n_features_in), *map(int, hidden_layer_sizes), int(n_outputs)]
        self.layer_shapes = [(n_out, n_in + 1) for n_in, n_out in zip(widths[:-1], widths[1:])]
        self.scales = [1.0 / math.sqrt(n_in) for _, n_in in self.layer_shapes]
        n_weights = sum(a * b for a, b in self.layer_shapes)
        noise_shape, noise_rate = map(float, noise_precision_prior)
        prior_shape, prior_rate = map(float, weight_precision_prior)
        f64 = dict(dtype=torch.float64)
        # Initial means as in the paper's code: N(0, 1 / (n_in + 1)) per entry.
        means = [
            torch.randn(shape, generator=generator, **f64) * scale
            for shape, scale in zip(self.layer_shapes, self.scales)
        ]
        self.register_buffer("weight_mean", torch.cat([m.reshape(-1) for m in means]))
        self.register_buffer(
            "weight_var", torch.full((n_weights,), prior_rate / (prior_shape - 1.0), **f64)
        )
        self.register_buffer("noise_shape", torch.full((int(n_outputs),), noise_shape, **f64))
        self.register_buffer("noise_rate", torch.full((int(n_outputs),), noise_rate, **f64))
        self.register_buffer("prior_shape", torch.tensor(prior_shape, **f64))
        self.register_buffer("prior_rate", torch.tensor(prior_rate, **f64))
        self.register_buffer("initial_prior", torch.tensor([prior_shape, prior_rate], **f64))
        # EP factors of the priors, natural parameters: the Gaussian factor starts as
        # N(0, E[1/lambda]); the Gamma factors start empty.
        self.register_buffer("site_precision", 1.0 / self.weight_var.clone())
        self.register_buffer("site_mean_times_precision", torch.zeros(n_weights, **f64))
        self.register_buffer("site_shape", torch.zeros(n_weights, **f64))
        self.register_buffer("site_rate", torch.zeros(n_weights, **f64))

    @property
    def n_layers(self):
        return len(self.layer_shapes)

    def layer_views(self, flat):
        """Per-layer ``(n_out, n_in + 1)`` views of a flat weight vector (no copy)."""
        views, start = [], 0
        for n_out, n_in in self.layer_shapes:
            views.append(flat[start : start + n_out * n_in].view(n_out, n_in))
            start += n_out * n_in
        return views

    def noise_variance(self):
        """Expected noise variance ``E[1 / gamma] = rate / (shape - 1)`` per output."""
        return self.noise_rate / (self.noise_shape - 1.0)

    def forward(self, X):
        """Mean and variance of the network output under the weight posterior.

        Moment propagation: every layer's pre-activations are matched to
        independent Gaussians.  Exact for the mean and variance of a network with
        no or one hidden layer; an approximation for deeper ones.

        Parameters
        ----------
        X : torch.Tensor of shape (n_rows, n_features_in)

        Returns
        -------
        mean, var : torch.Tensor of shape (n_rows, n_outputs), float64
            ``var`` is the epistemic variance only (add :meth:`noise_variance`).
        """
        mean = X.to(torch.float64)
        var = None
        means = self.layer_views(self.weight_mean)
        variances = self.layer_views(self.weight_var)
        for index, (M, V, scale) in enumerate(zip(means, variances, self.scales)):
            ones = torch.ones(len(mean), 1, dtype=mean.dtype, device=mean.device)
            mb = torch.cat([mean, ones], dim=1)
            pre_mean = scale * mb @ M.T
            if var is None:
                pre_var = scale**2 * (mb * mb) @ V.T
            else:
                vb = torch.cat([var, torch.zeros_like(ones)], dim=1)
                pre_var = scale**2 * ((vb + mb * mb) @ V.T + vb @ (M * M).T)
            if index == self.n_layers - 1:
                return pre_mean, pre_var
            mean, var = relu_moments(pre_mean, pre_var)
        raise AssertionError("unreachable")

    def sample_outputs(self, X, n_samples, generator=None):
        """Outputs of ``n_samples`` networks with weights drawn from the posterior.

        Parameters
        ----------
        X : torch.Tensor of shape (n_rows, n_features_in)
        n_samples : int
        generator : torch.Generator, default=None
            Source of the weight draws, made on its device (on the weights'
            device without one); the draws do not depend on ``X``.

        Returns
        -------
        mean_samples : torch.Tensor of shape (n_samples, n_rows, n_outputs), float64
        """
        device = self.weight_mean.device if generator is None else generator.device
        noise = torch.randn(
            n_samples,
            len(self.weight_mean),
            generator=generator,
            dtype=torch.float64,
            device=device,
        )
        weights = self.weight_mean + self.weight_var.sqrt() * noise.to(self.weight_mean.device)
        h = X.to(torch.float64).expand(n_samples, *X.shape)
        start = 0
        for index, ((n_out, n_in), scale) in enumerate(zip(self.layer_shapes, self.scales)):
            W = weights[:, start : start + n_out * n_in].view(n_samples, n_out, n_in)
            start += n_out * n_in
            h = scale * (
                torch.baddbmm(W[:, :, -1:].transpose(1, 2), h, W[:, :, :-1].transpose(1, 2))
            )
            if index < self.n_layers - 1:
                h = h.clamp_min(0.0)
        return h


# ------------------------------------------------------------------ the training
class ADFTrainer:
    """Assumed density filtering and EP prior refinement for a :class:`PBPNetwork`.

    Works in numpy float64 on views of the network's CPU buffers (updates are in
    place).  One call of :meth:`adf_pass` visits every row once, in a random order,
    and updates the posterior after each row; :meth:`refine_prior` then runs one
    parallel EP update of every weight's prior factor and of the Gamma posterior on
    the prior precision.

    Parameters
    ----------
    network : PBPNetwork
        The posterior to update (its buffers must be on the CPU).

    Attributes
    ----------
    grad_mean, grad_var : ndarray of shape (n_weights,)
        ``d log Z / d mean`` and ``d log Z / d var`` of every weight for the last
        row passed to :meth:`log_normalizer_gradients`.

    See Also
    --------
    PBPNetwork : The posterior it updates.
    skbdl.PBPRegressor : The estimator that runs it.

    References
    ----------
    J. M. Hernández-Lobato and R. P. Adams, "Probabilistic Backpropagation for
    Scalable Learning of Bayesian Neural Networks", ICML 2015.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skbdl.nn import ADFTrainer, PBPNetwork
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(100, 2); y = X[:, :1] - X[:, 1:]
    >>> net = PBPNetwork(2, 1, hidden_layer_sizes=(10,))
    >>> trainer = ADFTrainer(net)
    >>> losses = [trainer.adf_pass(X, y, rng) for _ in range(3)]
    >>> trainer.refine_prior()
    >>> bool(losses[-1] < losses[0])
    True
    """

    def __init__(self, network):
        self.network = network
        # Flat views of all the weights, and per-layer (n_out, n_in + 1) views of them.
        self.mean = network.weight_mean.numpy()
        self.var = network.weight_var.numpy()
        self.means = [m.numpy() for m in network.layer_views(network.weight_mean)]
        self.variances = [v.numpy() for v in network.layer_views(network.weight_var)]
        self.scales = network.scales
        self.noise_shape = network.noise_shape.numpy()
        self.noise_rate = network.noise_rate.numpy()
        # Preallocated work arrays: each layer's input mean and variance with the
        # constant bias input appended (mean 1, variance 0), and the gradients.
        self._inputs = [np.append(np.zeros(n_in - 1), 1.0) for _, n_in in network.layer_shapes]
        self._input_vars = [np.zeros(n_in) for _, n_in in network.layer_shapes]
        self.grad_mean = np.zeros_like(self.mean)
        self.grad_var = np.zeros_like(self.var)
        self._grad_means = [
            g.reshape(m.shape) for g, m in zip(self._split(self.grad_mean), self.means)
        ]
        self._grad_vars = [
            g.reshape(m.shape) for g, m in zip(self._split(self.grad_var), self.means)
        ]
        self._offsets = np.array([[-1.0], [0.0], [1.0]])

    def _split(self, flat):
        sizes = np.cumsum([m.size for m in self.means])[:-1]
        return np.split(flat, sizes)

    # ---------------------------------------------------------- one data point
    def log_normalizer_gradients(self, x, y):
        """The ADF update's ingredients for one row, with the current posterior.

        Parameters
        ----------
        x : ndarray of shape (n_features_in,)
        y : ndarray of shape (n_outputs,)

        Returns
        -------
        log_z : ndarray of shape (3, n_outputs)
            Per output, ``log Z`` (the log predictive density of ``y`` without the
            ``-log(2 pi) / 2`` constant) with the noise variance replaced by
            ``rate / (shape - 1)`` (the expected one: row 0), ``rate / shape``
            (row 1) and ``rate / (shape + 1)`` (row 2), for the Gamma update.

        Notes
        -----
        Also leaves ``d log Z / d mean`` and ``d log Z / d var`` of every weight
        (``log Z`` of row 0, summed over outputs) in ``grad_mean`` and ``grad_var``
        (flat, in the order of ``weight_mean``).  Closed form: the backward pass of
        the moment propagation, written out.
        """
        scales, inputs, input_vars = self.scales, self._inputs, self._input_vars
        n_layers = len(scales)
        cache = [None] * n_layers
        inputs[0][:-1] = x
        for index in range(n_layers):
            M, V, scale = self.means[index], self.variances[index], scales[index]
            mb = inputs[index]
            m2 = mb * mb
            if index == 0:
                second = m2  # deterministic inputs: E[a^2] = a^2
                pre_var = (V @ m2) * (scale * scale)
                MM = None
            else:
                vb = input_vars[index]
                second = vb + m2
                MM = M * M
                pre_var = (V @ second + MM @ vb) * (scale * scale)
            pre_mean = (M @ mb) * scale
            if index < n_layers - 1:
                out_mean, out_var, derivatives = relu_moments_numpy(pre_mean, pre_var)
                inputs[index + 1][:-1] = out_mean
                input_vars[index + 1][:-1] = out_var
                cache[index] = (second, MM, derivatives)
            else:
                cache[index] = (second, MM, None)

        residual = y - pre_mean
        residual2 = residual * residual
        variances = pre_var + self.noise_rate / (self.noise_shape + self._offsets)
        log_z = -0.5 * (np.log(variances) + residual2 / variances)
        total_var = variances[0]
        g_mean = residual / total_var
        g_var = (0.5 * (residual2 / total_var - 1.0)) / total_var
        for index in range(n_layers - 1, -1, -1):
            M, V, scale = self.means[index], self.variances[index], scales[index]
            second, MM, _ = cache[index]
            mb = inputs[index]
            gm = g_mean * scale
            gv = g_var * (scale * scale)
            np.multiply(gm[:, None], mb, out=self._grad_means[index])
            np.multiply(gv[:, None], second, out=self._grad_vars[index])
            if index == 0:
                break
            vb = input_vars[index]
            gv_vb = gv[:, None] * vb
            gv_vb *= M
            gv_vb *= 2.0
            self._grad_means[index] += gv_vb
            g_in_mean = (gm @ M + 2.0 * (gv @ V) * mb)[:-1]
            g_in_var = (gv @ (V + MM))[:-1]
            dm_dmean, dm_dvar, dv_dmean, dv_dvar = cache[index - 1][2]
            g_mean = g_in_mean * dm_dmean + g_in_var * dv_dmean
            g_var = g_in_mean * dm_dvar + g_in_var * dv_dvar
        return log_z

    def update(self, x, y):
        """One ADF update of the weights and noise posteriors with the row ``(x, y)``.

        Returns
        -------
        log_z : float
            ``log Z`` summed over outputs (with the constant), i.e. the log
            predictive density of ``y`` before the update.
        """
        log_z = self.log_normalizer_gradients(x, y)
        mean, var, gm, gv = self.mean, self.var, self.grad_mean, self.grad_var
        # v_new = v - v^2 (gm^2 - 2 gv);  m_new = m + v gm  (all layers at once)
        step = gm * gm
        step -= 2.0 * gv
        step *= var
        step *= var
        new_var = var - step
        if new_var.min() > _MIN_WEIGHT_VARIANCE:  # also False for NaN
            gm *= var
            mean += gm
            var[...] = new_var
        else:  # the paper's code keeps the old values of those weights
            new_mean = mean + var * gm
            ok = (new_var > _MIN_WEIGHT_VARIANCE) & np.isfinite(new_mean)
            mean[ok] = new_mean[ok]
            var[ok] = new_var[ok]
        shape, rate = self.noise_shape, self.noise_rate
        log_z0, log_z1, log_z2 = log_z
        new_shape = 1.0 / (np.exp(log_z2 - 2.0 * log_z1 + log_z0) * ((shape + 1.0) / shape) - 1.0)
        new_rate = 1.0 / (
            (np.exp(log_z2 - log_z1) * (shape + 1.0) - np.exp(log_z1 - log_z0) * shape) / rate
        )
        ok = (new_shape > 1.0) & (new_rate > 0.0) & np.isfinite(new_shape + new_rate)
        if ok.all():
            shape[...] = new_shape
            rate[...] = new_rate
        else:
            shape[ok] = new_shape[ok]
            rate[ok] = new_rate[ok]
        return float(log_z0.sum()) - len(log_z0) * _LOG_SQRT_2PI

    def adf_pass(self, X, y, random_state):
        """One pass over the rows in a random order; returns the mean ``-log Z``.

        Parameters
        ----------
        X : ndarray of shape (n_rows, n_features_in), float64
        y : ndarray of shape (n_rows, n_outputs), float64 (standardised)
        random_state : numpy.random.RandomState

        Returns
        -------
        loss : float
            Mean negative log predictive density of each row just before its update
            (a prequential estimate of the test NLL, standardised units).
        """
        total = 0.0
        update = self.update
        for i in random_state.permutation(len(X)):
            total -= update(X[i], y[i])
        return total / len(X)

    # ---------------------------------------------------------- the prior factors
    def refine_prior(self):
        """One parallel EP update of all the prior factors (in place).

        For every weight at once: remove its prior factor from the posterior (the
        cavity), moment-match the cavity times ``N(w | 0, 1 / lambda)`` with
        ``lambda`` under its cavity Gamma, and store the new factor.  The paper's code
        visits the weights one after another, each seeing the Gamma posterior the
        previous one left; here all use the current one and the Gamma posterior is
        rebuilt from the prior and all factors (parallel EP).  An update whose
        cavity is improper is skipped, as in the paper's code; if the rebuilt Gamma
        would be improper, the step on the Gamma factors is halved until it is not.
        """
        net = self.network
        m, v = self.mean, self.var
        site_precision = net.site_precision.numpy()
        site_mtp = net.site_mean_times_precision.numpy()
        site_shape = net.site_shape.numpy()
        site_rate = net.site_rate.numpy()
        shape, rate = float(net.prior_shape), float(net.prior_rate)

        cav_precision = 1.0 / v - site_precision
        cav_mtp = m / v - site_mtp
        cav_shape = shape - site_shape  # natural parameters: shape - 1 and -rate
        cav_rate = rate - site_rate
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            cav_v = 1.0 / cav_precision
            cav_m = cav_mtp * cav_v
            ok = (cav_v > 0) & (cav_rate > 0) & (cav_shape > 1) & (cav_v < 1e6)
            v0 = cav_v + cav_rate / (cav_shape - 1.0)
            v1 = cav_v + cav_rate / cav_shape
            v2 = cav_v + cav_rate / (cav_shape + 1.0)
            log_z = -0.5 * np.log(v0) - 0.5 * cav_m**2 / v0
            log_z1 = -0.5 * np.log(v1) - 0.5 * cav_m**2 / v1
            log_z2 = -0.5 * np.log(v2) - 0.5 * cav_m**2 / v2
            d_mean = -cav_m / v0
            d_var = -0.5 / v0 + 0.5 * cav_m**2 / v0**2
            new_m = cav_m + cav_v * d_mean
            new_v = cav_v - cav_v**2 * (d_mean**2 - 2.0 * d_var)
            new_shape = 1.0 / (
                np.exp(log_z2 - 2.0 * log_z1 + log_z) * (cav_shape + 1.0) / cav_shape - 1.0
            )
            new_rate = 1.0 / (
                np.exp(log_z2 - log_z1) * (cav_shape + 1.0) / cav_rate
                - np.exp(log_z1 - log_z) * cav_shape / cav_rate
            )
            ok &= np.isfinite(new_m) & (new_v > 0) & np.isfinite(new_v)
            ok &= np.isfinite(new_shape) & np.isfinite(new_rate)

        site_precision[ok] = 1.0 / new_v[ok] - cav_precision[ok]
        site_mtp[ok] = new_m[ok] / new_v[ok] - cav_mtp[ok]
        m[ok] = new_m[ok]
        v[ok] = new_v[ok]

        prior_shape, prior_rate = net.initial_prior.tolist()
        step_shape = np.where(ok, new_shape - cav_shape, site_shape) - site_shape
        step_rate = np.where(ok, new_rate - cav_rate, site_rate) - site_rate
        for damping in 0.5 ** np.arange(20):
            shape_sites = site_shape + damping * step_shape
            rate_sites = site_rate + damping * step_rate
            total_shape = prior_shape + shape_sites.sum()
            total_rate = prior_rate + rate_sites.sum()
            if total_shape > 1.0 and total_rate > 0.0:
                site_shape[...] = shape_sites
                site_rate[...] = rate_sites
                net.prior_shape.fill_(total_shape)
                net.prior_rate.fill_(total_rate)
                break
