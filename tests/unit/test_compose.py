"""The composition: each use case on the clients it is given, each client made once, only when used (no AWS call)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from outbox.adapters.secret import SecretsManagerIdSecret
from outbox.compose import (
    Clients,
    build_acceptor,
    build_consumer,
    build_dead_letters,
    build_stream_worker,
    resolve_delivery,
)
from outbox.domain.errors import ConfigurationError
from outbox.domain.message import IdKey
from outbox.service.consume import log_delivery
from outbox.settings import Settings

SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:outbox-id-secret-AbCdEf"
SETTINGS = Settings(
    table_name="outbox",
    queue_url="https://sqs.eu-west-1.amazonaws.com/1/outbox",
    region="eu-west-1",
    buckets=4,
    id_secret_arn=SECRET_ARN,
)


def test_clients_share_one_session_and_are_made_once_where_they_are_told() -> None:
    """One botocore session per set; a client is made on first use, at the endpoint and in the region given."""
    clients = Clients("eu-west-1", endpoint_url="http://127.0.0.1:9", credentials=("id", "secret", None))
    assert {c.made for c in (clients.lazy_dynamodb, clients.lazy_sqs, clients.lazy_streams)} == {False}

    assert clients.dynamodb is clients.dynamodb
    assert clients.dynamodb.meta.endpoint_url == clients.sqs.meta.endpoint_url == "http://127.0.0.1:9"
    assert clients.sqs.meta.region_name == "eu-west-1"
    assert clients.dynamodb._request_signer._credentials.access_key == "id"
    assert not clients.lazy_streams.made


def test_each_use_case_runs_on_the_clients_it_is_given_and_makes_no_other() -> None:
    """The API makes no SQS client; the worker's store, publisher and index reads share the set's clients."""
    api_clients, worker_clients = Clients("eu-west-1"), Clients("eu-west-1")

    acceptor = build_acceptor(SETTINGS, api_clients)
    worker = build_stream_worker(SETTINGS, worker_clients)
    lazies = (api_clients.lazy_dynamodb, worker_clients.lazy_dynamodb, worker_clients.lazy_sqs)
    assert {c.made for c in lazies} == {False}

    assert acceptor.store.client is api_clients.dynamodb
    assert not api_clients.lazy_sqs.made
    # The id secret: read from Secrets Manager through the set's client, by the first request that needs it.
    assert isinstance(acceptor.id_secret, SecretsManagerIdSecret)
    assert acceptor.id_secret.secret_id == SECRET_ARN
    assert not api_clients.lazy_secretsmanager.made
    assert worker.relay.store.client is worker_clients.dynamodb
    assert worker.relay.publisher.client is worker_clients.sqs
    assert worker.pending.client is worker_clients.dynamodb
    assert worker.relay.recent.capacity > 0  # a warm worker does not send a redelivered batch again
    worker.relay.close()


def test_the_api_is_never_built_without_an_id_secret() -> None:
    """No OUTBOX_ID_SECRET_ARN (nor a value for local use): the API refuses to start, naming the setting."""
    with pytest.raises(ConfigurationError, match="OUTBOX_ID_SECRET_ARN"):
        build_acceptor(replace(SETTINGS, id_secret_arn=None), Clients("eu-west-1"))
    local = build_acceptor(replace(SETTINGS, id_secret_arn=None, id_secret="v" * 32), Clients("eu-west-1"))
    assert local.keys().write.owner("x") == IdKey("v" * 32).owner("x")


def test_the_dead_letter_function_writes_records_and_changes_visibility_on_its_own_clients() -> None:
    """Its store and its visibility use the set's clients, made only when a copy needs them."""
    clients = Clients("eu-west-1")
    dead_letters = build_dead_letters(SETTINGS, clients)
    assert {clients.lazy_dynamodb.made, clients.lazy_sqs.made} == {False}
    assert dead_letters.handle({"Records": []}) == {"batchItemFailures": []}
    assert {clients.lazy_dynamodb.made, clients.lazy_sqs.made} == {False}  # an empty batch makes none

    assert dead_letters.store.client is clients.dynamodb  # type: ignore[attr-defined]
    assert dead_letters.visibility is not None
    assert dead_letters.visibility.client is clients.sqs  # type: ignore[attr-defined]


