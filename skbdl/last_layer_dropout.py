"""Last-layer MC dropout: a dropout head trained on a network's frozen features."""

import numbers

import torch
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from ._base import BayesianClassifierMixin, BayesianRegressorMixin, _seed_from
from ._posthoc import (
    CLASS_WEIGHT_CONSTRAINT,
    CLASS_WEIGHT_DOC,
    DEFAULT_NETWORK_DOC,
    ESTIMATOR_DOC,
)
from .last_layer import _LAST_LAYER_DOC, _BaseLastLayer
from .mc_dropout import MCDropoutClassifier, MCDropoutRegressor


class _DropoutLinear(nn.Module):
    """Dropout on the features, then one linear layer: the last layer, Bayesian by
    MC dropout."""

    def __init__(self, n_features_in, n_outputs, p=0.5):
        super().__init__()
        self.dropout = nn.Dropout(p)
        self.linear = nn.Linear(n_features_in, n_outputs)

    def forward(self, X):
        return self.linear(self.dropout(X))


class _FrozenFeaturesAndHead(nn.Module):
    """The frozen feature network followed by the trained dropout head."""

    def __init__(self, features, head):
        super().__init__()
        self.features, self.head = features, head

    def forward(self, X):  # one deterministic pass (the head's dropout off in eval mode)
        return self.head(self.features(X).to(torch.float32))


class _BaseLastLayerDropout(_BaseLastLayer):
    _parameter_constraints = {
        **_BaseLastLayer._parameter_constraints,
        "dropout": [Interval(numbers.Real, 0, 1, closed="neither")],
        "max_epochs": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "calibrate": [StrOptions({"auto"}), "boolean"],
    }

    def _head_estimator(self, seed):
        cls = MCDropoutClassifier if self._is_classifier else MCDropoutRegressor
        extra = {} if self._is_classifier else {"likelihood": self.likelihood}
        return cls(
            module=_DropoutLinear,
            module__p=self.dropout,
            max_epochs=self.max_epochs,
            lr=self.lr,
            weight_decay=self.weight_decay,
            calibrate=self.calibrate,
            n_samples=self.n_samples,
            random_state=seed,
            verbose=0,
            **extra,
        )

    def _fit_head(self, features_net, features, y, selected=None, sample_weight=None):
        # The outer estimator's classes or standardisation, weighted as the head's.
        self._prepare_targets(y, sample_weight)
        head = self._head_estimator(_seed_from(self.random_state))
        if sample_weight is None:
            self.head_ = head.fit(features, y)
        else:  # the head weighs its loss (and its recalibration) by them
            self.head_ = head.fit(features, y, sample_weight=sample_weight)
        self._reset_calibration()
        for name in ("temperature_", "calibration_scale_"):  # the head's recalibration
            if hasattr(self.head_, name):
                setattr(self, name, getattr(self.head_, name))
        head, _ = self.head_._prediction_module()
        return _FrozenFeaturesAndHead(features_net, head)

    def _sampling_view(self, module, n_samples, seed, device):
        head = self.head_._sampling_view(module.head, n_samples, seed, device)
        return _FrozenFeaturesAndHead(module.features, head)

    def _sample_outputs(self, module, X, n_samples, seed):
        features = module.features(X).to(torch.float32)
        return self.head_._sample_outputs(module.head, features, n_samples, seed)


_PARAMS = (
    """
    Parameters
    ----------
"""
    + ESTIMATOR_DOC
    + _LAST_LAYER_DOC
    + """    dropout : float, default=0.5
        Dropout probability on the frozen features, in training and at prediction.
    max_epochs : int or 'auto', default='auto'
        Training budget of the head (as ``MCDropout*``'s).
    lr : float, default=3e-3
        Adam's learning rate for the head.
    weight_decay : float, default=0.0
        L2 penalty on the head's weights.
    calibrate : bool or 'auto', default=False
        Recalibrate the head on held-out rows (as ``MCDropout*``'s).  Off by
        default: the features come from a network trained on every row, so rows
        held out from the head are not held out from the features, and a
        temperature fitted on them is far too low (digits, features of a
        network trained on 1 200 rows: test NLL 0.374 with ``'auto'``, 0.278
        without; the network alone 0.277).
{likelihood}    n_samples : int, default=100
        Dropout masks drawn at prediction time.
    predict_batch_size : int, default=None
        Rows times samples evaluated at once at prediction time; ``None`` chooses
        for the device: 16384 on the CPU, on CUDA from the GPU's memory.
    random_state : int, RandomState instance or None, default=None
        Seeds the default network, the head's training and the prediction draws.
"""
)

