"""Sphinx configuration of the skbdl documentation.

Build (from the repository root), warnings as errors:

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The pages are Markdown (MyST); the API reference is generated from the numpydoc
docstrings by autosummary; the gallery is built by sphinx-gallery from
``examples/plot_*.py``, running every example (an example that fails fails the build).
"""

import os
import re
import sys
import warnings


sys.path.insert(0, os.path.abspath(".."))
import skbdl  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

project = "skbdl"
author = "the skbdl developers"
copyright = "2026, the skbdl developers"  # noqa: A001
version = release = skbdl.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip"]
templates_path = ["_templates"]

# -- MyST (Markdown pages) ---------------------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# -- API reference ------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"
autodoc_member_order = "groupwise"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = False

# numpydoc prints parameter types as reST, where a word ending in "_" is a link
# ("of shape (n_outputs_,)"): escape such words outside literals.
_LITERAL = re.compile(r"(`+[^`]*`+)")
_TRAILING_UNDERSCORE = re.compile(r"\b([A-Za-z]\w*[A-Za-z0-9])_(?=[,)\]\s.:;]|$)")


_DEFINITION = re.compile(r"^(\s*[\w*, ]+ : )(.*)$")


def _escape_trailing_underscores(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        head, body = "", line
        definition = _DEFINITION.match(line)
        if definition:  # "name : type": leave the names as numpydoc expects them
            head, body = definition.groups()
        elif re.fullmatch(r"\s*\w+\s*", line):
            continue
        parts = _LITERAL.split(body)
        parts[::2] = [_TRAILING_UNDERSCORE.sub(r"\1\\_", part) for part in parts[::2]]
        lines[i] = head + "".join(parts)


def setup(app):
    # Before numpydoc (priority 500) reformats the docstring.
    app.connect("autodoc-process-docstring", _escape_trailing_underscores, priority=400)


# -- Gallery ---------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "doc_module": ("skbdl",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skbdl": None},
    "reset_modules": ("matplotlib",),
    "remove_config_comments": True,
    "min_reported_time": 1,
    # Figures are at most ~9 in (900 px at 100 dpi) wide with two or three panels a
    # row, so they stay readable at the page width (~700 px); a second copy at twice
    # the resolution keeps their text sharp on high-density screens.  Thumbnails are
    # the first figure of each example, scaled into 400 x 280 px.
    "image_srcset": ["2x"],
    "thumbnail_size": (400, 280),
}

# Examples run in this process: keep torch and the BLAS under numpy to one thread
# (fastest for small networks; on a busy two-core machine two BLAS threads made
# scikit-learn's MLPClassifier 15 times slower) and matplotlib headless.
os.environ.setdefault("MPLBACKEND", "Agg")
threadpool_limits(1)
torch.set_num_threads(1)
warnings.filterwarnings("ignore", category=UserWarning, message="Matplotlib is currently using agg")

# -- HTML -----------------------------------------------------------------------
html_theme = "furo"
html_title = f"skbdl {release}"
html_static_path = []
