"""Behaviour and maths of MCDropoutClassifier and MCDropoutRegressor."""

import copy
import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback, LRScheduler
from torch import nn
from torch.nn import functional as F

from skbdl import DivergenceError, MCDropoutClassifier, MCDropoutRegressor
from skbdl.uncertainty import decompose_classification, decompose_regression

FAST = dict(hidden_layer_sizes=(16,), max_epochs=20, lr=0.01, n_samples=20)
#: FAST for a user module (the default network's width does not apply to it).
MODULE_FAST = {k: v for k, v in FAST.items() if k != "hidden_layer_sizes"}


# ------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def reg_data():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(120, 1))
    y = np.sin(3 * X[:, 0]) + 0.1 * rng.randn(120)
    return X, y


@pytest.fixture(scope="module")
def clf_data():
    X, y = make_blobs(n_samples=90, centers=3, n_features=4, cluster_std=1.5, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def fitted_reg(reg_data):
    return MCDropoutRegressor(**FAST, random_state=0).fit(*reg_data)


@pytest.fixture(scope="module")
def fitted_clf(clf_data):
    return MCDropoutClassifier(**FAST, random_state=0).fit(*clf_data)


@pytest.fixture(scope="module")
def fitted_hetero(reg_data):
    return MCDropoutRegressor(**FAST, likelihood="heteroscedastic", random_state=0).fit(*reg_data)


def state_dict_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def module_state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ------------------------------------------------------------- dropout = 0
def test_dropout_zero_classifier_is_the_deterministic_network(clf_data):
    X, y = clf_data
    clf = MCDropoutClassifier(**{**FAST, "dropout": 0.0}, random_state=0).fit(X, y)
    samples = clf.sample_predictions(X, n_samples=7)
    assert samples.shape == (7, len(X), 3)
    for s in range(1, 7):
        assert_allclose(samples[s], samples[0], rtol=1e-6, atol=1e-7)

    u = clf.predict_uncertainty(X)
    assert_allclose(u.epistemic, 0.0, atol=1e-6)
    assert_allclose(u.total, u.aleatoric, atol=1e-6)

    module = clf.module_
    assert not module.training
    with torch.no_grad():
        logits = module(torch.tensor(X, dtype=torch.float32))
    expected = torch.softmax(logits.double(), dim=1).numpy()
    assert_allclose(clf.predict_proba(X), expected, rtol=1e-5, atol=1e-6)
    assert_array_equal(clf.predict(X), clf.classes_[expected.argmax(axis=1)])


@pytest.mark.parametrize("likelihood", ["homoscedastic", "heteroscedastic"])
def test_dropout_zero_regressor_is_the_deterministic_network(reg_data, likelihood):
    X, y = reg_data
    reg = MCDropoutRegressor(**{**FAST, "dropout": 0.0}, likelihood=likelihood, random_state=0).fit(
        X, y
    )
    means, variances = reg.sample_predictions(X, n_samples=5)
    for s in range(1, 5):
        assert_allclose(means[s], means[0], rtol=1e-6, atol=1e-7)
        assert_allclose(variances[s], variances[0], rtol=1e-6)

    u = reg.predict_uncertainty(X)
    assert_allclose(u.epistemic_var, 0.0, atol=1e-8)

    # A plain eval-mode forward pass of the trained Gaussian module, mapped back to
    # the target's units by hand.
    head = reg.net_.module_
    assert not head.training
    with torch.no_grad():
        mean, var = head(torch.tensor(X, dtype=torch.float32))
    scale = y.std()
    expected_mean = mean.double().numpy()[:, 0] * scale + y.mean()
    expected_var = var.double().numpy()[:, 0] * scale**2
    assert_allclose(u.mean, expected_mean, rtol=1e-5, atol=1e-6)
    assert_allclose(u.aleatoric_var, expected_var, rtol=1e-5)
    assert_allclose(u.std, np.sqrt(expected_var), rtol=1e-5)
    # module_ is the body (the user's or the default MLP): it gives the means.
    with torch.no_grad():
        body_out = reg.module_(torch.tensor(X, dtype=torch.float32)).double().numpy()
    assert_allclose(body_out[:, 0] * scale + y.mean(), expected_mean, rtol=1e-5, atol=1e-6)


def test_dropout_positive_samples_differ(fitted_clf, fitted_reg, clf_data, reg_data):
    samples = fitted_clf.sample_predictions(clf_data[0])
    assert np.ptp(samples, axis=0).max() > 1e-3
    assert (fitted_clf.predict_uncertainty(clf_data[0]).epistemic > 0).any()
    means, _ = fitted_reg.sample_predictions(reg_data[0])
    assert np.ptp(means, axis=0).min() > 0
    assert (fitted_reg.predict_uncertainty(reg_data[0]).epistemic_var > 0).all()


# ------------------------------------------------- decomposition on fitted models
def test_classifier_decomposition_identities(fitted_clf, clf_data):
    X = clf_data[0]
    u = fitted_clf.predict_uncertainty(X)
    samples = fitted_clf.sample_predictions(X)
    assert samples.shape == (fitted_clf.n_samples, len(X), 3)
    assert_allclose(samples.sum(axis=-1), 1.0, rtol=1e-10)
    assert ((samples >= 0) & (samples <= 1)).all()

    proba, total, aleatoric, epistemic = decompose_classification(samples)
    assert_allclose(u.proba, proba, rtol=1e-10)
    assert_allclose(u.total, total, rtol=1e-10, atol=1e-12)
    assert_allclose(u.aleatoric, aleatoric, rtol=1e-10, atol=1e-12)
    assert_allclose(u.epistemic, epistemic, rtol=1e-8, atol=1e-12)
    assert_allclose(u.total, u.aleatoric + u.epistemic, atol=1e-12)
    assert (u.epistemic >= 0).all()
    assert (u.total <= np.log(3) + 1e-12).all()
    assert_allclose(u.proba.sum(axis=1), 1.0, rtol=1e-12)
    assert_array_equal(fitted_clf.predict_proba(X), u.proba)
    assert_array_equal(fitted_clf.predict(X), fitted_clf.classes_[u.proba.argmax(axis=1)])
    # n_samples at call time overrides the parameter.
    u5 = fitted_clf.predict_uncertainty(X, n_samples=5)
    assert_allclose(u5.total, decompose_classification(fitted_clf.sample_predictions(X, 5))[1])


@pytest.mark.parametrize("fixture", ["fitted_reg", "fitted_hetero"])
def test_regressor_decomposition_identities(fixture, reg_data, request):
    reg = request.getfixturevalue(fixture)
    X = reg_data[0]
    u = reg.predict_uncertainty(X)
    means, variances = reg.sample_predictions(X)
    assert means.shape == variances.shape == (reg.n_samples, len(X))
    assert (variances > 0).all()

    mean, total, aleatoric, epistemic = decompose_regression(means, variances)
    assert_allclose(u.mean, mean, rtol=1e-10)
    assert_allclose(u.total_var, total, rtol=1e-10)
    assert_allclose(u.aleatoric_var, aleatoric, rtol=1e-10)
    assert_allclose(u.epistemic_var, epistemic, rtol=1e-8, atol=1e-14)
    assert_allclose(u.total_var, u.aleatoric_var + u.epistemic_var)
    assert_allclose(u.std, np.sqrt(u.total_var))
    assert_allclose(u.epistemic_std**2, u.epistemic_var)
    y_mean, y_std = reg.predict(X, return_std=True)
    assert_array_equal(y_mean, u.mean)
    assert_array_equal(y_std, u.std)
    assert_array_equal(reg.predict(X), u.mean)


def test_predictions_are_repeatable(fitted_clf, fitted_reg, clf_data, reg_data):
    assert_array_equal(fitted_clf.predict_proba(clf_data[0]), fitted_clf.predict_proba(clf_data[0]))
    a, b = fitted_reg.predict(reg_data[0], return_std=True), fitted_reg.predict(reg_data[0], True)
    assert_array_equal(a[0], b[0])
    assert_array_equal(a[1], b[1])


def test_models_learn(fitted_clf, fitted_reg, clf_data, reg_data):
    assert fitted_clf.score(*clf_data) > 0.8
    assert fitted_reg.score(*reg_data) > 0.7
    assert fitted_reg.loss_curve_[-1] < fitted_reg.loss_curve_[0]
    assert fitted_reg.n_iter_ == len(fitted_reg.loss_curve_) == FAST["max_epochs"]


# ------------------------------------------------------------ reproducibility
@pytest.mark.parametrize(
    "cls, data", [(MCDropoutClassifier, "clf_data"), (MCDropoutRegressor, "reg_data")]
)
def test_random_state_reproducible(cls, data, request):
    X, y = request.getfixturevalue(data)
    est_a = cls(**FAST, random_state=3).fit(X, y)
    est_b = cls(**FAST, random_state=3).fit(X, y)
    est_c = cls(**FAST, random_state=4).fit(X, y)
    assert est_a.loss_curve_ == est_b.loss_curve_
    assert est_a.loss_curve_ != est_c.loss_curve_
    samples = [e.sample_predictions(X) for e in (est_a, est_b, est_c)]
    if isinstance(samples[0], tuple):
        samples = [s[0] for s in samples]
    assert_array_equal(samples[0], samples[1])
    assert not np.allclose(samples[0], samples[2])
    # Refitting the same object gives the same model again.
    first = samples[0]
    est_a.fit(X, y)
    again = est_a.sample_predictions(X)
    assert_array_equal(again[0] if isinstance(again, tuple) else again, first)


def test_fit_and_predict_leave_global_rngs_alone(reg_data):
    X, y = reg_data
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()  # noqa: NPY002
    reg = MCDropoutRegressor(**FAST, random_state=0).fit(X, y)
    reg.predict_uncertainty(X)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert_array_equal(np.random.get_state()[1], np_state[1])  # noqa: NPY002


def test_random_state_none_still_gives_repeatable_predictions(clf_data):
    X, y = clf_data
    clf = MCDropoutClassifier(**FAST, random_state=None).fit(X, y)
    assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))


