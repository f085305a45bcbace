"""The notification API (API Gateway HTTP API, payload format 2.0): HTTP in and out, nothing more.

``POST /messages`` accepts a notification through the accept use case (``outbox.service.accept``);
``GET /messages/{id}`` reads its status and history. Every error is ``application/problem+json``
with a stable code. The Lambda entry point around ``build_api`` is ``worker/api.py``'s.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from outbox.compose import Clients, build_acceptor
from outbox.domain.caller import ANONYMOUS, Caller, RoleSessions, iam_caller, jwt_caller
from outbox.domain.errors import (
    FieldError,
    IdempotencyKeyReusedError,
    NotFoundError,
    OutboxError,
    ThrottledError,
    ValidationError,
)
from outbox.domain.trace import current_trace_header, trace_header
from outbox.logs import get_logger
from outbox.notifications.errors import (
    MethodNotAllowedError,
    PayloadTooLargeError,
    UnauthenticatedError,
    UnsupportedMediaTypeError,
)
from outbox.service.accept import Acceptor
from outbox.settings import Settings

if TYPE_CHECKING:
    from outbox.domain.record import MessageRecord  # made by the store's read (a GET's, a repeated POST's)

log = get_logger("outbox.notifications.api")

MAX_BODY_BYTES = 64 * 1024
JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
HTTP_STATUS = {
    "VALIDATION_ERROR": 400,
    "UNAUTHENTICATED": 401,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "IDEMPOTENCY_KEY_REUSED": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "SYSTEM_ERROR": 500,
    "THROTTLED": 503,
}
TITLES = {
    "VALIDATION_ERROR": "The request is not a valid message",
    "UNAUTHENTICATED": "Authentication required",
    "NOT_FOUND": "Not found",
    "METHOD_NOT_ALLOWED": "Method not allowed",
    "IDEMPOTENCY_KEY_REUSED": "Idempotency-Key reused with a different payload",
    "PAYLOAD_TOO_LARGE": "Request body too large",
    "UNSUPPORTED_MEDIA_TYPE": "Unsupported media type",
    "SYSTEM_ERROR": "Internal error",
    "THROTTLED": "Temporarily throttled, retry later",
}
_COLLECTION = re.compile(r"^/messages/?$")
_ITEM = re.compile(r"^/messages/([^/]+)/?$")

Response = dict[str, Any]


def caller_of(event: Mapping[str, Any], sessions: RoleSessions = RoleSessions.SHARED) -> Caller | None:
    """Who is calling, from the identity fields API Gateway proved; None (anonymous) without any.

    An IAM caller (``authorizer.iam``) is its Cognito identity, else its unique id (a role's,
    without the session name unless ``sessions`` is ``apart``) in its account; a JWT caller its
    issuer and subject (``domain/caller.py`` says why). API Gateway fills ``authorizer`` only after
    it checked the signature or the token, so a client cannot set these.
    """
    context = event.get("requestContext")
    authorizer = context.get("authorizer") if isinstance(context, Mapping) else None
    if not isinstance(authorizer, Mapping):
        return None
    iam = authorizer.get("iam")
    if isinstance(iam, Mapping):
        cognito = iam.get("cognitoIdentity")
        return iam_caller(
            account_id=iam.get("accountId"),
            user_id=iam.get("userId"),
            user_arn=iam.get("userArn"),
            cognito_identity_id=cognito.get("identityId") if isinstance(cognito, Mapping) else None,
            sessions=sessions,
        )
    jwt = authorizer.get("jwt")
    claims = jwt.get("claims") if isinstance(jwt, Mapping) else None
    subject = claims.get("sub") if isinstance(claims, Mapping) else None
    if isinstance(subject, str) and subject:
        issuer = claims.get("iss") if isinstance(claims, Mapping) else None
        return jwt_caller(issuer if isinstance(issuer, str) else "", subject)
    return None


class MessagesApi:
    """Translates API Gateway events into the accept use case and its answers into responses; holds no state.

    Every caller has its own messages (the ``Acceptor`` scopes keys, ids and reads to the caller's
    principal). With ``require_principal`` a request without one is a 401; without it, requests
    without one share the anonymous scope (local use), which is neither a signed caller's nor the
    library's own. ``role_sessions`` says whether an assumed role's sessions are one caller.
    """

    def __init__(
        self, acceptor: Acceptor, *, require_principal: bool = False, role_sessions: RoleSessions = RoleSessions.SHARED
    ) -> None:
        self.acceptor = acceptor
        self.require_principal = require_principal
        self.role_sessions = role_sessions

    def handle(self, event: Mapping[str, Any]) -> Response:
        """Turn one HTTP API event into one response; never raises."""
        try:
            return self._route(event)
        except OutboxError as exc:
            return problem(exc)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: a 500 without a stack trace
            log.error("request_failed", error=type(exc).__name__)
            return problem(OutboxError("the request could not be completed"))

    def _route(self, event: Mapping[str, Any]) -> Response:
        method, path = _method_and_path(event)
        caller = caller_of(event, self.role_sessions)
        if caller is None:
            if self.require_principal:
                raise UnauthenticatedError("sign the request (IAM) or send a token: this API knows no anonymous caller")
            caller = ANONYMOUS
        if _COLLECTION.match(path):
            if method != "POST":
                raise MethodNotAllowedError(f"{method} is not allowed on /messages", allowed=["POST"])
            return self._post(event, caller)
        item = _ITEM.match(path)
        if item:
            if method != "GET":
                raise MethodNotAllowedError(f"{method} is not allowed on /messages/{{id}}", allowed=["GET"])
            return json_response(200, record_view(self.acceptor.read(item.group(1), caller)))
        raise NotFoundError("no such resource")

    def _post(self, event: Mapping[str, Any], caller: Caller) -> Response:
        # The notification's validation loads with the first POST: a function that only reads never makes it.
        from outbox.notifications.accept import accept_notification  # noqa: PLC0415

        headers = _headers(event)
        if not _is_json(headers.get("content-type", "")):
            raise UnsupportedMediaTypeError("send the message as application/json")
        result = accept_notification(
            self.acceptor,
            _json_body(event),
            idempotency_key=headers.get("idempotency-key"),
            caller=caller,
            trace_id=_trace_id(headers),
        )
        response_headers = {"location": f"/messages/{result.message_id}"}
        if not result.created:
            response_headers["idempotent-replayed"] = "true"
        body = {"message_id": result.message_id, "status": result.status.value}
        return json_response(202 if result.created else 200, body, response_headers)


def record_view(record: MessageRecord) -> dict[str, Any]:
    """The public view of a record: status and history, never the payload."""
    view: dict[str, Any] = {
        "message_id": record.message_id,
        "type": record.type,
        "status": record.status.value,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "attempts": record.attempts,
        "history": [
            {"status": h.status.value, "at": h.at, "by": h.by} | ({"reason": h.reason} if h.reason else {})
            for h in record.history
        ],
    }
    channel = record.payload.get("channel")
    if isinstance(channel, str):
        view["channel"] = channel
    if record.group_key is not None:
        view["group_key"] = record.group_key
    if record.reason is not None:
        view["reason"] = record.reason
    return view


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    """An HTTP API response with a JSON body."""
    return {
        "statusCode": status,
        "headers": {"content-type": JSON, **(headers or {})},
        "body": json.dumps(body, separators=(",", ":"), ensure_ascii=False),
    }


def problem(exc: OutboxError) -> Response:
    """An RFC 9457 problem+json response for ``exc``; logs the code, never the input."""
    code = exc.code if exc.code in HTTP_STATUS else "SYSTEM_ERROR"
    status = HTTP_STATUS[code]
    body: dict[str, Any] = {
        "type": f"urn:outbox:problem:{code.lower().replace('_', '-')}",
        "title": TITLES[code],
        "status": status,
        "code": code,
        "detail": exc.detail if code != "SYSTEM_ERROR" else "the request could not be completed",
    }
    if isinstance(exc, ValidationError):  # the HTTP wording, whatever the library says
        body["detail"] = f"invalid request: {exc.summary}"
    headers = {"content-type": PROBLEM_JSON}
    if isinstance(exc, ValidationError):
        body["errors"] = [{"field": e.field, "reason": e.reason} for e in exc.errors]
    if isinstance(exc, MethodNotAllowedError):
        headers["allow"] = ", ".join(exc.allowed)
    if isinstance(exc, IdempotencyKeyReusedError) and exc.message_id is not None:
        body["message_id"] = exc.message_id  # the caller's own message: keys are scoped to the caller
    if isinstance(exc, ThrottledError) or (status >= 500 and exc.retryable):
        headers["retry-after"] = "1"
    log_method = log.error if status >= 500 else log.info
    log_method("request_rejected", code=code, status=status, detail=exc.detail)
    return {"statusCode": status, "headers": headers, "body": json.dumps(body, separators=(",", ":"))}


def _method_and_path(event: Mapping[str, Any]) -> tuple[str, str]:
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, Mapping) else None
    if not isinstance(http, Mapping):
        raise ValidationError([FieldError("$", "not an API Gateway HTTP API (2.0) event")])
    method = str(http.get("method", "")).upper()
    path = str(event.get("rawPath") or http.get("path") or "")
    stage = context.get("stage") if isinstance(context, Mapping) else None
    if isinstance(stage, str) and stage and stage != "$default" and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :]
    return method, path


def _headers(event: Mapping[str, Any]) -> dict[str, str]:
    raw = event.get("headers") or {}
    if not isinstance(raw, Mapping):
        return {}
    return {str(k).lower(): str(v) for k, v in raw.items()}


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == JSON or (media_type.startswith("application/") and media_type.endswith("+json"))


def _json_body(event: Mapping[str, Any]) -> object:
    raw = event.get("body")
    if raw is None or raw == "":
        raise ValidationError([FieldError("$", "the body is empty: send a JSON object")])
    if not isinstance(raw, str):
        raise ValidationError([FieldError("$", "the body must be text")])
    try:
        data = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode("utf-8")
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise ValidationError([FieldError("$", "the body is not valid UTF-8")]) from exc
    if len(data) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"the body is {len(data)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise ValidationError([FieldError("$", "the body is not valid UTF-8")]) from exc
    except RecursionError as exc:
        raise ValidationError([FieldError("$", "the JSON is nested too deeply")]) from exc
    except ValueError as exc:
        raise ValidationError([FieldError("$", "the body is not valid JSON")]) from exc


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _trace_id(headers: Mapping[str, str]) -> str | None:
    """The caller's trace context (X-Ray's header, or a W3C traceparent), else this invocation's own."""
    for name in ("x-amzn-trace-id", "traceparent"):
        trace = trace_header(headers.get(name))
        if trace is not None:
            return trace
    return current_trace_header()


def build_api(settings: Settings, clients: Clients | None = None) -> MessagesApi:
    """The API of ``settings``: the accept use case on their table, and their rules for callers."""
    return MessagesApi(
        build_acceptor(settings, clients),
        require_principal=settings.require_principal,
        role_sessions=settings.role_sessions,
    )
