"""terms/1.0 (spec/17): the agreement state machine over every transition, the business
policy, the COSE_Sign record checked with code that is not ours (libsodium over a
cbor2-built Sig_structure, and pycose's COSE_Sign in both directions), x-agreement,
mutations, and the interop vectors."""

import hashlib
import json
import pathlib

import cbor2
import nacl.bindings
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycose.algorithms import EdDSA
from pycose.headers import KID, Algorithm
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import SignMessage
from pycose.messages.signer import CoseSignature

from cddl_schema import check
from p2p.core import envelope, keys, message
from p2p.core.errors import BadArgument, LocalError, RemoteError, StateError
from p2p.core.message import Message
from p2p.core.protocols import connection
from p2p.core.protocols import terms as T
from p2p.core.protocols.errors import UnexpectedMessage

NOW = 1_764_320_000
CK = keys.AgentKeys.from_secrets(b"\x01" * 32, b"\x02" * 32)
BK = keys.AgentKeys.from_secrets(b"\x03" * 32, b"\x04" * 32)
CDID, BDID = connection.pairwise_did(CK), connection.pairwise_did(BK)
CSIGN = envelope.SigningKey.from_seed(T.signing_kid(CDID), CK.signing.seed)
BSIGN = envelope.SigningKey.from_seed(T.signing_kid(BDID), BK.signing.seed)
TERMS = ("p2p:terms:delete-on-revoke", "p2p:terms:no-tracking", "p2p:terms:service-only")
COUNTERED = ("p2p:terms:no-tracking", "p2p:terms:retain-limited", "p2p:terms:service-only")
VECTORS = pathlib.Path(__file__).resolve().parent.parent / "interop" / "vectors" / "notifications"


def wire(msg: Message) -> Message:
    """Through the bytes, as the peer sees it."""
    return message.decode(message.encode(msg))


def pair(state: T.State) -> tuple[T.Agreement, T.Agreement]:
    """(customer, business), both in `state` (the states are reached in lockstep)."""
    c = T.Agreement.drafted(id="agr-1", terms=TERMS, customer=CDID, business=BDID, now=NOW)
    b = T.Agreement.awaiting(customer=CDID, business=BDID)
    if state is T.State.DRAFTED:
        return c, b
    b.receive_proffer(wire(c.proffer(CSIGN, id="proffer-1", now=NOW)), customer_key=CK.signing.public)
    if state is T.State.PROFFERED:
        return c, b
    if state is T.State.REJECTED:
        c.receive_reject(wire(b.reject("no", id="rej-1", now=NOW)))
        return c, b
    c.receive_counter(wire(b.counter(COUNTERED, BSIGN, id="ctr-1", now=NOW)), business_key=BK.signing.public)
    if state is T.State.COUNTERED:
        return c, b
    b.receive_accept(wire(c.accept(CSIGN, id="acc-1", now=NOW)), their_key=CK.signing.public)
    if state is T.State.ACCEPTED:
        return c, b
    b.receive_withdraw(wire(c.withdraw(id="wd-1", now=NOW)))
    assert state is T.State.WITHDRAWN
    return c, b


def _signer(agr):
    return CSIGN if agr.role is T.Role.CUSTOMER else BSIGN


def do_send(agr: T.Agreement, event: T.Event):
    signer = _signer(agr)
    if event is T.Event.SEND_PROFFER:
        return agr.proffer(signer, id="m-proffer", now=NOW)
    if event is T.Event.SEND_ACCEPT:
        return agr.accept(signer, id="m-accept", now=NOW)
    if event is T.Event.SEND_COUNTER:
        return agr.counter(COUNTERED, signer, id="m-counter", now=NOW)
    if event is T.Event.SEND_REJECT:
        return agr.reject("no thanks", id="m-reject", now=NOW)
    return agr.withdraw(id="m-withdraw", now=NOW, reason="changed my mind")


