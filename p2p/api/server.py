"""The admin API: HTTP + JSON on loopback, a thin mapping onto the Agent.

Hypercorn (its trio worker) speaks HTTP, Starlette routes; this module only checks the
bearer token, validates request shapes, calls one Agent method per route and maps
P2PError codes to statuses (spec/14-admin-api.md is the contract, openapi.json its
machine-readable form). No protocol logic lives here: whatever the agent accepts or
refuses, the API reports.

Every response, including every failure, is JSON: `{"error": code, "detail": text}` for
errors. An unexpected exception is logged as one line and answered with a 500; a
traceback would tell a local client nothing it can act on.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from p2p.core.errors import BadArgument, LocalError, P2PError, RemoteError

from . import openapi
from .token import DEFAULT_HOST, DEFAULT_PORT

if TYPE_CHECKING:  # the Agent is only ever called through its documented methods
    from p2p.agent import Agent

log = logging.getLogger("p2p.api")

PREFIX = "/v1"
MAX_BODY_BYTES = 1 << 20
MAX_BATCH = 1000
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_TIMEOUT_S = 120
MAX_DISCOVER_S = 30  # GET /v1/discover: a LAN browse window (spec/15 §15.5)
DEFAULT_DISCOVER_S = 3.0
KEEPALIVE_S = 15.0
OPEN_PATHS = frozenset({PREFIX + "/health"})  # everything else needs the token

# Status for an error code the agent raises (spec/14 §14.4). Checked before the family
# rules below, because the store's UnknownRelationship is a LocalError but means 404.
STATUS_BY_CODE = {
    "unknown-relationship": 404,
    "unknown-message": 404,
    "unknown-thread": 404,
    "relationship-revoked": 409,
    "missing-field": 400,
    "bad-argument": 400,
    # An invitation the caller pasted that is past its time is the caller's input, not a
    # bad gateway, although the invitation parser raises it as a RemoteError.
    "invitation-expired": 400,
    "too-large": 413,
    "unreachable": 504,
    "timeout": 504,
    "discovery-unavailable": 503,  # this host cannot browse the LAN (no multicast interface)
}


def status_for(exc: P2PError) -> int:
    code = exc.code
    if code in STATUS_BY_CODE:
        return STATUS_BY_CODE[code]
    if code.startswith("invalid-"):
        return 400
    if code.endswith("-timeout"):  # handshake-timeout, send-timeout, ...
        return 504
    if isinstance(exc, RemoteError):
        return 502
    if isinstance(exc, LocalError):
        return 400
    return 500


class ApiError(Exception):
    """A request the API itself refuses, before any agent call."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def error_response(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail or code}, status_code=status, headers=headers)


# --- request shapes ------------------------------------------------------------------
# A field spec is {name: (kind, required)}. Kinds are exact JSON types: `type(v) is int`
# keeps `true` out of integer fields, and a float never passes for an int.

_KINDS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: type(v) is str,
    "boolean": lambda v: type(v) is bool,
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float),
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
}

INVITE_FIELDS = {"multi_use": ("boolean", False), "label": ("string", False), "expires_in": ("integer", False)}
ACCEPT_FIELDS = {"url": ("string", True), "label": ("string", False), "timeout": ("number", False)}
REVOKE_FIELDS = {"reason": ("string", False)}
PING_FIELDS = {"timeout": ("number", False)}
DISCOVER_FIELDS = {"match": ("string", False), "timeout": ("number", False)}
MESSAGE_FIELDS = {"type": ("string", True), "body": ("object", True), "thid": ("string", False),
                  "pthid": ("string", False), "expires_in": ("integer", False), "please_ack": ("boolean", False)}
SEND_FIELDS = {"relationship": ("string", True), **MESSAGE_FIELDS}
BATCH_FIELDS = {"relationship": ("string", True), "messages": ("array", True)}


