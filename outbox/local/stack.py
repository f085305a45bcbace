"""LocalStack: the whole pipeline on one machine, with the real Lambda handlers.

The emulator runs in a child process; the HTTP API, the stream runner and the consumer runner
run as threads of this one and call the real entry points (``outbox.api.handler``,
``worker.handler.handler``, ``worker.consumer.handler``), configured through the environment
exactly as on Lambda.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import structlog

from outbox import api
from outbox.adapters.aws import dynamodb_client, sqs_client, streams_client
from outbox.bootstrap import DLQ_MAX_RECEIVE_COUNT, Resources, bootstrap
from outbox.local.emulator import EmbeddedEmulator
from outbox.local.filters import stream_filter_pattern
from outbox.local.http import make_server, serve_in_thread
from outbox.local.sqs_runner import SqsRunner
from outbox.local.stream_runner import LocalContext, MappingSettings, StreamRunner
from worker import consumer, handler, sweeper

log = structlog.get_logger("outbox.local")

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
STOP_WAIT_S = 5.0  # how long stop() waits for the runners, before and again after the emulator stops


@dataclass(frozen=True)
class StackConfig:
    """How to run the local stack."""

    api_host: str = "127.0.0.1"
    api_port: int = 8080
    fifo: bool = False
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


class LocalStack:
    """Start and stop every part of the local pipeline."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.emulator = EmbeddedEmulator()
        self.resources: Resources | None = None
        self.stream_runner: StreamRunner | None = None
        self.consumer_runners: list[SqsRunner] = []
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

    def start(self) -> Resources:
        """Bind the API's port, then the emulator, resources, the API, the stream runner and the consumers.

        The port is bound first, so a port in use fails (``OSError``) before anything runs; any
        later failure (or Ctrl-C) stops what had started, the emulator's process included, and
        raises again.
        """
        self._server = make_server(self.config.api_host, self.config.api_port, api.handler)
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Resources:
        endpoint = self.emulator.start()
        os.environ.update(LOCAL_CREDENTIALS)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        resources = bootstrap(
            dynamodb_client(),
            sqs_client(),
            fifo=self.config.fifo,
            hash_key=self.config.hash_key,
            range_key=self.config.range_key,
        )
        os.environ.update(resources.environment(endpoint))
        os.environ["OUTBOX_SWEEP_MIN_AGE_SECONDS"] = str(self.config.sweep_min_age_s)
        os.environ["OUTBOX_MAX_RECEIVE_COUNT"] = str(DLQ_MAX_RECEIVE_COUNT)  # as the module sets it
        self.resources = resources
        # The handlers build their clients once per "cold start": make this stack their cold start.
        # Build them now, once, as Lambda's init phase would, not in the first concurrent requests.
        for init in (api.default_api, handler.default_worker, consumer.default_consumer, sweeper.default_sweeper):
            init.cache_clear()
            init()

        self._threads.append(serve_in_thread(self._server))
        self._serving = True
        settings = MappingSettings(
            batch_size=self.config.batch_size,
            poll_interval_s=self.config.poll_interval_s,
            maximum_retry_attempts=self.config.maximum_retry_attempts,
            backoff_max_s=self.config.retry_backoff_max_s,
            on_failure_queue_url=resources.on_failure_queue_url,
            shard_refresh_s=self.config.shard_refresh_s,
            filter_pattern=stream_filter_pattern(self.config.hash_key),
        )
        sqs = sqs_client()
        self.stream_runner = StreamRunner(streams_client(), resources.stream_arn, handler.handler, settings, sqs=sqs)
        self._spawn("stream-runner", self.stream_runner.run)
        for index in range(self.config.consumers):
            runner = SqsRunner(sqs, resources.queue_url, consumer.handler)
            self.consumer_runners.append(runner)
            self._spawn(f"consumer-{index}", runner.run)
        self._spawn("sweeper", self._sweep_every_interval)
        log.info("local_stack_started", api_url=self.api_url, endpoint_url=endpoint)
        return resources

    def _sweep_every_interval(self, stop: threading.Event) -> None:
        """Run the sweeper handler as its schedule would, until ``stop``."""
        while not stop.wait(self.config.sweep_interval_s):
            try:
                sweeper.handler({"source": "local.schedule"}, LocalContext("outbox-sweeper", time.monotonic() + 60))
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


def _join(threads: list[threading.Thread], within_s: float) -> None:
    """Wait for ``threads``, all of them together at most ``within_s``."""
    deadline = time.monotonic() + within_s
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
