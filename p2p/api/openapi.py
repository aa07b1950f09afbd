"""The admin API's OpenAPI 3.1 document.

`openapi.json` beside this file is the document as shipped and served; this module
builds it (shared pieces such as the error responses are written once) and checks
that the file is current: `python -m p2p.api.openapi` rewrites it, and
tests/test_api.py fails if the two differ or if a route is missing from either side.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

from p2p import __version__

PATH = Path(__file__).with_name("openapi.json")


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: tuple[str, ...] = (), extra: bool = True) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    if not extra:
        schema["additionalProperties"] = False
    return schema


def _opt(kind: str) -> dict:
    return {"type": [kind, "null"]}


_STR, _INT, _BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
_TIMEOUT = {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 120,
            "description": "seconds to wait for the peer"}

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": {"type": "string", "description": "a stable error code (spec/06, spec/14)"},
                   "detail": _STR}, ("error", "detail")),
    "Status": _obj({
        "did": _STR, "endpoint": _opt("string"), "version": _STR,
        "relationships": {"type": "object", "additionalProperties": _INT},
        "outbox": {"type": "object", "additionalProperties": _INT},
        "connections": {"type": "integer", "description": "relationships with a live transport link now"},
        "uptime_s": {"type": "number"},
    }, ("did", "version")),
    "Invitation": _obj({
        "id": _STR, "url": _STR, "multi_use": _BOOL, "label": _opt("string"),
        "expires_time": _opt("integer"), "created_time": _INT,
        "state": {"enum": ["open", "used", "revoked"]}, "use_count": _INT,
    }, ("id", "url", "multi_use")),
    "InvitationRequest": _obj({
        "multi_use": _opt("boolean"), "label": _opt("string"),
        "expires_in": {"type": ["integer", "null"], "minimum": 1, "description": "seconds from now"},
    }, extra=False),
    "AcceptRequest": _obj({"url": _STR, "label": {
        "type": ["string", "null"], "maxLength": 256,
        "description": "our own name for the inviter on this relationship (default: the name it presents); "
                       "kept locally, never sent. We present config `label` to the inviter"},
        "timeout": _TIMEOUT}, ("url",), extra=False),
    "Relationship": _obj({
        "id": _STR, "our_did": _STR, "their_did": _STR,
        "label": {"type": ["string", "null"], "description": "the PEER's name here: ours for it if we gave one "
                                                              "when accepting, else the name it presented"},
        "their_label": {"type": ["string", "null"], "description": "the name the peer presented (connect/1.0)"},
        "state": _STR, "role": {"enum": ["inviter", "invitee"]}, "endpoint": _opt("string"),
        "created_time": _INT, "updated_time": _INT, "outbox_pending": _INT,
    }, ("id", "state")),
    "RevokeRequest": _obj({"reason": _opt("string")}, extra=False),
    "PingRequest": _obj({"timeout": _TIMEOUT}, extra=False),
    "Pong": _obj({"rtt_ms": {"type": "number"}}, ("rtt_ms",)),
    "DiscoverRequest": _obj({"match": {"type": ["string", "null"], "description": "`*` is a wildcard; default *"},
                             "timeout": _TIMEOUT}, extra=False),
    "Feature": _obj({"feature-type": _STR, "id": _STR, "roles": {"type": "array", "items": _STR}},
                    ("feature-type", "id")),
    "Message": _obj({
        "cursor": {"type": "integer", "description": "monotonic archive row id; page with ?after="},
        "id": _STR, "relationship": _opt("string"), "direction": {"enum": ["in", "out"]}, "type": _STR,
        "thid": _opt("string"), "pthid": _opt("string"), "from": _opt("string"), "to": {},
        "created_time": _opt("integer"), "expires_time": _opt("integer"), "body": {"type": "object"},
        "attachments": {}, "seq": _opt("integer"),
        "state": {"enum": ["queued", "sent", "delivered", "failed", "expired", "received"]},
    }, ("id", "direction", "type", "state")),
    "OutgoingMessage": _obj({
        "type": _STR, "body": {"type": "object"}, "thid": _opt("string"), "pthid": _opt("string"),
        "expires_in": {"type": ["integer", "null"], "minimum": 1}, "please_ack": _opt("boolean"),
    }, ("type", "body"), extra=False),
    "SendRequest": {"allOf": [_ref("OutgoingMessage")], "type": "object",
                    "properties": {"relationship": _STR}, "required": ["relationship"]},
    "BatchRequest": _obj({"relationship": _STR,
                          "messages": {"type": "array", "items": _ref("OutgoingMessage"), "minItems": 1,
                                       "maxItems": 1000}}, ("relationship", "messages"), extra=False),
    "MessagePage": _obj({"messages": {"type": "array", "items": _ref("Message")},
                         "next_after": {"type": ["integer", "null"],
                                        "description": "pass as ?after= for the next page; null: no more"}},
                        ("messages", "next_after")),
    "Nearby": _obj({
        "label": {"type": "string", "description": "the invitation's signed label; show it with the fingerprint"},
        "fingerprint": {"type": "string", "description": "16 base32 characters of the invitation key (spec/15)"},
        "fingerprint_display": {"type": "string", "examples": ["ydd2-56rz-lh7o-nrtv"]},
        "agent_did": _STR, "endpoint": {"type": "string", "description": "the signed p2p+tcp endpoint"},
        "url": {"type": "string", "description": "the verified invitation URL: pass it to /v1/invitations/accept"},
        "expires_time": _opt("integer"), "own": {"type": "boolean", "description": "our own advertisement"},
        "advertised_label": {"type": "string", "description": "the TXT label: unauthenticated, diagnostic only"},
        "label_mismatch": {"type": "boolean", "description": "some advertisement showed another TXT label"},
        "addresses": {"type": "array", "items": _STR, "description": "mDNS addresses: never used to connect"},
        "name": {"type": "string", "description": "the DNS-SD instance name: unauthenticated"},
    }, ("label", "fingerprint", "agent_did", "endpoint", "url")),
    "Rejected": _obj({"name": _STR, "code": {"type": "string", "description": "why (spec/15 §15.8)"},
                      "detail": _STR, "addresses": {"type": "array", "items": _STR}}, ("name", "code")),
    "NearbyScan": _obj({"nearby": {"type": "array", "items": _ref("Nearby")},
                        "rejected": {"type": "array", "items": _ref("Rejected")}}, ("nearby", "rejected")),
    "Event": _obj({"event": {"type": "string", "examples": [
        "message.received", "message.state", "relationship.created", "relationship.revoked", "invitation.used",
        "problem.received", "subscription.overflow"]}, "time": _INT}, ("event",)),
}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    base = (400, 401, 500)
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in sorted(set(base + statuses))}


_ERROR_TEXT = {
    400: "malformed request (malformed-json, missing-field, invalid-field) or an argument the agent refuses",
    401: "no or a wrong bearer token (unauthorized)",
    404: "unknown id (unknown-relationship, unknown-message, unknown-thread) or route (not-found)",
    409: "the relationship is revoked (relationship-revoked)",
    413: "request body over 1 MiB, or a value over an agent limit (too-large)",
    500: "the agent failed unexpectedly (internal-error); the daemon logs one line",
    503: "this host cannot browse the LAN now (discovery-unavailable)",
    502: "the peer refused or sent something unacceptable (its RemoteError code)",
    504: "the peer did not answer (unreachable, timeout, handshake-timeout)",
}


def _op(summary: str, op_id: str, ok: int, ok_schema: dict | None, *, body: str | None = None,
        errors: tuple[int, ...] = (), params: list | None = None, body_optional: bool = False) -> dict:
    op: dict[str, Any] = {"summary": summary, "operationId": op_id}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": not body_optional, **_json(_ref(body))}
    ok_resp: dict[str, Any] = {"description": "success"}
    if ok_schema is not None:
        ok_resp.update(_json(ok_schema))
    op["responses"] = {str(ok): ok_resp, **_errors(*errors)}
    return op


def _q(name: str, schema: dict, text: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": text}


_PROTOCOL_PARAM = _q("protocol", {"enum": ["true", "false"], "default": "false"},
                     "true: also the core protocols' messages (connect/1.0, trust-ping, discover-features, "
                     "report-problem, empty/ack), which the archive keeps; false (default): application "
                     "messages only, unless `type` names one")


def _p(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": _STR}


def _list_of(key: str, item: str) -> dict:
    return _obj({key: {"type": "array", "items": _ref(item)}}, (key,))


def build() -> dict:
    rid = [_p("id")]
    paths = {
        "/v1/health": {"get": {"summary": "liveness; the only route without a token", "operationId": "health",
                               "security": [], "responses": {"200": {"description": "up", **_json(
                                   _obj({"status": {"const": "ok"}}, ("status",)))}}}},
        "/v1/openapi.json": {"get": _op("this document", "openapi", 200, {"type": "object"})},
        "/v1/status": {"get": _op("the agent's identity, counters and uptime", "status", 200, _ref("Status"))},
        "/v1/invitations": {
            "post": _op("create an invitation", "createInvitation", 201, _ref("Invitation"),
                        body="InvitationRequest", body_optional=True, errors=(413,)),
            "get": _op("list invitations", "listInvitations", 200, _list_of("invitations", "Invitation")),
        },
        "/v1/invitations/accept": {"post": _op(
            "accept an invitation URL: dial the inviter and connect; returns the active relationship",
            "acceptInvitation", 201, _ref("Relationship"), body="AcceptRequest", errors=(413, 502, 504))},
        "/v1/relationships": {"get": _op(
            "list relationships", "listRelationships", 200, _list_of("relationships", "Relationship"),
            params=[_q("state", _STR, "only relationships in this state (active, revoked)")])},
        "/v1/relationships/{id}": {"get": _op("one relationship", "getRelationship", 200, _ref("Relationship"),
                                              params=rid, errors=(404,))},
        "/v1/relationships/{id}/revoke": {"post": _op(
            "revoke a relationship (terminal)", "revokeRelationship", 200, _ref("Relationship"), params=rid,
            body="RevokeRequest", body_optional=True, errors=(404, 409, 413))},
        "/v1/relationships/{id}/ping": {"post": _op(
            "trust-ping the peer and measure the round trip", "ping", 200, _ref("Pong"), params=rid,
            body="PingRequest", body_optional=True, errors=(404, 409, 413, 502, 504))},
        "/v1/relationships/{id}/discover": {"post": _op(
            "ask the peer which features (protocols, goal codes) it supports (discover-features 2.0)",
            "discoverFeatures", 200, _list_of("features", "Feature"), params=rid, body="DiscoverRequest",
            body_optional=True, errors=(404, 409, 413, 502, 504))},
        "/v1/discover": {"get": _op(
            "browse the LAN for advertised invitations (DNS-SD, spec/15): verified agents nearby and the "
            "advertisements rejected, with reasons. Takes `timeout` seconds (plus at most 1 s of resolution)",
            "discoverNearby", 200, _ref("NearbyScan"), errors=(503,), params=[
                _q("timeout", {"type": "number", "exclusiveMinimum": 0, "maximum": 30, "default": 3},
                   "seconds to listen, a decimal number such as 3 or 0.5")])},
        "/v1/messages": {
            "post": {**_op("queue one message, or a batch in one transaction", "sendMessages", 201,
                           {"oneOf": [_ref("Message"), _list_of("messages", "Message")]},
                           errors=(404, 409, 413)),
                     "requestBody": {"required": True, **_json(
                         {"oneOf": [_ref("SendRequest"), _ref("BatchRequest")]})}},
            "get": _op("the message archive, oldest first, paged by cursor", "listMessages", 200,
                       _ref("MessagePage"), params=[
                           _q("relationship", _STR, "relationship id"),
                           _q("thid", _STR, "thread id"),
                           _q("direction", {"enum": ["in", "out"]}, "in: received, out: sent"),
                           _q("type", _STR, "message type URI"),
                           _q("after", {"type": "integer", "minimum": 0}, "only messages with a larger cursor"),
                           _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                              "page size"),
                           _PROTOCOL_PARAM,
                       ]),
        },
        "/v1/messages/{id}": {"get": _op("one message", "getMessage", 200, _ref("Message"), errors=(404,),
                                         params=[_p("id"), _q("relationship", _STR,
                                                              "disambiguate an id two peers both used")])},
        "/v1/threads/{thid}": {"get": _op("the messages of one thread, in order", "getThread", 200,
                                          _obj({"thid": _STR, "messages": {"type": "array", "items": _ref("Message")}},
                                               ("thid", "messages")), params=[_p("thid"), _PROTOCOL_PARAM],
                                          errors=(404,))},
        "/v1/events": {"get": {
            "summary": "live events as Server-Sent Events: `id: <n>` and `data: <Event JSON>` per event, "
                       "`: keep-alive` comments every 15 s; ids count per connection (no resume: after a "
                       "reconnect, catch up with GET /v1/messages?after=<cursor>)",
            "operationId": "events",
            "responses": {"200": {"description": "an endless event stream", "content": {
                "text/event-stream": {"schema": {"type": "string"}, "x-event-schema": _ref("Event")}}},
                **_errors()},
        }},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "p2p admin API", "version": __version__,
                 "description": "The local control API of a p2p agent (spec/14-admin-api.md). Plain HTTP on "
                                "loopback; every route but /v1/health needs `Authorization: Bearer <token>`, "
                                "the token being the contents of `<home>/api-token`."},
        "servers": [{"url": "http://127.0.0.1:7401"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
            "responses": {f"E{s}": {"description": text, **_json(_ref("Error"))} for s, text in _ERROR_TEXT.items()},
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


@functools.cache
def document_bytes() -> bytes:
    """The shipped document, read once: what GET /v1/openapi.json serves."""
    return PATH.read_bytes()


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if PATH.read_text(encoding="utf-8") == render() else 1)
    PATH.write_text(render(), encoding="utf-8")
