"""DynamoDBSweepSource: records not ended, through the sparse record index, and the bucket count.

The index (keys only) holds a record until it ends: while PENDING under its outbox bucket, in time
order; while in flight (QUEUED, PROCESSING) under an in-flight partition, by the time it went in
flight. Reading a bucket costs its PENDING backlog, reading in-flight records older than a bound
costs those alone: never the settled table. Its keys are read a page per Query, and the records
behind keys only when asked for, 100 per BatchGetItem, and only what re-sending them needs (never
a payload: a copy's body is the message id alone). The table's bucket count lives in one small
item of the table itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from outbox.adapters.aws import AWS_ERRORS, Lazy, error_code, resolve, translate
from outbox.adapters.batch import batch_get
from outbox.domain.errors import ConfigurationError
from outbox.domain.items import RECORD
from outbox.domain.keys import RECORD_PREFIX, in_flight_partition, outbox_pk, record_pk
from outbox.domain.layout import CONFIG_SK, META_PK, TableLayout
from outbox.domain.status import Status
from outbox.domain.trace import trace_header

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from outbox.ports import PendingKey, SweptRecord

__all__ = ["CONFIG_SK", "META_PK", "DynamoDBSweepSource"]

# What re-sending a message needs (its id, group and trace: the copy's body is the id alone), its
# status and place in time, and what tells whether a message in flight is stranded. Nothing else of
# the record is read: never its payload (up to 350 KB) nor its type, which only the consumer's
# lease write returns.
_SWEPT = (
    "message_id",
    "status",
    "group_key",
    "created_at",
    "trace_id",
    "updated_at",
    "lease_until",
    "send_generation",
    "sent_at",
)


class DynamoDBSweepSource:
    """Reads the PENDING records of a bucket in outbox order, those long in flight, and the table's bucket count."""

    def __init__(
        self, layout: TableLayout, client: DynamoDBClient | Lazy[DynamoDBClient], *, page_size: int = 500
    ) -> None:
        self.layout = layout
        self._client = client
        self.page_size = page_size

    @property
    def table_name(self) -> str:
        """The table's name."""
        return self.layout.table_name

    @property
    def client(self) -> DynamoDBClient:
        """The DynamoDB client every request goes through (made now, if it is a ``Lazy`` one not yet made)."""
        return resolve(self._client)

    def keys(self, bucket: int, before: str | None = None) -> Iterator[list[PendingKey]]:
        """The index's keys of ``bucket`` (placed before ``before``, if given), page by page, in time order.

        Each Query is made when its page is asked for, and only the keys are kept: a caller that
        stops reading stops querying, and holds a page of small keys, never a record.
        """
        yield from self._keys(outbox_pk(bucket), before)

    def in_flight_keys(self, partition: int, before: str) -> Iterator[list[PendingKey]]:
        """The index's keys of in-flight ``partition``: records that went in flight before ``before``, page by page."""
        yield from self._keys(in_flight_partition(partition), before)

    def _keys(self, partition: str, before: str | None) -> Iterator[list[PendingKey]]:
        """The keys an index partition lists (placed before ``before``, if given), a Query per page, in its order."""
        index_pk, index_sk = self.layout.record_index_keys
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": self.layout.record_index,
            "KeyConditionExpression": "#b = :b",
            "ExpressionAttributeNames": {"#b": index_pk},
            "ExpressionAttributeValues": {":b": {"S": partition}},
            "Limit": self.page_size,
        }
        if before is not None:
            request["KeyConditionExpression"] += " AND #t < :before"
            request["ExpressionAttributeNames"]["#t"] = index_sk
            request["ExpressionAttributeValues"][":before"] = {"S": before}
        while True:
            page, last = self._keys_page(request)
            if page:
                yield page
            if last is None:
                return
            request["ExclusiveStartKey"] = last

    def _keys_page(self, request: dict[str, Any]) -> tuple[list[PendingKey], dict[str, Any] | None]:
        """One index Query: its keys, and where the next page starts (the raw answer is not kept)."""
        from outbox.ports import PendingKey  # noqa: PLC0415 - the API's bucket check (buckets) loads no ports

        _, index_sk = self.layout.record_index_keys
        page = self._call("Query", self.client.query, request)
        keys = [
            PendingKey(item[index_sk]["S"], item[self.layout.hash_key]["S"].removeprefix(RECORD_PREFIX))
            for item in page.get("Items", [])
        ]
        return keys, page.get("LastEvaluatedKey")

    def records(self, keys: Sequence[PendingKey], *, consistent: bool = True) -> list[SweptRecord]:
        """The records behind ``keys``, in their order (BatchGetItem answers in any order), one request per 100.

        Strongly consistent: the index lags, the record says whether it is still PENDING (and every
        key must be read). Eventually (records in flight, whose re-send condition checks them
        again): at half the price, and a key left unprocessed counts as a record not found.
        """
        request = [self.layout.record_key(k.message_id) for k in keys]
        found = self._batch_get(request, _SWEPT, consistent=consistent, complete=consistent)
        return [_swept(k.sk, found.get(record_pk(k.message_id))) for k in keys]

    def pending(
        self, bucket: int, before: str | None = None, *, known: Callable[[str], bool] | None = None
    ) -> Iterator[list[SweptRecord]]:
        """The PENDING records of ``bucket`` (placed before ``before``, if given), page by page, in time order.

        The index is sparse and eventually consistent: a bucket holds only PENDING records, but one
        that has just moved on may still show; each record is read back (strongly) with its status.
        The records of messages ``known`` names are not read (nor listed).
        """
        for page in self.keys(bucket, before):
            wanted = [k for k in page if known is None or not known(k.message_id)]
            if wanted:
                yield self.records(wanted)

    def moved_on(self, message_ids: Iterable[str]) -> set[str]:
        """Of these messages, those whose record is no longer PENDING (relayed, or ended): one request per 100.

        Read eventually consistent, at half the price: a record that moved on a moment ago may still
        read PENDING, and its message is then sent once more, which the flip and the consumer absorb.
        """
        keys = [self.layout.record_key(m) for m in message_ids]
        # A record not read counts as PENDING: its message is sent, which is always safe.
        found = self._batch_get(keys, ("message_id", "status"), consistent=False, complete=False)
        return {
            pk.removeprefix(RECORD_PREFIX)
            for pk, item in found.items()
            if item.get("status", {}).get("S") != Status.PENDING.value
        }

    def _batch_get(
        self, keys: list[dict[str, Any]], attributes: Sequence[str], *, consistent: bool, complete: bool
    ) -> dict[str, dict[str, Any]]:
        """The items at ``keys`` by record key (``adapters/batch.py``: unprocessed keys retried, bounded)."""
        projection, names = RECORD.projection(attributes)
        items = batch_get(
            self.client,
            self.table_name,
            keys,
            projection=projection,
            names=names,
            consistent=consistent,
            complete=complete,
        )
        return {record_pk(item["message_id"]["S"]): item for item in items}

    def buckets(self, proposed: int) -> int:
        """The table's bucket count: stored once (by the first to ask), then the same for every reader and writer.

        ``proposed`` is stored when the table has none yet; a different stored count is a
        ConfigurationError, so no process writes a group into a bucket the others do not read.
        """
        item = self._get(CONFIG_SK)
        if item is None:
            try:
                self._call(
                    "PutItem",
                    self.client.put_item,
                    {
                        "TableName": self.table_name,
                        "Item": self.layout.meta_key(CONFIG_SK) | {"buckets": {"N": str(proposed)}},
                        "ConditionExpression": "attribute_not_exists(#h)",
                        "ExpressionAttributeNames": {"#h": self.layout.hash_key},
                    },
                )
            except _Exists:
                item = self._get(CONFIG_SK)
            else:
                return proposed
        stored = int((item or {}).get("buckets", {}).get("N", "0"))
        if stored != proposed:
            raise ConfigurationError(
                f"table {self.table_name} keeps its outbox in {stored} buckets, not {proposed}: "
                f"set OUTBOX_BUCKETS={stored} (changing it would split groups across buckets)"
            )
        return stored

    def stored_buckets(self) -> int | None:
        """The bucket count stored in the table, if any."""
        item = self._get(CONFIG_SK)
        return int(item["buckets"]["N"]) if item and "buckets" in item else None

    def _get(self, sk: str) -> dict[str, Any] | None:
        request = {"TableName": self.table_name, "Key": self.layout.meta_key(sk), "ConsistentRead": True}
        response = self._call("GetItem", self.client.get_item, request)
        item = response.get("Item")
        return dict(item) if item else None

    def _call(self, operation: str, method: Callable[..., Any], request: dict[str, Any]) -> Any:
        try:
            return method(**request)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise _Exists from exc
            if error_code(exc) in ("ValidationException", "ResourceNotFoundException") and operation == "Query":
                raise ConfigurationError(
                    f"table {self.table_name} has no index {self.layout.record_index}"
                    f" on {' and '.join(self.layout.record_index_keys)}: "
                    "add it (outbox bootstrap does; the Terraform module's table has it)"
                ) from exc
            raise translate(exc, operation) from exc
        except AWS_ERRORS as exc:
            raise translate(exc, operation) from exc


class _Exists(Exception):
    """A conditional put found the item already there."""


def _swept(sk: str, item: dict[str, Any] | None) -> SweptRecord:
    """A record read back through its description (``domain/items.py``); its status says whether it ended."""
    from outbox.ports import SweptRecord  # noqa: PLC0415 - the API's bucket check (buckets) loads no ports

    if item is None:
        return SweptRecord(sk, None, None)
    values = RECORD.decode(item)
    created_at = values["created_at"]
    return SweptRecord(
        sk,
        values["message_id"],
        Status(values["status"]),
        created_at,
        group_key=values.get("group_key"),
        trace_id=trace_header(values.get("trace_id")),
        updated_at=values.get("updated_at", created_at),
        lease_until=values.get("lease_until"),
        generation=values.get("send_generation", 0),
        sent_at=values.get("sent_at"),
    )
