"""ownership/1.0 end to end: a business daemon (role = "business") and three customer
daemons A, B, C, real processes over TCP, driven only through the admin API and the
`p2p` command (tests/daemon_harness.py).

What it proves: records for serials 100..105 of model X1 (A: 100-102, B: 103-105) and
for K2 101..103 (C) reach their owners; a recall for X1 101..103 reaches exactly the
owners of those serials (A and B, once each; C, who owns the same serial numbers of
another model, gets nothing), and a recall for X1 100 reaches A only; A transfers its
102 to C (C's DID with the business read from C's relationship): A's record is
superseded, C holds a successor naming it as previous; a second recall for 102 reaches
C and not A; every record and update verifies independently with pycose against the
Ed25519 key the did_peer_2 library resolves from the business's agent DID; bad requests
map to 404/409; the registry survives a restart of the business.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import base58
import cbor2
import did_peer_2
import pytest
from pycose.headers import KID
from pycose.keys.curves import Ed25519
from pycose.keys.keyparam import KpKty, OKPKpCurve, OKPKpX
from pycose.keys.keytype import KtyOKP
from pycose.keys import CoseKey
from pycose.messages import CoseMessage

from daemon_harness import ApiError, Cluster, connect_pair, log_problems, wait_for

pytestmark = pytest.mark.slow

UPDATE = "https://p2p.example/ownership/1.0/update"


def records(daemon, **query) -> list[dict]:
    return daemon.api.request("GET", "/ownership/records", query=query)["records"]


def updates(daemon, rel: str) -> list[dict]:
    return daemon.api.messages(relationship=rel, type=UPDATE, direction="in")


def issuer_key(agent_did: str) -> bytes:
    """The business's #key-1, resolved by the did_peer_2 library (not ours)."""
    doc = did_peer_2.resolve(agent_did)
    vm = next(v for v in doc["verificationMethod"] if v["id"] in ("#key-1", agent_did + "#key-1"))
    raw = base58.b58decode(vm["publicKeyMultibase"][1:])
    assert raw[:2] == b"\xed\x01"  # multicodec ed25519-pub
    return raw[2:]


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def pycose_verify(signed_hex: str, public: bytes, kid: str) -> dict:
    # cbor2 (newer versions) gives tuples where pycose expects lists: decode, then hand over.
    tagged = cbor2.loads(bytes.fromhex(signed_hex))
    assert tagged.tag == 18  # COSE_Sign1
    msg = CoseMessage._COSE_MSG_ID[tagged.tag].from_cose_obj(_plain(tagged.value), True)
    msg.key = CoseKey.from_dict({KpKty: KtyOKP, OKPKpCurve: Ed25519, OKPKpX: public})
    assert msg.verify_signature()
    assert msg.get_attr(KID) == kid.encode()
    return cbor2.loads(msg.payload)


def update_payloads(daemon, rel, public, kid) -> list[dict]:
    out = []
    for m in updates(daemon, rel):
        (att,) = m["attachments"]
        out.append(pycose_verify(att["data"]["bytes"], public, kid))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("ownership")) as cluster:
        biz = cluster.add("maker", label="Maker", config={"role": "business"}).start()
        customers = {n: cluster.add(n, label=n).start() for n in ("A", "B", "C")}
        rels = {n: connect_pair(biz, d) for n, d in customers.items()}
        yield biz, customers, rels
        for daemon in (biz, *customers.values()):
            if daemon.running:
                assert daemon.stop() == 0, daemon.log_tail()
            assert not log_problems(daemon.log_text()), daemon.log_tail(80)


