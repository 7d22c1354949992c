"""Gaussian weight posteriors: which weights carry them, times how their covariance
is structured.

Two independent axes, as in laplace-torch (Daxberger et al. 2021), each a handful of
small classes:

* **which weights** (a *subset*): :class:`AllWeights`, :class:`LastLayer`,
  :class:`NamedWeights`.  A subset names the parameters of a module that carry the
  posterior and fixes their flattening (parameter by parameter, each row-major), and
  lists the ``nn.Linear`` layers they form (what a Kronecker factorisation needs).
* **covariance structure**: :class:`DenseCovariance`, :class:`DiagonalCovariance`,
  :class:`KroneckerCovariance` (one ``G (x) A`` block per linear layer) and
  :class:`LowRankDiagonalCovariance` (SWAG).  Each draws deviations
  (:meth:`~Covariance.sample`), gives the linearised predictive covariance
  ``J Sigma J^T`` (:meth:`~Covariance.functional_variance`), its log-determinant and
  Mahalanobis norm.

Laplace approximations build a covariance from the curvature of the log-likelihood
(the generalised Gauss-Newton matrix, :func:`ggn_curvature`: :class:`FullCurvature`,
:class:`DiagonalCurvature`, :class:`KroneckerCurvature`) and an isotropic prior
precision ``delta``: ``Sigma = (H + delta I)^-1``; the prior precision that maximises
the Laplace evidence depends on the curvature through its eigenvalues only
(:func:`laplace_prior_precision`, :func:`log_marginal_likelihood`).  SWAG builds its
covariance from the moments of SGD iterates (:class:`SWAGMoments`).
"""

import math

import numpy as np
import torch
from scipy.optimize import brentq
from torch import nn

from .nn._views import functional_copy, module_view


# ------------------------------------------------------------ which weights
def _qualified(module_name, attribute):
    """A parameter's name from its module's name (``''`` for the root module)."""
    return f"{module_name}.{attribute}" if module_name else attribute


class WeightSubset:
    """Which parameters of a module carry the posterior (base class)."""

    def names(self, module):
        """Names (as in ``module.named_parameters()``) of the parameters, in order."""
        raise NotImplementedError

    def parameters(self, module):
        """The parameters, flattened and concatenated: ``(n_params,)`` float64."""
        params = dict(module.named_parameters())
        return torch.cat([params[n].detach().reshape(-1).double() for n in self.names(module)])

    def linear_layers(self, module):
        """``[(name, layer)]``: the ``nn.Linear`` layers whose weight (and bias, next)
        make up the subset, in order; raises if the subset is not made of whole ones."""
        names = self.names(module)
        layers, expected = [], []
        for name, layer in module.named_modules():
            if isinstance(layer, nn.Linear) and _qualified(name, "weight") in names:
                layers.append((name, layer))
                expected += [_qualified(name, "weight")] + (
                    [_qualified(name, "bias")] if layer.bias is not None else []
                )
        if expected != names:
            raise ValueError(
                "hessian_structure='kron' needs weights made of whole torch.nn.Linear layers "
                f"(each weight followed by its bias); {type(module).__name__} has other "
                "parameters. Use hessian_structure='diag'."
            )
        return layers


class AllWeights(WeightSubset):
    """Every parameter that requires a gradient."""

    def names(self, module):
        return [n for n, p in module.named_parameters() if p.requires_grad]


def last_linear(module, name=None):
    """``(name, layer)``: the ``nn.Linear`` layer of ``module`` named ``name`` (as in
    ``module.get_submodule``), or for ``None`` the last one ``module`` registers;
    a ValueError, listing the network's linear layers, when there is none."""
    if name is None:
        linears = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(
                f"The network {type(module).__name__} has no torch.nn.Linear layer; a "
                "last-layer posterior needs the linear layer that maps the penultimate "
                "features to the outputs."
            )
        return linears[-1]
    try:
        layer = module.get_submodule(name)
    except AttributeError:
        linear_names = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(
            f"last_layer={name!r} names no layer of the network "
            f"{type(module).__name__}; its torch.nn.Linear layers are {linear_names}."
        ) from None
    if not isinstance(layer, nn.Linear):
        raise ValueError(
            f"last_layer must name a torch.nn.Linear layer; {name!r} is a {type(layer).__name__}."
        )
    return name, layer


