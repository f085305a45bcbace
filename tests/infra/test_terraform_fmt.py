"""`terraform fmt -check -recursive`, when a terraform binary is on PATH (init/validate need the provider)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.infra.terraform import MODULE

TERRAFORM = shutil.which("terraform")


@pytest.mark.skipif(TERRAFORM is None, reason="no terraform binary on PATH: terraform fmt -check not run")
def test_terraform_fmt_check_passes(tmp_path: object) -> None:
    """The module and the example are formatted as terraform fmt would."""
    assert TERRAFORM is not None
    result = subprocess.run(
        [TERRAFORM, "fmt", "-check", "-recursive", "-diff"],
        cwd=MODULE,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "TF_CLI_CONFIG_FILE": "/dev/null", "CHECKPOINT_DISABLE": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