def check_fields(doc: Any, spec: dict[str, tuple[str, bool]], where: str = "body") -> dict[str, Any]:
    """The fields of `doc` that are set (JSON null counts as absent), shape-checked."""
    if type(doc) is not dict:
        raise ApiError(400, "invalid-field", f"{where} must be a JSON object")
    out = {}
    for name, value in doc.items():
        if name not in spec:
            raise ApiError(400, "invalid-field", f"{where}: unknown field {name!r}")
        if value is None:
            continue
        kind = spec[name][0]
        if not _KINDS[kind](value):
            raise ApiError(400, "invalid-field", f"{where}: {name!r} must be a JSON {kind}")
        out[name] = value
    for name, (_, required) in spec.items():
        if required and name not in out:
            raise ApiError(400, "missing-field", f"{where}: {name!r} is required")
    if "expires_in" in out and out["expires_in"] <= 0:
        raise ApiError(400, "invalid-field", f"{where}: 'expires_in' must be a positive number of seconds")
    if "timeout" in out and not 0 < out["timeout"] <= MAX_TIMEOUT_S:
        raise ApiError(400, "invalid-field", f"{where}: 'timeout' must be in (0, {MAX_TIMEOUT_S}] seconds")
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise ValueError("duplicate key in an object")
    return doc


