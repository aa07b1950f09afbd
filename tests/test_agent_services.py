"""How the Agent hosts a protocol service (p2p/services): two in-process agents over
real TCP, each with a small test service plugged in.

What these tests prove: a service's messages reach `receive` inside the recording
transaction, its replies and events follow the commit; a refusal undoes the
service's writes (savepoint), is answered with a problem report and never reaches
the application; the admit hook can refuse any non-connect message; `activated`,
`acked` and `export` are called; a muted relationship's messages arrive without an
alert; deliver frames publish `sent` before `delivered`; discover-features lists the
service's protocol.
"""

from __future__ import annotations

from functools import partial

import pytest
import trio

from p2p import services
from p2p.core import cbor
from p2p.core.errors import InvalidField
from p2p.core.message import Message
from p2p.core.protocols.discover import Feature
from p2p.core.protocols.errors import UnexpectedMessage

from test_agent import BASIC, collect, pair, wait_for

ECHO = "https://p2p.example/test-echo/1.0"


class EchoService:
    """Echoes `ping` with `pong`; refuses a body with "refuse" AFTER writing state (the
    savepoint must undo that write); counts what it saw in protocol_state."""

    name = "echo"
    protocol = ECHO
    features = (Feature("protocol", ECHO, ("echo",)),)

    def __init__(self, agent) -> None:
        self.agent = agent
        self.activated_peers: list[str] = []
        self.acked_ids: list[str] = []
        self.fail_acked = False

    def _count(self, rel_id: str) -> int:
        rows = self.agent.store.query("SELECT state FROM protocol_state WHERE relationship_id = ? AND protocol = ?",
                                      (rel_id, self.name))
        return cbor.loads(rows[0][0], max_size=64) if rows else 0

    def receive(self, peer, msg: Message, tx) -> None:
        with self.agent.store.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO protocol_state VALUES (?, ?, ?, ?)",
                         (peer.id, self.name, cbor.dumps(self._count(peer.id) + 1), tx.now))
        if msg.body.get("refuse"):
            raise InvalidField("body.refuse: refused on purpose")
        if msg.body.get("crash"):
            raise KeyError("a bug in the service")
        tx.alert = msg.body.get("alert", True)
        if msg.type == ECHO + "/ping":
            tx.reply(Message(id=self.agent.new_id(), type=ECHO + "/pong", body={}, frm=peer.our_did,
                             to=(peer.their_did,), thid=msg.id, created_time=tx.now))
        tx.publish("echo.seen", relationship=peer.id, type=msg.type)

    def admit(self, peer, msg: Message) -> None:
        if msg.type == BASIC and msg.body.get("content") == "blocked":
            raise UnexpectedMessage("blocked by the admit hook")
        if msg.type == BASIC and msg.body.get("content") == "admit-crash":
            raise RuntimeError("a bug in the admission check")

    def activated(self, peer) -> None:
        self.activated_peers.append(peer.id)

    def acked(self, peer, message_ids) -> None:
        self.acked_ids.extend(message_ids)
        if self.fail_acked:
            raise RuntimeError("a bug in the acked hook")

    def export(self, relationship_id: str) -> dict:
        return {"echo": {"seen": self._count(relationship_id)}}


@pytest.fixture(autouse=True)
def echo_service(monkeypatch):
    monkeypatch.setattr(services, "load", lambda agent: [EchoService(agent)])


async def _send(agent, rel, kind, **body):
    return await agent.send(rel["id"], type=f"{ECHO}/{kind}", body=body)


async def test_service_receives_replies_and_publishes_after_commit(tmp_path):
    async with trio.open_nursery() as nursery:
        ra, rb, rel_a, rel_b = await pair(nursery, tmp_path)
        a, b = ra.agent, rb.agent
        echo_a, echo_b = a.service("echo"), b.service("echo")
        assert echo_a.activated_peers == [rel_a["id"]] and echo_b.activated_peers == [rel_b["id"]]
        assert any(f["id"] == ECHO for f in await b.discover(rel_b["id"], match=ECHO))

        events: list = []
        nursery.start_soon(partial(collect, a, events, kinds=("message.received", "echo.seen", "message.state")))
        await trio.sleep(0.05)
        sent = await _send(b, rel_b, "ping")
        await wait_for(lambda: _true(any(e["event"] == "echo.seen" for e in events)))
        pong = await _wait_message(b, rel_b["id"], ECHO + "/pong")
        assert pong["thid"] == sent["id"]
        assert echo_a._count(rel_a["id"]) == 1
        received = [e for e in events if e["event"] == "message.received"]
        assert received[0]["message"]["id"] == sent["id"] and received[0]["alert"] is True
        # The pong went out as a reply of the same batch: `sent`, then `delivered`.
        await wait_for(lambda: _true(pong["id"] in echo_a.acked_ids))
        states = [e["state"] for e in events if e["event"] == "message.state" and e["id"] == pong["id"]]
        assert states[0] == "sent" and "delivered" in states
        record = await a.relationship_record(rel_a["id"])
        assert record["echo"] == {"seen": 1} and record["relationship"]["id"] == rel_a["id"]
        await ra.stop()
        await rb.stop()
        nursery.cancel_scope.cancel()


