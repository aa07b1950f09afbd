#!/usr/bin/env python3
"""Write interop/vectors/noise/*.json: Noise handshakes, frames and the chunked channel.

Run from the repository root: `python interop/tools/gen_noise.py`. Expected values
come from our implementation, except the two cacophony cases whose expectations are
the published vectors (ops_noise.CACOPHONY); tests/test_noise.py replays every noise_transcript
vector through the independent `noiseprotocol` library as well.
"""

from __future__ import annotations

import hashlib

from _vectors import VectorSet  # sets up sys.path for the imports below

from ops_noise import OPS, cacophony_case  # noqa: E402

from p2p.core.keys import x25519_public  # noqa: E402


XX = "Noise_XX_25519_ChaChaPoly_BLAKE2b"
IK = "Noise_IK_25519_ChaChaPoly_BLAKE2b"
P2P_PROLOGUE = b"p2p/1".hex()


def key(label: str) -> str:
    """A fixed X25519 private key per label, so vectors are reproducible."""
    return hashlib.blake2b(b"p2p interop noise " + label.encode(), digest_size=32).hexdigest()


def keys(pattern_name: str, prologue: str = P2P_PROLOGUE) -> dict:
    req = {
        "protocol_name": pattern_name,
        "init_prologue": prologue,
        "init_static": key("alice static"),
        "init_ephemeral": key("alice ephemeral"),
        "resp_prologue": prologue,
        "resp_static": key("bob static"),
        "resp_ephemeral": key("bob ephemeral"),
    }
    if pattern_name == IK:
        req["init_remote_static"] = x25519_public(bytes.fromhex(key("bob static"))).hex()
    return req


def channel_keys(pattern_name: str) -> dict:
    req = keys(pattern_name)
    del req["init_prologue"], req["resp_prologue"]  # the channel fixes "p2p/1"
    return req


VECTORS = VectorSet("noise", OPS)
run = VECTORS.call


def flip(hexstr: str, index: int) -> str:
    raw = bytearray.fromhex(hexstr)
    raw[index] ^= 0x01
    return raw.hex()


def ok(name: str, description: str, op: str, request: dict, expect: dict | None = None) -> None:
    reply = run(op, request)
    if expect is not None and any(reply.get(k) != v for k, v in expect.items()):
        raise SystemExit(f"{name}: our implementation disagrees with the published vector")
    VECTORS.add(name, description, op, request, expect if expect is not None else reply)


reject = VECTORS.reject


def msgs(*payloads: str) -> list[dict]:
    return [{"payload": p} for p in payloads]


