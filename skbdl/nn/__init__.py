"""Torch building blocks: the default MLP, the Gaussian regression head and its loss."""

from ._bayesian import (
    BayesianLinear,
    BayesianMLP,
    GaussianPrior,
    Prior,
    ScaleMixturePrior,
    kl_divergence,
    sampled_network,
)
from ._bayesian_conv import BayesianConv1d, BayesianConv2d
from ._ensemble import (
    EnsembleCrossEntropyLoss,
    EnsembleGaussianNLLLoss,
    LoopEnsemble,
    StackedGaussianRegressionModule,
    StackedMLP,
    VmapEnsemble,
)
from ._mlp import ACTIVATIONS, MLP, GaussianNLLLoss, GaussianRegressionModule
from ._pbp import ADFTrainer, PBPNetwork, relu_moments, relu_moments_numpy

__all__ = [
    "ACTIVATIONS",
    "BayesianLinear",
    "BayesianConv1d",
    "BayesianConv2d",
    "BayesianMLP",
    "GaussianPrior",
    "Prior",
    "ScaleMixturePrior",
    "kl_divergence",
    "sampled_network",
    "MLP",
    "EnsembleCrossEntropyLoss",
    "EnsembleGaussianNLLLoss",
    "GaussianNLLLoss",
    "GaussianRegressionModule",
    "LoopEnsemble",
    "StackedGaussianRegressionModule",
    "StackedMLP",
    "VmapEnsemble",
    "ADFTrainer",
    "PBPNetwork",
    "relu_moments",
    "relu_moments_numpy",
]