_ATTRIBUTES = """
    Attributes
    ----------
    estimator_ : estimator
        The fitted (or frozen) network.
    head_ : MCDropoutClassifier or MCDropoutRegressor
        The dropout head trained on the frozen features (its module is
        ``Dropout(dropout) -> Linear``).
    n_features_in_ : int
        Number of features seen during fit.
    input_shape_ : tuple of int
        The shape of one row of ``X`` seen during fit.
{task}"""


class LastLayerMCDropoutClassifier(BayesianClassifierMixin, _BaseLastLayerDropout):
    __doc__ = (
        """Last-layer MC dropout classifier: a dropout head on frozen features.

    Two stages, as the book's last-layer MC dropout: a network is trained (or
    given, fitted), its penultimate features are frozen, and a new last layer with
    dropout on its input, ``Dropout(p) -> Linear``, is trained on them; at
    prediction the features are computed once and only the head is sampled.  The
    result is MC dropout's uncertainty for the price of a linear model, on any
    network, including one trained without dropout.
"""
        + _PARAMS.format(
            default=DEFAULT_NETWORK_DOC.format(cls="Classifier"), likelihood=CLASS_WEIGHT_DOC
        )
        + _ATTRIBUTES.format(
            task="""    classes_ : ndarray of shape (n_classes,)
        Class labels.
    temperature_ : float
        The head's temperature (1 when not recalibrated)."""
        )
        + """
    See Also
    --------
    LastLayerLaplaceClassifier : A Gaussian posterior on the same last layer.
    MCDropoutClassifier : Dropout through the whole network.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skbdl import LastLayerMCDropoutClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LastLayerMCDropoutClassifier(random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    >>> bool((clf.predict_uncertainty(X[:5]).epistemic >= 0).all())
    True
    """
    )

    _is_classifier = True

    _parameter_constraints = {
        **_BaseLastLayerDropout._parameter_constraints,
        **CLASS_WEIGHT_CONSTRAINT,
    }

    def __init__(
        self,
        estimator=None,
        *,
        last_layer=None,
        dropout=0.5,
        max_epochs="auto",
        lr=3e-3,
        weight_decay=0.0,
        calibrate=False,
        class_weight=None,
        n_samples=100,
        predict_batch_size=None,
        random_state=None,
    ):
        self.estimator = estimator
        self.last_layer = last_layer
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.calibrate = calibrate
        self.class_weight = class_weight
        self.n_samples = n_samples
        self.predict_batch_size = predict_batch_size
        self.random_state = random_state


class LastLayerMCDropoutRegressor(BayesianRegressorMixin, _BaseLastLayerDropout):
    __doc__ = (
        """Last-layer MC dropout regressor: a dropout head on frozen features.

    See :class:`LastLayerMCDropoutClassifier`; the head predicts a Gaussian
    (``likelihood``), and the result is in the target's units.
"""
        + _PARAMS.format(
            default=DEFAULT_NETWORK_DOC.format(cls="Regressor"),
            likelihood=(
                "    likelihood : {'heteroscedastic', 'homoscedastic'}, "
                "default='heteroscedastic'\n        The head's noise model.\n"
            ),
        )
        + _ATTRIBUTES.format(
            task="""    n_outputs_ : int
        Number of targets.
    y_mean_ : ndarray of shape (n_outputs_,)
        Target means used for standardisation.
    y_scale_ : ndarray of shape (n_outputs_,)
        Target scales used for standardisation.
    calibration_scale_ : ndarray of shape (n_outputs_,)
        The head's factor on the predictive standard deviation."""
        )
        + """
    See Also
    --------
    LastLayerBayesianRegressor : A conjugate Gaussian posterior on the same layer.
    MCDropoutRegressor : Dropout through the whole network.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl import LastLayerMCDropoutRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-2, 2, size=(200, 1))
    >>> y = np.sin(2 * X[:, 0]) + 0.1 * rng.randn(200)
    >>> reg = LastLayerMCDropoutRegressor(random_state=0).fit(X, y)
    >>> mean, std = reg.predict(X[:3], return_std=True)
    >>> mean.shape, bool((std > 0).all())
    ((3,), True)
    """
    )

    _is_classifier = False
    _parameter_constraints = {
        **_BaseLastLayerDropout._parameter_constraints,
        "likelihood": [StrOptions({"heteroscedastic", "homoscedastic"})],
    }

    def __init__(
        self,
        estimator=None,
        *,
        last_layer=None,
        dropout=0.5,
        likelihood="heteroscedastic",
        max_epochs="auto",
        lr=3e-3,
        weight_decay=0.0,
        calibrate=False,
        n_samples=100,
        predict_batch_size=None,
        random_state=None,
    ):
        self.estimator = estimator
        self.last_layer = last_layer
        self.dropout = dropout
        self.likelihood = likelihood
        self.max_epochs = max_epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.calibrate = calibrate
        self.n_samples = n_samples
        self.predict_batch_size = predict_batch_size
        self.random_state = random_state
