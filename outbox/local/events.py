"""Shape DynamoDB Streams API records and SQS messages exactly as Lambda's event source mappings deliver them.

The shapes are ``outbox.lambda_events``'s (what a user's tests build too); the runners use these names.
"""

from __future__ import annotations

from outbox.lambda_events import lambda_stream_record as to_lambda_record
from outbox.lambda_events import received_sqs_record as to_sqs_record

__all__ = ["to_lambda_record", "to_sqs_record"]