class LastLayer(WeightSubset):
    """The weight and bias of the last ``nn.Linear`` layer (or the one named; see
    :func:`last_linear`)."""

    def __init__(self, name=None):
        self.name = name

    def names(self, module):
        name, layer = last_linear(module, self.name)
        biases = [_qualified(name, "bias")] if layer.bias is not None else []
        return [_qualified(name, "weight"), *biases]


class NamedWeights(WeightSubset):
    """The parameters whose names start with one of ``prefixes``."""

    def __init__(self, prefixes):
        self.prefixes = tuple(prefixes)

    def names(self, module):
        names = [n for n, _ in module.named_parameters() if n.startswith(self.prefixes)]
        if not names:
            raise ValueError(
                f"No parameter of {type(module).__name__} starts with {self.prefixes}."
            )
        return names


def unflatten(module, names, vector):
    """``{name: tensor}`` of the shapes of ``module``'s parameters from a flat vector."""
    params, out, start = dict(module.named_parameters()), {}, 0
    for name in names:
        size = params[name].numel()
        out[name] = vector[..., start : start + size].reshape(
            *vector.shape[:-1], *params[name].shape
        )
        start += size
    return out


# ------------------------------------------------------- Jacobians, curvature
def network_jacobian(module, names, X, n_outputs=None):
    """Outputs and their Jacobian with respect to the named parameters.

    Parameters
    ----------
    module : torch.nn.Module
        Maps rows ``X`` to ``(n_rows, width)``; evaluated in eval mode, not changed.
    names : list of str
        Parameters to differentiate by, flattened in this order.
    X : torch.Tensor of shape (n_rows, n_features)
    n_outputs : int, default=None
        Keep the first ``n_outputs`` outputs (a regression network's means).

    Returns
    -------
    outputs : torch.Tensor of shape (n_rows, n_outputs)
    jacobian : torch.Tensor of shape (n_rows, n_outputs, n_params)
    """
    J = _jacobian(module, names, X, n_outputs)
    with torch.no_grad():
        out = module_view(module)(X)[:, :n_outputs].double()
    return out, J


def _jacobian(module, names, X, n_outputs=None):
    """The Jacobian of :func:`network_jacobian` alone (no output pass)."""
    view = functional_copy(module_view(module))
    params = {n: p.detach() for n, p in module.named_parameters() if n in names}
    keep = slice(None, n_outputs)

    def f(p, x):
        return torch.func.functional_call(view, p, (x[None],))[0, keep]

    jac = torch.func.vmap(torch.func.jacrev(f), in_dims=(None, 0))(params, X)
    J = torch.cat([jac[n].reshape(len(X), jac[n].shape[1], -1) for n in names], dim=2)
    return J.detach().double()


def _loss_hessian_root(kind, outputs, noise_var=None):
    """``L`` with ``L L^T`` the Hessian of the negative log-likelihood in the outputs:
    ``(n_rows, C, C)``; ``diag(p) - p p^T = (diag(sqrt p) - p sqrt(p)^T)(...)^T`` for
    the softmax cross-entropy, ``diag(1 / sqrt(noise_var))`` for a Gaussian."""
    if kind == "classification":
        p = torch.softmax(outputs, dim=1)
        root_p = p.sqrt()
        return torch.diag_embed(root_p) - p[:, :, None] * root_p[:, None, :]
    return torch.diag_embed(noise_var.rsqrt().expand_as(outputs))


