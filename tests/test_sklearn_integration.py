"""skbdl estimators inside scikit-learn's tools: pipelines, search, CV, calibration,
cloning, persistence, pandas and label / dtype handling."""

import io
import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV, KFold, cross_val_predict, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import LRScheduler
from torch import nn

from skbdl import MCDropoutClassifier, MCDropoutRegressor

FAST = dict(hidden_layer_sizes=(16,), max_epochs=20, lr=0.01, n_samples=10)


class SmallNet(nn.Module):
    """A user module with tunable constructor arguments."""

    def __init__(self, n_features_in, n_outputs, hidden=8, p=0.1):
        super().__init__()
        self.hidden = nn.Linear(n_features_in, hidden)
        self.dropout = nn.Dropout(p)
        self.out = nn.Linear(hidden, n_outputs)

    def forward(self, x):
        return self.out(self.dropout(nn.functional.relu(self.hidden(x))))


# ------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def clf_data():
    """Three classes with string labels; unscaled float64 features."""
    X, y = make_blobs(n_samples=90, centers=3, n_features=3, cluster_std=2.0, random_state=0)
    X = X * [1.0, 10.0, 100.0] + [0.0, 50.0, -300.0]
    labels = np.array(["cat", "dog", "emu"])[y]
    return X, labels


@pytest.fixture(scope="module")
def binary_data():
    X, y = make_blobs(n_samples=80, centers=2, n_features=2, cluster_std=2.5, random_state=1)
    return X, np.array(["no", "yes"])[y]


@pytest.fixture(scope="module")
def reg_data():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(100, 3))
    y = 20 * X[:, 0] - 10 * X[:, 1] ** 2 + 300 + rng.randn(100)
    return X, y


@pytest.fixture(scope="module")
def fitted_clf(clf_data):
    X, y = clf_data
    return MCDropoutClassifier(**FAST, random_state=0).fit(StandardScaler().fit_transform(X), y)


@pytest.fixture(scope="module")
def fitted_reg(reg_data):
    return MCDropoutRegressor(**FAST, random_state=0).fit(*reg_data)


def assert_same_predictions(a, b, X):
    """Every prediction method of two estimators gives identical results."""
    assert_array_equal(a.predict(X), b.predict(X))
    ua, ub = a.predict_uncertainty(X), b.predict_uncertainty(X)
    for name in vars(ua):
        assert_array_equal(getattr(ua, name), getattr(ub, name), err_msg=name)
    if is_classifier(a):
        assert_array_equal(a.predict_proba(X), b.predict_proba(X))
        assert_array_equal(a.sample_predictions(X), b.sample_predictions(X))
    else:
        assert_array_equal(a.predict(X, return_std=True)[1], b.predict(X, return_std=True)[1])
        for sa, sb in zip(a.sample_predictions(X), b.sample_predictions(X)):
            assert_array_equal(sa, sb)


def test_estimator_types():
    assert is_classifier(MCDropoutClassifier())
    assert is_regressor(MCDropoutRegressor())


# ------------------------------------------------------------------ pipelines
def test_pipeline_matches_manual_scaling(clf_data, fitted_clf):
    X, y = clf_data
    pipe = make_pipeline(StandardScaler(), MCDropoutClassifier(**FAST, random_state=0))
    pipe.fit(X, y)
    X_scaled = StandardScaler().fit(X).transform(X)
    assert_array_equal(pipe.predict_proba(X), fitted_clf.predict_proba(X_scaled))
    assert_array_equal(pipe.classes_, ["cat", "dog", "emu"])
    assert pipe.score(X, y) > 0.7


def test_pipeline_regressor_passes_return_std(reg_data):
    X, y = reg_data
    pipe = make_pipeline(StandardScaler(), MCDropoutRegressor(**FAST, random_state=0))
    pipe.fit(X, y)
    mean, std = pipe.predict(X, return_std=True)
    u = pipe[-1].predict_uncertainty(pipe[0].transform(X))
    assert_array_equal(mean, u.mean)
    assert_array_equal(std, u.std)
    assert pipe.score(X, y) > 0.5


