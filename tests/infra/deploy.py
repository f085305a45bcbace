"""``terraform apply`` of the examples on the moto server: the override, the stand-in zips, the state read back.

Each example is applied from a temp copy of infra/terraform with a ``moto_override.tf`` that points
every service the module and the examples use at the moto server (fake credentials, no look-ups).
Where moto cannot create a resource the apply fails there (``MOTO_GAPS``); tests/infra/
test_terraform_apply.py holds it to failing there and nowhere else.

The functions' zips are stand-ins built from the source tree (the packages their handlers and
deliveries import, at their import paths): moto stores a zip and never runs it, and the test runs
the handlers from the source tree; the real zip (`make package`) is built and imported by
tests/infra/test_package.py, so building it here (minutes) would prove nothing more.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.schema.extract import used_types
from tests.infra.terraform import ROOT
from tests.infra.terraform_cli import Terraform, copy_module

# The provider's endpoint for each service a resource or data source of the module or an example
# calls (aws_iam_policy_document, aws_partition and aws_region call nothing).
ENDPOINTS = {
    "aws_apigatewayv2_": "apigatewayv2",
    "aws_caller_identity": "sts",
    "aws_cloudwatch_log_group": "cloudwatchlogs",
    "aws_cloudwatch_metric_alarm": "cloudwatch",
    "aws_dynamodb_": "dynamodb",
    "aws_iam_role": "iam",
    "aws_kms_": "kms",
    "aws_lambda_": "lambda",
    "aws_scheduler_": "scheduler",
    "aws_secretsmanager_": "secretsmanager",
    "aws_sns_": "sns",
    "aws_sqs_": "sqs",
}
LOCAL_DATA = {"aws_iam_policy_document", "aws_partition", "aws_region"}
# What moto 5.2.5 cannot create, by address: the apply may fail on these and on nothing else.
STREAM_POLICY_GAP = "PutResourcePolicy on a stream ARN: moto reads the ARN as a table name (ResourceNotFoundException)"
MOTO_GAPS = {
    "complete": {'module.outbox.aws_dynamodb_resource_policy.this["stream"]': STREAM_POLICY_GAP},
    "existing-table": {'aws_dynamodb_resource_policy.orders["stream"]': STREAM_POLICY_GAP},
}
# The complete example's delivery: the test's own, named as a user names theirs (the existing-table
# example names the example service's, orders.consumer:deliver).
DELIVERY = "tests.infra.deployed_delivery:deliver"
# Each example's region and variables: the existing-table example on the example service's table,
# "shop", where its PynamoDB model has it (us-east-1), keys PK/SK.
EXAMPLES = {"complete": "eu-west-1", "existing-table": "us-east-1"}


def endpoint_services() -> set[str]:
    """The services whose endpoints the override must set: one per type the module and the examples use."""
    types = used_types()
    services = set()
    for kind in ("resource", "data"):
        for type_name in types[kind]:
            if kind == "data" and type_name in LOCAL_DATA:
                continue
            matches = [service for prefix, service in ENDPOINTS.items() if type_name.startswith(prefix)]
            assert matches, f"{kind} {type_name}: which endpoint does it call? add it to ENDPOINTS"
            services.add(matches[0])
    return services


def override(endpoint: str) -> str:
    """``moto_override.tf``: every service the module uses on the moto server, fake credentials, no look-ups."""
    endpoints = "\n".join(f'    {service} = "{endpoint}"' for service in sorted(endpoint_services()))
    return f"""provider "aws" {{
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true

  endpoints {{
{endpoints}
  }}
}}
"""


class MotoServer:
    """``python -m tests.infra.moto_server`` (event source mappings inert) in a child process, on a free port."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.infra.moto_server", "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.extend(self._ready_port()), daemon=True)
        reader.start()
        reader.join(120)
        if not ready:
            self.stop()
            pytest.fail("the moto server did not start within 120 s", pytrace=False)
        self.endpoint = f"http://127.0.0.1:{ready[0]}"

    def _ready_port(self) -> list[str]:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("READY "):
                return [line.split()[1]]
        return []

    def stop(self) -> None:
        """Stop the child."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@dataclass
class Deployment:
    """One applied example: its directory, what the apply reported, its state and outputs."""

    name: str
    directory: Path
    region: str
    planned: set[str]
    applied: set[str]
    errors: dict[str, str]
    resources: list[dict[str, Any]]
    outputs: dict[str, Any]

    def of_type(self, type_name: str) -> list[dict[str, Any]]:
        """Every resource of that type in the state (any module), as ``terraform show -json`` gives it."""
        return [r for r in self.resources if r["type"] == type_name and r["mode"] == "managed"]

    def one(self, type_name: str, name: str) -> dict[str, Any]:
        """The attributes of the single resource ``type_name.name`` (any module)."""
        (found,) = [r["values"] for r in self.of_type(type_name) if r["name"] == name]
        return dict(found)

    def function(self, arn: str) -> dict[str, Any]:
        """The deployed function an event source mapping names (by ARN)."""
        (found,) = [r["values"] for r in self.of_type("aws_lambda_function") if r["values"]["arn"] == arn]
        return dict(found)


def _resources(module: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    yield from module.get("resources", [])
    for child in module.get("child_modules", []):
        yield from _resources(child)


def _stand_in_zip(path: Path, *sources: Path) -> Path:
    """A zip of Python sources (packages whole, or single files) at their import paths, as the real zip has them."""
    with zipfile.ZipFile(path, "w") as archive:
        for source in sources:
            files = sorted(source.rglob("*")) if source.is_dir() else [source]
            top = source.parent if source.is_dir() else ROOT
            for file in files:
                if file.is_file() and "__pycache__" not in file.parts:
                    archive.write(file, file.relative_to(top).as_posix())
    return path


def consumer_zip(path: Path) -> Path:
    """The existing-table example's consumer, built as a user builds theirs: ``outbox package`` of examples/orders.

    Its code (``orders/``), the hash-locked run-time requirements (the Lambda lock) and the outbox
    library, for the module's architecture and runtime; the apply test deploys it and runs its
    consumer from it.
    """
    from outbox.cli import main

    lock = ROOT / "infra" / "lambda-requirements.txt"
    code = main(
        ["package", "--source", str(ROOT / "examples" / "orders"), "--requirements", str(lock), "-o", str(path)]
    )
    assert code == 0, "outbox package failed"
    return path


def _variables(workdir: Path) -> dict[str, dict[str, str]]:
    """Each example's variables: the stand-in zips, the delivery, the region, no deletion protection."""
    outbox = _stand_in_zip(workdir / "outbox.zip", ROOT / "outbox", ROOT / "worker")
    delivery = [ROOT / "tests/__init__.py", ROOT / "tests/infra/__init__.py", ROOT / "tests/infra/deployed_delivery.py"]
    complete = _stand_in_zip(workdir / "complete.zip", ROOT / "outbox", ROOT / "worker", *delivery)
    shop = consumer_zip(workdir / "shop.zip")
    common = {"deletion_protection": "false"}
    return {
        "complete": {**common, "region": EXAMPLES["complete"], "lambda_package": str(complete), "delivery": DELIVERY},
        "existing-table": {
            **common,
            "region": EXAMPLES["existing-table"],
            "name": "shop",
            "lambda_package": str(outbox),
            "consumer_package": str(shop),
        },
    }


