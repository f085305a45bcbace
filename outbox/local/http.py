"""A loopback HTTP server that turns requests into API Gateway HTTP API (2.0) events for a handler."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import structlog

log = structlog.get_logger("outbox.local.http")

Handler = Callable[[dict[str, Any], Any], Mapping[str, Any]]
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's own payload limit


class _Context:
    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = "outbox-api"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def to_http_api_event(method: str, target: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The payload 2.0 event API Gateway would send for this request."""
    parts = urlsplit(target)
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode("ascii"), True
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": lowered,
        "requestContext": {
            "http": {"method": method, "path": parts.path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": text if body else None,
        "isBase64Encoded": is_base64,
    }


def make_server(host: str, port: int, handler: Handler) -> ThreadingHTTPServer:
    """A threaded server on ``host:port`` that serves every method through ``handler``."""

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_REQUEST_BYTES:
                self._reply(413, {"content-type": "application/json"}, b'{"message":"Request Entity Too Large"}')
                self.close_connection = True
                return
            body = self.rfile.read(length) if length else b""
            event = to_http_api_event(self.command, self.path, dict(self.headers.items()), body)
            try:
                response = handler(event, _Context())
            except Exception as exc:  # noqa: BLE001 - API Gateway answers 500 when the function fails
                log.error("api_function_error", error=type(exc).__name__)
                self._reply(500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}')
                return
            payload = str(response.get("body") or "")
            data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
            self._reply(int(response.get("statusCode", 200)), dict(response.get("headers") or {}), data)

        def _reply(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return  # requests are logged as JSON by the handler, not as Apache lines on stderr

    server = ThreadingHTTPServer((host, port), RequestHandler)
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Run ``server`` in a daemon thread."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="http-api", daemon=True)
    thread.start()
    return thread
