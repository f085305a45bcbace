"""The lifecycle table is the single source of truth for status changes."""

from __future__ import annotations

import ast
import pathlib

import pytest

from outbox.domain.status import TERMINAL, TRANSITIONS, Status, check_sources, is_allowed, sources_of


def test_lifecycle_edges_are_exactly_the_designed_ones() -> None:
    """Invariant 4 (forward only): the allowed transitions are the designed ones, no more."""
    edges = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    assert edges == {
        ("PENDING", "QUEUED"),
        ("PENDING", "PROCESSING"),  # DESIGN v2: the consumer holds a copy before the worker's flip landed
        ("PENDING", "FAILED"),
        ("QUEUED", "PROCESSING"),
        ("PROCESSING", "PROCESSING"),
        ("PROCESSING", "COMPLETED"),
        ("PROCESSING", "FAILED"),
        ("FAILED", "QUEUED"),
    }
    assert {Status.COMPLETED} == TERMINAL


def test_sources_and_checks_follow_the_table() -> None:
    """sources_of and check_sources derive from the table; an illegal source is a programming error."""
    assert sources_of(Status.QUEUED) == {Status.PENDING, Status.FAILED}
    assert sources_of(Status.PENDING) == frozenset()
    assert is_allowed(Status.PROCESSING, Status.PROCESSING)
    assert not is_allowed(Status.COMPLETED, Status.QUEUED)
    with pytest.raises(ValueError, match="not a lifecycle edge"):
        check_sources(Status.QUEUED, frozenset({Status.COMPLETED}))
    with pytest.raises(ValueError, match="not a lifecycle edge"):
        check_sources(Status.PENDING, frozenset())


def test_domain_core_imports_no_aws_library() -> None:
    """The core (outbox/domain) has no boto3, botocore or pynamodb import."""
    root = pathlib.Path(__file__).parents[2] / "outbox" / "domain"
    banned = {"boto3", "botocore", "pynamodb", "moto"}
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not {n.split(".")[0] for n in names} & banned, path
