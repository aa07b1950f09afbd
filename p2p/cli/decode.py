"""`p2p inspect` and `p2p resolve`: decode a CBOR message or COSE envelope, resolve a
DID. Offline: no home, no daemon."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from ..core import cbor, did
from ._common import Command


def _diagnostic(value: Any) -> Any:
    """A JSON-friendly view of a decoded CBOR value: bytes as hex, tags spelled out."""
    if isinstance(value, (bytes, bytearray)):
        return {"hex": bytes(value).hex()}
    if isinstance(value, cbor.CBORTag):
        return {"tag": value.tag, "value": _diagnostic(value.value)}
    if isinstance(value, Mapping):  # cbor2 gives frozendicts inside tags
        return {str(k) if not isinstance(k, str) else k: _diagnostic(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_diagnostic(v) for v in value]
    return value


def _read_input(source: str) -> bytes:
    raw = sys.stdin.buffer.read() if source == "-" else open(source, "rb").read()
    text = raw.strip()
    try:  # accept hex as well as raw CBOR, since vectors and logs carry hex
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return raw


def cmd_inspect(args: argparse.Namespace) -> int:
    value = cbor.loads(_read_input(args.source), max_size=1 << 20)
    print(json.dumps(_diagnostic(value), indent=2))
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    print(json.dumps(did.resolve(args.did), indent=2))
    return 0


def add_commands(command: Command) -> None:
    p = command("inspect", cmd_inspect, "decode a CBOR message or COSE envelope (raw or hex) and print it as JSON",
                client=False)
    p.add_argument("source", help="a file, or - for standard input")
    p = command("resolve", cmd_resolve, "resolve a did:key or did:peer:2 to its DID document", client=False)
    p.add_argument("did")
