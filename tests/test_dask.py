"""Deep ensembles on a Dask cluster that loses workers mid-fit (issue 12).

Slow: each test starts a LocalCluster of worker processes (run with ``pytest -m slow``).
"""

import os
import signal
import threading
import time

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback

from skbdl import DeepEnsembleRegressor

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

pytestmark = pytest.mark.slow

#: Four members of 30 slowed-down epochs: a few seconds each, time to kill workers.
PARAMS = dict(
    hidden_layer_sizes=(8,),
    max_epochs=30,
    lr=0.01,
    batch_size=16,
    n_estimators=4,
    calibrate=False,
    verbose=0,
    random_state=0,
)


def regression_data(n=60, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-1, 1, size=(n, 3))
    return X, np.sin(2 * X[:, 0]) + X[:, 1] + 0.1 * rng.randn(n)


class SlowEpochs(Callback):
    """Sleep after every epoch, so that a member trains for a few seconds, and drop a
    file in ``folder`` when a member starts (the test waits for one)."""

    def __init__(self, folder, seconds=0.1):
        self.folder = folder
        self.seconds = seconds

    def on_train_begin(self, net, **kwargs):
        with open(os.path.join(self.folder, f"{os.getpid()}-{time.time_ns()}"), "w"):
            pass

    def on_epoch_end(self, net, **kwargs):
        time.sleep(self.seconds)


def _fit_on_dask(est, X, y, outcome):
    try:
        with parallel_config(backend="dask"):  # per thread: joblib's config is thread-local
            est.fit(X, y)
        outcome.append(None)
    except Exception as error:
        outcome.append(error)


def _cluster():
    return distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    )


def _kill_when_training(folder, pids, timeout=120):
    """Kill the processes ``pids`` (SIGKILL) once a member has started training."""

    def run():
        deadline = time.monotonic() + timeout
        while not os.listdir(folder) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # mid-epoch
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_losing_one_worker_mid_fit_still_trains_every_member(tmp_path):
    X, y = regression_data()
    local = DeepEnsembleRegressor(strategy="joblib", **PARAMS).fit(X, y)
    with _cluster() as cluster, distributed.Client(cluster):
        worker_pid = next(iter(cluster.workers.values())).pid
        killer = _kill_when_training(str(tmp_path), [worker_pid])
        with parallel_config(backend="dask"):
            remote = DeepEnsembleRegressor(callbacks=[SlowEpochs(str(tmp_path))], **PARAMS)
            remote.fit(X, y)
        killer.join()
    assert remote.strategy_ == "joblib"
    assert len(os.listdir(tmp_path)) > PARAMS["n_estimators"]  # a member started over
    # The nanny restarted the killed worker, or the other one took its members.
    for before, after in zip(local.predict(X, return_std=True), remote.predict(X, return_std=True)):
        np.testing.assert_array_equal(after, before)


def test_losing_every_worker_fails_within_the_no_workers_timeout(tmp_path):
    X, y = regression_data()
    timeout = 3.0
    cluster = _cluster()
    client = distributed.Client(cluster)
    try:
        # Every worker process dies, and its nanny (in this process) does not restart
        # it: as when the machines of a cluster go away.
        for nanny in cluster.workers.values():
            nanny.close_gracefully(reason="test: lose every worker")
        pids = [nanny.pid for nanny in cluster.workers.values()]
        est = DeepEnsembleRegressor(callbacks=[SlowEpochs(str(tmp_path))], **PARAMS)
        killer = _kill_when_training(str(tmp_path), pids)
        with dask.config.set({"distributed.scheduler.no-workers-timeout": f"{timeout}s"}):
            start = time.monotonic()
            outcome = []
            # In a thread, so that a hang fails the test instead of stalling the suite.
            fit = threading.Thread(target=_fit_on_dask, args=(est, X, y, outcome))
            fit.daemon = True
            fit.start()
            fit.join(timeout + 90)
            elapsed = time.monotonic() - start
        killer.join()
        assert not fit.is_alive(), f"the fit still runs {elapsed:.0f} s after it started"
    finally:
        client.close(timeout=10)
        cluster.close(timeout=10)
    (error,) = outcome
    assert isinstance(error, RuntimeError), error
    assert "lost every worker of the Dask cluster" in str(error)
    assert "no-workers-timeout" in str(error)
    assert not hasattr(est, "net_")  # a failed fit leaves the estimator unfitted


def test_a_search_over_ensembles_on_the_cluster_does_not_deadlock():
    # Each candidate fit runs in a worker's only thread and submits its members to the
    # same cluster: waiting fits must give their threads back (or all would wait).
    X, y = regression_data()
    params = dict(PARAMS, max_epochs=5, n_estimators=2)
    search = GridSearchCV(DeepEnsembleRegressor(**params), {"lr": [0.01, 0.02]}, cv=2)
    local = GridSearchCV(
        DeepEnsembleRegressor(strategy="joblib", **params), search.param_grid, cv=2
    )
    local.fit(X, y)
    outcome = []
    with _cluster() as cluster, distributed.Client(cluster):

        def run():
            with parallel_config(backend="dask"):
                search.fit(X, y)
            outcome.append(search)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(240)
        assert not thread.is_alive(), "the search is still running after 240 s"
    assert outcome and search.best_estimator_.strategy_ == "joblib"
    np.testing.assert_array_equal(
        search.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
