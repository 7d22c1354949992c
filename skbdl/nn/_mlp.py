"""Torch building blocks shared by the estimators."""

import torch
from torch import nn
from torch.nn import functional as F

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
            layers += [nn.Linear(width, size), ACTIVATIONS[activation](), nn.Dropout(dropout)]
            width = size
        self.features = nn.Sequential(*layers)
        self.output = nn.Linear(width, n_outputs)

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
    likelihood : {'homoscedastic', 'heteroscedastic'}
        Homoscedastic learns one noise variance per target; heteroscedastic maps the
        second half of the outputs through ``softplus`` to an input-dependent
        variance.

    Examples
    --------
    >>> import torch
    >>> from skbdl.nn import MLP, GaussianRegressionModule
    >>> head = GaussianRegressionModule(MLP(3, 4), n_targets=2, likelihood="heteroscedastic")
    >>> mean, var = head(torch.zeros(5, 3))
    >>> mean.shape, bool((var > 0).all())
    (torch.Size([5, 2]), True)
    """

    def __init__(self, body, n_targets, likelihood="homoscedastic"):
        super().__init__()
        self.body = body
        self.n_targets = n_targets
        self.heteroscedastic = likelihood == "heteroscedastic"
        if not self.heteroscedastic:
            self.log_noise_var = nn.Parameter(torch.zeros(n_targets))

    def extra_loss(self):
        """The body's extra loss term (e.g. a KL divergence), if it defines one."""
        extra = getattr(self.body, "extra_loss", None)
        return 0.0 if extra is None else extra()

    def forward(self, x):
        out = self.body(x)
        if self.heteroscedastic:
            mean, raw = out[..., : self.n_targets], out[..., self.n_targets :]
            return mean, F.softplus(raw) + MIN_VARIANCE
        return out, self.log_noise_var.exp().expand_as(out)


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
        return 0.5 * (var.log() + (y_true - mean).square() / var).mean()