def probit_log_proba(mean, cov):
    """Log of the pairwise-probit predictive class probabilities.

    From logit means ``(n, C)`` and covariances ``(n, C, C)``: ``p_c = 1 / sum_d
    exp(-(mu_c - mu_d) / sqrt(1 + pi v_cd / 8))`` with ``v_cd`` the variance of the
    logit difference ``f_c - f_d``, then normalised; ``(n, C)``.  The probit
    approximation applied to each pairwise logistic comparison: MacKay's for two
    classes and, unlike a per-logit one, blind to the posterior variance of a shift
    common to all logits (as the softmax is).
    """
    diagonal = cov.diagonal(dim1=1, dim2=2)
    diff_var = (diagonal[:, :, None] + diagonal[:, None, :] - 2.0 * cov).clamp_min(0.0)
    diff_mean = mean[:, :, None] - mean[:, None, :]
    scaled = diff_mean / torch.sqrt(1.0 + math.pi / 8.0 * diff_var)
    log_unnormalised = -torch.logsumexp(-scaled, dim=2)
    return log_unnormalised - torch.logsumexp(log_unnormalised, dim=1, keepdim=True)


class _RecordInput(nn.Module):
    """``layer``, appending its input to ``sink`` (one call's list)."""

    def __init__(self, layer, sink):
        super().__init__()
        self.layer, self.sink = layer, sink

    def forward(self, x, *args, **kwargs):
        self.sink.append(x)
        return self.layer(x, *args, **kwargs)


def layer_inputs(module, layers, X):
    """``(output, inputs)``: ``module`` run on ``X`` (as a view in eval mode; the
    module is not changed, and no hooks are registered, so concurrent calls are safe)
    and ``inputs[i]`` the last input ``layers[i]`` received in that pass (None if it
    was not called).  Gradients are tracked unless the caller disables them."""
    sinks = {id(layer): [] for layer in layers}

    def record(m):
        return _RecordInput(m, sinks[id(m)]) if id(m) in sinks else None

    output = module_view(module, record)(X)
    return output, [sinks[id(layer)][-1] if sinks[id(layer)] else None for layer in layers]


def ggn_curvature(structure, module, subset, batches, kind, n_outputs=None, sample_weight=None):
    """The generalised Gauss-Newton matrix ``sum_n w_n J_n^T Lambda_n J_n`` of a network.

    Parameters
    ----------
    structure : {'full', 'diag', 'kron'}
        ``'kron'``: per linear layer ``G (x) A / n`` (K-FAC), with ``A`` the sum of
        the layer's (bias-augmented) inputs' outer products and ``G`` that of the
        loss-Hessian-whitened output Jacobians with respect to its pre-activations.
    module, subset : the network and the :class:`WeightSubset` of it.
    batches : iterable of ``(X, noise_var)`` or ``(X, noise_var, outputs)`` tensors
        (``noise_var`` None for classification; else ``(n_rows, n_outputs)`` or
        broadcastable; ``outputs``, float64 ``(n_rows, n_outputs)``, the module's
        kept outputs on ``X`` when already computed, saving a forward pass).
    kind : {'classification', 'regression'}
    n_outputs : int, default=None
        Outputs kept (see :func:`network_jacobian`).
    sample_weight : torch.Tensor of shape (n_rows,), default=None
        Float64 row weights ``w_n`` (all 1 when None), over the rows of all
        ``batches`` in order: the curvature of the weighted log-likelihood ``sum_n
        w_n log p(y_n | x_n)``.  Both Kronecker factors sum ``w_n`` times a row's
        outer products and ``n`` is ``sum_n w_n``, so integer weights give the
        curvature of the rows repeated ``w_n`` times, in every structure.

    Returns
    -------
    curvature : FullCurvature, DiagonalCurvature or KroneckerCurvature
    """
    names = subset.names(module)
    layers = subset.linear_layers(module) if structure == "kron" else None
    if layers is not None:
        biases = [_qualified(name, "bias") for name, _ in layers]
        if any(layer.bias is None for _, layer in layers):
            raise ValueError("hessian_structure='kron' needs linear layers with biases.")
        G = [0.0] * len(layers)
        A = [0.0] * len(layers)
    if sample_weight is not None:
        sample_weight = torch.as_tensor(sample_weight, dtype=torch.float64)
    total, n_rows = 0.0, 0
    for X, noise_var, *given in batches:
        out = given[0] if given else None
        if layers is not None:  # the layers' inputs (and the outputs) of one pass
            with torch.no_grad():
                recorded, inputs = layer_inputs(module, [layer for _, layer in layers], X)
            out = recorded[:, :n_outputs].double() if out is None else out
        if out is None:
            out, J = network_jacobian(module, names, X, n_outputs)
        else:
            J = _jacobian(module, names if layers is None else biases, X, n_outputs)
        L = _loss_hessian_root(kind, out, noise_var)
        M = torch.einsum("ncd,ncp->ndp", L, J)  # L^T J: Lambda-whitened Jacobians
        if sample_weight is None:
            w = None
            n_rows += len(X)
        else:  # this batch's rows' weights, (n, 1, 1) against M
            w = sample_weight[n_rows : n_rows + len(X)].to(M.device)[:, None, None]
            n_rows += len(X)
            if len(w) < len(X):
                _weight_mismatch(sample_weight, f"at least {n_rows}")
        if structure == "full":
            wM = M if w is None else M * w
            M, wM = M.reshape(-1, M.shape[-1]), wM.reshape(-1, M.shape[-1])
            total = total + wM.T @ M
        elif structure == "diag":
            square = M.square() if w is None else M.square() * w
            total = total + square.sum(dim=(0, 1))
        else:
            start = 0
            for i, (_, layer) in enumerate(layers):
                g = M[:, :, start : start + layer.out_features]
                wg = g if w is None else g * w
                g = g.reshape(-1, layer.out_features)
                wg = wg.reshape(-1, layer.out_features)
                start += layer.out_features
                a = inputs[i].reshape(len(X), -1).double()
                a = torch.cat([a, torch.ones(len(a), 1, dtype=a.dtype, device=a.device)], 1)
                wa = a if w is None else a * w[:, 0]
                G[i] = G[i] + wg.T @ g
                A[i] = A[i] + wa.T @ a
    if sample_weight is not None:
        if n_rows != len(sample_weight):
            _weight_mismatch(sample_weight, n_rows)
        n_rows = float(sample_weight.sum())  # the rows counted with their weights
    if structure == "full":
        return FullCurvature(total.cpu().numpy())
    if structure == "diag":
        return DiagonalCurvature(total.cpu().numpy())
    return KroneckerCurvature([(g.cpu().numpy(), a.cpu().numpy()) for g, a in zip(G, A)], n_rows)


