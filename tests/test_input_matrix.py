"""Bad input and bad parameters on every public estimator (issue 12): the error's
type and message, a fitted estimator's predictions bit-identical after the failed
call, and inputs never mutated.  tests/test_validation.py goes deeper on MC dropout."""

import copy

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import Interval, InvalidParameterError
from test_common import public_predictors

import skbdl

# Tiny training budgets on purpose: their fits are too short to converge.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = dict(hidden_layer_sizes=(8,), max_epochs=3, n_samples=4, verbose=0, calibrate=False)


PREDICTORS = public_predictors()


def make(cls):
    names = cls().get_params()
    params = {k: v for k, v in FAST.items() if k in names}
    if "population_size" in names:
        params.update(population_size=4, n_estimators=2)
    elif "n_estimators" in names:
        params["n_estimators"] = 2
    if "estimator" in names:
        inner = skbdl.MCDropoutClassifier if is_classifier(cls()) else skbdl.MCDropoutRegressor
        params["estimator"] = inner(**FAST, random_state=0)
    return cls(**params, random_state=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(60, 3)
    return X, np.array(["a", "b"])[(X[:, 0] > 0).astype(int)], X[:, 0] + 0.1 * rng.randn(60)


def xy(est, data):
    X, labels, target = data
    return X, (labels if is_classifier(est) else target)


@pytest.fixture(scope="module")
def _fitted(data):
    return {cls: make(cls).fit(*xy(make(cls), data)) for cls in PREDICTORS}


@pytest.fixture(params=PREDICTORS, ids=lambda cls: cls.__name__)
def fitted(request, _fitted):
    return copy.deepcopy(_fitted[request.param])


def predictions(est, X):
    if is_classifier(est):
        return (est.predict_proba(X),)
    return est.predict(X, return_std=True)


def assert_same_predictions(est, before, X):
    for a, b in zip(before, predictions(est, X)):
        assert_array_equal(a, b)


def _set(X, row, col, value):
    X = X.copy()
    X[row, col] = value
    return X


BAD_X = {
    "nan": (lambda X: _set(X, 3, 1, np.nan), ValueError, "NaN"),
    "inf": (lambda X: _set(X, 0, 0, np.inf), ValueError, "infinity"),
    "beyond-float32": (lambda X: X * 1e40, ValueError, "beyond the range of float32"),
    "1d": (lambda X: X[:, 0], ValueError, "2D array"),
    "empty": (lambda X: X[:0], ValueError, "0 sample"),
    "strings": (lambda X: X.astype(str).astype(object) + "x", ValueError, "convert|could not"),
}


@pytest.mark.parametrize("case", list(BAD_X))
def test_bad_X_at_fit_keeps_the_fitted_model(fitted, data, case):
    make_bad, error, match = BAD_X[case]
    X, y = xy(fitted, data)
    before = predictions(fitted, X)
    state = {k: v for k, v in vars(fitted).items() if k.endswith("_")}
    bad = make_bad(X)
    with pytest.raises(error, match=match):
        fitted.fit(bad, y[: len(bad)])
    assert {k: v for k, v in vars(fitted).items() if k.endswith("_")}.keys() == state.keys()
    assert all(vars(fitted)[k] is v for k, v in state.items())
    assert_same_predictions(fitted, before, X)


@pytest.mark.parametrize("case", [c for c in BAD_X if c != "empty"])
def test_bad_X_at_predict(fitted, data, case):
    make_bad, error, match = BAD_X[case]
    X, _ = xy(fitted, data)
    before = predictions(fitted, X)
    with pytest.raises(error, match=match):
        fitted.predict(make_bad(X))
    assert_same_predictions(fitted, before, X)


def test_wrong_width_and_lengths(fitted, data):
    X, y = xy(fitted, data)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(X[:, :2])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        make(type(fitted)).fit(X, y[:-1])


def _invalid_values(cls):
    """``(name, value)`` pairs outside each numeric interval constraint."""
    cases, names = [], cls().get_params()
    for name, constraints in cls._parameter_constraints.items():
        if name not in names:
            continue
        for c in constraints:
            if isinstance(c, Interval) and c.left is not None:
                cases.append((name, c.left - 1))  # below the interval: always invalid
                break
    return cases


@pytest.mark.parametrize("cls", PREDICTORS, ids=lambda cls: cls.__name__)
def test_invalid_numeric_parameters(cls, data, _fitted):
    est = copy.deepcopy(_fitted[cls])
    X, y = xy(est, data)
    before = predictions(est, X)
    cases = _invalid_values(cls)
    assert cases, "no numeric constraint to test"
    for name, value in cases:
        est.set_params(**{name: value})
        with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
            est.fit(X, y)
        est.set_params(**{name: _fitted[cls].get_params()[name]})
        assert_same_predictions(est, before, X)


@pytest.mark.parametrize("cls", PREDICTORS, ids=lambda cls: cls.__name__)
def test_inputs_are_never_mutated(cls, data):
    X, y = xy(make(cls), data)
    X = np.asfortranarray(X)  # an unusual layout, which a cast might tempt one to write
    X_copy, y_copy = X.copy(), y.copy()
    est = make(cls).fit(X, y)
    predictions(est, X)
    est.predict_uncertainty(X)
    assert_array_equal(X, X_copy)
    assert_array_equal(y, y_copy)
    assert X.flags.f_contiguous and X.flags.writeable


@pytest.mark.parametrize("cls", PREDICTORS, ids=lambda cls: cls.__name__)
def test_predict_before_fit(cls, data):
    X, _ = xy(make(cls), data)
    with pytest.raises(NotFittedError):
        make(cls).predict(X)
