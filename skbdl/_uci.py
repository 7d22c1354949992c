"""``python -m skbdl benchmark uci``: the UCI regression benchmark of the literature.

The protocol (Hernández-Lobato & Adams 2015; Gal & Ghahramani 2016; Lakshminarayanan
et al. 2017), for every data set folder, method and split:

1. load the split's training and test rows (:func:`skbdl.datasets.load_uci_split`);
2. standardise the inputs with the training rows' statistics (a ``StandardScaler``
   in a pipeline; skbdl's regressors standardise the target themselves and report
   in the original units);
3. fit on the training rows only: with the method's *default* settings
   (``--protocol default``, no tuning) or after a per-split grid search on the
   training rows (``--protocol tuned``: ``GridSearchCV``, K-fold on the training
   rows, scored by the negative NLL on the validation folds, ``refit=True``); the
   test rows are never seen while choosing;
4. evaluate on the test rows, in the target's original units: RMSE of the predictive
   mean; test log-likelihood (LL) of the predictive distribution, which for a
   sampling method is the equal-weight mixture of its samples' Gaussians
   (:func:`skbdl.metrics.gaussian_mixture_nll`; for MC dropout this is Gal's
   formula); the LL of the single Gaussian with the mixture's mean and variance
   (``ll_gaussian``, PBP's and the deep ensembles paper's summary) is recorded too,
   and so is the test coverage of that Gaussian's central 90% interval
   (``coverage90``: the fraction of test targets within mean ± 1.645 std, the
   interval of ``predict_interval(method='gaussian')``);
5. aggregate over splits: mean ± standard error, the standard error being the
   population standard deviation over the successful splits / sqrt(their number).
   A split that fails is reported (CSV ``status``, the tables' ``k/n`` marks, a list
   on stderr, exit status 1), never silently dropped.  A split with more training
   rows than its method's ``max_train_rows`` is skipped instead (CSV ``status``
   ``skipped: ...``, listed under "Skipped splits"; not a failure).

Methods join by registration (:func:`register_method`) with a :class:`MethodSpec`;
the harness itself does not change.  Besides the Bayesian networks, two tabular
baselines are registered: ``gp`` (:class:`GaussianProcessBaseline`) and ``ngboost``
(:class:`NGBoostBaseline`, which needs the optional ``ngboost`` package).  The
published results are embedded in :data:`PUBLISHED_TABLES` (no file outside the
package is read at run time).
"""

import csv
import importlib.util
import json
import math
import os
import sys
import time
import traceback
import warnings
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import ndtri
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .datasets import list_uci_datasets, load_uci_split, read_uci_settings, uci_n_splits
from .metrics import gaussian_mixture_nll, gaussian_nll, interval_coverage, rmse
from .uncertainty import decompose_regression

__all__ = [
    "GP_MAX_TRAIN_ROWS",
    "METHODS",
    "PUBLISHED_TABLES",
    "GaussianProcessBaseline",
    "MethodSpec",
    "NGBoostBaseline",
    "gaussian_interval_coverage",
    "register_method",
    "run_uci_benchmark",
    "summarize",
    "to_markdown",
    "write_csv",
]

PROTOCOLS = ("default", "tuned")

#: Hidden units when a data folder has no ``n_hidden.txt`` (the papers' network).
DEFAULT_N_HIDDEN = 50

#: Folds of the tuned protocol's grid search (on the training split only).
TUNED_CV = 3

#: Confidence of the central interval whose test coverage is reported (``coverage90``).
COVERAGE_CONFIDENCE = 0.9

#: Start of the ``status`` of a split skipped by its method's ``max_train_rows``.
SKIPPED_STATUS_PREFIX = "skipped: "


# ------------------------------------------------------------------- registry
@dataclass(frozen=True)
class MethodSpec:
    """How the UCI harness builds, tunes and scores one method.

    Parameters
    ----------
    estimator : callable
        Estimator class (or factory) called with keyword parameters; must return an
        unfitted scikit-learn regressor with ``sample_predictions(X, n_samples)``
        returning ``(mean_samples, var_samples)`` in the target's original units
        (every skbdl regressor does).
    params : mapping, default={}
        Fixed parameters of the *default* protocol, beyond the architecture, epochs
        and seed the harness sets.  Empty means the library's defaults.
    param_grid : mapping of str to list, default={}
        Grid of the *tuned* protocol (estimator parameter names, no pipeline
        prefix).  Keep it small: every point costs ``TUNED_CV`` fits per split.
    ll : {'mixture', 'gaussian'}, default='mixture'
        The test LL reported as ``ll``: ``'mixture'``, the equal-weight mixture of
        the sampled Gaussians (the model's predictive distribution); ``'gaussian'``,
        the one Gaussian with the mixture's mean and total variance.  Both are
        recorded in the CSV (``ll_mixture`` is always computed).
    eval_samples : int or None, default=None
        ``n_samples`` passed to ``sample_predictions`` at evaluation; ``None`` keeps
        the estimator's own (methods with a fixed set of draws need ``None``).
    hidden_param : str or None, default='hidden_layer_sizes'
        Parameter set to ``(n_hidden,)`` (``n_hidden.txt`` of the data folder, else
        50); ``None`` leaves the architecture alone.
    epochs_param : str or None, default='max_epochs'
        Parameter set by ``--epochs`` and ``--quick``.
    seed_param : str or None, default='random_state'
        Parameter set to the split's seed.
    quick_params : mapping, default={}
        Extra parameters for ``--quick`` smoke runs (e.g. fewer prediction draws).
    max_train_rows : int or None, default=None
        A split with more training rows is skipped, not run: its CSV ``status``
        reads ``skipped: ...``, the report lists it under "Skipped splits", and it
        is not a failure (no exit status 1).  For methods whose cost grows too fast
        with the number of rows (the exact GP).  ``None``: no limit.
    requires : tuple of str, default=()
        Modules of optional packages the method imports (e.g. ``('ngboost',)``);
        :func:`run_uci_benchmark` refuses to start, naming the ``pip install``, when
        one of them cannot be imported.
    baseline : bool, default=False
        A non-skbdl reference method (the tabular baselines): reported beside the
        skbdl columns, and in the "Targets" table as a number to beat, never as
        skbdl's own result.
    description : str, default=''
        One line shown in the markdown report.
    """

    estimator: Callable
    params: Mapping = field(default_factory=dict)
    param_grid: Mapping = field(default_factory=dict)
    ll: str = "mixture"
    eval_samples: int | None = None
    hidden_param: str | None = "hidden_layer_sizes"
    epochs_param: str | None = "max_epochs"
    seed_param: str | None = "random_state"
    quick_params: Mapping = field(default_factory=dict)
    max_train_rows: int | None = None
    requires: tuple = ()
    baseline: bool = False
    description: str = ""

    def __post_init__(self):
        if self.ll not in ("mixture", "gaussian"):
            raise ValueError(f"ll must be 'mixture' or 'gaussian'; got {self.ll!r}.")

    def missing_requirements(self):
        """The modules of ``requires`` that cannot be imported here (a list of str)."""
        return [module for module in self.requires if importlib.util.find_spec(module) is None]

    def make_estimator(
        self, *, n_hidden=None, epochs=None, random_state=None, quick=False, overrides=None
    ):
        """The unfitted estimator of the default protocol for one data set and split.

        Parameters are applied in this order, later ones winning: ``params``, the
        hidden width, ``quick_params`` (when ``quick``), ``epochs``, ``overrides``
        (``--set`` on the command line), the seed.
        """
        params = dict(self.params)
        if self.hidden_param is not None and n_hidden is not None:
            params[self.hidden_param] = (int(n_hidden),)
        if quick:
            params.update(self.quick_params)
        if self.epochs_param is not None and epochs is not None:
            params[self.epochs_param] = int(epochs)
        params.update(overrides or {})
        if self.seed_param is not None and random_state is not None:
            params[self.seed_param] = random_state
        return self.estimator(**params)