# ----------------------------------------------------------- model selection
def test_grid_search_parallel_over_lr_and_module_params(clf_data):
    X, y = clf_data
    X = StandardScaler().fit_transform(X)
    est = MCDropoutClassifier(module=SmallNet, max_epochs=10, n_samples=5, random_state=0)
    grid = {"lr": [1e-3, 3e-2], "module__hidden": [4, 16]}
    parallel = GridSearchCV(est, grid, cv=2, n_jobs=2).fit(X, y)
    serial = GridSearchCV(est, grid, cv=2, n_jobs=1).fit(X, y)

    assert len(parallel.cv_results_["params"]) == 4
    scores = parallel.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()
    assert len(set(np.round(scores, 10))) > 1  # the parameters changed the fits
    # Processes do not change the results: the fits are seeded.
    assert_allclose(scores, serial.cv_results_["mean_test_score"], rtol=1e-6)
    best = parallel.best_estimator_
    assert best.get_params()["module__hidden"] == parallel.best_params_["module__hidden"]
    assert best.module_.hidden.out_features == parallel.best_params_["module__hidden"]
    assert best.lr == parallel.best_params_["lr"]
    assert set(parallel.predict(X)) <= {"cat", "dog", "emu"}


def test_cross_validate(reg_data, clf_data):
    X, y = reg_data
    result = cross_validate(
        MCDropoutRegressor(**FAST, random_state=0), X, y, cv=3, return_estimator=True
    )
    assert result["test_score"].shape == (3,)
    assert np.isfinite(result["test_score"]).all()
    assert result["test_score"].mean() > 0.3
    fitted = result["estimator"]
    assert all(hasattr(est, "net_") for est in fitted)
    assert fitted[0].net_ is not fitted[1].net_

    Xc, yc = clf_data
    result = cross_validate(
        make_pipeline(StandardScaler(), MCDropoutClassifier(**FAST, random_state=0)),
        Xc,
        yc,
        cv=3,
        scoring=["accuracy", "neg_log_loss"],
    )
    assert np.isfinite(result["test_neg_log_loss"]).all()
    assert (result["test_accuracy"] > 0.5).all()


def test_cross_val_predict(clf_data, reg_data):
    X, y = clf_data
    pipe = make_pipeline(StandardScaler(), MCDropoutClassifier(**FAST, random_state=0))
    cv = KFold(3, shuffle=True, random_state=0)
    labels = cross_val_predict(pipe, X, y, cv=cv)
    assert labels.shape == (len(X),)
    assert set(labels) <= {"cat", "dog", "emu"}
    proba = cross_val_predict(pipe, X, y, cv=cv, method="predict_proba")
    assert proba.shape == (len(X), 3)
    assert_allclose(proba.sum(axis=1), 1.0)
    # Same folds and seeds: the labels are the most probable columns (sorted classes).
    assert_array_equal(labels, np.array(["cat", "dog", "emu"])[proba.argmax(axis=1)])

    Xr, yr = reg_data
    pred = cross_val_predict(MCDropoutRegressor(**FAST, random_state=0), Xr, yr, cv=3)
    assert pred.shape == yr.shape


@pytest.mark.parametrize("data", ["binary_data", "clf_data"])
def test_calibrated_classifier_cv(data, request):
    X, y = request.getfixturevalue(data)
    assert X.dtype == np.float64 and y.dtype.kind == "U"
    base = make_pipeline(StandardScaler(), MCDropoutClassifier(**FAST, random_state=0))
    calibrated = CalibratedClassifierCV(base, cv=3).fit(X, y)
    classes = np.unique(y)
    assert_array_equal(calibrated.classes_, classes)
    proba = calibrated.predict_proba(X)
    assert proba.shape == (len(X), len(classes))
    assert_allclose(proba.sum(axis=1), 1.0)
    predicted = calibrated.predict(X)
    assert set(predicted) <= set(classes)
    assert (predicted == y).mean() > 0.6


