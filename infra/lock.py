"""``make lock``: every lock file of the repository, from one resolution of pyproject.toml.

``make`` installs from these files only (``pip install --require-hashes --no-deps``), so a release
upstream changes nothing until this command writes new locks:

- ``requirements/dev.txt``: the project with its ``cli`` and ``local`` extras and the ``dev`` group,
  for every platform (``--universal``); what ``make test`` and ``make demo`` run on.
- ``infra/lambda-requirements.txt``: the run-time dependencies for Lambda's platform, constrained to
  the versions of ``requirements/dev.txt``: the zip ships exactly what the tests ran against.
- ``requirements/lowest.txt``: the same as dev, with the lowest versions the project's direct
  dependencies allow (``make test-lowest`` holds the declared lower bounds to the tests).
- ``requirements/checkov.txt``: the ``checkov`` group alone (it pins an old boto3).
- ``requirements/uv.txt``: uv itself, the resolver these commands run.

Versions already locked are kept where they still fit; ``--upgrade`` takes the newest allowed.

    python -m infra.lock --uv .venv-uv/bin/uv [--upgrade]     # make lock / make upgrade
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON_VERSION = "3.11"  # the lowest Python the project supports: markers resolve from here up
DEV = "requirements/dev.txt"
# Lambda's architectures and the platform uv resolves wheels for.
LAMBDA_PLATFORMS = {"arm64": "aarch64-manylinux2014", "x86_64": "x86_64-manylinux2014"}
UV_VERSION = "0.13.9"


def lambda_settings() -> tuple[str, str, str]:
    """The Lambda package's lock path, uv platform and Python, from ``[tool.outbox.lambda-package]``."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["outbox"]["lambda-package"]
    return str(config["lock"]), LAMBDA_PLATFORMS[config["architecture"]], str(config["python-version"])


def pins(path: Path) -> dict[str, set[str]]:
    """``{name: versions}`` of a lock file (a universal lock may pin a name twice, under exclusive markers)."""
    found: dict[str, set[str]] = {}
    for name, version in re.findall(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)", path.read_text(), flags=re.MULTILINE):
        found.setdefault(name.lower().replace("_", "-"), set()).add(version)
    return found


def commands(uv: str, *, upgrade: bool) -> list[list[str]]:
    """The ``uv pip compile`` runs that write every lock, dev first (the Lambda lock is constrained by it)."""
    lambda_lock, platform, lambda_python = lambda_settings()
    base = [uv, "pip", "compile", "--quiet", "--generate-hashes", "--custom-compile-command", "make lock"]
    if upgrade:
        base.append("--upgrade")
    project = ["pyproject.toml", "--extra", "cli", "--extra", "local", "--group", "dev"]
    universal = ["--universal", "--python-version", PYTHON_VERSION]
    return [
        [*base, *universal, *project, "-o", DEV],
        [*base, *universal, *project, "--resolution", "lowest-direct", "-o", "requirements/lowest.txt"],
        [*base, *universal, "--group", "pyproject.toml:checkov", "-o", "requirements/checkov.txt"],
        [*base, "--python-platform", platform, "--python-version", lambda_python, "pyproject.toml",
         "--constraint", DEV, "-o", lambda_lock],
        [*base, *universal, "-", "-o", "requirements/uv.txt"],
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Command line: rewrite every lock file."""
    parser = argparse.ArgumentParser(description="Rewrite the repository's lock files from pyproject.toml.")
    parser.add_argument("--uv", required=True, help="the uv executable")
    parser.add_argument("--upgrade", action="store_true", help="take the newest versions allowed")
    args = parser.parse_args(argv)
    (ROOT / "requirements").mkdir(exist_ok=True)
    for command in commands(args.uv, upgrade=args.upgrade):
        stdin = f"uv=={UV_VERSION}\n" if "-" in command else None
        subprocess.run(command, check=True, cwd=ROOT, input=stdin, text=True)
        print(command[command.index("-o") + 1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
