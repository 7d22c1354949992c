"""
Deep ensemble vs MC dropout on data with a gap
==============================================

A 1-D regression problem whose training inputs leave a gap in the middle.  Where
the data are, both a deep ensemble and MC dropout fit the curve and its noise; in
the gap and beyond the data, a model that knows what it does not know should
become less sure.  We compare how each method splits its predictive variance into
aleatoric (noise) and epistemic (model) parts.

The ensemble's five members are trained together as one stacked model, so five
networks cost about twice as much as the single network of MC dropout.  The last
section puts every skbdl regressor on the same data, to see which of them is more
uncertain *between* the two clusters of data than on them.
"""

# %%
# Data: noisy samples of a smooth curve, with no training inputs in (-1, 1).
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skbdl
from skbdl import (
    BayesianMLPRegressor,
    DeepEnsembleRegressor,
    LastLayerBayesianRegressor,
    MCDropoutRegressor,
    PBPRegressor,
)
from skbdl.plotting import plot_predictive_band

rng = np.random.RandomState(0)
x_train = np.concatenate([rng.uniform(-4, -1, 150), rng.uniform(1, 4, 150)])
noise = 0.1 + 0.1 * np.abs(x_train)  # noise that grows with ``|x|``
y_train = np.sin(x_train) + 0.3 * x_train + noise * rng.randn(len(x_train))
X_train = x_train[:, None]
x_grid = np.linspace(-6, 6, 400)
X_grid = x_grid[:, None]

# %%
# Fit both methods with the same network size and training budget.
settings = dict(hidden_layer_sizes=(64, 64), max_epochs=150, lr=3e-3, random_state=0)
models = {
    "deep ensemble (5 members)": DeepEnsembleRegressor(n_estimators=5, **settings),
    "MC dropout (p=0.1, 100 masks)": MCDropoutRegressor(
        dropout=0.1, likelihood="heteroscedastic", **settings
    ),
}
results = {}
for name, model in models.items():
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    results[name] = model.predict_uncertainty(X_grid)
    print(f"{name}: fitted in {seconds:.1f} s")

# %%
# Epistemic standard deviation inside the data, in the gap and outside the data.
regions = {
    "data": (np.abs(x_grid) > 1.5) & (np.abs(x_grid) < 3.5),
    "gap": np.abs(x_grid) < 0.5,
    "outside": np.abs(x_grid) > 5,
}
print(f"{'epistemic std':<32}" + "".join(f"{r:>10}" for r in regions) + "  gap/data")
for name, u in results.items():
    std = {r: np.sqrt(u.epistemic_var[m]).mean() for r, m in regions.items()}
    cells = "".join(f"{v:10.3f}" for v in std.values())
    print(f"{name:<32}{cells}{std['gap'] / std['data']:10.1f}")

# %%
# Plot the predictive mean, the total and the epistemic two-sigma bands.
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
for ax, (name, u) in zip(axes, results.items()):
    ax.axvspan(-1, 1, color="0.92", label="no training data")
    ax.scatter(x_train, y_train, s=5, color="0.4", label="training data")
    ax.fill_between(x_grid, u.mean - 2 * u.std, u.mean + 2 * u.std, alpha=0.25, label="total ±2σ")
    epistemic = 2 * np.sqrt(u.epistemic_var)
    ax.fill_between(
        x_grid, u.mean - epistemic, u.mean + epistemic, alpha=0.5, label="epistemic ±2σ"
    )
    ax.plot(x_grid, u.mean, color="k", lw=1, label="predictive mean")
    ax.set_title(name)
    ax.set_xlabel("x")
    ax.set_ylim(-3.5, 3.5)
axes[0].set_ylabel("y")
axes[0].legend(loc="upper left", fontsize=8)
fig.tight_layout()
plt.show()

