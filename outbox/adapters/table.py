"""Whether a table can hold the outbox, as DescribeTable shows it: each problem with the setting that fixes it.

A table with other key names, without a stream (or with a keys-only one), or without the record
index would accept messages that are never relayed, or that the sweeper never finds; this says
so in one line, before the first message is written (``Outbox``) or the table is changed
(``outbox bootstrap``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from outbox.adapters.aws import AWS_ERRORS, Lazy, error_code, resolve, translate
from outbox.domain.errors import ConfigurationError
from outbox.domain.layout import TableLayout

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Stream view types that carry the new item, which the worker relays.
STREAM_VIEWS = ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
# How the outbox's settings are named where the problem is reported.
LIBRARY_SETTINGS = {"keys": "hash_key=/range_key= (OUTBOX_HASH_KEY, OUTBOX_RANGE_KEY)", "table": "OUTBOX_TABLE_NAME"}
CLI_SETTINGS = {"keys": "--hash-key/--range-key (OUTBOX_HASH_KEY, OUTBOX_RANGE_KEY)", "table": "--table-name"}


def table_problems(
    table: Mapping[str, Any], layout: TableLayout, *, settings: Mapping[str, str], need_index: bool
) -> list[str]:
    """What keeps ``table`` (DescribeTable's ``Table``) from holding the outbox, each with its fix; empty if nothing."""
    name = table["TableName"]
    hash_key, range_key = layout.hash_key, layout.range_key
    index_name, index_keys = layout.record_index, layout.record_index_keys
    problems: list[str] = []
    keys = {key["KeyType"]: key["AttributeName"] for key in table["KeySchema"]}
    if (keys.get("HASH"), keys.get("RANGE")) != (hash_key, range_key):
        found = ", ".join(f"{keys[kind]} ({kind.lower()})" for kind in ("HASH", "RANGE") if kind in keys)
        problems.append(
            f"its keys are {found}, not {hash_key} (hash), {range_key} (range): pass its key names with"
            f" {settings['keys']}; the outbox needs a string hash and range key"
        )
    else:
        types = {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]}
        if types.get(hash_key) != "S" or types.get(range_key) != "S":
            problems.append(f"its keys {hash_key} and {range_key} must both be strings (S)")
    stream = table.get("StreamSpecification") or {}
    if not stream.get("StreamEnabled") or stream.get("StreamViewType") not in STREAM_VIEWS:
        problems.append(
            f"its stream must be on with view type {' or '.join(STREAM_VIEWS)}, or no message is relayed:"
            f" aws dynamodb update-table --table-name {name} --stream-specification"
            f" StreamEnabled=true,StreamViewType={STREAM_VIEWS[0]}"
        )
    index = next((i for i in table.get("GlobalSecondaryIndexes") or [] if i["IndexName"] == index_name), None)
    wanted = [{"AttributeName": index_keys[0], "KeyType": "HASH"}]
    wanted.append({"AttributeName": index_keys[1], "KeyType": "RANGE"})
    if index is not None and (index["KeySchema"] != wanted or index["Projection"]["ProjectionType"] != "KEYS_ONLY"):
        problems.append(f"its index {index_name} is not the outbox's (keys {', '.join(index_keys)}; KEYS_ONLY)")
    elif index is None and need_index:
        problems.append(
            f"it has no index {index_name}, through which the sweeper finds what the stream missed:"
            f" outbox bootstrap --table-name {name} adds it"
        )
    return problems


def check_table(layout: TableLayout, client: DynamoDBClient | Lazy[DynamoDBClient]) -> None:
    """ConfigurationError in one line (the table, each problem, the setting to change) unless it can hold the outbox.

    A caller not allowed to DescribeTable is not refused for it: the check is skipped.
    """
    table_name = layout.table_name
    try:
        table = resolve(client).describe_table(TableName=table_name)["Table"]
    except ClientError as exc:
        code = error_code(exc)
        if code == "ResourceNotFoundException":
            region = resolve(client).meta.region_name
            raise ConfigurationError(
                f"table {table_name} does not exist in {region}: set {LIBRARY_SETTINGS['table']} and the region"
                " (AWS_REGION), or create it (outbox bootstrap)"
            ) from exc
        if code in ("AccessDeniedException", "UnauthorizedOperation"):
            return
        raise translate(exc, "DescribeTable") from exc
    except AWS_ERRORS as exc:
        raise translate(exc, "DescribeTable") from exc
    problems = table_problems(table, layout, settings=LIBRARY_SETTINGS, need_index=True)
    if problems:
        raise ConfigurationError(f"table {table_name} cannot hold the outbox: {'; '.join(problems)}")
