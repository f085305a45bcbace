"""The real ``terraform`` for the infra tests: the binary, a CLI config of our own, the module copied to a temp dir.

No registry is reachable: the AWS provider comes from a local filesystem mirror
(``TERRAFORM_PLUGIN_MIRROR``, default /opt/tf-plugins, laid out as
``registry.terraform.io/hashicorp/aws/<version>/<os_arch>/``). The tests write their own CLI config
pointing there (TF_CLI_CONFIG_FILE) and run on a copy of infra/terraform, so no ``.terraform/``,
lock file or state lands in the tree. A missing binary or mirror fails the test with one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.terraform import MODULE

DEFAULT_MIRROR = "/opt/tf-plugins"
PROVIDER = "registry.terraform.io/hashicorp/aws"
# `override_during` (tests/*.tftest.hcl) came in 1.11; the module itself needs 1.6.
MINIMUM_VERSION = (1, 11)


@dataclass(frozen=True)
class Terraform:
    """The binary and the environment every command runs with (our CLI config, no checkpoint calls)."""

    binary: str
    env: dict[str, str]

    def run(self, *args: str, cwd: Path, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        """``terraform <args>`` in ``cwd``; the caller checks the return code."""
        return subprocess.run(
            [self.binary, *args], cwd=cwd, env=self.env, capture_output=True, text=True, check=False, timeout=timeout_s
        )

    def check(self, *args: str, cwd: Path, timeout_s: float = 300) -> str:
        """``terraform <args>``, which must succeed; its stdout."""
        result = self.run(*args, cwd=cwd, timeout_s=timeout_s)
        assert result.returncode == 0, (
            f"terraform {' '.join(args)} in {cwd}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
        return result.stdout


def find_terraform(workdir: Path) -> Terraform:
    """The binary (``TERRAFORM``, else PATH) and a CLI config for the mirror; fails in one line if either is missing."""
    binary = os.environ.get("TERRAFORM") or shutil.which("terraform")
    if not binary or not Path(binary).is_file():
        pytest.fail(
            "terraform is not installed: no `terraform` on PATH (or set TERRAFORM to the binary)", pytrace=False
        )
    mirror = Path(os.environ.get("TERRAFORM_PLUGIN_MIRROR") or DEFAULT_MIRROR)
    if not any((mirror / PROVIDER).glob("*/*/terraform-provider-aws_*")):
        pytest.fail(
            f"no AWS provider in the plugin mirror {mirror}/{PROVIDER} (set TERRAFORM_PLUGIN_MIRROR)", pytrace=False
        )
    config = workdir / "terraform.rc"
    config.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["{PROVIDER}"]\n  }}\n'
        f'  direct {{\n    exclude = ["{PROVIDER}"]\n  }}\n'
        "}\n"
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "TF_CLI_CONFIG_FILE": str(config),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    terraform = Terraform(binary, env)
    version = json.loads(terraform.check("version", "-json", cwd=workdir))["terraform_version"]
    if tuple(int(part) for part in version.split(".")[:2]) < MINIMUM_VERSION:
        pytest.fail(f"terraform {version} is too old: these tests need {'.'.join(map(str, MINIMUM_VERSION))} or later")
    return terraform


def copy_module(destination: Path) -> Path:
    """infra/terraform (examples and tests included) copied under ``destination``, without local state."""
    target = destination / "terraform"
    shutil.copytree(
        MODULE,
        target,
        ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*", "*_override.tf"),
    )
    return target