def _weight_mismatch(sample_weight, n_rows):
    raise ValueError(
        f"sample_weight has {len(sample_weight)} rows but the batches {n_rows}; pass one "
        "weight per row of the batches, in order."
    )


class FullCurvature:
    """A dense ``(n_params, n_params)`` curvature matrix."""

    def __init__(self, hessian):
        self.hessian = np.asarray(hessian, dtype=np.float64)
        eigenvalues, self.vectors = np.linalg.eigh(self.hessian)
        self._eigenvalues = np.clip(eigenvalues, 0.0, None)

    def eigenvalues(self):
        return self._eigenvalues

    def covariance(self, prior_precision):
        root = self.vectors / np.sqrt(self._eigenvalues + prior_precision)
        return DenseCovariance(root)


class DiagonalCurvature:
    """The diagonal ``(n_params,)`` of a curvature matrix."""

    def __init__(self, diagonal):
        self.diagonal = np.clip(np.asarray(diagonal, dtype=np.float64), 0.0, None)

    def eigenvalues(self):
        return self.diagonal

    def covariance(self, prior_precision):
        return DiagonalCovariance(1.0 / (self.diagonal + prior_precision))


class KroneckerCurvature:
    """Per linear layer ``G (x) A / n_rows`` (K-FAC), in the order of the subset.

    ``factors`` lists ``(G, A)``: ``G`` ``(out, out)``, ``A`` ``(in + 1, in + 1)``
    (inputs augmented with a 1 for the bias).  The layer's block is over its weight,
    row-major, then its bias.  ``n_rows`` may be a weighted count (the sum of the
    rows' weights, not rounded); a count of zero stands for 1.
    """

    def __init__(self, factors, n_rows):
        self.n_rows = n_rows if n_rows > 0 else 1
        self._eigen = []
        for G, A in factors:
            eg, QG = np.linalg.eigh(np.asarray(G, dtype=np.float64))
            ea, QA = np.linalg.eigh(np.asarray(A, dtype=np.float64))
            self._eigen.append((np.clip(eg, 0, None), QG, np.clip(ea, 0, None) / self.n_rows, QA))

    def eigenvalues(self):
        return np.concatenate([np.outer(eg, ea).ravel() for eg, _, ea, _ in self._eigen])

    def covariance(self, prior_precision):
        blocks = [
            (QG, QA, 1.0 / (np.outer(eg, ea) + prior_precision)) for eg, QG, ea, QA in self._eigen
        ]
        return KroneckerCovariance(blocks)


