"""`p2p notifications ACTION ...`: notifications/1.0 (spec/16 §16.10) from the shell.

A business: `topics` (show or --set), `send`, `broadcast`, `progress`, `list`, `show`.
A customer: `subscriptions`, `subscribe`, `unsubscribe`, `mute`, `unmute`, `rate`,
`receipts`, `read`, `act`, `list`, `show`. Each is one or two admin API calls.
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

from ._common import (Command, UsageError, _client_command, _duration_arg, _print_json, _table, _when,
                      resolve_connection)


def _q(text: str) -> str:
    return quote(text, safe="")


def _pair(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {what}")
    return key, value


def _link(text: str) -> dict:
    title, url = _pair(text, "TITLE=https://...")
    return {"title": title, "url": url}


def _action(text: str) -> dict:
    aid, label = _pair(text, "ID=LABEL")
    return {"id": aid, "label": label}


def _content(args: argparse.Namespace) -> dict:
    return {"topic": args.topic, "title": args.title, "body": args.body, "urgency": args.urgency,
            "links": args.link or None, "actions": args.action or None, "expires_in": args.expires}


def _print_notification(n: dict) -> None:
    extra = f"  read {_when(n['read_time'])}" if n.get("read_time") else ""
    if n.get("action"):
        extra += f"  answered {n['action']!r}"
    if n.get("refused"):
        extra += f"  refused: {n['refused']}"
    print(f"{n['id']}  {n['topic']}  {n['status']}  {_when(n['created_time'])}{extra}")
    if n.get("title"):
        print(f"  {n['title']}" + (f": {n['body']}" if n.get("body") else ""))
        for link in n.get("links") or ():
            print(f"  link: {link['title']} <{link['url']}>")
        if n.get("actions"):
            print("  answers: " + ", ".join(f"{a['id']} ({a['label']})" for a in n["actions"]))


def _print_subscriptions(s: dict) -> None:
    if not s["catalogue"]:
        print("no topics offered yet")
    rows = [[t["id"], "yes" if t["subscribed"] else "no", "muted" if t["muted"] else "", t["title"], t["purpose"]]
            for t in s["catalogue"]]
    if rows:
        _table(rows, ["TOPIC", "SUBSCRIBED", "", "TITLE", "PURPOSE"])
    rate = s["rate_limit"]
    print(f"rate limit: {rate['max']} per {rate['window']} s; read receipts: "
          f"{'on' if s['read_receipts'] else 'off'}")


# --- the business -------------------------------------------------------------------------


def _topics(client: Any, args: argparse.Namespace) -> Any:
    if args.set is None:
        return client.request("GET", "/notifications/topics")
    try:
        topics = json.loads(args.set)
    except ValueError as exc:
        raise UsageError(f"--set takes a JSON list of topics: {exc}") from None
    return client.request("PUT", "/notifications/topics", body={"topics": topics})


def _send(client: Any, args: argparse.Namespace) -> Any:
    rel = resolve_connection(client, args.connection)
    return client.request("POST", "/notifications", body={"relationship": rel["id"], **_content(args)})


def _broadcast(client: Any, args: argparse.Namespace) -> Any:
    return client.request("POST", "/notifications/broadcast", body=_content(args))


def _progress(client: Any, args: argparse.Namespace) -> Any:
    out = client.request("GET", f"/notifications/broadcasts/{_q(args.broadcast)}")
    if args.recipients:
        out["recipient_list"], after = [], None
        while True:
            page = client.request("GET", f"/notifications/broadcasts/{_q(args.broadcast)}/recipients",
                                  params={"after": after, "limit": 1000})
            out["recipient_list"].extend(page["recipients"])
            after = page["next_after"]
            if after is None:
                break
    return out


# --- the customer ---------------------------------------------------------------------------


def _change(client: Any, args: argparse.Namespace, body: dict) -> Any:
    rel = resolve_connection(client, args.connection)
    return client.request("POST", f"/relationships/{_q(rel['id'])}/subscriptions", body=body)


def _subscriptions(client: Any, args: argparse.Namespace) -> Any:
    rel = resolve_connection(client, args.connection)
    return client.request("GET", f"/relationships/{_q(rel['id'])}/subscriptions")


# --- both -----------------------------------------------------------------------------------


def _list(client: Any, args: argparse.Namespace) -> Any:
    rel = resolve_connection(client, args.connection)["id"] if args.connection else None
    return client.request("GET", "/notifications", params={"relationship": rel, "topic": args.topic,
                                                          "status": args.status, "limit": args.limit})


ACTIONS = {
    "topics": _topics, "send": _send, "broadcast": _broadcast, "progress": _progress,
    "subscriptions": _subscriptions,
    "subscribe": lambda c, a: _change(c, a, {"subscribe": a.topics}),
    "unsubscribe": lambda c, a: _change(c, a, {"unsubscribe": a.topics}),
    "mute": lambda c, a: _change(c, a, {"mute": a.topics}),
    "unmute": lambda c, a: _change(c, a, {"unmute": a.topics}),
    "rate": lambda c, a: _change(c, a, {"rate_limit": {"max": a.max, "window": a.window}}),
    "receipts": lambda c, a: _change(c, a, {"read_receipts": a.state == "on"}),
    "read": lambda c, a: c.request("POST", f"/notifications/{_q(a.id)}/read", body={}),
    "act": lambda c, a: c.request("POST", f"/notifications/{_q(a.id)}/action", body={"action": a.choice}),
    "list": _list,
    "show": lambda c, a: c.request("GET", f"/notifications/{_q(a.id)}"),
}


@_client_command
def cmd_notifications(client: Any, args: argparse.Namespace) -> None:
    result = ACTIONS[args.verb](client, args)
    if args.json:
        return _print_json(result)
    action = args.verb
    if action == "topics":
        for t in result["topics"]:
            print(f"{t['id']:<20} {t['default_urgency']:<8} {t['title']}: {t['purpose']}")
        if "offered_to" in result:
            print(f"offered to {result['offered_to']} customer(s)")
    elif action == "broadcast":
        skipped = ", ".join(f"{n} {reason}" for reason, n in result["skipped"].items()) or "none"
        print(f"broadcast {result['id']}: {result['recipients']} recipient(s), skipped: {skipped}")
    elif action == "progress":
        counts = "  ".join(f"{k} {v}" for k, v in result["counts"].items())
        print(f"broadcast {result['id']} ({result['topic']}): {result['recipients']} recipient(s)  {counts}  "
              f"{'done' if result['done'] else 'in progress'}")
        for r in result.get("recipient_list", []):
            print(f"  {r['relationship']}  {r['status']}  {r.get('notification') or r.get('reason', '')}")
    elif action == "list":
        for n in result["notifications"]:
            _print_notification(n)
    elif action in ("send", "show", "read", "act"):
        _print_notification(result)
    else:
        _print_subscriptions(result)


def add_commands(command: Command) -> None:
    p = command("notifications", cmd_notifications,
                "notifications: a business's topics, notifies and broadcasts; a customer's subscriptions")
    # --home and --json also after the action; SUPPRESS keeps the values given before it.
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--home", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    shared.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    sub = p.add_subparsers(dest="verb", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[shared], help=help_text, description=help_text)

    def content(a: argparse.ArgumentParser) -> None:
        a.add_argument("topic")
        a.add_argument("title")
        a.add_argument("body", nargs="?", default="")
        a.add_argument("--urgency", choices=("low", "normal", "high", "critical"))
        a.add_argument("--link", type=_link, action="append", metavar="TITLE=URL")
        a.add_argument("--action", type=_action, action="append", metavar="ID=LABEL", help="a quick reply")
        a.add_argument("--expires", type=_duration_arg, metavar="DURATION", help="e.g. 2h, 1d")

    a = action("topics", "business: show the topic catalogue, or replace it with --set")
    a.add_argument("--set", metavar="JSON", help='e.g. \'[{"id": "orders", "title": "Orders", "purpose": "..."}]\'')
    a = action("send", "business: notify one customer")
    a.add_argument("connection")
    content(a)
    a = action("broadcast", "business: notify every subscriber of a topic")
    content(a)
    a = action("progress", "business: a broadcast's progress")
    a.add_argument("broadcast")
    a.add_argument("--recipients", action="store_true", help="also every recipient's outcome")
    a = action("subscriptions", "customer: the topics a business offers and your choices")
    a.add_argument("connection")
    for name, text in (("subscribe", "customer: opt into topics"), ("unsubscribe", "customer: opt out of topics"),
                       ("mute", "customer: keep receiving, without alerts"), ("unmute", "customer: alerts again")):
        a = action(name, text)
        a.add_argument("connection")
        a.add_argument("topics", nargs="+", metavar="TOPIC")
    a = action("rate", "customer: at most MAX notifications in WINDOW (e.g. 3 1d)")
    a.add_argument("connection")
    a.add_argument("max", type=int)
    a.add_argument("window", type=_duration_arg)
    a = action("receipts", "customer: send read receipts to this business, or not (default off)")
    a.add_argument("connection")
    a.add_argument("state", choices=("on", "off"))
    a = action("read", "customer: mark a notification read (a receipt goes back if enabled)")
    a.add_argument("id")
    a = action("act", "customer: answer with one of the notification's quick replies")
    a.add_argument("id")
    a.add_argument("choice", metavar="ACTION")
    a = action("list", "notifications sent (business) or received (customer)")
    a.add_argument("--connection")
    a.add_argument("--topic")
    a.add_argument("--status")
    a.add_argument("--limit", type=int, default=100)
    a = action("show", "one notification")
    a.add_argument("id")
