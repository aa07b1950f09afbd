"""p2p.core.noise against the Noise spec's published vectors and the `noiseprotocol` library.

Both directions are checked: our initiator with their responder and the reverse, for
XX and IK, including transport after rekey. Every noise_transcript vector in
interop/vectors/noise is replayed through `noiseprotocol` byte for byte too, so the
vector expectations are not just our own output echoed back.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from noise.connection import Keypair as TheirKeypair
from noise.connection import NoiseConnection

from p2p.core.errors import (
    HandshakeFailed,
    LocalError,
    NonceExhausted,
    RemoteError,
    StateError,
    TransportDecryptFailed,
)
from p2p.core.noise import (
    MAX_MESSAGE,
    MAX_NONCE,
    MAX_PLAINTEXT,
    PROTOCOL_NAMES,
    BadArgument,
    CipherState,
    Handshake,
    HandshakeStatus,
    KeyPair,
)
from p2p.core.keys import x25519_public

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "interop"))

from ops_noise import cacophony_case  # noqa: E402  (the published vectors, shared with gen_noise)

H = bytes.fromhex

# noiseprotocol warns when an ephemeral key is preset, which is the point here.
pytestmark = pytest.mark.filterwarnings("ignore:One of ephemeral keypairs:UserWarning")


def k(label: str) -> bytes:
    return hashlib.blake2b(label.encode(), digest_size=32).digest()


def pair(pattern, init_static, init_eph, resp_static, resp_eph, prologue=b"", rs=None):
    if pattern == "IK" and rs is None:
        rs = x25519_public(resp_static)
    init = Handshake(
        "initiator", pattern, KeyPair.from_private(init_static), init_eph,
        remote_static=rs, prologue=prologue,
    )
    resp = Handshake(
        "responder", pattern, KeyPair.from_private(resp_static), resp_eph, prologue=prologue
    )
    return init, resp


def exchange(a: Handshake, b: Handshake, payloads=None) -> list[bytes]:
    """Run the handshake to completion; returns the messages."""
    out = []
    sender, receiver = a, b
    i = 0
    while not (a.complete and b.complete):
        payload = payloads[i] if payloads else b""
        msg = sender.write_message(payload)
        assert receiver.read_message(msg) == payload
        out.append(msg)
        sender, receiver = receiver, sender
        i += 1
    return out


@pytest.mark.parametrize("pattern", ["XX", "IK"])
def test_cacophony_vectors_byte_for_byte(pattern):
    # haskell-cryptography/cacophony's published vectors (interop/ops_noise.py).
    req, vec = cacophony_case(pattern)
    init_static, resp_static = H(req["init_static"]), H(req["resp_static"])
    rs = H(req["init_remote_static"]) if pattern == "IK" else None
    if rs is not None:
        assert rs == x25519_public(resp_static)
    init, resp = pair(pattern, init_static, H(req["init_ephemeral"]),
                      resp_static, H(req["resp_ephemeral"]), H(req["init_prologue"]), rs)
    for i, message in enumerate(vec["messages"]):
        payload, expected = H(message["payload"]), message["ciphertext"]
        sender, receiver = (init, resp) if i % 2 == 0 else (resp, init)
        if not sender.complete:
            ct = sender.write_message(payload)
            assert receiver.read_message(ct) == payload
        else:
            ct = sender.transport.encrypt(payload)
            assert receiver.transport.decrypt(ct) == payload
        assert ct.hex() == expected, f"message {i}"
    assert init.handshake_hash.hex() == vec["handshake_hash"]
    assert resp.handshake_hash == init.handshake_hash
    assert resp.remote_static == x25519_public(init_static)
    assert init.remote_static == x25519_public(resp_static)


# --- the independent implementation --------------------------------------------


def theirs(pattern, initiator, static, eph, rs=None, prologue=b""):
    conn = NoiseConnection.from_name(PROTOCOL_NAMES[pattern].encode())
    conn.set_as_initiator() if initiator else conn.set_as_responder()
    conn.set_keypair_from_private_bytes(TheirKeypair.STATIC, static)
    conn.set_keypair_from_private_bytes(TheirKeypair.EPHEMERAL, eph)
    if rs is not None:
        conn.set_keypair_from_public_bytes(TheirKeypair.REMOTE_STATIC, rs)
    conn.set_prologue(prologue)
    conn.start_handshake()
    return conn


@pytest.mark.parametrize("pattern", ["XX", "IK"])
@pytest.mark.parametrize("we_initiate", [True, False])
def test_interop_with_noiseprotocol(pattern, we_initiate):
    si, ei, sr, er = k("si"), k("ei"), k("sr"), k("er")
    prologue = b"p2p/1"
    rs = x25519_public(sr) if pattern == "IK" else None
    if we_initiate:
        us = Handshake("initiator", pattern, KeyPair.from_private(si), ei,
                       remote_static=rs, prologue=prologue)
        them = theirs(pattern, False, sr, er, prologue=prologue)
    else:
        us = Handshake("responder", pattern, KeyPair.from_private(sr), er, prologue=prologue)
        them = theirs(pattern, True, si, ei, rs=rs, prologue=prologue)
    our_turn = we_initiate
    n = 0
    while not (us.complete and them.handshake_finished):
        payload = b"hs%d" % n
        if our_turn:
            assert bytes(them.read_message(us.write_message(payload))) == payload
        else:
            assert us.read_message(bytes(them.write_message(payload))) == payload
        our_turn = not our_turn
        n += 1
    assert us.handshake_hash == them.get_handshake_hash()
    assert us.remote_static == x25519_public(sr if we_initiate else si)
    t = us.transport
    for round_ in range(4):
        if round_ == 2:  # rekey both directions, on both sides, mid-stream
            t.rekey_send()
            t.rekey_receive()
            them.rekey_outbound_cipher()
            them.rekey_inbound_cipher()
        msg = b"ours %d" % round_
        assert them.decrypt(t.encrypt(msg)) == msg
        msg = b"theirs %d" % round_
        assert t.decrypt(them.encrypt(msg)) == msg
    assert t.send_nonce == 4 and t.receive_nonce == 4


def _vectors(op):
    for path in sorted((ROOT / "interop" / "vectors" / "noise").glob("*.json")):
        case = json.loads(path.read_text())
        if case["op"] == op:
            yield pytest.param(case, id=path.stem)


@pytest.mark.parametrize("case", [c for c in _vectors("noise_transcript")
                                  if not c.values[0]["reject"]])
def test_transcript_vectors_match_noiseprotocol(case):
    req, expect = case["request"], case["expect"]
    pattern = {v: p for p, v in PROTOCOL_NAMES.items()}[req["protocol_name"]]
    init = theirs(pattern, True, H(req["init_static"]), H(req["init_ephemeral"]),
                  rs=H(req["init_remote_static"]) if "init_remote_static" in req else None,
                  prologue=H(req.get("init_prologue", "")))
    resp = theirs(pattern, False, H(req["resp_static"]), H(req["resp_ephemeral"]),
                  prologue=H(req.get("resp_prologue", "")))
    for i, (entry, want) in enumerate(zip(req["messages"], expect["messages"], strict=True)):
        sender, receiver = (init, resp) if entry.get("from", ("initiator", "responder")[i % 2]) \
            == "initiator" else (resp, init)
        payload = H(entry["payload"])
        if not sender.handshake_finished:
            ct = bytes(sender.write_message(payload))
            got = bytes(receiver.read_message(ct))
        else:
            if entry.get("rekey"):
                sender.rekey_outbound_cipher()
                receiver.rekey_inbound_cipher()
            ct = sender.encrypt(payload)
            got = receiver.decrypt(ct)
        assert ct.hex() == want["ciphertext"]
        assert got == payload and got.hex() == want["payload"]
    assert init.get_handshake_hash().hex() == expect["handshake_hash"]


@pytest.mark.parametrize("case", list(_vectors("noise_transcript")) +
                         list(_vectors("frame_decode")) + list(_vectors("channel_transcript")))
def test_vectors_through_our_ops(case):
    from ops_noise import OPS

    if case["reject"]:
        with pytest.raises(RemoteError) as info:
            OPS[case["op"]](json.loads(json.dumps(case["request"])))
        assert info.value.code == case["expect"]["error"]
    else:
        reply = OPS[case["op"]](json.loads(json.dumps(case["request"])))
        for key, value in case["expect"].items():
            assert reply[key] == value


# --- state machine -------------------------------------------------------------


def test_calls_out_of_turn_are_state_errors_and_change_nothing():
    init, resp = pair("XX", k("a"), k("b"), k("c"), k("d"))
    with pytest.raises(StateError):
        resp.write_message(b"")
    with pytest.raises(StateError):
        init.read_message(b"\x00" * 32)
    assert init.status is HandshakeStatus.SEND and resp.status is HandshakeStatus.RECEIVE
    with pytest.raises(StateError):
        init.handshake_hash
    with pytest.raises(StateError):
        init.transport
    exchange(init, resp)  # still works after the refused calls
    assert init.status is resp.status is HandshakeStatus.COMPLETE
    with pytest.raises(StateError):
        init.write_message(b"")
    with pytest.raises(StateError):
        resp.read_message(b"")


def test_remote_failure_is_sticky_error():
    init, resp = pair("XX", k("a"), k("b"), k("c"), k("d"))
    resp.read_message(init.write_message(b""))
    msg2 = bytearray(resp.write_message(b""))
    msg2[-1] ^= 1
    with pytest.raises(HandshakeFailed):
        init.read_message(bytes(msg2))
    assert init.status is HandshakeStatus.ERROR
    msg2[-1] ^= 1  # even the genuine message is refused now
    with pytest.raises(StateError):
        init.read_message(bytes(msg2))
    with pytest.raises(StateError):
        init.write_message(b"")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pattern": "NN"},
        {"role": "server"},
        {"ephemeral_private": b"short"},
        {"static": b"\x01" * 32},
        {"pattern": "IK"},  # IK initiator without the responder's key
        {"remote_static": b"\x09" * 32},  # XX initiator cannot use one
    ],
)
def test_bad_arguments_are_local_errors(kwargs):
    args = {"role": "initiator", "pattern": "XX", "static": KeyPair.from_private(k("s")),
            "ephemeral_private": k("e")}
    args.update(kwargs)
    with pytest.raises(BadArgument):
        Handshake(args.pop("role"), args.pop("pattern"), args.pop("static"),
                  args.pop("ephemeral_private"), **args)


@pytest.mark.parametrize("pattern", ["XX", "IK"])
def test_handshake_message_size_limit(pattern):
    init, resp = pair(pattern, k("a"), k("b"), k("c"), k("d"))
    overhead = 32 if pattern == "XX" else 32 + 48 + 16
    with pytest.raises(BadArgument):
        init.write_message(b"x" * (MAX_MESSAGE - overhead + 1))
    assert init.status is HandshakeStatus.SEND  # unchanged, can still write
    msg = init.write_message(b"x" * (MAX_MESSAGE - overhead))
    assert len(msg) == MAX_MESSAGE
    assert resp.read_message(msg) == b"x" * (MAX_MESSAGE - overhead)
    with pytest.raises(HandshakeFailed):
        Handshake("responder", pattern, KeyPair.from_private(k("c")), k("d")).read_message(
            msg + b"x"
        )


def test_transport_limits_and_nonce_exhaustion():
    init, resp = pair("XX", k("a"), k("b"), k("c"), k("d"))
    exchange(init, resp)
    t, u = init.transport, resp.transport
    with pytest.raises(BadArgument):
        t.encrypt(b"x" * (MAX_PLAINTEXT + 1))
    assert u.decrypt(t.encrypt(b"x" * MAX_PLAINTEXT)) == b"x" * MAX_PLAINTEXT
    t._send.n = MAX_NONCE - 1
    u._recv.n = MAX_NONCE - 1
    assert u.decrypt(t.encrypt(b"last")) == b"last"
    with pytest.raises(NonceExhausted):
        t.encrypt(b"one more")
    with pytest.raises(NonceExhausted):
        u.decrypt(b"\x00" * 20)
    assert isinstance(NonceExhausted(), LocalError)


def test_transport_receive_fails_closed():
    init, resp = pair("IK", k("a"), k("b"), k("c"), k("d"))
    exchange(init, resp)
    good = init.transport.encrypt(b"hello")
    with pytest.raises(TransportDecryptFailed):
        resp.transport.decrypt(good[:-1] + bytes([good[-1] ^ 1]))
    assert resp.transport.receive_nonce == 0  # Noise 5.1: n not advanced on failure
    with pytest.raises(StateError):
        resp.transport.decrypt(good)
    with pytest.raises(TransportDecryptFailed):  # too short for a tag
        resp2 = pair("IK", k("a"), k("b"), k("c"), k("d"))
        exchange(*resp2)
        resp2[1].transport.decrypt(b"\x00" * 15)


def test_rekey_formula_matches_noiseprotocol():
    from noise.backends.default.ciphers import ChaCha20Cipher

    key = k("key")
    cs = CipherState(key)
    cs.rekey()
    theirs_ = ChaCha20Cipher()
    theirs_.initialize(key)
    assert cs.k == theirs_.rekey(key)
    assert cs.n == 0
    with pytest.raises(StateError):
        CipherState().rekey()


def test_accepts_agreement_key_from_keys_module():
    keys = pytest.importorskip("p2p.core.keys")
    agreement = keys.AgreementKey.from_secret(k("c"))
    init, _ = pair("XX", k("a"), k("b"), k("c"), k("d"))
    resp = Handshake("responder", "XX", agreement, k("d"))
    exchange(init, resp)
    assert init.remote_static == agreement.public


def test_low_order_point_refused():
    init, resp = pair("XX", k("a"), k("b"), k("c"), k("d"))
    resp.read_message(b"\x00" * 32)  # XX message 1: e is only hashed, no DH yet
    with pytest.raises(HandshakeFailed):
        # Our write does DH(e, re) with the zero point: the peer's key is at fault.
        resp.write_message(b"")
    assert resp.status is HandshakeStatus.ERROR
    with pytest.raises(StateError):
        resp.write_message(b"")


# --- properties ----------------------------------------------------------------

keys32 = st.binary(min_size=32, max_size=32)
payloads = st.binary(max_size=300)


@settings(max_examples=60, deadline=None)
@given(
    pattern=st.sampled_from(["XX", "IK"]),
    ks=st.tuples(keys32, keys32, keys32, keys32),
    prologue=st.binary(max_size=40),
    hs_payloads=st.lists(payloads, min_size=3, max_size=3),
    transport=st.lists(st.tuples(st.booleans(), payloads, st.booleans()), max_size=8),
)
def test_roundtrip_property(pattern, ks, prologue, hs_payloads, transport):
    init, resp = pair(pattern, *ks, prologue=prologue)
    exchange(init, resp, hs_payloads)
    assert init.handshake_hash == resp.handshake_hash
    for from_init, payload, rekey in transport:
        a, b = (init, resp) if from_init else (resp, init)
        if rekey:
            a.transport.rekey_send()
            b.transport.rekey_receive()
        assert b.transport.decrypt(a.transport.encrypt(payload)) == payload


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.sampled_from(["XX", "IK"]),
    data=st.data(),
)
def test_any_mutation_is_a_remote_error(pattern, data):
    """Flip, truncate or extend any handshake or transport message: the exchange
    must end in a RemoteError, never complete with the altered bytes accepted."""
    init, resp = pair(pattern, k("a"), k("b"), k("c"), k("d"), prologue=b"p2p/1")
    n_hs = 3 if pattern == "XX" else 2
    target = data.draw(st.integers(0, n_hs + 1))  # any handshake or transport message
    kind = data.draw(st.sampled_from(["flip", "truncate", "append"]))
    seq = [(init, resp) if i % 2 == 0 else (resp, init) for i in range(n_hs + 2)]
    with pytest.raises(RemoteError):
        for i, (sender, receiver) in enumerate(seq):
            payload = b"payload %d" % i
            if i < n_hs:
                msg = sender.write_message(payload)
            else:
                msg = sender.transport.encrypt(payload)
            if i == target:
                msg = bytearray(msg)
                if kind == "flip":
                    pos = data.draw(st.integers(0, len(msg) - 1))
                    msg[pos] ^= data.draw(st.integers(1, 255))
                elif kind == "truncate":
                    del msg[data.draw(st.integers(0, len(msg) - 1)):]
                else:
                    msg += data.draw(st.binary(min_size=1, max_size=20))
                msg = bytes(msg)
            if i < n_hs:
                got = receiver.read_message(msg)
            else:
                got = receiver.transport.decrypt(msg)
            # Only XX message 1 travels without authentication; its change surfaces
            # at message 2. Everything else must fail where it is read.
            if i == target and not (pattern == "XX" and i == 0):
                pytest.fail(f"altered message {i} accepted: {got!r}")
            if i > target:
                assert got == payload
