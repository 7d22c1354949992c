"""The posterior interface (which weights x covariance structure) against references."""

import numpy as np
import pytest
import torch
from posterior_reference import kfac_dense, loss_hessians, naive_ggn, naive_kfac
from scipy.stats import norm
from torch import nn

from skbdl._posterior import (
    AllWeights,
    DiagonalCurvature,
    FullCurvature,
    KroneckerCurvature,
    LastLayer,
    LowRankDiagonalCovariance,
    NamedWeights,
    SWAGMoments,
    ggn_curvature,
    laplace_prior_precision,
    last_linear,
    log_marginal_likelihood,
)


def spd(n, seed):
    B = np.random.RandomState(seed).randn(n, n + 2)
    return B @ B.T


def small_mlp(n_in=3, n_out=2, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(n_in, 4), nn.Tanh(), nn.Linear(4, n_out)).double()


def structures(seed=0):
    """One covariance of each structure with its dense matrix, built independently."""
    rng = np.random.RandomState(seed)
    delta = 0.7
    H = spd(6, seed)
    h = rng.uniform(0.1, 3.0, size=6)
    G, A = spd(2, seed + 1), spd(3, seed + 2)  # a 2-out, 2-in layer: 2 * 3 weights
    kron = KroneckerCurvature([(G, A)], n_rows=5)
    var, D = rng.uniform(0.1, 1.0, size=6), rng.randn(6, 4)
    return [
        ("full", FullCurvature(H).covariance(delta), np.linalg.inv(H + delta * np.eye(6))),
        ("diag", DiagonalCurvature(h).covariance(delta), np.diag(1 / (h + delta))),
        (
            "kron",
            kron.covariance(delta),
            np.linalg.inv(kfac_dense([(G, A)], 5) + delta * np.eye(6)),
        ),
        ("swag", LowRankDiagonalCovariance(var, D), np.diag(var) / 2 + D @ D.T / (2 * 3)),
    ]


