"""Post-hoc posteriors on a trained network: what the last-layer and Laplace
estimators share (the ``estimator=`` argument, its default network, fitting or
freezing it, and prediction from a posterior module)."""

import copy
import math
import numbers

import numpy as np
import torch
from sklearn.base import MetaEstimatorMixin, _fit_context, clone, is_classifier
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch import NeuralNet

from ._base import BasePredictor, _seed_from
from ._training import BaseBayesianNetwork

#: The default network (``estimator=None``), pinned here rather than inherited from
#: MCDropoutClassifier / MCDropoutRegressor, so that changes to those estimators'
#: defaults do not change these ones.  A deterministic one-hidden-layer MLP trained
#: as a MAP estimate: Adam with an L2 penalty of ``_DEFAULT_NETWORK_PRIOR / n_train``
#: on the mean loss is the gradient of ``sum_n loss_n + prior / 2 |theta|^2`` divided
#: by ``n_train``, i.e. the posterior mode under a ``N(0, 1 / prior)`` prior on every
#: weight and bias (the prior of BayesianMLPClassifier's default, ``prior_scale=1``).
_DEFAULT_NETWORK = dict(
    hidden_layer_sizes=(50,),
    activation="relu",
    dropout=0.0,
    lr=1e-3,
    optimizer="adam",
    batch_size=32,
    early_stopping=False,
    calibrate=False,
)
_DEFAULT_NETWORK_PRIOR = 1.0
#: Epochs of the default network: ``_DEFAULT_MAX_EPOCHS``, fewer where that would
#: exceed ``_DEFAULT_MAX_STEPS`` optimiser steps, at least ``_DEFAULT_MIN_EPOCHS``.
_DEFAULT_MAX_EPOCHS, _DEFAULT_MAX_STEPS, _DEFAULT_MIN_EPOCHS = 200, 10_000, 10

#: The ``class_weight`` parameter of the post-hoc classifiers.
CLASS_WEIGHT_DOC = """    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes, as in scikit-learn: a dict ``{label: weight}``
        (labels as in ``y``; classes not listed weigh 1), ``'balanced'`` (``n_rows /
        (n_classes * np.bincount(y))``) or None (equal).  Applied as sample weights
        (multiplying ``sample_weight`` of ``fit``): they weigh the likelihood of the
        posterior and the training of a network fitted here.
"""

#: The ``class_weight`` constraint of the post-hoc classifiers.
CLASS_WEIGHT_CONSTRAINT = {"class_weight": [None, dict, StrOptions({"balanced"})]}

DEFAULT_NETWORK_DOC = """skbdl's default network, trained as a MAP estimate:
        ``MCDropout{cls}(hidden_layer_sizes=(50,), dropout=0.0,
        weight_decay=1 / n_train, batch_size=32, lr=1e-3)`` for 200 epochs (fewer
        where that would exceed 10 000 steps, at least 10): a deterministic MLP whose
        weight decay is a ``N(0, 1)`` prior on its weights and biases (these
        settings are fixed here, not taken from MCDropout{cls}'s defaults)"""

ESTIMATOR_DOC = """    estimator : estimator, default=None
        The network: an skbdl estimator, a skorch net, or a ``Pipeline`` ending in
        one (the transformers are applied before the network).  It is cloned and
        fitted by ``fit``, unless wrapped in :class:`sklearn.frozen.FrozenEstimator`,
        which uses a network trained beforehand as it is.  ``None`` trains
        {default}.
"""


def default_network_params(n_train):
    """Keyword arguments of the default network for ``n_train`` training rows."""
    n_train = max(int(n_train), 1)
    steps_per_epoch = math.ceil(n_train / _DEFAULT_NETWORK["batch_size"])
    max_epochs = min(
        _DEFAULT_MAX_EPOCHS,
        max(_DEFAULT_MIN_EPOCHS, math.ceil(_DEFAULT_MAX_STEPS / steps_per_epoch)),
    )
    return dict(
        _DEFAULT_NETWORK,
        max_epochs=max_epochs,
        weight_decay=_DEFAULT_NETWORK_PRIOR / n_train,
    )


