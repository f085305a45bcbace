"""`terraform fmt -check` on the module and each example, when a terraform binary is on PATH.

(init and validate need the provider, which cannot be downloaded here; fmt needs nothing.)
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.terraform import EXAMPLES, MODULE

TERRAFORM = shutil.which("terraform")
DIRECTORIES = (MODULE, *EXAMPLES)


def test_every_terraform_directory_is_checked() -> None:
    """Each directory holding .tf files is the module or one of the examples the tests know."""
    found = {path.parent for path in MODULE.rglob("*.tf") if ".terraform" not in path.parts}
    assert found == set(DIRECTORIES)


@pytest.mark.skipif(TERRAFORM is None, reason="no terraform binary on PATH: terraform fmt -check not run")
@pytest.mark.parametrize("directory", DIRECTORIES, ids=[str(d.relative_to(MODULE)) for d in DIRECTORIES])
def test_terraform_fmt_check_passes(directory: Path) -> None:
    """The module and each example are formatted as terraform fmt would."""
    assert TERRAFORM is not None
    result = subprocess.run(
        [TERRAFORM, "fmt", "-check", "-diff", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "TF_CLI_CONFIG_FILE": "/dev/null", "CHECKPOINT_DISABLE": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
