"""Persistence: pickle as before, and skops' safe format for every estimator.

Two protocols, one estimator:

- ``pickle`` / ``joblib`` / ``copy`` go through ``__reduce_ex__``, which returns the
  estimator's attributes unchanged; torch and skorch pickle their own objects.  Loading
  a pickle runs whatever code the file names: load only pickles you made yourself.
- ``skops.io.dump`` reads ``__getstate__``, which returns the same attributes with every
  torch object replaced by plain data: a tensor by a numpy array and its dtype, device
  and flags; a torch module, optimizer, skorch net or callback by its class and its
  (so converted) attributes.  ``skops.io.load`` rebuilds them through
  ``__setstate__``.  What it creates is what the file names: numpy arrays, builtins
  and the classes (and functions) the caller trusts.  :func:`persistence_trusted_types`
  lists the ones skbdl's own estimators need; a user's module class is not in it.

Shared tensors and modules stay shared (a skorch net's ``module`` and ``module_``, the
optimizer's references to the parameters): each is written once and referred to by
number afterwards.
"""

import copyreg
import functools
import warnings
from collections import OrderedDict, defaultdict

import numpy as np
import torch
from sklearn.base import BaseEstimator
from skorch import NeuralNet
from skorch.callbacks import Callback

#: Key marking a record of this module's format inside a state (a dict).
_KEY = "__skbdl_persist__"

#: Version of the record format, stored with every state ``__getstate__`` returns.
_FORMAT = 1

#: Torch dtypes numpy lacks, stored as an integer view of the same width.
_VIEW_DTYPES = {torch.bfloat16: torch.int16}

#: Objects of these packages are converted by this module; others are left to skops.
_CONVERTED_PACKAGES = ("torch", "skorch", "skbdl")


def _needs_conversion(value):
    if isinstance(value, (torch.nn.Module, torch.optim.Optimizer, NeuralNet, Callback)):
        return True
    if isinstance(value, BaseEstimator):  # nested estimators convert themselves
        return False
    package = type(value).__module__.split(".")[0]
    return package in _CONVERTED_PACKAGES and hasattr(value, "__dict__")


def _uses_own_getstate(value):
    # skorch nets pickle their torch attributes with torch.save: bypassed, since what
    # torch.load reads back is pickle again.
    if isinstance(value, NeuralNet):
        return False
    return type(value).__getstate__ is not object.__getstate__


class _Encoder:
    """Turns a state into plain data: builtins, numpy arrays, types and records."""

    def __init__(self):
        self.ids = {}  # id(object) -> record number
        self.alive = []  # keeps encoded objects alive, so their ids stay unique

    def _remember(self, value):
        number = len(self.ids)
        self.ids[id(value)] = number
        self.alive.append(value)
        return number

    def __call__(self, value):
        if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
            return value
        if isinstance(value, (np.ndarray, np.generic, type)):
            return value
        if isinstance(value, torch.device):
            return {_KEY: "device", "value": str(value)}
        if isinstance(value, torch.dtype):
            return {_KEY: "dtype", "value": str(value).removeprefix("torch.")}
        if id(value) in self.ids:
            return {_KEY: "ref", "id": self.ids[id(value)]}
        if isinstance(value, torch.Tensor):
            return self._tensor(value)
        if type(value) in (list, tuple):
            return type(value)(self(item) for item in value)
        if type(value) is dict and all(isinstance(k, str) and k != _KEY for k in value):
            return {key: self(item) for key, item in value.items()}
        if isinstance(value, dict):
            record = {_KEY: "mapping", "class": type(value), "id": self._remember(value)}
            if isinstance(value, defaultdict):
                record["default_factory"] = value.default_factory
            record["items"] = [[self(k), self(v)] for k, v in value.items()]
            return record
        if type(value) is functools.partial:  # skorch's train_split, virtual parameters
            return {
                _KEY: "partial",
                "func": value.func,
                "args": self(value.args),
                "keywords": self(value.keywords),
            }
        if isinstance(value, (list, tuple)) and _needs_conversion(value):  # skorch History
            number = self._remember(value)
            return {
                _KEY: "sequence",
                "class": type(value),
                "id": number,
                "items": [self(item) for item in value],
            }
        if _needs_conversion(value):
            return self._object(value)
        return value  # numpy, scikit-learn, builtins: skops' own business

    def _tensor(self, tensor):
        if type(tensor) not in (torch.Tensor, torch.nn.Parameter) or tensor.layout != torch.strided:
            raise TypeError(
                f"skops persistence supports dense tensors and parameters; got a "
                f"{type(tensor).__name__} with layout {tensor.layout}.  Use pickle "
                "(trusted files only) for this estimator."
            )
        data = tensor.detach().resolve_conj().resolve_neg().cpu()
        dtype = str(tensor.dtype).removeprefix("torch.")
        if tensor.dtype in _VIEW_DTYPES:
            data = data.view(_VIEW_DTYPES[tensor.dtype])
        return {
            _KEY: "tensor",
            "id": self._remember(tensor),
            "data": data.numpy().copy(),
            "dtype": dtype,
            "device": str(tensor.device),
            "requires_grad": bool(tensor.requires_grad),
            "parameter": isinstance(tensor, torch.nn.Parameter),
            # The memory layout, when it is a permutation of a contiguous one (e.g. a
            # transposed Cholesky factor): matrix products round by the layout, so
            # predictions stay bit-identical only with the same one.
            "stride": list(tensor.stride()) if _permuted_layout(tensor) else None,
        }

    def _object(self, value):
        number = self._remember(value)
        if _uses_own_getstate(value):
            state = value.__getstate__()
        else:
            state = dict(vars(value))
        return {_KEY: "object", "class": type(value), "id": number, "state": self(state)}


