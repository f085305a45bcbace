"""SqsPublisher: SendMessageBatch, with FIFO group and dedup ids (the message, its send generation) and its trace."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from outbox.adapters.aws import AWS_ERRORS, Lazy, resolve, translate
from outbox.domain.keys import dedup_id
from outbox.domain.trace import trace_header
from outbox.logs import warn_once
from outbox.ports import MAX_BATCH_ENTRIES, BatchOutcome, OutgoingMessage, SendFailure

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class SqsPublisher:
    """Publishes batches to one SQS queue (standard or FIFO, told by the ``.fifo`` suffix)."""

    def __init__(self, queue_url: str, *, client: SQSClient | Lazy[SQSClient]) -> None:
        self.queue_url = queue_url
        self._client = client
        self._fifo = queue_url.endswith(".fifo")

    @property
    def client(self) -> SQSClient:
        """The SQS client every batch goes through (made now, if it is a ``Lazy`` one not yet made)."""
        return resolve(self._client)

    @property
    def fifo(self) -> bool:
        """Whether the queue is FIFO."""
        return self._fifo

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> BatchOutcome:
        """One SendMessageBatch; the ``Failed`` list (which the SDK never retries) comes back per entry."""
        if not 0 < len(messages) <= MAX_BATCH_ENTRIES:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH_ENTRIES} messages, not {len(messages)}")
        entries: list[Any] = [self._entry(i, m) for i, m in enumerate(messages)]
        try:
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except AWS_ERRORS as exc:
            raise translate(exc, "SendMessageBatch") from exc
        accepted = tuple(int(s["Id"]) for s in response.get("Successful", []))
        failed = tuple(
            SendFailure(int(f["Id"]), f.get("Code", ""), f.get("Message", ""), bool(f.get("SenderFault")))
            for f in response.get("Failed", [])
        )
        return BatchOutcome(accepted, failed)

    def _entry(self, index: int, message: OutgoingMessage) -> dict[str, Any]:
        entry: dict[str, Any] = {"Id": str(index), "MessageBody": message.body}
        if self._fifo:
            entry["MessageGroupId"] = message.group_key or message.message_id
            # A retry of a send (the SDK's, the stream's) keeps its id; a deliberate re-send has its own.
            entry["MessageDeduplicationId"] = dedup_id(message.message_id, message.generation)
        trace = trace_header(message.trace_header)
        if trace is not None:  # X-Ray links the consumer's invocation to the writer's trace
            entry["MessageSystemAttributes"] = {"AWSTraceHeader": {"DataType": "String", "StringValue": trace}}
        elif message.trace_header is not None:  # a record 0.1.0 wrote may hold any text: sent without it
            warn_once("trace_header_dropped", message_id=message.message_id, reason="not an X-Ray trace header")
        return entry
