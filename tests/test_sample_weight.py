"""``sample_weight`` and ``class_weight``: a row of integer weight ``k`` counts as ``k``
copies of it, checked against fits on the repeated rows.

With mini-batches the batches of a weighted and of a repeated data set differ, so
the checks compare what is deterministic: full-batch training with plain SGD (the
weighted loss of the whole data then equals the mean loss over the repeated rows,
so both fits take the same steps, up to float32 round-off), losses of a fixed batch,
and PBP, whose assumed density filtering visits a row of weight ``k`` ``k`` times.
"""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.base import clone, is_classifier
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight

from skbdl import (
    BayesianMLPClassifier,
    BayesianMLPRegressor,
    DeepEnsembleClassifier,
    DeepEnsembleRegressor,
    HyperDeepEnsembleClassifier,
    MCDropoutClassifier,
    MCDropoutRegressor,
    PBPRegressor,
    SWAGClassifier,
)
from skbdl._base import _seed_from
from skbdl._net import RowData, per_row_loss, weighted_loss
from skbdl.hyper_ensemble import greedy_ensemble_selection
from skbdl.nn import (
    EnsembleCrossEntropyLoss,
    EnsembleGaussianNLLLoss,
    GaussianNLLLoss,
)
from skbdl.uncertainty import fit_log_scale, fit_log_temperature, mixture_log_likelihood

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: Full-batch plain SGD, no held-out rows: the fit is a deterministic function of the
#: weighted loss of the whole data.
FULL_BATCH = dict(
    hidden_layer_sizes=(8,),
    max_epochs=5,
    batch_size=1000,
    optimizer="sgd",
    lr=0.05,
    calibrate=False,
    random_state=0,
    verbose=0,
)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(30, 3)
    y_reg = X[:, 0] - 0.5 * X[:, 1] + 0.1 * rng.randn(30)
    y_clf = (X[:, 0] + 0.3 * rng.randn(30) > 0).astype(int)
    weight = rng.randint(0, 4, size=30)
    weight[:2] = [0, 3]  # at least one zero and one repeat
    return X, y_reg, y_clf, weight


def targets(cls, data):
    X, y_reg, y_clf, _ = data
    return y_clf if is_classifier(cls()) else y_reg


def parameters(est):
    return {k: v.detach().clone() for k, v in est.module_.state_dict().items()}


# ------------------------------------------------------------- the loss itself
CRITERIA = [
    (torch.nn.CrossEntropyLoss(), lambda: (torch.randn(7, 3), torch.randint(3, (7,)))),
    (GaussianNLLLoss(), lambda: ((torch.randn(7, 2), torch.rand(7, 2) + 0.1), torch.randn(7, 2))),
    (
        EnsembleCrossEntropyLoss(),
        lambda: (torch.randn(4, 7, 3), torch.randint(3, (4, 7))),
    ),
    (
        EnsembleGaussianNLLLoss(),
        lambda: ((torch.randn(4, 7, 2), torch.rand(4, 7, 2) + 0.1), torch.randn(4, 7, 2)),
    ),
]


@pytest.mark.parametrize("criterion, make", CRITERIA, ids=lambda c: type(c).__name__)
def test_per_row_losses_average_to_the_criterion(criterion, make):
    y_pred, y_true = make()
    losses = per_row_loss(criterion, y_pred, y_true)
    assert losses.shape[-1] == 7
    assert_allclose(losses.mean(dim=-1).sum().item(), criterion(y_pred, y_true).item(), rtol=1e-6)
    ones = torch.ones(7)
    assert_allclose(
        weighted_loss(criterion, y_pred, y_true, ones).item(),
        criterion(y_pred, y_true).item(),
        rtol=1e-6,
    )


