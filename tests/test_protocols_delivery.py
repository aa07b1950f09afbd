"""Delivery frames and sequencing (spec/12)."""

import cbor2
import pytest
from hypothesis import given, settings, strategies as st

from p2p.core import cbor
from p2p.core.errors import LocalError, RemoteError
from p2p.core.protocols import delivery as d

seqs = st.integers(1, d.MAX_SEQ)
frames = st.one_of(
    st.builds(d.Deliver, seqs, st.binary(min_size=1, max_size=300)),
    st.builds(d.Receipt, st.lists(seqs, min_size=1, max_size=20).map(tuple)),
    st.builds(d.Close, st.from_regex(r"[a-z0-9]{1,10}(-[a-z0-9]{1,10}){0,3}", fullmatch=True)),
)


@settings(max_examples=300, deadline=None)
@given(frames)
def test_round_trip_and_deterministic(frame):
    data = d.encode(frame)
    assert d.decode(data) == frame
    # the hand-built encoding is exactly the generic deterministic one (and cbor2's)
    as_list = {d.Deliver: lambda f: [1, f.seq, f.envelope], d.Receipt: lambda f: [2, list(f.seqs)],
               d.Close: lambda f: [3, f.reason]}[type(frame)](frame)
    assert data == cbor.dumps(as_list) == cbor2.dumps(as_list)


def test_known_bytes():
    assert d.encode(d.Deliver(1, b"\xd8\x60")).hex() == "83010142d860"
    assert d.encode(d.Receipt((1, 2, 300))).hex() == "8202830102190" + "12c"
    assert d.encode(d.Close("shutdown")).hex() == "820368" + b"shutdown".hex()


@pytest.mark.parametrize("value, code", [
    ([], "malformed-delivery-frame"), ({1: 2}, "malformed-delivery-frame"), (["1", 1, b"x"], "malformed-delivery-frame"),
    ([1, 0, b"x"], "malformed-delivery-frame"), ([1, -1, b"x"], "malformed-delivery-frame"),
    ([1, 2**63, b"x"], "malformed-delivery-frame"), ([1, 1, b""], "malformed-delivery-frame"),
    ([1, 1, "x"], "malformed-delivery-frame"), ([1, 1], "malformed-delivery-frame"),
    ([1, 1, b"x", 0], "malformed-delivery-frame"), ([1, True, b"x"], "malformed-delivery-frame"),
    ([2, []], "malformed-delivery-frame"), ([2, [0]], "malformed-delivery-frame"), ([2, 5], "malformed-delivery-frame"),
    ([2, list(range(1, 1026))], "malformed-delivery-frame"), ([3, "Bye"], "malformed-delivery-frame"),
    ([3, ""], "malformed-delivery-frame"), ([3, "x" * 65], "malformed-delivery-frame"),
    ([4, 1], "unknown-frame-kind"), ([0], "unknown-frame-kind"), ([-1, 1], "unknown-frame-kind"),
])
def test_rejects(value, code):
    with pytest.raises(RemoteError) as e:
        d.decode(cbor.dumps(value))
    assert e.value.code == code


def test_cbor_faults_keep_their_codes():
    good = d.encode(d.Deliver(5, b"\xd8\x60abc"))
    for data, code in [(good[:-1], "truncated"), (good + b"\x00", "trailing-data"), (b"\xff", "malformed-cbor"),
                       (b"", "truncated"), (b"\x00" * (d.MAX_FRAME_BYTES + 1), "too-large")]:
        with pytest.raises(RemoteError) as e:
            d.decode(data)
        assert e.value.code == code


def test_biggest_envelope_fits_the_transport_limit():
    big = d.encode(d.Deliver(d.MAX_SEQ, b"\x01" * d.MAX_ENVELOPE_BYTES))
    assert len(big) <= d.MAX_FRAME_BYTES
    assert d.decode(big).seq == d.MAX_SEQ
    with pytest.raises(LocalError):
        d.encode(d.Deliver(1, b"\x01" * (d.MAX_ENVELOPE_BYTES + 1)))


@settings(max_examples=300, deadline=None)
@given(frames, st.data())
def test_mutation_raises_remote_error_only(frame, data):
    raw = bytearray(d.encode(frame))
    op = data.draw(st.sampled_from(["flip", "cut", "append"]))
    if op == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    elif op == "cut":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        raw += data.draw(st.binary(min_size=1, max_size=4))
    try:
        out = d.decode(bytes(raw))
    except RemoteError:
        return
    assert isinstance(out, (d.Deliver, d.Receipt, d.Close))


def test_windows_and_backoff():
    rx = d.ReceiveWindow()
    order = []
    for seq in [1, 2, 2, 4, 3, 4, 7]:  # 3 after 4 is a retransmission the sender never makes
        if rx.is_new(seq):
            order.append(seq)
            rx.taken(seq)
    assert order == [1, 2, 4, 7] and rx.high == 7
    tx = d.SendWindow(limit=3)
    for s in (5, 6, 9):
        tx.sent(s)
    assert not tx.can_send()
    with pytest.raises(LocalError):
        tx.sent(10)
    assert tx.receipted((6, 6, 42)) == (6,) and tx.in_flight == (5, 9)
    with pytest.raises(LocalError):
        tx.sent(8)  # below the last sent seq: would break per-thread order
    assert d.backoff_ms(0, 0) == 0 and d.backoff_ms(0, 2**32 - 1) == 1000
    assert d.backoff_ms(3, 2**32 - 1) == 8000 and d.backoff_ms(40, 2**32 - 1) == 300_000
    assert d.backoff_ms(40, 2**31) == 150_000
    assert d.expires_at(100, None) == 100 + 7 * 86400 and d.expires_at(100, 200) == 200
