"""Scorers: the uncertainty metrics as ``scoring=`` values of scikit-learn's tools.

A scorer is a callable ``scorer(estimator, X, y) -> float``, greater is better: the
protocol every scikit-learn tool that takes ``scoring=`` accepts (``cross_val_score``,
``cross_validate``, ``GridSearchCV``, ``RandomizedSearchCV``, ``learning_curve``,
``validation_curve``, ``permutation_importance``...).  No string registry is
involved: pass the objects themselves, or the dict of :func:`uncertainty_scorers`.

``sklearn.metrics.make_scorer`` cannot express these scores: it gives a metric only
the positive-class column of ``predict_proba`` for binary problems and has no way to
ask a regressor for ``predict(X, return_std=True)``.  :class:`UncertaintyScorer`
calls those methods itself.
"""

import numpy as np
from sklearn.base import is_classifier

from ._classification import (
    brier_score,
    categorical_nll,
    expected_calibration_error,
    maximum_calibration_error,
)
from ._regression import crps_gaussian, gaussian_nll, regression_calibration_error


def _fitted_model(estimator):
    """The model a fitted ``GridSearchCV`` / ``RandomizedSearchCV`` predicts with.

    A search object forwards ``predict_proba`` but not ``predict(X, return_std=True)``;
    its ``best_estimator_`` (``refit=True``) makes exactly the same predictions, so
    nested cross-validation (a search scored by an uncertainty scorer) works.
    """
    while hasattr(estimator, "best_estimator_"):
        estimator = estimator.best_estimator_
    return estimator


def _gaussian_nll_from_std(y, mean, std):
    std = np.asarray(std, dtype=np.float64)
    return gaussian_nll(y, mean, std**2)


