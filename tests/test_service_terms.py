"""terms/1.0 in the daemon (p2p/services/terms.py): two in-process agents over real TCP
on 127.0.0.1, each with its own SQLite home; the business is the inviter.

What these tests prove: the business's agent answers a proffer by its configured policy
(accept, counter with a roster alternative, reject) with no caller; the customer accepts
a counter or withdraws; both sides end with the byte-identical signed record; every
agreement survives a restart (and still governs admission and binding); a customer that
requires an agreement refuses the business's messages outside one (agreement-required,
never shown to the application) while connection upkeep (trust ping) passes; messages
under an accepted agreement carry its hash and are accepted; a wrong hash is refused
(agreement-mismatch); config errors are ConfigErrors.
"""

from __future__ import annotations

from functools import partial

import pytest
import trio

from p2p.core import message
from p2p.core.errors import P2PError
from p2p.core.message import Message
from p2p.core.protocols import problem_report, terms as core
from p2p.core.protocols.delivery import Deliver
from p2p.home import Config, ConfigError
from p2p.services.terms import parse_config

from test_agent import BASIC, Running, collect, free_port, wait_for

T = "p2p:terms:"
NO_TRACKING, NO_THIRD, SERVICE_ONLY, IMPROVE = (T + "no-tracking", T + "no-third-party", T + "service-only",
                                                T + "service-and-improvement")
DELETE, RETAIN = T + "delete-on-revoke", T + "retain-limited"


def _config(tmp_path, name, role, terms_table, port=0):
    return Config(home=tmp_path / name, listen_host="127.0.0.1", listen_port=port, advertise_host="127.0.0.1",
                  label=name, role=role, services={"terms": terms_table})


async def _pair(nursery, tmp_path, *, business=None, customer=None, ports=False):
    """Business (inviter) and customer (invitee), connected: (run_b, run_c, rel_b, rel_c)."""
    pb, pc = (free_port(), free_port()) if ports else (0, 0)
    rb = Running(nursery, _config(tmp_path, "shop", "business",
                                  business if business is not None else {"accept": [NO_TRACKING, NO_THIRD]}, pb))
    rc = Running(nursery, _config(tmp_path, "alice", "customer", customer or {}, pc))
    b, c = await rb.start(), await rc.start()
    invitation = await b.create_invitation(label="Corner Shop")
    rel_c = await c.accept_invitation(invitation["url"])
    with trio.fail_after(10):
        while not (rels := await b.list_relationships(state="active")):
            await trio.sleep(0.01)
    return rb, rc, rels[0]["id"], rel_c["id"]


async def _until_state(agent, aid, rel, state):
    async def done():
        try:
            return (await agent.service("terms").get(aid, relationship=rel))["state"] == state
        except P2PError:
            return False
    await wait_for(done)
    return await agent.service("terms").get(aid, relationship=rel)


def _received(agent, rel, type_=BASIC):
    return [message.decode(a.plaintext, understood=core.UNDERSTOOD)
            for a in agent.store.archived(relationship_id=rel, direction="in", type=type_)]


async def _stop(nursery, *runs):
    for r in runs:
        await r.stop()
    nursery.cancel_scope.cancel()


# --- negotiation -----------------------------------------------------------------------------


