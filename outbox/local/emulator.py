"""The embedded emulator: moto's server on loopback, made correct and fast enough for the local stack.

What moto 5.2.5 does not do correctly is fixed here, and only here:

1. **Concurrent requests.** moto's DynamoDB models are not safe under concurrent requests:
   writes can be lost. ``SerialisedDynamoDB`` (a WSGI middleware) serves every DynamoDB and
   DynamoDB Streams request one at a time. SQS stays concurrent: its long polls would hold the lock.
2. **Transactions.** moto snapshots every table a TransactWriteItems touches with a ``deepcopy``
   and, on cancellation, puts the copy in the table's place: a new table object, whose stream the
   open shard iterators (still on the old one) never see again, and a copy of whole tables per
   transaction. ``install_transaction_journal`` keeps moto's own transaction code but makes that
   snapshot the table itself, and records an undo journal instead (the pre-image of each touched
   item and the stream's length), from which a cancelled or failed transaction is undone.
3. **FIFO groups.** moto counts a group as in flight while any message it handed out is still
   marked pending, even once that message is visible again; a receive releases the pending mark
   only when it reaches the message in the queue, and goes on with the groups it noted then.
   When two messages of a group came back to the queue (both received, both sent back), a receive
   skips the older, whose group the newer's stale mark still holds, then releases and hands out
   the newer: the group out of order. SQS holds a group only while one of its messages is in
   flight, that is invisible: ``install_fifo_groups_in_flight`` drops a message's pending mark as
   soon as it is visible again, so the groups a receive notes are the ones in flight. A long poll
   still keeps the groups it noted at its start: at worst it waits for its next poll.
4. **FIFO deduplication.** moto dedupes a send only against the copies still in the queue, so a
   deduplication id is forgotten as soon as its copy is deleted (or moved to the dead-letter
   queue). SQS keeps it for 5 minutes from the send that it accepted: a second send with the
   same id within that window is answered "successful" and not enqueued, whatever became of the
   first copy. ``install_fifo_dedup_window`` keeps, per queue, when each id was last accepted.
5. **Trace headers in batches.** moto keeps a SendMessage's ``AWSTraceHeader`` system attribute
   (and a receive asking for it gets it back), but its SendMessageBatch drops every entry's:
   ``install_batch_system_attributes`` hands each entry's ``MessageSystemAttributes`` to moto's own
   ``send_message``, as its SendMessage does.
6. **Where a dead letter came from.** SQS marks a copy its redrive moves to a dead-letter queue
   with the source queue's ARN (the system attribute ``DeadLetterQueueSourceArn``, which no sender
   can set); moto moves the copy and marks nothing. ``install_dead_letter_source_arn`` notes the
   source at the move and returns it on receive, so the dead-letter function can tell a moved copy
   from one sent to the queue by hand.
7. **A visibility change on a copy not in flight.** SQS refuses ChangeMessageVisibility for a copy
   that is visible again (its visibility timeout ran out): ``MessageNotInflight``. moto finds the
   copy by any receipt handle it ever had and makes it invisible again, without marking it in
   flight: a FIFO group then goes on past it, handing out the next message of the group while
   that copy waits (a late retry delay from an invocation that outlived the visibility timeout
   did so in a 10k chaos run). ``install_visibility_in_flight_only`` refuses the change, in
   ChangeMessageVisibility and in each entry of ChangeMessageVisibilityBatch.
8. **Deletes beside sends.** moto's ``Queue.delete_message`` rebuilds the queue's list of
   messages without the lock its sends take and puts the new list in the old one's place, so a
   copy a concurrent send appended in between is gone: SQS had answered "successful", the
   outbox flipped the record QUEUED, and no copy exists (two records stranded so in a 10,000
   message FIFO chaos run, both of one SendMessageBatch). ``install_locked_deletes`` deletes in
   place under that lock.
9. **RedriveAllowPolicy.** moto keeps a queue's ``RedriveAllowPolicy`` but never returns it in
   GetQueueAttributes; ``install_redrive_allow_policy`` returns it, so a Terraform apply (which
   waits for the attributes it set to read back) can create a dead-letter queue that has one.

The rest makes moto cheaper per request without deciding anything moto decides: every request is
still parsed, validated, evaluated and answered by moto's own code, on moto's own data.

- Serialisation: AttributeValues and attribute maps already in wire form are written as they are
  (``install_fast_attribute_values``); anything else takes moto's serializer.
- Caches of what cannot change while the server runs: what moto derives from an expression
  string alone (the parse of an UpdateExpression, handed out as a fresh copy per call; the lexing
  of a ConditionExpression; ``install_expression_caches``), each handler class's method names, the
  list of moto's modules.
- Less input for moto's own evaluation: a table Query runs over the queried partition, not the
  whole table (``install_partition_query``); a queue's attributes are read one at a time through
  moto's own getters, not all computed for each one read (``install_lazy_queue_attributes``).
- Transport: DynamoDB requests go to moto's handlers without the Flask app around them, on
  waitress rather than werkzeug's development server (connections stay open), in a process whose
  garbage collector seldom walks moto's long-lived tables.

Every fix replaces attributes of moto's classes or modules through ``_patch``, which remembers
what moto had for ``_restore``; ``install_all`` and ``uninstall_all`` apply and undo the set in
``_FIXES``. ``tests/integration/test_emulator.py`` runs a scenario for each fix on moto as
shipped and on patched moto and requires the same outcome (answers, errors, items, stream
records), and fails when moto internals a fix relies on move.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import inspect
import json
import os
import pickle
import subprocess
import sys
import threading
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import IO, Any, cast

_ABSENT = object()  # what an owner held under a name it did not define itself
_originals: dict[tuple[Any, str], Any] = {}  # (owner, name) -> what moto's class or module held there


def _patch(owner: Any, **replacements: Any) -> None:
    """Replace attributes of a moto class or module, each remembering moto's own for ``_restore``."""
    for name, replacement in replacements.items():
        _originals.setdefault((owner, name), vars(owner).get(name, _ABSENT))
        setattr(owner, name, replacement)


