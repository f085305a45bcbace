"""docs/architecture.md's module table names every module of outbox/ and worker/, and nothing that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
ROW = re.compile(r"^\| `([^`]+)` \|", re.MULTILINE)


def _table() -> list[str]:
    """The paths of the "Every module" table, in its order."""
    text = DOC.read_text()
    section = text.split("## Every module", 1)[1].split("\n## ", 1)[0]
    return ROW.findall(section)


def _modules() -> set[str]:
    """Every module and data file of outbox/ and worker/; of the ``__init__`` files, those that hold an API."""
    files = [
        path
        for folder in ("outbox", "worker")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in {".py", ".tftpl"} and "__pycache__" not in path.parts
    ]
    return {
        path.relative_to(ROOT).as_posix()
        for path in files
        if path.name != "__init__.py" or path.parent.name in {"outbox", "notifications", "worker"}
    }


def test_every_module_is_in_the_architecture_table() -> None:
    """A module added without its line in docs/architecture.md's table fails here."""
    assert sorted(_modules() - set(_table())) == []


def test_the_architecture_table_names_only_modules_that_exist() -> None:
    """A module moved or removed takes its line in the table with it; no line is written twice."""
    table = _table()
    assert sorted(path for path in table if not (ROOT / path).is_file()) == []
    assert len(table) == len(set(table))
