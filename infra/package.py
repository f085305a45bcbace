"""``make package``: the Lambda zip of this repository's handlers (outbox.lambda_package does the work).

One zip serves the API, worker, consumer, sweeper and dead-letter functions (they differ only in
handler): the outbox library less what Lambda never runs, the entry points of this repository's
``worker/`` (never in the wheel: they are this module's, not the library's), and the run-time
dependencies locked in ``infra/lambda-requirements.txt`` (``make lock`` derives it from the
development lock: the versions the tests ran against, resolved for Lambda's platform), for the
architecture and Python of ``[tool.outbox.lambda-package]`` in pyproject.toml. A user's own
consumer zip comes from the same code through ``outbox package``.

    python -m infra.package [--output build/lambda/outbox.zip]   # make package
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

from outbox.domain.errors import PackageError
from outbox.lambda_package import Source, Target, build_zip

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "build" / "lambda" / "outbox.zip"


def package_config() -> dict[str, Any]:
    """``[tool.outbox.lambda-package]`` of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(project["tool"]["outbox"]["lambda-package"])


def target(config: dict[str, Any] | None = None) -> Target:
    """The Lambda side the package is built for."""
    config = config or package_config()
    return Target(
        architecture=str(config["architecture"]),
        python_version=str(config["python-version"]),
        botocore_services=tuple(config["botocore-services"]),
        only_called_operations=bool(config.get("only-called-operations", False)),
    )


def lock_path(config: dict[str, Any]) -> Path:
    """The lock file the package installs from."""
    return ROOT / str(config["lock"])


def entry_points() -> Source:
    """The repository's ``worker/`` folder: the Lambda entry points, at the zip's root beside ``outbox/``."""
    return Source(ROOT / "worker", ROOT)


def build(output: Path = DEFAULT_OUTPUT) -> str:
    """Build the zip of this checkout's library and handlers; returns its SHA-256."""
    config = package_config()
    return build_zip(output, requirements=lock_path(config), sources=[entry_points()], target=target(config))


def main(argv: list[str] | None = None) -> int:
    """Command line: build the zip and print its path, size and SHA-256."""
    parser = argparse.ArgumentParser(description="Build the Lambda zip of the outbox handlers.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    try:
        digest = build(args.output)
    except PackageError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    size = args.output.stat().st_size / 1_048_576
    print(f"{args.output} {size:.1f} MiB sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
