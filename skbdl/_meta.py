"""Uncertainty through scikit-learn's meta-estimators.

A fitted ``Pipeline``, ``GridSearchCV`` or ``TransformedTargetRegressor`` has
``predict`` but not ``predict_uncertainty``, ``predict_interval`` or
``sample_predictions``: scikit-learn's meta-estimators only forward the methods they
know.  The functions here walk such a wrapper down to the skbdl estimator inside it,
transforming ``X`` on the way exactly as the wrapper's ``predict`` would, call the
method there, and map the result back through any target transformation.
"""

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection._search import BaseSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    RobustScaler,
    StandardScaler,
)
from sklearn.utils.validation import check_is_fitted

from .uncertainty import RegressionUncertainty

__all__ = ["predict_interval", "predict_uncertainty", "sample_predictions"]


def _affine_slope(transformer):
    """The slope ``a`` of a fitted target transformer whose ``inverse_transform`` is
    ``z -> a * z + b`` per target, shape (n_targets,) or a scalar; ``None`` when the
    transformer is not one of the scalers known to be affine."""
    kind = type(transformer)
    if kind in (StandardScaler, RobustScaler, MaxAbsScaler):
        # inverse_transform: z * scale_ (+ mean_ or center_); scale_ is None without scaling.
        return 1.0 if transformer.scale_ is None else transformer.scale_
    if kind is MinMaxScaler:
        return 1.0 / transformer.scale_  # inverse_transform: (z - min_) / scale_
    if kind is FunctionTransformer and transformer.func is None:
        if transformer.inverse_func is None:
            return 1.0  # TransformedTargetRegressor() without a transformer: identity
    return None


class _TargetMap:
    """Maps predictions of a ``TransformedTargetRegressor``'s inner regressor from the
    transformed target's units back to the original ones (an affine map ``a z + b``)."""

    def __init__(self, wrapper):
        transformer = wrapper.transformer_
        self.slope = _affine_slope(transformer)
        if self.slope is None:
            raise ValueError(
                f"{type(wrapper).__name__} transforms the target with "
                f"{_describe(transformer)}, which is not a known affine map: a Gaussian "
                "predictive's mean, standard deviation and intervals do not map back "
                "through a nonlinear transformation.  Use StandardScaler, MinMaxScaler, "
                "MaxAbsScaler or RobustScaler (or no transformer) as the target "
                "transformer, or call the method on its fitted `regressor_` to get the "
                "uncertainty in the transformed target's units."
            )
        self.transformer = transformer
        self.n_targets = transformer.n_features_in_

    def location(self, values):
        """``inverse_transform`` of predictions of shape (..., n_targets), or of any
        shape when there is one target, as ``TransformedTargetRegressor.predict``
        applies it (so a mapped mean equals its ``predict`` bit for bit)."""
        values = np.asarray(values)
        flat = values.reshape(-1, self.n_targets)
        return self.transformer.inverse_transform(flat).reshape(values.shape)

    def scale(self, std):
        return std * np.abs(self.slope)

    def variance(self, var):
        return var * self.slope**2

    def __call__(self, method, result):
        if method == "predict_uncertainty":
            return RegressionUncertainty(
                self.location(result.mean),
                self.scale(result.std),
                self.variance(result.total_var),
                self.variance(result.aleatoric_var),
                self.variance(result.epistemic_var),
            )
        if method == "predict_interval":
            lower, upper = self.location(result[..., 0]), self.location(result[..., 1])
            # A negative slope swaps the ends.
            return np.stack([np.minimum(lower, upper), np.maximum(lower, upper)], axis=-1)
        mean_samples, var_samples = result  # sample_predictions
        return self.location(mean_samples), self.variance(var_samples)


def _describe(estimator):
    return repr(estimator) if isinstance(estimator, str) else type(estimator).__name__


