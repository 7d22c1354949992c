"""A variational autoencoder as a scikit-learn transformer (the book's section 5.3).

The book introduces variational inference with the variational autoencoder (Kingma &
Welling 2014) before applying the same ideas to the weights of a network (Bayes by
Backprop, :mod:`skbdl.bbb`).  Both maximise an evidence lower bound (ELBO),
``E_q[log p(data | latent)] - KL(q || prior)``, over a Gaussian ``q`` whose mean and
standard deviation are learned by gradient descent through the reparameterisation
trick.  Here the latent variable is a code ``z`` per row, and ``q(z | x)`` is output
by an encoder network (amortised inference); in Bayes by Backprop it is every weight,
with its own mean and standard deviation.
"""

import math
import numbers

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn
from torch.nn import functional as F

from ._net import DivergenceError
from ._persistence import PersistenceMixin
from ._training import _torch_threads, network_constraints, resolve_training_budget
from .nn import MLP
from .nn._bayesian import gaussian_kl
from .uncertainty import HALF_LOG_2PI, gaussian_nll_terms

__all__ = ["VariationalAutoencoder"]


#: Smallest decoder variance, in standardised units: features that are constant in
#: the training data (the border pixels of digits) would otherwise drive their
#: learned variance, and the likelihood, to infinity.
MIN_NOISE_VARIANCE = 1e-3

#: The encoder's log variance is clipped to this range (standard deviations from
#: e^-5 to e^5), so that ``exp`` never overflows early in training.
_LOG_VAR_BOUNDS = (-10.0, 10.0)

#: Rows per forward pass at prediction time.
_PREDICT_ROWS = 2048


def _gaussian_kl_divergence(mu, log_var):
    """``KL(N(mu, diag(exp(log_var))) || N(0, I))`` per row, in closed form.

    ``0.5 * sum_k (mu_k^2 + sigma_k^2 - 1 - log sigma_k^2)``: the same closed form
    :class:`skbdl.nn.GaussianPrior` uses for the KL term of Bayes by Backprop, with
    a standard normal prior.

    Parameters
    ----------
    mu, log_var : torch.Tensor of shape (n_rows, n_components)
        Means and log variances of the diagonal Gaussians.

    Returns
    -------
    kl : torch.Tensor of shape (n_rows,)
        In nats.
    """
    return gaussian_kl(mu, log_var.exp(), log_var, dim=-1)


class _VAEModule(nn.Module):
    """Encoder ``x -> (mu, log_var)`` of ``q(z | x)`` and decoder ``z -> p(x | z)``."""

    def __init__(self, n_features, n_components, hidden_layer_sizes, activation, noise_variance):
        super().__init__()
        self.n_components = n_components
        self.encoder = MLP(n_features, 2 * n_components, hidden_layer_sizes, activation)
        self.decoder = MLP(n_components, n_features, hidden_layer_sizes[::-1], activation)
        if noise_variance == "learned":
            # Per-feature decoder variance MIN_NOISE_VARIANCE + exp(raw), starting at 1.
            self.raw_noise_var = nn.Parameter(torch.zeros(n_features))
        else:
            self.register_buffer(
                "fixed_noise_var", torch.full((n_features,), float(noise_variance))
            )

    def encode(self, x):
        mu, log_var = self.encoder(x).split(self.n_components, dim=-1)
        return mu, log_var.clamp(*_LOG_VAR_BOUNDS)

    def noise_var(self):
        if hasattr(self, "raw_noise_var"):
            return MIN_NOISE_VARIANCE + self.raw_noise_var.exp()
        return self.fixed_noise_var


