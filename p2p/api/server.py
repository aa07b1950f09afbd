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
import importlib
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from p2p.core.errors import BadArgument

from . import lan, openapi
from ._http import (DEFAULT_LIMIT, KINDS, MAX_BATCH, MAX_BODY_BYTES, MAX_LIMIT, MAX_TIMEOUT_S,
                    PREFIX, STATUS_BY_CODE, ApiError, Handler, add_status_codes, bool_param, check_fields,
                    endpoint, error_response, int_param, log, query, read_json, route, seconds_param, status_for)
from .lan import DEFAULT_DISCOVER_S, MAX_DISCOVER_S
from .token import DEFAULT_HOST, DEFAULT_PORT

__all__ = [  # what other modules import from here; the helpers themselves live in _http
    "ApiError", "ApiSettings", "DEFAULT_DISCOVER_S", "DEFAULT_LIMIT", "GROUPS", "Handler", "KEEPALIVE_S", "MAX_BATCH",
    "MAX_BODY_BYTES", "MAX_DISCOVER_S", "MAX_LIMIT", "MAX_TIMEOUT_S", "OPEN_PATHS", "PREFIX", "STATUS_BY_CODE",
    "bool_param", "check_fields", "check_host", "create_app", "endpoint", "error_response", "group_modules",
    "int_param", "query", "read_json", "route", "seconds_param", "serve_api", "settings_from_config", "status_for",
]

if TYPE_CHECKING:  # the Agent is only ever called through its documented methods
    from p2p.agent import Agent

# Route groups: modules (or dotted module names) written as p2p/api/_http.py describes.
# Their routes follow the built-in ones, in this order, and so do their OpenAPI paths.
GROUPS: tuple[ModuleType | str, ...] = (lan, "p2p.api.support", "p2p.api.notifications", "p2p.api.terms",
                                         "p2p.api.ownership")

KEEPALIVE_S = 15.0
OPEN_PATHS = frozenset({PREFIX + "/health"})  # everything else needs the token

INVITE_FIELDS = {"multi_use": ("boolean", False), "label": ("string", False), "expires_in": ("integer", False)}
ACCEPT_FIELDS = {"url": ("string", True), "label": ("string", False), "timeout": ("number", False)}
REVOKE_FIELDS = {"reason": ("string", False)}
SETTINGS_FIELDS = {"muted": ("boolean", False), "require_agreement": ("boolean", False)}
PING_FIELDS = {"timeout": ("number", False)}
DISCOVER_FIELDS = {"match": ("string", False), "timeout": ("number", False)}
MESSAGE_FIELDS = {"type": ("string", True), "body": ("object", True), "thid": ("string", False),
                  "pthid": ("string", False), "expires_in": ("integer", False), "please_ack": ("boolean", False)}
SEND_FIELDS = {"relationship": ("string", True), **MESSAGE_FIELDS}
BATCH_FIELDS = {"relationship": ("string", True), "messages": ("array", True)}

# The names these helpers had when they were private to this module.
_KINDS, _query, _bool_param, _int_param, _seconds_param, _endpoint = (KINDS, query, bool_param, int_param,
                                                                     seconds_param, endpoint)


def group_modules() -> list[ModuleType]:
    """GROUPS as modules, each checked for the attributes every group must have."""
    modules = []
    for group in GROUPS:
        module = importlib.import_module(group) if isinstance(group, str) else group
        missing = [name for name in ("routes", "PATHS") if not hasattr(module, name)]
        if missing:
            raise TypeError(f"route group {module.__name__} lacks {', '.join(missing)}")
        modules.append(module)
    return modules


def _add_group_status_codes() -> None:
    for group in group_modules():
        add_status_codes(getattr(group, "STATUS_BY_CODE", {}), group.__name__)


_add_group_status_codes()  # at import, so status_for knows every group's codes; again (idempotent) per app


