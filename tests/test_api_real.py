"""The admin API of a real daemon, over real HTTP: every endpoint, authentication, JSON
errors, and the event stream delivering a received message within one second.

tests/test_api.py covers the same routes in depth against an in-memory agent; this file
shows the real daemon behind them answers the same way. (GET /v1/discover does LAN
multicast, so it is exercised inside a private network namespace by its own tests.)
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time

import pytest

from daemon_harness import BASIC, ApiError, Cluster, connect_pair

pytestmark = pytest.mark.slow

ROUTES = [  # (method, path) of every route that needs the token
    ("GET", "/status"), ("POST", "/invitations"), ("GET", "/invitations"),
    ("POST", "/invitations/accept"), ("GET", "/relationships"), ("GET", "/relationships/x"),
    ("POST", "/relationships/x/revoke"), ("POST", "/relationships/x/ping"),
    ("POST", "/relationships/x/discover"), ("GET", "/discover"), ("POST", "/messages"),
    ("GET", "/messages"), ("GET", "/messages/x"), ("GET", "/threads/x"), ("GET", "/events"),
    ("GET", "/openapi.json"),
]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("api")) as cluster:
        a = cluster.add("shop", label="Acme Shop").start()
        b = cluster.add("bea", label="Bea").start()
        rel_a, rel_b = connect_pair(a, b)
        yield a, b, rel_a, rel_b


def raw(daemon, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", daemon.api_port, timeout=10)
    try:
        conn.request(method, "/v1" + path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("content-type", ""), response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("method, path", ROUTES)
@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", "Basic Zm9vOmJhcg=="])
def test_every_route_refuses_a_missing_or_wrong_token(pair, method, path, auth):
    a = pair[0]
    headers = {"authorization": auth} if auth else {}
    status, ctype, body = raw(a, method, path, b"{}" if method == "POST" else None, headers)
    assert status == 401
    assert ctype.startswith("application/json") and json.loads(body)["error"] == "unauthorized"


def test_health_needs_no_token(pair):
    status, _, body = raw(pair[0], "GET", "/health")
    assert status == 200 and json.loads(body)


def test_malformed_requests_get_json_errors(pair):
    a, _, rel_a, _ = pair
    auth = {"authorization": f"Bearer {a.api.token}", "content-type": "application/json"}
    cases = [
        ("POST", "/messages", b"{not json", 400),
        ("POST", "/messages", b"[]", 400),
        ("POST", "/messages", json.dumps({"relationship": rel_a}).encode(), 400),  # no body
        ("POST", "/messages", json.dumps({"relationship": rel_a, "type": 7, "body": {}}).encode(), 400),
        ("POST", "/messages", json.dumps({"relationship": "nope", "type": BASIC, "body": {}}).encode(), 404),
        ("POST", "/invitations/accept", json.dumps({"url": "https://example.com/"}).encode(), 400),
        ("GET", "/relationships/nope", None, 404),
        ("GET", "/messages/nope", None, 404),
        ("GET", "/messages?limit=-3", None, 400),
        ("POST", "/messages", b"x" * (2 << 20), 413),
    ]
    for method, path, body, want in cases:
        status, ctype, reply = raw(a, method, path, body, auth)
        assert status == want, (method, path, status, reply[:200])
        doc = json.loads(reply)
        assert ctype.startswith("application/json") and doc["error"] and "detail" in doc, (path, doc)


def test_every_endpoint_of_a_real_daemon(pair):
    a, b, rel_a, rel_b = pair
    status = a.api.status()
    assert status["did"].startswith("did:peer:2") and status["relationships"]["active"] >= 1
    assert a.api.request("GET", "/openapi.json")["openapi"].startswith("3.1")

    invitation = a.api.invite(multi_use=True, label="Acme Shop")
    assert invitation["url"].startswith("p2p:invite?_oob=")
    assert any(i["id"] == invitation["id"] for i in a.api.request("GET", "/invitations")["invitations"])

    assert {r["id"] for r in a.api.relationships()} >= {rel_a}
    assert a.api.relationship(rel_a)["state"] == "active"
    assert a.api.ping(rel_a)["rtt_ms"] > 0
    features = a.api.request("POST", f"/relationships/{rel_a}/discover", {"match": "https://didcomm.org/*"})
    assert any("trust-ping" in f["id"] for f in features["features"])

    one = a.api.send(rel_a, {"content": "hello"})
    batch = a.api.send_many(rel_a, [{"type": BASIC, "body": {"content": f"m{i}"}, "thid": one["thid"]}
                                    for i in range(3)])
    assert len(batch) == 3 and all(m["state"] == "queued" for m in batch)
    ids = [one["id"], *(m["id"] for m in batch)]
    arrived = lambda: {m["id"] for m in b.api.messages(relationship=rel_b, direction="in", type=BASIC)}  # noqa: E731
    deadline = time.monotonic() + 10
    while not set(ids) <= arrived():
        assert time.monotonic() < deadline, "messages did not arrive"
        time.sleep(0.05)
    assert b.api.message(one["id"])["body"] == {"content": "hello"}
    assert [m["id"] for m in b.api.thread(one["thid"])] == ids
    page = a.api.messages_page(relationship=rel_a, direction="out", limit=2)
    assert len(page["messages"]) == 2 and page["next_after"]


def test_event_stream_delivers_a_received_message_within_one_second(pair):
    a, b, rel_a, rel_b = pair
    events: queue.Queue = queue.Queue()

    def follow():
        try:
            for event in b.api.events(timeout=15):
                events.put(event)
        except Exception as exc:  # the stream ends when the test is over
            events.put({"event": "stream.error", "detail": repr(exc)})

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(0.3)  # let the subscription open before the message is sent
    worst = 0.0
    for n in range(5):
        sent = time.monotonic()
        message = a.api.send(rel_a, {"content": f"event {n}"})
        while True:
            event = events.get(timeout=5)
            if event.get("event") == "message.received" and message["id"] in json.dumps(event):
                break
        worst = max(worst, time.monotonic() - sent)
    assert worst < 1.0, f"slowest event took {worst:.3f} s"


def test_revoke_over_the_api(pair):
    a, b, rel_a, rel_b = pair
    assert b.api.revoke(rel_b, reason="moving on")["state"] == "revoked"
    with pytest.raises(ApiError) as refused:
        b.api.send(rel_b, {"content": "after revoke"})
    assert refused.value.status == 409 and refused.value.code == "relationship-revoked"