def test_a_recall_reaches_exactly_the_owners_of_the_affected_serials_including_after_a_transfer(world):
    biz, cs, rels = world
    A, B, C = cs["A"], cs["B"], cs["C"]
    agent_did = biz.api.status()["did"]
    public, kid = issuer_key(agent_did), agent_did + "#key-1"
    plan = [("A", "X1", s) for s in ("100", "101", "102")] + [("B", "X1", s) for s in ("103", "104", "105")] + \
           [("C", "K2", s) for s in ("101", "102", "103")]
    issued = {}
    for who, model, serial in plan:
        rec = biz.api.request("POST", "/ownership/records", {
            "relationship": rels[who][0], "model": model, "serial": serial, "purchased": "2024-05-01",
            "warranty_end": "2026-05-01"})
        assert rec["state"] == "issued" and rec["side"] == "issuer" and rec["issuer"] == agent_did
        issued[(model, serial)] = rec
    for who in ("A", "B", "C"):
        wait_for(lambda: len(records(cs[who], state="active")) == 3, timeout=15, what=f"{who} holds 3 records")
    wait_for(lambda: len(records(biz, state="active")) == 9, timeout=15, what="records activated on receipt")
    held_a = {r["serial"]: r for r in records(A)}
    assert set(held_a) == {"100", "101", "102"} and all(r["model"] == "X1" for r in held_a.values())
    a_rel = A.api.relationship(rels["A"][1])
    for r in held_a.values():  # independent check: pycose + the did_peer_2 library
        payload = pycose_verify(r["signed"], public, kid)
        assert payload["owner"] == a_rel["our_did"] == r["owner"] and payload["issuer"] == agent_did
        assert a_rel["their_agent_did"] == agent_did

    # recall 1: X1 101..103 -> A (101, 102) and B (103), once each; C (K2 101..103) nothing
    sent = biz.api.request("POST", "/ownership/updates", {
        "kind": "recall", "model": "X1", "serials": {"range": ["101", "103"]}, "title": "Battery recall",
        "text": "Stop charging.", "links": ["https://maker.example/recall/1"]})
    assert sent["recipients"] == 2 and sorted(sent["relationships"]) == sorted([rels["A"][0], rels["B"][0]])
    # recall 2: X1 100 -> A only
    sent = biz.api.request("POST", "/ownership/updates", {"kind": "recall", "model": "X1", "title": "Cable recall",
                                                          "serials": {"list": ["100"]}})
    assert sent["relationships"] == [rels["A"][0]]
    wait_for(lambda: (len(updates(A, rels["A"][1])), len(updates(B, rels["B"][1]))) == (2, 1), timeout=15,
             what="recalls delivered")
    got_a = update_payloads(A, rels["A"][1], public, kid)
    assert [u["title"] for u in got_a] == ["Battery recall", "Cable recall"]
    assert got_a[0]["serials"] == {"range": ["101", "103"]} and got_a[0]["issuer"] == agent_did
    assert [u["title"] for u in update_payloads(B, rels["B"][1], public, kid)] == ["Battery recall"]
    assert updates(C, rels["C"][1]) == []

    # A transfers X1 102 to C: C's DID with the business is its relationship's our_did
    c_did = C.api.relationship(rels["C"][1])["our_did"]
    old = held_a["102"]
    pending = A.api.request("POST", f"/ownership/records/{old['id']}/transfer", {"new_owner": c_did})
    assert pending["state"] == "transfer_pending" and pending["pending_owner"] == c_did
    wait_for(lambda: A.api.request("GET", f"/ownership/records/{old['id']}")["state"] == "superseded", timeout=15,
             what="A's copy superseded")
    new = wait_for(lambda: next(iter(records(C, model="X1")), None), timeout=15, what="C holds the successor")
    assert (new["serial"], new["previous"], new["owner"], new["state"]) == ("102", old["id"], c_did, "active")
    payload = pycose_verify(new["signed"], public, kid)
    assert payload["previous"] == old["id"] and payload["owner"] == c_did
    assert biz.api.request("GET", f"/ownership/records/{old['id']}")["state"] == "superseded"

    # recall 3: X1 102 -> C, not A
    sent = biz.api.request("POST", "/ownership/updates", {"kind": "firmware", "model": "X1", "title": "Fix for 102",
                                                          "serials": {"list": ["102"]}})
    assert sent["relationships"] == [rels["C"][0]]
    wait_for(lambda: len(updates(C, rels["C"][1])) == 1, timeout=15, what="C got the recall")
    assert [u["title"] for u in update_payloads(C, rels["C"][1], public, kid)] == ["Fix for 102"]
    assert len(updates(A, rels["A"][1])) == 2 and len(updates(B, rels["B"][1])) == 1

    # errors: a second record for a product with a live one, an unknown record, a customer issuing
    with pytest.raises(ApiError) as e:
        biz.api.request("POST", "/ownership/records", {"relationship": rels["B"][0], "model": "X1", "serial": "102",
                                                       "purchased": "2024-05-01", "warranty_end": "2026-05-01"})
    assert (e.value.status, e.value.code) == (409, "record-state")
    with pytest.raises(ApiError) as e:
        A.api.request("GET", "/ownership/records/nope")
    assert (e.value.status, e.value.code) == (404, "record-not-found")
    with pytest.raises(ApiError) as e:
        A.api.request("POST", "/ownership/updates", {"kind": "recall", "model": "X1", "title": "fake"})
    assert (e.value.status, e.value.code) == (409, "not-issuer")
    with pytest.raises(ApiError) as e:
        A.api.request("POST", f"/ownership/records/{old['id']}/transfer", {"new_owner": c_did})
    assert (e.value.status, e.value.code) == (409, "record-state")

    # the registry survives a restart: a whole-model update reaches A (100, 101), B (103-105) and C (102)
    biz.restart()
    sent = biz.api.request("POST", "/ownership/updates", {"kind": "manual", "model": "X1", "title": "Manual v2"})
    assert sorted(sent["relationships"]) == sorted([rels["A"][0], rels["B"][0], rels["C"][0]])
    sent = biz.api.request("POST", "/ownership/updates", {"kind": "recall", "model": "X1", "title": "Last",
                                                          "serials": {"range": ["102", "102"]}})
    assert sent["relationships"] == [rels["C"][0]]

    # present: C shows its record to the business, which verifies and archives it
    shown = C.api.request("POST", f"/ownership/records/{new['id']}/present",
                          {"relationship": rels["C"][1], "challenge": "n-1"})
    assert shown["audience"] == C.api.relationship(rels["C"][1])["their_did"]
    wait_for(lambda: [m for m in biz.api.messages(relationship=rels["C"][0], direction="in",
                                                  type="https://p2p.example/ownership/1.0/present")
                      if m["id"] == shown["id"]], timeout=15, what="the presentation arrived")
    # a transfer to someone not connected waits; the business cancels it; B's copy is active again
    b104 = next(r for r in records(B) if r["serial"] == "104")
    B.api.request("POST", f"/ownership/records/{b104['id']}/transfer", {"new_owner": "did:example:stranger"})
    wait_for(lambda: biz.api.request("GET", f"/ownership/records/{b104['id']}")["state"] == "transfer_pending",
             timeout=15, what="pending at the business")
    assert biz.api.request("POST", f"/ownership/records/{b104['id']}/cancel-transfer")["state"] == "active"
    wait_for(lambda: B.api.request("GET", f"/ownership/records/{b104['id']}")["state"] == "active", timeout=15,
             what="B's copy active again")
    # revoke: B's 105 is revoked at both ends and gets no more updates
    b105 = next(r for r in records(B) if r["serial"] == "105")
    assert biz.api.request("POST", f"/ownership/records/{b105['id']}/revoke", {"reason": "returned"})["state"] == \
        "revoked"
    wait_for(lambda: B.api.request("GET", f"/ownership/records/{b105['id']}")["state"] == "revoked", timeout=15,
             what="B's copy revoked")
    sent = biz.api.request("POST", "/ownership/updates", {"kind": "warranty", "model": "X1", "title": "105 only",
                                                          "serials": {"list": ["105"]}})
    assert sent["recipients"] == 0

    # the CLI drives the same routes
    out = json.loads(C.run_cli("ownership", "list", "--model", "X1", "--json").stdout)
    assert [r["id"] for r in out["records"]] == [new["id"]]
    me = C.run_cli("ownership", "me", rels["C"][1][:12]).stdout.strip()
    assert me == c_did
    shown = C.run_cli("ownership", "show", new["id"]).stdout
    assert "X1 #102" in shown and old["id"] in shown
