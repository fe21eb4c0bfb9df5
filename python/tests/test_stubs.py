"""The hand-written stubs `_native.pyi` declare exactly what `nimsync._native` exports."""

import ast
import inspect
import pathlib

import nimsync._native as native

STUB = pathlib.Path(__file__).resolve().parents[1] / "nimsync" / "_native.pyi"


def stub_tree():
    return ast.parse(STUB.read_text())


def stub_names():
    names = {}
    for node in stub_tree().body:
        if isinstance(node, ast.ClassDef):
            members = {
                n.name
                for n in node.body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
            names[node.name] = members
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = None
    return names


def public_module_names():
    return {n for n in dir(native) if not n.startswith("_") or n == "__version__"}


def class_members(cls):
    own = set(vars(cls))
    wanted = {n for n in own if not n.startswith("__") or n in {
        "__init__", "__len__", "__iter__", "__next__", "__enter__", "__exit__"}}
    if getattr(cls, "__text_signature__", None) is not None:  # has a constructor
        wanted.add("__init__")
    return {n for n in wanted if n not in {"__new__", "__doc__", "__module__"}}


def test_module_level_names_match():
    stubs = set(stub_names())
    module = public_module_names()
    assert module - stubs == set(), f"exported but not in the stubs: {module - stubs}"
    assert stubs - module == set(), f"in the stubs but not exported: {stubs - module}"


def test_class_members_match():
    for name, members in stub_names().items():
        obj = getattr(native, name)
        if members is None:
            continue
        assert inspect.isclass(obj), name
        actual = class_members(obj)
        assert actual - members == set(), f"{name}: not in the stubs: {actual - members}"
        missing = {m for m in members - actual if m != "__init__"}
        assert missing == set(), f"{name}: stubbed but missing: {missing}"


def stub_param_names(fn):
    """Parameter names in the order ``inspect.signature`` lists them (``*args`` and
    ``**kwargs`` included)."""
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args]
    if a.vararg is not None:
        names.append(a.vararg.arg)
    names += [x.arg for x in a.kwonlyargs]
    if a.kwarg is not None:
        names.append(a.kwarg.arg)
    return names


def test_stub_function_signatures_match_the_native_ones():
    # PyO3 records text signatures; compare parameter names.
    tree = stub_tree()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            native_sig = inspect.signature(getattr(native, node.name))
            stub_params = stub_param_names(node)
            assert list(native_sig.parameters) == stub_params, node.name
        if isinstance(node, ast.ClassDef):
            cls = getattr(native, node.name)
            for fn in node.body:
                if not isinstance(fn, ast.FunctionDef) or fn.name.startswith("__"):
                    continue
                attr = inspect.getattr_static(cls, fn.name)
                if isinstance(attr, property) or type(attr).__name__ == "getset_descriptor":
                    continue
                try:
                    sig = inspect.signature(getattr(cls, fn.name))
                except (TypeError, ValueError):
                    continue
                stub_params = stub_param_names(fn)
                assert list(sig.parameters) == stub_params, f"{node.name}.{fn.name}: {sig} vs {stub_params}"
