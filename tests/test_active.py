"""skbdl.active: acquisition functions, the active-learning loop, and BALD against random."""

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbdl import MCDropoutClassifier, MCDropoutRegressor
from skbdl.active import (
    ACQUISITION_FUNCTIONS,
    active_learning_loop,
    bald,
    predictive_entropy,
    predictive_std,
    random_acquisition,
    variation_ratio,
)
from skbdl.uncertainty import ClassificationUncertainty, decompose_classification


class _SampledClassifier(ClassifierMixin, BaseEstimator):
    """Two fixed 'posterior samples' per row, read from the first four columns of X."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def _samples(self, X):
        X = np.asarray(X, dtype=float)
        return np.stack([X[:, :2], X[:, 2:4]])  # (2 samples, n_rows, 2 classes)

    def predict_uncertainty(self, X):
        return ClassificationUncertainty(*decompose_classification(self._samples(X)))

    def predict_proba(self, X):
        return self.predict_uncertainty(X).proba

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]


ROWS = np.array(
    [
        [0.5, 0.5, 0.5, 0.5],  # both samples undecided: aleatoric only
        [1.0, 0.0, 0.0, 1.0],  # each sure, they disagree: epistemic only
        [0.9, 0.1, 0.9, 0.1],  # both fairly sure and agree
    ]
)


def test_acquisition_functions_on_known_samples():
    clf = _SampledClassifier().fit(ROWS, [0, 1, 0])
    log2 = np.log(2)
    np.testing.assert_allclose(predictive_entropy(clf, ROWS)[:2], [log2, log2])
    np.testing.assert_allclose(bald(clf, ROWS)[:2], [0.0, log2], atol=1e-12)
    np.testing.assert_allclose(variation_ratio(clf, ROWS), [0.5, 0.5, 0.1])
    # Entropy cannot tell noise from ignorance; BALD ranks the disagreement first.
    assert np.argmax(bald(clf, ROWS)) == 1
    assert predictive_entropy(clf, ROWS)[2] < predictive_entropy(clf, ROWS)[0]


def test_acquisition_through_a_pipeline_transforms_first():
    rng = np.random.RandomState(0)
    X = rng.randn(120, 3) * 100 + 50
    y = (X[:, 0] > 50).astype(int)
    model = make_pipeline(
        StandardScaler(),
        MCDropoutClassifier(hidden_layer_sizes=(8,), max_epochs=5, n_samples=10, random_state=0),
    ).fit(X, y)
    expected = model[-1].predict_uncertainty(model[0].transform(X[:5])).epistemic
    np.testing.assert_allclose(bald(model, X[:5]), expected)
    # and through the other meta-estimators skbdl.predict_uncertainty walks
    np.testing.assert_allclose(bald(FrozenEstimator(model), X[:5]), expected)
    with pytest.raises(TypeError, match="predict_uncertainty"):
        bald(LogisticRegression().fit(X, y), X[:5])


def test_predictive_std_of_regressors():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, (100, 1))
    reg = MCDropoutRegressor(hidden_layer_sizes=(8,), max_epochs=3, n_samples=10, random_state=0)
    reg.fit(X, X[:, 0])
    np.testing.assert_allclose(predictive_std(reg, X[:4]), reg.predict(X[:4], return_std=True)[1])
    two = MCDropoutRegressor(hidden_layer_sizes=(8,), max_epochs=3, n_samples=10, random_state=0)
    two.fit(X, np.c_[X[:, 0], 3 * X[:, 0]])
    np.testing.assert_allclose(
        predictive_std(two, X[:4]), two.predict(X[:4], return_std=True)[1].mean(axis=1)
    )


def test_random_acquisition_is_seeded():
    a = random_acquisition(None, np.zeros((5, 1)), random_state=3)
    np.testing.assert_array_equal(a, random_acquisition(None, np.zeros((5, 1)), random_state=3))
    assert a.shape == (5,) and np.all((0 <= a) & (a < 1))
    assert set(ACQUISITION_FUNCTIONS) == {
        "bald",
        "predictive_entropy",
        "variation_ratio",
        "predictive_std",
        "random",
    }


# ----------------------------------------------------------------------- loop
class _Recorder(RegressorMixin, BaseEstimator):
    """Remembers the rows it was fitted on; predicts zero."""

    fits = []

    def fit(self, X, y):
        type(self).fits.append(np.asarray(X)[:, 0].copy())
        self.n_rows_ = len(X)
        return self

    def predict(self, X):
        return np.zeros(len(X))


def test_loop_queries_the_highest_scores_and_clones_every_round():
    X_pool = np.arange(40, dtype=float)[:, None]
    y_pool = np.arange(40, dtype=float)
    _Recorder.fits = []
    estimator = _Recorder()
    seen = []

    def largest_first(est, X):
        seen.append(len(X))
        assert est is not estimator and est.n_rows_ == 40 - len(X)  # a fitted clone
        return X[:, 0]

    result = active_learning_loop(
        estimator,
        X_pool,
        y_pool,
        X_pool,
        y_pool,
        acquisition=largest_first,
        n_initial=5,
        query_size=3,
        n_queries=4,
        scoring="neg_mean_absolute_error",
        random_state=0,
    )
    assert not hasattr(estimator, "n_rows_")  # the original is never fitted
    np.testing.assert_array_equal(result.n_labelled, [5, 8, 11, 14, 17])
    assert seen == [35, 32, 29, 26]
    queried = result.labelled[5:]
    np.testing.assert_array_equal(queried, [39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28])
    assert len(_Recorder.fits) == 5
    np.testing.assert_array_equal(np.sort(_Recorder.fits[-1]), np.sort(result.labelled))
    assert result.acquisition == "largest_first"
    assert result.estimator.n_rows_ == 17
    assert result.scores.shape == (5,) and np.all(result.scores <= 0)


def test_loop_stops_when_the_pool_runs_out_and_subsamples():
    X = np.arange(12, dtype=float)[:, None]
    sizes = []

    def record(est, X_candidates):
        sizes.append(len(X_candidates))
        return np.zeros(len(X_candidates))

    result = active_learning_loop(
        _Recorder(),
        X,
        X[:, 0],
        X,
        X[:, 0],
        acquisition=record,
        n_initial=4,
        query_size=5,
        n_queries=10,
        pool_subsample=6,
        random_state=0,
    )
    np.testing.assert_array_equal(result.n_labelled, [4, 9, 12])
    assert sizes == [6, 3]
    assert sorted(result.labelled.tolist()) == list(range(12))


def test_loop_starts_balanced_for_classifiers():
    rng = np.random.RandomState(0)
    y = np.r_[np.zeros(90, int), np.ones(6, int), np.full(4, 2)]
    X = rng.randn(100, 2)
    result = active_learning_loop(
        LogisticRegression(),
        X,
        y,
        X,
        y,
        acquisition="variation_ratio",
        n_initial=9,
        n_queries=0,
        random_state=0,
    )
    np.testing.assert_array_equal(np.bincount(y[result.labelled]), [3, 3, 3])
    given = active_learning_loop(
        LogisticRegression(),
        X,
        y,
        X,
        y,
        initial_indices=[0, 95, 96],
        n_queries=1,
        query_size=2,
        acquisition="random",
        random_state=0,
    )
    np.testing.assert_array_equal(given.labelled[:3], [0, 95, 96])
    assert given.n_labelled.tolist() == [3, 5]


def test_loop_rejects_bad_arguments():
    X, y = np.zeros((10, 1)), np.zeros(10)
    with pytest.raises(ValueError, match="Unknown acquisition"):
        active_learning_loop(_Recorder(), X, y, X, y, acquisition="max_entropy")
    with pytest.raises(TypeError, match="callable"):
        active_learning_loop(_Recorder(), X, y, X, y, acquisition=3)
    with pytest.raises(ValueError, match="query_size"):
        active_learning_loop(_Recorder(), X, y, X, y, query_size=0)
    with pytest.raises(ValueError, match="rows"):
        active_learning_loop(_Recorder(), X, y[:5], X, y)
    with pytest.raises(ValueError, match="repeat"):
        active_learning_loop(_Recorder(), X, y, X, y, initial_indices=[1, 1])
    with pytest.raises(ValueError, match="shape"):
        active_learning_loop(
            _Recorder(), X, y, X, y, acquisition=lambda est, X: np.zeros(2), n_initial=2
        )


# ------------------------------------------------------------- BALD vs random
def _linear_problem(n, rng):
    """A noise-free linear boundary in 2-D: a few labels near it are worth many far away."""
    X = rng.randn(n, 2) * [2.0, 1.0]
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0.3).astype(int)


@pytest.fixture
def _one_thread():
    """Small networks run fastest on one thread (and share a busy machine better)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.usefixtures("_one_thread")