def _refuse_shadowed(routes: list[Route]) -> None:
    """Starlette takes the first route that matches, so a group's GET /v1/messages/summary
    after the built-in GET /v1/messages/{id} would never be reached: refuse that (and any
    route defined twice) when the app is built rather than let it fail one request later."""
    for i, later in enumerate(routes):
        methods = (later.methods or set()) - {"HEAD"}
        for earlier in routes[:i]:
            if methods & (earlier.methods or set()) and earlier.path_regex.match(later.path):
                raise ValueError(f"route {'/'.join(sorted(methods))} {later.path} is shadowed by "
                                 f"{earlier.path}, defined before it")


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
        query(request, set())
        return JSONResponse({"invitations": await agent.list_invitations()})

    async def accept_invitation(request: Request) -> Response:
        args = check_fields(await read_json(request), ACCEPT_FIELDS)
        return JSONResponse(await agent.accept_invitation(args.pop("url"), **args), status_code=201)

    async def list_relationships(request: Request) -> Response:
        params = query(request, {"state"})
        return JSONResponse({"relationships": await agent.list_relationships(state=params.get("state"))})

    async def get_relationship(request: Request) -> Response:
        return JSONResponse(await agent.get_relationship(request.path_params["id"]))

    async def update_relationship(request: Request) -> Response:
        doc = await read_json(request)
        args = check_fields(doc, SETTINGS_FIELDS)
        # Only the keys sent change: `"require_agreement": null` means "the default".
        changes = {k: args.get(k) for k in doc if k in SETTINGS_FIELDS}
        if not changes:
            raise ApiError(400, "missing-field", "send muted and/or require_agreement")
        return JSONResponse(await agent.update_relationship(request.path_params["id"], **changes))

    async def relationship_record(request: Request) -> Response:
        return JSONResponse(await agent.relationship_record(request.path_params["id"]))

    async def revoke(request: Request) -> Response:
        args = check_fields(await read_json(request, empty_ok=True), REVOKE_FIELDS)
        return JSONResponse(await agent.revoke(request.path_params["id"], **args))

    async def ping(request: Request) -> Response:
        args = check_fields(await read_json(request, empty_ok=True), PING_FIELDS)
        return JSONResponse(await agent.ping(request.path_params["id"], **args))

    async def discover(request: Request) -> Response:
        args = check_fields(await read_json(request, empty_ok=True), DISCOVER_FIELDS)
        return JSONResponse({"features": await agent.discover(request.path_params["id"], **args)})

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
        params = query(request, {"relationship", "thid", "direction", "type", "after", "limit", "protocol"})
        if params.get("direction") not in (None, "in", "out"):
            raise ApiError(400, "invalid-field", "query parameter 'direction' must be 'in' or 'out'")
        after = int_param(params, "after", low=0)
        limit = int_param(params, "limit", low=1, high=MAX_LIMIT) or DEFAULT_LIMIT
        include_protocol = bool_param(params, "protocol")
        # One extra row tells whether another page exists without a count query.
        found = await agent.messages(relationship=params.get("relationship"), thid=params.get("thid"),
                                     direction=params.get("direction"), type=params.get("type"), after=after,
                                     limit=limit + 1, include_protocol=include_protocol)
        page = found[:limit]
        more = len(found) > limit
        return JSONResponse({"messages": page, "next_after": page[-1]["cursor"] if more else None})

    async def get_message(request: Request) -> Response:
        params = query(request, {"relationship"})
        return JSONResponse(await agent.get_message(request.path_params["id"], relationship=params.get("relationship")))

    async def thread(request: Request) -> Response:
        thid = request.path_params["thid"]
        include_protocol = bool_param(query(request, {"protocol"}), "protocol")
        # The agent raises unknown-thread (404) for a thread with no message at all.
        found = await agent.thread(thid, include_protocol=include_protocol)
        return JSONResponse({"thid": thid, "messages": found})

    async def events(request: Request) -> Any:
        query(request, set())
        return EventStream(agent, keepalive)

    routes = [
        route("/health", health, "GET"),
        route("/openapi.json", openapi_json, "GET"),
        route("/status", status, "GET"),
        route("/invitations", create_invitation, "POST"),
        route("/invitations", list_invitations, "GET"),
        route("/invitations/accept", accept_invitation, "POST"),
        route("/relationships", list_relationships, "GET"),
        route("/relationships/{id}", get_relationship, "GET"),
        route("/relationships/{id}", update_relationship, "PATCH"),
        route("/relationships/{id}/record", relationship_record, "GET"),
        route("/relationships/{id}/revoke", revoke, "POST"),
        route("/relationships/{id}/ping", ping, "POST"),
        route("/relationships/{id}/discover", discover, "POST"),
        route("/messages", send_messages, "POST"),
        route("/messages", list_messages, "GET"),
        route("/messages/{id}", get_message, "GET"),
        route("/threads/{thid}", thread, "GET"),
        route("/events", events, "GET"),
    ]
    _add_group_status_codes()
    for group in group_modules():
        routes.extend(group.routes(agent))
    _refuse_shadowed(routes)

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
