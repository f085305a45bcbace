"""DynamoDBOutboxReader, the OutboxReader of replay: entries by bucket and time range (Query, never Scan), statuses."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from outbox.adapters.aws import AWS_ERRORS, translate
from outbox.adapters.models import HASH_KEY, RANGE_KEY, bind_models
from outbox.domain.record import OUTBOX_PREFIX, RECORD_SK, bucket_of, outbox_pk, outbox_sk, record_pk
from outbox.domain.status import Status
from outbox.ports import StoredEntry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_GET_KEYS = 100


class DynamoDBOutboxReader:
    """Reads the outbox the way replay needs: page by page, so memory stays flat."""

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient,
        hash_key: str = HASH_KEY,
        range_key: str = RANGE_KEY,
        buckets: int = 16,
        page_size: int = 500,
    ) -> None:
        self.table_name = table_name
        self.client = client
        self.hash_key = hash_key
        self.range_key = range_key
        self.buckets = buckets
        self.page_size = page_size
        self._entry_model = bind_models(table_name, hash_key, range_key).entry

    def pages(
        self,
        lower_sk: str,
        upper_sk: str,
        *,
        buckets: Iterable[int] | None = None,
        after: tuple[int, str] | None = None,
    ) -> Iterator[list[StoredEntry]]:
        """Entries with ``lower_sk <= sk <= upper_sk``, bucket by bucket, in sort-key order; after ``after``."""
        for bucket in sorted(set(buckets if buckets is not None else range(self.buckets))):
            if after is not None and bucket < after[0]:
                continue
            low = max(lower_sk, after[1] + "\x00") if after is not None and bucket == after[0] else lower_sk
            if low > upper_sk:
                continue
            yield from self._query(bucket, low, upper_sk)

    def count(self, lower_sk: str, upper_sk: str, *, buckets: Iterable[int] | None = None) -> int:
        """How many entries ``pages`` would read (Select=COUNT: no items come back)."""
        total = 0
        for bucket in sorted(set(buckets if buckets is not None else range(self.buckets))):
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
            "ExpressionAttributeNames": {"#pk": self.hash_key, "#sk": self.range_key},
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
        entry = self._entry_model.from_raw_data(item)
        return StoredEntry(bucket, entry.sk, entry.message_id, entry.envelope, entry.group_key, entry.trace_id)

    def entries_for(self, message_ids: Iterable[str]) -> list[StoredEntry]:
        """The outbox entries of these messages (found through their records), in replay order."""
        records = self._batch_get(
            [self._record_key(m) for m in message_ids], "message_id, group_key, created_at, write_seq"
        )
        keys = [self._entry_key(record) for record in records]
        entries = [
            self._entry(int(item[self.hash_key]["S"][len(OUTBOX_PREFIX) :]), item) for item in self._batch_get(keys)
        ]
        return sorted(entries, key=lambda e: e.position)

    def statuses(self, message_ids: Iterable[str]) -> dict[str, Status]:
        """Current status of each message that has a record (one BatchGetItem per 100)."""
        keys = [self._record_key(m) for m in message_ids]
        items = self._batch_get(keys, "message_id, #s", {"#s": "status"})
        return {item["message_id"]["S"]: Status(item["status"]["S"]) for item in items}

    def bucket_of_group(self, group_key: str) -> int:
        """The one bucket a group's entries live in."""
        return bucket_of(group_key, self.buckets)

    def _entry_key(self, record: dict[str, Any]) -> dict[str, Any]:
        """Where a record's outbox entry is: its place follows from the record (its index keys go with PENDING).

        A record from before write sequences (0.1.0) has none: its entry has the key of then.
        """
        message_id = record["message_id"]["S"]
        group_key = record.get("group_key", {}).get("S")
        sequence = record.get("write_seq", {}).get("S")
        return {
            self.hash_key: {"S": outbox_pk(self.bucket_of_group(group_key or message_id))},
            self.range_key: {"S": outbox_sk(record["created_at"]["S"], message_id, sequence)},
        }

    def _record_key(self, message_id: str) -> dict[str, Any]:
        return {self.hash_key: {"S": record_pk(message_id)}, self.range_key: {"S": RECORD_SK}}

    def _batch_get(
        self, keys: list[dict[str, Any]], projection: str | None = None, names: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        unique = list({(k[self.hash_key]["S"], k[self.range_key]["S"]): k for k in keys}.values())
        for start in range(0, len(unique), BATCH_GET_KEYS):
            request: dict[str, Any] = {"Keys": unique[start : start + BATCH_GET_KEYS], "ConsistentRead": True}
            if projection:
                request["ProjectionExpression"] = projection
            if names:
                request["ExpressionAttributeNames"] = names
            pending: dict[str, Any] = {self.table_name: request}
            while pending:
                try:
                    response = self.client.batch_get_item(RequestItems=pending)
                except AWS_ERRORS as exc:
                    raise translate(exc, "BatchGetItem") from exc
                found.extend(response.get("Responses", {}).get(self.table_name, []))
                pending = dict(response.get("UnprocessedKeys") or {})
        return found
