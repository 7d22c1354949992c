"""Adversarial inputs for any fitted skbdl estimator: FGSM and PGD.

An attack moves each input in the direction that increases the estimator's negative
log-likelihood of the true target, computed by automatic differentiation through
the estimator's own torch module and its own sampling: the log of the Monte Carlo
average of ``n_samples`` draws' likelihoods (dropout masks, weight draws, ensemble
members, with the same seeded draws as ``predict_proba``), or one pass of the
deterministic network (``deterministic=True``).  For a classifier the likelihood is
the model average's probability of the label (after temperature scaling); for a
regressor, the predictive Gaussian mixture's density of the target (after variance
recalibration).

Inputs are taken and returned in the space the user passed to ``fit``: for a
:class:`~sklearn.pipeline.Pipeline` whose last step is a skbdl estimator, the
attack differentiates through the steps before it, which must be affine scalers
(``StandardScaler``, ``MinMaxScaler``, ``MaxAbsScaler``, ``RobustScaler``) or
``'passthrough'``; any other step raises an error naming it.
"""

import numbers

import numpy as np
import torch
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ._reductions import log_mean_exp, log_model_average
from .nn._views import module_view
from .uncertainty import HALF_LOG_2PI, _scale_spread, gaussian_nll_terms

__all__ = ["fgsm", "input_gradient", "pgd"]


# ------------------------------------------------------------------ pipelines
def _affine(step):
    """``(scale, offset, clamp)`` with ``step.transform(X) = X * scale + offset``
    (clamped to ``clamp`` when not None), or None for an unsupported step."""
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return 1.0, 0.0, None
    if type(step) is StandardScaler:
        scale = 1.0 if step.scale_ is None else 1.0 / step.scale_
        offset = 0.0 if step.mean_ is None else -step.mean_ * scale
        return scale, offset, None
    if type(step) is MinMaxScaler:
        return step.scale_, step.min_, step.feature_range if step.clip else None
    if type(step) is MaxAbsScaler:
        return 1.0 / step.scale_, 0.0, None
    if type(step) is RobustScaler:
        scale = 1.0 if step.scale_ is None else 1.0 / step.scale_
        offset = 0.0 if step.center_ is None else -step.center_ * scale
        return scale, offset, None
    return None


def _split_pipeline(estimator):
    """``(preprocessing steps as [(name, step)], final estimator)``."""
    if not isinstance(estimator, Pipeline):
        return [], estimator
    return list(estimator.steps[:-1]), estimator.steps[-1][1]


def _torch_steps(steps):
    """The steps as torch functions of the input; a clear error for any other step."""
    functions = []
    for name, step in steps:
        affine = _affine(step)
        if affine is None:
            raise ValueError(
                f"skbdl.adversarial cannot differentiate through the pipeline step "
                f"{name!r} ({type(step).__name__}): only affine scalers (StandardScaler, "
                "MinMaxScaler, MaxAbsScaler, RobustScaler) and 'passthrough' are "
                "supported. Apply that step to X yourself and attack the pipeline's "
                "remaining steps, or replace the step by an affine one."
            )
        if step is not None and not isinstance(step, str):
            check_is_fitted(step)
        functions.append(affine)
    return functions


def _apply_steps(functions, x):
    for scale, offset, clamp in functions:
        x = x * torch.as_tensor(scale, dtype=x.dtype) + torch.as_tensor(offset, dtype=x.dtype)
        if clamp is not None:
            x = x.clamp(*clamp)
    return x


# ------------------------------------------------------------------ estimator
def _check_estimator(final):
    if not (hasattr(final, "_sample_outputs") and hasattr(final, "_prediction_module")):
        raise TypeError(
            "skbdl.adversarial attacks skbdl estimators (or a Pipeline ending in one); got "
            f"{type(final).__name__}."
        )
    check_is_fitted(final)


def _validate_for_model(final, Xt):
    """``Xt`` validated and shaped as the estimator's module takes it (numpy)."""
    if hasattr(final, "_validate_prediction_input"):
        return final._validate_prediction_input(Xt)
    return validate_data(final, Xt, reset=False, dtype=[np.float64, np.float32])


