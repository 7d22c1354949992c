"""Ensembles of networks evaluated as one module: stacked, vmapped or looped members.

Every container here maps inputs of shape ``(n_members, n_rows, n_features)`` (each
member its own rows) or ``(n_rows, n_features)`` (the same rows for every member) to
outputs of shape ``(n_members, n_rows, n_outputs)``, and holds its members'
parameters as ordinary ``nn.Parameter`` objects, so any torch optimizer trains all the
members at once.  Each member's output depends only on its own parameters and its own
rows, so with a loss that sums the members' losses each member receives exactly the
gradient it would receive alone; element-wise optimizers (Adam, SGD, ...) then keep
per-member state automatically.

* :class:`StackedMLP` -- the default MLP of every member in one set of batched
  matrix products (``torch.baddbmm``): the fastest, and what deep ensembles use by
  default.
* :class:`VmapEnsemble` -- any module whose forward ``torch.func.vmap`` can batch,
  from ``torch.func.stack_module_state`` and ``torch.func.functional_call``.
* :class:`LoopEnsemble` -- any module at all, one forward per member (for modules
  that ``vmap`` cannot batch, e.g. batch norm with running statistics).
"""

import copy

import torch
from torch import nn
from torch.nn.utils import skip_init

from ..uncertainty import gaussian_nll_terms
from ._mlp import ACTIVATIONS, MLP, GaussianRegressionModule
from ._random import generator_for
from ._views import functional_copy


def _member_batched(x, container):
    """Whether ``x`` holds a batch per member (``(n_members, n_rows, *row_shape)``)
    rather than one batch shared by all (``(n_rows, *row_shape)``): the container's
    ``row_ndim`` is the number of axes of one row (1 for tabular rows; 3 for images
    ``(channels, height, width)``), which the estimator sets from its training data."""
    return x.ndim == getattr(container, "row_ndim", 1) + 2


def _broadcast_members(x, n_members, row_ndim=1):
    """``(n_members, n_rows, ...)`` view of ``x``; inputs of one batch (rows of
    ``row_ndim`` axes) are shared by all members."""
    if x.ndim == row_ndim + 1:
        return x.expand(n_members, *x.shape)
    if x.shape[0] != n_members:
        raise ValueError(
            f"Expected inputs of shape (n_rows, n_features) or ({n_members}, n_rows, "
            f"n_features); got {tuple(x.shape)}."
        )
    return x


