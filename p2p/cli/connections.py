"""Making and listing connections: `p2p status`, `invite`, `accept`, `discover` (LAN
discovery) and `connections`."""

from __future__ import annotations

import argparse
import collections
import math
import sys
from typing import Any

from ..core.errors import LocalError
from ._common import (Command, UsageError, _client_command, _duration, _duration_arg, _name, _print_json,
                      _table, _when)


class NotNearby(LocalError):
    """`p2p discover --accept X`: no agent found nearby matches X (or several do)."""

    code = "not-nearby"


@_client_command
def cmd_status(client: Any, args: argparse.Namespace) -> None:
    st = client.status()
    if args.json:
        return _print_json(st)
    rels = ", ".join(f"{n} {state}" for state, n in sorted(st.get("relationships", {}).items())) or "none"
    if "connections" in st:
        rels += f" ({st['connections']} online)"
    outbox = ", ".join(f"{n} {state}" for state, n in st.get("outbox", {}).items()) or "empty"
    for key, value in [("DID", st["did"]), ("endpoint", st.get("endpoint") or "(not listening)"),
                       ("role", st.get("role", "customer")), ("version", st.get("version", "?")),
                       ("uptime", _duration(st.get("uptime_s"))),
                       ("connections", rels), ("outbox", outbox)]:
        print(f"{key:<12} {value}")


def _print_qr(url: str) -> None:
    import segno

    try:
        qr = segno.make(url, micro=False)
    except segno.DataOverflowError:
        print("(the URL is too long for a QR code)")
        return
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "▀▄█".encode(encoding)
        compact = True
    except (UnicodeEncodeError, LookupError):
        compact = False  # segno then draws with ANSI colours instead of block characters
    qr.terminal(out=sys.stdout, compact=compact)


@_client_command
def cmd_invite(client: Any, args: argparse.Namespace) -> None:
    inv = client.create_invitation(multi_use=args.multi_use, label=args.label, expires_in=args.expires_in)
    if args.json:
        return _print_json(inv)
    print(inv["url"])  # first line alone, so `p2p invite | head -1` is the URL
    if args.qr if args.qr is not None else sys.stdout.isatty():
        _print_qr(inv["url"])
    kind = "multi-use" if inv.get("multi_use") else "one-time"
    expiry = f"expires {_when(inv['expires_time'])}" if inv.get("expires_time") else "does not expire"
    print(f"{kind} invitation {inv['id']}, {expiry}")


@_client_command
def cmd_accept(client: Any, args: argparse.Namespace) -> None:
    rel = client.accept(args.url.strip(), label=args.label, timeout=args.timeout)
    if args.json:
        return _print_json(rel)
    print(_connected_line(rel))


def _connected_line(rel: dict) -> str:
    # `label` names the peer: the name it presents, unless `accept --label` gave ours
    # for it; then its own name is worth showing too.
    theirs = rel.get("their_label")
    suffix = f" (they call themselves {theirs!r})" if theirs and theirs != _name(rel) else ""
    return f"connected: {_name(rel)} {rel['id']}{suffix}"


def _discover_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 30:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds in (0, 30]")
    return value


def _pick_nearby(found: list[dict], choice: str) -> dict:
    """The N-th entry (1-based, as listed), or the one whose fingerprint starts with
    `choice` (dashes ignored): a fingerprint stays right if the list changed since."""
    if choice.isdigit():
        n = int(choice)
        if not 1 <= n <= len(found):
            raise NotNearby(f"no entry {n}: {len(found)} agent(s) found nearby")
        return found[n - 1]
    wanted = choice.replace("-", "").lower()
    if len(wanted) < 4:
        raise UsageError("--accept takes the number of an entry or at least 4 characters of its fingerprint")
    matches = [n for n in found if n["fingerprint"].startswith(wanted)]
    if len(matches) != 1:
        raise NotNearby(f"{len(matches) or 'no'} agent(s) nearby with a fingerprint starting {choice!r}")
    return matches[0]


