"""Cold start to the first request served: each Lambda handler from the zip against a bare boto3 function.

What a user feels is the first request a new container serves, through its AWS calls, so that is
what is timed: in a new interpreter (``-I -S -B``, ``PYTHONDONTWRITEBYTECODE=1``: only shipped
bytecode, nothing written), with ``perf_counter`` and ``process_time``, the import of the handler's
module plus its first invocation, up to the answer:

- the API's first ``GET /messages/{id}`` of a stored message (200: one GetItem) and first ``POST
  /messages`` (202: the bucket-count read, then the TransactWriteItems);
- the worker's first stream batch of one outbox INSERT (SendMessageBatch, then the flip);
- the consumer's first SQS copy (the lease, the reference delivery, the completion).

Every AWS call goes to a loopback endpoint in this process (``bench.aws_stub``: canned DynamoDB,
SQS, SSM and Secrets Manager answers, a record of the operations asked); an audit hook in each
child fails the run on a connection anywhere else. The record, the stream image and the SQS copy
are made by the outbox's own code here, so they are what the deployed functions would see.

The baseline is the function a user would write without the outbox: ``import boto3``, a DynamoDB
and an SQS client made with ``boto3.client`` (one default session, the handlers' ``Config``), and
the same GetItem. Its boto3 is Lambda's own runtime's, as the runtime ships it: the same locked
boto3 and botocore as the zip (``infra/lambda-requirements.txt``), every botocore model, with
bytecode, installed once into ``build/coldstart/`` read-only. The handlers run from the zip, as
deployed (its trimmed botocore included).

The rows where a first invocation makes no AWS call (``GET /messages/x``, a 404 before any read;
an empty batch; the sweeper's import) are only a breakdown of where the time goes
(``--breakdown``): no user waits on them alone. The cases run interleaved, round by round (this
VM's speed drifts within a minute); figures are medians over the rounds, and each ratio the median
of the rounds' ratios (the case over the bare function started just before it). The calibration
line (``bench.calibration``, CPU seconds of a fixed loop) is taken before and after.

    python -m bench.coldstart [--zip build/lambda/outbox.zip] [--runs 15] [--breakdown] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import py_compile
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import aws_stub
from bench.calibration import calibration

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ZIP = ROOT / "build" / "lambda" / "outbox.zip"
LOCK = ROOT / "infra" / "lambda-requirements.txt"
RUNTIME_CACHE = ROOT / "build" / "coldstart"
BARE = "bare_handler"
TABLE = "outbox"
QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/outbox.fifo"
# The outbox's own dependencies: the rest of the lock is boto3 and what it needs (the runtime's).
NOT_IN_RUNTIME = ("pynamodb", "structlog")
ENVIRONMENT = {
    "AWS_REGION": "eu-west-1",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_LAMBDA_FUNCTION_NAME": "outbox-coldstart",
    "OUTBOX_TABLE_NAME": TABLE,
    "OUTBOX_QUEUE_URL": QUEUE_URL,
    "OUTBOX_ID_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:outbox-id-secret-AbCdEf",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
}
BARE_SOURCE = '''"""The baseline: boto3, its DynamoDB and SQS clients (the handlers' Config), one GetItem."""
import os

import boto3
from botocore.config import Config

CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5,
                max_pool_connections=32)
dynamodb = boto3.client("dynamodb", config=CONFIG)
sqs = boto3.client("sqs", config=CONFIG)


def handler(event, context):
    item = dynamodb.get_item(TableName=os.environ["OUTBOX_TABLE_NAME"], Key=event["key"], ConsistentRead=True)
    return {"statusCode": 200 if "Item" in item else 404}