# ------------------------------------------------------- out of distribution
def test_regression_epistemic_grows_away_from_the_data(reg_data):
    X, y = reg_data
    reg = MCDropoutRegressor(
        hidden_layer_sizes=(32,), dropout=0.2, max_epochs=40, lr=0.01, n_samples=30, random_state=0
    ).fit(X, y)
    far = np.r_[np.linspace(-5, -3, 10), np.linspace(3, 5, 10)][:, None]
    inside = reg.predict_uncertainty(np.linspace(-1, 1, 21)[:, None])
    outside = reg.predict_uncertainty(far)
    assert outside.epistemic_std.mean() > 2 * inside.epistemic_std.mean()
    assert outside.epistemic_std.min() > inside.epistemic_std.mean()
    assert outside.std.mean() > inside.std.mean()


def test_classification_mutual_information_grows_away_from_the_data():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(160, 2))
    y = (X[:, 0] > 0) ^ (X[:, 1] > 0)  # XOR
    clf = MCDropoutClassifier(
        hidden_layer_sizes=(32,), dropout=0.3, max_epochs=40, lr=0.01, n_samples=30, random_state=0
    ).fit(X, y)
    assert clf.score(X, y) > 0.9
    directions = rng.randn(40, 2)
    far = 4 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    inside = clf.predict_uncertainty(X)
    outside = clf.predict_uncertainty(far)
    assert outside.mutual_information.mean() > 2 * inside.mutual_information.mean()


