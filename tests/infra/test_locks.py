"""The lock files: what ``make`` installs is what they pin, and they follow pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from infra import lock
from tests.infra.terraform import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCKS = ("requirements/dev.txt", "requirements/lowest.txt", "requirements/checkov.txt", "requirements/uv.txt")
# pip comes with the virtualenv (it installs the lock), the project itself goes in editable.
NOT_LOCKED = {"pip", "dynamodb-outbox"}


def _pins(path: str) -> dict[str, set[str]]:
    return lock.pins(ROOT / path)


def test_this_environment_is_the_development_lock() -> None:
    """Every distribution installed here is pinned by requirements/dev.txt at the version installed."""
    pins = _pins(lock.DEV)
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    strays = {name: version for name, version in installed.items() if name not in NOT_LOCKED and name not in pins}
    assert strays == {}
    drift = {name: v for name, v in installed.items() if name in pins and v not in pins[name]}
    assert drift == {}


def test_the_development_lock_holds_every_exact_pin_of_the_dev_group() -> None:
    """A pin changed in pyproject.toml without `make lock` fails here, before anything installs."""
    pins = _pins(lock.DEV)
    for spec in PYPROJECT["dependency-groups"]["dev"]:
        requirement = Requirement(spec)
        (pinned,) = (s.version for s in requirement.specifier if s.operator == "==")
        assert pinned in pins[canonicalize_name(requirement.name)], spec


def test_the_lowest_lock_takes_each_declared_lower_bound() -> None:
    """`make test-lowest` runs on the lowest version each run-time dependency declares."""
    pins = _pins("requirements/lowest.txt")
    for spec in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(spec)
        (lowest,) = (Version(s.version) for s in requirement.specifier if s.operator == ">=")
        assert {Version(v) for v in pins[canonicalize_name(requirement.name)]} == {lowest}, spec


def test_every_lock_is_hashed_and_written_by_make_lock() -> None:
    """Each pin carries its hashes, and each file says the one command that rewrites it."""
    for path in (*LOCKS, str(PYPROJECT["tool"]["outbox"]["lambda-package"]["lock"])):
        text = (ROOT / path).read_text()
        assert "#    make lock\n" in text, path
        entries = re.split(r"^(?=[A-Za-z0-9])", text, flags=re.MULTILINE)[1:]  # a pin starts each entry
        assert entries, path
        assert all("==" in entry and "--hash=sha256:" in entry for entry in entries), path


def test_make_installs_only_from_the_locks() -> None:
    """Every pip install in the Makefile is hash-checked, but the project's own editable install."""
    makefile = (ROOT / "Makefile").read_text()
    installs = re.findall(r"pip install[^\n]*", makefile.replace("$(PIP_LOCKED)", "pip install --require-hashes"))
    assert installs
    for line in installs:
        assert "--require-hashes" in line or ("--no-deps" in line and line.endswith("-e .")), line
