"""The ``outbox replay`` command: arguments, confirmation, progress, output, checkpoint file and exit code.

It turns the command line into a ``Selection`` (times and durations as an operator types them),
composes the replay on the table and queue it names, and runs ``outbox.service.replay``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outbox.compose import replay_clients, replay_reader, replay_relay, replay_source
from outbox.domain.errors import OutboxError
from outbox.domain.layout import DEFAULT_BUCKETS, TableLayout
from outbox.logs import configure_logging
from outbox.ports import OutboxReader, SweepSource
from outbox.service.relay import Relay
from outbox.service.replay import FLIP_FROM, MODES, Checkpoint, Replayer, Selection, Summary, Target

if TYPE_CHECKING:
    from outbox.adapters.sweep import DynamoDBSweepSource

SELECTION_FLAGS = ("since", "until", "message_id", "ids_file", "group_key")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class ReplayUsageError(ValueError):
    """A selection that cannot be right: reported as one line, exit 2, nothing sent."""


def parse_duration(text: str) -> timedelta:
    """``90s``, ``5m``, ``2h``, ``7d`` or ``0``."""
    if text.strip() == "0":
        return timedelta(0)
    match = _DURATION.match(text.strip())
    if not match:
        raise ReplayUsageError(f"not a duration: {text!r} (use e.g. 30s, 5m, 2h, 7d)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_time(text: str, now: datetime) -> datetime:
    """ISO 8601 (UTC when no offset is given) or a duration ago such as ``2h``."""
    try:
        return now - parse_duration(text)
    except ReplayUsageError:
        pass
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ReplayUsageError(f"not a time: {text!r} (use ISO 8601 or a duration such as 2h)") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def selection_of(
    *,
    since: str | None,
    until: str | None,
    min_age: str,
    status: str,
    message_ids: tuple[str, ...] = (),
    group_key: str | None = None,
    now: datetime | None = None,
) -> Selection:
    """The selection the command line describes; ReplayUsageError when it cannot be right."""
    now = now or datetime.now(UTC)
    if status not in MODES:
        raise ReplayUsageError(f"unknown status {status!r}: use PENDING, FAILED or ANY")
    start = parse_time(since, now) if since else None
    end = parse_time(until, now) if until else None
    if start is not None and start > (end or now):
        raise ReplayUsageError("--since is after --until")
    return Selection.window(
        since=start,
        until=end,
        min_age=parse_duration(min_age),
        status=status,
        message_ids=message_ids,
        group_key=group_key,
        now=now,
    )


def save_checkpoint(checkpoint: Checkpoint, path: Path) -> None:
    """Write atomically (a rename), so an interrupt mid-write never leaves a torn file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(checkpoint.to_dict(), indent=2))
    tmp.replace(path)


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``; ReplayUsageError saying what is wrong when it is not one."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayUsageError(f"cannot read checkpoint {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        line = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ReplayUsageError(f"checkpoint {path} is not JSON{line}: not a file outbox replay wrote") from exc
    try:
        return Checkpoint.from_dict(data)
    except KeyError as exc:
        raise ReplayUsageError(f"checkpoint {path} has no {exc.args[0]!r}: not a file outbox replay wrote") from exc
    except (ValueError, TypeError, AttributeError) as exc:
        raise ReplayUsageError(f"checkpoint {path} is malformed ({exc}): not a file outbox replay wrote") from exc


def _usage(message: str) -> int:
    print(f"outbox replay: error: {message}", file=sys.stderr)
    return 2


def _read_ids(path: str | None) -> tuple[str, ...]:
    if path is None:
        return ()
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ReplayUsageError(f"cannot read --ids-file {path}: {reason}") from exc
    return tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def _checkpoint(args: argparse.Namespace) -> Checkpoint:
    if args.resume:
        if any(getattr(args, flag) for flag in SELECTION_FLAGS):
            raise ReplayUsageError("--resume takes its selection from the checkpoint; drop the selection flags")
        return load_checkpoint(Path(args.resume))
    selection = selection_of(
        since=args.since,
        until=args.until,
        min_age=args.min_age,
        status=args.status,
        message_ids=(*args.message_id, *_read_ids(args.ids_file)),
        group_key=args.group_key,
    )
    return Checkpoint(selection)


def _must_ask(args: argparse.Namespace, selection: Selection) -> bool:
    """Whether to ask before sending: --status ANY re-sends delivered messages, unless --yes or a dry run.

    A resumed replay was confirmed when it started (a checkpoint exists only past that point), so
    the resume hint it prints works as printed, on a terminal or not.
    """
    return selection.status == "ANY" and not args.yes and not args.dry_run and not args.resume


def _answered_yes() -> bool:
    """Ask on stderr (stdout may be the --json report, redirected), read the answer from the terminal."""
    print("--status ANY sends messages again even if they were delivered. Continue? [y/N] ", end="", file=sys.stderr)
    sys.stderr.flush()
    return input().strip().lower() in {"y", "yes"}


def _usage_problem(args: argparse.Namespace, selection: Selection) -> str | None:
    """What is wrong with the arguments beyond the selection, or None."""
    if not args.table_name:
        return "no table: set OUTBOX_TABLE_NAME or pass --table-name"
    if not args.dry_run and not args.queue_url:
        return "no queue: set OUTBOX_QUEUE_URL or pass --queue-url"
    if args.batch_size > 10:
        return "--batch-size is at most 10 (SendMessageBatch's limit)"
    if args.rate is not None and args.rate <= 0:
        return "--rate must be positive"
    if not args.resume and not args.dry_run and Path(args.checkpoint).exists():
        return f"{args.checkpoint} holds an interrupted replay: --resume it, or remove the file"
    if _must_ask(args, selection) and not sys.stdin.isatty():
        return "--status ANY re-sends delivered messages: confirm, or pass --yes"
    return None


def _shows_progress(args: argparse.Namespace) -> bool:
    """The progress bar: on a terminal, unless the output is per message (--json, --dry-run) or --verbose."""
    return not (args.json or args.dry_run or args.verbose) and sys.stderr.isatty()


def _configure_logs(args: argparse.Namespace) -> None:
    """Log lines on stderr, never stdout (the report): none while the progress bar shows, so no line tears it.

    --verbose shows them at LOG_LEVEL (default INFO) instead of the bar; otherwise WARNING and up.
    """
    if args.verbose:
        level = os.environ.get("LOG_LEVEL") or "INFO"
    else:
        level = "CRITICAL" if _shows_progress(args) else "WARNING"  # the relay logs nothing CRITICAL
    configure_logging(sys.stderr, level=level)


def run_replay_command(args: argparse.Namespace) -> int:
    """Run ``outbox replay``; the exit code: 0 done (or declined), 1 some failed, 2 bad usage, 130 interrupted."""
    try:
        checkpoint = _checkpoint(args)
    except ReplayUsageError as exc:
        return _usage(str(exc))
    problem = _usage_problem(args, checkpoint.selection)
    if problem:
        return _usage(problem)
    if _must_ask(args, checkpoint.selection) and not _answered_yes():
        print("outbox replay: nothing sent", file=sys.stderr)  # the answer the user chose, not an error
        return 0
    _configure_logs(args)

    if args.resume and checkpoint.target and checkpoint.target.table != args.table_name:  # before any request
        return _usage(f"{args.resume} is a replay of table {checkpoint.target.table!r}, not {args.table_name!r}")
    clients = replay_clients(args.region)
    layout = TableLayout(args.table_name, args.hash_key, args.range_key)
    pending = replay_source(layout, clients)
    try:
        layout = layout.with_buckets(_buckets(args, pending))
        target = Target(args.table_name, None if args.dry_run else args.queue_url, layout.buckets)
        mismatch = checkpoint.target.mismatch(target) if checkpoint.target and args.resume else None
    except ReplayUsageError as exc:
        return _usage(str(exc))
    if mismatch:
        return _usage(f"{args.resume} is a replay of {mismatch}: resume it with the same table, queue and buckets")
    checkpoint.target = target
    reader = replay_reader(layout, clients)
    relay = None
    if not args.dry_run:
        expected = FLIP_FROM[checkpoint.selection.status]
        relay = replay_relay(
            layout, clients, queue_url=args.queue_url, batch_entries=args.batch_size, expected=expected
        )

    stop = threading.Event()
    # Ctrl-C and SIGTERM (a terminal closed, a container stopped) both finish the batch in flight,
    # then write the checkpoint and the summary.
    previous = {sig: signal.signal(sig, lambda _s, _f: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    path = Path(args.resume or args.checkpoint)
    try:
        summary = _run(args, Sources(reader, pending), relay, checkpoint, stop=stop, path=path)
    except OutboxError as exc:
        if args.dry_run:
            print(f"outbox replay: {exc.detail}", file=sys.stderr)
            return 1
        save_checkpoint(checkpoint, path)
        print(f"outbox replay: {exc.detail}; resume with: outbox replay --resume {path}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if relay is not None:
            relay.close()
    return _finish(args, summary, checkpoint, path)


def _finish(args: argparse.Namespace, summary: Summary, checkpoint: Checkpoint, path: Path) -> int:
    """The checkpoint kept (with the resume hint) or removed, the lines on stderr, the summary; the exit code."""
    if (summary.interrupted or summary.stopped) and not args.dry_run:  # a dry run never writes a checkpoint
        save_checkpoint(checkpoint, path)
        why = "interrupted" if summary.interrupted else "SQS refused a request, so the run stopped"
        print(f"outbox replay: {why}; resume with: outbox replay --resume {path}", file=sys.stderr)
    elif path.exists() and not args.dry_run:
        path.unlink()
    if summary.not_found:
        print(f"outbox replay: {summary.not_found} of the message ids asked for have no outbox entry", file=sys.stderr)
    _print_summary(args, summary)
    return summary.exit_code()


@dataclass(frozen=True)
class Sources:
    """Where replay reads: the outbox entries, and the pending index (a group's older messages go first)."""

    reader: OutboxReader
    pending: SweepSource


def _run(
    args: argparse.Namespace,
    sources: Sources,
    relay: Relay | None,
    checkpoint: Checkpoint,
    *,
    stop: threading.Event,
    path: Path,
) -> Summary:
    reader = sources.reader

    def save(point: Checkpoint) -> None:
        if not args.dry_run:
            save_checkpoint(point, path)

    if not _shows_progress(args):
        report = _json_line if args.json else _would_send_line if args.dry_run else _nothing
        return Replayer(
            reader, relay, batch_size=args.batch_size, rate=args.rate, report=report, stop=stop, pending=sources.pending
        ).run(checkpoint, save)
    selection = checkpoint.selection
    buckets = [reader.bucket_of_group(selection.group_key)] if selection.group_key is not None else None
    total = len(selection.message_ids) or reader.count(selection.since, selection.until + "~", buckets=buckets)
    with _progress(total, checkpoint.summary.scanned) as update:

        def tick(point: Checkpoint) -> None:
            save(point)
            update(point.summary.scanned)

        replayer = Replayer(
            reader, relay, batch_size=args.batch_size, rate=args.rate, stop=stop, pending=sources.pending
        )
        return replayer.run(checkpoint, tick)


def _progress(total: int, completed: int) -> AbstractContextManager[Callable[[int], None]]:
    """A progress bar on stderr taking the count scanned: rich's with the cli extra, else a plain one."""
    try:
        from rich.console import Console  # noqa: PLC0415 - rich is optional (the cli extra)
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )
    except ImportError:
        return _plain_progress(total, completed)

    @contextmanager
    def bar() -> Iterator[Callable[[int], None]]:
        columns = (TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as progress:  # stdout: the report
            task = progress.add_task("replay", total=total, completed=completed)
            yield lambda scanned: progress.update(task, completed=scanned)

    return bar()


@contextmanager
def _plain_progress(total: int, completed: int, *, every_s: float = 0.2) -> Iterator[Callable[[int], None]]:
    """Without rich: ``replay N/TOTAL`` rewritten in place on one stderr line, erased at the end."""
    shown = ""
    last = float("-inf")

    def update(scanned: int) -> None:
        nonlocal shown, last
        now = time.monotonic()
        if now - last >= every_s or scanned >= total:
            text = f"replay {scanned}/{total}"
            sys.stderr.write("\r" + text.ljust(len(shown)))
            sys.stderr.flush()
            shown, last = text, now

    update(completed)
    try:
        yield update
    finally:
        sys.stderr.write("\r" + " " * len(shown) + "\r")
        sys.stderr.flush()


def _json_line(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def _nothing(_: dict[str, Any]) -> None:
    return None


def _would_send_line(line: dict[str, Any]) -> None:
    """A dry run names every message it would send, one per line."""
    if line.get("action") == "would_send":
        print(f"would send {line['message_id']}", flush=True)


def _buckets(args: argparse.Namespace, source: DynamoDBSweepSource) -> int:
    """The bucket count the table keeps (``--buckets``, whose default is OUTBOX_BUCKETS, must agree); else --buckets."""
    stored = source.stored_buckets()
    given: int | None = args.buckets
    if stored is not None and given is not None and given != stored:
        raise ReplayUsageError(f"the table keeps its outbox in {stored} buckets, not {given}: drop --buckets")
    return stored or given or DEFAULT_BUCKETS


def _print_summary(args: argparse.Namespace, summary: Summary) -> None:
    figures = asdict(summary)
    if args.json:
        print(json.dumps({"summary": figures}), flush=True)
        return
    shown = ["scanned", "selected", "would_send" if args.dry_run else "sent", "already_done", "failed"]
    shown += ["not_found"] if summary.not_found else []
    print(", ".join(f"{name.replace('_', ' ')} {figures[name]}" for name in shown))
