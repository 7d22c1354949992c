"""The published UCI results, read from ``published_uci.json`` (package data)."""

import json
from importlib.resources import files


def _load():
    """The JSON file's content, checked: every row has every column."""
    data = json.loads(files(__package__).joinpath("published_uci.json").read_text("utf-8"))
    for metric in ("rmse", "ll"):
        for name, cells in data[metric].items():
            if list(cells) != data["columns"]:
                raise ValueError(
                    f"published_uci.json: {metric} / {name} has columns {list(cells)}, "
                    f"not {data['columns']}."
                )
    return data


_DATA = _load()

#: The published test RMSE and LL (mean ± standard error over the standard splits, in
#: original units), ``{'rmse' or 'll': {row name: {column: cell text}}}``, the cells
#: as printed (``'−2.46±0.06'``, ``'8.879'``, ``'—'``; see :func:`published_value`).
#: Sources: VI: Graves 2011 as reproduced by Gal & Ghahramani 2016, Table 1; PBP:
#: Hernández-Lobato & Adams 2015; MCD: Gal & Ghahramani 2016, Table 1 (arXiv v6);
#: DE: Lakshminarayanan et al. 2017, Table 1 (NLL sign-flipped; its ± look like
#: standard deviations); MCD-grid: the 2018 re-run in github.com/yaringal/
#: DropoutUncertaintyExps (per-split grid over dropout and tau, 4000 epochs).
PUBLISHED_RESULTS = {metric: _DATA[metric] for metric in ("rmse", "ll")}

#: Columns of :data:`PUBLISHED_RESULTS`, in order.
PUBLISHED_COLUMNS = tuple(_DATA["columns"])

#: Data-folder names (lower case) -> row names of :data:`PUBLISHED_RESULTS`.  Folder
#: names of the MC dropout repository and common short names.
_ALIASES = {
    "bostonhousing": "Boston",
    "boston-housing": "Boston",
    "boston": "Boston",
    "concrete": "Concrete",
    "energy": "Energy",
    "kin8nm": "Kin8nm",
    "naval-propulsion-plant": "Naval",
    "naval": "Naval",
    "power-plant": "Power",
    "power": "Power",
    "protein-tertiary-structure": "Protein",
    "protein": "Protein",
    "wine-quality-red": "Wine",
    "wine": "Wine",
    "yacht": "Yacht",
    "yearpredictionmsd": "Year",
    "year": "Year",
}


def published_name(dataset):
    """The row of the published tables for a data-folder name, or None."""
    return _ALIASES.get(dataset.lower())


def published_value(text):
    """``'−2.46±0.06'`` -> ``(-2.46, 0.06)``; a bare number has SE None; '—' -> None."""
    text = text.replace("−", "-").strip()
    if not text or text in ("—", "-"):
        return None
    mean, _, se = text.partition("±")
    return float(mean), (float(se) if se else None)
