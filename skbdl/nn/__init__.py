"""Torch building blocks: the default MLP, the Gaussian regression head and its loss."""

from ._mlp import ACTIVATIONS, MLP, GaussianNLLLoss, GaussianRegressionModule

__all__ = ["ACTIVATIONS", "MLP", "GaussianNLLLoss", "GaussianRegressionModule"]