def test_the_consumer_finds_its_delivery_before_making_any_client() -> None:
    """OUTBOX_DELIVERY names the function; a wrong one fails at the cold start before a client is made."""
    clients = Clients("eu-west-1")
    assert build_consumer(SETTINGS, clients).deliver is log_delivery
    assert resolve_delivery(f"{__name__}:_deliver") is _deliver

    other = Clients("eu-west-1")
    with pytest.raises(ConfigurationError, match="there is no module no_such_module"):
        build_consumer(Settings(table_name="outbox", delivery="no_such_module:deliver"), other)
    assert {other.lazy_dynamodb.made, other.lazy_sqs.made} == {False}


def _deliver(_: object) -> None:
    """A delivery OUTBOX_DELIVERY can name."""


def test_a_missing_dependency_of_the_delivery_module_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's module imports a package the zip lacks: the package is blamed, not the user's module."""
    (tmp_path / "shop_delivery.py").write_text("import stripe_sdk_not_installed\n\ndef deliver(envelope):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigurationError) as caught:
        resolve_delivery("shop_delivery:deliver")
    assert caught.value.detail == (
        "OUTBOX_DELIVERY=shop_delivery:deliver: shop_delivery imports stripe_sdk_not_installed, which is not"
        " installed: add it to the function's requirements"
    )


def test_eager_init_makes_the_clients_and_binds_the_models_when_built() -> None:
    """OUTBOX_EAGER_INIT (SnapStart): building makes the clients and binds the models; by default, nothing."""
    from dataclasses import replace

    from outbox.adapters.aws import Lazy

    lazy = build_acceptor(SETTINGS)
    assert isinstance(lazy.store._client, Lazy)
    assert not lazy.store._client.made
    assert "_new_record" not in vars(lazy.store)
    assert isinstance(lazy.id_secret, SecretsManagerIdSecret)
    assert isinstance(lazy.id_secret._client, Lazy)
    assert not lazy.id_secret._client.made
    eager = build_acceptor(replace(SETTINGS, eager_init=True))
    assert isinstance(eager.store._client, Lazy)
    assert eager.store._client.made
    assert "_new_record" in vars(eager.store)  # PynamoDB imported, the models bound
    assert isinstance(eager.id_secret, SecretsManagerIdSecret)
    assert isinstance(eager.id_secret._client, Lazy)
    assert eager.id_secret._client.made  # the client in the snapshot; the value is not read at init
    assert eager.id_secret._value is None


@pytest.mark.parametrize(
    ("module_name", "default"),
    [
        ("worker.api", "default_api"),
        ("worker.handler", "default_worker"),
        ("worker.consumer", "default_consumer"),
        ("worker.dead_letter", "default_dead_letters"),
    ],
)
def test_a_handler_sets_up_at_import_only_under_eager_init(
    monkeypatch: pytest.MonkeyPatch, module_name: str, default: str
) -> None:
    """With OUTBOX_EAGER_INIT the import builds the use case (the init phase SnapStart snapshots); without, not."""
    import importlib

    monkeypatch.setenv("OUTBOX_TABLE_NAME", "outbox")
    monkeypatch.setenv("OUTBOX_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/outbox")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("OUTBOX_ID_SECRET_ARN", SECRET_ARN)
    module = importlib.import_module(module_name)
    try:
        monkeypatch.delenv("OUTBOX_EAGER_INIT", raising=False)
        module = importlib.reload(module)
        assert getattr(module, default).cache_info().currsize == 0
        monkeypatch.setenv("OUTBOX_EAGER_INIT", "true")
        module = importlib.reload(module)
        assert getattr(module, default).cache_info().currsize == 1
    finally:
        monkeypatch.delenv("OUTBOX_EAGER_INIT", raising=False)
        importlib.reload(module)
