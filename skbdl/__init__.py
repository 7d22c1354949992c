"""skbdl: Bayesian deep learning as scikit-learn estimators."""

from ._net import DivergenceError
from .mc_dropout import MCDropoutClassifier, MCDropoutRegressor
from .uncertainty import ClassificationUncertainty, RegressionUncertainty

__version__ = "0.1.0"

__all__ = [
    "ClassificationUncertainty",
    "DivergenceError",
    "MCDropoutClassifier",
    "MCDropoutRegressor",
    "RegressionUncertainty",
]
