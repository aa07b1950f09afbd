"""Shared plumbing of the vector generators (interop/tools/gen_*.py).

Importing this module makes `p2p` and the handler modules `interop/ops_*.py` importable
from a plain checkout. A VectorSet collects one area's cases, checks each against our
implementation as it is added, and writes them as interop/vectors/<area>/NNN-name.json
(pretty-printed JSON, one case per file; see interop/README.md).
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Callable

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "interop"))

from p2p.core.errors import P2PError  # noqa: E402


class VectorSet:
    """The cases of one area, in file order."""

    def __init__(self, area: str, ops: dict[str, Callable[[dict], dict]] | None = None) -> None:
        self.out = ROOT / "interop" / "vectors" / area
        self.ops = ops or {}
        self.cases: list[dict] = []

    def call(self, op: str, request: dict) -> dict:
        # A JSON round trip hands the handler what the adapter would get, and keeps it
        # from mutating the request we store.
        return self.ops[op](json.loads(json.dumps(request)))

    def add(self, name: str, description: str, op: str, request: dict, expect: dict, *, reject: bool = False,
            cddl: dict | None = None) -> None:
        case = {"name": name, "description": description, "op": op, "reject": reject, "request": request,
                "expect": expect}
        if cddl:
            case["cddl"] = cddl
        self.cases.append(case)

    def accept(self, name: str, description: str, op: str, request: dict, *, cddl: dict | None = None,
               keys_order: list[str] | None = None) -> dict:
        """Add a valid case whose expect is our reply (only `keys_order`, in that order, if given)."""
        reply = self.call(op, request)
        self.add(name, description, op, request, {k: reply[k] for k in (keys_order or reply)}, cddl=cddl)
        return reply

    def reject(self, name: str, description: str, op: str, request: dict, code: str, *,
               cddl: dict | None = None) -> None:
        """Add a must-reject case, after checking that our implementation refuses it with `code`."""
        try:
            self.call(op, request)
        except P2PError as exc:
            if exc.code != code:
                raise SystemExit(f"{name}: expected {code}, got {exc.code}: {exc.detail}") from None
        else:
            raise SystemExit(f"{name}: expected {code}, op succeeded")
        self.add(name, description, op, request, {"error": code}, reject=True, cddl=cddl)

    def write(self, *, numbered: bool = True, ensure_ascii: bool = True) -> None:
        """Replace the area's vector files; `numbered` prefixes names with 001-, 002-, ..."""
        self.out.mkdir(parents=True, exist_ok=True)
        for old in self.out.glob("*.json"):
            old.unlink()
        for n, case in enumerate(self.cases, start=1):
            case = dict(case)
            name = case.pop("name")
            if numbered:
                name = f"{n:03d}-{name}"
            (self.out / f"{name}.json").write_text(json.dumps(case, indent=2, ensure_ascii=ensure_ascii) + "\n")
        rejects = sum(c["reject"] for c in self.cases)
        print(f"wrote {len(self.cases)} vectors ({rejects} must-reject) to {self.out.relative_to(ROOT)}")
