"""Route group: LAN discovery, GET /v1/discover (spec/15 §15.5, spec/14 §14.5).

Written as any route group is (see p2p/api/_http.py): `routes(agent)` for server.py,
`PATHS`/`SCHEMAS` for the OpenAPI document, `STATUS_BY_CODE` for the group's own error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._http import query, route, seconds_param
from .openapi import STR, obj, op, opt, query_param, ref

if TYPE_CHECKING:
    from p2p.agent import Agent

MAX_DISCOVER_S = 30  # a LAN browse window (spec/15 §15.5)
DEFAULT_DISCOVER_S = 3.0

STATUS_BY_CODE = {"discovery-unavailable": 503}  # this host cannot browse the LAN (no multicast interface)


def routes(agent: Agent) -> list[Route]:
    async def discover_nearby(request: Request) -> Response:
        found = query(request, {"timeout"})
        timeout = seconds_param(found, "timeout", default=DEFAULT_DISCOVER_S, high=MAX_DISCOVER_S)
        return JSONResponse(await agent.discover_nearby(timeout))

    return [route("/discover", discover_nearby, "GET")]


PATHS = {
    "/v1/discover": {"get": op(
        "browse the LAN for advertised invitations (DNS-SD, spec/15): verified agents nearby and the "
        "advertisements rejected, with reasons. Takes `timeout` seconds (plus at most 1 s of resolution)",
        "discoverNearby", 200, ref("NearbyScan"), errors=(503,), params=[
            query_param("timeout", {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DISCOVER_S, "default": 3},
                        "seconds to listen, a decimal number such as 3 or 0.5")])},
}

SCHEMAS = {
    "Nearby": obj({
        "label": {"type": "string", "description": "the invitation's signed label; show it with the fingerprint"},
        "fingerprint": {"type": "string", "description": "16 base32 characters of the invitation key (spec/15)"},
        "fingerprint_display": {"type": "string", "examples": ["ydd2-56rz-lh7o-nrtv"]},
        "agent_did": STR, "endpoint": {"type": "string", "description": "the signed p2p+tcp endpoint"},
        "url": {"type": "string", "description": "the verified invitation URL: pass it to /v1/invitations/accept"},
        "expires_time": opt("integer"), "own": {"type": "boolean", "description": "our own advertisement"},
        "advertised_label": {"type": "string", "description": "the TXT label: unauthenticated, diagnostic only"},
        "label_mismatch": {"type": "boolean", "description": "some advertisement showed another TXT label"},
        "addresses": {"type": "array", "items": STR, "description": "mDNS addresses: never used to connect"},
        "name": {"type": "string", "description": "the DNS-SD instance name: unauthenticated"},
    }, ("label", "fingerprint", "agent_did", "endpoint", "url")),
    "Rejected": obj({"name": STR, "code": {"type": "string", "description": "why (spec/15 §15.8)"},
                     "detail": STR, "addresses": {"type": "array", "items": STR}}, ("name", "code")),
    "NearbyScan": obj({"nearby": {"type": "array", "items": ref("Nearby")},
                       "rejected": {"type": "array", "items": ref("Rejected")}}, ("nearby", "rejected")),
}
