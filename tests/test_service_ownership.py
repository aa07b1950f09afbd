"""ownership/1.0 in the daemon (p2p/services/ownership.py): a business and customers as
in-process agents over real TCP on 127.0.0.1, each with its own SQLite home; the
business is the inviter.

What these tests prove: an issued record is `issued` at the business until its record
message is receipted, then `active`, and the customer holds the byte-identical signed
record, verifiable against the business's agent DID; a maker update reaches exactly the
owners of live records it concerns (range, list, whole model), each once; a transfer
with the owner's consent re-issues the record to the new owner (previous = old id), the
old owner's copy becomes superseded and later updates skip it; a transfer asked for by a
non-owner, with a consent for another new owner, or for an unknown record is refused with
the matching problem-report code and changes nothing; a transfer to someone not (yet)
connected stays pending, can be cancelled (the owner's copy is active again) or
completes when that owner connects; the registry survives a restart (live records,
transfers, update routing); config errors are ConfigErrors.
"""

from __future__ import annotations

from functools import partial

import pytest
import trio

from p2p.core.errors import P2PError
from p2p.core.message import Message
from p2p.core.protocols import ownership as own
from p2p.home import Config, ConfigError
from p2p.services.ownership import RecordNotFound, RecordState, create

from test_agent import Running, collect, free_port, wait_for

UPDATE = own.PROTOCOL + "/update"


def _config(tmp_path, name, role="customer", port=0, table=None):
    return Config(home=tmp_path / name, listen_host="127.0.0.1", listen_port=port, advertise_host="127.0.0.1",
                  label=name, role=role, services={"ownership": table or {}})


async def _connect(biz, customer):
    """Connect `customer` to `biz`: (relationship id at the business, relationship dict at the customer)."""
    invitation = await biz.create_invitation(label="Maker")
    rel_c = await customer.accept_invitation(invitation["url"])

    async def active():
        return any(r["their_did"] == rel_c["our_did"] for r in await biz.list_relationships(state="active"))
    await wait_for(active)
    rel_b = next(r for r in await biz.list_relationships(state="active") if r["their_did"] == rel_c["our_did"])
    return rel_b["id"], rel_c


async def _world(nursery, tmp_path, names=("alice", "bob")):
    rb = Running(nursery, _config(tmp_path, "maker", "business", free_port()))
    biz = await rb.start()
    runs, rels = {}, {}
    for name in names:
        runs[name] = Running(nursery, _config(tmp_path, name))
        agent = await runs[name].start()
        rels[name] = await _connect(biz, agent)
    return rb, runs, rels


def _svc(agent):
    return agent.service("ownership")


async def _held(agent, record_id, state=None):
    try:
        rec = await _svc(agent).get(record_id)
    except P2PError:
        return False
    return state is None or rec["state"] == state


async def _updates(agent, rel_id):
    return [m for m in await agent.messages(relationship=rel_id, type=UPDATE, direction="in", limit=1000)]


async def _issue(biz, rel, serial, model="X1"):
    return await _svc(biz).issue(rel, model, serial, "2024-03-01", "2026-03-01")


async def test_issue_activates_on_receipt_and_the_owner_keeps_it(tmp_path):
    async with trio.open_nursery() as nursery:
        rb, runs, rels = await _world(nursery, tmp_path, ("alice",))
        biz, alice = rb.agent, runs["alice"].agent
        rel_b, rel_a = rels["alice"]
        rec = await _issue(biz, rel_b, "100")
        assert rec["state"] in ("issued", "active") and rec["owner"] == rel_a["our_did"]
        assert rec["issuer"] == biz.did and rec["relationship"] == rel_b
        await wait_for(partial(_held, alice, rec["id"], "active"))

        async def business_active():
            return (await _svc(biz).get(rec["id"]))["state"] == "active"
        await wait_for(business_active)
        held = await _svc(alice).get(rec["id"])
        assert held["signed"] == rec["signed"] and held["side"] == "owner" and held["relationship"] == rel_a["id"]
        # The record verifies against the issuer DID the customer learned from the invitation.
        record = own.verify_record(bytes.fromhex(held["signed"]), issuer=rel_a["their_agent_did"],
                                   owner=rel_a["our_did"])
        assert (record.model, record.serial, record.purchased, record.warranty_end) == \
            ("X1", "100", "2024-03-01", "2026-03-01")
        # One live record per product; bad fields are refused before anything is sent.
        with pytest.raises(RecordState):
            await _issue(biz, rel_b, "100")
        with pytest.raises(P2PError) as e:
            await _svc(biz).issue(rel_b, "X1", "101", "2024-02-30", "2026-03-01")
        assert e.value.code == "bad-argument"
        with pytest.raises(P2PError) as e:
            await _svc(alice).issue(rel_a["id"], "X1", "101", "2024-03-01", "2026-03-01")
        assert e.value.code == "not-issuer"
        export = await alice.relationship_record(rel_a["id"])
        assert [r["id"] for r in export["ownership"]] == [rec["id"]]
        await rb.stop()
        await runs["alice"].stop()
        nursery.cancel_scope.cancel()


