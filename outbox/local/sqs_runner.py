"""The local SQS runner: long-polls a queue and invokes a handler as Lambda's SQS event source mapping does.

Messages the handler lists in ``batchItemFailures`` stay on the queue, as invisible as the
handler left them (the consumer sets each one's delay itself: a backoff, or until a lease runs
out), exactly as on Lambda; the rest are deleted. On a function error every message stays, and,
unlike Lambda, which waits out the visibility timeout, is made visible again after
``retry_delay_s``, so a local run does not stall. An invocation that outlives its deadline
(``function_timeout_s``) is a function error, whatever it returned: Lambda would have stopped it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from outbox.local.events import to_sqs_record
from outbox.local.stream_runner import Invoke, LocalContext

log = structlog.get_logger("outbox.local.sqs_runner")


class SqsRunner:
    """Feeds one queue to ``invoke(event, context)``, deleting what the handler acknowledged."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        invoke: Invoke,
        *,
        batch_size: int = 10,
        wait_time_s: int = 1,
        retry_delay_s: int = 1,
        function_timeout_s: float = 30.0,
        function_name: str = "outbox-consumer",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.invoke = invoke
        self.batch_size = batch_size
        self.wait_time_s = wait_time_s
        self.retry_delay_s = retry_delay_s
        self.function_timeout_s = function_timeout_s
        self.function_name = function_name
        self.clock = clock
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self.queue_arn = str(attributes["QueueArn"])

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - a poller must outlive a passing emulator error
                if stop.is_set():
                    return  # the queue went away because everything is stopping
                log.warning("sqs_poll_failed", error=type(exc).__name__)
                stop.wait(self.retry_delay_s)

    def poll_once(self) -> int:
        """Receive one batch and invoke the handler with it; returns the number of messages."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_time_s,
            MessageSystemAttributeNames=["All"],  # AWSTraceHeader among them, as Lambda's mapping passes it
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        records = [to_sqs_record(m, self.queue_arn) for m in messages]
        started = self.clock()
        context = LocalContext(self.function_name, started + self.function_timeout_s, self.clock)
        error: str | None = None
        try:
            response = self.invoke({"Records": records}, context)
        except Exception as exc:  # noqa: BLE001 - a function error: every message is retried
            error = type(exc).__name__
        if error is None and self.clock() - started > self.function_timeout_s:
            error = "Task timed out"
        function_error = error is not None
        if function_error:
            log.warning("sqs_function_error", error=error, records=len(records))
            failed = {r["messageId"] for r in records}
        else:
            failed = _failed_ids(response, {r["messageId"] for r in records})
        done = [r for r in records if r["messageId"] not in failed]
        retry = [r for r in records if r["messageId"] in failed]
        crashed = retry if function_error else []  # a reported failure keeps the delay the handler chose
        for chunk in _chunks(done):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
            )
        for chunk in _chunks(crashed):
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r["receiptHandle"], "VisibilityTimeout": self.retry_delay_s}
                    for i, r in enumerate(chunk)
                ],
            )
        with self._lock:
            self.stats["received"] += len(records)
            self.stats["deleted"] += len(done)
            self.stats["retried"] += len(retry)
            self.stats["function_errors"] += function_error
        return len(records)


def _failed_ids(response: object, ids: set[str]) -> set[str]:
    failures = response.get("batchItemFailures") if isinstance(response, Mapping) else None
    if not failures:
        return set()
    failed = {f.get("itemIdentifier") for f in failures if isinstance(f, Mapping)}
    # An identifier that is not in the batch fails the whole batch, as on Lambda.
    return ids if not failed <= ids else {str(i) for i in failed}


def _chunks(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [records[i : i + 10] for i in range(0, len(records), 10)]
