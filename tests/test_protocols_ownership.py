"""ownership/1.0 (spec/19-ownership.md): signed records, updates, consents and proofs
checked independently (libsodium over a cbor2-built Sig_structure; pycose signs, we
verify), the record state machine over every transition, the registry's
`owners_of` against a brute-force model, mutation, CDDL and the vectors."""

import hashlib
import json
import pathlib

import cbor2
import nacl.bindings
import nacl.exceptions
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycose import algorithms as pc_alg
from pycose import headers as H
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519 as PC_Ed25519
from pycose.messages import Sign1Message

from cddl_schema import check
from p2p.core import envelope, keys, message
from p2p.core.errors import BadArgument, BadSignature, ClockSkew, LocalError, RemoteError, SenderMismatch, StateError
from p2p.core.message import Attachment, Message
from p2p.core.protocols import connection
from p2p.core.protocols import ownership as o
from p2p.core.protocols.ownership import TRANSITIONS, Event, Holding, Record, Registry, SerialRange, State, Update
from p2p.core.protocols.errors import IllegalTransition

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOW = 1_764_320_000


def ident(name):
    h = lambda s: hashlib.sha256(f"{name} {s}".encode()).digest()  # noqa: E731
    agent = keys.AgentKeys.from_secrets(h("ed"), h("x"))
    d = connection.pairwise_did(agent)
    return d, envelope.SigningKey.from_seed(o.signing_kid(d), agent.signing.seed)


SHOP, SHOP_KEY = ident("shop")
ALICE, ALICE_KEY = ident("alice")
BOB, BOB_KEY = ident("bob")
CAROL, CAROL_KEY = ident("carol")
MALLORY, MALLORY_KEY = ident("mallory")


def record(id="rec-1", owner=ALICE, serial="K2-000042", **kw):
    return Record(id=id, issuer=SHOP, owner=owner, model=kw.pop("model", "Kettle K2"), serial=serial,
                  purchased="2025-11-01", warranty_end="2027-11-01", issued_time=NOW, **kw)


def independent_verify(signed: bytes, public: bytes) -> dict:
    """Check a COSE_Sign1 without p2p: cbor2 decodes, cbor2 builds the Sig_structure,
    libsodium verifies. Returns the payload decoded by cbor2."""
    tag = cbor2.loads(signed)
    assert tag.tag == 18
    protected, unprotected, payload, signature = tag.value
    assert cbor2.loads(protected) == {1: -8, 4: cbor2.loads(protected)[4]} and unprotected == {}
    tbs = cbor2.dumps(["Signature1", protected, b"", payload])
    nacl.bindings.crypto_sign_open(signature + tbs, public)  # raises BadSignatureError if wrong
    return cbor2.loads(payload)


def pycose_sign(payload: bytes, key: envelope.SigningKey) -> bytes:
    msg = Sign1Message(phdr={H.Algorithm: pc_alg.EdDSA, H.KID: key.kid.encode()}, payload=payload)
    msg.key = OKPKey(crv=PC_Ed25519, d=key.seed, x=key.public)
    return msg.encode()


# --- signatures, both directions --------------------------------------------------------


def test_we_sign_libsodium_verifies():
    signed = o.sign_record(record(), SHOP_KEY)
    payload = independent_verify(signed, SHOP_KEY.public)
    assert payload == {"id": "rec-1", "model": "Kettle K2", "owner": ALICE, "issuer": SHOP, "serial": "K2-000042",
                       "purchased": "2025-11-01", "issued_time": NOW, "warranty_end": "2027-11-01"}
    assert cbor2.loads(cbor2.loads(signed).value[0])[4] == (SHOP + "#key-1").encode()
    upd = Update("u", SHOP, "recall", "Kettle K2", SerialRange("K2-1", "K2-9"), "t", "x", (), NOW)
    assert independent_verify(o.sign_update(upd, SHOP_KEY), SHOP_KEY.public)["serials"] == {"range": ["K2-1", "K2-9"]}
    consent = o.sign_consent(record(), BOB, NOW, ALICE_KEY)
    assert independent_verify(consent, ALICE_KEY.public) == {"time": NOW, "record": "rec-1", "new_owner": BOB}
    with pytest.raises(nacl.exceptions.BadSignatureError):
        independent_verify(consent, BOB_KEY.public)


