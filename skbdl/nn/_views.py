"""Per-call views of a module: how prediction stays re-entrant.

A prediction call never changes the fitted module (no hooks registered, no masks or
weights stored on layers, no train/eval switches).  It evaluates a *view* instead: a
shallow copy of the module tree in which the layers that carry this call's random
draws (dropout masks, weight samples) are replaced by layers that hold them, and
every module is in eval mode.  The view shares every parameter and buffer with the
fitted module (nothing is copied but the module objects on the path to a replaced
layer), lives for one call, and belongs to the thread that made it, so concurrent
calls cannot see each other's draws.

A view whose layers hold ``n_samples`` draws is wrapped in a :class:`DrawnNetwork`,
which evaluates the draws for a chunk of rows in passes of a few draws each (on a
CPU the activations of a pass then stay in cache, and each draw's matrix products
cover many rows), or all at once where memory allows (a GPU).
"""

import contextlib
import copy

import torch
from torch import nn


def module_view(module, replace=None):
    """A view of ``module`` in eval mode, with some submodules replaced.

    Parameters
    ----------
    module : torch.nn.Module
        The fitted module; it is not changed.
    replace : callable, default=None
        ``replace(submodule)`` returns the module to use in its place, or None to
        keep it (and look inside it).  Called once per distinct submodule.

    Returns
    -------
    view : torch.nn.Module
        ``module`` itself when nothing is replaced and every module is in eval
        mode; otherwise a copy of the module objects on the paths to the replaced
        ones and to those in train mode (the copies in eval mode), sharing the
        parameters, buffers, hooks and every other submodule with ``module``.
        A submodule registered in several places is replaced once.
    """
    memo = {}

    def visit(m):
        if id(m) in memo:
            return memo[id(m)]
        new = replace(m) if replace is not None else None
        if new is None:
            children = {
                name: None if child is None else visit(child) for name, child in m._modules.items()
            }
            changed = any(children[name] is not child for name, child in m._modules.items())
            if changed or m.training:
                new = copy.copy(m)
                object.__setattr__(new, "_modules", children)
                object.__setattr__(new, "training", False)
            else:
                new = m
        memo[id(m)] = new
        return new

    return visit(module)


def functional_copy(module):
    """A copy of ``module``'s tree with its own parameter, buffer and module dicts.

    For ``torch.func.functional_call``, which swaps tensors into the module it is
    given while it runs: on a functional copy, the swap is invisible to other
    threads evaluating the original.  The tensors themselves are shared.
    """
    memo = {}

    def visit(m):
        if id(m) in memo:
            return memo[id(m)]
        new = copy.copy(m)
        memo[id(m)] = new
        object.__setattr__(new, "_parameters", dict(m._parameters))
        object.__setattr__(new, "_buffers", dict(m._buffers))
        object.__setattr__(
            new,
            "_modules",
            {name: None if child is None else visit(child) for name, child in m._modules.items()},
        )
        return new

    return visit(module)


def in_place_layers(module, owners):
    """Layers of skbdl's own networks that a view may run in place: ``{id: layer}``.

    In the ``features`` of an instance of ``owners`` (skbdl's MLPs, a Sequential of
    ``linear -> activation [-> dropout]`` blocks), every ReLU and dropout layer reads a
    tensor that the layer before it has just made and nothing else reads, so at
    prediction time (no autograd) it may overwrite it: fewer fresh allocations per
    pass, which is what a CPU pass costs beyond its matrix products.  User modules are
    never run in place (a residual connection could read the same tensor).
    """
    layers = {}
    for m in module.modules():
        if type(m) in owners:
            for layer in m.features:
                if type(layer) is nn.ReLU or isinstance(layer, nn.Dropout):
                    layers[id(layer)] = layer
    return layers


class Draws:
    """Which of a view's ``n_samples`` draws its next forward pass evaluates.

    Shared by the layers of one view, which hold all the draws and apply draws
    ``start`` to ``stop`` (sample-major) to their input.
    """

    __slots__ = ("n_samples", "start", "stop")

    def __init__(self, n_samples):
        self.n_samples, self.start, self.stop = n_samples, 0, n_samples

    def __len__(self):
        return self.stop - self.start

    def select(self, tensor):
        """The current draws of a tensor with all the draws on axis 0."""
        if self.start == 0 and self.stop == self.n_samples:
            return tensor
        return tensor[self.start : self.stop]


class DrawnNetwork(nn.Module):
    """A network view with ``n_samples`` draws of its stochastic layers fixed.

    ``self(X.repeat(n_samples, 1))`` evaluates every draw on the rows (sample-major,
    as :func:`tiled_forward` lays them out); :meth:`sample` does the same in passes
    of at most ``pass_budget`` rows x draws.  Built for one prediction call and used
    by one thread (it records which draws a pass evaluates).

    Parameters
    ----------
    module : torch.nn.Module
        The view, whose drawn layers read ``draws``.
    draws : Draws
        Shared with those layers.
    randomness : callable, default=None
        A context manager factory around every pass of a :meth:`sample` call, for
        layers that draw from torch's global generator (seeded under a lock).
    """

    def __init__(self, module, draws, randomness=None):
        super().__init__()
        self.module, self.draws, self.randomness = module, draws, randomness
        #: Rows x draws per forward pass in :meth:`sample`; None: all draws at once.
        self.pass_budget = None

    @property
    def n_samples(self):
        return self.draws.n_samples

    def _context(self):
        return contextlib.nullcontext() if self.randomness is None else self.randomness()

    def forward(self, x):
        with self._context():
            return self.module(x)

    def sample(self, X):
        """Outputs of every draw for rows ``X``: ``(n_samples, n_rows, ...)`` (a tuple
        of them for a tuple output), evaluated a block of draws per pass."""
        n = self.n_samples
        block = n if self.pass_budget is None else max(1, min(n, self.pass_budget // len(X)))
        parts = []
        with self._context():
            try:
                for start in range(0, n, block):
                    self.draws.start, self.draws.stop = start, min(n, start + block)
                    parts.append(tiled_forward(self.module, X, len(self.draws)))
            finally:
                self.draws.start, self.draws.stop = 0, n
        if len(parts) == 1:
            return parts[0]
        if isinstance(parts[0], tuple):
            return tuple(torch.cat(p) for p in zip(*parts))
        return torch.cat(parts)


def tiled_forward(module, X, n_samples):
    """Outputs of ``module`` for ``n_samples`` copies of the rows ``X``, per draw.

    The input is ``X`` repeated ``n_samples`` times, sample-major, so copy ``s`` of
    the rows meets draw ``s`` of a sampling view's layers.

    Returns
    -------
    out : torch.Tensor of shape (n_samples, n_rows, ...), or a tuple of them
        The module's output (each element of a tuple output) with a leading
        samples axis.
    """
    out = module(X if n_samples == 1 else X.repeat(n_samples, *([1] * (X.ndim - 1))))
    if isinstance(out, tuple):
        return tuple(o.reshape(n_samples, len(X), *o.shape[1:]) for o in out)
    return out.reshape(n_samples, len(X), *out.shape[1:])
