"""Reproducible, hash-locked Lambda zips: ``outbox package`` (your consumer) and ``make package`` (ours).

A zip holds your source folders at its root, the requirements of a hash-locked file installed for
Lambda's platform (``pip install --require-hashes --only-binary=:all:``, nothing built here), and
the outbox library itself, less what Lambda never runs (the CLI, replay, testing helpers, fault
injection, the local stack): copied from this installation unless the requirements pin
``dynamodb-outbox``.

Lambda's /var/task is read-only, so modules without bytecode are compiled on every cold start: the
zip ships ``__pycache__`` compiled by this interpreter, which must be the runtime's Python (refused
otherwise), as unchecked-hash .pyc (no mtime inside) with ``/var/task`` paths. Entries are sorted
and timestamped at 1980-01-01, so the same inputs give the same bytes.

botocore's service models are most of a zip and are listed on every model load, so only those of
``Target.botocore_services`` are kept. Your sources are read for the AWS clients they make
(``boto3.client("sns")``, ``resource``, ``create_client``): one whose service is left out fails the
build, naming the file and line, rather than the deployed function.

With ``Target.only_called_operations``, the model of each service the code makes a client for keeps
only the operations the zip's code names (``client.get_item(...)``, or ``"GetItem"`` as PynamoDB
does), with the shapes they reach: a first request parses the whole model and builds a method per
operation. It is derived from botocore's own files at build time, nothing written by hand.
"""

from __future__ import annotations

import ast
import compileall
import gzip
import hashlib
import json
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from outbox.domain.errors import PackageError

TASK_ROOT = "/var/task"  # where Lambda unpacks the zip: the path tracebacks show
_EPOCH = (1980, 1, 1, 0, 0, 0)
# Lambda's architectures and the wheel platform tag pip fetches for each.
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
# What the handlers call, and what botocore's credential providers may (sts, sso, sso-oidc).
DEFAULT_SERVICES = ("dynamodb", "dynamodbstreams", "secretsmanager", "sqs", "sts", "sso", "sso-oidc")
DISTRIBUTION = "dynamodb-outbox"
# The library's modules Lambda never runs, relative to the folder holding the ``outbox`` package.
LOCAL_ONLY = (
    "outbox/local",
    "outbox/__main__.py",
    "outbox/cli.py",
    "outbox/service/replay.py",
    "outbox/replay_cli.py",
    "outbox/testing.py",
    "outbox/faults.py",
    "outbox/lambda_package.py",
    "outbox/capacity.py",
)
_CLIENT_CALLS = frozenset({"client", "resource", "create_client"})


@dataclass(frozen=True)
class Target:
    """Lambda's side: the architecture, the runtime's Python and the botocore models kept."""

    architecture: str = "arm64"
    python_version: str = "3.11"
    botocore_services: tuple[str, ...] = DEFAULT_SERVICES
    # Models of the services the code makes clients for keep only the operations it names (off: a
    # user's code may call operations by a name built at run time, or through boto3's resources).
    only_called_operations: bool = False

    def __post_init__(self) -> None:
        if self.architecture not in PLATFORMS:
            raise PackageError(f"architecture must be one of {', '.join(sorted(PLATFORMS))}, not {self.architecture!r}")

    @property
    def platform(self) -> str:
        """The wheel platform tag pip installs for."""
        return PLATFORMS[self.architecture]


@dataclass(frozen=True)
class Source:
    """A folder whose files go into the zip at their paths relative to ``base``, less ``excluded``."""

    folder: Path
    base: Path
    excluded: frozenset[Path] = field(default_factory=frozenset)

    def files(self) -> list[Path]:
        """The files to copy, sorted, without bytecode or caches."""
        return [
            path
            for path in sorted(self.folder.rglob("*"))
            if path.is_file() and not _skip(path) and not any(path.is_relative_to(ex) for ex in self.excluded)
        ]