def _patched(owner: Any, name: str) -> bool:
    """Whether ``owner.name`` is one of our replacements (every install is idempotent)."""
    return (owner, name) in _originals


def _restore(owner: Any, *names: str) -> None:
    """Put moto's own attributes back (for differential tests); a no-op where nothing is patched."""
    for name in names:
        if (owner, name) not in _originals:
            continue
        original = _originals.pop((owner, name))
        if original is _ABSENT:
            delattr(owner, name)
        else:
            setattr(owner, name, original)


_journaling = threading.local()  # .active: a journaled transaction is running in this thread


@dataclass
class _Touched:
    table: Any
    hash_value: Any
    range_value: Any
    pre_image: Any  # a deep copy of the moto Item, or None when the item did not exist


class _Journal:
    """Undo information for one transaction: item pre-images and stream lengths."""

    def __init__(self, backend: Any, transact_items: Sequence[dict[str, Any]]) -> None:
        from moto.dynamodb.models.dynamo_type import DynamoType

        self.touched: list[_Touched] = []
        self.stream_lengths: dict[int, tuple[Any, int]] = {}
        for request in transact_items:
            _, op = next(iter(request.items()))
            table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            key = op.get("Key") or op.get("Item") or {}
            try:
                hash_value = DynamoType(key[table.hash_key_attr])
                range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                current = table.get_item(hash_value, range_value)
            except Exception:  # noqa: BLE001, S112 - a malformed key writes nothing: nothing to undo
                continue
            self.touched.append(_Touched(table, hash_value, range_value, copy.deepcopy(current)))
            if table.stream_shard is not None:
                self.stream_lengths.setdefault(id(table), (table.stream_shard, len(table.stream_shard.items)))

    def undo(self) -> None:
        """Put every touched item back as it was and drop the stream records written since."""
        for touched in reversed(self.touched):
            items = touched.table.items
            if touched.range_value is not None:
                bucket = items[touched.hash_value]
                if touched.pre_image is None:
                    bucket.pop(touched.range_value, None)
                else:
                    bucket[touched.range_value] = touched.pre_image
            elif touched.pre_image is None:
                items.pop(touched.hash_value, None)
            else:
                items[touched.hash_value] = touched.pre_image
        for shard, length in self.stream_lengths.values():
            del shard.items[length:]


class _SnapshotFreeCopy:
    """Stands in for the ``copy`` module inside moto's DynamoDB models.

    During a journaled transaction, ``deepcopy(table)`` returns the table itself; every other
    deepcopy is the real one.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(obj: Any, memo: dict[int, Any] | None = None) -> Any:
        from moto.dynamodb.models.table import Table

        if getattr(_journaling, "active", False) and isinstance(obj, Table):
            return obj
        return copy.deepcopy(obj, memo)


def install_transaction_journal() -> None:
    """Patch moto's TransactWriteItems to undo from a journal instead of deep-copying tables (idempotent)."""
    from moto.dynamodb import models

    if _patched(models.DynamoDBBackend, "transact_write_items"):
        return
    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        journal = _Journal(self, transact_items)
        _journaling.active = True
        try:
            original(self, transact_items)
        except BaseException:
            journal.undo()
            raise
        finally:
            _journaling.active = False

    _patch(models, copy=_SnapshotFreeCopy())
    _patch(models.DynamoDBBackend, transact_write_items=transact_write_items)


def uninstall_transaction_journal() -> None:
    """Restore moto's own TransactWriteItems (for differential tests)."""
    from moto.dynamodb import models

    _restore(models.DynamoDBBackend, "transact_write_items")
    _restore(models, "copy")