def unwrap(estimator):
    """``(fitted network module, device, transform, inner estimator)`` of a fitted
    estimator (``transform``: a pipeline's transformers, or None)."""
    transform = None
    if isinstance(estimator, FrozenEstimator):
        estimator = estimator.estimator
    if isinstance(estimator, Pipeline):
        transform, estimator = estimator[:-1], estimator[-1]
        if isinstance(estimator, FrozenEstimator):
            estimator = estimator.estimator
    if isinstance(estimator, BaseBayesianNetwork):
        check_is_fitted(estimator)
        return estimator.module_, torch.device(estimator.net_.device), transform, estimator
    if isinstance(estimator, NeuralNet):
        if not getattr(estimator, "initialized_", False):
            raise ValueError("The skorch net is not initialized: fit it, or do not freeze it.")
        return estimator.module_, torch.device(estimator.device), transform, estimator
    raise TypeError(
        "estimator must be an SGD-trained skbdl estimator or a skorch net (optionally in "
        "a Pipeline after transformers, optionally in a FrozenEstimator); got "
        f"{type(estimator).__name__}."
    )


def transformed(transform, X):
    """``X`` (a tensor) through a pipeline's transformers, on the CPU in numpy."""
    if transform is None:
        return X
    rows = transform.transform(X.detach().cpu().numpy())
    return torch.as_tensor(np.asarray(rows), device=X.device)


def float64_copy(network, transform, X_probe):
    """``(network, dtype)``: a float64 copy of ``network`` in eval mode, when it runs
    in float64 (tried on ``X_probe``, a tensor of a few rows, after ``transform``),
    else ``network`` itself and float32.

    In float64 the posterior's predictions do not depend on how rows are batched
    (float32 matrix products round differently for different batch sizes).
    """
    try:
        copy64 = copy.deepcopy(network).to(torch.float64).eval()
        with torch.no_grad():
            copy64(transformed(transform, X_probe).to(torch.float64))
        return copy64, torch.float64
    except Exception:  # e.g. a module that builds float32 tensors in forward
        return network, torch.float32


