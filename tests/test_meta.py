"""Uncertainty through meta-estimators: skbdl.predict_uncertainty, predict_interval and
sample_predictions on Pipeline, the search estimators, TransformedTargetRegressor and
FrozenEstimator give exactly what the skbdl estimator inside gives on X transformed by hand."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from scipy.special import ndtri
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, QuantileTransformer, StandardScaler

import skbdl
from skbdl import MCDropoutClassifier, MCDropoutRegressor

NET = dict(hidden_layer_sizes=(8,), max_epochs=5, batch_size=32, verbose=0, random_state=0)

# Tiny training budgets keep this file fast; what it tests (the walk through the
# meta-estimators) does not depend on how well the networks fit.
pytestmark = pytest.mark.filterwarnings("ignore:Training did not converge")


@pytest.fixture(scope="module")
def reg_data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 3)) * [1.0, 10.0, 100.0]
    y = 50.0 * np.sin(X[:, 0]) + 0.2 * X[:, 1] + 5.0 * rng.randn(120) + 300.0
    return X, y


@pytest.fixture(scope="module")
def clf_data():
    rng = np.random.RandomState(1)
    X = rng.normal(size=(120, 3)) * [1.0, 10.0, 100.0]
    y = np.where(X[:, 0] + X[:, 1] / 10 > 0, "yes", "no")
    return X, y


@pytest.fixture(scope="module")
def reg_pipe(reg_data):
    return make_pipeline(StandardScaler(), MCDropoutRegressor(**NET)).fit(*reg_data)


@pytest.fixture(scope="module")
def clf_pipe(clf_data):
    return make_pipeline(StandardScaler(), MCDropoutClassifier(**NET)).fit(*clf_data)


def assert_same(got, expected):
    """Bit-identical results: arrays, tuples of arrays, or uncertainty dataclasses."""
    if hasattr(expected, "__dataclass_fields__"):
        assert type(got) is type(expected)
        for field in expected.__dataclass_fields__:
            assert_array_equal(getattr(got, field), getattr(expected, field), strict=True)
    elif isinstance(expected, tuple):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert_array_equal(g, e, strict=True)
    else:
        assert_array_equal(got, expected, strict=True)


REGRESSOR_CALLS = [
    ("predict_uncertainty", {}),
    ("predict_uncertainty", {"n_samples": 7}),
    ("predict_interval", {"confidence": 0.8}),
    ("predict_interval", {"confidence": 0.8, "method": "mixture", "n_samples": 9}),
    ("sample_predictions", {"n_samples": 6}),
]
CLASSIFIER_CALLS = [
    ("predict_uncertainty", {}),
    ("sample_predictions", {"n_samples": 6}),
]


def by_hand(pipe, method, X, kwargs):
    return getattr(pipe[-1], method)(pipe[:-1].transform(X), **kwargs)


@pytest.mark.parametrize(("method", "kwargs"), REGRESSOR_CALLS)
def test_pipeline_regressor_equals_last_step_on_transformed_X(reg_pipe, reg_data, method, kwargs):
    X = reg_data[0][:15]
    got = getattr(skbdl, method)(reg_pipe, X, **kwargs)
    assert_same(got, by_hand(reg_pipe, method, X, kwargs))


@pytest.mark.parametrize(("method", "kwargs"), CLASSIFIER_CALLS)
def test_pipeline_classifier_equals_last_step_on_transformed_X(clf_pipe, clf_data, method, kwargs):
    X = clf_data[0][:15]
    got = getattr(skbdl, method)(clf_pipe, X, **kwargs)
    assert_same(got, by_hand(clf_pipe, method, X, kwargs))


def test_estimator_itself_is_called_directly(reg_pipe, reg_data):
    X_scaled = reg_pipe[0].transform(reg_data[0][:10])
    network = reg_pipe[-1]
    assert_same(skbdl.predict_uncertainty(network, X_scaled), network.predict_uncertainty(X_scaled))


def test_pipeline_predict_return_std_is_routed(reg_pipe, reg_data):
    # scikit-learn's Pipeline forwards predict's keyword arguments to the last step.
    X = reg_data[0][:15]
    mean, std = reg_pipe.predict(X, return_std=True)
    u = skbdl.predict_uncertainty(reg_pipe, X)
    assert_array_equal(mean, u.mean)
    assert_array_equal(std, u.std)


def test_search_cannot_return_std_so_the_function_is_the_way(reg_data):
    # Documented in the user guide: BaseSearchCV.predict takes no keyword arguments.
    search = GridSearchCV(MCDropoutRegressor(**NET), {"dropout": [0.05]}, cv=2).fit(*reg_data)
    with pytest.raises(TypeError, match="return_std"):
        search.predict(reg_data[0][:5], return_std=True)
    u = skbdl.predict_uncertainty(search, reg_data[0][:5])
    assert_array_equal(u.mean, search.predict(reg_data[0][:5]))


@pytest.mark.parametrize("search_class", [GridSearchCV, RandomizedSearchCV])
def test_pipeline_inside_search(search_class, reg_data, clf_data):
    grid = {"mcdropoutregressor__dropout": [0.05, 0.2]}
    kwargs = {"n_iter": 2, "random_state": 0} if search_class is RandomizedSearchCV else {}
    search = search_class(
        make_pipeline(StandardScaler(), MCDropoutRegressor(**NET)), grid, cv=2, **kwargs
    ).fit(*reg_data)
    best, X = search.best_estimator_, reg_data[0][:12]
    for method, call_kwargs in REGRESSOR_CALLS:
        got = getattr(skbdl, method)(search, X, **call_kwargs)
        assert_same(got, by_hand(best, method, X, call_kwargs))


@pytest.mark.parametrize("search_class", [GridSearchCV, RandomizedSearchCV])
def test_classifier_inside_search(search_class, clf_data):
    # Not in a pipeline: the search's best estimator is the skbdl classifier itself.
    kwargs = {"n_iter": 2, "random_state": 0} if search_class is RandomizedSearchCV else {}
    search = search_class(MCDropoutClassifier(**NET), {"dropout": [0.05, 0.2]}, cv=2, **kwargs).fit(
        *clf_data
    )
    X = clf_data[0][:12]
    for method, call_kwargs in CLASSIFIER_CALLS:
        got = getattr(skbdl, method)(search, X, **call_kwargs)
        assert_same(got, getattr(search.best_estimator_, method)(X, **call_kwargs))
    u = skbdl.predict_uncertainty(search, X)
    assert_array_equal(search.best_estimator_.classes_[u.proba.argmax(axis=1)], search.predict(X))


def test_halving_search(reg_data):
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    search = HalvingGridSearchCV(
        make_pipeline(StandardScaler(), MCDropoutRegressor(**NET)),
        {"mcdropoutregressor__dropout": [0.05, 0.2]},
        cv=2,
        min_resources=40,
        random_state=0,
    ).fit(*reg_data)
    X = reg_data[0][:12]
    assert_same(
        skbdl.predict_uncertainty(search, X),
        by_hand(search.best_estimator_, "predict_uncertainty", X, {}),
    )


def test_frozen_estimator(reg_pipe, reg_data):
    X = reg_data[0][:10]
    frozen = FrozenEstimator(reg_pipe)
    for method, kwargs in REGRESSOR_CALLS:
        assert_same(
            getattr(skbdl, method)(frozen, X, **kwargs), by_hand(reg_pipe, method, X, kwargs)
        )


@pytest.fixture(scope="module")
def scaled_target(reg_data):
    """A TransformedTargetRegressor standardising y, around a pipeline."""
    model = TransformedTargetRegressor(
        regressor=make_pipeline(StandardScaler(), MCDropoutRegressor(**NET)),
        transformer=StandardScaler(),
    )
    return model.fit(*reg_data)


def test_transformed_target_standard_scaler_maps_exactly(scaled_target, reg_data):
    X = reg_data[0][:15]
    inner, scaler = scaled_target.regressor_, scaled_target.transformer_
    a, b = scaler.scale_, scaler.mean_  # y = a * z + b
    u_inner = by_hand(inner, "predict_uncertainty", X, {})
    u = skbdl.predict_uncertainty(scaled_target, X)
    assert u.mean.shape == u.std.shape == (15,)
    assert_array_equal(u.mean, scaled_target.predict(X))  # bit-identical to its predict
    assert_array_equal(u.std, u_inner.std * a)
    for name in ("total_var", "aleatoric_var", "epistemic_var"):
        assert_array_equal(getattr(u, name), getattr(u_inner, name) * a**2)
    np.testing.assert_allclose(u.mean, u_inner.mean * a + b, rtol=1e-12)
    np.testing.assert_allclose(u.std**2, u.total_var, rtol=1e-12)

    # Gaussian intervals: mean -+ z std in the original units.
    intervals = skbdl.predict_interval(scaled_target, X, confidence=0.9)
    half_width = ndtri(0.95) * u.std
    np.testing.assert_allclose(intervals, np.stack([u.mean - half_width, u.mean + half_width], 1))
    mixture = skbdl.predict_interval(scaled_target, X, method="mixture", n_samples=9)
    inner_mixture = by_hand(inner, "predict_interval", X, {"method": "mixture", "n_samples": 9})
    np.testing.assert_allclose(mixture, inner_mixture * a + b, rtol=1e-12)

    means, variances = skbdl.sample_predictions(scaled_target, X, n_samples=6)
    inner_means, inner_variances = by_hand(inner, "sample_predictions", X, {"n_samples": 6})
    assert means.shape == variances.shape == (6, 15)
    np.testing.assert_allclose(means, inner_means * a + b, rtol=1e-12)
    assert_array_equal(variances, inner_variances * a**2)


def test_transformed_target_multi_output_scales_each_target(reg_data):
    X, y = reg_data
    Y = np.column_stack([y, -0.01 * y + 3.0])
    model = TransformedTargetRegressor(MCDropoutRegressor(**NET), transformer=MinMaxScaler())
    model.fit(X, Y)
    inner, scaler = model.regressor_, model.transformer_
    slope = 1.0 / scaler.scale_  # MinMaxScaler.inverse_transform: (z - min_) / scale_
    u = skbdl.predict_uncertainty(model, X[:10])
    u_inner = inner.predict_uncertainty(X[:10])
    assert u.mean.shape == (10, 2)
    assert_array_equal(u.mean, model.predict(X[:10]))
    assert_array_equal(u.std, u_inner.std * slope)
    intervals = skbdl.predict_interval(model, X[:10])
    assert intervals.shape == (10, 2, 2)
    np.testing.assert_allclose(
        intervals[..., 1] - intervals[..., 0],
        (inner.predict_interval(X[:10])[..., 1] - inner.predict_interval(X[:10])[..., 0]) * slope,
        rtol=1e-10,
    )


def test_transformed_target_identity(reg_data):
    model = TransformedTargetRegressor(MCDropoutRegressor(**NET)).fit(*reg_data)
    X = reg_data[0][:8]
    assert_same(skbdl.predict_uncertainty(model, X), model.regressor_.predict_uncertainty(X))


@pytest.mark.parametrize(
    "target_model",
    [
        {"transformer": QuantileTransformer(n_quantiles=50)},
        {"func": np.log, "inverse_func": np.exp},
    ],
    ids=["quantile", "log"],
)
def test_transformed_target_nonlinear_is_refused(target_model, reg_data):
    model = TransformedTargetRegressor(MCDropoutRegressor(**NET), **target_model)
    model.fit(*reg_data)
    for method in ("predict_uncertainty", "predict_interval", "sample_predictions"):
        with pytest.raises(ValueError, match="not a known affine map.*regressor_"):
            getattr(skbdl, method)(model, reg_data[0][:5])


def test_nested_transformed_target_inside_search_pipeline(reg_data):
    X, y = reg_data
    search = GridSearchCV(
        make_pipeline(
            StandardScaler(),
            TransformedTargetRegressor(MCDropoutRegressor(**NET), transformer=StandardScaler()),
        ),
        {"transformedtargetregressor__regressor__dropout": [0.05, 0.2]},
        cv=2,
    ).fit(X, y)
    best = search.best_estimator_
    target_model = best[-1]
    u = skbdl.predict_uncertainty(search, X[:10])
    u_inner = target_model.regressor_.predict_uncertainty(best[0].transform(X[:10]))
    assert_array_equal(u.mean, search.predict(X[:10]))
    assert_array_equal(u.std, u_inner.std * target_model.transformer_.scale_)


def test_final_estimator_without_the_method(reg_data, clf_pipe, clf_data):
    plain = GridSearchCV(
        make_pipeline(StandardScaler(), LinearRegression()),
        {"linearregression__fit_intercept": [True]},
        cv=2,
    ).fit(*reg_data)
    message = (
        "final estimator of GridSearchCV -> Pipeline, LinearRegression, has no predict_uncertainty"
    )
    with pytest.raises(TypeError, match=message):
        skbdl.predict_uncertainty(plain, reg_data[0][:5])
    with pytest.raises(TypeError, match="MCDropoutClassifier, has no predict_interval"):
        skbdl.predict_interval(clf_pipe, clf_data[0][:5])
    with pytest.raises(TypeError, match="^LinearRegression has no sample_predictions"):
        skbdl.sample_predictions(LinearRegression().fit(*reg_data), reg_data[0][:5])


def test_unfitted_and_refit_false(reg_data):
    X = reg_data[0][:5]
    with pytest.raises(NotFittedError):
        skbdl.predict_uncertainty(make_pipeline(StandardScaler(), MCDropoutRegressor()), X)
    with pytest.raises(NotFittedError):
        skbdl.predict_uncertainty(GridSearchCV(MCDropoutRegressor(), {"dropout": [0.1]}), X)
    with pytest.raises(NotFittedError):
        skbdl.predict_uncertainty(TransformedTargetRegressor(MCDropoutRegressor()), X)
    search = GridSearchCV(MCDropoutRegressor(**NET), {"dropout": [0.05]}, cv=2, refit=False)
    with pytest.raises(AttributeError, match="refit=False"):
        skbdl.predict_uncertainty(search.fit(*reg_data), X)
