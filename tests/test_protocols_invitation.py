"""Invitations (spec/10 §10.3) and p2p+tcp endpoints (§10.2)."""

import base64
import hashlib

import cbor2
import did_peer_2
import nacl.bindings
import pytest
from hypothesis import given, settings, strategies as st

from p2p.core import cbor, did, envelope, keys
from p2p.core.errors import LocalError, RemoteError, StateError
from p2p.core.protocols import connection, endpoint as ep, invitation as inv
from p2p.core.protocols.errors import (InvalidEndpoint, InvalidInvitation, InvitationExpired, InvitationUsed,
                                       UnknownInvitation)


def K(name: str) -> keys.AgentKeys:
    return keys.AgentKeys.from_secrets(hashlib.sha256(b"ed " + name.encode()).digest(),
                                       hashlib.sha256(b"x " + name.encode()).digest())


AGENT = K("shop")
ENDPOINT = ep.format_endpoint(AGENT.agreement.public_key, "shop.example", 7400)
AGENT_DID = connection.pairwise_did(AGENT, ENDPOINT)
NOW = 1_764_320_000


def make(**kw):
    args = dict(id="inv-1", label="Shop", multi_use=False, now=NOW, expires_time=NOW + 3600)
    args.update(kw)
    return inv.create(AGENT, AGENT_DID, **args)


# --- endpoint ------------------------------------------------------------------------


def test_endpoint_round_trip_and_forms():
    key = AGENT.agreement.public_key
    for host, written in [("shop.example", "shop.example"), ("192.0.2.10", "192.0.2.10"),
                          ("2001:db8::1", "[2001:db8::1]"), ("2001:0db8:0:0::1", "[2001:db8::1]")]:
        uri = ep.format_endpoint(key, host, 7400)
        assert uri == f"p2p+tcp://{did.multikey(key)}@{written}:7400"
        parsed = ep.parse_endpoint(uri)
        assert parsed.key == key and parsed.port == 7400 and parsed.uri == uri


@pytest.mark.parametrize("uri", [
    "tcp://{k}@h.example:1", "P2P+TCP://{k}@h.example:1", "p2p+tcp://{k}@h.example", "p2p+tcp://{k}@h.example:0",
    "p2p+tcp://{k}@h.example:65536", "p2p+tcp://{k}@h.example:07400", "p2p+tcp://h.example:7400",
    "p2p+tcp://{k}@H.example:1", "p2p+tcp://{k}@h.example:1/", "p2p+tcp://{k}@[2001:0db8::1]:1",
    "p2p+tcp://{k}@[fe80::1%eth0]:1", "p2p+tcp://{k}@1.2.3:1", "p2p+tcp://{k}@010.0.0.1:1", "p2p+tcp://{k}@-a.b:1",
    "p2p+tcp://{e}@h.example:1", "p2p+tcp://zzz@h.example:1", "p2p+tcp://{k}@h.example:1?x",
])
def test_endpoint_rejects(uri):
    uri = uri.format(k=did.multikey(AGENT.agreement.public_key), e=did.multikey(AGENT.signing.public_key))
    with pytest.raises(InvalidEndpoint):
        ep.parse_endpoint(uri)


def test_endpoint_in_did_resolves_with_independent_library():
    doc = did_peer_2.resolve(AGENT_DID)
    assert doc["service"][0]["serviceEndpoint"] == ENDPOINT
    assert ep.service_endpoint(AGENT_DID).uri == ENDPOINT


# --- invitations ----------------------------------------------------------------------


def test_create_and_parse():
    i = make()
    assert i.url.startswith("p2p:invite?_oob=") and len(i.url) < inv.MAX_URL_CHARS
    p = inv.parse_url(i.url, now=NOW + 10)
    assert p == i
    assert (p.id, p.inviter_did, p.label, p.multi_use, p.expires_time) == ("inv-1", AGENT_DID, "Shop", False, NOW + 3600)
    assert p.recipient_kid == AGENT_DID + "#key-2" and p.recipient_public == AGENT.agreement.public
    assert p.signer_kid == AGENT_DID + "#key-1" and p.endpoint.uri == ENDPOINT


def test_invitation_verifies_independently():
    """Decode the URL with base64/cbor2 and verify the Ed25519 signature with libsodium
    directly over the RFC 9052 Sig_structure: no p2p code on this path."""
    url = make().url
    raw = base64.urlsafe_b64decode(url.split("_oob=")[1] + "==")
    tag = cbor2.loads(raw)
    assert tag.tag == 18
    protected, unprotected, payload, signature = tag.value
    assert cbor2.loads(protected) == {1: -8, 4: (AGENT_DID + "#key-1").encode()}
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    nacl.bindings.crypto_sign_open(signature + to_be_signed, AGENT.signing.public)
    body = cbor2.loads(payload)
    assert body["type"] == "https://didcomm.org/out-of-band/2.0/invitation" and body["from"] == AGENT_DID
    assert body["body"] == {"goal_code": "p2p.connect", "label": "Shop", "accept": ["p2p/1"], "multi_use": False}


