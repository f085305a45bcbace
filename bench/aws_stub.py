"""A loopback AWS endpoint for cold-start benchmarks: canned JSON answers, at no measurable cost.

A cold function's first request is measured through its first AWS calls, so something must answer
them, fast and the same every time, without a network: a threaded HTTP server on 127.0.0.1 that
speaks the JSON protocols of DynamoDB, SQS, SSM and Secrets Manager (the ``X-Amz-Target`` header
names the operation). DynamoDB reads answer from a small table of seeded items, writes succeed
(an UpdateItem returns the stored item as its old values), SQS accepts every entry, a parameter or
secret read answers a fixed value (a secret version made 30 days ago). An operation it has no
answer for gets a 400 naming it, so a handler that starts making a new call fails the benchmark
instead of being timed on an error path.

Every request is recorded (``operations``), so a benchmark can show and check which calls a first
request made.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Item = dict[str, Any]
SECRET_VALUE = "bench-secret-0123456789abcdef0123456789abcdef"  # noqa: S105 - a canned answer, no secret
# The secret's version was made (or last rotated) this long ago, as a deployed secret's usually was:
# past every rotation window, so a function's steady state is measured, not a rotation's first day.
SECRET_AGE_S = 30 * 86_400


class AwsStub:
    """The canned answers and the record of what was asked; ``serve`` puts it on a loopback port."""

    def __init__(self) -> None:
        self.items: dict[tuple[tuple[str, str], ...], Item] = {}
        self.operations: list[str] = []
        self.created = time.time()
        self._lock = threading.Lock()

    def seed(self, item: Item, key_names: tuple[str, str]) -> None:
        """Store ``item`` under its key (``key_names``: the table's hash and range key names)."""
        self.items[_key({name: item[name] for name in key_names})] = item

    def take_operations(self) -> list[str]:
        """The operations asked since the last call, in order (``dynamodb:GetItem``)."""
        with self._lock:
            taken, self.operations = self.operations, []
        return taken

    def answer(self, target: str, request: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """The status and JSON body answering one request."""
        prefix, _, operation = target.partition(".")
        service = _SERVICES.get(prefix, prefix)
        with self._lock:
            self.operations.append(f"{service}:{operation}")
        handler = self._handlers().get(f"{service}:{operation}")
        if handler is None:
            return 400, {"__type": "UnknownOperationException", "message": f"the bench stub cannot answer {target}"}
        return 200, handler(request)

    def _handlers(self) -> dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]]:
        return {
            "dynamodb:GetItem": self._get_item,
            "dynamodb:PutItem": lambda _: {},
            "dynamodb:TransactWriteItems": lambda _: {},
            "dynamodb:UpdateItem": self._update_item,
            "dynamodb:Query": lambda _: {"Items": [], "Count": 0, "ScannedCount": 0},
            "dynamodb:BatchGetItem": self._batch_get_item,
            "sqs:SendMessageBatch": _send_message_batch,
            "sqs:SendMessage": lambda r: _sent(r["MessageBody"], "0"),
            "sqs:ChangeMessageVisibility": lambda _: {},
            "sqs:DeleteMessage": lambda _: {},
            "ssm:GetParameter": lambda r: {
                "Parameter": {"Name": r.get("Name", ""), "Type": "SecureString", "Value": SECRET_VALUE, "Version": 1}
            },
            "secretsmanager:GetSecretValue": lambda r: {
                "ARN": f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{r.get('SecretId', '')}",
                "Name": r.get("SecretId", ""),
                "SecretString": SECRET_VALUE,
                "VersionId": "1",
                "CreatedDate": self.created - SECRET_AGE_S,
            },
        }

    def _get_item(self, request: Mapping[str, Any]) -> dict[str, Any]:
        item = self.items.get(_key(request["Key"]))
        if item is None:
            return {}
        if "ProjectionExpression" in request:  # the API's reads name their attributes (owner, then the view)
            names = request.get("ExpressionAttributeNames", {})
            wanted = {names.get(token.strip(), token.strip()) for token in request["ProjectionExpression"].split(",")}
            item = {name: value for name, value in item.items() if name in wanted}
        return {"Item": item}

    def _update_item(self, request: Mapping[str, Any]) -> dict[str, Any]:
        # The stored item stands for the old values: a superset of what UPDATED_OLD would return.
        item = self.items.get(_key(request["Key"]))
        if request.get("ReturnValues", "NONE") == "NONE" or item is None:
            return {}
        return {"Attributes": item}

    def _batch_get_item(self, request: Mapping[str, Any]) -> dict[str, Any]:
        responses = {
            table: [item for key in asked["Keys"] if (item := self.items.get(_key(key))) is not None]
            for table, asked in request["RequestItems"].items()
        }
        return {"Responses": responses, "UnprocessedKeys": {}}


# X-Amz-Target prefixes of the JSON protocols answered.
_SERVICES = {
    "DynamoDB_20120810": "dynamodb",
    "AmazonSQS": "sqs",
    "AmazonSSM": "ssm",
    "secretsmanager": "secretsmanager",
}


def _key(key: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, json.dumps(value, sort_keys=True)) for name, value in key.items()))


def _sent(body: str, entry_id: str) -> dict[str, Any]:
    return {
        "Id": entry_id,
        "MessageId": hashlib.sha256(f"{entry_id}:{body}".encode()).hexdigest()[:32],
        "MD5OfMessageBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
    }


def _send_message_batch(request: Mapping[str, Any]) -> dict[str, Any]:
    return {"Successful": [_sent(e["MessageBody"], e["Id"]) for e in request["Entries"]], "Failed": []}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as AWS: a client reuses its connection
    disable_nagle_algorithm = True  # else a small answer waits on the client's delayed ACK (40 ms)
    stub: AwsStub

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            request = {}
        status, body = self.stub.answer(self.headers.get("x-amz-target", ""), request)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("x-amzn-requestid", "bench-stub")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a benchmark prints its own figures."""


@contextmanager
def serve(stub: AwsStub) -> Iterator[str]:
    """``stub`` answering on a free loopback port, for the duration; yields its endpoint URL."""
    handler = type("StubHandler", (_Handler,), {"stub": stub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="aws-stub", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
