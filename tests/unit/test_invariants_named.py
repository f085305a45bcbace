"""Every invariant of docs/design.md is proven somewhere, by name."""

from __future__ import annotations

import ast
import pathlib
import re


def test_each_invariant_is_named_in_a_test_docstring() -> None:
    """Invariants 1 to 8 each appear as 'Invariant N' in at least one test docstring."""
    named: set[int] = set()
    for path in pathlib.Path(__file__).parents[1].rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                doc = ast.get_docstring(node) or ""
                named.update(int(n) for n in re.findall(r"Invariant (\d)", doc))
    assert named >= set(range(1, 9))
