"""The conditional UpdateItem requests of the status lifecycle, written out by hand.

Each transition is one request: SET the status fields, append one ``{status, at, by, reason?}``
line to the history, and nothing else, under a condition that admits only the statuses the
lifecycle table allows to move there. The expressions use named placeholders (``#status``,
``:to``); what depends only on the kind of transition is built once and reused, and each call
adds its values.

A lease makes PROCESSING exclusive: taking it sets ``lease_owner`` (one receive of one SQS copy)
and ``lease_until`` and is allowed from PROCESSING only once the previous lease has run out or was
released; leaving PROCESSING under a lease requires the same owner, removes the lease and keeps
its owner as ``ended_lease_owner``. So a write whose answer was lost and which is tried again (by
botocore or by us) fails its condition on its own effect, and the ALL_OLD item names the writer:
the live lease's owner (PROCESSING) or ``ended_lease_owner`` (ended).
A re-drive out of FAILED removes ``ended_lease_owner`` with the rest of the ended record's fields.

A record is in the pending index (its ``outbox_pk``/``outbox_sk``) only while it is PENDING:
every move out of PENDING removes them in the same request, so the index holds exactly the
messages not yet relayed, which is all the sweeper and the worker's group check read.

A copy's ``payload_hash`` in the start condition refuses a forged or altered copy in the same
request: the condition fails, nothing changes, and ALL_OLD shows the stored hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from outbox.adapters.schema import RECORD_INDEX_KEYS
from outbox.domain.record import Lease
from outbox.domain.status import ENDED, Status

AttributeValue = dict[str, Any]


def S(value: str) -> AttributeValue:
    """A DynamoDB string value."""
    return {"S": value}


@dataclass(frozen=True)
class UpdateShape:
    """What one kind of transition's request always holds: expressions, names, the sources' values."""

    update: str
    condition: str
    names: dict[str, str]
    values: dict[str, AttributeValue]
    return_values: str
    per_call: frozenset[str] = frozenset()  # the values each call adds (DynamoDB refuses an unused one)

    def request(self, table_name: str, key: dict[str, AttributeValue], values: dict[str, AttributeValue]) -> Any:
        """The UpdateItem request for one record, with this call's values (those its expressions use)."""
        used = {name: value for name, value in values.items() if name in self.per_call}
        return {
            "TableName": table_name,
            "Key": key,
            "UpdateExpression": self.update,
            "ConditionExpression": self.condition,
            "ExpressionAttributeNames": self.names,
            "ExpressionAttributeValues": self.values | used,
            "ReturnValues": self.return_values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }


@cache
def transition_shape(
    hash_key: str, to: Status, sources: frozenset[Status], *, with_reason: bool, leased: bool, hashed: bool = False
) -> UpdateShape:
    """The expressions of a move to ``to`` from one of ``sources``.

    The old values come back only when the result needs them: which status it came from
    (several sources) or the attempts count (PROCESSING).
    """
    names = {"#pk": hash_key, "#status": "status", "#updated_at": "updated_at", "#history": "history"}
    sets = ["#status = :to", "#updated_at = :now", "#history = list_append(#history, :line)"]
    per_call = {":to", ":now", ":line"}
    removes: list[str] = []
    adds: list[str] = []
    if with_reason:
        names["#reason"] = "reason"
        sets.append("#reason = :reason")
        per_call.add(":reason")
    if to is Status.PROCESSING:
        names["#attempts"] = "attempts"
        adds.append("#attempts :one")
    elif to is Status.QUEUED:
        names["#attempts"] = "attempts"
        sets.append("#attempts = :zero")  # a re-driven message gets a fresh delivery budget
    lease_names, lease_sets, lease_removes = _lease_parts(to, sources, leased=leased)
    names |= lease_names
    sets += lease_sets
    removes += lease_removes
    if to is Status.PROCESSING and leased:
        per_call |= {":owner", ":until"}

    ordered = sorted(sources)
    values: dict[str, AttributeValue] = {f":s{i}": S(s.value) for i, s in enumerate(ordered)}
    if to is Status.PROCESSING:
        values[":one"] = {"N": "1"}
    elif to is Status.QUEUED:
        values[":zero"] = {"N": "0"}
    condition = _source_condition(ordered, to, leased=leased)
    if leased and to is not Status.PROCESSING and sources == frozenset({Status.PROCESSING}):
        per_call.add(":owner")

    if Status.PENDING in sources:  # a record leaves the pending index with PENDING (a sparse index)
        names |= {"#outbox_pk": RECORD_INDEX_KEYS[0], "#outbox_sk": RECORD_INDEX_KEYS[1]}
        removes += ["#outbox_pk", "#outbox_sk"]

    names["#expires_at"] = "expires_at"
    if to in ENDED:  # an ended record expires (personal data kept short) ...
        sets.append("#expires_at = :expires")
        per_call.add(":expires")
    else:  # ... and one that is pending or in flight never does (a FAILED -> QUEUED re-drive)
        removes.append("#expires_at")

    if hashed:  # only the copy the record describes may change it (records before types keep a channel)
        names |= {"#payload_hash": "payload_hash", "#channel": "channel"}
        condition += " AND (#payload_hash = :hash OR attribute_exists(#channel))"
        per_call.add(":hash")

    update = "SET " + ", ".join(sets)
    update += " REMOVE " + ", ".join(removes) if removes else ""
    update += " ADD " + ", ".join(adds) if adds else ""
    return_values = "UPDATED_OLD" if len(sources) > 1 or to is Status.PROCESSING else "NONE"
    return UpdateShape(update, condition, names, values, return_values, frozenset(per_call))


