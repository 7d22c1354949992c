"""Active learning: acquisition functions and a loop that grows a labelled set.

An acquisition function scores unlabelled rows by how useful their label would be;
the loop fits a fresh clone of the estimator on the labelled rows, scores it on a
test set, labels the ``query_size`` best-scoring rows of the pool, and repeats.
The result is the learning curve: test score against number of labels.

Every acquisition function has the signature ``acquisition(estimator, X) ->
scores`` with ``scores`` of shape ``(n_rows,)``, *higher meaning query first*;
:func:`random_acquisition` also takes ``random_state``.  ``estimator`` may be a
fitted skbdl estimator or a ``Pipeline`` ending in one (the steps before the last
transform ``X`` first).  Entropy and variation ratios need only ``predict_proba``,
so they also work for any scikit-learn classifier; BALD needs
``predict_uncertainty``, predictive standard deviation ``predict(X,
return_std=True)``.

References
----------
N. Houlsby, F. Huszár, Z. Ghahramani and M. Lengyel, "Bayesian Active Learning for
Classification and Preference Learning", arXiv:1112.5745, 2011 (BALD).
Y. Gal, R. Islam and Z. Ghahramani, "Deep Bayesian Active Learning with Image
Data", ICML 2017.
"""

import inspect
import numbers
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.utils import check_random_state

from ._meta import predict_uncertainty
from .uncertainty import entropy

__all__ = [
    "ACQUISITION_FUNCTIONS",
    "ActiveLearningResult",
    "active_learning_loop",
    "bald",
    "predictive_entropy",
    "predictive_std",
    "random_acquisition",
    "variation_ratio",
]


def predictive_entropy(estimator, X):
    """Entropy of the predictive class probabilities (total uncertainty), in nats.

    Parameters
    ----------
    estimator : classifier
        Fitted, with ``predict_proba`` (skbdl's use their Bayesian model average).
    X : array-like of shape (n_rows, n_features)
        Unlabelled rows.

    Returns
    -------
    scores : ndarray of shape (n_rows,)
        ``H[p(y | x)]``, in ``[0, log n_classes]``: high for rows the model cannot
        decide, whether from noise or from ignorance.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skbdl.active import predictive_entropy
    >>> X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    >>> clf = LogisticRegression().fit(X, [0, 0, 1, 1])
    >>> scores = predictive_entropy(clf, [[0.0], [5.0]])
    >>> bool(scores[0] > scores[1])  # the boundary beats the far side
    True
    """
    return entropy(estimator.predict_proba(X))


def bald(estimator, X):
    """BALD: the mutual information between a row's label and the model parameters.

    ``I[y; w | x] = H[E_w p(y | x, w)] - E_w H[p(y | x, w)]``, the ``epistemic``
    part of :meth:`predict_uncertainty`.  High where the sampled networks are each
    confident but disagree: rows whose label would most reduce the model's
    uncertainty about its parameters (Houlsby et al. 2011), as opposed to rows that
    are merely noisy.

    Parameters
    ----------
    estimator : skbdl classifier, or a meta-estimator holding one
        Fitted; needs ``predict_uncertainty``, reached through a ``Pipeline``, a
        search estimator or a ``FrozenEstimator`` as by
        :func:`skbdl.predict_uncertainty`.
    X : array-like of shape (n_rows, n_features)
        Unlabelled rows.

    Returns
    -------
    scores : ndarray of shape (n_rows,)
        Mutual information in nats, non-negative.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl import MCDropoutClassifier
    >>> from skbdl.active import bald
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(100, 2)
    >>> clf = MCDropoutClassifier(hidden_layer_sizes=(16,), max_epochs=10, n_samples=20,
    ...                           random_state=0).fit(X, X[:, 0] > 0)
    >>> bald(clf, X[:3]).shape
    (3,)
    """
    return predict_uncertainty(estimator, X).epistemic


def variation_ratio(estimator, X):
    """Variation ratio: one minus the predictive probability of the most likely class.

    ``1 - max_c p(y = c | x)`` with ``p`` the predictive (for skbdl classifiers the
    Monte Carlo average), as in Gal, Islam & Ghahramani (2017).

    Parameters
    ----------
    estimator : classifier
        Fitted, with ``predict_proba``.
    X : array-like of shape (n_rows, n_features)
        Unlabelled rows.

    Returns
    -------
    scores : ndarray of shape (n_rows,)
        In ``[0, 1 - 1 / n_classes]``.

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> from skbdl.active import variation_ratio
    >>> clf = DummyClassifier(strategy="prior").fit([[0], [0], [0], [0]], [0, 0, 0, 1])
    >>> variation_ratio(clf, [[0]]).tolist()
    [0.25]
    """
    return 1.0 - np.max(estimator.predict_proba(X), axis=1)


