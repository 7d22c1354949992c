"""Monte Carlo dropout (Gal & Ghahramani 2016)."""

import contextlib
import copy
import functools
import math
import numbers

import torch
from sklearn.utils._param_validation import Interval
from torch import nn

from ._base import (
    CRITERION_DOC,
    NOISE_SCALE_DOC,
    OUTPUT_ACTIVATION_DOC,
    BayesianClassifierMixin,
    BayesianRegressorMixin,
    regression_option_constraints,
)
from ._training import (
    CALIBRATION_DOC,
    CLASS_WEIGHT_DOC,
    CLASSIFIER_CALIBRATION_ATTRIBUTES_DOC,
    REGRESSOR_CALIBRATION_ATTRIBUTES_DOC,
    TRAINING_ATTRIBUTES_DOC,
    TRAINING_BUDGET_DOC,
    WARM_START_DOC,
    BaseBayesianNetwork,
)
from .nn import MLP

# Held while a view whose dropout layers skbdl cannot draw for (other subclasses of
# torch's dropout base) runs in train mode on torch's seeded global generator.
from .nn._random import GLOBAL_RNG_LOCK as _GLOBAL_RNG_LOCK
from .nn._views import DrawnNetwork, Draws, in_place_layers, module_view

#: Dropout layers whose masks skbdl draws itself at prediction time: one mask per
#: sample, shared by all rows; element-wise for Dropout and AlphaDropout, per channel
#: (axis 1) for Dropout1d/2d/3d and FeatureAlphaDropout.
_SHARED_MASK_LAYERS = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)

#: The negative saturation of SELU, as torch's alpha dropout uses it.
_SELU_ALPHA = 1.7580993408473766


