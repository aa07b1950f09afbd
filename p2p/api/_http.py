"""What every admin API route group shares: limits, request-shape checks, error mapping.

server.py builds the application from the built-in routes plus the route groups named in
its `GROUPS`; a group module (p2p/api/lan.py is one) imports its helpers from here so all
routes validate input and report failures the same way (spec/14 §14.4):

    def routes(agent) -> list[starlette.routing.Route]   # build each with `route(...)`
    PATHS: dict            # OpenAPI path -> operations, built with p2p.api.openapi's helpers
    SCHEMAS: dict          # OpenAPI component schemas the PATHS refer to (may be {})
    STATUS_BY_CODE: dict   # optional: the group's error codes -> HTTP status
    ERROR_TEXT: dict       # optional: text for a status no other route answers (openapi E<status>)

Nothing here knows the Agent: a handler calls it, this module only maps what it raises.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from p2p.core.errors import LocalError, P2PError, RemoteError

log = logging.getLogger("p2p.api")

PREFIX = "/v1"
MAX_BODY_BYTES = 1 << 20
MAX_BATCH = 1000
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_TIMEOUT_S = 120

# Status for an error code the agent raises (spec/14 §14.4). Checked before the family
# rules below, because the store's UnknownRelationship is a LocalError but means 404.
# server.py adds each route group's own STATUS_BY_CODE here when it is imported.
STATUS_BY_CODE: dict[str, int] = {
    "unknown-relationship": 404,
    "unknown-message": 404,
    "unknown-thread": 404,
    # A local action the protocol's state does not allow now (a ticket, an agreement, a
    # record): the request is well-formed but conflicts with the current state.
    "state-error": 409,
    "relationship-revoked": 409,
    "missing-field": 400,
    "bad-argument": 400,
    # An invitation the caller pasted that is past its time is the caller's input, not a
    # bad gateway, although the invitation parser raises it as a RemoteError.
    "invitation-expired": 400,
    "too-large": 413,
    "unreachable": 504,
    "timeout": 504,
}


def add_status_codes(codes: dict[str, int], owner: str) -> None:
    """Merge a group's code -> status map; a code already mapped elsewhere to another status
    is refused, since one code answering two statuses would make clients guess."""
    for code, status in codes.items():
        if type(code) is not str or type(status) is not int or not 400 <= status <= 599:
            raise ValueError(f"{owner}: STATUS_BY_CODE[{code!r}] = {status!r} is not an error code -> 4xx/5xx")
        if STATUS_BY_CODE.get(code, status) != status:
            raise ValueError(f"{owner}: error code {code!r} -> {status} conflicts with {STATUS_BY_CODE[code]}")
        STATUS_BY_CODE[code] = status


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

KINDS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: type(v) is str,
    "boolean": lambda v: type(v) is bool,
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float),
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
}


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
        if not KINDS[kind](value):
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


def query(request: Request, allowed: set[str]) -> dict[str, str]:
    """The query parameters, each at most once, none outside `allowed` (pass set() for none)."""
    out = {}
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            raise ApiError(400, "invalid-field", f"unknown query parameter {name!r}")
        if name in out:
            raise ApiError(400, "invalid-field", f"query parameter {name!r} given twice")
        out[name] = value
    return out


def bool_param(query: dict[str, str], name: str) -> bool:
    value = query.get(name, "false")
    if value not in ("true", "false"):
        raise ApiError(400, "invalid-field", f"query parameter {name!r} must be 'true' or 'false'")
    return value == "true"


def int_param(query: dict[str, str], name: str, *, low: int, high: int | None = None) -> int | None:
    if name not in query:
        return None
    value = query[name]
    if not value.isdigit() or len(value) > 19 or int(value) < low or (high is not None and int(value) > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ApiError(400, "invalid-field", f"query parameter {name!r} must be an integer {bound}")
    return int(value)


def seconds_param(query: dict[str, str], name: str, *, default: float, high: float) -> float:
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


# --- handlers ----------------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]


def endpoint(fn: Handler) -> Handler:
    """`fn` with the error contract: ApiError and P2PError become their JSON error, anything
    else a logged 500."""
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


def route(path: str, fn: Handler, method: str) -> Route:
    """One route: `path` below PREFIX ("/discover" -> "/v1/discover"), `fn` error-mapped."""
    return Route(PREFIX + path, endpoint(fn), methods=[method])