#: Method name -> :class:`MethodSpec`.  Add methods with :func:`register_method`.
METHODS: dict = {}


def register_method(name, spec, *, replace=False):
    """Make a method available to ``python -m skbdl benchmark uci --methods NAME``.

    Parameters
    ----------
    name : str
        The method's name on the command line and in the results.
    spec : MethodSpec
        How to build, tune and score it.
    replace : bool, default=False
        Allow replacing an existing registration.

    Returns
    -------
    spec : MethodSpec
        The registered spec.

    Examples
    --------
    >>> from skbdl import MCDropoutRegressor
    >>> from skbdl._uci import METHODS, MethodSpec, register_method
    >>> _ = register_method("mcd_p05", MethodSpec(MCDropoutRegressor, {"dropout": 0.05}))
    >>> "mcd_p05" in METHODS
    True
    >>> del METHODS["mcd_p05"]
    """
    if not isinstance(spec, MethodSpec):
        raise TypeError(f"spec must be a MethodSpec; got {type(spec).__name__}.")
    if name in METHODS and not replace:
        raise ValueError(f"A method named {name!r} is already registered.")
    METHODS[name] = spec
    return spec


# ------------------------------------------------------------ tabular baselines
#: Training rows above which the ``gp`` method skips a split.  Exact GP regression
#: costs O(n^3) per evaluation of the marginal likelihood, and the optimizer needs tens
#: to about a hundred of them.  Measured on the project's 2-core machine, one thread
#: per split as with ``--n-jobs 2``: one evaluation with its gradient takes 0.1 s at
#: 500 rows, 0.6 s at 1 000, 1.3 s at 1 500, 3.1 s at 2 000 and 7.6 s at 3 000 (11
#: features); a whole split takes 6 s on Concrete (927 rows) and 108 s on Wine (1 439
#: rows, about 90 evaluations) on a quiet core, 3.6 minutes on average on Wine with
#: the machine loaded (docs/benchmarks.md).  1 500 keeps all five small standard sets
#: and skips the large ones (Kin8nm, Naval, Power, Protein, Year: 7 000 rows and more,
#: an hour or more per split and gigabytes for the gradient); 1 000 would keep every
#: split under a minute but lose Wine.
GP_MAX_TRAIN_ROWS = 1500