# %%
# The ensemble's members agree where the data are and disagree in the gap and
# beyond the data, so its epistemic band is narrow on the data and widens (here
# about twofold) where there are none.  MC dropout's draws are thinned copies of one
# network: its epistemic band is wide everywhere, on the data too, and hardly
# grows in the gap, so it says less about *where* the model lacks data.  Both put
# most of the variance on the data down to noise (aleatoric), growing with ``|x|`` as
# the noise of the data does.

# %%
# Every method on the same data: "in-between" uncertainty
# -------------------------------------------------------
# Foong et al. (2019) asked whether approximate Bayesian networks are more
# uncertain *between* two clusters of data than on them; mean-field variational
# methods (Bayes by Backprop) and MC dropout often are not.  Here are all of
# skbdl's regressors on the data above, with the predictive band split by
# :func:`skbdl.plotting.plot_predictive_band`: the noise (aleatoric) and the model's
# own uncertainty (epistemic) as two 95% bands around the mean.
# Inputs are standardised in a pipeline (probabilistic backpropagation's prior
# assumes it); the last-layer model puts a posterior on the last layer of a plain
# network trained beforehand.
plain = make_pipeline(
    StandardScaler(), MCDropoutRegressor(dropout=0.0, likelihood="heteroscedastic", **settings)
)
more_models = {
    "Bayes by Backprop": make_pipeline(
        StandardScaler(),
        BayesianMLPRegressor(likelihood="heteroscedastic", **{**settings, "lr": 1e-2}),
    ),
    "probabilistic backpropagation": make_pipeline(StandardScaler(), PBPRegressor(random_state=0)),
    "Bayesian last layer": LastLayerBayesianRegressor(FrozenEstimator(plain), random_state=0),
}
start = time.perf_counter()
plain.fit(X_train, y_train)
for name, model in more_models.items():
    model.fit(X_train, y_train)
    # Through a pipeline too: the last step's predict_uncertainty, on scaled inputs.
    results[name] = skbdl.predict_uncertainty(model, X_grid)
print(f"three more methods fitted in {time.perf_counter() - start:.1f} s")

print(f"{'epistemic std':<32}" + "".join(f"{r:>10}" for r in regions) + "  gap/data")
for name, u in results.items():
    std = {r: np.sqrt(u.epistemic_var[m]).mean() for r, m in regions.items()}
    cells = "".join(f"{v:10.3f}" for v in std.values())
    print(f"{name[:31]:<32}{cells}{std['gap'] / std['data']:10.1f}")

# Two panels a row, so that each stays readable at the width of the page; the
# legend takes the free sixth place.
fig, axes = plt.subplots(3, 2, figsize=(9, 9.5), sharex=True, sharey=True)
for ax, (name, u) in zip(axes.flat, results.items()):
    ax.axvspan(-1, 1, color="0.93")
    plot_predictive_band(
        x_grid, u, style="separate", X_train=x_train, y_train=y_train, label=name, ax=ax
    )
    ax.set_ylim(-4, 4)
    ax.get_legend().remove()
axes.flat[-1].axis("off")
axes.flat[-1].legend(*axes.flat[0].get_legend_handles_labels(), loc="center", fontsize=10)
for ax in axes.flat[:-1]:
    if ax not in axes[:, 0]:
        ax.set_ylabel("")
    if ax not in axes[-1]:
        ax.set_xlabel("")
axes[-2, -1].xaxis.set_tick_params(labelbottom=True)
axes[-2, -1].set_xlabel("x")
fig.tight_layout()
plt.show()

# %%
# The "gap/data" column is the ratio of the mean epistemic standard deviation in the
# gap to that on the data: above 1, the model knows that it has not seen the gap.
# Methods whose draws are whole networks that agree only on the data (the ensemble's
# independently trained members, the last layer's posterior on features that change
# across the gap) widen there; methods whose posterior is a factorised perturbation of
# one network (dropout masks, mean-field Gaussian weights) can stay almost as sure in
# the gap as on the data, or even surer.  The numbers depend on the settings (dropout
# rate, prior, network size, training length); the band plot is the quickest way to
# check a model before trusting its uncertainty where it has no data.