def test_pycose_signs_we_verify():
    rec = record(previous="rec-0")
    signed = pycose_sign(cbor2.dumps(rec.to_map(), canonical=True), SHOP_KEY)
    assert o.verify_record(signed, issuer=SHOP, owner=ALICE) == rec
    assert o.verify_record(signed) == rec  # self-certifying issuer; the caller then trusts rec.issuer or not
    consent = pycose_sign(cbor2.dumps({"record": "rec-0", "new_owner": BOB, "time": NOW}), ALICE_KEY)
    assert o.verify_consent(consent, record=record(id="rec-0"), new_owner=BOB, now=NOW).signer_kid == ALICE_KEY.kid
    forged = pycose_sign(cbor2.dumps(rec.to_map()), MALLORY_KEY)
    with pytest.raises(o.WrongIssuer):
        o.verify_record(forged, issuer=SHOP)
    with pytest.raises(o.WrongIssuer):  # signed by Mallory, claims the shop as issuer
        o.verify_record(forged)


def test_vector_signatures_verify_independently():
    checked = 0
    for path in sorted((ROOT / "interop" / "vectors" / "customer").glob("*.json")):
        v = json.loads(path.read_text())
        if v["reject"] or "signed" not in v["expect"]:
            continue
        signer = v["expect"].get("issuer") or v["expect"].get("owner")
        public = keys.AgentKeys.from_secrets(*(bytes.fromhex(v["request"][f"{p}{k}"]) for k in (
            "ed25519_seed", "x25519_secret") for p in ["issuer_" if "issuer_ed25519_seed" in v["request"]
                                                       else "owner_"])).signing.public
        assert signer.startswith("did:peer:2")
        payload = independent_verify(bytes.fromhex(v["expect"]["signed"]), public)
        assert cbor2.dumps(payload, canonical=True) == bytes.fromhex(v["expect"]["payload"]), path.name
        checked += 1
    assert checked >= 3


# --- verification faults ------------------------------------------------------------------


def test_record_faults():
    signed = o.sign_record(record(), SHOP_KEY)
    with pytest.raises(o.WrongOwner):
        o.verify_record(signed, issuer=SHOP, owner=BOB)
    with pytest.raises(o.WrongIssuer):
        o.verify_record(signed, issuer=MALLORY)
    bad = bytearray(signed)
    bad[-5] ^= 0x40
    with pytest.raises(BadSignature):
        o.verify_record(bytes(bad), issuer=SHOP)
    for junk in (b"", b"\xa0", b"\xd2\x80", signed[:-1], b"\xd2" + b"\x00" * 20000, "text"):
        with pytest.raises(o.BadRecord):
            o.verify_record(junk, issuer=SHOP)
    for change in ({"purchased": "2025-02-29"}, {"warranty_end": "2025-10-31"}, {"serial": "has space"},
                   {"extra": 1}, {"issued_time": -1}, {"previous": "rec-1"}, {"owner": "not a did"}):
        m = {**record().to_map(), **change}
        with pytest.raises(o.BadRecord):
            o.verify_record(envelope.seal_signed(cbor2.dumps(m), SHOP_KEY), issuer=SHOP)
    # The payload names another issuer than the signer.
    m = {**record().to_map(), "issuer": MALLORY}
    with pytest.raises(o.WrongIssuer):
        o.verify_record(envelope.seal_signed(cbor2.dumps(m), SHOP_KEY), issuer=SHOP)
    # Key #key-2 (X25519) as signer kid.
    other = envelope.SigningKey.from_seed(SHOP + "#key-2", SHOP_KEY.seed)
    with pytest.raises(o.WrongIssuer):
        o.verify_record(envelope.seal_signed(record().payload(), other))


