"""Persistence: skops' safe format for every public estimator, pickle unchanged."""

import functools
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone, is_classifier
from torch import nn

import skbdl
from skbdl import MCDropoutRegressor, persistence_trusted_types
from skbdl._persistence import _KEY, PersistenceMixin, _Decoder, _third_party_trusted, _type_name

sio = pytest.importorskip("skops.io")
skops_exceptions = pytest.importorskip("skops.io.exceptions")

from test_common import fast_instances  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "persistence.md"

PUBLIC = [est for est in fast_instances() if type(est).__name__ in skbdl.__all__]


def _data(est, n=40):
    rng = np.random.RandomState(0)
    X = rng.randn(n, 3)
    y = X[:, 0] - X[:, 1] + 0.1 * rng.randn(n)
    if is_classifier(est):
        y = np.where(y > 0.5, "b", np.where(y < -0.5, "c", "a"))
    return X, y


def _quiet(est):
    return est.set_params(verbose=0) if "verbose" in est.get_params() else est


def _outputs(est, X):
    """Every prediction output of ``est`` on ``X``, as a flat list of arrays."""
    outputs = []
    for name in ("predict_proba", "predict", "transform", "sample_predictions"):
        if hasattr(est, name):
            out = getattr(est, name)(X)
            outputs.extend(out if isinstance(out, tuple) else [out])
    if hasattr(est, "predict_uncertainty"):
        outputs.extend(np.asarray(v) for v in vars(est.predict_uncertainty(X)).values())
    return outputs


def _skops_round_trip(est):
    data = sio.dumps(est)
    untrusted = set(sio.get_untrusted_types(data=data))
    unreviewed = untrusted - set(persistence_trusted_types())
    assert not unreviewed, f"types outside persistence_trusted_types(): {sorted(unreviewed)}"
    return sio.loads(data, trusted=persistence_trusted_types())


def _pickle_round_trip(est):
    return pickle.loads(pickle.dumps(est))


def _xfail_without_mixin(est):
    if isinstance(est, PersistenceMixin):
        return []
    return [
        pytest.mark.xfail(
            strict=True,
            raises=RuntimeError,
            reason=f"{type(est).__name__} does not derive from skbdl._persistence."
            "PersistenceMixin, so skops meets its torch tensors",
        )
    ]


FITTED_CASES = [
    pytest.param(
        est,
        round_trip,
        id=f"{type(est).__name__}-{round_trip.__name__.split('_')[1]}",
        marks=_xfail_without_mixin(est) if round_trip is _skops_round_trip else [],
    )
    for est in PUBLIC
    for round_trip in (_skops_round_trip, _pickle_round_trip)
]