@pytest.mark.parametrize("criterion, make", CRITERIA, ids=lambda c: type(c).__name__)
def test_weighted_loss_equals_the_loss_of_repeated_rows(criterion, make):
    y_pred, y_true = make()
    counts = torch.tensor([0, 1, 2, 3, 1, 0, 2])
    rows = torch.repeat_interleave(torch.arange(7), counts)
    # Rows are on the last axis but one of the predictions (the last of the labels).
    axis = 1 if isinstance(criterion, (EnsembleCrossEntropyLoss, EnsembleGaussianNLLLoss)) else 0

    def take(t):
        return t.index_select(axis if t.ndim > axis else 0, rows)

    pred_repeated = tuple(map(take, y_pred)) if isinstance(y_pred, tuple) else take(y_pred)
    repeated = criterion(pred_repeated, take(y_true)).item()
    normalised = counts.float() / counts.float().mean()
    assert_allclose(
        weighted_loss(criterion, y_pred, y_true, normalised).item(), repeated, rtol=1e-5
    )


# ------------------------------------------------ fits against repeated rows
FULL_BATCH_CLASSES = [
    (MCDropoutRegressor, dict(dropout=0.0)),
    (MCDropoutClassifier, dict(dropout=0.0)),
    (DeepEnsembleRegressor, dict(n_estimators=2)),
    (DeepEnsembleClassifier, dict(n_estimators=2)),
]


@pytest.mark.parametrize(
    "cls, params", FULL_BATCH_CLASSES, ids=[c.__name__ for c, _ in FULL_BATCH_CLASSES]
)
def test_integer_weights_equal_repeated_rows(cls, params, data):
    X, *_, weight = data
    y = targets(cls, data)
    est = cls(**FULL_BATCH, **params)
    weighted = clone(est).fit(X, y, sample_weight=weight)
    repeated = clone(est).fit(X.repeat(weight, axis=0), y.repeat(weight))
    # Targets standardised with the weighted moments (those of the repeated rows).
    if not is_classifier(est):
        assert_allclose(weighted.y_mean_, repeated.y_mean_, rtol=1e-12)
        assert_allclose(weighted.y_scale_, repeated.y_scale_, rtol=1e-12)
    before = parameters(clone(est).fit(X, y))
    after, reference = parameters(weighted), parameters(repeated)
    for name in reference:
        assert_allclose(after[name], reference[name], rtol=1e-4, atol=1e-5, err_msg=name)
    # ... and the weights matter: the unweighted fit is elsewhere.
    moved = max(float((before[k] - reference[k]).abs().max()) for k in reference)
    assert moved > 1e-3
    out = "predict_proba" if is_classifier(est) else "predict"
    assert_allclose(getattr(weighted, out)(X), getattr(repeated, out)(X), rtol=1e-4, atol=1e-5)


def test_zero_weight_equals_leaving_the_row_out(data):
    X, y, _, _ = data
    keep = np.arange(len(X)) % 3 != 0
    est = MCDropoutRegressor(**FULL_BATCH, dropout=0.0)
    weighted = clone(est).fit(X, y, sample_weight=keep.astype(float))
    subset = clone(est).fit(X[keep], y[keep])
    for name, value in parameters(subset).items():
        assert_allclose(parameters(weighted)[name], value, rtol=1e-4, atol=1e-5)


def test_unit_weights_equal_no_weights(data):
    X, y, _, _ = data
    est = MCDropoutRegressor(**FULL_BATCH, dropout=0.0)
    # The weighted fit runs through autograd, the other through the hand-written path.
    ones = parameters(clone(est).fit(X, y, sample_weight=np.ones(len(X))))
    for name, value in parameters(clone(est).fit(X, y)).items():
        assert_allclose(ones[name], value, rtol=1e-4, atol=1e-6)


def test_scaling_all_weights_keeps_the_fit_of_a_likelihood_only_model(data):
    # Without a KL term, the loss sum w_i l_i / sum w_i does not change when every
    # weight is multiplied by the same factor.
    X, y, _, weight = data
    est = MCDropoutRegressor(**FULL_BATCH, dropout=0.0)
    a = parameters(clone(est).fit(X, y, sample_weight=weight))
    b = parameters(clone(est).fit(X, y, sample_weight=2.5 * weight))
    for name in a:
        assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-6)


