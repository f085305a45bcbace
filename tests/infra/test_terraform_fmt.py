"""`terraform fmt -check` on the module, each example and the module's own tests (*.tftest.hcl)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.terraform import EXAMPLES, MODULE
from tests.infra.terraform_cli import find_terraform

pytestmark = pytest.mark.terraform

DIRECTORIES = (MODULE, *EXAMPLES, MODULE / "tests")


def test_every_terraform_directory_is_checked() -> None:
    """Each directory holding .tf or .tftest.hcl files is the module, one of the examples or the module's tests."""
    found = {
        path.parent
        for pattern in ("*.tf", "*.tftest.hcl")
        for path in MODULE.rglob(pattern)
        if ".terraform" not in path.parts
    }
    assert found == set(DIRECTORIES)


@pytest.mark.parametrize("directory", DIRECTORIES, ids=[str(d.relative_to(MODULE)) for d in DIRECTORIES])
def test_terraform_fmt_check_passes(directory: Path, tmp_path: Path) -> None:
    """The module, each example and the module's tests are formatted as terraform fmt would."""
    terraform = find_terraform(tmp_path)
    result = terraform.run("fmt", "-check", "-diff", str(directory), cwd=tmp_path, timeout_s=120)
    assert result.returncode == 0, result.stdout + result.stderr
