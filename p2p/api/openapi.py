"""The admin API's OpenAPI 3.1 document.

`openapi.json` beside this file is the document as shipped and served; this module
builds it (shared pieces such as the error responses are written once) and checks
that the file is current: `python -m p2p.api.openapi` rewrites it, and
tests/test_api.py fails if the two differ or if a route is missing from either side.

Route groups (server.GROUPS, see p2p/api/_http.py) describe their own routes with the
builders below (`op`, `ref`, `obj`, `opt`, `query_param`, `path_param`, `list_of`,
`error_responses`, `json_content`, `STR`/`INT`/`BOOL`/`TIMEOUT`); `build()` appends each
group's PATHS and SCHEMAS after the built-in ones, in GROUPS order, so the document stays
deterministic, and refuses a path, schema or operationId defined twice.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

from p2p import __version__

PATH = Path(__file__).with_name("openapi.json")


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Any], required: tuple[str, ...] = (), extra: bool = True) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    if not extra:
        schema["additionalProperties"] = False
    return schema


def opt(kind: str) -> dict:
    return {"type": [kind, "null"]}


STR, INT, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
TIMEOUT = {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 120,
            "description": "seconds to wait for the peer"}

SCHEMAS: dict[str, Any] = {
    "Error": obj({"error": {"type": "string", "description": "a stable error code (spec/06, spec/14)"},
                   "detail": STR}, ("error", "detail")),
    "Status": obj({
        "did": STR, "endpoint": opt("string"), "version": STR,
        "role": {"enum": ["customer", "business"], "description": "its side of the customer-business protocols"},
        "relationships": {"type": "object", "additionalProperties": INT},
        "outbox": {"type": "object", "additionalProperties": INT},
        "connections": {"type": "integer", "description": "relationships with a live transport link now"},
        "uptime_s": {"type": "number"},
    }, ("did", "version")),
    "Invitation": obj({
        "id": STR, "url": STR, "multi_use": BOOL, "label": opt("string"),
        "expires_time": opt("integer"), "created_time": INT,
        "state": {"enum": ["open", "used", "revoked"]}, "use_count": INT,
    }, ("id", "url", "multi_use")),
    "InvitationRequest": obj({
        "multi_use": opt("boolean"), "label": opt("string"),
        "expires_in": {"type": ["integer", "null"], "minimum": 1, "description": "seconds from now"},
    }, extra=False),
    "AcceptRequest": obj({"url": STR, "label": {
        "type": ["string", "null"], "maxLength": 256,
        "description": "our own name for the inviter on this relationship (default: the name it presents); "
                       "kept locally, never sent. We present config `label` to the inviter"},
        "timeout": TIMEOUT}, ("url",), extra=False),
    "Relationship": obj({
        "id": STR, "our_did": STR, "their_did": STR,
        "label": {"type": ["string", "null"], "description": "the PEER's name here: ours for it if we gave one "
                                                              "when accepting, else the name it presented"},
        "their_label": {"type": ["string", "null"], "description": "the name the peer presented (connect/1.0)"},
        "state": STR, "role": {"enum": ["inviter", "invitee"]}, "endpoint": opt("string"),
        "created_time": INT, "updated_time": INT, "outbox_pending": INT,
        "their_agent_did": {"type": ["string", "null"], "description": "the inviter's agent DID, where we were "
                                                                       "the invitee (spec/19 §19.2)"},
        "muted": {"type": "boolean", "description": "its messages are kept and shown without an alert"},
        "require_agreement": {"type": ["boolean", "null"],
                              "description": "spec/17 §17.8 on this relationship; null: the [terms] default"},
    }, ("id", "state")),
    "RelationshipSettings": obj({"muted": BOOL, "require_agreement": opt("boolean")}, extra=False),
    "RelationshipRecord": obj({"relationship": ref("Relationship")}, ("relationship",)),
    "RevokeRequest": obj({"reason": opt("string")}, extra=False),
    "PingRequest": obj({"timeout": TIMEOUT}, extra=False),
    "Pong": obj({"rtt_ms": {"type": "number"}}, ("rtt_ms",)),
    "DiscoverRequest": obj({"match": {"type": ["string", "null"], "description": "`*` is a wildcard; default *"},
                             "timeout": TIMEOUT}, extra=False),
    "Feature": obj({"feature-type": STR, "id": STR, "roles": {"type": "array", "items": STR}},
                    ("feature-type", "id")),
    "Message": obj({
        "cursor": {"type": "integer", "description": "monotonic archive row id; page with ?after="},
        "id": STR, "relationship": opt("string"), "direction": {"enum": ["in", "out"]}, "type": STR,
        "thid": opt("string"), "pthid": opt("string"), "from": opt("string"), "to": {},
        "created_time": opt("integer"), "expires_time": opt("integer"), "body": {"type": "object"},
        "attachments": {}, "seq": opt("integer"),
        "state": {"enum": ["queued", "sent", "delivered", "failed", "expired", "received"]},
        "agreement": {"type": ["string", "null"],
                      "description": "hex of the x-agreement hash the message was sent under (spec/17 §17.7)"},
    }, ("id", "direction", "type", "state")),
    "OutgoingMessage": obj({
        "type": STR, "body": {"type": "object"}, "thid": opt("string"), "pthid": opt("string"),
        "expires_in": {"type": ["integer", "null"], "minimum": 1}, "please_ack": opt("boolean"),
    }, ("type", "body"), extra=False),
    "SendRequest": {"allOf": [ref("OutgoingMessage")], "type": "object",
                    "properties": {"relationship": STR}, "required": ["relationship"]},
    "BatchRequest": obj({"relationship": STR,
                          "messages": {"type": "array", "items": ref("OutgoingMessage"), "minItems": 1,
                                       "maxItems": 1000}}, ("relationship", "messages"), extra=False),
    "MessagePage": obj({"messages": {"type": "array", "items": ref("Message")},
                         "next_after": {"type": ["integer", "null"],
                                        "description": "pass as ?after= for the next page; null: no more"}},
                        ("messages", "next_after")),
    "Event": obj({"event": {"type": "string", "examples": [
        "message.received", "message.state", "relationship.created", "relationship.revoked", "invitation.used",
        "problem.received", "subscription.overflow"]}, "time": INT}, ("event",)),
}


def json_content(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def error_responses(*statuses: int) -> dict:
    base = (400, 401, 500)
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in sorted(set(base + statuses))}


_ERROR_TEXT = {
    400: "malformed request (malformed-json, missing-field, invalid-field) or an argument the agent refuses",
    401: "no or a wrong bearer token (unauthorized)",
    404: "unknown id (unknown-relationship, unknown-message, unknown-thread) or route (not-found)",
    409: "the relationship is revoked (relationship-revoked)",
    413: "request body over 1 MiB, or a value over an agent limit (too-large)",
    500: "the agent failed unexpectedly (internal-error); the daemon logs one line",
    # LAN discovery's (p2p/api/lan.py) but kept here so the responses keep their order.
    503: "this host cannot browse the LAN now (discovery-unavailable)",
    502: "the peer refused or sent something unacceptable (its RemoteError code)",
    504: "the peer did not answer (unreachable, timeout, handshake-timeout)",
}


def op(summary: str, op_id: str, ok: int, ok_schema: dict | None, *, body: str | None = None,
        errors: tuple[int, ...] = (), params: list | None = None, body_optional: bool = False) -> dict:
    out: dict[str, Any] = {"summary": summary, "operationId": op_id}
    if params:
        out["parameters"] = params
    if body:
        out["requestBody"] = {"required": not body_optional, **json_content(ref(body))}
    ok_resp: dict[str, Any] = {"description": "success"}
    if ok_schema is not None:
        ok_resp.update(json_content(ok_schema))
    out["responses"] = {str(ok): ok_resp, **error_responses(*errors)}
    return out


def query_param(name: str, schema: dict, text: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": text}


_PROTOCOL_PARAM = query_param("protocol", {"enum": ["true", "false"], "default": "false"},
                     "true: also the core protocols' messages (connect/1.0, trust-ping, discover-features, "
                     "report-problem, empty/ack), which the archive keeps; false (default): application "
                     "messages only, unless `type` names one")


def path_param(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": STR}


def list_of(key: str, item: str) -> dict:
    return obj({key: {"type": "array", "items": ref(item)}}, (key,))


def _merge(into: dict, extra: dict, group: str, what: str) -> None:
    twice = [key for key in extra if key in into]
    if twice:
        raise ValueError(f"route group {group}: {what} {twice} already defined by the API or an earlier group")
    into.update(extra)


def _check(doc: dict) -> None:
    """Refuse a document a client generator would choke on: a repeated operationId or a
    `$ref` to a component nobody defined (say a group's error_responses(403) with no
    ERROR_TEXT[403])."""
    seen: dict[str, str] = {}
    for path, ops in doc["paths"].items():
        for method, operation in ops.items():
            op_id = operation.get("operationId")
            if op_id in seen:
                raise ValueError(f"operationId {op_id!r} of {method.upper()} {path} is also {seen[op_id]}'s")
            seen[op_id] = f"{method.upper()} {path}"
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            target = node.get("$ref")
            if isinstance(target, str):
                _, kind, name = target.rsplit("/", 2)
                if name not in doc["components"].get(kind, {}):
                    raise ValueError(f"{target} is referenced but not defined")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def build() -> dict:
    from .server import group_modules  # here, not at the top: server imports this module

    rid = [path_param("id")]
    paths = {
        "/v1/health": {"get": {"summary": "liveness; the only route without a token", "operationId": "health",
                               "security": [], "responses": {"200": {"description": "up", **json_content(
                                   obj({"status": {"const": "ok"}}, ("status",)))}}}},
        "/v1/openapi.json": {"get": op("this document", "openapi", 200, {"type": "object"})},
        "/v1/status": {"get": op("the agent's identity, counters and uptime", "status", 200, ref("Status"))},
        "/v1/invitations": {
            "post": op("create an invitation", "createInvitation", 201, ref("Invitation"),
                        body="InvitationRequest", body_optional=True, errors=(413,)),
            "get": op("list invitations", "listInvitations", 200, list_of("invitations", "Invitation")),
        },
        "/v1/invitations/accept": {"post": op(
            "accept an invitation URL: dial the inviter and connect; returns the active relationship",
            "acceptInvitation", 201, ref("Relationship"), body="AcceptRequest", errors=(413, 502, 504))},
        "/v1/relationships": {"get": op(
            "list relationships", "listRelationships", 200, list_of("relationships", "Relationship"),
            params=[query_param("state", STR, "only relationships in this state (active, revoked)")])},
        "/v1/relationships/{id}": {
            "get": op("one relationship", "getRelationship", 200, ref("Relationship"), params=rid, errors=(404,)),
            "patch": op("customer control: mute it, or require an agreement on it", "updateRelationship", 200,
                        ref("Relationship"), params=rid, body="RelationshipSettings", errors=(404,)),
        },
        "/v1/relationships/{id}/record": {"get": op(
            "what the protocols keep about it besides messages (tickets, ownership records, agreements, "
            "notification settings): an export's per-relationship part", "getRelationshipRecord", 200,
            ref("RelationshipRecord"), params=rid, errors=(404,))},
        "/v1/relationships/{id}/revoke": {"post": op(
            "revoke a relationship (terminal)", "revokeRelationship", 200, ref("Relationship"), params=rid,
            body="RevokeRequest", body_optional=True, errors=(404, 409, 413))},
        "/v1/relationships/{id}/ping": {"post": op(
            "trust-ping the peer and measure the round trip", "ping", 200, ref("Pong"), params=rid,
            body="PingRequest", body_optional=True, errors=(404, 409, 413, 502, 504))},
        "/v1/relationships/{id}/discover": {"post": op(
            "ask the peer which features (protocols, goal codes) it supports (discover-features 2.0)",
            "discoverFeatures", 200, list_of("features", "Feature"), params=rid, body="DiscoverRequest",
            body_optional=True, errors=(404, 409, 413, 502, 504))},
        "/v1/messages": {
            "post": {**op("queue one message, or a batch in one transaction", "sendMessages", 201,
                           {"oneOf": [ref("Message"), list_of("messages", "Message")]},
                           errors=(404, 409, 413)),
                     "requestBody": {"required": True, **json_content(
                         {"oneOf": [ref("SendRequest"), ref("BatchRequest")]})}},
            "get": op("the message archive, oldest first, paged by cursor", "listMessages", 200,
                       ref("MessagePage"), params=[
                           query_param("relationship", STR, "relationship id"),
                           query_param("thid", STR, "thread id"),
                           query_param("direction", {"enum": ["in", "out"]}, "in: received, out: sent"),
                           query_param("type", STR, "message type URI"),
                           query_param("after", {"type": "integer", "minimum": 0}, "only messages with a larger cursor"),
                           query_param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                              "page size"),
                           _PROTOCOL_PARAM,
                       ]),
        },
        "/v1/messages/{id}": {"get": op("one message", "getMessage", 200, ref("Message"), errors=(404,),
                                         params=[path_param("id"), query_param("relationship", STR,
                                                              "disambiguate an id two peers both used")])},
        "/v1/threads/{thid}": {"get": op("the messages of one thread, in order", "getThread", 200,
                                          obj({"thid": STR, "messages": {"type": "array", "items": ref("Message")}},
                                               ("thid", "messages")), params=[path_param("thid"), _PROTOCOL_PARAM],
                                          errors=(404,))},
        "/v1/events": {"get": {
            "summary": "live events as Server-Sent Events: `id: <n>` and `data: <Event JSON>` per event, "
                       "`: keep-alive` comments every 15 s; ids count per connection (no resume: after a "
                       "reconnect, catch up with GET /v1/messages?after=<cursor>)",
            "operationId": "events",
            "responses": {"200": {"description": "an endless event stream", "content": {
                "text/event-stream": {"schema": {"type": "string"}, "x-event-schema": ref("Event")}}},
                **error_responses()},
        }},
    }
    schemas = dict(SCHEMAS)
    error_text = dict(_ERROR_TEXT)
    for group in group_modules():
        _merge(paths, group.PATHS, group.__name__, "path")
        _merge(schemas, getattr(group, "SCHEMAS", {}), group.__name__, "schema")
        # A status several groups answer is one shared response: its texts are joined.
        for status, text in getattr(group, "ERROR_TEXT", {}).items():
            error_text[status] = f"{error_text[status]}; {text}" if status in error_text else text
    doc = {
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
            "schemas": schemas,
            "responses": {f"E{s}": {"description": text, **json_content(ref("Error"))} for s, text in error_text.items()},
        },
    }
    _check(doc)
    return doc


# The names these builders had before route groups existed.
_ref, _obj, _opt, _json, _errors, _op, _q, _p, _list_of = (ref, obj, opt, json_content, error_responses, op,
                                                           query_param, path_param, list_of)
_STR, _INT, _BOOL, _TIMEOUT = STR, INT, BOOL, TIMEOUT


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
