"""Settings from the environment and the log pipeline."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
import structlog

from outbox.domain.errors import ConfigurationError
from outbox.logs import configure_logging
from outbox.settings import Settings


def test_missing_table_name_fails_with_one_clear_line() -> None:
    """A missing setting fails at start, naming the variable."""
    with pytest.raises(ConfigurationError, match=r"^OUTBOX_TABLE_NAME is not set"):
        Settings.from_env({})


def test_queue_is_required_only_where_asked() -> None:
    """The API needs no queue; the worker does."""
    assert Settings.from_env({"OUTBOX_TABLE_NAME": "t"}).queue_url is None
    with pytest.raises(ConfigurationError, match="OUTBOX_QUEUE_URL"):
        Settings.from_env({"OUTBOX_TABLE_NAME": "t"}, require_queue=True)


def test_numbers_are_parsed_and_checked() -> None:
    """Numeric settings must be positive whole numbers."""
    env = {"OUTBOX_TABLE_NAME": "t", "OUTBOX_QUEUE_URL": "q", "OUTBOX_MAX_MESSAGE_BYTES": "1048576"}
    assert Settings.from_env(env).max_message_bytes == 1_048_576
    with pytest.raises(ConfigurationError, match="OUTBOX_BUCKETS must be a positive whole number"):
        Settings.from_env(env | {"OUTBOX_BUCKETS": "zero"})


def test_personal_fields_are_redacted_in_json_logs() -> None:
    """Whatever logs a recipient, subject or body, the value never reaches the output."""
    out = io.StringIO()
    configure_logging(out, level="INFO")
    structlog.get_logger("t").info("oops", recipient="ada@example.com", body="secret", message_id="m1")

    line = json.loads(out.getvalue())
    assert line["recipient"] == "[redacted]"
    assert line["body"] == "[redacted]"
    assert line["message_id"] == "m1"
    assert "ada@example.com" not in out.getvalue()


def test_the_clock_skew_allowance_is_milliseconds_from_zero() -> None:
    """OUTBOX_MAX_CLOCK_SKEW_MS: 2 s unless set; 0 is allowed (clocks trusted); a negative or non-number fails."""
    assert Settings.from_env({"OUTBOX_TABLE_NAME": "t"}).clock_skew == timedelta(seconds=2)
    assert Settings.from_env({"OUTBOX_TABLE_NAME": "t", "OUTBOX_MAX_CLOCK_SKEW_MS": "0"}).clock_skew == timedelta(0)
    assert Settings.from_env({"OUTBOX_TABLE_NAME": "t", "OUTBOX_MAX_CLOCK_SKEW_MS": "500"}).clock_skew == timedelta(
        milliseconds=500
    )
    for bad in ("-1", "2s"):
        with pytest.raises(ConfigurationError, match=r"^OUTBOX_MAX_CLOCK_SKEW_MS must be a whole number of 0 or more"):
            Settings.from_env({"OUTBOX_TABLE_NAME": "t", "OUTBOX_MAX_CLOCK_SKEW_MS": bad})
