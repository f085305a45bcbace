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

A record is in the record index (its ``outbox_pk``/``outbox_sk``) until it ends. While PENDING it
sits at its outbox place (``OUTBOX#<bucket>``, time order), which is all the sweeper's relay and
the worker's group check read. A move to QUEUED or PROCESSING puts it under an in-flight
partition (``SENT#<nn>``, by message id) at the time it went in flight (a move from QUEUED or
PROCESSING keeps that time: the keys do not change, the index is not written), where the
sweeper finds a message whose copy is gone. A move to COMPLETED or FAILED removes both keys.

Taking a lease returns the record as it was (``ReturnValues=ALL_OLD``: no read capacity, no
extra request): the consumer delivers the message its record holds, never what a copy says.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from outbox.domain.items import INDEX_PK, INDEX_SK
from outbox.domain.status import ENDED, Status

if TYPE_CHECKING:
    from outbox.domain.record import Lease

AttributeValue = dict[str, Any]
IN_FLIGHT = frozenset({Status.QUEUED, Status.PROCESSING})


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
    hash_key: str, to: Status, sources: frozenset[Status], *, with_reason: bool, leased: bool
) -> UpdateShape:
    """The expressions of a move to ``to`` from one of ``sources``.

    The old values come back only when the result needs them: which status it came from
    (several sources) or the attempts count (PROCESSING), and the whole record when a lease is
    taken (what the consumer delivers).
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

    names |= {"#outbox_pk": INDEX_PK, "#outbox_sk": INDEX_SK}
    index_sets, index_removes = _index_keys(to, sources)
    sets, removes = sets + index_sets, removes + index_removes
    per_call |= {":flight_pk", ":flight_sk"} if index_sets else set()

    names["#expires_at"] = "expires_at"
    if to in ENDED:  # an ended record expires (personal data kept short) ...
        sets.append("#expires_at = :expires")
        per_call.add(":expires")
    else:  # ... and one that is pending or in flight never does (a FAILED -> QUEUED re-drive)
        removes.append("#expires_at")

    update = "SET " + ", ".join(sets)
    update += " REMOVE " + ", ".join(removes) if removes else ""
    update += " ADD " + ", ".join(adds) if adds else ""
    if to is Status.PROCESSING and leased:
        return_values = "ALL_OLD"
    else:
        return_values = "UPDATED_OLD" if len(sources) > 1 or to is Status.PROCESSING else "NONE"
    return UpdateShape(update, condition, names, values, return_values, frozenset(per_call))


def _index_keys(to: Status, sources: frozenset[Status]) -> tuple[list[str], list[str]]:
    """The record index keys' SET and REMOVE clauses of a move to ``to``.

    An ended record leaves the index. One going in flight goes under its in-flight partition with
    the time it went in flight. A move that may start in flight (the consumer's) keeps the sort
    key the record has: from QUEUED or PROCESSING the same keys, so no index write; from PENDING
    its outbox place, which is older, so at worst the sweeper reads it a little early.
    """
    if to in ENDED:
        return [], ["#outbox_pk", "#outbox_sk"]
    since = "if_not_exists(#outbox_sk, :flight_sk)" if sources & IN_FLIGHT else ":flight_sk"
    return ["#outbox_pk = :flight_pk", f"#outbox_sk = {since}"], []


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
    expires_at: int | None = None,
    in_flight: tuple[str, str] | None = None,
) -> dict[str, AttributeValue]:
    """The per-call values of a transition: the new status, the time, the history line, reason and lease.

    ``in_flight`` is the record index place of a message that goes in flight (partition, sort key).
    ``UpdateShape.request`` keeps those its shape uses (``per_call``).
    """
    line: dict[str, AttributeValue] = {"status": S(to.value), "at": S(now), "by": S(by)}
    values: dict[str, AttributeValue] = {":to": S(to.value), ":now": S(now)}
    if in_flight is not None:
        values[":flight_pk"], values[":flight_sk"] = S(in_flight[0]), S(in_flight[1])
    if reason:
        line["reason"] = values[":reason"] = S(reason)
    values[":line"] = {"L": [{"M": line}]}
    if lease is not None:
        values[":owner"] = S(lease.owner)
        if to is Status.PROCESSING:
            values[":until"] = S(lease.until)
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
    """ADD 1 to ``relay_attempts`` of a record that is still PENDING, once per failure (``:failure``).

    The failure's token is kept on the record and the condition refuses it a second time, so a
    retry of a write whose answer was lost (botocore's, the same request) does not count twice.
    """
    return UpdateShape(
        update="SET #last_failure = :failure ADD #relay_attempts :one",
        condition="attribute_exists(#pk) AND #status = :pending AND "
        "(attribute_not_exists(#last_failure) OR #last_failure <> :failure)",
        names={
            "#pk": hash_key,
            "#status": "status",
            "#relay_attempts": "relay_attempts",
            "#last_failure": "last_relay_failure",
        },
        values={":one": {"N": "1"}, ":pending": S(Status.PENDING.value)},
        return_values="UPDATED_OLD",
        per_call=frozenset({":failure"}),
    )


@cache
def generation_shape(hash_key: str, expected: frozenset[Status], *, seen: int | None) -> UpdateShape:
    """ADD 1 to ``send_generation`` of a record in one of ``expected``, before a re-send.

    A PROCESSING record qualifies only once its lease has run out. With ``seen`` (the generation
    the caller read; 0: never re-sent), only while the record still holds it and the ``updated_at``
    read with it. The index keys are left as they are: a keys-only index is not written.
    """
    ordered = sorted(expected)
    names = {"#pk": hash_key, "#status": "status", "#generation": "send_generation"}
    values: dict[str, AttributeValue] = {f":s{i}": S(s.value) for i, s in enumerate(ordered)} | {":one": {"N": "1"}}
    per_call: set[str] = set()
    status_in = f"#status IN ({', '.join(f':s{i}' for i in range(len(ordered)))})"
    condition = f"attribute_exists(#pk) AND {status_in}"
    if Status.PROCESSING in expected:
        names["#lease_until"] = "lease_until"
        processing = f":s{ordered.index(Status.PROCESSING)}"
        condition += f" AND (#status <> {processing} OR attribute_not_exists(#lease_until) OR #lease_until <= :now)"
        per_call.add(":now")
    if seen is not None:
        names["#updated_at"] = "updated_at"
        condition += " AND #updated_at = :seen_at"
        per_call.add(":seen_at")
        if seen:
            condition += " AND #generation = :seen_generation"
            values[":seen_generation"] = {"N": str(seen)}
        else:
            condition += " AND attribute_not_exists(#generation)"
    return UpdateShape(
        update="ADD #generation :one",
        condition=condition,
        names=names,
        values=values,
        return_values="UPDATED_NEW",
        per_call=frozenset(per_call),
    )


@cache
def resent_shape(hash_key: str) -> UpdateShape:
    """SET ``sent_at`` once SQS accepted a re-send in flight, while the record is still at that send generation."""
    return UpdateShape(
        update="SET #sent_at = :now",
        condition="attribute_exists(#pk) AND #generation = :generation",
        names={"#pk": hash_key, "#generation": "send_generation", "#sent_at": "sent_at"},
        values={},
        return_values="NONE",
        per_call=frozenset({":now", ":generation"}),
    )