class _GaussianBaselineRegressor(RegressorMixin, BaseEstimator, metaclass=ABCMeta):
    """A regressor with one Gaussian predictive per row, behind skbdl's sampling API.

    The UCI harness scores every method from ``sample_predictions``.  A model whose
    predictive is one Gaussian returns it as a single "sample" (its mean and its
    variance), so it is scored exactly like the Bayesian networks: the mixture of one
    Gaussian is that Gaussian.  A subclass builds the wrapped model
    (``_make_model``) and reads its predictive mean and standard deviation
    (``_predict_mean_std``).

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Seed passed to the wrapped model.
    """

    def __init__(self, random_state=None):
        self.random_state = random_state

    @abstractmethod
    def _make_model(self, n_features):
        """The unfitted wrapped model for inputs with ``n_features`` columns."""

    @abstractmethod
    def _predict_mean_std(self, X):
        """Predictive mean and standard deviation of the fitted model, in y's units."""

    def fit(self, X, y):
        """Fit the wrapped model.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Training inputs.
        y : array-like of shape (n_rows,)
            Training targets.

        Returns
        -------
        self : object
            The fitted regressor.
        """
        X, y = validate_data(self, X, y, y_numeric=True)
        self.model_ = self._make_model(X.shape[1]).fit(X, y)
        return self

    def predict(self, X, return_std=False):
        """Predictive mean, and optionally standard deviation, of new targets.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Inputs.
        return_std : bool, default=False
            Also return the predictive standard deviation (noise included).

        Returns
        -------
        mean : ndarray of shape (n_rows,)
            Predictive mean, in the target's units.
        std : ndarray of shape (n_rows,)
            Predictive standard deviation; only when ``return_std``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        mean, std = self._predict_mean_std(X)
        mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
        return (mean, std) if return_std else mean

    def sample_predictions(self, X, n_samples=None):
        """The Gaussian predictive as one sample, the shape skbdl's methods return.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Inputs.
        n_samples : int or None, default=None
            Ignored: the predictive is one Gaussian, returned once.

        Returns
        -------
        mean_samples : ndarray of shape (1, n_rows)
            Predictive mean.
        var_samples : ndarray of shape (1, n_rows)
            Predictive variance (noise included).
        """
        mean, std = self.predict(X, return_std=True)
        return mean[np.newaxis], np.square(std)[np.newaxis]


class GaussianProcessBaseline(_GaussianBaselineRegressor):
    """Exact Gaussian process regression, the tabular baseline of the UCI benchmark.

    ``sklearn.gaussian_process.GaussianProcessRegressor`` with the kernel
    ``ConstantKernel() * RBF(length_scale=np.ones(n_features)) + WhiteKernel()`` (one
    length scale per feature, learned noise level), the target standardised with the
    training mean and standard deviation (``normalize_y=True``), hyper-parameters by
    maximum marginal likelihood (L-BFGS-B from the kernel's initial values, no
    restarts).  The predictive standard deviation includes the learned noise.
    Standardise the inputs first (the harness's pipeline does).  Cost and memory grow
    as n^3 and n^2 in the training rows: see :data:`GP_MAX_TRAIN_ROWS`.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Passed to ``GaussianProcessRegressor`` (used only by optimizer restarts and
        ``sample_y``; the fit is deterministic).

    Attributes
    ----------
    model_ : sklearn.gaussian_process.GaussianProcessRegressor
        The fitted GP; ``model_.kernel_`` holds the learned hyper-parameters.
    n_features_in_ : int
        Number of input features seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl._uci import GaussianProcessBaseline
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-2, 2, size=(50, 2))
    >>> y = np.sin(X[:, 0]) + 0.1 * rng.randn(50)
    >>> gp = GaussianProcessBaseline(random_state=0).fit(X, y)
    >>> mean_samples, var_samples = gp.sample_predictions(X[:3])
    >>> mean_samples.shape, var_samples.shape
    ((1, 3), (1, 3))
    """

    def _make_model(self, n_features):
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        kernel = ConstantKernel() * RBF(length_scale=np.ones(n_features)) + WhiteKernel()
        return GaussianProcessRegressor(kernel, normalize_y=True, random_state=self.random_state)

    def _predict_mean_std(self, X):
        return self.model_.predict(X, return_std=True)


class NGBoostBaseline(_GaussianBaselineRegressor):
    """NGBoost with its defaults, the gradient-boosting baseline of the UCI benchmark.

    ``ngboost.NGBRegressor()``: a Normal predictive whose mean and log standard
    deviation are boosted by natural gradients of the log score, 500 trees of depth 3,
    learning rate 0.01, no early stopping; nothing tuned, the target in its own units
    (trees do not care how the inputs are scaled).  Only ``random_state`` is set, and
    the progress printing is off.  Needs the optional ``ngboost`` package
    (``pip install ngboost``; ngboost 0.6 requires scikit-learn < 1.7 on Python
    < 3.14, so install it in an environment of its own).

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Passed to ``NGBRegressor``.

    Attributes
    ----------
    model_ : ngboost.NGBRegressor
        The fitted booster.
    n_features_in_ : int
        Number of input features seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl._uci import NGBoostBaseline
    >>> NGBoostBaseline(random_state=0)  # constructing it does not import ngboost
    NGBoostBaseline(random_state=0)
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-2, 2, size=(50, 2))
    >>> y = np.sin(X[:, 0]) + 0.1 * rng.randn(50)
    >>> ngb = NGBoostBaseline(random_state=0).fit(X, y)  # doctest: +SKIP
    >>> ngb.sample_predictions(X[:3])[1].shape  # doctest: +SKIP
    (1, 3)
    """

    def _make_model(self, n_features):
        from ngboost import NGBRegressor

        return NGBRegressor(random_state=self.random_state, verbose=False)

    def _predict_mean_std(self, X):
        predictive = self.model_.pred_dist(X).params
        return predictive["loc"], predictive["scale"]


#: The harness's settings of every skbdl method: no progress bar per fit (the harness
#: shows its own progress), every other parameter at the library default.
_QUIET = {"verbose": 0}


def _register_builtin_methods():
    from .mc_dropout import MCDropoutRegressor

    register_method(
        "mc_dropout",
        MethodSpec(
            MCDropoutRegressor,
            params=_QUIET,
            # The setting whose best value differed most between the five sets (0.02
            # for Energy and Yacht, 0.2 for Boston; docs/benchmarks.md); 4 points x 3
            # folds = 12 extra fits per split.
            param_grid={"dropout": [0.02, 0.05, 0.1, 0.2]},
            ll="mixture",
            quick_params={"n_samples": 10},
            description="MCDropoutRegressor, library defaults (heteroscedastic, recalibrated)",
        ),
    )
    # Methods written alongside the harness join as soon as their module exists.
    try:
        from .ensemble import DeepEnsembleRegressor
    except ImportError:
        pass
    else:
        register_method(
            "deep_ensemble",
            MethodSpec(
                DeepEnsembleRegressor,
                params=_QUIET,
                param_grid={"lr": [1e-3, 1e-2], "weight_decay": [0.0, 1e-4]},
                ll="mixture",
                description="DeepEnsembleRegressor, library defaults",
            ),
        )
    try:
        from .bbb import BayesianMLPRegressor
    except ImportError:
        pass
    else:
        register_method(
            "bbb",
            MethodSpec(
                BayesianMLPRegressor,
                params=_QUIET,
                param_grid={"lr": [1e-3, 1e-2], "prior_scale": [0.1, 1.0]},
                ll="mixture",
                quick_params={"n_samples": 10},
                description="BayesianMLPRegressor (Bayes by Backprop), library defaults",
            ),
        )
    try:
        from .pbp import PBPRegressor
    except ImportError:
        pass
    else:
        register_method(
            "pbp",
            MethodSpec(
                PBPRegressor,
                params=_QUIET,
                param_grid={},  # nothing to tune: the noise and prior precisions are learned
                ll="gaussian",  # the paper's single-Gaussian predictive
                eval_samples=1000,  # weight draws: MC error of the moments well below the SE
                quick_params={"n_samples": 10},
                description=(
                    "PBPRegressor (probabilistic backpropagation), library defaults "
                    "(40 ADF passes, Gamma(6, 6) priors)"
                ),
            ),
        )
    try:
        from .hyper_ensemble import HyperDeepEnsembleRegressor
    except ImportError:
        pass
    else:
        register_method(
            "hyper_ensemble",
            MethodSpec(
                HyperDeepEnsembleRegressor,
                params=_QUIET,
                param_grid={},  # it tunes itself: members chosen on held-out rows
                ll="mixture",
                description=(
                    "HyperDeepEnsembleRegressor, library defaults (20 candidates, 5 chosen)"
                ),
            ),
        )
    # Tabular baselines: one Gaussian predictive each, scored by its LL.
    register_method(
        "gp",
        MethodSpec(
            GaussianProcessBaseline,
            ll="gaussian",
            hidden_param=None,
            epochs_param=None,
            max_train_rows=GP_MAX_TRAIN_ROWS,
            baseline=True,
            description=(
                "exact Gaussian process, ConstantKernel() * RBF (one length scale per "
                "feature) + WhiteKernel(), standardised target; splits with more than "
                f"{GP_MAX_TRAIN_ROWS} training rows skipped"
            ),
        ),
    )
    register_method(
        "ngboost",
        MethodSpec(
            NGBoostBaseline,
            ll="gaussian",
            hidden_param=None,
            epochs_param=None,
            requires=("ngboost",),  # registered always: a clear error, not absence
            baseline=True,
            description=(
                "ngboost.NGBRegressor() defaults (Normal, 500 trees of depth 3, lr 0.01), not tuned"
            ),
        ),
    )


_register_builtin_methods()


# ------------------------------------------------------------ published numbers
#: The published test RMSE and LL (mean ± standard error over the standard splits, in
#: original units), as tabulated in the project's REFERENCE_RESULTS.md.  Sources:
#: VI: Graves 2011 as reproduced by Gal & Ghahramani 2016, Table 1; PBP:
#: Hernández-Lobato & Adams 2015; MCD: Gal & Ghahramani 2016, Table 1 (arXiv v6);
#: DE: Lakshminarayanan et al. 2017, Table 1 (NLL sign-flipped; its ± look like
#: standard deviations); MCD-grid: the 2018 re-run in github.com/yaringal/
#: DropoutUncertaintyExps (per-split grid over dropout and tau, 4000 epochs).
PUBLISHED_TABLES = """
| RMSE | VI | PBP | MCD | DE | MCD-grid |
|---|---|---|---|---|---|
| Boston | 4.32±0.29 | 3.01±0.18 | 2.97±0.19 | 3.28±1.00 | 2.90±0.18 |
| Concrete | 7.19±0.12 | 5.67±0.09 | 5.23±0.12 | 6.03±0.58 | 4.83±0.16 |
| Energy | 2.65±0.08 | 1.80±0.05 | 1.66±0.04 | 2.09±0.29 | 0.54±0.01 |
| Kin8nm | 0.10±0.00 | 0.10±0.00 | 0.10±0.00 | 0.09±0.00 | 0.079±0.001 |
| Naval | 0.01±0.00 | 0.01±0.00 | 0.01±0.00 | 0.00±0.00 | 0.0007±0.0000 |
| Power | 4.33±0.04 | 4.12±0.03 | 4.02±0.04 | 4.11±0.17 | 4.01±0.04 |
| Protein | 4.84±0.03 | 4.73±0.01 | 4.36±0.01 | 4.71±0.06 | 4.27±0.02 |
| Wine | 0.65±0.01 | 0.64±0.01 | 0.62±0.01 | 0.64±0.04 | 0.62±0.01 |
| Yacht | 6.89±0.67 | 1.02±0.05 | 1.11±0.09 | 1.58±0.48 | 0.67±0.05 |
| Year | 9.034 | 8.879 | 8.849 | 8.89 | — |