def _targets(final, y, n_rows):
    """Class indices (classifiers) or standardised targets (regressors) as a tensor."""
    y = np.asarray(y)
    if len(y) != n_rows:
        raise ValueError(f"X has {n_rows} rows but y has {len(y)}; they must match.")
    if hasattr(final, "classes_"):
        index = np.searchsorted(final.classes_, y)
        index = np.clip(index, 0, len(final.classes_) - 1)
        unknown = final.classes_[index] != y
        if np.any(unknown):
            raise ValueError(
                f"y contains labels {np.unique(y[unknown]).tolist()} that the estimator "
                f"was not fitted on; its classes are {final.classes_.tolist()}."
            )
        return torch.as_tensor(index, dtype=torch.int64)
    y2 = y.reshape(n_rows, -1).astype(np.float64)
    if y2.shape[1] != final.n_outputs_:
        raise ValueError(f"y has {y2.shape[1]} targets; the estimator predicts {final.n_outputs_}.")
    return torch.as_tensor((y2 - final.y_mean_) / final.y_scale_)


def _gradient_safe(view, module):
    """Turn off in-place operations in the layers a view added (they are its own)."""
    fitted = {id(m) for m in module.modules()}
    for m in view.modules():
        if id(m) in fitted:
            continue
        if isinstance(m, torch.nn.ReLU) and m.inplace:
            m.inplace = False
        if getattr(m, "in_place", False):
            m.in_place = False
    return view


def _deterministic_module(final, module):
    """The module of the estimator's deterministic pass, whose output is one draw's."""
    if hasattr(final, "_deterministic_view"):  # the estimator's own deterministic pass
        with torch.no_grad():
            return final._deterministic_view(module)
    from .bbb import _BaseBayesByBackprop
    from .mc_dropout import _BaseMCDropout

    if not isinstance(final, (_BaseMCDropout, _BaseBayesByBackprop)):
        raise ValueError(
            f"{type(final).__name__} has no deterministic pass (deterministic=True); "
            "use deterministic=False."
        )
    return module_view(module)  # dropout off, posterior means


def _outputs(final, view, x, n_samples, seed, deterministic):
    """The draws' outputs for model inputs ``x``: a tensor (or a tuple of them) with
    draws on axis 0."""
    if not deterministic:
        return final._sample_outputs(view, x, n_samples, seed)
    out = view(x)  # one draw's output: add the draws axis
    return tuple(o[None] for o in out) if isinstance(out, tuple) else out[None]


def _log_likelihood(final, out, target):
    """Per-row log-likelihood of the model average, shape (n_rows,), float64."""
    if hasattr(final, "classes_"):
        temperature = final._temperature() if hasattr(final, "_temperature") else 1.0
        return log_model_average(out, temperature, labels=target)
    mean, var = (o.to(torch.float64) for o in out)
    scale = torch.as_tensor(getattr(final, "calibration_scale_", 1.0), dtype=torch.float64)
    mean, var = _scale_spread(mean, var, scale)
    # Joint over the outputs: each draw's outputs are independent Gaussians.
    return log_mean_exp(-(gaussian_nll_terms(target, mean, var) + HALF_LOG_2PI).sum(-1))