def build() -> None:
    req, exp = cacophony_case("XX")
    ok("cacophony-xx", "cacophony's published Noise_XX_25519_ChaChaPoly_BLAKE2b vector "
       "(haskell-cryptography/cacophony vectors/cacophony.txt): 3 handshake + 3 transport "
       "messages, byte for byte", "noise_transcript", req, exp)
    req, exp = cacophony_case("IK")
    ok("cacophony-ik", "cacophony's published Noise_IK_25519_ChaChaPoly_BLAKE2b vector "
       "(haskell-cryptography/cacophony vectors/cacophony.txt): 2 handshake + 4 transport "
       "messages, byte for byte", "noise_transcript", req, exp)

    hello, reply = b"hello bob".hex(), b"hello alice".hex()
    ok("xx-p2p-empty-payloads", "XX as p2p/1 runs it: prologue 'p2p/1', empty handshake "
       "payloads, then one transport message each way", "noise_transcript",
       {**keys(XX), "messages": msgs("", "", "", hello, reply)})
    ok("ik-p2p-empty-payloads", "IK as p2p/1 runs it: prologue 'p2p/1', empty handshake "
       "payloads, then transport both ways", "noise_transcript",
       {**keys(IK), "messages": msgs("", "", hello, reply, "")})
    ok("xx-rekey-both-ways", "XX, then transport messages with a rekey of each direction "
       "(REKEY = ENCRYPT(k, 2^64-1, '', 32 zero bytes)[:32]); nonces continue",
       "noise_transcript",
       {**keys(XX), "messages": msgs("", "", "", "01", "02") + [
           {"payload": "03", "rekey": True}, {"payload": "04", "rekey": True},
           {"payload": "05", "rekey": True}, {"payload": "06"}]})
    ok("ik-rekey", "IK, transport messages, initiator->responder direction rekeyed twice",
       "noise_transcript",
       {**keys(IK), "messages": msgs("", "", "aa") + [
           {"from": "initiator", "payload": "bb", "rekey": True},
           {"from": "initiator", "payload": "cc", "rekey": True},
           {"from": "responder", "payload": "dd"}]})
    ok("xx-handshake-payloads", "XX with non-empty payloads in all three handshake messages "
       "(the first travels in clear, the others encrypted)", "noise_transcript",
       {**keys(XX, ""), "messages": msgs("6d31", "6d32", "6d33", "")})

    base = run("noise_transcript", {**keys(XX), "messages": msgs("", "", "", hello, reply)})
    c = [m["ciphertext"] for m in base["messages"]]
    reject("xx-tampered-msg2", "XX message 2 with one bit flipped in the encrypted responder "
           "static key", "noise_transcript",
           {**keys(XX), "messages": [{"payload": ""}, {"deliver": flip(c[1], 40)}]},
           "handshake-failed")
    reject("xx-tampered-msg3", "XX message 3 with one bit flipped in its payload tag",
           "noise_transcript",
           {**keys(XX), "messages": msgs("", "") + [{"deliver": flip(c[2], len(c[2]) // 2 - 1)}]},
           "handshake-failed")
    reject("xx-truncated-msg1", "XX message 1 cut to 31 bytes (the ephemeral key needs 32)",
           "noise_transcript", {**keys(XX), "messages": [{"deliver": c[0][:62]}]},
           "handshake-failed")
    reject("xx-wrong-prologue", "responder uses prologue 'p2p/2': the initiator cannot "
           "decrypt message 2", "noise_transcript",
           {**keys(XX), "resp_prologue": b"p2p/2".hex(), "messages": msgs("", "")},
           "handshake-failed")
    wrong = {**keys(IK), "init_remote_static": x25519_public(bytes.fromhex(key("mallory"))).hex()}
    reject("ik-wrong-responder-static", "IK initiator encrypts to a static key that is not the "
           "responder's: the responder cannot decrypt message 1", "noise_transcript",
           {**wrong, "messages": msgs("")}, "handshake-failed")
    ik = run("noise_transcript", {**keys(IK), "messages": msgs("", "")})
    ik1 = ik["messages"][0]["ciphertext"]
    reject("ik-truncated-msg1", "IK message 1 missing its last byte (payload tag cut)",
           "noise_transcript", {**keys(IK), "messages": [{"deliver": ik1[:-2]}]},
           "handshake-failed")
    reject("ik-low-order-ephemeral", "IK message 1 whose ephemeral key is all zeros (a "
           "low-order point): X25519 output would be zero and MUST be refused",
           "noise_transcript",
           {**keys(IK), "messages": [{"deliver": "00" * 32 + ik1[64:]}]}, "handshake-failed")
    reject("xx-transport-replay", "the first transport message delivered twice: the second "
           "copy is checked with the next nonce and fails", "noise_transcript",
           {**keys(XX), "messages": msgs("", "", "", hello) + [
               {"from": "initiator", "deliver": c[3]}]},
           "transport-decrypt-failed")
    reject("xx-transport-reordered", "two transport messages from the initiator delivered "
           "in reverse order", "noise_transcript",
           {**keys(XX), "messages": msgs("", "", "") + [
               {"from": "initiator", "payload": "01", "hold": True},
               {"from": "initiator", "payload": "02", "hold": True},
               {"from": "initiator", "deliver": run("noise_transcript", {
                   **keys(XX), "messages": msgs("", "", "") + [
                       {"from": "initiator", "payload": "01"},
                       {"from": "initiator", "payload": "02"}]})["messages"][4]["ciphertext"]}]},
           "transport-decrypt-failed")
    reject("xx-transport-tampered", "a transport message with one bit flipped in the tag",
           "noise_transcript",
           {**keys(XX), "messages": msgs("", "", "") + [{"deliver": flip(c[3], -1)}]},
           "transport-decrypt-failed")
    rk = run("noise_transcript", {**keys(XX), "messages": msgs("", "", "") + [
        {"payload": "01", "rekey": True}]})
    reject("xx-transport-missed-rekey", "sender rekeyed its sending key but the receiver did "
           "not: the message no longer verifies", "noise_transcript",
           {**keys(XX), "messages": msgs("", "", "") + [
               {"deliver": rk["messages"][3]["ciphertext"]}]},
           "transport-decrypt-failed")
    reject("unsupported-protocol-name", "Noise_XX_25519_AESGCM_SHA256 is a valid Noise name "
           "but not one p2p speaks", "noise_transcript",
           {**keys(XX), "protocol_name": "Noise_XX_25519_AESGCM_SHA256", "messages": msgs("")},
           "unsupported-protocol")

    # --- framing ------------------------------------------------------------
    ok("frames-two", "two frames back to back (2-byte big-endian length + body), one empty",
       "frame_decode", {"stream": "0003616263" + "0000"})
    ok("frames-preamble-xx", "a responder's view of a connection start: preamble 'p2p/1X' "
       "then the framed 32-byte XX message 1", "frame_decode",
       {"stream": b"p2p/1X".hex() + "0020" + c[0], "preamble": True,
        "max_frame": 1024})
    ok("frames-preamble-ik-partial", "preamble 'p2p/1I', one complete frame and the first "
       "byte of the next; without end-of-stream the partial frame is just kept",
       "frame_decode",
       {"stream": b"p2p/1I".hex() + "0001ff" + "00", "preamble": True, "eof": False})
    reject("frames-handshake-too-large", "during the handshake a frame may declare at most "
           "1024 bytes; this one declares 1025 (rejected before its body arrives)",
           "frame_decode", {"stream": "0401" + "00" * 10, "max_frame": 1024, "eof": False},
           "frame-too-large")
    reject("frames-truncated", "stream ends 2 bytes into a frame that declared 5",
           "frame_decode", {"stream": "00056162"}, "truncated")
    reject("frames-truncated-header", "stream ends after one byte of a length prefix",
           "frame_decode", {"stream": "0001610a"}, "truncated")
    reject("frames-preamble-wrong-version", "preamble 'p2p/2X': another protocol version",
           "frame_decode", {"stream": b"p2p/2X".hex() + "0000", "preamble": True},
           "unsupported-protocol")
    reject("frames-preamble-unknown-pattern", "preamble 'p2p/1N': no such handshake in p2p/1",
           "frame_decode", {"stream": b"p2p/1N".hex() + "0000", "preamble": True},
           "unsupported-protocol")

    # --- channel (chunks, rekey) --------------------------------------------
    ok("channel-xx-chunks-rekey", "XX over the wire (preamble, frames), then application "
       "messages: one split into 3 chunks of at most 16 bytes, REKEY flagged every 2 Noise "
       "messages per direction", "channel_transcript",
       {**channel_keys(XX), "chunk_size": 16, "rekey_interval": 2, "messages": [
           {"from": "initiator", "payload": b"this message is split into three chunks!".hex()},
           {"from": "responder", "payload": "6f6b"},
           {"from": "initiator", "payload": ""},
           {"from": "responder", "payload": "6f6b32"}]})
    ok("channel-ik-explicit-rekey", "IK over the wire, then messages; the second is sent "
       "with an explicit rekey request", "channel_transcript",
       {**channel_keys(IK), "messages": [
           {"from": "initiator", "payload": "01"},
           {"from": "initiator", "payload": "02", "rekey": True},
           {"from": "responder", "payload": "03"},
           {"from": "initiator", "payload": "04"}]})
    reject("channel-reserved-flag", "transport plaintext whose chunk header has reserved bit "
           "0x04 set", "channel_transcript",
           {**channel_keys(XX), "messages": [{"from": "initiator", "plaintext": "0461"}]},
           "malformed-frame")
    reject("channel-no-chunk-header", "transport plaintext of zero bytes: no chunk header",
           "channel_transcript",
           {**channel_keys(XX), "messages": [{"from": "initiator", "plaintext": ""}]},
           "malformed-frame")
    reject("channel-empty-more-chunk", "a chunk flagged MORE with no data", "channel_transcript",
           {**channel_keys(XX), "messages": [{"from": "initiator", "plaintext": "01"}]},
           "malformed-frame")
    reject("channel-message-too-large", "receiver limit 32 bytes; a 40-byte message in chunks "
           "of 16 is refused when the third chunk would pass the limit, before buffering it",
           "channel_transcript",
           {**channel_keys(XX), "chunk_size": 16, "max_message": 32,
            "messages": [{"from": "initiator", "payload": "ab" * 40}]},
           "too-large")
    reject("channel-eof-mid-message", "the stream ends after the first chunk of a chunked "
           "message", "channel_transcript",
           {**channel_keys(XX), "messages": [
               {"from": "initiator", "plaintext": "01" + "ab" * 4},
               {"from": "initiator", "eof": True}]},
           "truncated")


def main() -> None:
    build()
    VECTORS.write()


if __name__ == "__main__":
    main()
