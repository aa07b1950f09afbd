"""Route group: ownership records and maker updates, /v1/ownership (spec/19 §19.10).

Thin: each handler checks the request's shape and calls the ownership service
(p2p/services/ownership.py), which holds every rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._http import MAX_LIMIT, ApiError, check_fields, int_param, query, read_json, route
from .openapi import INT, STR, obj, op, opt, path_param, query_param, ref

if TYPE_CHECKING:
    from p2p.agent import Agent

STATES = ["issued", "active", "transfer_pending", "superseded", "revoked"]
KINDS = ["recall", "firmware", "warranty", "manual"]

STATUS_BY_CODE = {
    "record-not-found": 404,
    "not-issuer": 409,  # an issuer's action on an agent whose role is not business
    "record-state": 409,  # the record's state does not allow the action
}

ISSUE_FIELDS = {"relationship": ("string", True), "model": ("string", True), "serial": ("string", True),
                "purchased": ("string", True), "warranty_end": ("string", True)}
UPDATE_FIELDS = {"kind": ("string", True), "model": ("string", True), "title": ("string", True),
                 "text": ("string", False), "links": ("array", False), "serials": ("object", False)}
TRANSFER_FIELDS = {"new_owner": ("string", True)}
PRESENT_FIELDS = {"relationship": ("string", True), "challenge": ("string", False)}
REVOKE_FIELDS = {"reason": ("string", False)}


def routes(agent: Agent) -> list[Route]:
    def service() -> Any:
        return agent.service("ownership")

    async def issue(request: Request) -> Response:
        query(request, set())
        args = check_fields(await read_json(request), ISSUE_FIELDS)
        return JSONResponse(await service().issue(**args), status_code=201)

    async def list_records(request: Request) -> Response:
        params = query(request, {"relationship", "model", "serial", "state", "side", "limit"})
        if params.get("state") not in (None, *STATES):
            raise ApiError(400, "invalid-field", f"query parameter 'state' must be one of {', '.join(STATES)}")
        if params.get("side") not in (None, "issuer", "owner"):
            raise ApiError(400, "invalid-field", "query parameter 'side' must be issuer or owner")
        limit = int_param(params, "limit", low=1, high=MAX_LIMIT) or MAX_LIMIT
        return JSONResponse({"records": await service().list(
            relationship=params.get("relationship"), model=params.get("model"), serial=params.get("serial"),
            state=params.get("state"), side=params.get("side"), limit=limit)})

    async def get_record(request: Request) -> Response:
        query(request, set())
        return JSONResponse(await service().get(request.path_params["id"]))

    async def send_update(request: Request) -> Response:
        query(request, set())
        args = check_fields(await read_json(request), UPDATE_FIELDS)
        if not all(type(link) is str for link in args.get("links", ())):
            raise ApiError(400, "invalid-field", "body: 'links' is an array of strings")
        return JSONResponse(await service().update(**args), status_code=201)

    async def transfer(request: Request) -> Response:
        query(request, set())
        args = check_fields(await read_json(request), TRANSFER_FIELDS)
        return JSONResponse(await service().transfer(request.path_params["id"], args["new_owner"]), status_code=202)

    async def present(request: Request) -> Response:
        query(request, set())
        args = check_fields(await read_json(request), PRESENT_FIELDS)
        return JSONResponse(await service().present(request.path_params["id"], **args), status_code=202)

    async def revoke(request: Request) -> Response:
        query(request, set())
        args = check_fields(await read_json(request, empty_ok=True), REVOKE_FIELDS)
        return JSONResponse(await service().revoke(request.path_params["id"], **args))

    async def cancel_transfer(request: Request) -> Response:
        query(request, set())
        check_fields(await read_json(request, empty_ok=True), {})
        return JSONResponse(await service().cancel_transfer(request.path_params["id"]))

    return [route("/ownership/records", issue, "POST"), route("/ownership/records", list_records, "GET"),
            route("/ownership/records/{id}", get_record, "GET"),
            route("/ownership/records/{id}/transfer", transfer, "POST"),
            route("/ownership/records/{id}/present", present, "POST"),
            route("/ownership/records/{id}/revoke", revoke, "POST"),
            route("/ownership/records/{id}/cancel-transfer", cancel_transfer, "POST"),
            route("/ownership/updates", send_update, "POST")]


_ID = [path_param("id")]
PATHS = {
    "/v1/ownership/records": {
        "post": op("business: sign an ownership record for the customer on a relationship and send it",
                   "issueOwnershipRecord", 201, ref("OwnershipRecord"), body="OwnershipIssue", errors=(404, 409)),
        "get": op("records this agent issued (business) or holds (customer), oldest first", "listOwnershipRecords",
                  200, obj({"records": {"type": "array", "items": ref("OwnershipRecord")}}, ("records",)), params=[
                      query_param("relationship", STR, "the owner's relationship with the issuer"),
                      query_param("model", STR, "product model"),
                      query_param("serial", STR, "serial"),
                      query_param("state", {"enum": STATES}, "only records in this state"),
                      query_param("side", {"enum": ["issuer", "owner"]}, "issued here, or held here"),
                      query_param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1000},
                                  "at most this many")]),
    },
    "/v1/ownership/records/{id}": {"get": op("one record", "getOwnershipRecord", 200, ref("OwnershipRecord"),
                                             params=_ID, errors=(404,))},
    "/v1/ownership/records/{id}/transfer": {"post": op(
        "owner: ask the issuer to transfer the record to `new_owner` (the new owner's pairwise DID with the "
        "issuer: the `our_did` of its relationship with the business)", "transferOwnershipRecord", 202,
        ref("OwnershipRecord"), params=_ID, body="OwnershipTransfer", errors=(404, 409))},
    "/v1/ownership/records/{id}/present": {"post": op(
        "owner: show the record, with a proof of ownership, to the peer on a relationship",
        "presentOwnershipRecord", 202, ref("OwnershipPresented"), params=_ID, body="OwnershipPresent",
        errors=(404, 409))},
    "/v1/ownership/records/{id}/revoke": {"post": op(
        "business: end a live record and tell its owner", "revokeOwnershipRecord", 200, ref("OwnershipRecord"),
        params=_ID, body="OwnershipRevoke", body_optional=True, errors=(404, 409))},
    "/v1/ownership/records/{id}/cancel-transfer": {"post": op(
        "business: cancel a pending transfer (the requester gets a transfer-cancelled problem report)",
        "cancelOwnershipTransfer", 200, ref("OwnershipRecord"), params=_ID, errors=(404, 409))},
    "/v1/ownership/updates": {"post": op(
        "business: sign a maker update once and send it to the owners of every live record it concerns",
        "sendOwnershipUpdate", 201, ref("OwnershipUpdateSent"), body="OwnershipUpdate", errors=(409,))},
}

_SERIALS = {"oneOf": [
    obj({"range": {"type": "array", "items": STR, "minItems": 2, "maxItems": 2,
                   "description": "[first, last], inclusive, shortlex order (spec/19 §19.2)"}}, ("range",), extra=False),
    obj({"list": {"type": "array", "items": STR, "minItems": 1, "maxItems": 256}}, ("list",), extra=False)],
    "description": "absent: every serial of the model"}
SCHEMAS = {
    "OwnershipRecord": obj({
        "id": STR, "side": {"enum": ["issuer", "owner"]}, "issuer": {"type": "string", "description": "agent DID"},
        "relationship": {"type": ["string", "null"], "description": "the owner's relationship with the issuer"},
        "model": STR, "serial": STR, "owner": {"type": "string", "description": "the owner's pairwise DID"},
        "purchased": STR, "warranty_end": STR, "state": {"enum": STATES}, "issued_time": INT,
        "previous": opt("string"), "pending_owner": opt("string"), "reason": opt("string"),
        "signed": {"type": "string", "description": "the record's COSE_Sign1, hex"},
        "created_time": INT, "updated_time": INT,
    }, ("id", "side", "issuer", "model", "serial", "owner", "state", "signed")),
    "OwnershipIssue": obj({"relationship": STR, "model": STR, "serial": STR,
                           "purchased": {"type": "string", "description": "YYYY-MM-DD"},
                           "warranty_end": {"type": "string", "description": "YYYY-MM-DD"}},
                          ("relationship", "model", "serial", "purchased", "warranty_end"), extra=False),
    "OwnershipUpdate": obj({"kind": {"enum": KINDS}, "model": STR, "title": STR, "text": STR,
                            "links": {"type": "array", "items": STR, "maxItems": 8}, "serials": _SERIALS},
                           ("kind", "model", "title"), extra=False),
    "OwnershipUpdateSent": obj({"id": STR, "kind": {"enum": KINDS}, "model": STR, "serials": {},
                                "recipients": INT, "relationships": {"type": "array", "items": STR},
                                "skipped": {"type": "integer", "description": "owners with no active relationship"},
                                "signed": {"type": "string", "description": "the update's COSE_Sign1, hex"}},
                               ("id", "recipients", "relationships")),
    "OwnershipTransfer": obj({"new_owner": STR}, ("new_owner",), extra=False),
    "OwnershipPresent": obj({"relationship": STR, "challenge": opt("string")}, ("relationship",), extra=False),
    "OwnershipPresented": obj({"id": STR, "record": STR, "relationship": STR, "audience": STR,
                               "challenge": opt("string")}, ("id", "record", "relationship")),
    "OwnershipRevoke": obj({"reason": opt("string")}, extra=False),
}
