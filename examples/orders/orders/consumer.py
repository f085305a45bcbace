"""The consumer: what happens when an ``OrderPlaced`` arrives (here, a confirmation is recorded).

Deploy ``orders.consumer.handler`` as the consumer's handler (the Terraform module's
``consumer_handler``, in the zip ``outbox package --source`` builds). The outbox runs the status
lifecycle, dedup and the partial batch response around ``deliver``: it is called once per message
at a time, and never again for a message that completed.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from outbox import DeliveryError, Envelope
from outbox.consumer import make_handler

confirmations: list[tuple[str, str, Decimal]] = []  # stands in for an email or another service


def deliver(envelope: Envelope) -> None:
    """Confirm a placed order; anything that is not a valid ``OrderPlaced`` fails for good."""
    if envelope.type != "OrderPlaced":
        raise DeliveryError(f"no delivery for events of type {envelope.type}", retryable=False)
    payload = envelope.payload
    try:
        total = Decimal(str(payload["total"]))
        confirmations.append((str(payload["order_id"]), str(payload["customer_id"]), total))
    except (KeyError, InvalidOperation) as exc:
        raise DeliveryError("OrderPlaced without order_id, customer_id or a decimal total", retryable=False) from exc


handler = make_handler(deliver)
