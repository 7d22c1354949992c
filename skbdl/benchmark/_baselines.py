"""Tabular baselines of the UCI benchmark, behind skbdl's sampling API."""

from abc import ABCMeta, abstractmethod

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

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
    >>> from skbdl.benchmark import GaussianProcessBaseline
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
    >>> from skbdl.benchmark import NGBoostBaseline
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