class BasePostHoc(MetaEstimatorMixin, BasePredictor):
    """A posterior fitted on top of a trained network (``estimator``).

    Subclasses define ``_fit_posterior(estimator, X, y, selected, sample_weight)``,
    which returns the prediction module and its device (``sample_weight``: None or
    the rows' float64 weights, to weigh the likelihood with); optionally
    ``_select(X, y, sample_weight)``, hyper-parameters chosen before the final
    network is fitted, and
    ``_sample_outputs`` where the module's ``sample(X, n_samples, generator)`` is
    not the draws themselves.
    """

    _parameter_constraints = {
        "estimator": [None, HasMethods(["fit"])],
        "n_samples": [Interval(numbers.Integral, 1, None, closed="left")],
        "predict_batch_size": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None):
        """Fit the network (unless frozen) and the posterior on it.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Training inputs.
        y : array-like of shape (n_rows,) or (n_rows, n_outputs)
            Targets: class labels for classifiers, real values for regressors.
        sample_weight : array-like of shape (n_rows,), default=None
            Row weights (non-negative, not all zero; times ``class_weight`` where the
            estimator has one).  The posterior is that of the weighted likelihood
            ``prod_i p(y_i | x_i)^(w_i)``: integer weights give exactly the posterior
            of the rows repeated that many times (the weights are not normalised;
            their sum counts as the number of rows).  A network fitted here (not a
            ``FrozenEstimator``) is fitted with the weights too.

        Returns
        -------
        self : object
            The fitted estimator.  The inner ``estimator``'s parameters are validated
            as if it were fitted alone (before anything is trained); if fitting fails
            the estimator is left exactly as it was.
        """
        return self._fit_restoring_state(X, y, sample_weight=sample_weight)

    def _fit_estimator(self, X, y, y_network, sample_weight=None):
        """The fitted network: ``estimator`` cloned and fitted, or as is if frozen."""
        rng = np.random.RandomState(_seed_from(self.random_state))
        if self.estimator is None:
            estimator = self._default_estimator(_seed_from(rng), len(X))
        else:
            estimator = clone(self.estimator)  # a FrozenEstimator clones to itself
            if not isinstance(estimator, FrozenEstimator) and hasattr(
                estimator, "_validate_params"
            ):
                # Validated as if fitted alone, before the (possibly long) network fit
                # of another method (e.g. an SGD-trained skbdl estimator's settings).
                estimator._validate_params()
        if isinstance(estimator, FrozenEstimator):
            if not estimator.__sklearn_is_fitted__() and not getattr(
                estimator.estimator, "initialized_", False
            ):
                raise ValueError("The estimator in the FrozenEstimator is not fitted.")
        elif isinstance(estimator, NeuralNet):
            if sample_weight is not None:
                raise TypeError(
                    f"{type(self).__name__} cannot weigh the training of a skorch "
                    f"{type(estimator).__name__}, which takes no sample_weight. Fit it "
                    "(with the weights in its loss) and pass it in a FrozenEstimator: "
                    "the posterior is then fitted with the weights."
                )
            estimator.fit(X.astype(np.float32), y_network)
        elif sample_weight is None:
            estimator.fit(X, y)
        else:
            estimator.fit(X, y, sample_weight=sample_weight)
        return estimator, rng

    def _default_estimator(self, seed, n_train):
        """The unfitted default network (``estimator=None``) for ``n_train`` rows: an
        MCDropout estimator with the pinned settings of :func:`default_network_params`
        (a regressor with one noise variance per target)."""
        from .mc_dropout import MCDropoutClassifier, MCDropoutRegressor

        params = default_network_params(n_train)
        if is_classifier(self):
            return MCDropoutClassifier(**params, random_state=seed)
        return MCDropoutRegressor(**params, likelihood="homoscedastic", random_state=seed)

    def _network_targets(self, y):
        """``y`` as a skorch net is fitted on it: class codes ``0 .. n_classes - 1``,
        or float32 columns."""
        if is_classifier(self):
            return np.unique(y, return_inverse=True)[1].astype(np.int64)
        return y.reshape(len(y), -1).astype(np.float32)

    def _select(self, X, y, sample_weight=None):
        """Hyper-parameters chosen before the final network is fitted (passed to
        :meth:`_fit_posterior`); None by default."""
        return None

    def _flattens_input(self):
        """Rows of more than one axis are flattened as the network's own estimator
        flattens them: an skbdl default network takes rows, a user's module (or a
        skorch net) takes the array as given."""
        inner = getattr(self, "estimator_", None) or self.estimator
        if isinstance(inner, FrozenEstimator):
            inner = inner.estimator
        if inner is None:
            return True
        if isinstance(inner, NeuralNet):
            return False
        flattens = getattr(inner, "_flattens_input", None)
        return True if flattens is None else flattens()

    def _fit(self, X, y, sample_weight=None):
        X, y = validate_data(
            self, X, y, dtype=[np.float64, np.float32], allow_nd=True, **self._target_validation()
        )
        weight = self._row_weights(X, y, sample_weight)  # not all zero
        self.input_shape_ = tuple(X.shape[1:])
        selected = self._select(X, y, sample_weight=weight)
        estimator, rng = self._fit_estimator(X, y, self._network_targets(y), weight)
        head, device = self._fit_posterior(
            estimator, self._as_model_input(X), y, selected, sample_weight=weight
        )
        self.estimator_ = estimator
        self._head = head.to(device).eval()
        self._device_ = device
        self._predict_seed = _seed_from(rng)
        return self

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_head")

    def _prediction_module(self):
        return self._head, self._device_

    @property
    def module_(self):
        """The posterior module: the trained network (a float64 copy of it, when it
        runs in float64) with the posterior as float64 buffers."""
        check_is_fitted(self)
        return self._head

    @staticmethod
    def _generator(X, seed):
        return torch.Generator(device=X.device).manual_seed(seed)

    def _sample_outputs(self, module, X, n_samples, seed):
        return module.sample(X, n_samples, self._generator(X, seed))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class ProbitPredictiveMixin:
    """``predict_proba`` by the probit approximation (``predictive='probit'``) or
    Monte Carlo (``'mc'``); the head's ``probit(X)`` returns ``(1, n_rows, C)``."""

    def _probit_samples(self, module, X, n_samples, seed):
        return module.probit(X)

    def predict_proba(self, X, deterministic=False):
        """Class probabilities averaged over the posterior.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Inputs.
        deterministic : bool, default=False
            Evaluate the network once, at the posterior mode, where the method
            has such a pass (else a ValueError).

        Returns
        -------
        proba : ndarray of shape (n_rows, n_classes)
            By the probit approximation (``predictive='probit'``) or the mean over
            ``n_samples`` draws (``'mc'``), columns in the order of ``classes_``.
        """
        if deterministic is not False:
            return self.predict_uncertainty(X, deterministic=deterministic).proba
        if self.predictive == "mc":
            return self.predict_uncertainty(X).proba
        (proba,) = self._predict_rows(X, 1, reduce=lambda out: out[0], sampler=self._probit_samples)
        return proba / proba.sum(axis=1, keepdims=True)
