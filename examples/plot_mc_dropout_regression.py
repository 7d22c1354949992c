"""
===========================================================
MC dropout regression: noise versus not knowing, in 1-D
===========================================================

A network trained on data with a gap in the middle should be unsure in the gap and
beyond the ends of the data, even where the data themselves are not noisy.  Monte
Carlo dropout (:class:`skbdl.MCDropoutRegressor`) separates the two kinds of
uncertainty:

* **aleatoric** -- the noise in the data, which more data would not remove. With
  ``likelihood="heteroscedastic"`` the network predicts it per input;
* **epistemic** -- how much the dropout-thinned networks disagree, which grows
  where there were no training data.

The predictive variance is their sum (law of total variance).
"""

# %%
# Data with a gap
# ---------------
# ``y = sin(x)`` plus noise that is small on the left and large on the right, with
# no training data between -1.5 and 1.5.
import matplotlib.pyplot as plt
import numpy as np

from skbdl import MCDropoutRegressor

rng = np.random.RandomState(0)
x = np.r_[rng.uniform(-4, -1.5, 100), rng.uniform(1.5, 4, 100)]
noise_std = np.where(x < 0, 0.05, 0.3)
y = np.sin(x) + noise_std * rng.randn(len(x))
X = x[:, np.newaxis]  # scikit-learn wants a 2-D X

# %%
# Fit
# ---
# A heteroscedastic likelihood makes the network output a noise variance per input
# as well as a mean.  Targets are standardised internally; every prediction comes
# back in ``y``'s units.
model = MCDropoutRegressor(
    hidden_layer_sizes=(100, 100),
    dropout=0.2,
    likelihood="heteroscedastic",
    max_epochs=100,
    lr=3e-3,
    random_state=0,
)
model.fit(X, y)

# %%
# Predict with the uncertainty split in two
# ------------------------------------------
# ``predict_uncertainty`` averages ``n_samples`` (100) dropout masks:
# ``aleatoric_var`` is the mean of the predicted noise variances,
# ``epistemic_var`` the variance of the predicted means.
x_grid = np.linspace(-6, 6, 400)
u = model.predict_uncertainty(x_grid[:, np.newaxis])

in_gap = np.abs(x_grid) < 1
in_data = (np.abs(x_grid) > 1.5) & (np.abs(x_grid) < 4)
print(f"epistemic std, where there are data: {u.epistemic_std[in_data].mean():.3f}")
print(f"epistemic std, in the gap:           {u.epistemic_std[in_gap].mean():.3f}")
print(f"aleatoric std, left (noise 0.05):    {u.aleatoric_std[in_data & (x_grid < 0)].mean():.3f}")
print(f"aleatoric std, right (noise 0.3):    {u.aleatoric_std[in_data & (x_grid > 0)].mean():.3f}")

# %%
# The gap and the ends get a larger epistemic part than the data regions, and the
# learned noise is larger on the right, as in the data.  The learned noise is an
# over-estimate where the data are clean: during training the dropout masks also
# shake the predicted mean, and the variance head absorbs that spread.

# %%
# Plot
# ----
# Top: the predictive mean with two standard deviations of the noise alone (blue)
# and, around it, what the epistemic part adds to reach two standard deviations of
# the total predictive variance (orange).  Bottom: the two standard deviations
# against ``x``; the shaded strips mark where the training data lie.
fig, (ax_top, ax_bottom) = plt.subplots(
    2, 1, figsize=(8, 7), sharex=True, height_ratios=[2, 1], layout="constrained"
)
aleatoric_low, aleatoric_high = u.mean - 2 * u.aleatoric_std, u.mean + 2 * u.aleatoric_std
total_low, total_high = u.mean - 2 * u.std, u.mean + 2 * u.std
ax_top.fill_between(
    x_grid,
    aleatoric_low,
    aleatoric_high,
    color="tab:blue",
    alpha=0.3,
    lw=0,
    label="± 2 std of the noise (aleatoric)",
)
ax_top.fill_between(
    x_grid,
    total_low,
    aleatoric_low,
    color="tab:orange",
    alpha=0.45,
    lw=0,
    label="added by epistemic: ± 2 std in total",
)
ax_top.fill_between(x_grid, aleatoric_high, total_high, color="tab:orange", alpha=0.45, lw=0)
ax_top.plot(x_grid, np.sin(x_grid), color="0.3", ls="--", lw=1, label="true function")
ax_top.plot(x_grid, u.mean, color="tab:blue", lw=2, label="predictive mean")
ax_top.scatter(x, y, s=8, color="k", alpha=0.6, label="training data")
for low, high in [(-4, -1.5), (1.5, 4)]:
    ax_top.axvspan(low, high, color="0.93", zorder=0)
ax_top.set_ylabel("y")
ax_top.set_ylim(-3, 3)
ax_top.legend(loc="lower left", fontsize=8, ncols=2)
ax_top.set_title("MCDropoutRegressor, heteroscedastic likelihood")

ax_bottom.plot(x_grid, u.aleatoric_std, color="tab:blue", label="aleatoric std")
ax_bottom.plot(x_grid, u.epistemic_std, color="tab:orange", label="epistemic std")
for low, high in [(-4, -1.5), (1.5, 4)]:
    ax_bottom.axvspan(low, high, color="0.9", zorder=0)
ax_bottom.set_xlabel("x")
ax_bottom.set_ylabel("standard deviation")
ax_bottom.legend(loc="upper left", fontsize=8)

# Without a display, matplotlib falls back to its non-interactive Agg backend and
# ``show`` does nothing; nothing is written to disk.
plt.show()