def _nearby_lines(scan: dict, debug: bool) -> None:
    found = scan["nearby"]
    for i, n in enumerate(found, 1):
        notes = []
        if n.get("own"):
            notes.append("(this agent)")
        if n.get("label_mismatch"):
            notes.append(f"(!) also advertised as {n.get('advertised_label')!r}")
        address = n["endpoint"].rpartition("@")[2]
        label = n["label"] or "(no label)"
        print(f"{i:>2}  {label}  {n['fingerprint_display']}  {address}  {' '.join(notes)}".rstrip())
        if debug:
            print(f"    did       {n['agent_did']}\n    endpoint  {n['endpoint']}\n"
                  f"    mdns      {n.get('name', '')} at {', '.join(n.get('addresses') or []) or '-'}\n"
                  f"    expires   {_when(n.get('expires_time'))}\n    url       {n['url']}")
    labels = collections.Counter(n["label"].casefold() for n in found)
    for label, count in labels.items():
        if count > 1:
            shown = next(n["label"] for n in found if n["label"].casefold() == label)
            print(f"note: {count} agents call themselves {shown!r}: the fingerprint tells them apart; "
                  "compare it with the one the business shows")
    rejected = scan["rejected"]
    if debug:
        for r in rejected:
            print(f"rejected  {r['name']}  {r['code']}: {r['detail']}"
                  + (f"  (from {', '.join(r['addresses'])})" if r.get("addresses") else ""))
    elif rejected:
        print(f"({len(rejected)} advertisement(s) failed verification and are not shown; --debug lists them)")


@_client_command
def cmd_discover(client: Any, args: argparse.Namespace) -> None:
    scan = client.discover_nearby(timeout=args.timeout)
    found = scan["nearby"]
    if args.accept is None:
        if args.json:
            return _print_json(scan)
        if not found:
            print(f"no agents found nearby (listened {args.timeout:g} s)")
        _nearby_lines(scan, args.debug)
        if any(not n.get("own") for n in found):
            print("to connect: p2p discover --accept N (or --accept FINGERPRINT)")
        return None
    chosen = _pick_nearby(found, args.accept)
    if chosen.get("own"):
        raise UsageError("that is this agent's own advertisement")
    if not args.json:
        print(f"connecting to {chosen['label'] or '(no label)'} {chosen['fingerprint_display']} "
              f"at {chosen['endpoint'].rpartition('@')[2]} ...", flush=True)
    # The normal accept path: the daemon verifies the signed invitation again and runs
    # the handshake with the key in its endpoint, so a spoofed entry cannot connect us
    # to anyone but the key it shows.
    rel = client.accept(chosen["url"], label=args.label, timeout=args.connect_timeout)
    if args.json:
        return _print_json(rel)
    print(_connected_line(rel))


@_client_command
def cmd_connections(client: Any, args: argparse.Namespace) -> None:
    rels = client.relationships(state=args.state)
    if args.json:
        return _print_json(rels)
    if not rels:
        print("no connections yet; make one with `p2p invite` or `p2p accept URL`")
        return
    _table([[r["id"][:12], r.get("label") or "", r.get("their_label") or "", r.get("state", ""), r.get("role", ""),
             str(r.get("outbox_pending", "")), _when(r.get("created_time"))] for r in rels],
           ["ID", "LABEL", "THEIR LABEL", "STATE", "ROLE", "PENDING", "SINCE"])


def add_commands(command: Command) -> None:
    command("status", cmd_status, "show the running agent: DID, endpoint, connections, outbox")
    p = command("invite", cmd_invite, "create an invitation: print its URL and a QR code")
    p.add_argument("--multi-use", action="store_true", help="any number of people may accept it")
    p.add_argument("--label", help="our name for it, shown to whoever accepts")
    p.add_argument("--expires-in", type=_duration_arg, metavar="DURATION", help="e.g. 15m, 12h, 7d")
    p.add_argument("--qr", action=argparse.BooleanOptionalAction, default=None,
                   help="print the QR code (default: when the output is a terminal)")
    p = command("accept", cmd_accept, "accept an invitation URL and connect to its sender")
    p.add_argument("url")
    p.add_argument("--label", help="our own name for the inviter on this connection (default: the name it "
                                   "presents); kept here, not sent: we present the `label` of config.toml")
    p.add_argument("--timeout", type=float, default=30, help="seconds to wait for the inviter (default 30)")
    p = command("discover", cmd_discover, "list the businesses advertising an invitation on this network "
                                          "(LAN discovery), and connect to one")
    p.add_argument("--timeout", type=_discover_seconds, default=3.0, metavar="S",
                   help="seconds to listen (default 3, at most 30)")
    p.add_argument("--debug", action="store_true",
                   help="also show DIDs, URLs, mDNS names and the advertisements that failed verification")
    p.add_argument("--accept", metavar="N|FINGERPRINT",
                   help="connect to the N-th agent found (or the one whose fingerprint starts so)")
    p.add_argument("--label", help="with --accept: our name for this connection")
    p.add_argument("--connect-timeout", type=float, default=30, metavar="S",
                   help="with --accept: seconds to wait for the business (default 30)")
    p = command("connections", cmd_connections, "list connections (relationships)")
    p.add_argument("--state", choices=["active", "revoked"])