async def test_updates_reach_exactly_the_owners_concerned(tmp_path):
    async with trio.open_nursery() as nursery:
        rb, runs, rels = await _world(nursery, tmp_path, ("alice", "bob", "carol"))
        biz = rb.agent
        alice, bob, carol = (runs[n].agent for n in ("alice", "bob", "carol"))
        (ra, ca), (rbob, cb), (rc, cc) = rels["alice"], rels["bob"], rels["carol"]
        events = []
        nursery.start_soon(partial(collect, alice, events, kinds=("ownership.update",)))
        recs = {}
        for serial, rel in (("9", ra), ("10", ra), ("11", rbob), ("12", rbob)):
            recs[serial] = await _issue(biz, rel, serial)
        await _issue(biz, rc, "10", model="Y2")  # same serial, another model
        await wait_for(partial(_held, bob, recs["12"]["id"]))

        # range 10..11 (shortlex: "9" is below it): one each to alice and bob, none to carol
        out = await _svc(biz).update("recall", "X1", "Battery may overheat", "Stop using it.",
                                     ["https://maker.example/recall"], {"range": ["10", "11"]})
        assert out["recipients"] == 2 and sorted(out["relationships"]) == sorted([ra, rbob])
        # list: alice owns both listed serials but gets the update once
        out2 = await _svc(biz).update("firmware", "X1", "Firmware 2.1", serials={"list": ["9", "10"]})
        assert out2["relationships"] == [ra]
        out3 = await _svc(biz).update("manual", "Y2", "New manual")  # whole model
        assert out3["relationships"] == [rc]
        out4 = await _svc(biz).update("warranty", "Z9", "Nobody owns this")
        assert out4["recipients"] == 0

        async def counts():
            return (len(await _updates(alice, ca["id"])), len(await _updates(bob, cb["id"])),
                    len(await _updates(carol, cc["id"])))
        await wait_for(lambda: _eq(counts, (2, 1, 1)))
        await trio.sleep(0.3)
        assert await counts() == (2, 1, 1)
        await wait_for(lambda: _true(len(events) == 2))
        first = events[0]
        assert first["update"]["kind"] == "recall" and first["update"]["serials"] == {"range": ["10", "11"]}
        assert first["records"] == [recs["10"]["id"]]
        assert sorted(events[1]["records"]) == sorted([recs["9"]["id"], recs["10"]["id"]])
        # the signed update verifies as the maker's
        upd = own.verify_update(bytes.fromhex(first["signed"]), issuer=biz.did)
        assert upd.title == "Battery may overheat"
        with pytest.raises(P2PError) as e:
            await _svc(biz).update("recall", "X1", "inverted", serials={"range": ["11", "10"]})
        assert e.value.code == "bad-argument"
        for run in (rb, *runs.values()):
            await run.stop()
        nursery.cancel_scope.cancel()


async def _eq(fn, value):
    return await fn() == value


async def _true(value):
    return value


async def test_transfer_reissues_to_the_new_owner_and_later_updates_skip_the_old(tmp_path):
    async with trio.open_nursery() as nursery:
        rb, runs, rels = await _world(nursery, tmp_path, ("alice", "bob"))
        biz, alice, bob = rb.agent, runs["alice"].agent, runs["bob"].agent
        (ra, ca), (rbob, cb) = rels["alice"], rels["bob"]
        rec = await _issue(biz, ra, "500")
        await wait_for(partial(_held, alice, rec["id"], "active"))
        pending = await _svc(alice).transfer(rec["id"], cb["our_did"])
        assert pending["state"] == "transfer_pending" and pending["pending_owner"] == cb["our_did"]
        await wait_for(partial(_held, alice, rec["id"], "superseded"))

        async def bob_holds():
            return [r for r in await _svc(bob).list() if r["previous"] == rec["id"]]
        await wait_for(bob_holds)
        new = (await bob_holds())[0]
        assert new["owner"] == cb["our_did"] and new["serial"] == "500" and new["state"] == "active"
        assert new["purchased"] == rec["purchased"] and new["warranty_end"] == rec["warranty_end"]
        assert (await _svc(biz).get(rec["id"]))["state"] == "superseded"
        reg = _svc(biz)._reg()
        assert reg.current("X1", "500").record.id == new["id"]
        out = await _svc(biz).update("recall", "X1", "Recall 500", serials={"list": ["500"]})
        assert out["relationships"] == [rbob]
        await wait_for(lambda: _eq(partial(_count, bob, cb["id"]), 1))
        assert await _count(alice, ca["id"]) == 0
        # a superseded record is neither transferred nor presented again
        with pytest.raises(RecordState):
            await _svc(alice).transfer(rec["id"], cb["our_did"])
        with pytest.raises(RecordState):
            await _svc(alice).present(rec["id"], ca["id"])
        with pytest.raises(RecordNotFound):
            await _svc(alice).transfer("no-such-record", cb["our_did"])
        for run in (rb, *runs.values()):
            await run.stop()
        nursery.cancel_scope.cancel()


