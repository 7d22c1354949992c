"""
=============================================================
A Bayesian CNN flags digits it has never seen (epistemic OOD)
=============================================================

A network trained on the digits 0-4 is shown digits 5-9, rotated digits and noise,
none of which it was trained on.  A point-estimate network must still answer with
one of its five classes, often confidently.  A Bayesian network can also say that it
does not know: its posterior holds many networks that agree on the training digits
and disagree elsewhere.  Their disagreement, the *mutual information* between the
prediction and the weights, is the epistemic part of the predictive entropy; the
rest, the expected entropy of each network's own prediction, is aleatoric.

The network here is a small convolutional network whose every weight has a Gaussian
posterior, trained by Bayes by Backprop: :class:`skbdl.nn.BayesianConv2d` layers
and a :class:`skbdl.nn.BayesianLinear` output layer, passed as ``module`` to
:class:`skbdl.BayesianMLPClassifier`, which takes the images as they are,
``(n_images, 1, 8, 8)``.  (This is the Bayes by Backprop experiment of chapter 5 of
*Enhancing Deep Learning with Bayesian Inference*, on the 8x8 digits bundled with
scikit-learn.)
"""

# %%
# Data: the digits 0-4 as images, and three kinds of input never seen in training
# --------------------------------------------------------------------------------
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from skbdl import BayesianMLPClassifier
from skbdl.metrics import ood_auroc
from skbdl.nn import BayesianConv2d, BayesianLinear

X, y = load_digits(return_X_y=True)
images = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)  # intensities in [0, 1]
known = y < 5
X_train, X_test, y_train, y_test = train_test_split(
    images[known], y[known], test_size=0.3, random_state=0, stratify=y[known]
)
rng = np.random.RandomState(0)
ood_sets = {
    "unseen digits 5-9": images[~known],
    "rotated digits 0-4": np.rot90(X_test, k=1, axes=(2, 3)).copy(),
    "uniform noise": rng.uniform(0, 1, size=(300, 1, 8, 8)).astype(np.float32),
}
print(f"{len(X_train)} training images of 0-4; {len(X_test)} test images of 0-4")


# %%
# A Bayesian CNN
# --------------
# Two Bayesian convolutions (local reparameterisation in training, whole kernels
# drawn at prediction) and a Bayesian output layer; the KL divergence of all three
# enters the evidence lower bound.  ``calibrate=False`` keeps the posterior's own
# probabilities (on these almost separable digits, temperature scaling would sharpen
# them towards certainty).
class BayesianCNN(nn.Module):
    def __init__(self, n_outputs):
        super().__init__()
        self.features = nn.Sequential(
            BayesianConv2d(1, 8, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            BayesianConv2d(8, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.output = BayesianLinear(16 * 2 * 2, n_outputs)

    def forward(self, x):
        return self.output(self.features(x))


start = time.perf_counter()
model = BayesianMLPClassifier(
    BayesianCNN, max_epochs=30, lr=1e-2, n_samples=50, calibrate=False, random_state=0, verbose=0
).fit(X_train, y_train)
print(
    f"fitted in {time.perf_counter() - start:.1f} s; test accuracy on 0-4: "
    f"{model.score(X_test, y_test):.3f}"
)

# %%
# Which uncertainty tells the new inputs from the test digits?
# -------------------------------------------------------------
# The AUROC of each score at separating the in-distribution test images (negatives)
# from each out-of-distribution set (positives): 1 is perfect, 0.5 is chance.
clean = model.predict_uncertainty(X_test)
scores = {"total (entropy)": "total", "aleatoric": "aleatoric", "epistemic (MI)": "epistemic"}
uncertainties = {name: model.predict_uncertainty(inputs) for name, inputs in ood_sets.items()}
auroc = {
    (name, label): ood_auroc(getattr(clean, key), getattr(u, key))
    for name, u in uncertainties.items()
    for label, key in scores.items()
}
print(f"{'AUROC':<22}" + "".join(f"{label:>18}" for label in scores))
for name in ood_sets:
    print(f"{name:<22}" + "".join(f"{auroc[name, label]:18.3f}" for label in scores))
print(f"{'median epistemic':<22}" + f"{np.median(clean.epistemic):18.4f} (test digits 0-4)")
for name, u in uncertainties.items():
    print(f"{'':<22}{np.median(u.epistemic):18.4f} ({name})")

# %%
# Figure: the epistemic uncertainty of each set, and the AUROC of each score
fig, (ax_hist, ax_bar) = plt.subplots(1, 2, figsize=(9, 3.8))
bins = np.linspace(0, max(u.epistemic.max() for u in uncertainties.values()), 30)
ax_hist.hist(clean.epistemic, bins=bins, alpha=0.6, density=True, label="test digits 0-4")
for name, u in uncertainties.items():
    ax_hist.hist(u.epistemic, bins=bins, histtype="step", lw=2, density=True, label=name)
ax_hist.set(xlabel="mutual information (nats)", ylabel="density", title="Epistemic uncertainty")
ax_hist.legend(fontsize=8)
width = 0.27
for i, label in enumerate(scores):
    positions = np.arange(len(ood_sets)) + (i - 1) * width
    ax_bar.bar(positions, [auroc[name, label] for name in ood_sets], width, label=label)
ax_bar.axhline(0.5, color="0.5", lw=1, ls=":")
ax_bar.set_xticks(np.arange(len(ood_sets)), [n.replace(" ", "\n", 1) for n in ood_sets])
ax_bar.set(ylim=(0.4, 1.12), ylabel="AUROC vs test digits", title="Which score flags them?")
ax_bar.legend(fontsize=7, loc="upper center", ncol=3)
fig.tight_layout()
plt.show()

# %%
# Reading the results
# -------------------
# The unseen digits and the noise are flagged well by every score (the table holds
# this run's AUROCs): the networks of the posterior disagree on them (median mutual
# information several times that of the test digits), and their average is unsure.
# The differences between the three scores are a few hundredths here, smaller than
# the differences between kinds of input, so on this small problem epistemic
# uncertainty is not clearly the better detector; it is the part of the entropy that
# more data would remove, which is what makes it the right score for deciding what
# to label next (see the active learning example).  The rotated digits are barely
# flagged: a rotated 0 or 1 still looks like a digit from 0-4 to networks that have
# only seen those, and uncertainty can only flag what the model finds unfamiliar.
