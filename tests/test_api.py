"""The admin API over real HTTP (httpx against serve_api on 127.0.0.1), backed by the
in-memory FakeAgent that keeps the Agent contract (tests/fake_agent.py)."""

import json
import logging
import os
import stat

import httpx
import pytest
import trio

from fake_agent import BASIC, NEARBY, seeded
from p2p.api import openapi
from p2p.api import token as homefiles
from p2p.api.server import (MAX_BODY_BYTES, ApiSettings, check_host, create_app, serve_api, settings_from_config,
                            status_for)
from p2p.core import errors
from p2p.core.protocols.errors import InvalidInvitation, InvitationUsed
from p2p.net.noise_stream import HandshakeTimeout, Unreachable
from p2p.store import RelationshipRevoked, UnknownRelationship

TOKEN = "test-token-0123456789"
ALICE = "a1b2c3d4-0000-4000-8000-000000000001"
BOB = "a1b2ffff-0000-4000-8000-000000000002"  # revoked

# Every route with a request that would succeed with the token; used for the 401 sweep.
ROUTES = [
    ("GET", "/v1/openapi.json", None), ("GET", "/v1/status", None), ("POST", "/v1/invitations", {}),
    ("GET", "/v1/invitations", None), ("POST", "/v1/invitations/accept", {"url": "p2p:invite?_oob=e30"}),
    ("GET", "/v1/relationships", None), ("GET", f"/v1/relationships/{ALICE}", None),
    ("POST", f"/v1/relationships/{ALICE}/revoke", {}), ("POST", f"/v1/relationships/{ALICE}/ping", {}),
    ("POST", f"/v1/relationships/{ALICE}/discover", {}), ("GET", "/v1/discover", None),
    ("POST", "/v1/messages", {"relationship": ALICE, "type": BASIC, "body": {}}), ("GET", "/v1/messages", None),
    ("GET", "/v1/messages/x", None), ("GET", "/v1/threads/thread-1", None), ("GET", "/v1/events", None),
]


class Api:
    def __init__(self, agent, base):
        self.agent, self.base = agent, base
        self.http = httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {TOKEN}"}, timeout=5)


async def start(nursery, agent=None, **kwargs):
    agent = agent or seeded()
    host, port = await nursery.start(lambda task_status: serve_api(agent, port=0, token=TOKEN, task_status=task_status,
                                                                   **kwargs))
    assert host == "127.0.0.1" and port > 0
    return Api(agent, f"http://{host}:{port}")


@pytest.fixture
async def api(nursery):
    a = await start(nursery)
    yield a
    await a.http.aclose()


def assert_error(r, status, code):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["error"] == code and isinstance(doc["detail"], str) and doc["detail"], doc
    assert "Traceback" not in r.text


# --- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {}, {"authorization": "Bearer wrong-token"}, {"authorization": f"Basic {TOKEN}"},
    {"authorization": f"Bearer {TOKEN}x"}, {"authorization": "Bearer"},
    {"authorization": "Bearer \u00e9t\u00e9".encode("latin-1")},
], ids=["none", "wrong", "basic-scheme", "longer", "empty", "non-ascii"])
async def test_every_route_but_health_needs_the_token(api, headers):
    async with httpx.AsyncClient(base_url=api.base, headers=headers) as http:
        for method, path, body in ROUTES:
            r = await http.request(method, path, json=body)
            assert_error(r, 401, "unauthorized")
            assert r.headers["www-authenticate"].startswith("Bearer")
        r = await http.get("/v1/health")
        assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert api.agent.calls == []  # nothing reached the agent


async def test_two_authorization_headers_are_refused(api):
    async with httpx.AsyncClient(base_url=api.base) as http:
        r = await http.get("/v1/status", headers=[("authorization", f"Bearer {TOKEN}"), ("authorization", "Bearer x")])
    assert_error(r, 401, "unauthorized")


async def test_scheme_is_case_insensitive(api):
    async with httpx.AsyncClient(base_url=api.base, headers={"authorization": f"bearer {TOKEN}"}) as http:
        assert (await http.get("/v1/status")).status_code == 200


