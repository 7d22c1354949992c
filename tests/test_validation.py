"""Bad input and bad parameters give clear, scikit-learn-style errors, and a failing
call leaves an already fitted estimator exactly as it was."""

import copy

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from numpy.testing import assert_array_equal
from sklearn.base import is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from skbdl import MCDropoutClassifier, MCDropoutRegressor

FAST = dict(hidden_layer_sizes=(16,), max_epochs=5, lr=0.01, n_samples=5)
ESTIMATORS = [MCDropoutClassifier, MCDropoutRegressor]
DEFAULT_WIDTH = MCDropoutClassifier().hidden_layer_sizes


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(40, 4)
    return X, (X[:, 0] > 0).astype(int), X[:, 0] + 0.1 * rng.randn(40)


def xy(cls, data):
    X, y_clf, y_reg = data
    return X, (y_clf if cls is MCDropoutClassifier else y_reg)


@pytest.fixture(scope="module")
def _fitted(data):
    return {cls: cls(**FAST, random_state=0).fit(*xy(cls, data)) for cls in ESTIMATORS}


@pytest.fixture(params=ESTIMATORS, ids=lambda cls: cls.__name__)
def fitted(request, _fitted):
    """A private copy of a fitted estimator, which the test may break."""
    return copy.deepcopy(_fitted[request.param])


# ------------------------------------------------------------------ snapshots
def snapshot(est, X):
    """What must not change when a call on a fitted estimator fails."""
    state = {k: v for k, v in vars(est).items() if k.endswith("_") or k.startswith("_")}
    weights = {k: v.detach().clone() for k, v in est.net_.module_.state_dict().items()}
    predictions = est.predict_proba(X) if is_classifier(est) else est.predict(X, return_std=True)
    return state, weights, predictions


def assert_unchanged(est, before, X):
    state, weights, predictions = before
    now = {k: v for k, v in vars(est).items() if k.endswith("_") or k.startswith("_")}
    assert now.keys() == state.keys()
    for key, value in state.items():
        assert now[key] is value, f"fitted attribute {key} was replaced"
    current = est.net_.module_.state_dict()
    assert all(torch.equal(current[k], weights[k]) for k in weights)
    again = est.predict_proba(X) if is_classifier(est) else est.predict(X, return_std=True)
    for a, b in zip(np.atleast_1d(predictions), np.atleast_1d(again)):
        assert_array_equal(a, b)


# ------------------------------------------------------------------- bad X
def _with(X, row, col, value):
    X = X.copy()
    X[row, col] = value
    return X


BAD_X = [
    pytest.param(lambda X: _with(X, 3, 1, np.nan), ValueError, "NaN", id="nan"),
    pytest.param(lambda X: _with(X, 0, 0, np.inf), ValueError, "infinity", id="inf"),
    pytest.param(lambda X: _with(X, 5, 2, -np.inf), ValueError, "infinity", id="-inf"),
    # Sparse input is accepted (tests/test_sparse.py), and checked like dense input.
    pytest.param(
        lambda X: sp.csr_matrix(_with(X, 3, 1, np.nan)), ValueError, "NaN", id="sparse-nan"
    ),
    pytest.param(lambda X: X[:, 0], ValueError, "2D array", id="1d"),
    pytest.param(lambda X: X.astype(complex), ValueError, "[Cc]omplex", id="complex"),
    pytest.param(lambda X: np.full(X.shape, "a"), ValueError, "convert", id="strings"),
]


@pytest.mark.parametrize("make_bad, error, match", BAD_X)
@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_bad_X_at_fit(cls, data, make_bad, error, match):
    X, y = xy(cls, data)
    est = cls(**FAST)
    with pytest.raises(error, match=match):
        est.fit(make_bad(X), y)
    assert not hasattr(est, "net_") and not hasattr(est, "n_features_in_")