def predictive_std(estimator, X):
    """Predictive standard deviation of a regressor (mean over targets).

    Parameters
    ----------
    estimator : regressor
        Fitted, whose ``predict`` accepts ``return_std=True`` (skbdl's regressors,
        a ``Pipeline`` ending in one, ``GaussianProcessRegressor``).
    X : array-like of shape (n_rows, n_features)
        Unlabelled rows.

    Returns
    -------
    scores : ndarray of shape (n_rows,)
        The total (aleatoric and epistemic) standard deviation, in the target's
        units; averaged over the targets of a multi-output model.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.gaussian_process import GaussianProcessRegressor
    >>> from skbdl.active import predictive_std
    >>> gp = GaussianProcessRegressor().fit([[0.0], [1.0]], [0.0, 1.0])
    >>> scores = predictive_std(gp, [[0.5], [3.0]])
    >>> bool(scores[1] > scores[0])  # far from the data
    True
    """
    _, std = estimator.predict(X, return_std=True)
    std = np.asarray(std, dtype=np.float64)
    return std.mean(axis=1) if std.ndim == 2 else std


def random_acquisition(estimator, X, random_state=None):
    """Uniform random scores: the baseline every acquisition function must beat.

    Parameters
    ----------
    estimator : estimator
        Ignored (kept for the common signature).
    X : array-like of shape (n_rows, n_features)
        Unlabelled rows.
    random_state : int, RandomState instance or None, default=None
        Seeds the draw.

    Returns
    -------
    scores : ndarray of shape (n_rows,)
        Independent draws from ``U(0, 1)``.

    Examples
    --------
    >>> from skbdl.active import random_acquisition
    >>> random_acquisition(None, [[0], [1], [2]], random_state=0).round(3).tolist()
    [0.549, 0.715, 0.603]
    """
    return check_random_state(random_state).uniform(size=len(X))


#: Acquisition functions by name, for ``active_learning_loop(acquisition=...)``.
ACQUISITION_FUNCTIONS = {
    "bald": bald,
    "predictive_entropy": predictive_entropy,
    "variation_ratio": variation_ratio,
    "predictive_std": predictive_std,
    "random": random_acquisition,
}


@dataclass(frozen=True)
class ActiveLearningResult:
    """The learning curve of an active-learning run, and what it labelled.

    Attributes
    ----------
    n_labelled : ndarray of shape (n_rounds,)
        Number of labelled rows the estimator of each round was fitted on.
    scores : ndarray of shape (n_rounds,)
        Its test score (``scoring``; greater is better).
    labelled : ndarray of shape (n_labelled[-1],)
        Indices into the pool of every labelled row, in the order they were
        labelled (the initial rows first).
    acquisition : str
        Name of the acquisition function.
    estimator : estimator
        The estimator of the last round, fitted on all the labelled rows.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl.active import ActiveLearningResult
    >>> result = ActiveLearningResult(np.array([10, 20]), np.array([0.7, 0.8]),
    ...                               np.arange(20), "random", None)
    >>> result.area_under_curve()
    0.75
    """

    n_labelled: np.ndarray
    scores: np.ndarray
    labelled: np.ndarray
    acquisition: str
    estimator: object

    def area_under_curve(self):
        """Mean test score over the rounds: one number to compare runs with.

        Returns
        -------
        area : float
            ``mean(scores)``; with rounds of equal ``query_size`` this is the
            normalised area under the learning curve.
        """
        return float(np.mean(self.scores))


def _initial_indices(y_pool, n_initial, classification, rng):
    order = rng.permutation(len(y_pool))
    if not classification:
        return order[:n_initial]
    # Round-robin over the classes (in shuffled order): a balanced start, as in
    # Gal et al. (2017), and never a single class.
    classes = np.unique(y_pool)
    per_class = [order[y_pool[order] == c] for c in classes]
    chosen = []
    for depth in range(max(len(p) for p in per_class)):
        for rows in per_class:
            if depth < len(rows) and len(chosen) < n_initial:
                chosen.append(rows[depth])
    return np.array(chosen, dtype=int)


def _acquire(acquisition, estimator, X, rng):
    if "random_state" in inspect.signature(acquisition).parameters:
        return acquisition(estimator, X, random_state=rng)
    return acquisition(estimator, X)


