"""The ``outbox`` command: operator and developer tools."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

from outbox import __version__
from outbox.adapters.aws import dynamodb_client, sqs_client
from outbox.bootstrap import bootstrap
from outbox.domain.errors import OutboxError


def _bootstrap(args: argparse.Namespace) -> int:
    if args.endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
    resources = bootstrap(
        dynamodb_client(args.region),
        sqs_client(args.region),
        table_name=args.table_name,
        queue_name=args.queue_name,
        fifo=args.fifo,
    )
    for name, value in resources.environment(args.endpoint_url).items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="outbox", description=__doc__)
    parser.add_argument("--version", action="version", version=f"outbox {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    boot = commands.add_parser("bootstrap", help="create the table and queues (idempotent); print the environment")
    boot.add_argument("--endpoint-url", help="AWS endpoint (a local emulator); default: AWS itself")
    boot.add_argument("--region", default=None, help="AWS region (default: the environment's)")
    boot.add_argument("--table-name", default="outbox")
    boot.add_argument("--queue-name", default="outbox-messages")
    boot.add_argument("--fifo", action="store_true", help="make the main queue and its DLQ FIFO")
    boot.set_defaults(run=_bootstrap)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; errors are one line on stderr and a non-zero exit."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except OutboxError as exc:
        print(f"outbox {args.command}: {exc.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
