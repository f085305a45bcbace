"""The shipped moto harness (``outbox_local``, ``local_outbox``): your table, the real handlers, Lambda's rules.

On moto in process, as a user's tests run it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pytest

from outbox import Envelope, Outbox, Status
from outbox.consumer import make_handler
from outbox.harness import LocalOutbox, LocalTable, local_outbox
from outbox.settings import Settings


def test_your_table_and_key_names_are_what_the_outbox_runs_on() -> None:
    """A table keyed PK/SK: bootstrapped so, an Outbox on it, the environment naming it while the block runs."""
    before = dict(os.environ)
    with local_outbox(LocalTable("shop", hash_key="PK", range_key="SK")) as local:
        table = local.dynamodb.describe_table(TableName="shop")["Table"]
        assert [k["AttributeName"] for k in table["KeySchema"]] == ["PK", "SK"]
        settings = Settings.from_env()
        assert (settings.table_name, settings.hash_key, settings.range_key) == ("shop", "PK", "SK")
        message = Outbox.from_settings(settings).message({"a": 1}, type="T", idempotency_key="k-1")
        local.outbox.transact_write([], message)
        assert local.get(message.message_id).status is Status.PENDING
    assert dict(os.environ) == before


def test_relay_passes_only_outbox_entries_and_consume_deletes_what_was_done(outbox_local: LocalOutbox) -> None:
    """Your own items in the table never reach the worker; a delivered copy is deleted, as Lambda deletes it."""
    own_item = {"Put": {"TableName": "outbox", "Item": {"pk": {"S": "ORDER#1"}, "sk": {"S": "ORDER"}}}}
    message = outbox_local.outbox.message({"n": 1}, type="T")
    outbox_local.outbox.transact_write([own_item], message)

    event = outbox_local.stream_event()
    assert [r["dynamodb"]["Keys"]["pk"]["S"][:7] for r in event["Records"]] == ["OUTBOX#"]
    assert outbox_local.worker.handle(event) == {"batchItemFailures": []}
    assert outbox_local.get(message.message_id).status is Status.QUEUED

    delivered: list[Envelope] = []
    assert outbox_local.deliver_with(delivered.append) == {"batchItemFailures": []}
    assert [e.message_id for e in delivered] == [message.message_id]
    assert outbox_local.get(message.message_id).status is Status.COMPLETED
    assert outbox_local.sqs_event() == {"Records": []}


def test_a_copy_listed_for_a_retry_stays_on_the_queue(outbox_local: LocalOutbox) -> None:
    """consume() deletes only what the handler did not list in batchItemFailures, as Lambda does."""
    message = outbox_local.outbox.message({"n": 1}, type="T")
    outbox_local.outbox.transact_write([], message)

    def busy(event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}

    failures = outbox_local.run(busy)["batchItemFailures"]
    assert len(failures) == 1
    attributes = outbox_local.sqs.get_queue_attributes(
        QueueUrl=outbox_local.resources.queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"  # received, not deleted: it comes back
    assert outbox_local.get(message.message_id).status is Status.QUEUED


class TestAnOverriddenTable:
    """The plugin's ``outbox_table`` overridden, as a user's conftest.py does."""

    @pytest.fixture
    def outbox_table(self) -> LocalTable:
        """A FIFO queue beside a table of another name."""
        return LocalTable("fifo-shop", fifo=True)

    def test_a_fifo_queue_delivers_a_group_in_the_order_written(self, outbox_local: LocalOutbox) -> None:
        """The queue is FIFO, and a group's messages reach the handler in the order written."""
        assert outbox_local.resources.queue_url.endswith(".fifo")
        messages = [outbox_local.outbox.message({"n": n}, type="T", group_key="g") for n in range(3)]
        outbox_local.outbox.transact_write([], *messages)
        delivered: list[int] = []
        outbox_local.relay()
        outbox_local.consume(make_handler(lambda e: delivered.append(e.payload["n"])))
        assert delivered == [0, 1, 2]
