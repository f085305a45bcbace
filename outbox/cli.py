"""The ``outbox`` command: operator and developer tools."""

from __future__ import annotations

import argparse
import errno
import importlib.util
import os
import shlex
import signal
import sys
import textwrap
import threading
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError

from outbox import __version__, capacity
from outbox.adapters.aws import new_session
from outbox.bootstrap import bootstrap
from outbox.domain.errors import ConfigurationError, OutboxError
from outbox.domain.layout import DEFAULT_HASH_KEY, DEFAULT_RANGE_KEY

NO_REGION = "no AWS region: set AWS_DEFAULT_REGION (or AWS_REGION), or pass --region"
NO_CREDENTIALS = (
    "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (any values for a local"
    " --endpoint-url), or AWS_PROFILE"
)


def aws_region(region: str | None) -> str:
    """The region a command uses, once credentials are known to resolve; else a ConfigurationError saying what to set.

    ``region`` (``--region``), else ``AWS_REGION`` (as the handlers read it), else botocore's own:
    ``AWS_DEFAULT_REGION`` or the profile's. Checked before the first request, so a missing
    setting is one line, not botocore's NoRegionError or NoCredentialsError.
    """
    try:
        session = new_session()
        found = region or os.environ.get("AWS_REGION") or session.get_config_variable("region")
        if not found:
            raise ConfigurationError(NO_REGION)
        if session.get_credentials() is None:
            raise ConfigurationError(NO_CREDENTIALS)
    except BotoCoreError as exc:  # a profile that does not exist, a config file that does not parse
        raise ConfigurationError(f"AWS configuration: {exc}") from exc
    return str(found)


def _point_at_aws(args: argparse.Namespace) -> None:
    """``--endpoint-url`` for every client the command makes, and the region it resolves to."""
    if args.endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url  # botocore reads it for every client
    elif os.environ.get("AWS_ENDPOINT_URL"):
        try:
            endpoint_url(os.environ["AWS_ENDPOINT_URL"])
        except argparse.ArgumentTypeError as exc:
            raise ConfigurationError(f"AWS_ENDPOINT_URL {exc}") from exc
    args.region = aws_region(args.region)


def _exports(environment: Mapping[str, str]) -> str:
    """Shell ``export`` lines, one per variable, quoted."""
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in environment.items())


def _bootstrap(args: argparse.Namespace) -> int:
    from outbox.compose import Clients

    clients = Clients(args.region)
    resources = bootstrap(
        clients.dynamodb,
        clients.sqs,
        table_name=args.table_name,
        queue_name=args.queue_name,
        fifo=args.fifo,
        hash_key=args.hash_key,
        range_key=args.range_key,
        buckets=args.buckets,
    )
    print(_exports(resources.environment(args.endpoint_url)))
    if args.expected_rate is not None:  # what bootstrap decides: the buckets and the queue (docs/capacity.md)
        settings = capacity.Deployment(
            buckets=args.buckets,
            fifo=args.fifo,
            stream_parallelization_factor=None,
            worker_concurrency=None,
            consumer_concurrency=None,
        )
        warning = capacity.assess(settings, args.expected_rate).warning()
        if warning:
            print(warning, file=sys.stderr)
    return 0


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    """SIGINT (Ctrl-C) and SIGTERM stop ``outbox dev``."""
    raise KeyboardInterrupt


# What the local stack imports beyond the library: the `local` extra (`outbox demo` also draws with rich).
LOCAL_EXTRA = ("moto", "waitress", "rich")


def _without_local_extra(command: str) -> bool:
    """Whether the `local` extra is missing: then says, in one line on stderr, how to install it."""
    missing = [name for name in LOCAL_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"outbox {command}: the local stack needs {', '.join(missing)}: pip install 'dynamodb-outbox[local]'",
            file=sys.stderr,
        )
    return bool(missing)


