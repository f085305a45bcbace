"""The use cases: accept, relay, stream, consume, sweep and replay, on the ports of ``outbox.ports`` only.

Each module holds one use case and imports no adapter, botocore or PynamoDB. ``outbox.compose``
builds them for the API, the Lambda functions, ``outbox sweep`` and the local stack;
``outbox replay`` composes its replay in ``outbox/replay_cli.py``.
"""