class UncertaintyScorer:
    """A scorer (``scoring=``) built from an uncertainty metric.

    Calls the estimator's ``predict_proba(X)`` (classifiers) or
    ``predict(X, return_std=True)`` (regressors, the Gaussian summary of the
    predictive) and scores the result with a metric of this module, so that
    ``GridSearchCV`` and ``cross_validate`` can choose hyper-parameters for the
    quality of the uncertainty rather than for accuracy alone.  Works with any
    estimator that has these methods: skbdl's, a ``Pipeline`` ending in one,
    ``GaussianProcessRegressor``, ``CalibratedClassifierCV``, and a fitted
    ``GridSearchCV`` or ``RandomizedSearchCV`` over any of them (its
    ``best_estimator_`` is scored, so nested cross-validation works).

    Parameters
    ----------
    classification_metric : callable, default=None
        ``metric(y_true, proba, classes=estimator.classes_, **metric_kwargs)``, used
        when the estimator is a classifier; ``None``: the scorer refuses
        classifiers.
    regression_metric : callable, default=None
        ``metric(y, mean, std, **metric_kwargs)``, used for regressors; ``None``: the
        scorer refuses regressors.
    greater_is_better : bool, default=False
        If False (a loss), the scorer returns ``-metric``, following scikit-learn's
        rule that greater scores are better.
    name : str, default=None
        Shown by ``repr``.
    **metric_kwargs : dict
        Extra keyword arguments of the metric (e.g. ``n_bins=10,
        strategy='quantile'``).

    Examples
    --------
    A scorer for the adaptive-bin ECE, and the ready-made negative NLL:

    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.datasets import load_iris
    >>> from skbdl.metrics import UncertaintyScorer, expected_calibration_error, neg_nll_scorer
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=500).fit(X, y)
    >>> adaptive_ece = UncertaintyScorer(expected_calibration_error, strategy="quantile")
    >>> -0.2 < adaptive_ece(clf, X, y) <= 0.0
    True
    >>> round(neg_nll_scorer(clf, X, y), 2)
    -0.12

    In a grid search, by name or as the object:

    >>> from sklearn.model_selection import GridSearchCV
    >>> search = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.01, 1.0]},
    ...                       scoring={"nll": neg_nll_scorer, "accuracy": "accuracy"},
    ...                       refit="nll", cv=3).fit(X, y)
    >>> search.best_params_
    {'C': 1.0}
    """

    def __init__(
        self,
        classification_metric=None,
        regression_metric=None,
        *,
        greater_is_better=False,
        name=None,
        **metric_kwargs,
    ):
        if classification_metric is None and regression_metric is None:
            raise ValueError("Give a classification_metric, a regression_metric or both.")
        self.classification_metric = classification_metric
        self.regression_metric = regression_metric
        self.greater_is_better = greater_is_better
        self.name = name
        self.metric_kwargs = metric_kwargs

    def __call__(self, estimator, X, y_true):
        """Score a fitted estimator on ``X, y_true``.

        Parameters
        ----------
        estimator : estimator
            A fitted classifier with ``predict_proba`` and ``classes_``, or a fitted
            regressor whose ``predict`` accepts ``return_std=True`` (or a fitted
            search object whose ``best_estimator_`` is one of these).
        X : array-like of shape (n_rows, n_features)
            Inputs.
        y_true : array-like of shape (n_rows,) or (n_rows, n_outputs)
            True labels or targets.

        Returns
        -------
        score : float
            The metric (``greater_is_better=True``) or its negative.
        """
        estimator = _fitted_model(estimator)
        if is_classifier(estimator):
            if self.classification_metric is None:
                raise TypeError(f"{self!r} scores regressors only; got a classifier.")
            proba = estimator.predict_proba(X)
            value = self.classification_metric(
                np.asarray(y_true), proba, classes=estimator.classes_, **self.metric_kwargs
            )
        else:
            if self.regression_metric is None:
                raise TypeError(f"{self!r} scores classifiers only; got {type(estimator)}.")
            mean, std = estimator.predict(X, return_std=True)
            y_true = np.asarray(y_true, dtype=np.float64).reshape(np.shape(mean))
            value = self.regression_metric(y_true, mean, std, **self.metric_kwargs)
        return float(value) if self.greater_is_better else -float(value)

    def __repr__(self):
        if self.name is not None:
            return f"<UncertaintyScorer {self.name}>"
        metrics = [
            m.__name__
            for m in (self.classification_metric, self.regression_metric)
            if m is not None
        ]
        return f"<UncertaintyScorer {'/'.join(metrics)}>"


#: Negative mean NLL: ``-categorical_nll`` (classifiers), ``-gaussian_nll`` of the
#: Gaussian summary ``N(mean, std**2)`` (regressors).  Greater is better.
neg_nll_scorer = UncertaintyScorer(categorical_nll, _gaussian_nll_from_std, name="neg_nll")

#: Negative mean CRPS of the Gaussian summary (regressors).  Greater is better.
neg_crps_scorer = UncertaintyScorer(regression_metric=crps_gaussian, name="neg_crps")

#: Negative ECE, 15 equal-width bins (classifiers).  Greater is better.
neg_ece_scorer = UncertaintyScorer(expected_calibration_error, name="neg_ece")

#: Negative multi-class Brier score (classifiers).  Greater is better.
neg_brier_scorer = UncertaintyScorer(brier_score, name="neg_brier")

#: Negative regression calibration error, 19 levels (regressors).  Greater is better.
neg_regression_calibration_error_scorer = UncertaintyScorer(
    regression_metric=regression_calibration_error, name="neg_regression_calibration_error"
)

#: Negative ECE, 15 bins with equal numbers of rows (``strategy='quantile'``, the
#: adaptive calibration error; classifiers).  Greater is better.
neg_adaptive_ece_scorer = UncertaintyScorer(
    expected_calibration_error, strategy="quantile", name="neg_adaptive_ece"
)

#: Negative maximum calibration error, 15 equal-width bins (classifiers).  Greater is
#: better.
neg_mce_scorer = UncertaintyScorer(maximum_calibration_error, name="neg_mce")

