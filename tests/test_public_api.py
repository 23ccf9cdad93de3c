"""The public API's docstrings name every argument (the API reference is built from them)."""

import inspect

import pytest

import vggnet


def public_callables():
    for name in vggnet.__all__:
        obj = getattr(vggnet, name)
        if callable(obj) and not (inspect.isclass(obj) and issubclass(obj, Exception)):
            yield name, obj


@pytest.mark.parametrize(("name", "obj"), list(public_callables()))
def test_docstring_names_every_argument(name, obj):
    doc = inspect.getdoc(obj) or ""
    assert len(doc) > 40, f"vggnet.{name} has no real docstring"
    target = obj.__init__ if inspect.isclass(obj) else obj
    if inspect.isclass(obj) and target is object.__init__:
        return
    params = [
        p.name
        for p in inspect.signature(target).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    missing = [p for p in params if p not in doc]
    assert not missing, f"vggnet.{name}'s docstring does not name {missing}"