class StackedMLP(nn.Module):
    """``n_members`` multi-layer perceptrons evaluated together by batched matrix products.

    Member ``m`` computes exactly what an :class:`~skbdl.nn.MLP` (without dropout)
    with the weights ``weights[l][m].T`` and biases ``biases[l][m, 0]`` computes, but
    all members share each ``torch.baddbmm`` call, so training ``n_members`` small
    networks costs little more than training one.

    Parameters
    ----------
    n_members : int
        Number of networks.
    n_features_in : int
        Number of input features.
    n_outputs : int
        Width of each member's output layer.
    hidden_layer_sizes : tuple of int, default=(100,)
        Width of each hidden layer (the same for every member).
    activation : {'relu', 'tanh', 'logistic', 'identity', 'gelu', 'elu', 'silu'}, default='relu'
        Non-linearity after each hidden layer.
    device : torch.device, default=None
        Where to create the parameters (torch's factory convention; ``'meta'`` lets
        ``torch.nn.utils.skip_init`` build the module without drawing random numbers).
    dtype : torch.dtype, default=None
        Parameter dtype (``None``: torch's default).

    Attributes
    ----------
    weights : torch.nn.ParameterList
        One tensor of shape ``(n_members, fan_in, fan_out)`` per layer.
    biases : torch.nn.ParameterList
        One tensor of shape ``(n_members, 1, fan_out)`` per layer.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import StackedMLP
    >>> net = StackedMLP(5, 3, 2, hidden_layer_sizes=(8,))
    >>> net(torch.zeros(4, 3)).shape  # the same 4 rows for each of the 5 members
    torch.Size([5, 4, 2])
    >>> net(torch.zeros(5, 4, 3)).shape  # each member its own 4 rows
    torch.Size([5, 4, 2])
    """

    def __init__(
        self,
        n_members,
        n_features_in,
        n_outputs,
        hidden_layer_sizes=(100,),
        activation="relu",
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.n_members = n_members
        self.activation_name = activation
        widths = [n_features_in, *hidden_layer_sizes, n_outputs]
        factory = dict(device=device, dtype=dtype)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(n_members, fan_in, fan_out, **factory))
            for fan_in, fan_out in zip(widths[:-1], widths[1:])
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(n_members, 1, fan_out, **factory)) for fan_out in widths[1:]
        )
        self.activation = ACTIVATIONS[activation]()
        self.reset_parameters()

    def reset_parameters(self):
        """Initialise every member as ``torch.nn.Linear`` does (uniform, ``1/sqrt(fan_in)``)."""
        with torch.no_grad():
            for weight, bias in zip(self.weights, self.biases):
                bound = weight.shape[1] ** -0.5
                generator = generator_for(weight)  # the fit's (nn/_random.py), or global
                weight.uniform_(-bound, bound, generator=generator)
                bias.uniform_(-bound, bound, generator=generator)

    @property
    def hidden_layer_sizes(self):
        return tuple(w.shape[2] for w in self.weights[:-1])

    @classmethod
    def from_mlps(cls, mlps):
        """Stack trained or freshly initialised :class:`~skbdl.nn.MLP` networks.

        The MLPs must share their layer sizes and activation; dropout is dropped.
        """
        first = mlps[0]
        linears = [m for m in first.features if isinstance(m, nn.Linear)] + [first.output]
        activation = next(
            (
                name
                for name, kind in ACTIVATIONS.items()
                if any(type(m) is kind for m in first.features)
            ),
            "identity",
        )
        widths = [linears[0].in_features] + [lin.out_features for lin in linears]
        # skip_init: overwritten below, so draw no random numbers (members may be
        # built concurrently in threads that seed torch's global generator).
        stacked = skip_init(cls, len(mlps), widths[0], widths[-1], tuple(widths[1:-1]), activation)
        with torch.no_grad():
            for layer in range(len(linears)):
                per_member = [
                    ([m for m in mlp.features if isinstance(m, nn.Linear)] + [mlp.output])[layer]
                    for mlp in mlps
                ]
                stacked.weights[layer].copy_(torch.stack([lin.weight.t() for lin in per_member]))
                stacked.biases[layer].copy_(torch.stack([lin.bias[None] for lin in per_member]))
        return stacked

    @classmethod
    def concatenate(cls, ensembles):
        """One ensemble holding the members of several, in order."""
        first = ensembles[0]
        widths = [first.weights[0].shape[1]] + [w.shape[2] for w in first.weights]
        n_members = sum(e.n_members for e in ensembles)
        joined = skip_init(
            cls, n_members, widths[0], widths[-1], tuple(widths[1:-1]), first.activation_name
        )
        with torch.no_grad():
            for layer in range(len(widths) - 1):
                joined.weights[layer].copy_(torch.cat([e.weights[layer] for e in ensembles]))
                joined.biases[layer].copy_(torch.cat([e.biases[layer] for e in ensembles]))
        return joined.to(first.weights[0].device)

    def unstack(self):
        """The members as separate :class:`~skbdl.nn.MLP` networks (copies)."""
        widths = [self.weights[0].shape[1]] + [w.shape[2] for w in self.weights]
        members = []
        for m in range(self.n_members):
            mlp = MLP(widths[0], widths[-1], widths[1:-1], self.activation_name)
            linears = [x for x in mlp.features if isinstance(x, nn.Linear)] + [mlp.output]
            with torch.no_grad():
                for lin, weight, bias in zip(linears, self.weights, self.biases):
                    lin.weight.copy_(weight[m].t())
                    lin.bias.copy_(bias[m, 0])
            members.append(mlp.to(self.weights[0].device))
        return members

    def forward(self, x):
        x = _broadcast_members(x, self.n_members)
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias, x, weight)
            if layer < last:
                x = self.activation(x)
        return x


def _set_tensor(module, name, value):
    owner, _, leaf = name.rpartition(".")
    owner = module.get_submodule(owner) if owner else module
    if isinstance(getattr(owner, leaf), nn.Parameter):
        setattr(owner, leaf, nn.Parameter(value, requires_grad=getattr(owner, leaf).requires_grad))
    else:
        setattr(owner, leaf, value)


