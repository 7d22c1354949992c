"""Laplace approximation over all the weights of a trained network (linearised)."""

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from ._base import BayesianClassifierMixin, BayesianRegressorMixin
from ._posterior import (
    AllWeights,
    LastLayer,
    ggn_curvature,
    laplace_prior_precision,
    log_marginal_likelihood,
    network_jacobian,
    probit_log_proba,
)
from ._posthoc import (
    CLASS_WEIGHT_CONSTRAINT,
    CLASS_WEIGHT_DOC,
    DEFAULT_NETWORK_DOC,
    ESTIMATOR_DOC,
    BasePostHoc,
    ProbitPredictiveMixin,
    float64_copy,
    transformed,
    unwrap,
)
from .nn import GaussianRegressionModule
from .nn._mlp import MIN_VARIANCE
from .nn._views import module_view
from .uncertainty import HALF_LOG_2PI, gaussian_nll_terms

__all__ = ["LaplaceClassifier", "LaplaceRegressor"]

#: Jacobian entries (rows x outputs x weights) computed at once: 32 MB of float64.
_JACOBIAN_BUDGET = 2**22


class _LinearisedNetwork(nn.Module):
    """A trained network ``f(x; theta)`` linearised around its weights ``theta*``
    under a Gaussian posterior: ``f_lin(x; theta) = f(x; theta*) + J(x) (theta -
    theta*)``, with ``J`` the Jacobian of the first ``n_outputs`` outputs with respect
    to the weights ``names`` and ``covariance`` a :class:`skbdl._posterior.Covariance`.
    The network runs as a float64 copy when it can (:func:`skbdl._posthoc.float64_copy`;
    after a pipeline's transformers).
    """

    def __init__(self, network, transform, names, covariance, n_outputs, dtype):
        super().__init__()
        self.network, self.transform, self.names = network, transform, names
        self.covariance, self.n_outputs, self.dtype = covariance, n_outputs, dtype
        self.noise = None  # None, 'constant' (noise_constant) or 'heteroscedastic'
        self.register_buffer("noise_constant", None)
        # Rows per block of Jacobians (n, outputs, weights), within _JACOBIAN_BUDGET.
        n_params = sum(p.numel() for n, p in network.named_parameters() if n in names)
        self.step = max(1, _JACOBIAN_BUDGET // (n_outputs * n_params))

    def inputs(self, X):
        return transformed(self.transform, X).to(self.dtype)

    def jacobians(self, X):
        """Yield ``(rows, outputs (n, C), J (n, C, P))`` over row blocks of ``X``."""
        X = self.inputs(X)
        for start in range(0, len(X), self.step):
            rows = slice(start, start + self.step)
            yield rows, *network_jacobian(self.network, self.names, X[rows], self.n_outputs)

    def moments(self, X):
        """Mean ``(n, C)`` and covariance ``(n, C, C)`` of the linearised outputs."""
        means, covs = [], []
        for _, out, J in self.jacobians(X):
            means.append(out)
            covs.append(self.covariance.functional_variance(J))
        return torch.cat(means), torch.cat(covs)

    def sample(self, X, n_samples, generator):
        """Outputs of ``n_samples`` weight draws, linearised: ``(S, n, C)``."""
        deviations = self.covariance.sample(n_samples, generator)
        return torch.cat(
            [out + torch.einsum("ncp,sp->snc", J, deviations) for _, out, J in self.jacobians(X)],
            dim=1,
        )

    def probit(self, X):
        return torch.exp(probit_log_proba(*self.moments(X)))[None]

    def noise_var(self, X, outputs=None):
        """Noise variance per row and target, in the network's units (regression);
        ``outputs``: the network's outputs on ``X``, when already computed."""
        if self.noise == "heteroscedastic":
            if outputs is None:
                with torch.no_grad():
                    outputs = self.network(self.inputs(X))
            return F.softplus(outputs[:, self.n_outputs :].double()) + MIN_VARIANCE
        return self.noise_constant.expand(len(X), -1)


class _MAPNetwork(nn.Module):
    """A Laplace posterior's network at its mode, the trained weights (the
    deterministic pass): logits, or a regressor's ``(mean, noise variance)`` in the
    standardised units of the sampling path."""

    def __init__(self, posterior, regression):
        super().__init__()
        self.posterior, self.regression = posterior, regression

    def forward(self, X):
        posterior = self.posterior
        network = module_view(posterior.network)
        out = network(posterior.inputs(X))[:, : posterior.n_outputs].double()
        if not self.regression:
            return out
        scale = posterior.out_scale
        return out * scale + posterior.out_shift, posterior.noise_var(X) * scale**2


class _BaseLaplace(BasePostHoc):
    _parameter_constraints = {
        **BasePostHoc._parameter_constraints,
        "hessian_structure": [StrOptions({"diag", "kron", "full"})],
        "subset_of_weights": [StrOptions({"all", "last_layer"})],
        "prior_precision": [
            StrOptions({"marglik"}),
            Interval(numbers.Real, 0, None, closed="neither"),
        ],
    }

    def _fit_linearised(self, estimator, X, n_outputs, kind, noise=None, y=None, weight=None):
        """Curvature, prior precision and posterior of ``estimator``'s network on
        rows ``X``.  Returns the :class:`_LinearisedNetwork`, its device, the
        network's outputs on ``X`` and its noise variances (regression; ``noise``:
        ``(kind, constant)``, a None constant meaning the residuals' variance on
        ``y``).  ``weight``: None or the rows' float64 weights, which weigh the
        curvature and the residuals' variance (see :func:`ggn_curvature`)."""
        network, device, transform, _ = unwrap(estimator)
        X_tensor = torch.tensor(np.ascontiguousarray(X, dtype=np.float32), device=device)
        network, dtype = float64_copy(network, transform, X_tensor[:2])
        subset = AllWeights() if self.subset_of_weights == "all" else LastLayer()
        names = subset.names(network)
        head = _LinearisedNetwork(network, transform, names, None, n_outputs, dtype)
        step = head.step
        # One forward pass over the rows, in the row blocks of the curvature, whose
        # outputs serve the checks, the noise, the curvature and the evidence.
        starts = range(0, len(X), step)
        view = module_view(network)
        with torch.no_grad():
            inputs = head.inputs(X_tensor)
            raw = torch.cat([view(inputs[s : s + step]) for s in starts])
        if raw.ndim != 2:
            raise ValueError(
                f"The network's output for {len(X)} rows has shape {tuple(raw.shape)}; "
                f"{type(self).__name__} needs one network with outputs (n_rows, width) "
                "(an ensemble is not one network)."
            )
        classes = kind == "classification"
        if raw.shape[1] not in ((n_outputs,) if classes else (n_outputs, 2 * n_outputs)):
            what = (
                f"{n_outputs} classes (the output k must score classes_[k])"
                if classes
                else f"{n_outputs} targets (a mean per target, optionally then a variance)"
            )
            raise ValueError(f"The network has {raw.shape[1]} outputs but y has {what}.")
        if noise is not None:
            head.noise, constant = noise
            if head.noise == "constant" and constant is None:
                residual = y - raw[:, :n_outputs].double().cpu().numpy()
                # Weighted: with integer weights, that of the rows repeated.
                mean_square = np.average(residual**2, axis=0, weights=weight)
                constant = torch.as_tensor(mean_square + 1e-12)[None]
            if constant is not None:
                head.noise_constant = constant.to(device)
            noise = head.noise_var(X_tensor, raw)
        means = raw[:, :n_outputs].double()
        batches = [
            (
                inputs[s : s + step],
                None if noise is None else noise[s : s + step],
                means[s : s + step],
            )
            for s in starts
        ]
        curvature = ggn_curvature(
            self.hessian_structure, network, subset, batches, kind, n_outputs, weight
        )
        theta = subset.parameters(network).cpu().numpy()
        eigenvalues = curvature.eigenvalues()
        if self.prior_precision == "marglik":
            delta = laplace_prior_precision(eigenvalues, theta)
        else:
            delta = float(self.prior_precision)
        head.covariance = curvature.covariance(delta)
        self.prior_precision_ = delta
        self.n_params_ = int(theta.size)
        return head, device, raw.double(), noise, (theta, eigenvalues)

    def _evidence(self, row_log_lik, theta_eigen, sample_weight=None):
        """``log_marginal_likelihood_`` from the rows' log-likelihoods (weighted)."""
        theta, eigenvalues = theta_eigen
        self.log_marginal_likelihood_ = log_marginal_likelihood(
            row_log_lik, theta, self.prior_precision_, eigenvalues, sample_weight
        )

    def _deterministic_view(self, module):
        return _MAPNetwork(module, regression=isinstance(self, BayesianRegressorMixin))


_COMMON_DOC = (
    """
    Parameters
    ----------
"""
    + ESTIMATOR_DOC
    + """    hessian_structure : {{'kron', 'diag', 'full'}}, default='kron'
        Structure of the generalised Gauss-Newton curvature and so of the posterior
        covariance: ``'kron'``, one Kronecker-factored block ``G (x) A`` per linear
        layer (K-FAC; needs weights made of ``nn.Linear`` layers with biases);
        ``'diag'``, its diagonal (any module); ``'full'``, the dense
        ``(n_params, n_params)`` matrix (small networks only).
    subset_of_weights : {{'all', 'last_layer'}}, default='all'
        Which weights carry the posterior (the others stay at their trained values).
    prior_precision : 'marglik' or float, default='marglik'
        Precision ``delta`` of the isotropic ``N(0, I / delta)`` prior on the
        weights: ``'marglik'`` maximises the Laplace approximation of the marginal
        likelihood on the training rows (the same curvature, no held-out rows).
    n_samples : int, default=100
        Draws of the weights for :meth:`sample_predictions`{mc_use}.
    predict_batch_size : int, default=None
        Rows times samples evaluated at once at prediction time; ``None`` chooses
        for the device.
    random_state : int, RandomState instance or None, default=None
        Seeds the default network (when ``estimator`` is None) and the draws of the
        weights at prediction time.
"""
)

_ATTRIBUTES_DOC = """    estimator_ : estimator
        The fitted network (``estimator`` itself when frozen).
    module_ : torch.nn.Module
        The linearised network with the posterior (``module_.covariance``, a
        :class:`skbdl._posterior.Covariance`) as float64 buffers.
    prior_precision_ : float
        The prior precision used.
    log_marginal_likelihood_ : float
        Laplace approximation of the log marginal likelihood at ``prior_precision_``
        (of the weighted likelihood ``prod_i p(y_i | x_i)^(w_i)`` when ``fit`` is
        given ``sample_weight``: integer weights count as repeated rows).
    n_params_ : int
        Number of weights that carry the posterior.
    n_features_in_ : int
        Number of features seen during fit.
    input_shape_ : tuple of int
        The shape of one row of ``X`` seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.
"""

_REFERENCES = """
    References
    ----------
    D. J. C. MacKay, "A Practical Bayesian Framework for Backpropagation Networks",
    Neural Computation 4(3), 1992.
    J. Martens and R. Grosse, "Optimizing Neural Networks with Kronecker-factored
    Approximate Curvature", ICML 2015 (K-FAC).
    A. Immer, M. Korzepa and M. Bauer, "Improving predictions of Bayesian neural
    nets via local linearization", AISTATS 2021 (the linearised predictive).
    E. Daxberger et al., "Laplace Redux -- Effortless Bayesian Deep Learning",
    NeurIPS 2021.
"""


class LaplaceClassifier(ProbitPredictiveMixin, BayesianClassifierMixin, _BaseLaplace):
    __doc__ = (
        """Laplace approximation over all the weights of a trained network: classification.

    Keeps the trained network and puts a Gaussian posterior ``N(theta*, (H + delta
    I)^-1)`` on its weights, ``H`` the generalised Gauss-Newton matrix of the
    softmax cross-entropy on the training rows (Kronecker-factored, diagonal or full),
    ``delta`` the prior precision chosen by the marginal likelihood.  Predictions
    use the network linearised in its weights (the GLM predictive, Immer et al.
    2021): the logits are Gaussian, with covariance ``J Sigma J^T``; probabilities
    average the softmax over them by the probit approximation or by Monte Carlo.
"""
        + _COMMON_DOC.format(
            default=DEFAULT_NETWORK_DOC.format(cls="Classifier"),
            mc_use=", :meth:`predict_uncertainty` and ``predictive='mc'``",
        )
        + """    predictive : {'probit', 'mc'}, default='probit'
        How ``predict_proba`` averages the softmax over the Gaussian logits:
        the pairwise probit approximation (deterministic), or ``n_samples`` draws.
"""
        + CLASS_WEIGHT_DOC
        + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
"""
        + _ATTRIBUTES_DOC
        + """
    See Also
    --------
    LaplaceRegressor : The regression counterpart.
    LastLayerLaplaceClassifier : A full-covariance Laplace on the last layer only.
"""
        + _REFERENCES
        + """
    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.frozen import FrozenEstimator
    >>> from skbdl import LaplaceClassifier, MCDropoutClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> net = MCDropoutClassifier(hidden_layer_sizes=(16,), dropout=0.0, max_epochs=30,
    ...                           lr=0.01, random_state=0).fit(X, y)
    >>> clf = LaplaceClassifier(FrozenEstimator(net)).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    >>> far = X[:1] * 20  # far from the data: less confident than the network alone
    >>> bool(clf.predict_proba(far).max() < net.predict_proba(far).max())
    True
    """
    )

    _parameter_constraints = {
        **_BaseLaplace._parameter_constraints,
        **CLASS_WEIGHT_CONSTRAINT,
        "predictive": [StrOptions({"probit", "mc"})],
    }

    def __init__(
        self,
        estimator=None,
        *,
        hessian_structure="kron",
        subset_of_weights="all",
        prior_precision="marglik",
        predictive="probit",
        class_weight=None,
        n_samples=100,
        predict_batch_size=None,
        random_state=None,
    ):
        self.estimator = estimator
        self.hessian_structure = hessian_structure
        self.subset_of_weights = subset_of_weights
        self.prior_precision = prior_precision
        self.predictive = predictive
        self.class_weight = class_weight
        self.n_samples = n_samples
        self.predict_batch_size = predict_batch_size
        self.random_state = random_state

    def _fit_posterior(self, estimator, X, y, selected, sample_weight=None):
        codes, n_classes = self._prepare_targets(y, sample_weight=sample_weight)  # classes_
        head, device, logits, _, theta_eigen = self._fit_linearised(
            estimator, X, n_classes, "classification", weight=sample_weight
        )
        log_proba = torch.log_softmax(logits, dim=1).cpu()
        self._evidence(log_proba[torch.arange(len(y)), codes].numpy(), theta_eigen, sample_weight)
        return head, device


class LaplaceRegressor(BayesianRegressorMixin, _BaseLaplace):
    __doc__ = (
        """Laplace approximation over all the weights of a trained network: regression.

    Keeps the trained network and puts a Gaussian posterior ``N(theta*, (H + delta
    I)^-1)`` on its weights, ``H`` the generalised Gauss-Newton matrix of the
    Gaussian likelihood of the network's means on the training rows (its noise
    variance held at the network's own: learned, per row for a heteroscedastic
    network, or the mean squared residual for a plain skorch net), Kronecker-factored,
    diagonal or full; ``delta`` the prior precision chosen by the marginal
    likelihood.  Predictions use the network linearised in its weights (Immer et
    al. 2021): Gaussian, with mean the network's, ``epistemic_var`` the variance
    ``J Sigma J^T`` of the linearised mean and ``aleatoric_var`` the noise variance.
"""
        + _COMMON_DOC.format(
            default=DEFAULT_NETWORK_DOC.format(cls="Regressor"),
            mc_use=" and ``predict_uncertainty(X, n_samples=k)``",
        )
        + """
    Attributes
    ----------
    n_outputs_ : int
        Number of targets.
    y_mean_ : ndarray of shape (n_outputs_,)
        Target means used for standardisation.
    y_scale_ : ndarray of shape (n_outputs_,)
        Target standard deviations used for standardisation.
"""
        + _ATTRIBUTES_DOC
        + """
    See Also
    --------
    LaplaceClassifier : The classification counterpart.
    LastLayerBayesianRegressor : Bayesian linear regression on the last layer.
"""
        + _REFERENCES
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.frozen import FrozenEstimator
    >>> from skbdl import LaplaceRegressor, MCDropoutRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(200, 1))
    >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.randn(200)
    >>> net = MCDropoutRegressor(hidden_layer_sizes=(32,), dropout=0.0, max_epochs=50,
    ...                          lr=0.01, random_state=0).fit(X, y)
    >>> reg = LaplaceRegressor(FrozenEstimator(net)).fit(X, y)
    >>> u = reg.predict_uncertainty(np.array([[0.0], [4.0]]))
    >>> bool(u.epistemic_var[1] > 10 * u.epistemic_var[0])  # far from the data
    True
    """
    )

    _closed_form_moments = True

    def __init__(
        self,
        estimator=None,
        *,
        hessian_structure="kron",
        subset_of_weights="all",
        prior_precision="marglik",
        n_samples=100,
        predict_batch_size=None,
        random_state=None,
    ):
        self.estimator = estimator
        self.hessian_structure = hessian_structure
        self.subset_of_weights = subset_of_weights
        self.prior_precision = prior_precision
        self.n_samples = n_samples
        self.predict_batch_size = predict_batch_size
        self.random_state = random_state

    def _fit_posterior(self, estimator, X, y, selected, sample_weight=None):
        _, n_outputs = self._prepare_targets(y, sample_weight=sample_weight)  # y_mean_, ...
        y2 = y.reshape(len(y), -1).astype(np.float64)
        inner = unwrap(estimator)[3]
        if isinstance(inner, BayesianRegressorMixin):  # its outputs are standardised
            scale, shift, wrapped = inner.y_scale_, inner.y_mean_, inner.net_.module_
            if not isinstance(wrapped, GaussianRegressionModule):
                raise TypeError(
                    f"{type(self).__name__} needs one network with a Gaussian head; "
                    f"{type(inner).__name__} trains {type(wrapped).__name__}."
                )
            if getattr(wrapped, "output_activation", None) is not None:
                raise ValueError(
                    f"{type(inner).__name__}(output_activation="
                    f"{wrapped.output_activation!r}) bounds its means through an "
                    f"activation that {type(self).__name__} does not linearise; fit it "
                    "with output_activation=None."
                )
            if wrapped.heteroscedastic:
                noise = ("heteroscedastic", None)
            else:
                noise = ("constant", wrapped.log_noise_var.detach().double().exp()[None])
        else:  # a plain skorch net, in the target's units: the residuals' variance
            scale, shift = np.ones(n_outputs), np.zeros(n_outputs)
            noise = ("constant", None)
        head, device, raw, noise_var, theta_eigen = self._fit_linearised(
            estimator, X, n_outputs, "regression", noise, y2, sample_weight
        )
        # The network's units to this estimator's standardised ones: z = a f + b.
        a, b = scale / self.y_scale_, (shift - self.y_mean_) / self.y_scale_
        head.register_buffer("out_scale", torch.as_tensor(a, device=device))
        head.register_buffer("out_shift", torch.as_tensor(b, device=device))
        # The evidence of y in its own units (the weights' prior is unit-free).
        mean = raw[:, :n_outputs].cpu().numpy() * scale + shift
        var = noise_var.cpu().numpy() * scale**2
        row_log_lik = -(gaussian_nll_terms(y2, mean, var) + HALF_LOG_2PI)
        self._evidence(row_log_lik, theta_eigen, sample_weight)
        return head, device

    def _predictive_moments(self, module, X, n_samples, seed):
        mean, cov = module.moments(X)
        scale2 = module.out_scale**2
        epistemic = cov.diagonal(dim1=1, dim2=2) * scale2
        return mean * module.out_scale + module.out_shift, module.noise_var(X) * scale2, epistemic

    def _sample_outputs(self, module, X, n_samples, seed):
        means = module.sample(X, n_samples, self._generator(X, seed))
        var = module.noise_var(X) * module.out_scale**2
        return means * module.out_scale + module.out_shift, var.expand_as(means)
