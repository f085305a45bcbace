"""How many examples a property gets: a few in the unit run, many in the integration run.

A property test of the pure core is a unit test with ``UNIT`` settings, its strategies in a dict
beside it; ``thorough`` makes the same test again with many examples for tests/integration, so
``make test`` checks as much as it ever did and ``pytest tests/unit`` stays quick. Both runs share
Hypothesis's example database: a failure the thorough run finds is replayed by the unit run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import SearchStrategy

# The unit run's examples per property: each of tests/unit's properties in well under a second. A
# generated input may be big (a 70,000-character body): neither a per-example deadline nor a health
# check about slow generation says anything about the property.
UNIT = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def thorough(
    test: Callable[..., None], strategies: Mapping[str, SearchStrategy[Any]], max_examples: int
) -> Callable[..., None]:
    """The property of ``test`` (a ``@given`` test) with ``max_examples`` examples drawn from ``strategies``."""
    prove: Callable[..., None] = test.hypothesis.inner_test  # type: ignore[attr-defined]
    return settings(UNIT, max_examples=max_examples)(given(**strategies)(prove))