def test_bald_beats_random_on_average_over_seeds():
    # Eight seeds, each a fresh pool, test set and network; the score of a run is the
    # mean test accuracy over its rounds (area under the learning curve).  The
    # difference BALD - random is tested with a one-sided paired t-test: one lucky
    # seed cannot pass it.
    areas = {"bald": [], "random": []}
    for seed in range(8):
        rng = np.random.RandomState(seed)
        X_pool, y_pool = _linear_problem(1000, rng)
        X_test, y_test = _linear_problem(1000, rng)
        estimator = MCDropoutClassifier(
            hidden_layer_sizes=(32, 32),
            dropout=0.1,
            max_epochs=150,
            batch_size=500,
            lr=0.01,
            n_samples=20,
            random_state=seed,
        )
        for acquisition in areas:
            result = active_learning_loop(
                estimator,
                X_pool,
                y_pool,
                X_test,
                y_test,
                acquisition=acquisition,
                n_initial=4,
                query_size=2,
                n_queries=8,
                random_state=seed,
            )
            areas[acquisition].append(result.area_under_curve())
    bald_areas, random_areas = np.array(areas["bald"]), np.array(areas["random"])
    test = stats.ttest_rel(bald_areas, random_areas, alternative="greater")
    assert test.pvalue < 0.01, (bald_areas, random_areas, test)
    assert bald_areas.mean() > random_areas.mean() + 0.01
