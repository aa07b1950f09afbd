"""The Agent and its delivery engine, end to end: two agents in one trio run, each
with its own home (real SQLite) and its own listener on 127.0.0.1 (real sockets).

What these tests prove: the connect/1.0 setup over a setup connection; ping and
discover answered automatically; exactly-once, in-order delivery per thread in both
directions; revocation from either side refuses later traffic and survives a
restart; an offline peer gets its queue on return; a lost receipt (retransmission
after the receiver forgot its window) still reaches the application once; an
unknown protocol or a bad body gets a problem report, never a crash.
"""

from __future__ import annotations

import dataclasses
import socket
from functools import partial
from pathlib import Path

import pytest
import trio

from p2p.agent import Agent
from p2p.core import cbor
from p2p.core.errors import P2PError, RemoteError
from p2p.core.protocols import delivery as frames
from p2p.core.protocols.delivery import ReceiveWindow
from p2p.core.keys import AgreementKey
from p2p.home import Config
from p2p.net import TransportLimits, connect
from p2p import delivery

BASIC = "https://didcomm.org/basicmessage/2.0/message"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(tmp_path: Path, name: str, port: int = 0, **kw) -> Config:
    return Config(home=tmp_path / name, listen_host="127.0.0.1", listen_port=port, advertise_host="127.0.0.1",
                  label=name, **kw)


class Running:
    """An agent running in a cancel scope of the test's nursery; stop() and start()."""

    def __init__(self, nursery: trio.Nursery, cfg: Config) -> None:
        self.nursery = nursery
        self.cfg = cfg
        self.agent: Agent | None = None
        self.scope: trio.CancelScope | None = None
        self.done: trio.Event | None = None

    async def start(self) -> Agent:
        self.agent = Agent.open(self.cfg, backoff=lambda attempt: 0.05)
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        agent, scope, done = self.agent, self.scope, self.done

        async def run(task_status=trio.TASK_STATUS_IGNORED):
            try:
                with scope:
                    await agent.run(task_status=task_status)
            finally:
                agent.close()
                done.set()

        await self.nursery.start(run)
        return self.agent

    async def stop(self, *, polite: bool = True) -> None:
        if polite:
            await self.agent.shutdown()
        self.scope.cancel()
        await self.done.wait()


async def pair(nursery, tmp_path, *, a_port: int = 0, b_port: int = 0):
    """Shop (inviter) and Alice (invitee), connected. Returns (runA, runB, relA, relB)."""
    ra, rb = Running(nursery, config(tmp_path, "shop", a_port)), Running(nursery, config(tmp_path, "alice", b_port))
    a, b = await ra.start(), await rb.start()
    invitation = await a.create_invitation(label="Corner Shop")
    rel_b = await b.accept_invitation(invitation["url"])
    with trio.fail_after(10):
        while not (rels := await a.list_relationships(state="active")):
            await trio.sleep(0.01)
    return ra, rb, rels[0], rel_b


async def collect(agent: Agent, events: list, *, kinds=("message.received",)):
    async with agent.subscribe(buffer=100_000) as channel:
        async for e in channel:
            if e["event"] in kinds:
                events.append(e)


async def wait_for(predicate, timeout: float = 15):
    with trio.fail_after(timeout):
        while not await predicate():
            await trio.sleep(0.02)


# --- setup, ping, discover -------------------------------------------------------------


