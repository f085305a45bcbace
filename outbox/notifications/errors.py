"""The notification API's HTTP errors: what only an HTTP request can get wrong, each with its stable code.

They join the library's one tree (``outbox.domain.errors.OutboxError``), so the API answers every
error the same way (``outbox.notifications.api.problem``); the library itself never raises them.
"""

from __future__ import annotations

from collections.abc import Sequence

from outbox.domain.errors import OutboxError


class UnsupportedMediaTypeError(OutboxError):
    """The request body is not ``application/json``."""

    code = "UNSUPPORTED_MEDIA_TYPE"


class PayloadTooLargeError(OutboxError):
    """The request body is over the accepted size."""

    code = "PAYLOAD_TOO_LARGE"


class MethodNotAllowedError(OutboxError):
    """The path exists but not for this HTTP method."""

    code = "METHOD_NOT_ALLOWED"

    def __init__(self, detail: str, *, allowed: Sequence[str]) -> None:
        super().__init__(detail)
        self.allowed = tuple(allowed)


class UnauthenticatedError(OutboxError):
    """The request carries no principal (no IAM caller, no JWT subject) and one is required."""

    code = "UNAUTHENTICATED"
