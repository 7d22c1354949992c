"""
==========================================================
Bayes by Backprop: where is the classifier unsure, in 2-D?
==========================================================

A :class:`skbdl.BayesianMLPClassifier` keeps a Gaussian posterior over every weight
of its network (Bayes by Backprop, Blundell et al. 2015) and averages the class
probabilities of networks drawn from it.  Its uncertainty about a point splits into

* **aleatoric** -- the expected entropy of the drawn networks' predictions: high on
  the class boundary, where even a perfect model would hesitate;
* **epistemic** -- the mutual information between the prediction and the weights:
  how much the drawn networks *disagree*, high where there were no training data.

On the two-moons problem we map both over the plane.
"""

# %%
# Data and model
# --------------
# Inputs are standardised in a pipeline, as for any neural network.
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_moons
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skbdl
from skbdl import BayesianMLPClassifier

X, y = make_moons(n_samples=300, noise=0.15, random_state=0)
model = make_pipeline(
    StandardScaler(),
    BayesianMLPClassifier(hidden_layer_sizes=(32, 32), max_epochs=150, lr=0.01, random_state=0),
)
start = time.perf_counter()
model.fit(X, y)
print(f"fitted in {time.perf_counter() - start:.1f} s; training accuracy {model.score(X, y):.3f}")

# %%
# Uncertainty over a grid
# -----------------------
# ``predict_uncertainty`` returns the model average of the probabilities and, per
# point, the total (predictive entropy), aleatoric and epistemic parts, in nats.
# :func:`skbdl.predict_uncertainty` calls it on the pipeline's last step, with the
# points passed through the scaler first.
xx, yy = np.meshgrid(np.linspace(-2.5, 3.5, 120), np.linspace(-2.0, 2.5, 90))
grid = np.c_[xx.ravel(), yy.ravel()]
u = skbdl.predict_uncertainty(model, grid, n_samples=200)

# Epistemic uncertainty on the training points, and far from the data where the
# model average is undecided (the extrapolated decision boundary).
on_data = skbdl.predict_uncertainty(model, X, n_samples=200)
distance = np.min(np.linalg.norm(grid[:, None, :] - X[None, :, :], axis=2), axis=1)
far_boundary = (distance > 1.0) & (np.abs(u.proba[:, 1] - 0.5) < 0.3)
print(
    f"mean epistemic (nats): on the training points {on_data.epistemic.mean():.3f}, "
    f"far from the data on the boundary {u.epistemic[far_boundary].mean():.3f}"
)
print(
    f"mean aleatoric (nats): on the training points {on_data.aleatoric.mean():.3f}, "
    f"far from the data on the boundary {u.aleatoric[far_boundary].mean():.3f}"
)

# %%
# Maps
# ----
# The total uncertainty (top right) is the sum of its aleatoric and epistemic parts
# (bottom row).
fig, axes = plt.subplots(2, 2, figsize=(9, 6.6), sharex=True, sharey=True, layout="constrained")
panels = [
    ("P(class 1)", u.proba[:, 1], "RdBu_r"),
    ("total: predictive entropy", u.total, "cividis"),
    ("aleatoric: expected entropy", u.aleatoric, "viridis"),
    ("epistemic: mutual information", u.epistemic, "magma"),
]
for ax, (title, values, cmap) in zip(axes.flat, panels):
    image = ax.contourf(xx, yy, values.reshape(xx.shape), levels=20, cmap=cmap)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", s=6, edgecolors="k", linewidths=0.2)
    ax.set_title(title)
    fig.colorbar(image, ax=ax)
for ax in axes[1]:
    ax.set_xlabel("$x_1$")
for ax in axes[:, 0]:
    ax.set_ylabel("$x_2$")
plt.show()

# %%
# The aleatoric part is concentrated along the boundary between the moons, where the
# data themselves are mixed, and small (mind its colour scale): the moons barely
# overlap, so each drawn network is confident.  The epistemic part is small on the data and grows
# away from them, most where the decision boundary is extrapolated: there the
# drawn networks put the boundary in different places.  A point with high epistemic
# uncertainty is one to label next (active learning) or to flag as unlike the
# training data.
