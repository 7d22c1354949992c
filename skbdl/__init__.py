"""skbdl: Bayesian deep learning as scikit-learn estimators."""

from ._meta import predict_interval, predict_uncertainty, sample_predictions
from ._net import DivergenceError
from ._persistence import persistence_trusted_types
from .bbb import BayesianMLPClassifier, BayesianMLPRegressor
from .ensemble import DeepEnsembleClassifier, DeepEnsembleRegressor
from .hyper_ensemble import HyperDeepEnsembleClassifier, HyperDeepEnsembleRegressor
from .laplace import LaplaceClassifier, LaplaceRegressor
from .last_layer import LastLayerBayesianRegressor
from .last_layer_dropout import LastLayerMCDropoutClassifier, LastLayerMCDropoutRegressor
from .last_layer_laplace import LastLayerLaplaceClassifier
from .mc_dropout import MCDropoutClassifier, MCDropoutRegressor
from .pbp import PBPRegressor
from .swag import SWAGClassifier, SWAGRegressor
from .uncertainty import ClassificationUncertainty, RegressionUncertainty
from .vae import VariationalAutoencoder

__version__ = "0.1.0"

__all__ = [
    "BayesianMLPClassifier",
    "BayesianMLPRegressor",
    "ClassificationUncertainty",
    "DeepEnsembleClassifier",
    "DeepEnsembleRegressor",
    "DivergenceError",
    "HyperDeepEnsembleClassifier",
    "HyperDeepEnsembleRegressor",
    "LaplaceClassifier",
    "LaplaceRegressor",
    "LastLayerBayesianRegressor",
    "LastLayerMCDropoutClassifier",
    "LastLayerMCDropoutRegressor",
    "LastLayerLaplaceClassifier",
    "MCDropoutClassifier",
    "MCDropoutRegressor",
    "PBPRegressor",
    "RegressionUncertainty",
    "SWAGClassifier",
    "SWAGRegressor",
    "VariationalAutoencoder",
    "persistence_trusted_types",
    "predict_interval",
    "predict_uncertainty",
    "sample_predictions",
]
