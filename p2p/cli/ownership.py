"""Ownership records: `p2p ownership issue|list|show|update|transfer|present|revoke|cancel-transfer|me`
(spec/19 §19.10). Each is one admin API call under /v1/ownership.

Transferring a product: the NEW owner connects to the business first and runs
`p2p ownership me BUSINESS` to print its DID with that business (the `our_did` of its
connection); it gives that DID to the current owner, who runs
`p2p ownership transfer RECORD DID`.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from ._common import Command, UsageError, _client_command, _positive_int, _print_json, _when, resolve_connection

STATES = ("issued", "active", "transfer_pending", "superseded", "revoked")
KINDS = ("recall", "firmware", "warranty", "manual")
TRANSFER_HELP = ("the new owner's DID with the business: the new owner connects to the business, runs "
                 "`p2p ownership me BUSINESS` and hands you the DID it prints")


def _path(record: str, action: str = "") -> str:
    return f"/ownership/records/{quote(record, safe='')}" + (f"/{action}" if action else "")


def _line(r: dict) -> str:
    tail = f"  -> {r['pending_owner'][:32]}…" if r.get("pending_owner") else ""
    return (f"{r['id']}  {r['state']:<16}  {r['model']} #{r['serial']}  bought {r['purchased']}, "
            f"warranty to {r['warranty_end']}{tail}")


def _show(r: dict) -> None:
    print(_line(r))
    print(f"  {'issued by us' if r['side'] == 'issuer' else 'held from ' + r['issuer'][:40] + '…'}"
          f" on {_when(r.get('issued_time'))}, connection {(r.get('relationship') or '-')[:12]}")
    print(f"  owner {r['owner']}")
    if r.get("previous"):
        print(f"  supersedes {r['previous']}")
    if r.get("reason"):
        print(f"  reason: {r['reason']}")
    print(f"  signed record (COSE_Sign1, {len(r['signed']) // 2} bytes): {r['signed'][:64]}…")


def _serials(args: argparse.Namespace) -> dict | None:
    if args.range and args.serial:
        raise UsageError("give --range FIRST LAST or --serial S (repeatable), not both")
    if args.range:
        return {"range": list(args.range)}
    if args.serial:
        return {"list": list(args.serial)}
    return None


@_client_command
def cmd_ownership(client: Any, args: argparse.Namespace) -> None:
    action = args.action
    if action == "me":
        rel = resolve_connection(client, args.connection)
        return _print_json({"did": rel["our_did"]}) if args.json else print(rel["our_did"])
    if action == "list":
        rel = resolve_connection(client, args.connection)["id"] if args.connection else None
        result = client.request("GET", "/ownership/records", params={
            "relationship": rel, "model": args.model, "serial": args.serial, "state": args.state, "limit": args.limit})
        if args.json:
            return _print_json(result)
        if not result["records"]:
            print("no records")
        for r in result["records"]:
            print(_line(r))
        return
    if action == "show":
        result = client.request("GET", _path(args.record))
        return _print_json(result) if args.json else _show(result)
    if action == "update":
        body = {"kind": args.kind, "model": args.model, "title": args.title, "text": args.text,
                "links": args.link, "serials": _serials(args)}
        result = client.request("POST", "/ownership/updates", body={k: v for k, v in body.items() if v is not None})
        if args.json:
            return _print_json(result)
        print(f"update {result['id']} sent to {result['recipients']} owner(s)"
              + (f"; {result['skipped']} without an active connection" if result.get("skipped") else ""))
        return
    if action == "present":
        rel = resolve_connection(client, args.connection)
        body = {"relationship": rel["id"], "challenge": args.challenge}
        result = client.request("POST", _path(args.record, "present"),
                                body={k: v for k, v in body.items() if v is not None})
        if args.json:
            return _print_json(result)
        print(f"presented {args.record} to {rel.get('label') or rel['id']} (message {result['id']})")
        return
    if action == "issue":
        rel = resolve_connection(client, args.connection)
        result = client.request("POST", "/ownership/records", body={
            "relationship": rel["id"], "model": args.model, "serial": args.serial, "purchased": args.purchased,
            "warranty_end": args.warranty_end})
    elif action == "transfer":
        result = client.request("POST", _path(args.record, "transfer"), body={"new_owner": args.new_owner})
    elif action == "revoke":
        result = client.request("POST", _path(args.record, "revoke"),
                                body={"reason": args.reason} if args.reason else {})
    else:  # cancel-transfer
        result = client.request("POST", _path(args.record, "cancel-transfer"), body={})
    if args.json:
        return _print_json(result)
    print(_line(result))


def add_commands(command: Command) -> None:
    p = command("ownership", cmd_ownership, "product ownership records: issue, list, show, update, transfer, "
                                            "present, revoke, cancel-transfer, me")
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--home", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    shared.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_text: str, *, record: bool = True) -> argparse.ArgumentParser:
        a = sub.add_parser(name, parents=[shared], help=help_text, description=help_text)
        if record:
            a.add_argument("record", help="the record id")
        return a

    a = action("issue", "business: sign a record for a customer's product and send it", record=False)
    a.add_argument("connection", help="the customer's connection: id, unique id prefix or label")
    a.add_argument("model")
    a.add_argument("serial")
    a.add_argument("--purchased", required=True, metavar="YYYY-MM-DD")
    a.add_argument("--warranty-end", required=True, metavar="YYYY-MM-DD")
    a = action("list", "records issued here (business) or held here (customer)", record=False)
    a.add_argument("--connection", help="only records on this connection")
    a.add_argument("--model")
    a.add_argument("--serial")
    a.add_argument("--state", choices=STATES)
    a.add_argument("--limit", type=_positive_int, default=1000)
    action("show", "one record, with its signed form")
    a = action("update", "business: send a maker update to the owners of a model (or some serials)", record=False)
    a.add_argument("kind", choices=KINDS)
    a.add_argument("model")
    a.add_argument("title")
    a.add_argument("--text")
    a.add_argument("--link", action="append", metavar="URL", help="https link (up to 8)")
    a.add_argument("--range", nargs=2, metavar=("FIRST", "LAST"), help="serials FIRST..LAST (inclusive)")
    a.add_argument("--serial", action="append", metavar="S", help="one serial (repeatable)")
    a = action("transfer", "owner: ask the business to transfer a record to another person")
    a.add_argument("new_owner", help=TRANSFER_HELP)
    a = action("present", "owner: show a record, with a proof of ownership, to a connection")
    a.add_argument("connection", help="who to show it to: id, unique id prefix or label")
    a.add_argument("--challenge", help="a nonce the verifier gave you")
    a = action("revoke", "business: end a record (e.g. the product was returned)")
    a.add_argument("--reason")
    action("cancel-transfer", "business: cancel a transfer waiting for its new owner")
    a = action("me", "print your DID with a business: what a current owner needs to transfer a product to you",
               record=False)
    a.add_argument("connection", help="your connection with the business")
