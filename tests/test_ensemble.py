"""Deep ensembles: members, strategies, the stacked fast path and a Dask cluster."""

import os
import pickle
import tempfile

import numpy as np
import pytest
import torch
from joblib import parallel_config, register_parallel_backend
from joblib.parallel import BACKENDS
from sklearn.model_selection import GridSearchCV
from sklearn.utils import check_random_state
from skorch.callbacks import Callback
from test_fast_path import ACTIVATIONS, row_weights
from torch import nn

from skbdl import DeepEnsembleClassifier, DeepEnsembleRegressor
from skbdl._base import _seed_from
from skbdl._net import weighted_loss
from skbdl.ensemble import _member_seeds
from skbdl.nn import (
    MLP,
    EnsembleCrossEntropyLoss,
    EnsembleGaussianNLLLoss,
    GaussianNLLLoss,
    GaussianRegressionModule,
    LoopEnsemble,
    StackedGaussianRegressionModule,
    StackedMLP,
    VmapEnsemble,
)
from skbdl.nn._fast import make_fast_step

FAST = dict(hidden_layer_sizes=(8,), max_epochs=6, lr=0.01, batch_size=16)
#: FAST for a user module (the default network's width does not apply to it).
MODULE_FAST = {k: v for k, v in FAST.items() if k != "hidden_layer_sizes"}


def regression_data(n=60, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-1, 1, size=(n, 3))
    y = np.sin(2 * X[:, 0]) + X[:, 1] + 0.1 * rng.randn(n)
    return X, y


def classification_data(n=60, seed=0):
    X, y = regression_data(n, seed)
    return X, np.where(y > 0.3, "high", np.where(y < -0.3, "low", "mid"))


class SmallNet(nn.Module):
    """A user module that torch.func.vmap can batch."""

    def __init__(self, n_features_in, n_outputs, hidden=8):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_features_in, hidden), nn.Tanh(), nn.Linear(hidden, n_outputs)
        )

    def forward(self, x):
        return self.layers(x)


class BatchNormNet(nn.Module):
    """Batch norm: vmap batches the running statistics per member."""

    def __init__(self, n_features_in, n_outputs):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_features_in, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, n_outputs)
        )

    def forward(self, x):
        return self.layers(x)


class ControlFlowNet(SmallNet):
    """A user module that vmap cannot batch (Python control flow on tensor values)."""

    def forward(self, x):
        if x.abs().max() > 1e6:
            x = x / 1e6
        return self.layers(x)


def _outputs(est, X):
    if isinstance(est, DeepEnsembleClassifier):
        return (est.sample_predictions(X),)
    return est.sample_predictions(X)


# ------------------------------------------------------------- one member, by hand
def _reference_member(X, y, seeds, classification, hidden, epochs, batch_size, lr):
    """One network trained by a plain torch loop: the obviously correct reference."""
    init_seed, data_seed = seeds
    X = torch.tensor(X, dtype=torch.float32)
    torch.manual_seed(init_seed)
    if classification:
        body = MLP(X.shape[1], int(y.max()) + 1, hidden)
        module, criterion, y = body, nn.CrossEntropyLoss(), torch.as_tensor(y)
    else:
        body = MLP(X.shape[1], 2, hidden)
        module = GaussianRegressionModule(body, 1, "heteroscedastic")
        criterion, y = GaussianNLLLoss(), torch.tensor(y[:, None], dtype=torch.float32)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(data_seed)
    for _ in range(epochs):
        for rows in torch.randperm(len(X), generator=generator).split(batch_size):
            optimizer.zero_grad()
            criterion(module(X[rows]), y[rows]).backward()
            optimizer.step()
    return module.eval()