# ------------------------------------------------------- Bayes by Backprop
@pytest.mark.parametrize("cls", [BayesianMLPRegressor, BayesianMLPClassifier])
def test_elbo_with_weights_is_the_elbo_of_repeated_rows(cls, data):
    """The loss of the whole data (data term and KL / N) is the same for integer weights
    and for the repeated rows: N is the sum of the weights, not the number of rows."""
    X, *_, weight = data
    y = targets(cls, data)
    est = cls(hidden_layer_sizes=(8,), max_epochs=1, calibrate=False, random_state=0, verbose=0)
    est.fit(X, y, sample_weight=weight)
    net = est.net_
    assert net.n_train_ == pytest.approx(weight.sum())
    X_t = torch.tensor(X, dtype=torch.float32)
    y_t = est._encode_targets(y)[0]
    module = net.module_.eval()  # the posterior means: a deterministic loss
    rows = torch.repeat_interleave(torch.arange(len(X)), torch.as_tensor(weight))
    with torch.no_grad():
        iterator = net.get_iterator(RowData(X_t, y_t, weight), training=True)
        assert net.n_train_ == pytest.approx(weight.sum())
        normalised = iterator.weight
        loss_weighted = net.get_loss(module(X_t), y_t, sample_weight=normalised).item()
        net.get_iterator(RowData(X_t[rows], y_t[rows]), training=True)
        assert net.n_train_ == len(rows)
        loss_repeated = net.get_loss(module(X_t[rows]), y_t[rows]).item()
    assert_allclose(loss_weighted, loss_repeated, rtol=1e-5)


# ------------------------------------------------------------------- PBP
def test_pbp_integer_weights_are_repeated_updates(data):
    X, y, _, weight = data
    est = PBPRegressor(hidden_layer_sizes=(5,), max_epochs=3, random_state=0)
    weighted = clone(est).fit(X, y, sample_weight=weight)
    repeated = clone(est).fit(X.repeat(weight, axis=0), y.repeat(weight))
    # Assumed density filtering is deterministic given the order of the updates, and
    # both fits visit the same rows in the same order.
    for a, b in zip(weighted.predict(X, return_std=True), repeated.predict(X, return_std=True)):
        assert_allclose(a, b, rtol=1e-10)
    unweighted = clone(est).fit(X, y).predict(X)
    assert not np.allclose(unweighted, weighted.predict(X))


def test_pbp_refuses_fractional_weights(data):
    X, y, _, weight = data
    with pytest.raises(NotImplementedError, match="integer sample weights"):
        PBPRegressor(max_epochs=1).fit(X, y, sample_weight=weight + 0.5)


# --------------------------------------------------------- bad sample weights
@pytest.mark.parametrize("cls", [MCDropoutClassifier, PBPRegressor, DeepEnsembleRegressor])
def test_bad_sample_weights(cls, data):
    X = data[0]
    y = targets(cls, data)
    est = cls(max_epochs=1, verbose=0)
    with pytest.raises(ValueError, match="[Nn]egative"):
        est.fit(X, y, sample_weight=-np.ones(len(X)))
    with pytest.raises(ValueError, match="zero"):
        est.fit(X, y, sample_weight=np.zeros(len(X)))
    with pytest.raises(ValueError, match="shape|number of"):
        est.fit(X, y, sample_weight=np.ones(len(X) + 1))
    assert not hasattr(est, "n_features_in_")


# ----------------------------------------- held-out rows keep their weights
def test_early_stopping_loss_is_weighted_over_the_held_out_rows(data):
    X, y, _, weight = data
    weight = weight + 1.0  # no held-out row without weight
    est = MCDropoutRegressor(
        hidden_layer_sizes=(8,),
        dropout=0.0,
        max_epochs=1,
        early_stopping=True,
        validation_fraction=0.3,
        calibrate=False,
        random_state=0,
        verbose=0,
    ).fit(X, y, sample_weight=weight)
    _, valid = est._holdout_rows(y, _seed_from(check_random_state(0)))
    X_t = torch.tensor(X[valid], dtype=torch.float32)
    y_t = est._encode_targets(y[valid])[0]
    with torch.no_grad():
        losses = per_row_loss(est.net_.criterion_, est.net_.module_.eval()(X_t), y_t).numpy()
    expected = np.average(losses, weights=weight[valid])
    assert est.history_[-1, "valid_loss"] == pytest.approx(expected, rel=1e-5)
    assert not np.isclose(est.history_[-1, "valid_loss"], losses.mean(), rtol=1e-4)


