"""The table's layout: one value naming the table, its key attributes, its index and its bucket count.

Built once, where the settings are read (``outbox/compose.py``) or by the caller of ``Outbox``,
and handed to every adapter of the table, to the stream use case (which tells the outbox's
entries from the caller's own items by their keys) and to the fakes. Its key builders are the
only code that puts a record's or an entry's key in DynamoDB's form.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from outbox.domain.errors import ConfigurationError
from outbox.domain.items import INDEX_PK, INDEX_SK, TTL_ATTRIBUTE
from outbox.domain.keys import RECORD_SK, bucket_of, outbox_pk, outbox_sk, record_pk

DEFAULT_HASH_KEY = "pk"
DEFAULT_RANGE_KEY = "sk"
DEFAULT_BUCKETS = 16
# PENDING records by their place in the outbox (bucket, then time), in-flight ones by their
# in-flight partition, keys only: a sparse index, as every end removes its keys. The sweeper's way
# to every message not yet relayed, whether or not its outbox entry still exists, and the worker's
# check that no older message of a group waits; both read only the backlog, never the settled table.
RECORD_INDEX = "outbox-records"
# The outbox's own settings: one item, not an "OUTBOX#" key, so the stream filter never passes it.
META_PK = "OUTBOX-META"
CONFIG_SK = "CONFIG"


@dataclass(frozen=True)
class TableLayout:
    """Where the outbox lives: the table, its key attribute names, its bucket count, its index and TTL names.

    ``buckets`` spreads the outbox entries over that many partitions: every writer, the worker,
    the sweeper and replay must agree on it (the table keeps the count it was first given).
    """

    table_name: str
    hash_key: str = DEFAULT_HASH_KEY
    range_key: str = DEFAULT_RANGE_KEY
    buckets: int = DEFAULT_BUCKETS

    def __post_init__(self) -> None:
        if not isinstance(self.table_name, str) or not self.table_name:
            raise ConfigurationError(f"table_name must be the table's name (a str), not {self.table_name!r}")
        if not self.hash_key or not self.range_key or self.hash_key == self.range_key:
            raise ConfigurationError("the hash and range key attribute names must be two different non-empty names")
        if isinstance(self.buckets, bool) or not isinstance(self.buckets, int) or self.buckets < 1:
            raise ConfigurationError(f"buckets must be a whole number of at least 1, not {self.buckets!r}")

    @property
    def record_index(self) -> str:
        """The record index's name."""
        return RECORD_INDEX

    @property
    def record_index_keys(self) -> tuple[str, str]:
        """The record index's hash and range key attribute names (attributes of a record until it ends)."""
        return INDEX_PK, INDEX_SK

    @property
    def ttl_attribute(self) -> str:
        """The attribute the table's time to live reads (epoch seconds)."""
        return TTL_ATTRIBUTE

    def with_buckets(self, buckets: int) -> TableLayout:
        """The same table with another bucket count (the one the table keeps)."""
        return self if buckets == self.buckets else replace(self, buckets=buckets)

    def key(self, pk: str, sk: str) -> dict[str, Any]:
        """An item's key in DynamoDB's form."""
        return {self.hash_key: {"S": pk}, self.range_key: {"S": sk}}

    def record_key(self, message_id: str) -> dict[str, Any]:
        """The key of a message's record (every status write's: written out, one call fewer)."""
        return {self.hash_key: {"S": record_pk(message_id)}, self.range_key: {"S": RECORD_SK}}

    def meta_key(self, sk: str = CONFIG_SK) -> dict[str, Any]:
        """The key of one of the outbox's own settings items."""
        return self.key(META_PK, sk)

    def bucket_of(self, ordering_key: str) -> int:
        """The bucket of a group key (or, without one, a message id): one group, one bucket."""
        return bucket_of(ordering_key, self.buckets)

    def entry_place(
        self, message_id: str, created_at: str, *, group_key: str | None, sequence: str | None
    ) -> tuple[str, str]:
        """Where a message's outbox entry is (partition, sort key): its bucket, then its time and write order."""
        return outbox_pk(self.bucket_of(group_key or message_id)), outbox_sk(created_at, message_id, sequence)

    def entry_key(
        self, message_id: str, created_at: str, *, group_key: str | None, sequence: str | None
    ) -> dict[str, Any]:
        """The key of a message's outbox entry."""
        return self.key(*self.entry_place(message_id, created_at, group_key=group_key, sequence=sequence))
