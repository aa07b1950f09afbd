"""Interop ops for the transport area: Noise handshakes, frames, chunked channel.

Op contracts are in interop/README.md (section "noise"). Keys are X25519 private
keys as hex, as in the cacophony vector format; both peers are simulated here.
"""

from __future__ import annotations

from p2p.core.errors import BadArgument, StateError
from p2p.core.framing import (
    HANDSHAKE_MAX_FRAME,
    MAX_FRAME,
    PREAMBLES,
    PROLOGUE,
    Channel,
    FrameReader,
    UnsupportedProtocol,
    encode_frame,
)
from p2p.core.noise import PATTERN_BY_NAME, PROTOCOL_NAMES, Handshake, KeyPair


def _b(request: dict, key: str, default: bytes | None = None) -> bytes | None:
    value = request.get(key)
    if value is None:
        return default
    return bytes.fromhex(value)


def _pattern(request: dict) -> str:
    name = request.get("protocol_name")
    pattern = PATTERN_BY_NAME.get(name)
    if pattern is None:
        raise UnsupportedProtocol(f"unsupported Noise protocol {name!r}")
    return pattern


def _handshakes(request: dict, prologues: tuple[bytes, bytes] | None = None):
    pattern = _pattern(request)
    if request.get("resp_remote_static") is not None:
        raise BadArgument("resp_remote_static: XX and IK responders learn the initiator's key")
    init_prologue, resp_prologue = prologues or (
        _b(request, "init_prologue", b""),
        _b(request, "resp_prologue", b""),
    )
    init = Handshake(
        "initiator",
        pattern,
        KeyPair.from_private(_b(request, "init_static")),
        _b(request, "init_ephemeral"),
        remote_static=_b(request, "init_remote_static"),
        prologue=init_prologue,
    )
    resp = Handshake(
        "responder",
        pattern,
        KeyPair.from_private(_b(request, "resp_static")),
        _b(request, "resp_ephemeral"),
        prologue=resp_prologue,
    )
    return pattern, init, resp


def _sender(entry: dict, index: int) -> str:
    who = entry.get("from", "initiator" if index % 2 == 0 else "responder")
    if who not in ("initiator", "responder"):
        raise BadArgument(f"from must be initiator or responder, not {who!r}")
    return who


def noise_transcript(request: dict) -> dict:
    _, init, resp = _handshakes(request)
    out = []
    for index, entry in enumerate(request.get("messages", [])):
        sender, receiver = (init, resp) if _sender(entry, index) == "initiator" else (resp, init)
        handshake = not (sender.complete and receiver.complete)
        if entry.get("rekey"):
            if handshake:
                raise BadArgument("rekey during the handshake")
            sender.transport.rekey_send()
            receiver.transport.rekey_receive()
        if "deliver" in entry:
            ciphertext = bytes.fromhex(entry["deliver"])
        else:
            payload = bytes.fromhex(entry["payload"])
            if handshake:
                ciphertext = sender.write_message(payload)
            else:
                ciphertext = sender.transport.encrypt(payload)
        if entry.get("hold"):
            out.append({"payload": entry.get("payload", ""), "ciphertext": ciphertext.hex()})
            continue
        if receiver.complete:
            received = receiver.transport.decrypt(ciphertext)
        else:
            received = receiver.read_message(ciphertext)
        out.append({"payload": received.hex(), "ciphertext": ciphertext.hex()})
    reply: dict = {"messages": out}
    if init.complete and resp.complete:
        if init.handshake_hash != resp.handshake_hash:
            raise StateError("handshake hashes differ although every message verified")
        reply["handshake_hash"] = init.handshake_hash.hex()
    return reply


def frame_decode(request: dict) -> dict:
    reader = FrameReader(
        max_frame=int(request.get("max_frame", MAX_FRAME)),
        expect_preamble=bool(request.get("preamble", False)),
    )
    frames = reader.receive_data(bytes.fromhex(request["stream"]))
    if request.get("eof", True):
        reader.receive_eof()
    reply: dict = {}
    if request.get("preamble"):
        reply["pattern"] = reader.pattern
    reply["frames"] = [frame.hex() for frame in frames]
    return reply


def channel_transcript(request: dict) -> dict:
    pattern, init, resp = _handshakes(request, (PROLOGUE, PROLOGUE))
    # The handshake as it goes over the wire: preamble, then framed messages with
    # empty payloads, read through the same readers the channels keep using.
    init_reader = FrameReader(max_frame=HANDSHAKE_MAX_FRAME)
    resp_reader = FrameReader(max_frame=HANDSHAKE_MAX_FRAME, expect_preamble=True)
    wire = PREAMBLES[pattern]
    handshake_wire = []
    sender, receiver, reader = init, resp, resp_reader
    while not (init.complete and resp.complete):
        wire += encode_frame(sender.write_message(b""))
        handshake_wire.append(wire.hex())
        reader.feed(wire)
        receiver.read_message(reader.next_frame())
        wire = b""
        sender, receiver = receiver, sender
        reader = init_reader if reader is resp_reader else resp_reader
    params = {
        "rekey_interval": int(request.get("rekey_interval", 1 << 20)),
        "chunk_size": int(request.get("chunk_size", 65518)),
        "max_message": int(request.get("max_message", 1 << 20)),
    }
    channels = {
        "initiator": Channel(init.transport, reader=init_reader, **params),
        "responder": Channel(resp.transport, reader=resp_reader, **params),
    }
    out = []
    for index, entry in enumerate(request.get("messages", [])):
        who = _sender(entry, index)
        sender_ch = channels[who]
        receiver_ch = channels["responder" if who == "initiator" else "initiator"]
        if entry.get("rekey"):
            sender_ch.request_rekey()
        if entry.get("eof"):
            receiver_ch.receive_eof()
            out.append({"wire": "", "received": []})
            continue
        if "wire" in entry:
            data = bytes.fromhex(entry["wire"])
        elif "plaintext" in entry:
            # A raw transport plaintext, chunk header included, bypassing chunking:
            # lets vectors show what receivers must reject.
            data = encode_frame(sender_ch.transport.encrypt(bytes.fromhex(entry["plaintext"])))
        else:
            data = sender_ch.send(bytes.fromhex(entry["payload"]))
        received = receiver_ch.receive_data(data)
        out.append({"wire": data.hex(), "received": [m.hex() for m in received]})
    return {
        "handshake_wire": handshake_wire,
        "handshake_hash": init.handshake_hash.hex(),
        "messages": out,
    }


