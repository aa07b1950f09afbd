"""The `p2p` command.

Commands that need no daemon live here directly; the daemon and the commands that
talk to it arrive with the daemon and admin API.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import __version__
from .core import cbor, did
from .core.errors import LocalError, P2PError


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


# --- client commands: thin clients of the running daemon's admin API (spec/14) ----------
# They hold no protocol logic: each is one or a few API calls and a way to print the
# answer, for people by default and as JSON with --json.

EXIT_ERROR, EXIT_USAGE, EXIT_NO_DAEMON, EXIT_UNAUTHORIZED = 1, 2, 3, 4
BASIC_MESSAGE = "https://didcomm.org/basicmessage/2.0/message"
EXPORT_FORMAT, EXPORT_VERSION = "p2p-export", 1


class UsageError(LocalError):
    code = "usage"


class UnknownConnection(LocalError):
    code = "unknown-connection"


class NotNearby(LocalError):
    """`p2p discover --accept X`: no agent found nearby matches X (or several do)."""

    code = "not-nearby"


def _client_command(fn: Callable[[Any, argparse.Namespace], int | None]) -> Callable[[argparse.Namespace], int]:
    """Run `fn(client, args)` and turn every failure into one line on stderr and an exit code."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        from .api.client import Client, DaemonNotRunning, Unauthorized  # httpx only for these commands

        try:
            with Client.from_home(args.home) as client:
                return fn(client, args) or 0
        except P2PError as exc:
            status = {DaemonNotRunning: EXIT_NO_DAEMON, Unauthorized: EXIT_UNAUTHORIZED,
                      UsageError: EXIT_USAGE}.get(type(exc), EXIT_ERROR)
            if args.json:
                print(json.dumps({"error": exc.code, "detail": exc.detail}), file=sys.stderr)
            elif status in (EXIT_NO_DAEMON, EXIT_UNAUTHORIZED):
                print(f"p2p: {exc.detail}", file=sys.stderr)
            else:
                print(f"p2p: {exc.code}: {exc.detail}", file=sys.stderr)
            return status
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:  # `p2p export | head`: the reader left; say nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141

    return run


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _when(t: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    parts = [(s // 86400, "d"), (s // 3600 % 24, "h"), (s // 60 % 60, "m"), (s % 60, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n] or ["0s"]
    return " ".join(shown[:2])


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _duration_arg(text: str) -> int:
    """`90`, `90s`, `15m`, `12h`, `7d`, `2w` -> seconds."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    if not number.isdigit() or int(number) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90, 15m, 12h or 7d")
    return int(number) * _UNITS[unit]


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _name(rel: dict) -> str:
    return rel.get("label") or rel.get("their_label") or rel["id"][:8]


def resolve_connection(client: Any, text: str) -> dict:
    """A relationship by its id, its label (ours, then theirs) or a unique id prefix.
    When a label names several, an only active one wins: an old revoked relationship
    with the same peer should not make its name unusable. An id prefix must be unique."""
    rels = client.relationships()
    for rel in rels:
        if rel["id"] == text:
            return rel
    for key in ("label", "their_label"):
        named = [r for r in rels if r.get(key) == text]
        active = [r for r in named if r.get("state") == "active"]
        if len(named) == 1 or len(active) == 1:
            return named[0] if len(named) == 1 else active[0]
        if named:
            raise UnknownConnection(f"{text!r} names {len(named)} connections: {_listing(named)}; use an id")
    prefixed = [r for r in rels if r["id"].startswith(text)]
    if len(prefixed) == 1:
        return prefixed[0]
    if prefixed:
        raise UnknownConnection(f"{text!r} matches {len(prefixed)} connections: {_listing(prefixed)}; "
                                "give more of the id")
    raise UnknownConnection(f"no connection {text!r} (see `p2p connections`)")


def _listing(rels: list[dict]) -> str:
    return ", ".join(f"{r['id'][:12]} ({_name(r)}, {r.get('state')})" for r in rels[:5])


def _summary(msg: dict, width: int = 100) -> str:
    body = msg.get("body") or {}
    if msg.get("type") == BASIC_MESSAGE and isinstance(body.get("content"), str):
        text = body["content"]
    else:
        text = f"{'/'.join(str(msg.get('type', '?')).split('/')[-3:])}: {json.dumps(body, ensure_ascii=False)}"
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _message_lines(messages: list[dict], names: dict[str, str]) -> None:
    for msg in messages:
        who = "me" if msg.get("direction") == "out" else names.get(msg.get("relationship") or "", "?")
        state = f" [{msg['state']}]" if msg.get("direction") == "out" and msg.get("state") != "delivered" else ""
        print(f"{_when(msg.get('created_time'))}  {who:<12}  {_summary(msg)}{state}  ({(msg.get('thid') or '')[:8]})")


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
                       ("version", st.get("version", "?")), ("uptime", _duration(st.get("uptime_s"))),
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


@_client_command
def cmd_send(client: Any, args: argparse.Namespace) -> None:
    if (args.text is None) == (args.body_json is None):
        raise UsageError("give the message TEXT or --body-json JSON (one of them)")
    if args.body_json is not None:
        try:
            body = json.loads(args.body_json)
        except ValueError as exc:
            raise UsageError(f"--body-json is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise UsageError("--body-json must be a JSON object")
    else:
        text = sys.stdin.read() if args.text == "-" else args.text
        body = {"content": text}
    rel = resolve_connection(client, args.connection)
    msg = client.send(rel["id"], type=args.type, body=body, thid=args.thread, expires_in=args.expires_in,
                      please_ack=args.ack)
    if args.json:
        return _print_json(msg)
    print(f"queued {msg['id']} to {_name(rel)} (thread {msg.get('thid')})")


@_client_command
def cmd_inbox(client: Any, args: argparse.Namespace) -> None:
    rels = client.relationships()
    rid = resolve_connection(client, args.connection)["id"] if args.connection else None
    # The API pages oldest first; keep the newest `limit` (see spec/14 §14.5).
    # Application messages only, unless --all: the connect handshake, pings, acks and
    # problem reports are in the archive (and the export), not in the conversation.
    latest = collections.deque(client.iter_messages(relationship=rid, direction="in", protocol=args.all),
                               maxlen=args.limit)
    if args.json:
        return _print_json(list(latest))
    if not latest:
        print("no messages")
        return
    _message_lines(list(latest), {r["id"]: _name(r) for r in rels})


@_client_command
def cmd_thread(client: Any, args: argparse.Namespace) -> None:
    messages = client.thread(args.thid, protocol=args.all)
    if args.json:
        return _print_json(messages)
    _message_lines(messages, {r["id"]: _name(r) for r in client.relationships()})


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


def _write_private(path: Path, data: bytes) -> None:
    """All or nothing, readable by the owner only: an export holds every message."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@_client_command
def cmd_export(client: Any, args: argparse.Namespace) -> None:
    if args.format == "cbor" and args.output is None and sys.stdout.isatty():
        raise UsageError("refusing to write CBOR to a terminal; use -o FILE or a pipe")
    rels = [resolve_connection(client, args.connection)] if args.connection else client.relationships()
    progress = sys.stderr.isatty()
    records, total = [], 0
    for rel in rels:
        messages = []
        for msg in client.iter_messages(relationship=rel["id"]):
            messages.append(msg)
            if progress and len(messages) % 1000 == 0:
                print(f"\rexporting {_name(rel)}: {len(messages)} messages", end="", file=sys.stderr, flush=True)
        if progress:
            print(f"\rexporting {_name(rel)}: {len(messages)} messages", file=sys.stderr)
        records.append({"relationship": rel, "messages": messages})
        total += len(messages)
    doc = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "exported_time": int(time.time()),
           "agent": {"did": client.status()["did"]}, "relationships": records}
    data = (cbor.dumps(doc) if args.format == "cbor"
            else (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    if args.output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    _write_private(Path(args.output), data)
    summary = {"file": args.output, "format": args.format, "relationships": len(records), "messages": total}
    if args.json:
        return _print_json(summary)
    print(f"exported {len(records)} connection(s) and {total} message(s) to {args.output}")


@_client_command
def cmd_events(client: Any, args: argparse.Namespace) -> None:
    for event in client.events():
        if args.json:
            print(json.dumps(event, ensure_ascii=False), flush=True)
            continue
        detail = {k: v for k, v in event.items() if k not in ("event", "time")}
        msg = detail.get("message")
        text = _summary(msg) if isinstance(msg, dict) else json.dumps(detail, ensure_ascii=False)
        print(f"{_when(event.get('time'))}  {event.get('event')}  {text}", flush=True)


def add_client_commands(sub: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="the agent's home (default: $P2P_HOME or the platform's data directory)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")

    def command(name: str, func: Callable, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(func=func)
        return p

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
    p = command("send", cmd_send, "queue a message to a connection")
    p.add_argument("connection", help="id, unique id prefix or label")
    p.add_argument("text", nargs="?", help="the text of a basic message (- reads standard input)")
    p.add_argument("--body-json", metavar="JSON", help="the message body as a JSON object, instead of TEXT")
    p.add_argument("--type", default=BASIC_MESSAGE, help="the message type URI (default: basic message)")
    p.add_argument("--thread", metavar="THID", help="continue this thread")
    p.add_argument("--expires-in", type=_duration_arg, metavar="DURATION", help="give up delivering after this")
    p.add_argument("--ack", action="store_true", help="ask the peer to acknowledge")
    p = command("inbox", cmd_inbox, "show the newest received messages")
    p.add_argument("--connection", help="only from this connection")
    p.add_argument("--limit", type=_positive_int, default=20, help="how many (default 20)")
    p.add_argument("--all", action="store_true",
                   help="also the agent's own protocol messages (connect, trust ping, discover, problem reports, acks)")
    p = command("thread", cmd_thread, "show one thread, in order")
    p.add_argument("thid")
    p.add_argument("--all", action="store_true", help="also the agent's own protocol messages")
    p = command("ping", cmd_ping, "trust-ping a connection and show the round trip")
    p.add_argument("connection")
    p.add_argument("--timeout", type=float, default=10)
    p = command("features", cmd_features, "ask a connection which protocols it supports (discover-features)")
    p.add_argument("connection")
    p.add_argument("--match", default="*", help="a feature id pattern, * as wildcard (default *)")
    p.add_argument("--timeout", type=float, default=10)
    p = command("revoke", cmd_revoke, "revoke a connection for good")
    p.add_argument("connection")
    p.add_argument("--reason")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p = command("export", cmd_export, "write the whole record of one or all connections: relationship and messages")
    p.add_argument("connection", nargs="?")
    p.add_argument("--format", choices=["json", "cbor"], default="json")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (mode 0600) instead of standard output")
    command("events", cmd_events, "follow the agent's live events until interrupted")


def cmd_init(args: argparse.Namespace) -> int:
    from .home import init, load_config

    config = load_config()
    print(init(config))
    return 0


def cmd_daemon(args: argparse.Namespace) -> int:
    from . import daemon
    from .home import load_config

    return daemon.main(load_config())


def add_daemon_commands(sub: Any) -> None:
    """`p2p init` and `p2p daemon` (the home is $P2P_HOME, see spec/13-daemon.md)."""
    p = sub.add_parser("init", help="create the agent's home, keys and store; print the agent DID")
    p.set_defaults(func=cmd_init)
    p = sub.add_parser("daemon", help="run the agent (initialises the home first if needed)")
    p.set_defaults(func=cmd_daemon)


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
    add_client_commands(sub)
    add_daemon_commands(sub)
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
