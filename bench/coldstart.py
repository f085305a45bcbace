"""Cold start of each Lambda handler from the zip, against a bare function on the same boto3 clients.

The zip (``make package``) is extracted to a read-only directory, as Lambda's /var/task is; each
sample is a new interpreter (``-I -S -B`` and ``PYTHONDONTWRITEBYTECODE=1``: only the shipped
bytecode is used, nothing is written) that times, with ``perf_counter``, the import of the handler's
module plus a first invocation that needs no AWS call: ``GET /messages/x`` for the API (not a
message id: a 404 before any read), an empty stream batch for the worker, an empty SQS batch for
the consumer. The sweeper reads the table on every run, so only its import is timed. The bare
function imports boto3 and makes the DynamoDB and SQS clients as ``outbox.adapters.aws`` does
(a session each, the same Config) and returns.

The handlers make their clients (and the API binds its PynamoDB models) at the first call that
needs them, so these first invocations make none. ``--first-aws-call`` adds a row per handler
that goes on, in the same process, to make what its first AWS call would (its clients; the API's
models), sending no request: where the cost moved. An audit hook in every child counts socket
connects and name lookups: each case must make none. The cases run interleaved, round by round;
the figures are medians over the rounds, and each ratio the median of the rounds' ratios (handler over
the bare function started just before it), as bench.run does: this VM's speed drifts within a minute.
CPU time (``process_time``) of the same span is reported beside the wall time: a busy machine
stretches wall time far more than CPU time.

    python -m bench.coldstart [--zip build/lambda/outbox.zip] [--runs 15] [--first-aws-call] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import py_compile
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ZIP = ROOT / "build" / "lambda" / "outbox.zip"
BARE = "bare_handler"
# No network: fake credentials, a region, and an endpoint nothing listens on (a call would fail, and be counted).
ENVIRONMENT = {
    "AWS_REGION": "eu-west-1",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "OUTBOX_TABLE_NAME": "outbox",
    "OUTBOX_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/outbox.fifo",
    "OUTBOX_ID_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:outbox-id-secret-AbCdEf",
    "OUTBOX_METRICS": "off",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
}
BARE_SOURCE = '''"""The baseline: boto3 and the two clients, made as outbox.adapters.aws makes them."""
import boto3
from botocore.config import Config


def _config():
    return Config(
        parameter_validation=False,
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=2,
        read_timeout=5,
        max_pool_connections=32,
    )


CLIENTS = []


def handler(event, context):
    if not CLIENTS:
        CLIENTS.append(boto3.session.Session(region_name=None).client("dynamodb", config=_config()))
        CLIENTS.append(boto3.session.Session(region_name=None).client("sqs", config=_config()))
    return {"batchItemFailures": []}
'''
API_GET: dict[str, object] = {
    "version": "2.0",
    "rawPath": "/messages/x",
    "headers": {},
    "requestContext": {"http": {"method": "GET", "path": "/messages/x"}},
}


@dataclass(frozen=True)
class Case:
    """One function to start cold: its handler, the event of its first invocation (None: import only)."""

    name: str
    handler: str
    event: Mapping[str, object] | None
    expect: object  # the first invocation's result (the API's: its status code)
    then: str = ""  # statements timed after the invocation, with ``module`` the handler's module


CASES = (
    Case("bare boto3 (dynamodb + sqs clients)", f"{BARE}.handler", {}, {"batchItemFailures": []}),
    Case("api: GET /messages/x", "outbox.api.handler", API_GET, 404),
    Case("worker: empty stream batch", "worker.handler.handler", {"Records": []}, {"batchItemFailures": []}),
    Case("consumer: empty SQS batch", "worker.consumer.handler", {"Records": []}, {"batchItemFailures": []}),
    Case("sweeper: import only", "worker.sweeper.handler", None, None),
    Case("dead-letter: empty SQS batch", "worker.dead_letter.handler", {"Records": []}, {"batchItemFailures": []}),
)
# What each handler's first AWS call makes before its request: its clients (and the API's models).
_MODELS = (
    "from outbox.adapters.models import bind_models\nbind_models(store.table_name, store.hash_key, store.range_key)"
)
FIRST_AWS_CALL = (
    Case(
        "api: … then its client made, models bound",
        "outbox.api.handler",
        API_GET,
        404,
        then=f"store = module.default_api().acceptor.store\nstore.client\n{_MODELS}",
    ),
    Case(
        "worker: … then its 2 clients made",
        "worker.handler.handler",
        {"Records": []},
        {"batchItemFailures": []},
        then="relay = module.default_worker().relay\nrelay.store.client\nrelay.publisher.client",
    ),
    Case(
        "consumer: … then its 2 clients made",
        "worker.consumer.handler",
        {"Records": []},
        {"batchItemFailures": []},
        then="consumer = module.default_consumer()\nconsumer.store.client\nconsumer.visibility.client",
    ),
    Case(
        "sweeper: … then its 2 clients made",
        "worker.sweeper.handler",
        None,
        None,
        then="from outbox.compose import Clients\nclients = Clients()\nclients.dynamodb\nclients.sqs",
    ),
    Case(
        "dead-letter: … then its 2 clients made",
        "worker.dead_letter.handler",
        {"Records": []},
        {"batchItemFailures": []},
        then="dead_letters = module.default_dead_letters()\ndead_letters.store.client\ndead_letters.visibility.client",
    ),
)

CHILD = """
import sys, time
network = []
sys.addaudithook(
    lambda event, args: network.append(event) if event in ("socket.connect", "socket.getaddrinfo") else None
)
sys.path[:0] = [{task!r}, {bare!r}]
start, cpu = time.perf_counter(), time.process_time()
import importlib
module = importlib.import_module({module!r})
handler = getattr(module, {function!r})
imported = time.perf_counter()
result = handler({event!r}, None) if {invoke!r} else None
exec({then!r}, {{"module": module}})
end, cpu_end = time.perf_counter(), time.process_time()
import json
if isinstance(result, dict) and "statusCode" in result:
    result = result["statusCode"]
