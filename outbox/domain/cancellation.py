"""Why a transaction was cancelled, item by item: whose item it was (``ItemPart``) and its reason.

``TransactionCancelledError`` (``domain/errors.py``) carries these; they are made only when a
transaction is cancelled, so they live apart from the error tree every function imports.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ItemPart(enum.StrEnum):
    """Whose item of a transaction: the caller's own, or a message's record or outbox entry."""

    CALLER = "caller"
    RECORD = "record"
    ENTRY = "entry"


@dataclass(frozen=True)
class CancellationReason:
    """Why one item of a cancelled transaction failed.

    ``index`` is its position in the request: the caller's items first, in the caller's order,
    then each message's record and outbox entry. ``message_id`` is None for the caller's items.
    """

    index: int
    part: ItemPart
    code: str
    detail: str = ""
    message_id: str | None = None

    def describe(self) -> str:
        """One phrase: which item and why."""
        if self.part is ItemPart.CALLER:
            where = f"your item {self.index}"
        elif self.part is ItemPart.RECORD and self.code == "ConditionalCheckFailed":
            return f"message {self.message_id} already exists"
        else:
            where = f"the {'record' if self.part is ItemPart.RECORD else 'outbox entry'} of message {self.message_id}"
        return f"{where}: {self.code}" + (f" ({self.detail})" if self.detail else "")
