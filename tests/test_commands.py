"""The commands a user copies agree with what CI runs: README.md, docs/index.md, .ci/run,
the torch requirement in pyproject.toml and the constraints file that pins it."""

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
INDEX = (ROOT / "docs" / "index.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()
CONSTRAINTS = ROOT / ".ci" / "constraints-cpu.txt"


def _command_lines(markdown):
    """Lines of the ```bash blocks of a markdown page, comments removed."""
    blocks = re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.M | re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line]


def _ci_lines():
    return [line.strip() for line in CI.splitlines() if line.strip() and not line.startswith("#")]


def _torch_requirement():
    match = re.search(r'^\s*"torch([^"]*)",', (ROOT / "pyproject.toml").read_text(), flags=re.M)
    assert match, "no torch requirement in pyproject.toml"
    return match.group(1)


def test_readme_test_command_is_what_ci_runs():
    (test_command,) = [c for c in _command_lines(README) if c.endswith("python -m pytest")]
    assert test_command in _ci_lines()


def test_readme_and_docs_give_the_same_commands():
    readme = _command_lines(README)
    index = _command_lines(INDEX)
    project_commands = [c for c in readme if "-c .ci/constraints-cpu.txt" in c]
    assert len(project_commands) == 3  # demo, tests, docs
    for command in project_commands:
        assert command in index, command


def test_docs_build_command_is_what_ci_runs():
    sphinx = {
        re.search(r"python -m sphinx .*", c).group(0)
        for c in _command_lines(README) + _command_lines(INDEX) + _ci_lines()
        if "python -m sphinx" in c
    }
    assert sphinx == {"python -m sphinx -W --keep-going -b html docs docs/_build/html"}


def test_torch_has_a_floor_pinned_by_ci_and_no_cap():
    requirement = _torch_requirement()
    floor = re.fullmatch(r">=([\d.]+)", requirement)
    assert floor, f"torch{requirement}: expected a floor and no upper cap"
    pins = [
        line.strip()
        for line in CONSTRAINTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    (pin,) = [p for p in pins if p.startswith("torch")]

    # The version CI installs is the floor itself (2.13 is 2.13.0).
    def release(version):
        parts = [int(p) for p in version.split(".")]
        return tuple(parts + [0] * (3 - len(parts)))

    assert release(pin.split("==")[1]) == release(floor.group(1))
    for command in [*_ci_lines(), *_command_lines(README)]:
        if command.startswith("pip install -e"):
            assert "-c .ci/constraints-cpu.txt" in command, command


def test_readme_ten_lines_run(capsys):
    (code,) = re.findall(r"^## Ten lines\n+```python\n(.*?)^```", README, flags=re.M | re.S)
    assert "skbdl.predict_uncertainty(model, X[:5])" in code
    namespace = {}
    exec(
        compile(code.replace("random_state=0", "random_state=0, verbose=0"), "README", "exec"),
        namespace,
    )
    u, mean, std = namespace["u"], namespace["mean"], namespace["std"]
    np.testing.assert_array_equal(u.mean, mean)
    np.testing.assert_array_equal(u.std, std)
    assert capsys.readouterr().out.strip()  # it prints the two variances