@pytest.mark.parametrize("make_bad, error, match", BAD_X)
def test_bad_X_at_fit_keeps_fitted_model(fitted, data, make_bad, error, match):
    X, y = xy(type(fitted), data)
    before = snapshot(fitted, X)
    with pytest.raises(error, match=match):
        fitted.fit(make_bad(X), y)
    assert_unchanged(fitted, before, X)


@pytest.mark.parametrize("make_bad, error, match", BAD_X)
def test_bad_X_at_predict(fitted, data, make_bad, error, match):
    X = data[0]
    before = snapshot(fitted, X)
    methods = [fitted.predict, fitted.predict_uncertainty, fitted.sample_predictions]
    if is_classifier(fitted):
        methods.append(fitted.predict_proba)
    for method in methods:
        with pytest.raises(error, match=match):
            method(make_bad(X))
    assert_unchanged(fitted, before, X)


def test_wrong_number_of_features_at_predict(fitted, data):
    X = data[0]
    before = snapshot(fitted, X)
    name = type(fitted).__name__
    with pytest.raises(ValueError, match=f"X has 3 features, but {name} is expecting 4"):
        fitted.predict(X[:, :3])
    with pytest.raises(ValueError, match="X has 5 features"):
        fitted.predict_uncertainty(np.c_[X, X[:, 0]])
    with pytest.raises(ValueError, match="X has 3 features"):
        fitted.sample_predictions(X[:, :3])
    assert_unchanged(fitted, before, X)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_empty_arrays(cls, data, _fitted):
    X, y = xy(cls, data)
    with pytest.raises(ValueError, match="0 sample"):
        cls(**FAST).fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="0 feature"):
        cls(**FAST).fit(X[:, :0], y)
    with pytest.raises(ValueError, match="0 sample"):
        _fitted[cls].predict(X[:0])


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_inconsistent_lengths(cls, data):
    X, y = xy(cls, data)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        cls(**FAST).fit(X, y[:-1])


# -------------------------------------------------------------------- bad y
def test_nan_in_y(fitted, data):
    X, y = xy(type(fitted), data)
    before = snapshot(fitted, X)
    y_nan = y.astype(float)
    y_nan[4] = np.nan
    with pytest.raises(ValueError, match="Input y contains NaN"):
        fitted.fit(X, y_nan)
    assert_unchanged(fitted, before, X)


def test_inf_in_regression_target(data):
    X, _, y = data
    with pytest.raises(ValueError, match="Input y contains infinity"):
        MCDropoutRegressor(**FAST).fit(X, np.r_[y[:-1], np.inf])


def test_one_class(_fitted, data):
    X = data[0]
    fitted = copy.deepcopy(_fitted[MCDropoutClassifier])
    before = snapshot(fitted, X)
    # Valid X with a new width: the failure comes after X was accepted.
    X_wide = np.c_[X, X]
    with pytest.raises(ValueError, match="at least 2 classes"):
        fitted.fit(X_wide, np.full(len(X), "only"))
    assert fitted.n_features_in_ == 4
    assert_unchanged(fitted, before, X)
    with pytest.raises(ValueError, match="at least 2 classes"):
        MCDropoutClassifier(**FAST).fit(X, np.ones(len(X)))


def test_continuous_target_for_a_classifier(data):
    X, _, y_reg = data
    with pytest.raises(ValueError, match="Unknown label type"):
        MCDropoutClassifier(**FAST).fit(X, y_reg)


def test_two_dimensional_labels_for_a_classifier(data):
    X, y, _ = data
    with pytest.raises(ValueError, match="1d array"):
        MCDropoutClassifier(**FAST).fit(X, np.c_[y, y])


def test_string_target_for_a_regressor(data):
    X = data[0]
    with pytest.raises(ValueError, match="convert"):
        MCDropoutRegressor(**FAST).fit(X, np.array(["a", "b"] * 20))