def test_dates():
    assert o._is_date("2024-02-29") and not o._is_date("2023-02-29") and not o._is_date("2100-02-29")
    assert o._is_date("2000-02-29") and not o._is_date("2025-13-01") and not o._is_date("2025-04-31")
    assert not o._is_date("2025-1-01") and not o._is_date("2025-01-01\n") and not o._is_date("2025-01-00")


def test_update_faults():
    ok = Update("u", SHOP, "firmware", "Kettle K2", frozenset({"K2-7"}), "t", "", ("https://s.example/f",), NOW)
    assert o.verify_update(o.sign_update(ok, SHOP_KEY), issuer=SHOP) == ok
    with pytest.raises(o.WrongIssuer):
        o.verify_update(o.sign_update(ok.__class__(**{**_fields(ok), "issuer": MALLORY}), MALLORY_KEY), issuer=SHOP)
    base = ok.to_map()
    for change in ({"serials": {"range": ["K2-10", "K2-9"]}}, {"serials": {"range": ["K2-1"]}},
                   {"serials": {"list": []}}, {"serials": {"list": ["a", "a"]}}, {"serials": {"all": True}},
                   {"kind": "advert"}, {"links": ["http://x.example"]}, {"title": ""}, {"extra": 0}):
        with pytest.raises(o.BadUpdate):
            o.verify_update(envelope.seal_signed(cbor2.dumps({**base, **change}), SHOP_KEY), issuer=SHOP)
    with pytest.raises(BadArgument):  # we never sign what we would refuse
        o.sign_update(Update("u", SHOP, "recall", "K", SerialRange("9", "1"), "t", "", (), NOW), SHOP_KEY)


def _fields(u):
    return {f: getattr(u, f) for f in u.__dataclass_fields__}


def test_consent_faults():
    rec = record()
    good = o.sign_consent(rec, BOB, NOW, ALICE_KEY)
    assert o.verify_consent(good, record=rec, new_owner=BOB, now=NOW + 10).time == NOW
    with pytest.raises(o.BadConsent):
        o.verify_consent(good, record=rec, new_owner=CAROL, now=NOW)
    with pytest.raises(o.BadConsent):
        o.verify_consent(good, record=record(id="rec-2"), new_owner=BOB, now=NOW)
    with pytest.raises(o.BadConsent):  # signed by someone else than the owner
        o.verify_consent(envelope.seal_signed(o.Consent("rec-1", BOB, NOW).payload(), BOB_KEY), record=rec,
                         new_owner=BOB, now=NOW)
    with pytest.raises(ClockSkew):
        o.verify_consent(good, record=rec, new_owner=BOB, now=NOW - 301)
    with pytest.raises(o.BadConsent):
        o.verify_consent(envelope.seal_signed(cbor2.dumps({"record": "rec-1", "new_owner": BOB, "time": NOW,
                                                           "x": 1}), ALICE_KEY), record=rec, new_owner=BOB, now=NOW)
    bad = bytearray(good)
    bad[-1] ^= 1
    with pytest.raises(BadSignature):
        o.verify_consent(bytes(bad), record=rec, new_owner=BOB, now=NOW)
    with pytest.raises(BadArgument):
        o.sign_consent(rec, BOB, NOW, BOB_KEY)  # not the owner's key
    with pytest.raises(BadArgument):
        o.sign_consent(rec, ALICE, NOW, ALICE_KEY)  # to oneself


def test_sign_record_refuses_wrong_key():
    with pytest.raises(BadArgument):
        o.sign_record(record(), MALLORY_KEY)
    fake = envelope.SigningKey.from_seed(SHOP + "#key-1", MALLORY_KEY.seed)  # right kid, wrong key
    with pytest.raises(BadArgument):
        o.sign_record(record(), fake)


