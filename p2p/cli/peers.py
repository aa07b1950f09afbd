"""Commands aimed at the peer of one existing connection: `p2p ping`, `features`
(discover-features), `mute` / `unmute` and `revoke`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import Command, UsageError, _client_command, _name, _print_json, resolve_connection


@_client_command
def cmd_ping(client: Any, args: argparse.Namespace) -> None:
    rel = resolve_connection(client, args.connection)
    pong = client.ping(rel["id"], timeout=args.timeout)
    if args.json:
        return _print_json(pong)
    print(f"pong from {_name(rel)} in {pong['rtt_ms']:.1f} ms")


@_client_command
def cmd_features(client: Any, args: argparse.Namespace) -> None:
    rel = resolve_connection(client, args.connection)
    features = client.discover(rel["id"], match=args.match, timeout=args.timeout)
    if args.json:
        return _print_json(features)
    if not features:
        print(f"{_name(rel)} disclosed no feature matching {args.match!r}")
    for f in features:
        roles = f" ({', '.join(f['roles'])})" if f.get("roles") else ""
        print(f"{f.get('feature-type', '?'):<10} {f.get('id')}{roles}")


@_client_command
def cmd_revoke(client: Any, args: argparse.Namespace) -> None:
    rel = resolve_connection(client, args.connection)
    if not args.yes and sys.stdin.isatty():
        answer = input(f"revoke {_name(rel)} ({rel['id']})? This cannot be undone. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise UsageError("not revoked")
    rel = client.revoke(rel["id"], reason=args.reason)
    if args.json:
        return _print_json(rel)
    print(f"revoked {_name(rel)} ({rel['id']})")


@_client_command
def cmd_mute(client: Any, args: argparse.Namespace) -> None:
    rel = resolve_connection(client, args.connection)
    muted = args.command == "mute"
    rel = client.request("PATCH", f"/relationships/{rel['id']}", body={"muted": muted})
    if args.json:
        return _print_json(rel)
    if muted:
        print(f"muted {_name(rel)}: its messages are kept and shown, without alerts")
    else:
        print(f"unmuted {_name(rel)}")


def add_commands(command: Command) -> None:
    p = command("ping", cmd_ping, "trust-ping a connection and show the round trip")
    p.add_argument("connection")
    p.add_argument("--timeout", type=float, default=10)
    p = command("features", cmd_features, "ask a connection which protocols it supports (discover-features)")
    p.add_argument("connection")
    p.add_argument("--match", default="*", help="a feature id pattern, * as wildcard (default *)")
    p.add_argument("--timeout", type=float, default=10)
    p = command("mute", cmd_mute, "keep a connection's messages but without alerts (customer control)")
    p.add_argument("connection")
    p = command("unmute", cmd_mute, "alert again on a muted connection's messages")
    p.add_argument("connection")
    p = command("revoke", cmd_revoke, "revoke a connection for good")
    p.add_argument("connection")
    p.add_argument("--reason")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
