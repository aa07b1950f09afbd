"""Route group: terms/1.0 agreements (spec/17 §17.11, spec/14).

The customer proffers and answers counters; the business's agent answers proffers by
its configured policy, so its routes are reads (and withdraw). Handlers only call the
terms service (p2p/services/terms.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._http import check_fields, query, read_json, route
from .openapi import BOOL, INT, STR, obj, op, opt, path_param, query_param, ref

if TYPE_CHECKING:
    from p2p.agent import Agent

STATUS_BY_CODE = {"unknown-agreement": 404, "state-error": 409, "unknown-term": 400}
ERROR_TEXT = {409: "the agreement is not in a state that allows this (state-error)"}

PROFFER_FIELDS = {"terms": ("array", True)}
REASON_FIELDS = {"reason": ("string", False)}


def routes(agent: Agent) -> list[Route]:
    def terms():
        return agent.service("terms")

    def relationship(request: Request) -> str | None:
        return query(request, {"relationship"}).get("relationship")

    async def roster(request: Request) -> Response:
        query(request, set())
        return JSONResponse(await terms().roster())

    async def proffer(request: Request) -> Response:
        query(request, set())
        args = check_fields(await read_json(request), PROFFER_FIELDS)
        return JSONResponse(await terms().proffer(request.path_params["id"], args["terms"]), status_code=201)

    async def list_agreements(request: Request) -> Response:
        query(request, set())
        return JSONResponse(await terms().agreements(request.path_params["id"]))

    async def get_agreement(request: Request) -> Response:
        return JSONResponse(await terms().get(request.path_params["id"], relationship=relationship(request)))

    async def accept(request: Request) -> Response:
        rel = relationship(request)
        check_fields(await read_json(request, empty_ok=True), {})
        return JSONResponse(await terms().accept(request.path_params["id"], relationship=rel))

    async def reject(request: Request) -> Response:
        rel = relationship(request)
        args = check_fields(await read_json(request, empty_ok=True), REASON_FIELDS)
        return JSONResponse(await terms().reject(request.path_params["id"], relationship=rel, **args))

    async def withdraw(request: Request) -> Response:
        rel = relationship(request)
        args = check_fields(await read_json(request, empty_ok=True), REASON_FIELDS)
        return JSONResponse(await terms().withdraw(request.path_params["id"], relationship=rel, **args))

    return [
        route("/terms/roster", roster, "GET"),
        route("/relationships/{id}/agreements", proffer, "POST"),
        route("/relationships/{id}/agreements", list_agreements, "GET"),
        route("/agreements/{id}", get_agreement, "GET"),
        route("/agreements/{id}/accept", accept, "POST"),
        route("/agreements/{id}/reject", reject, "POST"),
        route("/agreements/{id}/withdraw", withdraw, "POST"),
    ]


_REL_Q = query_param("relationship", STR, "the relationship, when the agreement id is on several")
_AID = [path_param("id"), _REL_Q]

PATHS = {
    "/v1/terms/roster": {"get": op(
        "the roster of machine-readable terms (spec/17 §17.2) and this agent's terms settings: a business's "
        "policy, a customer's `require` default", "termsRoster", 200, ref("TermsRoster"))},
    "/v1/relationships/{id}/agreements": {
        "post": op("customer: proffer terms from the roster; the business's agent answers by its policy "
                   "(watch agreement.updated)", "proffer", 201, ref("Agreement"), params=[path_param("id")],
                   body="ProfferRequest", errors=(404, 409, 413)),
        "get": op("the relationship's agreements, oldest first, and the one in force", "listAgreements", 200,
                  ref("AgreementList"), params=[path_param("id")], errors=(404,)),
    },
    "/v1/agreements/{id}": {"get": op("one agreement", "getAgreement", 200, ref("Agreement"), params=_AID,
                                      errors=(404,))},
    "/v1/agreements/{id}/accept": {"post": op(
        "customer: accept the business's counter (countersign it)", "acceptAgreement", 200, ref("Agreement"),
        params=_AID, errors=(404, 409))},
    "/v1/agreements/{id}/reject": {"post": op(
        "customer: reject the business's counter", "rejectAgreement", 200, ref("Agreement"), params=_AID,
        body="AgreementReason", body_optional=True, errors=(404, 409, 413))},
    "/v1/agreements/{id}/withdraw": {"post": op(
        "either side: withdraw an agreement (or the proposal on the table)", "withdrawAgreement", 200,
        ref("Agreement"), params=_AID, body="AgreementReason", body_optional=True, errors=(404, 409, 413))},
}

_HEX = {"type": ["string", "null"], "description": "hex"}
SCHEMAS = {
    "Agreement": obj({
        "id": {"type": "string", "description": "the agreement thread (the proffer's message id)"},
        "relationship": STR, "role": {"enum": ["customer", "business"]},
        "state": {"enum": ["proffered", "countered", "accepted", "rejected", "withdrawn"]},
        "terms": {"type": "array", "items": STR, "description": "the terms on the table (the counter's, once countered)"},
        "hash": {**_HEX, "description": "BLAKE2b-256 of the payload on the table: x-agreement once accepted"},
        "record": {**_HEX, "description": "the COSE_Sign record with both signatures, once accepted"},
        "counter_to": {**_HEX, "description": "a counter: the hash of the proffered payload"},
        "reason": opt("string"), "in_force": BOOL, "created_time": INT, "updated_time": INT,
    }, ("id", "relationship", "role", "state", "terms", "hash", "record", "in_force", "created_time",
        "updated_time")),
    "AgreementList": obj({"agreements": {"type": "array", "items": ref("Agreement")},
                          "in_force": {"type": ["string", "null"], "description": "id of the agreement in force"},
                          "required": {"type": "boolean", "description": "we refuse the peer's messages outside "
                                                                         "an agreement (spec/17 §17.8)"}},
                         ("agreements", "in_force", "required")),
    "ProfferRequest": obj({"terms": {"type": "array", "items": STR, "minItems": 1, "maxItems": 32}}, ("terms",),
                          extra=False),
    "AgreementReason": obj({"reason": {"type": "string", "maxLength": 1024}}, (), extra=False),
    "Term": obj({"id": STR, "title": STR, "text": STR, "alternatives": {"type": "array", "items": STR}},
                ("id", "title", "text", "alternatives")),
    "TermsRoster": obj({"version": INT, "terms": {"type": "array", "items": ref("Term")},
                        "policy": obj({"accept": {"type": "array", "items": STR},
                                       "alternatives": {"type": "object", "additionalProperties": STR},
                                       "reject": {"type": "array", "items": STR}}),
                        "require": BOOL}, ("version", "terms")),
}