class VariationalAutoencoder(
    PersistenceMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Variational autoencoder: a non-linear, probabilistic PCA trained by the ELBO.

    The generative model is ``z ~ N(0, I)`` (``n_components`` latent dimensions)
    and ``x | z ~ p(x | decoder(z))``, Gaussian or Bernoulli per feature.  An
    encoder network outputs the approximate posterior ``q(z | x) = N(mu(x),
    diag(sigma(x)^2))``.  Both networks are trained together by maximising the
    evidence lower bound per row,

    ``ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || N(0, I)) <= log p(x)``,

    with the *reparameterisation trick*: a draw ``z = mu(x) + sigma(x) * eps``,
    ``eps ~ N(0, I)``, is a differentiable function of the encoder's outputs, so
    the Monte Carlo estimate of the first term has gradients with respect to
    ``mu`` and ``sigma``; the KL term of two diagonal Gaussians is in closed form.
    Bayes by Backprop (:class:`BayesianMLPClassifier`) trains its weight posterior
    with the same trick (``w = mu + sigma * eps``) and the same closed-form KL.

    As a transformer it maps rows to their posterior means (``transform``) and
    codes back to the decoder's means (``inverse_transform``); ``sample`` draws
    new rows; ``score_samples`` is the ELBO of each row, a lower bound on its
    log-likelihood, usable as a novelty score (higher: more normal).

    Parameters
    ----------
    n_components : int, default=2
        Dimension of the latent code ``z``.
    hidden_layer_sizes : tuple of int, default=(128,)
        Hidden widths of the encoder; the decoder mirrors them.
    activation : {'relu', 'tanh', 'logistic', 'identity', 'gelu', 'elu', 'silu'}, \
