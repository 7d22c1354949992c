"""Torch building blocks shared by the estimators."""

import torch
from torch import nn
from torch.nn import functional as F

from ..uncertainty import gaussian_nll_terms
from ._random import Dropout, linear

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "identity": nn.Identity,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}

#: Smallest variance a Gaussian output may take, in standardised target units.
MIN_VARIANCE = 1e-6

#: Activations a Gaussian head may apply to its means (``output_activation``), and
#: the closed range of each: means are clipped to it after the standardisation is
#: undone, so that its round-off cannot take a mean outside.
OUTPUT_ACTIVATIONS = {
    "relu": (torch.relu, (0.0, None)),
    "softplus": (F.softplus, (0.0, None)),
    "sigmoid": (torch.sigmoid, (0.0, 1.0)),
    "tanh": (torch.tanh, (-1.0, 1.0)),
}


class MLP(nn.Module):
    """Multi-layer perceptron: ``Linear -> activation -> Dropout`` per hidden layer.

    Parameters
    ----------
    n_features_in : int
        Number of input features.
    n_outputs : int
        Width of the output layer (logits, or means and raw variances).
    hidden_layer_sizes : tuple of int, default=(100,)
        Width of each hidden layer.
    activation : {'relu', 'tanh', 'logistic', 'identity', 'gelu', 'elu', 'silu'}, default='relu'
        Non-linearity after each hidden ``Linear``.
    dropout : float, default=0.0
        Dropout probability after each hidden activation.  A ``Dropout`` layer is
        present even when it is 0, so MC dropout with ``dropout=0`` is the
        deterministic network.

    Attributes
    ----------
    features : torch.nn.Sequential
        Everything up to the penultimate representation.
    output : torch.nn.Linear
        The last (linear) layer.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import MLP
    >>> net = MLP(3, 2, hidden_layer_sizes=(8, 8), dropout=0.1)
    >>> net(torch.zeros(5, 3)).shape
    torch.Size([5, 2])
    """

    def __init__(
        self,
        n_features_in,
        n_outputs,
        hidden_layer_sizes=(100,),
        activation="relu",
        dropout=0.0,
    ):
        super().__init__()
        layers = []
        width = n_features_in
        for size in hidden_layer_sizes:
            # Initialised and dropped out from skbdl's training generators in a fit
            # (nn/_random.py), as nn.Linear / nn.Dropout from torch's global one outside.
            layers += [linear(width, size), ACTIVATIONS[activation](), Dropout(dropout)]
            width = size
        self.features = nn.Sequential(*layers)
        self.output = linear(width, n_outputs)

    def forward(self, x):
        return self.output(self.features(x))