async def test_invite_accept_ping_discover(tmp_path):
    async with trio.open_nursery() as nursery:
        ra, rb, rel_a, rel_b = await pair(nursery, tmp_path)
        a, b = ra.agent, rb.agent
        assert rel_b["state"] == "active" and rel_b["role"] == "invitee" and rel_b["their_label"] == "shop"
        assert rel_a["role"] == "inviter" and rel_a["their_label"] == "alice"
        assert rel_a["their_did"] == rel_b["our_did"] and rel_b["their_did"] == rel_a["our_did"]
        # pairwise DIDs are fresh: neither is an agent DID
        assert a.did not in (rel_a["our_did"], rel_b["their_did"])
        assert (await b.ping(rel_b["id"]))["rtt_ms"] > 0
        assert (await a.ping(rel_a["id"]))["rtt_ms"] > 0
        features = await b.discover(rel_b["id"], match="https://didcomm.org/*")
        ids = [f["id"] for f in features]
        assert "https://didcomm.org/trust-ping/2.0" in ids and BASIC.rsplit("/", 1)[0] in ids
        assert "https://p2p.example/connect/1.0" not in ids  # not matched by the pattern
        invitations = await a.list_invitations()
        assert invitations[0]["state"] == "used" and invitations[0]["use_count"] == 1
        status = await a.status()
        assert status["relationships"]["active"] == 1 and status["did"] == a.did
        await ra.stop()
        await rb.stop()
        nursery.cancel_scope.cancel()  # the event collectors


async def test_a_relationship_label_names_the_peer(tmp_path):
    # spec/14 §14.5: `label` is the peer's name here (what it presented, unless we named
    # it when accepting); we present config.label, which no relationship stores.
    async with trio.open_nursery() as nursery:
        ra, rb, rel_a, rel_b = await pair(nursery, tmp_path)
        a, b = ra.agent, rb.agent
        assert (rel_b["label"], rel_b["their_label"]) == ("shop", "shop")
        assert (rel_a["label"], rel_a["their_label"]) == ("alice", "alice")
        # Our own name for the inviter stays here: the inviter still hears config.label.
        url = (await a.create_invitation(label="Corner Shop", multi_use=True))["url"]
        named = await b.accept_invitation(url, label="my corner shop")
        assert (named["label"], named["their_label"]) == ("my corner shop", "shop")
        with trio.fail_after(10):
            while len(rels := await a.list_relationships(state="active")) < 2:
                await trio.sleep(0.01)
        assert {(r["label"], r["their_label"]) for r in rels} == {("alice", "alice")}
        with pytest.raises(P2PError) as info:
            await b.accept_invitation(url, label="x" * 257)
        assert info.value.code == "bad-argument"
        await rb.stop()
        b = await rb.start()  # kept across a restart
        assert {r["label"] for r in await b.list_relationships()} == {"shop", "my corner shop"}
        await ra.stop()
        await rb.stop()


async def test_an_inviter_without_a_name_is_called_after_its_invitation(tmp_path):
    async with trio.open_nursery() as nursery:
        ra = Running(nursery, config(tmp_path, "shop"))
        ra.cfg = dataclasses.replace(ra.cfg, label="")
        rb = Running(nursery, config(tmp_path, "alice"))
        a, b = await ra.start(), await rb.start()
        rel = await b.accept_invitation((await a.create_invitation(label="Corner Shop"))["url"])
        assert (rel["label"], rel["their_label"]) == ("Corner Shop", "")
        await ra.stop()
        await rb.stop()


async def test_protocol_traffic_is_archived_but_not_listed_by_default(tmp_path):
    async with trio.open_nursery() as nursery:
        ra, rb, rel_a, rel_b = await pair(nursery, tmp_path)
        a, b = ra.agent, rb.agent
        await b.ping(rel_b["id"])
        sent = await b.send(rel_b["id"], type=BASIC, body={"content": "hello"}, please_ack=True)
        await wait_for(lambda: _has(a, sent["id"]))
        await wait_for(lambda: _has(b, None, type="https://didcomm.org/empty/1.0/empty"))  # the ack came back
        inbox = await a.messages(direction="in")
        assert [m["type"] for m in inbox] == [BASIC]
        everything = await a.messages(direction="in", include_protocol=True)
        types = [m["type"] for m in everything]
        assert types[:2] == ["https://p2p.example/connect/1.0/request", "https://p2p.example/connect/1.0/complete"]
        assert "https://didcomm.org/trust-ping/2.0/ping" in types and BASIC in types
        # A thread: the application's messages by default, everything on request; a
        # thread of protocol messages only exists but is empty by default.
        assert [m["id"] for m in await b.thread(sent["thid"])] == [sent["id"]]
        full = await b.thread(sent["thid"], include_protocol=True)
        assert [m["type"] for m in full] == [BASIC, "https://didcomm.org/empty/1.0/empty"]
        assert await a.thread(rel_a_thid := everything[0]["thid"]) == []
        assert len(await a.thread(rel_a_thid, include_protocol=True)) >= 2
        with pytest.raises(P2PError) as info:
            await a.thread("no-such-thread")
        assert info.value.code == "unknown-thread"
        # Asked for by type, a protocol message is listed.
        pings = await a.messages(type="https://didcomm.org/trust-ping/2.0/ping")
        assert len(pings) == 1
        await ra.stop()
        await rb.stop()


