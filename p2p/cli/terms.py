"""`p2p terms roster|proffer|list|show|accept|reject|withdraw`: terms/1.0 agreements
(spec/17 §17.11), as thin calls of the admin API."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from ._common import Command, _client_command, _name, _print_json, _when, resolve_connection

PREFIX = "p2p:terms:"


def _term_id(text: str) -> str:
    """`no-tracking` is short for `p2p:terms:no-tracking`."""
    return text if ":" in text else PREFIX + text


def _short(term: str) -> str:
    return term[len(PREFIX):] if term.startswith(PREFIX) else term


def _path(agreement_id: str, action: str = "") -> str:
    return f"/agreements/{quote(agreement_id, safe='')}" + (f"/{action}" if action else "")


def _print_agreement(a: dict, *, verbose: bool = False) -> None:
    flag = " (in force)" if a.get("in_force") else ""
    print(f"agreement {a['id']}  {a['state']}{flag}  as {a['role']}")
    print(f"  terms:   {', '.join(_short(t) for t in a['terms'])}")
    if a.get("reason"):
        print(f"  reason:  {a['reason']}")
    if a.get("hash"):
        print(f"  hash:    {a['hash']}")
    print(f"  updated: {_when(a.get('updated_time'))}")
    if verbose and a.get("record"):
        print(f"  record:  {a['record']}")


def _connection_id(client: Any, args: argparse.Namespace) -> str | None:
    return resolve_connection(client, args.connection)["id"] if getattr(args, "connection", None) else None


@_client_command
def cmd_terms(client: Any, args: argparse.Namespace) -> None:
    action = args.action
    if action == "roster":
        roster = client.request("GET", "/terms/roster")
        if args.json:
            return _print_json(roster)
        for t in roster["terms"]:
            alt = f"  (alternative: {', '.join(_short(a) for a in t['alternatives'])})" if t["alternatives"] else ""
            print(f"{_short(t['id']):<24} {t['title']}{alt}")
            print(f"{'':<24} {t['text']}")
        if "policy" in roster:
            p = roster["policy"]
            print(f"\npolicy: accept {', '.join(map(_short, p['accept'])) or '-'}; "
                  f"alternatives {', '.join(f'{_short(k)} -> {_short(v)}' for k, v in p['alternatives'].items()) or '-'}"
                  f"; reject {', '.join(map(_short, p['reject'])) or '-'}")
        elif "require" in roster:
            print(f"\nrequire an agreement on every connection: {'yes' if roster['require'] else 'no'}")
        return None
    if action == "proffer":
        rel = resolve_connection(client, args.connection)
        a = client.request("POST", f"/relationships/{quote(rel['id'], safe='')}/agreements",
                           body={"terms": [_term_id(t) for t in args.terms]})
        if args.json:
            return _print_json(a)
        print(f"proffered to {_name(rel)}; the answer comes as the agreement's state (p2p terms show {a['id']})")
        return _print_agreement(a)
    if action == "list":
        rel = resolve_connection(client, args.connection)
        out = client.request("GET", f"/relationships/{quote(rel['id'], safe='')}/agreements")
        if args.json:
            return _print_json(out)
        if not out["agreements"]:
            print(f"no agreements with {_name(rel)}")
        for a in out["agreements"]:
            flag = "*" if a["in_force"] else " "
            print(f"{flag} {a['id']}  {a['state']:<10} {', '.join(_short(t) for t in a['terms'])}")
        if out.get("required"):
            print(f"(an agreement is required: {_name(rel)} can send only connection messages outside one)")
        return None
    params = {"relationship": _connection_id(client, args)}
    if action == "show":
        a = client.request("GET", _path(args.agreement), params=params)
    elif action == "accept":
        a = client.request("POST", _path(args.agreement, "accept"), body={}, params=params)
    else:  # reject, withdraw
        body = {"reason": args.reason} if args.reason is not None else {}
        a = client.request("POST", _path(args.agreement, action), body=body, params=params)
    if args.json:
        return _print_json(a)
    _print_agreement(a, verbose=action == "show")
    return None


def add_commands(command: Command) -> None:
    p = command("terms", cmd_terms, "agreements on terms: proffer (customer), answer counters, list, withdraw")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        a = sub.add_parser(name, help=help_text, description=help_text)
        # Accepted after the action too; SUPPRESS keeps what was given before it.
        a.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
        a.add_argument("--home", default=argparse.SUPPRESS, help="the agent's home")
        return a

    action("roster", "the roster of terms, and this agent's policy or requirement")
    a = action("proffer", "customer: proffer terms to a connection")
    a.add_argument("connection")
    a.add_argument("terms", nargs="+", help="term ids (no-tracking is short for p2p:terms:no-tracking)")
    a = action("list", "a connection's agreements (* marks the one in force)")
    a.add_argument("connection")
    for name, text in (("show", "one agreement, with its signed record"),
                       ("accept", "customer: accept the business's counter"),
                       ("reject", "customer: reject the business's counter"),
                       ("withdraw", "withdraw an agreement or the proposal on the table")):
        a = action(name, text)
        a.add_argument("agreement")
        a.add_argument("--connection", help="the connection, if the agreement id is on several")
        if name in ("reject", "withdraw"):
            a.add_argument("--reason")
