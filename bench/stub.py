"""A fake AWS for benchmarks: every request answers after a fixed latency, at (almost) no CPU cost.

It models the network, not AWS: DynamoDB writes succeed (a flip finds its record PENDING), SQS
accepts every entry. Registered on botocore's ``before-send``, so everything up to the wire
(serialisation, signing, parsing) is the real client's.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def _answer(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    if operation == "SendMessageBatch":
        return {
            "Successful": [
                {"Id": e["Id"], "MessageId": str(uuid.uuid4()), "MD5OfMessageBody": _md5(e["MessageBody"])}
                for e in request["Entries"]
            ],
            "Failed": [],
        }
    if operation == "SendMessage":
        return {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": _md5(request["MessageBody"])}
    if operation == "UpdateItem":
        return {"Attributes": {"status": {"S": "PENDING"}}}
    return {}


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - SQS's own checksum, not security


def attach(client: Any, latency_ms: float) -> None:
    """Answer every request of ``client`` from the stub after ``latency_ms``."""

    def respond(request: Any, **_: Any) -> AWSResponse:
        target = request.headers.get("X-Amz-Target", b"")
        operation = (target.decode() if isinstance(target, bytes) else target).rsplit(".", 1)[-1]
        body = json.loads(request.body or b"{}")
        time.sleep(latency_ms / 1000)
        payload = json.dumps(_answer(operation, body)).encode()
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.0"
        return AWSResponse(request.url, 200, headers, _Raw(payload))

    client.meta.events.register_first("before-send", respond)
