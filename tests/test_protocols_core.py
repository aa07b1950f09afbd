"""Trust ping, discover features, problem reports, acks and dispatch (spec/11)."""

import pytest
from hypothesis import given, settings, strategies as st

from p2p.core import cbor, message
from p2p.core.errors import InvalidField
from p2p.core.message import Message
from p2p.core.protocols import ack, connection, discover, problem_report as pr, routing, trust_ping
from p2p.core.protocols.discover import Feature, Query
from p2p.core.protocols.routing import Context, Status

US = "did:peer:2.Vz6MkwACq4HfzKnFK5s8vkEdUKPqYAkyby2DkXrbaryxVnS8R.Ez6LSfB9qNtmyak2QxtLxjmLHmRsv2U2QoKRzX52hx34fGTHr"
THEM = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
NOW = 1_764_320_000
CHAT = "https://p2p.example/chat/1.0"


def ctx(**kw) -> Context:
    args = dict(now=NOW, reply_id="reply-1", our_did=US, their_did=THEM,
                features=routing.CORE_FEATURES + (Feature("protocol", CHAT, ("peer",)),))
    args.update(kw)
    return Context(**args)


def msg(type_, body=None, **kw) -> Message:
    return Message(id=kw.pop("id", "m-1"), type=type_, body={} if body is None else body, frm=THEM, to=(US,), **kw)


def test_ping_gets_response_on_its_thread():
    out = routing.dispatch(trust_ping.ping(id="p-1", frm=THEM, to=US, now=NOW), ctx())
    (reply,) = out.replies
    assert reply.type == "https://didcomm.org/trust-ping/2.0/ping-response"
    assert (reply.thid, reply.frm, reply.to, reply.id, reply.ack) == ("p-1", US, (THEM,), "reply-1", None)
    message.encode(reply)


def test_ping_without_response_and_ping_response_event():
    assert routing.dispatch(msg(trust_ping.PING_TYPE, {"response_requested": False}), ctx()) == routing.Outcome()
    out = routing.dispatch(msg(trust_ping.PING_RESPONSE_TYPE, thid="p-1"), ctx())
    assert out.events == (routing.PingResponded("p-1"),) and out.replies == ()


def test_malformed_body_becomes_problem_report():
    out = routing.dispatch(msg(trust_ping.PING_TYPE, {"response_requested": "yes"}, thid="t-9"), ctx())
    (reply,) = out.replies
    assert reply.type == pr.PROBLEM_REPORT_TYPE and reply.pthid == "t-9" and reply.ack == ("m-1",)
    assert reply.body["code"] == "e.p.msg.invalid-field"
    assert out.events[0].code == "invalid-field" and out.events[0].replied


def test_unknown_type_and_minor_versions():
    out = routing.dispatch(msg("https://example.org/poker/1.0/deal"), ctx())
    assert out.replies[0].body["code"] == "e.p.msg.unsupported-message-type"
    # another minor of a major we speak is understood (DIDComm semver rule)
    out = routing.dispatch(msg("https://didcomm.org/trust-ping/2.3/ping"), ctx())
    assert out.replies[0].type == trust_ping.PING_RESPONSE_TYPE
    out = routing.dispatch(msg("https://didcomm.org/trust-ping/3.0/ping"), ctx())
    assert out.replies[0].type == pr.PROBLEM_REPORT_TYPE


def test_application_message_and_please_ack():
    m = msg(CHAT + "/text", {"text": "hi"}, please_ack=("m-1",))
    out = routing.dispatch(m, ctx())
    assert out.events == (routing.Delivered(m),)
    (a,) = out.replies
    assert a.type == ack.EMPTY_TYPE and a.ack == ("m-1",) and "please_ack" not in a.to_map()
    # the ack rides on the natural reply when there is one
    out = routing.dispatch(msg(trust_ping.PING_TYPE, please_ack=("m-1",)), ctx())
    assert [r.type for r in out.replies] == [trust_ping.PING_RESPONSE_TYPE] and out.replies[0].ack == ("m-1",)
    # a pure ack asking for an ack is not honoured (no ack loops)
    out = routing.dispatch(msg(ack.EMPTY_TYPE, ack=("x",), please_ack=("m-1",)), ctx())
    assert out.replies == () and out.events == (routing.Acknowledged(("x",)),)


def test_discover_features():
    q = discover.queries([Query("protocol", "https://didcomm.org/*"), Query("goal-code", "p2p.*"),
                          Query("flavour", "*")], id="q-1", frm=THEM, to=US, now=NOW)
    (reply,) = routing.dispatch(q, ctx()).replies
    assert reply.type == discover.DISCLOSE_TYPE and reply.thid == "q-1"
    ids = [d["id"] for d in reply.body["disclosures"]]
    assert ids == ["https://didcomm.org/trust-ping/2.0", "https://didcomm.org/discover-features/2.0",
                   "https://didcomm.org/report-problem/2.0", "https://didcomm.org/empty/1.0",
                   "https://didcomm.org/out-of-band/2.0", "p2p.connect"]
    assert reply.body["disclosures"][0] == {"feature-type": "protocol", "id": "https://didcomm.org/trust-ping/2.0",
                                            "roles": ["sender", "receiver"]}
    out = routing.dispatch(msg(discover.DISCLOSE_TYPE, reply.body, thid="q-1"), ctx())
    assert out.events[0].features[0].roles == ("sender", "receiver")
    bad = routing.dispatch(msg(discover.QUERIES_TYPE, {"queries": []}), ctx())
    assert bad.replies[0].body["code"] == "e.p.msg.invalid-field"


