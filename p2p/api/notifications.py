"""Route group: notifications/1.0 (spec/16 §16.10).

Business: the topic catalogue, single notifies, broadcasts and their progress, and the
status of every notify. Customer: its subscriptions per relationship, read receipts and
quick replies. Every handler calls `agent.service("notifications")`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._http import DEFAULT_LIMIT, MAX_LIMIT, ApiError, check_fields, int_param, query, read_json, route
from .openapi import BOOL, INT, STR, obj, op, opt, path_param, query_param, ref

if TYPE_CHECKING:
    from p2p.agent import Agent

STATUS_BY_CODE = {
    "not-subscribed": 409,  # the customer has not opted into the topic
    "rate-limit-reached": 429,  # the customer's rate limit is used up
    "unknown-notification": 404,
    "unknown-broadcast": 404,
    "wrong-role": 409,  # a business route on a customer's agent, or the reverse
}
ERROR_TEXT = {
    429: "the customer's rate limit for notifications is used up (rate-limit-reached)",
    409: "notifications: the customer has not opted into the topic (not-subscribed); a business route on a "
         "customer's agent or the reverse (wrong-role)",
}

TOPICS_FIELDS = {"topics": ("array", True)}
CONTENT_FIELDS = {"topic": ("string", True), "title": ("string", True), "body": ("string", True),
                  "urgency": ("string", False), "links": ("array", False), "actions": ("array", False),
                  "expires_in": ("integer", False)}
NOTIFY_FIELDS = {"relationship": ("string", True), **CONTENT_FIELDS}
SUBSCRIPTION_FIELDS = {"subscribe": ("array", False), "unsubscribe": ("array", False),
                       "rate_limit": ("object", False), "read_receipts": ("boolean", False),
                       "mute": ("array", False), "unmute": ("array", False), "resync": ("boolean", False)}
ACTION_FIELDS = {"action": ("string", True)}
STATUSES = ("queued", "sent", "delivered", "read", "failed", "expired", "received")


def routes(agent: Agent) -> list[Route]:
    def service():
        return agent.service("notifications")

    async def get_topics(request: Request) -> Response:
        query(request, set())
        return JSONResponse(await service().topics())

    async def put_topics(request: Request) -> Response:
        args = check_fields(await read_json(request), TOPICS_FIELDS)
        return JSONResponse(await service().set_topics(args["topics"]))

    async def notify(request: Request) -> Response:
        args = check_fields(await read_json(request), NOTIFY_FIELDS)
        return JSONResponse(await service().notify(**args), status_code=201)

    async def list_notifications(request: Request) -> Response:
        params = query(request, {"relationship", "topic", "status", "after", "limit"})
        if params.get("status") not in (None, *STATUSES):
            raise ApiError(400, "invalid-field", f"query parameter 'status' must be one of {', '.join(STATUSES)}")
        after = int_param(params, "after", low=0)
        limit = int_param(params, "limit", low=1, high=MAX_LIMIT) or DEFAULT_LIMIT
        return JSONResponse(await service().notifications(
            relationship=params.get("relationship"), topic=params.get("topic"), status=params.get("status"),
            after=after, limit=limit))

    async def get_notification(request: Request) -> Response:
        query(request, set())
        return JSONResponse(await service().notification(request.path_params["id"]))

    async def broadcast(request: Request) -> Response:
        args = check_fields(await read_json(request), CONTENT_FIELDS)
        return JSONResponse(await service().broadcast(**args), status_code=201)

    async def get_broadcast(request: Request) -> Response:
        query(request, set())
        return JSONResponse(await service().broadcast_status(request.path_params["id"]))

    async def broadcast_recipients(request: Request) -> Response:
        params = query(request, {"after", "limit"})
        limit = int_param(params, "limit", low=1, high=MAX_LIMIT) or DEFAULT_LIMIT
        return JSONResponse(await service().broadcast_recipients(request.path_params["id"],
                                                                 after=params.get("after"), limit=limit))

    async def read(request: Request) -> Response:
        check_fields(await read_json(request, empty_ok=True), {})
        return JSONResponse(await service().read(request.path_params["id"]))

    async def act(request: Request) -> Response:
        args = check_fields(await read_json(request), ACTION_FIELDS)
        return JSONResponse(await service().act(request.path_params["id"], args["action"]))

    async def get_subscriptions(request: Request) -> Response:
        query(request, set())
        return JSONResponse(await service().subscriptions(request.path_params["id"]))

    async def update_subscriptions(request: Request) -> Response:
        args = check_fields(await read_json(request), SUBSCRIPTION_FIELDS)
        return JSONResponse(await service().update_subscriptions(request.path_params["id"], **args))

    return [
        # Fixed paths before /notifications/{id}, which would catch them.
        route("/notifications/topics", get_topics, "GET"),
        route("/notifications/topics", put_topics, "PUT"),
        route("/notifications/broadcast", broadcast, "POST"),
        route("/notifications/broadcasts/{id}", get_broadcast, "GET"),
        route("/notifications/broadcasts/{id}/recipients", broadcast_recipients, "GET"),
        route("/notifications", notify, "POST"),
        route("/notifications", list_notifications, "GET"),
        route("/notifications/{id}", get_notification, "GET"),
        route("/notifications/{id}/read", read, "POST"),
        route("/notifications/{id}/action", act, "POST"),
        route("/relationships/{id}/subscriptions", get_subscriptions, "GET"),
        route("/relationships/{id}/subscriptions", update_subscriptions, "POST"),
    ]


_STATUS_ENUM = {"enum": list(STATUSES)}
_RATE = obj({"max": {"type": "integer", "minimum": 1, "maximum": 10000},
             "window": {"type": "integer", "minimum": 60, "maximum": 2592000, "description": "seconds"}},
            ("max", "window"), extra=False)
_TOPIC_IDS = {"type": "array", "items": STR}
_ID = path_param("id")

PATHS = {
    "/v1/notifications/topics": {
        "get": op("the business's topic catalogue", "getNotificationTopics", 200, ref("NotificationTopics"),
                  errors=(409,)),
        "put": op("replace the topic catalogue and offer it to every active customer (business)",
                  "putNotificationTopics", 200, ref("NotificationTopicsSet"), body="NotificationTopics",
                  errors=(409,)),
    },
    "/v1/notifications/broadcast": {
        "post": op("notify every subscriber of a topic in one transaction (business); subscribers whose rate "
                   "limit is used up are skipped", "broadcastNotification", 201, ref("BroadcastCreated"),
                   body="NotificationContent", errors=(409,)),
    },
    "/v1/notifications/broadcasts/{id}": {
        "get": op("a broadcast's progress: counts per status; done when nothing is queued or sent",
                  "getBroadcast", 200, ref("Broadcast"), errors=(404, 409), params=[_ID]),
    },
    "/v1/notifications/broadcasts/{id}/recipients": {
        "get": op("a broadcast's per-recipient outcomes (and skipped relationships), by relationship id",
                  "getBroadcastRecipients", 200, ref("BroadcastRecipients"), errors=(404, 409), params=[
                      _ID, query_param("after", STR, "the `next_after` of the previous page"),
                      query_param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "page size")]),
    },
    "/v1/notifications": {
        "post": op("notify one customer on a topic it opted into (business)", "notify", 201, ref("Notification"),
                   body="NotifyRequest", errors=(404, 409, 429)),
        "get": op("notifications sent (business, with status) or received (customer)", "listNotifications", 200,
                  ref("NotificationPage"), params=[
                      query_param("relationship", STR, "only this relationship's"),
                      query_param("topic", STR, "only this topic's"),
                      query_param("status", _STATUS_ENUM, "only those with this status"),
                      query_param("after", {"type": "integer", "minimum": 0}, "the `next_after` of the previous page"),
                      query_param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "page size")]),
    },
    "/v1/notifications/{id}": {
        "get": op("one notification and its status", "getNotification", 200, ref("Notification"), errors=(404,),
                  params=[_ID]),
    },
    "/v1/notifications/{id}/read": {
        "post": op("the customer read it: remembered, and a read receipt goes back if the customer enabled them "
                   "(customer)", "readNotification", 200, ref("Notification"), errors=(404, 409), params=[_ID],
                   body="NotificationRead", body_optional=True),
    },
    "/v1/notifications/{id}/action": {
        "post": op("answer with one of the notification's quick replies (customer)", "actOnNotification", 200,
                   ref("Notification"), body="NotificationAction", errors=(404, 409), params=[_ID]),
    },
    "/v1/relationships/{id}/subscriptions": {
        "get": op("the catalogue a business offered and the customer's choices (customer)", "getSubscriptions",
                  200, ref("Subscriptions"), errors=(404, 409), params=[_ID]),
        "post": op("subscribe, unsubscribe, set the rate limit, mute, unmute, read receipts (customer); "
                   "all or nothing", "updateSubscriptions", 200, ref("Subscriptions"),
                   body="SubscriptionsRequest", errors=(404, 409), params=[_ID]),
    },
}

_TOPIC = obj({"id": STR, "title": STR, "purpose": STR,
              "default_urgency": {"enum": ["low", "normal", "high", "critical"]}}, ("id", "title"))

SCHEMAS = {
    "NotificationTopic": _TOPIC,
    "NotificationTopics": obj({"topics": {"type": "array", "items": ref("NotificationTopic"), "maxItems": 64}},
                              ("topics",), extra=False),
    "NotificationTopicsSet": obj({"topics": {"type": "array", "items": ref("NotificationTopic")},
                                  "offered_to": {"type": "integer", "description": "active customers offered it"}},
                                 ("topics", "offered_to")),
    "NotificationContent": obj({
        "topic": STR, "title": STR, "body": STR,
        "urgency": {"enum": ["low", "normal", "high", "critical", None],
                    "description": "default: the topic's default_urgency"},
        "links": {"type": ["array", "null"], "items": obj({"title": STR, "url": STR}, ("title", "url"), extra=False)},
        "actions": {"type": ["array", "null"], "items": obj({"id": STR, "label": STR}, ("id", "label"), extra=False)},
        "expires_in": {"type": ["integer", "null"], "minimum": 1, "description": "seconds from now"},
    }, ("topic", "title", "body"), extra=False),
    "NotifyRequest": {"allOf": [ref("NotificationContent")], "type": "object",
                      "properties": {"relationship": STR}, "required": ["relationship"]},
    "Notification": obj({
        "id": STR, "relationship": STR, "topic": STR, "status": _STATUS_ENUM, "created_time": INT,
        "broadcast": opt("string"), "read_time": opt("integer"), "action": opt("string"),
        "action_time": opt("integer"),
        "refused": {"type": ["string", "null"], "description": "business: the customer agent's error code"},
        "receipt": {"type": ["string", "null"], "description": "customer read: the read receipt's message id"},
        "message": {"type": "string", "description": "customer action: the action message's id"},
        "title": STR, "body": STR, "urgency": {"enum": ["low", "normal", "high", "critical"]},
        "expires_time": opt("integer"),
        "links": {"type": "array", "items": obj({"title": STR, "url": STR}, ("title", "url"))},
        "actions": {"type": "array", "items": obj({"id": STR, "label": STR}, ("id", "label"))},
    }, ("id", "relationship", "topic", "status", "created_time")),
    "NotificationPage": obj({"notifications": {"type": "array", "items": ref("Notification")},
                             "next_after": opt("integer")}, ("notifications", "next_after")),
    "BroadcastCreated": obj({"id": STR, "topic": STR, "created_time": INT, "recipients": INT,
                             "skipped": {"type": "object", "additionalProperties": INT,
                                         "description": "reason -> relationships skipped"}},
                            ("id", "topic", "recipients", "skipped")),
    "Broadcast": obj({
        "id": STR, "topic": STR, "title": STR, "created_time": INT, "recipients": INT,
        "skipped": {"type": "object", "additionalProperties": INT},
        "counts": {"type": "object", "additionalProperties": INT,
                   "description": "queued, sent, delivered, read, failed, expired"},
        "done": {"type": "boolean", "description": "no recipient is queued or sent any more"},
    }, ("id", "topic", "recipients", "skipped", "counts", "done")),
    "BroadcastRecipients": obj({
        "recipients": {"type": "array", "items": obj({
            "relationship": STR, "notification": opt("string"),
            "status": {"enum": ["queued", "sent", "delivered", "read", "failed", "expired", "skipped"]},
            "reason": {"type": "string", "description": "why skipped (rate-limit-reached)"}},
            ("relationship", "notification", "status"))},
        "next_after": opt("string")}, ("recipients", "next_after")),
    "Subscriptions": obj({
        "relationship": STR,
        "catalogue": {"type": "array", "items": {"allOf": [ref("NotificationTopic")], "type": "object",
                                                 "properties": {"subscribed": BOOL, "muted": BOOL}}},
        "subscribed": _TOPIC_IDS, "muted": _TOPIC_IDS, "rate_limit": _RATE, "read_receipts": BOOL,
        "revision": INT, "sent": {"type": "array", "items": STR, "description": "messages this change sent"},
    }, ("relationship", "catalogue", "subscribed", "muted", "rate_limit", "read_receipts")),
    "SubscriptionsRequest": obj({
        "subscribe": _TOPIC_IDS, "unsubscribe": _TOPIC_IDS,
        "rate_limit": {"allOf": [_RATE], "description": "at most max notifications in window seconds"},
        "read_receipts": BOOL, "mute": _TOPIC_IDS, "unmute": _TOPIC_IDS,
        "resync": {"type": "boolean", "description": "send a full preferences snapshot"},
    }, extra=False),
    "NotificationAction": obj({"action": STR}, ("action",), extra=False),
    "NotificationRead": obj({}, extra=False),
}
