"""The library as a guest in a user's process: their logging setup and log context, their metric names."""

from __future__ import annotations

import importlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog

from outbox import metrics
from outbox.consumer import make_handler
from outbox.testing import FakeLambdaContext


@pytest.fixture
def service_logging() -> Any:
    """A service's own structlog setup: its processors and a bound correlation_id."""
    events: list[dict[str, Any]] = []

    def capture(_logger: Any, _method: str, event_dict: Any) -> Any:
        events.append(dict(event_dict))
        raise structlog.DropEvent

    structlog.reset_defaults()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    structlog.contextvars.clear_contextvars()  # what earlier tests' handlers bound stays out of this one
    structlog.contextvars.bind_contextvars(correlation_id="c-42")
    yield events
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def test_make_handler_keeps_the_services_logging_and_context(
    service_logging: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """make_handler neither configures structlog nor clears the service's context; its lines carry both."""
    monkeypatch.setenv("OUTBOX_TABLE_NAME", "orders")
    monkeypatch.setenv("OUTBOX_METRICS", "off")
    config = structlog.get_config()
    handler = make_handler(lambda envelope: None)

    assert handler({"Records": []}, FakeLambdaContext()) == {"batchItemFailures": []}

    assert structlog.get_config() == config  # the service's processors, untouched
    assert structlog.contextvars.get_contextvars() == {"correlation_id": "c-42"}  # nothing left behind
    (consumed,) = [event for event in service_logging if event["event"] == "batch_consumed"]
    assert consumed["correlation_id"] == "c-42"
    assert consumed["aws_request_id"] == FakeLambdaContext().aws_request_id


def _emf(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_metrics_take_the_deployments_namespace_and_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """OUTBOX_METRICS_NAMESPACE and OUTBOX_SERVICE keep two deployments' metrics apart."""
    monkeypatch.setenv("OUTBOX_METRICS_NAMESPACE", "Orders/Outbox")
    monkeypatch.setenv("OUTBOX_SERVICE", "orders")
    out = io.StringIO()
    metrics.emit_metrics({"MessagesCompleted": 3}, stream=out)
    (line,) = _emf(out)
    assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Orders/Outbox"
    assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service"]]
    assert (line["Service"], line["MessagesCompleted"]) == ("orders", 3)


def test_metrics_default_to_the_outbox_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the settings: namespace Outbox, Service=outbox (what the Terraform module's alarms read)."""
    monkeypatch.delenv("OUTBOX_METRICS_NAMESPACE", raising=False)
    monkeypatch.delenv("OUTBOX_SERVICE", raising=False)
    out = io.StringIO()
    metrics.emit_metrics({"MessagesFailed": 1}, stream=out)
    (line,) = _emf(out)
    assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == metrics.NAMESPACE
    assert line["Service"] == metrics.DIMENSIONS["Service"]


def test_counts_of_zero_write_no_line() -> None:
    """An empty batch costs no log line; zero counts beside others are left out; a gauge of 0 is written."""
    out = io.StringIO()
    metrics.emit_metrics({"MessagesCompleted": 0, "MessagesFailed": 0}, stream=out)
    assert out.getvalue() == ""
    metrics.emit_metrics({"MessagesCompleted": 2, "MessagesFailed": 0}, stream=out)
    metrics.emit_metrics({metrics.OLDEST_PENDING_AGE: 0.0}, unit="Seconds", stream=out)
    counted, gauge = _emf(out)
    assert [m["Name"] for m in counted["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == ["MessagesCompleted"]
    assert gauge[metrics.OLDEST_PENDING_AGE] == 0.0


def test_a_service_with_its_own_worker_package_uses_the_consumer_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service's own ``worker`` package and the consumer API live side by side: the library's is under ``outbox``."""
    # GIVEN a service whose package is called worker, first on the path (as in its Lambda zip)
    (tmp_path / "worker").mkdir()
    (tmp_path / "worker" / "__init__.py").write_text("")
    (tmp_path / "worker" / "jobs.py").write_text(
        "from outbox.consumer import DeliveryError, make_handler\n\n"
        "delivered = []\n"
        "handler = make_handler(delivered.append)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [name for name in sys.modules if name == "worker" or name.startswith("worker.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setenv("OUTBOX_TABLE_NAME", "orders")
    monkeypatch.setenv("OUTBOX_METRICS", "off")

    # WHEN it imports its consumer, made with the library's consumer API, and runs it
    jobs = importlib.import_module("worker.jobs")
    answer = jobs.handler({"Records": []}, FakeLambdaContext())

    # THEN its own worker is the one imported, and the library imported no worker of its own
    assert Path(jobs.__file__).is_relative_to(tmp_path)
    assert answer == {"batchItemFailures": []}
    assert Path(sys.modules["worker"].__file__ or "").is_relative_to(tmp_path)