default='relu'
        Non-linearity of the hidden layers.
    likelihood : {'gaussian', 'bernoulli'}, default='gaussian'
        ``'gaussian'``: every feature is standardised (mean 0, standard deviation
        1; constant features only centred) and modelled as ``N(decoder mean,
        variance)``; scores and reconstructions are reported in the original
        units (the log-likelihood includes the Jacobian of the standardisation).
        ``'bernoulli'``: features must lie in ``[0, 1]`` (e.g. pixel intensities
        divided by their maximum) and are modelled as Bernoulli with
        probability ``sigmoid(decoder(z))``, the binary cross-entropy loss, as for
        MNIST in the original paper; no standardisation.
    noise_variance : 'learned' or float, default='learned'
        Variance of the Gaussian likelihood, in standardised units: ``'learned'``,
        one variance per feature learned with the networks (at least
        ``1e-3``), or a fixed value (1.0 makes the reconstruction term half the
        squared error).  Ignored by the Bernoulli likelihood.
    lr : float, default=1e-3
        Learning rate of Adam.
    weight_decay : float, default=0.0
        L2 penalty of Adam.
    max_epochs : int or 'auto', default='auto'
        Passes over the training data; ``'auto'`` as skbdl's other estimators
        (400, or fewer where that exceeds 20 000 steps, at least 10); the value
        used is ``max_epochs_``.
    batch_size : int or 'auto', default='auto'
        Rows per step; ``'auto'``: 32 up to 2 048 rows, then ``n_train // 64`` up to
        256; the value used is ``batch_size_``.
    n_elbo_samples : int, default=16
        Draws of ``z`` per row in ``score_samples`` (training uses one per row
        and step, as usual).  The same draws of ``eps`` serve every row, so
        scores are deterministic and do not depend on which rows are scored
        together.
    device : str or torch.device, default='cpu'
        Where to train and predict (``'cuda'`` for a GPU); inputs and outputs stay
        numpy arrays.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the mini-batches, the training draws and the
        draws of ``score_samples``.
    verbose : int, default=0
        1 prints the loss about ten times during training, 2 every epoch.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained encoder (``module_.encoder``) and decoder (``module_.decoder``).
    mean_ : ndarray of shape (n_features_in_,)
        Feature means subtracted before training (zeros for ``'bernoulli'``).
    scale_ : ndarray of shape (n_features_in_,)
        Feature standard deviations divided by (ones for ``'bernoulli'`` and for
        constant features).
    noise_variance_ : ndarray of shape (n_features_in_,) or None
        The Gaussian likelihood's variance per feature in the original units
        (None for ``'bernoulli'``).
    loss_curve_ : list of float
        Mean negative ELBO per training row at each epoch, in nats, in the
        standardised units the network sees.
    n_iter_ : int
        Number of epochs run.
    batch_size_ : int
        The mini-batch size used (``batch_size``, resolved).
    max_epochs_ : int
        The number of epochs trained for (``max_epochs``, resolved).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during ``fit``, when they are all strings.

    See Also
    --------
    sklearn.decomposition.PCA : The linear, deterministic counterpart.
    BayesianMLPClassifier : The reparameterisation trick applied to weights.

    References
    ----------
    D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.

    D. J. Rezende, S. Mohamed and D. Wierstra, "Stochastic Backpropagation and
    Approximate Inference in Deep Generative Models", ICML 2014.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skbdl import VariationalAutoencoder
    >>> X = load_digits().data
    >>> vae = VariationalAutoencoder(n_components=2, max_epochs=5, random_state=0).fit(X)
    >>> vae.transform(X[:5]).shape
    (5, 2)
    >>> vae.inverse_transform(vae.transform(X[:5])).shape
    (5, 64)
    >>> vae.sample(3, random_state=0).shape
    (3, 64)
    >>> vae.score_samples(X[:5]).shape  # the ELBO of each row, in nats
    (5,)
    """

    _parameter_constraints: dict = {
        **network_constraints(
            "hidden_layer_sizes", "activation", "lr", "weight_decay", "max_epochs", "batch_size"
        ),
        "n_components": [Interval(numbers.Integral, 1, None, closed="left")],
        "likelihood": [StrOptions({"gaussian", "bernoulli"})],
        "noise_variance": [
            StrOptions({"learned"}),
            Interval(numbers.Real, 0, None, closed="neither"),
        ],
        "n_elbo_samples": [Interval(numbers.Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(128,),
        activation="relu",
        likelihood="gaussian",
        noise_variance="learned",
        lr=1e-3,
        weight_decay=0.0,
        max_epochs="auto",
        batch_size="auto",
        n_elbo_samples=16,
        device="cpu",
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.likelihood = likelihood
        self.noise_variance = noise_variance
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.n_elbo_samples = n_elbo_samples
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ helpers
    def _hidden(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
            raise ValueError(
                "hidden_layer_sizes must contain positive integers; "
                f"got {self.hidden_layer_sizes!r}."
            )
        return tuple(int(s) for s in sizes)

    def _torch_device(self):
        try:
            device = torch.device(self.device)
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"device={self.device!r} is not a torch device: {error}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r} was requested but CUDA is not available.")
        return device

    def _check_unit_interval(self, X):
        if self.likelihood == "bernoulli" and (X.min(initial=0) < 0 or X.max(initial=0) > 1):
            raise ValueError(
                "likelihood='bernoulli' needs every value of X in [0, 1]; got values in "
                f"[{X.min():.3g}, {X.max():.3g}].  Rescale X (e.g. divide by its maximum, "
                "or use MinMaxScaler), or use likelihood='gaussian'."
            )

    def _to_tensor(self, X):
        X = (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_
        return torch.tensor(X, dtype=torch.float32, device=self._device)

    def _log_likelihood(self, module, x, z):
        """``log p(x | z)`` per row (standardised units), for ``z`` of shape (..., n, k)."""
        out = module.decoder(z)
        if self.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, x.expand_as(out), reduction="none").sum(
                dim=-1
            )
        var = module.noise_var()
        return -(gaussian_nll_terms(x, out, var) + HALF_LOG_2PI).sum(dim=-1)

    def _negative_elbo(self, module, x, generator):
        """Mean over rows of ``-ELBO``, with one reparameterised draw of ``z`` per row."""
        mu, log_var = module.encode(x)
        # The reparameterisation trick: z is a deterministic, differentiable function
        # of (mu, sigma) and of noise that does not depend on them, so gradients of
        # the Monte Carlo estimate of E_q[log p(x | z)] flow into the encoder.
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + (0.5 * log_var).exp() * eps
        elbo = self._log_likelihood(module, x, z) - _gaussian_kl_divergence(mu, log_var)
        return -elbo.mean()

    # ---------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the encoder and decoder by maximising the ELBO.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Training rows (numpy, pandas, lists; float32 internally).
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted estimator.  If training diverges it raises
            :class:`skbdl.DivergenceError` and the estimator is left as it was.
        """
        state = dict(vars(self))
        try:
            return self._fit(X)
        except BaseException:
            vars(self).clear()
            vars(self).update(state)
            raise

    def _fit(self, X):
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        hidden = self._hidden()
        self._device = self._torch_device()
        self._check_unit_interval(X)
        n_rows, n_features = X.shape
        if self.likelihood == "gaussian":
            self.mean_ = X.mean(axis=0).astype(np.float64)
            scale = X.std(axis=0).astype(np.float64)
            self.scale_ = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(self.mean_)), scale, 1.0)
        else:
            self.mean_, self.scale_ = np.zeros(n_features), np.ones(n_features)
        rng = check_random_state(self.random_state)
        train_seed = int(rng.randint(np.iinfo(np.int32).max))
        self._score_seed = int(rng.randint(np.iinfo(np.int32).max))
        self.batch_size_, self.max_epochs_ = resolve_training_budget(
            self.batch_size, self.max_epochs, n_rows
        )
        noise = "learned" if self.likelihood == "bernoulli" else self.noise_variance
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(train_seed)
            module = _VAEModule(n_features, self.n_components, hidden, self.activation, noise)
        module.to(self._device)
        generator = torch.Generator(device=self._device).manual_seed(train_seed)
        optimizer = torch.optim.Adam(
            module.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=True
        )
        x_all = self._to_tensor(X)
        self.loss_curve_ = []
        report_every = max(1, self.max_epochs_ // 10) if self.verbose == 1 else 1
        threads = 1 if self._device.type == "cpu" and self.batch_size_ <= 512 else None
        module.train()
        with _torch_threads(threads):
            for epoch in range(self.max_epochs_):
                order = torch.randperm(n_rows, generator=generator, device=self._device)
                total = 0.0
                for rows in order.split(self.batch_size_):
                    loss = self._negative_elbo(module, x_all[rows], generator)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += loss.item() * len(rows)
                epoch_loss = total / n_rows
                if not math.isfinite(epoch_loss):
                    raise DivergenceError(
                        f"Training diverged: the negative ELBO is {epoch_loss} at epoch "
                        f"{epoch + 1}.  Lower the learning rate (lr) or fix the noise "
                        "variance (noise_variance=1.0)."
                    )
                self.loss_curve_.append(epoch_loss)
                if self.verbose and ((epoch + 1) % report_every == 0 or self.verbose >= 2):
                    print(f"epoch {epoch + 1:>4}/{self.max_epochs_}  -ELBO {epoch_loss:.4f}")
        module.eval()
        self.module_ = module
        self.n_iter_ = len(self.loss_curve_)
        self.noise_variance_ = (
            None
            if self.likelihood == "bernoulli"
            else module.noise_var().detach().cpu().double().numpy() * self.scale_**2
        )
        return self

    @property
    def _n_features_out(self):
        return self.n_components

    # -------------------------------------------------------------- prediction
    def _validated(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        self._check_unit_interval(X)
        return X

    def transform(self, X):
        """Posterior means of the latent code, ``mu(x)``.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Rows to encode.

        Returns
        -------
        Z : ndarray of shape (n_rows, n_components)
            The mean of ``q(z | x)`` per row.
        """
        X = self._validated(X)
        means = []
        with torch.no_grad():
            for chunk in np.array_split(X, max(1, math.ceil(len(X) / _PREDICT_ROWS))):
                mu, _ = self.module_.encode(self._to_tensor(chunk))
                means.append(mu.double().cpu().numpy())
        return np.concatenate(means).reshape(len(X), self.n_components)

    def _decode(self, Z):
        outputs = []
        with torch.no_grad():
            for chunk in np.array_split(Z, max(1, math.ceil(len(Z) / _PREDICT_ROWS))):
                z = torch.tensor(chunk, dtype=torch.float32, device=self._device)
                out = self.module_.decoder(z)
                if self.likelihood == "bernoulli":
                    out = torch.sigmoid(out)
                outputs.append(out.double().cpu().numpy())
        return np.concatenate(outputs).reshape(len(Z), -1) * self.scale_ + self.mean_

    def inverse_transform(self, X):
        """Decoder means of latent codes: the reconstruction of ``transform``'s output.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_components)
            Latent codes.

        Returns
        -------
        X_original : ndarray of shape (n_rows, n_features_in_)
            ``E[x | z]`` in the original units (probabilities for ``'bernoulli'``).
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=np.float64)
        if Z.shape[1] != self.n_components:
            raise ValueError(
                f"X has {Z.shape[1]} columns, but inverse_transform expects latent codes "
                f"of n_components={self.n_components} columns."
            )
        return self._decode(Z)

    def sample(self, n_samples=1, random_state=None):
        """New rows: latent codes drawn from the prior ``N(0, I)``, decoded.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to generate.
        random_state : int, RandomState instance or None, default=None
            Seed of the latent draws.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in_)
            The decoder's mean ``E[x | z]`` for each draw ``z`` (the smooth image a
            code stands for, without the likelihood's per-feature noise), in the
            original units.
        """
        check_is_fitted(self)
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral):
            raise TypeError(f"n_samples must be a positive integer; got {n_samples!r}.")
        if n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer; got {n_samples}.")
        Z = check_random_state(random_state).standard_normal((n_samples, self.n_components))
        return self._decode(Z)

    def score_samples(self, X):
        """Evidence lower bound (ELBO) of each row, in nats: higher is more normal.

        ``E_q[log p(x | z)] - KL(q(z | x) || N(0, I))``, a lower bound on the row's
        log-likelihood ``log p(x)`` under the model, with the expectation estimated
        from ``n_elbo_samples`` reparameterised draws of ``z`` and the KL in closed
        form.  For ``'gaussian'`` the density is of the original (unstandardised)
        features.  Rows unlike the training data score low, as with
        ``IsolationForest.score_samples``.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Rows to score.

        Returns
        -------
        elbo : ndarray of shape (n_rows,)
            The ELBO per row.
        """
        X = self._validated(X)
        generator = torch.Generator(device=self._device).manual_seed(self._score_seed)
        eps = torch.randn(
            (self.n_elbo_samples, 1, self.n_components), generator=generator, device=self._device
        )
        jacobian = float(np.log(self.scale_).sum())
        scores = []
        with torch.no_grad():
            for chunk in np.array_split(X, max(1, math.ceil(len(X) / _PREDICT_ROWS))):
                x = self._to_tensor(chunk)
                mu, log_var = self.module_.encode(x)
                z = mu + (0.5 * log_var).exp() * eps  # (n_elbo_samples, n_rows, n_components)
                expected = self._log_likelihood(self.module_, x, z).double().mean(dim=0)
                elbo = expected - _gaussian_kl_divergence(mu.double(), log_var.double())
                scores.append(elbo.cpu().numpy() - jacobian)
        return np.concatenate(scores).reshape(len(X))

    def score(self, X, y=None):
        """Mean ELBO of the rows (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Rows to score.
        y : None
            Ignored.

        Returns
        -------
        score : float
            ``score_samples(X).mean()``, in nats per row.
        """
        return float(np.mean(self.score_samples(X)))