origin = sys.modules["botocore"].__file__ if "botocore" in sys.modules else ""
print(json.dumps({{"import_s": imported - start, "total_s": end - start, "cpu_s": cpu_end - cpu, "result": result,
                  "network": network, "botocore": origin}}))
"""


@dataclass(frozen=True)
class Row:
    """One case's figures: medians over the rounds, in milliseconds."""

    name: str
    handler: str
    invoked: bool
    import_ms: float
    cold_ms: float  # import plus the first invocation (import only when not invoked)
    cold_min_ms: float
    cold_max_ms: float
    cpu_ms: float  # CPU time of the same span (less sensitive to a busy machine than wall time)
    process_ms: float  # the whole child process, interpreter start included
    ratio: float  # median over the rounds of cold_ms / the bare function's cold_ms in the same round
    cpu_ratio: float  # the same, of CPU time


@dataclass(frozen=True)
class ColdStart:
    """The benchmark's result."""

    runs: int
    python: str
    zip_path: str
    zip_mib: float
    calibration_s: tuple[float, float]  # the loop's time before and after
    rows: tuple[Row, ...]

    def table(self) -> str:
        """The markdown table of the rows."""
        lines = [
            "| function (first invocation) | import (ms) | cold: import + first call (ms, median) | range (ms)"
            " | CPU (ms) | process wall (ms) | / bare (wall) | / bare (CPU) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            lines.append(
                f"| {row.name} | {row.import_ms:.0f} | {row.cold_ms:.0f} | {row.cold_min_ms:.0f}–{row.cold_max_ms:.0f}"
                f" | {row.cpu_ms:.0f} | {row.process_ms:.0f} | {row.ratio:.2f}× | {row.cpu_ratio:.2f}× |"
            )
        return "\n".join(lines)

    def summary(self) -> str:
        """The table with its calibration line."""
        before, after = self.calibration_s
        return (
            f"Python {self.python}, {self.runs} cold processes per function, interleaved; zip {self.zip_mib:.1f} MiB."
            f' Calibration (`python -c "sum(i*i for i in range(10**7))"`): {before:.2f} s before, {after:.2f} s after.'
            f"\n\n{self.table()}"
        )


