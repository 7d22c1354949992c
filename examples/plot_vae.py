"""
==========================================================
Variational autoencoder: latent space, samples and novelty
==========================================================

The book introduces variational inference with the variational autoencoder (VAE,
Kingma & Welling 2014; section 5.3) before turning the same tools on the weights of a
network.  :class:`skbdl.VariationalAutoencoder` is a VAE behind scikit-learn's
transformer API: ``fit(X)``, ``transform`` (the latent code's posterior mean),
``inverse_transform`` (the decoder's mean), ``sample`` (new rows from the prior) and
``score_samples`` (the evidence lower bound of each row, a novelty score like
``IsolationForest.score_samples``).

Here it is fitted to scikit-learn's 8 x 8 digits: a two-dimensional latent space,
digits generated from it, reconstructions compared with PCA of the same size, and
novelty detection of digits it never saw.
"""

# %%
# A two-dimensional latent space
# ------------------------------
# The VAE standardises the 64 pixels internally and models each as Gaussian given
# the latent code, with a variance per pixel learned with the networks.
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.model_selection import train_test_split

from skbdl import VariationalAutoencoder
from skbdl.metrics import ood_auroc
from skbdl.plotting import plot_uncertainty_histograms


def tile(images, n_cols):
    """Flat 8 x 8 images side by side, ``n_cols`` a row, one blank pixel between them."""
    images = np.pad(np.asarray(images).reshape(-1, 8, 8), ((0, 0), (0, 1), (0, 1)))
    n_rows = len(images) // n_cols
    grid = images.reshape(n_rows, n_cols, 9, 9).transpose(0, 2, 1, 3)
    return grid.reshape(n_rows * 9, n_cols * 9)[:-1, :-1]


X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
settings = dict(hidden_layer_sizes=(128,), max_epochs=60, batch_size=64, lr=3e-3, random_state=0)

start = time.perf_counter()
vae = VariationalAutoencoder(n_components=2, **settings).fit(X_train)
print(f"fitted in {time.perf_counter() - start:.1f} s; final -ELBO {vae.loss_curve_[-1]:.1f} nats")
Z = vae.transform(X_test)

fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
points = axes[0].scatter(Z[:, 0], Z[:, 1], c=y_test, cmap="tab10", s=8)
fig.colorbar(points, ax=axes[0], ticks=range(10), label="digit")
axes[0].set(xlabel="latent 1", ylabel="latent 2", title="Test digits: posterior means")
axes[0].set(xlim=(-3.5, 3.5), ylim=(-3.5, 3.5))  # a few outliers lie outside
# The decoder's mean on a grid of codes spanning the prior's central 90%.
grid = np.linspace(-1.64, 1.64, 10)
codes = np.array([[a, b] for b in grid[::-1] for a in grid])
axes[1].imshow(tile(vae.inverse_transform(codes), 10), cmap="gray_r", vmin=0, vmax=16)
axes[1].set(xticks=[], yticks=[], title="Decoded grid of latent codes", xlabel="latent 1")
axes[1].set_ylabel("latent 2")
fig.tight_layout()
plt.show()

# %%
# Samples and reconstructions
# ---------------------------
# ``sample`` draws codes from the prior ``N(0, I)`` and decodes them (the
# decoder's mean, without the per-pixel noise).  Reconstructions pass held-out
# digits through the encoder's mean and the decoder's mean; PCA of the same latent
# size is the linear baseline.
samples = vae.sample(16, random_state=0)
pcas = {}
for n_components in (2, 10):
    model = vae if n_components == 2 else VariationalAutoencoder(n_components, **settings)
    if model is not vae:
        model.fit(X_train)
    pcas[n_components] = PCA(n_components).fit(X_train)
    vae_error, pca_error = (
        np.mean((m.inverse_transform(m.transform(X_test)) - X_test) ** 2)
        for m in (model, pcas[n_components])
    )
    print(
        f"latent size {n_components:>2}: held-out mean squared error "
        f"VAE {vae_error:.2f}, PCA {pca_error:.2f} (pixels 0-16)"
    )

