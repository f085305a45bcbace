"""The Terraform module parsed with python-hcl2, in plain Python values, for the infra tests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "infra" / "terraform"
# The module's examples: the whole outbox with its own table, and attached to a caller's table.
EXAMPLES = (MODULE / "examples" / "complete", MODULE / "examples" / "existing-table")
META = ("__is_block__", "__comments__")
_VAR = re.compile(r"^\$\{var\.(\w+)\}$")


def unquote(value: str) -> str:
    """A quoted HCL string literal without its quotes; an expression (``${...}``) as it is."""
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def plain(value: Any) -> Any:
    """python-hcl2's output with quotes and its bookkeeping keys removed."""
    if isinstance(value, dict):
        return {unquote(k): plain(v) for k, v in value.items() if k not in META}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return unquote(value)
    return value


@dataclass
class Module:
    """Every top-level block of one Terraform directory, by kind."""

    path: Path
    raw: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)

    def resource(self, type_name: str, name: str) -> dict[str, Any]:
        return self.resources[type_name][name]

    def default(self, expression: object) -> Any:
        """The default of the variable an expression names (``${var.x}``)."""
        match = _VAR.match(str(expression))
        assert match, f"{expression!r} is not a plain variable reference"
        return self.variables[match.group(1)]["default"]

    def function_policy(self, function: str) -> dict[str, Any]:
        """The policy document of a function's role (``local.function_policies``: ``${data.<type>.<name>.json}``)."""
        (name,) = re.findall(r"data\.aws_iam_policy_document\.(\w+)", self.locals["function_policies"][function])
        document: dict[str, Any] = self.data["aws_iam_policy_document"][name]
        return document


@cache
def load(path: Path = MODULE) -> Module:
    """Parse every ``.tf`` file directly in ``path``."""
    module = Module(path)
    for file in sorted(path.glob("*.tf")):
        with file.open() as handle:
            document = hcl2.load(handle)
        module.raw.append((file, document))
        for kind, target in (("resource", module.resources), ("data", module.data)):
            for block in document.get(kind, []):
                for type_name, named in plain(block).items():
                    target.setdefault(type_name, {}).update(named)
        for block in document.get("variable", []):
            module.variables.update(plain(block))
        for block in document.get("output", []):
            module.outputs.update(plain(block))
        for block in document.get("locals", []):
            module.locals.update(plain(block))
    return module