async def test_accept_gives_both_sides_the_same_record_and_binds_later_messages(tmp_path):
    async with trio.open_nursery() as nursery:
        rb, rc, rel_b, rel_c = await _pair(nursery, tmp_path)
        b, c = rb.agent, rc.agent
        events = []
        nursery.start_soon(partial(collect, c, events, kinds=("agreement.updated",)))
        await trio.sleep(0.05)
        proffered = await c.service("terms").proffer(rel_c, [NO_TRACKING, NO_THIRD])
        assert proffered["state"] == "proffered" and proffered["role"] == "customer"
        assert proffered["terms"] == sorted([NO_TRACKING, NO_THIRD]) and proffered["record"] is None
        aid = proffered["id"]
        mine = await _until_state(c, aid, rel_c, "accepted")
        theirs = await _until_state(b, aid, rel_b, "accepted")
        assert mine["record"] == theirs["record"] and mine["hash"] == theirs["hash"]
        assert mine["in_force"] and theirs["in_force"] and theirs["role"] == "business"
        # the record opens as a two-signer COSE_Sign over the payload whose hash is named
        signed = core.open_sign(bytes.fromhex(mine["record"]), expect=("customer", "business"),
                                customer=b.peer(rel_b).their_signing_key, business=c.peer(rel_c).their_signing_key)
        assert core.digest(signed.payload).hex() == mine["hash"]
        await wait_for(lambda: _true([e["agreement"]["state"] for e in events] == ["proffered", "accepted"]))
        # the business's next messages carry x-agreement (critical) and are taken
        await b.send(rel_b, type=BASIC, body={"content": "hello under terms"})
        await wait_for(lambda: _true(len(_received(c, rel_c)) == 1))
        got = _received(c, rel_c)[0]
        assert got.extensions[core.X_AGREEMENT].hex() == mine["hash"] and core.X_AGREEMENT in got.crit
        # the customer's own messages are not bound (it MAY; we do not)
        await c.send(rel_c, type=BASIC, body={"content": "hi"})
        await wait_for(lambda: _true(len(_received(b, rel_b)) == 1))
        assert core.X_AGREEMENT not in _received(b, rel_b)[0].extensions
        record = await c.relationship_record(rel_c)
        assert record["agreements"][0]["record"] == mine["record"]
        await _stop(nursery, rb, rc)


async def test_counter_then_customer_accepts(tmp_path):
    policy = {"accept": [NO_TRACKING], "alternatives": {SERVICE_ONLY: IMPROVE}}
    async with trio.open_nursery() as nursery:
        rb, rc, rel_b, rel_c = await _pair(nursery, tmp_path, business=policy)
        b, c = rb.agent, rc.agent
        aid = (await c.service("terms").proffer(rel_c, [SERVICE_ONLY, NO_TRACKING]))["id"]
        countered = await _until_state(c, aid, rel_c, "countered")
        assert countered["terms"] == sorted([IMPROVE, NO_TRACKING]) and countered["counter_to"]
        assert not countered["in_force"]
        # a business cannot accept on the customer's behalf: state error, nothing sent
        with pytest.raises(P2PError) as e:
            await b.service("terms").accept(aid, relationship=rel_b)
        assert e.value.code == "state-error"
        accepted = await c.service("terms").accept(aid)
        assert accepted["state"] == "accepted" and accepted["in_force"]
        theirs = await _until_state(b, aid, rel_b, "accepted")
        assert theirs["record"] == accepted["record"] and theirs["terms"] == accepted["terms"]
        with pytest.raises(P2PError) as e:  # accepted already
            await c.service("terms").accept(aid)
        assert e.value.code == "state-error"
        await _stop(nursery, rb, rc)


async def test_counter_rejected_by_the_customer(tmp_path):
    policy = {"accept": [NO_TRACKING], "alternatives": {DELETE: RETAIN}}
    async with trio.open_nursery() as nursery:
        rb, rc, rel_b, rel_c = await _pair(nursery, tmp_path, business=policy)
        b, c = rb.agent, rc.agent
        aid = (await c.service("terms").proffer(rel_c, [DELETE, NO_TRACKING]))["id"]
        await _until_state(c, aid, rel_c, "countered")
        out = await c.service("terms").reject(aid, reason="365 days is too long")
        assert out["state"] == "rejected"
        theirs = await _until_state(b, aid, rel_b, "rejected")
        assert theirs["reason"] == "365 days is too long" and not theirs["in_force"]
        await _stop(nursery, rb, rc)