async def _has(agent: Agent, message_id: str | None, **query) -> bool:
    found = await agent.messages(include_protocol=True, **query)
    return any(message_id is None or m["id"] == message_id for m in found)


async def test_one_argon2id_run_per_start_with_a_passphrase(tmp_path, monkeypatch):
    import nacl.pwhash.argon2id as argon2id

    from p2p import agent as agent_module, home
    from p2p.store.keyfile import Sealer

    calls = []
    real = argon2id.kdf
    monkeypatch.setattr(argon2id, "kdf", lambda *a, **k: calls.append(1) or real(*a, **k))
    fast = lambda cfg: Sealer(cfg.passphrase, opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN)
    monkeypatch.setattr(home, "sealer_for", fast)
    monkeypatch.setattr(agent_module, "sealer_for", fast)
    async with trio.open_nursery() as nursery:
        ra = Running(nursery, config(tmp_path, "shop"))
        ra.cfg = dataclasses.replace(ra.cfg, passphrase="correct horse")
        rb = Running(nursery, config(tmp_path, "alice"))
        a, b = await ra.start(), await rb.start()
        assert len(calls) == 1  # init seals the identity, the same Sealer opens it
        for _ in range(3):  # three pairwise key sets sealed: no new derivation
            await b.accept_invitation((await a.create_invitation())["url"])
        with trio.fail_after(10):
            while len(await a.list_relationships(state="active")) < 3:
                await trio.sleep(0.01)
        assert len(calls) == 1
        await ra.stop()
        a = await ra.start()  # a restart: one run opens the identity and every pairwise blob
        assert len(calls) == 2 and len(a.sessions.by_id) == 3
        await b.accept_invitation((await a.create_invitation())["url"])
        assert len(calls) == 2
        salts = {cbor.loads(r.our_secret, max_size=4096)["salt"] for r in a.store.list_relationships()}
        assert len(salts) == 1
        await ra.stop()
        await rb.stop()


async def test_idle_links_close_and_are_dialed_again(tmp_path, monkeypatch):
    monkeypatch.setattr(delivery, "LINK_IDLE", 1.0)  # spec default 30 s
    async with trio.open_nursery() as nursery:
        ra, rb, rel_a, rel_b = await pair(nursery, tmp_path)
        a, b = ra.agent, rb.agent

        async def no_links() -> bool:
            return (await a.status())["connections"] == 0 and (await b.status())["connections"] == 0

        await wait_for(no_links, timeout=5)
        for sender, rel, receiver in ((a, rel_a, b), (b, rel_b, a)):  # each side dials again
            sent = await sender.send(rel["id"], type=BASIC, body={"content": "after a pause"})
            await wait_for(lambda: _has(receiver, sent["id"]))
            await wait_for(no_links, timeout=5)
        # A link in use stays up: messages every 0.1 s for 1 s, one connection.
        opened = a.listener_stats.completed_handshakes
        for i in range(10):
            sent = await b.send(rel_b["id"], type=BASIC, body={"content": f"busy {i}"})
            await trio.sleep(0.1)
        await wait_for(lambda: _has(a, sent["id"]))
        assert a.listener_stats.completed_handshakes == opened + 1
        await ra.stop()
        await rb.stop()


