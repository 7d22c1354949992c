"""No silent wrong answers (issue 12): inputs beyond float32, targets at any finite
scale, divergence seen in the loss trajectory, non-converged fits, settings that
cannot apply, a single draw, torch's default dtype and thread count."""

import threading
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.base import is_classifier
from sklearn.datasets import load_diabetes, load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from skbdl import (
    BayesianMLPClassifier,
    BayesianMLPRegressor,
    DeepEnsembleClassifier,
    DeepEnsembleRegressor,
    DivergenceError,
    MCDropoutClassifier,
    MCDropoutRegressor,
    PBPRegressor,
    SWAGClassifier,
    SWAGRegressor,
)

QUIET = dict(verbose=0, random_state=0)
REGRESSORS = [
    (MCDropoutRegressor, dict(max_epochs=15)),
    (DeepEnsembleRegressor, dict(max_epochs=15, n_estimators=3)),
    (BayesianMLPRegressor, dict(max_epochs=15)),
    (PBPRegressor, dict(max_epochs=3)),
]
CLASSIFIERS = [
    (MCDropoutClassifier, dict(max_epochs=10)),
    (DeepEnsembleClassifier, dict(max_epochs=10, n_estimators=3)),
    (BayesianMLPClassifier, dict(max_epochs=10)),
]
ids = [cls.__name__ for cls, _ in REGRESSORS + CLASSIFIERS]


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X[:200], y[:200]


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.mark.parametrize("cls, params", REGRESSORS + CLASSIFIERS, ids=ids)
def test_inputs_beyond_float32_are_refused(cls, params, diabetes, iris):
    X, y = iris if is_classifier(cls()) else diabetes
    est = cls(**params, **QUIET).fit(X, y)
    for call in (est.predict, est.predict_uncertainty):
        with pytest.raises(ValueError, match="beyond the range of float32"):
            call(X * 1e40)
    with pytest.raises(ValueError, match="beyond the range of float32"):
        cls(**params, **QUIET).fit(X * 1e40, y)


class OverflowsFarOut(nn.Module):
    """A network whose output is infinite for inputs above 10 (float32 overflow)."""

    def __init__(self, n_features_in, n_outputs):
        super().__init__()
        self.linear = nn.Linear(n_features_in, n_outputs)
        self.dropout = nn.Dropout(0.1)

    def forward(self, X):
        out = self.linear(self.dropout(X))
        return torch.where(X[:, :1] > 10, torch.full_like(out, float("inf")), out)


def test_non_finite_outputs_name_the_rows(diabetes):
    X, y = diabetes
    reg = MCDropoutRegressor(module=OverflowsFarOut, max_epochs=3, n_samples=5, **QUIET)
    reg.fit(X, y)
    far = X[:8].copy()
    far[[2, 5], 0] = 50.0
    with pytest.raises(ValueError, match=r"non-finite outputs \(overflow\) for rows \[2, 5\]"):
        reg.predict(far)
    assert np.isfinite(reg.predict(X[:8])).all()


@pytest.mark.parametrize("factor", [1e160, 1e-170])
@pytest.mark.parametrize("cls, params", REGRESSORS, ids=[c.__name__ for c, _ in REGRESSORS])
def test_targets_at_any_finite_scale(cls, params, factor, diabetes):
    """A fit on y * factor predicts factor times what the fit on y predicts: the
    standardisation neither overflows (1e160) nor underflows (1e-170)."""
    X, y = diabetes
    X = (X - X.mean(0)) / X.std(0)
    scaled = cls(**params, **QUIET).fit(X, y * factor)
    plain = cls(**params, **QUIET).fit(X, y)
    assert_allclose(scaled.y_scale_ / factor, plain.y_scale_, rtol=1e-12)
    for a, b in zip(scaled.predict(X[:20], return_std=True), plain.predict(X[:20], True)):
        assert_allclose(a / factor, b, rtol=1e-6)
    for method in ("gaussian", "mixture"):
        assert_allclose(
            scaled.predict_interval(X[:5], method=method) / factor,
            plain.predict_interval(X[:5], method=method),
            rtol=1e-5,
        )