def _unwrap(estimator, X, method):
    """``(final estimator, X as it sees it, target maps innermost first)``."""
    path, maps = [], []
    while not hasattr(estimator, method):
        path.append(_describe(estimator))
        if isinstance(estimator, Pipeline):
            if len(estimator.steps) > 1:
                X = estimator[:-1].transform(X)
            estimator = estimator.steps[-1][1]
        elif isinstance(estimator, BaseSearchCV):
            check_is_fitted(estimator)
            if not hasattr(estimator, "best_estimator_"):
                raise AttributeError(
                    f"This {_describe(estimator)} was fitted with refit=False, so it holds "
                    "no best_estimator_ to predict with.  Fit it with refit=True (or a "
                    "metric name, for multi-metric scoring)."
                )
            estimator = estimator.best_estimator_
        elif isinstance(estimator, TransformedTargetRegressor):
            check_is_fitted(estimator)
            maps.append(_TargetMap(estimator))
            estimator = estimator.regressor_
        elif isinstance(estimator, FrozenEstimator):
            estimator = estimator.estimator
        else:
            name, wrappers = path[-1], path[:-1]
            where = f"The final estimator of {' -> '.join(wrappers)}, {name}," if wrappers else name
            raise TypeError(
                f"{where} has no {method} method.  skbdl's estimators have it "
                "(regressors: predict_uncertainty, predict_interval and "
                "sample_predictions; classifiers: predict_uncertainty and "
                "sample_predictions); this function reaches them through Pipeline, "
                "GridSearchCV and the other search estimators, TransformedTargetRegressor "
                "and FrozenEstimator."
            )
    return estimator, X, maps[::-1]


def _call(method, estimator, X, /, **kwargs):
    # Positional-only: ``method`` is also a keyword of ``predict_interval``.
    final, X, maps = _unwrap(estimator, X, method)
    result = getattr(final, method)(X, **kwargs)
    for target_map in maps:
        result = target_map(method, result)
    return result


def predict_uncertainty(estimator, X, **kwargs):
    """``predict_uncertainty`` of the skbdl estimator inside a fitted meta-estimator.

    scikit-learn's meta-estimators do not forward ``predict_uncertainty``; this
    function finds the estimator that has it and calls it on ``X`` as that
    estimator sees it: through every step but the last of a ``Pipeline``, the
    ``best_estimator_`` of ``GridSearchCV``, ``RandomizedSearchCV`` or
    ``HalvingGridSearchCV``, the ``regressor_`` of a ``TransformedTargetRegressor``
    (results mapped back to the original target's units), the estimator of a
    ``FrozenEstimator``, in any nesting.  An estimator that has the method itself
    (any skbdl estimator) is called directly.

    Parameters
    ----------
    estimator : estimator
        A fitted skbdl estimator, or a fitted meta-estimator around one.
    X : array-like of shape (n_rows, n_features)
        Inputs, as the outermost estimator's ``predict`` takes them.
    **kwargs : dict
        Passed to the method (e.g. ``n_samples``).

    Returns
    -------
    uncertainty : RegressionUncertainty or ClassificationUncertainty
        As the final estimator's ``predict_uncertainty`` returns it: for a
        regressor ``mean``, ``std``, ``total_var``, ``aleatoric_var``,
        ``epistemic_var`` of shape (n_rows,) or (n_rows, n_outputs); for a
        classifier ``proba`` (n_rows, n_classes) and ``total``, ``aleatoric``,
        ``epistemic`` (n_rows,).  Through a ``TransformedTargetRegressor`` the mean
        is mapped by the transformer's ``inverse_transform`` (so it equals that
        regressor's ``predict``) and the standard deviation and variances by the
        slope of that affine map.

    Raises
    ------
    TypeError
        If the final estimator has no ``predict_uncertainty`` method.
    ValueError
        If a ``TransformedTargetRegressor`` transforms the target by anything other
        than a known affine map (``StandardScaler``, ``MinMaxScaler``,
        ``MaxAbsScaler``, ``RobustScaler``, the identity): a nonlinear map of a
        Gaussian predictive has another mean and spread.

    See Also
    --------
    predict_interval, sample_predictions

    Notes
    -----
    ``GridSearchCV(...).predict(X, return_std=True)`` fails because
    ``BaseSearchCV.predict`` takes no keyword arguments;
    ``predict_uncertainty(search, X).std`` is the way to that number.  A
    ``Pipeline`` forwards keyword arguments, so ``pipe.predict(X, return_std=True)``
    works there too.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> import skbdl
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-2, 2, size=(200, 1))
    >>> y = X[:, 0] + 0.3 * rng.randn(200)
    >>> pipe = make_pipeline(
    ...     StandardScaler(),
    ...     skbdl.MCDropoutRegressor(hidden_layer_sizes=(16,), max_epochs=10, random_state=0),
    ... )
    >>> search = GridSearchCV(pipe, {"mcdropoutregressor__dropout": [0.05, 0.1]}, cv=2)
    >>> u = skbdl.predict_uncertainty(search.fit(X, y), X[:3])
    >>> u.mean.shape, u.epistemic_var.shape
    ((3,), (3,))
    >>> best = search.best_estimator_
    >>> same = best[-1].predict_uncertainty(best[0].transform(X[:3]))
    >>> bool(np.array_equal(u.std, same.std))
    True
    """
    return _call("predict_uncertainty", estimator, X, **kwargs)


