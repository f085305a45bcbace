"""The use cases: accept, relay, stream, consume, sweep and replay, on the ports of ``outbox.ports`` only.

Each module holds one use case and imports no adapter, botocore or PynamoDB; the entry points
(``outbox.api``, the ``outbox`` command, ``worker/``) build them through ``outbox.compose``.
"""
