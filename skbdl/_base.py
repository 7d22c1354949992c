"""The prediction core shared by every skbdl estimator.

It knows nothing of how a model was trained.  It owns the parameters every method
has (``n_samples``, ``predict_batch_size``, ``device``, ``random_state``), input
checking and casting, label encoding and target standardisation (the task mixins),
seeding, batched Monte Carlo prediction through one sampling hook, recalibration
and the uncertainty summaries.  A method supplies a fitted model through
``_prediction_module`` and draws through ``_sample_outputs`` (and optionally
``_sampling_view``); how it got the model is its own business: the SGD-trained
methods use the skorch training layer in :mod:`skbdl._training`, PBP its own
assumed-density-filtering loop, the last-layer methods a fitted network.
"""

import copy
import math
import numbers
import warnings
from abc import ABCMeta, abstractmethod

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    _fit_context,
    is_classifier,
)
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from torch import nn

from ._net import SparseRows
from ._persistence import PersistenceMixin
from ._reductions import classification_summaries, proba_samples, regression_summaries
from .nn import GaussianNLLLoss, GaussianRegressionModule
from .nn._mlp import OUTPUT_ACTIVATIONS, _AutogradGaussianNLLLoss, _MeanLoss
from .nn._views import DrawnNetwork, module_view, tiled_forward
from .uncertainty import (
    _LOG_FACTOR_BOUNDS,
    ClassificationUncertainty,
    RegressionUncertainty,
    _gaussian_interval,
    _scale_spread,
    fit_log_scale,
    fit_log_temperature,
    gaussian_mixture_quantile,
)

#: Rows x samples evaluated in one forward pass at prediction time on the CPU: the
#: activations of a pass stay in cache (2**14 measured fastest for MC dropout and
#: Bayes by Backprop, (50, 50) MLP, 1 thread; 2**16 took 1.5-2x as long).
CPU_PREDICT_BUDGET = 2**14

#: Methods whose draws live in a :class:`~skbdl.nn._views.DrawnNetwork` evaluate a
#: chunk of rows a few draws per pass; a chunk holds at most this many output floats
#: (rows x draws x outputs) before it is reduced, so it covers many rows and each
#: draw's matrix products are large.
CHUNK_OUTPUT_FLOATS = 2**21

#: On CUDA, a pass may use this share of the device's memory, estimated as
#: ``CUDA_BYTES_PER_UNIT`` bytes per row, sample and unit of the widest layer (a few
#: float64-sized activations alive at once), within ``CUDA_PREDICT_BUDGET`` rows x
#: samples.  From the total memory, not the free memory, so that the chunks, and
#: with them the rounding of the results, are the same on every call.
CUDA_MEMORY_SHARE, CUDA_BYTES_PER_UNIT, CUDA_PREDICT_BUDGET = 0.25, 32, (2**16, 2**24)

#: Sparse input is densified one prediction chunk at a time; a chunk holds at most
#: this many dense input floats (rows x features), so prediction memory stays that of
#: the sparse matrix plus a bounded chunk, however wide the one-hot encoding.
SPARSE_CHUNK_FLOATS = 2**21

#: The largest float32: inputs beyond it would become infinite in the network.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class SampleWeightNotSupportedError(NotImplementedError, TypeError):
    """``fit(..., sample_weight=...)`` on a method that does not weigh rows.

    A ``NotImplementedError`` (weighting is not implemented for the method) and a
    ``TypeError`` (``fit`` has no ``sample_weight`` parameter), so code that expects
    either, scikit-learn's estimator checks included, recognises it.
    """


def _seed_from(random_state):
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _one_pass(module, X, n_samples, seed):
    """A deterministic pass's outputs: ``module(X)`` with a samples axis of one."""
    return tiled_forward(module, X, 1)


def _to_numpy(out):
    if isinstance(out, tuple):
        return tuple(_to_numpy(o) for o in out)
    return out.detach().to("cpu", torch.float64).numpy()


