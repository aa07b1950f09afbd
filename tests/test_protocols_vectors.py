"""interop/vectors/protocols checked with code that is not p2p's: libsodium for the
signatures over a cbor2-built Sig_structure, cbor2 for structure, did_peer_2 for DIDs."""

import base64
import json
import pathlib

import base58
import cbor2
import did_peer_2
import nacl.bindings
import pytest

from p2p.core import envelope, keys, message
from p2p.core.protocols import connection

DIR = pathlib.Path(__file__).resolve().parent.parent / "interop" / "vectors" / "protocols"


def load(suffix: str) -> dict:
    (path,) = DIR.glob(f"*-{suffix}.json")
    return json.loads(path.read_text())


def verify_sign1(signed: bytes, public: bytes) -> tuple[str, bytes]:
    tag = cbor2.loads(signed)
    assert tag.tag == 18
    protected, unprotected, payload, signature = tag.value
    header = cbor2.loads(protected)
    assert header[1] == -8 and unprotected == {}
    nacl.bindings.crypto_sign_open(signature + cbor2.dumps(["Signature1", protected, b"", payload]), public)
    return header[4].decode(), payload


def test_vector_counts():
    vectors = [json.loads(p.read_text()) for p in DIR.glob("*.json")]
    assert len(vectors) >= 25 and sum(v["reject"] for v in vectors) >= 10


@pytest.mark.parametrize("name", ["invitation-create-one-time", "invitation-create-multi-use"])
def test_invitation_vectors_independently(name):
    v = load(name)
    req, exp = v["request"], v["expect"]
    ed_public, _ = nacl.bindings.crypto_sign_seed_keypair(bytes.fromhex(req["ed25519_seed"]))
    signed = bytes.fromhex(exp["signed"])
    kid, payload = verify_sign1(signed, ed_public)
    assert kid == exp["agent_did"] + "#key-1" and payload.hex() == exp["message"]
    body = cbor2.loads(payload)
    assert body["from"] == exp["agent_did"] and body["id"] == req["invitation_id"]
    assert body["body"]["multi_use"] is req["multi_use"] and body["body"]["accept"] == ["p2p/1"]
    assert exp["url"] == "p2p:invite?_oob=" + base64.urlsafe_b64encode(signed).rstrip(b"=").decode()
    doc = did_peer_2.resolve(exp["agent_did"])
    assert doc["service"][0]["serviceEndpoint"] == exp["endpoint"]
    x_public = nacl.bindings.crypto_scalarmult_base(bytes.fromhex(req["x25519_secret"]))
    key_mb = exp["endpoint"].split("//")[1].split("@")[0]
    assert [vm["publicKeyMultibase"] for vm in doc["verificationMethod"]][1] == key_mb
    assert base58.b58decode(key_mb[1:]) == b"\xec\x01" + x_public


def test_endorsement_vector_independently():
    v = load("connect-respond")
    req, exp = v["request"], v["expect"]
    ed_public, _ = nacl.bindings.crypto_sign_seed_keypair(bytes.fromhex(req["agent_ed25519_seed"]))
    kid, payload = verify_sign1(bytes.fromhex(exp["endorsement"]), ed_public)
    assert payload.hex() == exp["endorsement_payload"]
    assert cbor2.loads(payload) == {"did": exp["pairwise_did"], "invitation": "inv-1", "request": "req-1"}
    assert kid.endswith("#key-1") and kid.split("#")[0] != exp["pairwise_did"]
    response = cbor2.loads(bytes.fromhex(exp["message"]))
    assert response["attachments"][0]["data"]["bytes"].hex() == exp["endorsement"]
    assert response["thid"] == "req-1" and response["from"] == exp["pairwise_did"]


def test_request_envelope_opens_with_the_inviter_keys():
    v = load("connect-request")
    inv_v = load("invitation-create-one-time")["request"]
    agent = keys.AgentKeys.from_secrets(bytes.fromhex(inv_v["ed25519_seed"]), bytes.fromhex(inv_v["x25519_secret"]))
    agent_did = load("invitation-create-one-time")["expect"]["agent_did"]
    sealed = bytes.fromhex(v["expect"]["envelope"])
    recipient = cbor2.loads(sealed).value[3][0]
    assert cbor2.loads(recipient[0]) == {1: -27}  # ECDH-SS
    static_key = recipient[1][-2]  # the full sender COSE_Key (form "key")
    assert static_key[2].decode() == v["expect"]["pairwise_did"] + "#key-2" and static_key[-1] == 4
    opened = envelope.open(sealed, connection.agent_keyring(agent, agent_did))
    assert opened.plaintext.hex() == v["expect"]["message"]
    assert message.decode(opened.plaintext).pthid == "inv-1"


def test_delivery_vectors_with_cbor2():
    for path in DIR.glob("*-delivery-encode-*.json"):
        v = json.loads(path.read_text())
        frame = cbor2.loads(bytes.fromhex(v["expect"]["frame"]))
        req = v["request"]
        expected = {"deliver": lambda: [1, req.get("seq"), bytes.fromhex(req.get("envelope", ""))],
                    "receipt": lambda: [2, req.get("seqs")], "close": lambda: [3, req.get("reason")]}[req["kind"]]()
        assert frame == expected
        assert cbor2.dumps(frame, canonical=True).hex() == v["expect"]["frame"]