# ------------------------------------------------------------------- units
def test_regressor_reports_in_original_units(reg_data):
    X, y = reg_data
    small = MCDropoutRegressor(**FAST, random_state=0).fit(X, y)
    big = MCDropoutRegressor(**FAST, random_state=0).fit(X, 1000 * y + 5000)
    assert_allclose(big.y_mean_, [1000 * y.mean() + 5000])
    assert_allclose(big.y_scale_, [1000 * y.std()])
    assert_allclose(small.y_mean_, [y.mean()])
    assert_allclose(small.y_scale_, [y.std()])
    # Training sees the same standardised targets.
    assert_allclose(big.loss_curve_, small.loss_curve_, rtol=1e-4, atol=1e-5)

    u_small, u_big = small.predict_uncertainty(X), big.predict_uncertainty(X)
    assert_allclose(u_big.mean, 1000 * u_small.mean + 5000, rtol=1e-4, atol=1.0)
    assert_allclose(u_big.std, 1000 * u_small.std, rtol=1e-3)
    assert_allclose(u_big.aleatoric_var, 1e6 * u_small.aleatoric_var, rtol=1e-3)
    assert_allclose(u_big.epistemic_var, 1e6 * u_small.epistemic_var, rtol=1e-2)
    assert abs(u_big.mean.mean() - (1000 * y.mean() + 5000)) < 1000 * y.std()


def test_constant_target(reg_data):
    X = reg_data[0]
    reg = MCDropoutRegressor(**FAST, random_state=0).fit(X, np.full(len(X), 7.0))
    assert_array_equal(reg.y_scale_, [1.0])
    assert_allclose(reg.predict(X), 7.0, atol=0.5)


# ------------------------------------------------------------------- shapes
def test_output_shapes_1d_target(fitted_reg, reg_data):
    X = reg_data[0][:11]
    mean, std = fitted_reg.predict(X, return_std=True)
    assert mean.shape == std.shape == (11,)
    u = fitted_reg.predict_uncertainty(X)
    for field in (u.mean, u.std, u.total_var, u.aleatoric_var, u.epistemic_var):
        assert field.shape == (11,)
    means, variances = fitted_reg.sample_predictions(X, n_samples=4)
    assert means.shape == variances.shape == (4, 11)
    assert fitted_reg.n_outputs_ == 1


