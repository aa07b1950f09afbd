"""p2p.core.framing: frames, preamble, chunked messages and in-band rekey.

The channel's wire bytes are also read by the independent `noiseprotocol` library
(decrypting each frame, following the REKEY flag by hand), and the reverse: frames
that library encrypts are read by our Channel.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from noise.connection import Keypair as TheirKeypair
from noise.connection import NoiseConnection

from p2p.core.errors import (
    FrameTooLarge,
    RemoteError,
    StateError,
    TooLarge,
    TransportDecryptFailed,
    Truncated,
)
from p2p.core.framing import (
    FLAG_MORE,
    FLAG_REKEY,
    HANDSHAKE_MAX_FRAME,
    MAX_APP_MESSAGE,
    MAX_CHUNK,
    MAX_FRAME,
    PREAMBLES,
    PROLOGUE,
    Channel,
    FrameReader,
    MalformedFrame,
    UnsupportedProtocol,
    encode_frame,
)
from p2p.core.noise import BadArgument, Handshake, KeyPair

pytestmark = pytest.mark.filterwarnings("ignore:One of ephemeral keypairs:UserWarning")


def k(label: str) -> bytes:
    return hashlib.blake2b(label.encode(), digest_size=32).digest()


def transports(pattern="XX"):
    init = Handshake("initiator", pattern, KeyPair.from_private(k("a")), k("b"),
                     remote_static=KeyPair.from_private(k("c")).public if pattern == "IK"
                     else None, prologue=PROLOGUE)
    resp = Handshake("responder", pattern, KeyPair.from_private(k("c")), k("d"),
                     prologue=PROLOGUE)
    sender, receiver = init, resp
    while not (init.complete and resp.complete):
        receiver.read_message(sender.write_message(b""))
        sender, receiver = receiver, sender
    return init.transport, resp.transport


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


# --- frames --------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=600), max_size=6), st.lists(st.integers(0, 10_000)))
def test_frames_roundtrip_any_split(bodies, cuts):
    stream = b"".join(encode_frame(b) for b in bodies)
    reader = FrameReader()
    got = []
    for piece in split(stream, cuts):
        got += reader.receive_data(piece)
    reader.receive_eof()
    assert got == bodies


def test_frame_layout_is_big_endian_u16():
    assert encode_frame(b"abc") == b"\x00\x03abc"
    assert encode_frame(b"x" * 258)[:2] == b"\x01\x02"
    assert len(encode_frame(b"\x00" * MAX_FRAME)) == MAX_FRAME + 2
    with pytest.raises(BadArgument):
        encode_frame(b"\x00" * (MAX_FRAME + 1))


def test_max_size_frame_accepted():
    reader = FrameReader()
    assert reader.receive_data(b"\xff\xff" + b"\x07" * MAX_FRAME) == [b"\x07" * MAX_FRAME]


def test_declared_length_over_limit_rejected_before_body():
    reader = FrameReader(max_frame=HANDSHAKE_MAX_FRAME)
    with pytest.raises(FrameTooLarge):
        reader.receive_data((HANDSHAKE_MAX_FRAME + 1).to_bytes(2, "big"))
    assert reader.buffered == 0
    with pytest.raises(StateError):  # sticky
        reader.receive_data(b"\x00\x00")


def test_buffer_stays_bounded_by_one_frame():
    reader = FrameReader(max_frame=1000)
    assert reader.receive_data(b"\x03\xe8" + b"z" * 999) == []
    assert reader.buffered == 1001  # < 2 + max_frame
    assert reader.receive_data(b"z" + b"\x00\x01") == [b"z" * 1000]
    assert reader.buffered == 2


@pytest.mark.parametrize("stream", [b"\x00", b"\x00\x05ab", b"\x00\x01a\x00"])
def test_eof_mid_frame_is_truncated(stream):
    reader = FrameReader()
    reader.receive_data(stream)
    with pytest.raises(Truncated):
        reader.receive_eof()


def test_pull_api_lets_limit_change_between_frames():
    # The last handshake frame and a large transport frame arrive in one read.
    reader = FrameReader(max_frame=HANDSHAKE_MAX_FRAME, expect_preamble=True)
    reader.feed(PREAMBLES["IK"] + encode_frame(b"h" * 96) + encode_frame(b"t" * 5000))
    assert reader.pattern == "IK"
    assert reader.next_frame() == b"h" * 96
    reader.max_frame = MAX_FRAME
    assert reader.next_frame() == b"t" * 5000
    assert reader.next_frame() is None


@pytest.mark.parametrize("start", [b"p2p/2X", b"P2P/1X", b"p2p/1x", b"p2p/1\x00", b"GET / HTTP/1.1"])
def test_bad_preamble(start):
    reader = FrameReader(expect_preamble=True)
    with pytest.raises(UnsupportedProtocol):
        reader.receive_data(start)


def test_preamble_byte_by_byte_and_early_rejection():
    reader = FrameReader(expect_preamble=True)
    for byte in PREAMBLES["XX"]:
        assert reader.receive_data(bytes([byte])) == []
    assert reader.pattern == "XX"
    early = FrameReader(expect_preamble=True)
    with pytest.raises(UnsupportedProtocol):
        early.receive_data(b"q")  # wrong from the first byte: no need to wait
    eof = FrameReader(expect_preamble=True)
    eof.receive_data(b"p2p")
    with pytest.raises(Truncated):
        eof.receive_eof()


# --- channel -------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(st.tuples(st.booleans(), st.binary(max_size=400)), max_size=10),
    chunk_size=st.integers(1, 120),
    rekey_interval=st.integers(1, 5),
    cuts=st.lists(st.integers(0, 100_000), max_size=8),
)
def test_channel_roundtrip(messages, chunk_size, rekey_interval, cuts):
    ti, tr = transports()
    a = Channel(ti, chunk_size=chunk_size, rekey_interval=rekey_interval)
    b = Channel(tr, chunk_size=chunk_size, rekey_interval=rekey_interval)
    to_b, to_a, want_b, want_a = b"", b"", [], []
    for from_a, msg in messages:
        if from_a:
            to_b += a.send(msg)
            want_b.append(msg)
        else:
            to_a += b.send(msg)
            want_a.append(msg)
    got_b = [m for piece in split(to_b, cuts) for m in b.receive_data(piece)]
    got_a = [m for piece in split(to_a, cuts) for m in a.receive_data(piece)]
    assert got_b == want_b and got_a == want_a
    a.receive_eof()
    b.receive_eof()


def test_one_mebibyte_message_and_no_more():
    ti, tr = transports("IK")
    a, b = Channel(ti), Channel(tr)
    big = bytes(range(256)) * (MAX_APP_MESSAGE // 256)
    wire = a.send(big)
    assert len(wire) == len(big) + 17 * (2 + 16 + 1)  # 17 chunks of <= 65518
    assert b.receive_data(wire) == [big]
    with pytest.raises(BadArgument):
        a.send(big + b"x")


def test_reassembly_limit_checked_before_buffering():
    ti, tr = transports()
    a = Channel(ti, chunk_size=16)
    b = Channel(tr, max_message=40)
    wire = a.send(b"m" * 41)
    with pytest.raises(TooLarge):
        b.receive_data(wire)
    assert b._parts == []  # nothing held after the refusal
    with pytest.raises(StateError):
        b.receive_data(b"")


def test_rekey_flag_semantics():
    ti, tr = transports()
    a, b = Channel(ti, rekey_interval=3), Channel(tr)
    keys = []
    for i in range(7):
        keys.append(ti._send.k)
        assert b.receive_data(a.send(b"%d" % i)) == [b"%d" % i]
    # sent with the first key 3 times, then the second 3 times, then the third
    assert keys[0] == keys[2] != keys[3] == keys[5] != keys[6]
    assert ti.send_nonce == tr.receive_nonce == 7  # rekey keeps the nonce counting
    a.request_rekey()
    before = ti._send.k
    b.receive_data(a.send(b"x"))
    assert ti._send.k != before and tr._recv.k == ti._send.k


def test_channel_interop_with_noiseprotocol():
    """Our Channel's frames decrypt with `noiseprotocol`, honouring REKEY; and theirs
    (built by hand to the spec's chunk layout) are read by our Channel."""
    ours = Handshake("initiator", "XX", KeyPair.from_private(k("a")), k("b"), prologue=PROLOGUE)
    them = NoiseConnection.from_name(b"Noise_XX_25519_ChaChaPoly_BLAKE2b")
    them.set_as_responder()
    them.set_keypair_from_private_bytes(TheirKeypair.STATIC, k("c"))
    them.set_prologue(PROLOGUE)
    them.start_handshake()
    them.read_message(ours.write_message())
    ours.read_message(bytes(them.write_message()))
    them.read_message(ours.write_message())
    ch = Channel(ours.transport, chunk_size=10, rekey_interval=2)
    message = b"0123456789abcdefghijklmnopqrstuvwxyz"
    reader = FrameReader()
    got = b""
    for frame in reader.receive_data(ch.send(message) + ch.send(b"end")):
        plaintext = them.decrypt(frame)
        got += plaintext[1:]
        if plaintext[0] & FLAG_REKEY:
            them.rekey_inbound_cipher()
    assert got == message + b"end"
    # The other way: chunks built by hand, rekey after the 2nd Noise message.
    wire = b""
    for flags, data in [(FLAG_MORE, b"he"), (FLAG_MORE | FLAG_REKEY, b"ll"), (0, b"o")]:
        wire += encode_frame(them.encrypt(bytes([flags]) + data))
        if flags & FLAG_REKEY:
            them.rekey_outbound_cipher()
    wire += encode_frame(them.encrypt(b"\x00bye"))
    assert ch.receive_data(wire) == [b"hello", b"bye"]


@pytest.mark.parametrize(
    ("plaintext", "error"),
    [(b"", MalformedFrame), (b"\x04x", MalformedFrame), (b"\x80", MalformedFrame),
     (b"\x01", MalformedFrame), (b"\x03", MalformedFrame)],
)
def test_bad_chunk_headers(plaintext, error):
    ti, tr = transports()
    with pytest.raises(error):
        Channel(tr).receive_data(encode_frame(ti.encrypt(plaintext)))


def test_eof_inside_chunked_message():
    ti, tr = transports()
    b = Channel(tr)
    assert b.receive_data(encode_frame(ti.encrypt(b"\x01part"))) == []
    with pytest.raises(Truncated):
        b.receive_eof()


def test_a_bad_frame_does_not_lose_the_good_messages_read_with_it():
    # spec/09 §9.5: the messages completed before a faulty frame in the same read are
    # returned (they were authenticated); the fault comes with the next call, for good.
    ti, tr = transports()
    a, b = Channel(ti, chunk_size=8), Channel(tr)
    wire = bytearray(a.send(b"first") + a.send(b"second, in two chunks") + a.send(b"third"))
    wire[-3] ^= 0x40  # inside the last frame's tag
    assert b.receive_data(bytes(wire)) == [b"first", b"second, in two chunks"]
    with pytest.raises(TransportDecryptFailed):
        b.receive_data(b"")
    with pytest.raises(StateError):
        b.receive_data(a.send(b"more"))
    # the same at end of stream: the deferred fault wins over a clean EOF
    ti, tr = transports()
    a, b = Channel(ti), Channel(tr)
    assert b.receive_data(a.send(b"ok") + b"\x00\x00") == [b"ok"]  # then an empty frame: no tag
    with pytest.raises(TransportDecryptFailed):
        b.receive_eof()


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_wire_mutation_never_yields_wrong_data(data):
    ti, tr = transports()
    msgs = data.draw(st.lists(st.binary(max_size=60), min_size=1, max_size=4))
    a, b = Channel(ti, chunk_size=20, rekey_interval=2), Channel(tr)
    wire = bytearray(b"".join(a.send(m) for m in msgs))
    kind = data.draw(st.sampled_from(["flip", "truncate", "append"]))
    if kind == "flip":
        wire[data.draw(st.integers(0, len(wire) - 1))] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        del wire[data.draw(st.integers(0, len(wire) - 1)):]
    else:
        wire += data.draw(st.binary(min_size=1, max_size=30))
    try:
        got = b.receive_data(bytes(wire))
        b.receive_eof()
    except RemoteError as exc:
        assert isinstance(exc, (TransportDecryptFailed, Truncated, MalformedFrame))
    else:
        # Only a cut exactly at a message boundary ends cleanly: a correct prefix.
        assert kind == "truncate" and got == msgs[: len(got)] and len(got) < len(msgs)
    # Fed byte by byte, whatever arrives before the error is an intact prefix.
    c = Channel(transports()[1])
    prefix = []
    try:
        for i in range(len(wire)):
            prefix += c.receive_data(bytes(wire[i : i + 1]))
    except RemoteError:
        pass
    assert prefix == msgs[: len(prefix)]


def test_channel_parameter_bounds():
    ti, _ = transports()
    for kwargs in ({"chunk_size": MAX_CHUNK + 1}, {"chunk_size": 0}, {"rekey_interval": 0},
                   {"rekey_interval": (1 << 20) + 1}, {"max_message": MAX_APP_MESSAGE + 1}):
        with pytest.raises(BadArgument):
            Channel(ti, **kwargs)