@pytest.mark.parametrize("classification", [False, True])
def test_ensemble_of_one_equals_a_single_network(classification):
    X, y = classification_data() if classification else regression_data()
    cls = DeepEnsembleClassifier if classification else DeepEnsembleRegressor
    est = cls(n_estimators=1, random_state=3, **FAST).fit(X, y)
    seeds = _member_seeds(_seed_from(check_random_state(3)), 1)[0]
    if classification:
        y_train = np.unique(y, return_inverse=True)[1]
    else:
        y_train = (y - y.mean()) / y.std()
    reference = _reference_member(
        X, y_train, seeds, classification, (8,), FAST["max_epochs"], 16, FAST["lr"]
    )
    member = est.members_[0]
    for got, want in zip(member.parameters(), reference.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        out = reference(torch.tensor(X, dtype=torch.float32))
    if classification:
        np.testing.assert_allclose(
            est.predict_proba(X), torch.softmax(out, 1).numpy(), rtol=1e-4, atol=1e-5
        )
    else:
        mean, std = est.predict(X, return_std=True)
        np.testing.assert_allclose(mean, out[0][:, 0] * y.std() + y.mean(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(std, out[1][:, 0].sqrt() * y.std(), rtol=1e-4, atol=1e-4)


def test_first_members_do_not_depend_on_ensemble_size():
    X, y = regression_data()
    big = DeepEnsembleRegressor(n_estimators=4, random_state=0, **FAST).fit(X, y)
    small = DeepEnsembleRegressor(n_estimators=2, random_state=0, **FAST).fit(X, y)
    np.testing.assert_allclose(
        big.sample_predictions(X)[0][:2], small.sample_predictions(X)[0], rtol=1e-5, atol=1e-6
    )


# ------------------------------------------------------------------- strategies
STRATEGY_CASES = {
    "classifier": (DeepEnsembleClassifier, {}),
    "heteroscedastic": (DeepEnsembleRegressor, {}),
    "homoscedastic": (DeepEnsembleRegressor, dict(likelihood="homoscedastic")),
    "bootstrap": (DeepEnsembleRegressor, dict(bootstrap=True)),
    "adversarial": (DeepEnsembleClassifier, dict(adversarial_epsilon=0.02)),
    "vmap-module": (DeepEnsembleRegressor, dict(module=SmallNet, module__hidden=6)),
    "vmap-classifier": (DeepEnsembleClassifier, dict(module=SmallNet)),
    "vmap-batch-norm": (DeepEnsembleRegressor, dict(module=BatchNormNet)),
}


@pytest.mark.parametrize("case", list(STRATEGY_CASES))
def test_vectorized_and_joblib_strategies_agree(case):
    cls, params = STRATEGY_CASES[case]
    X, y = classification_data() if cls is DeepEnsembleClassifier else regression_data()
    base = MODULE_FAST if "module" in params else FAST
    common = dict(base, n_estimators=3, random_state=0, **params)
    vectorized = cls(strategy="vectorized", **common).fit(X, y)
    joblib_fit = cls(strategy="joblib", **common).fit(X, y)
    assert (vectorized.strategy_, joblib_fit.strategy_) == ("vectorized", "joblib")
    for a, b in zip(_outputs(vectorized, X), _outputs(joblib_fit, X)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(vectorized.loss_curve_, joblib_fit.loss_curve_, rtol=1e-4)


def test_joblib_threads_give_the_sequential_result():
    X, y = regression_data()
    common = dict(FAST, n_estimators=3, random_state=0)
    sequential = DeepEnsembleRegressor(strategy="joblib", **common).fit(X, y)
    with parallel_config(backend="threading"):
        threaded = DeepEnsembleRegressor(strategy="joblib", n_jobs=2, **common).fit(X, y)
    assert threaded.strategy_ == "joblib"
    np.testing.assert_allclose(threaded.predict(X), sequential.predict(X), rtol=1e-5)


def test_auto_strategy_rule():
    X, y = regression_data(n=20)
    fit = dict(MODULE_FAST, n_estimators=2, max_epochs=1, random_state=0)
    assert DeepEnsembleRegressor(**fit).fit(X, y).strategy_ == "vectorized"
    assert DeepEnsembleRegressor(module=SmallNet, **fit).fit(X, y).strategy_ == "vectorized"
    assert DeepEnsembleRegressor(module=BatchNormNet, **fit).fit(X, y).strategy_ == "vectorized"
    looped = DeepEnsembleRegressor(module=ControlFlowNet, **fit).fit(X, y)
    assert looped.strategy_ == "joblib" and isinstance(looped.module_, LoopEnsemble)
    with pytest.raises(ValueError, match="vmap"):
        DeepEnsembleRegressor(module=ControlFlowNet, strategy="vectorized", **fit).fit(X, y)


class _ClusterBackend(BACKENDS["threading"]):
    """Stands for a cluster backend (Dask, Ray): any backend joblib does not ship."""


register_parallel_backend("skbdl-test-cluster", _ClusterBackend)


@pytest.mark.parametrize("n_jobs", [None, 1, 2, -1])
@pytest.mark.parametrize(
    "config",
    [{}, {"n_jobs": 2}, {"backend": "threading", "n_jobs": 2}, {"backend": "loky"}],
    ids=["default", "config-n_jobs", "threading", "loky"],
)
def test_n_jobs_and_local_backends_never_switch_strategy(n_jobs, config):
    # The n_jobs trap (issue 12): n_jobs=-1 by habit must not trade the stacked model
    # for joblib workers, many times slower on one machine.
    est = DeepEnsembleRegressor(n_jobs=n_jobs, **FAST)
    with parallel_config(**config):
        assert est._strategy("stacked") == "vectorized"
        assert est._strategy("vmap") == "vectorized"
        assert est._strategy("loop") == "joblib"  # not vmappable: members one by one


def test_cluster_backend_or_explicit_strategy_selects_joblib():
    X, y = regression_data(n=20)
    fit = dict(FAST, n_estimators=2, max_epochs=1, random_state=0)
    with parallel_config(backend="skbdl-test-cluster", n_jobs=2):
        clustered = DeepEnsembleRegressor(**fit).fit(X, y)
        assert DeepEnsembleRegressor(strategy="vectorized")._strategy("stacked") == "vectorized"
    assert clustered.strategy_ == "joblib"
    assert DeepEnsembleRegressor(strategy="joblib", n_jobs=2)._strategy("stacked") == "joblib"
    assert DeepEnsembleRegressor(n_jobs=2, **fit).fit(X, y).strategy_ == "vectorized"


# --------------------------------------------------------------------- members
@pytest.mark.parametrize("module", [None, SmallNet, SmallNet(3, 2)])
def test_members_differ(module):
    X, y = regression_data()
    est = DeepEnsembleRegressor(module=module, n_estimators=3, random_state=0, **MODULE_FAST)
    est.fit(X, y)
    members = est.members_
    assert len(members) == est.n_estimators_ == 3
    first = [torch.cat([p.flatten() for p in m.parameters()]) for m in members]
    for i in range(3):
        for j in range(i):
            assert not torch.allclose(first[i], first[j])
    means, _ = est.sample_predictions(X)
    assert means.shape == (3, len(X))
    assert np.all(np.ptp(means, axis=0) > 0)


def test_members_predict_like_the_ensemble():
    X, y = regression_data()
    est = DeepEnsembleRegressor(n_estimators=3, random_state=0, **FAST).fit(X, y)
    means, variances = est.sample_predictions(X)
    X_tensor = torch.tensor(X, dtype=torch.float32)
    for m, member in enumerate(est.members_):
        with torch.no_grad():
            out = member.eval()(X_tensor)
        mean = out[:, 0].numpy() * est.y_scale_[0] + est.y_mean_[0]
        var = (torch.nn.functional.softplus(out[:, 1]) + 1e-6).numpy() * est.y_scale_[0] ** 2
        np.testing.assert_allclose(means[m], mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(variances[m], var, rtol=1e-4, atol=1e-6)


def test_regression_decomposition_identities():
    X, y = regression_data()
    est = DeepEnsembleRegressor(n_estimators=4, random_state=0, **FAST).fit(X, y)
    means, variances = est.sample_predictions(X)
    u = est.predict_uncertainty(X)
    np.testing.assert_allclose(u.mean, means.mean(axis=0))
    np.testing.assert_allclose(u.aleatoric_var, variances.mean(axis=0))
    np.testing.assert_allclose(u.epistemic_var, means.var(axis=0))
    np.testing.assert_allclose(u.total_var, u.aleatoric_var + u.epistemic_var)
    mean, std = est.predict(X, return_std=True)
    np.testing.assert_allclose(mean, u.mean)
    np.testing.assert_allclose(std**2, u.total_var)
    # The mixture's variance: E[sigma^2 + mu^2] - (E mu)^2.
    np.testing.assert_allclose(
        u.total_var, (variances + means**2).mean(axis=0) - u.mean**2, rtol=1e-6, atol=1e-9
    )


def test_classification_decomposition_identities():
    X, y = classification_data()
    est = DeepEnsembleClassifier(n_estimators=4, random_state=0, **FAST).fit(X, y)
    proba_samples = est.sample_predictions(X)
    assert proba_samples.shape == (4, len(X), 3)
    u = est.predict_uncertainty(X)
    np.testing.assert_allclose(u.proba, proba_samples.mean(axis=0))
    np.testing.assert_allclose(est.predict_proba(X), u.proba)

    def entropy(p):
        return -(p * np.log(p)).sum(-1)

    np.testing.assert_allclose(u.total, entropy(u.proba), rtol=1e-6)
    np.testing.assert_allclose(u.aleatoric, entropy(proba_samples).mean(0), rtol=1e-6)
    np.testing.assert_allclose(u.epistemic, u.total - u.aleatoric, atol=1e-12)
    assert np.all(u.epistemic >= 0) and np.any(u.epistemic > 0)
    assert set(est.predict(X)) <= {"high", "low", "mid"}


def test_n_samples_is_the_number_of_members():
    X, y = regression_data()
    est = DeepEnsembleRegressor(n_estimators=3, random_state=0, **FAST).fit(X, y)
    assert est.sample_predictions(X, n_samples=3)[0].shape == (3, len(X))
    with pytest.raises(ValueError, match="members"):
        est.predict_uncertainty(X, n_samples=10)


def test_epistemic_uncertainty_grows_away_from_the_data():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(100, 1))
    y = np.sin(3 * X[:, 0]) + 0.05 * rng.randn(100)
    est = DeepEnsembleRegressor(
        n_estimators=5, hidden_layer_sizes=(32,), max_epochs=30, lr=0.01, random_state=0
    ).fit(X, y)
    inside = est.predict_uncertainty(np.linspace(-0.8, 0.8, 20)[:, None]).epistemic_var
    outside = est.predict_uncertainty(np.array([[-4.0], [4.0]])).epistemic_var
    assert outside.min() > 10 * inside.mean()


def test_options_change_the_fit():
    X, y = regression_data()
    base = DeepEnsembleRegressor(n_estimators=2, random_state=0, **FAST).fit(X, y)
    for option in (dict(bootstrap=True), dict(adversarial_epsilon=0.05)):
        other = DeepEnsembleRegressor(n_estimators=2, random_state=0, **FAST, **option).fit(X, y)
        assert not np.allclose(base.predict(X), other.predict(X))
        assert np.all(np.isfinite(other.loss_curve_))


@pytest.mark.parametrize("strategy", ["vectorized", "joblib"])
def test_early_stopping(strategy):
    X, y = regression_data(n=80)
    est = DeepEnsembleRegressor(
        n_estimators=2,
        strategy=strategy,
        early_stopping=True,
        n_iter_no_change=2,
        random_state=0,
        **dict(FAST, max_epochs=200, lr=0.05),
    ).fit(X, y)
    assert est.n_iter_ < 200
    assert "valid_loss" in est.history_[-1]


@pytest.mark.parametrize("module", [SmallNet, ControlFlowNet])
def test_user_modules_pickle_and_tune(module):
    X, y = regression_data()
    est = DeepEnsembleRegressor(module=module, n_estimators=2, random_state=0, **MODULE_FAST)
    search = GridSearchCV(est, {"module__hidden": [4, 6]}, cv=2).fit(X, y)
    assert search.best_params_["module__hidden"] in (4, 6)
    fitted = search.best_estimator_
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))
    assert all(isinstance(m, module) for m in fitted.members_)


def test_multi_output_regression():
    X, y = regression_data()
    Y = np.column_stack([y, -2 * y + 10])
    est = DeepEnsembleRegressor(n_estimators=2, random_state=0, **FAST).fit(X, Y)
    means, variances = est.sample_predictions(X)
    assert means.shape == variances.shape == (2, len(X), 2)
    assert est.predict(X).shape == (len(X), 2)


# ---------------------------------------------------------------- containers
def test_containers_agree_with_their_members():
    torch.manual_seed(0)
    mlps = [MLP(3, 2, (5, 4), "tanh") for _ in range(3)]
    X = torch.randn(7, 3)
    want = torch.stack([m(X) for m in mlps])
    for container in (StackedMLP.from_mlps(mlps), VmapEnsemble(mlps), LoopEnsemble(mlps)):
        torch.testing.assert_close(container(X), want)
        torch.testing.assert_close(container(X.expand(3, 7, 3)), want)
        for got, member in zip(container.unstack(), mlps):
            torch.testing.assert_close(got(X), member(X))
        joined = type(container).concatenate([container, container])
        torch.testing.assert_close(joined(X), torch.cat([want, want]))


def _grads(module, step, X, y, criterion, weight=None):
    module.zero_grad(set_to_none=True)
    if step is None:
        if weight is None:
            loss = criterion(module(X), y)
        else:  # the loss of a sample-weighted batch on the autograd path
            loss = weighted_loss(criterion, module(X), y, weight)
        loss.backward()
    else:
        with torch.no_grad():
            loss, _ = step(X, y, weight)
    return loss.detach(), [p.grad.clone() for p in module.parameters()]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("hidden", [(), (6, 5)])
@pytest.mark.parametrize("task", ["classification", "homoscedastic", "heteroscedastic"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_stacked_fast_step_matches_autograd(activation, hidden, task, weighted):
    torch.manual_seed(0)
    n_members, n_targets = 3, 2
    X = torch.randn(n_members, 11, 4)
    if task == "classification":
        module = StackedMLP(n_members, 4, 3, hidden, activation)
        criterion, y = EnsembleCrossEntropyLoss(), torch.randint(0, 3, (n_members, 11))
    else:
        width = 2 * n_targets if task == "heteroscedastic" else n_targets
        body = StackedMLP(n_members, 4, width, hidden, activation)
        module = StackedGaussianRegressionModule(body, n_targets, task)
        if task == "homoscedastic":
            with torch.no_grad():
                module.log_noise_var.normal_()
        criterion, y = EnsembleGaussianNLLLoss(), torch.randn(n_members, 11, n_targets)
    step = make_fast_step(module, criterion)
    assert step is not None
    weight = row_weights(n_members, 11) if weighted else None  # each member its own
    ref_loss, ref_grads = _grads(module, None, X, y, criterion, weight)
    fast_loss, fast_grads = _grads(module, step, X, y, criterion, weight)
    torch.testing.assert_close(fast_loss, ref_loss, rtol=1e-5, atol=1e-6)
    for fast, ref in zip(fast_grads, ref_grads):
        torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-6)


def test_stacked_loss_gives_each_member_its_own_gradient():
    torch.manual_seed(0)
    mlps = [MLP(3, 2, (4,)) for _ in range(2)]
    X, y = torch.randn(2, 5, 3), torch.randint(0, 2, (2, 5))
    stacked = StackedMLP.from_mlps(mlps)
    EnsembleCrossEntropyLoss()(stacked(X), y).backward()
    for m, mlp in enumerate(mlps):
        nn.CrossEntropyLoss()(mlp(X[m]), y[m]).backward()
        torch.testing.assert_close(stacked.weights[0].grad[m], mlp.features[0].weight.grad.t())


@pytest.mark.gpu
@pytest.mark.parametrize("case", ["classifier", "homoscedastic", "bootstrap", "adversarial"])
@pytest.mark.parametrize("strategy", ["vectorized", "joblib"])
def test_cuda_fit_matches_cpu(case, strategy):
    cls, params = STRATEGY_CASES[case]
    X, y = classification_data() if cls is DeepEnsembleClassifier else regression_data()
    common = dict(FAST, n_estimators=3, random_state=0, **params)
    cpu = cls(strategy="vectorized", **common).fit(X, y)
    cuda = cls(strategy=strategy, device="cuda", **common).fit(X, y)
    assert next(cuda.module_.parameters()).is_cuda
    for a, b in zip(_outputs(cpu, X), _outputs(cuda, X)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------- a Dask cluster
class RecordProcess(Callback):
    """Write the id of the process that trains a member into a folder."""

    def __init__(self, folder):
        self.folder = folder

    def on_train_begin(self, net, **kwargs):
        with tempfile.NamedTemporaryFile("w", dir=self.folder, delete=False) as f:
            f.write(str(os.getpid()))


@pytest.mark.slow
def test_members_train_on_a_dask_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    X, y = regression_data()
    params = dict(FAST, n_estimators=4, random_state=0)
    local = DeepEnsembleRegressor(strategy="vectorized", **params).fit(X, y)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            worker_dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        worker_pids = set(client.run(os.getpid).values())
        recorder = RecordProcess(str(tmp_path))
        with parallel_config(backend="dask"):
            remote = DeepEnsembleRegressor(callbacks=[recorder], **params).fit(X, y)
    assert remote.strategy_ == "joblib"  # 'auto' under a Dask backend with 2 workers
    trained_in = {int(p.read_text()) for p in tmp_path.iterdir()}
    assert len(list(tmp_path.iterdir())) == 4  # one record per member
    assert trained_in <= worker_pids and os.getpid() not in trained_in
    np.testing.assert_allclose(remote.predict(X), local.predict(X), rtol=1e-4, atol=1e-5)
    _, std_local = local.predict(X, return_std=True)
    _, std_remote = remote.predict(X, return_std=True)
    np.testing.assert_allclose(std_remote, std_local, rtol=1e-4, atol=1e-5)
