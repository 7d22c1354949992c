"""
==================================================================
SWAG and Laplace: a Gaussian over every weight
==================================================================

Two inexpensive Gaussian posteriors over all the weights of a network:

* :class:`skbdl.SWAGRegressor` trains the network and records its weights along the
  way; the mean, the diagonal variance and the last few deviations of those iterates
  make a low-rank-plus-diagonal Gaussian, and prediction averages networks drawn from
  it (``n_models=2``: two of them, MultiSWAG);
* :class:`skbdl.LaplaceRegressor` takes a network that is already trained (here
  through ``FrozenEstimator``) and puts ``N(theta*, (H + delta I)^-1)`` on its
  weights, ``H`` the Kronecker-factored Gauss-Newton curvature and ``delta`` chosen
  by the marginal likelihood; it predicts with the network linearised in its weights.

Both are fitted to a one-dimensional problem with a gap in the data.
"""

# %%
# The data and the two posteriors
# -------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.frozen import FrozenEstimator

from skbdl import LaplaceRegressor, MCDropoutRegressor, SWAGRegressor

rng = np.random.RandomState(0)
x = np.r_[rng.uniform(-4, -1.5, 100), rng.uniform(1.5, 4, 100)]
y = np.sin(x) + 0.1 * rng.randn(len(x))
X = x[:, np.newaxis]

swag = SWAGRegressor(
    hidden_layer_sizes=(50,),
    max_epochs=150,
    lr=5e-3,
    n_models=2,
    calibrate=False,
    random_state=0,
    verbose=0,
).fit(X, y)

# A MAP network (weight decay 1 / n: a N(0, 1) prior on the weights), trained earlier.
network = MCDropoutRegressor(
    hidden_layer_sizes=(50,),
    dropout=0.0,
    max_epochs=150,
    lr=5e-3,
    weight_decay=1 / len(X),
    calibrate=False,
    random_state=0,
    verbose=0,
).fit(X, y)
laplace = LaplaceRegressor(FrozenEstimator(network), hessian_structure="kron").fit(X, y)
print(f"Laplace prior precision (marginal likelihood): {laplace.prior_precision_:.3g}")

x_grid = np.linspace(-7, 7, 300)
in_data = (np.abs(x_grid) > 1.5) & (np.abs(x_grid) < 4)
for name, model in [("SWAG (2 models)", swag), ("Laplace (kron)", laplace)]:
    u = model.predict_uncertainty(x_grid[:, np.newaxis])
    print(
        f"{name:16s} epistemic std: with data {u.epistemic_std[in_data].mean():.3f}, "
        f"in the gap {u.epistemic_std[np.abs(x_grid) < 1].mean():.3f}, "
        f"beyond (|x| > 5) {u.epistemic_std[np.abs(x_grid) > 5].mean():.3f}"
    )

# %%
# Predictive bands
# ----------------
# The darker band is the epistemic part (two standard deviations), the lighter one
# the total predictive spread.
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
for ax, (name, model) in zip(axes, [("SWAG (2 models)", swag), ("Laplace (kron)", laplace)]):
    u = model.predict_uncertainty(x_grid[:, np.newaxis])
    ax.fill_between(x_grid, u.mean - 2 * u.std, u.mean + 2 * u.std, alpha=0.2, color="C0")
    ax.fill_between(
        x_grid, u.mean - 2 * u.epistemic_std, u.mean + 2 * u.epistemic_std, alpha=0.4, color="C0"
    )
    ax.plot(x_grid, u.mean, color="C0")
    ax.scatter(x, y, s=4, color="k")
    ax.set(title=name, xlabel="x", ylim=(-3, 3))
axes[0].set_ylabel("y")
fig.tight_layout()
plt.show()
