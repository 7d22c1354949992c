"""
Hyper-deep ensembles: members that differ in their hyperparameters
===================================================================

A deep ensemble's members differ only by their random seeds.  A hyper-deep ensemble
(Wenzel et al. 2020) also lets them differ in their hyperparameters: here each of a
population of candidate networks draws its own L2 penalty and learning rate, the
population is trained as one stacked model (about the cost of a few networks), and
members are picked greedily by the held-out log-likelihood of the ensemble they
join.  The picked configurations are then retrained on all the rows.

We fit both on ``load_diabetes`` (442 patients, a noisy target) and compare the test
log-likelihood and the coverage of the 90% intervals over two random splits, then
look at which penalties the selection kept.
"""

# %%
# Fit both ensembles on a few random splits.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skbdl
from skbdl import DeepEnsembleRegressor, HyperDeepEnsembleRegressor
from skbdl.metrics import gaussian_mixture_nll

X, y = load_diabetes(return_X_y=True)
settings = dict(hidden_layer_sizes=(32,), n_estimators=5, verbose=0)
scores = {"deep ensemble": [], "hyper-deep ensemble": []}
for seed in range(2):
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=seed)
    for name, model in [
        ("deep ensemble", DeepEnsembleRegressor(**settings, random_state=seed)),
        (
            "hyper-deep ensemble",
            HyperDeepEnsembleRegressor(**settings, population_size=12, random_state=seed),
        ),
    ]:
        pipe = make_pipeline(StandardScaler(), model).fit(X_train, y_train)
        # Through the pipeline: the ensemble's own methods, on scaled inputs.
        means, variances = skbdl.sample_predictions(pipe, X_test)
        low, high = skbdl.predict_interval(pipe, X_test, confidence=0.9).T
        scores[name].append(
            (
                -gaussian_mixture_nll(y_test, means, variances),
                np.mean((y_test >= low) & (y_test <= high)),
            )
        )

for name, rows in scores.items():
    ll, coverage = np.mean(rows, axis=0)
    print(f"{name:20s} test LL {ll:7.3f}   90% interval coverage {coverage:.2f}")

# %%
# Which L2 penalties did the last fit keep?  Every candidate's held-out
# log-likelihood, alone, against its penalty; the chosen members are circled.
hyper = pipe[-1]
fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
ax.scatter(
    hyper.population_weight_decay_,
    hyper.population_log_likelihood_,
    c=np.log10(hyper.population_lr_factor_),
    cmap="viridis",
    label="candidate (colour: log10 learning-rate factor)",
)
chosen = hyper.selected_members_
ax.scatter(
    hyper.population_weight_decay_[chosen],
    hyper.population_log_likelihood_[chosen],
    s=160,
    facecolors="none",
    edgecolors="crimson",
    label="chosen",
)
ax.set_xscale("log")
ax.set_xlabel("L2 penalty")
ax.set_ylabel("held-out log-likelihood")
ax.legend(fontsize=8)
plt.show()