async def test_a_refusal_undoes_the_service_writes_and_reports(tmp_path):
    async with trio.open_nursery() as nursery:
        ra, rb, rel_a, rel_b = await pair(nursery, tmp_path)
        a, b = ra.agent, rb.agent
        problems: list = []
        nursery.start_soon(partial(collect, b, problems, kinds=("problem.received",)))
        await trio.sleep(0.05)
        refused = await _send(b, rel_b, "note", refuse=True)
        await wait_for(lambda: _true(bool(problems)))
        assert problems[0]["code"].endswith("invalid-field") and problems[0]["pthid"] == refused["id"]
        assert a.service("echo")._count(rel_a["id"]) == 0  # the write before the refusal was undone
        assert not await a.messages(relationship=rel_a["id"], type=f"{ECHO}/note")
        # A bug in the service (not a P2PError) refuses the message the same way, as our
        # fault (e.p.me), instead of failing on every retransmission.
        crashed = await _send(b, rel_b, "note", crash=True)
        await wait_for(lambda: _true(len(problems) == 2))
        assert problems[1]["code"] == "e.p.me.internal-error" and problems[1]["pthid"] == crashed["id"]
        assert a.service("echo")._count(rel_a["id"]) == 0
        # The next one is taken: the relationship is not harmed by a refusal.
        await _send(b, rel_b, "note")
        await _wait_message(a, rel_a["id"], ECHO + "/note")
        assert a.service("echo")._count(rel_a["id"]) == 1
        await ra.stop()
        await rb.stop()
        nursery.cancel_scope.cancel()


async def test_admit_hook_refuses_and_mute_drops_the_alert(tmp_path):
    async with trio.open_nursery() as nursery:
        ra, rb, rel_a, rel_b = await pair(nursery, tmp_path)
        a, b = ra.agent, rb.agent
        events: list = []
        nursery.start_soon(partial(collect, a, events, kinds=("message.received", "problem.received")))
        problems: list = []
        nursery.start_soon(partial(collect, b, problems, kinds=("problem.received",)))
        await trio.sleep(0.05)
        blocked = await b.send(rel_b["id"], type=BASIC, body={"content": "blocked"})
        await wait_for(lambda: _true(bool(problems)))
        assert problems[0]["pthid"] == blocked["id"]
        # a fault in a hook is ours: the admit check refuses once (e.p.me), and a failing
        # acked hook does not stop delivery
        b.service("echo").fail_acked = True
        crashed = await b.send(rel_b["id"], type=BASIC, body={"content": "admit-crash"})
        await wait_for(lambda: _true(len(problems) == 2))
        assert problems[1]["code"] == "e.p.me.internal-error" and problems[1]["pthid"] == crashed["id"]
        assert crashed["id"] in b.service("echo").acked_ids
        b.service("echo").fail_acked = False
        assert not [e for e in events if e["event"] == "message.received"]

        muted = await a.update_relationship(rel_a["id"], muted=True)
        assert muted["muted"] is True and (await a.get_relationship(rel_a["id"]))["muted"] is True
        await b.send(rel_b["id"], type=BASIC, body={"content": "quiet please"})
        await _send(b, rel_b, "note", alert=True)
        await wait_for(lambda: _true(len([e for e in events if e["event"] == "message.received"]) == 2))
        assert [e["alert"] for e in events if e["event"] == "message.received"] == [False, False]

        await a.update_relationship(rel_a["id"], muted=False)
        await _send(b, rel_b, "note", alert=False)  # the service's own say (a muted topic)
        await b.send(rel_b["id"], type=BASIC, body={"content": "loud"})
        await wait_for(lambda: _true(len([e for e in events if e["event"] == "message.received"]) == 4))
        assert [e["alert"] for e in events if e["event"] == "message.received"][2:] == [False, True]
        await ra.stop()
        await rb.stop()
        nursery.cancel_scope.cancel()


async def test_relationship_settings_are_checked_and_survive_a_restart(tmp_path):
    async with trio.open_nursery() as nursery:
        ra, rb, rel_a, rel_b = await pair(nursery, tmp_path)
        a = ra.agent
        for bad in ({"muted": "yes"}, {"require_agreement": 1}, {"colour": "red"}):
            with pytest.raises(Exception) as info:
                await a.update_relationship(rel_a["id"], **bad)
            assert info.value.code == "bad-argument"
        with pytest.raises(Exception) as info:
            await a.update_relationship("nope", muted=True)
        assert info.value.code == "unknown-relationship"
        await a.update_relationship(rel_a["id"], muted=True, require_agreement=True)
        await ra.stop()
        a = await ra.start()
        rel = await a.get_relationship(rel_a["id"])
        assert rel["muted"] is True and rel["require_agreement"] is True
        assert (await a.update_relationship(rel_a["id"], require_agreement=None))["require_agreement"] is None
        await ra.stop()
        await rb.stop()
        nursery.cancel_scope.cancel()


async def _true(value):
    return value


async def _wait_message(agent, rel_id, type_):
    found: list = []

    async def seen():
        found[:] = await agent.messages(relationship=rel_id, type=type_)
        return bool(found)

    await wait_for(seen)
    return found[0]
