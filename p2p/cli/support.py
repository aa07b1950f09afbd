"""Support tickets: `p2p tickets list|show|open|reply|assign|status|resolve|close|reopen|rate`
(spec/18 §18.7). Each is one admin API call under /v1/tickets."""

from __future__ import annotations

import argparse
import base64
import mimetypes
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ._common import Command, UsageError, _client_command, _positive_int, _print_json, _when, resolve_connection

MAX_INLINE_BYTES = 65_536  # spec/18 §18.3; the daemon checks it too (413 attachment-too-large)
STATES = ("open", "waiting_on_customer", "waiting_on_business", "resolved", "closed", "reopened")


def _attachments(args: argparse.Namespace) -> list[dict] | None:
    out: list[dict] = []
    for name in getattr(args, "attach", None) or []:
        path = Path(name)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"--attach {name}: {exc.strerror}") from None
        item = {"filename": path.name, "base64": base64.b64encode(content).decode()}
        media_type = mimetypes.guess_type(path.name)[0]
        if media_type:
            item["media_type"] = media_type
        out.append(item)
    links = getattr(args, "link", None) or []
    hashes, sizes = getattr(args, "hash", None) or [], getattr(args, "size", None) or []
    if not (len(links) == len(hashes) == len(sizes)):
        raise UsageError("give each --link URL with its --hash HEX (BLAKE2b-256) and --size BYTES")
    for url, digest, size in zip(links, hashes, sizes):
        item = {"url": url, "hash": digest, "byte_count": size}
        filename = os.path.basename(url.split("?", 1)[0].rstrip("/"))
        if filename:
            item["filename"] = filename
        out.append(item)
    return out or None


def _params(client: Any, args: argparse.Namespace) -> dict:
    return {"relationship": resolve_connection(client, args.connection)["id"] if args.connection else None}


def _path(ticket: str, action: str = "") -> str:
    return f"/tickets/{quote(ticket, safe='')}" + (f"/{action}" if action else "")


def _line(t: dict) -> str:
    extra = []
    if t.get("assignee"):
        extra.append(f"assigned to {t['assignee']}")
    if t.get("rating"):
        extra.append(f"rated {t['rating']['score']}/5")
    tail = f"  ({', '.join(extra)})" if extra else ""
    return f"{t['id']}  {t['state']:<19}  {_when(t.get('updated_time'))}  {t['subject']}{tail}"


def _show(t: dict) -> None:
    print(_line(t))
    print(f"  opened by the {t['opened_by']} on {_when(t.get('created_time'))}, connection {t['relationship'][:12]}"
          + (f", {t['category']}" if t.get("category") else "") + (f", {t['priority']}" if t.get("priority") else ""))
    if t.get("rating") and t["rating"].get("comment"):
        print(f"  rating comment: {t['rating']['comment']}")
    for msg in t.get("history", []):
        body = msg.get("body") or {}
        name = msg["type"].rsplit("/", 1)[-1]
        words = [body.get(k) for k in ("subject", "text", "assignee", "status", "note", "reason", "comment")
                 if body.get(k)]
        if name == "rate":
            words.insert(0, f"{body.get('score')}/5")
        who = "me" if msg.get("direction") == "out" else "them"
        print(f"  {_when(msg.get('created_time'))}  {who:<4}  {name}: {' / '.join(str(w) for w in words)}")
        for a in msg.get("attachments") or []:
            data = a.get("data") or {}
            where = f"{len(data['bytes']) // 2} bytes inline" if "bytes" in data else ", ".join(data.get("links", []))
            print(f"        attachment {a.get('filename') or a.get('id')}: {where}")
    if t.get("withdrawn"):
        print(f"  not delivered (the ticket had changed): {', '.join(t['withdrawn'])}")