def dropout_layers(module):
    """All dropout layers of ``module`` (any subclass of torch's dropout base)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


class _DrawnDropout(nn.Module):
    """A dropout layer holding one prediction call's masks.

    Its input is the rows tiled once per draw being evaluated (``draws``),
    sample-major; copy ``s`` of the rows is multiplied by mask ``s`` (the same for
    every row: each sample is one thinned network, as in the Bayesian reading of
    dropout, and a row's prediction does not depend on the other rows).  The masks
    of all ``draws.n_samples`` draws are drawn on first use, per input shape, from
    ``generator`` (on the prediction device) and kept for the call's other chunks.
    Alpha dropout keeps the SELU mean and variance as torch's does:
    ``a * (x * m + alpha' * (1 - m)) + b``.
    """

    def __init__(self, layer, draws, generator, in_place=False):
        super().__init__()
        self.in_place = in_place  # may overwrite its input (see in_place_layers)
        self.p = float(layer.p)
        self.alpha = isinstance(layer, (nn.AlphaDropout, nn.FeatureAlphaDropout))
        self.per_channel = not isinstance(layer, (nn.Dropout, nn.AlphaDropout))
        self.draws = draws
        self.generator = generator
        self.masks = {}

    def _draw(self, x):
        features = x.shape[1:]
        if self.per_channel:
            features = (features[0],) + (1,) * (len(features) - 1)
        keep = torch.empty(
            (self.draws.n_samples, 1, *features), device=self.generator.device, dtype=x.dtype
        ).bernoulli_(1.0 - self.p, generator=self.generator)
        keep = keep.to(x.device)
        if not self.alpha:
            return keep.div_(1.0 - self.p), None
        a = 1.0 / math.sqrt((_SELU_ALPHA**2 * self.p + 1) * (1 - self.p))
        shift = (keep - 1.0).mul_(_SELU_ALPHA * a).add_(_SELU_ALPHA * a * self.p)
        return keep.mul_(a), shift

    def forward(self, x):
        if self.p == 0:
            return x
        if self.p == 1:
            return x * 0.0
        key = tuple(x.shape[1:])
        if key not in self.masks:
            self.masks[key] = self._draw(x)
        scale, shift = (None if m is None else self.draws.select(m) for m in self.masks[key])
        grouped = x.reshape(len(self.draws), -1, *x.shape[1:])
        if shift is not None:
            out = torch.addcmul(shift, grouped, scale)
        else:
            out = grouped.mul_(scale) if self.in_place else grouped * scale
        return out.reshape(x.shape)


@contextlib.contextmanager
def _seeded_global_generator(seed, device):
    """torch's global generator seeded by ``seed`` under a process-wide lock, forked
    so the caller's random stream is untouched."""
    devices = [device] if device.type == "cuda" else []
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def mc_dropout_view(module, n_samples, seed, device):
    """A view of ``module`` that evaluates ``n_samples`` dropout masks on tiled rows.

    The module is not changed: its dropout layers are replaced, in a view that
    shares every parameter (:func:`skbdl.nn._views.module_view`), by layers holding
    this call's masks, drawn on ``device`` from a generator seeded by ``seed`` and
    the layer's position (so the same seed gives the same masks, whatever the rows
    and however they are batched).  Other layers are in eval mode.  Dropout layers
    of other types (custom subclasses of torch's dropout base) run in train mode, on
    torch's global generator seeded by ``seed`` under a lock: reproducible for the
    same input and chunking, with independent masks per row, and not concurrent.
    """
    index = {id(layer): i for i, layer in enumerate(dropout_layers(module))}
    draws, global_randomness = Draws(n_samples), []
    device = torch.device(device)
    in_place = in_place_layers(module, (MLP,))

    def replace(layer):
        if id(layer) in in_place and type(layer) is nn.ReLU:
            return nn.ReLU(inplace=True)
        if id(layer) not in index:
            return None
        if isinstance(layer, _SHARED_MASK_LAYERS):
            generator = torch.Generator(device=device).manual_seed(seed + 7919 * index[id(layer)])
            return _DrawnDropout(layer, draws, generator, in_place=id(layer) in in_place)
        global_randomness.append(layer)
        stochastic = copy.copy(layer)  # in train mode; the fitted layer stays in eval mode
        object.__setattr__(stochastic, "training", True)
        return stochastic

    view = module_view(module, replace)
    randomness = None
    if global_randomness:
        randomness = functools.partial(_seeded_global_generator, seed, device)
    return DrawnNetwork(view, draws, randomness)


class _BaseMCDropout(BaseBayesianNetwork):
    _incremental = True

    _default_network_params = ("hidden_layer_sizes", "activation", "dropout")

    _parameter_constraints = {
        **BaseBayesianNetwork._parameter_constraints,
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
    }

    def _make_default_module(self, n_features_in, n_outputs):
        hidden_layer_sizes = self._validate_hidden_layer_sizes()
        if not hidden_layer_sizes:
            raise ValueError(
                "MC dropout needs at least one hidden layer (its dropout layers follow the "
                "hidden layers); got hidden_layer_sizes=(), which has no dropout layer."
            )
        return MLP(
            n_features_in,
            n_outputs,
            hidden_layer_sizes=hidden_layer_sizes,
            activation=self.activation,
            dropout=self.dropout,
        )

    def _check_module(self, module):
        if not dropout_layers(module):
            raise ValueError(
                f"The module {type(module).__name__} has no dropout layer "
                "(torch.nn.Dropout or another subclass of torch's dropout base), so MC "
                "dropout would report zero epistemic uncertainty. Add a dropout layer "
                "or use another method."
            )

    def _sampling_view(self, module, n_samples, seed, device):
        return mc_dropout_view(module, n_samples, seed, device)

    def _sample_outputs(self, module, X, n_samples, seed):
        return module.sample(X)


_COMMON_DOC = (
    """
    Parameters
    ----------
    module : torch.nn.Module class or instance, default=None
        The network.  ``None`` builds an :class:`skbdl.nn.MLP` from
        ``hidden_layer_sizes``, ``activation`` and ``dropout`` at fit time.  A class
        is instantiated with the ``module__*`` arguments; if its constructor takes
        ``n_features_in`` or ``n_outputs`` and they are not given, skbdl fills them
        in.  The module must contain at least one dropout layer, and dropout layers
        must see inputs with rows on the first axis.
    hidden_layer_sizes : tuple of int, default=(100,)
        Hidden layer widths of the default MLP.
    activation : {'relu', 'tanh', 'logistic', 'identity', 'gelu', 'elu', 'silu'}, default='relu'
        Activation of the default MLP.
    dropout : float, default=0.05
        Dropout probability after each hidden layer of the default MLP, used both in
        training and at prediction time (chosen on the UCI sets, docs/defaults.md).
"""
    + TRAINING_BUDGET_DOC
    + """    lr : float, default=3e-3
        Learning rate (Adam's; chosen on the UCI sets, docs/defaults.md).
    weight_decay : float, default=0.0
        L2 penalty passed to the optimizer.
    optimizer : {'adam', 'adamw', 'sgd'} or torch.optim.Optimizer class, default='adam'
        Optimizer; ``optimizer__*`` keyword arguments are passed to it.
    n_samples : int, default=100
        Monte Carlo samples (dropout masks) drawn at prediction time.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data and stop when the
        validation loss has not improved for ``n_iter_no_change`` epochs, restoring
        the best weights.  When False, all the data are used for training.
"""
    + CALIBRATION_DOC
    + """    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks (or ``(name, callback)`` pairs), e.g. an
        ``LRScheduler``; copied at fit time.
    predict_batch_size : int, default=None
        Rows times samples evaluated in one forward pass at prediction time;
        ``None`` chooses for the device: 16384 on the CPU (a pass stays in cache),
        on CUDA a quarter of the GPU's memory at 32 bytes per row, sample and unit
        of the widest layer (at most 2**24).  Bounds prediction memory for any
        number of rows.
    device : str or torch.device, default='cpu'
        Where to train and predict, e.g. ``'cuda'``.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, data order, dropout during training and the masks
        drawn at prediction time.  An int gives identical fits and predictions.
    verbose : int or 'auto', default='auto'
        ``'auto'``: a progress bar over epochs once the fit is expected to take
        longer than 5 seconds (estimated as it runs), else silent; 0: silent; 1: a
        progress bar; 2: skorch's table per epoch.
"""
    + WARM_START_DOC
)

_ATTRIBUTES_DOC = """
    net_ : skbdl._net.SkbdlNet
        The trained skorch net.
    module_ : torch.nn.Module
        The trained network.
    history_ : skorch.History
        Per-epoch training record (``train_loss``, ``valid_loss`` with early stopping).
    loss_curve_ : list of float
        Training loss per epoch.
    n_iter_ : int
        Number of epochs run.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.
"""


class MCDropoutClassifier(BayesianClassifierMixin, _BaseMCDropout):
    __doc__ = (
        """Classifier whose dropout stays on at prediction time (MC dropout).

    Trains a network with dropout and cross-entropy, then averages the class
    probabilities of ``n_samples`` random dropout masks (Gal & Ghahramani 2016).
    Only dropout layers are stochastic at prediction time; batch norm and the like
    stay in eval mode.
"""
        + _COMMON_DOC
        + CLASS_WEIGHT_DOC
        + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels."""
        + CLASSIFIER_CALIBRATION_ATTRIBUTES_DOC
        + TRAINING_ATTRIBUTES_DOC
        + _ATTRIBUTES_DOC
        + """
    See Also
    --------
    MCDropoutRegressor : The regression counterpart.

    References
    ----------
    Y. Gal and Z. Ghahramani, "Dropout as a Bayesian Approximation: Representing
    Model Uncertainty in Deep Learning", ICML 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skbdl import MCDropoutClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MCDropoutClassifier(hidden_layer_sizes=(32,), max_epochs=30, lr=0.01,
    ...                           random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    >>> u = clf.predict_uncertainty(X[:2])
    >>> bool((u.epistemic >= 0).all())
    True
    """
    )

    def __init__(
        self,
        module=None,
        *,
        hidden_layer_sizes=(100,),
        activation="relu",
        dropout=0.05,
        max_epochs="auto",
        batch_size="auto",
        lr=3e-3,
        weight_decay=0.0,
        optimizer="adam",
        n_samples=100,
        early_stopping=False,
        calibrate="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        predict_batch_size=None,
        device="cpu",
        random_state=None,
        class_weight=None,
        warm_start=False,
        verbose="auto",
        **kwargs,
    ):
        self.module = module
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.n_samples = n_samples
        self.early_stopping = early_stopping
        self.calibrate = calibrate
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.callbacks = callbacks
        self.predict_batch_size = predict_batch_size
        self.device = device
        self.random_state = random_state
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.verbose = verbose
        self._store_routed(kwargs)


class MCDropoutRegressor(BayesianRegressorMixin, _BaseMCDropout):
    __doc__ = (
        """Regressor whose dropout stays on at prediction time (MC dropout).

    Trains a network with dropout and a Gaussian likelihood on standardised targets,
    then summarises ``n_samples`` random dropout masks as a mixture of Gaussians:
    aleatoric variance = mean of the noise variances, epistemic variance = variance
    of the sampled means.  Every output is in the target's original units.
"""
        + _COMMON_DOC
        + """\
    likelihood : {'homoscedastic', 'heteroscedastic', 'fixed'}, default='heteroscedastic'
        Heteroscedastic adds a variance head (the network outputs ``2 * n_outputs``
        values) trained by the Gaussian negative log-likelihood; homoscedastic
        learns one noise variance per target, as in the MC dropout paper; fixed
        holds it at ``noise_scale**2`` (the network predicts means only, and the
        epistemic part comes from the dropout masks alone).  On the UCI sets
        heteroscedastic scored a higher test log-likelihood on all five
        (docs/defaults.md).
"""
        + NOISE_SCALE_DOC
        + CRITERION_DOC
        + OUTPUT_ACTIVATION_DOC
        + """
    Attributes
    ----------
    n_outputs_ : int
        Number of targets.
    y_mean_ : ndarray of shape (n_outputs_,)
        Target means used for standardisation.
    y_scale_ : ndarray of shape (n_outputs_,)
        Target standard deviations used for standardisation."""
        + REGRESSOR_CALIBRATION_ATTRIBUTES_DOC
        + TRAINING_ATTRIBUTES_DOC
        + _ATTRIBUTES_DOC
        + """
    See Also
    --------
    MCDropoutClassifier : The classification counterpart.

    References
    ----------
    Y. Gal and Z. Ghahramani, "Dropout as a Bayesian Approximation: Representing
    Model Uncertainty in Deep Learning", ICML 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl import MCDropoutRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(200, 1))
    >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.randn(200)
    >>> reg = MCDropoutRegressor(hidden_layer_sizes=(32,), max_epochs=20,
    ...                          random_state=0).fit(X, y)
    >>> mean, std = reg.predict(X[:3], return_std=True)
    >>> mean.shape, bool((std > 0).all())
    ((3,), True)
    """
    )

    _parameter_constraints = {
        **_BaseMCDropout._parameter_constraints,
        **regression_option_constraints(),
        "criterion": [None, callable],
    }

    def __init__(
        self,
        module=None,
        *,
        hidden_layer_sizes=(100,),
        activation="relu",
        dropout=0.05,
        likelihood="heteroscedastic",
        noise_scale=1.0,
        criterion=None,
        output_activation=None,
        max_epochs="auto",
        batch_size="auto",
        lr=3e-3,
        weight_decay=0.0,
        optimizer="adam",
        n_samples=100,
        early_stopping=False,
        calibrate="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        predict_batch_size=None,
        device="cpu",
        random_state=None,
        warm_start=False,
        verbose="auto",
        **kwargs,
    ):
        self.module = module
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.likelihood = likelihood
        self.noise_scale = noise_scale
        self.criterion = criterion
        self.output_activation = output_activation
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.n_samples = n_samples
        self.early_stopping = early_stopping
        self.calibrate = calibrate
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.callbacks = callbacks
        self.predict_batch_size = predict_batch_size
        self.device = device
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self._store_routed(kwargs)