@pytest.mark.parametrize("likelihood", ["homoscedastic", "heteroscedastic"])
def test_output_shapes_multi_output_target(reg_data, likelihood):
    X, y = reg_data
    Y = np.c_[y, 100 * np.cos(2 * X[:, 0]) + 50]
    reg = MCDropoutRegressor(**{**FAST, "max_epochs": 30}, likelihood=likelihood, random_state=0)
    reg.fit(X, Y)
    assert reg.n_outputs_ == 2
    assert reg.y_mean_.shape == reg.y_scale_.shape == (2,)
    mean, std = reg.predict(X, return_std=True)
    assert mean.shape == std.shape == (len(X), 2)
    means, variances = reg.sample_predictions(X[:5], n_samples=3)
    assert means.shape == variances.shape == (3, 5, 2)
    u = reg.predict_uncertainty(X)
    assert u.epistemic_var.shape == (len(X), 2)
    # Each column is learned in its own units.
    for t in range(2):
        r2 = 1 - ((Y[:, t] - mean[:, t]) ** 2).mean() / Y[:, t].var()
        assert r2 > 0.5
    assert std[:, 1].mean() > 10 * std[:, 0].mean()


def test_output_shapes_column_target(reg_data):
    X, y = reg_data
    reg = MCDropoutRegressor(**FAST, random_state=0).fit(X, y[:, None])
    mean, std = reg.predict(X, return_std=True)
    assert mean.shape == std.shape == (len(X), 1)
    assert reg.sample_predictions(X, n_samples=2)[0].shape == (2, len(X), 1)


def test_classifier_sample_shapes(fitted_clf, clf_data):
    X = clf_data[0]
    assert fitted_clf.sample_predictions(X[:6], n_samples=9).shape == (9, 6, 3)
    assert fitted_clf.sample_predictions(X[:6]).shape == (fitted_clf.n_samples, 6, 3)
    u = fitted_clf.predict_uncertainty(X[:6])
    assert u.proba.shape == (6, 3)
    assert u.total.shape == u.aleatoric.shape == u.epistemic.shape == (6,)


@pytest.mark.parametrize("n_samples", [0, -1, 2.5])
def test_bad_n_samples_at_predict(fitted_clf, clf_data, n_samples):
    with pytest.raises(ValueError, match="n_samples"):
        fitted_clf.predict_uncertainty(clf_data[0], n_samples=n_samples)


# ----------------------------------------------------------- likelihoods
def test_heteroscedastic_learns_where_the_noise_is():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(200, 1))
    noise_sd = np.where(X[:, 0] > 0, 0.5, 0.05)
    y = X[:, 0] + noise_sd * rng.randn(200)
    test = np.array([[-0.7], [-0.5], [0.5], [0.7]])
    settings = dict(hidden_layer_sizes=(16,), dropout=0.05, max_epochs=40, lr=0.01, n_samples=20)

    hetero = MCDropoutRegressor(**settings, likelihood="heteroscedastic", random_state=0)
    alea = hetero.fit(X, y).predict_uncertainty(test).aleatoric_var
    assert alea[2:].min() > 5 * alea[:2].max()
    assert 0.25 / 4 < alea[2:].mean() < 0.25 * 4  # true noise variance 0.25
    assert 0.0025 / 4 < alea[:2].mean() < 0.0025 * 8  # true noise variance 0.0025

    homo = MCDropoutRegressor(**settings, likelihood="homoscedastic", random_state=0)
    u = homo.fit(X, y).predict_uncertainty(test)
    assert_allclose(u.aleatoric_var, u.aleatoric_var[0], rtol=1e-12)
    _, variances = homo.sample_predictions(test)
    assert_allclose(variances, variances[0, 0], rtol=1e-12)
    # One noise level for all: near the average noise variance (0.25 + 0.0025) / 2.
    assert 0.06 < u.aleatoric_var[0] < 0.3


