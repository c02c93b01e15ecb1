"""One transaction request being served: its envelope, input, spec and the effect it leaves for 2601."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.spec.medins.model import Transaction


class MedinsError(Exception):
    """A business or input failure: becomes infcode -1 with this text as err_msg."""


@dataclass(slots=True)
class FileReply:
    """A 9102 answer: the file's bytes go back as the HTTP body instead of a JSON envelope."""

    filename: str
    content: bytes


@dataclass(slots=True)
class Call:
    env: dict
    tx: Transaction
    transport: str = "national"  # national | yunnan (the CHSInterfaceYn.dll path)
    effect: dict = field(default_factory=dict)  # what a 2601 reversal needs to undo this call

    @property
    def inp(self) -> dict:
        return self.env["input"]

    @property
    def infno(self) -> str:
        return self.tx.infno

    @property
    def params(self) -> dict[str, Any]:
        return self.tx.behaviour

    @property
    def fixmedins_code(self) -> str:
        return str(self.env.get("fixmedins_code") or "")

    def node(self, name: str | None = None) -> Any:
        """The input node named by the behaviour's `node` (or the first node); `data.stastinfo` descends."""
        name = name or self.params.get("node") or next(iter(self.tx.input), "")
        value: Any = self.inp
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def rows(self, name: str | None = None) -> list[dict]:
        """The node as a list of objects (an object node is one row)."""
        value = self.node(name)
        if isinstance(value, list):
            return [v for v in value if isinstance(v, dict)]
        return [value] if isinstance(value, dict) else []

    def where(self, name: str | None = None) -> str:
        return f"input.{name or self.params.get('node') or next(iter(self.tx.input), '')}"