def calibration() -> float:
    """Wall time of the fixed loop in a fresh interpreter, in seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "sum(i*i for i in range(10**7))"], check=True)
    return time.perf_counter() - start


@contextmanager
def read_only_task(zip_path: Path) -> Iterator[tuple[Path, Path]]:
    """The zip extracted, and the bare function compiled, in read-only directories (as /var/task)."""
    with tempfile.TemporaryDirectory(prefix="outbox-coldstart-") as tmp:
        task, bare = Path(tmp) / "task", Path(tmp) / "bare"
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(task)
        bare.mkdir()
        (bare / f"{BARE}.py").write_text(BARE_SOURCE)
        py_compile.compile(
            str(bare / f"{BARE}.py"), doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
        )
        folders = [task, bare, *(p for p in task.rglob("*") if p.is_dir()), *(p for p in bare.rglob("*") if p.is_dir())]
        for path in (*task.rglob("*"), *bare.rglob("*")):
            if path.is_file():
                path.chmod(0o444)
        for folder in folders:
            folder.chmod(0o555)
        try:
            yield task, bare
        finally:
            for folder in folders:
                folder.chmod(0o755)


def sample(case: Case, task: Path, bare: Path) -> tuple[float, float, float, float]:
    """One cold process: (import s, import + first call s, its CPU s, process wall s)."""
    module, function = case.handler.rsplit(".", 1)
    script = CHILD.format(
        task=str(task),
        bare=str(bare),
        module=module,
        function=function,
        event=case.event,
        invoke=case.event is not None,
        then=case.then,
    )
    start = time.perf_counter()
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-I", "-S", "-B", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**ENVIRONMENT, "PATH": os.environ.get("PATH", "")},
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{case.handler} failed: {result.stderr[-2000:]}")
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    if answer["result"] != case.expect:
        raise RuntimeError(f"{case.handler} answered {answer['result']!r}, expected {case.expect!r}")
    if answer["network"]:
        raise RuntimeError(f"{case.handler} touched the network: {answer['network']}")
    if not answer["botocore"].startswith(str(task)):
        raise RuntimeError(f"{case.handler} imported botocore from {answer['botocore']}, not the zip")
    return float(answer["import_s"]), float(answer["total_s"]), float(answer["cpu_s"]), wall


def measure(zip_path: Path = DEFAULT_ZIP, runs: int = 15, cases: tuple[Case, ...] = CASES) -> ColdStart:
    """``runs`` interleaved rounds of one cold process per case; the bare function must come first."""
    if not zip_path.exists():
        from infra import package  # noqa: PLC0415 - build only when no zip is given

        package.build(zip_path)
    before = calibration()
    samples: dict[str, list[tuple[float, float, float, float]]] = {case.name: [] for case in cases}
    with read_only_task(zip_path) as (task, bare):
        for case in cases:  # one unrecorded start each: the OS caches the files, as a warm Lambda host would
            sample(case, task, bare)
        for _ in range(runs):
            for case in cases:
                samples[case.name].append(sample(case, task, bare))
    after = calibration()
    rows: list[Row] = []
    baseline = samples[cases[0].name]
    for case in cases:
        taken = samples[case.name]
        cold = [s[1] * 1000 for s in taken]
        rows.append(
            Row(
                name=case.name,
                handler=case.handler,
                invoked=case.event is not None,
                import_ms=statistics.median(s[0] for s in taken) * 1000,
                cold_ms=statistics.median(cold),
                cold_min_ms=min(cold),
                cold_max_ms=max(cold),
                cpu_ms=statistics.median(s[2] for s in taken) * 1000,
                process_ms=statistics.median(s[3] for s in taken) * 1000,
                ratio=statistics.median(s[1] / b[1] for s, b in zip(taken, baseline, strict=True)),
                cpu_ratio=statistics.median(s[2] / b[2] for s, b in zip(taken, baseline, strict=True)),
            )
        )
    return ColdStart(
        runs=runs,
        python=sys.version.split()[0],
        zip_path=str(zip_path),
        zip_mib=zip_path.stat().st_size / 1_048_576,
        calibration_s=(before, after),
        rows=tuple(rows),
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: measure and print the markdown table (or JSON)."""
    parser = argparse.ArgumentParser(description="Cold start of each Lambda handler against a bare boto3 function.")
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="the package (built when missing)")
    parser.add_argument("--runs", type=int, default=15, help="cold processes per function")
    parser.add_argument(
        "--first-aws-call", action="store_true", help="add rows that go on to make what a first AWS call makes"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.zip, args.runs, CASES + FIRST_AWS_CALL if args.first_aws_call else CASES)
    print(json.dumps(asdict(result), indent=2) if args.json else result.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