# -------------------------------------------------------------- batching
@pytest.mark.parametrize("fixture", ["fitted_clf", "fitted_reg", "fitted_hetero"])
@pytest.mark.parametrize("predict_batch_size", [7, 200])  # 1 row / 10 rows per pass
def test_batching_does_not_change_predictions(fixture, predict_batch_size, request):
    est = request.getfixturevalue(fixture)
    X = request.getfixturevalue("clf_data" if fixture == "fitted_clf" else "reg_data")[0][:45]
    small = copy.deepcopy(est).set_params(predict_batch_size=predict_batch_size)
    u_default, u_small = est.predict_uncertainty(X), small.predict_uncertainty(X)
    for a, b in zip(vars(u_default).values(), vars(u_small).values()):
        assert_allclose(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("fixture", ["fitted_clf", "fitted_reg"])
def test_rows_are_predicted_independently(fixture, request):
    est = request.getfixturevalue(fixture)
    X = request.getfixturevalue("clf_data" if fixture == "fitted_clf" else "reg_data")[0]
    method = est.predict_proba if fixture == "fitted_clf" else est.predict
    full = method(X)
    assert_allclose(method(X[:5]), full[:5], rtol=1e-6, atol=1e-9)
    assert_allclose(method(X[7:8]), full[7:8], rtol=1e-6, atol=1e-9)
    perm = np.random.RandomState(1).permutation(len(X))
    assert_allclose(method(X[perm]), full[perm], rtol=1e-6, atol=1e-9)


def test_prediction_does_not_change_the_network(fitted_clf, clf_data):
    before = module_state(fitted_clf.net_.module_)
    fitted_clf.sample_predictions(clf_data[0])
    fitted_clf.predict_proba(clf_data[0])
    assert state_dict_equal(before, module_state(fitted_clf.net_.module_))
    assert not fitted_clf.net_.module_.training
    assert not any(m.training for m in fitted_clf.net_.module_.modules())


# ----------------------------------------------------------- user modules
class BatchNormNet(nn.Module):
    """A user network with batch norm and dropout; skbdl fills in the two sizes."""

    def __init__(self, n_features_in, n_outputs, hidden=16, p=0.2):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_features_in, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(p),
            nn.Linear(hidden, n_outputs),
        )

    def forward(self, x):
        return self.layers(x)


class NoDropoutNet(nn.Module):
    def __init__(self, n_features_in, n_outputs):
        super().__init__()
        self.linear = nn.Linear(n_features_in, n_outputs)

    def forward(self, x):
        return self.linear(x)


class WrongWidthNet(nn.Module):
    def __init__(self, n_features_in):
        super().__init__()
        self.linear = nn.Linear(n_features_in, 5)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x):
        return self.linear(self.dropout(x))


@pytest.fixture(scope="module")
def fitted_bn_clf(clf_data):
    return MCDropoutClassifier(
        module=BatchNormNet, module__hidden=12, max_epochs=15, lr=0.01, n_samples=10, random_state=0
    ).fit(*clf_data)


def test_user_module_sizes_filled_in(fitted_bn_clf, clf_data, reg_data):
    module = fitted_bn_clf.module_
    assert isinstance(module, BatchNormNet)
    assert module.layers[0].in_features == clf_data[0].shape[1]
    assert module.layers[0].out_features == 12
    assert module.layers[-1].out_features == 3
    assert fitted_bn_clf.get_params()["module__hidden"] == 12

    reg = MCDropoutRegressor(
        module=BatchNormNet, likelihood="heteroscedastic", max_epochs=3, n_samples=5, random_state=0
    ).fit(*reg_data)
    assert reg.module_.layers[-1].out_features == 2  # a mean and a variance
    assert reg.module_.layers[0].out_features == 16  # the module's own default


def test_batch_norm_stays_in_eval_mode_at_prediction(fitted_bn_clf, clf_data):
    X = clf_data[0]
    bn = fitted_bn_clf.module_.layers[1]
    stats = [bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()]
    full = fitted_bn_clf.predict_proba(X)
    fitted_bn_clf.sample_predictions(X[:10])
    fitted_bn_clf.predict_uncertainty(2 * X)
    assert torch.equal(bn.running_mean, stats[0])
    assert torch.equal(bn.running_var, stats[1])
    assert torch.equal(bn.num_batches_tracked, stats[2])
    assert not bn.training
    # Batch statistics are not used: a row's prediction does not depend on the others
    # (in train mode a single row could not even pass through BatchNorm1d).
    assert_allclose(fitted_bn_clf.predict_proba(X[:1]), full[:1], rtol=1e-6, atol=1e-9)
    assert_allclose(fitted_bn_clf.predict_proba(X[:5]), full[:5], rtol=1e-6, atol=1e-9)
    assert_allclose(fitted_bn_clf.predict_proba(X[::-1]), full[::-1], rtol=1e-6, atol=1e-9)
    # ... while MC dropout is still on.
    assert fitted_bn_clf.predict_uncertainty(X).epistemic.max() > 0


def test_user_module_instance_is_copied(clf_data):
    instance = BatchNormNet(4, 3, hidden=8)
    before = module_state(instance)
    clf = MCDropoutClassifier(module=instance, max_epochs=3, n_samples=5, random_state=0)
    clf.fit(*clf_data)
    assert clf.module is instance
    assert clf.module_ is not instance
    assert state_dict_equal(before, module_state(instance))
    assert not state_dict_equal(before, module_state(clf.module_))


