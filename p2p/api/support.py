"""Route group: support tickets, /v1/tickets (spec/18 §18.7).

Thin: each handler checks the request's shape and calls the support service
(p2p/services/support.py), which holds every rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._http import DEFAULT_LIMIT, MAX_LIMIT, ApiError, check_fields, int_param, query, read_json, route
from .openapi import BOOL, INT, STR, obj, op, opt, path_param, query_param, ref

if TYPE_CHECKING:
    from p2p.agent import Agent

STATES = ["open", "waiting_on_customer", "waiting_on_business", "resolved", "closed", "reopened"]

STATUS_BY_CODE = {
    "unknown-ticket": 404,
    "ambiguous-ticket": 409,
    "state-error": 409,  # the ticket's state does not allow this action from our side now
    "attachment-too-large": 413,
}
ERROR_TEXT = {
    404: "no such ticket (unknown-ticket)",
    409: "the ticket's state does not allow that from our side (state-error), or a ticket id names "
         "tickets on several relationships (ambiguous-ticket)",
    413: "inline attachments over 65536 bytes in one message (attachment-too-large)",
}

OPEN_FIELDS = {"relationship": ("string", True), "subject": ("string", True), "text": ("string", False),
               "category": ("string", False), "priority": ("string", False), "attachments": ("array", False)}
ACTIONS: dict[str, tuple[str, dict[str, tuple[str, bool]]]] = {
    # path action -> (service method, body fields)
    "reply": ("reply", {"text": ("string", True), "attachments": ("array", False)}),
    "assign": ("assign", {"assignee": ("string", True), "notify": ("boolean", False)}),
    "status": ("set_status", {"status": ("string", True), "note": ("string", False)}),
    "resolve": ("resolve", {"text": ("string", False), "attachments": ("array", False)}),
    "close": ("close", {"reason": ("string", False)}),
    "reopen": ("reopen", {"text": ("string", False), "attachments": ("array", False)}),
    "rate": ("rate", {"score": ("integer", True), "comment": ("string", False)}),
}


def routes(agent: Agent) -> list[Route]:
    def service() -> Any:
        return agent.service("support")

    async def open_ticket(request: Request) -> Response:
        query(request, set())
        args = check_fields(await read_json(request), OPEN_FIELDS)
        return JSONResponse(await service().open(args.pop("relationship"), **args), status_code=201)

    async def list_tickets(request: Request) -> Response:
        params = query(request, {"relationship", "state", "after", "limit"})
        if params.get("state") not in (None, *STATES):
            raise ApiError(400, "invalid-field", f"query parameter 'state' must be one of {', '.join(STATES)}")
        return JSONResponse(await service().list(
            relationship=params.get("relationship"), state=params.get("state"),
            after=int_param(params, "after", low=0), limit=int_param(params, "limit", low=1, high=MAX_LIMIT)
            or DEFAULT_LIMIT))

    async def get_ticket(request: Request) -> Response:
        params = query(request, {"relationship"})
        return JSONResponse(await service().get(request.path_params["id"], relationship=params.get("relationship")))

    def action(name: str):
        method, fields = ACTIONS[name]

        async def handle(request: Request) -> Response:
            params = query(request, {"relationship"})
            args = check_fields(await read_json(request, empty_ok=True), fields)
            return JSONResponse(await getattr(service(), method)(
                request.path_params["id"], relationship=params.get("relationship"), **args))

        handle.__name__ = f"ticket_{name}"
        return handle

    return [route("/tickets", open_ticket, "POST"), route("/tickets", list_tickets, "GET"),
            route("/tickets/{id}", get_ticket, "GET"),
            *(route(f"/tickets/{{id}}/{name}", action(name), "POST") for name in ACTIONS)]


_REL = query_param("relationship", STR, "the ticket's relationship: required when the id names tickets on "
                                        "several relationships (ids are chosen by whoever opened the ticket)")
_TICKET = [path_param("id"), _REL]
_ATTACHMENTS = {"type": "array", "maxItems": 8, "items": ref("TicketAttachment"),
                "description": "inline bytes (at most 65536 bytes together) or links"}
_SUMMARIES = {
    "reply": ("reply on a working ticket (either side)", "replyTicket", "TicketReply"),
    "assign": ("the business assigns the ticket to a queue or person; `notify` (default: the config's "
               "announce_assignments) also tells the customer", "assignTicket", "TicketAssign"),
    "status": ("the business marks whose turn it is", "setTicketStatus", "TicketStatus"),
    "resolve": ("the business resolves the ticket", "resolveTicket", "TicketResolve"),
    "close": ("close: the customer at any time, the business once resolved", "closeTicket", "TicketClose"),
    "reopen": ("reopen a resolved ticket (either side)", "reopenTicket", "TicketReopen"),
    "rate": ("the customer rates a resolved or closed ticket (the latest rating counts)", "rateTicket",
             "TicketRate"),
}
_OPTIONAL_BODY = {"resolve", "close", "reopen"}

PATHS = {
    "/v1/tickets": {
        "post": op("open a ticket on a relationship (either side)", "openTicket", 201, ref("Ticket"),
                   body="TicketOpen", errors=(404, 409, 413)),
        "get": op("list tickets, oldest first, paged by cursor", "listTickets", 200, ref("TicketPage"), params=[
            query_param("relationship", STR, "relationship id"),
            query_param("state", {"enum": STATES}, "only tickets in this state"),
            query_param("after", {"type": "integer", "minimum": 0}, "only tickets with a larger cursor"),
            query_param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "page size")]),
    },
    "/v1/tickets/{id}": {"get": op("one ticket and its whole history (both sides hold the same)", "getTicket", 200,
                                   ref("TicketWithHistory"), params=_TICKET, errors=(404, 409))},
    **{f"/v1/tickets/{{id}}/{name}": {"post": op(
        summary, op_id, 200, ref("Ticket"), params=_TICKET, body=body, body_optional=name in _OPTIONAL_BODY,
        errors=(404, 409, 413))} for name, (summary, op_id, body) in _SUMMARIES.items()},
}

_TEXT = STR
SCHEMAS = {
    "Ticket": obj({
        "id": STR, "relationship": STR, "opened_by": {"enum": ["customer", "business"]}, "state": {"enum": STATES},
        "subject": STR, "category": opt("string"), "priority": opt("string"),
        "assignee": {"type": ["string", "null"], "description": "business: its own assignment; customer: the "
                                                                "latest one the business told it"},
        "rating": {"oneOf": [{"type": "null"}, obj({"score": INT, "comment": opt("string")}, ("score",))]},
        "created_time": INT, "updated_time": INT, "cursor": INT,
        "message_id": {"type": "string", "description": "the message this action sent (actions only)"},
    }, ("id", "relationship", "opened_by", "state", "subject", "created_time", "updated_time")),
    "TicketWithHistory": {"allOf": [ref("Ticket")], "type": "object", "properties": {
        "history": {"type": "array", "items": ref("Message"), "description": "the ticket's messages in order"},
        "withdrawn": {"type": "array", "items": STR, "description": "our messages the peer refused"}},
        "required": ["history", "withdrawn"]},
    "TicketPage": obj({"tickets": {"type": "array", "items": ref("Ticket")},
                       "next_after": {"type": ["integer", "null"],
                                      "description": "pass as ?after= for the next page; null: no more"}},
                      ("tickets", "next_after")),
    "TicketAttachment": {"oneOf": [
        obj({"base64": STR, "filename": STR, "media_type": STR, "description": STR, "id": STR}, ("base64",),
            extra=False),
        obj({"url": STR, "urls": {"type": "array", "items": STR, "minItems": 1, "maxItems": 4},
             "hash": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$",
                      "description": "BLAKE2b-256 of the content (spec/03 §3.3)"},
             "byte_count": {"type": "integer", "minimum": 0}, "filename": STR, "media_type": STR,
             "description": STR, "id": STR}, ("hash", "byte_count"), extra=False)]},
    "TicketOpen": obj({"relationship": STR, "subject": STR, "text": STR, "category": STR,
                       "priority": {"enum": ["low", "normal", "high", "urgent"]}, "attachments": _ATTACHMENTS},
                      ("relationship", "subject"), extra=False),
    "TicketReply": obj({"text": STR, "attachments": _ATTACHMENTS}, ("text",), extra=False),
    "TicketAssign": obj({"assignee": STR, "notify": BOOL}, ("assignee",), extra=False),
    "TicketStatus": obj({"status": {"enum": ["waiting_on_customer", "waiting_on_business"]}, "note": STR},
                        ("status",), extra=False),
    "TicketResolve": obj({"text": _TEXT, "attachments": _ATTACHMENTS}, extra=False),
    "TicketClose": obj({"reason": STR}, extra=False),
    "TicketReopen": obj({"text": _TEXT, "attachments": _ATTACHMENTS}, extra=False),
    "TicketRate": obj({"score": {"type": "integer", "minimum": 1, "maximum": 5}, "comment": STR}, ("score",),
                      extra=False),
}