# --- resources -------------------------------------------------------------------------------


async def test_status(api):
    r = await api.http.get("/v1/status")
    assert r.status_code == 200
    assert r.json() == await api.agent.status()


async def test_invitations_create_and_list(api):
    r = await api.http.post("/v1/invitations", json={"multi_use": True, "label": "shop", "expires_in": 3600})
    assert r.status_code == 201, r.text
    inv = r.json()
    assert inv["multi_use"] is True and inv["label"] == "shop" and inv["url"].startswith("p2p:invite?")
    assert api.agent.calls[-1] == ("create_invitation", {"multi_use": True, "label": "shop", "expires_in": 3600})
    r = await api.http.post("/v1/invitations")  # no body: all defaults
    assert r.status_code == 201 and api.agent.calls[-1][1] == {"multi_use": False, "label": None, "expires_in": None}
    r = await api.http.get("/v1/invitations")
    assert r.status_code == 200 and [i["id"] for i in r.json()["invitations"]] == list(api.agent.invitations)


@pytest.mark.parametrize("body, code", [
    ({"multi_use": "yes"}, "invalid-field"), ({"expires_in": 0}, "invalid-field"), ({"expires_in": -5}, "invalid-field"),
    ({"expires_in": 1.5}, "invalid-field"), ({"expires_in": True}, "invalid-field"), ({"label": 7}, "invalid-field"),
    ({"colour": "red"}, "invalid-field"), ([], "invalid-field"), ({"label": "x" * 300}, "bad-argument"),
])
async def test_invitation_bad_requests(api, body, code):
    assert_error(await api.http.post("/v1/invitations", json=body), 400, code)


async def test_accept(api):
    inv = (await api.http.post("/v1/invitations", json={"label": "Shop"})).json()
    r = await api.http.post("/v1/invitations/accept", json={"url": inv["url"], "label": "my shop", "timeout": 5})
    assert r.status_code == 201, r.text
    rel = r.json()
    assert rel["label"] == "my shop" and rel["their_label"] == "Shop" and rel["role"] == "invitee"
    assert api.agent.calls[-1] == ("accept_invitation", {"url": inv["url"], "label": "my shop", "timeout": 5})
    assert (await api.http.get(f"/v1/relationships/{rel['id']}")).json() == rel


async def test_accept_failures(api):
    expired = (await api.agent.create_invitation(label="expired"))["url"]
    unreachable = (await api.agent.create_invitation(label="unreachable"))["url"]
    post = lambda body: api.http.post("/v1/invitations/accept", json=body)  # noqa: E731
    assert_error(await post({}), 400, "missing-field")
    assert_error(await post({"url": 5}), 400, "invalid-field")
    assert_error(await post({"url": "https://example.com/"}), 400, "invalid-invitation")
    assert_error(await post({"url": expired}), 400, "invitation-expired")
    assert_error(await post({"url": unreachable}), 504, "unreachable")
    assert_error(await post({"url": expired, "timeout": 0}), 400, "invalid-field")
    assert_error(await post({"url": expired, "timeout": 1000}), 400, "invalid-field")


async def test_relationships(api):
    r = await api.http.get("/v1/relationships")
    assert r.status_code == 200 and [x["id"] for x in r.json()["relationships"]] == [ALICE, BOB]
    r = await api.http.get("/v1/relationships", params={"state": "revoked"})
    assert [x["id"] for x in r.json()["relationships"]] == [BOB]
    r = await api.http.get(f"/v1/relationships/{ALICE}")
    assert r.status_code == 200 and r.json()["label"] == "alice"
    assert_error(await api.http.get("/v1/relationships/nope"), 404, "unknown-relationship")
    assert_error(await api.http.get("/v1/relationships", params={"colour": "x"}), 400, "invalid-field")


