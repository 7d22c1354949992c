"""
=====================================================================
Adversarial inputs: does uncertainty flag a fast-gradient attack?
=====================================================================

A small, deliberate change to an input can make a network change its answer: the
*fast gradient sign method* (FGSM, Goodfellow et al. 2015) moves every pixel by
``epsilon`` in the direction that increases the loss most,
``x_adv = x + epsilon * sign(grad_x loss(x, y))``.  Can the model's uncertainty
tell such images from clean ones?  Smith & Gal (2018) found that the mutual
information of MC dropout flags many of them, because an attack crafted against
one network is less convincing to the other networks of the posterior.

Every model is attacked through its own gradient (white-box): the deterministic
network and MC dropout through the network with dropout off, the deep ensemble
through its averaged probabilities.  We then score clean and attacked test images
by predictive entropy and mutual information and measure the AUROC of telling them
apart.
"""

# %%
# Models on digits
# ----------------
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skbdl import DeepEnsembleClassifier, MCDropoutClassifier
from skbdl.metrics import ood_auroc

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)  # pixel intensities in [0, 1]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
settings = dict(hidden_layer_sizes=(100,), max_epochs=40, lr=5e-3, batch_size=128, random_state=0)
models = {
    "deterministic network": MCDropoutClassifier(dropout=0.0, n_samples=1, **settings),
    "MC dropout": MCDropoutClassifier(dropout=0.25, n_samples=100, **settings),
    "deep ensemble (5)": DeepEnsembleClassifier(n_estimators=5, **settings),
}
start = time.perf_counter()
for model in models.values():
    model.fit(X_train, y_train)
print(f"fitted in {time.perf_counter() - start:.1f} s")


# %%
# The attack
# ----------
# ``log_proba`` gives each model's log-probabilities as a differentiable torch
# function of the input: the trained network (``module_``) in evaluation mode, so
# dropout is off; for the ensemble, the log of its members' averaged softmax.
def log_proba(model, inputs):
    model.module_.eval()
    logits = model.module_(inputs)
    if logits.ndim == 3:  # (n_members, n_rows, n_classes): average the probabilities
        return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=0) - np.log(len(logits))
    return torch.log_softmax(logits, dim=-1)


def fgsm(model, images, labels, epsilon):
    inputs = torch.tensor(images, requires_grad=True)
    loss = torch.nn.functional.nll_loss(log_proba(model, inputs), torch.tensor(labels))
    loss.backward()
    return (images + epsilon * np.sign(inputs.grad.numpy())).astype(np.float32)


epsilons = [0.0, 0.05, 0.1, 0.15, 0.2]
results = {}
for name, model in models.items():
    clean = model.predict_uncertainty(X_test)
    for epsilon in epsilons:
        attacked = fgsm(model, X_test, y_test, epsilon)
        u = model.predict_uncertainty(attacked)
        results[name, epsilon] = {
            "accuracy": np.mean(model.classes_[u.proba.argmax(axis=1)] == y_test),
            "entropy": ood_auroc(clean.total, u.total),
            "mutual information": ood_auroc(clean.epistemic, u.epistemic),
        }

# %%
# Accuracy under attack, and how well each score flags the attacked images
# ------------------------------------------------------------------------
# (An AUROC of 0.5 means that the score cannot tell attacked images from clean
# ones.  The deterministic network has no mutual information.)
print(f"{'epsilon':<48}" + "".join(f"{e:>7.2f}" for e in epsilons))
for name in models:
    rows = [("accuracy", "accuracy"), ("AUROC by entropy", "entropy")]
    if name != "deterministic network":
        rows.append(("AUROC by mutual information", "mutual information"))
    for label, key in rows:
        cells = "".join(f"{results[name, e][key]:7.3f}" for e in epsilons)
        print(f"{name + ', ' + label:<48}{cells}")

fig, (ax_accuracy, ax_auroc) = plt.subplots(1, 2, figsize=(11, 4))
for name, color in zip(models, ("tab:gray", "tab:blue", "tab:orange")):
    ax_accuracy.plot(
        epsilons,
        [results[name, e]["accuracy"] for e in epsilons],
        marker="o",
        color=color,
        label=name,
    )
    ax_auroc.plot(
        epsilons[1:],
        [results[name, e]["entropy"] for e in epsilons[1:]],
        marker="o",
        color=color,
        label=f"{name}: entropy",
    )
    if name != "deterministic network":
        ax_auroc.plot(
            epsilons[1:],
            [results[name, e]["mutual information"] for e in epsilons[1:]],
            marker="s",
            ls="--",
            color=color,
            label=f"{name}: mutual information",
        )
ax_accuracy.set(
    xlabel="epsilon (FGSM step, intensity 0-1)",
    ylabel="accuracy on attacked images",
    title="Accuracy under attack",
)
ax_auroc.axhline(0.5, color="0.6", lw=1, ls=":")
ax_auroc.set(
    xlabel="epsilon",
    ylabel="AUROC, attacked vs clean",
    title="Does the uncertainty flag the attack?",
)
ax_accuracy.legend(fontsize=8)
ax_auroc.legend(fontsize=7)
fig.tight_layout()
plt.show()

# %%
# What an attack looks like
# -------------------------
# A test image, and the same image attacked with ``epsilon = 0.1`` against MC
# dropout, with the model's prediction and its uncertainty (nats).
model = models["MC dropout"]
original, adversarial = X_test[:4], fgsm(model, X_test[:4], y_test[:4], 0.1)
u_original, u_adversarial = (
    model.predict_uncertainty(original),
    model.predict_uncertainty(adversarial),
)
fig, axes = plt.subplots(2, 4, figsize=(8, 4.4))
for column in range(4):
    for row, (images, u) in enumerate(((original, u_original), (adversarial, u_adversarial))):
        ax = axes[row, column]
        ax.imshow(images[column].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(
            f"says {u.proba[column].argmax()} (p={u.proba[column].max():.2f})\n"
            f"MI {u.epistemic[column]:.3f}",
            fontsize=8,
        )
        ax.axis("off")
axes[0, 0].text(-4, 3.5, "clean", rotation=90, fontsize=9)
axes[1, 0].text(-4, 3.5, "attacked", rotation=90, fontsize=9)
fig.tight_layout()
plt.show()

# %%
# Reading the results
# -------------------
# The attack is effective against every model: accuracy falls steeply with
# ``epsilon``, and being Bayesian does not make a network robust.  Whether the
# attack is *noticed* differs.  For small steps the three models flag attacked
# images about equally well (the attacked image often lands between classes, which
# any softmax shows).  For larger steps the attacked images become confidently wrong
# for the deterministic network, whose AUROC falls towards chance, while the
# Bayesian models keep flagging more of them: an attack crafted against the average
# prediction does not fool every dropout mask or every member alike, and the mutual
# information (their disagreement) picks that up.  Uncertainty is an alarm here, not
# a defence, and an attack aimed at the uncertainty itself could defeat it.