async def test_policy_reject_and_unknown_terms(tmp_path):
    async with trio.open_nursery() as nursery:
        rb, rc, rel_b, rel_c = await _pair(nursery, tmp_path, business={"accept": [NO_THIRD], "reject": [NO_TRACKING]})
        b, c = rb.agent, rc.agent
        aid = (await c.service("terms").proffer(rel_c, [NO_TRACKING, NO_THIRD]))["id"]
        mine = await _until_state(c, aid, rel_c, "rejected")
        assert NO_TRACKING in mine["reason"] and mine["record"] is None
        assert (await _until_state(b, aid, rel_b, "rejected"))["reason"] == mine["reason"]
        # a term the business's policy does not name is refused too
        aid2 = (await c.service("terms").proffer(rel_c, [T + "data-copy"]))["id"]
        assert "not offered" in (await _until_state(c, aid2, rel_c, "rejected"))["reason"]
        listing = await c.service("terms").agreements(rel_c)
        assert [a["id"] for a in listing["agreements"]] == [aid, aid2] and listing["in_force"] is None
        with pytest.raises(P2PError) as e:
            await c.service("terms").proffer(rel_c, ["p2p:terms:no-such-term"])
        assert e.value.code == "unknown-term"
        with pytest.raises(P2PError) as e:  # a business does not proffer
            await b.service("terms").proffer(rel_b, [NO_THIRD])
        assert e.value.code == "state-error"
        with pytest.raises(P2PError) as e:
            await c.service("terms").get("no-such-agreement")
        assert e.value.code == "unknown-agreement"
        # terms messages only through the service, which keeps the state: not through send
        for agent, rel in ((b, rel_b), (c, rel_c)):
            with pytest.raises(P2PError) as e:
                await agent.send(rel, type=core.WITHDRAW_TYPE, body={"agreement": b"\x00" * 32}, thid=aid)
            assert e.value.code == "bad-argument"
        assert (await c.service("terms").get(aid))["state"] == "rejected"
        await _stop(nursery, rb, rc)


async def test_withdraw_ends_the_agreement_on_both_sides(tmp_path):
    async with trio.open_nursery() as nursery:
        rb, rc, rel_b, rel_c = await _pair(nursery, tmp_path)
        b, c = rb.agent, rc.agent
        aid = (await c.service("terms").proffer(rel_c, [NO_TRACKING]))["id"]
        await _until_state(b, aid, rel_b, "accepted")
        await _until_state(c, aid, rel_c, "accepted")
        out = await c.service("terms").withdraw(aid, reason="moving on")
        assert out["state"] == "withdrawn" and not out["in_force"]
        theirs = await _until_state(b, aid, rel_b, "withdrawn")
        assert theirs["reason"] == "moving on" and not theirs["in_force"]
        assert (await b.service("terms").agreements(rel_b))["in_force"] is None
        # no agreement in force: the business's messages are not bound any more
        await b.send(rel_b, type=BASIC, body={"content": "after"})
        await wait_for(lambda: _true(len(_received(c, rel_c)) == 1))
        assert core.X_AGREEMENT not in _received(c, rel_c)[0].extensions
        with pytest.raises(P2PError) as e:
            await c.service("terms").withdraw(aid)
        assert e.value.code == "state-error"
        await _stop(nursery, rb, rc)


async def test_agreements_survive_a_restart(tmp_path):
    async with trio.open_nursery() as nursery:
        rb, rc, rel_b, rel_c = await _pair(nursery, tmp_path, ports=True, customer={"require": True})
        aid = (await rc.agent.service("terms").proffer(rel_c, [NO_TRACKING]))["id"]
        before_b = await _until_state(rb.agent, aid, rel_b, "accepted")
        before_c = await _until_state(rc.agent, aid, rel_c, "accepted")
        await rb.stop()
        await rc.stop()
        b, c = await rb.start(), await rc.start()
        after_b, after_c = (await b.service("terms").get(aid), await c.service("terms").get(aid))
        assert after_b == before_b and after_c == before_c and after_c["in_force"]
        # still in force after the restart: bound by the business, admitted by the customer
        await b.send(rel_b, type=BASIC, body={"content": "after restart"})
        await wait_for(lambda: _true(len(_received(c, rel_c)) == 1))
        assert _received(c, rel_c)[0].extensions[core.X_AGREEMENT].hex() == before_c["hash"]
        await _stop(nursery, rb, rc)