def active_learning_loop(
    estimator,
    X_pool,
    y_pool,
    X_test,
    y_test,
    *,
    acquisition="bald",
    n_initial=20,
    query_size=10,
    n_queries=10,
    scoring=None,
    pool_subsample=None,
    initial_indices=None,
    random_state=None,
    verbose=0,
):
    """Grow a labelled set from a pool, refitting a clone of the estimator every round.

    Round 0 fits ``clone(estimator)`` on ``n_initial`` pool rows; each of the
    ``n_queries`` following rounds scores the unlabelled rows with ``acquisition``,
    labels the ``query_size`` highest-scoring ones (ties broken at random) and fits
    a fresh clone on all labelled rows.  Every round's estimator is scored on
    ``X_test, y_test``.  The labels ``y_pool`` play the oracle.

    Parameters
    ----------
    estimator : estimator
        Any scikit-learn estimator (a skbdl estimator, or a ``Pipeline`` ending in
        one), cloned every round; its ``random_state`` is kept as given.
    X_pool : array-like of shape (n_pool, n_features)
        The pool of unlabelled rows.
    y_pool : array-like of shape (n_pool,) or (n_pool, n_outputs)
        Their labels, revealed only when a row is queried.
    X_test : array-like of shape (n_test, n_features)
        Rows on which every round's estimator is scored.
    y_test : array-like of shape (n_test,) or (n_test, n_outputs)
        Their labels.
    acquisition : str or callable, default='bald'
        A name of :data:`ACQUISITION_FUNCTIONS` (``'bald'``,
        ``'predictive_entropy'``, ``'variation_ratio'``, ``'predictive_std'``,
        ``'random'``) or a callable ``acquisition(estimator, X) -> scores`` (higher:
        query first), which may also take ``random_state``.
    n_initial : int, default=20
        Rows labelled before the first fit: balanced over the classes for a
        classifier (round-robin), uniformly at random otherwise.
    query_size : int, default=10
        Rows labelled per round.
    n_queries : int, default=10
        Number of acquisition rounds (the curve has ``n_queries + 1`` points; fewer
        if the pool runs out).
    scoring : str or callable, default=None
        Test score, as ``scoring=`` in ``cross_validate`` (``None``: the
        estimator's ``score``, accuracy or R²), e.g. ``'neg_log_loss'`` or
        :data:`skbdl.metrics.neg_nll_scorer`.
    pool_subsample : int, default=None
        Score only a random subset of this many unlabelled rows per round (Gal et
        al. use 2000), which bounds the cost of acquisition on large pools.
    initial_indices : array-like of int, default=None
        Pool rows to label first, instead of drawing ``n_initial``.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial draw, tie-breaking, subsampling and random acquisition.
    verbose : int, default=0
        1: print one line per round.

    Returns
    -------
    result : ActiveLearningResult
        ``n_labelled`` and ``scores`` per round (the learning curve), the labelled
        pool indices in order, and the last round's estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skbdl.active import active_learning_loop
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(300, 2)
    >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
    >>> result = active_learning_loop(
    ...     LogisticRegression(), X[:200], y[:200], X[200:], y[200:],
    ...     acquisition="predictive_entropy", n_initial=4, query_size=4, n_queries=3,
    ...     random_state=0)
    >>> result.n_labelled.tolist()
    [4, 8, 12, 16]
    >>> len(set(result.labelled.tolist()))
    16
    """
    rng = check_random_state(random_state)
    for name, value in (("n_initial", n_initial), ("query_size", query_size)):
        if not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if not isinstance(n_queries, numbers.Integral) or n_queries < 0:
        raise ValueError(f"n_queries must be a non-negative integer; got {n_queries!r}.")
    if isinstance(acquisition, str):
        if acquisition not in ACQUISITION_FUNCTIONS:
            raise ValueError(
                f"Unknown acquisition {acquisition!r}; choose one of "
                f"{sorted(ACQUISITION_FUNCTIONS)} or pass a callable."
            )
        name, acquisition = acquisition, ACQUISITION_FUNCTIONS[acquisition]
    elif callable(acquisition):
        name = getattr(acquisition, "__name__", type(acquisition).__name__)
    else:
        raise TypeError(f"acquisition must be a name or a callable; got {acquisition!r}.")

    X_pool, y_pool = np.asarray(X_pool), np.asarray(y_pool)
    if len(X_pool) != len(y_pool):
        raise ValueError(f"X_pool has {len(X_pool)} rows but y_pool has {len(y_pool)}.")
    scorer = check_scoring(estimator, scoring=scoring)
    if initial_indices is None:
        labelled = _initial_indices(y_pool, n_initial, is_classifier(estimator), rng)
    else:
        labelled = np.asarray(initial_indices, dtype=int)
        if len(np.unique(labelled)) != len(labelled):
            raise ValueError("initial_indices must not repeat a row.")
    is_labelled = np.zeros(len(X_pool), dtype=bool)
    is_labelled[labelled] = True

    n_labelled, scores = [], []
    fitted = None
    for round_ in range(n_queries + 1):
        if round_ > 0:
            candidates = np.flatnonzero(~is_labelled)
            if len(candidates) == 0:
                break
            if pool_subsample is not None and len(candidates) > pool_subsample:
                candidates = rng.choice(candidates, pool_subsample, replace=False)
            acquired = np.asarray(
                _acquire(acquisition, fitted, X_pool[candidates], rng), dtype=np.float64
            )
            if acquired.shape != (len(candidates),):
                raise ValueError(
                    f"The acquisition function returned shape {acquired.shape}; "
                    f"expected ({len(candidates)},)."
                )
            # Highest score first; random order among equal scores.
            order = np.lexsort((rng.uniform(size=len(candidates)), -acquired))
            queried = candidates[order[:query_size]]
            labelled = np.concatenate([labelled, queried])
            is_labelled[queried] = True
        fitted = clone(estimator).fit(X_pool[labelled], y_pool[labelled])
        n_labelled.append(len(labelled))
        scores.append(float(scorer(fitted, X_test, y_test)))
        if verbose:
            print(f"[{name}] round {round_}: {len(labelled)} labels, score {scores[-1]:.4f}")
    return ActiveLearningResult(
        np.array(n_labelled), np.array(scores), labelled.copy(), name, fitted
    )