def library_sources() -> list[Source]:
    """The running outbox library, less what Lambda never runs: the ``outbox`` package alone, as the wheel has it.

    The Lambda entry points of the Terraform module (``worker/``) are no part of it: ``make package``
    adds them from the repository (``infra/package.py``), and a zip of your own names your handler
    (``outbox.consumer.make_handler``).
    """
    import outbox  # noqa: PLC0415 - the installed package this module belongs to

    base = Path(outbox.__file__).resolve().parents[1]
    excluded = frozenset(base / path for path in LOCAL_ONLY)
    return [Source(base / "outbox", base, excluded)]


def check_interpreter(python_version: str) -> None:
    """Refuse to build for a Python other than this one: bytecode runs only on the version that compiled it."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if str(python_version) != here:
        raise PackageError(
            f"the package is for Python {python_version} but this is Python {here}: bytecode only runs on the"
            f" version that compiled it; build with Python {python_version} or set the python version to {here}"
        )


def services_called(sources: Iterable[Source], calls: frozenset[str] = _CLIENT_CALLS) -> dict[str, list[str]]:
    """Each AWS service the sources make a client for (a literal name), with where: ``{"sns": ["app.py:3"]}``.

    ``calls``: the methods that count (``client``, ``resource``, ``create_client``).
    """
    found: dict[str, list[str]] = {}
    for source in sources:
        for path in source.files():
            if path.suffix != ".py":
                continue
            try:
                tree = ast.parse(path.read_bytes(), filename=str(path))
            except SyntaxError as exc:
                raise PackageError(f"{path}: {exc.msg} (line {exc.lineno})") from exc
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and (name := _client_service(node, calls)) is not None:
                    found.setdefault(name, []).append(f"{path.relative_to(source.base)}:{node.lineno}")
    return found


def _client_service(node: ast.Call, calls: frozenset[str] = _CLIENT_CALLS) -> str | None:
    """The service of ``x.client("sns")``, ``x.resource(service_name="s3")`` or ``x.create_client("sqs")``."""
    if not (isinstance(node.func, ast.Attribute) and node.func.attr in calls):
        return None
    candidates = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "service_name")]
    for value in candidates:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.value
    return None


def check_services(sources: Iterable[Source], target: Target) -> None:
    """PackageError naming each client the sources make whose service model the zip would leave out."""
    missing = {name: where for name, where in services_called(sources).items() if name not in target.botocore_services}
    if missing:
        calls = "; ".join(f"{name} ({', '.join(where[:3])})" for name, where in sorted(missing.items()))
        flags = " ".join(f"--botocore-service {name}" for name in sorted(missing))
        raise PackageError(f"the code makes clients for services whose models the zip leaves out: {calls}; add {flags}")


# Installed packages that are the SDK itself: they name every operation, and call none on their own.
_SDK_PACKAGES = frozenset({"botocore", "boto3", "s3transfer"})


def operations_named(folder: Path, operations: Mapping[str, str]) -> set[str]:
    """The operations (``{snake_name: OperationName}``) the Python code under ``folder`` names, the SDK's aside.

    A call of a client method (``.get_item(``) or a string equal to an operation's name
    (``"GetItem"``: PynamoDB calls botocore by name) counts; more than is called may be kept, never less.
    """
    names = set(operations.values())
    found: set[str] = set()
    for path in sorted(folder.rglob("*.py")):
        if path.relative_to(folder).parts[0] in _SDK_PACKAGES:
            continue
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except SyntaxError as exc:
            raise PackageError(f"{path}: {exc.msg} (line {exc.lineno})") from exc
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in operations:
                found.add(operations[node.func.attr])
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                found.add(node.value)
    return found


def keep_called_operations(staging: Path, services: Iterable[str]) -> dict[str, list[str]]:
    """Trim the model of each of ``services`` to the operations the staged code names; returns what each keeps.

    The service model keeps those operations (and the endpoint-discovery one, which botocore calls
    by itself) and the shapes they reach; its paginators and waiters those of kept operations.
    """
    from botocore import xform_name  # noqa: PLC0415 - the build's botocore: its own snake_case names

    kept: dict[str, list[str]] = {}
    for service in sorted(services):
        version = max((staging / "botocore" / "data" / service).glob("*/service-2.json*")).parent
        model = _read_json(_model_file(version, "service-2"))
        operations = {xform_name(name): name for name in model["operations"]}
        named = operations_named(staging, operations)
        named |= {name for name, op in model["operations"].items() if op.get("endpointoperation")}
        model["operations"] = {name: op for name, op in model["operations"].items() if name in named}
        reached = _shapes_reached(model)
        model["shapes"] = {name: shape for name, shape in model["shapes"].items() if name in reached}
        _write_json(_model_file(version, "service-2"), model)
        for kind, key in (("paginators-1", "pagination"), ("waiters-2", "waiters")):
            path = _model_file(version, kind)
            if path.exists():
                data = _read_json(path)
                entries = data.get(key, {})  # paginators are keyed by operation; a waiter names its own
                data[key] = {k: v for k, v in entries.items() if v.get("operation", k) in named}
                _write_json(path, data)
        kept[service] = sorted(named)
    return kept


def _shapes_reached(model: Mapping[str, Any]) -> set[str]:
    """The shapes the model's operations reach: input, output, errors, and every member of those."""
    shapes = model["shapes"]
    pending = [
        ref["shape"]
        for op in model["operations"].values()
        for ref in (op.get("input"), op.get("output"), *op.get("errors", ()))
        if ref is not None
    ]
    reached: set[str] = set()
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        reached.add(name)
        shape = shapes[name]
        pending += [shape[k]["shape"] for k in ("member", "key", "value") if k in shape]
        pending += [member["shape"] for member in shape.get("members", {}).values()]
    return reached


def _model_file(version: Path, kind: str) -> Path:
    """A model file of one API version, as botocore finds it: ``<kind>.json``, else ``<kind>.json.gz``."""
    plain = version / f"{kind}.json"
    return plain if plain.exists() or not (version / f"{kind}.json.gz").exists() else version / f"{kind}.json.gz"


def _read_json(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    return dict(json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw))


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    raw = json.dumps(data, separators=(",", ":")).encode()
    path.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)


