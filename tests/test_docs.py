"""The documentation: every public symbol is in the API reference; examples are gallery-ready."""

import ast
import inspect
import re
from pathlib import Path

import pytest

import skbdl
import skbdl.active
import skbdl.adversarial
import skbdl.benchmark
import skbdl.datasets
import skbdl.metrics
import skbdl.nn
import skbdl.plotting
import skbdl.shift
import skbdl.uncertainty

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api.md"
MODULES = [
    skbdl,
    skbdl.nn,
    skbdl.uncertainty,
    skbdl.metrics,
    skbdl.plotting,
    skbdl.shift,
    skbdl.active,
    skbdl.adversarial,
    skbdl.datasets,
    skbdl.benchmark,
]


def _public_functions(module):
    """Public functions and classes defined in a module that has no ``__all__``."""
    return [
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == module.__name__
    ]


def _public_names(module):
    return list(module.__all__) if hasattr(module, "__all__") else _public_functions(module)


def _sections(text):
    """``{module name: its section of the API page}``, split at "## `module`" headings."""
    parts = re.split(r"^## `([\w.]+)`.*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _documented(section):
    """Names listed in autosummary blocks, or mentioned in backticks, in a section."""
    names = set(re.findall(r"^ {3}(\w+)\s*$", section, flags=re.M))
    names |= set(re.findall(r"`(\w+)`", section))
    return names


PUBLIC = [(module.__name__, name) for module in MODULES for name in _public_names(module)]


def test_every_module_has_a_section():
    sections = _sections(API.read_text())
    assert set(sections) >= {module.__name__ for module in MODULES}


@pytest.mark.parametrize(("module", "name"), PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_public_symbol_is_in_the_api_reference(module, name):
    section = _sections(API.read_text())[module]
    assert name in _documented(section), f"{module}.{name} is missing from docs/api.md"


def test_generated_reference_covers_every_autosummary_entry():
    # Names in autosummary blocks must exist, or Sphinx fails (caught here first).
    sections = _sections(API.read_text())
    for module_name, section in sections.items():
        module = {m.__name__: m for m in MODULES}.get(module_name)
        if module is None:
            continue
        for name in re.findall(r"^ {3}(\w+)\s*$", section, flags=re.M):
            assert hasattr(module, name), f"docs/api.md lists {module_name}.{name}"


EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_are_gallery_scripts(path):
    # sphinx-gallery needs a module docstring whose first non-blank lines are a
    # title with an underline; the cells are separated by "# %%".
    tree = ast.parse(path.read_text())
    docstring = ast.get_docstring(tree)
    assert docstring, f"{path.name} has no docstring"
    lines = [line for line in docstring.splitlines() if line.strip()]
    title_line = 1 if set(lines[0]) == {"="} else 0
    assert set(lines[title_line + 1]) <= {"=", "-"}, f"{path.name}: no title underline"
    assert "# %%" in path.read_text()


def test_docs_pages_are_in_the_toctree():
    index = (ROOT / "docs" / "index.md").read_text()
    toctree = re.search(r"```\{toctree\}(.*?)```", index, flags=re.S).group(1)
    pages = {p.stem for p in (ROOT / "docs").glob("*.md")} - {"index"}
    listed = set(re.findall(r"^(\w+)\s*$", toctree, flags=re.M))
    assert pages <= listed, f"pages missing from the toctree: {pages - listed}"