fig, axes = plt.subplots(1, 2, figsize=(9, 4))
axes[0].imshow(tile(samples, 4), cmap="gray_r", vmin=0, vmax=16)
axes[0].set(xticks=[], yticks=[], title="16 samples from the prior (latent size 2)")
rows = [X_test[:8]] + [m.inverse_transform(m.transform(X_test[:8])) for m in (vae, pcas[2])]
axes[1].imshow(tile(np.concatenate(rows), 8), cmap="gray_r", vmin=0, vmax=16)
axes[1].set(xticks=[], yticks=[3.5, 12.5, 21.5], title="Held-out digits, latent size 2")
axes[1].set_yticklabels(["original", "VAE", "PCA"])
fig.tight_layout()
plt.show()

# %%
# Novelty: digits it never saw
# ----------------------------
# A VAE fitted to the digits 0-4 only scores each test row by its ELBO, a lower
# bound on its log-likelihood: higher is more normal.  The digits 5-9, and images
# of uniform noise, should score lower.  IsolationForest, fitted to the same rows,
# is the usual baseline.
seen = y_train < 5
novelty = VariationalAutoencoder(n_components=5, **settings).fit(X_train[seen])
forest = IsolationForest(random_state=0).fit(X_train[seen])
test_sets = {
    "digits 5-9": X_test[y_test >= 5],
    "uniform noise": np.random.RandomState(0).uniform(0, 16, size=(300, 64)),
}
normal = X_test[y_test < 5]
print(f"{'novel rows':<16}{'VAE ELBO AUROC':>16}{'IsolationForest AUROC':>24}")
for name, rows in test_sets.items():
    vae_auroc = ood_auroc(-novelty.score_samples(normal), -novelty.score_samples(rows))
    forest_auroc = ood_auroc(-forest.score_samples(normal), -forest.score_samples(rows))
    print(f"{name:<16}{vae_auroc:>16.3f}{forest_auroc:>24.3f}")

fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
for ax, model, label in (
    (axes[0], novelty, "VAE: -ELBO (nats)"),
    (axes[1], forest, "IsolationForest"),
):
    plot_uncertainty_histograms(
        -model.score_samples(normal),
        -model.score_samples(test_sets["digits 5-9"]),
        log_scale=model is novelty,  # a few novel digits have a -ELBO in the thousands
        labels=("digits 0-4 (seen)", "digits 5-9 (novel)"),
        xlabel=f"{label}: minus score_samples",
        ax=ax,
    )
fig.tight_layout()
plt.show()

# %%
# The reparameterisation trick, here and in Bayes by Backprop
# -----------------------------------------------------------
# Training maximises, per row, ``ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) ||
# N(0, I))`` with ``q(z | x) = N(mu(x), diag(sigma(x)^2))`` output by the encoder.
# The expectation has no closed form, and a plain Monte Carlo estimate has no
# gradient with respect to ``mu`` and ``sigma``: the draw of ``z`` hides them.  The
# reparameterisation trick writes the draw as ``z = mu + sigma * eps`` with ``eps ~
# N(0, I)``, a fixed source of noise, so that ``z`` -- and ``log p(x | z)`` -- is a
# differentiable function of ``mu`` and ``sigma``, and one draw per row gives an
# unbiased gradient; the KL between two diagonal Gaussians is in closed form,
# ``0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2)``.
#
# Bayes by Backprop (:class:`skbdl.BayesianMLPClassifier`, the book's chapter 5)
# does the same with the *weights* as the latent variables: every weight has a
# Gaussian ``N(mu, sigma^2)``, a draw is ``w = mu + sigma * eps``, the
# log-likelihood of the data is averaged over such draws and the KL to the prior
# is again in closed form (:class:`skbdl.nn.GaussianPrior`).  The differences: the
# VAE's ``q`` is *amortised* -- one encoder outputs ``mu`` and ``sigma`` for any
# row -- and there is one code per row, whereas BBB learns one ``mu`` and
# ``sigma`` per weight, shared by all rows; skbdl's BBB layers also sample their
# pre-activations rather than their weights (the local reparameterisation trick),
# which is the same trick applied one layer later.
#
# What the numbers say: the non-linear decoder reconstructs held-out digits better
# than PCA of the same size (printed above: mean squared errors, pixels 0-16), and
# the ELBO separates noise perfectly and unseen digits well, as a density model
# should, ahead of IsolationForest on the unseen digits.
