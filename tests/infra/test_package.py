"""`make package`: the zip holds the handlers, their locked dependencies and bytecode, and runs in a bare Python."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra import lock, package
from outbox import lambda_package
from outbox.cli import main
from outbox.domain.errors import PackageError
from tests.infra.terraform import MODULE, ROOT, load

CONSUMER = "worker.consumer.handler"
HANDLERS = {
    "worker.api.handler",
    "worker.handler.handler",
    CONSUMER,
    "worker.sweeper.handler",
    "worker.dead_letter.handler",
}
TAG = sys.implementation.cache_tag  # cpython-311: the package's python-version is this interpreter's


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip, built once for the module's tests."""
    output = tmp_path_factory.mktemp("package") / "outbox.zip"
    package.build(output)
    return output


def test_zip_holds_the_handlers_and_runtime_dependencies(built: Path) -> None:
    """The handlers (the repository's worker/, never in the wheel) and the runtime dependencies; nothing local-only."""
    names = set(zipfile.ZipFile(built).namelist())
    for required in (
        "outbox/notifications/api.py",
        "outbox/consumer.py",
        "worker/api.py",
        "worker/handler.py",
        "worker/consumer.py",
        "worker/sweeper.py",
        "worker/dead_letter.py",
    ):
        assert required in names
    for dependency in ("pynamodb/", "structlog/", "boto3/", "botocore/"):
        assert any(name.startswith(dependency) for name in names), dependency
    # botocore's models: the services configured, and its shared data files.
    services = {name.split("/")[2] for name in names if name.startswith("botocore/data/") and name.count("/") > 3}
    assert services == set(package.package_config()["botocore-services"])
    assert {"botocore/data/endpoints.json", "botocore/data/partitions.json", "botocore/data/_retry.json"} <= names
    # The models of the services the handlers make clients for: only the operations the code names.
    with zipfile.ZipFile(built) as archive:
        dynamodb = json.loads(gzip.decompress(archive.read("botocore/data/dynamodb/2012-08-10/service-2.json.gz")))
    assert {"GetItem", "TransactWriteItems", "UpdateItem", "Query"} <= set(dynamodb["operations"])
    assert "DeleteBackup" not in dynamodb["operations"]
    # Not shipped: what Lambda never runs (the CLI and rich, replay, testing helpers, the local stack).
    assert not any(name.startswith(("rich/", "moto/", "waitress/", "outbox/local/", "bin/")) for name in names)
    for local_only in (
        "outbox/cli.py",
        "outbox/replay_cli.py",
        "outbox/service/replay.py",
        "outbox/testing.py",
        "outbox/harness.py",
        "outbox/pytest_plugin.py",
        "outbox/lambda_events.py",
        "outbox/faults.py",
    ):
        assert local_only not in names
    # worker/ is what Lambda runs: the five entry points, nothing else (the filter template is local-only).
    assert {name for name in names if name.startswith("worker/") and "__pycache__" not in name} == {
        "worker/__init__.py",
        "worker/api.py",
        "worker/handler.py",
        "worker/consumer.py",
        "worker/sweeper.py",
        "worker/dead_letter.py",
    }
    # Every module has its bytecode for the runtime's Python, and no other.
    sources = [name for name in names if name.endswith(".py")]
    assert len(sources) > 100
    for source in sources:
        folder, _, module = source.rpartition("/")
        assert f"{folder}/__pycache__/{module[:-3]}.{TAG}.pyc".lstrip("/") in names, source
    assert all(f".{TAG}." in name for name in names if name.endswith(".pyc"))
    module = load(MODULE)
    handlers = {spec["handler"] for spec in module.locals["functions"].values()}
    # The consumer's handler is a local: with no consumer_handler and no consumer_package, this zip's consumer.
    deployed = {h for h in handlers if not h.startswith("${")}
    assert "${local.consumer_handler}" in handlers
    assert f'var.consumer_package == null ? "{CONSUMER}"' in module.locals["consumer_handler"]
    assert deployed | {CONSUMER} == HANDLERS


