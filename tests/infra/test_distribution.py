"""The sdist and wheel: they build, pass ``twine check --strict``, and install and run in a clean virtualenv.

One ``python -m build --no-isolation`` for the module, with the setuptools the development lock
installed (an isolated build would fetch whatever setuptools the index has that day), from a copy
of the tree: building in place would write into the working tree, and setuptools adds the files
listed in a stale ``*.egg-info/SOURCES.txt`` to the sdist.
"""

from __future__ import annotations

import ast
import email
import email.message
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import outbox
from tests.infra.terraform import ROOT

RUNTIME = {"boto3", "botocore", "pynamodb", "structlog"}
NOT_AT_RUNTIME = {"rich", "moto", "waitress"}  # the cli and local extras only
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", ".terraform"
)


def _clean_env() -> dict[str, str]:
    """The environment less what would put the tree (or this virtualenv) on another interpreter's path.

    With PYTHONPATH at the tree, pip would see its ``*.egg-info`` and take the wheel as installed.
    """
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    return env | {"OUTBOX_TABLE_NAME": "outbox", "OUTBOX_METRICS": "off"}


def _package_data() -> list[str]:
    """The library's data files in the tree (the local runner's filter template), as wheel paths."""
    files = [*(ROOT / "outbox").rglob("*.json"), *(ROOT / "outbox").rglob("*.tftpl")]
    return sorted(path.relative_to(ROOT).as_posix() for path in files)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel of the tree as it is now: ``{"sdist": ..., "wheel": ...}``."""
    for tool in ("build", "twine"):
        if importlib.util.find_spec(tool) is None:
            pytest.fail(f"{tool} is missing: `make` installs it (the dev dependency group)")
    tmp = tmp_path_factory.mktemp("dist")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCES, symlinks=True)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "out"), str(source)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tmp,
        env=_clean_env(),
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    (sdist,) = (tmp / "out").glob("*.tar.gz")
    (wheel,) = (tmp / "out").glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_the_version_is_a_literal_setuptools_reads_without_importing() -> None:
    """``outbox.__version__`` is a plain string assignment, so the build never imports outbox's dependencies."""
    tree = ast.parse((ROOT / "outbox" / "__init__.py").read_text())
    values = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
    ]
    assert len(values) == 1
    assert isinstance(values[0], ast.Constant)
    assert values[0].value == outbox.__version__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["dynamic"] == ["version"]
    assert "version" not in project["project"]


def test_twine_check_strict_passes(dist: dict[str, Path]) -> None:
    """Both files pass twine's strict check (metadata, and the README renders as the long description)."""
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dist["sdist"]), str(dist["wheel"])],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=_clean_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2


def test_wheel_metadata_licence_version_and_dependencies(dist: dict[str, Path]) -> None:
    """Apache-2.0 by SPDX expression, the licence text inside; runtime needs only; extras never pin."""
    metadata = _metadata(dist["wheel"])
    assert metadata["Name"] == "dynamodb-outbox"
    assert metadata["Version"] == outbox.__version__
    assert tuple(map(int, metadata["Metadata-Version"].split("."))) >= (2, 4)
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert not [c for c in metadata.get_all("Classifier", []) if c.startswith("License ::")]  # PEP 639
    with zipfile.ZipFile(dist["wheel"]) as archive:
        licence = f"dynamodb_outbox-{outbox.__version__}.dist-info/licenses/LICENSE"
        assert archive.read(licence) == (ROOT / "LICENSE").read_bytes()

    requirements = [Requirement(line) for line in metadata.get_all("Requires-Dist", [])]
    unconditional = {r.name for r in requirements if r.marker is None}
    assert unconditional == RUNTIME
    assert set(metadata.get_all("Provides-Extra", [])) == {"cli", "local"}
    for extra in ("cli", "local"):
        chosen = [r for r in requirements if r.marker is not None and r.marker.evaluate({"extra": extra})]
        assert chosen, extra
        assert not [str(r) for r in chosen if any(s.operator in {"==", "==="} for s in r.specifier)], extra
    outside_extras = {r.name for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})}
    assert not outside_extras & NOT_AT_RUNTIME
    assert {r.name for r in requirements if r.marker is not None and r.marker.evaluate({"extra": "cli"})} == {"rich"}
    # `outbox dev` and `outbox demo` need nothing but the local extra (demo draws with rich).
    local = {r.name for r in requirements if r.marker is not None and r.marker.evaluate({"extra": "local"})}
    assert local == {"moto", "waitress", "rich"}


