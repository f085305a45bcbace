"""``make package``: the Lambda zip of the four handlers, built from a hash-locked requirements file.

One zip serves the API, worker, consumer and sweeper functions (they differ only in handler). It
holds ``outbox/`` and ``worker/`` less what Lambda never runs (the CLI, replay, testing helpers,
fault injection, the local stack and its runners), and the runtime dependencies locked in
``infra/lambda-requirements.txt``: every distribution pyproject.toml's dependencies need, at the
version of the development lock (the one the tests ran against), resolved for Lambda's platform
with the SHA-256 of each file (``make lock``, infra/lock.py). pip installs them with
``--require-hashes --only-binary=:all:`` for the architecture and Python of
``[tool.outbox.lambda-package]``, never building anything here.

Lambda's /var/task is read-only, so modules without bytecode are compiled on every cold start:
the zip ships ``__pycache__`` compiled by this interpreter, which must be the runtime's Python
(refused otherwise), as unchecked-hash .pyc (no mtime inside) with ``/var/task`` paths. Entries
are sorted and timestamped at 1980-01-01, so the same inputs give the same bytes and
``source_code_hash`` changes only when the code or a dependency does.

    python -m infra.package [--output build/lambda/outbox.zip]   # make package
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import py_compile
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "build" / "lambda" / "outbox.zip"
SOURCES = ("outbox", "worker")
TASK_ROOT = "/var/task"  # where Lambda unpacks the zip: the path tracebacks show
_EPOCH = (1980, 1, 1, 0, 0, 0)
# Lambda's architectures and the wheel platform tag pip fetches for each.
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}


class PackageError(Exception):
    """The package cannot be built as configured."""


def package_config() -> dict[str, Any]:
    """``[tool.outbox.lambda-package]`` of pyproject.toml, with its runtime dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    config: dict[str, Any] = dict(project["tool"]["outbox"]["lambda-package"])
    if config["architecture"] not in PLATFORMS:
        raise PackageError(f"architecture must be one of {sorted(PLATFORMS)}, not {config['architecture']!r}")
    config["platform"] = PLATFORMS[config["architecture"]]
    return config


def lock_path(config: dict[str, Any]) -> Path:
    """The lock file the package installs from."""
    return ROOT / str(config["lock"])


def _pip_platform_args(config: dict[str, Any]) -> list[str]:
    return [
        "--platform", str(config["platform"]), "--implementation", "cp",
        "--python-version", str(config["python-version"]), "--only-binary=:all:",
    ]  # fmt: skip


def _skip(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"}


def _excluded(path: Path, excluded: set[Path]) -> bool:
    return any(path == ex or path.is_relative_to(ex) for ex in excluded)


def check_interpreter(python_version: str) -> None:
    """Refuse to build for a Python other than this one: bytecode runs only on the version that compiled it."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if str(python_version) != here:
        raise PackageError(
            f"the package is for Python {python_version} but this is Python {here}: bytecode only runs on the"
            f" version that compiled it; build with Python {python_version} or set python-version = {here!r}"
        )


def keep_botocore_services(target: Path, services: list[str]) -> None:
    """Drop the models of every AWS service but ``services`` from botocore's data (its shared files stay).

    botocore lists its data folder (about 450 services) when it loads a model, and the models are
    most of the zip.
    """
    data = target / "botocore" / "data"
    missing = [name for name in services if not (data / name).is_dir()]
    if missing:
        raise PackageError(f"botocore has no service {', '.join(missing)}")
    for folder in sorted(data.iterdir()):
        if folder.is_dir() and folder.name not in services:
            shutil.rmtree(folder)


def compile_bytecode(target: Path, python_version: str) -> None:
    """Compile every module under ``target`` for this Python, reproducibly (unchecked-hash .pyc, /var/task paths)."""
    check_interpreter(python_version)
    ok = compileall.compile_dir(
        target,
        ddir=TASK_ROOT,
        quiet=1,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise PackageError("some modules did not compile")


def stage(target: Path, config: dict[str, Any]) -> None:
    """Install the locked wheels for Lambda's platform into ``target``, copy the project's packages, compile."""
    check_interpreter(str(config["python-version"]))  # before any download
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--target", str(target), "--no-compile", "--require-hashes", *_pip_platform_args(config),
            "--requirement", str(lock_path(config)),
        ],
        check=True,
    )  # fmt: skip
    shutil.rmtree(target / "bin", ignore_errors=True)  # the dependencies' console scripts (jmespath's jp.py)
    keep_botocore_services(target, config["botocore-services"])
    excluded = {ROOT / path for path in config["exclude-paths"]}
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_file() and not _skip(path) and not _excluded(path, excluded):
                destination = target / path.relative_to(ROOT)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, destination)
    compile_bytecode(target, str(config["python-version"]))


def write_zip(source: Path, output: Path) -> str:
    """Zip ``source`` reproducibly into ``output``; returns the zip's SHA-256."""
    output.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix != ".pyo")
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
    try:
        digest = build(args.output)
    except PackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = args.output.stat().st_size / 1_048_576
    print(f"{args.output} {size:.1f} MiB sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