def test_zip_imports_and_answers_in_a_fresh_virtualenv(built: Path, tmp_path: Path) -> None:
    """A bare interpreter imports every module of the zip from its bytecode alone, and the handlers answer.

    The API answers a bad POST; the worker, the consumer and the dead-letter function an empty
    batch; the sweeper (whose every run reads the table) is imported only.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    unpacked = tmp_path / "task"
    zipfile.ZipFile(built).extractall(unpacked)
    script = f"""
import importlib, json, pathlib, sys
sys.path.insert(0, {str(unpacked)!r})
for path in {sorted(HANDLERS)!r}:
    module, name = path.rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), name)), path
root = pathlib.Path({str(unpacked)!r})
for source in sorted([*root.glob("outbox/**/*.py"), *root.glob("worker/**/*.py")]):
    module = importlib.import_module(".".join(source.relative_to(root).with_suffix("").parts).removesuffix(".__init__"))
    assert module.__cached__ and pathlib.Path(module.__cached__).exists(), module.__name__
import worker.api, worker.consumer, worker.dead_letter, worker.handler
event = {{"version": "2.0", "rawPath": "/messages", "body": "not json",
          "headers": {{"content-type": "application/json"}},
          "requestContext": {{"http": {{"method": "POST", "path": "/messages"}}}}}}
response = worker.api.handler(event, None)
assert worker.handler.handler({{"Records": []}}, None) == {{"batchItemFailures": []}}
assert worker.consumer.handler({{"Records": []}}, None) == {{"batchItemFailures": []}}
assert worker.dead_letter.handler({{"Records": []}}, None) == {{"batchItemFailures": []}}
assert not [m for m in sys.modules if m.split(".")[0] in ("rich", "moto", "waitress")]
origins = {{m.__file__.split("/task/")[0] for m in list(sys.modules.values())
           if getattr(m, "__file__", None) and m.__name__.split(".")[0] in ("boto3", "pynamodb")}}