def install_requirements(staging: Path, requirements: Path, target: Target) -> None:
    """Install the hash-locked ``requirements`` into ``staging`` with pip, as wheels for Lambda's platform."""
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(staging),
        "--no-compile", "--require-hashes", "--platform", target.platform, "--implementation", "cp",
        "--python-version", target.python_version, "--only-binary=:all:", "--requirement", str(requirements),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - this Python's pip
    if result.returncode != 0:
        errors = [line.removeprefix("ERROR: ") for line in result.stderr.splitlines() if line.startswith("ERROR:")]
        first = (errors or [result.stderr.strip() or "(no output)"])[0].split(". ")[0]
        raise PackageError(
            f"pip could not install {requirements} for {target.platform}, CPython {target.python_version}: {first}"
            " (every requirement needs a version pin and its --hash, dependencies included: for example"
            " `uv pip compile --generate-hashes` or `pip-compile --generate-hashes` writes such a file)"
        )
    shutil.rmtree(staging / "bin", ignore_errors=True)  # the dependencies' console scripts (jmespath's jp.py)


def _installed(staging: Path) -> set[str]:
    return {_canonical(path.name.removesuffix(".dist-info").rsplit("-", 1)[0]) for path in staging.glob("*.dist-info")}


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def library_requirements() -> list[str]:
    """The names of the distributions the installed library needs at run time (not its extras')."""
    specs = [spec for spec in metadata.requires(DISTRIBUTION) or [] if "extra ==" not in spec]
    return [_canonical(match.group()) for spec in specs if (match := re.match(r"[A-Za-z0-9._-]+", spec))]


def keep_botocore_services(staging: Path, services: Sequence[str]) -> None:
    """Drop the models of every AWS service but ``services`` from botocore's data (its shared files stay)."""
    data = staging / "botocore" / "data"
    if not data.is_dir():
        raise PackageError("the requirements install no botocore: the outbox library needs it (and boto3)")
    missing = [name for name in services if not (data / name).is_dir()]
    if missing:
        raise PackageError(f"botocore has no service {', '.join(missing)}")
    for folder in sorted(data.iterdir()):
        if folder.is_dir() and folder.name not in services:
            shutil.rmtree(folder)
    trim_endpoints(data, services)