def _resign(payload_map, signer=AGENT, kid=AGENT_DID + "#key-1"):
    signed = envelope.seal_signed(cbor.dumps(payload_map), envelope.SigningKey.from_seed(kid, signer.signing.seed))
    return inv.to_url(signed)


def test_expiry_and_skew():
    i = make()
    with pytest.raises(InvitationExpired):
        inv.parse_url(i.url, now=NOW + 3600)
    assert inv.parse_url(i.url, now=NOW + 3599).id == "inv-1"
    assert inv.parse_url(i.url).id == "inv-1"  # no clock, no time check
    with pytest.raises(RemoteError) as e:
        inv.parse_url(i.url, now=NOW - 301)
    assert e.value.code == "clock-skew"


def test_rejects():
    base = inv.build_message(inviter_did=AGENT_DID, id="i", label="", multi_use=False, now=NOW).to_map()
    other = K("mallory")
    other_did = connection.pairwise_did(other, ep.format_endpoint(other.agreement.public_key, "m.example", 1))
    cases = {
        "sender-mismatch": _resign(base, other, other_did + "#key-1"),
        "invalid-invitation": _resign({**base, "type": "https://didcomm.org/trust-ping/2.0/ping"}),
        "missing-field": _resign({k: v for k, v in base.items() if k != "from"}),
        "invalid-field": _resign({**base, "body": {**base["body"], "multi_use": 1}}),
    }
    for code, url in cases.items():
        with pytest.raises(RemoteError) as e:
            inv.parse_url(url, now=NOW)
        assert e.value.code == code, code
    for body in ({**base["body"], "goal_code": "other"}, {**base["body"], "accept": ["didcomm/v2"]}):
        with pytest.raises(InvalidInvitation):
            inv.parse_url(_resign({**base, "body": body}))
    no_service = did.agent_did(AGENT)
    with pytest.raises(InvalidInvitation):
        inv.parse_url(_resign({**base, "from": no_service}, kid=no_service + "#key-1"))
    url = make().url
    for bad, code in [("https://x/?_oob=" + url.split("=")[1], "invalid-invitation"), (url + "&_oob=AA", "invalid-invitation"),
                      (url[:-1] + "=", "invalid-invitation"), ("p2p:invite?_oob=", "invalid-invitation"),
                      (url[: len(url) - 5], None), (url + "A" * 4096, "too-large")]:
        with pytest.raises(RemoteError) as e:
            inv.parse_url(bad)
        if code:
            assert e.value.code == code, bad[:40]
    assert inv.parse_url(url + "&lang=en").id == "inv-1"  # other parameters are ignored


def test_create_refuses_misuse():
    with pytest.raises(LocalError):
        inv.create(K("other"), AGENT_DID, id="x", now=NOW)
    with pytest.raises(LocalError):
        inv.create(AGENT, did.agent_did(AGENT), id="x", now=NOW)  # no endpoint
    with pytest.raises(LocalError):
        make(expires_time=NOW)


@settings(max_examples=60, deadline=None)
@given(label=st.text(max_size=40), multi=st.booleans(), idn=st.integers(1, 10**9),
       expires=st.one_of(st.none(), st.integers(1, 10**6)))
def test_url_round_trip(label, multi, idn, expires):
    i = make(id=f"i-{idn}", label=label, multi_use=multi, expires_time=None if expires is None else NOW + expires)
    assert inv.parse_url(i.url, now=NOW) == i


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_url_mutation_raises_remote_error_only(data):
    url = make().url
    pos = data.draw(st.integers(0, len(url) - 1))
    op = data.draw(st.sampled_from(["flip", "cut", "append"]))
    if op == "flip":
        ch = data.draw(st.sampled_from("AQgw_-0z="))
        mutated = url[:pos] + ch + url[pos + 1:]
    elif op == "cut":
        mutated = url[:pos]
    else:
        mutated = url + data.draw(st.text(min_size=1, max_size=8))
    if mutated == url or mutated.startswith(url + "&"):
        return
    try:
        parsed = inv.parse_url(mutated, now=NOW)
    except RemoteError:
        return
    # Base64url's last character may carry don't-care bits only if we accepted them: we do not.
    assert parsed == make(), "a mutated URL must not parse to different data"


# --- the inviter's record -------------------------------------------------------------


def test_issued_one_time_and_multi_use():
    one = inv.Issued(make())
    used = one.use(NOW)
    assert used.state is inv.IssuedState.USED and used.uses == 1
    with pytest.raises(InvitationUsed):
        used.use(NOW)
    with pytest.raises(InvitationExpired):
        one.use(NOW + 3600)
    multi = inv.Issued(make(multi_use=True))
    for n in range(1, 4):
        multi = multi.use(NOW)
        assert multi.state is inv.IssuedState.OPEN and multi.uses == n
    revoked = multi.revoke()
    with pytest.raises(UnknownInvitation):
        revoked.use(NOW)
    with pytest.raises(StateError):
        revoked.revoke()
    assert used.revoke().state is inv.IssuedState.REVOKED