def test_recalibration_fits_are_weighted():
    rng = np.random.RandomState(0)
    mean, var = rng.randn(3, 40), rng.rand(3, 40) + 0.2
    y = rng.randn(40) * 2
    counts = rng.randint(0, 4, 40)
    counts[0] = 0
    assert mixture_log_likelihood(y, mean, var, 1.5, sample_weight=counts) == pytest.approx(
        mixture_log_likelihood(y.repeat(counts), mean.repeat(counts, 1), var.repeat(counts, 1), 1.5)
    )
    assert fit_log_scale(mean, var, y, sample_weight=counts) == pytest.approx(
        fit_log_scale(mean.repeat(counts, 1), var.repeat(counts, 1), y.repeat(counts)), abs=1e-5
    )
    logits, labels = rng.randn(3, 40, 4) * 3, rng.randint(4, size=40)
    assert fit_log_temperature(logits, labels, sample_weight=counts) == pytest.approx(
        fit_log_temperature(logits.repeat(counts, 1), labels.repeat(counts)), abs=1e-5
    )


def test_held_out_rows_without_weight_are_an_error(data):
    X, y, _, _ = data
    X, y = np.tile(X, (8, 1)), np.tile(y, 8)  # 240 rows: 'auto' recalibrates
    est = MCDropoutRegressor(hidden_layer_sizes=(4,), max_epochs=1, random_state=0, verbose=0)
    _, valid = est._holdout_rows(y, _seed_from(check_random_state(0)))
    weight = np.ones(len(X))
    weight[valid] = 0.0
    with pytest.raises(ValueError, match="held-out row has zero sample weight"):
        est.fit(X, y, sample_weight=weight)


def test_hyper_ensemble_selection_weighs_held_out_rows():
    rng = np.random.RandomState(1)
    log_lik = np.log(rng.rand(6, 30))
    counts = rng.randint(0, 3, 30)
    assert greedy_ensemble_selection(log_lik, 3, counts) == greedy_ensemble_selection(
        log_lik.repeat(counts, axis=1), 3
    )


def test_hyper_ensemble_accepts_weights(data):
    X, _, y, weight = data
    X, y, weight = np.tile(X, (2, 1)), np.tile(y, 2), np.tile(weight, 2) + 1
    clf = HyperDeepEnsembleClassifier(
        hidden_layer_sizes=(4,),
        n_estimators=2,
        population_size=3,
        max_epochs=2,
        random_state=0,
        verbose=0,
    ).fit(X, y, sample_weight=weight)
    assert clf.predict_proba(X).shape == (len(X), 2)


# --------------------------------------------------------------- class weights
CLASSIFIERS = [
    MCDropoutClassifier,
    BayesianMLPClassifier,
    DeepEnsembleClassifier,
    HyperDeepEnsembleClassifier,
    SWAGClassifier,
]


@pytest.mark.parametrize("cls", CLASSIFIERS)
def test_balanced_class_weight_is_the_explicit_sample_weight(cls, data):
    X, _, y, _ = data
    y = np.where(np.arange(len(y)) < 22, 0, 1)  # unbalanced: 22 vs 8
    est = cls(hidden_layer_sizes=(8,), max_epochs=3, calibrate=False, random_state=0, verbose=0)
    if cls is HyperDeepEnsembleClassifier:
        est.set_params(population_size=3, n_estimators=2)
    balanced = clone(est).set_params(class_weight="balanced").fit(X, y)
    explicit = clone(est).fit(X, y, sample_weight=compute_sample_weight("balanced", y))
    plain = clone(est).fit(X, y)
    for name, value in parameters(explicit).items():
        assert torch.equal(parameters(balanced)[name], value)
    assert not all(torch.equal(parameters(plain)[k], v) for k, v in parameters(explicit).items())


def test_class_weight_dict_with_string_labels_multiplies_sample_weight(data):
    X, _, y, weight = data
    labels = np.array(["no", "yes"])[y]
    est = MCDropoutClassifier(**FULL_BATCH, dropout=0.0)
    by_class = clone(est).set_params(class_weight={"yes": 3.0}).fit(X, labels, sample_weight=weight)
    explicit = clone(est).fit(X, labels, sample_weight=weight * np.where(y == 1, 3.0, 1.0))
    for name, value in parameters(explicit).items():
        assert torch.equal(parameters(by_class)[name], value)
    assert set(by_class.predict(X)) <= {"no", "yes"}


