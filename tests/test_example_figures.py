"""Gallery figures stay readable at the documentation's width (about 700 px)."""

import ast
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("plot_*.py"))

#: Widest figure, in inches: 900 px at sphinx-gallery's 100 dpi, scaled by at most
#: 0.78 onto a ~700 px page, keeps 10 pt text above 7.5 pt.
MAX_WIDTH = 9.0


def _figure_widths(path):
    """``(line, width)`` of every ``figsize=(width, height)`` with a literal width."""
    widths = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.keyword) and node.arg == "figsize":
            if isinstance(node.value, ast.Tuple) and isinstance(node.value.elts[0], ast.Constant):
                widths.append((node.value.lineno, node.value.elts[0].value))
            else:
                widths.append((node.value.lineno, None))
    return widths


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_figures_fit_the_page(path):
    for line, width in _figure_widths(path):
        assert width is not None, f"{path.name}:{line}: give figsize a literal width"
        assert width <= MAX_WIDTH, f"{path.name}:{line}: figsize width {width} > {MAX_WIDTH} in"


def test_the_check_sees_figures(tmp_path):
    script = tmp_path / "plot_x.py"
    script.write_text("fig = plt.figure(figsize=(12, 3))\nplt.subplots(1, 2, figsize=(w, 3))\n")
    assert _figure_widths(script) == [(1, 12), (2, None)]
    assert EXAMPLES and any(_figure_widths(path) for path in EXAMPLES)
