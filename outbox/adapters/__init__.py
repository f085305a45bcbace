"""I/O at the edge: PynamoDB models, the DynamoDB store, the SQS publisher, boto3 clients."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from outbox.adapters.publisher import SqsPublisher
    from outbox.adapters.store import DynamoDBMessageStore

# Imported when first asked for: ``outbox.adapters.aws`` runs this file, and a function needs only
# the adapters its use case takes (the API never publishes).
_LAZY = {
    "DynamoDBMessageStore": "outbox.adapters.store",
    "SqsPublisher": "outbox.adapters.publisher",
}


def __getattr__(name: str) -> Any:
    """``DynamoDBMessageStore`` and ``SqsPublisher``, imported on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'outbox.adapters' has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - only for the lazy names

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = ["DynamoDBMessageStore", "SqsPublisher"]
