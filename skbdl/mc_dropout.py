"""Monte Carlo dropout (Gal & Ghahramani 2016)."""

import numbers

import torch
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from ._base import BaseBayesianNetwork, BayesianClassifierMixin, BayesianRegressorMixin
from .nn import MLP

#: Dropout layers (and their subclasses) whose masks skbdl draws itself at
#: prediction time: one mask per sample, shared by all rows; element-wise for
#: Dropout, per channel for Dropout1d/2d/3d.
_SHARED_MASK_LAYERS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


def dropout_layers(module):
    """All dropout layers of ``module`` (any subclass of torch's dropout base)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


class _MCDropoutSampler:
    """Forward hooks that make a module's dropout layers draw Monte Carlo masks.

    The input is the batch tiled ``n_samples`` times (sample-major).  Sample ``s``
    uses one mask per layer for every row, drawn from a generator seeded by
    ``seed`` and the layer's position, so a row's prediction does not depend on the
    other rows in the batch (each sample is one thinned network, as in the Bayesian
    reading of dropout).  Layers of other dropout types (alpha dropout) run in train
    mode, with independent masks per row, drawn from torch's generator seeded by
    ``seed`` (reproducible for the same input, but not independent of batching).
    """

    def __init__(self, module, n_samples, seed):
        self.module, self.n_samples, self.seed = module, n_samples, seed
        self.masks = {}

    def _hook(self, index):
        def hook(layer, inputs, output):
            x = inputs[0]
            if layer.p == 0:
                return x
            grouped = x.reshape(self.n_samples, -1, *x.shape[1:])
            mask = self.masks.get(index)
            if mask is None:
                if isinstance(layer, nn.Dropout):
                    shape = x.shape[1:]
                else:  # channel dropout: one draw per channel
                    shape = (x.shape[1],) + (1,) * (x.ndim - 2)
                generator = torch.Generator().manual_seed(self.seed + 7919 * index)
                keep = torch.full((self.n_samples, 1, *shape), 1.0 - layer.p)
                mask = torch.bernoulli(keep, generator=generator).div_(1.0 - layer.p)
                mask = self.masks[index] = mask.to(device=x.device, dtype=x.dtype)
            return (grouped * mask).reshape(x.shape)

        return hook

    def __call__(self, X):
        handles, stochastic = [], []
        for index, layer in enumerate(dropout_layers(self.module)):
            if isinstance(layer, _SHARED_MASK_LAYERS):
                handles.append(layer.register_forward_hook(self._hook(index)))
            else:
                layer.train()
                stochastic.append(layer)
        devices = [X.device] if X.device.type == "cuda" else []
        try:
            tiled = X.repeat(self.n_samples, *([1] * (X.ndim - 1)))
            # Layers left in train mode draw from torch's generator: seed it, so that
            # predictions are reproducible and the user's random stream is untouched.
            with torch.random.fork_rng(devices=devices, enabled=bool(stochastic)):
                if stochastic:
                    torch.manual_seed(self.seed)
                out = self.module(tiled)
        finally:
            for handle in handles:
                handle.remove()
            for layer in stochastic:
                layer.eval()
        if isinstance(out, tuple):
            return tuple(o.reshape(self.n_samples, len(X), *o.shape[1:]) for o in out)
        return out.reshape(self.n_samples, len(X), *out.shape[1:])


class _BaseMCDropout(BaseBayesianNetwork):
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

    def _sample_outputs(self, module, X, n_samples, seed):
        return _MCDropoutSampler(module, n_samples, seed)(X)


_COMMON_DOC = """
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
    dropout : float, default=0.1
        Dropout probability after each hidden layer of the default MLP, used both in
        training and at prediction time.
    max_epochs : int or 'auto', default='auto'
        Number of passes over the training data.  ``'auto'``: 400, or fewer where
        400 epochs would take more than 20 000 optimisation steps (at least 10), so
        small data sets are trained long enough and large ones not for hours; the
        value used is ``max_epochs_`` (chosen on the UCI sets: see the user guide's
        "Defaults" page).
    batch_size : int or 'auto', default='auto'
        Mini-batch size for training (of each member, for ensembles).  ``'auto'``:
        32 up to 2 048 training rows, then ``n_train // 64`` up to 256; the value
        used is ``batch_size_``.
    lr : float, default=1e-3
        Learning rate.
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
    calibrate : bool, default=False
        Hold out ``validation_fraction`` of the training data and recalibrate the
        predictive distribution on it after training, by maximum likelihood: a
        classifier divides every draw's logits by a temperature (``temperature_``),
        a regressor scales its predictive standard deviation by one factor per
        target (``calibration_scale_``).  Every prediction method reflects it.
    validation_fraction : float, default=0.1
        Fraction of the training rows held out when ``early_stopping`` or
        ``calibrate`` is True (the same rows serve both); stratified by class for
        classifiers where every class has two rows.
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks (or ``(name, callback)`` pairs), e.g. an
        ``LRScheduler``; copied at fit time.
    predict_batch_size : int, default=None
        Rows times samples evaluated in one forward pass at prediction time;
        ``None`` means 65536.  Bounds prediction memory for any number of rows.
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
        + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels."""
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
        dropout=0.1,
        max_epochs="auto",
        batch_size="auto",
        lr=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        n_samples=100,
        early_stopping=False,
        calibrate=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        predict_batch_size=None,
        device="cpu",
        random_state=None,
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
        + """    likelihood : {'homoscedastic', 'heteroscedastic'}, default='homoscedastic'
        Homoscedastic learns one noise variance per target; heteroscedastic adds a
        variance head (the network outputs ``2 * n_outputs`` values) trained by the
        Gaussian negative log-likelihood.

    Attributes
    ----------
    n_outputs_ : int
        Number of targets.
    y_mean_ : ndarray of shape (n_outputs_,)
        Target means used for standardisation.
    y_scale_ : ndarray of shape (n_outputs_,)
        Target standard deviations used for standardisation."""
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
        "likelihood": [StrOptions({"homoscedastic", "heteroscedastic"})],
    }

    def __init__(
        self,
        module=None,
        *,
        hidden_layer_sizes=(100,),
        activation="relu",
        dropout=0.1,
        likelihood="homoscedastic",
        max_epochs="auto",
        batch_size="auto",
        lr=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        n_samples=100,
        early_stopping=False,
        calibrate=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        predict_batch_size=None,
        device="cpu",
        random_state=None,
        verbose="auto",
        **kwargs,
    ):
        self.module = module
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.likelihood = likelihood
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
        self.verbose = verbose
        self._store_routed(kwargs)
