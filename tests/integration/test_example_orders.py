"""examples/orders on moto: an order and its OrderPlaced event are stored together, and delivered as placed."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from moto import mock_aws
from orders import consumer
from orders.service import HASH_KEY, RANGE_KEY, TABLE, Line, OrderExistsError, OrderModel, OrderService
from pynamodb.connection import Connection

from outbox import Outbox, Status
from tests.integration.conftest import ID_SECRET, Stack, build_stack, sqs_event

LINES = [Line("tea-🍵", 2, Decimal("3.10")), Line("cup", 1, Decimal("7.05"))]


@pytest.fixture
def shop() -> Iterator[Stack]:
    """The outbox's resources on the shop's own table (keys PK/SK), as the example deploys it."""
    with mock_aws():
        built = build_stack(table_name=TABLE, hash_key=HASH_KEY, range_key=RANGE_KEY)
        yield built
        built.relay.close()


def _service(shop: Stack) -> OrderService:
    outbox = Outbox(TABLE, client=shop.dynamodb, hash_key=HASH_KEY, range_key=RANGE_KEY, buckets=4, id_secret=ID_SECRET)
    return OrderService(outbox, Connection(region="us-east-1"))


def test_an_order_and_its_event_are_stored_together(shop: Stack) -> None:
    """The order item, the PENDING record and the outbox entry all exist after one placement."""
    service = _service(shop)
    message_id = service.place_order("o-1", "customer-7", LINES)
    assert OrderModel.get("ORDER#o-1", "ORDER").total == pytest.approx(13.25)
    record = service.outbox.get(message_id)
    assert (record.type, record.status, record.group_key) == ("OrderPlaced", Status.PENDING, "customer-7")
    assert record.payload["total"] == "13.25"


def test_placing_the_same_order_again_stores_neither(shop: Stack) -> None:
    """The order exists: the transaction is cancelled, no second event, the first order untouched."""
    service = _service(shop)
    first = service.place_order("o-1", "customer-7", LINES)
    items_before = shop.all_items()
    with pytest.raises(OrderExistsError):
        service.place_order("o-1", "customer-8", [Line("cup", 9, Decimal(1))])
    assert shop.all_items() == items_before
    assert service.outbox.get(first).payload["customer_id"] == "customer-7"


def test_the_event_reaches_the_consumer_function_as_placed(shop: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stream, worker, queue, the example's handler: deliver() gets the payload exactly, the record ends COMPLETED."""
    service = _service(shop)
    message_id = service.place_order("o-1", "customer-7", LINES)
    assert shop.worker.handle(shop.stream_event()) == {"batchItemFailures": []}
    for name, value in shop.resources.environment().items():
        monkeypatch.setenv(name, value)
    consumer.confirmations.clear()
    assert consumer.handler(sqs_event(shop.receive_all()), None) == {"batchItemFailures": []}
    assert consumer.confirmations == [("o-1", "customer-7", Decimal("13.25"))]
    assert service.outbox.get(message_id).status is Status.COMPLETED