| LL | VI | PBP | MCD | DE | MCD-grid |
|---|---|---|---|---|---|
| Boston | −2.90±0.07 | −2.57±0.09 | −2.46±0.06 | −2.41±0.25 | −2.40±0.04 |
| Concrete | −3.39±0.02 | −3.16±0.02 | −3.04±0.02 | −3.06±0.18 | −2.94±0.02 |
| Energy | −2.39±0.03 | −2.04±0.02 | −1.99±0.02 | −1.38±0.22 | −1.21±0.01 |
| Kin8nm | 0.90±0.01 | 0.90±0.01 | 0.95±0.01 | 1.20±0.02 | 1.14±0.01 |
| Naval | 3.73±0.12 | 3.73±0.01 | 3.80±0.01 | 5.63±0.05 | 4.45±0.00 |
| Power | −2.89±0.01 | −2.84±0.01 | −2.80±0.01 | −2.79±0.04 | −2.81±0.01 |
| Protein | −2.99±0.01 | −2.97±0.00 | −2.89±0.00 | −2.83±0.02 | −2.87±0.00 |
| Wine | −0.98±0.01 | −0.97±0.01 | −0.93±0.01 | −0.94±0.12 | −0.93±0.01 |
| Yacht | −3.43±0.16 | −1.63±0.02 | −1.55±0.03 | −1.18±0.21 | −1.25±0.02 |
| Year | −3.622 | −3.603 | −3.588 | −3.35 | — |
"""

#: Columns of :data:`PUBLISHED_TABLES`, in order.
PUBLISHED_COLUMNS = ("VI", "PBP", "MCD", "DE", "MCD-grid")

#: Data-folder names (lower case) -> row names of :data:`PUBLISHED_TABLES`.  Folder
#: names of the MC dropout repository and common short names.
_ALIASES = {
    "bostonhousing": "Boston",
    "boston-housing": "Boston",
    "boston": "Boston",
    "concrete": "Concrete",
    "energy": "Energy",
    "kin8nm": "Kin8nm",
    "naval-propulsion-plant": "Naval",
    "naval": "Naval",
    "power-plant": "Power",
    "power": "Power",
    "protein-tertiary-structure": "Protein",
    "protein": "Protein",
    "wine-quality-red": "Wine",
    "wine": "Wine",
    "yacht": "Yacht",
    "yearpredictionmsd": "Year",
    "year": "Year",
}


def _parse_published():
    tables, current = {}, None
    for line in PUBLISHED_TABLES.strip().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.strip() or set(cells[0]) <= {"-"}:
            continue
        if cells[0] in ("RMSE", "LL"):
            current = tables.setdefault(cells[0].lower(), {})
            continue
        current[cells[0]] = dict(zip(PUBLISHED_COLUMNS, cells[1:]))
    return tables


_PUBLISHED = _parse_published()


def published_name(dataset):
    """The row of the published tables for a data-folder name, or None."""
    return _ALIASES.get(dataset.lower())


def published_value(text):
    """``'−2.46±0.06'`` -> ``(-2.46, 0.06)``; a bare number has SE None; '—' -> None."""
    text = text.replace("−", "-").strip()
    if not text or text in ("—", "-"):
        return None
    mean, _, se = text.partition("±")
    return float(mean), (float(se) if se else None)


# --------------------------------------------------------------------- running
def nll_scorer(kind="mixture", n_samples=None):
    """A scikit-learn scorer: minus the test NLL of a fitted regressor (or pipeline).

    ``kind='mixture'`` scores the mixture of ``sample_predictions``;
    ``'gaussian'`` the single Gaussian of ``predict(X, return_std=True)``.  Greater
    is better, as ``GridSearchCV`` expects.
    """

    def score(estimator, X, y):
        if kind == "gaussian":
            mean, std = estimator.predict(X, return_std=True)
            return -gaussian_nll(y, mean, std**2)
        mean_samples, var_samples = _sample_predictions(estimator, X, n_samples)
        return -gaussian_mixture_nll(y, mean_samples, var_samples)

    return score


def _sample_predictions(estimator, X, n_samples):
    """``sample_predictions`` through a pipeline's transformers."""
    if hasattr(estimator, "steps"):
        X = estimator[:-1].transform(X)
        estimator = estimator[-1]
    return estimator.sample_predictions(X, n_samples=n_samples)


def _split_seed(seed, split):
    return int(seed) * 10_007 + int(split)