def trim_endpoints(data: Path, services: Sequence[str]) -> None:
    """Keep in botocore's ``endpoints.json`` only the services whose models the zip keeps.

    botocore parses the whole file (1.2 MB, about 450 services) when a process makes its first
    client, to place every service of every partition; a service without a model in the zip can
    have no client, so its entries are dead weight at every cold start. Services are keyed there by
    their model's ``endpointPrefix`` (``streams.dynamodb``, ``portal.sso``), read from the kept models.
    """
    prefixes = {_endpoint_prefix(data / name) for name in services}
    path = data / "endpoints.json"
    endpoints = json.loads(path.read_text())
    for partition in endpoints.get("partitions", []):
        partition["services"] = {k: v for k, v in partition.get("services", {}).items() if k in prefixes}
    path.write_text(json.dumps(endpoints, separators=(",", ":"), sort_keys=True))


def _endpoint_prefix(service: Path) -> str:
    """The ``endpointPrefix`` of a service's newest model (botocore's default: the service's name)."""
    model = max(service.glob("*/service-2.json*"))  # the newest API version's (its folder is a date)
    raw = gzip.decompress(model.read_bytes()) if model.suffix == ".gz" else model.read_bytes()
    return str(json.loads(raw)["metadata"].get("endpointPrefix", service.name))


def compile_bytecode(staging: Path, python_version: str) -> None:
    """Compile every module under ``staging`` for this Python, reproducibly (unchecked-hash .pyc, /var/task paths)."""
    check_interpreter(python_version)
    ok = compileall.compile_dir(
        staging, ddir=TASK_ROOT, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
    )
    if not ok:
        raise PackageError("some modules did not compile")


def stage(staging: Path, *, requirements: Path, sources: Sequence[Source], target: Target) -> None:
    """Fill ``staging`` with the locked requirements, the sources and the library, compiled for the target."""
    check_interpreter(target.python_version)  # before any download
    if not requirements.is_file():
        raise PackageError(f"no requirements file {requirements}")
    for source in sources:
        if not source.folder.is_dir():
            raise PackageError(f"no source folder {source.folder}")
    library = library_sources()
    check_services([*sources, *library], target)
    install_requirements(staging, requirements, target)
    installed = _installed(staging)
    copied = list(sources)
    if DISTRIBUTION not in installed:  # the requirements do not pin the library: this installation's goes in
        copied += library
        lacking = [name for name in library_requirements() if name not in installed]
        if lacking:
            raise PackageError(
                f"{requirements} lacks {', '.join(lacking)}, which the outbox library needs at run time:"
                f" lock them too (or pin {DISTRIBUTION} itself)"
            )
    keep_botocore_services(staging, target.botocore_services)
    for source in copied:
        for path in source.files():
            destination = staging / path.relative_to(source.base)
            if destination.exists():
                raise PackageError(f"{path.relative_to(source.base)} is in two sources (or also a requirement)")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
    if target.only_called_operations:
        staged = [Source(staging, staging, frozenset(staging / name for name in _SDK_PACKAGES))]
        resources = set(services_called(staged, calls=frozenset({"resource"})))
        clients = set(services_called(staged)) - resources  # boto3's resources call operations through their model
        keep_called_operations(staging, clients & set(target.botocore_services))
    compile_bytecode(staging, target.python_version)


def write_zip(folder: Path, output: Path) -> str:
    """Zip ``folder`` reproducibly into ``output``; returns the zip's SHA-256."""
    output.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".pyo")
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), _EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return hashlib.sha256(output.read_bytes()).hexdigest()


def build_zip(output: Path, *, requirements: Path, sources: Sequence[Source], target: Target) -> str:
    """Stage and zip a Lambda package; returns its SHA-256."""
    with tempfile.TemporaryDirectory(prefix="outbox-package-") as tmp:
        stage(Path(tmp), requirements=requirements, sources=sources, target=target)
        return write_zip(Path(tmp), output)


def _skip(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"}
