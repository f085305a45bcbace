"""SqsVisibility: ChangeMessageVisibility on a received copy, so a retry comes back soon, not after the timeout.

And DeleteMessageBatch of copies a consumer has finished before its invocation ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from outbox.adapters.aws import AWS_ERRORS, Lazy, resolve
from outbox.logs import get_logger

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = get_logger("outbox.visibility")

MAX_DELETE_ENTRIES = 10  # DeleteMessageBatch's limit


class SqsVisibility:
    """Changes the visibility of Lambda SQS records; finds each queue's URL from the record's ARN once."""

    def __init__(self, client: SQSClient | Lazy[SQSClient]) -> None:
        self._client = client
        self._urls: dict[str, str] = {}

    @property
    def client(self) -> SQSClient:
        """The SQS client (made now, if it is a ``Lazy`` one not yet made)."""
        return resolve(self._client)

    def delay(self, record: Mapping[str, Any], seconds: int) -> None:
        """Best effort: if it fails, the queue's own visibility timeout applies."""
        arn, handle = record.get("eventSourceARN"), record.get("receiptHandle")
        if not isinstance(arn, str) or not isinstance(handle, str):
            return
        from outbox.ports import MAX_VISIBILITY_S  # noqa: PLC0415 - only a retry needs the ports

        try:
            url = self._url(arn)
            timeout = max(0, min(seconds, MAX_VISIBILITY_S))
            self.client.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=timeout)
        except AWS_ERRORS as exc:
            log.warning("visibility_not_changed", error=type(exc).__name__)

    def acknowledge(self, records: Sequence[Mapping[str, Any]]) -> None:
        """DeleteMessageBatch of these copies, 10 a request per queue; best effort: the mapping deletes them later."""
        by_queue: dict[str, list[str]] = {}
        for record in records:
            arn, handle = record.get("eventSourceARN"), record.get("receiptHandle")
            if isinstance(arn, str) and isinstance(handle, str):
                by_queue.setdefault(arn, []).append(handle)
        for arn, handles in by_queue.items():
            for start in range(0, len(handles), MAX_DELETE_ENTRIES):
                chunk = handles[start : start + MAX_DELETE_ENTRIES]
                entries: list[Any] = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)]
                try:
                    failed = self.client.delete_message_batch(QueueUrl=self._url(arn), Entries=entries).get("Failed")
                except AWS_ERRORS as exc:
                    log.warning("copies_not_acknowledged", error=type(exc).__name__, copies=len(chunk))
                    continue
                if failed:
                    log.info("copies_not_acknowledged", error=failed[0].get("Code", ""), copies=len(failed))

    def _url(self, arn: str) -> str:
        url = self._urls.get(arn)
        if url is None:
            *_, account, name = arn.split(":")
            url = self._urls[arn] = self.client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
                "QueueUrl"
            ]
        return url
