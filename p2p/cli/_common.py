"""What every command group shares: the client plumbing and the registration helper.

Client commands are thin clients of the running daemon's admin API (spec/14). They
hold no protocol logic: each is one or a few API calls and a way to print the answer,
for people by default and as JSON with --json.

A command group is a module of this package with

    def add_commands(command: Command) -> None

that calls `command(name, func, help_text)` once per command, in the order `p2p --help`
lists them, and adds its own options to the parser `command` returns. The package's
`GROUPS` tuple lists the group modules in that order too.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..core.errors import LocalError, P2PError

EXIT_ERROR, EXIT_USAGE, EXIT_NO_DAEMON, EXIT_UNAUTHORIZED = 1, 2, 3, 4
BASIC_MESSAGE = "https://didcomm.org/basicmessage/2.0/message"


class UsageError(LocalError):
    code = "usage"


class UnknownConnection(LocalError):
    code = "unknown-connection"


# --- registration -----------------------------------------------------------------------


class Command(Protocol):
    def __call__(self, name: str, func: Callable[[argparse.Namespace], int], help_text: str, *,
                 client: bool = True) -> argparse.ArgumentParser: ...


def command_adder(sub: Any) -> Command:
    """The `command` helper handed to each group's `add_commands`, adding to the
    subparsers `sub`. A client command (the default) gets the shared --home and --json
    options and its help text as the description of its own --help. `client=False` is for
    commands that never talk to a daemon (init, daemon, inspect, resolve): no shared
    options and, as ever for those, no description."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="the agent's home (default: $P2P_HOME or the platform's data directory)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")

    def command(name: str, func: Callable[[argparse.Namespace], int], help_text: str, *,
                client: bool = True) -> argparse.ArgumentParser:
        if client:
            p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        else:
            p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        return p

    return command


# --- running a client command -----------------------------------------------------------


def _client_command(fn: Callable[[Any, argparse.Namespace], int | None]) -> Callable[[argparse.Namespace], int]:
    """Run `fn(client, args)` and turn every failure into one line on stderr and an exit code."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        from ..api.client import Client, DaemonNotRunning, Unauthorized  # httpx only for these commands

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
        except BrokenPipeError as exc:
            try:  # the daemon's socket, not our stdout? then it is an error like any other
                sys.stdout.flush()
            except BrokenPipeError:  # `p2p export | head`: the reader left; say nothing more
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 141
            print(f"p2p: connection-lost: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_ERROR

    return run


# --- printing ---------------------------------------------------------------------------


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


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _summary(msg: dict, width: int = 100) -> str:
    body = msg.get("body") or {}
    kind = "/".join(str(msg.get("type", "?")).split("/")[-3:])
    attached = len(msg.get("attachments") or ())
    if msg.get("type") == BASIC_MESSAGE and isinstance(body.get("content"), str):
        text = body["content"]
    elif isinstance(body.get("title"), str):  # a notification: what it says, not its JSON
        text = f"{kind}: {body['title']}" + (f": {body['body']}" if isinstance(body.get("body"), str) else "")
    elif isinstance(body.get("subject"), str) or isinstance(body.get("text"), str):  # a ticket's message
        text = f"{kind}: " + " / ".join(body[k] for k in ("subject", "text") if isinstance(body.get(k), str))
    elif not body and attached:  # e.g. an ownership record or maker update, signed inside
        text = f"{kind}: ({attached} attachment{'s' if attached > 1 else ''})"
    else:
        text = f"{kind}: {json.dumps(body, ensure_ascii=False)}"
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


# --- option types -----------------------------------------------------------------------

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


# --- naming connections -----------------------------------------------------------------


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