async def test_more_relationships_than_the_listener_cap(tmp_path):
    # spec/09 §9.3: idle links are evicted to admit newcomers; a business is not
    # limited to max_connections relationships.
    async with trio.open_nursery() as nursery:
        cfg = dataclasses.replace(config(tmp_path, "shop"), limits=TransportLimits(max_connections=3,
                                                                                  max_handshaking=2))
        ra, rb = Running(nursery, cfg), Running(nursery, config(tmp_path, "alice"))
        a, b = await ra.start(), await rb.start()
        rels = []
        for _ in range(8):
            rels.append((await b.accept_invitation((await a.create_invitation())["url"]))["id"])
        assert a.listener_stats.refused == 0 and a.listener_stats.evicted_idle >= 5
        assert a.listener_stats.peak_admitted <= 3
        for rid in (rels[0], rels[3], rels[7]):  # old and new relationships still get through
            sent = await b.send(rid, type=BASIC, body={"content": "still there?"})
            await wait_for(lambda: _has(a, sent["id"]))
        a_rels = {r["their_did"]: r["id"] for r in await a.list_relationships()}
        for r in (await b.list_relationships())[:3]:  # and the shop reaches its customers
            sent = await a.send(a_rels[r["our_did"]], type=BASIC, body={"content": "hello"})
            await wait_for(lambda: _has(b, sent["id"]))
        await ra.stop()
        await rb.stop()


async def test_one_time_invitation_refuses_a_second_invitee(tmp_path):
    async with trio.open_nursery() as nursery:
        ra = Running(nursery, config(tmp_path, "shop"))
        rb, rc = Running(nursery, config(tmp_path, "bob")), Running(nursery, config(tmp_path, "carol"))
        a, b, c = await ra.start(), await rb.start(), await rc.start()
        url = (await a.create_invitation())["url"]
        await b.accept_invitation(url)
        with pytest.raises(RemoteError) as e:
            await c.accept_invitation(url)
        assert e.value.code == "invitation-used"
        assert await c.list_relationships() == []
        # a multi-use invitation serves both
        url = (await a.create_invitation(multi_use=True))["url"]
        await c.accept_invitation(url)
        await rb.stop()
        rd = Running(nursery, config(tmp_path, "dave"))
        d = await rd.start()
        await d.accept_invitation(url)
        assert len(await a.list_relationships()) == 3
        for r in (ra, rc, rd):
            await r.stop()


async def test_unknown_static_key_is_closed_quickly(tmp_path):
    async with trio.open_nursery() as nursery:
        ra = Running(nursery, config(tmp_path, "shop"))
        a = await ra.start()
        stranger = AgreementKey.from_secret(b"\x42" * 32)
        conn = await connect("127.0.0.1", a.port, static=stranger, remote_static=a.keys.agreement.public)
        await conn.send(frames.encode(frames.Deliver(1, b"\xd8\x60not an envelope")))
        with trio.fail_after(5):
            frame = frames.decode(await conn.receive())
        assert frame == frames.Close("malformed-envelope")
        with pytest.raises(RemoteError):
            with trio.fail_after(5):
                await conn.receive()
        assert a.sessions.by_id == {}
        await ra.stop()


# --- delivery -------------------------------------------------------------------------