# --------------------------------------------------------------------- clone
def test_clone_keeps_parameters_and_drops_fitted_state(clf_data):
    X = StandardScaler().fit_transform(clf_data[0])
    est = MCDropoutClassifier(
        module=SmallNet,
        module__hidden=5,
        optimizer__betas=(0.8, 0.9),
        callbacks=[LRScheduler(policy="StepLR", step_size=2)],
        max_epochs=4,
        random_state=0,
    ).fit(X, clf_data[1])
    copy = clone(est)
    params, copy_params = est.get_params(deep=False), copy.get_params(deep=False)
    assert params.keys() == copy_params.keys()
    assert copy_params["module__hidden"] == 5
    assert copy_params["optimizer__betas"] == (0.8, 0.9)
    assert not hasattr(copy, "net_") and not hasattr(copy, "classes_")
    copy.fit(X, clf_data[1])
    assert copy.module_.hidden.out_features == 5
    assert copy.net_.optimizer_.param_groups[0]["betas"] == (0.8, 0.9)
    assert_array_equal(copy.predict_proba(X), est.predict_proba(X))


# --------------------------------------------------------------- persistence
def _pickle_round_trip(est):
    return pickle.loads(pickle.dumps(est))


def _joblib_round_trip(est):
    buffer = io.BytesIO()
    joblib.dump(est, buffer)
    buffer.seek(0)
    return joblib.load(buffer)


@pytest.mark.parametrize("round_trip", [_pickle_round_trip, _joblib_round_trip])
def test_persistence_round_trip(round_trip, fitted_clf, fitted_reg, clf_data, reg_data):
    X_clf = StandardScaler().fit_transform(clf_data[0])
    for est, X in ((fitted_clf, X_clf), (fitted_reg, reg_data[0])):
        loaded = round_trip(est)
        assert loaded.get_params().keys() == est.get_params().keys()
        assert_same_predictions(est, loaded, X)
        assert loaded.loss_curve_ == est.loss_curve_
    assert_array_equal(round_trip(fitted_clf).classes_, fitted_clf.classes_)


def test_persistence_of_user_module_and_progress_bar(clf_data, tmp_path):
    X = StandardScaler().fit_transform(clf_data[0])
    est = MCDropoutClassifier(
        module=SmallNet, module__hidden=6, max_epochs=3, verbose=1, random_state=0
    ).fit(X, clf_data[1])
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    loaded = joblib.load(path)
    assert isinstance(loaded.module_, SmallNet)
    assert_same_predictions(est, loaded, X)
    # A loaded model can be refitted.
    loaded.set_params(verbose=0).fit(X, clf_data[1])


def test_unfitted_estimator_pickles():
    est = MCDropoutRegressor(module=SmallNet, module__hidden=3)
    loaded = _pickle_round_trip(est)
    assert loaded.get_params() == est.get_params()


# -------------------------------------------------------------------- pandas
@pytest.fixture(scope="module")
def frame_data(reg_data):
    X, y = reg_data
    frame = pd.DataFrame(X, columns=["age", "height", "weight"])
    return frame, pd.Series(y, name="target")


@pytest.fixture(scope="module")
def fitted_on_frame(frame_data):
    return MCDropoutRegressor(**FAST, random_state=0).fit(*frame_data)


def test_dataframe_sets_feature_names(fitted_on_frame, frame_data, fitted_reg):
    frame, _ = frame_data
    assert_array_equal(fitted_on_frame.feature_names_in_, ["age", "height", "weight"])
    assert fitted_on_frame.n_features_in_ == 3
    # The same numbers as numpy input give the same model.
    assert fitted_on_frame.loss_curve_ == fitted_reg.loss_curve_
    assert_array_equal(fitted_on_frame.predict(frame), fitted_reg.predict(frame.to_numpy()))
    assert not hasattr(fitted_reg, "feature_names_in_")


def test_dataframe_wrong_column_names_raise(fitted_on_frame, frame_data):
    frame, _ = frame_data
    renamed = frame.rename(columns={"age": "years"})
    with pytest.raises(ValueError, match="feature names"):
        fitted_on_frame.predict(renamed)
    with pytest.raises(ValueError, match="feature names"):
        fitted_on_frame.predict_uncertainty(frame[["weight", "height", "age"]])