# --------------------------------------------------------------- parameters
INVALID_PARAMS = [
    ("lr", 0),
    ("lr", -0.1),
    ("lr", "fast"),
    ("dropout", 1.0),
    ("dropout", -0.1),
    ("dropout", 2),
    ("activation", "sigmoid"),
    ("n_samples", 0),
    ("n_samples", 1.5),
    ("max_epochs", 0),
    ("batch_size", 0),
    ("weight_decay", -1.0),
    ("optimizer", "rmsprop"),
    ("early_stopping", "yes"),
    ("validation_fraction", 0.0),
    ("validation_fraction", 1.0),
    ("n_iter_no_change", 0),
    ("predict_batch_size", 0),
    ("callbacks", "progress"),
    ("module", "MLP"),
    ("hidden_layer_sizes", "16"),
    ("random_state", "seed"),
    ("verbose", "loud"),
]


@pytest.mark.parametrize("name, value", INVALID_PARAMS, ids=lambda v: repr(v))
def test_invalid_parameter(fitted, data, name, value):
    X, y = xy(type(fitted), data)
    before = snapshot(fitted, X)
    original = fitted.get_params()[name]
    fitted.set_params(**{name: value})
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of"):
        fitted.fit(X, y)
    fitted.set_params(**{name: original})  # e.g. n_samples is used by predict
    assert_unchanged(fitted, before, X)
    # Also at construction, on a fresh estimator.
    fresh = type(fitted)(**{name: value})
    with pytest.raises(InvalidParameterError, match=name):
        fresh.fit(X, y)
    assert not hasattr(fresh, "net_")


@pytest.mark.parametrize("value", ["laplace", "student", None])
def test_invalid_likelihood(data, value):
    X, _, y = data
    with pytest.raises(InvalidParameterError, match="'likelihood' parameter"):
        MCDropoutRegressor(**FAST, likelihood=value).fit(X, y)


@pytest.mark.parametrize("sizes", [(0,), (16, -1), (16, 2.5)])
def test_invalid_hidden_layer_sizes(fitted, data, sizes):
    X, y = xy(type(fitted), data)
    before = snapshot(fitted, X)
    fitted.set_params(hidden_layer_sizes=sizes)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        fitted.fit(X, y)
    assert_unchanged(fitted, before, X)


def test_no_hidden_layer_means_no_dropout(data):
    X, y, _ = data
    with pytest.raises(ValueError, match="at least one hidden layer"):
        MCDropoutClassifier(**{**FAST, "hidden_layer_sizes": ()}).fit(X, y)


def test_unknown_keyword_raises_type_error_at_fit(fitted, data):
    X, y = xy(type(fitted), data)
    est = type(fitted)(**FAST, foo=1)  # stored, as scikit-learn requires
    assert est.get_params()["foo"] == 1
    with pytest.raises(TypeError, match="foo"):
        est.fit(X, y)
    assert not hasattr(est, "net_")
    with pytest.raises(ValueError, match="Invalid parameter 'foo'"):
        fitted.set_params(foo=1)


def test_bad_routed_arguments_keep_fitted_model(fitted, data):
    X, y = xy(type(fitted), data)
    before = snapshot(fitted, X)
    fitted.set_params(optimizer__not_an_option=3)
    with pytest.raises(TypeError, match="not_an_option"):
        fitted.fit(X, y)
    assert_unchanged(fitted, before, X)


class Net(nn.Module):
    def __init__(self, n_features_in, n_outputs, hidden=8):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_features_in, hidden),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(hidden, n_outputs),
        )

    def forward(self, x):
        return self.layers(x)


