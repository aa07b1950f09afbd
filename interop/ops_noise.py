"""Interop ops for the transport area: Noise handshakes, frames, chunked channel.

Op contracts are in interop/README.md (section "noise"). Keys are X25519 private
keys as hex, as in the cacophony vector format; both peers are simulated here.
"""

from __future__ import annotations

from p2p.core.errors import StateError
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
from p2p.core.errors import BadArgument
from p2p.core.noise import PATTERN_BY_NAME, Handshake, KeyPair


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


OPS = {
    "noise_transcript": noise_transcript,
    "frame_decode": frame_decode,
    "channel_transcript": channel_transcript,
}
