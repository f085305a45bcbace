"""Place an order: the order item and its ``OrderPlaced`` event are written in one DynamoDB transaction.

The service has its own PynamoDB model in its own single-table design (keys ``PK``/``SK``); the
outbox shares the table. Either both the order and the event are stored, or neither is: there
is no moment where an order exists and its event could still be lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from outbox import Outbox

TABLE = "shop"
HASH_KEY, RANGE_KEY = "PK", "SK"


class OrderModel(Model):
    """``ORDER#<id>`` / ``ORDER``: one order."""

    class Meta:
        table_name = TABLE
        region = "us-east-1"

    pk = UnicodeAttribute(hash_key=True, attr_name=HASH_KEY)
    sk = UnicodeAttribute(range_key=True, attr_name=RANGE_KEY)
    customer_id = UnicodeAttribute()
    total = NumberAttribute()


class OrderExistsError(Exception):
    """An order with this id was placed before; nothing was written."""


@dataclass(frozen=True)
class Line:
    """One line of an order."""

    sku: str
    quantity: int
    unit_price: Decimal


class OrderService:
    """Places orders; every order publishes exactly one ``OrderPlaced``."""

    def __init__(self, outbox: Outbox, connection: Connection) -> None:
        self.outbox = outbox
        self.connection = connection

    def place_order(self, order_id: str, customer_id: str, lines: list[Line]) -> str:
        """Store the order and its event together; returns the event's message id."""
        total = sum((line.unit_price * line.quantity for line in lines), Decimal(0))
        order = OrderModel(f"ORDER#{order_id}", "ORDER", customer_id=customer_id, total=float(total))
        event = self.outbox.message(
            {
                "order_id": order_id,
                "customer_id": customer_id,
                "total": str(total),  # money as a decimal string: JSON numbers are floats
                "lines": [{"sku": ln.sku, "quantity": ln.quantity, "unit_price": str(ln.unit_price)} for ln in lines],
            },
            type="OrderPlaced",
            group_key=customer_id,  # a customer's events are delivered in order on a FIFO queue
            idempotency_key=f"order-placed-{order_id}",
        )
        try:
            with TransactWrite(connection=self.connection) as transaction:
                transaction.save(order, condition=OrderModel.pk.does_not_exist())
                self.outbox.add_to(transaction, event)
        except TransactWriteError as exc:
            order_reason = exc.cancellation_reasons[0] if exc.cancellation_reasons else None
            if order_reason is not None and order_reason.code == "ConditionalCheckFailed":
                raise OrderExistsError(order_id) from exc
            raise
        return event.message_id
