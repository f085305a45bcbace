"""A fake AWS for benchmarks: every request answers after a fixed latency, at (almost) no CPU cost.

It models the network, not AWS: DynamoDB writes succeed and answer nothing (a flip's
``ReturnValues NONE``), SQS accepts every entry. Registered on botocore's ``before-send``, so
everything up to the wire (serialisation, signing, parsing) is the real client's; only SQS
requests are parsed here, because a batch's answer must echo its entries' ids.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


_SQS = frozenset({"SendMessage", "SendMessageBatch"})
_MD5 = "0" * 32
_HEADERS = HTTPHeaders.from_dict({"Content-Type": "application/x-amz-json-1.0"})  # each response copies them


def _sqs_answer(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    """Every entry accepted. Nothing checks the ids or checksums SQS would compute, so they are fixed."""
    if operation == "SendMessageBatch":
        accepted = [{"Id": e["Id"], "MessageId": e["Id"], "MD5OfMessageBody": _MD5} for e in request["Entries"]]
        return {"Successful": accepted, "Failed": []}
    return {"MessageId": "0", "MD5OfMessageBody": _MD5}


def attach(client: Any, latency_ms: float) -> None:
    """Answer every request of ``client`` from the stub after ``latency_ms``."""

    def respond(request: Any, event_name: str, **_: Any) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]  # before-send.<service>.<operation>
        time.sleep(latency_ms / 1000)
        payload = json.dumps(_sqs_answer(operation, json.loads(request.body))).encode() if operation in _SQS else b"{}"
        return AWSResponse(request.url, 200, _HEADERS, _Raw(payload))

    client.meta.events.register_first("before-send", respond)


class NullDynamoDB:
    """A DynamoDB client without botocore: every UpdateItem succeeds at once and answers nothing."""

    def __init__(self) -> None:
        self.updates = 0

    def update_item(self, **_: Any) -> dict[str, Any]:
        """Count it; a flip that asked for no old values gets none."""
        self.updates += 1
        return {}


class NullSqs:
    """An SQS client without botocore: every SendMessageBatch entry is accepted at once."""

    def __init__(self) -> None:
        self.sent = 0

    def send_message_batch(self, **request: Any) -> dict[str, Any]:
        """Accept every entry."""
        self.sent += len(request["Entries"])
        return {"Successful": [{"Id": e["Id"]} for e in request["Entries"]], "Failed": []}
