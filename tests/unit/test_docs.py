"""The docs that restate code are held to it: the settings and parameter tables, and every link resolves.

Read from the sources and the README as text (no process, no AWS): a setting added to the code
without a row, a default changed on one side only, a parameter of ``Outbox`` undocumented, or a
link to a page or heading that is gone fails here.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from outbox import Outbox
from outbox.consumer import make_handler

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples" / "orders" / "README.md"]
# A setting read by a name in one of these calls: the default is the literal third argument.
_READERS = {"_positive", "_not_negative", "_key_name"}
_FENCE = re.compile(r"^ *```.*?^ *```$", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _table(text: str, heading: str) -> dict[str, str]:
    """The rows of the first table under ``heading``: each name in the first cell (backquoted) -> the whole row."""
    section = text[text.index(heading) :]
    rows: dict[str, str] = {}
    started = False
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            started = True
            for name in re.findall(r"`([^`]+)`", line.split("|")[1]):
                rows[name] = line
        elif started:
            break
    return rows


def _settings_in_code() -> set[str]:
    """Every ``OUTBOX_*`` name the library and the handlers mention as a string."""
    names: set[str] = set()
    for path in [*(ROOT / "outbox").rglob("*.py"), *(ROOT / "worker").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names |= set(re.findall(r"^OUTBOX_[A-Z_]+$", node.value))
    return names


def _defaults_in_settings() -> dict[str, str]:
    """Each setting ``outbox/settings.py`` reads with a default, and that default as the README writes it."""
    defaults: dict[str, str] = {}
    tree = ast.parse((ROOT / "outbox" / "settings.py").read_text())
    constants = {
        target.id: node.value
        for module in ("envelope.py", "layout.py")  # the domain's constants settings.py defaults to
        for node in ast.walk(ast.parse((ROOT / "outbox" / "domain" / module).read_text()))
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _READERS:
            name, default = node.args[1], node.args[2]
            assert isinstance(name, ast.Constant)
            if isinstance(default, ast.Name):  # a constant of the domain
                default = constants[default.id]
            value = ast.literal_eval(default)
            if name.value != "OUTBOX_MAX_RECEIVE_COUNT":  # 0 stands for unset there
                defaults[name.value] = str(value)
    return defaults


def test_the_settings_table_lists_every_setting_the_code_reads() -> None:
    """Every OUTBOX_* name of the code has a row in the README's settings table (and no row names one it lacks)."""
    rows = _table(README.read_text(), "### Settings")
    documented = {name for name in rows if name.startswith("OUTBOX_")}
    assert _settings_in_code() - documented == set(), "add a row to the README's settings table"
    assert documented - _settings_in_code() == set(), "the README documents settings the code does not read"


@pytest.mark.parametrize(("name", "default"), sorted(_defaults_in_settings().items()))
def test_the_settings_table_gives_the_default_the_code_has(name: str, default: str) -> None:
    """Each setting's row states, as its default, the value outbox/settings.py falls back to."""
    row = _table(README.read_text(), "### Settings")[name]
    default_cell = row.split("|")[-2]
    assert re.search(rf"`{re.escape(default)}`", default_cell), (name, default, default_cell)


def _parameters(function: object) -> dict[str, inspect.Parameter]:
    return {
        name: parameter
        for name, parameter in inspect.signature(function).parameters.items()  # type: ignore[arg-type]
        if name != "self"
    }


@pytest.mark.parametrize(
    ("heading", "function"),
    [
        ("### `Outbox(table_name, ...)`", Outbox.__init__),
        ("`outbox.message(payload, *, type, ...)`", Outbox.message),
        ("### `make_handler(deliver)`", make_handler),
    ],
    ids=["Outbox", "message", "make_handler"],
)
def test_the_parameter_tables_list_every_parameter(heading: str, function: object) -> None:
    """The README's table under each heading has a row for each parameter, and none for a parameter that is gone."""
    rows = _table(README.read_text(), heading)
    assert set(rows) == set(_parameters(function)), heading


def test_the_outbox_table_gives_each_literal_default() -> None:
    """Where Outbox's default is a plain value, its row shows it (None, numbers, strings, durations)."""
    rows = _table(README.read_text(), "### `Outbox(table_name, ...)`")
    for name, parameter in _parameters(Outbox.__init__).items():
        default = parameter.default
        if default is inspect.Parameter.empty:
            assert "required" in rows[name], name
        elif isinstance(default, str):
            assert f'`"{default}"`' in rows[name], (name, default)
        elif isinstance(default, bool | int) or default is None:
            if default is None and name in {"client", "region"}:  # the row says what None does
                continue
            assert f"`{default}`" in rows[name], (name, default)
        elif hasattr(default, "days"):
            assert f"`timedelta(days={default.days})`" in rows[name], (name, default)


def _anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", _FENCE.sub("", text), re.MULTILINE):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return anchors


def _links() -> list[tuple[Path, str]]:
    found = []
    for page in DOCS:
        for target in _LINK.findall(_FENCE.sub("", page.read_text())):
            found.append((page, target))
    return found


@pytest.mark.parametrize(
    ("page", "target"), _links(), ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else v
)
def test_every_link_resolves_inside_the_repository(page: Path, target: str) -> None:
    """A link names a file of the repository (and a heading of it, if it names one); nothing outside it."""
    assert ":" not in target.partition("#")[0], f"{page.name} points outside the repository: {target}"
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    assert file.is_relative_to(ROOT), f"{target} leaves the repository"
    assert file.exists(), f"{page.relative_to(ROOT)}: {target} does not exist"
    if anchor and file.suffix == ".md":
        assert anchor in _anchors(file.read_text()), f"{page.relative_to(ROOT)}: no heading #{anchor} in {path}"


def test_the_metrics_rows_give_the_names_the_code_writes() -> None:
    """OUTBOX_METRICS_NAMESPACE and OUTBOX_SERVICE default to the namespace and dimension outbox/metrics.py writes."""
    from outbox.metrics import DIMENSIONS, NAMESPACE

    rows = _table(README.read_text(), "### Settings")
    assert f"`{NAMESPACE}`" in rows["OUTBOX_METRICS_NAMESPACE"].split("|")[-2]
    assert f"`{DIMENSIONS['Service']}`" in rows["OUTBOX_SERVICE"].split("|")[-2]
