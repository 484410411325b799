"""No code in `src/` can deserialise with pickle or run strings as code (DESIGN invariant 7)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle"}
UNSAFE_CALLS = {"eval", "exec", "__import__"}
SOURCES = sorted(SRC.rglob("*.py"))


def unsafe_uses(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in UNSAFE_CALLS:
                found.append(f"line {node.lineno}: {node.func.id}()")
            names = []
        elif isinstance(node, ast.Constant) and node.value in UNSAFE_MODULES:
            found.append(f"line {node.lineno}: string {node.value!r} (a dynamic import?)")
            names = []
        else:
            names = []
        found += [
            f"line {node.lineno}: import {n}" for n in names if n.split(".")[0] in UNSAFE_MODULES
        ]
    return found


def test_the_source_tree_is_found() -> None:
    assert any(path.name == "codec.py" for path in SOURCES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_pickle_marshal_eval_or_exec(path: Path) -> None:
    assert unsafe_uses(path) == []
