"""Seeded random draws for skbdl's own layers, without torch's global generator.

``fit`` of an estimator with a default network runs inside
:func:`training_generators`: every random draw of skbdl's own layers -- weight
initialisation, dropout masks, Bayes by Backprop's noise, the shuffling of
mini-batches -- comes from generators seeded by the estimator's ``random_state``,
held for the calling thread only.  torch's global generator is neither seeded nor
consumed, so a fit changes no random stream another thread or the caller sees.
Outside such a block (a layer used on its own) the layers draw from torch's global
generator, as torch's own layers do.

The generators are seeded as ``torch.manual_seed(seed)`` seeds the global ones and
are consumed in the same order, so the results equal those of training under a
seeded global generator.
"""

import contextlib
import math
import threading

import torch
from torch import nn

_local = threading.local()

#: Serialises the code that must seed torch's global generator (a user's module, whose
#: own random operations skbdl cannot route to a generator), so that concurrent fits
#: in threads do not draw from each other's seeded streams.
GLOBAL_RNG_LOCK = threading.RLock()


@contextlib.contextmanager
def training_generators(seed, device, states=None):
    """Within the block, in this thread, skbdl's layers draw from generators seeded
    with ``seed``: one on the CPU (initialisation) and one on ``device`` (training
    draws; the same generator when ``device`` is the CPU).  ``states`` (from
    :func:`generator_states`) continues the streams of an earlier block instead."""
    device = torch.device(device)
    cpu = torch.Generator().manual_seed(int(seed))
    generators = {"cpu": cpu}
    if device.type != "cpu":
        generators[device.type] = torch.Generator(device=device).manual_seed(int(seed))
    for kind, state in (states or {}).items():
        if kind in generators:
            generators[kind].set_state(state)
    previous = getattr(_local, "generators", None)
    _local.generators = generators
    try:
        yield
    finally:
        _local.generators = previous


def generator_states():
    """The states of the enclosing :func:`training_generators` block's generators
    (``{device_type: ByteTensor}``), to continue their streams later."""
    generators = getattr(_local, "generators", None) or {}
    return {kind: generator.get_state() for kind, generator in generators.items()}


def generator_for(device):
    """The generator of the enclosing :func:`training_generators` block for
    ``device`` (a device or a tensor), or None (torch's global generator)."""
    generators = getattr(_local, "generators", None)
    if generators is None:
        return None
    if isinstance(device, torch.Tensor):
        device = device.device
    return generators.get(torch.device(device).type)


def randn_like(tensor):
    """``torch.randn_like(tensor)`` from :func:`generator_for` the tensor's device."""
    return torch.randn(
        tensor.shape, dtype=tensor.dtype, device=tensor.device, generator=generator_for(tensor)
    )


def init_like_torch(weight, bias=None):
    """Initialise ``weight`` (and ``bias``) in place as ``torch.nn.Linear`` and
    ``torch.nn.ConvNd`` do (Kaiming uniform with ``a = sqrt(5)``; bias uniform in
    ``+-1/sqrt(fan_in)``), drawing from :func:`generator_for` the CPU."""
    generator = generator_for(weight)
    with torch.no_grad():
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
        if bias is not None:
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            nn.init.uniform_(bias, -bound, bound, generator=generator)


def linear(in_features, out_features, bias=True):
    """A ``torch.nn.Linear`` initialised from :func:`generator_for` the CPU (built on
    the meta device first, so that torch's own initialisation draws nothing)."""
    layer = nn.Linear(in_features, out_features, bias=bias, device="meta")
    layer = layer.to_empty(device="cpu")
    init_like_torch(layer.weight, layer.bias)
    return layer


class Dropout(nn.Dropout):
    """``torch.nn.Dropout`` whose training masks come from :func:`generator_for`
    the input's device (torch's global generator outside a fit)."""

    def forward(self, x):
        generator = generator_for(x)
        if not self.training or self.p == 0 or generator is None:
            return super().forward(x)
        if self.p == 1:
            return x * 0.0
        mask = torch.empty_like(x).bernoulli_(1 - self.p, generator=generator)
        return x * mask.div_(1 - self.p)
