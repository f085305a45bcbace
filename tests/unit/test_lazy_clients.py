"""A handler's AWS clients are made by the first call that needs them, once, on one botocore session."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from outbox.adapters import aws
from outbox.adapters.aws import Lazy
from outbox.adapters.store import DynamoDBMessageStore
from outbox.compose import Clients
from outbox.domain.errors import ConfigurationError
from outbox.domain.layout import TableLayout
from outbox.domain.status import Status


def test_a_lazy_value_is_made_once_whichever_thread_asks_first() -> None:
    """Eight threads ask at once: ``make`` runs once and every one of them gets its value."""
    calls: list[int] = []

    def make() -> object:
        calls.append(1)
        time.sleep(0.01)  # long enough for the others to arrive while it is being made
        return object()

    lazy = Lazy(make)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(lazy.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1]
    assert len(got) == 8
    assert all(value is got[0] for value in got)
    assert lazy.made


def test_aws_clients_make_nothing_until_asked_then_share_one_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """No session or client at construction; the first client makes the session, the second reuses it."""
    # GIVEN a count of the botocore sessions made
    sessions: list[str | None] = []
    make_session = aws._session

    def counted(region: str | None) -> Any:
        sessions.append(region)
        return make_session(region)

    monkeypatch.setattr(aws, "_session", counted)
    # WHEN the clients are built, THEN nothing is made
    clients = Clients("eu-west-1")
    assert (clients.lazy_dynamodb.made, clients.lazy_sqs.made, sessions) == (False, False, [])
    # WHEN both clients are asked for, twice
    dynamodb, sqs = clients.dynamodb, clients.sqs
    # THEN each was made once, on one session, in the region
    assert clients.dynamodb is dynamodb
    assert clients.sqs is sqs
    assert sessions == ["eu-west-1"]
    assert (dynamodb.meta.service_model.service_name, dynamodb.meta.region_name) == ("dynamodb", "eu-west-1")
    assert (sqs.meta.service_model.service_name, sqs.meta.region_name) == ("sqs", "eu-west-1")


class RecordingClient:
    """Answers every UpdateItem with nothing and keeps the requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {}


def test_an_adapter_makes_a_lazy_client_with_its_first_request() -> None:
    """A store on a ``Lazy`` client makes it for its first request, and uses that one client after."""
    # GIVEN a store on a client not yet made
    made: list[RecordingClient] = []

    def make() -> RecordingClient:
        made.append(RecordingClient())
        return made[-1]

    store = DynamoDBMessageStore(TableLayout("outbox"), Lazy(make))  # type: ignore[arg-type]
    assert made == []
    # WHEN it writes twice
    store.transition("m-1", Status.QUEUED, by="worker", expected=frozenset({Status.PENDING}))
    store.transition("m-1", Status.PROCESSING, by="consumer", expected=frozenset({Status.QUEUED}))
    # THEN one client was made, and both requests went through it
    assert len(made) == 1
    assert len(made[0].requests) == 2
    assert store.client is made[0]


def test_a_layout_refuses_key_names_it_cannot_use_when_built() -> None:
    """Equal or empty key attribute names fail when the table's layout is made, before any adapter has it."""
    with pytest.raises(ConfigurationError, match="two different non-empty names"):
        TableLayout("outbox", hash_key="k", range_key="k")
    with pytest.raises(ConfigurationError, match="two different non-empty names"):
        TableLayout("outbox", hash_key="", range_key="sk")
