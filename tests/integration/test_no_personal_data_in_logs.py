"""No personal data in logs: every log line of a full run, success and failure paths alike."""

from __future__ import annotations

import io
import json

import pytest

from outbox.domain.envelope import Envelope
from outbox.domain.errors import DeliveryError
from outbox.logs import configure_logging
from outbox.service.consume import Consumer
from outbox.testing import FakeLambdaContext
from tests.integration.conftest import Stack, sqs_event

RECIPIENT = "ada.lovelace.secret@example.com"
SUBJECT = "Subject-Sekrit-4711"
BODY = "Body-Confidential-0815"


def test_a_full_run_logs_no_recipient_subject_or_body(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """Invariant 8 (clear errors): accept, relay, consume, fail, reject; no log line carries message content."""
    logs = io.StringIO()
    configure_logging(logs, level="DEBUG")
    message = {"channel": "email", "recipient": RECIPIENT, "subject": SUBJECT, "body": BODY}
    ok = json.loads(stack.post(json.dumps(message))["body"])["message_id"]
    failing = json.loads(stack.post(json.dumps(message | {"body": BODY + "-2"}))["body"])["message_id"]
    stack.post(json.dumps(message | {"recipient": RECIPIENT + " not valid", "extra": SUBJECT}))  # rejected
    stack.post(json.dumps(message), content_type="text/plain")  # rejected
    stack.faults.refuse({failing}, code="InternalError")
    stack.worker.handle(stack.stream_event(), FakeLambdaContext())
    stack.faults.clear()

    def fail(envelope: Envelope) -> None:
        raise DeliveryError(f"mailbox full for message {envelope.message_id}", retryable=False)

    Consumer(stack.store, fail).handle(sqs_event(stack.receive_all()))

    written = logs.getvalue() + capsys.readouterr().out
    assert "status_changed" in written
    assert ok in written
    for secret in (RECIPIENT, SUBJECT, BODY, "ada.lovelace"):
        assert secret not in written
