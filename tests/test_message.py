"""The plaintext message codec: round trips, every validation rule, mutations."""

import dataclasses

import cbor2
import pytest
from hypothesis import given, settings, strategies as st

from p2p.core import cbor, errors, message as m

PING = "https://didcomm.org/trust-ping/2.0/ping"


def wire(**fields):
    base = {"id": "m-1", "type": PING, "body": {}}
    base.update(fields)
    return cbor.dumps({k: v for k, v in base.items() if v is not DROP})


DROP = object()

ids = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
dids = st.builds(lambda s: "did:key:z" + s, st.text(alphabet="123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ", min_size=1, max_size=50))
cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
attachments = st.builds(
    m.Attachment,
    id=ids,
    data=st.one_of(
        st.builds(lambda b: {"bytes": b}, st.binary(max_size=64)),
        st.builds(lambda h: {"links": ["https://example.com/a"], "hash": h}, st.binary(min_size=32, max_size=32)),
        st.builds(lambda v: {"cbor": v}, cbor_values),
    ),
    media_type=st.none() | st.just("text/plain"),
)
messages = st.builds(
    m.Message,
    id=ids,
    type=st.sampled_from([PING, "https://p2p.example/support/1.0/open-ticket", "https://example.org/x/p/10.2/y"]),
    body=st.dictionaries(st.text(max_size=10), cbor_values, max_size=5),
    frm=st.none() | dids,
    to=st.none() | st.lists(dids, min_size=1, max_size=3).map(tuple),
    thid=st.none() | ids,
    pthid=st.none() | ids,
    created_time=st.none() | st.integers(0, 2**40),
    expires_time=st.none(),
    attachments=st.lists(attachments, max_size=3, unique_by=lambda a: a.id).map(tuple),
)


@given(messages)
@settings(max_examples=200)
def test_round_trip(msg):
    data = m.encode(msg)
    assert m.decode(data) == msg
    # deterministic: re-encoding the decoded message gives the same bytes
    assert m.encode(m.decode(data)) == data


@given(messages, st.data())
@settings(max_examples=200)
def test_mutations_raise_remote_errors_only(msg, data):
    raw = bytearray(m.encode(msg))
    how = data.draw(st.sampled_from(["flip", "truncate", "append"]))
    if how == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        raw += data.draw(st.binary(min_size=1, max_size=8))
    try:
        out = m.decode(bytes(raw))
    except errors.RemoteError:
        return
    # A flip may land inside a value and still make a valid message; it must then
    # decode to something other than the original, never silently to the same thing.
    assert how == "flip"
    assert out != msg


def test_deterministic_key_order_is_bytewise():
    # RFC 8949 4.2.1: shorter text keys first, then bytewise; not insertion order
    data = m.encode(m.Message(id="a", type=PING, body={"zz": 1, "b": 2, "aaa": 3}))
    assert list(cbor2.loads(data)) == ["id", "body", "type"]
    assert list(cbor2.loads(data)["body"]) == ["b", "zz", "aaa"]


@pytest.mark.parametrize(
    "raw, error, needle",
    [
        (wire(id=DROP), errors.MissingField, "id"),
        (wire(type=DROP), errors.MissingField, "type"),
        (wire(body=DROP), errors.MissingField, "body"),
        (wire(id=7), errors.InvalidField, "id"),
        (wire(id=""), errors.InvalidField, "id"),
        (wire(id="has space"), errors.InvalidField, "id"),
        (wire(id="x" * 129), errors.InvalidField, "id"),
        # `$` matches before a final newline: ids and types must match in full.
        (wire(id="abc\n"), errors.InvalidField, "id"),
        (wire(thid="abc\n"), errors.InvalidField, "thid"),
        (wire(pthid="abc\n"), errors.InvalidField, "pthid"),
        (wire(type=PING + "\n"), errors.InvalidField, "type"),
        (wire(please_ack=["x" * 257]), errors.InvalidField, "please_ack"),
        (wire(ack=[""]), errors.InvalidField, "ack"),
        (wire(type="ping"), errors.InvalidField, "type"),
        (wire(body=[]), errors.InvalidField, "body"),
        (wire(**{"from": "mailto:x"}), errors.InvalidField, "from"),
        (wire(to=[]), errors.InvalidField, "to"),
        (wire(to="did:key:z6Mk"), errors.InvalidField, "to"),
        (wire(created_time=-1), errors.InvalidField, "created_time"),
        (wire(created_time="yesterday"), errors.InvalidField, "created_time"),
        (wire(created_time=10, expires_time=5), errors.InvalidField, "expires_time"),
        (wire(crit=["x-unknown"], **{"x-unknown": 1}), errors.UnknownCriticalField, "x-unknown"),
        (wire(crit=["thid"]), errors.InvalidField, "crit"),
        (wire(attachments=[{"id": "a"}]), errors.MissingField, "data"),
        (wire(attachments=[{"id": "a", "data": {"bytes": b"x", "cbor": 1}}]), errors.InvalidField, "exactly one"),
        (wire(attachments=[{"id": "a", "data": {"links": ["https://x"]}}]), errors.MissingField, "hash"),
        (wire(attachments=[{"id": "a", "data": {"bytes": b""}}, {"id": "a", "data": {"bytes": b""}}]), errors.InvalidField, "unique"),
        (cbor.dumps([1, 2]), errors.InvalidMessage, "map"),
        (cbor2.dumps({1: "x", "id": "a", "type": PING, "body": {}}), errors.InvalidField, "text"),
    ],
)
def test_each_rule_has_a_precise_error(raw, error, needle):
    with pytest.raises(error) as info:
        m.decode(raw)
    assert type(info.value) is error
    assert needle in str(info.value)