def _dev(args: argparse.Namespace) -> int:
    if _without_local_extra("dev"):
        return 1
    from outbox.local.stack import LOCAL_CREDENTIALS, LocalStack, StackConfig

    # OUTBOX_DELIVERY names your module: found in the current directory, as `python -m` and
    # other development servers (uvicorn's --app-dir) find an app, not only where pip put things.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    config = StackConfig(
        api_port=args.port, fifo=args.fifo, table_name=args.table_name, hash_key=args.hash_key, range_key=args.range_key
    )
    stack = LocalStack(config)
    # Ctrl-C and SIGTERM stop it, as the banner says, also when started as a script's background job
    # (`outbox dev &`), which inherits SIGINT ignored and would otherwise never see it.
    previous = {signum: signal.signal(signum, _interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            resources = stack.start()
        except (OSError, RuntimeError) as exc:  # start() has stopped whatever it had started
            print(f"outbox dev: {_why_not_started(args.port, exc)}", file=sys.stderr)
            return 1
        endpoint = {"AWS_ENDPOINT_URL": stack.emulator.endpoint_url}
        environment = {**endpoint, **LOCAL_CREDENTIALS, **resources.environment()}
        print(_dev_banner(stack.api_url, environment), file=sys.stderr, flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        print("outbox dev: stopping", file=sys.stderr, flush=True)
    finally:
        # A second Ctrl-C or SIGTERM would cut the stop short and leave the emulator's process
        # running: stopping takes a few bounded seconds (STOP_WAIT_S), so it is not interrupted.
        for signum in previous:
            signal.signal(signum, signal.SIG_IGN)
        try:
            stack.stop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    return 0


def _why_not_started(port: int, exc: OSError | RuntimeError) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return f"port {port} is already in use: stop what listens there, or pass another --port (0: any free one)"
    if isinstance(exc, OSError):
        return f"cannot listen on port {port}: {exc.strerror or exc}"
    return f"could not start: {exc}"


def _dev_banner(url: str, environment: Mapping[str, str]) -> str:
    """How to call the API, and the environment that points another terminal's ``outbox`` at the emulator."""
    body = '{"channel": "sms", "recipient": "+14155550100", "body": "hello"}'
    return (
        f"outbox dev: API on {url} (Ctrl-C or SIGTERM stops it)\n"
        f"  curl -si -X POST {url}/messages -H 'content-type: application/json' -d '{body}'\n"
        f"  curl -s {url}/messages/<message_id>\n"
        "outbox dev: in another terminal, paste these, then outbox replay, sweep and bootstrap use this stack:\n"
        f"{_exports(environment)}"
    )


def _package(args: argparse.Namespace) -> int:
    from outbox.lambda_package import DEFAULT_SERVICES, Source, Target, build_zip

    target = Target(args.architecture, args.python_version, (*DEFAULT_SERVICES, *args.botocore_service))
    sources = [Source(folder.resolve(), folder.resolve()) for folder in args.source]
    digest = build_zip(args.output, requirements=args.requirements, sources=sources, target=target)
    size = args.output.stat().st_size / 1_048_576
    print(f"{args.output} {size:.1f} MiB sha256 {digest}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    if _without_local_extra("demo"):
        return 1
    from outbox.local.demo import run_demo

    return run_demo(args.n, concurrency=args.concurrency, timeout_s=args.timeout, fifo=args.fifo)


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr and exit 2 (argparse would print the whole usage first).

    Descriptions and epilogs keep their line breaks (the ``exit codes:`` table).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _replay(args: argparse.Namespace) -> int:
    from outbox.replay_cli import run_replay_command

    return run_replay_command(args)


def _sweep(args: argparse.Namespace) -> int:
    import json
    from dataclasses import replace

    from outbox.compose import build_sweeper
    from outbox.logs import configure_logging
    from outbox.settings import Settings

    os.environ["OUTBOX_METRICS"] = "off"  # CloudWatch metric lines are for Lambda's log, not a terminal
    configure_logging(sys.stderr, level="WARNING")  # stdout holds the report only
    environment = {**os.environ, **{k: v for k, v in _sweep_environment(args).items() if v}}
    settings = Settings.from_env(environment, require_queue=True)  # OUTBOX_SWEEP_MIN_AGE_SECONDS, as deployed
    if args.min_age is not None:
        settings = replace(settings, sweep_min_age=args.min_age)
    report = build_sweeper(settings).sweep()
    figures = report.figures()
    if args.json:
        print(json.dumps(figures))
    else:
        print(", ".join(f"{name.replace('_', ' ')} {value}" for name, value in figures.items()))
    return 1 if report.failed else 0


def _sweep_environment(args: argparse.Namespace) -> dict[str, str | None]:
    return {
        "OUTBOX_TABLE_NAME": args.table_name,
        "OUTBOX_QUEUE_URL": args.queue_url,
        "OUTBOX_HASH_KEY": args.hash_key,
        "OUTBOX_RANGE_KEY": args.range_key,
        "AWS_REGION": args.region,
    }


def duration(text: str) -> timedelta:
    """An argparse type: a duration such as 30s, 5m, 2h or 7d."""
    from outbox.replay_cli import ReplayUsageError, parse_duration

    try:
        return parse_duration(text)
    except ReplayUsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65_535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, not {text!r}")
    return value


def endpoint_url(text: str) -> str:
    """An argparse type: an http(s) URL with a host, as botocore takes for an endpoint."""
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise argparse.ArgumentTypeError(f"must be an http:// or https:// URL with a host, not {text!r}")
    return text


def _text(*paragraphs: str) -> str:
    """Help text: each paragraph wrapped at 78 columns, lines kept (RawDescriptionHelpFormatter)."""
    return "\n\n".join(textwrap.fill(" ".join(paragraph.split()), 78) for paragraph in paragraphs)


def _exit_codes(*codes: tuple[int, str]) -> str:
    """The ``exit codes:`` epilog of a command's --help."""
    width = max(len(str(code)) for code, _ in codes)
    lines = [
        textwrap.fill(meaning, 78, initial_indent=f"  {code:<{width}}  ", subsequent_indent=" " * (width + 4))
        for code, meaning in codes
    ]
    return "exit codes:\n" + "\n".join(lines)


BAD_USAGE = (
    2,
    "bad usage or missing configuration, such as no AWS region or credentials (one line on stderr; nothing done)",
)


def _add_aws_options(group: argparse._ActionsContainer) -> None:
    """--endpoint-url and --region, shared by every command that talks to AWS."""
    group.add_argument(
        "--endpoint-url",
        type=endpoint_url,
        metavar="URL",
        help="send every AWS request to URL (a local emulator, such as outbox dev's); "
        "default: AWS_ENDPOINT_URL, else AWS itself",
    )
    group.add_argument(
        "--region", help="AWS region; default: AWS_REGION, else AWS_DEFAULT_REGION, else the profile's region"
    )


def _add_bootstrap_parser(commands: argparse._SubParsersAction[OneLineParser]) -> None:
    boot = commands.add_parser(
        "bootstrap",
        help="create the table and queues (idempotent); print the environment to export",
        description=_text(
            """Create the outbox table (stream, TTL, the record index) and the queues (the main queue,
            its dead-letter queue and the stream's on-failure queue) unless they exist, on AWS or any
            endpoint; then print, on stdout, export lines for the OUTBOX_* variables the handlers and
            the other commands read. Safe to run again.""",
        ),
        epilog=_exit_codes(
            (0, "the table and queues exist; their environment is printed"),
            (1, "AWS refused or failed a request (one line on stderr)"),
            BAD_USAGE,
        ),
    )
    _add_aws_options(boot)
    boot.add_argument("--table-name", default="outbox", help="the table's name (default outbox)")
    boot.add_argument(
        "--queue-name",
        default="outbox-messages",
        help="the main queue's name; the others add -dlq and -stream-failures (default outbox-messages)",
    )
    boot.add_argument("--fifo", action="store_true", help="make the main queue and its DLQ FIFO (ordered per group)")
    boot.add_argument("--hash-key", default=DEFAULT_HASH_KEY, help="the table's hash key attribute name (default pk)")
    boot.add_argument(
        "--range-key", default=DEFAULT_RANGE_KEY, help="the table's range key attribute name (default sk)"
    )
    boot.add_argument(
        "--buckets", type=positive_int, default=16, help="outbox partitions, kept in the table once (default 16)"
    )
    boot.add_argument(
        "--expected-rate",
        type=positive_int,
        metavar="MSG_PER_S",
        help="the messages a second you plan for: one warning line if the buckets or the queue cannot carry it",
    )
    boot.set_defaults(run=_bootstrap, aws=True)


def _add_local_parsers(commands: argparse._SubParsersAction[OneLineParser]) -> None:
    dev = commands.add_parser(
        "dev",
        help="run the whole pipeline locally on an embedded emulator until Ctrl-C or SIGTERM",
        description=_text(
            """Start an embedded moto server (DynamoDB, DynamoDB Streams, SQS) in a child process,
            create the table and queues on it, and run the HTTP API on 127.0.0.1, the stream worker,
            the consumers and the sweeper with the real Lambda handlers. No AWS account is used.""",
            """At start it prints, on stderr, how to call the API and the export lines that point
            outbox replay, sweep and bootstrap in another terminal at this stack. JSON logs go to
            stdout (LOG_LEVEL). Ctrl-C or SIGTERM stops everything it started.""",
            """The consumers call the function OUTBOX_DELIVERY names (package.module:function,
            imported from the current directory first, as python -m would), else the reference
            notification delivery.""",
        ),
        epilog=_exit_codes(
            (0, "stopped by Ctrl-C or SIGTERM"),
            (
                1,
                "could not start: the local extra is missing, the port is in use, or the emulator did not start"
                " (one line on stderr)",
            ),
            (2, "bad usage"),
        ),
    )
    dev.add_argument(
        "--port",
        type=port_number,
        default=8080,
        help="port of the HTTP API on 127.0.0.1 (default 8080; 0: any free port)",
    )
    dev.add_argument("--fifo", action="store_true", help="make the main queue FIFO (ordered per group)")
    dev.add_argument("--table-name", default="outbox", help="your table's name (default outbox)")
    dev.add_argument("--hash-key", default="pk", help="your table's hash key attribute name (default pk)")
    dev.add_argument("--range-key", default="sk", help="your table's range key attribute name (default sk)")
    dev.set_defaults(run=_dev, aws=False)

    demo = commands.add_parser(
        "demo",
        help="send N messages through the local pipeline and check the invariants",
        description=_text(
            """Start the same local pipeline as outbox dev, send N messages with concurrent clients
            (repeated Idempotency-Keys and invalid requests included), wait until every accepted
            message is COMPLETED, print a summary and check the invariants.""",
        ),
        epilog=_exit_codes(
            (0, "every invariant held"),
            (
                1,
                "an invariant was violated (each is listed), the pipeline did not finish in time, or the"
                " local extra is missing",
            ),
            (2, "bad usage"),
        ),
    )
    demo.add_argument("-n", type=positive_int, default=1000, help="messages to send (default 1000)")
    demo.add_argument("--concurrency", type=positive_int, default=16, help="parallel HTTP clients (default 16)")
    demo.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for completion (default 120)")
    demo.add_argument("--fifo", action="store_true", help="make the main queue FIFO (ordered per group)")
    demo.set_defaults(run=_demo, aws=False)


def _add_package_parser(commands: argparse._SubParsersAction[OneLineParser]) -> None:
    package = commands.add_parser(
        "package",
        help="build a reproducible Lambda zip of your code, your locked requirements and the outbox library",
        description=_text(
            """Build the zip of a Lambda function of yours (your consumer, with its delivery code):
            the contents of each --source folder at the zip's root, the hash-locked --requirements
            installed as wheels for Lambda's platform, and this outbox library less what Lambda
            never runs (unless the requirements pin dynamodb-outbox). Bytecode is compiled for the
            runtime's Python (this interpreter's), entries are sorted and timestamped, so the same
            inputs give the same bytes.""",
            """botocore's service models are kept for dynamodb, dynamodbstreams, sqs, sts, sso and
            sso-oidc only; add each service your code calls with --botocore-service. A client your
            sources make for a service left out fails the build, naming the file and line.""",
        ),
        epilog=_exit_codes(
            (0, "built: the zip's path, size and SHA-256 on stdout"),
            (1, "cannot build: a requirement without a pin or hash, a service left out, another Python (one line)"),
            (2, "bad usage"),
        ),
    )
    package.add_argument(
        "--source", type=Path, action="append", default=[], metavar="DIR", help="a folder of your code (repeatable)"
    )
    package.add_argument(
        "--requirements", type=Path, required=True, metavar="FILE", help="hash-locked requirements file"
    )
    package.add_argument("-o", "--output", type=Path, required=True, metavar="ZIP", help="where to write the zip")
    package.add_argument("--architecture", choices=("arm64", "x86_64"), default="arm64", help="default arm64")
    package.add_argument(
        "--python-version",
        default=f"{sys.version_info.major}.{sys.version_info.minor}",
        help="the runtime's Python; must be this interpreter's (default)",
    )
    package.add_argument(
        "--botocore-service", action="append", default=[], metavar="NAME", help="another service model to keep"
    )
    package.set_defaults(run=_package, aws=False)


def _add_replay_parser(commands: argparse._SubParsersAction[OneLineParser]) -> None:
    replay = commands.add_parser(
        "replay",
        help="re-drive outbox entries from the table through the relay (PENDING by default)",
        description=_text(
            """Re-drive messages from the table through the worker's own relay: the same envelope and
            deduplication id, the same conditional flip, a history line by replay. PENDING messages
            by default, FAILED ones once their cause is fixed, or ANY status. It reads the table by
            bucket and time range, never the stream, and is safe beside the live worker.""",
            """On a terminal it shows a progress bar and no log lines (--verbose shows the log lines
            instead); it ends with one summary line. Ctrl-C finishes the batch in flight and writes
            a checkpoint that --resume continues.""",
        ),
        epilog=_exit_codes(
            (0, "every selected message was handled, or you answered no at the --status ANY prompt (nothing sent)"),
            (1, "some messages failed, or SQS refused a request: run it again, or --resume the checkpoint"),
            (2, "bad usage or missing configuration (one line on stderr; nothing sent)"),
            (130, "interrupted by Ctrl-C: the checkpoint is written; outbox replay --resume FILE continues"),
        ),
    )
    pick = replay.add_argument_group("selection")
    pick.add_argument(
        "--since", metavar="TIME", help="entries from this ISO 8601 time or duration ago (2h, 30m, 7d); default: all"
    )
    pick.add_argument("--until", metavar="TIME", help="entries up to this ISO 8601 time or duration ago; default: now")
    pick.add_argument("--message-id", metavar="ID", action="append", default=[], help="only this message (repeatable)")
    pick.add_argument("--ids-file", metavar="FILE", help="only the message ids in this file, one per line")
    pick.add_argument("--group-key", metavar="KEY", help="only the messages of this group")
    pick.add_argument(
        "--status",
        default="PENDING",
        type=str.upper,
        help="PENDING (default), FAILED (re-drive quarantined messages) or ANY (asks first: re-sends delivered ones)",
    )
    pick.add_argument(
        "--min-age", metavar="AGE", default="5m", help="skip entries younger than this (default 5m: the worker's turn)"
    )
    run = replay.add_argument_group("running")
    run.add_argument("--dry-run", action="store_true", help="list what would be sent; send and write nothing")
    run.add_argument("--rate", type=float, default=None, help="at most this many messages per second")
    run.add_argument("--batch-size", type=positive_int, default=10, help="messages per SendMessageBatch (1-10)")
    run.add_argument("--yes", action="store_true", help="do not ask before --status ANY")
    run.add_argument("--json", action="store_true", help="one JSON line per message and a final summary object")
    run.add_argument(
        "-v", "--verbose", action="store_true", help="log lines (JSON, at LOG_LEVEL or INFO) on stderr, no progress bar"
    )
    run.add_argument("--resume", metavar="FILE", help="continue an interrupted replay from its checkpoint")
    run.add_argument(
        "--checkpoint",
        metavar="FILE",
        default="outbox-replay.checkpoint.json",
        help="where an interrupted replay writes its checkpoint (default outbox-replay.checkpoint.json)",
    )
    where = replay.add_argument_group("where (default: the OUTBOX_* environment)")
    where.add_argument(
        "--table-name", default=os.environ.get("OUTBOX_TABLE_NAME"), help="the outbox table (OUTBOX_TABLE_NAME)"
    )
    where.add_argument(
        "--queue-url", default=os.environ.get("OUTBOX_QUEUE_URL"), help="the queue to send to (OUTBOX_QUEUE_URL)"
    )
    where.add_argument(
        "--buckets",
        type=positive_int,
        default=os.environ.get("OUTBOX_BUCKETS") or None,
        help="the API's bucket count, if the table does not keep its count (OUTBOX_BUCKETS, else 16)",
    )
    where.add_argument(
        "--hash-key",
        default=os.environ.get("OUTBOX_HASH_KEY") or DEFAULT_HASH_KEY,
        help="the table's hash key attribute name (OUTBOX_HASH_KEY, else pk)",
    )
    where.add_argument(
        "--range-key",
        default=os.environ.get("OUTBOX_RANGE_KEY") or DEFAULT_RANGE_KEY,
        help="the table's range key attribute name (OUTBOX_RANGE_KEY, else sk)",
    )
    _add_aws_options(where)
    replay.set_defaults(run=_replay, aws=True)


def _add_sweep_parser(commands: argparse._SubParsersAction[OneLineParser]) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="relay every message PENDING longer than --min-age, as the scheduled sweeper does",
        description=_text(
            """Run one sweep with the deployed sweeper's code: relay every message PENDING longer than
            --min-age from its record (even when its outbox entry expired), in group order, and print
            the report on stdout. Log lines (WARNING and above) go to stderr.""",
        ),
        epilog=_exit_codes(
            (0, "every PENDING message found was relayed (or there was none)"),
            (1, "some messages could not be relayed (the next sweep tries again), or AWS failed"),
            BAD_USAGE,
        ),
    )
    sweep.add_argument(
        "--min-age",
        metavar="AGE",
        type=duration,
        default=None,
        help="relay only messages PENDING longer than this (30s, 5m, 2h; default OUTBOX_SWEEP_MIN_AGE_SECONDS as"
        " deployed, else 5m)",
    )
    sweep.add_argument("--json", action="store_true", help="the report as one JSON object")
    sweep.add_argument("--table-name", help="the outbox table (default: OUTBOX_TABLE_NAME)")
    sweep.add_argument("--queue-url", help="the queue to relay to (default: OUTBOX_QUEUE_URL)")
    sweep.add_argument("--hash-key", help="the table's hash key attribute name (default: OUTBOX_HASH_KEY, else pk)")
    sweep.add_argument("--range-key", help="the table's range key attribute name (default: OUTBOX_RANGE_KEY, else sk)")
    _add_aws_options(sweep)
    sweep.set_defaults(run=_sweep, aws=True)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = OneLineParser(
        prog="outbox",
        description=_text(
            """Operator and developer tools of the DynamoDB outbox: create its table and queues, run
            the pipeline locally, re-drive or sweep messages. Run outbox COMMAND --help for what a
            command does, its options and its exit codes.""",
        ),
        epilog=_exit_codes(
            (0, "done"),
            (1, "failed (one line on stderr says why)"),
            (2, "bad usage or missing configuration (one line on stderr)"),
            (130, "interrupted"),
        ),
    )
    parser.add_argument("--version", action="version", version=f"outbox {__version__}")
    commands = parser.add_subparsers(
        title="commands", dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser
    )
    _add_bootstrap_parser(commands)
    _add_local_parsers(commands)
    _add_package_parser(commands)
    _add_replay_parser(commands)
    _add_sweep_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; errors are one line on stderr and a non-zero exit."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv:  # `outbox` alone: the usage and the commands, not argparse's "arguments are required"
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        if args.aws:
            _point_at_aws(args)
        code: int = args.run(args)
    except ConfigurationError as exc:
        print(f"outbox {args.command}: {exc.detail}", file=sys.stderr)
        return 2
    except OutboxError as exc:
        print(f"outbox {args.command}: {exc.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
