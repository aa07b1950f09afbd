"""support/1.0 in the daemon (p2p/services/support.py), with in-process agents over
real TCP on 127.0.0.1 (as tests/test_agent.py makes them): a business and customers.

What these tests prove: a ticket opened by either side goes through every action of
both sides and both sides end with the same history (same message ids, same order)
and the same state; every out-of-turn local action is a StateError and changes
nothing; a peer's illegal message is refused (problem report) and changes nothing on
either side; crossing messages end equal (the refused one is withdrawn); attachments
inline, linked, too large (locally and from the peer); tickets survive a restart
(including withdrawals); an id used on two relationships must be disambiguated;
raw support messages through the generic send are refused.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from p2p.core.errors import BadArgument, StateError
from p2p.core.message import Message
from p2p.core.protocols import support as core
from p2p.home import Config, ConfigError
from p2p.services import support as svc
from p2p.services.support import AmbiguousTicket, InlineTooLarge, UnknownTicket, attachments_from_json

from test_agent import Running, free_port

PNG = bytes(range(256)) * 4


def cfg(tmp_path: Path, name: str, role: str, **services) -> Config:
    # A fixed port: the peer's record of our endpoint must still hold after a restart.
    return Config(home=tmp_path / name, listen_host="127.0.0.1", listen_port=free_port(), advertise_host="127.0.0.1",
                  label=name, role=role, services=services)


class World:
    """A business and its customers, each pair connected."""

    def __init__(self, nursery, tmp_path):
        self.nursery, self.tmp_path = nursery, tmp_path
        self.runs: dict[str, Running] = {}
        self.rels: dict[str, tuple[str, str]] = {}  # customer -> (business's rel id, customer's rel id)

    async def start(self, name: str, role: str) -> None:
        self.runs[name] = Running(self.nursery, cfg(self.tmp_path, name, role))
        await self.runs[name].start()

    def agent(self, name: str):
        return self.runs[name].agent

    def s(self, name: str):
        return self.agent(name).service("support")

    async def connect(self, customer: str) -> None:
        b, c = self.agent("shop"), self.agent(customer)
        invitation = await b.create_invitation(label="Shop")
        rel_c = await c.accept_invitation(invitation["url"])
        with trio.fail_after(10):
            while True:
                mine = [r for r in await b.list_relationships(state="active") if r["their_did"] == rel_c["our_did"]]
                if mine:
                    break
                await trio.sleep(0.01)
        self.rels[customer] = (mine[0]["id"], rel_c["id"])

    async def both(self, customer: str, tid: str) -> tuple[dict, dict]:
        rb, rc = self.rels[customer]
        return (await self.s("shop").get(tid, relationship=rb), await self.s(customer).get(tid, relationship=rc))

    async def settle(self, customer: str, tid: str, state: str, *, timeout: float = 10) -> tuple[dict, dict]:
        """Wait until both sides hold the same history and are in `state`; return both views."""
        with trio.fail_after(timeout):
            while True:
                try:
                    tb, tc = await self.both(customer, tid)
                except UnknownTicket:  # not delivered yet
                    tb = tc = None
                if tb is not None and ids(tb) == ids(tc) and tb["state"] == tc["state"] == state:
                    return tb, tc
                await trio.sleep(0.02)

    async def restart(self) -> None:
        for run in self.runs.values():
            await run.stop()
        for run in self.runs.values():
            await run.start()


def ids(t: dict) -> list[str]:
    return [m["id"] for m in t["history"]]


def names(t: dict) -> list[str]:
    return [m["type"].rsplit("/", 1)[-1] for m in t["history"]]


async def world(nursery, tmp_path, *customers: str) -> World:
    w = World(nursery, tmp_path)
    await w.start("shop", "business")
    for c in customers:
        await w.start(c, "customer")
        await w.connect(c)
    return w


async def stop(w: World, nursery) -> None:
    for run in w.runs.values():
        await run.stop()
    nursery.cancel_scope.cancel()


def forge(w: World, customer: str, *, name: str, body: dict, thid: str | None, id: str | None = None,
          attachments=(), side: str = "customer") -> Message:
    """Queue a support message the sender's own service would never send (bypassing
    its checks, as a buggy or hostile peer would)."""
    agent = w.agent(customer if side == "customer" else "shop")
    rel = w.rels[customer][1 if side == "customer" else 0]
    peer = agent.peer(rel)
    msg = Message(id=id or agent.new_id(), type=core.message_type(name), body=body, frm=peer.our_did,
                  to=(peer.their_did,), thid=thid, created_time=agent.now(), attachments=tuple(attachments))
    agent.queue(rel, [msg])  # the services' path: no application-side guard
    return msg


async def problems(agent, into: list) -> None:
    async with agent.subscribe(buffer=1000) as channel:
        async for e in channel:
            if e["event"] in ("problem.received", "ticket.updated"):
                into.append(e)


async def wait_until(predicate, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


async def wait_until_async(fetch, predicate, timeout: float = 10):
    with trio.fail_after(timeout):
        while not predicate(value := await fetch()):
            await trio.sleep(0.02)
        return value


# --- whole lives ---------------------------------------------------------------------------


async def test_a_ticket_the_customer_opens_goes_through_its_whole_life(tmp_path):
    async with trio.open_nursery() as nursery:
        w = await world(nursery, tmp_path, "alice")
        events: list = []
        nursery.start_soon(problems, w.agent("shop"), events)
        rb, rc = w.rels["alice"]
        shop, alice = w.s("shop"), w.s("alice")
        t = await alice.open(rc, subject="Kettle does not heat", text="It clicks off.", category="repairs",
                             priority="high", attachments=[{"filename": "kettle.png", "media_type": "image/png",
                                                            "base64": base64.b64encode(PNG).decode()}])
        tid = t["id"]
        assert (t["state"], t["opened_by"], t["relationship"], t["message_id"]) == ("open", "customer", rc, tid)
        tb, tc = await w.settle("alice", tid, "open")
        assert (tb["subject"], tb["category"], tb["priority"], tb["opened_by"]) == (
            "Kettle does not heat", "repairs", "high", "customer")
        assert bytes.fromhex(tb["history"][0]["attachments"][0]["data"]["bytes"]) == PNG
        assert tb["history"][0]["direction"] == "in" and tc["history"][0]["direction"] == "out"

        await shop.assign(tid, assignee="Sam (repairs)")  # told to the customer (the default)
        tb, tc = await w.settle("alice", tid, "open")
        assert tb["assignee"] == tc["assignee"] == "Sam (repairs)" and names(tc)[-1] == "assign"
        # Routing inside the business, kept to itself: no message, the customer still sees Sam.
        before = ids(tb)
        r = await shop.assign(tid, assignee="queue:tier-2", notify=False)
        assert r["assignee"] == "queue:tier-2" and "message_id" not in r
        tb, tc = await w.settle("alice", tid, "open")
        assert ids(tb) == before and tb["assignee"] == "queue:tier-2" and tc["assignee"] == "Sam (repairs)"

        digest = hashlib.blake2b(b"the manual", digest_size=32).hexdigest()
        await shop.reply(tid, text="Please try the reset in the manual.", attachments=[
            {"url": "https://shop.example/manual.pdf", "hash": digest, "byte_count": 10, "filename": "manual.pdf",
             "media_type": "application/pdf"}])
        tb, tc = await w.settle("alice", tid, "waiting_on_customer")
        link = tc["history"][-1]["attachments"][0]
        assert link["data"] == {"links": ["https://shop.example/manual.pdf"], "hash": digest}
        assert link["byte_count"] == 10 and link["filename"] == "manual.pdf"

        await alice.reply(tid, text="Did not help.")
        await w.settle("alice", tid, "waiting_on_business")
        await shop.set_status(tid, status="waiting_on_customer", note="parts ordered")
        await w.settle("alice", tid, "waiting_on_customer")
        await shop.set_status(tid, status="waiting_on_business")
        await w.settle("alice", tid, "waiting_on_business")
        await shop.resolve(tid, text="Replaced under warranty.")
        await w.settle("alice", tid, "resolved")
        await alice.rate(tid, score=5, comment="quick")
        tb, tc = await w.settle("alice", tid, "resolved")
        assert tb["rating"] == tc["rating"] == {"score": 5, "comment": "quick"}
        await alice.close(tid, reason="done")
        await w.settle("alice", tid, "closed")
        await alice.rate(tid, score=4)  # the latest rating counts, also once closed
        tb, tc = await w.settle("alice", tid, "closed")
        assert tb["rating"] == {"score": 4, "comment": None}
        assert names(tb) == ["open", "assign", "reply", "reply", "status", "status", "resolve", "rate", "close",
                             "rate"]
        listed = await shop.list(relationship=rb, state="closed")
        assert [x["id"] for x in listed["tickets"]] == [tid] and listed["next_after"] is None
        assert (await shop.list(state="open"))["tickets"] == []
        updated = [e for e in events if e["event"] == "ticket.updated" and e.get("by") == "customer"]
        assert [e["action"] for e in updated] == ["open", "reply", "rate", "close", "rate"]  # what the shop received
        assert updated[-1]["ticket"]["state"] == "closed" and updated[-1]["ticket"]["rating"]["score"] == 4
        record = await w.agent("shop").relationship_record(rb)
        assert record["tickets"][0]["history"] == ids(tb) and record["tickets"][0]["state"] == "closed"
        await stop(w, nursery)


async def test_a_ticket_the_business_opens_goes_through_its_whole_life(tmp_path):
    async with trio.open_nursery() as nursery:
        w = await world(nursery, tmp_path, "alice")
        shop, alice = w.s("shop"), w.s("alice")
        t = await shop.open(w.rels["alice"][0], subject="Your parcel came back", text="Is the address right?")
        tid = t["id"]
        tb, tc = await w.settle("alice", tid, "open")
        assert tc["opened_by"] == "business" and tc["subject"] == "Your parcel came back"
        await alice.reply(tid, text="New address: 1 Main St")
        await w.settle("alice", tid, "waiting_on_business")
        await shop.resolve(tid, text="Sent again.")
        await w.settle("alice", tid, "resolved")
        await alice.reopen(tid, text="Still nothing.")
        await w.settle("alice", tid, "reopened")
        await shop.reply(tid, text="Tracking: 123")
        await w.settle("alice", tid, "waiting_on_customer")
        await shop.resolve(tid)
        await w.settle("alice", tid, "resolved")
        await shop.reopen(tid, text="Wrong parcel, sorry")  # either side reopens
        await w.settle("alice", tid, "reopened")
        await shop.resolve(tid)
        await w.settle("alice", tid, "resolved")
        await shop.close(tid)  # the business closes what it resolved
        tb, tc = await w.settle("alice", tid, "closed")
        assert names(tc) == ["open", "reply", "resolve", "reopen", "reply", "resolve", "reopen", "resolve", "close"]

        # The customer may withdraw a ticket at any time.
        t2 = await shop.open(w.rels["alice"][0], subject="Survey")
        await w.settle("alice", t2["id"], "open")
        await alice.close(t2["id"], reason="not interested")
        await w.settle("alice", t2["id"], "closed")
        await stop(w, nursery)


# --- out of turn -----------------------------------------------------------------------------


async def test_local_actions_out_of_turn_raise_state_error_and_change_nothing(tmp_path):
    async with trio.open_nursery() as nursery:
        w = await world(nursery, tmp_path, "alice")
        shop, alice = w.s("shop"), w.s("alice")
        tid = (await alice.open(w.rels["alice"][1], subject="Broken"))["id"]
        await w.settle("alice", tid, "open")
        attempts = [
            lambda: alice.resolve(tid),  # only the business resolves
            lambda: alice.assign(tid, assignee="me"),  # only the business assigns
            lambda: alice.assign(tid, assignee="me", notify=False),
            lambda: alice.set_status(tid, status="waiting_on_customer"),
            lambda: alice.rate(tid, score=3),  # not before resolution
            lambda: shop.rate(tid, score=3),  # never the business
            lambda: shop.close(tid),  # the business closes only what it resolved
            lambda: shop.reopen(tid),  # nothing to reopen
        ]
        for attempt in attempts:
            with pytest.raises(StateError):
                await attempt()
        await shop.resolve(tid)
        await w.settle("alice", tid, "resolved")
        for attempt in (lambda: alice.reply(tid, text="one more thing"),  # reopen first
                        lambda: shop.reply(tid, text="also"), lambda: shop.set_status(tid, status="waiting_on_business"),
                        lambda: shop.assign(tid, assignee="Sam")):
            with pytest.raises(StateError):
                await attempt()
        tb, tc = await w.settle("alice", tid, "resolved")
        assert names(tb) == names(tc) == ["open", "resolve"]
        with pytest.raises(BadArgument):
            await alice.rate(tid, score=6)
        with pytest.raises(UnknownTicket):
            await alice.get("no-such-ticket")
        await alice.close(tid)
        await w.settle("alice", tid, "closed")
        for attempt in (lambda: alice.reopen(tid), lambda: shop.resolve(tid), lambda: alice.close(tid)):
            with pytest.raises(StateError):
                await attempt()
        await stop(w, nursery)


@pytest.mark.parametrize("name,body", [
    ("resolve", {}),  # the customer never resolves
    ("assign", {"assignee": "me"}),  # nor assigns
    ("rate", {"score": 5}),  # not before resolution
    ("reopen", {}),  # nothing resolved to reopen
    ("open", {"subject": "again", "text": ""}),  # the ticket exists (the id of the shop's open)
])
async def test_a_peers_illegal_message_is_refused_and_changes_nothing(tmp_path, name, body):
    async with trio.open_nursery() as nursery:
        w = await world(nursery, tmp_path, "alice")
        seen: list = []
        nursery.start_soon(problems, w.agent("alice"), seen)
        if name == "open":  # an open with the id of the shop's ticket: that ticket exists
            tid = (await w.s("shop").open(w.rels["alice"][0], subject="Broken"))["id"]
        else:
            tid = (await w.s("alice").open(w.rels["alice"][1], subject="Broken"))["id"]
        before_b, before_c = await w.settle("alice", tid, "open")
        bad = forge(w, "alice", name=name, body=body, thid=None if name == "open" else tid,
                    id=tid if name == "open" else None)
        await wait_until(lambda: any(e["event"] == "problem.received" for e in seen))
        report = next(e for e in seen if e["event"] == "problem.received")
        assert report["code"] == "e.p.msg.illegal-transition" and report["pthid"] == tid
        tb, tc = await w.both("alice", tid)
        assert tb == before_b and (ids(tc), tc["state"]) == (ids(before_c), "open")
        assert ids(tb) == ids(tc) == [tid] and tc["withdrawn"] == [bad.id]
        await stop(w, nursery)


async def test_the_business_refuses_a_customer_message_for_an_unknown_ticket(tmp_path):
    async with trio.open_nursery() as nursery:
        w = await world(nursery, tmp_path, "alice")
        seen: list = []
        nursery.start_soon(problems, w.agent("alice"), seen)
        forge(w, "alice", name="reply", body={"text": "hello?"}, thid="no-such-ticket")
        await wait_until(lambda: any(e["event"] == "problem.received" for e in seen))
        assert [e["code"] for e in seen if e["event"] == "problem.received"] == ["e.p.req.unexpected-message"]
        assert (await w.s("shop").list())["tickets"] == []
        await stop(w, nursery)


async def test_crossing_messages_end_with_equal_histories_and_the_refused_one_withdrawn(tmp_path):
    async with trio.open_nursery() as nursery:
        w = await world(nursery, tmp_path, "alice")
        shop, alice = w.s("shop"), w.s("alice")
        tid = (await alice.open(w.rels["alice"][1], subject="Broken"))["id"]
        await w.settle("alice", tid, "open")
        # No checkpoint between the two calls: both are queued before either is delivered.
        await shop.resolve(tid, text="fixed")
        crossing = await alice.reply(tid, text="any news?")
        assert crossing["state"] == "waiting_on_business"
        tb, tc = await w.settle("alice", tid, "resolved")
        assert names(tb) == names(tc) == ["open", "resolve"]
        assert tc["withdrawn"] == [crossing["message_id"]] and tb["withdrawn"] == []
        # Withdrawals are kept: after a restart the rebuilt ticket leaves it out too.
        await w.restart()
        tb2, tc2 = await w.both("alice", tid)
        assert (ids(tb2), ids(tc2), tc2["state"]) == (ids(tb), ids(tb), "resolved")
        await w.s("alice").reopen(tid, text="the reply again")  # the restarted agent's service
        await w.settle("alice", tid, "reopened")
        await stop(w, nursery)


# --- attachments ------------------------------------------------------------------------------


def test_attachments_from_json():
    ids_ = iter(f"a{i}" for i in range(100))
    new_id = lambda: next(ids_)  # noqa: E731
    digest = "ab" * 32
    inline, linked = attachments_from_json([
        {"filename": "a.txt", "media_type": "text/plain", "base64": base64.b64encode(b"hi").decode()},
        {"urls": ["https://x.example/a"], "hash": digest, "byte_count": 5, "description": "log"}], new_id)
    assert inline.data == {"bytes": b"hi"} and (inline.id, inline.filename, inline.media_type) == ("a0", "a.txt",
                                                                                                  "text/plain")
    assert linked.data == {"links": ["https://x.example/a"], "hash": bytes.fromhex(digest)}
    assert (linked.byte_count, linked.description) == (5, "log")
    full = base64.b64encode(bytes(core.MAX_INLINE_BYTES)).decode()
    assert len(attachments_from_json([{"base64": full}], new_id)) == 1  # the limit itself is fine
    with pytest.raises(InlineTooLarge):
        attachments_from_json([{"base64": full}, {"base64": "AA=="}], new_id)
    for bad in ([{"base64": "not base64!"}], [{"url": "https://x", "hash": "00", "byte_count": 1}],
                [{"url": "https://x", "hash": digest}], [{"url": "https://x", "urls": ["https://y"], "hash": digest,
                                                          "byte_count": 1}],
                [{"base64": "", "url": "https://x"}], [{"filename": "x"}], ["x"], {"base64": ""},
                [{"base64": ""}] * (core.MAX_ATTACHMENTS + 1), [{"base64": "", "filename": 3}]):
        with pytest.raises(BadArgument):
            attachments_from_json(bad, new_id)


async def test_attachments_inline_linked_and_too_large(tmp_path):
    async with trio.open_nursery() as nursery:
        w = await world(nursery, tmp_path, "alice")
        seen: list = []
        nursery.start_soon(problems, w.agent("alice"), seen)
        alice, rc = w.s("alice"), w.rels["alice"][1]
        big = base64.b64encode(bytes(core.MAX_INLINE_BYTES + 1)).decode()
        with pytest.raises(InlineTooLarge):
            await alice.open(rc, subject="photo", attachments=[{"base64": big}])
        with pytest.raises(BadArgument):  # links are https only (spec/18 §18.3)
            await alice.open(rc, subject="photo", attachments=[{"url": "http://x.example/p", "hash": "00" * 32,
                                                               "byte_count": 3}])
        assert (await alice.list())["tickets"] == []  # nothing was opened
        exact = base64.b64encode(b"\x01" * core.MAX_INLINE_BYTES).decode()
        tid = (await alice.open(rc, subject="photo", attachments=[{"base64": exact, "filename": "p.bin"}]))["id"]
        tb, _ = await w.settle("alice", tid, "open")
        assert len(bytes.fromhex(tb["history"][0]["attachments"][0]["data"]["bytes"])) == core.MAX_INLINE_BYTES
        with pytest.raises(StateError):  # a rate carries none... and is out of turn anyway
            await alice.rate(tid, score=1)
        # From a peer that ignores the limit: refused, nothing changes.
        forge(w, "alice", name="reply", body={"text": "more"}, thid=tid,
              attachments=[core.inline_attachment("x", bytes(core.MAX_INLINE_BYTES + 1))])
        await wait_until(lambda: any(e["event"] == "problem.received" for e in seen))
        assert [e["code"] for e in seen if e["event"] == "problem.received"] == ["e.p.msg.attachment-too-large"]
        tb, tc = await w.settle("alice", tid, "open")
        assert names(tb) == ["open"]
        await stop(w, nursery)


# --- restart, ids, the generic send -----------------------------------------------------------------


async def test_tickets_survive_a_restart(tmp_path):
    async with trio.open_nursery() as nursery:
        w = await world(nursery, tmp_path, "alice")
        tid = (await w.s("alice").open(w.rels["alice"][1], subject="Broken", text="x"))["id"]
        await w.settle("alice", tid, "open")
        await w.s("shop").assign(tid, assignee="Sam")
        await w.s("shop").assign(tid, assignee="queue:tier-2", notify=False)
        await w.s("shop").reply(tid, text="try again")
        before = await w.settle("alice", tid, "waiting_on_customer")
        forge(w, "alice", name="resolve", body={}, thid=tid)  # refused: in alice's archive, never in the ticket
        await trio.sleep(0.3)
        await w.restart()
        after = await w.both("alice", tid)
        assert [ids(t) for t in after] == [ids(t) for t in before]
        assert after[0]["assignee"] == "queue:tier-2" and after[1]["assignee"] == "Sam"
        # The rebuilt tickets take the next steps.
        await w.s("alice").reply(tid, text="still broken")
        await w.settle("alice", tid, "waiting_on_business")
        await w.s("shop").resolve(tid)
        await w.settle("alice", tid, "resolved")
        await w.s("alice").rate(tid, score=2)
        await wait_until_async(lambda: w.both("alice", tid), lambda both: both[0]["rating"] is not None)
        tb, tc = await w.settle("alice", tid, "resolved")
        assert tb["rating"]["score"] == tc["rating"]["score"] == 2
        await stop(w, nursery)


async def test_a_ticket_id_used_on_two_relationships_must_be_disambiguated(tmp_path):
    async with trio.open_nursery() as nursery:
        w = await world(nursery, tmp_path, "alice", "bob")
        tid = (await w.s("alice").open(w.rels["alice"][1], subject="from alice"))["id"]
        await w.settle("alice", tid, "open")
        bob = w.agent("bob")
        bob.new_id = lambda: tid  # bob's agent picks the same id (ids are the opener's choice)
        await w.s("bob").open(w.rels["bob"][1], subject="from bob")
        del bob.new_id
        await w.settle("bob", tid, "open")
        shop = w.s("shop")
        with pytest.raises(AmbiguousTicket):
            await shop.get(tid)
        with pytest.raises(AmbiguousTicket):
            await shop.reply(tid, text="which one?")
        tb = await shop.get(tid, relationship=w.rels["bob"][0])
        assert tb["subject"] == "from bob"
        await shop.reply(tid, text="for bob", relationship=w.rels["bob"][0])
        await w.settle("bob", tid, "waiting_on_customer")
        await w.settle("alice", tid, "open")
        assert len((await shop.list())["tickets"]) == 2
        await stop(w, nursery)


async def test_support_messages_through_the_generic_send_are_refused(tmp_path):
    async with trio.open_nursery() as nursery:
        w = await world(nursery, tmp_path, "alice")
        tid = (await w.s("alice").open(w.rels["alice"][1], subject="Broken"))["id"]
        with pytest.raises(BadArgument):
            await w.agent("alice").send(w.rels["alice"][1], type=core.message_type("close"), body={}, thid=tid)
        tb, tc = await w.settle("alice", tid, "open")
        assert names(tc) == ["open"]
        await stop(w, nursery)


async def test_a_full_ticket_takes_no_more_messages(tmp_path, monkeypatch):
    monkeypatch.setattr(svc, "MAX_HISTORY", 3)
    async with trio.open_nursery() as nursery:
        w = await world(nursery, tmp_path, "alice")
        seen: list = []
        nursery.start_soon(problems, w.agent("alice"), seen)
        tid = (await w.s("alice").open(w.rels["alice"][1], subject="Long story"))["id"]
        await w.s("alice").reply(tid, text="1")
        await w.s("alice").reply(tid, text="2")
        with pytest.raises(StateError):
            await w.s("alice").reply(tid, text="3")
        await w.settle("alice", tid, "waiting_on_business")
        forge(w, "alice", name="reply", body={"text": "3"}, thid=tid)
        await wait_until(lambda: any(e["event"] == "problem.received" for e in seen))
        assert [e["code"] for e in seen if e["event"] == "problem.received"] == ["e.p.msg.ticket-full"]
        tb, tc = await w.settle("alice", tid, "waiting_on_business")
        assert len(tb["history"]) == 3
        await stop(w, nursery)


def test_config_is_checked():
    def agent(table):
        return SimpleNamespace(config=SimpleNamespace(services={"support": table}), store=None, role="business")

    assert svc.create(agent({})).announce_assignments is True
    assert svc.create(agent({"announce_assignments": False})).announce_assignments is False
    for bad in ({"announce_assignments": "yes"}, {"announce": True}):
        with pytest.raises(ConfigError):
            svc.create(agent(bad))
