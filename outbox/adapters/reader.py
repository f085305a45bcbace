"""DynamoDBOutboxReader, the OutboxReader of replay: entries by bucket and time range (Query, never Scan), statuses."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from outbox.adapters.aws import AWS_ERRORS, translate
from outbox.adapters.batch import batch_get
from outbox.domain.items import ENTRY, RECORD
from outbox.domain.keys import OUTBOX_PREFIX, outbox_pk
from outbox.domain.layout import TableLayout
from outbox.domain.status import Status
from outbox.ports import StoredEntry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoDBOutboxReader:
    """Reads the outbox the way replay needs: page by page, so memory stays flat."""

    def __init__(self, layout: TableLayout, client: DynamoDBClient, *, page_size: int = 500) -> None:
        self.layout = layout
        self.client = client
        self.page_size = page_size

    @property
    def table_name(self) -> str:
        """The table's name."""
        return self.layout.table_name

    def pages(
        self,
        lower_sk: str,
        upper_sk: str,
        *,
        buckets: Iterable[int] | None = None,
        after: tuple[int, str] | None = None,
    ) -> Iterator[list[StoredEntry]]:
        """Entries with ``lower_sk <= sk <= upper_sk``, bucket by bucket, in sort-key order; after ``after``."""
        for bucket in sorted(set(buckets if buckets is not None else range(self.layout.buckets))):
            if after is not None and bucket < after[0]:
                continue
            low = max(lower_sk, after[1] + "\x00") if after is not None and bucket == after[0] else lower_sk
            if low > upper_sk:
                continue
            yield from self._query(bucket, low, upper_sk)

    def count(self, lower_sk: str, upper_sk: str, *, buckets: Iterable[int] | None = None) -> int:
        """How many entries ``pages`` would read (Select=COUNT: no items come back)."""
        total = 0
        for bucket in sorted(set(buckets if buckets is not None else range(self.layout.buckets))):
            kwargs = self._query_kwargs(bucket, lower_sk, upper_sk) | {"Select": "COUNT"}
            while True:
                try:
                    page = self.client.query(**kwargs)
                except AWS_ERRORS as exc:
                    raise translate(exc, "Query") from exc
                total += int(page.get("Count", 0))
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return total

    def _query_kwargs(self, bucket: int, low: str, high: str) -> dict[str, Any]:
        return {
            "TableName": self.table_name,
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#pk": self.layout.hash_key, "#sk": self.layout.range_key},
            "ExpressionAttributeValues": {":pk": {"S": outbox_pk(bucket)}, ":low": {"S": low}, ":high": {"S": high}},
            "ConsistentRead": True,
        }

    def _query(self, bucket: int, low: str, high: str) -> Iterator[list[StoredEntry]]:
        kwargs = self._query_kwargs(bucket, low, high) | {"Limit": self.page_size}
        while True:
            try:
                page = self.client.query(**kwargs)
            except AWS_ERRORS as exc:
                raise translate(exc, "Query") from exc
            entries = [self._entry(bucket, item) for item in page.get("Items", [])]
            if entries:
                yield entries
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _entry(self, bucket: int, item: dict[str, Any]) -> StoredEntry:
        values = ENTRY.decode(item)
        sk = item[self.layout.range_key]["S"]
        message_id, body = values["message_id"], values["envelope"]
        return StoredEntry(bucket, sk, message_id, body, values.get("group_key"), values.get("trace_id"))

    def entries_for(self, message_ids: Iterable[str]) -> list[StoredEntry]:
        """The outbox entries of these messages (found through their records), in replay order."""
        records = self._batch_get(
            [self.layout.record_key(m) for m in message_ids], ("message_id", "group_key", "created_at", "write_seq")
        )
        keys = [self._entry_key(RECORD.decode(record)) for record in records]
        hash_key = self.layout.hash_key
        entries = [self._entry(int(item[hash_key]["S"][len(OUTBOX_PREFIX) :]), item) for item in self._batch_get(keys)]
        return sorted(entries, key=lambda e: e.position)

    def statuses(self, message_ids: Iterable[str]) -> dict[str, Status]:
        """Current status of each message that has a record (one BatchGetItem per 100)."""
        keys = [self.layout.record_key(m) for m in message_ids]
        items = [RECORD.decode(item) for item in self._batch_get(keys, ("message_id", "status"))]
        return {item["message_id"]: Status(item["status"]) for item in items}

    def bucket_of_group(self, group_key: str) -> int:
        """The one bucket a group's entries live in."""
        return self.layout.bucket_of(group_key)

    def _entry_key(self, record: dict[str, Any]) -> dict[str, Any]:
        """Where a record's outbox entry is: its place follows from the record (its index keys go with PENDING).

        A record from before write sequences (0.1.0) has none: its entry has the key of then.
        """
        return self.layout.entry_key(
            record["message_id"],
            record["created_at"],
            group_key=record.get("group_key"),
            sequence=record.get("write_seq"),
        )

    def _batch_get(self, keys: list[dict[str, Any]], attributes: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every item at ``keys`` (a record's ``attributes`` only, if given), strongly consistent; ThrottledError."""
        projection, names = RECORD.projection(attributes) if attributes else (None, None)
        return batch_get(self.client, self.table_name, keys, projection=projection, names=names)
