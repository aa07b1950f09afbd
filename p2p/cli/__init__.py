"""The `p2p` command.

One module per group of commands; each exposes `add_commands(command)` (see
`_common.py`). `GROUPS` lists them in the order `p2p --help` shows their commands:
adding a group is a new module and one line here.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..core.errors import P2PError
from . import connections, daemon, decode, messages, notifications, ownership, peers, records, support, terms
from ._common import command_adder

GROUPS = (
    decode,         # inspect, resolve
    connections,    # status, invite, accept, discover, connections
    messages,       # send, inbox, thread
    peers,          # ping, features, mute, unmute, revoke
    records,        # export, events
    notifications,  # notifications topics|send|broadcast|progress|subscriptions|...
    terms,          # terms roster|proffer|list|show|accept|reject|withdraw
    support,        # tickets list|show|open|reply|assign|status|resolve|close|reopen|rate
    ownership,      # ownership issue|list|show|update|transfer|present|revoke|...
    daemon,         # init, daemon
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p2p", description="A peer-to-peer agent for businesses and their customers.")
    parser.add_argument("--version", action="version", version=f"p2p {__version__}")
    command = command_adder(parser.add_subparsers(dest="command", required=True))
    for group in GROUPS:
        group.add_commands(command)
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
