"""I/O at the edge: PynamoDB models, the DynamoDB store, the SQS publisher, boto3 clients."""

from outbox.adapters.publisher import SqsPublisher
from outbox.adapters.store import DynamoDBMessageStore

__all__ = ["DynamoDBMessageStore", "SqsPublisher"]