async def test_revoke(api):
    r = await api.http.post(f"/v1/relationships/{ALICE}/revoke", json={"reason": "moved away"})
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    assert api.agent.calls[-1] == ("revoke", {"relationship_id": ALICE, "reason": "moved away"})
    assert_error(await api.http.post(f"/v1/relationships/{ALICE}/revoke"), 409, "relationship-revoked")
    assert_error(await api.http.post("/v1/relationships/nope/revoke"), 404, "unknown-relationship")
    assert_error(await api.http.post(f"/v1/relationships/{BOB}/revoke", json={"reason": 1}), 400, "invalid-field")


async def test_ping_and_discover(api):
    r = await api.http.post(f"/v1/relationships/{ALICE}/ping")
    assert r.status_code == 200 and r.json() == {"rtt_ms": 1.25}
    r = await api.http.post(f"/v1/relationships/{ALICE}/ping", json={"timeout": 2.5})
    assert r.status_code == 200 and api.agent.calls[-1][1]["timeout"] == 2.5
    r = await api.http.post(f"/v1/relationships/{ALICE}/discover", json={"match": "https://didcomm.org/trust-ping/*"})
    assert r.status_code == 200
    assert [f["id"] for f in r.json()["features"]] == ["https://didcomm.org/trust-ping/2.0"]
    r = await api.http.post(f"/v1/relationships/{ALICE}/discover")
    assert len(r.json()["features"]) == 3
    assert_error(await api.http.post(f"/v1/relationships/{BOB}/ping"), 409, "relationship-revoked")
    assert_error(await api.http.post("/v1/relationships/nope/discover"), 404, "unknown-relationship")
    assert_error(await api.http.post(f"/v1/relationships/{ALICE}/discover", json={"match": ["*"]}), 400,
                 "invalid-field")


async def test_discover_nearby_returns_what_the_scan_found(api):
    r = await api.http.get("/v1/discover")
    assert r.status_code == 200, r.text
    assert r.json() == NEARBY  # passed through whole: nearby and rejected, every field
    assert api.agent.calls[-1] == ("discover_nearby", {"timeout": 3.0})
    api.agent.nearby = {"nearby": [], "rejected": []}
    r = await api.http.get("/v1/discover", params={"timeout": "0.5"})
    assert r.json() == {"nearby": [], "rejected": []} and api.agent.calls[-1][1] == {"timeout": 0.5}
    r = await api.http.get("/v1/discover", params={"timeout": "30"})
    assert r.status_code == 200 and api.agent.calls[-1][1] == {"timeout": 30}


@pytest.mark.parametrize("query", [
    "timeout=0", "timeout=30.5", "timeout=31", "timeout=-1", "timeout=", "timeout=abc", "timeout=nan",
    "timeout=inf", "timeout=1e1", "timeout=.5", "timeout=3.", "timeout=%EF%BC%93", "timeout=1&timeout=2",
    "wait=3",
])
async def test_discover_nearby_timeout_bounds(api, query):
    calls = len(api.agent.calls)
    assert_error(await api.http.get("/v1/discover?" + query), 400, "invalid-field")
    assert len(api.agent.calls) == calls  # refused before the agent browses


async def test_discover_nearby_unavailable_is_503(api):
    from p2p.agent import DiscoveryUnavailable

    assert status_for(DiscoveryUnavailable("x")) == 503
    api.agent.fail_next = DiscoveryUnavailable("cannot browse the LAN: no multicast interface")
    assert_error(await api.http.get("/v1/discover"), 503, "discovery-unavailable")


async def test_send_one_and_read_it_back(api):
    r = await api.http.post("/v1/messages", json={"relationship": ALICE, "type": BASIC, "body": {"content": "hi"},
                                                  "thid": "thread-1", "expires_in": 60, "please_ack": True})
    assert r.status_code == 201, r.text
    msg = r.json()
    assert msg["state"] == "queued" and msg["thid"] == "thread-1" and msg["direction"] == "out"
    r = await api.http.get(f"/v1/messages/{msg['id']}")
    assert r.status_code == 200 and r.json() == msg
    r = await api.http.get(f"/v1/messages/{msg['id']}", params={"relationship": ALICE})
    assert r.status_code == 200
    r = await api.http.get("/v1/threads/thread-1")
    assert r.status_code == 200 and r.json()["messages"][-1]["id"] == msg["id"] and r.json()["thid"] == "thread-1"