# --- mutation --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_signed_objects_never_verify_to_other_data(data):
    rec = record()
    signed = o.sign_record(rec, SHOP_KEY)
    i = data.draw(st.integers(0, len(signed) - 1))
    how = data.draw(st.sampled_from(["flip", "truncate", "append"]))
    if how == "flip":
        bad = signed[:i] + bytes([signed[i] ^ data.draw(st.integers(1, 255))]) + signed[i + 1:]
    elif how == "truncate":
        bad = signed[:i]
    else:
        bad = signed + data.draw(st.binary(min_size=1, max_size=8))
    try:
        got = o.verify_record(bad, issuer=SHOP, owner=ALICE)
    except RemoteError:
        return
    assert got == rec  # only a change that leaves the signed content intact may pass


# --- record state machine ----------------------------------------------------------------------


@pytest.mark.parametrize("state, event", [(s, e) for s in State for e in Event])
def test_every_record_transition(state, event):
    expected = TRANSITIONS[state].get(event)
    for remote in (False, True):
        h = Holding(record(), b"", state)
        if expected is None:
            with pytest.raises(IllegalTransition if remote else StateError):
                h.step(event, remote=remote)
            assert h.state is state
        else:
            assert h.step(event, remote=remote) is expected and h.state is expected


def test_terminal_states():
    assert TRANSITIONS[State.SUPERSEDED] == {} and TRANSITIONS[State.REVOKED] == {}
    assert o.LIVE == {State.ISSUED, State.ACTIVE, State.TRANSFER_PENDING}


# --- messages and the registry -------------------------------------------------------------------


def transfer_msg(consent, *, frm=ALICE, record_id="rec-1", new_owner=BOB, id="x-1"):
    return Message(id=id, type=o.message_type("transfer-request"), body={"record": record_id, "new_owner": new_owner},
                   frm=frm, to=(SHOP,), created_time=NOW,
                   attachments=(Attachment(id="consent", data={"bytes": consent}),))


def test_full_flow_owner_and_business():
    reg = Registry(SHOP)
    signed = o.sign_record(record(), SHOP_KEY)
    reg.issue(signed)
    delivered = o.record_message(signed, id="m-1", frm=SHOP, to=ALICE, now=NOW)
    wire = message.decode(message.encode(delivered))
    assert check("own-record-message", message.encode(delivered)) == []
    alice = o.receive_record(wire, issuer=SHOP, owner=ALICE)
    with pytest.raises(o.WrongOwner):
        o.receive_record(wire, issuer=SHOP, owner=BOB)
    reg.activate("rec-1")
    assert alice.state is State.ACTIVE
    # Alice asks to transfer to Bob.
    req = o.transfer_request(alice, BOB, o.sign_consent(alice.record, BOB, NOW, ALICE_KEY), id="x-1", frm=ALICE,
                             to=SHOP, now=NOW)
    assert alice.state is State.TRANSFER_PENDING and check("own-transfer-request", message.encode(req)) == []
    with pytest.raises(StateError):  # not twice
        o.transfer_request(alice, BOB, b"", id="x-2", frm=ALICE, to=SHOP, now=NOW)
    got = reg.request_transfer(message.decode(message.encode(req)), now=NOW)
    assert (got.record, got.new_owner) == ("rec-1", BOB) and reg.get("rec-1").state is State.TRANSFER_PENDING
    with pytest.raises(IllegalTransition):  # a replayed request on a pending record
        reg.request_transfer(req, now=NOW)
    with pytest.raises(BadArgument):  # the successor must go to Bob
        reg.complete_transfer("rec-1", o.sign_record(record(id="rec-2", owner=CAROL, previous="rec-1"), SHOP_KEY))
    assert reg.get("rec-1").state is State.TRANSFER_PENDING
    new = reg.complete_transfer("rec-1", o.sign_record(record(id="rec-2", owner=BOB, previous="rec-1"), SHOP_KEY))
    assert reg.get("rec-1").state is State.SUPERSEDED and new.state is State.ISSUED
    assert reg.current("Kettle K2", "K2-000042") is new
    done = o.transfer_complete(alice.record, request_id="x-1", id="m-2", frm=SHOP, now=NOW)
    assert check("own-transfer-complete", message.encode(done)) == []
    with pytest.raises(SenderMismatch):
        o.receive_status(done, alice, issuer=MALLORY)
    assert o.receive_status(done, alice, issuer=SHOP) is State.SUPERSEDED
    with pytest.raises(IllegalTransition):
        o.receive_status(done, alice, issuer=SHOP)
    # Bob presents his record to a repair shop.
    bob = Holding(new.record, new.signed, State.ACTIVE)
    pres = o.present_message(bob, BOB_KEY, id="p-1", frm=BOB, to=CAROL, now=NOW, challenge="c-1")
    assert check("own-present", message.encode(pres)) == []
    assert o.verify_presentation(pres, audience=CAROL, now=NOW + 5, issuer=SHOP, challenge="c-1") == new.record
    for kw, err in [(dict(audience=MALLORY), o.BadProof), (dict(challenge="c-2"), o.BadProof),
                    (dict(now=NOW + 3601), o.BadProof), (dict(now=NOW - 301), ClockSkew),
                    (dict(issuer=MALLORY), o.WrongIssuer)]:
        args = {"audience": CAROL, "now": NOW + 5, "issuer": SHOP, "challenge": "c-1", **kw}
        with pytest.raises(err):
            o.verify_presentation(pres, **args)
    with pytest.raises(StateError):  # Alice's copy is superseded: not hers to show
        o.present_message(alice, ALICE_KEY, id="p-2", frm=ALICE, to=CAROL, now=NOW)
    # Revocation.
    revoke = o.revoke_message(new.record, id="m-3", frm=SHOP, now=NOW, reason="returned")
    assert check("own-revoke", message.encode(revoke)) == []
    reg.revoke("rec-2")
    assert o.receive_status(revoke, bob, issuer=SHOP) is State.REVOKED and reg.current("Kettle K2", "K2-000042") is None