_SEND_OF = {T.Event.RECEIVE_PROFFER: T.Event.SEND_PROFFER, T.Event.RECEIVE_ACCEPT: T.Event.SEND_ACCEPT,
            T.Event.RECEIVE_COUNTER: T.Event.SEND_COUNTER, T.Event.RECEIVE_REJECT: T.Event.SEND_REJECT,
            T.Event.RECEIVE_WITHDRAW: T.Event.SEND_WITHDRAW}
_TYPE_OF = {T.Event.RECEIVE_PROFFER: T.PROFFER_TYPE, T.Event.RECEIVE_ACCEPT: T.ACCEPT_TYPE,
            T.Event.RECEIVE_COUNTER: T.COUNTER_TYPE, T.Event.RECEIVE_REJECT: T.REJECT_TYPE,
            T.Event.RECEIVE_WITHDRAW: T.WITHDRAW_TYPE}


def do_receive(agr: T.Agreement, peer: T.Agreement, event: T.Event):
    try:
        msg = wire(do_send(peer, _SEND_OF[event]))
    except LocalError:  # the peer could not have sent it now: craft one of that type
        msg = Message(id="forged", type=_TYPE_OF[event], body={"reason": "x"}, frm=peer.customer, thid=agr.thid)
    their_key = (BK if agr.role is T.Role.CUSTOMER else CK).signing.public
    if event is T.Event.RECEIVE_PROFFER:
        return agr.receive_proffer(msg, customer_key=their_key)
    if event is T.Event.RECEIVE_COUNTER:
        return agr.receive_counter(msg, business_key=their_key)
    if event is T.Event.RECEIVE_ACCEPT:
        return agr.receive_accept(msg, their_key=their_key)
    if event is T.Event.RECEIVE_REJECT:
        return agr.receive_reject(msg)
    return agr.receive_withdraw(msg)


def snapshot(agr: T.Agreement) -> tuple:
    return agr.state, agr.thid, agr.payload, agr.record, agr.signature


@pytest.mark.parametrize("role", list(T.Role))
@pytest.mark.parametrize("state", list(T.State))
@pytest.mark.parametrize("event", list(T.Event))
def test_every_transition(role, state, event):
    c, b = pair(state)
    agr, peer = (c, b) if role is T.Role.CUSTOMER else (b, c)
    expected = T.TRANSITIONS[role][state].get(event)
    before = snapshot(agr)
    run = (lambda: do_receive(agr, peer, event)) if event in T.REMOTE_EVENTS else (lambda: do_send(agr, event))
    if expected is None:
        error = UnexpectedMessage if event in T.REMOTE_EVENTS else StateError
        with pytest.raises(error, match=f"cannot {event.value} in state {state.value}"):
            run()
        assert snapshot(agr) == before
    else:
        run()
        assert agr.state is expected


def test_both_sides_end_with_the_same_record():
    for path in (T.State.ACCEPTED,):
        c, b = pair(path)
        assert c.record == b.record and c.hash == b.hash and c.terms == COUNTERED
        signed = T.open_sign(c.record, expect=("customer", "business"), customer=CK.signing.public,
                             business=BK.signing.public)
        assert signed.hash == hashlib.blake2b(signed.payload, digest_size=32).digest()
        assert check("terms-record", c.record) == []


def test_direct_accept_by_policy():
    c, b = pair(T.State.PROFFERED)
    answer = b.respond(T.Policy(accept=set(TERMS)), BSIGN, id="ans", now=NOW)
    assert answer.type == T.ACCEPT_TYPE and b.state is T.State.ACCEPTED
    c.receive_accept(wire(answer), their_key=BK.signing.public)
    assert c.state is T.State.ACCEPTED and c.record == b.record and c.terms == TERMS


