#!/usr/bin/env python3
"""p2p's own implementation of the interop adapter contract (interop/README.md).

One JSON request per line on stdin, one JSON reply per line on stdout. Handlers live
in interop/ops_<area>.py, each exporting OPS = {op name: handler}.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import sys
import traceback

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing
sys.path.insert(0, str(HERE))

from p2p.core.errors import P2PError  # noqa: E402


def load_ops() -> dict:
    ops: dict = {}
    for path in sorted(HERE.glob("ops_*.py")):
        module = importlib.import_module(path.stem)
        ops.update(module.OPS)
    return ops


def handle(ops: dict, request: dict) -> dict:
    op = request.pop("op", None)
    handler = ops.get(op)
    if handler is None:
        return {"error": "unsupported-op", "detail": f"no handler for op {op!r}"}
    try:
        return handler(request)
    except P2PError as exc:
        return {"error": exc.code, "detail": exc.detail}
    except Exception as exc:  # a crash is a finding: report it, keep serving
        return {"error": "crash", "detail": "".join(traceback.format_exception_only(exc)).strip()}


def main() -> None:
    ops = load_ops()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError as exc:
            print(json.dumps({"error": "bad-request", "detail": str(exc)}), flush=True)
            continue
        rid = request.pop("id", None)
        reply = handle(ops, request)
        reply["id"] = rid
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
