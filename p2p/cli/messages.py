"""Conversations: `p2p send`, `inbox` and `thread`."""

from __future__ import annotations

import argparse
import collections
import json
import sys
from typing import Any

from ._common import (BASIC_MESSAGE, Command, UsageError, _client_command, _duration_arg, _name, _positive_int,
                      _print_json, _summary, _when, resolve_connection)


def _message_lines(messages: list[dict], names: dict[str, str]) -> None:
    for msg in messages:
        who = "me" if msg.get("direction") == "out" else names.get(msg.get("relationship") or "", "?")
        state = f" [{msg['state']}]" if msg.get("direction") == "out" and msg.get("state") != "delivered" else ""
        print(f"{_when(msg.get('created_time'))}  {who:<12}  {_summary(msg)}{state}  ({(msg.get('thid') or '')[:8]})")


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


def add_commands(command: Command) -> None:
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