async def test_send_batch(api):
    items = [{"type": BASIC, "body": {"content": str(i)}} for i in range(3)]
    r = await api.http.post("/v1/messages", json={"relationship": ALICE, "messages": items})
    assert r.status_code == 201, r.text
    sent = r.json()["messages"]
    assert [m["body"]["content"] for m in sent] == ["0", "1", "2"]
    assert [m["seq"] for m in sent] == sorted(m["seq"] for m in sent)
    assert api.agent.calls[-1][0] == "send_many"


@pytest.mark.parametrize("body, status, code", [
    ({"type": BASIC, "body": {}}, 400, "missing-field"),
    ({"relationship": ALICE, "body": {}}, 400, "missing-field"),
    ({"relationship": ALICE, "type": BASIC}, 400, "missing-field"),
    ({"relationship": ALICE, "type": BASIC, "body": "hi"}, 400, "invalid-field"),
    ({"relationship": ALICE, "type": BASIC, "body": {}, "please_ack": 1}, 400, "invalid-field"),
    ({"relationship": ALICE, "type": BASIC, "body": {}, "to": "x"}, 400, "invalid-field"),
    ({"relationship": ALICE, "messages": []}, 400, "invalid-field"),
    ({"relationship": ALICE, "messages": {}}, 400, "invalid-field"),
    ({"relationship": ALICE, "messages": [{"type": BASIC}]}, 400, "missing-field"),
    ({"relationship": ALICE, "messages": [{"type": BASIC, "body": {}}] * 1001}, 400, "invalid-field"),
    ({"relationship": ALICE, "messages": ["x"]}, 400, "invalid-field"),
    ({"relationship": "nope", "type": BASIC, "body": {}}, 404, "unknown-relationship"),
    ({"relationship": BOB, "type": BASIC, "body": {}}, 409, "relationship-revoked"),
    ({"relationship": BOB, "messages": [{"type": BASIC, "body": {}}]}, 409, "relationship-revoked"),
])
async def test_send_bad_requests(api, body, status, code):
    before = len(api.agent.archive)
    assert_error(await api.http.post("/v1/messages", json=body), status, code)
    assert len(api.agent.archive) == before


async def test_batch_item_errors_name_the_item(api):
    r = await api.http.post("/v1/messages", json={"relationship": ALICE, "messages": [
        {"type": BASIC, "body": {}}, {"type": BASIC, "body": {}, "thid": 5}]})
    assert_error(r, 400, "invalid-field")
    assert "messages[1]" in r.json()["detail"]


async def test_message_listing_filters_and_pages(api):
    for i in range(5):
        await api.agent.send(ALICE, type=BASIC, body={"content": f"m{i}"})
    everything = api.agent.archive
    r = await api.http.get("/v1/messages")
    assert r.status_code == 200 and r.json() == {"messages": everything, "next_after": None}
    r = await api.http.get("/v1/messages", params={"direction": "in"})
    assert {m["direction"] for m in r.json()["messages"]} == {"in"}
    r = await api.http.get("/v1/messages", params={"thid": "thread-1", "relationship": ALICE, "type": BASIC})
    assert [m["thid"] for m in r.json()["messages"]] == ["thread-1", "thread-1"]
    seen, after = [], None
    while True:  # pages of 2, following next_after
        params = {"limit": 2} | ({"after": after} if after is not None else {})
        page = (await api.http.get("/v1/messages", params=params)).json()
        assert len(page["messages"]) <= 2
        seen += page["messages"]
        after = page["next_after"]
        if after is None:
            break
    assert seen == everything
    r = await api.http.get("/v1/messages", params={"limit": len(everything)})
    assert r.json()["next_after"] is None  # an exact fit has no further page


