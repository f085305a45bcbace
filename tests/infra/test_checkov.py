"""checkov, from its own virtualenv (`make checkov-venv`; it pins an old boto3), finds nothing to fail."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.infra.terraform import EXAMPLES, MODULE, ROOT

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
_SKIP = re.compile(r"checkov:skip=([A-Z0-9_]+)(?::(.*))?")


@pytest.fixture(scope="module")
def report() -> dict[str, object]:
    """The JSON report of checkov on the module and its examples (checkov scans -d recursively)."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV.relative_to(ROOT)} is missing: `make test` builds it (target .venv-checkov)")
    result = subprocess.run(
        [str(CHECKOV), "-d", str(MODULE), "--framework", "terraform", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode in {0, 1}, result.stderr[-2000:]
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def test_checkov_reports_no_failed_check(report: dict[str, object]) -> None:
    """Zero failed checks, and the scan really covered the module."""
    summary = report["summary"]
    assert isinstance(summary, dict)
    failed = report["results"]["failed_checks"]  # type: ignore[index]
    assert summary["failed"] == 0, [(c["check_id"], c["resource"], c["check_name"]) for c in failed]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] >= 100  # it really scanned the module and the examples
    assert summary["resource_count"] >= 30


def test_checkov_scanned_every_example(report: dict[str, object]) -> None:
    """Each example's own resources were checked, and the module through each example's call."""
    results = report["results"]
    assert isinstance(results, dict)
    checks = [check for kind in ("passed_checks", "failed_checks", "skipped_checks") for check in results[kind]]
    files = {check["file_path"] for check in checks}
    for example in EXAMPLES:
        assert f"/{example.relative_to(MODULE)}/main.tf" in files, example.name
    # The module's functions, expanded from their for_each (checkov resolved local.functions).
    functions = {check["resource"] for check in checks if check["file_path"] == "/lambda.tf"}
    names = ("api", "worker", "consumer", "sweeper", "dead-letter")
    assert {f'module.outbox.aws_lambda_function.this["{name}"]' for name in names} <= functions


def test_every_skip_carries_a_reason(report: dict[str, object]) -> None:
    """Each inline skip names its check and says why; checkov honoured exactly those."""
    skips = []
    for path in sorted(Path(MODULE).rglob("*.tf")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = _SKIP.search(line)
            if match:
                skips.append(match.group(1))
                reason = (match.group(2) or "").strip()
                assert len(reason) >= 30, f"{path.name}:{number}: checkov skip {match.group(1)} without a reason"
    skipped = report["results"]["skipped_checks"]  # type: ignore[index]
    assert {check["check_id"] for check in skipped} == set(skips)
    assert all(check["check_result"]["suppress_comment"] for check in skipped)