'''


@dataclass(frozen=True)
class Case:
    """One function started cold: its handler, its first event (None: import only), what it must answer."""

    name: str
    handler: str
    event: Mapping[str, Any] | None
    expect: object  # the first invocation's result (an HTTP answer's: its status code)
    needs: tuple[str, ...] = ()  # AWS operations the first request must have made (``dynamodb:GetItem``)
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """What the stub holds and what the first requests carry: one stored message, made by the outbox's code."""

    items: tuple[dict[str, Any], ...]
    key_names: tuple[str, str]
    record_key: dict[str, Any]
    message_id: str
    stream_record: dict[str, Any]
    sqs_record: dict[str, Any]


def scenario() -> Scenario:
    """A message as the API would accept it (anonymous caller, a group): its record, entry, stream image, copy."""
    from outbox.adapters.aws import Lazy  # noqa: PLC0415 - the bench's own process: the library as installed
    from outbox.adapters.store import DynamoDBMessageStore  # noqa: PLC0415
    from outbox.compose import table_layout  # noqa: PLC0415
    from outbox.domain.caller import ANONYMOUS  # noqa: PLC0415
    from outbox.domain.envelope import NOTIFICATION_TYPE  # noqa: PLC0415
    from outbox.domain.id_secret import IdSecret  # noqa: PLC0415
    from outbox.domain.keys import utc_now  # noqa: PLC0415
    from outbox.service.accept import new_message  # noqa: PLC0415
    from outbox.settings import Settings  # noqa: PLC0415

    settings = Settings(table_name=TABLE, queue_url=QUEUE_URL)

    def no_client() -> Any:
        raise AssertionError("the scenario is built without AWS")

    store = DynamoDBMessageStore(table_layout(settings), Lazy(no_client))
    # The anonymous caller's message, its owner keyed with the id secret the stub's Secrets Manager holds.
    id_keys = IdSecret(aws_stub.SECRET_VALUE).keys(utc_now())
    message = new_message(NOTE, type=NOTIFICATION_TYPE, group_key="coldstart", scope=ANONYMOUS.principal, keys=id_keys)
    prepared = store.prepare(message.envelope, idempotency_key=None, by="api", owner=message.owner)
    record = prepared.transact_items[0]["Put"]["Item"]
    entry = prepared.transact_items[1]["Put"]["Item"]
    keys = (settings.hash_key, settings.range_key)
    meta = store.layout.meta_key() | {"buckets": {"N": str(store.layout.buckets)}}
    stream_record = {
        "eventID": "1",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "eventSourceARN": f"arn:aws:dynamodb:eu-west-1:123456789012:table/{TABLE}/stream/2026-01-01T00:00:00.000",
        "dynamodb": {
            "ApproximateCreationDateTime": int(time.time()),
            "Keys": {name: entry[name] for name in keys},
            "NewImage": entry,
            "SequenceNumber": "100000000000000000001",
            "SizeBytes": len(json.dumps(entry)),
            "StreamViewType": "NEW_IMAGE",
        },
    }
    body = message.envelope.body()
    sqs_record = {
        "messageId": "7d1f0c3e-0000-4000-8000-000000000001",
        "receiptHandle": "AQEB-coldstart-receipt",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(int(time.time() * 1000)),
            "MessageGroupId": "coldstart",
            "MessageDeduplicationId": message.envelope.message_id,
            "SequenceNumber": "18880000000000000001",
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:outbox.fifo",
        "awsRegion": "eu-west-1",
    }
    return Scenario(
        items=(record, meta),
        key_names=keys,
        record_key={name: record[name] for name in keys},
        message_id=message.envelope.message_id,
        stream_record=stream_record,
        sqs_record=sqs_record,
    )


EAGER = {"OUTBOX_EAGER_INIT": "true"}
NOTE = {"channel": "sms", "recipient": "+14155550100", "body": "cold start"}
_NO_RECORDS: dict[str, Any] = {"Records": []}
_NO_FAILURES: dict[str, Any] = {"batchItemFailures": []}


def _http(method: str, path: str, body: object = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "version": "2.0",
        "rawPath": path,
        "headers": {"content-type": "application/json"} if body is not None else {},
        "requestContext": {"http": {"method": method, "path": path}, "requestId": "coldstart-request"},
    }
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def cases(found: Scenario) -> tuple[tuple[Case, ...], tuple[Case, ...]]:
    """The first-request cases (the bare function first), and the breakdown's."""
    first = (
        Case(
            "bare boto3: 2 clients, GetItem",
            f"{BARE}.handler",
            {"key": found.record_key},
            200,
            ("dynamodb:GetItem",),
        ),
        Case(
            "api: first GET /messages/{id}",
            "worker.api.handler",
            _http("GET", f"/messages/{found.message_id}"),
            200,
            ("secretsmanager:GetSecretValue", "dynamodb:GetItem"),
        ),
        Case(
            "api: first POST /messages",
            "worker.api.handler",
            _http("POST", "/messages", NOTE),
            202,
            ("secretsmanager:GetSecretValue", "dynamodb:TransactWriteItems"),
        ),
        Case(
            "worker: first batch (1 INSERT)",
            "worker.handler.handler",
            {"Records": [found.stream_record]},
            _NO_FAILURES,
            ("sqs:SendMessageBatch", "dynamodb:UpdateItem"),
        ),
        Case(
            "consumer: first copy delivered",
            "worker.consumer.handler",
            {"Records": [found.sqs_record]},
            _NO_FAILURES,
            ("dynamodb:UpdateItem",),
        ),
    )
    breakdown = (
        Case("api: GET /messages/x (404, no AWS call)", "worker.api.handler", _http("GET", "/messages/x"), 404),
        Case("worker: empty batch", "worker.handler.handler", _NO_RECORDS, _NO_FAILURES),
        Case("consumer: empty batch", "worker.consumer.handler", _NO_RECORDS, _NO_FAILURES),
        Case("dead-letter: empty batch", "worker.dead_letter.handler", _NO_RECORDS, _NO_FAILURES),
        Case("sweeper: import only", "worker.sweeper.handler", None, None),
    )
    # SnapStart's init phase (OUTBOX_EAGER_INIT): the import does the set-up; the first call is what a
    # container restored from the snapshot still does.
    eager = tuple(
        Case(f"{case.name}, set up at init (SnapStart)", case.handler, case.event, case.expect, case.needs, EAGER)
        for case in first[1:]
    )
    return first, breakdown + eager


CHILD = """
import sys, time
connections = []
sys.addaudithook(lambda event, args: connections.append(repr(args[1])) if event == "socket.connect" else None)
sys.path[:0] = {path!r}


class Context:
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    function_name = "outbox-coldstart"

    def get_remaining_time_in_millis(self):
        return 30_000


start, cpu = time.perf_counter(), time.process_time()
import importlib
module = importlib.import_module({module!r})
handler = getattr(module, {function!r})
imported, imported_cpu = time.perf_counter(), time.process_time()
result = handler({event!r}, Context()) if {invoke!r} else None
end, cpu_end = time.perf_counter(), time.process_time()
import json
if isinstance(result, dict) and "statusCode" in result:
    result = result["statusCode"]
origin = sys.modules["botocore"].__file__ if "botocore" in sys.modules else ""
print(json.dumps({{"import_s": imported - start, "total_s": end - start, "cpu_s": cpu_end - cpu,
                  "import_cpu_s": imported_cpu - cpu, "result": result, "connections": connections,
                  "botocore": origin}}))
"""


@dataclass(frozen=True)
class Sample:
    """One cold process's figures, in seconds, and the AWS operations it made."""

    import_s: float
    total_s: float
    cpu_s: float
    process_s: float
    operations: tuple[str, ...]


@dataclass(frozen=True)
class Row:
    """One case's figures: medians over the rounds, in milliseconds."""

    name: str
    handler: str
    invoked: bool
    operations: tuple[str, ...]  # the AWS requests of its first invocation
    import_ms: float
    call_ms: float  # the first invocation alone
    cold_ms: float  # import plus the first invocation, to its answer (import only when not invoked)
    cold_min_ms: float
    cold_max_ms: float
    cpu_ms: float  # CPU time of the same span (less sensitive to a busy machine than wall time)
    process_ms: float  # the whole child process, interpreter start included
    ratio: float  # median over the rounds of cold_ms / the bare function's cold_ms in the same round
    cpu_ratio: float  # the same, of CPU time


@dataclass(frozen=True)
class ColdStart:
    """The benchmark's result: the first-request rows and (if asked for) the breakdown's."""

    runs: int
    python: str
    zip_path: str
    zip_mib: float
    calibration_s: tuple[float, float]  # bench.calibration's loop, CPU seconds, before and after
    rows: tuple[Row, ...]
    breakdown: tuple[Row, ...] = ()

    @staticmethod
    def _table(rows: tuple[Row, ...]) -> str:
        lines = [
            "| function (first invocation) | AWS requests | import (ms) | first call (ms) | cold: import + first call"
            " (ms, median) | range (ms) | CPU (ms) | process wall (ms) | / bare (wall) | / bare (CPU) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            calls = ", ".join(op.split(":", 1)[1] for op in row.operations) or "none"
            lines.append(
                f"| {row.name} | {calls} | {row.import_ms:.0f} | {row.call_ms:.0f} | {row.cold_ms:.0f}"
                f" | {row.cold_min_ms:.0f}–{row.cold_max_ms:.0f} | {row.cpu_ms:.0f} | {row.process_ms:.0f}"
                f" | {row.ratio:.2f}× | {row.cpu_ratio:.2f}× |"
            )
        return "\n".join(lines)

    def table(self) -> str:
        """The markdown table of the first-request rows."""
        return self._table(self.rows)

    def summary(self) -> str:
        """The tables with the calibration line."""
        before, after = self.calibration_s
        text = (
            f"Python {self.python}, {self.runs} cold processes per case, interleaved; zip {self.zip_mib:.1f} MiB."
            f" Calibration (bench.calibration, CPU s): {before:.2f} before, {after:.2f} after."
            f"\n\n{self.table()}"
        )
        if self.breakdown:
            text += (
                "\n\nBreakdown: first invocations that make no AWS call; the first requests with the set-up"
                " done at init (OUTBOX_EAGER_INIT, as under SnapStart: the first call is what a restored"
                " container still does); other zips' first requests (--against):\n\n"
            ) + self._table(self.breakdown)
        return text


def runtime_boto3(lock: Path = LOCK) -> Path:
    """boto3 as Lambda's runtime ships it: the lock's boto3 closure, every botocore model, with bytecode.

    Built once per lock into ``build/coldstart/`` (a pip install from the lock, hashes checked).
    """
    from outbox.lambda_package import Target, compile_bytecode, install_requirements  # noqa: PLC0415

    blocks = re.split(r"\n(?=\S)", lock.read_text())
    kept = [b for b in blocks if b.strip() and not b.startswith(("#", *(f"{n}==" for n in NOT_IN_RUNTIME)))]
    text = "\n".join(kept) + "\n"
    folder = RUNTIME_CACHE / f"runtime-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    if (folder / "boto3").is_dir():
        return folder
    RUNTIME_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="runtime-", dir=RUNTIME_CACHE) as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(text)
        staging = Path(tmp) / "site"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        install_requirements(staging, requirements, Target(python_version=version))
        compile_bytecode(staging, version)
        staging.rename(folder)
    return folder


@contextmanager
def read_only_zip(zip_path: Path) -> Iterator[Path]:
    """Another zip extracted, read-only."""
    with tempfile.TemporaryDirectory(prefix="outbox-coldstart-other-") as tmp:
        task = Path(tmp) / "task"
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(task)
        folders = [task, *(p for p in task.rglob("*") if p.is_dir())]
        for path in task.rglob("*"):
            if path.is_file():
                path.chmod(0o444)
        for folder in folders:
            folder.chmod(0o555)
        try:
            yield task
        finally:
            for folder in folders:
                folder.chmod(0o755)


@contextmanager
def read_only_task(zip_path: Path, runtime: Path) -> Iterator[tuple[Path, Path, Path]]:
    """The zip extracted, the runtime's boto3 copied and the bare function compiled, read-only (as /var/task)."""
    with tempfile.TemporaryDirectory(prefix="outbox-coldstart-") as tmp:
        task, bare, site = Path(tmp) / "task", Path(tmp) / "bare", Path(tmp) / "runtime"
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(task)
        bare.mkdir()
        (bare / f"{BARE}.py").write_text(BARE_SOURCE)
        py_compile.compile(
            str(bare / f"{BARE}.py"), doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
        )
        subprocess.run(["cp", "-a", str(runtime), str(site)], check=True)  # noqa: S603, S607 - a plain copy
        roots = (task, bare, site)
        folders = [*roots, *(p for root in roots for p in root.rglob("*") if p.is_dir())]
        for path in (p for root in roots for p in root.rglob("*")):
            if path.is_file():
                path.chmod(0o444)
        for folder in folders:
            folder.chmod(0o555)
        try:
            yield task, bare, site
        finally:
            for folder in folders:
                folder.chmod(0o755)


def sample(case: Case, folders: tuple[Path, Path, Path], stub: aws_stub.AwsStub, endpoint: str) -> Sample:
    """One cold process of ``case``, checked: its answer, its AWS calls, where its botocore came from."""
    task, bare, site = folders
    is_bare = case.handler.startswith(f"{BARE}.")
    module, function = case.handler.rsplit(".", 1)
    script = CHILD.format(
        path=[str(bare), str(site)] if is_bare else [str(task)],
        module=module,
        function=function,
        event=case.event,
        invoke=case.event is not None,
    )
    stub.take_operations()
    start = time.perf_counter()
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-I", "-S", "-B", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint, **case.environment, "PATH": os.environ.get("PATH", "")},
    )
    wall = time.perf_counter() - start
    operations = tuple(stub.take_operations())
    if result.returncode != 0:
        raise RuntimeError(f"{case.name} failed: {result.stderr[-2000:]}")
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    if answer["result"] != case.expect:
        raise RuntimeError(
            f"{case.name} answered {answer['result']!r}, expected {case.expect!r} (AWS calls: {operations};"
            f" output: {result.stdout[-1500:]})"
        )
    port = endpoint.rsplit(":", 1)[1]
    elsewhere = [c for c in answer["connections"] if c != f"('127.0.0.1', {port})"]
    if elsewhere:
        raise RuntimeError(f"{case.name} connected elsewhere than the loopback stub: {elsewhere}")
    missing = [op for op in case.needs if op not in operations]
    if missing:
        raise RuntimeError(f"{case.name} did not call {missing} (it called {operations})")
    expected_origin = site if is_bare else task
    if not answer["botocore"].startswith(str(expected_origin)):
        raise RuntimeError(f"{case.name} imported botocore from {answer['botocore']}, not {expected_origin}")
    return Sample(answer["import_s"], answer["total_s"], answer["cpu_s"], wall, operations)


def _row(case: Case, taken: list[Sample], baseline: list[Sample]) -> Row:
    cold = [s.total_s * 1000 for s in taken]
    return Row(
        name=case.name,
        handler=case.handler,
        invoked=case.event is not None,
        operations=taken[-1].operations,
        import_ms=statistics.median(s.import_s for s in taken) * 1000,
        call_ms=statistics.median(s.total_s - s.import_s for s in taken) * 1000,
        cold_ms=statistics.median(cold),
        cold_min_ms=min(cold),
        cold_max_ms=max(cold),
        cpu_ms=statistics.median(s.cpu_s for s in taken) * 1000,
        process_ms=statistics.median(s.process_s for s in taken) * 1000,
        ratio=statistics.median(s.total_s / b.total_s for s, b in zip(taken, baseline, strict=True)),
        cpu_ratio=statistics.median(s.cpu_s / b.cpu_s for s, b in zip(taken, baseline, strict=True)),
    )


def measure(
    zip_path: Path = DEFAULT_ZIP, runs: int = 15, *, breakdown: bool = False, against: tuple[Path, ...] = ()
) -> ColdStart:
    """``runs`` interleaved rounds of one cold process per case, the bare function first in each round.

    ``against``: other zips (an earlier build) whose first requests run in the same rounds, as rows of
    the breakdown named after the zip: what a change gained, measured in one run.
    """
    if not zip_path.exists():
        from infra import package  # noqa: PLC0415 - build only when no zip is given

        package.build(zip_path)
    runtime = runtime_boto3()
    found = scenario()
    first, extra = cases(found)
    chosen = first + (extra if breakdown else ())
    stub = aws_stub.AwsStub()
    for item in found.items:
        stub.seed(item, found.key_names)
    with contextlib.ExitStack() as stack:
        folders = stack.enter_context(read_only_task(zip_path, runtime))
        where = {case.name: folders for case in chosen}
        for other in against:
            task = stack.enter_context(read_only_zip(other))
            for case in first[1:]:
                named = Case(f"{case.name} [{other.name}]", case.handler, case.event, case.expect, case.needs)
                chosen += (named,)
                where[named.name] = (task, folders[1], folders[2])
        endpoint = stack.enter_context(aws_stub.serve(stub))
        before = calibration()
        samples: dict[str, list[Sample]] = {case.name: [] for case in chosen}
        for case in chosen:  # one unrecorded start each: the OS caches the files, as a warm Lambda host would
            sample(case, where[case.name], stub, endpoint)
        for _ in range(runs):
            for case in chosen:
                samples[case.name].append(sample(case, where[case.name], stub, endpoint))
        after = calibration()
    baseline = samples[first[0].name]
    rows = tuple(_row(case, samples[case.name], baseline) for case in first)
    extra_rows = tuple(_row(case, samples[case.name], baseline) for case in chosen[len(first) :])
    return ColdStart(
        runs=runs,
        python=sys.version.split()[0],
        zip_path=str(zip_path),
        zip_mib=zip_path.stat().st_size / 1_048_576,
        calibration_s=(before, after),
        rows=rows,
        breakdown=extra_rows,
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: measure and print the markdown tables (or JSON)."""
    parser = argparse.ArgumentParser(description="Each handler's first request served, against a bare boto3 function.")
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="the package (built when missing)")
    parser.add_argument("--runs", type=int, default=15, help="cold processes per case")
    parser.add_argument("--breakdown", action="store_true", help="add the first invocations that make no AWS call")
    parser.add_argument(
        "--against", type=Path, action="append", default=[], help="another zip whose first requests run alongside"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.zip, args.runs, breakdown=args.breakdown, against=tuple(args.against))
    print(json.dumps(asdict(result), indent=2) if args.json else result.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
