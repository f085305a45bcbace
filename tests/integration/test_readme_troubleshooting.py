"""The README's troubleshooting quotes each error as the code raises it: provoked on moto, found in the README.

A message reworded in the code (or in the README) without the other fails here, so what a user
searches the README for is what their terminal shows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from outbox import ConfigurationError, Outbox, OutboxError, ValidationError
from outbox.adapters.aws import dynamodb_client, sqs_client
from outbox.bootstrap import bootstrap
from outbox.compose import resolve_delivery

ROOT = Path(__file__).resolve().parents[2]


def _troubleshooting() -> str:
    """The README's troubleshooting section, its lines joined as a reader reads them."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## Troubleshooting")
    return " ".join(text[start : text.index("\n## ", start + 1)].split())


@pytest.fixture
def tables() -> Iterator[None]:
    """The shop's table (keys PK/SK, as bootstrap makes it) and a table `orders` without a stream or index."""
    with mock_aws():
        bootstrap(dynamodb_client(), sqs_client(), table_name="shop", hash_key="PK", range_key="SK")
        dynamodb_client().create_table(
            TableName="orders",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield


def _shop() -> Outbox:
    return Outbox("shop", hash_key="PK", range_key="SK")


CASES: dict[str, Callable[[], object]] = {
    "wrong key names": lambda: Outbox("shop").message({}, type="OrderPlaced"),
    "wrong table": lambda: Outbox("shpo", hash_key="PK", range_key="SK").message({}, type="OrderPlaced"),
    "no stream": lambda: Outbox("orders").message({}, type="OrderPlaced"),
    "a resource's client": lambda: Outbox("shop", client=boto3.resource("dynamodb").meta.client),
    "a Table resource": lambda: Outbox("shop", client=boto3.resource("dynamodb").Table("shop")),
    "too many digits": lambda: _shop().message(
        {"items": [{"price": Decimal("0.1234567890123456789")}]}, type="OrderPlaced"
    ),
    "NaN": lambda: _shop().message({"items": [1, 2, 3, {"price": float("nan")}]}, type="OrderPlaced"),
}


@pytest.mark.usefixtures("tables")
@pytest.mark.parametrize("case", CASES)
def test_each_misconfiguration_is_quoted_as_raised(case: str) -> None:
    """The one line the code raises is, word for word, a line of the README's troubleshooting."""
    with pytest.raises((ConfigurationError, ValidationError)) as raised:
        CASES[case]()
    assert str(raised.value) in _troubleshooting(), str(raised.value)


@pytest.mark.usefixtures("tables")
def test_a_decimal_payload_is_delivered_as_the_same_number() -> None:
    """The troubleshooting's promise: a Decimal is accepted, and the envelope holds the same number."""
    message = _shop().message({"price": Decimal("19.99")}, type="OrderPlaced")
    assert message.envelope.payload == {"price": 19.99}


def test_a_missing_dependency_of_the_delivery_module_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OUTBOX_DELIVERY's module importing what is not installed names that module, as the README quotes it."""
    # A package of its own name: the example's `orders` is importable in this suite and must stay so.
    package = tmp_path / "readme_orders"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "consumer.py").write_text("import requests_not_installed_here as requests\n\n\ndef deliver(e): ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(OutboxError) as raised:
            resolve_delivery("readme_orders.consumer:deliver")
    finally:
        for name in ("readme_orders", "readme_orders.consumer"):
            sys.modules.pop(name, None)
    quoted = str(raised.value).replace("requests_not_installed_here", "requests").replace("readme_orders", "orders")
    assert quoted in _troubleshooting(), quoted


def test_a_missing_delivery_module_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OUTBOX_DELIVERY naming a module that is not there says so, as the README quotes it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(OutboxError) as raised:
        resolve_delivery("no_such_orders:deliver")
    detail = str(raised.value).split(": ", 1)[1].replace("no_such_orders", "orders")
    assert detail in _troubleshooting(), detail
