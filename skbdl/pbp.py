"""Probabilistic backpropagation (Hernández-Lobato & Adams 2015)."""

import numbers
import time

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval
from skorch import NeuralNet

from ._base import BasePredictor, BayesianRegressorMixin
from ._training import TrainedNetMixin, network_constraints, validate_hidden_layer_sizes
from .nn._pbp import ADFTrainer, PBPNetwork


class _PosteriorMeanNetwork(torch.nn.Module):
    """A :class:`~skbdl.nn.PBPNetwork` evaluated once at its posterior means (PBP's
    deterministic pass): a ReLU network with the mean weights, no moment
    propagation; returns ``(mean, noise_variance)``, float64."""

    def __init__(self, posterior):
        super().__init__()
        self.posterior = posterior

    def forward(self, X):
        posterior = self.posterior
        h = X.to(torch.float64)
        layers = posterior.layer_views(posterior.weight_mean)
        for index, (W, scale) in enumerate(zip(layers, posterior.scales)):
            h = scale * torch.addmm(W[:, -1], h, W[:, :-1].T)
            if index < posterior.n_layers - 1:
                h = h.clamp_min(0.0)
        return h, posterior.noise_variance().expand_as(h)


def _gamma_prior(value):
    """True for a (shape, rate) pair with shape > 1 and rate > 0."""
    try:
        shape, rate = (float(v) for v in value)
    except (TypeError, ValueError):
        return False
    return shape > 1.0 and rate > 0.0


class _Rows:
    """The rows an ADF pass visits, one at a time: ``rows[i]`` is row ``index[i]`` of
    ``X`` (all rows in order when ``index`` is None) as a dense float64 vector.

    ``X`` is a dense array or a scipy CSR matrix, whose rows are densified one at a
    time; ``index`` repeats a row ``w`` times for an integer sample weight ``w``
    (and leaves out rows of weight 0)."""

    def __init__(self, X, index=None):
        self.X, self.index = X, index
        self.sparse = sp.issparse(X)

    def __len__(self):
        return self.X.shape[0] if self.index is None else len(self.index)

    def __getitem__(self, i):
        row = i if self.index is None else self.index[i]
        if not self.sparse:
            return self.X[row]
        start, stop = self.X.indptr[row], self.X.indptr[row + 1]
        dense = np.zeros(self.X.shape[1])
        dense[self.X.indices[start:stop]] = self.X.data[start:stop]
        return dense