code = json.loads(response["body"])["code"]
print(json.dumps({{"status": response["statusCode"], "code": code, "paths": sorted(origins)}}))
"""
    result = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), "-I", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={
            "OUTBOX_TABLE_NAME": "outbox",
            "OUTBOX_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/outbox.fifo",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "OUTBOX_ID_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:outbox-id-secret-AbCdEf",
            "OUTBOX_METRICS": "off",
            "PYTHONDONTWRITEBYTECODE": "1",  # /var/task is read-only: only the shipped bytecode counts
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 400
    assert answer["code"] == "VALIDATION_ERROR"
    assert answer["paths"] == [str(tmp_path)]  # boto3 and pynamodb came from the zip, nothing else


def test_zip_is_reproducible(tmp_path: Path) -> None:
    """Same files give the same bytes, whatever their mtimes; a change gives new bytes."""
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "a.py").write_text("A = 1\n")
    (source / "b.json").write_text("{}")
    first = lambda_package.write_zip(source, tmp_path / "one.zip")
    (source / "pkg" / "a.py").touch()  # a newer mtime must not change the bytes
    assert lambda_package.write_zip(source, tmp_path / "two.zip") == first
    (source / "pkg" / "a.py").write_text("A = 2\n")
    assert lambda_package.write_zip(source, tmp_path / "three.zip") != first


def test_bytecode_is_reproducible_and_for_this_python_only(tmp_path: Path) -> None:
    """Compiled twice in different places, the zips are byte-identical; another Python is refused."""
    digests = []
    for where in ("one", "two"):
        source = tmp_path / where / "src"
        (source / "pkg").mkdir(parents=True)
        (source / "pkg" / "a.py").write_text("def f():\n    raise ValueError\n")
        lambda_package.compile_bytecode(source, f"{sys.version_info.major}.{sys.version_info.minor}")
        digests.append(lambda_package.write_zip(source, tmp_path / where / "out.zip"))
    assert digests[0] == digests[1]
    assert f"pkg/__pycache__/a.{TAG}.pyc" in zipfile.ZipFile(tmp_path / "one" / "out.zip").namelist()
    with pytest.raises(PackageError, match=r"Python 3\.99"):
        lambda_package.compile_bytecode(tmp_path / "one" / "src", "3.99")


def test_lambda_lock_pins_what_the_tests_ran_against_with_hashes() -> None:
    """The zip's lock is the development lock's run-time closure: the same versions, every one with hashes."""
    config = package.package_config()
    lambda_pins = lock.pins(package.lock_path(config))
    dev_pins = lock.pins(ROOT / lock.DEV)
    assert set(lambda_pins) >= {"boto3", "botocore", "pynamodb", "structlog", "urllib3", "jmespath", "s3transfer"}
    assert not set(lambda_pins) & {"rich", "moto", "waitress", "pytest"}  # extras and tools stay out
    for name, versions in lambda_pins.items():
        assert versions <= dev_pins[name], name
    entries = package.lock_path(config).read_text().split("==")[1:]
    assert len(entries) == len(lambda_pins)
    assert all("--hash=sha256:" in entry for entry in entries)


def test_package_targets_the_runtime_and_architecture_terraform_deploys() -> None:
    """The module's default runtime is python<python-version>, its architecture the package's."""
    config = package.package_config()
    module = load(MODULE)
    function = module.resource("aws_lambda_function", "this")
    assert module.default(function["runtime"]) == f"python{config['python-version']}"
    assert function["architectures"] == [config["architecture"]]


def test_endpoints_are_trimmed_to_the_kept_services_and_resolve_as_botocores_own(built: Path, tmp_path: Path) -> None:
    """endpoints.json keeps the zip's services only (by endpoint prefix), each placed exactly as the full file does."""
    import json

    import botocore
    from botocore.regions import EndpointResolver

    with zipfile.ZipFile(built) as archive:
        trimmed = json.loads(archive.read("botocore/data/endpoints.json"))
    full = json.loads((Path(botocore.__file__).parent / "data" / "endpoints.json").read_text())
    # The services' endpoint prefixes (secretsmanager: the API's id secret).
    kept = {"dynamodb", "streams.dynamodb", "secretsmanager", "sqs", "sts", "portal.sso", "oidc"}
    assert {name for partition in trimmed["partitions"] for name in partition["services"]} == kept
    assert [p["partition"] for p in trimmed["partitions"]] == [p["partition"] for p in full["partitions"]]
    assert len(json.dumps(trimmed)) < len(json.dumps(full)) / 10
    ours, theirs = EndpointResolver(trimmed), EndpointResolver(full)
    for prefix in sorted(kept):
        for region in ("us-east-1", "eu-west-1", "ap-southeast-2", "cn-north-1", "us-gov-west-1", "eu-isoe-west-1"):
            expected = theirs.construct_endpoint(prefix, region)
            assert ours.construct_endpoint(prefix, region) == expected, (prefix, region)


def test_coldstart_benchmark_serves_each_first_request_from_the_zip(built: Path) -> None:
    """bench/coldstart.py, one round: each first request answered through its AWS calls, on the loopback stub only."""
    from dataclasses import asdict

    from bench import coldstart

    result = coldstart.measure(built, runs=1, breakdown=True)
    data = asdict(result)
    assert set(data) == {"runs", "python", "zip_path", "zip_mib", "calibration_s", "rows", "breakdown"}
    first, extra = coldstart.cases(coldstart.scenario())
    assert [row["name"] for row in data["rows"]] == [case.name for case in first]
    assert [row["name"] for row in data["breakdown"]] == [case.name for case in extra]
    assert {row["handler"] for row in data["breakdown"]} == HANDLERS
    operations = {row["name"]: set(row["operations"]) for row in data["rows"]}
    # The API's first request reads the id secret (current and previous values) before the table.
    assert operations["api: first GET /messages/{id}"] >= {"secretsmanager:GetSecretValue", "dynamodb:GetItem"}
    assert operations["api: first POST /messages"] >= {"secretsmanager:GetSecretValue", "dynamodb:TransactWriteItems"}
    assert operations["worker: first batch (1 INSERT)"] >= {"sqs:SendMessageBatch", "dynamodb:UpdateItem"}
    assert operations["consumer: first copy delivered"] >= {"dynamodb:UpdateItem"}
    for row in data["rows"] + data["breakdown"]:
        assert row["cold_ms"] > 0
    assert data["rows"][0]["ratio"] == 1.0
    assert "| / bare (wall) | / bare (CPU) |" in result.table()


