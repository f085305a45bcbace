"""``python -m outbox``: the ``outbox`` command."""

from outbox.cli import main

raise SystemExit(main())
