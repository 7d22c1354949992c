"""Lines of logic of each method's own file: the size target of the one-core design.

Usage: ``python benchmarks/method_size.py [FILE ...]`` (default: every method's file).
Counts the non-blank, non-comment lines of a file that are not documentation or
parameter lists: module, class and function docstrings, string constants assembled
into docstrings (``*_DOC``, ``__doc__ = ...``), ``__init__`` signatures with their
``self.name = name`` assignments, and ``_parameter_constraints``.
The target (issue 14): a new method's own file holds at most 200 such lines, the rest
living in the shared core.
"""

import ast
import sys
from pathlib import Path

TARGET = 200
ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [
    "skbdl/swag.py",
    "skbdl/laplace.py",
    "skbdl/last_layer.py",
    "skbdl/last_layer_laplace.py",
    "skbdl/last_layer_dropout.py",
    "skbdl/mc_dropout.py",
    "skbdl/bbb.py",
    "skbdl/pbp.py",
    "skbdl/ensemble.py",
    "skbdl/hyper_ensemble.py",
]


def _is_text(value):
    """Whether an expression only assembles documentation text."""
    if isinstance(value, ast.Constant):
        return isinstance(value.value, str)
    if isinstance(value, ast.JoinedStr):
        return True
    if isinstance(value, ast.Name):  # another documentation constant
        return value.id.isupper() or value.id.endswith("_DOC")
    if isinstance(value, ast.BinOp):
        return _is_text(value.left) and _is_text(value.right)
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
        return value.func.attr in ("format", "replace") and _is_text(value.func.value)
    return False


def _excluded_lines(tree):
    lines = set()

    def span(node):
        lines.update(range(node.lineno, node.end_lineno + 1))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and _is_text(first.value):
                span(first)
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            lines.update(range(node.lineno, node.body[0].lineno))
            for stmt in node.body:
                stored = (
                    isinstance(stmt, ast.Assign)
                    and isinstance(stmt.value, ast.Name)
                    and all(
                        isinstance(t, ast.Attribute) and t.attr == stmt.value.id
                        for t in stmt.targets
                    )
                )
                if stored:
                    span(stmt)
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [getattr(t, "id", "") for t in targets]
            if "_parameter_constraints" in names:
                span(node)
            elif node.value is not None and _is_text(node.value):
                span(node)  # a documentation constant or __doc__
    return lines


def logic_lines(path):
    source = Path(path).read_text()
    excluded = _excluded_lines(ast.parse(source))
    return sum(
        1
        for number, line in enumerate(source.splitlines(), 1)
        if line.strip() and not line.strip().startswith("#") and number not in excluded
    ), len(source.splitlines())


def main(paths):
    print(f"{'file':28s} {'logic':>6s} {'total':>6s}")
    for path in paths or DEFAULT:
        logic, total = logic_lines(ROOT / path if not Path(path).is_absolute() else path)
        print(f"{path:28s} {logic:6d} {total:6d}")
    print(f"target for a new method's own file: <= {TARGET} lines of logic")


if __name__ == "__main__":
    main(sys.argv[1:])
