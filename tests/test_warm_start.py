"""Continued training: ``warm_start=True`` and ``partial_fit`` pick up the fitted
network, its optimizer state and its random stream, so training in pieces is the
same computation as one longer fit."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.base import clone, is_classifier

from skbdl import (
    BayesianMLPClassifier,
    BayesianMLPRegressor,
    DeepEnsembleClassifier,
    DeepEnsembleRegressor,
    HyperDeepEnsembleRegressor,
    MCDropoutClassifier,
    MCDropoutRegressor,
    PBPRegressor,
    SWAGClassifier,
    SWAGRegressor,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: No held-out rows: a cold fit of 2k epochs is k epochs followed by k more.
BASE = dict(hidden_layer_sizes=(8,), batch_size=16, calibrate=False, random_state=0, verbose=0)
INCREMENTAL = [
    (MCDropoutRegressor, {}),
    (MCDropoutClassifier, {}),
    (BayesianMLPRegressor, {}),
    (BayesianMLPClassifier, {}),
    (DeepEnsembleRegressor, dict(n_estimators=2)),
    (DeepEnsembleClassifier, dict(n_estimators=2)),
    (SWAGRegressor, {}),
    (SWAGClassifier, {}),
]
IDS = [cls.__name__ for cls, _ in INCREMENTAL]


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(80, 3)
    y_reg = np.sin(2 * X[:, 0]) + 0.1 * rng.randn(80)
    y_clf = np.array(["a", "b", "c"])[(X[:, 0] > 0.5).astype(int) + (X[:, 1] > 0)]
    return X, y_reg, y_clf


def target(est, data):
    return data[2] if is_classifier(est) else data[1]


def parameters(est):
    return {k: v.detach().clone() for k, v in est.module_.state_dict().items()}


def assert_same_parameters(a, b):
    pa, pb = parameters(a), parameters(b)
    for name in pb:
        assert_allclose(pa[name], pb[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("cls, params", INCREMENTAL, ids=IDS)
def test_warm_start_continues_as_one_longer_fit(cls, params, data):
    X = data[0]
    est = cls(**BASE, **params)
    y = target(est, data)
    long = clone(est).set_params(max_epochs=6).fit(X, y)
    warm = clone(est).set_params(max_epochs=3, warm_start=True).fit(X, y)
    first = parameters(warm)
    warm.fit(X, y)
    assert warm.n_iter_ == 6 and len(warm.loss_curve_) == 6
    assert_same_parameters(warm, long)
    assert_allclose(warm.loss_curve_, long.loss_curve_, rtol=1e-5)
    assert any(not torch.equal(first[k], v) for k, v in parameters(warm).items())


def test_cold_fit_without_warm_start_starts_afresh(data):
    X, y, _ = data
    est = MCDropoutRegressor(**BASE, max_epochs=3).fit(X, y)
    again = parameters(est.fit(X, y))
    assert est.n_iter_ == 3
    for name, value in parameters(clone(est).fit(X, y)).items():
        assert torch.equal(again[name], value)


def test_warm_start_keeps_decreasing_the_loss(data):
    X, y, _ = data
    est = MCDropoutRegressor(**BASE, max_epochs=5, warm_start=True, lr=0.01)
    est.fit(X, y)
    for _ in range(3):
        est.fit(X, y)
    curve = np.asarray(est.loss_curve_)
    assert len(curve) == 20
    assert curve[-5:].mean() < curve[5:10].mean() < curve[:5].mean()


def test_warm_start_keeps_the_first_fit_setup(data):
    X, y, labels = data
    reg = MCDropoutRegressor(**BASE, max_epochs=2, warm_start=True).fit(X, y)
    mean, scale = reg.y_mean_.copy(), reg.y_scale_.copy()
    reg.fit(X[:40], y[:40] + 10.0)  # new rows: the standardisation stays
    assert_allclose(reg.y_mean_, mean) and assert_allclose(reg.y_scale_, scale)
    clf = MCDropoutClassifier(**BASE, max_epochs=2, warm_start=True).fit(X, labels)
    with pytest.raises(ValueError, match="not among the classes"):
        clf.fit(X, np.where(labels == "a", "z", labels))
    with pytest.raises(ValueError, match="X has 2 features"):
        clf.fit(X[:, :2], labels)
    assert clf.n_iter_ == 2  # the failed calls left it as it was


@pytest.mark.parametrize("cls, params", INCREMENTAL, ids=IDS)
def test_partial_fit_epochs_equal_fit_epochs(cls, params, data):
    """k calls of partial_fit on all the rows train as fit does for k epochs."""
    X = data[0]
    est = cls(**BASE, **params)
    y = target(est, data)
    classes = np.unique(y) if is_classifier(est) else None
    fitted = clone(est).set_params(max_epochs=3).fit(X, y)
    incremental = clone(est)
    for _ in range(3):
        incremental.partial_fit(X, y, classes=classes)
    assert incremental.n_iter_ == 3
    assert_same_parameters(incremental, fitted)


def test_partial_fit_on_chunks(data):
    X, y, _ = data
    reg = MCDropoutRegressor(**BASE, lr=0.01)
    chunks = np.array_split(np.arange(len(X)), 4)
    reg.partial_fit(X[chunks[0]], y[chunks[0]])
    first_score = reg.score(X, y)
    # The standardisation is the first chunk's, kept by every later call.
    assert_allclose(reg.y_mean_, y[chunks[0]].mean())
    for _ in range(15):
        for rows in chunks:
            reg.partial_fit(X[rows], y[rows])
    assert reg.n_iter_ == 61
    with pytest.raises(ValueError, match="classes is for classifiers"):
        reg.partial_fit(X, y, classes=[0, 1])
    assert_allclose(reg.y_mean_, y[chunks[0]].mean())
    assert reg.calibration_scale_.tolist() == [1.0]
    curve = np.asarray(reg.loss_curve_)
    assert curve[-8:].mean() < curve[:8].mean() - 0.2
    assert reg.score(X, y) > first_score + 0.2


def test_partial_fit_classes_as_scikit_learn(data):
    X, _, labels = data
    clf = MCDropoutClassifier(**BASE)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, labels)
    assert not hasattr(clf, "classes_")
    # The first chunk need not hold every class.
    first = labels != "c"
    clf.partial_fit(X[first], labels[first], classes=["a", "b", "c"])
    assert clf.classes_.tolist() == ["a", "b", "c"]
    assert clf.predict_proba(X).shape == (len(X), 3)
    clf.partial_fit(X, labels)
    clf.partial_fit(X, labels, classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="is not the same as on last call"):
        clf.partial_fit(X, labels, classes=["a", "b"])
    with pytest.raises(ValueError, match="not among the classes"):
        clf.partial_fit(X, np.where(labels == "a", "z", labels))
    assert clf.n_iter_ == 3


def test_partial_fit_refuses_balanced_class_weight(data):
    X, _, labels = data
    clf = MCDropoutClassifier(**BASE, class_weight="balanced")
    with pytest.raises(ValueError, match="class_weight='balanced' is not supported"):
        clf.partial_fit(X, labels, classes=np.unique(labels))
    clf.set_params(class_weight={"a": 2.0}).partial_fit(X, labels, classes=np.unique(labels))


def test_partial_fit_with_sample_weight_and_sparse_input(data):
    import scipy.sparse as sp

    X, y, _ = data
    reg = MCDropoutRegressor(**BASE)
    reg.partial_fit(sp.csr_matrix(X), y, sample_weight=np.arange(len(X)) % 3)
    reg.partial_fit(X, y)
    assert reg.predict(sp.csr_matrix(X)).shape == (len(X),)


def test_methods_without_continued_training(data):
    X, y, _ = data
    # A hyper-deep ensemble's fit selects members from a population it does not
    # keep; PBP is not trained by gradient descent.
    assert not hasattr(HyperDeepEnsembleRegressor(), "partial_fit")
    assert "warm_start" not in HyperDeepEnsembleRegressor().get_params()
    assert not hasattr(PBPRegressor(), "partial_fit")


def test_failed_continued_training_leaves_the_model(data):
    from skbdl import DivergenceError

    X, y, _ = data
    reg = MCDropoutRegressor(**BASE, max_epochs=2, warm_start=True).fit(X, y)
    before, prediction = parameters(reg), reg.predict(X)
    reg.set_params(lr=1e12)  # continued training applies a changed learning rate
    with pytest.raises(DivergenceError):
        reg.fit(X * 1e6, y)
    for name, value in parameters(reg).items():
        assert torch.equal(value, before[name])
    assert_allclose(reg.predict(X), prediction)
    assert reg.n_iter_ == 2


class _Net(torch.nn.Module):
    def __init__(self, n_features_in, n_outputs):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(n_features_in, 8),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(8, n_outputs),
        )

    def forward(self, x):
        return self.layers(x)


def test_warm_start_with_a_user_module_continues_its_stream(data):
    """A user's module draws its dropout masks from torch's global generator, whose
    state continued training restores."""
    X, y, _ = data
    settings = {k: v for k, v in BASE.items() if k != "hidden_layer_sizes"}
    est = MCDropoutRegressor(**settings, module=_Net)
    long = clone(est).set_params(max_epochs=4).fit(X, y)
    warm = clone(est).set_params(max_epochs=2, warm_start=True).fit(X, y).fit(X, y)
    assert_same_parameters(warm, long)


def test_warm_start_after_early_stopping_and_joblib_members(data):
    X, y, _ = data
    reg = MCDropoutRegressor(**{**BASE, "early_stopping": True}, max_epochs=3, warm_start=True)
    reg.fit(X, y).fit(X, y)  # continued training holds nothing out
    assert "valid_loss" not in reg.history_[-1] and "valid_loss" in reg.history_[0]
    ens = DeepEnsembleRegressor(**BASE, n_estimators=2, max_epochs=2, strategy="joblib")
    ens.set_params(warm_start=True).fit(X, y).fit(X, y)
    assert ens.n_iter_ == 4 and ens.predict(X).shape == (len(X),)