def test_module_kwargs_with_an_instance_raise(clf_data):
    clf = MCDropoutClassifier(module=BatchNormNet(4, 3), module__hidden=8, max_epochs=2)
    with pytest.raises(ValueError, match="module__"):
        clf.fit(*clf_data)


@pytest.mark.parametrize("module", [NoDropoutNet, NoDropoutNet(4, 3)])
def test_module_without_dropout_raises(clf_data, module):
    clf = MCDropoutClassifier(module=module, max_epochs=2)
    with pytest.raises(ValueError, match="no dropout layer"):
        clf.fit(*clf_data)
    assert not hasattr(clf, "net_")


def test_module_with_wrong_output_width_raises(clf_data):
    clf = MCDropoutClassifier(module=WrongWidthNet, max_epochs=2)
    with pytest.raises(ValueError, match=r"shape \(n_rows, 3\)"):
        clf.fit(*clf_data)


def test_module_params_set_params_and_grid_search(clf_data):
    X, y = clf_data
    clf = MCDropoutClassifier(module=BatchNormNet, max_epochs=5, lr=0.01, n_samples=5)
    clf.set_params(module__hidden=6, module__p=0.3, random_state=0)
    params = clf.get_params()
    assert params["module__hidden"] == 6 and params["module__p"] == 0.3
    clf.fit(X, y)
    assert clf.module_.layers[0].out_features == 6
    assert clf.module_.layers[3].p == 0.3

    search = GridSearchCV(clf, {"module__hidden": [3, 24]}, cv=2).fit(X, y)
    widths = [p["module__hidden"] for p in search.cv_results_["params"]]
    assert widths == [3, 24]
    scores = search.cv_results_["mean_test_score"]
    assert scores[0] != scores[1]  # the parameter reached the network
    best = search.best_estimator_
    assert best.module_.layers[0].out_features == search.best_params_["module__hidden"]


# -------------------------------------------------- validation split, early stopping
def _rows_trained_on(est, epoch=0):
    return sum(batch.get("train_batch_size", 0) for batch in est.history_[epoch]["batches"])


def test_no_hidden_validation_split_by_default(fitted_clf, fitted_reg, clf_data, reg_data):
    for est, (X, _) in ((fitted_clf, clf_data), (fitted_reg, reg_data)):
        assert "valid_loss" not in est.history_[-1]
        assert _rows_trained_on(est) == len(X)


@pytest.fixture(scope="module")
def noise_data():
    rng = np.random.RandomState(0)
    return rng.uniform(-1, 1, size=(100, 3)), rng.randint(0, 2, size=100)


def test_early_stopping_holds_out_and_stops(noise_data):
    X, y = noise_data
    patience = 3
    clf = MCDropoutClassifier(
        **{**FAST, "max_epochs": 200},
        early_stopping=True,
        n_iter_no_change=patience,
        random_state=0,
    ).fit(X, y)
    assert "valid_loss" in clf.history_[-1]
    assert 0.8 * len(X) <= _rows_trained_on(clf) < len(X)
    assert clf.n_iter_ < 200
    valid_loss = np.array(clf.history_[:, "valid_loss"])
    # The last `patience` epochs did not improve on the best before them.
    assert valid_loss[-patience:].min() >= valid_loss[:-patience].min() * (1 - 1e-3)

    full = MCDropoutClassifier(**{**FAST, "max_epochs": 25}, random_state=0).fit(X, y)
    assert full.n_iter_ == 25


def test_early_stopping_restores_the_best_weights(reg_data):
    class RecordWeights(Callback):
        def initialize(self):
            self.states = []
            return self

        def on_epoch_end(self, net, **kwargs):
            self.states.append(module_state(net.module_))

    X, y = reg_data
    reg = MCDropoutRegressor(
        **{**FAST, "max_epochs": 300, "lr": 0.05},
        early_stopping=True,
        n_iter_no_change=2,
        callbacks=[("record", RecordWeights())],
        random_state=0,
    ).fit(X, y)
    recorder = dict(reg.net_.callbacks_)["record"]
    best = int(np.flatnonzero(reg.history_[:, "valid_loss_best"])[-1])
    assert best < reg.n_iter_ - 1
    assert state_dict_equal(module_state(reg.net_.module_), recorder.states[best])


# ------------------------------------------------------------------ divergence
DIVERGING = [
    pytest.param(dict(optimizer="sgd", lr=1e6), 1.0, id="sgd-lr-1e6"),
    pytest.param(dict(optimizer="sgd", lr=1.0), 1e30, id="inputs-1e30"),
]


