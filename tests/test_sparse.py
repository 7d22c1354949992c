"""Sparse input (CSR, CSC) at fit and predict: the same model as on the dense matrix,
trained and predicted without ever densifying more than a batch (or a prediction
chunk) of rows."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone, is_classifier
from sklearn.compose import make_column_transformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import skbdl._base
import skbdl.ensemble
from skbdl import (
    BayesianMLPClassifier,
    BayesianMLPRegressor,
    DeepEnsembleClassifier,
    DeepEnsembleRegressor,
    HyperDeepEnsembleRegressor,
    MCDropoutClassifier,
    MCDropoutRegressor,
    PBPRegressor,
)
from skbdl._net import SparseRows

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = dict(hidden_layer_sizes=(8,), max_epochs=2, random_state=0, verbose=0)
TRAINED = [
    (MCDropoutRegressor, {}),
    (MCDropoutClassifier, {}),
    (BayesianMLPRegressor, {}),
    (BayesianMLPClassifier, {}),
    (DeepEnsembleRegressor, dict(n_estimators=3)),
    (DeepEnsembleClassifier, dict(n_estimators=3)),
    (HyperDeepEnsembleRegressor, dict(n_estimators=2, population_size=3)),
    (PBPRegressor, {}),
]
IDS = [cls.__name__ for cls, _ in TRAINED]


def make(cls, **params):
    kwargs = {**FAST, **params}
    if cls is PBPRegressor:
        kwargs.pop("max_epochs")
        kwargs["max_epochs"] = 2
    return cls(**kwargs)


@pytest.fixture(scope="module")
def frame():
    """3 000 rows: a 200-level categorical column and two numeric ones."""
    rng = np.random.RandomState(0)
    n = 3000
    level = rng.randint(200, size=n)
    effect = rng.randn(200)
    df = pd.DataFrame({"city": [f"c{k:03d}" for k in level], "a": rng.randn(n), "b": rng.rand(n)})
    y = effect[level] + df["a"].to_numpy() + 0.3 * rng.randn(n)
    return df, y, (y > np.median(y)).astype(int)


def encoder(sparse):
    return make_column_transformer(
        (OneHotEncoder(sparse_output=sparse, handle_unknown="ignore"), ["city"]),
        (StandardScaler(), ["a", "b"]),
        sparse_threshold=1.0 if sparse else 0.0,
    )


def target(est, frame):
    _, y_reg, y_clf = frame
    return y_clf if is_classifier(est) else y_reg


@pytest.mark.parametrize("cls, params", TRAINED, ids=IDS)
def test_one_hot_pipeline_sparse_equals_dense(cls, params, frame):
    """A 200-level one-hot column, sparse, trains the very model the dense matrix does
    (same rows, same batches, densified exactly), and predicts the same."""
    df, *_ = frame
    est = make(cls, **params)
    y = target(est, frame)
    sparse = make_pipeline(encoder(sparse=True), clone(est)).fit(df, y)
    assert sp.issparse(sparse[0].transform(df[:5]))
    dense = make_pipeline(encoder(sparse=False), clone(est)).fit(df, y)
    out = "predict_proba" if is_classifier(est) else "predict"
    assert_allclose(
        getattr(sparse, out)(df[:300]), getattr(dense, out)(df[:300]), rtol=1e-5, atol=1e-6
    )
    assert sparse[-1].n_features_in_ == 202


@pytest.mark.parametrize("cls, params", TRAINED[:2] + TRAINED[-1:], ids=IDS[:2] + IDS[-1:])
def test_csc_and_other_formats_equal_csr(cls, params, frame):
    df, *_ = frame
    X = encoder(sparse=True).fit_transform(df)[:400]
    est = make(cls, **params)
    y = target(est, frame)[:400]
    csr = clone(est).fit(sp.csr_matrix(X), y)
    csc = clone(est).fit(sp.csc_matrix(X), y)
    coo = clone(est).fit(sp.coo_array(X), y)
    out = "predict_proba" if is_classifier(est) else "predict"
    reference = getattr(csr, out)(X)
    for fitted in (csc, coo):
        assert_array_equal(getattr(fitted, out)(X), reference)
    assert_array_equal(getattr(csr, out)(sp.csc_matrix(X)), reference)
    assert_allclose(getattr(csr, out)(X.toarray()), reference, rtol=1e-6, atol=1e-7)


def test_sparse_rows_densify_exactly():
    rng = np.random.RandomState(0)
    X = sp.random(50, 7, density=0.3, format="csr", random_state=rng)
    rows = SparseRows.from_scipy(X)
    dense = torch.tensor(X.toarray(), dtype=torch.float32)
    assert len(rows) == 50 and rows.shape == (50, 7)
    assert torch.equal(rows.to_dense(), dense)
    perm = torch.randperm(50)
    assert torch.equal(rows[perm].to_dense(), dense[perm])
    assert torch.equal(rows[10:17].to_dense(), dense[10:17])
    assert torch.equal(rows[np.array([3, 3, 0])].to_dense(), dense[[3, 3, 0]])
    block = torch.tensor([[1, 2], [4, 0]])
    assert torch.equal(rows[block], dense[block])
    assert [tuple(b.shape) for b in rows.split(20)] == [(20, 7), (20, 7), (10, 7)]
    assert torch.equal(torch.cat(rows.split(20)), dense)


@pytest.fixture
def densified(monkeypatch):
    """The number of rows of every densification of training data."""
    sizes = []
    to_dense = SparseRows.to_dense

    def spy(self):
        sizes.append(len(self))
        return to_dense(self)

    monkeypatch.setattr(SparseRows, "to_dense", spy)
    return sizes


@pytest.mark.parametrize("cls", [MCDropoutRegressor, BayesianMLPClassifier])
def test_training_densifies_one_batch_at_a_time(cls, frame, densified):
    df, *_ = frame
    X = encoder(sparse=True).fit_transform(df)
    est = cls(**{**FAST, "batch_size": 64, "calibrate": False})
    est.fit(X, target(est, frame))
    n_batches = 2 * int(np.ceil(X.shape[0] / 64))
    batches = [s for s in densified if s <= 64]
    assert len(batches) >= n_batches  # every training batch densified on its own
    # Besides the batches only the divergence check's probe rows (1 024, a fixed
    # number) and the output check's two rows: never the whole matrix.
    assert max(densified) <= 1024 < X.shape[0]


def test_ensemble_training_densifies_bounded_blocks(frame, densified, monkeypatch):
    df, *_ = frame
    X = encoder(sparse=True).fit_transform(df)
    # Per-member batches are gathered (and densified) in blocks of at most
    # _GATHER_BUDGET floats: here 4 batches of 32 rows for each of 3 members.
    row_floats = 3 * (X.shape[1] + 1)
    monkeypatch.setattr(skbdl.ensemble, "_GATHER_BUDGET", row_floats * 32 * 4)
    est = DeepEnsembleRegressor(**{**FAST, "n_estimators": 3, "batch_size": 32, "calibrate": False})
    est.fit(X, target(est, frame))
    blocks = [s for s in densified if s == 3 * 32 * 4]
    assert len(blocks) >= 2 * (X.shape[0] // (32 * 4))  # 2 epochs of full blocks
    # Besides the blocks only the divergence check's 1 024 probe rows: never all rows.
    assert max(densified) <= 1024 < X.shape[0]


def test_prediction_densifies_one_chunk_at_a_time(frame, monkeypatch):
    df, y, _ = frame
    X = sp.csr_matrix(encoder(sparse=True).fit_transform(df))
    est = MCDropoutRegressor(**FAST, n_samples=10).fit(X, y)
    sizes = []
    toarray = sp.csr_matrix.toarray

    def spy(self, *args, **kwargs):
        sizes.append(self.shape[0])
        return toarray(self, *args, **kwargs)

    dense_mean = est.predict(X.toarray())
    monkeypatch.setattr(sp.csr_matrix, "toarray", spy)
    # Chunks of at most SPARSE_CHUNK_FLOATS dense input floats (here 100 rows).
    monkeypatch.setattr(skbdl._base, "SPARSE_CHUNK_FLOATS", 100 * X.shape[1])
    assert_allclose(est.predict(X), dense_mean, rtol=1e-6)
    assert sizes and max(sizes) == 100 and sum(sizes) == X.shape[0]


@pytest.mark.gpu
@pytest.mark.parametrize("cls", [MCDropoutRegressor, DeepEnsembleRegressor, BayesianMLPClassifier])
def test_sparse_weighted_training_on_cuda_equals_dense(cls, frame):
    """On CUDA the sparse rows live on the device and are densified there."""
    df, *_ = frame
    X = encoder(sparse=True).fit_transform(df)[:1000]
    est = cls(**FAST, device="cuda")
    y = target(est, frame)[:1000]
    weight = np.arange(1000) % 3
    sparse = clone(est).fit(X, y, sample_weight=weight)
    dense = clone(est).fit(X.toarray(), y, sample_weight=weight)
    out = "predict_proba" if is_classifier(est) else "predict"
    assert_allclose(getattr(sparse, out)(X), getattr(dense, out)(X.toarray()), rtol=1e-5, atol=1e-6)