class _Decoder:
    """Rebuilds what :class:`_Encoder` wrote."""

    def __init__(self):
        self.objects = {}
        self.moved_to_cpu = set()  # devices this machine lacks, replaced by the CPU

    def __call__(self, value):
        if type(value) is list:
            return [self(item) for item in value]
        if type(value) is tuple:
            return tuple(self(item) for item in value)
        if type(value) is not dict:
            return value
        kind = value.get(_KEY)
        if kind is None:
            return {key: self(item) for key, item in value.items()}
        if kind == "device":
            return _available(value["value"], self)
        if kind == "dtype":
            return _torch_dtype(value["value"])
        if kind == "ref":
            return self.objects[value["id"]]
        if kind == "tensor":
            return self._tensor(value)
        if kind == "mapping":
            cls = value["class"]
            if not issubclass(cls, dict):
                raise TypeError(f"Not a mapping class: {cls!r}.")
            mapping = cls(value["default_factory"]) if issubclass(cls, defaultdict) else cls()
            self.objects[value["id"]] = mapping
            for key, item in value["items"]:
                mapping[self(key)] = self(item)
            return mapping
        if kind == "sequence":
            cls = value["class"]
            if not issubclass(cls, (list, tuple)):
                raise TypeError(f"Not a sequence class: {cls!r}.")
            if issubclass(cls, list):  # registered before its items, which may refer back
                sequence = self.objects[value["id"]] = cls()
                sequence.extend(self(item) for item in value["items"])
            else:
                sequence = self.objects[value["id"]] = cls(self(item) for item in value["items"])
            return sequence
        if kind == "partial":
            return functools.partial(value["func"], *self(value["args"]), **self(value["keywords"]))
        if kind == "object":
            return self._object(value)
        raise ValueError(f"Unknown skbdl persistence record {kind!r}: a corrupted file?")

    def _tensor(self, record):
        dtype = _torch_dtype(record["dtype"])
        tensor = torch.from_numpy(np.array(record["data"], copy=True))
        if dtype in _VIEW_DTYPES:
            tensor = tensor.view(dtype)
        if record.get("stride") is not None:
            tensor = torch.empty_strided(tensor.shape, record["stride"], dtype=tensor.dtype).copy_(
                tensor
            )
        tensor = tensor.to(_available(record["device"], self))
        if record["parameter"]:
            tensor = torch.nn.Parameter(tensor, requires_grad=record["requires_grad"])
        else:
            tensor.requires_grad_(record["requires_grad"])
        self.objects[record["id"]] = tensor
        return tensor

    def _object(self, record):
        cls = record["class"]
        if not isinstance(cls, type):
            raise TypeError(f"Not a class: {cls!r}: a corrupted file?")
        instance = cls.__new__(cls)
        self.objects[record["id"]] = instance  # before the state: it may refer back
        state = self(record["state"])
        if isinstance(instance, NeuralNet):
            saved = state.get("device")  # a str or a torch.device, both fine for skorch
            if saved is not None:
                device = _available(saved, self)
                state["device"] = device if isinstance(saved, torch.device) else str(device)
            instance.__dict__.update(state)
        elif hasattr(instance, "__setstate__") and _uses_own_getstate(instance):
            instance.__setstate__(state)
        else:
            instance.__dict__.update(state)
        return instance


def _permuted_layout(tensor):
    """Whether ``tensor`` is dense, non-overlapping and not contiguous: its strides are
    a contiguous tensor's, permuted."""
    if tensor.is_contiguous():
        return False
    size = 1
    for dim, stride in sorted(zip(tensor.shape, tensor.stride()), key=lambda d: d[1]):
        if dim != 1 and stride != size:
            return False
        size *= dim
    return True


def _torch_dtype(name):
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"Unknown torch dtype {name!r}: a corrupted file?")
    return dtype


