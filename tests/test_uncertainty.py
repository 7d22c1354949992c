"""The pure uncertainty functions against hand-computed cases and identities."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from skbdl._reductions import (
    classification_summaries,
    log_model_average,
    log_proba_samples,
    proba_samples,
    regression_summaries,
)
from skbdl.uncertainty import (
    ClassificationUncertainty,
    RegressionUncertainty,
    _gaussian_interval,
    _log_model_average,
    _scale_spread,
    decompose_classification,
    decompose_regression,
    entropy,
)

SEEDS = range(25)


def h(*p):
    """Entropy by hand, in nats, of a categorical distribution written out."""
    return -sum(q * math.log(q) for q in p if q > 0)


def random_proba_samples(rng, n_samples, n_rows, n_classes, concentration=None):
    """Dirichlet draws, some sharp, some flat, some exactly one-hot."""
    if concentration is None:
        concentration = rng.choice([0.05, 0.5, 1.0, 5.0])
    p = rng.dirichlet(np.full(n_classes, concentration), size=(n_samples, n_rows))
    one_hot = rng.rand(n_samples, n_rows) < 0.1
    hard = np.eye(n_classes)[rng.randint(n_classes, size=(n_samples, n_rows))]
    return np.where(one_hot[..., None], hard, p)


# --------------------------------------------------------------------- entropy
@pytest.mark.parametrize(
    "proba, expected",
    [
        ([1.0, 0.0], 0.0),
        ([0.0, 1.0, 0.0], 0.0),
        ([0.5, 0.5], math.log(2)),
        ([0.25] * 4, math.log(4)),
        ([1 / 3] * 3, math.log(3)),
        ([0.25, 0.75], -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))),
        ([0.5, 0.25, 0.25], 1.5 * math.log(2)),  # 0.5 log 2 + 2 * 0.25 log 4
        ([0.1, 0.2, 0.3, 0.4], h(0.1, 0.2, 0.3, 0.4)),
    ],
)
def test_entropy_of_known_distributions(proba, expected):
    assert_allclose(entropy(proba), expected, rtol=1e-12, atol=1e-15)


def test_entropy_zero_probabilities_give_no_nan_and_no_warning():
    with np.errstate(all="raise"):
        out = entropy(np.array([[0.0, 1.0], [0.0, 0.0], [0.5, 0.5]]))
    assert np.isfinite(out).all()
    assert_allclose(out, [0.0, 0.0, math.log(2)])


def test_entropy_axis_and_shape():
    p = np.array([[0.5, 0.25], [0.5, 0.75]])  # columns are distributions
    assert_allclose(entropy(p, axis=0), [math.log(2), h(0.25, 0.75)])
    assert entropy(np.full((3, 4, 5), 0.2)).shape == (3, 4)
    assert_allclose(entropy(np.full((3, 4, 5), 0.2)), math.log(5))
    # A list input is fine and gives float64.
    assert entropy([[0.5, 0.5]]).dtype == np.float64


@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_bounds_random(seed):
    rng = np.random.RandomState(seed)
    k = rng.randint(2, 12)
    p = random_proba_samples(rng, 4, 30, k)
    ent = entropy(p)
    assert ent.shape == (4, 30)
    assert (ent >= 0).all()
    assert (ent <= math.log(k) + 1e-12).all()
    # Entropy is invariant to relabelling the classes.
    assert_allclose(entropy(p[..., rng.permutation(k)]), ent, atol=1e-12)


# --------------------------------------------------- classification decomposition
def test_decompose_classification_hand_worked():
    # One row, two samples: p1 = (0.2, 0.8), p2 = (0.6, 0.4).
    samples = np.array([[[0.2, 0.8]], [[0.6, 0.4]]])
    proba, total, aleatoric, epistemic = decompose_classification(samples)
    assert_allclose(proba, [[0.4, 0.6]])
    expected_total = -(0.4 * math.log(0.4) + 0.6 * math.log(0.6))
    expected_aleatoric = 0.5 * (
        -(0.2 * math.log(0.2) + 0.8 * math.log(0.8)) - (0.6 * math.log(0.6) + 0.4 * math.log(0.4))
    )
    assert_allclose(total, [expected_total], rtol=1e-12)
    assert_allclose(aleatoric, [expected_aleatoric], rtol=1e-12)
    assert_allclose(epistemic, [expected_total - expected_aleatoric], rtol=1e-10)
    assert 0 < epistemic[0] < total[0]


def test_decompose_classification_several_rows_and_classes():
    # Row 0: samples agree on a uniform prediction -> all aleatoric.
    # Row 1: three certain samples voting (A, A, B) -> all epistemic.
    # Row 2: samples (1, 0, 0), (0.5, 0.5, 0), (0, 0, 1).
    uniform = [1 / 3, 1 / 3, 1 / 3]
    samples = np.array(
        [  # axis 0: samples; axis 1: rows 0, 1, 2
            [uniform, [1, 0, 0], [1, 0, 0]],
            [uniform, [1, 0, 0], [0.5, 0.5, 0]],
            [uniform, [0, 1, 0], [0, 0, 1]],
        ],
        dtype=float,
    )
    proba, total, aleatoric, epistemic = decompose_classification(samples)
    assert proba.shape == (3, 3)
    assert total.shape == aleatoric.shape == epistemic.shape == (3,)
    assert_allclose(proba[0], [1 / 3] * 3)
    assert_allclose(proba[1], [2 / 3, 1 / 3, 0])
    assert_allclose(proba[2], [0.5, 1 / 6, 1 / 3])

    assert_allclose(total, [math.log(3), h(2 / 3, 1 / 3), h(0.5, 1 / 6, 1 / 3)], rtol=1e-12)
    assert_allclose(aleatoric, [math.log(3), 0.0, math.log(2) / 3], rtol=1e-12, atol=1e-15)
    assert_allclose(epistemic[0], 0.0, atol=1e-12)
    assert_allclose(epistemic[1], h(2 / 3, 1 / 3), rtol=1e-12)
    assert_allclose(epistemic[2], h(0.5, 1 / 6, 1 / 3) - math.log(2) / 3, rtol=1e-12)


def test_decompose_classification_identical_samples_have_no_epistemic():
    p = np.array([[0.7, 0.2, 0.1], [0.05, 0.05, 0.9]])
    samples = np.broadcast_to(p, (50, 2, 3))
    proba, total, aleatoric, epistemic = decompose_classification(samples)
    assert_allclose(proba, p, rtol=1e-12)
    assert_allclose(total, [h(0.7, 0.2, 0.1), h(0.05, 0.05, 0.9)], rtol=1e-12)
    assert_allclose(aleatoric, total, rtol=1e-12)
    assert (epistemic >= 0).all()  # round-off below zero is clipped to zero
    assert_allclose(epistemic, 0.0, atol=1e-12)


def test_decompose_classification_one_sample():
    p = np.array([[[0.3, 0.7]]])
    proba, total, aleatoric, epistemic = decompose_classification(p)
    assert_allclose(proba, p[0])
    assert_allclose(total, aleatoric)
    assert_allclose(epistemic, 0.0, atol=1e-15)


def test_decompose_classification_maximal_disagreement_is_log_k():
    k = 4
    samples = np.eye(k)[:, None, :]  # k certain samples, each a different class
    proba, total, aleatoric, epistemic = decompose_classification(samples)
    assert_allclose(proba, np.full((1, k), 1 / k))
    assert_allclose(aleatoric, 0.0, atol=1e-15)
    assert_allclose(epistemic, math.log(k), rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3), (5,), (2, 3, 4, 5)])
def test_decompose_classification_rejects_wrong_ndim(shape):
    with pytest.raises(ValueError, match="n_samples, n_rows, n_classes"):
        decompose_classification(np.full(shape, 0.5))


@pytest.mark.parametrize("seed", SEEDS)
def test_decompose_classification_identities_random(seed):
    rng = np.random.RandomState(seed)
    n_samples, n_rows, k = rng.randint(1, 40), rng.randint(1, 20), rng.randint(2, 8)
    samples = random_proba_samples(rng, n_samples, n_rows, k)
    proba, total, aleatoric, epistemic = decompose_classification(samples)

    assert proba.shape == (n_rows, k)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert_allclose(proba, samples.mean(axis=0))
    # total = aleatoric + epistemic, all within [0, log K], MI >= 0.
    assert_allclose(total, aleatoric + epistemic, rtol=1e-12, atol=1e-12)
    assert (epistemic >= 0).all()
    for value in (total, aleatoric, epistemic):
        assert (value >= 0).all()
        assert (value <= math.log(k) + 1e-12).all()
    assert (aleatoric <= total + 1e-12).all()

    # Mutual information, computed independently as the mean KL divergence of each
    # sample from the model average: I = mean_s KL(p_s || p_bar).
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_terms = np.where(samples > 0, samples * np.log(samples / proba), 0.0)
    mutual_information = kl_terms.sum(axis=-1).mean(axis=0)
    assert_allclose(epistemic, np.maximum(mutual_information, 0), atol=1e-10)

    # Invariant to the order of the samples and to relabelling the classes.
    perm_s, perm_k = rng.permutation(n_samples), rng.permutation(k)
    for other in (samples[perm_s], samples[..., perm_k]):
        _, t2, a2, e2 = decompose_classification(other)
        assert_allclose(t2, total, atol=1e-12)
        assert_allclose(a2, aleatoric, atol=1e-12)
        assert_allclose(e2, epistemic, atol=1e-12)
    # Each row is decomposed on its own.
    row = rng.randint(n_rows)
    single = decompose_classification(samples[:, row : row + 1])
    for part, full in zip(single, (proba, total, aleatoric, epistemic)):
        assert_allclose(part[0], full[row], atol=1e-14)


def test_decompose_classification_accepts_lists():
    proba, total, aleatoric, epistemic = decompose_classification([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert proba.dtype == np.float64
    assert_allclose(epistemic, math.log(2))


# ------------------------------------------------------- regression decomposition
def test_decompose_regression_hand_worked():
    # One row, three samples with means (1, 2, 6) and variances (1, 1, 4):
    # mean = 3, aleatoric = 2, epistemic = (4 + 1 + 9) / 3 = 14 / 3, total = 20 / 3.
    mean, total, aleatoric, epistemic = decompose_regression(
        [[1.0], [2.0], [6.0]], [[1.0], [1.0], [4.0]]
    )
    assert_allclose(mean, [3.0])
    assert_allclose(aleatoric, [2.0])
    assert_allclose(epistemic, [14 / 3])
    assert_allclose(total, [20 / 3])


def test_decompose_regression_multi_output_hand_worked():
    # Two samples, one row, two outputs.
    means = np.array([[[0.0, 10.0]], [[4.0, 10.0]]])
    variances = np.array([[[1.0, 0.5]], [[3.0, 1.5]]])
    mean, total, aleatoric, epistemic = decompose_regression(means, variances)
    assert mean.shape == total.shape == aleatoric.shape == epistemic.shape == (1, 2)
    assert_allclose(mean, [[2.0, 10.0]])
    assert_allclose(aleatoric, [[2.0, 1.0]])
    assert_allclose(epistemic, [[4.0, 0.0]])  # population variance (divide by S, not S - 1)
    assert_allclose(total, [[6.0, 1.0]])


def test_decompose_regression_identical_means_have_no_epistemic():
    means = np.broadcast_to([1.5, -2.0, 7.0], (20, 3))
    variances = np.broadcast_to([0.1, 0.2, 0.3], (20, 3))
    mean, total, aleatoric, epistemic = decompose_regression(means, variances)
    assert_allclose(mean, [1.5, -2.0, 7.0])
    assert_allclose(epistemic, 0.0, atol=1e-24)
    assert_allclose(total, aleatoric)
    assert_allclose(aleatoric, [0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    "means, variances",
    [
        (np.zeros((3, 4)), np.zeros((3, 5))),
        (np.zeros((3, 4)), np.zeros((3, 4, 1))),
        (np.zeros(4), np.zeros(4)),  # no samples axis
    ],
)
def test_decompose_regression_rejects_bad_shapes(means, variances):
    with pytest.raises(ValueError, match="share a shape"):
        decompose_regression(means, variances)


@pytest.mark.parametrize("seed", SEEDS)
def test_decompose_regression_is_the_law_of_total_variance(seed):
    rng = np.random.RandomState(seed)
    shape = (rng.randint(1, 30), rng.randint(1, 10)) + ((rng.randint(1, 4),) if seed % 2 else ())
    means = rng.randn(*shape) * rng.uniform(0.1, 100) + rng.uniform(-50, 50)
    variances = rng.gamma(1.0, 2.0, size=shape)
    mean, total, aleatoric, epistemic = decompose_regression(means, variances)

    assert mean.shape == total.shape == shape[1:]
    assert_allclose(mean, means.mean(axis=0))
    assert_allclose(aleatoric, variances.mean(axis=0))
    assert_allclose(epistemic, means.var(axis=0), rtol=1e-10, atol=1e-12)
    assert_allclose(total, aleatoric + epistemic)
    assert (epistemic >= 0).all() and (aleatoric >= 0).all()
    # The variance of the mixture computed from its second moment:
    # Var = E[sigma^2 + mu^2] - (E[mu])^2.
    second_moment = (variances + means**2).mean(axis=0)
    assert_allclose(total, second_moment - mean**2, rtol=1e-8, atol=1e-8)
    # Shifting every mean shifts the mean only; scaling by c scales variances by c^2.
    m2, t2, a2, e2 = decompose_regression(3.0 * means + 7.0, 9.0 * variances)
    assert_allclose(m2, 3.0 * mean + 7.0, rtol=1e-10, atol=1e-9)
    assert_allclose(t2, 9.0 * total, rtol=1e-8)
    assert_allclose(e2, 9.0 * epistemic, rtol=1e-8, atol=1e-10)


def test_decompose_regression_matches_a_mixture_sampled_statistically():
    # Draw from the equal-weight Gaussian mixture and compare its sample moments.
    rng = np.random.RandomState(0)
    means = np.array([[-1.0], [0.5], [3.0]])
    variances = np.array([[0.25], [1.0], [0.5]])
    mean, total, _, _ = decompose_regression(means, variances)
    n = 400_000
    component = rng.randint(3, size=n)
    draws = rng.randn(n) * np.sqrt(variances[component, 0]) + means[component, 0]
    assert abs(draws.mean() - mean[0]) < 5 * math.sqrt(total[0] / n)
    assert_allclose(draws.var(), total[0], rtol=0.02)


# ------------------------------------------------------------------ result types
def test_classification_uncertainty_aliases_and_frozen():
    u = ClassificationUncertainty(
        proba=np.array([[0.5, 0.5]]),
        total=np.array([0.7]),
        aleatoric=np.array([0.4]),
        epistemic=np.array([0.3]),
    )
    assert u.predictive_entropy is u.total
    assert u.expected_entropy is u.aleatoric
    assert u.mutual_information is u.epistemic
    with pytest.raises(dataclasses.FrozenInstanceError):
        u.total = np.array([0.0])


def test_regression_uncertainty_std_properties_and_frozen():
    u = RegressionUncertainty(
        mean=np.array([1.0]),
        std=np.array([5.0]),
        total_var=np.array([25.0]),
        aleatoric_var=np.array([16.0]),
        epistemic_var=np.array([9.0]),
    )
    assert_allclose(u.aleatoric_std, [4.0])
    assert_allclose(u.epistemic_std, [3.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        u.mean = np.array([0.0])


# ------------------------------------- the torch reductions against this reference
# Prediction reduces draws on the estimator's device with skbdl._reductions; the
# numpy functions above are the independent reference they must reproduce.
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("temperature", [1.0, 0.3, 4.0])
def test_torch_classification_summaries_match_the_numpy_reference(seed, temperature):
    rng = np.random.RandomState(seed)
    n_classes = rng.randint(2, 6)
    scale = rng.choice([0.1, 1.0, 10.0, 60.0])  # up to saturated softmaxes (exact 0 and 1)
    logits = (scale * rng.randn(rng.randint(1, 30), 40, n_classes)).astype(np.float32)
    proba, total, aleatoric, epistemic = (
        t.numpy() for t in classification_summaries(torch.from_numpy(logits), temperature)
    )
    scaled = logits.astype(np.float64) / temperature
    samples = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    samples /= samples.sum(axis=-1, keepdims=True)
    ref = decompose_classification(samples)
    assert_allclose(proba, ref[0] / ref[0].sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-15)
    assert_allclose(total, ref[1], rtol=1e-10, atol=1e-13)
    assert_allclose(aleatoric, ref[2], rtol=1e-10, atol=1e-13)
    assert_allclose(epistemic, ref[3], rtol=1e-8, atol=1e-12)
    assert (epistemic >= 0).all()
    assert_allclose(proba_samples(torch.from_numpy(logits), temperature).numpy(), samples)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("temperature", [1.0, 0.3, 4.0])
def test_torch_log_model_average_matches_the_numpy_one(seed, temperature):
    # log mean_s softmax(logits_s / T): the likelihood temperature scaling fits
    # (numpy, skbdl.uncertainty) and the one of the ensemble's deterministic pass and
    # the adversarial objective (torch, skbdl._reductions), both against it by hand.
    rng = np.random.RandomState(seed)
    n_classes, n_rows = rng.randint(2, 6), 40
    scale = rng.choice([0.1, 1.0, 10.0])
    logits = (scale * rng.randn(rng.randint(1, 30), n_rows, n_classes)).astype(np.float32)
    labels = rng.randint(n_classes, size=n_rows)
    scaled = logits.astype(np.float64) / temperature
    samples = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    samples /= samples.sum(axis=-1, keepdims=True)
    by_hand = np.log(samples.mean(axis=0))
    numpy_full = _log_model_average(logits, temperature)
    torch_full = log_model_average(torch.from_numpy(logits), temperature).numpy()
    assert_allclose(numpy_full, by_hand, rtol=1e-10, atol=1e-12)
    assert_allclose(torch_full, numpy_full, rtol=1e-13, atol=1e-15)
    rows = np.arange(n_rows)
    numpy_label = _log_model_average(logits, temperature, labels)
    torch_label = log_model_average(
        torch.from_numpy(logits), temperature, labels=torch.from_numpy(labels)
    ).numpy()
    assert numpy_label.shape == torch_label.shape == (n_rows,)
    assert_allclose(numpy_label, numpy_full[rows, labels], rtol=1e-14, atol=1e-15)
    assert_allclose(torch_label, numpy_label, rtol=1e-13, atol=1e-15)
    log_proba = log_proba_samples(torch.from_numpy(logits), temperature)
    assert log_proba.dtype == torch.float64
    assert_allclose(log_proba.numpy(), np.log(samples), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.99])
def test_gaussian_interval_holds_its_confidence(confidence):
    # Central: each tail holds (1 - confidence) / 2 of the Gaussian's mass.
    from scipy.stats import norm

    rng = np.random.RandomState(0)
    mean, std = rng.randn(10, 2), rng.gamma(2.0, 1.0, size=(10, 2))
    intervals = _gaussian_interval(mean, std, confidence)
    assert intervals.shape == (10, 2, 2)
    assert_allclose(norm.cdf(intervals[..., 0], mean, std), (1 - confidence) / 2, rtol=1e-10)
    assert_allclose(norm.sf(intervals[..., 1], mean, std), (1 - confidence) / 2, rtol=1e-10)


@pytest.mark.parametrize("scale", [0.3, 1.0, 2.5])
def test_scale_spread_scales_both_variances_and_keeps_the_mean(scale):
    # Variance scaling (predictions, calibration fit, attacks): the mixture's mean
    # stays, its aleatoric and epistemic variances both scale by scale**2; numpy
    # arrays and torch tensors alike.
    rng = np.random.RandomState(0)
    means, variances = rng.randn(9, 30, 2), rng.gamma(2.0, 0.5, size=(9, 30, 2))
    scaled = _scale_spread(means, variances, scale)
    mean, total, aleatoric, epistemic = decompose_regression(means, variances)
    new_mean, new_total, new_aleatoric, new_epistemic = decompose_regression(*scaled)
    assert_allclose(new_mean, mean, rtol=1e-13, atol=1e-15)
    assert_allclose(new_aleatoric, scale**2 * aleatoric, rtol=1e-13)
    assert_allclose(new_epistemic, scale**2 * epistemic, rtol=1e-12)
    assert_allclose(new_total, scale**2 * total, rtol=1e-12)
    in_torch = _scale_spread(torch.from_numpy(means), torch.from_numpy(variances), scale)
    for ours, theirs in zip(in_torch, scaled):
        assert_allclose(ours.numpy(), theirs, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("seed", range(8))
def test_torch_regression_summaries_match_the_numpy_reference(seed):
    rng = np.random.RandomState(seed)
    shape = (rng.randint(1, 30), 40, rng.randint(1, 3))
    # means far from zero with a small spread: the variance is a small difference
    means = (rng.choice([0.0, 1e3]) + rng.randn(*shape)).astype(np.float32)
    variances = rng.gamma(2.0, 0.5, size=shape).astype(np.float32)
    mean, aleatoric, epistemic = (
        t.numpy()
        for t in regression_summaries((torch.from_numpy(means), torch.from_numpy(variances)))
    )
    ref_mean, ref_total, ref_aleatoric, ref_epistemic = decompose_regression(means, variances)
    assert_allclose(mean, ref_mean, rtol=1e-13)
    assert_allclose(aleatoric, ref_aleatoric, rtol=1e-13)
    assert_allclose(epistemic, ref_epistemic, rtol=1e-9, atol=1e-12)
    assert_allclose(aleatoric + epistemic, ref_total, rtol=1e-12)


def test_torch_summaries_are_per_row():
    # A row's summaries do not depend on the rows reduced with it (chunking), up to
    # the last bits (vectorised sums group terms by the tensor's shape).
    rng = np.random.RandomState(0)
    logits = torch.from_numpy(rng.randn(20, 50, 3))
    whole = classification_summaries(logits)
    parts = [classification_summaries(logits[:, i : i + 7]) for i in range(0, 50, 7)]
    for k, full in enumerate(whole):
        assert_allclose(torch.cat([p[k] for p in parts]).numpy(), full.numpy(), rtol=1e-13)