async def test_200_messages_each_way_exactly_once_in_order(tmp_path):
    async with trio.open_nursery() as nursery:
        ra, rb, rel_a, rel_b = await pair(nursery, tmp_path)
        a, b = ra.agent, rb.agent
        got_a, got_b = [], []
        nursery.start_soon(collect, a, got_a)
        nursery.start_soon(collect, b, got_b)
        await trio.sleep(0.05)
        threads = {}
        for sender, rel, tag in ((a, rel_a, "a"), (b, rel_b, "b")):
            # four threads, interleaved, in batches and one by one
            batch = [dict(type=BASIC, body={"content": f"{tag}{i}", "n": i}, thid=f"{tag}-thread-{i % 4}")
                     for i in range(150)]
            sent = await sender.send_many(rel["id"], batch)
            assert [s["seq"] for s in sent] == sorted(s["seq"] for s in sent)
            for i in range(150, 200):
                await sender.send(rel["id"], type=BASIC, body={"content": f"{tag}{i}", "n": i},
                                  thid=f"{tag}-thread-{i % 4}")
            threads[tag] = sent
        with trio.fail_after(30):
            while len(got_a) < 200 or len(got_b) < 200:
                await trio.sleep(0.02)
        await trio.sleep(0.2)  # nothing more may come
        for got, tag in ((got_b, "a"), (got_a, "b")):
            assert len(got) == 200
            ns = [e["message"]["body"]["n"] for e in got]
            assert ns == list(range(200))  # one relationship: seq order is send order
            for t in range(4):
                per_thread = [e["message"]["body"]["n"] for e in got if e["message"]["thid"] == f"{tag}-thread-{t}"]
                assert per_thread == [n for n in range(200) if n % 4 == t]
            assert len({e["message"]["id"] for e in got}) == 200
        # the archive is the application's record: each message once, both directions
        inbound = await b.messages(relationship=rel_b["id"], direction="in", type=BASIC, limit=1000)
        assert [m["body"]["n"] for m in inbound] == list(range(200))
        assert all(m["state"] == "received" and m["from"] == rel_b["their_did"] for m in inbound)
        cursors = [m["cursor"] for m in inbound]
        assert cursors == sorted(cursors)
        page = await b.messages(relationship=rel_b["id"], direction="in", type=BASIC, after=cursors[99], limit=10)
        assert [m["body"]["n"] for m in page] == list(range(100, 110))
        async def all_delivered():
            out = await a.messages(relationship=rel_a["id"], direction="out", type=BASIC, limit=1000)
            return len(out) == 200 and all(m["state"] == "delivered" for m in out)
        await wait_for(all_delivered)
        thread = await a.thread("a-thread-1")
        assert [m["body"]["n"] for m in thread] == [n for n in range(200) if n % 4 == 1]
        one = await b.get_message(inbound[5]["id"])
        assert one["body"] == {"content": "a5", "n": 5} and one["direction"] == "in"
        with pytest.raises(P2PError) as e:
            await b.get_message("no-such-message")
        assert e.value.code == "unknown-message"
        assert (await a.status())["outbox"]["queued"] == 0
        await ra.stop()
        await rb.stop()
        nursery.cancel_scope.cancel()  # the event collectors


async def test_offline_peer_gets_its_queue_after_restart(tmp_path):
    async with trio.open_nursery() as nursery:
        ra, rb, rel_a, rel_b = await pair(nursery, tmp_path, b_port=free_port())
        a = ra.agent
        await rb.stop()
        sent = await a.send_many(rel_a["id"], [dict(type=BASIC, body={"n": i}) for i in range(30)])
        await trio.sleep(0.3)  # the dialer fails a few times meanwhile
        assert (await a.get_relationship(rel_a["id"]))["outbox_pending"] == 30
        b = await rb.start()  # same home, same port
        got = []
        nursery.start_soon(collect, b, got)
        await wait_for(lambda: _true(len(got) == 30))
        assert [e["message"]["body"]["n"] for e in got] == list(range(30))
        async def drained():
            return (await a.get_relationship(rel_a["id"]))["outbox_pending"] == 0
        await wait_for(drained)
        assert (await a.get_message(sent[0]["id"]))["state"] == "delivered"
        # and the other way, after the restart
        await b.send(rel_b["id"], type=BASIC, body={"n": "back"})
        back = await wait_archive(a, rel_a["id"], 1)
        assert back[0]["body"] == {"n": "back"}
        await ra.stop()
        await rb.stop()
        nursery.cancel_scope.cancel()  # the event collectors


async def _true(value):
    return value


async def wait_archive(agent, rel_id, n):
    result = []

    async def enough():
        result[:] = await agent.messages(relationship=rel_id, direction="in", type=BASIC, limit=1000)
        return len(result) >= n
    await wait_for(enough)
    return result