def test_accept_of_another_payload_is_refused_and_state_kept():
    c, b = pair(T.State.PROFFERED)
    other = T.Agreement.drafted(id="agr-1", terms=TERMS[:2], customer=CDID, business=BDID, now=NOW)
    proffer = wire(other.proffer(CSIGN, id="proffer-1", now=NOW))
    b2 = T.Agreement.awaiting(customer=CDID, business=BDID)
    b2.receive_proffer(proffer, customer_key=CK.signing.public)
    forged = wire(b2.accept(BSIGN, id="a", now=NOW))
    before = snapshot(c)
    with pytest.raises(T.AgreementMismatch):
        c.receive_accept(forged, their_key=BK.signing.public)
    assert snapshot(c) == before


def test_wrong_business_key_is_bad_signature():
    c, b = pair(T.State.PROFFERED)
    answer = wire(b.respond(T.Policy(accept=set(TERMS)), BSIGN, id="ans", now=NOW))
    with pytest.raises(RemoteError) as info:
        c.receive_accept(answer, their_key=CK.signing.public)
    assert info.value.code == "bad-signature" and c.state is T.State.PROFFERED


# --- policy ---------------------------------------------------------------------------------------

ROSTER_IDS = [t.id for t in T.ROSTER]


@st.composite
def policies(draw):
    ids = draw(st.permutations(ROSTER_IDS))
    cut1, cut2 = sorted(draw(st.tuples(st.integers(0, len(ids)), st.integers(0, len(ids)))))
    accept, reject = set(ids[:cut1]), set(ids[cut2:])
    alternatives = {}
    for t in ids[cut1:cut2]:
        alts = T.TERMS[t].alternatives
        if alts and draw(st.booleans()):
            alternatives[t] = draw(st.sampled_from(alts))
    return T.Policy(accept, tuple(alternatives.items()), reject)


@settings(max_examples=300, deadline=None)
@given(st.sets(st.sampled_from(ROSTER_IDS), min_size=1), policies())
def test_decide_is_consistent_with_the_roster(proffered, policy):
    terms = T.canonical_terms(proffered)
    verdict = T.decide(terms, policy)
    if verdict.kind == "accept":
        assert set(terms) <= policy.accept | {a for a, b in policy.alternatives if a == b}
    elif verdict.kind == "counter":
        T.check_counter(terms, verdict.terms)  # a counter by policy is always a valid counter
    else:
        assert verdict.terms and all(t not in policy.accept for t in verdict.terms)


def test_policy_refuses_nonsense():
    with pytest.raises(BadArgument):
        T.Policy(accept={"p2p:terms:sell-my-data"})
    with pytest.raises(BadArgument):
        T.Policy(alternatives=(("p2p:terms:no-tracking", "p2p:terms:no-marketing"),))
    with pytest.raises(BadArgument):
        T.Policy(accept={"p2p:terms:no-tracking"}, reject={"p2p:terms:no-tracking"})
    with pytest.raises(BadArgument):
        T.Agreement.drafted(id="a", terms=["p2p:terms:sell-my-data"], customer=CDID, business=BDID, now=NOW)


# --- the record, independently -----------------------------------------------------------------------


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature", b"", protected, b"", payload])


def test_record_verifies_with_libsodium_over_cbor2_sig_structure():
    c, _ = pair(T.State.ACCEPTED)
    tag = cbor2.loads(c.record)
    assert tag.tag == 98
    body_protected, unprotected, payload, sigs = tag.value
    assert body_protected == b"" and dict(unprotected) == {} and len(sigs) == 2
    for (protected, unprot, sig), k, did in zip(sigs, (CK, BK), (CDID, BDID)):
        header = cbor2.loads(protected)
        assert header == {1: -8, 4: (did + "#key-1").encode()} and dict(unprot) == {}
        nacl.bindings.crypto_sign_open(sig + sig_structure(protected, payload), k.signing.public)
    assert cbor2.loads(payload)["terms"] == list(COUNTERED)
    assert c.hash == hashlib.blake2b(payload, digest_size=32).digest()


def _thaw(v):
    if isinstance(v, (list, tuple)):
        return [_thaw(x) for x in v]
    if hasattr(v, "items"):
        return {k: _thaw(x) for k, x in v.items()}
    return v