_SCORERS = {
    "neg_nll": neg_nll_scorer,
    "neg_crps": neg_crps_scorer,
    "neg_ece": neg_ece_scorer,
    "neg_adaptive_ece": neg_adaptive_ece_scorer,
    "neg_mce": neg_mce_scorer,
    "neg_brier": neg_brier_scorer,
    "neg_regression_calibration_error": neg_regression_calibration_error_scorer,
}

#: The scorers of :func:`uncertainty_scorers`, per task.
_TASK_SCORERS = {
    "classification": ("neg_nll", "neg_brier", "neg_ece"),
    "regression": ("neg_nll", "neg_crps", "neg_regression_calibration_error"),
}


def uncertainty_scorers(task):
    """The proper scores and calibration errors of a task, as one ``scoring=`` dict.

    For ``cross_validate`` (one ``test_<name>`` column per entry), or
    ``GridSearchCV(..., scoring=..., refit=name)``.  Add scikit-learn's own scores
    to the dict to see them beside (``{**uncertainty_scorers('regression'),
    'r2': 'r2'}``).

    Parameters
    ----------
    task : {'classification', 'regression'}
        ``'classification'``: ``neg_nll`` (log loss), ``neg_brier`` and ``neg_ece``
        (15 equal-width bins), from ``predict_proba``.  ``'regression'``:
        ``neg_nll``, ``neg_crps`` and ``neg_regression_calibration_error`` of the
        Gaussian summary ``N(mean, std**2)`` of ``predict(X, return_std=True)``.

    Returns
    -------
    scoring : dict of str to UncertaintyScorer
        A new dict (safe to extend) of the module's scorer objects, keyed by their
        :func:`get_scorer` names; every score is greater-is-better.

    See Also
    --------
    get_scorer : One scorer by name.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import cross_validate
    >>> from skbdl.metrics import uncertainty_scorers
    >>> X, y = load_iris(return_X_y=True)
    >>> scoring = {**uncertainty_scorers("classification"), "accuracy": "accuracy"}
    >>> sorted(scoring)
    ['accuracy', 'neg_brier', 'neg_ece', 'neg_nll']
    >>> scores = cross_validate(LogisticRegression(max_iter=500), X, y, cv=3, scoring=scoring)
    >>> bool(scores["test_neg_nll"].mean() < 0)
    True
    """
    try:
        names = _TASK_SCORERS[task]
    except (KeyError, TypeError):
        raise ValueError(f"task must be 'classification' or 'regression'; got {task!r}.") from None
    return {name: _SCORERS[name] for name in names}


def get_scorer_names():
    """Names accepted by :func:`get_scorer`.

    Returns
    -------
    names : list of str
        Sorted.

    Examples
    --------
    >>> from skbdl.metrics import get_scorer_names
    >>> get_scorer_names()[:3]
    ['neg_adaptive_ece', 'neg_brier', 'neg_crps']
    """
    return sorted(_SCORERS)


def get_scorer(name):
    """The uncertainty scorer of a name, for ``scoring=``.

    Parameters
    ----------
    name : str
        One of :func:`get_scorer_names`: ``'neg_nll'`` (classifiers and
        regressors), ``'neg_ece'``, ``'neg_adaptive_ece'``, ``'neg_mce'``,
        ``'neg_brier'`` (classifiers), ``'neg_crps'``,
        ``'neg_regression_calibration_error'`` (regressors).  scikit-learn's own
        names (``'accuracy'``, ``'neg_log_loss'``, ...) are not here: pass them to
        ``scoring=`` directly.

    Returns
    -------
    scorer : UncertaintyScorer
        Callable as ``scorer(estimator, X, y)``; greater is better.

    Examples
    --------
    >>> from skbdl.metrics import get_scorer
    >>> get_scorer("neg_ece")
    <UncertaintyScorer neg_ece>
    """
    try:
        return _SCORERS[name]
    except KeyError:
        raise ValueError(f"Unknown scorer {name!r}; choose one of {get_scorer_names()}.") from None