class _PBPNet(NeuralNet):
    """A skorch net whose training loop is PBP's, not gradient descent.

    skorch supplies the callbacks, the history and the progress bar; there is no
    criterion and no optimizer to build.  ``fit(X, y)`` runs ``max_epochs`` passes
    of assumed density filtering over the rows (one update per row) each followed
    by an EP refinement of the prior factors.  Callbacks see the usual events (``on_train_begin``,
    ``on_epoch_begin``, ``on_epoch_end``, ``on_train_end``; no batch events), and
    the history records ``train_loss`` (the mean ``-log Z`` of the pass) and ``dur``.
    """

    def __init__(self, *args, seed=0, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed = seed

    def initialize_criterion(self, *args, **kwargs):
        return self  # PBP's objective lives in ADFTrainer

    def initialize_optimizer(self, *args, **kwargs):
        return self  # no gradient descent

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        if not isinstance(X, _Rows):
            X = torch.as_tensor(X).to("cpu", torch.float64).numpy()
        y = torch.as_tensor(y).to("cpu", torch.float64).numpy().reshape(len(X), -1)
        module = self.module_.to("cpu")
        trainer = ADFTrainer(module)
        random_state = np.random.RandomState(self.seed)
        epochs = self.max_epochs if epochs is None else epochs
        for _ in range(epochs):
            self.notify("on_epoch_begin", dataset_train=None, dataset_valid=None)
            start = time.perf_counter()
            loss = trainer.adf_pass(X, y, random_state)
            trainer.refine_prior()
            self.history.record("train_loss", loss)
            self.history.record("adf_seconds", time.perf_counter() - start)
            self.notify("on_epoch_end", dataset_train=None, dataset_valid=None)
        self.module_.to(self.device)
        return self


class PBPRegressor(BayesianRegressorMixin, TrainedNetMixin, BasePredictor):
    """Regressor trained by probabilistic backpropagation (PBP).

    A ReLU network with a factorised Gaussian posterior over its weights and Gamma
    posteriors over the noise precision and the weights' prior precision, learned
    without gradient descent or tuning (Hernández-Lobato & Adams 2015): each
    training row updates the posterior by assumed density filtering (ADF), i.e.
    by matching the moments of the posterior times that row's likelihood, computed
    by propagating means and variances through the network (closed-form moments of
    rectified Gaussians); after each pass over the data an expectation-propagation
    (EP) step refines the prior factors and the prior precision.  The predictive
    distribution is Gaussian, with the output mean and variance from moment
    propagation plus the expected noise variance.

    Targets are standardised by the estimator (every result is in their original
    units); inputs are not: standardise them (``StandardScaler`` in a pipeline), as
    the paper does, since the prior is the same for every weight.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(50,)
        Widths of the ReLU hidden layers (the paper uses one layer of 50 units, 100
        for the largest data sets); ``()`` is Bayesian linear regression with a
        learned noise and prior precision.
    max_epochs : int, default=40
        ADF passes over the training rows (the paper's 40), each followed by one EP
        refinement of the prior.  Every pass uses each row again, so more passes
        keep shrinking the weight variances (a known trait of repeated ADF).
    noise_precision_prior : tuple of (float, float), default=(6.0, 6.0)
        Shape and rate of the Gamma prior on the noise precision of each
        (standardised) target; the default, the paper's, has mean 1 and the
        information of 6 observations.
    weight_precision_prior : tuple of (float, float), default=(6.0, 6.0)
        Shape and rate of the Gamma prior on the precision of the Gaussian prior of
        every weight (the paper's).
    n_samples : int, default=100
        Networks drawn from the weight posterior by :meth:`sample_predictions`, and
        by ``predict_uncertainty`` when given ``n_samples``.
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks (or ``(name, callback)`` pairs) called at the start
        and end of training and of every epoch (there are no batches).
    predict_batch_size : int, default=None
        Rows times samples evaluated at once at prediction time; ``None`` chooses
        for the device: 16384 on the CPU, on CUDA from the GPU's memory.
    device : str or torch.device, default='cpu'
        Where prediction runs.  Training always runs on the CPU: it is a sequence
        of small per-row updates.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weight means, the order of the rows in each pass and
        the weights drawn at prediction time.
    verbose : int or 'auto', default='auto'
        ``'auto'``: a progress bar over epochs once the fit is expected to take
        longer than 5 seconds (estimated as it runs), else silent; 0: silent; 1: a
        progress bar; 2: skorch's table per epoch.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The fitted skorch net (its training loop is PBP's).
    module_ : skbdl.nn.PBPNetwork
        The posterior: weight means and variances, the Gamma posteriors and the EP
        factors.
    history_ : skorch.History
        Per-epoch record: ``train_loss`` (mean negative log predictive density of
        each row just before its update, standardised units), ``dur``.
    loss_curve_ : list of float
        ``train_loss`` per epoch.
    n_iter_ : int
        Number of epochs run.
    noise_variance_ : ndarray of shape (n_outputs_,)
        Expected noise variance ``E[1 / gamma]`` in the target's squared units.
    n_outputs_ : int
        Number of targets.
    y_mean_ : ndarray of shape (n_outputs_,)
        Target means used for standardisation.
    y_scale_ : ndarray of shape (n_outputs_,)
        Target standard deviations used for standardisation.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    BayesianMLPRegressor : Variational inference (Bayes by Backprop) on the same
        kind of factorised posterior, trained by gradient descent.
    skbdl.nn.PBPNetwork : The posterior and its moment propagation.
    skbdl.nn.ADFTrainer : The training algorithm.

    Notes
    -----
    **Prediction.**  ``predict`` and ``predict_uncertainty(X)`` use the closed form:
    ``mean`` and ``epistemic_var`` are the output's mean and variance under the
    weight posterior by moment propagation (exact for one hidden layer, as the
    hidden units are then independent), ``aleatoric_var`` the expected noise
    variance ``E[1 / gamma]``.  ``sample_predictions`` draws ``n_samples`` networks
    from the weight posterior: their outputs are the means, each paired with
    ``E[1 / gamma]``, so the base's decomposition of the samples estimates the same
    two parts; ``predict_uncertainty(X, n_samples=k)`` uses ``k`` such draws.

    **Training.**  Per row, ``log Z`` (the log predictive density of the row) and
    its gradients with respect to every weight mean and variance are computed in
    numpy float64 with a hand-written backward pass (closed form, checked against
    autograd in the tests), vectorised over each layer's weights; the update is
    the paper's ``m += v dlogZ/dm``, ``v -= v^2 ((dlogZ/dm)^2 - 2 dlogZ/dv)``,
    rejecting updates that would leave a variance non-positive.  The EP refinement
    treats all weights at once (parallel EP), where the paper's code visits them
    one by one.  There is no mini-batch mode.

    References
    ----------
    J. M. Hernández-Lobato and R. P. Adams, "Probabilistic Backpropagation for
    Scalable Learning of Bayesian Neural Networks", ICML 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl import PBPRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(100, 1))
    >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.randn(100)
    >>> reg = PBPRegressor(hidden_layer_sizes=(20,), max_epochs=10, random_state=0).fit(X, y)
    >>> mean, std = reg.predict(X[:3], return_std=True)
    >>> mean.shape, bool((std > 0).all())
    ((3,), True)
    >>> u = reg.predict_uncertainty(np.array([[0.0], [5.0]]))
    >>> bool(u.epistemic_var[1] > u.epistemic_var[0])  # far from the data
    True
    """

    _parameter_constraints = {
        **BasePredictor._parameter_constraints,
        **network_constraints("hidden_layer_sizes", "callbacks", "verbose"),
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],  # no 'auto'
        "noise_precision_prior": ["array-like"],
        "weight_precision_prior": ["array-like"],
    }

    _closed_form_moments = True

    #: ADF reads one row at a time: a sparse matrix is densified row by row.
    _accepts_sparse = True

    def __init__(
        self,
        *,
        hidden_layer_sizes=(50,),
        max_epochs=40,
        noise_precision_prior=(6.0, 6.0),
        weight_precision_prior=(6.0, 6.0),
        n_samples=100,
        callbacks=None,
        predict_batch_size=None,
        device="cpu",
        random_state=None,
        verbose=0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.max_epochs = max_epochs
        self.noise_precision_prior = noise_precision_prior
        self.weight_precision_prior = weight_precision_prior
        self.n_samples = n_samples
        self.callbacks = callbacks
        self.predict_batch_size = predict_batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------- training
    def _check_priors(self):
        for name in ("noise_precision_prior", "weight_precision_prior"):
            if not _gamma_prior(getattr(self, name)):
                raise ValueError(
                    f"{name} must be a (shape, rate) pair with shape > 1 and rate > 0; "
                    f"got {getattr(self, name)!r}."
                )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the posterior by assumed density filtering.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_rows, n_features)
            Training inputs (numpy, pandas, lists, scipy sparse).  A sparse matrix
            stays sparse: each update densifies its one row.
        y : array-like of shape (n_rows,) or (n_rows, n_outputs)
            Real-valued targets.
        sample_weight : array-like of shape (n_rows,), default=None
            Non-negative integer weights (counts), not all zero: every pass
            updates the posterior ``w_i`` times with row ``i`` (0: never), exactly
            as ``w_i`` copies of the row would, and the target standardisation uses
            the weighted moments.  Assumed density filtering updates the posterior
            once per row, so a fractional weight has no such update and raises
            ``NotImplementedError``.

        Returns
        -------
        self : object
            The fitted estimator.  If fitting fails the exception propagates and
            the estimator is left exactly as it was.
        """
        return self._fit_restoring_state(X, y, sample_weight=sample_weight)

    def _fit(self, X, y, sample_weight=None):
        self._check_priors()
        hidden_layer_sizes = validate_hidden_layer_sizes(self.hidden_layer_sizes)
        data = self._validate_training_data(X, y, sample_weight)
        X, _, X_tensor, y_tensor, n_outputs, seed, device, weight = data
        X_rows = X_tensor
        if weight is not None or sp.issparse(X):
            index = None
            if weight is not None:
                if not np.array_equal(weight, np.round(weight)):
                    raise NotImplementedError(
                        "PBPRegressor supports integer sample weights (counts) only: "
                        "assumed density filtering updates the posterior once per row, "
                        "so a weight of k is k updates with that row, but a fractional "
                        "weight has no such update (it would need a tempered "
                        "likelihood, which moment matching through the network does "
                        "not cover). Round the weights, or repeat rows instead."
                    )
                index = np.repeat(np.arange(len(weight)), weight.astype(np.int64))
                y_tensor = y_tensor[index]
            # Rounded to float32 as the tensor the unweighted dense path reads.
            X_rows = _Rows(X.astype(np.float32).astype(np.float64), index)
        module = PBPNetwork(
            X.shape[1],
            n_outputs,
            hidden_layer_sizes=hidden_layer_sizes,
            noise_precision_prior=self.noise_precision_prior,
            weight_precision_prior=self.weight_precision_prior,
            generator=torch.Generator().manual_seed(seed),
        )
        net = _PBPNet(
            module,
            criterion=None,
            max_epochs=self.max_epochs,
            train_split=None,
            callbacks=self._net_callbacks(self.max_epochs),
            device=device,
            seed=seed,
            **self._table_options(),
        )
        net.fit(X_rows, y_tensor)
        self.noise_variance_ = net.module_.noise_variance().cpu().numpy() * self.y_scale_**2
        self._reset_calibration()
        return self._finish_fit(net)

    def _body(self, module):
        return module  # the posterior itself: PBP has no Gaussian head to strip

    # ----------------------------------------------------------- prediction
    def _predictive_moments(self, module, X, n_samples, seed):
        mean, epistemic = module(X)
        return mean, module.noise_variance().expand_as(mean), epistemic

    def _sample_outputs(self, module, X, n_samples, seed):
        # Weights drawn on the device, the same for every chunk (re-seeded per chunk).
        generator = torch.Generator(device=X.device).manual_seed(seed)
        mean = module.sample_outputs(X, n_samples, generator)
        return mean, module.noise_variance().expand_as(mean)

    def _deterministic_view(self, module):
        return _PosteriorMeanNetwork(module)

    def _activation_width(self, module, n_features_in):
        return max(n_features_in, *(max(shape) for shape in module.layer_shapes))