@pytest.mark.parametrize("settings, x_scale", DIVERGING)
@pytest.mark.parametrize("fixture", ["fitted_clf", "fitted_reg"])
def test_divergence_raises_and_keeps_the_previous_fit(fixture, settings, x_scale, request):
    est = copy.deepcopy(request.getfixturevalue(fixture))
    X, y = request.getfixturevalue("clf_data" if fixture == "fitted_clf" else "reg_data")
    X_bad = x_scale * (X - X.mean(axis=0)) / X.std(axis=0)
    before_pred = est.predict(X)
    before = dict(vars(est))
    weights = module_state(est.net_.module_)

    est.set_params(**settings)
    with pytest.raises(DivergenceError, match="diverged"):
        est.fit(X_bad, y)
    assert isinstance(DivergenceError("x"), RuntimeError)

    fitted = {k: v for k, v in before.items() if k.endswith("_") or k.startswith("_")}
    for key, value in fitted.items():
        assert vars(est)[key] is value, key
    assert set(vars(est)) == set(before)
    assert state_dict_equal(weights, module_state(est.net_.module_))
    assert_array_equal(est.predict(X), before_pred)


def test_divergence_on_a_fresh_estimator_leaves_it_unfitted(reg_data):
    X, y = reg_data
    reg = MCDropoutRegressor(**{**FAST, "lr": 1e6}, optimizer="sgd", random_state=0)
    with pytest.raises(DivergenceError):
        reg.fit(X, y)
    with pytest.raises(NotFittedError):
        reg.predict(X)
    assert not [k for k in vars(reg) if k.endswith("_")]


def test_runaway_fit_with_a_finite_loss_is_reported():
    # SGD at lr=1e6 on inputs in the thousands: the last epoch's loss can stay finite
    # while the weights and the predicted variances overflow.  The fit must say so
    # rather than leave a model that predicts infinite standard deviations.
    rng = np.random.RandomState(0)
    X = rng.uniform(-1000, 1000, size=(100, 3))
    reg = MCDropoutRegressor(optimizer="sgd", lr=1e6, max_epochs=5, random_state=0)
    with pytest.raises(DivergenceError, match="diverged"):
        reg.fit(X, X.sum(axis=1))


# ------------------------------------------------------- verbosity, callbacks
def test_verbose_0_is_silent(reg_data, capfd):
    MCDropoutRegressor(**{**FAST, "max_epochs": 3}, random_state=0).fit(*reg_data)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_verbose_1_shows_a_progress_bar(reg_data, capfd):
    reg = MCDropoutRegressor(**{**FAST, "max_epochs": 3}, verbose=1, random_state=0)
    reg.fit(*reg_data)
    out, err = capfd.readouterr()
    assert "MCDropoutRegressor" in err
    assert "3/3" in err or "it/s" in err or "s/it" in err
    assert "train_loss" not in out
    reg.predict(reg_data[0])  # the fitted model is still usable and picklable
    copy.deepcopy(reg)


def test_verbose_auto_shows_a_bar_only_for_long_fits(reg_data, capfd, monkeypatch):
    import functools

    import tqdm.auto

    import skbdl._training

    # The default: a 3-epoch fit takes far less than AUTO_PROGRESS_SECONDS: silent.
    MCDropoutRegressor(**{**FAST, "max_epochs": 3}, random_state=0).fit(*reg_data)
    assert capfd.readouterr() == ("", "")
    # A fit expected to take longer shows the bar, with the loss named (redrawn at
    # every epoch here: these epochs are shorter than tqdm's refresh interval).
    monkeypatch.setattr(skbdl._training, "AUTO_PROGRESS_SECONDS", 0.0)
    monkeypatch.setattr("tqdm.auto.tqdm", functools.partial(tqdm.auto.tqdm, mininterval=0))
    MCDropoutRegressor(**{**FAST, "max_epochs": 3}, random_state=0).fit(*reg_data)
    err = capfd.readouterr().err
    assert "MCDropoutRegressor" in err and "nll=" in err
    MCDropoutClassifier(**{**FAST, "max_epochs": 3}, random_state=0).fit(
        reg_data[0], reg_data[1] > 0
    )
    assert "log_loss=" in capfd.readouterr().err
    MCDropoutRegressor(**{**FAST, "max_epochs": 3}, verbose=0, random_state=0).fit(*reg_data)
    assert capfd.readouterr() == ("", "")


def test_verbose_2_prints_skorch_table(clf_data, capfd):
    MCDropoutClassifier(**{**FAST, "max_epochs": 2}, verbose=2, random_state=0).fit(*clf_data)
    out, _ = capfd.readouterr()
    assert "train_loss" in out and "epoch" in out