async def read_json(request: Request, *, empty_ok: bool = False) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, "too-large", f"request body is over {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():  # counted as it arrives: a lying length header buys nothing
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "too-large", f"request body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if empty_ok:
            return {}
        raise ApiError(400, "malformed-json", "request body is empty; a JSON object is required")
    try:
        return json.loads(raw, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ApiError(400, "malformed-json", f"request body is not JSON: {exc}") from None


def _query(request: Request, allowed: set[str]) -> dict[str, str]:
    out = {}
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            raise ApiError(400, "invalid-field", f"unknown query parameter {name!r}")
        if name in out:
            raise ApiError(400, "invalid-field", f"query parameter {name!r} given twice")
        out[name] = value
    return out


def _bool_param(query: dict[str, str], name: str) -> bool:
    value = query.get(name, "false")
    if value not in ("true", "false"):
        raise ApiError(400, "invalid-field", f"query parameter {name!r} must be 'true' or 'false'")
    return value == "true"


def _int_param(query: dict[str, str], name: str, *, low: int, high: int | None = None) -> int | None:
    if name not in query:
        return None
    value = query[name]
    if not value.isdigit() or len(value) > 19 or int(value) < low or (high is not None and int(value) > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ApiError(400, "invalid-field", f"query parameter {name!r} must be an integer {bound}")
    return int(value)


def _seconds_param(query: dict[str, str], name: str, *, default: float, high: float) -> float:
    """A decimal number of seconds in (0, high]: `3`, `0.5`; no exponent, sign or inf."""
    if name not in query:
        return default
    value = query[name]
    whole, dot, frac = value.partition(".")
    digits = whole + frac
    if (not whole or (dot and not frac) or not digits.isascii() or not digits.isdigit() or len(value) > 12
            or not 0 < float(value) <= high):
        raise ApiError(400, "invalid-field", f"query parameter {name!r} must be a number of seconds in (0, {high:g}]")
    return int(value) if not dot else float(value)


# --- the application -------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]


def _endpoint(fn: Handler) -> Handler:
    async def handle(request: Request) -> Response:
        try:
            return await fn(request)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.detail)
        except P2PError as exc:
            status = status_for(exc)
            if status >= 500:
                log.warning("%s %s: %s: %s", request.method, request.url.path, exc.code, exc.detail)
            return error_response(status, exc.code, exc.detail)
        except Exception as exc:  # noqa: BLE001 - the catch-all the contract promises
            log.error("%s %s failed: %s: %r", request.method, request.url.path, type(exc).__name__, str(exc))
            return error_response(500, "internal-error", "the agent failed; see the daemon log")

    handle.__name__ = fn.__name__
    return handle


class EventStream:
    """GET /v1/events: the agent's events as Server-Sent Events (spec/14 §14.6).

    A plain ASGI callable rather than a generator-backed StreamingResponse, so the
    subscription's context and the keep-alive timer are ordinary trio scopes that are
    never suspended across a `yield`.
    """

    def __init__(self, agent: Agent, keepalive: float) -> None:
        self.agent, self.keepalive = agent, keepalive

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async with self.agent.subscribe() as events:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"x-accel-buffering", b"no"),
            ]})
            await send({"type": "http.response.body", "body": b": p2p events\n\n", "more_body": True})
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._until_disconnect, receive, nursery.cancel_scope)
                await self._pump(events, send)
                nursery.cancel_scope.cancel()
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception:  # noqa: BLE001 - the client may be gone already; nothing to tell it
            pass

    @staticmethod
    async def _until_disconnect(receive: Any, scope: trio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async def _pump(self, events: trio.MemoryReceiveChannel, send: Any) -> None:
        counter = 0
        while True:
            event = None
            with trio.move_on_after(self.keepalive):
                try:
                    event = await events.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    return  # the agent ended the subscription (overflow, shutdown)
            if event is None:
                chunk = b": keep-alive\n\n"
            else:
                counter += 1
                data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
                chunk = f"id: {counter}\ndata: {data}\n\n".encode("utf-8")
            await send({"type": "http.response.body", "body": chunk, "more_body": True})


class BearerAuth:
    """Pure ASGI middleware: no valid `Authorization: Bearer` header, no route."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._token = token.encode("ascii")

    def _authorized(self, scope: Any) -> bool:
        values = [v for k, v in scope["headers"] if k == b"authorization"]
        if len(values) != 1:
            return False
        scheme, _, credential = values[0].partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), self._token)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS and not self._authorized(scope):
            response = error_response(401, "unauthorized", "a valid 'Authorization: Bearer <api-token>' header is required",
                                      headers={"www-authenticate": 'Bearer realm="p2p"'})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(agent: Agent, *, token: str, keepalive: float = KEEPALIVE_S) -> Any:
    """The ASGI application (auth included) for `agent`."""
    if type(token) is not str or not token or not token.isascii():
        raise BadArgument("the API token must be non-empty ASCII text")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def openapi_json(request: Request) -> Response:
        return Response(openapi.document_bytes(), media_type="application/json")

    async def status(request: Request) -> Response:
        return JSONResponse(await agent.status())

    async def create_invitation(request: Request) -> Response:
        args = check_fields(await read_json(request, empty_ok=True), INVITE_FIELDS)
        return JSONResponse(await agent.create_invitation(**args), status_code=201)

    async def list_invitations(request: Request) -> Response:
        _query(request, set())
        return JSONResponse({"invitations": await agent.list_invitations()})

    async def accept_invitation(request: Request) -> Response:
        args = check_fields(await read_json(request), ACCEPT_FIELDS)
        return JSONResponse(await agent.accept_invitation(args.pop("url"), **args), status_code=201)

    async def list_relationships(request: Request) -> Response:
        query = _query(request, {"state"})
        return JSONResponse({"relationships": await agent.list_relationships(state=query.get("state"))})

    async def get_relationship(request: Request) -> Response:
        return JSONResponse(await agent.get_relationship(request.path_params["id"]))

    async def revoke(request: Request) -> Response:
        args = check_fields(await read_json(request, empty_ok=True), REVOKE_FIELDS)
        return JSONResponse(await agent.revoke(request.path_params["id"], **args))

    async def ping(request: Request) -> Response:
        args = check_fields(await read_json(request, empty_ok=True), PING_FIELDS)
        return JSONResponse(await agent.ping(request.path_params["id"], **args))

    async def discover(request: Request) -> Response:
        args = check_fields(await read_json(request, empty_ok=True), DISCOVER_FIELDS)
        return JSONResponse({"features": await agent.discover(request.path_params["id"], **args)})

    async def discover_nearby(request: Request) -> Response:
        query = _query(request, {"timeout"})
        timeout = _seconds_param(query, "timeout", default=DEFAULT_DISCOVER_S, high=MAX_DISCOVER_S)
        return JSONResponse(await agent.discover_nearby(timeout))

    async def send_messages(request: Request) -> Response:
        doc = await read_json(request)
        if type(doc) is dict and "messages" in doc:
            args = check_fields(doc, BATCH_FIELDS)
            items = args["messages"]
            if not 0 < len(items) <= MAX_BATCH:
                raise ApiError(400, "invalid-field", f"'messages' must hold 1 to {MAX_BATCH} messages")
            batch = [check_fields(item, MESSAGE_FIELDS, f"messages[{i}]") for i, item in enumerate(items)]
            return JSONResponse({"messages": await agent.send_many(args["relationship"], batch)}, status_code=201)
        args = check_fields(doc, SEND_FIELDS)
        return JSONResponse(await agent.send(args.pop("relationship"), **args), status_code=201)

    async def list_messages(request: Request) -> Response:
        query = _query(request, {"relationship", "thid", "direction", "type", "after", "limit", "protocol"})
        if query.get("direction") not in (None, "in", "out"):
            raise ApiError(400, "invalid-field", "query parameter 'direction' must be 'in' or 'out'")
        after = _int_param(query, "after", low=0)
        limit = _int_param(query, "limit", low=1, high=MAX_LIMIT) or DEFAULT_LIMIT
        include_protocol = _bool_param(query, "protocol")
        # One extra row tells whether another page exists without a count query.
        found = await agent.messages(relationship=query.get("relationship"), thid=query.get("thid"),
                                     direction=query.get("direction"), type=query.get("type"), after=after,
                                     limit=limit + 1, include_protocol=include_protocol)
        page = found[:limit]
        more = len(found) > limit
        return JSONResponse({"messages": page, "next_after": page[-1]["cursor"] if more else None})

    async def get_message(request: Request) -> Response:
        query = _query(request, {"relationship"})
        return JSONResponse(await agent.get_message(request.path_params["id"], relationship=query.get("relationship")))

    async def thread(request: Request) -> Response:
        thid = request.path_params["thid"]
        include_protocol = _bool_param(_query(request, {"protocol"}), "protocol")
        # The agent raises unknown-thread (404) for a thread with no message at all.
        found = await agent.thread(thid, include_protocol=include_protocol)
        return JSONResponse({"thid": thid, "messages": found})

    async def events(request: Request) -> Any:
        _query(request, set())
        return EventStream(agent, keepalive)

    def route(path: str, fn: Handler, method: str) -> Route:
        return Route(PREFIX + path, _endpoint(fn), methods=[method])

    routes = [
        route("/health", health, "GET"),
        route("/openapi.json", openapi_json, "GET"),
        route("/status", status, "GET"),
        route("/invitations", create_invitation, "POST"),
        route("/invitations", list_invitations, "GET"),
        route("/invitations/accept", accept_invitation, "POST"),
        route("/relationships", list_relationships, "GET"),
        route("/relationships/{id}", get_relationship, "GET"),
        route("/relationships/{id}/revoke", revoke, "POST"),
        route("/relationships/{id}/ping", ping, "POST"),
        route("/relationships/{id}/discover", discover, "POST"),
        route("/discover", discover_nearby, "GET"),
        route("/messages", send_messages, "POST"),
        route("/messages", list_messages, "GET"),
        route("/messages/{id}", get_message, "GET"),
        route("/threads/{thid}", thread, "GET"),
        route("/events", events, "GET"),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return error_response(exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}",
                              headers=exc.headers)

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    return BearerAuth(app, token)


def check_host(host: str, *, allow_remote: bool) -> None:
    """Refuse to listen beyond this machine unless the operator said so: the API is plain
    HTTP, so anywhere else the token would cross the network in clear."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise BadArgument(f"API host {host!r} is not an IP address or 'localhost'") from None
    if not loopback and not allow_remote:
        raise BadArgument(f"API host {host} is not a loopback address; refusing without allow_remote")


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The `[api]` table of config.toml (spec/14 §14.1)."""

    enabled: bool = True
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    allow_remote: bool = False


def settings_from_config(table: Mapping[str, Any]) -> ApiSettings:
    kinds = {"enabled": bool, "host": str, "port": int, "allow_remote": bool}
    unknown = set(table) - set(kinds)
    if unknown:
        raise BadArgument(f"unknown [api] keys {sorted(unknown)}")
    for name, value in table.items():
        if type(value) is not kinds[name]:
            raise BadArgument(f"[api] {name} must be a {kinds[name].__name__}")
    settings = ApiSettings(**table)
    if not 0 <= settings.port < 65536:
        raise BadArgument("[api] port must be 0..65535")
    check_host(settings.host, allow_remote=settings.allow_remote)
    return settings


def _port_of(bind: str) -> int:
    return int(bind.rsplit(":", 1)[1])  # "http://127.0.0.1:7401", "http://[::1]:7401"


async def serve_api(agent: Agent, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str,
                    allow_remote: bool = False, keepalive: float = KEEPALIVE_S,
                    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the admin API for `agent` until cancelled; `task_status.started((host, port))`
    once listening (port 0 picks a free port, reported here)."""
    check_host(host, allow_remote=allow_remote)
    if type(port) is not int or not 0 <= port < 65536:
        raise BadArgument(f"API port {port!r} is out of range")
    app = create_app(agent, token=token, keepalive=keepalive)
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = log
    config.include_server_header = False
    config.graceful_timeout = 1.0  # an SSE stream never ends by itself; don't hold shutdown for it
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app, config, mode="asgi"))
        task_status.started((host, _port_of(binds[0])))
