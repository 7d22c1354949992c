"""The UCI regression benchmark of the literature (``python -m skbdl benchmark uci``).

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
published results are data, ``published_uci.json`` in this package, loaded into
:data:`PUBLISHED_RESULTS` (no file outside the package is read at run time).

Layout: ``_registry`` (:class:`MethodSpec`, :data:`METHODS`, the built-in methods:
adding one is one :func:`register_method` call there), ``_baselines`` (the tabular
baselines), ``_published`` (the published tables), ``_runner`` (fit and score the
splits), ``_report`` (aggregation, CSV, markdown) and ``_cli`` (the command's
options).
"""

from ._baselines import GP_MAX_TRAIN_ROWS, GaussianProcessBaseline, NGBoostBaseline
from ._published import PUBLISHED_COLUMNS, PUBLISHED_RESULTS
from ._registry import METHODS, MethodSpec, register_method
from ._report import summarize, to_markdown, write_csv
from ._runner import gaussian_interval_coverage, run_uci_benchmark

__all__ = [
    "GP_MAX_TRAIN_ROWS",
    "METHODS",
    "PUBLISHED_COLUMNS",
    "PUBLISHED_RESULTS",
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