def test_unknown_noncritical_fields_are_kept():
    msg = m.decode(wire(**{"x-trace": "abc"}))
    assert msg.extensions == {"x-trace": "abc"}
    assert m.encode(msg) == wire(**{"x-trace": "abc"})


def test_understood_extension_may_be_critical():
    raw = wire(crit=["x-terms"], **{"x-terms": b"\x00" * 32})
    assert m.decode(raw, understood=frozenset({"x-terms"})).extensions["x-terms"] == b"\x00" * 32


def test_time_checks_given_now():
    raw = wire(created_time=1000, expires_time=2000)
    assert m.decode(raw, now=1500).id == "m-1"
    with pytest.raises(errors.MessageExpired):
        m.decode(raw, now=2000)
    with pytest.raises(errors.ClockSkew):
        m.decode(raw, now=1000 - m.DEFAULT_MAX_SKEW - 1)
    assert m.decode(raw, now=1000 - m.DEFAULT_MAX_SKEW).id == "m-1"


def test_size_limit():
    big = wire(body={"x": b"\0" * m.MAX_MESSAGE_BYTES})
    with pytest.raises(errors.TooLarge):
        m.decode(big)
    with pytest.raises(errors.LocalError):
        m.encode(m.Message(id="a", type=PING, body={"x": b"\0" * m.MAX_MESSAGE_BYTES}))


@pytest.mark.parametrize(
    "raw, error",
    [
        (b"", errors.Truncated),
        (wire()[:-1], errors.Truncated),
        (wire() + b"\x00", errors.TrailingData),
        (b"\xff", errors.MalformedCBOR),
        (b"\x1c", errors.MalformedCBOR),  # reserved additional info
    ],
)
def test_bad_cbor(raw, error):
    with pytest.raises(error):
        m.decode(raw)


def test_encode_refuses_invalid_and_floats():
    with pytest.raises(errors.LocalError):
        m.encode(m.Message(id="bad id", type=PING))
    with pytest.raises(errors.LocalError):
        m.encode(m.Message(id="a", type=PING, body={"price": 1.5}))


def test_please_ack_may_hold_the_empty_text():
    # DIDComm v2.1 "ACKs": "" in please_ack means "this message".
    msg = m.decode(wire(please_ack=["", "m-0"]))
    assert msg.please_ack == ("", "m-0")
    assert m.decode(m.encode(msg)) == msg
    assert m.encode(dataclasses.replace(msg, please_ack=("",))) == wire(please_ack=[""])
    from cddl_schema import check

    assert check("msg-message", wire(please_ack=[""])) == []
    assert check("msg-message", wire(ack=[""])) != []


def test_ids_and_types_with_a_trailing_newline_are_refused_on_encode():
    base = m.decode(wire())
    for field, value in (("id", "abc\n"), ("thid", "abc\n"), ("pthid", "abc\n"), ("type", PING + "\n")):
        with pytest.raises(errors.LocalError):
            m.encode(dataclasses.replace(base, **{field: value}))
    with pytest.raises(errors.InvalidField):
        m.piuri(PING + "\n")


def test_thread_id_defaults_to_own_id():
    assert m.Message(id="a", type=PING).thread_id == "a"
    assert m.Message(id="a", type=PING, thid="t").thread_id == "t"