# --- admission ----------------------------------------------------------------------------------


async def test_required_agreement_refuses_the_business_until_one_is_accepted(tmp_path):
    async with trio.open_nursery() as nursery:
        rb, rc, rel_b, rel_c = await _pair(nursery, tmp_path, customer={"require": True})
        b, c = rb.agent, rc.agent
        problems = []
        nursery.start_soon(partial(collect, b, problems, kinds=("problem.received",)))
        await trio.sleep(0.05)
        sent = await b.send(rel_b, type=BASIC, body={"content": "buy now"})
        await wait_for(lambda: _true(len(problems) == 1))
        assert problems[0]["code"] == "e.p.req.agreement-required" and problems[0]["pthid"] == sent["thid"]
        assert _received(c, rel_c) == [] and await c.messages(relationship=rel_c, direction="in") == []
        # exempt: keeping the relationship alive still works both ways
        assert (await b.ping(rel_b, timeout=5))["rtt_ms"] > 0
        # a made-up hash while none is in force: agreement-mismatch
        forged = core.bind(Message(id=b.new_id(), type=BASIC, body={"content": "x"}, frm=b.peer(rel_b).our_did,
                                   to=(b.peer(rel_b).their_did,), created_time=b.now()), b"\x01" * 32)
        b.queue(rel_b, [forged])
        await wait_for(lambda: _true(len(problems) == 2))
        assert problems[1]["code"] == "e.p.trust.agreement-mismatch"
        # once an agreement is accepted the business's messages carry it and are taken,
        # including the first ones right behind the accept
        aid = (await c.service("terms").proffer(rel_c, [NO_THIRD]))["id"]
        await _until_state(b, aid, rel_b, "accepted")
        for n in range(3):
            await b.send(rel_b, type=BASIC, body={"content": f"ok {n}"})
        await wait_for(lambda: _true(len(_received(c, rel_c)) == 3))
        assert len(problems) == 2
        await _stop(nursery, rb, rc)


async def test_accept_and_bound_messages_in_one_batch(tmp_path):
    # The business's accept and its first bound messages can reach `take` in one batch:
    # the Agent admits each message in order, after the earlier ones were handled, so
    # the accept is in force for what follows it (and a forged accept for nothing).
    async with trio.open_nursery() as nursery:
        rb, rc, rel_b, rel_c = await _pair(nursery, tmp_path, customer={"require": True})
        b, c = rb.agent, rc.agent
        svc, peer_b = c.service("terms"), b.peer(rel_b)
        seal_as_business = b.sessions.by_id[rel_b].state
        await rb.stop()  # the proffer stays unanswered
        aid = (await svc.proffer(rel_c, [NO_THIRD]))["id"]
        proffer = [m for m in _sent(c, rel_c) if m.type == core.PROFFER_TYPE][0]
        # what the business would answer, built by hand with its keys
        theirs = core.Agreement.awaiting(customer=peer_b.their_did, business=peer_b.our_did)
        theirs.receive_proffer(proffer, customer_key=peer_b.their_signing_key)
        accept = theirs.accept(peer_b.signer, id="accept-1", now=c.now())

        def basic(mid, bound_to=None):
            m = Message(id=mid, type=BASIC, body={"content": mid}, frm=peer_b.our_did, to=(peer_b.their_did,),
                        created_time=c.now())
            return core.bind(m, bound_to) if bound_to else m

        session = c.sessions.by_id[rel_c]
        seqs = iter(range(900, 1000))

        async def batch(*msgs):
            await c.take(session, [Deliver(next(seqs), b._seal(seal_as_business, m)[1]) for m in msgs])

        def reported():
            return [m.pthid for m in _sent(c, rel_c) if m.type == problem_report.PROBLEM_REPORT_TYPE]

        # a forged accept (a signature by the wrong key) admits nothing behind it
        forged = Message(id="accept-2", type=core.ACCEPT_TYPE, body={"agreement": theirs.record[:-10] + bytes(10)},
                         thid=aid, frm=peer_b.our_did, to=(peer_b.their_did,), created_time=c.now())
        await batch(forged, basic("after-forged", theirs.hash))
        assert (await svc.get(aid))["state"] == "proffered"
        assert reported() == [aid, "after-forged"]

        await batch(accept, basic("bound-1", theirs.hash), basic("unbound-1"),
                    basic("wrong-1", b"\x02" * 32))
        assert (await svc.get(aid))["state"] == "accepted"
        assert [m["id"] for m in await c.messages(relationship=rel_c, type=BASIC)] == ["bound-1"]
        assert reported()[2:] == ["unbound-1", "wrong-1"]
        await _stop(nursery, rc)


