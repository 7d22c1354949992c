"""Hyper-deep ensembles: the selection rule, the per-member hyperparameters, the estimators."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from skbdl import HyperDeepEnsembleClassifier, HyperDeepEnsembleRegressor
from skbdl._training import NOISE_LR_FACTOR
from skbdl.hyper_ensemble import _MemberHyperparameters, _select_members, greedy_ensemble_selection
from skbdl.nn import StackedGaussianRegressionModule, StackedMLP

FAST = dict(hidden_layer_sizes=(16,), max_epochs=40, lr=0.01, population_size=6, n_estimators=3)


def regression_data(n=200, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, size=(n, 1))
    return X, np.sin(2 * X[:, 0]) + 0.1 * rng.randn(n)


# --------------------------------------------------------------- selection rule
def brute_force_greedy(log_lik, n_select):
    """The same rule, written out: score every candidate mixture from scratch."""
    chosen = []
    for _ in range(n_select):
        scores = {}
        for m in range(len(log_lik)):
            if m in chosen:
                continue
            density = np.exp(log_lik[chosen + [m]]).mean(axis=0)
            scores[m] = np.log(density).mean()
        chosen.append(max(scores, key=scores.get))
    return chosen


def test_greedy_selection_matches_a_brute_force_reference():
    rng = np.random.RandomState(0)
    log_lik = rng.randn(12, 40) - 1.0
    for n_select in (1, 4, 12):
        assert greedy_ensemble_selection(log_lik, n_select) == brute_force_greedy(log_lik, n_select)


def test_greedy_selection_prefers_complementary_members():
    # Members 0 and 1 are each right on half the rows; 2 is mediocre everywhere and
    # the best alone. Two members: the mixture of 0 and 1 beats any pair with 2.
    log_lik = np.log([[0.99, 0.99, 0.01, 0.01], [0.01, 0.01, 0.99, 0.99], [0.3, 0.3, 0.3, 0.3]])
    assert greedy_ensemble_selection(log_lik, 1) == [2]
    assert sorted(greedy_ensemble_selection(log_lik, 3)[:3]) == [0, 1, 2]
    with pytest.raises(ValueError, match="n_select"):
        greedy_ensemble_selection(log_lik, 4)


def test_selection_picks_the_member_that_fits_on_a_constructed_case():
    # Population of 4 on sin(2x): members whose L2 penalty is huge cannot fit and
    # predict ~the mean; the one chosen first must be the best held-out member, and a
    # small-penalty one.
    X, y = regression_data(300)
    est = HyperDeepEnsembleRegressor(
        **{**FAST, "population_size": 8, "n_estimators": 1},
        weight_decay_range=(1e-6, 30.0),
        random_state=0,
    ).fit(X, y)
    first = est.selected_members_[0]
    assert first == np.argmax(est.population_log_likelihood_)
    assert est.population_weight_decay_[first] < 1e-2
    assert est.population_weight_decay_.max() > 1.0  # the case has bad members to skip


# ----------------------------------------------------- per-member hyperparameters
def test_member_hyperparameters_match_separate_training():
    # Two stacked members with their own L2 penalty and learning-rate factor, trained
    # by SGD (whose update is linear in the gradient), equal the same members trained
    # one at a time with lr * factor and an explicit L2 term.
    from skbdl import DeepEnsembleRegressor

    X, y = regression_data(64)
    l2, factors = np.array([0.0, 0.5]), np.array([1.0, 0.3])
    est = DeepEnsembleRegressor(
        n_estimators=2,
        hidden_layer_sizes=(4,),
        max_epochs=3,
        batch_size=64,
        lr=0.05,
        optimizer="sgd",
        likelihood="homoscedastic",
        random_state=0,
        callbacks=[("hyper", _MemberHyperparameters(l2, factors))],
    ).fit(X, y)
    init = DeepEnsembleRegressor(
        n_estimators=2,
        hidden_layer_sizes=(4,),
        max_epochs=1,
        batch_size=64,
        lr=1e-30,  # one step that changes nothing: the initial members
        optimizer="sgd",
        likelihood="homoscedastic",
        random_state=0,
    ).fit(X, y)
    X_t = torch.tensor(X, dtype=torch.float32)
    y_t = torch.tensor((y - init.y_mean_) / init.y_scale_, dtype=torch.float32)[:, None]
    for m in range(2):
        module = StackedGaussianRegressionModule(
            _select_members(init.module_, [m]), 1, "homoscedastic"
        )
        module.log_noise_var.data = init.net_.module_.log_noise_var.data[[m]].clone()
        optimizer = torch.optim.SGD(
            [
                {"params": module.body.parameters()},
                {"params": [module.log_noise_var], "lr": 0.05 * factors[m] * NOISE_LR_FACTOR},
            ],
            lr=0.05 * factors[m],
        )
        for _ in range(3):
            optimizer.zero_grad()
            mean, var = module(X_t)
            loss = 0.5 * (var.log() + (y_t - mean[0]) ** 2 / var).mean()
            penalty = sum((p**2).sum() for p in module.body.parameters())
            (loss + 0.5 * l2[m] * penalty).backward()
            optimizer.step()
        for trained, reference in zip(
            _select_members(est.module_, [m]).parameters(), module.body.parameters()
        ):
            assert_allclose(trained.detach().numpy(), reference.detach().numpy(), atol=1e-5)


def test_select_members_keeps_the_chosen_members_in_order():
    stacked = StackedMLP(5, 3, 2, hidden_layer_sizes=(4,))
    picked = _select_members(stacked, [3, 1])
    x = torch.randn(7, 3)
    assert picked.n_members == 2
    assert_allclose(picked(x).detach(), stacked(x)[[3, 1]].detach())


# ------------------------------------------------------------------ estimators
def test_regressor_predicts_with_the_chosen_members():
    X, y = regression_data()
    est = HyperDeepEnsembleRegressor(**FAST, random_state=0).fit(X, y)
    assert est.n_estimators_ == 3 and len(set(est.selected_members_)) == 3
    assert est.population_log_likelihood_.shape == (6,)
    means, variances = est.sample_predictions(X[:10])
    assert means.shape == variances.shape == (3, 10)
    mean, std = est.predict(X[:10], return_std=True)
    assert_allclose(mean, means.mean(axis=0))
    # Same random_state: same population, selection and refit.
    again = HyperDeepEnsembleRegressor(**FAST, random_state=0).fit(X, y)
    assert_array_equal(again.predict(X[:10]), mean)


def test_refit_false_keeps_the_selected_population_members():
    X, y = regression_data()
    est = HyperDeepEnsembleRegressor(**FAST, refit=False, random_state=0).fit(X, y)
    assert est.n_estimators_ == 3
    held_out_ll = est.population_log_likelihood_[est.selected_members_]
    assert np.all(np.isfinite(held_out_ll))


def test_calibrated_hyper_ensemble_intervals_cover_new_rows():
    X, y = regression_data(400, 1)
    X_test, y_test = regression_data(2000, 2)
    est = HyperDeepEnsembleRegressor(**FAST, calibrate=True, random_state=0).fit(X, y)
    assert est.calibration_scale_.shape == (1,)
    low, high = est.predict_interval(X_test, confidence=0.9).T
    assert 0.8 < np.mean((y_test >= low) & (y_test <= high)) <= 1.0
    _, std = est.predict(X_test[:5], return_std=True)
    assert np.all(std > 0)


def test_classifier_with_string_labels():
    rng = np.random.RandomState(0)
    X = rng.randn(200, 2)
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    clf = HyperDeepEnsembleClassifier(**FAST, calibrate=True, random_state=0).fit(X, y)
    assert set(clf.predict(X)) <= {"yes", "no"}
    assert clf.score(X, y) > 0.9
    assert clf.sample_predictions(X[:4]).shape == (3, 4, 2)
    assert clf.temperature_ > 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"population_size": 2, "n_estimators": 3}, "population_size"),
        ({"weight_decay_range": (1e-3, 1e-4)}, "weight_decay_range"),
        ({"lr_factor_range": (0.0, 1.0)}, "lr_factor_range"),
    ],
)
def test_bad_population_settings_are_clear_errors(params, message):
    X, y = regression_data(50)
    with pytest.raises(ValueError, match=message):
        HyperDeepEnsembleRegressor(**{**FAST, **params}).fit(X, y)
