"""
=====================================================================
Out-of-distribution detection: digits a classifier has never seen
=====================================================================

A classifier trained on the digits 0-7 of scikit-learn's ``load_digits`` is shown
8s and 9s.  It must call them *something*; a model that knows what it does not know
should at least be less sure about them than about the digits it was trained on.

We score every test image by an uncertainty and ask how well that score separates
the unseen digits (out-of-distribution, OOD) from held-out images of the seen ones
(in-distribution): the AUROC (0.5 is chance, 1 is perfect), the AUPR with the OOD
images as positives, and the false positive rate when 95% of the OOD images are
flagged (lower is better).  See :mod:`skbdl.metrics` for the conventions.

Scores:

* a deterministic network (scikit-learn's ``MLPClassifier``) has only its softmax:
  the entropy of its probabilities, or ``1 - max p`` (Hendrycks & Gimpel 2017);
* every skbdl classifier has the **predictive entropy** (total uncertainty) and the
  **mutual information** (epistemic part, the disagreement of the sampled networks).
"""

# %%
# Data: train on digits 0-7, test on held-out 0-7 and on all 8s and 9s
# --------------------------------------------------------------------
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from skbdl import (
    BayesianMLPClassifier,
    DeepEnsembleClassifier,
    LastLayerLaplaceClassifier,
    MCDropoutClassifier,
)
from skbdl.metrics import expected_calibration_error, ood_aupr, ood_auroc, ood_fpr_at_tpr
from skbdl.plotting import plot_uncertainty_histograms
from skbdl.uncertainty import entropy

X, y = load_digits(return_X_y=True)
seen = y < 8
X_train, X_test, y_train, y_test = train_test_split(
    X[seen], y[seen], test_size=0.3, random_state=0, stratify=y[seen]
)
scaler = StandardScaler().fit(X_train)
X_train, X_test, X_ood = (scaler.transform(a) for a in (X_train, X_test, X[~seen]))
print(f"{len(X_train)} training images (0-7), {len(X_test)} test (0-7), {len(X_ood)} OOD (8, 9)")

# %%
# Models: the same network size and training budget for every method
# ------------------------------------------------------------------
# The last-layer Laplace model puts a posterior on the last layer of a plain network
# trained beforehand (skbdl's MLP without dropout), without retraining it.
settings = dict(hidden_layer_sizes=(100,), max_epochs=30, lr=2e-3, batch_size=128, random_state=0)
plain = MCDropoutClassifier(dropout=0.0, **settings)
models = {
    "MC dropout": MCDropoutClassifier(dropout=0.25, n_samples=100, **settings),
    "deep ensemble (5)": DeepEnsembleClassifier(n_estimators=5, **settings),
    "Bayes by Backprop": BayesianMLPClassifier(n_samples=100, **{**settings, "lr": 3e-3}),
    "last-layer Laplace": LastLayerLaplaceClassifier(FrozenEstimator(plain), random_state=0),
}
baseline = MLPClassifier(hidden_layer_sizes=(100,), max_iter=200, random_state=0)

scores, accuracy, ece = {}, {}, {}
start = time.perf_counter()
baseline.fit(X_train, y_train)
for name, X_eval in (("in", X_test), ("out", X_ood)):
    proba = baseline.predict_proba(X_eval)
    scores.setdefault("MLPClassifier (softmax)", {})[name] = {
        "entropy": entropy(proba),
        "1 - max p": 1 - proba.max(axis=1),
    }
proba = baseline.predict_proba(X_test)
accuracy["MLPClassifier (softmax)"] = np.mean(proba.argmax(axis=1) == y_test)
ece["MLPClassifier (softmax)"] = expected_calibration_error(y_test, proba)
plain.fit(X_train, y_train)
for name, model in models.items():
    model.fit(X_train, y_train)
    u_in, u_out = model.predict_uncertainty(X_test), model.predict_uncertainty(X_ood)
    scores[name] = {
        "in": {"entropy": u_in.total, "mutual information": u_in.epistemic},
        "out": {"entropy": u_out.total, "mutual information": u_out.epistemic},
    }
    accuracy[name] = np.mean(model.classes_[u_in.proba.argmax(axis=1)] == y_test)
    ece[name] = expected_calibration_error(y_test, u_in.proba, classes=model.classes_)