def test_pycose_verifies_our_record():
    c, _ = pair(T.State.ACCEPTED)
    # cbor2 decodes tag content as tuples, which pycose's decode() refuses: hand it lists.
    msg = SignMessage.from_cose_obj(_thaw(cbor2.loads(c.record).value), True)
    for signer, k in zip(msg.signers, (CK, BK)):
        signer.key = OKPKey(crv=Ed25519, x=k.signing.public)
        assert signer.verify_signature()
    msg.signers[1].key = OKPKey(crv=Ed25519, x=CK.signing.public)
    assert not msg.signers[1].verify_signature()


def test_we_open_a_pycose_cose_sign():
    payload = T.Draft("agr-9", TERMS, CDID, BDID, NOW).encode()
    signers = [CoseSignature(phdr={Algorithm: EdDSA, KID: (did + "#key-1").encode()},
                             key=OKPKey(crv=Ed25519, x=k.signing.public, d=k.signing.seed))
               for did, k in ((CDID, CK), (BDID, BK))]
    data = SignMessage(phdr={}, uhdr={}, payload=payload, signers=signers).encode()
    signed = T.open_sign(data, expect=("customer", "business"), customer=CK.signing.public,
                         business=BK.signing.public)
    assert signed.draft.terms == TERMS and signed.payload == payload
    # and the same bytes as ours (Ed25519 is deterministic)
    ours = T.encode_sign(payload, (T.sign(payload, CSIGN), T.sign(payload, BSIGN)))
    assert ours == data


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_mutation_of_a_record_is_a_remote_error(data):
    c, _ = pair(T.State.ACCEPTED)
    record = bytearray(c.record)
    how = data.draw(st.sampled_from(["flip", "truncate", "append"]))
    if how == "flip":
        i = data.draw(st.integers(0, len(record) - 1))
        record[i] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "truncate":
        record = record[:data.draw(st.integers(0, len(record) - 1))]
    else:
        record += data.draw(st.binary(min_size=1, max_size=8))
    with pytest.raises(RemoteError):
        T.open_sign(bytes(record), expect=("customer", "business"), customer=CK.signing.public,
                    business=BK.signing.public)


@settings(max_examples=100, deadline=None)
@given(st.sets(st.sampled_from(ROSTER_IDS), min_size=1), st.text(min_size=1, max_size=20).filter(
    lambda s: all(0x21 <= ord(ch) <= 0x7e for ch in s)), st.integers(0, 2**40))
def test_proffer_round_trip(terms, agreement_id, now):
    c = T.Agreement.drafted(id=agreement_id, terms=terms, customer=CDID, business=BDID, now=now)
    msg = c.proffer(CSIGN, id="p-1", now=now)
    assert check("terms-proffer", message.encode(msg)) == []
    b = T.Agreement.awaiting(customer=CDID, business=BDID)
    draft = b.receive_proffer(wire(msg), customer_key=CK.signing.public)
    assert draft == c.draft and b.payload == c.payload and b.hash == c.hash


def test_reject_and_withdraw_bodies_round_trip():
    c, b = pair(T.State.PROFFERED)
    rej = b.reject("we keep data for 2 years", id="r", now=NOW, terms=["p2p:terms:delete-on-revoke"])
    assert check("terms-reject", message.encode(rej)) == []
    assert c.receive_reject(wire(rej)) == ("we keep data for 2 years", ("p2p:terms:delete-on-revoke",))
    c, b = pair(T.State.ACCEPTED)
    wd = b.withdraw(id="w", now=NOW, reason="closing the shop")
    assert check("terms-withdraw", message.encode(wd)) == []
    assert c.receive_withdraw(wire(wd)) == "closing the shop" and c.state is T.State.WITHDRAWN


def test_withdraw_of_another_agreement_is_refused():
    c, b = pair(T.State.ACCEPTED)
    wd = message.encode(b.withdraw(id="w", now=NOW))
    m = cbor2.loads(wd)
    m["body"]["agreement"] = bytes(32)
    with pytest.raises(T.AgreementMismatch):
        c.receive_withdraw(message.decode(cbor2.dumps(m)))
    assert c.state is T.State.ACCEPTED