def _available(device, decoder):
    """``device``, or the CPU where this machine lacks it (noted on ``decoder``)."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        decoder.moved_to_cpu.add(str(device))
        return torch.device("cpu")
    return device


class PersistenceMixin:
    """Pickle as usual; give skops a state of plain data (see the module docstring).

    Mixed into :class:`skbdl._base.BasePredictor`, left of ``BaseEstimator``.
    """

    def __reduce_ex__(self, protocol):
        # pickle, joblib, copy: the attributes unchanged, as BaseEstimator gives them.
        return (copyreg.__newobj__, (type(self),), BaseEstimator.__getstate__(self))

    def __reduce__(self):
        # skops calls __reduce__ first and, since this is not a plain constructor
        # call, then reads __getstate__.
        return self.__reduce_ex__(2)

    def __getstate__(self):
        state = BaseEstimator.__getstate__(self)
        return {_KEY: _FORMAT, "attributes": _Encoder()(state)}

    def __setstate__(self, state):
        if _KEY in state:
            if state[_KEY] != _FORMAT:
                raise ValueError(
                    f"This file was written by a newer skbdl (persistence format "
                    f"{state[_KEY]!r}; this version reads {_FORMAT}): upgrade skbdl."
                )
            decoder = _Decoder()
            state = decoder(state["attributes"])
            if decoder.moved_to_cpu:
                devices = ", ".join(sorted(decoder.moved_to_cpu))
                warnings.warn(
                    f"{type(self).__name__} was saved on {devices}, "
                    "which this machine does not have: it is loaded on the CPU (its "
                    "'device' parameter is unchanged; set_params(device='cpu') before "
                    "fitting it again here).",
                    UserWarning,
                    stacklevel=2,
                )
        BaseEstimator.__setstate__(self, state)


def _third_party_trusted():
    """The classes and functions of other packages that skbdl's estimators hold,
    reviewed one by one (docs/persistence.md lists them with the reason)."""
    import builtins

    import skorch.callbacks
    import skorch.dataset
    import skorch.history
    import skorch.setter
    import skorch.utils
    from torch import nn

    from ._training import _OPTIMIZERS
    from .nn import ACTIVATIONS

    return [
        # containers and functions in torch's and skorch's attributes
        builtins.dict,  # default of a torch optimizer's state (a defaultdict)
        builtins.print,  # the output of skorch's epoch table (verbose=2)
        OrderedDict,  # torch modules' parameter, buffer and hook dictionaries
        defaultdict,  # torch optimizers' per-parameter state
        functools.partial,  # skorch's virtual parameters and validation split
        skorch.setter.optimizer_setter,  # sets optimizer__* parameters (skorch)
        skorch.utils._make_split,  # the validation split of early stopping
        # skorch's training record and callbacks
        skorch.history.History,
        skorch.dataset.Dataset,  # the held-out rows of early stopping
        skorch.callbacks.EpochTimer,
        skorch.callbacks.PassthroughScoring,
        skorch.callbacks.PrintLog,
        skorch.callbacks.EarlyStopping,
        torch.utils.data.DataLoader,  # a skorch parameter (the class, not an instance)
        # the torch layers, losses and optimizers skbdl's own networks are made of
        nn.Linear,
        nn.Dropout,
        nn.Sequential,
        nn.ModuleList,
        nn.ParameterList,
        nn.CrossEntropyLoss,
        *ACTIVATIONS.values(),
        *_OPTIMIZERS.values(),
    ]


def _skbdl_classes():
    """Every class defined in the skbdl package (modules needing an optional
    dependency that is missing are skipped: their classes cannot be in a file)."""
    import importlib
    import inspect
    import pkgutil

    import skbdl

    found = set()
    for info in pkgutil.walk_packages(skbdl.__path__, prefix="skbdl."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:
            continue
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__.split(".")[0] == "skbdl":
                found.add(obj)
    from ._training import _silent

    found.add(_silent)  # skbdl's own function: the sink of early stopping's messages
    return found


def _type_name(obj):
    return f"{obj.__module__}.{obj.__qualname__}"


def persistence_trusted_types():
    """Types to trust when loading an skbdl estimator with ``skops.io.load``.

    The classes and functions that files of skbdl's estimators name besides what
    skops trusts by default (numpy arrays, builtins, scikit-learn): every class
    defined in skbdl (its estimators, networks, skorch nets and callbacks), and a
    reviewed list of other packages' classes and functions: the torch layers, losses
    and optimizers skbdl's own networks are made of, and the skorch history,
    callbacks and helpers that trained them (docs/persistence.md gives each one's
    reason).  Loading creates each object with ``cls.__new__`` and sets its saved
    attributes; no ``__init__`` and no code from the file runs.  A custom
    ``module``, callback or optimizer is not in the list: review its class and add
    it yourself.

    Returns
    -------
    trusted_types : list of str
        Sorted ``'module.Name'`` strings, for ``skops.io.load(file, trusted=...)``.

    See Also
    --------
    skops.io.get_untrusted_types : What a given file names beyond skops' defaults.

    Examples
    --------
    >>> import numpy as np
    >>> import skops.io as sio
    >>> from skbdl import MCDropoutRegressor, persistence_trusted_types
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.randn(50, 3), rng.randn(50)
    >>> reg = MCDropoutRegressor(hidden_layer_sizes=(8,), max_epochs=5, verbose=0,
    ...                          random_state=0).fit(X, y)
    >>> data = sio.dumps(reg)
    >>> set(sio.get_untrusted_types(data=data)) <= set(persistence_trusted_types())
    True
    >>> loaded = sio.loads(data, trusted=persistence_trusted_types())
    >>> bool(np.array_equal(loaded.predict(X), reg.predict(X)))
    True
    """
    return sorted({_type_name(obj) for obj in [*_third_party_trusted(), *_skbdl_classes()]})