def _lease_parts(
    to: Status, sources: frozenset[Status], *, leased: bool
) -> tuple[dict[str, str], list[str], list[str]]:
    """The lease's names, SETs and REMOVEs of a move: taken, given up with its owner kept, or forgotten."""
    names = {"#lease_owner": "lease_owner", "#lease_until": "lease_until"}
    if to is Status.PROCESSING:
        sets = ["#lease_owner = :owner", "#lease_until = :until"] if leased else []
        return (names if leased else {}), sets, []
    sets, removes = [], ["#lease_owner", "#lease_until"]  # no lease outlives PROCESSING
    if leased and to in ENDED and sources == frozenset({Status.PROCESSING}):
        names["#ended_lease_owner"] = "ended_lease_owner"
        sets.append("#ended_lease_owner = :owner")  # who ended it: a retry of this very write knows its own
    elif to not in ENDED and sources & ENDED:
        names["#ended_lease_owner"] = "ended_lease_owner"
        removes.append("#ended_lease_owner")  # a re-drive: a new life, nobody has ended it yet
    return names, sets, removes


def _source_condition(ordered: list[Status], to: Status, *, leased: bool) -> str:
    """The record exists and is in one of the sources (``:s0``...), with the lease's rules when leased."""
    status_in = f"#status IN ({', '.join(f':s{i}' for i in range(len(ordered)))})"
    if leased and to is Status.PROCESSING and Status.PROCESSING in ordered:
        # PROCESSING is taken over only once its lease ran out, was released, or never existed.
        others = [f":s{i}" for i, s in enumerate(ordered) if s is not Status.PROCESSING]
        expired = "(attribute_not_exists(#lease_until) OR #lease_until <= :now)"
        processing = f":s{ordered.index(Status.PROCESSING)}"
        clauses = ([f"#status IN ({', '.join(others)})"] if others else []) + [
            f"(#status = {processing} AND {expired})"
        ]
        return f"attribute_exists(#pk) AND ({' OR '.join(clauses)})"
    if leased and ordered == [Status.PROCESSING] and to is not Status.PROCESSING:
        return f"attribute_exists(#pk) AND {status_in} AND #lease_owner = :owner"  # only the holder finishes
    return f"attribute_exists(#pk) AND {status_in}"


def transition_values(
    to: Status,
    *,
    now: str,
    by: str,
    reason: str | None,
    lease: Lease | None,
    payload_hash: str | None = None,
    expires_at: int | None = None,
) -> dict[str, AttributeValue]:
    """The per-call values of a transition: the new status, the time, the history line, reason and lease.

    ``UpdateShape.request`` keeps those its shape uses (``per_call``).
    """
    line: dict[str, AttributeValue] = {"status": S(to.value), "at": S(now), "by": S(by)}
    values: dict[str, AttributeValue] = {":to": S(to.value), ":now": S(now)}
    if reason:
        line["reason"] = values[":reason"] = S(reason)
    values[":line"] = {"L": [{"M": line}]}
    if lease is not None:
        values[":owner"] = S(lease.owner)
        if to is Status.PROCESSING:
            values[":until"] = S(lease.until)
    if payload_hash is not None:
        values[":hash"] = S(payload_hash)
    if expires_at is not None:
        values[":expires"] = {"N": str(expires_at)}
    return values


@cache
def release_shape(hash_key: str) -> UpdateShape:
    """End a lease now, still PROCESSING: the holder sent its copy back, so the next receive may take it."""
    return UpdateShape(
        update="SET #lease_until = :now",
        condition="attribute_exists(#pk) AND #status = :processing AND #lease_owner = :owner",
        names={"#pk": hash_key, "#status": "status", "#lease_until": "lease_until", "#lease_owner": "lease_owner"},
        values={":processing": S(Status.PROCESSING.value)},
        return_values="NONE",
        per_call=frozenset({":now", ":owner"}),
    )


@cache
def relay_failure_shape(hash_key: str) -> UpdateShape:
    """ADD 1 to ``relay_attempts`` of a record that is still PENDING."""
    return UpdateShape(
        update="ADD #relay_attempts :one",
        condition="attribute_exists(#pk) AND #status = :pending",
        names={"#pk": hash_key, "#status": "status", "#relay_attempts": "relay_attempts"},
        values={":one": {"N": "1"}, ":pending": S(Status.PENDING.value)},
        return_values="UPDATED_OLD",
    )