async def _count(agent, rel_id):
    return len(await _updates(agent, rel_id))


def _request(holding_record, *, frm, to, new_owner, consent, record_id=None, now):
    return Message(id=f"req-{record_id or holding_record.id}-{now}", type=own.PROTOCOL + "/transfer-request",
                   body={"record": record_id or holding_record.id, "new_owner": new_owner}, frm=frm, to=(to,),
                   created_time=now,
                   attachments=(own._signed_attachment("consent", consent),))


@pytest.mark.parametrize("fault", ["wrong-owner", "bad-consent", "unknown-record"])
async def test_refused_transfers_change_nothing(tmp_path, fault):
    async with trio.open_nursery() as nursery:
        rb, runs, rels = await _world(nursery, tmp_path, ("alice", "bob"))
        biz, alice, bob = rb.agent, runs["alice"].agent, runs["bob"].agent
        (ra, ca), (_, cb) = rels["alice"], rels["bob"]
        rec = await _issue(biz, ra, "700")
        await wait_for(partial(_held, alice, rec["id"], "active"))
        record = own.verify_record(bytes.fromhex(rec["signed"]))
        problems = []
        now = biz.now()
        if fault == "wrong-owner":  # bob asks, with a consent signed by his own key
            sender, peer = bob, bob.peer(cb["id"])
            fake = own.Record(**{**{f: getattr(record, f) for f in record.__slots__}, "owner": cb["our_did"]})
            consent = own.sign_consent(fake, "did:example:mallory", now, peer.signer)
            msg = _request(record, frm=peer.our_did, to=peer.their_did, new_owner="did:example:mallory",
                           consent=consent, now=now)
        else:
            sender, peer = alice, alice.peer(ca["id"])
            consent = own.sign_consent(record, cb["our_did"], now, peer.signer)
            new_owner = "did:example:mallory" if fault == "bad-consent" else cb["our_did"]
            msg = _request(record, frm=peer.our_did, to=peer.their_did, new_owner=new_owner, consent=consent,
                           record_id="nope" if fault == "unknown-record" else None, now=now)
        nursery.start_soon(partial(collect, sender, problems, kinds=("problem.received",)))
        await trio.sleep(0.05)
        sender.queue(peer.id, [msg])
        await wait_for(lambda: _true(bool(problems)))
        assert problems[0]["code"].endswith("." + fault) and problems[0]["pthid"] == msg.id
        assert (await _svc(biz).get(rec["id"]))["state"] in ("issued", "active")
        assert _svc(biz)._reg().current("X1", "700").record.id == rec["id"]
        assert [r for r in await _svc(bob).list()] == []
        for run in (rb, *runs.values()):
            await run.stop()
        nursery.cancel_scope.cancel()


