"""BatchGetItem, bounded: what replay's reader and the sweeper's source read a hundred keys at a time.

DynamoDB answers a throttled BatchGetItem with HTTP 200 and the keys it did not read in
``UnprocessedKeys``, which the SDK never retries. They are asked for again after a pause that
doubles each time, a bounded number of times: a throttled table slows a replay or a sweep down
rather than making it spin on requests that the throttling itself refuses.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from outbox.adapters.aws import AWS_ERRORS, Lazy, resolve, translate
from outbox.domain.errors import ThrottledError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_GET_KEYS = 100  # BatchGetItem's limit
UNPROCESSED_TRIES = 5  # requests per 100 keys while DynamoDB leaves some unprocessed
UNPROCESSED_PAUSE_S = 0.05  # before the second; doubled before each next one

Item = dict[str, Any]


def batch_get(
    client: DynamoDBClient | Lazy[DynamoDBClient],
    table_name: str,
    keys: Sequence[Mapping[str, Any]],
    *,
    projection: str | None = None,
    names: Mapping[str, str] | None = None,
    consistent: bool = True,
    complete: bool = True,
) -> list[Item]:
    """The items at ``keys`` (duplicates read once), a request per 100, in the order DynamoDB answers.

    Keys left unprocessed are asked for again after a growing pause, ``UNPROCESSED_TRIES``
    requests in all; then ThrottledError if the answer must be ``complete``, else what was read
    (each key not read counts as an item not found).
    """
    found: list[Item] = []
    unique = list({_identity(key): key for key in keys}.values())  # BatchGetItem refuses a key twice
    for start in range(0, len(unique), BATCH_GET_KEYS):
        request: dict[str, Any] = {"Keys": unique[start : start + BATCH_GET_KEYS], "ConsistentRead": consistent}
        if projection:
            request["ProjectionExpression"] = projection
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        pending: dict[str, Any] = {table_name: request}
        for attempt in range(UNPROCESSED_TRIES):
            if attempt:
                time.sleep(UNPROCESSED_PAUSE_S * 2 ** (attempt - 1))
            try:
                response = resolve(client).batch_get_item(RequestItems=pending)
            except AWS_ERRORS as exc:
                raise translate(exc, "BatchGetItem") from exc
            found.extend(response.get("Responses", {}).get(table_name, []))
            pending = dict(response.get("UnprocessedKeys") or {})
            if not pending:
                break
        if pending and complete:
            left = len(pending.get(table_name, {}).get("Keys", []))
            raise ThrottledError(
                f"BatchGetItem left {left} keys of table {table_name} unprocessed after {UNPROCESSED_TRIES} tries:"
                " DynamoDB is throttling reads (try again later, or give the table more read capacity)"
            )
    return found


def _identity(key: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A key as a hashable value: its attribute names and their values' text."""
    return tuple(sorted((name, str(value)) for name, value in key.items()))
