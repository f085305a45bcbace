"""The library's public names, served on first use: each resolves, and the lazy tables match what is exported."""

from __future__ import annotations

import outbox
from outbox.domain import cancellation, errors


def test_every_exported_name_is_served_and_nothing_else_is_lazy() -> None:
    """``outbox.__all__`` and the lazy table name the same things; each resolves; ``import *`` and ``dir`` see them."""
    assert set(outbox._LAZY) == set(outbox.__all__)
    for name in outbox.__all__:
        assert getattr(outbox, name) is not None
    namespace: dict[str, object] = {}
    exec("from outbox import *", namespace)  # noqa: S102 - the star import a user may write
    assert set(outbox.__all__) <= set(namespace)
    assert set(outbox.__all__) <= set(dir(outbox))


def test_the_cancellation_names_are_the_same_classes_from_every_path() -> None:
    """``CancellationReason`` and ``ItemPart`` live in ``outbox.domain.cancellation``; the old paths serve them."""
    for name in ("CancellationReason", "ItemPart"):
        assert getattr(errors, name) is getattr(cancellation, name)
        assert name in errors.__all__
        assert name in dir(errors)
    assert outbox.CancellationReason is cancellation.CancellationReason