def test_registry_refusals_leave_state():
    reg = Registry(SHOP)
    reg.activate(reg.issue(o.sign_record(record(), SHOP_KEY)).record.id)
    with pytest.raises(StateError):  # one live record per product
        reg.issue(o.sign_record(record(id="rec-x"), SHOP_KEY))
    with pytest.raises(BadArgument):
        reg.issue(o.sign_record(record(), SHOP_KEY))
    with pytest.raises(o.WrongIssuer):
        reg.issue(o.sign_record(Record("r", MALLORY, ALICE, "K", "1", "2025-01-01", "2025-01-01", NOW), MALLORY_KEY))
    consent = o.sign_consent(record(), BOB, NOW, ALICE_KEY)
    for msg, err in [(transfer_msg(consent, frm=BOB), o.WrongOwner),
                     (transfer_msg(consent, record_id="nope"), o.UnknownRecord),
                     (transfer_msg(consent, new_owner=CAROL), o.BadConsent),
                     (transfer_msg(o.sign_consent(record(), BOB, NOW, ALICE_KEY)[:-1]), o.BadConsent),
                     (transfer_msg(envelope.seal_signed(o.Consent("rec-1", BOB, NOW).payload(), BOB_KEY)),
                      o.BadConsent)]:
        with pytest.raises(err):
            reg.request_transfer(msg, now=NOW)
        assert reg.get("rec-1").state is State.ACTIVE and reg.get("rec-1").pending_owner is None
    reg.request_transfer(transfer_msg(consent), now=NOW)
    reg.cancel_transfer("rec-1")
    assert reg.get("rec-1").state is State.ACTIVE
    with pytest.raises(LocalError):
        reg.activate("nope")


def test_updates_and_matches():
    upd = Update("u-1", SHOP, "recall", "Kettle K2", SerialRange("K2-000001", "K2-000100"), "Recall", "", (), NOW)
    assert o.matches(upd, record(serial="K2-000100")) and not o.matches(upd, record(serial="K2-000101"))
    assert not o.matches(upd, record(model="Kettle K3")) and not o.matches(upd, record(serial="K2-00005"))
    assert o.matches(Update(**{**_fields(upd), "serials": None}), record(serial="anything"))
    assert not o.matches(Update(**{**_fields(upd), "issuer": MALLORY}), record())
    assert "10" in SerialRange("9", "11") and "9" not in SerialRange("10", "99")
    msg = o.update_message(o.sign_update(upd, SHOP_KEY), id="m", frm=SHOP, to=ALICE, now=NOW)
    assert check("own-update-message", message.encode(msg)) == []
    assert o.receive_update(message.decode(message.encode(msg)), issuer=SHOP) == upd
    with pytest.raises(o.WrongIssuer):
        o.receive_update(msg, issuer=MALLORY)