class GaussianRegressionModule(nn.Module):
    """Turn a network's output into a Gaussian mean and variance per target.

    Parameters
    ----------
    body : torch.nn.Module
        Maps inputs to ``n_targets`` outputs (homoscedastic) or ``2 * n_targets``
        outputs (heteroscedastic: the means, then unconstrained variances).
    n_targets : int
        Number of regression targets.
    likelihood : {'homoscedastic', 'heteroscedastic', 'fixed'}
        Homoscedastic learns one noise variance per target; heteroscedastic maps the
        second half of the outputs through ``softplus`` to an input-dependent
        variance; fixed holds ``noise_variance`` (the buffer ``log_noise_var``, not
        trained): the network predicts only means.
    noise_variance : float or array-like of shape (n_targets,), default=1.0
        The noise variance of ``likelihood='fixed'``, in the units the head
        predicts (skbdl's estimators: standardised targets).  Ignored otherwise.
    output_activation : {None, 'relu', 'softplus', 'sigmoid', 'tanh'}, default=None
        Applied to the means in the target's original units: the head predicts
        ``(activation(out * target_scale + target_mean) - target_mean) /
        target_scale``, so ``'relu'`` or ``'softplus'`` make the means in original
        units non-negative, ``'sigmoid'`` puts them in ``(0, 1)``.
    target_mean, target_scale : float or array-like of shape (n_targets,), default=0.0, 1.0
        The standardisation of the targets (original = standardised * scale +
        mean); only used with ``output_activation``.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import MLP, GaussianRegressionModule
    >>> head = GaussianRegressionModule(MLP(3, 4), n_targets=2, likelihood="heteroscedastic")
    >>> mean, var = head(torch.zeros(5, 3))
    >>> mean.shape, bool((var > 0).all())
    (torch.Size([5, 2]), True)
    >>> fixed = GaussianRegressionModule(MLP(3, 2), 2, "fixed", noise_variance=0.25)
    >>> fixed(torch.zeros(5, 3))[1][0].tolist()
    [0.25, 0.25]
    """

    def __init__(
        self,
        body,
        n_targets,
        likelihood="homoscedastic",
        noise_variance=1.0,
        output_activation=None,
        target_mean=0.0,
        target_scale=1.0,
    ):
        super().__init__()
        if likelihood not in ("homoscedastic", "heteroscedastic", "fixed"):
            raise ValueError(
                "likelihood must be 'homoscedastic', 'heteroscedastic' or 'fixed'; got "
                f"{likelihood!r}."
            )
        if output_activation is not None and output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"output_activation must be None or one of {sorted(OUTPUT_ACTIVATIONS)}; "
                f"got {output_activation!r}."
            )
        self.body = body
        self.n_targets = n_targets
        self.likelihood = likelihood
        self.heteroscedastic = likelihood == "heteroscedastic"
        self.output_activation = output_activation
        if likelihood == "homoscedastic":
            self.log_noise_var = nn.Parameter(torch.zeros(n_targets))
        elif likelihood == "fixed":
            variance = torch.as_tensor(noise_variance, dtype=torch.float64).expand(n_targets)
            if not bool((variance > 0).all() and variance.isfinite().all()):
                raise ValueError(f"noise_variance must be positive; got {noise_variance!r}.")
            self.register_buffer("log_noise_var", variance.log().float().clone())
        if output_activation is not None:
            for name, value in (("target_mean", target_mean), ("target_scale", target_scale)):
                value = torch.as_tensor(value, dtype=torch.float32).expand(n_targets)
                self.register_buffer(name, value.clone())

    def _activated(self, mean):
        """The means through ``output_activation``, applied in original units."""
        if self.output_activation is None:
            return mean
        activation = OUTPUT_ACTIVATIONS[self.output_activation][0]
        original = activation(mean * self.target_scale + self.target_mean)
        return (original - self.target_mean) / self.target_scale

    def extra_loss(self):
        """The body's extra loss term (e.g. a KL divergence), if it defines one."""
        extra = getattr(self.body, "extra_loss", None)
        return 0.0 if extra is None else extra()

    def forward(self, x):
        return self.head_outputs(self.body(x))

    def head_outputs(self, out):
        """``(mean, var)`` from the body's output ``out`` (what :meth:`forward`
        returns; also used by the fast training steps, which compute ``out``)."""
        if self.heteroscedastic:
            mean, raw = out[..., : self.n_targets], out[..., self.n_targets :]
            return self._activated(mean), F.softplus(raw) + MIN_VARIANCE
        return self._activated(out), self.log_noise_var.exp().expand_as(out)


class GaussianNLLLoss(nn.Module):
    """Mean Gaussian negative log-likelihood of ``(mean, var)`` predictions, without
    the constant ``0.5 log 2 pi``.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import GaussianNLLLoss
    >>> GaussianNLLLoss()((torch.zeros(2, 1), torch.ones(2, 1)), torch.zeros(2, 1)).item()
    0.0
    """

    def forward(self, y_pred, y_true):
        mean, var = y_pred
        return gaussian_nll_terms(y_true, mean, var).mean()


class _AutogradGaussianNLLLoss(GaussianNLLLoss):
    """:class:`GaussianNLLLoss` for a head with options that the hand-written
    training steps (``skbdl.nn._fast``) do not implement: a fixed noise variance
    (``likelihood='fixed'``), an ``output_activation``.  The same loss; a type of its
    own, so that those steps leave the head to autograd.  It knows its null model's
    loss for the convergence check: the mean (0, standardised) predicted with the
    fixed variance ``noise_variance`` (None: a learned one, then 1)."""

    def __init__(self, noise_variance=None):
        super().__init__()
        self.noise_variance = noise_variance

    def null_loss(self, y_true):
        variance = 1.0 if self.noise_variance is None else self.noise_variance
        var = torch.as_tensor(variance, dtype=torch.float64, device=y_true.device)
        return float(gaussian_nll_terms(y_true.double(), 0.0, var).mean())


class _MeanLoss(nn.Module):
    """A user's loss (``criterion=``) on the means of a Gaussian head's ``(mean,
    var)`` predictions, in standardised target units; the variance is not trained.

    ``stacked``: the predictions of an ensemble, ``(n_members, n_rows, n_targets)``;
    the loss is then ``n_members`` times the loss over all members, so that each
    member gets the gradient of its own loss, as the ensemble criteria do.
    """

    def __init__(self, loss, stacked=False):
        super().__init__()
        self.loss, self.stacked = loss, stacked

    def forward(self, y_pred, y_true):
        mean = y_pred[0]
        if not self.stacked:
            return self.loss(mean, y_true)
        return len(mean) * self.loss(mean, y_true.expand_as(mean))

    def null_loss(self, y_true):
        """The loss of predicting the mean target (0, standardised), per member."""
        return float(self.loss(torch.zeros_like(y_true), y_true))