def _sent(agent, rel):
    return [message.decode(a.plaintext, understood=core.UNDERSTOOD)
            for a in agent.store.archived(relationship_id=rel, direction="out", limit=1000)]


async def test_per_relationship_override(tmp_path):
    async with trio.open_nursery() as nursery:
        rb, rc, rel_b, rel_c = await _pair(nursery, tmp_path)  # require defaults to false
        b, c = rb.agent, rc.agent
        problems = []
        nursery.start_soon(partial(collect, b, problems, kinds=("problem.received",)))
        await trio.sleep(0.05)
        await b.send(rel_b, type=BASIC, body={"content": "1"})
        await wait_for(lambda: _true(len(_received(c, rel_c)) == 1))
        assert (await c.update_relationship(rel_c, require_agreement=True))["require_agreement"] is True
        assert (await c.service("terms").agreements(rel_c))["required"] is True
        await b.send(rel_b, type=BASIC, body={"content": "2"})
        await wait_for(lambda: _true(len(problems) == 1))
        assert problems[0]["code"] == "e.p.req.agreement-required"
        await c.update_relationship(rel_c, require_agreement=None)  # back to the config default
        await b.send(rel_b, type=BASIC, body={"content": "3"})
        await wait_for(lambda: _true(len(_received(c, rel_c)) == 2))
        assert [m.body["content"] for m in _received(c, rel_c)] == ["1", "3"]
        await _stop(nursery, rb, rc)


async def test_admit_and_outbound_are_cheap_without_terms(tmp_path):
    async with trio.open_nursery() as nursery:
        rb, rc, rel_b, rel_c = await _pair(nursery, tmp_path)
        svc_b, svc_c = rb.agent.service("terms"), rc.agent.service("terms")
        msg = Message(id="m", type=BASIC, body={})
        assert svc_b.outbound(rb.agent.peer(rel_b), msg) is msg  # no agreement: the same object
        svc_c.admit(rc.agent.peer(rel_c), msg)
        assert svc_c._exempt_cache == {}  # the fast path did not even parse the type
        await _stop(nursery, rb, rc)


# --- config ------------------------------------------------------------------------------------


def test_config_validation():
    policy, require = parse_config({"accept": [NO_TRACKING], "alternatives": {SERVICE_ONLY: IMPROVE},
                                    "reject": [NO_THIRD], "require": True})
    assert require is True and dict(policy.alternatives) == {SERVICE_ONLY: IMPROVE}
    assert parse_config({}) == (core.Policy(), False)
    for bad in ({"accept": ["p2p:terms:nope"]}, {"reject": "x"}, {"alternatives": {SERVICE_ONLY: NO_THIRD}},
                {"alternatives": {"nope": IMPROVE}}, {"accept": [NO_THIRD], "reject": [NO_THIRD]},
                {"require": "yes"}, {"colour": "blue"}, {"alternatives": [SERVICE_ONLY]}):
        with pytest.raises(ConfigError):
            parse_config(bad)


async def _true(value):
    return value