def test_dataframe_numpy_mismatch_warns(fitted_on_frame, frame_data, fitted_reg):
    frame, _ = frame_data
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        fitted_on_frame.predict(frame.to_numpy())
    with pytest.warns(UserWarning, match="has feature names"):
        fitted_reg.predict(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted_on_frame.predict(frame)  # matching names: no warning


def test_pandas_series_and_string_labels(clf_data):
    X, y = clf_data
    frame = pd.DataFrame(StandardScaler().fit_transform(X), columns=["a", "b", "c"])
    series = pd.Series(y, name="species")
    clf = MCDropoutClassifier(**FAST, random_state=0).fit(frame, series)
    assert_array_equal(clf.classes_, ["cat", "dog", "emu"])
    predicted = clf.predict(frame)
    assert predicted.dtype == clf.classes_.dtype
    assert (predicted == y).mean() > 0.7
    category = pd.Series(pd.Categorical(y))
    clf_cat = MCDropoutClassifier(**FAST, random_state=0).fit(frame, category)
    assert_array_equal(clf_cat.predict_proba(frame), clf.predict_proba(frame))


def test_mixed_dtype_dataframe(reg_data):
    X, y = reg_data
    frame = pd.DataFrame({"f": X[:, 0], "i": (10 * X[:, 1]).astype(int), "g": X[:, 2]})
    reg = MCDropoutRegressor(**FAST, random_state=0).fit(frame, y)
    assert reg.predict(frame).shape == (len(frame),)


# ---------------------------------------------------------- labels and dtypes
def test_string_labels_end_to_end(binary_data):
    X, y = binary_data
    clf = MCDropoutClassifier(**FAST, random_state=0).fit(X, y)
    assert_array_equal(clf.classes_, ["no", "yes"])
    proba = clf.predict_proba(X)
    # Columns follow classes_: rows labelled "yes" get more "yes" probability.
    assert proba[y == "yes", 1].mean() > proba[y == "no", 1].mean() + 0.3
    assert set(clf.predict(X)) <= {"no", "yes"}
    assert clf.score(X, y) > 0.8


def test_integer_labels_are_kept(binary_data):
    X, y = binary_data
    y_int = np.where(y == "yes", 10, -3)
    y_obj = y.astype(object)
    by_int = MCDropoutClassifier(**FAST, random_state=0).fit(X, y_int)
    by_obj = MCDropoutClassifier(**FAST, random_state=0).fit(X, y_obj)
    by_str = MCDropoutClassifier(**FAST, random_state=0).fit(X, y)
    assert_array_equal(by_int.classes_, [-3, 10])
    assert by_int.predict(X).dtype.kind == "i"
    # Encoded the same way: -3 <-> "no", 10 <-> "yes".
    assert_array_equal(by_int.predict_proba(X), by_str.predict_proba(X))
    assert_array_equal(by_obj.predict(X), by_str.predict(X))


@pytest.mark.parametrize("cls", [MCDropoutClassifier, MCDropoutRegressor])
def test_input_dtypes_give_the_same_model(cls):
    rng = np.random.RandomState(0)
    X_int = rng.randint(-5, 6, size=(60, 3))
    y = (
        (X_int[:, 0] + X_int[:, 1] > 0).astype(int)
        if cls is MCDropoutClassifier
        else (X_int @ [1.0, -2.0, 0.5])
    )
    predictions = []
    for X in (X_int, X_int.astype(np.float64), X_int.astype(np.float32), X_int.tolist()):
        est = cls(**FAST, random_state=0).fit(X, y)
        predictions.append(est.predict_uncertainty(X_int.astype(np.float32)))
    for other in predictions[1:]:
        for name in vars(predictions[0]):
            assert_array_equal(getattr(other, name), getattr(predictions[0], name), err_msg=name)


def test_float64_precision_is_cast_without_error(reg_data):
    X, y = reg_data
    reg = MCDropoutRegressor(**FAST, random_state=0).fit(X.astype(np.float32), y.astype(np.float32))
    assert reg.predict(X).dtype == np.float64
    assert reg.predict(X.astype(np.float32)).shape == (len(X),)


def test_non_contiguous_input(reg_data, fitted_reg):
    X, y = reg_data
    reversed_fit = MCDropoutRegressor(**FAST, random_state=0).fit(X[::-1], y[::-1])
    assert reversed_fit.predict(X[::-1]).shape == (len(X),)
    assert_allclose(fitted_reg.predict(X[::-1]), fitted_reg.predict(X)[::-1], rtol=1e-6)
    fortran = np.asfortranarray(X)
    assert_allclose(fitted_reg.predict(fortran), fitted_reg.predict(X), rtol=1e-6)