# --------------------------------------------------------- evidence, prior
def log_marginal_likelihood(log_likelihood, mean, prior_precision, eigenvalues, sample_weight=None):
    """Laplace approximation of the log evidence under a ``N(0, I / delta)`` prior.

    ``log p(y | theta) - delta |theta|^2 / 2 + P log(delta) / 2 - sum_i log(e_i +
    delta) / 2`` with ``e_i`` the curvature's eigenvalues (the log-determinant and
    Mahalanobis terms of the Gaussian integral; ``2 pi`` factors cancel).
    ``log_likelihood`` is the total, or the rows' log-likelihoods ``(n_rows, ...)``,
    then summed with the rows' weights ``sample_weight`` (all 1 when None): the
    weighted likelihood ``prod_i p(y_i | theta)^(w_i)``.
    """
    log_likelihood = np.asarray(log_likelihood, dtype=np.float64)
    if log_likelihood.ndim:  # the rows' terms
        rows = log_likelihood.reshape(len(log_likelihood), -1).sum(axis=1)
        log_likelihood = rows.sum() if sample_weight is None else sample_weight @ rows
    e = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    return (
        float(log_likelihood)
        - 0.5 * prior_precision * float(np.sum(np.asarray(mean) ** 2))
        + 0.5 * e.size * math.log(prior_precision)
        - 0.5 * float(np.sum(np.log(e + prior_precision)))
    )


def laplace_prior_precision(eigenvalues, weight_mean):
    """The prior precision that maximises the Laplace marginal likelihood.

    For an isotropic Gaussian prior ``N(0, 1 / delta)`` on ``P`` weights with MAP
    ``theta`` and likelihood Hessian eigenvalues ``e_i``, the Laplace log marginal
    likelihood depends on ``delta`` through ``-delta |theta|^2 / 2 + P log(delta) / 2
    - sum_i log(e_i + delta) / 2``; its maximiser solves
    ``delta |theta|^2 = sum_i e_i / (e_i + delta)`` (unique; found by Brent's method
    on ``log delta``).

    Parameters
    ----------
    eigenvalues : ndarray of shape (P,)
        Eigenvalues of the likelihood's Hessian (negative round-off is clipped).
    weight_mean : ndarray
        The MAP weights (any shape, ``P`` entries).

    Returns
    -------
    delta : float

    References
    ----------
    D. J. C. MacKay, "The Evidence Framework Applied to Classification Networks",
    Neural Computation 4(5), 1992.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl._posterior import laplace_prior_precision
    >>> delta = laplace_prior_precision(np.array([100.0, 1.0]), np.array([1.0, 0.0]))
    >>> round(delta * 1.0, 6) == round(100 / (100 + delta) + 1 / (1 + delta), 6)
    True
    """
    e = np.clip(eigenvalues, 0.0, None)
    norm2 = float(np.sum(np.asarray(weight_mean) ** 2))
    if norm2 == 0.0 or not np.any(e > 0):
        return 1.0

    def gap(log_delta):
        delta = math.exp(log_delta)
        return float(np.sum(e / (e + delta))) - delta * norm2

    low, high = -40.0, 40.0
    while gap(low) < 0:
        low -= 20.0
    while gap(high) > 0:
        high += 20.0
    return math.exp(brentq(gap, low, high, xtol=1e-10))


# -------------------------------------------------------- covariance structures
def standard_normal(shape, generator, device):
    """Float64 ``N(0, 1)`` draws of ``shape`` from ``generator``, made on the
    generator's device (so a seed gives the same draws wherever they are used) and
    moved to ``device``."""
    noise = torch.randn(shape, generator=generator, dtype=torch.float64, device=generator.device)
    return noise.to(device)