@pytest.mark.parametrize("params", [
    {"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"limit": "-1"}, {"after": "-1"}, {"after": "1.5"},
    {"direction": "sideways"}, {"colour": "red"}, [("thid", "a"), ("thid", "b")], {"after": "9" * 30},
    {"protocol": "yes"}, {"protocol": "1"}, {"protocol": ""},
])
async def test_message_listing_bad_queries(api, params):
    assert_error(await api.http.get("/v1/messages", params=params), 400, "invalid-field")


async def test_protocol_messages_are_listed_only_on_request(api):
    ping = "https://didcomm.org/trust-ping/2.0/ping"
    played = api.agent.deliver(ALICE, type=ping, thid="thread-1")
    r = await api.http.get("/v1/messages")
    assert r.status_code == 200 and played["id"] not in [m["id"] for m in r.json()["messages"]]
    assert api.agent.calls[-1][1]["include_protocol"] is False
    for path in ("/v1/messages", "/v1/threads/thread-1"):
        r = await api.http.get(path, params={"protocol": "true"})
        assert r.status_code == 200 and r.json()["messages"][-1]["id"] == played["id"]
        assert api.agent.calls[-1][1]["include_protocol"] is True
        r = await api.http.get(path, params={"protocol": "false"})
        assert played["id"] not in [m["id"] for m in r.json()["messages"]]
    assert_error(await api.http.get("/v1/threads/thread-1", params={"protocol": "maybe"}), 400, "invalid-field")
    assert_error(await api.http.get("/v1/threads/thread-1", params={"colour": "red"}), 400, "invalid-field")
    # A type asked for by name is listed whatever it is.
    r = await api.http.get("/v1/messages", params={"type": ping})
    assert [m["id"] for m in r.json()["messages"]] == [played["id"]]


async def test_unknown_ids_are_404(api):
    assert_error(await api.http.get("/v1/messages/nope"), 404, "unknown-message")
    assert_error(await api.http.get("/v1/threads/nope"), 404, "unknown-thread")


# --- malformed requests, limits, routing, failures ----------------------------------------------


@pytest.mark.parametrize("raw", [
    b"{", b"", b"   ", b'{"relationship": NaN}', b'{"a": Infinity}', b"\xff\xfe", b'{"a": 1, "a": 2}',
    b"[" * 100_000 + b"]" * 100_000,
], ids=["truncated", "empty", "blank", "nan", "infinity", "not-utf8", "duplicate-key", "deep"])
async def test_malformed_json_is_400(api, raw):
    r = await api.http.post("/v1/messages", content=raw, headers={"content-type": "application/json"})
    assert_error(r, 400, "malformed-json")


async def test_non_object_json_is_400(api):
    for doc in ([1], "x", 5, None):
        assert_error(await api.http.post("/v1/messages", content=json.dumps(doc)), 400, "invalid-field")


async def test_body_limit_is_413(api):
    big = json.dumps({"relationship": ALICE, "type": BASIC, "body": {"content": "x" * MAX_BODY_BYTES}})
    assert_error(await api.http.post("/v1/messages", content=big), 413, "too-large")

    async def chunks():  # no content-length: the limit holds while streaming
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    assert_error(await api.http.post("/v1/messages", content=chunks()), 413, "too-large")
    assert len(api.agent.archive) == 3


async def test_unknown_route_and_method_are_json(api):
    assert_error(await api.http.get("/v1/nope"), 404, "not-found")
    assert_error(await api.http.get("/"), 404, "not-found")
    assert_error(await api.http.delete("/v1/status"), 405, "method-not-allowed")


async def test_unexpected_failure_is_a_json_500_and_one_log_line(api, caplog):
    api.agent.fail_next = RuntimeError("disk on fire\nsecond line")
    with caplog.at_level(logging.ERROR, logger="p2p.api"):
        r = await api.http.get("/v1/status")
    assert_error(r, 500, "internal-error")
    assert "disk on fire" not in r.text
    records = [rec for rec in caplog.records if rec.name == "p2p.api"]
    assert len(records) == 1 and records[0].exc_info is None
    assert "\n" not in records[0].getMessage() and "RuntimeError" in records[0].getMessage()
    assert (await api.http.get("/v1/status")).status_code == 200  # the server carries on


@pytest.mark.parametrize("exc, status", [
    (UnknownRelationship("x"), 404), (RelationshipRevoked("x"), 409), (InvalidInvitation("x"), 400),
    (errors.MissingField("x"), 400), (errors.BadArgument("x"), 400), (errors.InvalidDID("x"), 400),
    (Unreachable("x"), 504), (HandshakeTimeout("x"), 504), (InvitationUsed("x"), 502),
    (errors.DecryptionFailed("x"), 502), (errors.StateError("x"), 409), (errors.TooLarge("x"), 413),
    (errors.P2PError("x"), 500),
])
async def test_agent_errors_map_to_statuses(api, exc, status):
    assert status_for(exc) == status
    api.agent.fail_next = exc
    assert_error(await api.http.get("/v1/status"), status, exc.code)


# --- events ----------------------------------------------------------------------------------


async def read_events(response, count):
    """`count` SSE events (id, data) from a streaming response; comments are collected too."""
    events, comments, fields = [], [], {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            comments.append(line)
        elif line == "":
            if fields:
                events.append((int(fields["id"]), json.loads(fields["data"])))
                fields = {}
                if len(events) == count:
                    return events, comments
        else:
            name, _, value = line.partition(": ")
            fields[name] = value
    return events, comments


async def test_events_arrive_within_a_second(api):
    async with api.http.stream("GET", "/v1/events") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert api.agent.subscriber_count == 1
        msg = api.agent.deliver(ALICE, body={"content": "live"})
        await api.http.post("/v1/messages", json={"relationship": ALICE, "type": BASIC, "body": {}})
        await api.http.post(f"/v1/relationships/{ALICE}/revoke", json={"reason": "done"})
        with trio.fail_after(1):
            events, _ = await read_events(r, 3)
    assert [i for i, _ in events] == [1, 2, 3]
    assert events[0][1] == {"event": "message.received", "time": api.agent.now, "message": msg}
    assert [e["event"] for _, e in events[1:]] == ["message.state", "relationship.revoked"]
    assert events[2][1]["reason"] == "done"


async def test_events_keepalive_and_unsubscribe_on_disconnect(nursery):
    api = await start(nursery, keepalive=0.05)
    async with api.http.stream("GET", "/v1/events") as r:
        with trio.fail_after(2):
            async for line in r.aiter_lines():
                if line == ": keep-alive":
                    break
        assert api.agent.subscriber_count == 1
    with trio.fail_after(2):
        while api.agent.subscriber_count:
            await trio.sleep(0.01)
    await api.http.aclose()


async def test_events_overflow_ends_the_stream(api):
    async with api.http.stream("GET", "/v1/events") as r:
        # Fill the subscription past its buffer before the server drains it.
        for _ in range(1100):
            api.agent.emit("message.state", message="m", state="sent")
        with trio.fail_after(2):
            events, _ = await read_events(r, 10_000)  # returns when the server ends the stream
    assert events[-1][1]["event"] == "subscription.overflow"
    assert [i for i, _ in events] == list(range(1, len(events) + 1))


# --- the OpenAPI document ---------------------------------------------------------------------


def test_openapi_file_is_current_and_valid():
    assert openapi.PATH.read_text(encoding="utf-8") == openapi.render(), "run: python -m p2p.api.openapi"
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(json.loads(openapi.PATH.read_text(encoding="utf-8")))


def test_openapi_documents_exactly_the_routes():
    app = create_app(seeded(), token=TOKEN).app
    served = {(m, r.path) for r in app.routes for m in r.methods if m != "HEAD"}
    documented = {(m.upper(), p) for p, ops in openapi.build()["paths"].items() for m in ops}
    assert served == documented


async def test_openapi_is_served(api):
    r = await api.http.get("/v1/openapi.json")
    assert r.status_code == 200 and r.content == openapi.PATH.read_bytes()
    assert r.json()["openapi"].startswith("3.1")


# --- configuration and home files --------------------------------------------------------------


def test_loopback_only_unless_allowed():
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_host(host, allow_remote=False)
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.com"):
        with pytest.raises(errors.BadArgument):
            check_host(host, allow_remote=False)
    check_host("0.0.0.0", allow_remote=True)


async def test_serve_api_refuses_a_public_host():
    with pytest.raises(errors.BadArgument):
        await serve_api(seeded(), host="0.0.0.0", port=0, token=TOKEN)
    with pytest.raises(errors.BadArgument):
        await serve_api(seeded(), port=0, token="")


async def test_serve_on_ipv6_loopback(nursery):
    try:
        host, port = await nursery.start(lambda task_status: serve_api(seeded(), host="::1", port=0, token=TOKEN,
                                                                       task_status=task_status))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    async with httpx.AsyncClient(base_url=f"http://[::1]:{port}") as http:
        assert (await http.get("/v1/health")).status_code == 200


def test_settings_from_config():
    assert settings_from_config({}) == ApiSettings()
    assert settings_from_config({"port": 0, "host": "::1"}) == ApiSettings(host="::1", port=0)
    for bad in ({"port": "7401"}, {"port": 70000}, {"host": "0.0.0.0"}, {"allow_remote": 1}, {"colour": 1}):
        with pytest.raises(errors.BadArgument):
            settings_from_config(bad)
    assert settings_from_config({"host": "0.0.0.0", "allow_remote": True}).host == "0.0.0.0"


def test_token_file(tmp_path):
    assert homefiles.load_token(tmp_path) is None
    token = homefiles.ensure_token(tmp_path)
    assert len(token) >= 43 and homefiles.load_token(tmp_path) == token == homefiles.ensure_token(tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / "api-token").st_mode) == 0o600
    assert homefiles.create_token(tmp_path) != token  # rotation replaces it
    assert [p.name for p in tmp_path.iterdir()] == ["api-token"]  # no temporary files left behind
    for garbage in (b"", b"\xff", b"has space", b"x" * 300):
        (tmp_path / "api-token").write_bytes(garbage)
        with pytest.raises(homefiles.ApiFileError):
            homefiles.load_token(tmp_path)


def test_address_file(tmp_path):
    assert homefiles.read_address(tmp_path) is None
    homefiles.write_address(tmp_path, "127.0.0.1", 7401)
    assert homefiles.read_address(tmp_path) == ("127.0.0.1", 7401)
    doc = json.loads((tmp_path / "api.json").read_text())
    assert doc == {"version": 1, "host": "127.0.0.1", "port": 7401, "pid": os.getpid()}
    homefiles.remove_address(tmp_path)
    homefiles.remove_address(tmp_path)  # idempotent
    assert homefiles.read_address(tmp_path) is None
    for garbage in ("{", "[]", '{"version": 2, "host": "h", "port": 1}', '{"version": 1, "host": "h", "port": 0}',
                    '{"version": 1, "host": "", "port": 1}', '{"version": 1, "host": "h", "port": true}'):
        (tmp_path / "api.json").write_text(garbage)
        with pytest.raises(homefiles.ApiFileError):
            homefiles.read_address(tmp_path)


async def test_shutdown_with_an_open_event_stream_is_prompt():
    agent = seeded()
    async with trio.open_nursery() as outer:
        scope = trio.CancelScope()

        async def run(task_status):
            with scope:
                await serve_api(agent, port=0, token=TOKEN, task_status=task_status)

        host, port = await outer.start(run)
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}",
                                     headers={"authorization": f"Bearer {TOKEN}"}) as http:
            async with http.stream("GET", "/v1/events") as r:
                assert r.status_code == 200
                with trio.fail_after(2):
                    scope.cancel()
                    try:  # the server drops the stream as it goes: an abrupt end is fine, a hang is not
                        async for _ in r.aiter_lines():
                            pass
                    except httpx.RemoteProtocolError:
                        pass
    assert agent.subscriber_count == 0