def test_callbacks_are_used_and_not_mutated(reg_data):
    X, y = reg_data
    scheduler = LRScheduler(policy="StepLR", step_size=1, gamma=0.5)
    reg = MCDropoutRegressor(
        **{**FAST, "max_epochs": 4}, callbacks=[scheduler], random_state=0
    ).fit(X, y)
    assert_allclose(reg.history_[:, "event_lr"], [0.01, 0.005, 0.0025, 0.00125])
    assert_allclose(reg.net_.optimizer_.param_groups[0]["lr"], 0.01 * 0.5**4)
    assert not hasattr(scheduler, "lr_scheduler_")  # the parameter itself is not fitted
    assert reg.callbacks == [scheduler]

    plain = MCDropoutRegressor(**{**FAST, "max_epochs": 4}, random_state=0).fit(X, y)
    assert plain.loss_curve_[0] == reg.loss_curve_[0]  # same start
    assert plain.loss_curve_[1:] != reg.loss_curve_[1:]  # different learning rates


def test_named_callback_is_reachable(clf_data):
    class CountEpochs(Callback):
        def initialize(self):
            self.count = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.count += 1

    clf = MCDropoutClassifier(
        **{**FAST, "max_epochs": 3}, callbacks=[("count", CountEpochs())], random_state=0
    ).fit(*clf_data)
    assert dict(clf.net_.callbacks_)["count"].count == 3


# ------------------------------------------------ other dropout layers, the view
@pytest.mark.parametrize("p", [0.1, 0.3])
def test_alpha_dropout_masks_keep_torchs_alpha_dropout_distribution(p):
    from skbdl.mc_dropout import mc_dropout_view

    x = torch.randn(1, 20_000, dtype=torch.float64)  # one row: the mask is per sample
    view = mc_dropout_view(nn.Sequential(nn.AlphaDropout(p)).eval(), 50, seed=0, device="cpu")
    out = view(x.repeat(50, 1))
    reference = F.alpha_dropout(x.repeat(50, 1), p, training=True)
    # Each unit is either kept (an affine map of x) or set to the saturation value...
    alpha = 1.7580993408473766
    a = 1.0 / math.sqrt((alpha**2 * p + 1) * (1 - p))
    kept = torch.isclose(out, a * x + alpha * a * p)
    dropped = torch.isclose(out, torch.full_like(out, -alpha * a * (1 - p)))
    assert bool((kept | dropped).all())
    assert abs(dropped.double().mean().item() - p) < 0.01
    # ... and a standard normal input keeps mean 0 and variance 1, as torch's does.
    for values in (out, reference):
        assert abs(values.mean().item()) < 0.02
        assert abs(values.var().item() - 1.0) < 0.03


class SeluNet(nn.Module):
    def __init__(self, n_features_in, n_outputs):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_features_in, 16),
            nn.SELU(),
            nn.AlphaDropout(0.2),
            nn.Linear(16, 16),
            nn.SELU(),
            nn.FeatureAlphaDropout(0.2),
            nn.Linear(16, n_outputs),
        )

    def forward(self, x):
        return self.layers(x)


def test_alpha_dropout_network_predictions_do_not_depend_on_the_batch(clf_data):
    X, y = clf_data
    clf = MCDropoutClassifier(module=SeluNet, **MODULE_FAST, random_state=0).fit(X, y)
    full = clf.predict_uncertainty(X)
    assert full.epistemic.max() > 0
    assert_allclose(clf.predict_proba(X[5:9]), full.proba[5:9], rtol=1e-6, atol=1e-9)
    small = copy.deepcopy(clf).set_params(predict_batch_size=7)
    assert_allclose(small.predict_uncertainty(X).total, full.total, rtol=1e-6, atol=1e-9)


def test_unknown_dropout_layers_run_on_the_seeded_global_generator(reg_data):
    class OwnDropout(nn.modules.dropout._DropoutNd):
        def forward(self, x):
            return F.dropout(x, self.p, self.training)

    class Net(nn.Module):
        def __init__(self, n_features_in, n_outputs):
            super().__init__()
            self.hidden, self.drop = nn.Linear(n_features_in, 16), OwnDropout(0.3)
            self.out = nn.Linear(16, n_outputs)

        def forward(self, x):
            return self.out(self.drop(torch.relu(self.hidden(x))))

    X, y = reg_data
    reg = MCDropoutRegressor(module=Net, **MODULE_FAST, random_state=0).fit(X, y)
    torch_state = torch.get_rng_state()
    u = reg.predict_uncertainty(X)
    assert torch.equal(torch.get_rng_state(), torch_state)  # forked, then restored
    assert (u.epistemic_var > 0).all()
    assert_array_equal(reg.predict_uncertainty(X).epistemic_var, u.epistemic_var)
    assert not reg.module_.drop.training  # a copy ran in train mode, not the layer
