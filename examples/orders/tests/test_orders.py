"""The order service, tested as its team would: on the fixtures the outbox ships (outbox.pytest_plugin).

``outbox_local`` (moto in process) for the transaction and the path to the consumer;
``outbox_memory`` (no AWS) for the delivery function through the real consumer.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from orders import consumer
from orders.consumer import deliver
from orders.service import Line, OrderExistsError, OrderModel, OrderService
from pynamodb.connection import Connection

from outbox import Status
from outbox.harness import LocalOutbox, MemoryOutbox

LINES = [Line("tea-🍵", 2, Decimal("3.10")), Line("cup", 1, Decimal("7.05"))]


@pytest.fixture(autouse=True)
def _no_confirmations_yet() -> None:
    """Each test starts with no confirmation recorded (the list stands in for an email service)."""
    consumer.confirmations.clear()


def _service(outbox_local: LocalOutbox) -> OrderService:
    return OrderService(outbox_local.outbox, Connection(region="us-east-1"))


def _items(outbox_local: LocalOutbox) -> list[dict[str, object]]:
    """Every item of the shop's table but the outbox's own settings (OUTBOX-META)."""
    scan = outbox_local.dynamodb.scan(TableName=outbox_local.table.name, ConsistentRead=True)["Items"]
    return [item for item in scan if item["PK"]["S"] != "OUTBOX-META"]


def test_an_order_and_its_event_are_stored_together(outbox_local: LocalOutbox) -> None:
    """The order item, the PENDING record and the outbox entry all exist after one placement."""
    message_id = _service(outbox_local).place_order("o-1", "customer-7", LINES)
    assert OrderModel.get("ORDER#o-1", "ORDER").total == pytest.approx(13.25)
    record = outbox_local.get(message_id)
    assert (record.type, record.status, record.group_key) == ("OrderPlaced", Status.PENDING, "customer-7")
    assert record.payload["total"] == "13.25"
    assert len(_items(outbox_local)) == 3


def test_placing_the_same_order_again_stores_neither(outbox_local: LocalOutbox) -> None:
    """The order exists: the transaction is cancelled, no second event, the first order untouched."""
    service = _service(outbox_local)
    first = service.place_order("o-1", "customer-7", LINES)
    items_before = _items(outbox_local)
    with pytest.raises(OrderExistsError):
        service.place_order("o-1", "customer-8", [Line("cup", 9, Decimal(1))])
    assert _items(outbox_local) == items_before
    assert outbox_local.get(first).payload["customer_id"] == "customer-7"


def test_an_order_reaches_the_consumer(outbox_local: LocalOutbox) -> None:
    """Stream, worker, queue, the handler the service deploys: deliver() gets the order, the record ends COMPLETED."""
    service = OrderService(outbox_local.outbox, Connection(region="us-east-1"))
    message_id = service.place_order("o-1", "customer-7", LINES)
    assert outbox_local.run(consumer.handler) == {"batchItemFailures": []}
    assert outbox_local.get(message_id).status is Status.COMPLETED
    assert consumer.confirmations == [("o-1", "customer-7", Decimal("13.25"))]
    assert outbox_local.sqs_event() == {"Records": []}  # the copy was deleted, as Lambda deletes a success


def test_a_placed_order_is_confirmed_in_memory(outbox_memory: MemoryOutbox) -> None:
    """The delivery function, through the real consumer on the in-memory store: one confirmation, COMPLETED."""
    message = outbox_memory.message({"order_id": "o-2", "customer_id": "c-1", "total": "9.90"}, type="OrderPlaced")
    assert outbox_memory.run(deliver) == {"batchItemFailures": []}
    assert outbox_memory.record(message.message_id).status is Status.COMPLETED
    assert consumer.confirmations == [("o-2", "c-1", Decimal("9.90"))]


def test_an_unknown_event_fails_for_good(outbox_memory: MemoryOutbox) -> None:
    """An event the consumer has no delivery for ends FAILED at its first attempt, with the reason."""
    message = outbox_memory.message({"order_id": "o-1"}, type="OrderCancelled")
    outbox_memory.run(deliver)
    record = outbox_memory.record(message.message_id)
    assert (record.status, record.attempts) == (Status.FAILED, 1)
    assert "OrderCancelled" in (record.reason or "")


def test_an_order_without_a_total_is_not_retried(outbox_memory: MemoryOutbox) -> None:
    """A malformed OrderPlaced is refused for good: no retry is asked of the queue, nothing confirmed."""
    message = outbox_memory.message({"order_id": "o-3", "customer_id": "c-1"}, type="OrderPlaced")
    assert outbox_memory.run(deliver) == {"batchItemFailures": []}
    assert outbox_memory.record(message.message_id).status is Status.FAILED
    assert consumer.confirmations == []
