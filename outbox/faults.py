"""Fault injection at the AWS call boundary, through botocore's event system.

Works the same on real AWS, moto in process and the moto server: nothing is patched, the
handlers hang off each client's own event emitter. The faults: an error or a timeout before the
request leaves (``fail``, ``timeout``), per-entry SendMessageBatch refusals (``refuse``), a crash
once the request took effect (``crash_after``: the function dies between two AWS calls), and a
request that took effect but whose answer was lost (``answer_lost``: a timeout or a 500 after
the write, inside botocore's retry loop, so its own retry meets the write's effect). Used by the
tests, the chaos run and anyone who wants to see the outbox keep its invariants while AWS
misbehaves.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError, ReadTimeoutError

__all__ = ["FaultInjector", "SimulatedCrash", "writes_status"]


class SimulatedCrash(BaseException):
    """The process died here. A BaseException, so no ``except Exception`` in the code under test eats it."""


Params = dict[str, Any]
Predicate = Callable[[Params], bool]


@dataclass
class _Rule:
    operation: str
    kind: str  # "error" | "timeout" | "crash_after" | "answer_lost" | "unprocessed"
    code: str = ""
    status: int = 400
    times: int = 1
    when: Predicate | None = None
    probability: float = 1.0
    details: Params | None = None
    retried: bool = True  # answer_lost: botocore may retry (the retry meets the write's own effect)


@dataclass
class _Refusal:
    message_ids: set[str] | None
    code: str
    sender_fault: bool
    times: int
    probability: float


def _response(status: int) -> AWSResponse:
    return AWSResponse("https://fault.invalid/", status, HTTPHeaders(), None)


def writes_status(*statuses: str) -> Predicate:
    """A ``when`` for UpdateItem: the request moves a record to one of ``statuses`` (a lifecycle write)."""
    wanted = frozenset(statuses)

    def matches(params: Params) -> bool:
        to = params.get("ExpressionAttributeValues", {}).get(":to", {}).get("S")
        return to in wanted

    return matches


def _lost_answer(operation: str, answer: str) -> Exception:
    """What the caller sees of a request whose answer was lost: a read timeout, or an HTTP 500."""
    if answer == "500":
        error = {"Code": "InternalServerError", "Message": "injected: the request may or may not have succeeded"}
        return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 500}}, operation)  # type: ignore[typeddict-item]
    return ReadTimeoutError(endpoint_url=f"https://fault.invalid/{operation}")


class FaultInjector:
    """Registers on one or more boto3 clients; records every call; injects the faults you arm.

    ``times`` is how many calls a rule hits (``-1``: every one); ``probability`` hits only that share.
    """

    def __init__(self, *clients: Any, seed: int | None = None) -> None:
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self._rules: list[_Rule] = []
        self._refusals: list[_Refusal] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)  # noqa: S311 - fault dice, not cryptography
        self._attempts: dict[str, int] = {}  # service -> the attempts its clients' retry config allows
        for client in clients:
            self.attach(client)

    def attach(self, client: Any) -> None:
        """Hook this injector into ``client``'s events."""
        events = client.meta.events
        service = client.meta.service_model.service_id.hyphenize()
        events.register(f"provide-client-params.{service}", self._on_params)
        events.register(f"before-call.{service}", self._before_call)
        events.register(f"after-call.{service}", self._after_call)
        events.register(f"needs-retry.{service}", self._needs_retry)
        retries = getattr(client.meta.config, "retries", None) or {}
        self._attempts[service] = int(retries.get("total_max_attempts") or 1)

    # -- arming ---------------------------------------------------------------------------------

    def fail(
        self,
        operation: str,
        code: str = "ThrottlingException",
        *,
        status: int = 400,
        times: int = 1,
        when: Predicate | None = None,
        probability: float = 1.0,
        details: Params | None = None,
    ) -> None:
        """Make ``operation`` return the AWS error ``code`` (never reaching AWS), with ``details`` in its body.

        ``details`` are the error's other fields, e.g. a TransactionCanceledException's
        ``CancellationReasons``.
        """
        self._add(_Rule(operation, "error", code, status, times, when, probability, details))

    def timeout(self, operation: str, *, times: int = 1, probability: float = 1.0) -> None:
        """Make ``operation`` time out before reaching AWS."""
        self._add(_Rule(operation, "timeout", times=times, probability=probability))

    def crash_after(
        self, operation: str, *, times: int = 1, when: Predicate | None = None, probability: float = 1.0
    ) -> None:
        """Let ``operation`` succeed at AWS, then raise SimulatedCrash before the caller sees it (the process died)."""
        self._add(_Rule(operation, "crash_after", times=times, when=when, probability=probability))

    def answer_lost(
        self,
        operation: str,
        *,
        answer: str = "timeout",
        retried: bool = True,
        times: int = 1,
        when: Predicate | None = None,
        probability: float = 1.0,
    ) -> None:
        """Let ``operation`` take effect at AWS, then lose its answer: a read timeout (or ``answer="500"``).

        "May or may not have succeeded": the write happened, the caller cannot know. With
        ``retried`` botocore retries as it does a timeout or a 500 (standard mode), so the retry
        meets the write's own effect (a conditional write then fails its condition on it), and
        only when no attempt is left does the caller see the timeout itself; without, the caller
        sees it at once (the SDK's retries spent), and its own retry meets the effect. Only a
        request AWS answered with success is hit: a write that did not happen is not this fault.
        """
        if answer not in ("timeout", "500"):
            raise ValueError("answer is 'timeout' or '500'")
        rule = _Rule(operation, "answer_lost", answer, times=times, when=when, probability=probability, retried=retried)
        self._add(rule)

    def unprocessed(self, operation: str = "BatchGetItem", *, times: int = -1, probability: float = 1.0) -> None:
        """Answer ``operation`` (a BatchGetItem) as a throttled table does: HTTP 200, every key in ``UnprocessedKeys``.

        DynamoDB is not asked: nothing was read. The SDK never retries such an answer; the caller must.
        """
        self._add(_Rule(operation, "unprocessed", times=times, probability=probability))

    def refuse(
        self,
        message_ids: set[str] | None = None,
        *,
        code: str = "InternalError",
        sender_fault: bool = False,
        times: int = -1,
        probability: float = 1.0,
    ) -> None:
        """SendMessageBatch entries whose body has one of ``message_ids`` (None: any) land in ``Failed``.

        The entry is taken out of the request, so SQS really never gets it.
        """
        with self._lock:
            self._refusals.append(_Refusal(message_ids, code, sender_fault, times, probability))

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._rules.clear()
            self._refusals.clear()

    def _add(self, rule: _Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    # -- handlers -------------------------------------------------------------------------------

    def _take(self, operation: str, kind: str, params: Params) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.operation != operation or rule.kind != kind or rule.times == 0:
                    continue
                if rule.when is not None and not rule.when(params):
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                if rule.times > 0:
                    rule.times -= 1
                self.injected[f"{operation}:{kind}"] += 1
                return rule
        return None

    def _on_params(self, params: Params, model: Any, context: dict[str, Any], **_: Any) -> None:
        context["fault_params"] = params
        if model.name != "SendMessageBatch" or not self._refusals:
            return
        kept, refused = [], []
        for entry in params.get("Entries", []):
            refusal = self._refusal_for(entry)
            if refusal is None:
                kept.append(entry)
            else:
                refused.append({"Id": entry["Id"], "Code": refusal.code, "SenderFault": refusal.sender_fault})
        if refused:
            params["Entries"] = kept
            context["fault_refused"] = refused

    def _refusal_for(self, entry: Params) -> _Refusal | None:
        try:
            message_id = json.loads(entry.get("MessageBody", "")).get("message_id")
        except (ValueError, AttributeError):
            message_id = None
        with self._lock:
            for refusal in self._refusals:
                if refusal.times == 0 or (refusal.message_ids is not None and message_id not in refusal.message_ids):
                    continue
                if refusal.probability < 1.0 and self._random.random() >= refusal.probability:
                    continue
                if refusal.times > 0:
                    refusal.times -= 1
                self.injected["SendMessageBatch:refuse"] += 1
                return refusal
        return None

    def _before_call(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, Params] | None:
        operation = model.name
        params: Params = context.get("fault_params", {})
        with self._lock:
            self.calls[operation] += 1
        if context.get("fault_refused") and not params.get("Entries") and operation == "SendMessageBatch":
            # Every entry refused: SQS would answer 200 with only a Failed list.
            body = {"Successful": [], "Failed": context["fault_refused"], "ResponseMetadata": {"HTTPStatusCode": 200}}
            return _response(200), body
        if self._take(operation, "unprocessed", params) is not None:
            # A throttled read: DynamoDB answers 200 and hands every key back.
            body = {"Responses": {}, "UnprocessedKeys": params.get("RequestItems", {})}
            return _response(200), body | {"ResponseMetadata": {"HTTPStatusCode": 200}}
        if self._take(operation, "timeout", params) is not None:
            raise ReadTimeoutError(endpoint_url=f"https://fault.invalid/{operation}")
        rule = self._take(operation, "error", params)
        if rule is not None:
            error = {"Code": rule.code, "Message": f"injected {rule.code}"}
            body = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": rule.status}, **(rule.details or {})}
            return _response(rule.status), body
        return None

    def _needs_retry(
        self,
        response: tuple[Any, Params] | None,
        operation: Any,
        attempts: int,
        caught_exception: Exception | None,
        request_dict: dict[str, Any],
        **_: Any,
    ) -> int | None:
        """Lose the answer of a request that succeeded: botocore retries it, or the caller sees the fault."""
        if caught_exception is not None or response is None or response[0].status_code >= 300:
            return None  # not applied (or not answered by AWS at all): another fault, or none
        context = request_dict.get("context", {})
        rule = self._take(operation.name, "answer_lost", context.get("fault_params", {}))
        if rule is None:
            return None
        service = operation.service_model.service_id.hyphenize()
        if rule.retried and attempts < self._attempts.get(service, 1):
            return 0  # botocore sends it again at once, as after a timeout (its backoff is not the point)
        raise _lost_answer(operation.name, rule.code)

    def _after_call(self, model: Any, parsed: Params, context: dict[str, Any], **_: Any) -> None:
        refused = context.get("fault_refused")
        if refused and model.name == "SendMessageBatch":
            already = {f["Id"] for f in parsed.get("Failed", [])}
            parsed.setdefault("Failed", []).extend(r for r in refused if r["Id"] not in already)
        if self._take(model.name, "crash_after", context.get("fault_params", {})) is not None:
            raise SimulatedCrash(f"crashed after {model.name}")