def test_coldstart_modules_times_each_first_requests_own_modules_per_zip(built: Path) -> None:
    """bench/coldstart_modules.py, one round on the zip: each first request's own modules counted and timed."""
    from bench import coldstart, coldstart_modules

    costs, calibration = coldstart_modules.measure((built,), runs=1)
    first, _ = coldstart.cases(coldstart.scenario())
    assert [cost.case for cost in costs] == [case.name for case in first[1:]]
    assert all(cost.modules > 10 and cost.median_ms > 0 for cost in costs)
    assert all(value > 0 for value in calibration)
    assert f"| {first[1].name} | " in coldstart_modules.table(costs)


def _user_code(root: Path, *, calls: str = "sns") -> Path:
    """A user's source folder: a package whose delivery makes a client for ``calls``."""
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "delivery.py").write_text(
        f"import boto3\n\n\ndef deliver(envelope):\n    boto3.client({calls!r}, region_name='eu-west-1')\n"
    )
    return root


def test_outbox_package_builds_a_users_consumer_zip_that_runs(tmp_path: Path) -> None:
    """`outbox package`: the user's code, the locked requirements and the library; the SNS model kept as asked."""
    source = _user_code(tmp_path / "src")
    output = tmp_path / "consumer.zip"
    args = ["package", "--source", str(source), "--requirements", str(ROOT / "infra" / "lambda-requirements.txt")]
    assert main([*args, "-o", str(output), "--botocore-service", "sns"]) == 0
    names = set(zipfile.ZipFile(output).namelist())
    assert {"shop/delivery.py", "outbox/__init__.py", "outbox/consumer.py", "boto3/__init__.py"} <= names
    assert not [name for name in names if name.startswith("worker/")]  # the module's entry points: not a user's
    assert any(name.startswith("botocore/data/sns/") for name in names)
    assert not {"outbox/cli.py", "outbox/lambda_package.py", "outbox/testing.py"} & names

    unpacked = tmp_path / "task"
    zipfile.ZipFile(output).extractall(unpacked)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from outbox.consumer import make_handler\n"
        "from outbox.compose import resolve_delivery\n"
        "deliver = resolve_delivery('shop.delivery:deliver')\n"
        "assert callable(make_handler(deliver))\n"  # the user's handler, named as the consumer's
        "deliver(None)\n"  # the SNS client is made from the zip's model
        "print('ok')\n"
    )
    env = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    result = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), "-I", "-c", script, str(unpacked)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("requirements", "expected"),
    [
        ("boto3==1.44.18\n", "Hashes are required in --require-hashes mode"),
        (None, "lacks boto3, botocore, pynamodb, structlog, which the outbox library needs at run time"),
    ],
)
def test_outbox_package_refuses_requirements_it_cannot_lock(
    requirements: str | None, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A requirement without its hash, or a lock without the library's own dependencies: one line, no zip."""
    lock_text = (ROOT / "infra" / "lambda-requirements.txt").read_text()
    six = re.search(r"^six==.*?(?=^\S)", lock_text, flags=re.MULTILINE | re.DOTALL)
    assert six is not None
    path = tmp_path / "requirements.txt"
    path.write_text(requirements if requirements is not None else six.group())
    output = tmp_path / "consumer.zip"
    code = main(["package", "--requirements", str(path), "-o", str(output)])
    (line,) = capsys.readouterr().err.splitlines()
    assert code == 1
    assert line.startswith("outbox package: ")
    assert expected in line
    assert not output.exists()


def test_outbox_package_fails_the_build_for_a_service_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Code that makes an SES client without --botocore-service ses: refused before anything is installed."""
    source = _user_code(tmp_path / "src", calls="ses")
    code = main(
        ["package", "--source", str(source), "--requirements", str(ROOT / "pyproject.toml"), "-o", str(tmp_path / "z")]
    )
    (line,) = capsys.readouterr().err.splitlines()
    assert code == 1
    assert "ses (shop/delivery.py:5)" in line
    assert line.endswith("add --botocore-service ses")
