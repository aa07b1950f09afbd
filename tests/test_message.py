"""The plaintext message codec: round trips, every validation rule, mutations."""

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


def test_thread_id_defaults_to_own_id():
    assert m.Message(id="a", type=PING).thread_id == "a"
    assert m.Message(id="a", type=PING, thid="t").thread_id == "t"


def test_piuri():
    assert m.piuri(PING) == ("https://didcomm.org", "trust-ping", 2, 0, "ping")
