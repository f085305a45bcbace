"""The pure core's properties of tests/unit, each with many examples (the unit run draws a few).

The same test bodies and strategies; only the number of examples differs (tests/profiles.py).
"""

from __future__ import annotations

from tests.profiles import thorough
from tests.unit import test_callers_apart as callers
from tests.unit import test_hostile_input as hostile

test_api_never_fails_on_hostile_requests = thorough(
    hostile.test_api_never_fails_on_hostile_requests, hostile.API_REQUESTS, max_examples=200
)
test_worker_never_crashes_on_hostile_stream_records = thorough(
    hostile.test_worker_never_crashes_on_hostile_stream_records, hostile.STREAM_BATCHES, max_examples=200
)
test_consumer_never_crashes_on_hostile_bodies = thorough(
    hostile.test_consumer_never_crashes_on_hostile_bodies, hostile.SQS_BODIES, max_examples=200
)
test_unknown_field_names_are_counted_never_echoed = thorough(
    hostile.test_unknown_field_names_are_counted_never_echoed, hostile.FIELD_NAMES, max_examples=100
)
test_no_cross_principal_read_replay_or_leak = thorough(
    callers.test_no_cross_principal_read_replay_or_leak, callers.TWO_CALLERS, max_examples=150
)