def predict_interval(estimator, X, confidence=0.9, **kwargs):
    """``predict_interval`` of the skbdl regressor inside a fitted meta-estimator.

    Walks ``estimator`` as :func:`predict_uncertainty` does (``Pipeline``, the
    search estimators, ``TransformedTargetRegressor``, ``FrozenEstimator``).

    Parameters
    ----------
    estimator : estimator
        A fitted skbdl regressor, or a fitted meta-estimator around one.
    X : array-like of shape (n_rows, n_features)
        Inputs, as the outermost estimator's ``predict`` takes them.
    confidence : float, default=0.9
        Probability in ``(0, 1)`` that the interval holds a new target.
    **kwargs : dict
        Passed to the regressor's ``predict_interval`` (``method``, ``n_samples``).

    Returns
    -------
    intervals : ndarray of shape (n_rows, 2) or (n_rows, n_outputs, 2)
        Lower and upper ends on the last axis, in the original target's units
        (through a ``TransformedTargetRegressor``, both ends mapped by its affine
        ``inverse_transform``).

    Raises
    ------
    TypeError
        If the final estimator has no ``predict_interval`` method (skbdl's
        classifiers have none).
    ValueError
        If a ``TransformedTargetRegressor`` transforms the target nonlinearly.

    See Also
    --------
    predict_uncertainty, sample_predictions

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> import skbdl
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-2, 2, size=(200, 1))
    >>> y = X[:, 0] + 0.3 * rng.randn(200)
    >>> pipe = make_pipeline(
    ...     StandardScaler(),
    ...     skbdl.MCDropoutRegressor(hidden_layer_sizes=(16,), max_epochs=10, random_state=0),
    ... ).fit(X, y)
    >>> skbdl.predict_interval(pipe, X[:3], confidence=0.8).shape
    (3, 2)
    """
    return _call("predict_interval", estimator, X, confidence=confidence, **kwargs)


def sample_predictions(estimator, X, **kwargs):
    """``sample_predictions`` of the skbdl estimator inside a fitted meta-estimator.

    Walks ``estimator`` as :func:`predict_uncertainty` does (``Pipeline``, the
    search estimators, ``TransformedTargetRegressor``, ``FrozenEstimator``).

    Parameters
    ----------
    estimator : estimator
        A fitted skbdl estimator, or a fitted meta-estimator around one.
    X : array-like of shape (n_rows, n_features)
        Inputs, as the outermost estimator's ``predict`` takes them.
    **kwargs : dict
        Passed to the method (``n_samples``).

    Returns
    -------
    samples : ndarray or tuple of ndarray
        As the final estimator returns them: a classifier's ``proba_samples`` of
        shape (n_samples, n_rows, n_classes); a regressor's ``(mean_samples,
        var_samples)``, each of shape (n_samples, n_rows) or (n_samples, n_rows,
        n_outputs).  Through a ``TransformedTargetRegressor`` the means are mapped by
        its affine ``inverse_transform`` and the variances by the slope squared.

    Raises
    ------
    TypeError
        If the final estimator has no ``sample_predictions`` method.
    ValueError
        If a ``TransformedTargetRegressor`` transforms the target nonlinearly.

    See Also
    --------
    predict_uncertainty, predict_interval

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> import skbdl
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 2))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> pipe = make_pipeline(
    ...     StandardScaler(),
    ...     skbdl.MCDropoutClassifier(hidden_layer_sizes=(16,), max_epochs=10, random_state=0),
    ... ).fit(X, y)
    >>> skbdl.sample_predictions(pipe, X[:3], n_samples=20).shape
    (20, 3, 2)
    """
    return _call("sample_predictions", estimator, X, **kwargs)