def test_piuri():
    assert m.piuri(PING) == ("https://didcomm.org", "trust-ping", 2, 0, "ping")


# --- fast paths: each must agree with the reference behaviour ---------------------------
# message.encode validates common messages field by field and cbor.dumps encodes maps
# already in deterministic order without copying; both fall back to the general code.
# These tests pin the fast paths to independent references.


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes((major << 5 | n,))
    for ai, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes((major << 5 | ai,)) + n.to_bytes(size, "big")
    raise AssertionError(n)


def _reference_encode(value) -> bytes:
    """RFC 8949 4.2.1 written out: maps sorted by the bytes of their encoded keys."""
    if isinstance(value, dict):
        items = sorted((_reference_encode(k), _reference_encode(v)) for k, v in value.items())
        return _head(5, len(items)) + b"".join(k + v for k, v in items)
    if isinstance(value, (list, tuple)):
        return _head(4, len(value)) + b"".join(_reference_encode(v) for v in value)
    return cbor2.dumps(value)  # scalars: cbor2 always writes the shortest form


cbor_keys = (st.text(max_size=30) | st.binary(max_size=30) | st.integers(-(2**66), 2**66)
             | st.integers(-30, 30) | st.booleans() | st.none())
any_cbor = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=30) | st.binary(max_size=30),
    lambda inner: (st.lists(inner, max_size=4) | st.lists(inner, max_size=3).map(tuple)
                   | st.dictionaries(cbor_keys, inner, max_size=5)
                   | st.dictionaries(st.text(max_size=30), inner, max_size=5)
                   | st.dictionaries(st.integers(-(2**66), 2**66), inner, max_size=5)),
    max_leaves=25,
)


@given(any_cbor)
@settings(max_examples=400)
def test_cbor_dumps_is_rfc8949_deterministic(value):
    want = _reference_encode(value)
    assert cbor.dumps(value) == want
    assert cbor.dumps_tagged(7, value) == cbor2.dumps(cbor2.CBORTag(7, cbor2.loads(want)))
    # Decoded from deterministic CBOR, every map is already in order: the fast path.
    assert cbor.dumps(cbor2.loads(want)) == want


@given(any_cbor, st.data())
@settings(max_examples=100)
def test_cbor_dumps_refuses_floats_anywhere(value, data):
    holder = data.draw(st.sampled_from(["list", "map", "key"]))
    bad = [value, 1.5] if holder == "list" else {"a": value, "b": 0.5} if holder == "map" else {1.5: value}
    with pytest.raises(errors.LocalError):
        cbor.dumps(bad)


def test_cbor_dumps_bytes_matches_cbor2():
    for n in (0, 1, 23, 24, 255, 256, 65535, 65536, 70000):
        assert cbor.dumps_bytes(b"\x5a" * n) == cbor2.dumps(b"\x5a" * n)