def apply_examples(
    terraform: Terraform, endpoint: str, workdir: Path, pool: ThreadPoolExecutor
) -> dict[str, Future[Deployment]]:
    """Both examples applied on the moto server at ``endpoint``, concurrently (an apply is mostly waiting)."""
    module = copy_module(workdir)
    variables = _variables(workdir)
    for name in EXAMPLES:
        (module / "examples" / name / "moto_override.tf").write_text(override(endpoint))
    return {name: pool.submit(apply, terraform, name, module / "examples" / name, variables[name]) for name in EXAMPLES}


def apply(terraform: Terraform, name: str, directory: Path, variables: Mapping[str, str]) -> Deployment:
    """``terraform init`` and ``apply`` of one example; what the apply reported, the state and the outputs."""
    terraform.check("init", "-input=false", "-no-color", cwd=directory)
    arguments = [f"-var={key}={value}" for key, value in variables.items()]
    result = terraform.run("apply", "-auto-approve", "-input=false", "-json", *arguments, cwd=directory, timeout_s=900)
    planned, applied, errors = set(), set(), {}
    for line in result.stdout.splitlines():
        message = json.loads(line)
        # planned_change: {"change": {"resource": {"addr": ...}}}; apply_complete: {"hook": {"resource": ...}}
        address = message.get("change", message.get("hook", {})).get("resource", {}).get("addr")
        if message["type"] == "planned_change":
            planned.add(address)
        elif message["type"] == "apply_complete":
            applied.add(address)
        elif message["type"] == "diagnostic" and message["diagnostic"]["severity"] == "error":
            diagnostic = message["diagnostic"]
            errors[diagnostic.get("address", "?")] = f"{diagnostic['summary']}: {diagnostic.get('detail', '')}"
    state = json.loads(terraform.check("show", "-json", "-no-color", cwd=directory))
    outputs = json.loads(terraform.check("output", "-json", "-no-color", cwd=directory))
    return Deployment(
        name=name,
        directory=directory,
        region=variables["region"],
        planned=planned,
        applied=applied,
        errors=errors,
        resources=list(_resources(state["values"]["root_module"])),
        outputs={key: value["value"] for key, value in outputs.items()},
    )