def test_class_weight_is_validated(data):
    X, _, y, _ = data
    with pytest.raises(ValueError, match="class_weight"):
        MCDropoutClassifier(class_weight="auto", max_epochs=1).fit(X, y)


# ------------------------------------------------------ post-hoc posteriors
def test_the_core_refuses_weights_it_cannot_use(data):
    """A method on the prediction core that keeps BasePredictor's fit refuses
    sample weights with an error that is a NotImplementedError and a TypeError."""
    from skbdl._base import BasePredictor, BayesianRegressorMixin, SampleWeightNotSupportedError

    class NoWeights(BayesianRegressorMixin, BasePredictor):
        def _fit(self, X, y):
            return self

        def __sklearn_is_fitted__(self):
            return False

        def _prediction_module(self):
            raise NotImplementedError

        def _sample_outputs(self, module, X, n_samples, seed):
            raise NotImplementedError

    X, y, _, weight = data
    with pytest.raises(SampleWeightNotSupportedError, match="NoWeights does not weigh rows"):
        NoWeights().fit(X, y, sample_weight=weight)
    with pytest.raises(TypeError, match=r"NoWeights\.fit\(\) got an unexpected keyword"):
        NoWeights().fit(X, y, weights=weight)


@pytest.mark.parametrize("name", ["LaplaceRegressor", "LastLayerBayesianRegressor"])
def test_post_hoc_methods_weigh_the_network_they_fit(name, data):
    """The weights reach the network a post-hoc method fits itself: its network is
    the one MCDropout fits with those weights."""
    import skbdl

    X, y, _, weight = data
    cls = getattr(skbdl, name)
    posterior = cls(MCDropoutRegressor(**FULL_BATCH, dropout=0.0))
    posterior.fit(X, y, sample_weight=weight)
    network = MCDropoutRegressor(**FULL_BATCH, dropout=0.0)
    network.fit(X, y, sample_weight=weight)
    for a, b in zip(posterior.estimator_.module_.parameters(), network.module_.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(TypeError, match="unexpected keyword argument 'weights'"):
        cls().fit(X, y, weights=weight)
    with pytest.raises(ValueError, match="at least one non-zero"):
        cls().fit(X, y, sample_weight=np.zeros(len(y)))


@pytest.mark.parametrize(
    "name", ["LaplaceClassifier", "LastLayerLaplaceClassifier", "LastLayerMCDropoutClassifier"]
)
def test_post_hoc_class_weight_is_the_explicit_sample_weight(name, data):
    """A post-hoc classifier's class_weight ('balanced', or a dict on string labels,
    times sample_weight) is the explicit sample weight: the same network and the same
    posterior, bit for bit; and it changes the fit."""
    import skbdl

    X, _, y, weight = data
    y = np.where(np.arange(len(y)) < 22, 0, 1)  # unbalanced: 22 vs 8
    labels = np.array(["no", "yes"])[y]
    network = MCDropoutClassifier(**FULL_BATCH, dropout=0.0)
    est = getattr(skbdl, name)(network, random_state=0)
    balanced = clone(est).set_params(class_weight="balanced").fit(X, labels)
    explicit = clone(est).fit(X, labels, sample_weight=compute_sample_weight("balanced", y))
    assert np.array_equal(balanced.predict_proba(X), explicit.predict_proba(X))
    by_class = clone(est).set_params(class_weight={"yes": 3.0})
    by_class.fit(X, labels, sample_weight=weight)
    explicit = clone(est).fit(X, labels, sample_weight=weight * np.where(y == 1, 3.0, 1.0))
    assert np.array_equal(by_class.predict_proba(X), explicit.predict_proba(X))
    assert not np.array_equal(clone(est).fit(X, labels).predict_proba(X), explicit.predict_proba(X))
    with pytest.raises(ValueError, match="class_weight"):
        clone(est).set_params(class_weight="auto").fit(X, labels)
    with pytest.raises(ValueError, match="zero weight once class_weight is applied"):
        clone(est).set_params(class_weight={"no": 0.0, "yes": 0.0}).fit(X, labels)
