"""The delivery the apply test deploys, named as a user names theirs: ``tests.infra.deployed_delivery:deliver``."""

from __future__ import annotations

from outbox import Envelope

delivered: list[Envelope] = []  # what the consumer handed over, in order


def deliver(envelope: Envelope) -> None:
    """Keep the envelope: the test reads it back."""
    delivered.append(envelope)