_SCALARS = {"S": str, "N": str, "BOOL": bool, "NULL": bool}


def _plain_attribute_value(value: Any) -> Any:
    """An AttributeValue dict in wire form, or None when it holds anything but S/N/BOOL/NULL/SS/NS/M/L."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((kind, inner),) = value.items()
    if kind in _SCALARS:
        return {kind: inner} if isinstance(inner, _SCALARS[kind]) else None
    if kind in ("SS", "NS"):
        return {kind: list(inner)} if isinstance(inner, list) and all(isinstance(v, str) for v in inner) else None
    if kind == "M" and isinstance(inner, dict):
        members = {k: _plain_attribute_value(v) for k, v in inner.items()}
        return None if any(v is None for v in members.values()) else {"M": members}
    if kind == "L" and isinstance(inner, list):
        items = [_plain_attribute_value(v) for v in inner]
        return None if any(v is None for v in items) else {"L": items}
    return None


def install_fast_attribute_values() -> None:
    """Serialise DynamoDB AttributeValues straight from moto's wire-form dicts (idempotent).

    moto's generic serializer walks all ten AttributeValue members through alias providers for
    every value of every item and stream image. A value (or a whole attribute map: an item, a
    stream image) that is already plain wire JSON is copied as is; anything else (binary, sets of
    bytes, objects) takes moto's own path.
    """
    from moto.core.serialize import BaseJSONSerializer

    if _patched(BaseJSONSerializer, "_serialize_type_structure"):
        return
    original, original_map = BaseJSONSerializer._serialize_type_structure, BaseJSONSerializer._serialize_type_map

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == "AttributeValue":
            plain = _plain_attribute_value(value)
            if plain is not None:
                serialized[self.get_serialized_name(shape, key)] = plain
                return
        original(self, serialized, value, shape, key)

    def serialize_map(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.value.name == "AttributeValue" and isinstance(value, dict):
            plain = {k: _plain_attribute_value(v) for k, v in value.items()}
            if all(isinstance(k, str) and v is not None for k, v in plain.items()):
                serialized[self.get_serialized_name(shape, key)] = plain
                return
        original_map(self, serialized, value, shape, key)

    _patch(BaseJSONSerializer, _serialize_type_structure=serialize_structure, _serialize_type_map=serialize_map)


def uninstall_fast_attribute_values() -> None:
    """Restore moto's own serializer (for differential tests)."""
    from moto.core.serialize import BaseJSONSerializer

    _restore(BaseJSONSerializer, "_serialize_type_structure", "_serialize_type_map")


def install_module_list_cache() -> None:
    """Answer moto's per-request ``list_of_moto_modules`` from memory (idempotent).

    moto's server lists and stats its own package directory on every request to route it; the
    installed modules do not change while it runs.
    """
    from moto import backends

    if _patched(backends, "list_of_moto_modules"):
        return
    modules = tuple(backends.list_of_moto_modules())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    _patch(backends, list_of_moto_modules=list_of_moto_modules)


def uninstall_module_list_cache() -> None:
    """Let moto list its modules again on every request (for differential tests)."""
    from moto import backends

    _restore(backends, "list_of_moto_modules")


def install_method_name_cache() -> None:
    """Remember each moto response class's method names (idempotent).

    moto decides whether a handler implements an action by listing the class's functions with
    ``inspect.getmembers`` on every request; the names do not change while it runs. Each caller
    gets its own list.
    """
    from moto.core import responses

    if _patched(responses, "method_names_from_class"):
        return
    original = responses.method_names_from_class  # type: ignore[attr-defined]
    names: dict[object, list[str]] = {}

    def method_names_from_class(clazz: object) -> list[str]:
        if clazz not in names:
            names[clazz] = original(clazz)
        return list(names[clazz])

    _patch(responses, method_names_from_class=method_names_from_class)


def uninstall_method_name_cache() -> None:
    """Restore moto's own per-request listing (for differential tests)."""
    from moto.core import responses

    _restore(responses, "method_names_from_class")