class Covariance(nn.Module):
    """A Gaussian posterior's covariance over ``n_params`` flattened weights (base).

    Buffers are float64; move the module to the prediction device with ``.to``.
    """

    def sample(self, n_samples, generator):
        """Deviations from the mean of ``n_samples`` draws, ``(n_samples, n_params)``."""
        raise NotImplementedError

    def functional_variance(self, J):
        """``J Sigma J^T`` for Jacobians ``J`` ``(n_rows, C, n_params)``: ``(n_rows, C, C)``."""
        raise NotImplementedError

    def dense(self):
        """The covariance matrix, ``(n_params, n_params)`` (for small ``n_params``)."""
        eye = torch.eye(self.n_params, dtype=torch.float64, device=self._device())
        return self.functional_variance(eye[None])[0]

    def log_det(self):
        """``log det Sigma``."""
        return float(torch.linalg.slogdet(self.dense())[1])

    def mahalanobis(self, v):
        """``v^T Sigma^-1 v`` for ``v`` ``(n_params,)``."""
        v = torch.as_tensor(v, dtype=torch.float64, device=self._device())
        return float(v @ torch.linalg.solve(self.dense(), v))

    def _device(self):
        return next(iter(self.buffers())).device

    def _normal(self, shape, generator):
        return standard_normal(shape, generator, self._device())


class DenseCovariance(Covariance):
    """``Sigma = R R^T`` from a square root ``R`` ``(n_params, k)``."""

    def __init__(self, root):
        super().__init__()
        self.register_buffer("root", torch.as_tensor(root, dtype=torch.float64))
        self.n_params = self.root.shape[0]

    def sample(self, n_samples, generator):
        return self._normal((n_samples, self.root.shape[1]), generator) @ self.root.T

    def functional_variance(self, J):
        JR = J @ self.root
        return JR @ JR.transpose(-1, -2)

    def log_det(self):
        return 2.0 * float(torch.linalg.slogdet(self.root)[1])


class DiagonalCovariance(Covariance):
    """``Sigma = diag(variance)``."""

    def __init__(self, variance):
        super().__init__()
        self.register_buffer("variance", torch.as_tensor(variance, dtype=torch.float64))
        self.n_params = self.variance.shape[0]

    def sample(self, n_samples, generator):
        return self._normal((n_samples, self.n_params), generator) * self.variance.sqrt()

    def functional_variance(self, J):
        return (J * self.variance) @ J.transpose(-1, -2)

    def log_det(self):
        return float(self.variance.log().sum())

    def mahalanobis(self, v):
        v = torch.as_tensor(v, dtype=torch.float64, device=self._device())
        return float((v.square() / self.variance).sum())


class KroneckerCovariance(Covariance):
    """Block-diagonal, one block per linear layer: ``(Q_G (x) Q_A) D (Q_G (x) Q_A)^T``.

    ``blocks`` lists ``(Q_G, Q_A, D)``: eigenvectors of the layer's ``G`` ``(out,
    out)`` and ``A`` ``(in + 1, in + 1)`` factors and the posterior variances ``D``
    ``(out, in + 1)`` in that eigenbasis.  A layer's parameters are its weight
    (row-major) then its bias; ``W_aug = [W | b]`` is the layer as one matrix.
    """

    def __init__(self, blocks):
        super().__init__()
        self.shapes = []
        for i, (QG, QA, D) in enumerate(blocks):
            for name, value in (("QG", QG), ("QA", QA), ("D", D)):
                self.register_buffer(f"{name}{i}", torch.as_tensor(value, dtype=torch.float64))
            self.shapes.append((len(QG), len(QA) - 1))
        self.n_params = sum(o * (i + 1) for o, i in self.shapes)

    def _blocks(self):
        start = 0
        for k, (n_out, n_in) in enumerate(self.shapes):
            size = n_out * (n_in + 1)
            yield (
                slice(start, start + size),
                n_out,
                n_in,
                (getattr(self, f"{b}{k}") for b in "QG QA D".split()),
            )
            start += size

    @staticmethod
    def _as_matrix(v, n_out, n_in):
        """``(..., out * in + out)`` parameters to ``(..., out, in + 1)`` ``[W | b]``."""
        W = v[..., : n_out * n_in].reshape(*v.shape[:-1], n_out, n_in)
        return torch.cat([W, v[..., n_out * n_in :, None]], dim=-1)

    def sample(self, n_samples, generator):
        parts = []
        for _, n_out, n_in, (QG, QA, D) in self._blocks():
            Z = self._normal((n_samples, n_out, n_in + 1), generator) * D.sqrt()
            M = QG @ Z @ QA.T
            parts += [M[..., :n_in].reshape(n_samples, -1), M[..., n_in]]
        return torch.cat(parts, dim=1)

    def functional_variance(self, J):
        total = 0.0
        for where, n_out, n_in, (QG, QA, D) in self._blocks():
            T = QG.T @ self._as_matrix(J[..., where], n_out, n_in) @ QA  # (n, C, out, in+1)
            total = total + torch.einsum("ncij,ndij,ij->ncd", T, T, D)
        return total

    def log_det(self):
        return float(sum(D.log().sum() for _, _, _, (_, _, D) in self._blocks()))