@_client_command
def cmd_tickets(client: Any, args: argparse.Namespace) -> None:
    action = args.action
    if action == "list":
        params = {**_params(client, args), "state": args.state, "limit": args.limit}
        result = client.request("GET", "/tickets", params=params)
        if args.json:
            return _print_json(result)
        if not result["tickets"]:
            print("no tickets")
        for t in result["tickets"]:
            print(_line(t))
        return
    if action == "show":
        result = client.request("GET", _path(args.ticket), params=_params(client, args))
        return _print_json(result) if args.json else _show(result)
    if action == "open":
        rel = resolve_connection(client, args.connection)
        body = {"relationship": rel["id"], "subject": args.subject, "text": args.text or "",
                "category": args.category, "priority": args.priority, "attachments": _attachments(args)}
        result = client.request("POST", "/tickets", body={k: v for k, v in body.items() if v is not None})
    else:
        fields = {
            "reply": lambda: {"text": args.text, "attachments": _attachments(args)},
            "assign": lambda: {"assignee": args.assignee, "notify": args.notify},
            "status": lambda: {"status": args.status, "note": args.note},
            "resolve": lambda: {"text": args.text, "attachments": _attachments(args)},
            "close": lambda: {"reason": args.reason},
            "reopen": lambda: {"text": args.text, "attachments": _attachments(args)},
            "rate": lambda: {"score": args.score, "comment": args.comment},
        }[action]()
        result = client.request("POST", _path(args.ticket, action), params=_params(client, args),
                                body={k: v for k, v in fields.items() if v is not None})
    if args.json:
        return _print_json(result)
    print(_line(result))


def _score(text: str) -> int:
    if text not in ("1", "2", "3", "4", "5"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a score 1..5")
    return int(text)


def add_commands(command: Command) -> None:
    p = command("tickets", cmd_tickets, "support tickets: list, show, open, reply, assign, status, resolve, close, "
                                        "reopen, rate")
    # --home and --json also after the action (`p2p tickets show ID --json`); SUPPRESS keeps
    # an absent one from overwriting the value given before it.
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--home", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    shared.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_text: str, *, ticket: bool = True, connection: bool = True) -> argparse.ArgumentParser:
        a = sub.add_parser(name, parents=[shared], help=help_text, description=help_text)
        if ticket:
            a.add_argument("ticket", help="the ticket id")
        if connection:
            a.add_argument("--connection", help="the ticket's connection (id, prefix or label), when the id is "
                                                "used on several")
        return a

    def attachable(a: argparse.ArgumentParser) -> None:
        a.add_argument("--attach", action="append", metavar="FILE",
                       help=f"attach a file inline (all inline files together at most {MAX_INLINE_BYTES} bytes)")
        a.add_argument("--link", action="append", metavar="URL", help="attach content by https link ...")
        a.add_argument("--hash", action="append", metavar="HEX", help="... with its BLAKE2b-256 (64 hex digits)")
        a.add_argument("--size", action="append", type=int, metavar="BYTES", help="... and its size")

    a = action("list", "list tickets", ticket=False)
    a.add_argument("--state", choices=STATES, help="only tickets in this state")
    a.add_argument("--limit", type=_positive_int, default=100, help="how many (default 100)")
    action("show", "show a ticket and its whole history")
    a = action("open", "open a ticket with a connection", ticket=False, connection=False)
    a.add_argument("connection", help="id, unique id prefix or label")
    a.add_argument("subject")
    a.add_argument("--text", help="the description")
    a.add_argument("--category")
    a.add_argument("--priority", choices=("low", "normal", "high", "urgent"))
    attachable(a)
    a = action("reply", "reply on a ticket")
    a.add_argument("text")
    attachable(a)
    a = action("assign", "assign a ticket to a queue or person (business)")
    a.add_argument("assignee")
    a.add_argument("--notify", action=argparse.BooleanOptionalAction, default=None,
                   help="tell the customer (default: the daemon's [support] announce_assignments)")
    a = action("status", "say whose turn it is (business)")
    a.add_argument("status", choices=("waiting_on_customer", "waiting_on_business"))
    a.add_argument("--note")
    a = action("resolve", "resolve a ticket (business)")
    a.add_argument("--text")
    attachable(a)
    a = action("close", "close a ticket")
    a.add_argument("--reason")
    a = action("reopen", "reopen a resolved ticket")
    a.add_argument("--text")
    attachable(a)
    a = action("rate", "rate a resolved or closed ticket (customer)")
    a.add_argument("score", type=_score, help="1..5")
    a.add_argument("--comment")
