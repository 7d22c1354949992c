"""Slow, obviously-correct references for the posterior tests (naive autograd loops)."""

import numpy as np
import torch
from torch import nn


def naive_jacobian(module, X):
    """``(n_rows, n_outputs, n_params)``: one ``autograd.grad`` per row and output,
    parameters flattened in ``named_parameters`` order."""
    params = [p for p in module.parameters() if p.requires_grad]
    rows = []
    for x in X:
        out = module(x[None])[0]
        rows.append(
            torch.stack(
                [
                    torch.cat(
                        [g.reshape(-1) for g in torch.autograd.grad(o, params, retain_graph=True)]
                    )
                    for o in out
                ]
            )
        )
    return torch.stack(rows).detach().double().numpy()


def loss_hessians(kind, outputs, noise_var=None):
    """``Lambda_n`` ``(n_rows, C, C)``: ``diag(p) - p p^T`` or ``diag(1 / noise_var)``."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if kind == "classification":
        p = np.exp(outputs - outputs.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return np.stack([np.diag(q) - np.outer(q, q) for q in p])
    return np.stack([np.diag(1.0 / v) for v in np.broadcast_to(noise_var, outputs.shape)])


def naive_ggn(module, X, kind, noise_var=None):
    """``sum_n J_n^T Lambda_n J_n`` by an explicit loop over rows."""
    J = naive_jacobian(module, X)
    with torch.no_grad():
        out = module(X).double().numpy()
    Lam = loss_hessians(kind, out, noise_var)
    return sum(J[n].T @ Lam[n] @ J[n] for n in range(len(X)))


def naive_kfac(mlp, X, kind, noise_var=None):
    """Per ``nn.Linear`` layer of a ``Sequential``, ``(G, A)``: ``A = sum_n a a^T``
    (inputs with a 1 appended), ``G = sum_n g_n^T Lambda_n g_n`` with ``g_n``
    ``(C, out)`` the outputs' gradients with respect to the layer's pre-activations,
    found by ``retain_grad`` on each one, one backward pass per row and output."""
    layers = [m for m in mlp if isinstance(m, nn.Linear)]
    G = [np.zeros((m.out_features, m.out_features)) for m in layers]
    A = [np.zeros((m.in_features + 1, m.in_features + 1)) for m in layers]
    for n, x in enumerate(X):
        h, inputs, pre = x[None], [], []
        for m in mlp:
            if isinstance(m, nn.Linear):
                inputs.append(h.detach().double().numpy()[0])
                h = m(h)
                h.retain_grad()
                pre.append(h)
            else:
                h = m(h)
        out = h[0]
        row_noise = (
            None if noise_var is None else np.atleast_2d(noise_var)[min(n, len(noise_var) - 1)]
        )
        Lam = loss_hessians(kind, out.detach()[None], row_noise)[0]
        grads = [[] for _ in layers]
        for o in out:
            for s in pre:
                s.grad = None
            o.backward(retain_graph=True)
            for i, s in enumerate(pre):
                grads[i].append(s.grad[0].double().numpy().copy())
        for i in range(len(layers)):
            g = np.array(grads[i])  # (C, out)
            G[i] += g.T @ Lam @ g
            a = np.append(inputs[i], 1.0)
            A[i] += np.outer(a, a)
    return list(zip(G, A))


def augmented_order(n_out, n_in):
    """Index map from ``[vec_row(W), b]`` (a layer's parameter order) to the
    row-major ``[W | b]``: ``params[perm]`` is the row-major flattening."""
    perm = np.empty(n_out * (n_in + 1), dtype=int)
    for i in range(n_out):
        for j in range(n_in + 1):
            perm[i * (n_in + 1) + j] = i * n_in + j if j < n_in else n_out * n_in + i
    return perm


def kfac_dense(factors, n_rows):
    """Block-diagonal ``G (x) A / n_rows`` in the layers' parameter order."""
    blocks = []
    for G, A in factors:
        n_out, n_in = len(G), len(A) - 1
        perm = augmented_order(n_out, n_in)
        block = np.empty((len(perm), len(perm)))
        block[np.ix_(perm, perm)] = np.kron(G, A) / n_rows
        blocks.append(block)
    size = sum(len(b) for b in blocks)
    out, start = np.zeros((size, size)), 0
    for b in blocks:
        out[start : start + len(b), start : start + len(b)] = b
        start += len(b)
    return out