async def test_lost_receipt_and_forgotten_window_still_delivers_once(tmp_path):
    async with trio.open_nursery() as nursery:
        ra, rb, rel_a, rel_b = await pair(nursery, tmp_path)
        a, b = ra.agent, rb.agent
        got = []
        nursery.start_soon(collect, b, got)
        await trio.sleep(0.05)
        session_b = b.sessions.by_id[rel_b["id"]]
        real_receipts = a.sessions._receipts
        lost = []
        forgotten = trio.Event()

        def lossy(session, link, seqs):
            if not lost:
                # The receipt never arrives and the connection breaks.
                lost.append(list(seqs))
                link.scope.cancel()
                return
            real_receipts(session, link, seqs)

        real_install = b.sessions._install

        def install(session, link):
            # The receiver also forgets its window (as after a restart) before the
            # next connection carries anything: only the store's duplicate filter
            # stands between the retransmitted frames and the application.
            if lost and not forgotten.is_set():
                session.recv = ReceiveWindow()
                forgotten.set()
            return real_install(session, link)

        b.sessions._install = install
        a.sessions._receipts = lossy
        await a.send_many(rel_a["id"], [dict(type=BASIC, body={"n": i}) for i in range(20)])
        async def all_delivered():
            return (await a.get_relationship(rel_a["id"]))["outbox_pending"] == 0
        await wait_for(all_delivered)
        await trio.sleep(0.3)
        assert lost and forgotten.is_set(), "the first receipt was dropped"
        assert sorted(e["message"]["body"]["n"] for e in got) == list(range(20))
        assert len(got) == 20
        archived = await b.messages(relationship=rel_b["id"], direction="in", type=BASIC, limit=100)
        assert [m["body"]["n"] for m in archived] == list(range(20))
        await ra.stop()
        await rb.stop()
        nursery.cancel_scope.cancel()  # the event collectors


# --- problem reports ------------------------------------------------------------------------


async def test_unknown_protocol_and_bad_body_get_problem_reports(tmp_path):
    async with trio.open_nursery() as nursery:
        ra, rb, rel_a, rel_b = await pair(nursery, tmp_path)
        a, b = ra.agent, rb.agent
        problems, received = [], []
        nursery.start_soon(partial(collect, a, problems, kinds=("problem.received",)))
        nursery.start_soon(collect, b, received)
        await trio.sleep(0.05)
        unknown = await a.send(rel_a["id"], type="https://example.org/tictactoe/1.0/move", body={"x": 1})
        bad_ping = await a.send(rel_a["id"], type="https://didcomm.org/trust-ping/2.0/ping",
                                body={"response_requested": "yes"})
        await wait_for(lambda: _true(len(problems) >= 2))
        codes = {p["pthid"]: p["code"] for p in problems}
        assert codes[unknown["thid"]] == "e.p.msg.unsupported-message-type"
        assert codes[bad_ping["thid"]] == "e.p.msg.invalid-field"
        assert received == []  # neither reached b's application
        # the relationship still works both ways
        assert (await a.ping(rel_a["id"]))["rtt_ms"] > 0
        await a.send(rel_a["id"], type=BASIC, body={"n": 1}, please_ack=True)
        await wait_for(lambda: _true(len(received) == 1))
        # please_ack is answered with an empty message carrying ack
        async def acked():
            msgs = await a.messages(relationship=rel_a["id"], direction="in",
                                    type="https://didcomm.org/empty/1.0/empty")
            return bool(msgs)
        await wait_for(acked)
        await ra.stop()
        await rb.stop()
        nursery.cancel_scope.cancel()  # the event collectors


# --- revocation --------------------------------------------------------------------------------