class BasePredictor(PersistenceMixin, BaseEstimator, metaclass=ABCMeta):
    """The prediction core of every skbdl estimator; not for direct use.

    A method defines ``__init__`` (listing every parameter, as scikit-learn
    requires), ``_fit`` (validate with :meth:`_validate_training_data`, then build
    and fit its model), ``__sklearn_is_fitted__``, ``_prediction_module`` and
    ``_sample_outputs``.  Everything a user calls after ``fit`` -- ``predict``,
    ``predict_proba``, ``predict_uncertainty``, ``predict_interval``,
    ``sample_predictions`` -- lives here and in the task mixins, in one place for
    every method.
    """

    _parameter_constraints: dict = {
        "n_samples": [Interval(numbers.Integral, 1, None, closed="left")],
        "predict_batch_size": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
    }

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _fit(self, X, y):
        """Validate ``X`` and ``y``, fit the model; return ``self``."""

    @abstractmethod
    def __sklearn_is_fitted__(self):
        """Whether the estimator holds a fitted model."""

    @abstractmethod
    def _prediction_module(self):
        """The module that prediction hooks receive, and its device."""

    @abstractmethod
    def _sample_outputs(self, module, X, n_samples, seed):
        """Return ``n_samples`` outputs of ``module`` for rows ``X``.

        Outputs have a leading samples axis: ``(n_samples, n_rows, ...)`` (each
        element of a tuple output likewise).  Given the same ``seed`` the draws of
        sample ``s`` must not depend on which rows are in ``X``, so that predictions
        are reproducible and do not depend on batching.
        """

    # ------------------------------------------------------------- task hooks
    def _encode_targets(self, y):
        """``y`` encoded as at fit time (fitted classes or standardisation, nothing
        refitted): ``(y_tensor, n_outputs)``; an error for targets the fit did not
        prepare for (unknown labels, another number of outputs)."""
        raise NotImplementedError

    @abstractmethod
    def _prepare_targets(self, y, sample_weight=None):
        """Validate ``y``, set fitted target attributes, return (y_tensor, n_outputs).

        ``sample_weight`` (or None) weights the rows in any statistics of ``y``
        (a regressor's standardisation), as if row ``i`` appeared ``w_i`` times."""

    # ------------------------------------------------------------------ fitting
    def _device(self):
        try:
            device = torch.device(self.device)
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"device={self.device!r} is not a torch device: {error}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r} was requested but CUDA is not available.")
        return device

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, **fit_params):
        """Fit the model to data.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features) or (n_rows, ...)
            Training inputs (numpy, pandas, lists; cast to float32 internally).
            Arrays of more than two dimensions (images ``(n_rows, channels,
            height, width)``, sequences) are passed to a user's module as they
            are, and flattened to rows for the default networks.
        y : array-like of shape (n_rows,) or (n_rows, n_outputs)
            Targets: class labels for classifiers (any type), real values for
            regressors.
        **fit_params : dict
            None are supported by the core: ``sample_weight`` raises
            ``NotImplementedError``, any other name ``TypeError``.  (skbdl's
            methods override ``fit``: all of them take ``sample_weight``.)

        Returns
        -------
        self : object
            The fitted estimator.  If fitting fails (bad input, a diverging loss),
            the exception propagates and the estimator is left exactly as it was.
        """
        if fit_params:
            self._refuse_fit_params(fit_params)
        return self._fit_restoring_state(X, y)

    def _refuse_fit_params(self, fit_params):
        """Raise for keyword arguments ``fit`` does not take, naming the estimator (not
        an internal base class): :class:`SampleWeightNotSupportedError` for
        ``sample_weight``, ``TypeError`` for any other."""
        name = type(self).__name__
        if "sample_weight" in fit_params:
            raise SampleWeightNotSupportedError(
                f"{name} does not weigh rows: its fit takes no sample weights."
            )
        raise TypeError(
            f"{name}.fit() got an unexpected keyword argument {next(iter(fit_params))!r}."
        )

    def _fit_restoring_state(self, X, y, fit=None, **fit_params):
        """``fit(X, y, **fit_params)`` (``fit``: a bound method, None: ``self._fit``);
        if it raises, the estimator is restored exactly as it was and the exception
        propagates.  Every ``fit`` (and ``partial_fit``) calls this."""
        state = dict(vars(self))
        fit = self._fit if fit is None else fit
        try:
            return fit(X, y, **fit_params)
        except BaseException:
            vars(self).clear()
            vars(self).update(state)
            raise

    def _flattens_input(self):
        """Whether inputs of more than two dimensions are flattened to rows for the
        model: True for the default networks (``module=None``), which take rows."""
        return getattr(self, "module", None) is None

    #: Whether ``fit`` and prediction accept scipy sparse ``X`` (CSR or CSC; other
    #: formats are converted): True for the methods that train on mini-batches, which
    #: keep the matrix sparse and densify one batch (or prediction chunk) at a time.
    _accepts_sparse = False

    def _sparse_formats(self):
        return ("csr", "csc") if self._accepts_sparse else False

    def _row_weights(self, X, y, sample_weight):
        """The rows' weights: ``sample_weight`` validated (a float64 array of shape
        (n_rows,), non-negative) times the ``class_weight`` of a classifier that has
        one, or None when neither is given."""
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
        class_weight = getattr(self, "class_weight", None)
        if class_weight is not None:
            weights = compute_sample_weight(class_weight, y)
            sample_weight = weights if sample_weight is None else sample_weight * weights
            if not sample_weight.sum() > 0:
                raise ValueError(
                    "Every row has zero weight once class_weight is applied; give some "
                    "of the classes present a positive weight."
                )
        return sample_weight

    def _validate_training_data(self, X, y, sample_weight=None, reset=True, classes=None):
        """Validate ``X``, ``y`` and ``sample_weight``; set the input, target and seed
        attributes.

        ``reset=False`` (continued training: ``warm_start``, ``partial_fit``) checks
        ``X`` against what the first fit saw and encodes ``y`` with the fitted
        classes or standardisation, setting nothing; ``train_seed`` is then None.
        ``classes`` (a classifier's first ``partial_fit``): the fitted ``classes_``,
        already set, by which ``y`` is encoded.

        Returns ``(X, y, X_tensor, y_tensor, n_outputs, train_seed, device,
        sample_weight)``: ``X`` validated (float32 or float64, a scipy CSR matrix for
        sparse input; flattened to rows when :meth:`_flattens_input`), ``X_tensor``
        its float32 tensor (:class:`~skbdl._net.SparseRows` for sparse input),
        ``y_tensor`` the encoded or standardised targets, ``sample_weight`` a float64
        array of shape (n_rows,) (non-negative, not all zero; times the
        ``class_weight`` of a classifier that has one), or None when neither is given.
        """
        X, y = validate_data(
            self,
            X,
            y,
            reset=reset,
            dtype=[np.float64, np.float32],
            allow_nd=True,
            accept_sparse=self._sparse_formats(),
            **self._target_validation(),
        )
        if not reset:
            self._check_input_shape(X)
        sample_weight = self._row_weights(X, y, sample_weight)
        if reset:
            self.input_shape_ = tuple(X.shape[1:])
        X = self._as_model_input(X)
        device = self._device()
        if reset and classes is None:
            y_tensor, n_outputs = self._prepare_targets(y, sample_weight=sample_weight)
        else:
            y_tensor, n_outputs = self._encode_targets(y)
        train_seed = None
        if reset:
            rng = check_random_state(self.random_state)
            train_seed, self._predict_seed = _seed_from(rng), _seed_from(rng)
        if sp.issparse(X):
            X = X.tocsr()
            X_tensor = SparseRows.from_scipy(X)
        else:
            # ascontiguousarray: torch cannot read numpy arrays with negative strides.
            X_tensor = torch.tensor(np.ascontiguousarray(X), dtype=torch.float32)
        return X, y, X_tensor, y_tensor, n_outputs, train_seed, device, sample_weight

    def _check_input_shape(self, X):
        expected = getattr(self, "input_shape_", None)
        if expected is not None and tuple(X.shape[1:]) != tuple(expected):
            raise ValueError(
                f"X has rows of shape {tuple(X.shape[1:])}, but {type(self).__name__} was "
                f"fitted on rows of shape {tuple(expected)}."
            )

    def _as_model_input(self, X):
        """``X`` as the model takes it: rows of more than one axis flattened when
        :meth:`_flattens_input`.  Values beyond float32's range (the network computes
        in float32) are an error, not an overflow to infinity."""
        values = X.data if sp.issparse(X) else X
        # max and min, not abs(): no copy of X on every fit and prediction call.
        magnitude = 0.0
        if values.dtype == np.float64 and values.size:
            magnitude = max(values.max(), -values.min())
        if magnitude > FLOAT32_MAX:
            raise ValueError(
                f"X has values of magnitude up to {magnitude:.3g}, beyond the "
                f"range of float32 ({FLOAT32_MAX:.3g}) in which {type(self).__name__} "
                "computes; rescale the inputs (e.g. StandardScaler in a Pipeline)."
            )
        if X.ndim > 2 and self._flattens_input():
            return X.reshape(len(X), -1)
        return X

    def _validate_prediction_input(self, X):
        """Validate ``X`` at prediction time against what ``fit`` saw."""
        X = validate_data(
            self,
            X,
            reset=False,
            dtype=[np.float64, np.float32],
            allow_nd=True,
            accept_sparse=self._sparse_formats(),
        )
        if sp.issparse(X):
            X = X.tocsr()  # rows are read chunk by chunk
        self._check_input_shape(X)
        return self._as_model_input(X)

    def _holdout_rows(self, y, seed):
        """Indices ``(fit_rows, valid_rows)``: ``validation_fraction`` of the rows held
        out (stratified by class for classifiers when every class has two rows)."""
        rows = np.arange(len(y))
        n_valid = math.ceil(len(y) * self.validation_fraction)
        if n_valid >= len(y):
            raise ValueError(
                f"validation_fraction={self.validation_fraction} of n_samples={len(y)} rows "
                "leaves no rows to train on; use more data or a smaller validation_fraction."
            )
        stratify = None
        if is_classifier(self):
            _, counts = np.unique(y, return_counts=True)
            if counts.min() >= 2 and n_valid >= len(counts) and len(y) - n_valid >= len(counts):
                stratify = y
        fit_rows, valid_rows = train_test_split(
            rows, test_size=n_valid, stratify=stratify, random_state=seed
        )
        return np.sort(fit_rows), np.sort(valid_rows)

    def _reset_calibration(self):
        """Set the fitted calibration attributes to the identity (no recalibration)."""

    def _fit_calibration(self, X_valid, y_valid, sample_weight=None):
        """Fit the recalibration on held-out rows (validated ``X``, raw ``y``), by the
        held-out log-likelihood weighted by ``sample_weight`` (None: equal weights)."""
        raise NotImplementedError(f"{type(self).__name__} has no recalibration.")

    def _check_n_samples(self, n_samples):
        """Number of draws for a prediction call (``None``: the ``n_samples`` parameter).

        Methods with a fixed set of draws (an ensemble's members) override this.
        """
        n_samples = self.n_samples if n_samples is None else n_samples
        if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")
        return int(n_samples)

    def _sampling_view(self, module, n_samples, seed, device):
        """The module one prediction call evaluates, with the call's draws fixed.

        Prediction is re-entrant: it never changes ``module`` (no hooks, no state on
        layers, no train/eval switches).  A method whose draws live in layers
        (dropout masks, weight samples) returns a view of ``module`` (see
        :func:`skbdl.nn._views.module_view`) whose stochastic layers are replaced by
        layers holding this call's draws, made on ``device`` by generators seeded
        from ``seed``; the view shares every parameter and lasts one call.  The
        default: ``module`` itself, as a view in eval mode.
        """
        return module_view(module)

    def _deterministic_view(self, module):
        """The module a deterministic pass (``deterministic=True``) evaluates once.

        Its output is that of one draw (as :meth:`_sample_outputs` returns each
        draw, without the samples axis).  The default: ``module`` as a view in eval
        mode (:func:`skbdl.nn._views.module_view`; the fitted module is not
        changed), which for a trained network means dropout off and Bayesian layers
        at their posterior means.  Methods whose prediction module is not such a
        network override this (an ensemble averages its members, PBP propagates
        the posterior means, SWAG evaluates the SWA mean).
        """
        if type(module).forward is nn.Module.forward:
            raise ValueError(
                f"{type(self).__name__} has no deterministic pass (deterministic=True); "
                "predict with deterministic=False."
            )
        return module_view(module)

    @staticmethod
    def _check_deterministic(deterministic, n_samples=None):
        """Validate the ``deterministic`` switch of a prediction call."""
        if not isinstance(deterministic, (bool, np.bool_)):
            raise ValueError(f"deterministic must be True or False; got {deterministic!r}.")
        if deterministic and n_samples is not None:
            raise ValueError(
                "deterministic=True evaluates the network once, without sampling; "
                f"n_samples must then be None (got {n_samples!r})."
            )

    def _output_width(self):
        """Output floats per row and draw (classes; a mean and a variance per target)."""
        return len(self.classes_) if hasattr(self, "classes_") else 2 * self.n_outputs_

    def _activation_width(self, module, n_features_in):
        """Units of the widest layer, to size prediction chunks on CUDA: the largest
        dimension of the module's matrices (and at least the input width)."""
        tensors = [*module.parameters(), *module.buffers()]
        return max([n_features_in, *(max(t.shape[-2:]) for t in tensors if t.ndim >= 2)])

    def _predict_budget(self, module, device, n_features_in):
        """Rows x samples per forward pass: ``predict_batch_size`` if set; else
        ``CPU_PREDICT_BUDGET`` on the CPU, and on CUDA a ``CUDA_MEMORY_SHARE`` of the
        device's memory at ``CUDA_BYTES_PER_UNIT`` bytes per row, sample and unit of
        the widest layer, within ``CUDA_PREDICT_BUDGET``."""
        if self.predict_batch_size:
            return self.predict_batch_size
        if device.type != "cuda":
            return CPU_PREDICT_BUDGET
        memory = torch.cuda.get_device_properties(device).total_memory * CUDA_MEMORY_SHARE
        width = self._activation_width(module, n_features_in)
        low, high = CUDA_PREDICT_BUDGET
        return int(min(high, max(low, memory // (CUDA_BYTES_PER_UNIT * width))))

    def _device_chunks(self, X, n_samples=None, sampler=None, validated=False, deterministic=False):
        """Yield ``(row_slice, n_rows, outputs)`` over row chunks, outputs on the device.

        The one place that validates ``X``, sizes the chunks, seeds the draws and
        runs the sampling hook.  A chunk has ``budget // n_samples`` rows
        (:meth:`_predict_budget`), or, for a view that evaluates its draws a block
        per pass (a :class:`~skbdl.nn._views.DrawnNetwork`: MC dropout, Bayes by
        Backprop), enough rows for ``CHUNK_OUTPUT_FLOATS`` outputs, in passes of
        ``budget`` rows x draws.  ``sampler(module, X_chunk, n_samples, seed)``
        computes the outputs of a chunk, with draws on axis 0; ``None`` means
        :meth:`_sample_outputs`.  It receives the call's :meth:`_sampling_view`, so
        a draw is the same for every chunk: results do not depend on the chunking.
        ``validated``: ``X`` is already a validated array (rows of the training data).
        ``deterministic``: one pass of :meth:`_deterministic_view` instead, as one
        draw (``sampler`` is not used, no single-draw warning).
        """
        check_is_fitted(self)
        self._check_deterministic(deterministic, n_samples)
        if not validated:
            X = self._validate_prediction_input(X)
        n_samples = 1 if deterministic else self._check_n_samples(n_samples)
        if n_samples == 1 and sampler is None and not deterministic:
            warnings.warn(
                f"{type(self).__name__} predicts from a single draw (n_samples=1 or one "
                "member): its epistemic uncertainty is zero and its predictive "
                "distribution that of one network. Use n_samples >= 2.",
                UserWarning,
                stacklevel=4,
            )
        sampler = self._sample_outputs if sampler is None else sampler
        module, device = self._prediction_module()
        budget = self._predict_budget(module, device, X.shape[1])
        seed = self._predict_seed
        # no_grad around each call only: grad mode is never left switched across a yield.
        with torch.no_grad():
            if deterministic:
                view = self._deterministic_view(module)
                sampler = _one_pass
            else:
                view = self._sampling_view(module, n_samples, seed, device)
        if isinstance(view, DrawnNetwork):
            # Passes of ``budget`` rows x draws; chunks of rows bounded by their outputs.
            view.pass_budget = budget
            budget = max(budget, CHUNK_OUTPUT_FLOATS // self._output_width())
        rows = max(1, budget // n_samples)
        if sp.issparse(X):
            rows = max(1, min(rows, SPARSE_CHUNK_FLOATS // max(1, X.shape[1])))
        for start in range(0, X.shape[0], rows):
            chunk = slice(start, min(start + rows, X.shape[0]))
            # A copy: a one-row slice of reversed rows counts as contiguous for numpy
            # but has a negative stride, which torch refuses.
            if sp.issparse(X):  # densified a chunk at a time
                X_chunk = torch.from_numpy(X[chunk].toarray().astype(np.float32, copy=False))
            else:
                X_chunk = torch.from_numpy(np.array(X[chunk], dtype=np.float32))
            with torch.no_grad():
                out = sampler(view, X_chunk.to(device), n_samples, seed)
            self._check_finite_outputs(out, chunk)
            yield chunk, X.shape[0], out

    def _check_finite_outputs(self, out, chunk):
        """Raise when the model's outputs for a chunk of rows are not finite (inputs
        so far from the training data that the network overflows): a NaN mean or a
        class chosen from NaN probabilities would be a silent wrong answer."""
        parts = out if isinstance(out, tuple) else (out,)
        if all(bool(torch.isfinite(p).all()) for p in parts):
            return
        bad = torch.zeros(parts[0].shape[1], dtype=torch.bool, device=parts[0].device)
        for part in parts:
            bad |= ~torch.isfinite(part.reshape(part.shape[0], part.shape[1], -1)).all(-1).all(0)
        rows = (torch.nonzero(bad).flatten().cpu().numpy() + chunk.start)[:5].tolist()
        raise ValueError(
            f"{type(self).__name__}'s network gives non-finite outputs (overflow) for rows "
            f"{rows}{' ...' if int(bad.sum()) > 5 else ''} of X: their values are too far "
            "from the training data for float32 arithmetic. Scale the inputs as at fit "
            "time (e.g. a StandardScaler in the Pipeline) or check these rows."
        )

    def _predict_rows(
        self,
        X,
        n_samples=None,
        reduce=None,
        sampler=None,
        rows_axis=0,
        deterministic=False,
        validated=False,
    ):
        """Run the chunks, reduce each on the device, assemble the results on the host.

        The one place that assembles chunks.  ``reduce(outputs)`` turns a chunk's
        outputs into a tensor or a tuple of tensors whose axis ``rows_axis`` indexes
        the chunk's rows (``None``: the outputs themselves, draws first, rows on axis
        1, so pass ``rows_axis=1``).  Only what it returns leaves the device.
        Returns a tuple of float64 numpy arrays, one per part, over all rows.
        ``validated`` and ``deterministic``: see :meth:`_device_chunks`.
        """
        result = None
        chunks = self._device_chunks(
            X, n_samples, sampler, validated=validated, deterministic=deterministic
        )
        for chunk, n_rows, out in chunks:
            parts = out if reduce is None else reduce(out)
            parts = parts if isinstance(parts, tuple) else (parts,)
            if result is None:
                result = [
                    np.empty((*p.shape[:rows_axis], n_rows, *p.shape[rows_axis + 1 :]))
                    for p in parts
                ]
            where = (slice(None),) * rows_axis + (chunk,)
            for array, part in zip(result, parts):
                torch.from_numpy(array[where]).copy_(part)
        return tuple(result)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = self._accepts_sparse
        tags.non_deterministic = False
        return tags


class BayesianClassifierMixin(ClassifierMixin):
    """Classification behaviour: label encoding, cross-entropy, probabilities."""

    def _target_validation(self):
        return {"multi_output": False}

    def _prepare_targets(self, y, sample_weight=None):
        check_classification_targets(y)
        encoder = LabelEncoder()
        y_encoded = encoder.fit_transform(y)
        if len(encoder.classes_) < 2:
            raise ValueError(
                "The classifier needs samples of at least 2 classes in the data, but "
                f"the data contains only one class: {encoder.classes_[0]!r}."
            )
        self.classes_ = encoder.classes_
        return torch.as_tensor(y_encoded, dtype=torch.int64), len(self.classes_)

    def _encode_targets(self, y):
        check_classification_targets(y)
        unknown = np.setdiff1d(y, self.classes_)
        if len(unknown):
            raise ValueError(
                f"y has labels {unknown.tolist()} that are not among the classes "
                f"{self.classes_.tolist()} of {type(self).__name__}; pass every class in "
                "`classes` on the first call to partial_fit (or refit from scratch)."
            )
        codes = np.searchsorted(self.classes_, y)
        return torch.as_tensor(codes, dtype=torch.int64), len(self.classes_)

    def _wrap_module(self, body):
        return body

    _loss_name = "log_loss"

    def _criterion(self):
        return nn.CrossEntropyLoss

    def _temperature(self):
        return getattr(self, "temperature_", 1.0)

    def _proba_samples(self, out):
        """Class probabilities of each draw from its logits (a tensor), float64."""
        return proba_samples(out, self._temperature())

    def _summarise(self, out):
        """A chunk's model average and entropy decomposition, on the device."""
        return classification_summaries(out, self._temperature())

    def _reset_calibration(self):
        self.temperature_ = 1.0

    def _fit_calibration(self, X_valid, y_valid, sample_weight=None):
        """Temperature scaling (Guo et al. 2017) of every draw's logits, fitted by the
        (``sample_weight``-weighted) NLL of the model average on the held-out rows."""
        (logits,) = self._predict_rows(X_valid, rows_axis=1, validated=True)
        labels = np.searchsorted(self.classes_, y_valid)
        log_temperature = fit_log_temperature(logits, labels, sample_weight=sample_weight)
        if log_temperature == _LOG_FACTOR_BOUNDS[0]:  # fit_log_temperature: no maximum
            # The held-out likelihood grows without bound as T -> 0: the held-out rows are
            # (nearly) separated by the draws, and "sharpen until every probability is 0
            # or 1" is an artefact of too few errors to learn from, not a calibration.
            warnings.warn(
                f"{type(self).__name__} could not recalibrate: its held-out rows are "
                "classified so cleanly that temperature scaling would make every "
                "probability 0 or 1. The temperature is left at 1; hold out more rows "
                "(validation_fraction) or set calibrate=False to silence this.",
                UserWarning,
                stacklevel=2,
            )
            log_temperature = 0.0
        self.temperature_ = float(np.exp(log_temperature))

    def sample_predictions(self, X, n_samples=None, deterministic=False):
        """Class probabilities from ``n_samples`` draws of the model.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Inputs.
        n_samples : int, default=None
            Number of draws; ``None`` uses the ``n_samples`` parameter.
        deterministic : bool, default=False
            Evaluate the network once, without sampling (see the user guide,
            "Deterministic pass"): dropout off, posterior means, an ensemble's
            member average.  ``n_samples`` must then be None.

        Returns
        -------
        proba_samples : ndarray of shape (n_samples, n_rows, n_classes)
            The raw samples (all held in memory: ``n_samples * n_rows * n_classes``
            floats), in the order of ``classes_``; ``n_samples`` is 1 for
            ``deterministic=True``.
        """
        return self._predict_rows(
            X, n_samples, reduce=self._proba_samples, rows_axis=1, deterministic=deterministic
        )[0]

    def predict_uncertainty(self, X, n_samples=None, deterministic=False):
        """Predictive probabilities and their entropy decomposition.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Inputs.
        n_samples : int, default=None
            Number of draws; ``None`` uses the ``n_samples`` parameter.
        deterministic : bool, default=False
            Evaluate the network once, without sampling (see the user guide,
            "Deterministic pass"): dropout off, posterior means, an ensemble's
            member average.  ``n_samples`` must then be None.

        Returns
        -------
        uncertainty : ClassificationUncertainty
            ``proba`` (n_rows, n_classes), and per row (n_rows,) arrays ``total``
            (predictive entropy), ``aleatoric`` (expected entropy) and ``epistemic``
            (mutual information), in nats.  Computed in row batches, reduced on the
            estimator's device: memory does not grow with ``n_samples * n_rows``.
            With ``deterministic=True``, ``epistemic`` is zero and ``aleatoric``
            equals ``total``.
        """
        parts = self._predict_rows(
            X, n_samples, reduce=self._summarise, deterministic=deterministic
        )
        return ClassificationUncertainty(*parts)

    def predict_proba(self, X, deterministic=False):
        """Bayesian model average of the class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Inputs.
        deterministic : bool, default=False
            Evaluate the network once, without sampling (see the user guide,
            "Deterministic pass"): dropout off, posterior means, an ensemble's
            member average.  ``n_samples`` must then be None.

        Returns
        -------
        proba : ndarray of shape (n_rows, n_classes)
            Mean over ``n_samples`` draws (or the deterministic pass's
            probabilities), columns in the order of ``classes_``.
        """
        return self.predict_uncertainty(X, deterministic=deterministic).proba

    def predict(self, X, deterministic=False):
        """Most probable class under the model average.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Inputs.
        deterministic : bool, default=False
            Evaluate the network once, without sampling (see the user guide,
            "Deterministic pass"): dropout off, posterior means, an ensemble's
            member average.  ``n_samples`` must then be None.

        Returns
        -------
        y_pred : ndarray of shape (n_rows,)
            Labels from ``classes_``.
        """
        proba = self.predict_proba(X, deterministic=deterministic)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags


#: Docs of the regression options (``likelihood='fixed'`` with ``noise_scale``,
#: ``criterion``, ``output_activation``), for the regressors that take them.
NOISE_SCALE_DOC = """    noise_scale : float, default=1.0
        The noise standard deviation of ``likelihood='fixed'``, in the target's
        original units: the network predicts means only and the aleatoric variance
        is ``noise_scale**2`` everywhere (times ``calibration_scale_**2`` when
        recalibrated; ``calibrate=False`` keeps it exactly).  ``noise_scale=1`` with
        a point network is the book's "no uncertainty" model, with a sampling method
        its "epistemic only" one.  Ignored for the other likelihoods.
"""

CRITERION_DOC = """    criterion : torch.nn.Module class or instance, or callable, default=None
        A loss ``criterion(mean, y)`` of the predicted means and the (standardised)
        targets, e.g. ``torch.nn.HuberLoss``, in place of the Gaussian likelihood; a
        class is instantiated without arguments.  It trains no noise variance, so it
        needs ``likelihood='fixed'``: the aleatoric variance is then
        ``noise_scale**2``, given, not learned.  Sample weights need a per-row loss
        and are refused with it.
"""

OUTPUT_ACTIVATION_DOC = """\
    output_activation : {None, 'relu', 'softplus', 'sigmoid', 'tanh'}, default=None
        Applied to the predicted means in the target's original units (the
        network's output is un-standardised, activated and standardised again):
        ``'relu'`` or ``'softplus'`` for a non-negative target, ``'sigmoid'`` for
        one in (0, 1).  Also with a user's module.  Not offered for classifiers.
"""


def regression_option_constraints():
    """The ``_parameter_constraints`` of the regression options."""
    return {
        "likelihood": [StrOptions({"homoscedastic", "heteroscedastic", "fixed"})],
        "noise_scale": [Interval(numbers.Real, 0, None, closed="neither")],
        "output_activation": [None, StrOptions(set(OUTPUT_ACTIVATIONS))],
    }


class BayesianRegressorMixin(RegressorMixin):
    """Regression behaviour: Gaussian likelihood, standardised targets, mixtures."""

    def _target_validation(self):
        return {"multi_output": True, "y_numeric": True}

    def _prepare_targets(self, y, sample_weight=None):
        self._y_1d = y.ndim == 1
        y2 = y.reshape(len(y), -1).astype(np.float64)
        self.n_outputs_ = y2.shape[1]
        # Weighted moments: with integer weights, those of the rows repeated.  Computed
        # on y divided by its largest magnitude, so that squares neither overflow
        # (|y| ~ 1e160) nor underflow (|y| ~ 1e-170): any finite scale standardises.
        magnitude = np.max(np.abs(y2), axis=0)
        magnitude = np.where(magnitude > 0, magnitude, 1.0)
        y_unit = y2 / magnitude
        mean_unit = np.average(y_unit, axis=0, weights=sample_weight)
        scale_unit = np.sqrt(np.average((y_unit - mean_unit) ** 2, axis=0, weights=sample_weight))
        self.y_mean_ = mean_unit * magnitude
        self.y_scale_ = np.where(scale_unit > 0, scale_unit * magnitude, 1.0)
        y_std = (y2 - self.y_mean_) / self.y_scale_
        return torch.as_tensor(y_std, dtype=torch.float32), self.n_outputs_

    def _encode_targets(self, y):
        y2 = y.reshape(len(y), -1).astype(np.float64)
        if y2.shape[1] != self.n_outputs_ or (y.ndim == 1) != self._y_1d:
            raise ValueError(
                f"y has shape {y.shape}, but {type(self).__name__} was fitted on targets "
                f"of {self.n_outputs_} output(s) ({'1-D' if self._y_1d else '2-D'})."
            )
        # The standardisation of the first fit is kept.
        y_std = (y2 - self.y_mean_) / self.y_scale_
        return torch.as_tensor(y_std, dtype=torch.float32), self.n_outputs_

    def _head_options(self):
        """Keyword arguments of the Gaussian head for the likelihood options: the
        fixed noise variance in standardised units, ``(noise_scale / y_scale_)**2``
        (``likelihood='fixed'``), and ``output_activation`` with the standardisation
        it undoes."""
        options = {}
        if self.likelihood == "fixed":
            scale = getattr(self, "noise_scale", 1.0)
            options["noise_variance"] = ((scale / self.y_scale_) ** 2).tolist()
        activation = getattr(self, "output_activation", None)
        if activation is not None:
            options.update(
                output_activation=activation,
                target_mean=self.y_mean_.tolist(),
                target_scale=self.y_scale_.tolist(),
            )
        return options

    def _wrap_module(self, body):
        return GaussianRegressionModule(
            body, self.n_outputs_, self.likelihood, **self._head_options()
        )

    def _body(self, module):
        return module.body

    def _body_width(self, n_outputs):
        return 2 * n_outputs if self.likelihood == "heteroscedastic" else n_outputs

    #: The Gaussian negative log-likelihood per target in standardised units, without
    #: its constant: negative once the predicted variance is below the target's.
    _loss_name = "nll"

    def _criterion(self):
        return self._regression_criterion(GaussianNLLLoss, _AutogradGaussianNLLLoss)

    def _regression_criterion(self, nll, autograd_nll, stacked=False):
        """The training loss: ``nll`` (a class); ``autograd_nll(noise_variance)``,
        the same loss, for a head with ``likelihood='fixed'`` or an
        ``output_activation`` (which the hand-written training steps do not know);
        or a user's ``criterion`` on the predicted means (which needs
        ``likelihood='fixed'``: such a loss trains no variance)."""
        user = getattr(self, "criterion", None)
        if user is not None:
            if self.likelihood != "fixed":
                raise ValueError(
                    f"criterion={user!r} trains the predicted means only, so it cannot "
                    f"learn the noise variance of likelihood={self.likelihood!r}. Pass "
                    "likelihood='fixed' with noise_scale (the noise standard deviation in "
                    "the target's units), or criterion=None for the Gaussian likelihood."
                )
            if getattr(self, "_sample_weight", None) is not None:
                raise ValueError(
                    f"sample_weight needs the loss of each row, which criterion={user!r} "
                    "does not give; fit without sample_weight, or with criterion=None "
                    "(the Gaussian likelihood, which takes weights)."
                )
            if isinstance(user, type):
                loss = user()
            else:
                loss = copy.deepcopy(user)  # the parameter is not changed by training
            return _MeanLoss(loss, stacked=stacked)
        options = self._head_options()
        if options:
            return autograd_nll(options.get("noise_variance"))
        return nll

    def _in_output_range(self, mean):
        """Means in original units clipped to the range of ``output_activation``, so
        that the round-off of undoing the standardisation cannot leave it."""
        activation = getattr(self, "output_activation", None)
        if activation is None:
            return mean
        low, high = OUTPUT_ACTIVATIONS[activation][1]
        return np.clip(mean, low, high)

    #: True for methods with closed-form predictive moments (``_predictive_moments``);
    #: their ``predict`` and ``predict_uncertainty(X)`` use them instead of sampling.
    _closed_form_moments = False

    def _predictive_moments(self, module, X, n_samples, seed):
        """Closed-form ``(mean, aleatoric_var, epistemic_var)`` for rows ``X``.

        Each of shape (n_rows, n_outputs), in standardised target units.  Only
        called when ``_closed_form_moments`` is True.
        """
        raise NotImplementedError

    def _mean_to_original(self, mean):
        mean = mean * self.y_scale_ + self.y_mean_
        return mean[..., 0] if self._y_1d else mean

    def _variance_to_original(self, var):
        var = var * self.y_scale_**2
        return var[..., 0] if self._y_1d else var

    def _gaussian_samples(self, out):
        mean, var = self._calibrated(*out)
        return self._in_output_range(self._mean_to_original(mean)), self._variance_to_original(var)

    def _calibrated(self, mean, var):
        """Draws ``(mean, var)`` of shape (n_samples, n_rows, n_outputs), with the
        predictive spread scaled by ``calibration_scale_``: every draw's mean moves
        ``scale`` times as far from the draws' average, every variance ``scale**2``
        times, so the mixture's total variance (aleatoric and epistemic parts alike)
        scales by ``scale**2`` and its mean stays."""
        scale = getattr(self, "calibration_scale_", None)
        if scale is None or np.all(scale == 1.0):
            return mean, var
        return _scale_spread(mean, var, scale)

    def _reset_calibration(self):
        self.calibration_scale_ = np.ones(self.n_outputs_)

    def _fit_calibration(self, X_valid, y_valid, sample_weight=None):
        """Variance scaling (Levi et al. 2019; Kuleshov et al. 2018), one factor per
        target, fitted by the (``sample_weight``-weighted) NLL of the predictive
        mixture on the held-out rows."""
        mean, var = self._predict_rows(X_valid, rows_axis=1, validated=True)
        y_std = (y_valid.reshape(len(y_valid), -1) - self.y_mean_) / self.y_scale_
        self.calibration_scale_ = np.exp(
            [
                fit_log_scale(mean[..., k], var[..., k], y_std[:, k], sample_weight=sample_weight)
                for k in range(y_std.shape[1])
            ]
        )

    def _moment_parts(self, out):
        """``(mean, aleatoric_var, epistemic_var)`` of the predictive in standardised
        units (closed-form, or reduced from draws) to ``(mean, total_var,
        aleatoric_var, epistemic_var)`` in original units, recalibrated (scaling the
        draws' spread by ``calibration_scale_``, as :meth:`_calibrated` does, keeps
        the mean and multiplies both variances by its square)."""
        mean, aleatoric, epistemic = out
        scale = getattr(self, "calibration_scale_", 1.0)
        aleatoric, epistemic = aleatoric * scale**2, epistemic * scale**2
        # The standard deviation from standardised units, so that it is right even
        # where the variance in original units is not representable (|y| ~ 1e160).
        std = np.sqrt(aleatoric + epistemic) * self.y_scale_
        std = std[..., 0] if self._y_1d else std
        with np.errstate(over="ignore", under="ignore"):
            aleatoric = self._variance_to_original(aleatoric)
            epistemic = self._variance_to_original(epistemic)
        mean = self._in_output_range(self._mean_to_original(mean))
        return mean, std, aleatoric + epistemic, aleatoric, epistemic

    def sample_predictions(self, X, n_samples=None, deterministic=False):
        """Means and variances of the Gaussian predictions of ``n_samples`` draws.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Inputs.
        n_samples : int, default=None
            Number of draws; ``None`` uses the ``n_samples`` parameter.
        deterministic : bool, default=False
            Evaluate the network once, without sampling (see the user guide,
            "Deterministic pass"): dropout off, posterior means, an ensemble's
            member average.  ``n_samples`` must then be None.

        Returns
        -------
        mean_samples : ndarray of shape (n_samples, n_rows) or (n_samples, n_rows, n_outputs)
            Predictive mean of each draw, in the target's original units.
        var_samples : ndarray, same shape as ``mean_samples``
            Noise variance of each draw, in squared original units.
            ``n_samples`` is 1 for ``deterministic=True``.
        """
        out = self._predict_rows(X, n_samples, rows_axis=1, deterministic=deterministic)
        return self._gaussian_samples(out)

    def predict_uncertainty(self, X, n_samples=None, deterministic=False):
        """Predictive mean and the decomposition of its variance.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Inputs.
        n_samples : int, default=None
            Number of draws; ``None`` uses the ``n_samples`` parameter.
        deterministic : bool, default=False
            Evaluate the network once, without sampling (see the user guide,
            "Deterministic pass"): dropout off, posterior means, an ensemble's
            member average.  ``n_samples`` must then be None.

        Returns
        -------
        uncertainty : RegressionUncertainty
            ``mean``, ``std``, ``total_var``, ``aleatoric_var`` (mean noise variance)
            and ``epistemic_var`` (variance of the sampled means), each of shape
            (n_rows,) for a 1-D ``y`` at fit time, else (n_rows, n_outputs), in the
            target's original units.  Computed in row batches, reduced on the
            estimator's device.  Methods with closed-form predictive moments (PBP,
            the Bayesian last layer) return those when ``n_samples`` is None, and
            Monte Carlo estimates from ``n_samples`` draws when it is given.  With
            ``deterministic=True``, ``epistemic_var`` is zero and ``aleatoric_var``
            the network's noise variance.
        """
        if n_samples is None and self._closed_form_moments and not deterministic:
            moments = self._predict_rows(X, 1, sampler=self._predictive_moments)
        else:
            moments = self._predict_rows(
                X, n_samples, reduce=regression_summaries, deterministic=deterministic
            )
        return RegressionUncertainty(*self._moment_parts(moments))

    def predict(self, X, return_std=False, deterministic=False):
        """Predictive mean (and standard deviation).

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Inputs.
        return_std : bool, default=False
            Also return the predictive standard deviation (aleatoric and epistemic),
            as ``GaussianProcessRegressor.predict`` does.
        deterministic : bool, default=False
            Evaluate the network once, without sampling (see the user guide,
            "Deterministic pass"): dropout off, posterior means, an ensemble's
            member average.  ``n_samples`` must then be None.

        Returns
        -------
        y_mean : ndarray of shape (n_rows,) or (n_rows, n_outputs)
            Mean of the predictive mixture, in the target's original units.
        y_std : ndarray, same shape as ``y_mean``
            Only when ``return_std`` is True.
        """
        u = self.predict_uncertainty(X, deterministic=deterministic)
        return (u.mean, u.std) if return_std else u.mean

    def predict_interval(
        self, X, confidence=0.9, method="gaussian", n_samples=None, deterministic=False
    ):
        """Central prediction intervals holding a new target with probability ``confidence``.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Inputs.
        confidence : float, default=0.9
            Probability in ``(0, 1)`` that the interval holds a new target.
        method : {'gaussian', 'mixture'}, default='gaussian'
            ``'gaussian'``: ``mean +- z * std`` with ``z = Phi^-1((1 + confidence) / 2)``,
            from the Gaussian summary of the predictive (the mean and total standard
            deviation of :meth:`predict_uncertainty`): symmetric, exact for methods
            whose predictive is Gaussian (PBP, the Bayesian last layer), a moment
            match of the mixture for the others.  ``'mixture'``: the
            ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the
            predictive mixture itself (the equally weighted Gaussians of
            ``n_samples`` draws, as :meth:`sample_predictions` returns them), found
            by bisection on its CDF: asymmetric where the draws disagree
            asymmetrically.
        n_samples : int, default=None
            Number of draws; ``None`` uses the ``n_samples`` parameter (and the
            closed-form moments of methods that have them, for ``'gaussian'``).
        deterministic : bool, default=False
            Evaluate the network once, without sampling (see the user guide,
            "Deterministic pass"): dropout off, posterior means, an ensemble's
            member average.  ``n_samples`` must then be None.

        Returns
        -------
        intervals : ndarray of shape (n_rows, 2) or (n_rows, n_outputs, 2)
            Lower and upper ends on the last axis, in the target's original units;
            ``(n_rows, 2)`` for a 1-D ``y`` at fit time.  Computed in row batches.

        Notes
        -----
        These intervals are only as good as the model's uncertainty.  For
        intervals with a finite-sample coverage guarantee, conformalize the
        estimator with MAPIE, which calls ``predict(X, return_std=True)``:
        ``SplitConformalRegressor(est, conformity_score="std_normalized",
        prefit=True).conformalize(X_cal, y_cal).predict_interval(X)`` (see the
        user guide).

        Examples
        --------
        >>> import numpy as np
        >>> from skbdl import MCDropoutRegressor
        >>> rng = np.random.RandomState(0)
        >>> X = rng.uniform(-2, 2, size=(200, 1))
        >>> y = X[:, 0] + 0.3 * rng.randn(200)
        >>> reg = MCDropoutRegressor(hidden_layer_sizes=(16,), max_epochs=10,
        ...                          random_state=0).fit(X, y)
        >>> intervals = reg.predict_interval(X[:3], confidence=0.9)
        >>> intervals.shape
        (3, 2)
        >>> bool(np.all(intervals[:, 0] < reg.predict(X[:3])))
        True
        >>> reg.predict_interval(X[:3], method="mixture").shape
        (3, 2)
        """
        if not (isinstance(confidence, numbers.Real) and 0 < confidence < 1):
            raise ValueError(f"confidence must be a float in (0, 1); got {confidence!r}.")
        if method == "gaussian":
            u = self.predict_uncertainty(X, n_samples=n_samples, deterministic=deterministic)
            return _gaussian_interval(u.mean, u.std, confidence)
        if method != "mixture":
            raise ValueError(f"method must be 'gaussian' or 'mixture'; got {method!r}.")
        levels = [(1 - confidence) / 2, (1 + confidence) / 2]

        def quantiles(out):  # a chunk's draws, on the host: bisection in numpy
            # In standardised units (quantiles commute with the increasing affine map
            # back), so that the variances never overflow.
            mean, var = self._calibrated(*_to_numpy(out))
            ends = self._mean_to_original(gaussian_mixture_quantile(levels, mean, var))
            return torch.from_numpy(np.ascontiguousarray(np.moveaxis(ends, 0, -1)))

        return self._predict_rows(X, n_samples, reduce=quantiles, deterministic=deterministic)[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