class NoDropout(nn.Module):
    def __init__(self, n_features_in, n_outputs):
        super().__init__()
        self.linear = nn.Linear(n_features_in, n_outputs)

    def forward(self, x):
        return self.linear(x)


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(module=Net, module__width=3), TypeError, "width"),
        (dict(module=NoDropout), ValueError, "no dropout layer"),
        (dict(module=Net(4, 2), module__hidden=3), ValueError, "module__"),
    ],
    ids=["unknown-module-arg", "no-dropout", "kwargs-with-instance"],
)
def test_bad_module_keeps_fitted_model(fitted, data, params, error, match):
    X, y = xy(type(fitted), data)
    before = snapshot(fitted, X)
    # The default network's width is not a setting of a user module.
    fitted.set_params(hidden_layer_sizes=DEFAULT_WIDTH, **params)
    with pytest.raises(error, match=match):
        fitted.fit(X, y)
    assert_unchanged(fitted, before, X)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(module__width=3), r"arguments for a user module, but module=None"),
        (dict(module=Net, hidden_layer_sizes=(7,)), r"hidden_layer_sizes=\(7,\) configure"),
        (dict(module=Net, activation="tanh", dropout=0.3), r"activation='tanh', dropout=0.3"),
    ],
    ids=["module-args-without-module", "width-with-module", "activation-dropout-with-module"],
)
def test_settings_that_cannot_apply_are_errors(fitted, data, params, match):
    """Settings that would be silently ignored are refused (a grid search over them
    would compare identical fits), and a fitted model survives the failed refit."""
    X, y = xy(type(fitted), data)
    before = snapshot(fitted, X)
    fitted.set_params(**{"hidden_layer_sizes": DEFAULT_WIDTH, **params})
    with pytest.raises(ValueError, match=match):
        fitted.fit(X, y)
    assert_unchanged(fitted, before, X)


def test_failed_refit_restores_labels_and_feature_names(data):
    X, y, _ = data
    frame = pd.DataFrame(X, columns=list("abcd"))
    clf = MCDropoutClassifier(**FAST, random_state=0).fit(frame, np.array(["x", "y"])[y])
    before = snapshot(clf, frame)
    clf.set_params(module=NoDropout, hidden_layer_sizes=DEFAULT_WIDTH)
    # New labels and no feature names: both are set during fit before the failure.
    with pytest.raises(ValueError, match="no dropout layer"):
        clf.fit(X, y + 5)
    assert_array_equal(clf.classes_, ["x", "y"])
    assert_array_equal(clf.feature_names_in_, list("abcd"))
    assert_unchanged(clf, before, frame)


def test_bad_device(data):
    X, y, _ = data
    with pytest.raises(ValueError, match="device"):
        MCDropoutClassifier(**FAST, device="not-a-device").fit(X, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(fitted, data):
    X, y = xy(type(fitted), data)
    before = snapshot(fitted, X)
    fitted.set_params(device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        fitted.fit(X, y)
    assert_unchanged(fitted, before, X)


@pytest.mark.parametrize("n_samples", [0, -3, 1.5, "10"])
def test_bad_n_samples_at_predict_time(fitted, data, n_samples):
    X = data[0]
    before = snapshot(fitted, X)
    with pytest.raises(ValueError, match="n_samples"):
        fitted.predict_uncertainty(X, n_samples=n_samples)
    with pytest.raises(ValueError, match="n_samples"):
        fitted.sample_predictions(X, n_samples=n_samples)
    assert_unchanged(fitted, before, X)


# ------------------------------------------------------------- not fitted
@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_predict_before_fit(cls, data):
    X = data[0]
    est = cls(**FAST)
    methods = ["predict", "predict_uncertainty", "sample_predictions"]
    if cls is MCDropoutClassifier:
        methods.append("predict_proba")
    for method in methods:
        with pytest.raises(NotFittedError):
            getattr(est, method)(X)
    with pytest.raises(NotFittedError):
        est.module_  # noqa: B018
    assert not hasattr(est, "module_")


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_predict_on_nan_does_not_fit(cls, data):
    """The NaN check at predict time runs after the fitted check: NotFittedError first."""
    X = _with(data[0], 0, 0, np.nan)
    with pytest.raises(NotFittedError):
        cls(**FAST).predict(X)
