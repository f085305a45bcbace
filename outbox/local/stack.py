"""LocalStack: the whole pipeline on one machine, each function built as its Lambda builds it.

The emulator runs in a child process; the HTTP API, the stream runner, the consumer runners, the
dead-letter queue's runner and the sweeper's schedule run as threads of this one. The API, the
stream worker, the consumer, the dead-letter function and the sweeper are built by
``outbox.compose`` from this stack's own ``Settings`` and, for each, its own ``Clients`` pointed
at this stack's emulator (Lambda runs each function in its own process), and invoked with
Lambda-shaped events and contexts. The process's environment is read for the
``OUTBOX_*`` settings a user may add, never written: two stacks can run in one process.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from outbox.bootstrap import DLQ_MAX_RECEIVE_COUNT, Resources, bootstrap
from outbox.compose import Clients, build_consumer, build_dead_letters, build_stream_worker, build_sweeper
from outbox.local.emulator import EmbeddedEmulator
from outbox.local.filters import stream_filter_pattern
from outbox.local.http import make_server, serve_in_thread
from outbox.local.sqs_runner import SqsRunner
from outbox.local.stream_runner import Invoke, LocalContext, MappingSettings, StreamRunner
from outbox.logs import bind_invocation, configure_logging
from outbox.notifications.api import MessagesApi, build_api
from outbox.notifications.delivery import deliver_notification
from outbox.service.consume import Consumer
from outbox.service.dead_letter import DeadLetters
from outbox.service.stream import StreamWorker
from outbox.service.sweep import Sweeper
from outbox.settings import Settings

log = structlog.get_logger("outbox.local")

REGION = "us-east-1"
# What another process (outbox replay, sweep and bootstrap in another terminal) needs beside the
# endpoint to reach the stack: the emulator takes any credentials.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
STOP_WAIT_S = 5.0  # how long stop() waits for the runners, before and again after the emulator stops


@dataclass(frozen=True)
class StackConfig:
    """How to run the local stack."""

    api_host: str = "127.0.0.1"
    api_port: int = 8080
    fifo: bool = False
    table_name: str = "outbox"
    queue_name: str = "outbox-messages"
    batch_size: int = 100
    poll_interval_s: float = 0.25
    consumers: int = 10  # the SQS mapping's maximum_concurrency in infra/terraform (consumer_maximum_concurrency)
    maximum_retry_attempts: int = 10
    retry_backoff_max_s: float = 5.0
    shard_refresh_s: float = 5.0  # Lambda lists a stream's shards now and then, not on every poll
    hash_key: str = "pk"
    range_key: str = "sk"
    sweep_interval_s: float = 60.0  # EventBridge Scheduler runs the deployed sweeper every 5 minutes
    sweep_min_age_s: int = 300  # OUTBOX_SWEEP_MIN_AGE_SECONDS, as deployed


@dataclass(frozen=True)
class Functions:
    """The functions of a started stack: each use case as its Lambda builds it, and the settings of all five."""

    settings: Settings
    api: MessagesApi
    worker: StreamWorker
    consumer: Consumer
    sweeper: Sweeper
    dead_letters: DeadLetters


class LocalStack:
    """Start and stop every part of the local pipeline.

    Once started: ``functions`` holds the five functions, ``clients`` the stack's own clients
    (bootstrap's and the runners', which play Lambda's pollers; a harness may read with them),
    and ``schedule`` is what the sweeper's schedule invokes (replace it to watch each run).
    """

    def __init__(self, config: StackConfig | None = None, *, environ: Mapping[str, str] | None = None) -> None:
        self.config = config or StackConfig()
        self.environ = os.environ if environ is None else environ  # read for OUTBOX_* a user adds, never written
        self.emulator = EmbeddedEmulator()
        self.resources: Resources | None = None
        self.schedule: Invoke = self._sweep
        self._functions: Functions | None = None
        self._clients: Clients | None = None
        self.stream_runner: StreamRunner | None = None
        self.consumer_runners: list[SqsRunner] = []
        self.dead_letter_runner: SqsRunner | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: Any = None
        self._serving = False  # shutdown() waits for serve_forever, so only a server that serves may be shut down

    @property
    def api_url(self) -> str:
        """Base URL of the HTTP API."""
        host, port = self._server.server_address[:2] if self._server else (self.config.api_host, self.config.api_port)
        return f"http://{host}:{port}"

    def require_resources(self) -> Resources:
        """The bootstrapped resources; only after start()."""
        if self.resources is None:
            raise RuntimeError("the local stack is not started")
        return self.resources

    @property
    def functions(self) -> Functions:
        """The API, worker, consumer, sweeper and dead-letter functions; only after start()."""
        if self._functions is None:
            raise RuntimeError("the local stack is not started")
        return self._functions

    @property
    def clients(self) -> Clients:
        """The stack's own clients on its emulator; only after start()."""
        if self._clients is None:
            raise RuntimeError("the local stack is not started")
        return self._clients

    def start(self) -> Resources:
        """Bind the API's port, then the emulator, resources, functions, the API, the stream runner and the consumers.

        The port is bound first, so a port in use fails (``OSError``) before anything runs; any
        later failure (or Ctrl-C) stops what had started, the emulator's process included, and
        raises again.
        """
        self._server = make_server(self.config.api_host, self.config.api_port, self._invoke_api)
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Resources:
        endpoint = self.emulator.start()
        clients = self._clients = _clients(endpoint)
        resources = bootstrap(
            clients.dynamodb,
            clients.sqs,
            table_name=self.config.table_name,
            queue_name=self.config.queue_name,
            fifo=self.config.fifo,
            hash_key=self.config.hash_key,
            range_key=self.config.range_key,
        )
        self.resources = resources
        settings = self._settings(resources, self._id_secret(clients))
        # Each function is built now, once, as Lambda's init phase would (not in the first
        # concurrent requests), on clients of its own.
        configure_logging()
        functions = self._functions = Functions(
            settings,
            api=build_api(settings, _clients(endpoint)),
            worker=build_stream_worker(settings, _clients(endpoint)),
            consumer=build_consumer(
                settings, _clients(endpoint), deliver=None if settings.delivery else deliver_notification
            ),
            sweeper=build_sweeper(settings, _clients(endpoint)),
            dead_letters=build_dead_letters(settings, _clients(endpoint)),
        )

        self._threads.append(serve_in_thread(self._server))
        self._serving = True
        mapping = MappingSettings(
            batch_size=self.config.batch_size,
            poll_interval_s=self.config.poll_interval_s,
            maximum_retry_attempts=self.config.maximum_retry_attempts,
            backoff_max_s=self.config.retry_backoff_max_s,
            on_failure_queue_url=resources.on_failure_queue_url,
            shard_refresh_s=self.config.shard_refresh_s,
            filter_pattern=stream_filter_pattern(self.config.hash_key),
        )
        worker = _function("worker", functions.worker.handle)
        self.stream_runner = StreamRunner(clients.streams, resources.stream_arn, worker, mapping, sqs=clients.sqs)
        self._spawn("stream-runner", self.stream_runner.run)
        consumer = _function("consumer", functions.consumer.handle)
        for index in range(self.config.consumers):
            runner = SqsRunner(clients.sqs, resources.queue_url, consumer)
            self.consumer_runners.append(runner)
            self._spawn(f"consumer-{index}", runner.run)
        dead_letters = _function("dead-letter", functions.dead_letters.handle)
        self.dead_letter_runner = SqsRunner(
            clients.sqs, resources.dlq_url, dead_letters, function_name="outbox-dead-letter"
        )
        self._spawn("dead-letter", self.dead_letter_runner.run)
        self._spawn("sweeper", self._sweep_every_interval)
        log.info("local_stack_started", api_url=self.api_url, endpoint_url=endpoint)
        return resources

    def _id_secret(self, clients: Clients) -> dict[str, str]:
        """The API's id secret, as deployed: a value generated now, in the emulator's Secrets Manager.

        ``OUTBOX_ID_SECRET`` in the environment is used instead, when set (ids that stay the same
        across restarts of the stack).
        """
        if self.environ.get("OUTBOX_ID_SECRET", "").strip():
            return {"OUTBOX_ID_SECRET_ARN": ""}
        created = clients.secretsmanager.create_secret(
            Name=f"{self.config.table_name}-id-secret-{secrets.token_hex(4)}", SecretString=secrets.token_urlsafe(48)
        )
        return {"OUTBOX_ID_SECRET_ARN": created["ARN"], "OUTBOX_ID_SECRET": ""}

    def _settings(self, resources: Resources, id_secret: Mapping[str, str]) -> Settings:
        """The functions' settings: the environment's OUTBOX_* under this stack's table, queue and keys, as deployed."""
        environment = {
            **self.environ,
            **resources.environment(),
            **id_secret,
            "AWS_REGION": REGION,
            "OUTBOX_SWEEP_MIN_AGE_SECONDS": str(self.config.sweep_min_age_s),
            "OUTBOX_MAX_RECEIVE_COUNT": str(DLQ_MAX_RECEIVE_COUNT),  # as the module sets it
        }
        return Settings.from_env(environment, require_queue=True)

    def _invoke_api(self, event: dict[str, Any], context: Any) -> Mapping[str, Any]:
        """The API function, as the HTTP server invokes it."""
        bind_invocation(getattr(context, "aws_request_id", None), handler="api")
        return self.functions.api.handle(event)

    def _sweep(self, _event: Any, context: Any) -> dict[str, Any]:
        """The sweeper function: one sweep; its figures are the result."""
        bind_invocation(getattr(context, "aws_request_id", None), handler="sweeper")
        return self.functions.sweeper.sweep(time_left_ms=context.get_remaining_time_in_millis).figures()

    def _sweep_every_interval(self, stop: threading.Event) -> None:
        """Invoke the sweeper as its schedule would, until ``stop``."""
        while not stop.wait(self.config.sweep_interval_s):
            try:
                self.schedule({"source": "local.schedule"}, LocalContext("outbox-sweeper", time.monotonic() + 60))
            except Exception as exc:  # noqa: BLE001 - a scheduled run that fails is retried next time
                log.warning("sweep_failed", error=type(exc).__name__)

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop the runners, the API and the emulator; a stack never started or already stopped is left as it is."""
        if self._server is None and not self._threads:  # the port is bound before anything else starts
            return
        self._stop.set()
        if self._server is not None:
            if self._serving:
                self._server.shutdown()
            self._server.server_close()
            self._server, self._serving = None, False
        # Consumers may sit in a long poll (up to a second): stop the emulator under them rather
        # than wait for it; they see the stop flag and leave without a word. One caught mid-batch
        # retries its calls against the stopped emulator for a while: the joins share one deadline,
        # and a daemon thread still running after it ends with the process.
        consumers = [thread for thread in self._threads if thread.name.startswith("consumer-")]
        _join([thread for thread in self._threads if thread not in consumers], STOP_WAIT_S)
        self.emulator.stop()
        _join(consumers, STOP_WAIT_S)
        self._threads.clear()
        log.info("local_stack_stopped")

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _clients(endpoint: str) -> Clients:
    """A set of clients on a stack's emulator (any credentials will do)."""
    credentials = (LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"], LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"], None)
    return Clients(REGION, endpoint_url=endpoint, credentials=credentials)


def _function(name: str, handle: Callable[[Any, Any], Any]) -> Invoke:
    """``handle`` invoked as its Lambda function is: a fresh log context for each invocation."""

    def invoke(event: dict[str, Any], context: Any) -> Any:
        bind_invocation(getattr(context, "aws_request_id", None), handler=name)
        return handle(event, context)

    return invoke


def _join(threads: list[threading.Thread], within_s: float) -> None:
    """Wait for ``threads``, all of them together at most ``within_s``."""
    deadline = time.monotonic() + within_s
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
