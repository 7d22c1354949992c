"""
==================================================================
A Bayesian last layer for a network that is already trained
==================================================================

An ordinary network (here skbdl's MLP trained without dropout) gives one answer and
no sense of how far it is from its training data.  The last-layer methods keep the
trained network as it is -- no retraining -- and put a posterior on its last layer
only, in closed form:

* :class:`skbdl.LastLayerBayesianRegressor`: Bayesian linear regression on the
  network's penultimate features, noise and prior precision by evidence
  maximisation;
* :class:`skbdl.LastLayerLaplaceClassifier`: a Laplace approximation of the last
  layer, prior precision by marginal likelihood.

A network trained beforehand goes in through scikit-learn's ``FrozenEstimator``, so
``fit`` only fits the last layer.
"""

# %%
# Regression: a network trained on data with a gap
# ------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.frozen import FrozenEstimator

from skbdl import (
    LastLayerBayesianRegressor,
    LastLayerLaplaceClassifier,
    MCDropoutClassifier,
    MCDropoutRegressor,
)

rng = np.random.RandomState(0)
x = np.r_[rng.uniform(-4, -1.5, 100), rng.uniform(1.5, 4, 100)]
y = np.sin(x) + 0.1 * rng.randn(len(x))
X = x[:, np.newaxis]

network = MCDropoutRegressor(
    hidden_layer_sizes=(50, 50), dropout=0.0, max_epochs=100, lr=5e-3, random_state=0
).fit(X, y)
bayesian = LastLayerBayesianRegressor(FrozenEstimator(network), random_state=0).fit(X, y)

x_grid = np.linspace(-7, 7, 300)
alone = network.predict_uncertainty(x_grid[:, np.newaxis])
u = bayesian.predict_uncertainty(x_grid[:, np.newaxis])
in_data = (np.abs(x_grid) > 1.5) & (np.abs(x_grid) < 4)
print(f"noise std (1 / sqrt(alpha_)):          {1 / np.sqrt(bayesian.alpha_[0]):.3f}")
print(f"epistemic std where there are data:    {u.epistemic_std[in_data].mean():.3f}")
print(f"epistemic std in the gap:              {u.epistemic_std[np.abs(x_grid) < 1].mean():.3f}")
print(f"epistemic std beyond the data (|x|>5): {u.epistemic_std[np.abs(x_grid) > 5].mean():.3f}")
print(f"the network alone, anywhere:           {alone.epistemic_std.max():.3f}")

# %%
# Classification: confidence far from the data
# --------------------------------------------
# A ReLU network's softmax tends to certainty as inputs move away from the data;
# the Laplace last layer does not.
centres = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
labels = np.repeat(np.arange(3), 60)
points = centres[labels] + 0.8 * rng.randn(len(labels), 2)
classifier = MCDropoutClassifier(
    hidden_layer_sizes=(50, 50), dropout=0.0, max_epochs=60, lr=5e-3, random_state=0
).fit(points, labels)
laplace = LastLayerLaplaceClassifier(FrozenEstimator(classifier), random_state=0).fit(
    points, labels
)

grid = np.linspace(-10, 10, 120)
G = np.array(np.meshgrid(grid, grid)).reshape(2, -1).T
confidence_alone = classifier.predict_proba(G).max(axis=1).reshape(len(grid), -1)
confidence_laplace = laplace.predict_proba(G).max(axis=1).reshape(len(grid), -1)
far = np.hypot(*G.T) > 8
print(
    f"mean top probability far from the data: network {confidence_alone.ravel()[far].mean():.2f}, "
    f"last-layer Laplace {confidence_laplace.ravel()[far].mean():.2f}"
)

# %%
# Plot
# ----
# The regression across the top, the two confidence maps below it: each panel stays
# readable at the width of the page.
axes = plt.figure(figsize=(9, 8), layout="constrained").subplot_mosaic(
    [["regression", "regression"], ["alone", "laplace"]], height_ratios=[1, 1.15]
)
fig = axes["regression"].figure
ax = axes["regression"]
ax.fill_between(
    x_grid,
    u.mean - 2 * u.std,
    u.mean + 2 * u.std,
    color="tab:orange",
    alpha=0.4,
    lw=0,
    label="± 2 std, Bayesian last layer",
)
ax.plot(x_grid, alone.mean, color="k", lw=1, ls="--", label="the network alone")
ax.plot(x_grid, u.mean, color="tab:orange", lw=2, label="predictive mean")
ax.scatter(x, y, s=6, color="k", alpha=0.5)
ax.set_ylim(-4, 4)
ax.set_title("LastLayerBayesianRegressor")
ax.legend(loc="lower left", fontsize=9)
for ax, confidence, title in [
    (axes["alone"], confidence_alone, "network alone: top probability"),
    (axes["laplace"], confidence_laplace, "last-layer Laplace: top probability"),
]:
    image = ax.imshow(
        confidence, extent=(-10, 10, -10, 10), origin="lower", vmin=1 / 3, vmax=1, cmap="viridis"
    )
    ax.scatter(*points.T, c=labels, s=6, cmap="Set1", edgecolor="k", linewidth=0.3)
    ax.set_title(title)
fig.colorbar(image, ax=[axes["alone"], axes["laplace"]], shrink=0.8)

# Without a display matplotlib uses its Agg backend and ``show`` does nothing.
plt.show()