class VmapEnsemble(nn.Module):
    """Copies of one module architecture evaluated together with ``torch.func.vmap``.

    The members' parameters and buffers are stacked along a new leading axis
    (``torch.func.stack_module_state``) and registered on this module, so an
    optimizer over ``parameters()`` trains every member.  The forward pass maps
    ``torch.func.functional_call`` over the members; random layers (dropout) draw
    different randomness per member.

    Parameters
    ----------
    modules : sequence of torch.nn.Module
        The members, all of the same architecture (their current parameters are
        copied).  The module must be usable under ``torch.func.vmap`` (no in-place
        updates of buffers in training, such as batch norm's running statistics; no
        data-dependent Python control flow); see :class:`LoopEnsemble` otherwise.

    Attributes
    ----------
    stacked_parameters : torch.nn.ParameterList
        Each of the template's parameters with a leading axis of ``n_members``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skbdl.nn import VmapEnsemble
    >>> members = [nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)) for _ in range(4)]
    >>> ensemble = VmapEnsemble(members)
    >>> ensemble(torch.zeros(6, 3)).shape
    torch.Size([4, 6, 2])
    >>> torch.allclose(ensemble(torch.ones(1, 3))[2], members[2](torch.ones(1, 3)))
    True
    """

    def __init__(self, modules):
        super().__init__()
        modules = list(modules)
        self.n_members = len(modules)
        params, buffers = torch.func.stack_module_state(modules)
        self._param_names = list(params)
        self._buffer_names = list(buffers)
        self.stacked_parameters = nn.ParameterList(
            nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad) for p in params.values()
        )
        for i, buffer in enumerate(buffers.values()):
            self.register_buffer(f"stacked_buffer_{i}", buffer.detach().clone())
        # The architecture, kept out of parameters() and state_dict(); its own
        # parameters and buffers are never used (functional_call replaces them all).
        self._template = [copy.deepcopy(modules[0])]

    def train(self, mode=True):
        super().train(mode)
        self._template[0].train(mode)
        return self

    def _state(self):
        params = dict(zip(self._param_names, self.stacked_parameters))
        buffers = {
            name: getattr(self, f"stacked_buffer_{i}") for i, name in enumerate(self._buffer_names)
        }
        return params, buffers

    def forward(self, x):
        template = self._template[0]
        if not self.training:
            # functional_call swaps tensors into the module it runs: give it a copy,
            # so that concurrent predictions never see each other's tensors.
            template = functional_copy(template)

        def member(params, buffers, x):
            return torch.func.functional_call(template, (params, buffers), (x,))

        params, buffers = self._state()
        in_x = 0 if _member_batched(x, self) else None
        if in_x == 0:
            _broadcast_members(x, self.n_members, getattr(self, "row_ndim", 1))
        return torch.func.vmap(member, in_dims=(0, 0, in_x), randomness="different")(
            params, buffers, x
        )

    @classmethod
    def concatenate(cls, ensembles):
        """One ensemble holding the members of several, in order."""
        members = [m for e in ensembles for m in e.unstack()]
        return cls(members)

    def unstack(self):
        """The members as separate modules (copies of the template, on this device)."""
        params, buffers = self._state()
        members = []
        for m in range(self.n_members):
            member = copy.deepcopy(self._template[0])
            for name, value in {**params, **buffers}.items():
                _set_tensor(member, name, value[m].detach().clone())
            members.append(member.train(self.training))
        return members


class LoopEnsemble(nn.Module):
    """Members of any architecture evaluated one after the other.

    Parameters
    ----------
    modules : sequence of torch.nn.Module
        The members (used as given, not copied).

    Attributes
    ----------
    members : torch.nn.ModuleList
        The members.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skbdl.nn import LoopEnsemble
    >>> ensemble = LoopEnsemble([nn.Linear(3, 2), nn.Linear(3, 2)])
    >>> ensemble(torch.zeros(5, 3)).shape
    torch.Size([2, 5, 2])
    """

    def __init__(self, modules):
        super().__init__()
        self.members = nn.ModuleList(modules)
        self.n_members = len(self.members)

    def forward(self, x):
        if _member_batched(x, self):
            return torch.stack([member(x[m]) for m, member in enumerate(self.members)])
        return torch.stack([member(x) for member in self.members])

    @classmethod
    def concatenate(cls, ensembles):
        """One ensemble holding the members of several, in order."""
        return cls([m for e in ensembles for m in e.members])

    def unstack(self):
        """The members (the modules themselves, not copies)."""
        return list(self.members)