@given(any_cbor, st.data())
@settings(max_examples=300)
def test_loads_tag_content_agrees_with_loads(value, data):
    head = data.draw(st.sampled_from([b"\xd2", b"\xd8\x60"]))
    raw = bytearray(head + _reference_encode(value))
    how = data.draw(st.sampled_from(["keep", "flip", "truncate", "append"]))
    if how == "flip" and len(raw) > len(head):
        i = data.draw(st.integers(len(head), len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        raw = raw[: data.draw(st.integers(len(head), len(raw)))]
    elif how == "append":
        raw += data.draw(st.binary(min_size=1, max_size=4))
    raw = bytes(raw)
    try:
        want = cbor.loads(raw, max_size=1 << 20).value
    except errors.RemoteError as exc:
        with pytest.raises(type(exc)):
            cbor.loads_tag_content(raw, head, max_size=1 << 20)
        return
    got = cbor.loads_tag_content(raw, head, max_size=1 << 20)
    # Same value; loads gives tuples / frozendicts inside a tag, this lists / dicts.
    assert cbor2.dumps(got) == cbor2.dumps(want)
    with pytest.raises(errors.TooLarge):
        cbor.loads_tag_content(raw, head, max_size=len(raw) - 1)


def _reference_message_encode(msg: m.Message) -> bytes | None:
    """What encode did before its fast path: to_map, parse_map, dumps (None: refused)."""
    wire = msg.to_map()
    try:
        m.parse_map(wire)
    except errors.InvalidMessage:
        return None
    return _reference_encode(wire)


bad_texts = st.sampled_from(["", " ", "a b", "x" * 129, "id\n", "é", "did:key:z1", "x" * 300]) | st.integers()
bad_dids = st.sampled_from(["", "did:x", "mailto:a", "did:a:" + "b" * 4100, "did:a:b\n"]) | st.integers()
bad_times = st.integers(-5, -1) | st.integers(2**63, 2**64) | st.just(True) | st.just("1")


fast_messages = st.builds(  # valid and without attachments: what encode's fast path takes
    m.Message,
    id=ids,
    type=st.sampled_from([PING, "https://example.org/x/p/10.2/y"]),
    body=st.dictionaries(st.text(max_size=10), cbor_values, max_size=4),
    frm=st.none() | dids,
    to=st.none() | st.lists(dids, min_size=1, max_size=16).map(tuple) | st.lists(dids, min_size=1, max_size=2),
    thid=st.none() | ids,
    pthid=st.none() | ids,
    created_time=st.none() | st.integers(0, 2**63 - 1),
    expires_time=st.none() | st.integers(0, 2**63 - 1),
    please_ack=st.none() | st.lists(ids | st.just(""), max_size=4).map(tuple) | st.lists(ids, max_size=4),
    ack=st.none() | st.lists(ids, max_size=64).map(tuple),
).filter(lambda x: x.created_time is None or x.expires_time is None or x.expires_time >= x.created_time)

# One field at a time made invalid (or nearly so), on top of a valid message.
corruptions = {
    "id": bad_texts,
    "type": st.sampled_from(["ping", "", "https://x/p/1.0/n\n", "https://x/p/1/n", "x" * 257]) | st.integers(),
    "body": st.just([]) | st.none(),
    "frm": bad_dids,
    "to": st.just(()) | st.lists(dids, min_size=17, max_size=17).map(tuple) | bad_dids.map(lambda d: ("did:a:b", d)),
    "thid": bad_texts,
    "pthid": bad_texts,
    "created_time": bad_times,
    "expires_time": bad_times,
    "please_ack": st.just(("x" * 257,)) | st.just(("a",) * 5) | st.just((1,)),
    "ack": st.just(("",)) | st.just(("x" * 257,)) | st.just(("a",) * 65),
    "extensions": st.just({"x-a": 1}) | st.just({1: 2}) | st.just({"id": "other"}),
    "crit": st.just(("thid",)) | st.just(("x-a",)),
}


@st.composite
def maybe_bad_messages(draw):
    msg = draw(fast_messages)
    how = draw(st.sampled_from(["valid", "expires_before_created", *corruptions]))
    if how == "expires_before_created":
        t = draw(st.integers(0, 2**63 - 2))
        return dataclasses.replace(msg, created_time=t + 1, expires_time=draw(st.integers(0, t)))
    if how == "valid":
        return msg
    return dataclasses.replace(msg, **{how: draw(corruptions[how])})


@given(maybe_bad_messages())
@settings(max_examples=500)
def test_encode_fast_path_agrees_with_to_map_and_parse_map(msg):
    want = _reference_message_encode(msg)
    if want is None:
        with pytest.raises(errors.LocalError):
            m.encode(msg)
    else:
        assert m.encode(msg) == want


@given(st.one_of(st.none(), ids, dids, bad_texts, bad_dids, st.integers(), st.binary(max_size=5),
                 st.sampled_from([PING, "https://x/p/1.0/n\n", "https://x/p/1/n", "x:/p/1.0/n"]), st.text(max_size=40)))
@settings(max_examples=500)
def test_field_predicates_equal_their_checkers(value):
    # Each fast predicate accepts exactly what the checker that raises the error accepts.
    def accepts(check) -> bool:
        try:
            check()
        except errors.InvalidMessage:
            return False
        return True

    box = {"f": value}
    assert m._is_id(value) == (value is not None and accepts(
        lambda: m._text(box, "f", required=True, limit=m.MAX_ID_CHARS, pattern=m._ID_RE)))
    for _ in range(2):  # the second round answers from _is_type's cache
        assert m._is_type(value) == (value is not None and accepts(
            lambda: m._text(box, "f", required=True, limit=m.MAX_TYPE_CHARS, pattern=m._TYPE_RE)))
    assert m._is_did(value) == accepts(lambda: m._did(box, "f", value))


def test_encode_accepts_an_understood_critical_extension_only_when_told():
    msg = m.Message(id="a", type=PING, extensions={"x-terms": b"\x01" * 32}, crit=("x-terms",))
    with pytest.raises(errors.LocalError):
        m.encode(msg)
    data = m.encode(msg, understood=frozenset({"x-terms"}))
    assert m.decode(data, understood=frozenset({"x-terms"})) == msg
