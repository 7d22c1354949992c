"""skbdl.metrics scorers as ``scoring=`` objects in scikit-learn's tools, with skbdl estimators.

Each score a tool reports is checked against the metric computed by hand on the same
fitted model and the same held-out rows (``return_estimator`` / ``return_indices``),
so a scorer that called the wrong method, dropped a column or flipped a sign fails.
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris, make_regression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbdl import MCDropoutClassifier, MCDropoutRegressor, metrics
from skbdl.metrics import (
    brier_score,
    categorical_nll,
    crps_gaussian,
    expected_calibration_error,
    gaussian_nll,
    get_scorer,
    get_scorer_names,
    neg_brier_scorer,
    neg_crps_scorer,
    neg_nll_scorer,
    regression_calibration_error,
    uncertainty_scorers,
)

TINY = {"hidden_layer_sizes": (8,), "max_epochs": 5, "verbose": 0, "random_state": 0}

#: scorer name -> the metric it negates, as ``metric(y, predictions of the model)``.
REGRESSION_METRICS = {
    "neg_nll": lambda y, mean, std: gaussian_nll(y, mean, std**2),
    "neg_crps": crps_gaussian,
    "neg_regression_calibration_error": regression_calibration_error,
}
CLASSIFICATION_METRICS = {
    "neg_nll": categorical_nll,
    "neg_brier": brier_score,
    "neg_ece": expected_calibration_error,
}


@pytest.fixture(scope="module")
def regression_data():
    X, y = make_regression(120, 4, noise=10.0, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def classification_data():
    X, y = load_iris(return_X_y=True)
    return X, np.array(["setosa", "versicolor", "virginica"])[y]  # string labels


def _regressor_pipeline():
    return make_pipeline(StandardScaler(), MCDropoutRegressor(**TINY))


def _classifier_pipeline():
    return make_pipeline(StandardScaler(), MCDropoutClassifier(**TINY))


def _by_hand_regression(name, model, X, y):
    mean, std = model.predict(X, return_std=True)
    return -REGRESSION_METRICS[name](y, mean, std)


def _by_hand_classification(name, model, X, y):
    return -CLASSIFICATION_METRICS[name](y, model.predict_proba(X), classes=model.classes_)


def test_uncertainty_scorers_are_the_public_objects():
    assert list(uncertainty_scorers("regression")) == list(REGRESSION_METRICS)
    assert list(uncertainty_scorers("classification")) == list(CLASSIFICATION_METRICS)
    for task in ("regression", "classification"):
        for name, scorer in uncertainty_scorers(task).items():
            assert scorer is get_scorer(name) is getattr(metrics, f"{name}_scorer")
    # A new dict each call: extending one does not change the next.
    extended = uncertainty_scorers("regression")
    extended["r2"] = "r2"
    assert "r2" not in uncertainty_scorers("regression")
    with pytest.raises(ValueError, match="'classification' or 'regression'"):
        uncertainty_scorers("clustering")


def test_every_named_scorer_is_a_public_object():
    for name in get_scorer_names():
        assert getattr(metrics, f"{name}_scorer") is get_scorer(name)
        assert f"{name}_scorer" in metrics.__all__


def test_scorers_survive_pickling(regression_data):
    # cross_validate(n_jobs=2) and GridSearchCV(n_jobs=2) send the scorers to workers.
    X, y = regression_data
    model = _regressor_pipeline().fit(X, y)
    for scorer in uncertainty_scorers("regression").values():
        copy = pickle.loads(pickle.dumps(scorer))
        assert copy(model, X, y) == scorer(model, X, y)


@pytest.mark.parametrize("name", list(REGRESSION_METRICS))
def test_cross_val_score_with_a_regression_scorer_object(regression_data, name):
    X, y = regression_data
    cv = KFold(2, shuffle=True, random_state=0)
    scores = cross_val_score(_regressor_pipeline(), X, y, cv=cv, scoring=get_scorer(name))
    for score, (train, test) in zip(scores, cv.split(X)):
        model = clone(_regressor_pipeline()).fit(X[train], y[train])
        assert score == pytest.approx(_by_hand_regression(name, model, X[test], y[test]))


def test_cross_validate_with_the_regression_dict_through_a_pipeline(regression_data):
    X, y = regression_data
    scoring = {**uncertainty_scorers("regression"), "r2": "r2"}
    result = cross_validate(
        _regressor_pipeline(),
        X,
        y,
        cv=2,
        scoring=scoring,
        return_estimator=True,
        return_indices=True,
    )
    for fold, model in enumerate(result["estimator"]):
        test = result["indices"]["test"][fold]
        for name in REGRESSION_METRICS:
            expected = _by_hand_regression(name, model, X[test], y[test])
            assert result[f"test_{name}"][fold] == pytest.approx(expected)
    assert np.all(result["test_neg_nll"] < 0) and np.all(result["test_neg_crps"] < 0)
    assert np.all(np.isfinite(result["test_r2"]))


def test_cross_validate_with_the_classification_dict_through_a_pipeline(classification_data):
    X, y = classification_data
    result = cross_validate(
        _classifier_pipeline(),
        X,
        y,
        cv=KFold(3, shuffle=True, random_state=0),
        scoring=uncertainty_scorers("classification"),
        return_estimator=True,
        return_indices=True,
    )
    for fold, model in enumerate(result["estimator"]):
        test = result["indices"]["test"][fold]
        for name in CLASSIFICATION_METRICS:
            expected = _by_hand_classification(name, model, X[test], y[test])
            assert result[f"test_{name}"][fold] == pytest.approx(expected)


def test_grid_search_refits_on_an_uncertainty_scorer(classification_data):
    X, y = classification_data
    grid = {"mcdropoutclassifier__dropout": [0.0, 0.3]}
    search = GridSearchCV(
        _classifier_pipeline(),
        grid,
        scoring={**uncertainty_scorers("classification"), "accuracy": "accuracy"},
        refit="neg_nll",
        cv=KFold(2, shuffle=True, random_state=0),
    ).fit(X, y)
    results = search.cv_results_
    best = int(np.argmax(results["mean_test_neg_nll"]))
    assert search.best_index_ == best
    assert search.best_params_ == results["params"][best]
    for name in CLASSIFICATION_METRICS:
        assert np.all(np.isfinite(results[f"mean_test_{name}"]))
    # The fitted search object is scored through its best estimator.
    expected = _by_hand_classification("neg_ece", search.best_estimator_, X, y)
    assert get_scorer("neg_ece")(search, X, y) == pytest.approx(expected)


def test_nested_cross_validation_of_a_regressor_search(regression_data):
    # The outer scorer receives a fitted GridSearchCV, whose predict() does not take
    # return_std: the scorer scores its best_estimator_, which predicts the same.
    X, y = regression_data
    search = GridSearchCV(
        _regressor_pipeline(),
        {"mcdropoutregressor__lr": [3e-3, 1e-2]},
        scoring=neg_nll_scorer,
        cv=2,
    )
    cv = KFold(2, shuffle=True, random_state=0)
    scores = cross_val_score(search, X, y, cv=cv, scoring=neg_crps_scorer)
    train, test = next(cv.split(X))
    fitted = clone(search).fit(X[train], y[train])
    expected = _by_hand_regression("neg_crps", fitted.best_estimator_, X[test], y[test])
    assert scores[0] == pytest.approx(expected)
    with pytest.raises(TypeError, match="return_std"):
        fitted.predict(X[test], return_std=True)  # what the unwrapping works around


def test_binary_scores_use_every_column_of_predict_proba():
    # make_scorer would hand a metric the positive-class column only; these scorers
    # score the full (n_rows, 2) matrix: the multi-class Brier score is twice
    # scikit-learn's binary one.
    X, y = load_iris(return_X_y=True)
    X, y = X[y > 0], np.where(y[y > 0] == 1, "versicolor", "virginica")
    clf = LogisticRegression(max_iter=500).fit(X, y)
    proba = clf.predict_proba(X)
    assert neg_brier_scorer(clf, X, y) == pytest.approx(
        -2 * brier_score_loss(y, proba[:, 1], pos_label="virginica")
    )
