"""The uncertainty summaries of a chunk of draws, reduced in torch on the draws' device.

These are the formulas of :mod:`skbdl.uncertainty` (which stays the numpy reference
the tests compare them with), written for torch tensors so that prediction reduces
``(n_samples, n_rows, ...)`` draws where they were computed and only the per-row
summaries cross to the host.  The draws are promoted to float64 first: the
summaries then agree with the numpy reference to round-off (a mutual information or
an epistemic variance is a small difference of large terms), and the cost is small
beside the forward passes that made the draws.
"""

import math

import torch


def _scaled_logits(logits, temperature):
    # float64 first: the probabilities of confident draws underflow in float32.
    logits = logits.to(torch.float64)
    return logits if temperature == 1.0 else logits / temperature


def proba_samples(logits, temperature=1.0):
    """Class probabilities ``softmax(logits / temperature)`` in float64.

    Parameters
    ----------
    logits : torch.Tensor of shape (n_samples, n_rows, n_classes)
    temperature : float, default=1.0

    Returns
    -------
    proba : torch.Tensor, same shape, float64
    """
    return torch.softmax(_scaled_logits(logits, temperature), dim=-1)


def log_proba_samples(logits, temperature=1.0):
    """Log class probabilities ``log_softmax(logits / temperature)`` in float64.

    Parameters
    ----------
    logits : torch.Tensor of shape (..., n_classes)
    temperature : float, default=1.0

    Returns
    -------
    log_proba : torch.Tensor, same shape, float64
    """
    return torch.log_softmax(_scaled_logits(logits, temperature), dim=-1)


def log_model_average(logits, temperature=1.0, labels=None):
    """Log of the model average ``log mean_s softmax(logits_s / temperature)``.

    The torch form of :func:`skbdl.uncertainty._log_model_average` (the likelihood
    temperature scaling fits): differentiable, for the ensemble's deterministic pass
    and the adversarial objective.

    Parameters
    ----------
    logits : torch.Tensor of shape (n_samples, n_rows, n_classes)
    temperature : float, default=1.0
    labels : torch.Tensor of shape (n_rows,), dtype int64, default=None
        A class index per row: return only that class's log probability.

    Returns
    -------
    log_proba : torch.Tensor of shape (n_rows, n_classes), or (n_rows,) with ``labels``
        float64.
    """
    log_proba = log_proba_samples(logits, temperature)
    if labels is not None:
        log_proba = log_proba.gather(-1, labels.expand(len(log_proba), -1)[..., None])[..., 0]
    return log_mean_exp(log_proba)


def log_mean_exp(log_terms):
    """``log mean_s exp(log_terms_s)`` over dim 0: the log of an equal-weight
    mixture from its components' logs (:func:`skbdl.uncertainty._log_mean_exp`).

    Parameters
    ----------
    log_terms : torch.Tensor of shape (n_samples, ...)

    Returns
    -------
    log_mean : torch.Tensor of shape (...)
    """
    return torch.logsumexp(log_terms, dim=0) - math.log(len(log_terms))


def _entropy(proba):
    # -sum p log p with 0 log 0 = 0, as uncertainty.entropy
    return -torch.special.xlogy(proba, proba).sum(dim=-1)


def classification_summaries(logits, temperature=1.0):
    """Model average and entropy decomposition of a chunk of draws.

    Parameters
    ----------
    logits : torch.Tensor of shape (n_samples, n_rows, n_classes)
        Logits of the draws (divided by ``temperature`` before the softmax).
    temperature : float, default=1.0

    Returns
    -------
    proba : torch.Tensor of shape (n_rows, n_classes)
        ``mean_s p_s``, renormalised to sum to one per row.
    total, aleatoric, epistemic : torch.Tensor of shape (n_rows,)
        Predictive entropy ``H[mean_s p_s]``, expected entropy ``mean_s H[p_s]`` and
        their difference (the mutual information, round-off below zero clipped), in
        nats: :func:`skbdl.uncertainty.decompose_classification`.
    """
    proba_draws = proba_samples(logits, temperature)
    proba = proba_draws.mean(dim=0)
    total = _entropy(proba)
    aleatoric = _entropy(proba_draws).mean(dim=0)
    epistemic = (total - aleatoric).clamp_min(0.0)
    return proba / proba.sum(dim=1, keepdim=True), total, aleatoric, epistemic


def regression_summaries(out):
    """Moments of the equally weighted Gaussian mixture of a chunk of draws.

    Parameters
    ----------
    out : tuple of torch.Tensor
        ``(mean_samples, var_samples)``, each of shape (n_samples, n_rows, n_outputs).

    Returns
    -------
    mean, aleatoric_var, epistemic_var : torch.Tensor of shape (n_rows, n_outputs)
        ``mean_s mu_s``, ``mean_s sigma_s**2`` and ``mean_s (mu_s - mean)**2`` in
        float64: :func:`skbdl.uncertainty.decompose_regression` (law of total
        variance; the total is their sum).
    """
    mean_samples, var_samples = out
    mean_samples = mean_samples.to(torch.float64)
    mean = mean_samples.mean(dim=0)
    aleatoric = var_samples.mean(dim=0, dtype=torch.float64)  # no float64 copy of the draws
    epistemic = (mean_samples - mean).square_().mean(dim=0)
    return mean, aleatoric, epistemic
