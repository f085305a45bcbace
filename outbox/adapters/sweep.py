"""DynamoDBSweepSource: records not ended, through the sparse record index, and the bucket count.

The index (keys only) holds a record until it ends: while PENDING under its outbox bucket, in time
order; while in flight (QUEUED, PROCESSING) under an in-flight partition, by the time it went in
flight. Reading a bucket costs its PENDING backlog, reading in-flight records older than a bound
costs those alone: never the settled table. Its keys are read a page per Query, and the records
behind keys (with their payloads) only when asked for, 100 per BatchGetItem. The table's bucket
count lives in one small item of the table itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from outbox.adapters.aws import AWS_ERRORS, Lazy, error_code, resolve, translate
from outbox.adapters.schema import HASH_KEY, RANGE_KEY, RECORD_INDEX, RECORD_INDEX_KEYS
from outbox.domain.envelope import Envelope
from outbox.domain.errors import ConfigurationError, ThrottledError
from outbox.domain.record import RECORD_PREFIX, RECORD_SK, in_flight_partition, outbox_pk, record_pk
from outbox.domain.status import ENDED, Status
from outbox.domain.trace import trace_header
from outbox.ports import PendingKey, SweptRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

META_PK = "OUTBOX-META"  # not an "OUTBOX#" key: the stream filter never passes it to the worker
CONFIG_SK = "CONFIG"
BATCH_GET_KEYS = 100
UNPROCESSED_TRIES = 5  # BatchGetItem requests per 100 keys while DynamoDB leaves some unprocessed
UNPROCESSED_PAUSE_S = 0.05  # before the second; doubled before each next one
# What rebuilding a message's envelope needs, its status, and what tells whether a message in
# flight is stranded: nothing else of the record is read.
_PROJECTION = (
    "#h, message_id, #status, #type, payload, group_key, created_at, trace_id,"
    " updated_at, lease_until, send_generation, sent_at"
)


class DynamoDBSweepSource:
    """Reads the PENDING records of a bucket in outbox order, those long in flight, and the table's bucket count."""

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | Lazy[DynamoDBClient],
        hash_key: str = HASH_KEY,
        range_key: str = RANGE_KEY,
        page_size: int = 500,
    ) -> None:
        self.table_name = table_name
        self._client = client
        self.hash_key = hash_key
        self.range_key = range_key
        self.page_size = page_size

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
        index_pk, index_sk = RECORD_INDEX_KEYS
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": RECORD_INDEX,
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
        _, index_sk = RECORD_INDEX_KEYS
        page = self._call("Query", self.client.query, request)
        keys = [
            PendingKey(item[index_sk]["S"], item[self.hash_key]["S"].removeprefix(RECORD_PREFIX))
            for item in page.get("Items", [])
        ]
        return keys, page.get("LastEvaluatedKey")

    def records(self, keys: Sequence[PendingKey], *, consistent: bool = True) -> list[SweptRecord]:
        """The records behind ``keys``, in their order (BatchGetItem answers in any order), one request per 100.

        Strongly consistent: the index lags, the record says whether it is still PENDING (and every
        key must be read). Eventually (records in flight, whose re-send condition checks them
        again): at half the price, and a key left unprocessed counts as a record not found.
        """
        request = [{self.hash_key: {"S": record_pk(k.message_id)}, self.range_key: {"S": RECORD_SK}} for k in keys]
        found = self._batch_get(request, _PROJECTION, {"#type": "type"}, consistent=consistent, complete=consistent)
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
        keys = [{self.hash_key: {"S": record_pk(m)}, self.range_key: {"S": RECORD_SK}} for m in message_ids]
        # A record not read counts as PENDING: its message is sent, which is always safe.
        found = self._batch_get(keys, "#h, #status", {}, consistent=False, complete=False)
        return {
            pk.removeprefix(RECORD_PREFIX)
            for pk, item in found.items()
            if item.get("status", {}).get("S") != Status.PENDING.value
        }

    def _batch_get(
        self, keys: list[dict[str, Any]], projection: str, names: dict[str, str], *, consistent: bool, complete: bool
    ) -> dict[str, dict[str, Any]]:
        """The items at ``keys`` (100 per request), by partition key value.

        Keys DynamoDB leaves unprocessed (throttling) are asked for again after a growing pause,
        ``UNPROCESSED_TRIES`` times; then, if the answer must be ``complete``, ThrottledError,
        else what was found.
        """
        found: dict[str, dict[str, Any]] = {}
        names = names | {"#status": "status", "#h": self.hash_key}
        for start in range(0, len(keys), BATCH_GET_KEYS):
            pending: dict[str, Any] = {
                self.table_name: {
                    "Keys": keys[start : start + BATCH_GET_KEYS],
                    "ProjectionExpression": projection,
                    "ExpressionAttributeNames": names,
                    "ConsistentRead": consistent,
                }
            }
            for attempt in range(UNPROCESSED_TRIES):
                response = self._call("BatchGetItem", self.client.batch_get_item, {"RequestItems": pending})
                for item in response.get("Responses", {}).get(self.table_name, []):
                    found[item[self.hash_key]["S"]] = item
                pending = dict(response.get("UnprocessedKeys") or {})
                if not pending:
                    break
                time.sleep(UNPROCESSED_PAUSE_S * 2**attempt)
            if pending and complete:
                raise ThrottledError("BatchGetItem left keys unprocessed: DynamoDB is throttling reads")
        return found

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
                        "Item": self._meta_key(CONFIG_SK) | {"buckets": {"N": str(proposed)}},
                        "ConditionExpression": "attribute_not_exists(#h)",
                        "ExpressionAttributeNames": {"#h": self.hash_key},
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
        request = {"TableName": self.table_name, "Key": self._meta_key(sk), "ConsistentRead": True}
        response = self._call("GetItem", self.client.get_item, request)
        item = response.get("Item")
        return dict(item) if item else None

    def _meta_key(self, sk: str) -> dict[str, Any]:
        return {self.hash_key: {"S": META_PK}, self.range_key: {"S": sk}}

    def _call(self, operation: str, method: Callable[..., Any], request: dict[str, Any]) -> Any:
        try:
            return method(**request)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise _Exists from exc
            if error_code(exc) in ("ValidationException", "ResourceNotFoundException") and operation == "Query":
                raise ConfigurationError(
                    f"table {self.table_name} has no index {RECORD_INDEX} on {' and '.join(RECORD_INDEX_KEYS)}: "
                    "add it (outbox bootstrap does; the Terraform module's table has it)"
                ) from exc
            raise translate(exc, operation) from exc
        except AWS_ERRORS as exc:
            raise translate(exc, operation) from exc


class _Exists(Exception):
    """A conditional put found the item already there."""


def _swept(sk: str, item: dict[str, Any] | None) -> SweptRecord:
    """A record read back, with its envelope while it has not ended."""
    if item is None:
        return SweptRecord(sk, None, None)
    message_id = item["message_id"]["S"]
    status = Status(item["status"]["S"])
    created_at = item["created_at"]["S"]
    moment = {
        "updated_at": item.get("updated_at", {}).get("S", created_at),
        "lease_until": item.get("lease_until", {}).get("S"),
        "generation": int(item.get("send_generation", {}).get("N", "0")),
        "sent_at": item.get("sent_at", {}).get("S"),
    }
    if status in ENDED:
        return SweptRecord(sk, message_id, status, created_at, **moment)
    envelope = Envelope(
        message_id,
        item["type"]["S"],
        json.loads(item["payload"]["S"]),
        created_at,
        item.get("group_key", {}).get("S"),
        trace_header(item.get("trace_id", {}).get("S")),
    )
    return SweptRecord(sk, message_id, status, created_at, envelope, **moment)
