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
        parts = info.name.split(".")[1:]
        # skbdl.benchmark's baselines wrap other libraries for the UCI command.
        if any(part.startswith("_") for part in parts) or parts[0] == "benchmark":
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


def public_predictors():
    """The public estimators that predict (the transformers, e.g. the VAE, do not)."""
    return [cls for cls in all_estimators() if hasattr(cls, "predict")]


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


#: scikit-learn's sample-weight equivalence checks fit once with integer weights and
#: once on the rows repeated, and compare predictions to rtol=1e-7.  Where they fail,
#: why (tests/test_sample_weight.py checks the equivalence where it is deterministic).
_RANDOM_PER_ROW = (
    "training draws {noise} independently per row: a row repeated k times gets k "
    "draws where a row of weight k gets one, so the two fits agree in expectation, not "
    "draw by draw (without the noise, full-batch fits agree: tests/test_sample_weight.py)"
)
_FLOAT32 = (
    "float32 training: the weighted and the repeated fits agree to about 2e-7 relative "
    "(the same sums taken in another order), not to the check's rtol=1e-7"
)
_HELD_OUT = (
    "the fit holds rows out to select its members, drawn over rows: the weighted and the "
    "repeated data are split differently (here every held-out row has weight 0, an error)"
)
_ADF_ORDER = (
    "assumed density filtering updates the posterior row by row in a random order; the "
    "check passes the weighted rows shuffled and the repeated rows in order, so the "
    "updates come in another order (in the same order the fits are equal: "
    "tests/test_sample_weight.py)"
)
_NETWORK_FITTED_HERE = (
    "the network is fitted here by SGD, whose 'auto' training budget and mini-batches "
    "depend on the number of rows: the weighted and the repeated rows train different "
    "networks (on a FrozenEstimator network, integer weights give exactly the posterior "
    "of the repeated rows: tests/test_laplace.py, tests/test_last_layer.py)"
)
_EQUIVALENCE = (
    "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weight_equivalence_on_sparse_data",
)
EXPECTED_FAILED_CHECKS = {
    "MCDropoutClassifier": dict.fromkeys(
        _EQUIVALENCE, _RANDOM_PER_ROW.format(noise="dropout masks")
    ),
    "MCDropoutRegressor": dict.fromkeys(
        _EQUIVALENCE, _RANDOM_PER_ROW.format(noise="dropout masks")
    ),
    "BayesianMLPClassifier": dict.fromkeys(
        _EQUIVALENCE, _RANDOM_PER_ROW.format(noise="weight noise")
    ),
    "BayesianMLPRegressor": dict.fromkeys(
        _EQUIVALENCE, _RANDOM_PER_ROW.format(noise="weight noise")
    ),
    "DeepEnsembleClassifier": dict.fromkeys(_EQUIVALENCE, _FLOAT32),
    "SWAGClassifier": dict.fromkeys(_EQUIVALENCE, _FLOAT32),
    "HyperDeepEnsembleClassifier": {
        **dict.fromkeys(_EQUIVALENCE, _HELD_OUT),
        "check_classifiers_one_label_sample_weights": _HELD_OUT,
    },
    "HyperDeepEnsembleRegressor": dict.fromkeys(_EQUIVALENCE, _HELD_OUT),
    "PBPRegressor": dict.fromkeys(_EQUIVALENCE, _ADF_ORDER),
    **{
        name: dict.fromkeys(_EQUIVALENCE, _NETWORK_FITTED_HERE)
        for name in (
            "LastLayerBayesianRegressor",
            "LastLayerLaplaceClassifier",
            "LastLayerMCDropoutClassifier",
            "LastLayerMCDropoutRegressor",
        )
    },
}


@parametrize_with_checks(
    fast_instances() + variant_instances(),
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(type(est).__name__, {}),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