class _Objective:
    """The negative log-likelihood of an estimator (or pipeline) as a torch function
    of inputs in the user's space, with one prediction call's draws fixed."""

    def __init__(self, estimator, X, y, n_samples, deterministic):
        steps, final = _split_pipeline(estimator)
        _check_estimator(final)
        self.functions = _torch_steps(steps)
        X = check_array(X, dtype=[np.float64, np.float32], allow_nd=True)
        Xt = X
        for _, step in steps:
            if step is not None and not isinstance(step, str):
                Xt = step.transform(Xt)
        model_input = _validate_for_model(final, Xt)
        x = torch.as_tensor(X)
        mapped = _apply_steps(self.functions, x).to(torch.float64)
        if not np.allclose(mapped.numpy(), np.asarray(Xt, dtype=np.float64), atol=1e-5):
            raise ValueError("The pipeline's steps could not be reproduced in torch.")
        self.X, self.final, self.model_shape = X, final, model_input.shape[1:]
        self.target = _targets(final, y, len(X))
        self.deterministic = bool(deterministic)
        module, self.device = final._prediction_module()
        if self.deterministic:
            self.n_samples = 1
            self.view = _deterministic_module(final, module)
        else:
            self.n_samples = final._check_n_samples(n_samples)
            with torch.no_grad():
                view = final._sampling_view(
                    module, self.n_samples, final._predict_seed, self.device
                )
            self.view = _gradient_safe(view, module)
        budget = final._predict_budget(module, self.device, int(np.prod(self.model_shape)))
        self.rows = max(1, budget // self.n_samples)

    def gradient(self, X):
        """``(nll, grad)``: per-row negative log-likelihood (n_rows,) and its gradient
        with respect to each row, same shape as ``X``."""
        nll = np.empty(len(X))
        grad = np.empty(X.shape, dtype=np.float64)
        for start in range(0, len(X), self.rows):
            rows = slice(start, start + self.rows)
            x = torch.tensor(X[rows], dtype=torch.float64, requires_grad=True)
            with torch.enable_grad():
                model_x = _apply_steps(self.functions, x).reshape(-1, *self.model_shape)
                model_x = model_x.to(self.device, torch.float32)
                out = _outputs(
                    self.final,
                    self.view,
                    model_x,
                    self.n_samples,
                    self.final._predict_seed,
                    self.deterministic,
                )
                target = self.target[rows].to(self.device)
                loss = -_log_likelihood(self.final, out, target)
                if not loss.requires_grad:
                    raise TypeError(
                        f"{type(self.final).__name__} computes its predictions without "
                        "automatic differentiation (a post-hoc posterior over a fixed "
                        "network), so skbdl.adversarial cannot attack it. Attack the "
                        "network it was fitted from instead."
                    )
                (x_grad,) = torch.autograd.grad(loss.sum(), x)
            nll[rows] = loss.detach().cpu().numpy()
            grad[rows] = x_grad.numpy()
        return nll, grad


def _check_number(name, value, low=0.0):
    if not isinstance(value, numbers.Real) or not np.isfinite(value) or value < low:
        raise ValueError(f"{name} must be a finite number >= {low}; got {value!r}.")
    return float(value)


def _clip(X, clip):
    if clip is None:
        return X
    low, high = clip
    return np.clip(X, low, high)


_COMMON_PARAMETERS = """estimator : fitted skbdl estimator or Pipeline
        A classifier or regressor of skbdl, or a :class:`~sklearn.pipeline.Pipeline`
        ending in one whose earlier steps are affine scalers (``StandardScaler``,
        ``MinMaxScaler``, ``MaxAbsScaler``, ``RobustScaler``) or ``'passthrough'``.
    X : array-like of shape (n_rows, ...)
        Inputs, as passed to ``fit`` (rows of features, or images ``(n_rows,
        channels, height, width)`` for a module that takes them).
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        True labels (classifiers) or targets (regressors)."""

_SAMPLING_PARAMETERS = """n_samples : int, default=None
        Draws of the model whose averaged likelihood is attacked; ``None`` uses the
        estimator's ``n_samples`` (its own prediction call's seeded draws).
    deterministic : bool, default=False
        Attack the estimator's deterministic pass instead, the one
        ``predict_proba(X, deterministic=True)`` evaluates: dropout off for MC
        dropout, posterior means for Bayes by Backprop, the members' average for a
        deep ensemble.  A method without one raises a ValueError.
    clip : tuple (low, high), default=None
        Range of valid inputs (e.g. ``(0, 1)`` for pixel intensities); adversarial
        inputs are clipped to it."""


def input_gradient(estimator, X, y, *, n_samples=None, deterministic=False):
    """Gradient of the negative log-likelihood of ``y`` with respect to the inputs.

    Parameters
    ----------
    {common}
    {sampling}

    Returns
    -------
    gradient : ndarray of shape X.shape, float64
        ``d(-log p(y_i | x_i)) / d x_i`` for every row ``i``, where ``p`` is the
        model average (classifiers) or predictive mixture (regressors) of
        ``n_samples`` draws.

    See Also
    --------
    fgsm : The fast gradient sign method, one step along the sign of this gradient.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl import MCDropoutClassifier
    >>> from skbdl.adversarial import input_gradient
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(60, 2).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = MCDropoutClassifier(hidden_layer_sizes=(8,), max_epochs=20, n_samples=10,
    ...                           random_state=0, verbose=0).fit(X, y)
    >>> input_gradient(clf, X[:3], y[:3]).shape
    (3, 2)
    """
    objective = _Objective(estimator, X, y, n_samples, deterministic)
    return objective.gradient(objective.X)[1]


def fgsm(estimator, X, y, epsilon, *, n_samples=None, deterministic=False, clip=None):
    """Fast gradient sign method (Goodfellow et al. 2015).

    ``X_adv = clip(X + epsilon * sign(grad_X -log p(y | X)))``: every input value
    moves by ``epsilon`` in the direction that increases the negative
    log-likelihood of the true target most, to first order.

    Parameters
    ----------
    {common}
    epsilon : float
        Size of the step in every input value (the attack's L-infinity radius), in
        the units of ``X``.
    {sampling}

    Returns
    -------
    X_adversarial : ndarray of shape X.shape
        The attacked inputs, in the dtype of ``X`` (float32 or float64).

    See Also
    --------
    pgd : Several projected steps: a stronger attack within the same radius.
    input_gradient : The gradient whose sign FGSM follows.

    References
    ----------
    I. J. Goodfellow, J. Shlens and C. Szegedy, "Explaining and Harnessing
    Adversarial Examples", ICLR 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl import MCDropoutClassifier
    >>> from skbdl.adversarial import fgsm
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(100, 2).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = MCDropoutClassifier(hidden_layer_sizes=(16,), max_epochs=30, lr=0.01,
    ...                           n_samples=20, random_state=0, verbose=0).fit(X, y)
    >>> X_adv = fgsm(clf, X, y, epsilon=0.5)
    >>> X_adv.shape, round(float(np.abs(X_adv - X).max()), 4)
    ((100, 2), 0.5)
    >>> bool(clf.score(X_adv, y) < clf.score(X, y))
    True
    """
    epsilon = _check_number("epsilon", epsilon)
    objective = _Objective(estimator, X, y, n_samples, deterministic)
    X = objective.X
    if epsilon == 0:
        return _clip(X.copy(), clip)
    _, grad = objective.gradient(X)
    return _clip(X + epsilon * np.sign(grad), clip).astype(X.dtype)


def pgd(
    estimator,
    X,
    y,
    epsilon,
    step_size=None,
    n_steps=10,
    *,
    n_samples=None,
    deterministic=False,
    clip=None,
    random_start=False,
    random_state=None,
):
    """Projected gradient descent in the L-infinity ball (Madry et al. 2018).

    Repeats signed gradient steps of ``step_size`` on the negative log-likelihood of
    the true target, projecting back after each one onto the inputs within
    ``epsilon`` of ``X`` (and into ``clip``).  The draws of the model are the same
    at every step (one prediction call's seeded draws).

    Parameters
    ----------
    {common}
    epsilon : float
        Radius of the L-infinity ball around ``X``, in the units of ``X``.
    step_size : float, default=None
        Size of each signed step; ``None`` means ``2.5 * epsilon / n_steps``.
    n_steps : int, default=10
        Number of steps.
    {sampling}
    random_start : bool, default=False
        Start from a uniform draw in the ball instead of ``X``.
    random_state : int, RandomState instance or None, default=None
        Seeds the random start.

    Returns
    -------
    X_adversarial : ndarray of shape X.shape
        The attacked inputs, within ``epsilon`` of ``X`` in every value, in the
        dtype of ``X``.

    See Also
    --------
    fgsm : A single step of size ``epsilon``.

    References
    ----------
    A. Madry, A. Makelov, L. Schmidt, D. Tsipras and A. Vladu, "Towards Deep
    Learning Models Resistant to Adversarial Attacks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl import MCDropoutClassifier
    >>> from skbdl.adversarial import pgd
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(100, 2).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = MCDropoutClassifier(hidden_layer_sizes=(16,), max_epochs=30, lr=0.01,
    ...                           n_samples=20, random_state=0, verbose=0).fit(X, y)
    >>> X_adv = pgd(clf, X, y, epsilon=0.5, n_steps=5)
    >>> bool(np.abs(X_adv - X).max() <= 0.5 + 1e-6)
    True
    """
    epsilon = _check_number("epsilon", epsilon)
    if not isinstance(n_steps, numbers.Integral) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer; got {n_steps!r}.")
    step_size = 2.5 * epsilon / n_steps if step_size is None else step_size
    step_size = _check_number("step_size", step_size)
    objective = _Objective(estimator, X, y, n_samples, deterministic)
    X = objective.X
    X_adv = X.astype(np.float64)
    if random_start:
        rng = check_random_state(random_state)
        X_adv = _clip(X_adv + rng.uniform(-epsilon, epsilon, size=X.shape), clip)
    for _ in range(n_steps):
        _, grad = objective.gradient(X_adv)
        X_adv = np.clip(X_adv + step_size * np.sign(grad), X - epsilon, X + epsilon)
        X_adv = _clip(X_adv, clip)
    return X_adv.astype(X.dtype)


for _function in (input_gradient, fgsm, pgd):
    _function.__doc__ = _function.__doc__.replace("{common}", _COMMON_PARAMETERS).replace(
        "{sampling}", _SAMPLING_PARAMETERS
    )