def install_expression_caches() -> None:
    """Keep what moto derives from an expression string alone, computed by moto once (idempotent).

    moto parses the update expression of every UpdateItem twice (the handler lists its
    placeholders, the backend validates and runs it), and once per Update in a transaction; its
    validator deep-copies that tree before resolving it against the item, names and values; and it
    lexes every condition expression it meets, twice per conditional UpdateItem. Kept here:

    - the parse of each UpdateExpression string, pickled: every caller gets a fresh copy of moto's
      tree, made by unpickling, to change as it pleases; the validators' copy of such a tree is made
      the same way (pickle rebuilds the nodes from the same ``__reduce_ex__`` that ``deepcopy`` uses);
    - the lexing of each ConditionExpression string: immutable tokens (tuples whose child lists are
      empty and never written), handed out in a fresh deque; names and values are looked up
      afterwards by moto, on every call;
    - each expression processor's node types, which moto's ``nodes_to_be_processed`` (documented
      as a cached accessor) rebuilds from the processor's constant map for every node it visits.

    Parsing what follows the lexing, validation and evaluation stay moto's own, on moto's own
    trees; an expression moto refuses is parsed, and refused, every time.
    """
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    if _patched(UpdateExpressionParser, "make"):
        return
    parse, lex = UpdateExpressionParser.make, ConditionExpressionParser._lex_condition_expression
    node_types = DepthFirstTraverser.nodes_to_be_processed

    @functools.lru_cache(maxsize=1024)
    def pickled(expression: str) -> bytes:
        return pickle.dumps(parse(expression), pickle.HIGHEST_PROTOCOL)

    def make(cls: Any, expression: Any) -> Any:
        if not isinstance(expression, str):
            return parse(expression)
        return pickle.loads(pickled(expression))  # noqa: S301 - bytes we pickled ourselves, in this process

    @functools.lru_cache(maxsize=1024)
    def lexed(expression: str) -> tuple[Any, ...]:
        return tuple(lex(ConditionExpressionParser(expression, None, None)))

    def lex_condition_expression(self: Any) -> deque[Any]:
        expression = self.condition_expression
        return deque(lexed(expression)) if isinstance(expression, str) else lex(self)

    def nodes_to_be_processed(self: Any) -> Any:
        if "_outbox_node_types" not in vars(self):
            self._outbox_node_types = node_types(self)
        return self._outbox_node_types

    _patch(UpdateExpressionParser, make=classmethod(make))
    _patch(validators, deepcopy=_copy_tree)
    _patch(ConditionExpressionParser, _lex_condition_expression=lex_condition_expression)
    _patch(DepthFirstTraverser, nodes_to_be_processed=nodes_to_be_processed)


def _copy_tree(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """``deepcopy`` for moto's validators: an expression tree by a pickle round trip, anything else as is."""
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    if memo is None and isinstance(value, Node):
        return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))  # noqa: S301 - our own bytes
    return copy.deepcopy(value, memo)


def uninstall_expression_caches() -> None:
    """Let moto parse every expression again (for differential tests)."""
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    _restore(UpdateExpressionParser, "make")
    _restore(validators, "deepcopy")
    _restore(ConditionExpressionParser, "_lex_condition_expression")
    _restore(DepthFirstTraverser, "nodes_to_be_processed")


_partition = threading.local()


def install_partition_query() -> None:
    """Let a table Query read its one partition, not every item of the table (idempotent).

    moto's Query (without an index) lists and sorts every item of the table, then keeps those
    whose hash key equals the queried one: O(table) per page. While such a Query runs here, the
    table's ``all_items`` is moto's own ``all_items`` run on the queried partition alone (the one
    bucket of moto's item storage under that hash key, which holds exactly the items that equal
    it). An index Query, a table without a range key and everything else see the whole table.
    """
    from moto.dynamodb.models.table import Table

    if _patched(Table, "query"):
        return
    original_query, original_all_items = Table.query, Table.all_items
    signature = inspect.signature(original_query)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        if arguments.get("index_name") or arguments.get("hash_key") is None or not self.range_key_attr:
            return original_query(self, *args, **kwargs)
        _partition.table, _partition.key = self, arguments["hash_key"]
        try:
            return original_query(self, *args, **kwargs)
        finally:
            _partition.table = None

    def all_items(self: Any) -> list[Any]:
        queried: Any = getattr(_partition, "table", None)
        if queried is not self:
            return original_all_items(self)
        key, items = _partition.key, self.items
        partition = SimpleNamespace(items={key: items[key]} if key in items else {}, range_key_attr=self.range_key_attr)
        return original_all_items(cast("Any", partition))

    _patch(Table, query=query, all_items=all_items)


def uninstall_partition_query() -> None:
    """Restore moto's own Query (for differential tests)."""
    from moto.dynamodb.models.table import Table

    _restore(Table, "query", "all_items")


