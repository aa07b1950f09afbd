"""Hostile input to the four customer-business services, through real agents.

A business and a customer agent (in-process, real TCP on 127.0.0.1, real SQLite) each
send the other a few hundred messages of every notifications, terms, support and
ownership type with bodies and threads drawn from a pool of wrong shapes: missing,
mistyped, oversized and foreign fields, unknown threads, bytes where text belongs,
deep nesting. The message layer is sound (the envelope and message checks pass), so
every message reaches its service.

What it proves: each such message is either taken or refused with a problem report
that names a p2p error code of the peer's fault, never `internal-error` (a fault in
our own code) and never a crash; the services' state stays usable: after the storm a
proper catalogue, ticket, agreement and message all work.
"""

from __future__ import annotations

import random
from functools import partial

import trio

from p2p.core.message import Attachment, Message
from p2p.core.protocols import notifications, ownership, support, terms

from test_agent import BASIC, collect, wait_for
from test_service_terms import _pair

PROTOCOLS = {
    notifications.PROTOCOL: ("catalogue", "subscribe", "unsubscribe", "preferences", "notify", "action", "read"),
    terms.PROTOCOL: ("proffer", "accept", "counter", "reject", "withdraw"),
    support.PROTOCOL: support.MESSAGE_NAMES,
    ownership.PROTOCOL: ownership.MESSAGE_NAMES,
}
KEYS = ("topics", "revision", "rate_limit", "subscribed", "topic", "title", "body", "urgency", "links", "actions",
        "action", "agreement", "reason", "terms", "subject", "text", "category", "priority", "assignee", "status",
        "note", "score", "comment", "record", "new_owner", "challenge", "id", "max", "window", "url", "label", "x")


def _value(rnd: random.Random, depth: int = 0):
    pool = [
        lambda: None, lambda: True, lambda: rnd.choice([0, -1, 1, 2**63, -(2**63), 10**30, 3]),
        lambda: "", lambda: "x" * rnd.choice([1, 64, 65, 300, 5000]), lambda: "orders",
        lambda: "https://example.com/" + "a" * rnd.choice([1, 3000]), lambda: "javascript:alert(1)",
        lambda: "\u202e\u0000\ud7ff", lambda: rnd.randbytes(rnd.choice([0, 16, 32, 33])),
        lambda: "did:peer:2.Vz6Mkbad", lambda: "2025-02-29",
    ]
    if depth < 3:
        pool += [lambda: [_value(rnd, depth + 1) for _ in range(rnd.choice([0, 1, 3, 70]))],
                 lambda: {rnd.choice(KEYS): _value(rnd, depth + 1) for _ in range(rnd.choice([0, 1, 3]))}]
    return rnd.choice(pool)()


# Plausible bodies, so that many messages get past the first field check and into the
# state machines (tickets opened then replied to, a catalogue then subscriptions...).
TEMPLATES = {
    "catalogue": {"topics": [{"id": "orders", "title": "Orders", "purpose": "", "default_urgency": "normal"}]},
    "subscribe": {"topics": ["orders"], "revision": 1}, "unsubscribe": {"topics": ["orders"], "revision": 2},
    "preferences": {"revision": 3, "subscribed": ["orders"], "rate_limit": {"max": 5, "window": 3600}},
    "notify": {"topic": "orders", "title": "t", "body": "b", "urgency": "normal"}, "action": {"action": "ok"},
    "open": {"subject": "s", "text": "t"}, "reply": {"text": "t"}, "assign": {"assignee": "desk"},
    "status": {"status": "waiting_on_customer"}, "rate": {"score": 5}, "reject": {"reason": "no"},
    "transfer-request": {"record": "r1", "new_owner": "did:peer:2.Vz6Mkbad"}, "revoke": {"record": "r1"},
}


