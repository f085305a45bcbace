"""Extract the Terraform schema of the resource and data types the module uses, offline-checkable.

``terraform validate`` needs the AWS provider, which cannot be downloaded here. The npm package
``@cdktf/provider-aws`` is generated from that provider's schema and carries it in its ``.jsii``
manifest: one ``<Type>Config`` interface per resource or data source, one struct per nested block,
and on every property a documentation link whose anchor is the Terraform argument's name
(``.../docs/resources/lambda_function#function_name``). This script reads that manifest and writes
the arguments and blocks of the types used under ``infra/terraform/`` to ``provider-schema.json``,
which ``tests/infra`` checks the module against.

Run it again after adding a resource type or moving the pinned provider package:

    .venv/bin/python -m infra.schema.extract
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "infra" / "terraform"
OUTPUT = Path(__file__).with_name("provider-schema.json")
# Each Terraform provider the module uses, and the cdktf package generated from its schema.
PACKAGES = {"aws": "@cdktf/provider-aws@21.22.1"}

_LINK = re.compile(r"/providers/hashicorp/[\w-]+/([\d.]+)/docs/(resources|data-sources)/(\w+)#(\w+)")


def used_types(module: Path = MODULE) -> dict[str, set[str]]:
    """``{"resource": {...}, "data": {...}}``: every type named in the module's ``.tf`` files."""
    found: dict[str, set[str]] = {"resource": set(), "data": set()}
    for path in sorted(module.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        with path.open() as handle:
            document = hcl2.load(handle)
        for kind, names in found.items():
            for block in document.get(kind, []):
                names.update(_unquote(name) for name in block)
    return found


def _unquote(name: str) -> str:
    return name.strip('"')


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Manifest:
    """One provider's ``.jsii`` manifest, read as Terraform schema."""

    def __init__(self, jsii: Mapping[str, Any]) -> None:
        self.types: Mapping[str, Any] = jsii["types"]
        self.version = ""
        self.configs: dict[tuple[str, str], str] = {}
        for fqn, spec in self.types.items():
            # A resource's or data source's arguments: the struct that takes Terraform's meta-arguments.
            if "cdktf.TerraformMetaArguments" not in spec.get("interfaces", []):
                continue
            for prop in spec.get("properties", []):
                match = _LINK.search(_doc(prop))
                if match:
                    self.version = match.group(1)
                    kind = "resource" if match.group(2) == "resources" else "data"
                    self.configs.setdefault((kind, f"{_provider(fqn)}_{match.group(3)}"), fqn)
                    break

    def schema(self, kind: str, type_name: str) -> dict[str, Any] | None:
        """The arguments and blocks of one resource or data type, or None if the provider lacks it."""
        fqn = self.configs.get((kind, type_name))
        return None if fqn is None else self._block(fqn)

    def _block(self, fqn: str) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        blocks: dict[str, Any] = {}
        for prop in self.types[fqn].get("properties", []):
            name = _argument_name(prop)
            required = not prop.get("optional", False)
            nested = self._nested(prop["type"])
            if nested is None:
                arguments[name] = {"required": required}
            else:
                struct, many = nested
                blocks[name] = {"required": required, "list": many, **self._block(struct)}
        return {"arguments": dict(sorted(arguments.items())), "blocks": dict(sorted(blocks.items()))}

    def _nested(self, spec: Mapping[str, Any]) -> tuple[str, bool] | None:
        """The struct a property's type holds as a block, and whether it repeats; None for a value."""
        if "union" in spec:
            for option in spec["union"]["types"]:
                found = self._nested(option)
                if found:
                    return found
            return None
        if "collection" in spec:
            if spec["collection"]["kind"] != "array":
                return None
            found = self._nested(spec["collection"]["elementtype"])
            return (found[0], True) if found else None
        fqn = spec.get("fqn", "")
        target = self.types.get(fqn)
        if target and target.get("kind") == "interface" and target.get("datatype"):
            return fqn, False
        return None


def _provider(fqn: str) -> str:
    return fqn.split(".", maxsplit=1)[0].removeprefix("@cdktf/provider-")


def _doc(prop: Mapping[str, Any]) -> str:
    docs = prop.get("docs", {})
    return f"{docs.get('summary', '')} {docs.get('remarks', '')}"


def _argument_name(prop: Mapping[str, Any]) -> str:
    match = _LINK.search(_doc(prop))
    return match.group(4) if match else _snake(prop["name"])


def load_manifest(package: str, workdir: Path) -> Manifest:
    """``npm pack`` the package (no install, no scripts run) and read its ``.jsii``."""
    subprocess.run(["npm", "pack", "--silent", package], cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    (tarball,) = workdir.glob("*.tgz")
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/.jsii")
        if member is None:
            raise SystemExit(f"{package} has no .jsii manifest")
        manifest = Manifest(json.load(member))
    tarball.unlink()
    return manifest


def extract(used: Mapping[str, set[str]], manifests: Mapping[str, Manifest]) -> dict[str, Any]:
    """The schema file's content for the used types; exits naming a type the provider lacks."""
    out: dict[str, Any] = {"providers": {}, "resource": {}, "data": {}}
    for provider, manifest in manifests.items():
        out["providers"][provider] = {"package": PACKAGES[provider], "version": manifest.version}
    for kind, names in used.items():
        for name in sorted(names):
            found = manifests.get(name.split("_")[0])
            schema = found.schema(kind, name) if found else None
            if schema is None:
                raise SystemExit(f"{kind} type {name} is not in the pinned provider packages")
            out[kind][name] = schema
    return out


def _iter_providers(used: Mapping[str, set[str]]) -> Iterator[str]:
    yield from sorted({name.split("_")[0] for names in used.values() for name in names})


def main(argv: list[str] | None = None) -> int:
    """Command line: extract the used types' schema into provider-schema.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    used = used_types()
    with tempfile.TemporaryDirectory() as tmp:
        manifests = {}
        for provider in _iter_providers(used):
            if provider not in PACKAGES:
                raise SystemExit(f"no cdktf package is pinned for provider {provider!r}")
            manifests[provider] = load_manifest(PACKAGES[provider], Path(tmp))
    schema = extract(used, manifests)
    args.output.write_text(json.dumps(schema, indent=1, sort_keys=False) + "\n")
    count = sum(len(schema[kind]) for kind in ("resource", "data"))
    print(f"wrote {count} types to {args.output.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