print(f"all models fitted and evaluated in {time.perf_counter() - start:.1f} s")

# %%
# How well does each score flag the unseen digits?
# ------------------------------------------------
header = f"{'model':<26}{'score':<20}{'AUROC':>7}{'AUPR':>7}{'FPR95':>7}{'acc':>7}{'ECE':>7}"
print(header)
print("-" * len(header))
auroc = {}
for model_name, result in scores.items():
    for score_name in result["in"]:
        score_in, score_out = result["in"][score_name], result["out"][score_name]
        auroc[model_name, score_name] = ood_auroc(score_in, score_out)
        print(
            f"{model_name:<26}{score_name:<20}{auroc[model_name, score_name]:7.3f}"
            f"{ood_aupr(score_in, score_out):7.3f}{ood_fpr_at_tpr(score_in, score_out):7.3f}"
            f"{accuracy[model_name]:7.3f}{ece[model_name]:7.3f}"
        )

# %%
# The distributions behind the numbers: each method's best score
# --------------------------------------------------------------
# Three panels a row, so that each stays readable at the width of the page.
n_rows = -(-len(scores) // 3)
fig, axes = plt.subplots(n_rows, 3, figsize=(9, 3.3 * n_rows), sharey=True, squeeze=False)
for ax in axes.flat[len(scores) :]:
    ax.set_visible(False)
for ax, (model_name, result) in zip(axes.flat, scores.items()):
    best = max(result["in"], key=lambda s: auroc[model_name, s])
    plot_uncertainty_histograms(
        result["in"][best],
        result["out"][best],
        bins=25,
        log_scale=True,
        labels=("digits 0-7", "digits 8, 9"),
        xlabel=f"{best} (nats)" if best != "1 - max p" else best,
        ax=ax,
    )
    ax.set_title(f"{model_name}\nAUROC {auroc[model_name, best]:.3f}", fontsize=10)
    ax.get_legend().remove()
    if ax not in axes[:, 0]:
        ax.set_ylabel("")
# One legend for all panels, in the first free slot (or below the panels).
handles, labels = axes.flat[0].get_legend_handles_labels()
if len(scores) < axes.size:
    axes.flat[len(scores)].set_visible(True)
    axes.flat[len(scores)].axis("off")
    axes.flat[len(scores)].legend(handles, labels, loc="center", fontsize=10)
else:
    fig.legend(handles, labels, loc="lower center", ncols=2, fontsize=10)
fig.tight_layout()
plt.show()

# %%
# Reading the results
# -------------------
# Each method's best score against the softmax baseline:
reference = max(auroc["MLPClassifier (softmax)", s] for s in ("entropy", "1 - max p"))
for model_name in models:
    best = max(("entropy", "mutual information"), key=lambda s: auroc[model_name, s])
    change = auroc[model_name, best] - reference
    print(
        f"{model_name:<20} best AUROC {auroc[model_name, best]:.3f} ({best}), "
        f"{change:+.3f} against the deterministic softmax ({reference:.3f})"
    )

# %%
# Every model is more uncertain on the digits it never saw, and on this small, clean
# problem the softmax of a deterministic network is already a strong detector:
# unseen digits tend to fall between the classes it knows, which raises the entropy
# of its probabilities.  The Bayesian methods start from the same kind of network
# and add the disagreement of the sampled networks; their gains over the softmax, if any, are
# small here (compare the AUROC and FPR at 95% TPR columns).  Their
# *predictive entropy* (total uncertainty) includes the disagreement; the *mutual
# information* alone (the epistemic part) ranks images by disagreement only, which
# for most methods separates the new digits less sharply.  No score is a perfect
# detector: an 8 that looks like a 3 is, to any of these models, a confident 3.
# Accuracy on the seen digits is about the same for all models; the expected
# calibration error (ECE) says whether their probabilities can be read at face
# value.