class LowRankDiagonalCovariance(Covariance):
    """SWAG's ``Sigma = diag(variance) / 2 + D D^T / (2 (K - 1))``.

    ``variance`` ``(n_params,)`` is the diagonal of the iterates' covariance, ``D``
    ``(n_params, K)`` the deviations of the last ``K`` iterates from the running
    mean (the low-rank part is zero for ``K < 2``).
    """

    def __init__(self, variance, deviations):
        super().__init__()
        self.register_buffer("variance", torch.as_tensor(variance, dtype=torch.float64))
        deviations = torch.as_tensor(deviations, dtype=torch.float64)
        rank = deviations.shape[1]
        scale = 1.0 / math.sqrt(2.0 * (rank - 1)) if rank > 1 else 0.0
        self.register_buffer("low_rank", deviations * scale)
        self.n_params = self.variance.shape[0]

    def sample(self, n_samples, generator):
        diag = self._normal((n_samples, self.n_params), generator) * (self.variance / 2).sqrt()
        low = self._normal((n_samples, self.low_rank.shape[1]), generator) @ self.low_rank.T
        return diag + low

    def functional_variance(self, J):
        JU = J @ self.low_rank
        return (J * (self.variance / 2)) @ J.transpose(-1, -2) + JU @ JU.transpose(-1, -2)


class SWAGMoments:
    """Running SWAG statistics of a sequence of weight vectors (Maddox et al. 2019).

    :meth:`update` with each iterate ``theta_i`` keeps the running mean, the running
    mean of squares and the deviations ``theta_i - mean_i`` of the last ``max_rank``
    iterates (``mean_i`` the mean after ``theta_i``), in float64.
    """

    def __init__(self, max_rank):
        self.max_rank, self.n, self.mean, self.sq_mean, self.deviations = (
            max_rank,
            0,
            None,
            None,
            [],
        )

    def update(self, theta):
        theta = torch.as_tensor(theta, dtype=torch.float64).detach().cpu()
        self.n += 1
        if self.mean is None:
            self.mean, self.sq_mean = theta.clone(), theta.square()
        else:
            self.mean += (theta - self.mean) / self.n
            self.sq_mean += (theta.square() - self.sq_mean) / self.n
        if self.max_rank > 0:
            self.deviations = [*self.deviations, theta - self.mean][-self.max_rank :]

    def variance(self):
        """Diagonal of the iterates' covariance, ``(n_params,)``: ``E[theta^2] - E[theta]^2``."""
        return (self.sq_mean - self.mean.square()).clamp_min(0.0)

    def deviation_matrix(self):
        """``(n_params, K)``, the oldest kept iterate first."""
        if not self.deviations:
            return torch.zeros(len(self.mean), 0, dtype=torch.float64)
        return torch.stack(self.deviations, dim=1)

    def covariance(self):
        return LowRankDiagonalCovariance(self.variance(), self.deviation_matrix())
