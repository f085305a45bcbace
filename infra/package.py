"""``make package``: the Lambda zip of the three handlers, dependencies resolved for Lambda's platform.

One zip serves the API, worker and consumer functions (they differ only in handler). It holds
``outbox/`` (less the local emulator) and ``worker/``, and the runtime dependencies from
pyproject.toml at the versions installed here — the ones the tests ran against — fetched as wheels
for Lambda's arm64 Linux and Python version, never built on this machine. Entries are sorted and
timestamped at 1980-01-01, so the same inputs give the same bytes and ``source_code_hash`` changes
only when the code or a dependency does.

    .venv/bin/python -m infra.package [--output build/lambda/outbox.zip]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "build" / "lambda" / "outbox.zip"
SOURCES = ("outbox", "worker")
_EPOCH = (1980, 1, 1, 0, 0, 0)


def package_config() -> dict[str, Any]:
    """``[tool.outbox.lambda-package]`` of pyproject.toml, with its runtime dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    config: dict[str, Any] = dict(project["tool"]["outbox"]["lambda-package"])
    config["dependencies"] = project["project"]["dependencies"]
    return config


def pinned_requirements(dependencies: list[str], exclude: list[str]) -> list[str]:
    """The runtime dependencies, less the excluded ones, each pinned to the version installed here."""
    pins = []
    for spec in dependencies:
        name = Requirement(spec).name
        if name not in exclude:
            pins.append(f"{name}=={metadata.version(name)}")
    return pins


def _skip(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"}


def stage(target: Path, config: dict[str, Any]) -> None:
    """Install the wheels for Lambda's platform into ``target`` and copy the project's packages."""
    requirements = pinned_requirements(config["dependencies"], config["exclude"])
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--target", str(target), "--no-compile",
            "--platform", str(config["platform"]), "--implementation", "cp",
            "--python-version", str(config["python-version"]), "--only-binary=:all:",
            *requirements,
        ],
        check=True,
    )  # fmt: skip
    excluded = {ROOT / path for path in config["exclude-paths"]}
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_file() and not _skip(path) and not any(path.is_relative_to(ex) for ex in excluded):
                destination = target / path.relative_to(ROOT)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, destination)


def write_zip(source: Path, output: Path) -> str:
    """Zip ``source`` reproducibly into ``output``; returns the zip's SHA-256."""
    output.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in source.rglob("*") if p.is_file() and not _skip(p))
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), _EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return hashlib.sha256(output.read_bytes()).hexdigest()


def build(output: Path = DEFAULT_OUTPUT) -> str:
    """Stage and zip the package; returns its SHA-256."""
    with tempfile.TemporaryDirectory(prefix="outbox-package-") as tmp:
        stage(Path(tmp), package_config())
        return write_zip(Path(tmp), output)


def main(argv: list[str] | None = None) -> int:
    """Command line: build the zip and print its path, size and SHA-256."""
    parser = argparse.ArgumentParser(description="Build the Lambda zip of the outbox handlers.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    digest = build(args.output)
    size = args.output.stat().st_size / 1_048_576
    print(f"{args.output} {size:.1f} MiB sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
