"""Methods of the UCI benchmark: how each is built, tuned and scored.

A method is one :func:`register_method` call with a :class:`MethodSpec`, at the end
of this module for the built-in ones; nothing else in the harness names a method.
"""

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..bbb import BayesianMLPRegressor
from ..ensemble import DeepEnsembleRegressor
from ..hyper_ensemble import HyperDeepEnsembleRegressor
from ..laplace import LaplaceRegressor
from ..mc_dropout import MCDropoutRegressor
from ..pbp import PBPRegressor
from ..swag import SWAGRegressor
from ._baselines import GP_MAX_TRAIN_ROWS, GaussianProcessBaseline, NGBoostBaseline


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
        prefix).  Keep it small: every point costs ``TUNED_CV`` fits per split
        (``skbdl.benchmark._runner.TUNED_CV``).
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
    >>> from skbdl.benchmark import METHODS, MethodSpec, register_method
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


# ---------------------------------------------------------- built-in methods
#: The harness's settings of every skbdl method: no progress bar per fit (the harness
#: shows its own progress), every other parameter at the library default.
_QUIET = {"verbose": 0}

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
register_method(
    "hyper_ensemble",
    MethodSpec(
        HyperDeepEnsembleRegressor,
        params=_QUIET,
        param_grid={},  # it tunes itself: members chosen on held-out rows
        ll="mixture",
        description="HyperDeepEnsembleRegressor, library defaults (20 candidates, 5 chosen)",
    ),
)

register_method(
    "swag",
    MethodSpec(
        SWAGRegressor,
        params=_QUIET,
        param_grid={"lr": [1e-3, 1e-2], "swag_start": [0.5, 0.75]},
        ll="mixture",
        quick_params={"n_samples": 10},
        description=(
            "SWAGRegressor, library defaults (Adam, iterates from half-way, rank 20, "
            "one model, recalibrated)"
        ),
    ),
)
register_method(
    "laplace",
    MethodSpec(
        LaplaceRegressor,
        param_grid={"hessian_structure": ["diag", "kron"]},
        ll="gaussian",  # the linearised predictive is one Gaussian
        eval_samples=1000,  # linearised draws: MC error of the moments well below the SE
        hidden_param=None,  # its default network: one hidden layer of 50, MAP-trained
        epochs_param=None,
        quick_params={"n_samples": 10},
        description=(
            "LaplaceRegressor, library defaults (Kronecker-factored GGN over all weights of "
            "the default MAP network, prior precision by marginal likelihood, linearised)"
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