def _run_one(task):
    """Fit and evaluate one (data set, method, protocol, split); never raises."""
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    row = {
        "dataset": task["dataset"],
        "method": task["method"],
        "protocol": task["protocol"],
        "split": task["split"],
        "status": "ok",
        "rmse": math.nan,
        "ll": math.nan,
        "ll_mixture": math.nan,
        "ll_gaussian": math.nan,
        "coverage90": math.nan,
        "fit_seconds": math.nan,
        "predict_seconds": math.nan,
        "n_train": 0,
        "n_test": 0,
        "params": "",
    }
    spec = task["spec"]
    try:
        X_train, y_train, X_test, y_test = load_uci_split(task["path"], task["split"])
        row["n_train"], row["n_test"] = len(y_train), len(y_test)
        if spec.max_train_rows is not None and len(y_train) > spec.max_train_rows:
            row["status"] = (
                f"{SKIPPED_STATUS_PREFIX}{len(y_train)} training rows > the method's "
                f"max_train_rows={spec.max_train_rows}"
            )
            return row
        estimator = spec.make_estimator(
            n_hidden=task["n_hidden"],
            epochs=task["epochs"],
            random_state=_split_seed(task["seed"], task["split"]),
            quick=task["quick"],
            overrides=task["overrides"],
        )
        model = Pipeline([("scale", StandardScaler()), ("model", estimator)])
        eval_samples = spec.eval_samples
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if task["protocol"] == "tuned" and spec.param_grid:
                grid = {f"model__{k}": list(v) for k, v in spec.param_grid.items()}
                if task["quick"]:
                    grid = {k: v[:2] for k, v in grid.items()}
                search = GridSearchCV(
                    model,
                    grid,
                    scoring=nll_scorer(spec.ll, eval_samples),
                    cv=KFold(
                        2 if task["quick"] else TUNED_CV,
                        shuffle=True,
                        random_state=_split_seed(task["seed"], task["split"]),
                    ),
                    refit=True,
                    # A grid point whose fit fails (e.g. diverges) loses; the split
                    # fails only if the refit of the chosen point fails.
                    error_score=np.nan,
                    n_jobs=1,
                )
                search.fit(X_train, y_train)
                model = search.best_estimator_
                chosen = {**spec.params, **task["overrides"]}
                chosen.update(
                    {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
                )
                n_failed = int(np.isnan(search.cv_results_["mean_test_score"]).sum())
                if n_failed:
                    chosen["_grid_points_failed"] = n_failed
            else:
                model.fit(X_train, y_train)
                chosen = {**spec.params, **task["overrides"]}
        row["fit_seconds"] = time.perf_counter() - start
        row["params"] = json.dumps(chosen, sort_keys=True, default=str)
        start = time.perf_counter()
        mean_samples, var_samples = _sample_predictions(model, X_test, eval_samples)
        row["predict_seconds"] = time.perf_counter() - start
        mean, total_var, _, _ = decompose_regression(mean_samples, var_samples)
        row["rmse"] = rmse(y_test, mean)
        row["ll_mixture"] = -gaussian_mixture_nll(y_test, mean_samples, var_samples)
        row["ll_gaussian"] = -gaussian_nll(y_test, mean, total_var)
        row["ll"] = row["ll_mixture"] if spec.ll == "mixture" else row["ll_gaussian"]
        row["coverage90"] = gaussian_interval_coverage(y_test, mean, total_var, COVERAGE_CONFIDENCE)
        if not all(math.isfinite(row[k]) for k in ("rmse", "ll")):
            raise FloatingPointError("non-finite test metric")
    except Exception as exc:  # reported in the results, never dropped
        message = f"{type(exc).__name__}: {exc}".replace("\n", " ").strip()
        row["status"] = message or type(exc).__name__
        row["traceback"] = traceback.format_exc()
        for key in ("rmse", "ll", "ll_mixture", "ll_gaussian", "coverage90"):
            row[key] = math.nan
    return row


def gaussian_interval_coverage(y, mean, var, confidence=COVERAGE_CONFIDENCE):
    """Fraction of targets inside the central interval of a Gaussian predictive.

    The interval is ``mean ± z std`` with ``z = Phi^-1((1 + confidence) / 2)`` (1.645
    for 0.9): what ``predict_interval(method='gaussian')`` gives when ``var`` is the
    total variance of the predictive mixture.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        Observed targets.
    mean : array-like of shape (n_rows,)
        Predictive means.
    var : array-like of shape (n_rows,)
        Predictive variances.
    confidence : float, default=COVERAGE_CONFIDENCE
        Probability mass of the central interval, in ``(0, 1)``.

    Returns
    -------
    coverage : float
        In ``[0, 1]``; close to ``confidence`` for a calibrated predictive.

    Examples
    --------
    >>> from skbdl._uci import gaussian_interval_coverage
    >>> gaussian_interval_coverage([0.0, 1.6, 1.7], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    0.6666666666666666
    """
    mean = np.asarray(mean, dtype=np.float64)
    half_width = ndtri(0.5 + confidence / 2) * np.sqrt(np.asarray(var, dtype=np.float64))
    return interval_coverage(y, np.stack([mean - half_width, mean + half_width], axis=-1))


def _is_skipped(row):
    return row["status"].startswith(SKIPPED_STATUS_PREFIX)


def _is_failed(row):
    return row["status"] != "ok" and not _is_skipped(row)


def _resolve_datasets(data_dir, names):
    """``{name: folder}`` for the requested data sets (all folders when None)."""
    root = Path(data_dir)
    try:
        available = list_uci_datasets(root)
    except FileNotFoundError:
        available = []
    try:  # the directory is itself one data folder
        uci_n_splits(root)
        own = [root.name]
    except FileNotFoundError:
        own = []
    if own and not available:
        folders = {root.name: root}
    else:
        folders = {name: root / name for name in available}
    if not folders:
        raise FileNotFoundError(
            f"No UCI data folders (data.txt, index_features.txt, index_target.txt) in "
            f"{os.fspath(root)!r}."
        )
    if not names:
        return folders
    by_lower = {name.lower(): name for name in folders}
    by_alias = {published_name(name): name for name in folders if published_name(name)}
    chosen = {}
    for name in names:
        match = by_lower.get(name.lower()) or by_alias.get(published_name(name) or name)
        if match is None:
            raise ValueError(
                f"No data set {name!r} in {os.fspath(root)!r}; available: {', '.join(folders)}."
            )
        chosen[match] = folders[match]
    return chosen


def run_uci_benchmark(
    data_dir,
    *,
    datasets=None,
    methods=("mc_dropout",),
    splits=None,
    protocols=("default",),
    n_jobs=1,
    epochs=None,
    quick=False,
    seed=0,
    params=None,
    progress=True,
):
    """Run the UCI protocol; return one result row (a dict) per task.

    Parameters
    ----------
    data_dir : str or path-like
        A directory of data folders in the standard layout (or one such folder).
    datasets : list of str, default=None
        Folder names (case-insensitive; ``boston``, ``wine`` ... also work); None:
        every folder under ``data_dir``.
    methods : list of str, default=('mc_dropout',)
        Names registered in :data:`METHODS`.
    splits : list of int, default=None
        Split numbers; None: all of each data set.  Splits a data set lacks are
        skipped (e.g. Protein has 5).
    protocols : list of {'default', 'tuned'}, default=('default',)
        See the module docstring.
    n_jobs : int, default=1
        Tasks run in parallel by joblib (each task is one split of one method).
    epochs : int, 'paper' or None, default=None
        Override the method's epochs (``'paper'``: the folder's ``n_epochs.txt``);
        None keeps the method's default.
    quick : bool, default=False
        Smoke-test settings: 1 epoch unless ``epochs`` is given, the method's
        ``quick_params``, a 2-fold search over at most 2 values per parameter.
    seed : int, default=0
        Base of the per-split random seeds.
    params : dict, default=None
        Estimator parameters set for every method in both protocols (``--set``),
        after the method's own; a grid of the tuned protocol still wins for its
        parameters.  Every method must accept them.
    progress : bool, default=True
        Show a progress bar (on stderr) over finished tasks.

    Returns
    -------
    rows : list of dict
        Keys: ``dataset, method, protocol, split, status, rmse, ll, ll_mixture,
        ll_gaussian, coverage90, fit_seconds, predict_seconds, n_train, n_test,
        params`` (and ``traceback`` for failures), in task order.  ``status`` is
        ``'ok'``, the error of a failed split, or ``'skipped: ...'`` for a split above
        the method's ``max_train_rows``.

    Raises
    ------
    ValueError
        For an unknown method or protocol, a parameter a method does not accept,
        or nothing to run.
    ImportError
        When a method's optional package (``MethodSpec.requires``) is not installed.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown methods {unknown}; registered: {', '.join(METHODS)}.")
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad:
        raise ValueError(f"Unknown protocols {bad}; choose from {PROTOCOLS}.")
    for method in methods:
        missing = METHODS[method].missing_requirements()
        if missing:
            raise ImportError(
                f"Method {method!r} needs {', '.join(missing)}, which cannot be imported "
                f"here: pip install {' '.join(missing)}"
            )
    tasks = []
    for name, path in _resolve_datasets(data_dir, datasets).items():
        settings = read_uci_settings(path)
        n_splits = settings["n_splits"]
        wanted = range(n_splits) if splits is None else [s for s in splits if s < n_splits]
        task_epochs = settings.get("n_epochs") if epochs == "paper" else epochs
        if quick and task_epochs is None:
            task_epochs = 1
        for method in methods:
            for protocol in protocols:
                for split in wanted:
                    tasks.append(
                        {
                            "dataset": name,
                            "path": os.fspath(path),
                            "method": method,
                            "spec": METHODS[method],
                            "protocol": protocol,
                            "split": int(split),
                            "n_hidden": settings.get("n_hidden", DEFAULT_N_HIDDEN),
                            "epochs": task_epochs,
                            "quick": quick,
                            "seed": seed,
                        }
                    )
    overrides = dict(params or {})
    for method in methods:
        accepted = _accepted_params(METHODS[method])
        rejected = sorted(
            k for k in overrides if accepted is not None and k not in accepted and "__" not in k
        )
        if rejected:
            raise ValueError(f"Method {method!r} has no parameters {rejected}.")
    for task in tasks:
        task["overrides"] = overrides
    if not tasks:
        raise ValueError("Nothing to run: no split of the chosen data sets matches --splits.")
    rows = [None] * len(tasks)
    results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        delayed(_with_index)(i, task) for i, task in enumerate(tasks)
    )
    failed = 0
    with tqdm(total=len(tasks), desc="uci", disable=not progress, file=sys.stderr) as bar:
        for index, row in results:
            rows[index] = row
            failed += _is_failed(row)
            bar.set_postfix_str(
                f"{row['dataset']}/{row['method']} split {row['split']}"
                + (f", {failed} failed" if failed else ""),
                refresh=False,
            )
            bar.update()
    return rows


def _accepted_params(spec):
    """Parameter names of the method's estimator, or None if they cannot be listed."""
    get_params = getattr(spec.estimator, "get_params", None)
    if get_params is None:
        return None
    try:
        return set(spec.estimator().get_params())
    except Exception:
        return None


def _with_index(index, task):
    return index, _run_one(task)


# ---------------------------------------------------------------- aggregation
def summarize(rows):
    """Mean ± standard error over splits per (data set, method, protocol).

    Returns
    -------
    summary : list of dict
        Keys ``dataset, method, protocol, n_ok, n_total, failed_splits,
        skipped_splits, skip_reasons`` and, for each of ``rmse, ll, ll_mixture,
        ll_gaussian, coverage90, fit_seconds``, ``<key>_mean`` and ``<key>_se``
        (population std over the successful splits / sqrt(n_ok)); NaN when no split
        succeeded.  Skipped splits (above a method's ``max_train_rows``) count in
        ``n_total`` but neither as successes nor as failures.
    """
    groups = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["method"], row["protocol"]), []).append(row)
    summary = []
    for (dataset, method, protocol), group in groups.items():
        ok = [r for r in group if r["status"] == "ok"]
        entry = {
            "dataset": dataset,
            "method": method,
            "protocol": protocol,
            "n_ok": len(ok),
            "n_total": len(group),
            "failed_splits": sorted(r["split"] for r in group if _is_failed(r)),
            "skipped_splits": sorted(r["split"] for r in group if _is_skipped(r)),
            "skip_reasons": sorted(
                {r["status"].removeprefix(SKIPPED_STATUS_PREFIX) for r in group if _is_skipped(r)}
            ),
        }
        for key in ("rmse", "ll", "ll_mixture", "ll_gaussian", "coverage90", "fit_seconds"):
            values = np.array([r[key] for r in ok], dtype=np.float64)
            if values.size:
                entry[f"{key}_mean"] = float(values.mean())
                entry[f"{key}_se"] = float(values.std() / math.sqrt(values.size))
            else:
                entry[f"{key}_mean"] = entry[f"{key}_se"] = math.nan
        summary.append(entry)
    return summary