@pytest.mark.parametrize("case", range(4), ids=["full", "diag", "kron", "swag"])
def test_structures_match_their_dense_covariance(case):
    name, cov, dense = structures()[case]
    np.testing.assert_allclose(cov.dense().numpy(), dense, rtol=1e-10, atol=1e-12)
    J = torch.as_tensor(np.random.RandomState(1).randn(5, 3, 6))
    expected = np.einsum("ncp,pq,ndq->ncd", J.numpy(), dense, J.numpy())
    np.testing.assert_allclose(cov.functional_variance(J).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(cov.log_det(), np.linalg.slogdet(dense)[1], rtol=1e-10)
    v = np.arange(6.0) - 2
    np.testing.assert_allclose(cov.mahalanobis(v), v @ np.linalg.solve(dense, v), rtol=1e-8)


@pytest.mark.parametrize("case", range(4), ids=["full", "diag", "kron", "swag"])
def test_samples_have_the_stated_covariance(case):
    """Every entry of the empirical covariance of 100 000 draws lies within a
    Bonferroni-corrected normal band of the stated covariance (standard error of a
    sample covariance: sqrt((S_ii S_jj + S_ij^2) / N))."""
    name, cov, dense = structures()[case]
    n = 100_000
    draws = cov.sample(n, torch.Generator().manual_seed(0)).numpy()
    empirical = np.cov(draws, rowvar=False, bias=True)
    se = np.sqrt((np.outer(np.diag(dense), np.diag(dense)) + dense**2) / n)
    z = norm.isf(0.001 / (2 * dense.size))
    assert np.all(np.abs(empirical - dense) < z * se)
    assert np.all(np.abs(draws.mean(0)) < z * np.sqrt(np.diag(dense) / n))


def test_curvature_eigenvalues():
    H, h = spd(5, 0), np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(np.sort(FullCurvature(H).eigenvalues()), np.linalg.eigvalsh(H))
    np.testing.assert_allclose(DiagonalCurvature(h).eigenvalues(), h)
    G, A = spd(2, 1), spd(3, 2)
    np.testing.assert_allclose(
        np.sort(KroneckerCurvature([(G, A)], 4).eigenvalues()),
        np.linalg.eigvalsh(np.kron(G, A) / 4),
    )


@pytest.mark.parametrize("given_outputs", [False, True])
@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_ggn_matches_the_naive_autograd_reference(kind, given_outputs):
    """Full, diagonal and Kronecker-factored GGN of a two-layer network against loops
    of ``autograd.grad`` (one per row and output); the network's outputs computed by
    ``ggn_curvature`` or passed in with the batches (as the Laplace estimators do)."""
    net = small_mlp(n_out=3)
    X = torch.as_tensor(np.random.RandomState(0).randn(7, 3))
    noise = None
    if kind == "regression":
        noise = torch.as_tensor(np.random.RandomState(1).uniform(0.5, 2.0, size=(7, 3)))
    reference = naive_ggn(net, X, kind, None if noise is None else noise.numpy())
    batches = [
        (X[rows], None if noise is None else noise[rows])
        + ((net(X[rows]).detach(),) if given_outputs else ())
        for rows in (slice(0, 4), slice(4, None))
    ]
    full = ggn_curvature("full", net, AllWeights(), batches, kind)
    np.testing.assert_allclose(full.hessian, reference, rtol=1e-10, atol=1e-12)
    diag = ggn_curvature("diag", net, AllWeights(), batches, kind)
    np.testing.assert_allclose(diag.diagonal, np.diag(reference), rtol=1e-10, atol=1e-12)
    kron = ggn_curvature("kron", net, AllWeights(), batches, kind)
    factors = naive_kfac(net, X, kind, None if noise is None else noise.numpy())
    delta = 0.3
    expected = np.linalg.inv(kfac_dense(factors, 7) + delta * np.eye(len(reference)))
    np.testing.assert_allclose(kron.covariance(delta).dense().numpy(), expected, rtol=1e-8)


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_weighted_ggn_matches_the_weighted_sum_of_per_row_references(kind):
    """``sample_weight`` ``w_n`` (fractional, some zero, over two batches) weighs each
    row's ``J_n^T Lambda_n J_n`` in the full and diagonal GGN and both of its
    Kronecker factors, whose row count becomes ``sum_n w_n``."""
    net = small_mlp(n_out=3)
    rng = np.random.RandomState(0)
    X = torch.as_tensor(rng.randn(7, 3))
    noise = None if kind == "classification" else rng.uniform(0.5, 2.0, size=(7, 3))
    w = np.array([0.5, 0.0, 2.0, 1.25, 3.0, 0.0, 0.7])

    def row_noise(n):
        return None if noise is None else noise[n : n + 1]

    reference = sum(w[n] * naive_ggn(net, X[n : n + 1], kind, row_noise(n)) for n in range(7))
    row_factors = [naive_kfac(net, X[n : n + 1], kind, row_noise(n)) for n in range(7)]
    factors = [
        tuple(sum(w[n] * row_factors[n][i][k] for n in range(7)) for k in range(2))
        for i in range(len(row_factors[0]))
    ]
    batches = [
        (X[rows], None if noise is None else torch.as_tensor(noise[rows]))
        for rows in (slice(0, 4), slice(4, None))
    ]
    full = ggn_curvature("full", net, AllWeights(), batches, kind, sample_weight=w)
    np.testing.assert_allclose(full.hessian, reference, rtol=1e-10, atol=1e-12)
    diag = ggn_curvature("diag", net, AllWeights(), batches, kind, sample_weight=w)
    np.testing.assert_allclose(diag.diagonal, np.diag(reference), rtol=1e-10, atol=1e-12)
    kron = ggn_curvature("kron", net, AllWeights(), batches, kind, sample_weight=w)
    assert kron.n_rows == pytest.approx(w.sum(), rel=1e-15)
    expected = np.linalg.inv(kfac_dense(factors, w.sum()) + 0.3 * np.eye(len(reference)))
    np.testing.assert_allclose(kron.covariance(0.3).dense().numpy(), expected, rtol=1e-8)
    for wrong, rows in ((w[:6], "at least 7"), (np.append(w, 1.0), "7")):
        with pytest.raises(ValueError, match=f"has {len(wrong)} rows but the batches {rows};"):
            ggn_curvature("diag", net, AllWeights(), batches, kind, sample_weight=wrong)


def test_kfac_is_exact_for_a_linear_gaussian_layer():
    """For one linear layer and a Gaussian likelihood with a constant noise variance
    the loss Hessian is the same on every row, so K-FAC equals the GGN."""
    net = nn.Sequential(nn.Linear(3, 2)).double()
    X = torch.as_tensor(np.random.RandomState(0).randn(20, 3))
    noise = torch.tensor([[0.5, 2.0]], dtype=torch.float64)
    batches = [(X, noise)]
    full = ggn_curvature("full", net, AllWeights(), batches, "regression")
    kron = ggn_curvature("kron", net, AllWeights(), batches, "regression")
    np.testing.assert_allclose(
        kron.covariance(1.0).dense().numpy(), full.covariance(1.0).dense().numpy(), rtol=1e-10
    )


def test_weight_subsets():
    net = small_mlp()
    assert AllWeights().names(net) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert LastLayer().names(net) == ["2.weight", "2.bias"]
    assert LastLayer("0").names(net) == ["0.weight", "0.bias"]
    assert NamedWeights(["2."]).names(net) == ["2.weight", "2.bias"]
    assert len(AllWeights().parameters(net)) == 4 * 3 + 4 + 2 * 4 + 2
    # A subset's curvature is the matching block of the full one.
    X = torch.as_tensor(np.random.RandomState(0).randn(6, 3))
    full = ggn_curvature("full", net, AllWeights(), [(X, None)], "classification").hessian
    last = ggn_curvature("full", net, LastLayer(), [(X, None)], "classification").hessian
    np.testing.assert_allclose(last, full[-10:, -10:], rtol=1e-12)
    with pytest.raises(ValueError, match="whole torch.nn.Linear"):
        NamedWeights(["0.weight"]).linear_layers(net)
    # The last-layer estimators find their layer with the same function.
    assert last_linear(net) == ("2", net[2])
    with pytest.raises(ValueError, match=r"names no layer .*Linear layers are \['0', '2'\]"):
        LastLayer("nope").names(net)
    with pytest.raises(ValueError, match="must name a torch.nn.Linear layer; '1' is a"):
        LastLayer("1").names(net)
    with pytest.raises(ValueError, match="has no torch.nn.Linear layer"):
        LastLayer().names(nn.Sequential(nn.ReLU()))


def test_marglik_prior_precision_maximises_the_laplace_evidence_on_a_grid():
    e = np.array([50.0, 3.0, 0.2, 0.0])
    theta = np.array([0.5, -1.0, 2.0, 0.3])
    delta = laplace_prior_precision(e, theta)
    grid = np.exp(np.linspace(np.log(delta) - 3, np.log(delta) + 3, 2001))
    evidence = [log_marginal_likelihood(0.0, theta, d, e) for d in grid]
    assert grid[int(np.argmax(evidence))] == pytest.approx(delta, rel=0.01)
    assert log_marginal_likelihood(0.0, theta, delta, e) >= max(evidence) - 1e-12


def test_marglik_fixed_point_maximises_the_exact_evidence_of_linear_regression():
    """Bayesian linear regression with a known noise: re-fitting the MAP at the prior
    precision that maximises the Laplace evidence (MacKay's fixed point) lands on the
    maximiser of the exact log evidence ``log N(y; 0, s2 I + X X^T / delta)``, found
    on a fine grid."""
    rng = np.random.RandomState(0)
    X = rng.randn(40, 3)
    s2 = 0.25
    y = X @ np.array([0.8, -0.5, 0.3]) + np.sqrt(s2) * rng.randn(40)
    H = X.T @ X / s2
    e = np.linalg.eigvalsh(H)
    delta = 1.0
    for _ in range(200):
        theta = np.linalg.solve(H + delta * np.eye(3), X.T @ y / s2)
        delta = laplace_prior_precision(e, theta)

    def exact(d):
        C = s2 * np.eye(40) + X @ X.T / d
        return -0.5 * (np.linalg.slogdet(2 * np.pi * C)[1] + y @ np.linalg.solve(C, y))

    grid = np.exp(np.linspace(-4, 4, 4001))
    best = grid[int(np.argmax([exact(d) for d in grid]))]
    assert delta == pytest.approx(best, rel=0.005)
    # And at the MAP the Laplace evidence is the exact evidence (a Gaussian model).
    log_lik = -0.5 * np.sum(np.log(2 * np.pi * s2) + (y - X @ theta) ** 2 / s2)
    assert log_marginal_likelihood(log_lik, theta, delta, e) == pytest.approx(
        exact(delta), rel=1e-10
    )


def test_swag_moments_of_a_fixed_sequence_equal_numpy():
    thetas = np.random.RandomState(0).randn(9, 5)
    moments = SWAGMoments(max_rank=4)
    for theta in thetas:
        moments.update(theta)
    np.testing.assert_allclose(moments.mean.numpy(), thetas.mean(0), rtol=1e-12)
    np.testing.assert_allclose(moments.variance().numpy(), thetas.var(0), rtol=1e-10)
    running_means = np.cumsum(thetas, 0) / np.arange(1, 10)[:, None]
    deviations = (thetas - running_means)[-4:].T
    np.testing.assert_allclose(moments.deviation_matrix().numpy(), deviations, atol=1e-12)
    cov = moments.covariance().dense().numpy()
    np.testing.assert_allclose(
        cov, np.diag(thetas.var(0)) / 2 + deviations @ deviations.T / (2 * 3), rtol=1e-10
    )
    diagonal_only = SWAGMoments(max_rank=0)
    for theta in thetas:
        diagonal_only.update(theta)
    assert diagonal_only.deviation_matrix().shape == (5, 0)
    np.testing.assert_allclose(
        diagonal_only.covariance().dense().numpy(), np.diag(thetas.var(0)) / 2, rtol=1e-10
    )


def test_loss_hessian_reference_is_what_the_ggn_uses():
    # The reference's softmax Hessian is singular along the all-ones direction.
    Lam = loss_hessians("classification", np.array([[0.1, -0.3, 2.0]]))[0]
    np.testing.assert_allclose(Lam @ np.ones(3), 0, atol=1e-15)