serials = st.integers(1, 60).map(lambda n: f"S{n}")


@settings(max_examples=150, deadline=None)
@given(owned=st.dictionaries(serials, st.sampled_from([ALICE, BOB, CAROL]), max_size=12),
       transfers=st.lists(st.tuples(serials, st.sampled_from([ALICE, BOB, CAROL])), max_size=6),
       revoked=st.sets(serials, max_size=3),
       selector=st.one_of(st.none(), st.tuples(serials, serials), st.frozensets(serials, min_size=1, max_size=6)))
def test_recall_reaches_exactly_current_owners(owned, transfers, revoked, selector):
    reg = Registry(SHOP)
    owner_keys = {ALICE: ALICE_KEY, BOB: BOB_KEY, CAROL: CAROL_KEY}
    current = {}
    for n, (serial, owner) in enumerate(sorted(owned.items())):
        reg.activate(reg.issue(o.sign_record(record(id=f"r{n}", serial=serial, owner=owner), SHOP_KEY)).record.id)
        current[serial] = owner
    for n, (serial, new_owner) in enumerate(transfers):
        holding = reg.current("Kettle K2", serial)
        if holding is None or holding.record.owner == new_owner:
            continue
        old = holding.record
        consent = o.sign_consent(old, new_owner, NOW, owner_keys[old.owner])
        reg.request_transfer(transfer_msg(consent, frm=old.owner, record_id=old.id, new_owner=new_owner), now=NOW)
        succ = o.sign_record(record(id=f"t{n}", serial=serial, owner=new_owner, previous=old.id), SHOP_KEY)
        reg.activate(reg.complete_transfer(old.id, succ).record.id)
        current[serial] = new_owner
    for serial in revoked:
        holding = reg.current("Kettle K2", serial)
        if holding is not None:
            reg.revoke(holding.record.id)
            del current[serial]
    if isinstance(selector, tuple):
        lo, hi = sorted(selector, key=o.serial_key)
        sel = SerialRange(lo, hi)
    else:
        sel = selector
    upd = Update("u", SHOP, "recall", "Kettle K2", sel, "t", "", (), NOW)
    expected = {owner for serial, owner in current.items()
                if sel is None or serial in sel}
    got = reg.owners_of(upd)
    assert set(got) == expected and len(got) == len(set(got))
    # Cross-check with `matches` over every record ever issued and its state.
    live = {h.record.owner for h in (reg.get(i) for i in list(reg._records)) if h.state in o.LIVE and o.matches(upd, h.record)}
    assert live == expected
    assert reg.owners_of(Update(**{**_fields(upd), "model": "Other"})) == ()


# --- CDDL ---------------------------------------------------------------------------------------


def test_payloads_match_cddl_and_the_schema_can_fail():
    assert check("own-record", record(previous="rec-0").payload()) == []
    upd = Update("u", SHOP, "manual", "K", frozenset({"b", "a"}), "t", "", ("https://m.example",), NOW)
    assert check("own-update", upd.payload()) == []
    assert check("own-consent", o.Consent("r", BOB, NOW).payload()) == []
    assert check("own-proof", o.presentation_payload("r", BOB, NOW, "c")) == []
    assert check("own-record", cbor2.dumps({**record().to_map(), "purchased": "1 Nov 2025"}, canonical=True)) != []
    assert check("own-update", cbor2.dumps({**upd.to_map(), "kind": "advert"}, canonical=True)) != []
    assert check("own-consent", cbor2.dumps({"record": "r", "time": NOW}, canonical=True)) != []