_CSV_FIELDS = (
    "dataset",
    "method",
    "protocol",
    "split",
    "status",
    "rmse",
    "ll",
    "ll_mixture",
    "ll_gaussian",
    "coverage90",
    "fit_seconds",
    "predict_seconds",
    "n_train",
    "n_test",
    "params",
)


def write_csv(rows, path):
    """Write one line per task (the fields of :func:`run_uci_benchmark`'s rows)."""
    path = Path(path)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row[k]) for k in _CSV_FIELDS})


def _csv_value(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def _decimals(mean, se):
    """Decimals showing the SE's first significant digit and 2 digits of the mean."""
    decimals = 2
    if se and math.isfinite(se) and se > 0:
        decimals = max(decimals, -math.floor(math.log10(se)))
    if mean and math.isfinite(mean) and abs(mean) < 1:
        decimals = max(decimals, -math.floor(math.log10(abs(mean))) + 1)
    return min(decimals, 6)


def format_mean_se(mean, se):
    """``'-2.46±0.06'`` (unicode minus, like the published tables); '—' for NaN."""
    if not math.isfinite(mean):
        return "—"
    d = _decimals(mean, se)
    return f"{mean:.{d}f}±{se:.{d}f}".replace("-", "−")


def _column_label(method, protocol):
    owner = "baseline" if _is_baseline(method) else "skbdl"
    return f"{owner} {method}" + ("" if protocol == "default" else f" ({protocol})")


def to_markdown(summary, *, title=None, notes=()):
    """The results as markdown: published columns beside skbdl's, targets, failures.

    Cells read ``mean±SE``; a cell computed from fewer than all splits is marked
    ``(k/n splits)``, one whose splits were all skipped reads ``skipped``.  Data sets
    without published numbers show '—' there.  The 90% interval coverage has no
    published columns (the papers did not report it).
    """
    datasets = list(dict.fromkeys(s["dataset"] for s in summary))
    columns = list(dict.fromkeys((s["method"], s["protocol"]) for s in summary))
    cells = {(s["dataset"], s["method"], s["protocol"]): s for s in summary}
    lines = []
    if title:
        lines += [f"# {title}", ""]
    lines += [f"{note}" for note in notes]
    if notes:
        lines.append("")
    for metric, heading, published_columns in (
        ("rmse", "Test RMSE (lower is better)", PUBLISHED_COLUMNS),
        ("ll", "Test log-likelihood (higher is better)", PUBLISHED_COLUMNS),
        (
            "coverage90",
            f"Test coverage of the central {COVERAGE_CONFIDENCE:.0%} interval "
            f"(mean ± {ndtri(0.5 + COVERAGE_CONFIDENCE / 2):.3f} std; "
            f"{COVERAGE_CONFIDENCE:.2f} is calibrated)",
            (),
        ),
    ):
        lines += [f"## {heading}", ""]
        header = ["data set", *published_columns, *(_column_label(*c) for c in columns)]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for dataset in datasets:
            ref = _PUBLISHED.get(metric, {}).get(published_name(dataset) or "", {})
            row = [dataset, *(ref.get(c, "—") for c in published_columns)]
            for method, protocol in columns:
                s = cells.get((dataset, method, protocol))
                if s is None:
                    row.append("")
                elif len(s["skipped_splits"]) == s["n_total"]:
                    row.append("skipped")
                else:
                    text = format_mean_se(s[f"{metric}_mean"], s[f"{metric}_se"])
                    if s["n_ok"] != s["n_total"]:
                        text += f" ({s['n_ok']}/{s['n_total']} splits)"
                    row.append(text)
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += _targets_markdown(datasets, columns, cells)
    lines += ["## Per-split cost", ""]
    lines.append(
        "| data set | column | splits ok | mean fit seconds per split "
        "| LL of the Gaussian summary |"
    )
    lines.append("|---|---|---|---|---|")
    for dataset in datasets:
        for method, protocol in columns:
            s = cells.get((dataset, method, protocol))
            if s is None:
                continue
            fit_seconds = s["fit_seconds_mean"]
            lines.append(
                f"| {dataset} | {_column_label(method, protocol)} | {s['n_ok']}/{s['n_total']} "
                f"| {f'{fit_seconds:.2f}' if math.isfinite(fit_seconds) else '—'} "
                f"| {format_mean_se(s['ll_gaussian_mean'], s['ll_gaussian_se'])} |"
            )
    lines.append("")
    skipped = [s for s in summary if s["skipped_splits"]]
    if skipped:
        lines += ["## Skipped splits", ""]
        for s in skipped:
            lines.append(
                f"- {s['dataset']} / {_column_label(s['method'], s['protocol'])}: splits "
                f"{', '.join(map(str, s['skipped_splits']))} ({'; '.join(s['skip_reasons'])})"
            )
        lines.append("")
    failures = [s for s in summary if s["failed_splits"]]
    lines += ["## Failed splits", ""]
    if failures:
        for s in failures:
            lines.append(
                f"- {s['dataset']} / {_column_label(s['method'], s['protocol'])}: splits "
                f"{', '.join(map(str, s['failed_splits']))} (see the CSV's status column)"
            )
    else:
        lines.append("None.")
    lines.append("")
    return "\n".join(lines)


def _is_baseline(method):
    spec = METHODS.get(method)
    return spec is not None and spec.baseline


def _targets_markdown(datasets, columns, cells):
    """The issue's targets, per data set with published numbers.

    Only skbdl's columns compete; the baselines of the run (``MethodSpec.baseline``)
    are numbers to beat, in (d).
    """
    baselines = [c for c in columns if _is_baseline(c[0])]
    columns = [c for c in columns if not _is_baseline(c[0])]
    lines = [
        "## Targets",
        "",
        "Best skbdl column versus the published columns: (a) LL ≥ best published LL − "
        "that entry's ±; (b) RMSE ≤ the MC dropout paper's (MCD); (c) LL above every "
        "published LL; (d) LL above every published LL and every baseline's LL in this "
        "run (— when the run has no baseline).",
        "",
        "| data set | best published LL | best baseline LL | best skbdl LL | (a) | MCD RMSE "
        "| best skbdl RMSE | (b) | (c) | (d) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    n_rows = n_c = n_d = 0
    for dataset in datasets:
        name = published_name(dataset)
        if name is None or name not in _PUBLISHED["ll"]:
            continue
        ref_ll = {c: published_value(v) for c, v in _PUBLISHED["ll"][name].items()}
        ref_ll = {c: v for c, v in ref_ll.items() if v is not None}
        best_col = max(ref_ll, key=lambda c: ref_ll[c][0])
        best_ll, best_se = ref_ll[best_col]
        mcd_rmse = published_value(_PUBLISHED["rmse"][name]["MCD"])
        ours = [cells[(dataset, *c)] for c in columns if (dataset, *c) in cells]
        ours = [s for s in ours if math.isfinite(s["ll_mean"])]
        theirs = [cells[(dataset, *c)] for c in baselines if (dataset, *c) in cells]
        theirs = [s for s in theirs if math.isfinite(s["ll_mean"])]
        if not ours:
            continue
        top_ll = max(ours, key=lambda s: s["ll_mean"])
        top_rmse = min(ours, key=lambda s: s["rmse_mean"])
        a = top_ll["ll_mean"] >= best_ll - (best_se or 0.0)
        b = mcd_rmse is not None and top_rmse["rmse_mean"] <= mcd_rmse[0]
        c = top_ll["ll_mean"] > best_ll
        baseline_cell, d = "—", None
        if theirs:
            top_baseline = max(theirs, key=lambda s: s["ll_mean"])
            baseline_cell = (
                f"{format_mean_se(top_baseline['ll_mean'], top_baseline['ll_se'])} "
                f"({_column_label(top_baseline['method'], top_baseline['protocol'])})"
            )
            d = c and top_ll["ll_mean"] > top_baseline["ll_mean"]
            n_d += d
        n_rows += 1
        n_c += c
        lines.append(
            f"| {dataset} | {_PUBLISHED['ll'][name][best_col]} ({best_col}) "
            f"| {baseline_cell} "
            f"| {format_mean_se(top_ll['ll_mean'], top_ll['ll_se'])} "
            f"({_column_label(top_ll['method'], top_ll['protocol'])}) | {_yes(a)} "
            f"| {_PUBLISHED['rmse'][name]['MCD']} "
            f"| {format_mean_se(top_rmse['rmse_mean'], top_rmse['rmse_se'])} | {_yes(b)} "
            f"| {_yes(c)} | {'—' if d is None else _yes(d)} |"
        )
    lines += ["", f"(c) holds on {n_c} of {n_rows} data sets."]
    if baselines:
        lines.append(f"(d) holds on {n_d} of {n_rows} data sets.")
    lines.append("")
    return lines


def _yes(flag):
    return "met" if flag else "missed"


# --------------------------------------------------------------- command line
def _parse_splits(values):
    splits = []
    for value in values:
        for part in str(value).split(","):
            if not part:
                continue
            start, dash, stop = part.partition("-")
            if dash:
                splits.extend(range(int(start), int(stop) + 1))
            else:
                splits.append(int(part))
    return sorted(set(splits))


def _parse_epochs(value):
    if value == "paper":
        return value
    epochs = int(value)
    if epochs < 1:
        raise ValueError("--epochs must be a positive integer or 'paper'.")
    return epochs


def _parse_assignment(text):
    import argparse
    import ast

    key, eq, value = text.partition("=")
    if not eq or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"--set expects NAME=VALUE; got {text!r}.")
    try:
        value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        pass  # a bare string, e.g. optimizer=adamw
    return key.strip(), value


def add_arguments(parser):
    """Options of ``python -m skbdl benchmark``: one sub-command per suite (``uci``)."""
    suites = parser.add_subparsers(dest="suite", metavar="SUITE", required=True)
    uci = suites.add_parser(
        "uci",
        help="UCI regression sets, standard splits: test RMSE and log-likelihood",
        description=(
            "Run the UCI regression protocol of the Bayesian deep learning literature "
            "on data folders in the standard layout; write a CSV (one row per split) "
            "and a markdown table beside the published numbers. Exit status 1 if any "
            "split failed (a split skipped for a method's row limit is no failure), 2 "
            "if the run cannot start (unknown name, missing optional package)."
        ),
    )
    uci.add_argument("--data-dir", required=True, help="directory of UCI data folders")
    uci.add_argument("--datasets", nargs="+", help="folder names (default: all)")
    uci.add_argument(
        "--methods",
        nargs="+",
        default=["mc_dropout"],
        help=f"registered methods (default: mc_dropout; available: {', '.join(METHODS)})",
    )
    uci.add_argument(
        "--splits", nargs="+", help="split numbers or ranges, e.g. 0 1 5-9 (default: all)"
    )
    uci.add_argument(
        "--protocol",
        nargs="+",
        choices=PROTOCOLS,
        default=["default"],
        help="'default' (library defaults, no tuning) and/or 'tuned' (per-split grid search)",
    )
    uci.add_argument("--n-jobs", type=int, default=1, help="parallel tasks (joblib)")
    uci.add_argument(
        "--epochs",
        type=_parse_epochs,
        help="training epochs for every method; 'paper': the folder's n_epochs.txt",
    )
    uci.add_argument(
        "--set",
        dest="params",
        action="append",
        type=_parse_assignment,
        default=[],
        metavar="NAME=VALUE",
        help="estimator parameter for every method, e.g. --set lr=0.003 (repeatable)",
    )
    uci.add_argument("--quick", action="store_true", help="smoke test: 1 epoch, few draws")
    uci.add_argument("--seed", type=int, default=0, help="base of the per-split seeds")
    uci.add_argument("--out", default="uci_results.csv", help="CSV path (default: %(default)s)")
    uci.add_argument("--markdown", help="markdown path (default: the CSV path with the suffix .md)")
    uci.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    """Run ``benchmark uci`` from parsed arguments; return the exit status."""
    start = time.perf_counter()
    try:
        rows = run_uci_benchmark(
            args.data_dir,
            datasets=args.datasets,
            methods=args.methods,
            splits=None if not args.splits else _parse_splits(args.splits),
            protocols=args.protocol,
            n_jobs=args.n_jobs,
            epochs=args.epochs,
            quick=args.quick,
            seed=args.seed,
            params=dict(args.params),
            progress=not args.no_progress,
        )
    except (ValueError, ImportError, FileNotFoundError) as exc:  # nothing ran
        print(f"skbdl benchmark uci: error: {exc}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - start
    write_csv(rows, args.out)
    markdown_path = args.markdown or os.fspath(Path(args.out).with_suffix(".md"))
    summary = summarize(rows)
    notes = [
        f"Command: `python -m skbdl benchmark uci {_describe(args)}`",
        "",
        f"Wall time: {wall:.0f} s with --n-jobs {args.n_jobs} "
        f"({os.cpu_count()} CPUs visible). Methods: "
        + "; ".join(f"{m}: {METHODS[m].description or METHODS[m].estimator}" for m in args.methods)
        + "."
        + (
            " Overridden for every method (--set): "
            + ", ".join(f"{k}={v!r}" for k, v in args.params)
            + "."
            if args.params
            else ""
        ),
    ]
    markdown = to_markdown(summary, title="UCI regression benchmark", notes=notes)
    Path(markdown_path).write_text(markdown)
    print(markdown)
    print(f"Wrote {args.out} and {markdown_path} ({wall:.0f} s).", file=sys.stderr)
    n_skipped = sum(map(_is_skipped, rows))
    if n_skipped:
        print(
            f"{n_skipped} of {len(rows)} splits skipped (row limits; see 'Skipped splits').",
            file=sys.stderr,
        )
    failed = [r for r in rows if _is_failed(r)]
    for r in failed:
        print(
            f"FAILED {r['dataset']} / {r['method']} ({r['protocol']}) split {r['split']}: "
            f"{r['status']}",
            file=sys.stderr,
        )
    if failed:
        print(f"{len(failed)} of {len(rows)} splits failed.", file=sys.stderr)
        return 1
    return 0


def _describe(args):
    parts = [f"--data-dir {args.data_dir}"]
    if args.datasets:
        parts.append("--datasets " + " ".join(args.datasets))
    parts.append("--methods " + " ".join(args.methods))
    if args.splits:
        parts.append("--splits " + " ".join(map(str, args.splits)))
    parts.append("--protocol " + " ".join(args.protocol))
    if args.epochs is not None:
        parts.append(f"--epochs {args.epochs}")
    parts += [f"--set {k}={v!r}" for k, v in args.params]
    if args.quick:
        parts.append("--quick")
    parts.append(f"--n-jobs {args.n_jobs}")
    return " ".join(parts)