@pytest.mark.parametrize("revoker", ["inviter", "invitee"])
async def test_revoke_refuses_later_traffic_and_survives_restart(tmp_path, revoker):
    async with trio.open_nursery() as nursery:
        ra, rb, rel_a, rel_b = await pair(nursery, tmp_path, a_port=free_port(), b_port=free_port())
        (us, rel_us), (them, rel_them) = ((ra, rel_a), (rb, rel_b))
        if revoker == "invitee":
            (us, rel_us), (them, rel_them) = (rb, rel_b), (ra, rel_a)
        events = []
        nursery.start_soon(partial(collect, them.agent, events, kinds=("relationship.revoked",)))
        await trio.sleep(0.05)
        done = await us.agent.revoke(rel_us["id"], reason="closing the account")
        assert done["state"] == "revoked"
        await wait_for(lambda: _true(len(events) == 1))
        assert events[0]["relationship"] == rel_them["id"] and events[0]["by"] == "peer"
        assert (await them.agent.get_relationship(rel_them["id"]))["state"] == "revoked"
        for side, rel in ((us, rel_us), (them, rel_them)):
            with pytest.raises(P2PError) as e:
                await side.agent.send(rel["id"], type=BASIC, body={})
            assert e.value.code == "relationship-revoked"
            with pytest.raises(P2PError):
                await side.agent.ping(rel["id"], timeout=1)
        # keys are gone from the store on both sides
        for side, rel in ((us, rel_us), (them, rel_them)):
            assert side.agent.store.get_relationship(rel["id"]).our_secret is None
        # restart both: still revoked, still refused
        await ra.stop()
        await rb.stop()
        nursery.cancel_scope.cancel()  # the event collectors
        for side, rel in ((us, rel_us), (them, rel_them)):
            agent = await side.start()
            assert (await agent.get_relationship(rel["id"]))["state"] == "revoked"
            with pytest.raises(P2PError) as e:
                await agent.send(rel["id"], type=BASIC, body={})
            assert e.value.code == "relationship-revoked"
        # the revoked peer's pairwise key is refused at our listener with a close frame
        assert rel_them["their_did"] == rel_us["our_did"]
        assert us.agent.sessions.refused_keys  # their pairwise X25519 key
        await ra.stop()
        await rb.stop()
        nursery.cancel_scope.cancel()  # the event collectors


async def test_subscription_overflow_closes_only_the_slow_subscriber(tmp_path):
    async with trio.open_nursery() as nursery:
        ra, rb, rel_a, rel_b = await pair(nursery, tmp_path)
        a, b = ra.agent, rb.agent
        async with b.subscribe(buffer=5) as slow:
            fast = []
            nursery.start_soon(collect, b, fast)
            await trio.sleep(0.05)
            await a.send_many(rel_a["id"], [dict(type=BASIC, body={"n": i}) for i in range(20)])
            await wait_for(lambda: _true(len(fast) == 20))
            seen = [e async for e in slow]
        assert len(seen) == 6 and seen[-1]["event"] == "subscription.overflow"
        await ra.stop()
        await rb.stop()
        nursery.cancel_scope.cancel()  # the event collectors


async def test_bad_arguments_are_local_errors(tmp_path):
    async with trio.open_nursery() as nursery:
        ra, rb, rel_a, rel_b = await pair(nursery, tmp_path)
        a = ra.agent
        for kwargs in (dict(type="not a type", body={}), dict(type=BASIC, body=[1]),
                       dict(type=BASIC, body={}, expires_in=-1), dict(type=BASIC, body={"f": 1.5})):
            with pytest.raises(P2PError) as e:
                await a.send(rel_a["id"], **kwargs)
            assert e.value.code == "bad-argument", kwargs
        with pytest.raises(P2PError) as e:
            await a.send("nope", type=BASIC, body={})
        assert e.value.code == "unknown-relationship"
        with pytest.raises(P2PError) as e:
            await a.accept_invitation("p2p:invite?_oob=AAAA")
        assert e.value.code in ("invalid-invitation", "malformed-cbor", "truncated")
        assert (await a.status())["outbox"]["queued"] == 0
        await ra.stop()
        await rb.stop()
        nursery.cancel_scope.cancel()  # the event collectors