@functools.cache
def _fitted(index):
    """``PUBLIC[index]`` fitted (briefly: round trips need weights, not good ones),
    and its training inputs; fitted once for both round trips."""
    est = _quiet(clone(PUBLIC[index]))
    if "max_epochs" in est.get_params():
        est.set_params(max_epochs=3)
    X, y = _data(est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converging in 3 epochs is expected
        est.fit(X, y)
    return est, X


@pytest.mark.parametrize(("est", "round_trip"), FITTED_CASES)
def test_fitted_round_trip_predicts_bit_identically(est, round_trip):
    est, X = _fitted(PUBLIC.index(est))
    loaded = round_trip(est)
    assert type(loaded) is type(est)
    for before, after in zip(_outputs(est, X), _outputs(loaded, X), strict=True):
        np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize("est", PUBLIC, ids=lambda est: type(est).__name__)
def test_unfitted_round_trip_keeps_the_parameters(est):
    est = _quiet(clone(est))
    loaded = _skops_round_trip(est)
    assert type(loaded) is type(est)
    assert repr(loaded.get_params(deep=False)) == repr(est.get_params(deep=False))
    assert not any(name.endswith("_") and not name.startswith("_") for name in vars(loaded))


@pytest.fixture(scope="module")
def fitted_mc_dropout():
    rng = np.random.RandomState(0)
    X, y = rng.randn(40, 3), rng.randn(40)
    est = MCDropoutRegressor(hidden_layer_sizes=(8,), max_epochs=3, verbose=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converging in 3 epochs is expected
        return est.fit(X, y)


def test_shared_tensors_stay_shared_and_training_state_survives(fitted_mc_dropout):
    est = fitted_mc_dropout
    loaded = _skops_round_trip(est)
    params = list(loaded.net_.module_.parameters())
    # The optimizer refers to the very parameters of the module, as after fit.
    assert all(a is b for a, b in zip(loaded.net_.optimizer_.param_groups[0]["params"], params))
    before, after = est.net_.optimizer_.state_dict(), loaded.net_.optimizer_.state_dict()
    assert before["param_groups"] == after["param_groups"]
    for key, state in before["state"].items():
        for name, value in state.items():
            assert torch.equal(after["state"][key][name], value)
    assert [p.requires_grad for p in params] == [
        p.requires_grad for p in est.net_.module_.parameters()
    ]
    assert loaded.history_ is loaded.net_.history
    assert loaded.loss_curve_ == est.loss_curve_


def test_pickle_keeps_its_own_protocol(fitted_mc_dropout):
    # pickle, joblib and copy see the attributes as they are (torch pickles its own
    # objects); only skops reads the converted state.
    reduced = fitted_mc_dropout.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
    assert reduced[2]["net_"] is fitted_mc_dropout.net_
    state = fitted_mc_dropout.__getstate__()
    assert set(state) == {_KEY, "attributes"}


class TinyNet(nn.Module):
    """A user module: its class is not in the trusted list."""

    def __init__(self, n_features_in=3, n_outputs=2):
        super().__init__()
        self.linear = nn.Linear(n_features_in, n_outputs)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x):
        return self.linear(self.dropout(x))


@pytest.mark.parametrize("module", [TinyNet, TinyNet(3, 2)], ids=["class", "instance"])
def test_a_user_module_is_refused_until_its_class_is_trusted(module, tmp_path):
    rng = np.random.RandomState(0)
    X, y = rng.randn(30, 3), rng.randn(30)
    est = MCDropoutRegressor(module, max_epochs=2, verbose=0, random_state=0).fit(X, y)
    path = tmp_path / "model.skops"
    sio.dump(est, path)
    user_class = _type_name(TinyNet)
    assert user_class in sio.get_untrusted_types(file=path)
    assert user_class not in persistence_trusted_types()
    with pytest.raises(skops_exceptions.UntrustedTypesFoundException, match="TinyNet"):
        sio.load(path, trusted=persistence_trusted_types())
    loaded = sio.load(path, trusted=[*persistence_trusted_types(), user_class])
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


def test_a_file_from_a_newer_format_is_refused():
    with pytest.raises(ValueError, match="newer skbdl"):
        MCDropoutRegressor().__setstate__({_KEY: 999, "attributes": {}})


def test_cuda_tensors_load_on_the_cpu_without_cuda(monkeypatch, fitted_mc_dropout):
    # A state as a CUDA machine writes it, read where torch sees no GPU.
    state = fitted_mc_dropout.__getstate__()

    def to_cuda(value):
        if isinstance(value, dict):
            if value.get(_KEY) in ("tensor", "device"):
                return {**value, "device" if value[_KEY] == "tensor" else "value": "cuda:0"}
            return {k: to_cuda(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(to_cuda(v) for v in value)
        return value

    state = to_cuda(state)
    state["attributes"]["net_"]["state"]["device"] = "cuda:0"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = MCDropoutRegressor.__new__(MCDropoutRegressor)
    with pytest.warns(UserWarning, match="saved on cuda:0.*loaded on the CPU"):
        loaded.__setstate__(state)
    assert loaded.net_.device == "cpu"
    assert all(p.device.type == "cpu" for p in loaded.net_.module_.parameters())
    X = np.random.RandomState(1).randn(5, 3)
    np.testing.assert_array_equal(loaded.predict(X), fitted_mc_dropout.predict(X))


def test_bfloat16_tensors_round_trip():
    from skbdl._persistence import _Encoder

    tensor = torch.randn(4, 3).to(torch.bfloat16)
    assert torch.equal(_Decoder()(_Encoder()(tensor)), tensor)


def test_the_docs_list_every_reviewed_third_party_type():
    text = DOCS.read_text()
    listed = set(re.findall(r"`([\w.]+)`", text))
    missing = {_type_name(obj) for obj in _third_party_trusted()} - listed
    assert not missing, f"docs/persistence.md does not list {sorted(missing)}"


@pytest.mark.parametrize("round_trip", [_skops_round_trip, _pickle_round_trip])
def test_early_stopping_round_trip(round_trip):
    """Early stopping's sink is a module-level function, so the net pickles."""
    rng = np.random.RandomState(0)
    X, y = rng.randn(40, 3), rng.randn(40)
    est = MCDropoutRegressor(early_stopping=True, max_epochs=3, verbose=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    np.testing.assert_array_equal(round_trip(est).predict(X), est.predict(X))
