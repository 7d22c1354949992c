"""Every public class documents its parameters (numpydoc) and carries a doctest example."""

import dataclasses
import inspect

import pytest
from numpydoc.docscrape import ClassDoc

import skbdl
import skbdl.nn
import skbdl.uncertainty

PUBLIC = sorted(
    {
        (module.__name__, name): getattr(module, name)
        for module in (skbdl, skbdl.nn, skbdl.uncertainty)
        for name in module.__all__
        if inspect.isclass(getattr(module, name))
    }.items()
)


@pytest.mark.parametrize("cls", [c for _, c in PUBLIC], ids=[f"{m}.{n}" for (m, n), _ in PUBLIC])
def test_public_class_docstring(cls):
    doc = ClassDoc(cls)
    assert doc["Summary"], f"{cls.__name__} has no summary line"
    assert doc["Examples"], f"{cls.__name__} has no Examples section"
    assert ">>>" in "\n".join(doc["Examples"])
    signature = inspect.signature(cls.__init__)
    wanted = [
        name
        for name, p in signature.parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    documented = {p.name.split(":")[0].strip() for p in doc["Parameters"]}
    documented |= {n.strip() for p in doc["Parameters"] for n in p.name.split(",")}
    if dataclasses.is_dataclass(cls):  # fields are documented as attributes
        documented |= {p.name.split(":")[0].strip() for p in doc["Attributes"]}
    missing = [name for name in wanted if name not in documented]
    assert not missing, f"{cls.__name__} does not document parameters {missing}"