# --- x-agreement ----------------------------------------------------------------------------------

NOTE = Message(id="n1", type="https://p2p.example/notifications/1.0/notify", body={}, frm=BDID, to=(CDID,))


def test_bind_and_admit():
    c, _ = pair(T.State.ACCEPTED)
    data = T.encode(T.bind(NOTE, c.hash))
    assert check("terms-bound-message", data) == []
    with pytest.raises(RemoteError) as info:  # a receiver that does not implement terms must refuse
        message.decode(data)
    assert info.value.code == "unknown-critical-field"
    got = message.decode(data, understood=T.UNDERSTOOD)
    assert T.admit(got, agreement_hash=c.hash, required=True).accept
    bad = T.admit(got, agreement_hash=bytes(32), required=True)
    assert not bad.accept and bad.error.code == "agreement-mismatch"
    assert T.admit(NOTE, agreement_hash=c.hash, required=True).error.code == "agreement-required"
    assert T.admit(NOTE, agreement_hash=None, required=True).error.code == "agreement-required"
    assert T.admit(NOTE, agreement_hash=None, required=False).accept
    assert T.admit(got, agreement_hash=None, required=False).error.code == "agreement-mismatch"
    wrong = Message(id="n2", type=NOTE.type, body={}, extensions={"x-agreement": "abc"})
    assert T.admit(wrong, agreement_hash=c.hash, required=True).error.code == "invalid-field"


@pytest.mark.parametrize("mtype", ["https://p2p.example/connect/1.0/request", T.PROFFER_TYPE,
                                   "https://didcomm.org/report-problem/2.0/problem-report",
                                   "https://didcomm.org/trust-ping/2.0/ping"])
def test_exempt_protocols_pass_without_agreement(mtype):
    assert T.admit(Message(id="x", type=mtype, body={}), agreement_hash=None, required=True).accept


# --- vectors ------------------------------------------------------------------------------------


def _vectors(prefix: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(VECTORS.glob(f"*-{prefix}*.json"))]


def test_vector_counts():
    vectors = [json.loads(p.read_text()) for p in VECTORS.glob("*.json")]
    assert len(vectors) >= 20 and sum(v["reject"] for v in vectors) >= 8
    assert sum(v["op"].startswith("terms_") and v["reject"] for v in vectors) >= 8


def test_terms_vectors_independently():
    (proffer,) = _vectors("terms-proffer")
    (accepted,) = _vectors("terms-respond-accept")
    (final,) = _vectors("terms-accept-counter")
    req = proffer["request"]
    c_pub, _ = nacl.bindings.crypto_sign_seed_keypair(bytes.fromhex(req["customer_ed25519_seed"]))
    b_pub = bytes.fromhex(final["request"]["business_public"])
    payload = bytes.fromhex(proffer["expect"]["payload"])
    assert cbor2.loads(payload) == {"id": "agr-1", "terms": req["terms"], "version": 1, "customer": req["customer"],
                                    "business": req["business"], "created_time": req["now"]}
    assert proffer["expect"]["hash"] == hashlib.blake2b(payload, digest_size=32).hexdigest()
    for record, n in ((proffer["expect"]["agreement"], 1), (accepted["expect"]["agreement"], 2),
                      (final["expect"]["record"], 2)):
        _, _, pl, sigs = cbor2.loads(bytes.fromhex(record)).value
        assert len(sigs) == n
        for (protected, _, sig), pub in zip(sigs, (c_pub, b_pub)):
            nacl.bindings.crypto_sign_open(sig + sig_structure(protected, pl), pub)
    assert final["expect"]["hash"] == hashlib.blake2b(pl, digest_size=32).hexdigest()
    bound = cbor2.loads(bytes.fromhex(_vectors("terms-bind")[0]["expect"]["message"]))
    assert bound["x-agreement"].hex() == final["expect"]["hash"] and bound["crit"] == ["x-agreement"]