async def test_pending_transfer_cancel_restart_and_completion_on_connect(tmp_path):
    async with trio.open_nursery() as nursery:
        rb, runs, rels = await _world(nursery, tmp_path, ("alice", "bob"))
        biz, alice, bob = rb.agent, runs["alice"].agent, runs["bob"].agent
        (ra, _), (rbob, cb) = rels["alice"], rels["bob"]
        r1 = await _issue(biz, ra, "801")
        r2 = await _issue(biz, ra, "802")
        r3 = await _issue(biz, rbob, "803")
        await wait_for(partial(_held, alice, r2["id"], "active"))
        await wait_for(partial(_held, bob, r3["id"], "active"))

        async def biz_state(rid, state):
            return (await _svc(biz).get(rid))["state"] == state
        # a new owner nobody is connected as: pending, at both ends
        stranger = "did:example:not-connected-yet"
        await _svc(alice).transfer(r1["id"], stranger)
        await wait_for(partial(biz_state, r1["id"], "transfer_pending"))
        assert (await _svc(alice).get(r1["id"]))["state"] == "transfer_pending"
        await wait_for(partial(biz_state, r2["id"], "active"))

        # restart the business: the registry comes back from the database
        await rb.stop()
        biz = await rb.start()
        reg = _svc(biz)._reg()
        assert reg.get(r1["id"]).state is own.State.TRANSFER_PENDING
        assert reg.get(r1["id"]).pending_owner == stranger
        assert reg.current("X1", "803").record.owner == cb["our_did"]
        assert len(reg) == 3 and _svc(biz)._waiting == {stranger: {r1["id"]}}
        out = await _svc(biz).update("recall", "X1", "all of them")
        assert sorted(out["relationships"]) == sorted([ra, rbob])

        # cancel: the requester's copy is active again
        cancelled = await _svc(biz).cancel_transfer(r1["id"])
        assert cancelled["state"] == "active"
        await wait_for(partial(_held, alice, r1["id"], "active"))
        with pytest.raises(RecordState):
            await _svc(biz).cancel_transfer(r1["id"])

        # a pending transfer completes when its new owner's relationship becomes active
        svc = _svc(biz)
        original = svc._peer_by_did
        svc._peer_by_did = lambda did: None  # as if bob were not connected yet
        await _svc(alice).transfer(r2["id"], cb["our_did"])
        await wait_for(partial(biz_state, r2["id"], "transfer_pending"))
        svc._peer_by_did = original
        svc.activated(biz.peer(rbob))
        await wait_for(partial(_held, alice, r2["id"], "superseded"))

        async def bob_has_802():
            return any(r["serial"] == "802" and r["state"] == "active" for r in await _svc(bob).list())
        await wait_for(bob_has_802)

        # revoke: the owner's copy is revoked, the product can be issued anew
        revoked = await _svc(biz).revoke(r3["id"], reason="returned")
        assert revoked["state"] == "revoked" and revoked["reason"] == "returned"
        await wait_for(partial(_held, bob, r3["id"], "revoked"))
        assert (await _svc(bob).get(r3["id"]))["reason"] == "returned"
        again = await _issue(biz, ra, "803")
        await rb.stop()
        biz = await rb.start()
        reg = _svc(biz)._reg()
        assert reg.current("X1", "803").record.id == again["id"]
        assert reg.current("X1", "802").record.owner == cb["our_did"]
        assert reg.get(r3["id"]).state is own.State.REVOKED
        for run in (rb, *runs.values()):
            await run.stop()
        nursery.cancel_scope.cancel()


async def test_present_to_the_business_is_verified(tmp_path):
    async with trio.open_nursery() as nursery:
        rb, runs, rels = await _world(nursery, tmp_path, ("alice",))
        biz, alice = rb.agent, runs["alice"].agent
        ra, ca = rels["alice"]
        rec = await _issue(biz, ra, "900")
        await wait_for(partial(_held, alice, rec["id"], "active"))
        seen = []
        nursery.start_soon(partial(collect, biz, seen, kinds=("ownership.presented",)))
        await trio.sleep(0.05)
        sent = await _svc(alice).present(rec["id"], ca["id"], challenge="nonce-42")
        assert sent["audience"] == ca["their_did"]
        await wait_for(lambda: _true(bool(seen)))
        e = seen[0]
        assert e["record"]["id"] == rec["id"] and e["challenge"] == "nonce-42" and e["issued_here"]
        assert e["state"] in ("issued", "active") and e["relationship"] == ra
        await rb.stop()
        await runs["alice"].stop()
        nursery.cancel_scope.cancel()


class _FakeAgent:
    role = "customer"
    store = None

    def __init__(self, table):
        self.config = type("C", (), {"services": {"ownership": table}})()


@pytest.mark.parametrize("table", [{"bogus": 1}, {"present_max_age": 5}, {"present_max_age": "1h"}])
def test_config_errors(table):
    with pytest.raises(ConfigError):
        create(_FakeAgent(table))


async def test_a_transfer_request_proves_delivery_of_a_record_still_awaiting_its_receipt(tmp_path):
    async with trio.open_nursery() as nursery:
        rb, runs, rels = await _world(nursery, tmp_path, ("alice", "bob"))
        biz, alice = rb.agent, runs["alice"].agent
        (ra, _), (_, cb) = rels["alice"], rels["bob"]
        rec = await _issue(biz, ra, "950")
        _svc(biz)._awaiting.clear()  # as if the receipt were lost: the record stays `issued`
        await wait_for(partial(_held, alice, rec["id"], "active"))
        await trio.sleep(0.2)
        assert (await _svc(biz).get(rec["id"]))["state"] == "issued"
        await _svc(alice).transfer(rec["id"], cb["our_did"])
        await wait_for(partial(_held, alice, rec["id"], "superseded"))
        assert _svc(biz)._reg().current("X1", "950").record.owner == cb["our_did"]
        for run in (rb, *runs.values()):
            await run.stop()
        nursery.cancel_scope.cancel()