# --- published vectors ------------------------------------------------------------
# Copied from haskell-cryptography/cacophony, vectors/cacophony.txt (commit
# 8ee9d41e34a1a596cfa3ab12aa4069ff87dc1247): the Noise_XX_25519_ChaChaPoly_BLAKE2b and
# Noise_IK_25519_ChaChaPoly_BLAKE2b entries. Keys are private keys. Kept here, once:
# interop/tools/gen_noise.py writes them as vectors, tests/test_noise.py replays them
# through the Noise API.
CACOPHONY_PAYLOADS = [
    "4c756477696720766f6e204d69736573",
    "4d757272617920526f746862617264",
    "462e20412e20486179656b",
    "4361726c204d656e676572",
    "4a65616e2d426170746973746520536179",
    "457567656e2042f6686d20766f6e2042617765726b",
]
CACOPHONY_KEYS = {
    "init_prologue": "4a6f686e2047616c74",
    "init_static": "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
    "init_ephemeral": "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
    "resp_prologue": "4a6f686e2047616c74",
    "resp_static": "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
    "resp_ephemeral": "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
}
CACOPHONY = {
    "XX": {
        "handshake_hash": "8cf47d7b3cb5804c0109d48e8bcdbee2cbb65687d8ea2c92994ca361fb86151a"
        "d93627b98936cbb32de56e8abb21def3925011ac3e35db9cbeea73ab9a4392c2",
        "ciphertexts": [
            "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944"
            "4c756477696720766f6e204d69736573",
            "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843"
            "0505b6745ce64a5f33f0e8e3b83f11ce8802bca507f4f2d8b564dbe277e19661"
            "16e132faa2dfd70b8b077b9f94b913df5056ae1319469b824a98d54bbaa82c32"
            "5595587064f978c4b6d104f7596e6f",
            "99579e1c1ee15e422a57ddd6b16d37087b17558e8369c18991b4b2ca3a824abf"
            "904cdcf5458b5431a75af034ca9e9b982de039eaaf156775e2d580cd4e5ebae8"
            "9c3f8cb2594b556d8a8169",
            "fc56eea290b3f3a21aac0c70cd5787b5ee99be37d2f4d751329b55",
            "bb31c9da10d5639a4cdb88a12f5c61de41bbc7df09bf75d94f8184fe4157f5c68f",
            "f6199cadb152fb27f82be0a0891ec76a33598ae92a46cab2fb5a8ed5bf48b7f267f8370af7",
        ],
    },
    "IK": {
        "init_remote_static": "31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62",
        "handshake_hash": "1c8fa891cb414fedba6daa7c6f4ae0a6d98e5f9768cc9cecd27e805614943ee9"
        "c8a1b27fbfb76dc197255c8aa69f6b4285c423840b8bedf45e652ca64f797d81",
        "ciphertexts": [
            "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944"
            "ba83a447b38c83e327ad936929812f624884847b7831e95e197b2f797088efdd"
            "2f88f1db7e1fb0e99c64419097af91cee64e470f4b6fcd9298ce0b56fe20f86e"
            "13bf70439c538e3602a7127af71a29cc",
            "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843"
            "9f069b267a06b3de3ecb1043bcb098e9af91d9c64748d998c7b47890871571",
            "cd54383060e7a28434cca27fb1cc524cfbabeb18181589df219d07",
            "a856d3bf0246bfc476c655009cd1ed677b8dcc5b349ae8ef2a05f2",
            "49063084b2c51f098337cb8a13739ac848f907e67cfb2cc8a8b60586467aa02fc7",
            "8b9709d23b47e4639df7678d7a21741eba4ef1e9c60383001c7435549c20f9d56f30e935d3",
        ],
    },
}


def cacophony_case(pattern: str) -> tuple[dict, dict]:
    """The published vector for "XX" or "IK" as a noise_transcript (request, expect)."""
    data = CACOPHONY[pattern]
    request = {"protocol_name": PROTOCOL_NAMES[pattern], **CACOPHONY_KEYS}
    if "init_remote_static" in data:
        request["init_remote_static"] = data["init_remote_static"]
    request["messages"] = [{"payload": p} for p in CACOPHONY_PAYLOADS]
    expect = {
        "messages": [
            {"payload": p, "ciphertext": c}
            for p, c in zip(CACOPHONY_PAYLOADS, data["ciphertexts"], strict=True)
        ],
        "handshake_hash": data["handshake_hash"],
    }
    return request, expect


OPS = {
    "noise_transcript": noise_transcript,
    "frame_decode": frame_decode,
    "channel_transcript": channel_transcript,
}