class StackedGaussianRegressionModule(GaussianRegressionModule):
    """:class:`~skbdl.nn.GaussianRegressionModule` for an ensemble container.

    The body returns ``(n_members, n_rows, width)``; the heteroscedastic head splits
    the last axis as usual, and the homoscedastic one learns one noise variance per
    member and target (``log_noise_var`` of shape ``(n_members, 1, n_targets)``), so
    members stay independent.

    Parameters
    ----------
    body : StackedMLP, VmapEnsemble or LoopEnsemble
        The ensemble container.
    n_targets : int
        Number of regression targets.
    likelihood : {'homoscedastic', 'heteroscedastic', 'fixed'}
        As for :class:`~skbdl.nn.GaussianRegressionModule`.
    **kwargs
        ``noise_variance``, ``output_activation``, ``target_mean``,
        ``target_scale``: as for :class:`~skbdl.nn.GaussianRegressionModule`.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import StackedGaussianRegressionModule, StackedMLP
    >>> head = StackedGaussianRegressionModule(StackedMLP(3, 2, 1), 1, "homoscedastic")
    >>> mean, var = head(torch.zeros(4, 2))
    >>> mean.shape, var.shape
    (torch.Size([3, 4, 1]), torch.Size([3, 4, 1]))
    """

    def __init__(self, body, n_targets, likelihood="homoscedastic", **kwargs):
        super().__init__(body, n_targets, likelihood, **kwargs)
        self._head_options = kwargs
        if likelihood == "homoscedastic":
            self.log_noise_var = nn.Parameter(torch.zeros(body.n_members, 1, n_targets))

    @classmethod
    def concatenate(cls, heads):
        """One head over the concatenation of several heads' members, in order."""
        first = heads[0]
        body = type(first.body).concatenate([h.body for h in heads])
        options = getattr(first, "_head_options", {})
        joined = cls(body, first.n_targets, first.likelihood, **options)
        if first.likelihood == "homoscedastic":
            with torch.no_grad():
                joined.log_noise_var.copy_(torch.cat([h.log_noise_var for h in heads]))
        return joined.to(next(first.parameters()).device)


class EnsembleCrossEntropyLoss(nn.Module):
    """Sum over members of each member's mean cross-entropy.

    ``logits`` have shape ``(n_members, n_rows, n_classes)``; ``y`` is
    ``(n_members, n_rows)`` (each member its own rows) or ``(n_rows,)`` (shared).
    Summing (not averaging) over members gives each member exactly its own gradient.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import EnsembleCrossEntropyLoss
    >>> loss = EnsembleCrossEntropyLoss()(torch.zeros(3, 4, 2), torch.zeros(4, dtype=torch.long))
    >>> round(loss.item(), 4)  # 3 * log 2
    2.0794
    """

    def forward(self, logits, y):
        n_members, n_rows = logits.shape[:2]
        y = y.expand(n_members, n_rows)
        return n_members * nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())


class EnsembleGaussianNLLLoss(nn.Module):
    """Sum over members of each member's mean Gaussian negative log-likelihood.

    Means and variances have shape ``(n_members, n_rows, n_targets)``; ``y`` is
    ``(n_members, n_rows, n_targets)`` or ``(n_rows, n_targets)`` (shared).  The
    constant ``0.5 log 2 pi`` is left out, as in :class:`~skbdl.nn.GaussianNLLLoss`.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import EnsembleGaussianNLLLoss
    >>> pred = (torch.zeros(3, 2, 1), torch.ones(3, 2, 1))
    >>> EnsembleGaussianNLLLoss()(pred, torch.ones(2, 1)).item()  # 3 members * 0.5
    1.5
    """

    def forward(self, y_pred, y_true):
        mean, var = y_pred
        return mean.shape[0] * gaussian_nll_terms(y_true, mean, var).mean()