class _LazyQueueAttributes(Mapping[str, Any]):
    """A queue's attributes, each computed only when read (moto computes all of them, O(depth), per call)."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        self._names = dict.fromkeys(names)

    def __getitem__(self, name: str) -> Any:
        from moto.core.utils import camelcase_to_underscores

        if name not in self._names:
            raise KeyError(name)
        queue = self._queue
        if name == "RedrivePolicy" and queue.redrive_policy:
            return json.dumps(queue.redrive_policy)
        value = getattr(queue, camelcase_to_underscores(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def install_lazy_queue_attributes() -> None:
    """Make moto's ``Queue.attributes`` lazy (idempotent).

    Every SendMessage and every received message reads one attribute through ``Queue.attributes``,
    which computes all of them, counting the whole queue three times: SQS slows as the queue grows.
    A mapping that computes an attribute (with moto's own getter) only when it is read gives the
    same names, values and order.
    """
    from moto.sqs.models import Queue

    if not _patched(Queue, "attributes"):
        _patch(Queue, attributes=property(_LazyQueueAttributes))


def uninstall_lazy_queue_attributes() -> None:
    """Restore moto's own ``Queue.attributes`` (for differential tests)."""
    from moto.sqs.models import Queue

    _restore(Queue, "attributes")


def _in_flight(queue: Any) -> set[Any]:
    """The messages handed out and not yet visible again (the pending set, less those visible once more)."""
    pending: set[Any] = queue._pending_messages
    # A copy to iterate: another request's receive or delete may change the set meanwhile.
    pending.difference_update([m for m in tuple(pending) if m.visible])
    return pending


def _groups_in_flight(queue: Any) -> set[str]:
    """The FIFO groups with a message in flight: what SQS holds back."""
    return {m.group_id for m in tuple(_in_flight(queue)) if m.group_id is not None}


def install_fifo_groups_in_flight() -> None:
    """Make moto's pending messages and groups those in flight only (idempotent)."""
    from moto.sqs.models import Queue

    if not _patched(Queue, "pending_message_groups"):
        _patch(Queue, pending_messages=property(_in_flight), pending_message_groups=property(_groups_in_flight))


def uninstall_fifo_groups_in_flight() -> None:
    """Restore moto's own ``Queue.pending_messages`` and ``pending_message_groups`` (for differential tests)."""
    from moto.sqs.models import Queue

    _restore(Queue, "pending_messages", "pending_message_groups")


FIFO_DEDUP_WINDOW_MS = 300_000  # SQS keeps a deduplication id this long from the send it accepted


class _DedupWindow:
    """The deduplication ids a FIFO queue accepted in the last 5 minutes, with when (moto's clock, ms)."""

    def __init__(self) -> None:
        self.accepted: dict[tuple[str | None, str], int] = {}
        self.order: deque[tuple[int, tuple[str | None, str]]] = deque()  # oldest first, for expiry
        self.lock = threading.Lock()

    def admits(self, key: tuple[str | None, str], at: int) -> bool:
        """Whether a send at ``at`` with this id is enqueued (and if so, the window starts again from it)."""
        with self.lock:
            while self.order and self.order[0][0] <= at - FIFO_DEDUP_WINDOW_MS:
                then, old = self.order.popleft()
                if self.accepted.get(old) == then:
                    del self.accepted[old]
            first = self.accepted.get(key)
            if first is not None and at - first < FIFO_DEDUP_WINDOW_MS:
                return False
            self.accepted[key] = at
            self.order.append((at, key))
            return True


def install_fifo_dedup_window() -> None:
    """Make a FIFO queue remember each deduplication id for 5 minutes from its send, as SQS does (idempotent).

    Only sends are deduplicated: a copy moved to the dead-letter queue (received at least once)
    keeps moto's own handling. moto's own check (against the copies still queued) stays behind
    ours; it can only drop what ours already dropped.
    """
    from moto.sqs.models import Queue

    if _patched(Queue, "add_message"):
        return
    original = Queue.add_message

    def add_message(self: Any, message: Any) -> None:
        dedup_id = message.deduplication_id
        if self.fifo_queue and dedup_id and not message.approximate_receive_count:
            window = self.__dict__.setdefault("_outbox_dedup_window", _DedupWindow())
            per_group = self.attributes.get("DeduplicationScope") == "messageGroup"
            if not window.admits((message.group_id if per_group else None, dedup_id), int(message.sent_timestamp)):
                return  # answered as sent, not enqueued
        original(self, message)

    _patch(Queue, add_message=add_message)


def uninstall_fifo_dedup_window() -> None:
    """Restore moto's own ``Queue.add_message`` (for differential tests)."""
    from moto.sqs.models import Queue

    _restore(Queue, "add_message")


DEAD_LETTER_SOURCE = "DeadLetterQueueSourceArn"  # the system attribute SQS puts on a copy its redrive moved
REDRIVE_ALLOW_POLICY = "RedriveAllowPolicy"  # a dead-letter queue's list of the queues that may name it


def install_dead_letter_source_arn() -> None:
    """Mark each copy moto's redrive moves with ``DeadLetterQueueSourceArn``, as SQS does (idempotent).

    SQS records on a copy it moves to a dead-letter queue the ARN of the queue it came from, and
    ReceiveMessage returns it (``All`` or the name asked for), so Lambda's SQS event carries it in
    ``attributes``. A sender cannot set it (SendMessage takes ``AWSTraceHeader`` as its only system
    attribute). moto moves the copy (during a receive of the source queue) but records nothing: the
    move here notes the source on the copy, and the receive returns it. Nothing else changes.
    """
    from moto.sqs.models import SQSBackend
    from moto.sqs.responses import SQSResponse

    if _patched(SQSBackend, "receive_message"):
        return
    receive = SQSBackend.receive_message
    respond = SQSResponse.receive_message

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        dlq = queue.dead_letter_queue
        before = {id(message) for message in tuple(queue._messages)} if dlq is not None else set()
        received = receive(self, queue_name, *args, **kwargs)
        if dlq is not None:
            for message in tuple(dlq._messages):
                if id(message) in before:  # moved by this receive (a copy is one object throughout)
                    message.__dict__["_outbox_dead_letter_source"] = queue.queue_arn
        return received

    def receive_response(self: Any) -> Any:
        result = respond(self)
        names = set(self._get_param("AttributeNames", [])) | set(self._get_param("MessageSystemAttributeNames", []))
        if not names & {"All", DEAD_LETTER_SOURCE}:
            return result
        queue = self.sqs_backend.get_queue(self._get_queue_name())
        sources = {m.id: m.__dict__.get("_outbox_dead_letter_source") for m in tuple(queue._messages)}
        answer = cast("dict[str, Any]", result.result)  # {"Messages": [...]}, or {} when none
        for message in answer.get("Messages", []):
            source = sources.get(message["MessageId"])
            if source is not None:
                message.setdefault("Attributes", {})[DEAD_LETTER_SOURCE] = source
        return result

    _patch(SQSBackend, receive_message=receive_message)
    _patch(SQSResponse, receive_message=receive_response)


def uninstall_dead_letter_source_arn() -> None:
    """Restore moto's own receive (for differential tests)."""
    from moto.sqs.models import SQSBackend
    from moto.sqs.responses import SQSResponse

    _restore(SQSBackend, "receive_message")
    _restore(SQSResponse, "receive_message")


def install_redrive_allow_policy() -> None:
    """Answer a queue's ``RedriveAllowPolicy`` in GetQueueAttributes, as SQS does (idempotent).

    moto keeps the attribute a CreateQueue or SetQueueAttributes gives it, but never returns it:
    ``All`` leaves it out and asking for it by name is ``InvalidAttributeName``. The Terraform
    provider waits for the attributes it set to read back equal, so a queue with one never finishes
    creating. Here the read returns it (as set), and everything else as moto answers.
    """
    from moto.sqs.models import SQSBackend

    if _patched(SQSBackend, "get_queue_attributes"):
        return
    read = SQSBackend.get_queue_attributes

    def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        others = [name for name in attribute_names if name != REDRIVE_ALLOW_POLICY]
        # A copy: moto answers "All" with the queue's own mapping (read-only under the lazy attributes).
        attributes: dict[str, Any] = dict(read(self, queue_name, others)) if others else {}
        policy = getattr(self.get_queue(queue_name), "redrive_allow_policy", None)
        if policy and {"All", REDRIVE_ALLOW_POLICY} & set(attribute_names):
            attributes[REDRIVE_ALLOW_POLICY] = policy
        return attributes

    _patch(SQSBackend, get_queue_attributes=get_queue_attributes)


def uninstall_redrive_allow_policy() -> None:
    """Restore moto's own GetQueueAttributes (for differential tests)."""
    from moto.sqs.models import SQSBackend

    _restore(SQSBackend, "get_queue_attributes")


_batch_entries = threading.local()  # per request thread: the system attributes of a batch's entries, in order


def install_locked_deletes() -> None:
    """Delete a queue's messages in place, under the lock its sends take (idempotent)."""
    from moto.sqs.exceptions import ReceiptHandleIsInvalid
    from moto.sqs.models import Queue

    if _patched(Queue, "delete_message"):
        return

    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:  # moto's add_message appends under it
            if receipt_handle in self.deleted_messages:
                return  # already deleted: moto answers as if it were deleted now
            doomed = [m for m in self._messages if m.had_receipt_handle(receipt_handle)]
            if not doomed:
                raise ReceiptHandleIsInvalid
            for message in doomed:
                self.pending_messages.discard(message)
                self.deleted_messages.update(message.all_receipt_handles)
                self._messages.remove(message)

    _patch(Queue, delete_message=delete_message)


def uninstall_locked_deletes() -> None:
    """Restore moto's own ``Queue.delete_message`` (for differential tests)."""
    from moto.sqs.models import Queue

    _restore(Queue, "delete_message")


NOT_IN_FLIGHT = "MessageNotInflight"  # SQS's answer to a visibility change for a copy visible again
_NOT_IN_FLIGHT = "The message referred to isn't in flight."


def install_visibility_in_flight_only() -> None:
    """Refuse a visibility change for a copy that is not in flight, as SQS does (``MessageNotInflight``; idempotent)."""
    from moto.sqs.exceptions import SQSException
    from moto.sqs.models import SQSBackend

    if _patched(SQSBackend, "change_message_visibility"):
        return
    change_one = SQSBackend.change_message_visibility
    change_batch = SQSBackend.change_message_visibility_batch

    class MessageNotInflight(SQSException):
        def __init__(self) -> None:
            super().__init__(NOT_IN_FLIGHT, _NOT_IN_FLIGHT)

    def change_message_visibility(self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int) -> None:
        queue = self.get_queue(queue_name)
        if any(m.had_receipt_handle(receipt_handle) and m.visible for m in tuple(queue._messages)):
            raise MessageNotInflight  # received, and visible again (a copy not found: moto decides)
        change_one(self, queue_name, receipt_handle, visibility_timeout)

    def change_message_visibility_batch(
        self: Any, queue_name: str, entries: list[dict[str, Any]]
    ) -> tuple[list[str], list[dict[str, Any]]]:
        # moto's loop, an entry at a time, so that a refused entry fails alone, as in SQS's answer.
        success: list[str] = []
        errors: list[dict[str, Any]] = []
        for entry in entries:
            try:
                done, failed = change_batch(self, queue_name, [entry])
            except MessageNotInflight:
                errors.append(
                    {"Id": entry["Id"], "SenderFault": True, "Code": NOT_IN_FLIGHT, "Message": _NOT_IN_FLIGHT}
                )
                continue
            success += done
            errors += failed
        return success, errors

    _patch(
        SQSBackend,
        change_message_visibility=change_message_visibility,
        change_message_visibility_batch=change_message_visibility_batch,
    )


def uninstall_visibility_in_flight_only() -> None:
    """Restore moto's own visibility changes (for differential tests)."""
    from moto.sqs.models import SQSBackend

    _restore(SQSBackend, "change_message_visibility", "change_message_visibility_batch")


def install_batch_system_attributes() -> None:
    """Keep each SendMessageBatch entry's ``MessageSystemAttributes``, as SendMessage does (idempotent).

    moto's batch sends each entry, in order, through its own ``send_message``, which stores a
    message's system attributes but is not handed the entry's: the batch notes them per thread
    (SQS requests are served concurrently) and ``send_message`` takes the next one.
    """
    from moto.sqs.models import SQSBackend

    if _patched(SQSBackend, "send_message_batch"):
        return
    send_batch, send_one = SQSBackend.send_message_batch, SQSBackend.send_message

    def send_message_batch(self: Any, queue_name: str, entries: dict[str, dict[str, Any]]) -> Any:
        _batch_entries.pending = deque(entry.get("MessageSystemAttributes") for entry in entries.values())
        try:
            return send_batch(self, queue_name, entries)
        finally:
            _batch_entries.pending = None

    def send_message(self: Any, queue_name: str, message_body: str, **kwargs: Any) -> Any:
        pending = getattr(_batch_entries, "pending", None)
        if pending:  # an entry of the batch under way on this thread: its own system attributes
            kwargs["system_attributes"] = pending.popleft() or kwargs.get("system_attributes")
        return send_one(self, queue_name, message_body, **kwargs)

    _patch(SQSBackend, send_message_batch=send_message_batch, send_message=send_message)


def uninstall_batch_system_attributes() -> None:
    """Restore moto's own SendMessageBatch and SendMessage (for differential tests)."""
    from moto.sqs.models import SQSBackend

    _restore(SQSBackend, "send_message_batch", "send_message")


# Every fix above with its undo, in install order.
_FIXES: tuple[tuple[Callable[[], None], Callable[[], None]], ...] = (
    (install_transaction_journal, uninstall_transaction_journal),
    (install_fast_attribute_values, uninstall_fast_attribute_values),
    (install_partition_query, uninstall_partition_query),
    (install_module_list_cache, uninstall_module_list_cache),
    (install_method_name_cache, uninstall_method_name_cache),
    (install_expression_caches, uninstall_expression_caches),
    (install_lazy_queue_attributes, uninstall_lazy_queue_attributes),
    (install_fifo_groups_in_flight, uninstall_fifo_groups_in_flight),
    (install_fifo_dedup_window, uninstall_fifo_dedup_window),
    (install_visibility_in_flight_only, uninstall_visibility_in_flight_only),
    (install_locked_deletes, uninstall_locked_deletes),
    (install_dead_letter_source_arn, uninstall_dead_letter_source_arn),
    (install_redrive_allow_policy, uninstall_redrive_allow_policy),
    (install_batch_system_attributes, uninstall_batch_system_attributes),
)


def install_all() -> None:
    """Every fix (each idempotent): what the emulator server runs, and what benchmarks give moto in process."""
    for install, _ in _FIXES:
        install()


def uninstall_all() -> None:
    """Put moto's own code back (for tests that must see moto as shipped)."""
    for _, uninstall in reversed(_FIXES):
        uninstall()


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SerialisedDynamoDB:
    """WSGI middleware: one DynamoDB (or Streams) request at a time; SQS and the rest pass freely.

    With ``direct``, DynamoDB and Streams requests go straight to moto's own response handlers,
    as moto's Flask view does (same request class, same normalisation, same handler, same
    response class) but without Flask's per-request routing, contexts and hooks. A request moto's
    Flask app would treat differently (a CORS ``Origin`` header, moto's request recorder switched
    on) still goes through Flask.
    """

    def __init__(self, app: WsgiApp, *, direct: bool = True) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.handlers = _direct_handlers() if direct else {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve one request, under the lock when it is for DynamoDB."""
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if not target.startswith("DynamoDB"):
            return self.app(environ, start_response)
        handler = self.handlers.get(target.split(".", 1)[0])
        with self.lock:
            if handler is None or "HTTP_ORIGIN" in environ or _recording():
                return list(self.app(environ, start_response))
            return list(_serve_direct(handler, environ, start_response))


def _direct_handlers() -> dict[str, Callable[..., Any]]:
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    return {"DynamoDB_20120810": DynamoHandler.dispatch, "DynamoDBStreams_20120810": DynamoDBStreamsHandler.dispatch}


def _recording() -> bool:
    from moto.moto_api import recorder

    return bool(recorder._user_enabled)


def _serve_direct(
    handler: Callable[..., Any], environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """What moto's ``convert_to_flask_response`` does for one request, without the Flask app around it."""
    from botocore.exceptions import ClientError
    from flask import Response
    from moto.core.request import normalize_request
    from moto.moto_server.werkzeug_app import BackendRequest

    request = normalize_request(BackendRequest(environ))
    try:
        result = handler(request, request.raw_url, dict(request.headers))
    except ClientError as exc:
        result = 400, {}, exc.response["Error"]["Message"]
    status, headers, content = result if len(result) == 3 else (200, {}, result)
    response: Iterable[bytes] = Response(response=content, status=status, headers=headers)(environ, start_response)
    return response


def make_emulator_server(host: str, port: int, *, direct: bool = True) -> Any:
    """The emulator's server: moto's server app behind ``SerialisedDynamoDB``, on waitress (not yet serving).

    moto's own server is werkzeug's development server, which closes every connection (http.server
    cannot drain an unread body before the next request line) and starts a thread per connection:
    each request paid a TCP connect and a thread start. waitress keeps connections alive and serves
    from a thread pool; SQS long polls each hold a thread, hence the pool size.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from waitress.server import create_server

    app = SerialisedDynamoDB(DomainDispatcherApplication(create_backend_app), direct=direct)
    return create_server(app, host=host, port=port, threads=48, connection_limit=1000, channel_timeout=300)


def _collect_fully_rarely() -> None:
    """Let this process's garbage collector walk every object only after 1000 young collections.

    The emulator's heap is mostly moto's tables and stream records, which live as long as it does,
    and each full collection walks all of them. The cycles moto makes per request (parse trees
    with parent links) die young and are still collected by the young generations, as often as
    before.
    """
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 1000)


def serve(host: str, port: int, announce: IO[str]) -> None:
    """Run the emulator, every fix installed; write ``READY <port>`` to ``announce`` once listening."""
    install_all()
    _collect_fully_rarely()
    server = make_emulator_server(host, port)
    announce.write(f"READY {server.effective_port}\n")
    announce.flush()
    server.run()


class EmbeddedEmulator:
    """The emulator in a child process (its own core and GIL), on a free loopback port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._process: subprocess.Popen[str] | None = None

    @property
    def endpoint_url(self) -> str:
        """Where boto3 should send requests."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 60.0) -> str:
        """Start the child and wait until it listens; returns the endpoint URL."""
        command = [sys.executable, "-m", "outbox.local.emulator", "--host", self.host, "--port", str(self.port)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(  # noqa: S603 - our own module, by absolute interpreter path
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(self._read_ready()), daemon=True)
        reader.start()
        reader.join(timeout_s)
        if not ready or not ready[0]:
            self.stop()
            raise RuntimeError("the embedded emulator did not start")
        self.port = int(ready[0])
        return self.endpoint_url

    def _read_ready(self) -> str:
        stdout = self._process.stdout if self._process is not None else None
        for line in stdout or ():
            if line.startswith("READY "):
                return line.split()[1]
        return ""

    def reset(self) -> None:
        """Forget every table and queue (moto's reset API)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - loopback, our own child

    def stop(self) -> None:
        """Stop the child process."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None

    def __enter__(self) -> EmbeddedEmulator:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m outbox.local.emulator``: serve until killed."""
    parser = argparse.ArgumentParser(description="moto server for the outbox's local stack")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    serve(args.host, args.port, sys.stdout)


if __name__ == "__main__":
    main()
