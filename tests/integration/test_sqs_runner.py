"""The local SQS runner plays Lambda's SQS mapping: a reported failure keeps the delay the handler chose."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outbox.adapters.visibility import SqsVisibility
from outbox.local.sqs_runner import SqsRunner
from tests.integration.conftest import Stack


def test_a_failure_the_handler_reports_stays_away_as_long_as_the_handler_said(stack: Stack) -> None:
    """As on Lambda: the runner never shortens a copy's visibility that the handler set (a busy copy's lease wait)."""
    stack.sqs.send_message(QueueUrl=stack.resources.queue_url, MessageBody="busy")
    visibility = SqsVisibility(stack.sqs)

    def handler(event: Mapping[str, Any], _context: Any) -> dict[str, list[dict[str, str]]]:
        (record,) = event["Records"]
        visibility.delay(record, 30)  # the consumer: back when the lease runs out
        return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}

    runner = SqsRunner(stack.sqs, stack.resources.queue_url, handler, wait_time_s=0, retry_delay_s=0)
    assert runner.poll_once() == 1

    assert runner.poll_once() == 0  # still away: not made visible again after retry_delay_s
    assert runner.stats["retried"] == 1


def test_a_function_error_brings_the_batch_back_after_the_retry_delay(stack: Stack) -> None:
    """A crash reports nothing: locally the batch comes back after retry_delay_s (Lambda waits out the timeout)."""
    stack.sqs.send_message(QueueUrl=stack.resources.queue_url, MessageBody="crash")
    calls: list[int] = []

    def handler(event: Mapping[str, Any], _context: Any) -> dict[str, list[dict[str, str]]]:
        calls.append(len(event["Records"]))
        raise RuntimeError("crashed")

    runner = SqsRunner(stack.sqs, stack.resources.queue_url, handler, wait_time_s=0, retry_delay_s=0)
    assert runner.poll_once() == 1
    assert runner.poll_once() == 1  # visible again at once (retry_delay_s 0)
    assert calls == [1, 1]