def _body(rnd: random.Random, name: str) -> dict:
    if name in TEMPLATES and rnd.random() < 0.6:
        body = dict(TEMPLATES[name])
        if body and rnd.random() < 0.5:  # one field wrong, or gone
            key = rnd.choice(list(body))
            if rnd.random() < 0.3:
                del body[key]
            else:
                body[key] = _value(rnd)
        return body
    return {rnd.choice(KEYS): _value(rnd) for _ in range(rnd.choice([0, 1, 2, 4, 8]))}


def _hostile(rnd: random.Random, frm: str, to: str, now: int, known_ids: list[str]) -> Message:
    protocol = rnd.choice(list(PROTOCOLS))
    name = rnd.choice(PROTOCOLS[protocol])
    body = _body(rnd, name)
    thid = rnd.choice([None, None, rnd.choice(known_ids) if known_ids else None, "no-such-thread"])
    attachments = ()
    if rnd.random() < 0.3:
        attachments = (Attachment(id=rnd.choice(["record", "update", "consent", "proof", "x"]),
                                  data={"bytes": rnd.randbytes(rnd.choice([0, 10, 200]))}),)
    mid = f"h{rnd.getrandbits(64):x}"
    known_ids.append(mid)
    return Message(id=mid, type=f"{protocol}/{name}", body=body, frm=frm, to=(to,), thid=thid,
                   created_time=now, attachments=attachments)


async def _storm(sender, rel_id: str, rnd: random.Random, n: int) -> None:
    """Queue raw messages, past the sender's own outbound checks (the services refuse to
    send protocol messages they did not build; a hostile peer has no such scruple)."""
    hooks = sender._hooks["outbound"]
    sender._hooks["outbound"] = []
    try:
        peer = sender.peer(rel_id)
        known: list[str] = []
        for _ in range(n // 20):
            batch = [_hostile(rnd, peer.our_did, peer.their_did, sender.now(), known) for _ in range(20)]
            sender.queue(rel_id, batch)
    finally:
        sender._hooks["outbound"] = hooks


async def test_hostile_bodies_are_refused_as_the_peers_fault_and_leave_services_usable(tmp_path, caplog):
    async with trio.open_nursery() as nursery:
        rb, rc, rel_b, rel_c = await _pair(nursery, tmp_path)
        b, c = rb.agent, rc.agent
        problems: dict[str, list] = {"b": [], "c": []}
        nursery.start_soon(partial(collect, b, problems["b"], kinds=("problem.received",)))
        nursery.start_soon(partial(collect, c, problems["c"], kinds=("problem.received",)))
        await trio.sleep(0.05)
        n = 400
        await _storm(b, rel_b, random.Random(1), n)
        await _storm(c, rel_c, random.Random(2), n)

        async def settled():
            return (not b.store.pending_count(rel_b) and not c.store.pending_count(rel_c))
        await wait_for(settled, timeout=60)
        await trio.sleep(0.2)  # the last problem reports
        codes = [p["code"] for p in problems["b"] + problems["c"]]
        assert len(codes) > n // 2  # much of the storm is refused, each with a report
        assert not [code for code in codes if "internal-error" in code], sorted(set(codes))
        assert not [r for r in caplog.records if r.getMessage() == "service.failed"]

        # The services still work: a catalogue, a ticket, an agreement, a message.
        bn, cn = b.service("notifications"), c.service("notifications")
        await bn.set_topics([{"id": "orders", "title": "Orders"}])

        async def offered():
            return (await cn.subscriptions(rel_c))["catalogue"]
        await wait_for(offered)
        # (No subscription round here: the storm sent subscription changes with revisions
        # the customer's own counter has not reached, so the business rightly ignores its
        # next few changes as stale, spec/16 §16.3.)
        ticket = await c.service("support").open(rel_c, subject="after the storm")

        async def ticket_arrived():
            return any(t["id"] == ticket["id"] for t in (await b.service("support").list())["tickets"])
        await wait_for(ticket_arrived)
        agreement = await c.service("terms").proffer(rel_c, [terms.ROSTER[0].id])
        assert agreement["state"] == "proffered"
        await c.send(rel_c, type=BASIC, body={"content": "the relationship is fine"})
        nursery.cancel_scope.cancel()