def test_wheel_and_sdist_hold_the_package_typing_marker_and_data(dist: dict[str, Path]) -> None:
    """One top-level package, ``outbox``, with py.typed, the notification API and its data files; no entry points.

    ``worker/`` (the Terraform module's Lambda entry points) goes in the Lambda zip only: in the
    wheel it would take a name a user's own service is likely to have.
    """
    with zipfile.ZipFile(dist["wheel"]) as archive:
        wheel = set(archive.namelist())
    required = ("outbox/__init__.py", "outbox/py.typed", "outbox/consumer.py", "outbox/notifications/api.py")
    for name in (*required, "outbox/local/stream_filter.json.tftpl", *_package_data()):
        assert name in wheel, name
    dist_info = f"dynamodb_outbox-{outbox.__version__}.dist-info"
    assert {name.split("/")[0] for name in wheel} == {"outbox", dist_info}

    with tarfile.open(dist["sdist"]) as archive:
        prefix = f"dynamodb_outbox-{outbox.__version__}/"
        sdist = {name.removeprefix(prefix) for name in archive.getnames()}
    for name in ("LICENSE", "README.md", "pyproject.toml", "PKG-INFO", "outbox/py.typed", *_package_data()):
        assert name in sdist, name


def test_wheel_installs_and_runs_in_a_clean_virtualenv(dist: dict[str, Path], tmp_path: Path) -> None:
    """A virtualenv with nothing but the wheel and its dependencies: the command and the handlers work.

    The dependencies come from the runtime lock (the Lambda zip's, pure-Python wheels), so a release
    upstream cannot turn this test red; ``pip check`` then holds the wheel's declared ranges to them.
    """
    venv = tmp_path / "venv"
    env = _clean_env()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120, env=env)
    python = venv / "bin" / "python"
    # This pip installs into the new interpreter (--python), from the index or its cache.
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    lock = ROOT / "infra" / "lambda-requirements.txt"
    for args in (["--require-hashes", "-r", str(lock)], ["--no-deps", str(dist["wheel"])]):
        subprocess.run([*pip, "install", "--quiet", *args], check=True, timeout=600, cwd=tmp_path, env=env)
    checked = subprocess.run([*pip, "check"], capture_output=True, text=True, check=False, cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    helped = subprocess.run(
        [str(venv / "bin" / "outbox"), "--help"], capture_output=True, text=True, check=False, cwd=tmp_path, env=env
    )
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: outbox")
    # Without the local extra, `outbox dev` and `outbox demo` say which extra to install, in one line.
    for command in (["dev", "--port", "0"], ["demo", "-n", "1"]):
        local = subprocess.run(
            [str(venv / "bin" / "outbox"), *command], capture_output=True, text=True, check=False, cwd=tmp_path, env=env
        )
        assert local.returncode == 1
        assert local.stderr.splitlines() == [
            f"outbox {command[0]}: the local stack needs moto, waitress, rich: pip install 'dynamodb-outbox[local]'"
        ]

    # A service of the user's with a package of its own named ``worker``, beside the installed wheel.
    service = tmp_path / "service"
    (service / "worker").mkdir(parents=True)
    (service / "worker" / "__init__.py").write_text("")
    (service / "worker" / "consumer.py").write_text("OWN = True\n")
    script = """
import importlib.util, json, sys, sysconfig
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import outbox, outbox.notifications.api, outbox.replay_cli
from outbox.consumer import DeliveryError, make_handler
import worker.consumer
site = Path(sysconfig.get_paths()["purelib"])
print(json.dumps({
    "outbox": outbox.__file__,
    "version": outbox.__version__,
    "handler": callable(make_handler(lambda envelope: None)),
    "api": callable(outbox.notifications.api.build_api),
    "own_worker": worker.consumer.OWN and worker.consumer.__file__.startswith(sys.argv[1]),
    "top_level": sorted(p.name for p in site.iterdir() if (p / "__init__.py").exists() or p.suffix == ".py"),
    "installed": sorted(n for n in ("rich", "moto", "waitress", "flask", "werkzeug") if importlib.util.find_spec(n)),
}))
"""
    result = subprocess.run(
        [str(python), "-I", "-c", script, str(service)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["outbox"].startswith(str(venv))
    assert answer["version"] == outbox.__version__
    assert answer["handler"] is True
    assert answer["api"] is True
    assert answer["own_worker"] is True  # the user's worker, not one of ours
    with zipfile.ZipFile(dist["wheel"]) as archive:  # what the wheel put at the top of site-packages
        ours = {name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert ours == {"outbox"}
    assert "outbox" in answer["top_level"]
    assert "worker" not in answer["top_level"]
    assert answer["installed"] == []  # none of the extras came along
