"""BatchGetItem under throttling: unprocessed keys asked for again a bounded number of times, then a clear error."""

from __future__ import annotations

import json

import pytest

from outbox.adapters.batch import UNPROCESSED_TRIES
from outbox.adapters.reader import DynamoDBOutboxReader
from outbox.domain.errors import ThrottledError
from outbox.domain.status import Status
from outbox.ports import PendingKey
from tests.integration.conftest import Stack

# Far beyond the bound: an unbounded loop meets real answers again after these, and the test sees it.
SPIN = 50


def _accepted(stack: Stack) -> str:
    """A message accepted through the API: its id."""
    body = {"channel": "email", "recipient": "ada@example.com", "subject": "Hi", "body": "Hello"}
    response = stack.post(json.dumps(body))
    assert response["statusCode"] == 202, response
    return str(json.loads(response["body"])["message_id"])


def test_replays_status_read_of_a_throttled_table_ends_with_a_clear_error_after_the_bound(stack: Stack) -> None:
    """A BatchGetItem that always leaves its keys unprocessed: replay's reader stops after the bound, ThrottledError."""
    # GIVEN a message, and a table that answers every BatchGetItem with all its keys unprocessed
    message_id = _accepted(stack)
    reader = DynamoDBOutboxReader(stack.layout, stack.dynamodb)
    stack.faults.calls.clear()
    stack.faults.unprocessed(times=SPIN)
    # WHEN replay reads its status THEN it gives up after the bound, saying why
    with pytest.raises(ThrottledError, match="unprocessed after 5 tries"):
        reader.statuses([message_id])
    assert stack.faults.calls["BatchGetItem"] == UNPROCESSED_TRIES
    # ... and reads as before once the table answers again
    stack.faults.clear()
    assert reader.statuses([message_id]) == {message_id: Status.PENDING}


def test_the_sweepers_reads_share_the_bound(stack: Stack) -> None:
    """The sweeper's strong read fails after the bound; its eventual read gives up then, counting keys as not read."""
    message_id = _accepted(stack)
    source = stack.worker.pending
    assert source is not None
    stack.faults.calls.clear()
    stack.faults.unprocessed(times=SPIN)
    with pytest.raises(ThrottledError):
        source.records([PendingKey("k", message_id)])
    assert stack.faults.calls["BatchGetItem"] == UNPROCESSED_TRIES
    assert source.moved_on([message_id]) == set()  # not read: counts as PENDING, so it is sent (always safe)
    assert stack.faults.calls["BatchGetItem"] == 2 * UNPROCESSED_TRIES
