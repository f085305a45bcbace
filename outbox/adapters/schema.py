"""The table's names: key attributes, TTL attribute, record index. No PynamoDB here.

The adapters that build their requests by hand (store updates, sweep, the handlers) need these
names and nothing else of the models, so they do not import PynamoDB (nor, through it,
botocore's client) before a model is used.
"""

from __future__ import annotations

HASH_KEY = "pk"
RANGE_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"
# PENDING records by their place in the outbox (bucket, then time), keys only: a sparse index, as
# every move out of PENDING removes its keys. The sweeper's way to every message not yet relayed,
# whether or not its outbox entry still exists, and the worker's check that no older message of a
# group waits; both read only the backlog, never the settled table.
RECORD_INDEX = "outbox-records"
RECORD_INDEX_KEYS = ("outbox_pk", "outbox_sk")


def check_key_names(hash_key: str, range_key: str) -> None:
    """ValueError unless the hash and range key attribute names are two different non-empty names."""
    if not hash_key or not range_key or hash_key == range_key:
        raise ValueError("the hash and range key attribute names must be two different non-empty names")
