"""`make package`: the Lambda zip holds the handlers and their dependencies, and imports in a bare Python."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra import package
from tests.infra.terraform import MODULE, load

HANDLERS = {"outbox.api.handler", "worker.handler.handler", "worker.consumer.handler", "worker.sweeper.handler"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip, built once for the module's tests."""
    output = tmp_path_factory.mktemp("package") / "outbox.zip"
    package.build(output)
    return output


def test_zip_holds_the_handlers_and_runtime_dependencies(built: Path) -> None:
    """The handlers, the filter template and the runtime dependencies; nothing local-only."""
    names = set(zipfile.ZipFile(built).namelist())
    for required in (
        "outbox/api.py",
        "worker/handler.py",
        "worker/consumer.py",
        "worker/sweeper.py",
        "worker/stream_filter.json.tftpl",
    ):
        assert required in names
    for dependency in ("pynamodb/", "structlog/", "boto3/", "botocore/"):
        assert any(name.startswith(dependency) for name in names), dependency
    # Not shipped: the CLI's rich, the local emulator (moto), bytecode built for this machine's Python.
    assert not any(name.startswith(("rich/", "moto/", "outbox/local/")) for name in names)
    assert not any(name.endswith(".pyc") for name in names)
    module = load(MODULE)
    handlers = {spec["handler"] for spec in module.locals["functions"].values()}
    # The consumer's handler is a variable; its default is the outbox's own consumer.
    assert {module.default(h) if h.startswith("${var.") else h for h in handlers} == HANDLERS


def test_zip_imports_and_answers_in_a_fresh_virtualenv(built: Path, tmp_path: Path) -> None:
    """A bare interpreter imports the handlers from the zip alone and the API answers."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    unpacked = tmp_path / "task"
    zipfile.ZipFile(built).extractall(unpacked)
    script = f"""
import importlib, json, sys
sys.path.insert(0, {str(unpacked)!r})
for path in {sorted(HANDLERS)!r}:
    module, name = path.rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), name)), path
import outbox.api
event = {{"version": "2.0", "rawPath": "/messages", "body": "not json",
          "headers": {{"content-type": "application/json"}},
          "requestContext": {{"http": {{"method": "POST", "path": "/messages"}}}}}}
response = outbox.api.handler(event, None)
assert not [m for m in sys.modules if m.split(".")[0] in ("rich", "moto")]
origins = {{m.__file__.split("/task/")[0] for m in list(sys.modules.values())
           if getattr(m, "__file__", None) and m.__name__.split(".")[0] in ("boto3", "pynamodb")}}
code = json.loads(response["body"])["code"]
print(json.dumps({{"status": response["statusCode"], "code": code, "paths": sorted(origins)}}))
"""
    result = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), "-I", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={"OUTBOX_TABLE_NAME": "outbox", "AWS_DEFAULT_REGION": "eu-west-1", "OUTBOX_METRICS": "off"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 400
    assert answer["code"] == "VALIDATION_ERROR"
    assert answer["paths"] == [str(tmp_path)]  # boto3 and pynamodb came from the zip, nothing else


def test_zip_is_reproducible(tmp_path: Path) -> None:
    """Same files give the same bytes, whatever their mtimes; a change gives new bytes."""
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "a.py").write_text("A = 1\n")
    (source / "b.json").write_text("{}")
    first = package.write_zip(source, tmp_path / "one.zip")
    (source / "pkg" / "a.py").touch()  # a newer mtime must not change the bytes
    assert package.write_zip(source, tmp_path / "two.zip") == first
    (source / "pkg" / "a.py").write_text("A = 2\n")
    assert package.write_zip(source, tmp_path / "three.zip") != first