def test_finite_divergence_is_an_error_naming_epoch_and_setting(diabetes):
    X, y = diabetes
    fitted = DeepEnsembleRegressor(max_epochs=5, n_estimators=2, **QUIET).fit(X, y)
    before = fitted.predict(X[:5], return_std=True)
    fitted.set_params(lr=1e4, optimizer="adam")
    with pytest.raises(DivergenceError, match=r"rose from .* at epoch \d+.*learning rate \(lr\)"):
        fitted.fit(X, y)
    for a, b in zip(before, fitted.predict(X[:5], return_std=True)):
        assert_allclose(a, b, rtol=0, atol=0)  # the earlier fit is kept, bit for bit


@pytest.mark.parametrize("cls", [MCDropoutClassifier, DeepEnsembleClassifier])
def test_a_fit_no_better_than_the_class_frequencies_warns(cls):
    X, y = load_digits(return_X_y=True)  # unscaled inputs and lr=1: training settles
    with pytest.warns(ConvergenceWarning, match="no better than that of predicting the class"):
        cls(lr=1.0, max_epochs=10, calibrate=False, **QUIET).fit(X, y)


def test_a_good_fit_does_not_warn(iris):
    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        MCDropoutClassifier(max_epochs=30, **QUIET).fit((X - X.mean(0)) / X.std(0), y)


def test_a_single_draw_warns(iris):
    X, y = iris
    clf = MCDropoutClassifier(max_epochs=3, n_samples=4, **QUIET).fit(X, y)
    with pytest.warns(UserWarning, match="single draw"):
        u = clf.predict_uncertainty(X[:5], n_samples=1)
    assert np.all(u.epistemic == 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.predict_uncertainty(X[:5], n_samples=2)


def test_default_dtype_float64_is_overridden_explicitly(diabetes):
    X, y = diabetes
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for cls, params in REGRESSORS:
            reg = cls(**params, **QUIET).fit(X, y)
            assert np.isfinite(reg.predict(X[:5], return_std=True)).all()
            if cls is PBPRegressor:  # moment propagation in float64, its documented dtype
                tensors, dtype = list(reg.net_.module_.buffers()), torch.float64
            else:
                tensors, dtype = list(reg.net_.module_.parameters()), torch.float32
            assert tensors and all(t.dtype == dtype for t in tensors)
            assert torch.get_default_dtype() == torch.float64  # left as the caller set it
    finally:
        torch.set_default_dtype(previous)


def test_fit_leaves_thread_count_of_other_threads_and_the_caller(diabetes):
    X, y = diabetes
    seen, stop = set(), threading.Event()
    before = torch.get_num_threads()

    def watch():
        while not stop.is_set():
            seen.add(torch.get_num_threads())
            stop.wait(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        MCDropoutRegressor(max_epochs=20, **QUIET).fit(X, y)
    finally:
        stop.set()
        watcher.join()
    assert seen == {before} and torch.get_num_threads() == before


SWAG = [(SWAGRegressor, dict(max_epochs=6, n_models=2)), (SWAGClassifier, dict(max_epochs=6))]


@pytest.mark.parametrize(
    "cls, params", REGRESSORS + CLASSIFIERS + SWAG, ids=ids + ["SWAGRegressor", "SWAGClassifier"]
)
def test_fit_and_predict_leave_torch_global_generator_alone(
    cls, params, diabetes, iris, monkeypatch
):
    """skbdl's own networks draw from generators of their own: torch's global
    generator is neither seeded nor consumed (its state is unchanged, and seeding it
    would fail here), so no other thread's random stream moves."""
    X, y = iris if is_classifier(cls()) else diabetes
    reference = cls(**params, **QUIET).fit(X, y).predict(X[:5])

    def refuse(*args, **kwargs):
        raise AssertionError("torch's global generator was seeded")

    before = torch.get_rng_state()
    monkeypatch.setattr(torch, "manual_seed", refuse)
    monkeypatch.setattr(torch.random, "fork_rng", refuse)
    est = cls(**params, **QUIET).fit(X, y)
    np.testing.assert_array_equal(est.predict(X[:5]), reference)  # still reproducible
    est.predict_uncertainty(X[:5])
    assert torch.equal(torch.get_rng_state(), before)