@pytest.mark.parametrize("pattern, ident, ok", [
    ("https://didcomm.org/*", "https://didcomm.org/trust-ping/2.0", True),
    ("*", "anything", True), ("https://didcomm.org/tictactoe/1.*", "https://didcomm.org/tictactoe/1.0", True),
    ("https://didcomm.org/tictactoe/1.*", "https://didcomm.org/tictactoe/2.0", False),
    ("a.b", "aXb", False), ("*ping*", "https://didcomm.org/trust-ping/2.0", True), ("exact", "exact", True),
    ("exact", "exactly", False),
])
def test_wildcards(pattern, ident, ok):
    assert discover.matches(pattern, ident) is ok


def test_problem_report_round_trip_and_render():
    rep = pr.report(InvalidField("body.text: expected text"), pthid="t-1", id="pr-1", frm=US, to=THEM, now=NOW,
                    offending_id="m-7")
    assert rep.body == {"code": "e.p.msg.invalid-field", "comment": "Bad message. (invalid-field): {1}",
                        "args": ["body.text: expected text"]}
    out = routing.dispatch(message.decode(message.encode(rep)), ctx())
    acked, event = out.events
    assert acked == routing.Acknowledged(("m-7",))
    assert event.report.error_code == "invalid-field" and event.report.pthid == "t-1"
    assert pr.render(event.report) == "Bad message. (invalid-field): body.text: expected text"
    assert pr.problem_code("decryption-failed") == "e.p.trust.crypto.decryption-failed"
    assert pr.problem_code("message-expired") == "e.p.req.time.message-expired"


def test_broken_problem_report_is_not_answered():
    for body in ({"code": "nonsense"}, {}, {"code": "e.p.x", "args": [{"a": 1}]}):
        out = routing.dispatch(msg(pr.PROBLEM_REPORT_TYPE, body, pthid="t"), ctx())
        assert out.replies == () and out.events[0].replied is False


def test_connect_messages_and_relationship_status():
    m = msg(connection.REQUEST_TYPE, {"label": "x"}, pthid="inv-1")
    assert routing.dispatch(m, ctx(status=Status.NONE, our_did=None, their_did=None)).events == (
        routing.ConnectMessage(m),)
    # no relationship: nothing else is taken, and nothing is answered
    out = routing.dispatch(msg(trust_ping.PING_TYPE), ctx(status=Status.NONE))
    assert out.replies == () and out.events[0].code == "unexpected-message"
    out = routing.dispatch(msg(trust_ping.PING_TYPE), ctx(status=Status.REVOKED))
    assert out.replies == () and out.events[0].code == "relationship-revoked"
    rev = msg(connection.REVOKE_TYPE)
    assert routing.dispatch(rev, ctx()).events == (routing.ConnectMessage(rev),)


def test_dispatch_bytes_salvages_the_thread_of_an_invalid_message():
    raw = cbor.dumps({"id": "m-5", "thid": "t-5", "type": trust_ping.PING_TYPE, "body": {}, "expires_time": NOW - 1})
    out = routing.dispatch_bytes(raw, ctx())
    assert out.replies[0].pthid == "t-5" and out.replies[0].body["code"] == "e.p.req.time.message-expired"
    out = routing.dispatch_bytes(b"\xff", ctx())
    assert out.replies == () and out.events[0].code == "malformed-cbor"


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_dispatch_never_raises_on_peer_input(data):
    value = data.draw(st.recursive(
        st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=6) | st.binary(max_size=4),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=8))
    mtype = data.draw(st.sampled_from([trust_ping.PING_TYPE, trust_ping.PING_RESPONSE_TYPE, discover.QUERIES_TYPE,
                                       discover.DISCLOSE_TYPE, pr.PROBLEM_REPORT_TYPE, ack.EMPTY_TYPE, CHAT + "/x"]))
    field = data.draw(st.sampled_from(["body", "queries", "response_requested", "code", "disclosures", "args"]))
    m = {"id": "m", "type": mtype, "body": value if field == "body" and type(value) is dict else {field: value}}
    raw = cbor.dumps(m) if not _has_float(m) else b"\xa0"
    out = routing.dispatch_bytes(raw, ctx())
    for reply in out.replies:
        message.encode(reply)  # every reply we make is a valid message


def _has_float(v):
    return isinstance(v, float) or (isinstance(v, dict) and any(map(_has_float, v.values()))) or \
        (isinstance(v, list) and any(map(_has_float, v)))


def test_new_ids_never_start_like_a_command_line_option():
    from p2p.core.protocols import new_id

    for first in range(256):  # every possible first byte, including those that encode to "-" or "_"
        value = new_id(bytes([first]) + bytes(15))
        assert value[0] not in "-_" and len(value) == 22


def test_customer_protocol_codes_use_the_descriptors_their_sections_state():
    from p2p.core.protocols.problem_report import problem_code

    assert problem_code("unsolicited-notification") == "e.p.req.unsolicited-notification"  # spec/16
    assert problem_code("rate-limited") == "e.p.req.rate-limited"
    assert problem_code("agreement-required") == "e.p.req.agreement-required"  # spec/17
    assert problem_code("agreement-mismatch") == "e.p.trust.agreement-mismatch"
    assert problem_code("unknown-topic") == "e.p.msg.unknown-topic"
    assert problem_code("illegal-transition") == "e.p.msg.illegal-transition"  # spec/18
