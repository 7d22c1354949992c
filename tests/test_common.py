"""scikit-learn's estimator checks over every public estimator, found by walking skbdl."""

import inspect
import pkgutil
from importlib import import_module

from sklearn.base import BaseEstimator, is_classifier
from sklearn.utils.estimator_checks import parametrize_with_checks

import skbdl


def all_estimators():
    """Every public estimator class defined in the skbdl package."""
    found = {}
    for info in pkgutil.walk_packages(skbdl.__path__, prefix="skbdl."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        module = import_module(info.name)
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, BaseEstimator)
                and obj.__module__.startswith("skbdl")
                and not name.startswith("_")
                and not inspect.isabstract(obj)
            ):
                found[name] = obj
    return [found[name] for name in sorted(found)]


#: Small, fast settings for the checks; every estimator accepts these.
FAST_PARAMS = dict(hidden_layer_sizes=(16,), max_epochs=20, lr=0.01, n_samples=10)


def fast_instances():
    instances = []
    for cls in all_estimators():
        params = {k: v for k, v in FAST_PARAMS.items() if k in cls().get_params()}
        if "estimator" in cls().get_params():  # a meta-estimator: give it a fast network
            inner = skbdl.MCDropoutClassifier if is_classifier(cls()) else skbdl.MCDropoutRegressor
            params["estimator"] = inner(**FAST_PARAMS, dropout=0.0, random_state=0)
        instances.append(cls(**params, random_state=0))
    return instances


def variant_instances():
    """Settings that take code paths the defaults do not (MultiSWAG; diagonal
    Laplace with Monte Carlo probabilities)."""
    inner = skbdl.MCDropoutClassifier(**FAST_PARAMS, dropout=0.0, random_state=0)
    return [
        skbdl.SWAGRegressor(**FAST_PARAMS, n_models=2, random_state=0),
        skbdl.LaplaceClassifier(
            inner, hessian_structure="diag", predictive="mc", n_samples=10, random_state=0
        ),
    ]


def test_estimators_are_found():
    names = {cls.__name__ for cls in all_estimators()}
    assert {"MCDropoutClassifier", "MCDropoutRegressor"} <= names
    assert {"SWAGClassifier", "SWAGRegressor", "LaplaceClassifier", "LaplaceRegressor"} <= names
    assert names == {name for name in skbdl.__all__ if name in names}


@parametrize_with_checks(fast_instances() + variant_instances())
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
