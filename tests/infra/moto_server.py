"""The embedded emulator for ``terraform apply``: every service the module uses, event source mappings inert.

``python -m tests.infra.moto_server --port 0`` serves the embedded emulator (``outbox.local.emulator``,
its fixes installed) with one more change, made here and only for the apply test: moto records an
event source mapping but never hooks it to its stream or queue.

Why (moto 5.2.5, ``moto/awslambda/models.py: create_event_source_mapping``): a mapping on a table's
stream hooks the table itself, and from then on every write "invokes" the function, which without
Docker only returns an error text, truthy, so moto empties the stream shard
(``dynamodb/models/table.py: StreamShard.add``): the worker would never see a record. A mapping on
a queue receives every message sent to it in the same way, leaving it invisible for the visibility
timeout. ``DeleteEventSourceMapping`` does not undo either hook (it only forgets the mapping), so
deleting the mappings after the apply cannot help. Lambda does not run on moto anyway: the test runs
the handlers itself, fed as the mappings in the state say.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def install_inert_event_source_mappings() -> None:
    """Keep every mapping moto creates (the Lambda API answers with it) but unhook it from its source."""
    from moto.awslambda.models import LambdaBackend
    from moto.dynamodb.models import dynamodb_backends
    from moto.sqs.models import sqs_backends

    create = LambdaBackend.create_event_source_mapping

    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        mapping = create(self, spec)
        sources = [
            *sqs_backends[self.account_id][self.region_name].queues.values(),
            *dynamodb_backends[self.account_id][self.region_name].tables.values(),
        ]
        # Keyed by the function's ARN on the source (moto's own attribute: a KeyError-free lookup
        # that finds nothing would let the hook stay, so the apply test checks the stream works).
        for source in sources:
            hooks = vars(source)["lambda_event_source_mappings"]
            if hooks.get(mapping.function_arn) is mapping:
                del hooks[mapping.function_arn]
        return mapping

    LambdaBackend.create_event_source_mapping = create_event_source_mapping  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until killed; ``READY <port>`` on stdout once listening (as ``outbox.local.emulator``)."""
    from outbox.local.emulator import serve

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    install_inert_event_source_mappings()
    serve(args.host, args.port, sys.stdout)


if __name__ == "__main__":
    main()
