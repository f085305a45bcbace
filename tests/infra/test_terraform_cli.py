"""The module and its examples with the real Terraform: init from the plugin mirror, validate, and its own tests.

``terraform test`` runs infra/terraform/tests/*.tftest.hcl: plans with the real AWS provider and no
AWS call (variables and their validations, preconditions, create_api = false, FIFO, a partial
functions map, the existing-table example's settings). Both run on a temp copy of infra/terraform,
started with the other slow Terraform runs by tests/infra/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.conftest import DIRECTORIES, TerraformRuns
from tests.infra.terraform import MODULE

pytestmark = pytest.mark.terraform


@pytest.mark.parametrize("directory", DIRECTORIES, ids=[str(d) for d in DIRECTORIES])
def test_terraform_validate(terraform_runs: TerraformRuns, directory: Path) -> None:
    """The module and each example initialise from the mirror (no registry) and validate with the AWS provider."""
    assert "Success! The configuration is valid." in terraform_runs.validated(directory)


def test_terraform_test(terraform_runs: TerraformRuns) -> None:
    """The module's own tests pass: every run block of tests/*.tftest.hcl, none skipped."""
    files = sorted(path.name for path in (MODULE / "tests").glob("*.tftest.hcl"))
    assert files, "no infra/terraform/tests/*.tftest.hcl"
    output = terraform_runs.tested()
    for name in files:
        assert f"tests/{name}... pass" in output, output[-3000:]
    assert " 0 failed" in output, output[-3000:]
    assert "... skip" not in output, output[-3000:]
