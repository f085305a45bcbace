"""The real Terraform's slow runs, started together once per session.

``terraform validate`` of the module and each example, the module's ``terraform test`` and the
apply of both examples on the moto server are mostly waiting (provider start-up, and the provider's
own propagation waits on the apply: about 30 s per queue, 5 s per function); run one after another
they take minutes more than side by side. The first test that needs any of them starts the ones the
selected tests use, in a thread pool; each test then waits for its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from tests.infra.deploy import Deployment, MotoServer, apply_examples
from tests.infra.terraform import EXAMPLES, MODULE
from tests.infra.terraform_cli import Terraform, copy_module, find_terraform

# The module and its examples, as directories of a copy of infra/terraform.
DIRECTORIES = (Path("."), *(example.relative_to(MODULE) for example in EXAMPLES))


@dataclass
class TerraformRuns:
    """The runs under way, each a future; the methods wait for one."""

    terraform: Terraform
    module: Future[tuple[str, str]] | None = None  # the module's validate and test outputs
    examples: dict[Path, Future[str]] = field(default_factory=dict)  # each example's validate output
    deployments: dict[str, Future[Deployment]] = field(default_factory=dict)  # each example's apply
    moto: MotoServer | None = None

    def validated(self, directory: Path) -> str:
        """``terraform validate``'s output in the module (``.``) or an example."""
        if directory == Path("."):
            assert self.module is not None
            return self.module.result()[0]
        return self.examples[directory].result()

    def tested(self) -> str:
        """``terraform test``'s output in the module."""
        assert self.module is not None
        return self.module.result()[1]

    def deployment(self, example: str) -> Deployment:
        """The example applied on the moto server."""
        return self.deployments[example].result()


def _validate(terraform: Terraform, directory: Path) -> str:
    terraform.check("init", "-backend=false", "-input=false", "-no-color", cwd=directory)
    return terraform.check("validate", "-no-color", cwd=directory)


def _validate_and_test(terraform: Terraform, module: Path, endpoint: str) -> tuple[str, str]:
    """The module: init once, validate, then its own tests, in one .terraform.

    The plans open the module's one ephemeral resource (Secrets Manager's GetRandomPassword, the id
    secret's value): the provider calls it, even in a plan, so it goes to the emulator on loopback.
    """
    validated = _validate(terraform, module)
    testing = replace(terraform, env={**terraform.env, "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint})
    return validated, testing.check("test", "-no-color", cwd=module, timeout_s=900)


@pytest.fixture(scope="session")
def terraform_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TerraformRuns]:
    """Start what the selected tests need (validate and test, the applies) at once; stop the moto server at the end."""
    selected = {item.path.name for item in request.session.items}
    workdir = tmp_path_factory.mktemp("terraform")
    runs = TerraformRuns(find_terraform(workdir))
    pool = ThreadPoolExecutor(max_workers=len(DIRECTORIES) + 2)
    try:
        if selected & {"test_terraform_apply.py", "test_terraform_cli.py"}:
            runs.moto = MotoServer()
        if "test_terraform_apply.py" in selected:
            runs.deployments = apply_examples(runs.terraform, runs.moto.endpoint, workdir / "apply", pool)
        if "test_terraform_cli.py" in selected:
            module = copy_module(workdir / "cli")
            runs.module = pool.submit(_validate_and_test, runs.terraform, module, runs.moto.endpoint)
            for directory in DIRECTORIES[1:]:
                runs.examples[directory] = pool.submit(_validate, runs.terraform, module / directory)
        yield runs
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if runs.moto is not None:
            runs.moto.stop()
