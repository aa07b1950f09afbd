"""The `p2p` command.

Commands that need no daemon live here directly; the daemon and the commands that
talk to it arrive with the daemon and admin API.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from . import __version__
from .core import cbor, did
from .core.errors import P2PError


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p2p", description="A peer-to-peer agent for businesses and their customers.")
    parser.add_argument("--version", action="version", version=f"p2p {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="decode a CBOR message or COSE envelope (raw or hex) and print it as JSON")
    p.add_argument("source", help="a file, or - for standard input")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("resolve", help="resolve a did:key or did:peer:2 to its DID document")
    p.add_argument("did")
    p.set_defaults(func=cmd_resolve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except P2PError as exc:
        print(f"p2p: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"p2p: {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
