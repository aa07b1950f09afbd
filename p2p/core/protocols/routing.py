"""Dispatch: one opened, decoded message in; replies and events out.

The daemon opens an envelope, decodes the message, then calls `dispatch` with a
`Context` describing the relationship the message arrived on. Core protocols (trust
ping, discover features, problem reports, acks) are answered here; connect/1.0 messages
go back to the daemon as `ConnectMessage` for its `Connection` state machine;
messages of application protocols we announce become `Delivered`. A peer fault never
raises: it becomes a problem report (when replying is safe) and a `Rejected` event.
spec/11-core-protocols.md §11.6 is normative.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from .. import cbor, message
from ..errors import InvalidField, InvalidMessage, P2PError, RemoteError
from ..message import Message
from . import ack as ack_protocol
from . import connection, discover, problem_report, trust_ping
from .discover import Feature
from .errors import RelationshipRevoked, UnexpectedMessage, UnsupportedMessageType
from .invitation import GOAL_CODE, INVITATION_TYPE

# What p2p itself implements, as discover-features disclosures. Applications add
# their own protocols to `Context.features`.
CORE_FEATURES: tuple[Feature, ...] = (
    Feature("protocol", trust_ping.PROTOCOL, trust_ping.ROLES),
    Feature("protocol", discover.PROTOCOL, discover.ROLES),
    Feature("protocol", problem_report.PROTOCOL),
    Feature("protocol", ack_protocol.EMPTY_PROTOCOL),
    Feature("protocol", INVITATION_TYPE.rsplit("/", 1)[0]),
    Feature("protocol", connection.PROTOCOL, ("inviter", "invitee")),
    Feature("goal-code", GOAL_CODE),
    Feature("header", "please_ack"),
    Feature("header", "ack"),
    Feature("header", "crit"),
)

_CORE_PROTOCOLS = frozenset({trust_ping.PROTOCOL, discover.PROTOCOL, problem_report.PROTOCOL,
                             ack_protocol.EMPTY_PROTOCOL, connection.PROTOCOL})


# --- events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivered:
    """A message of an application protocol, for the application."""

    message: Message


@dataclass(frozen=True, slots=True)
class ConnectMessage:
    """A connect/1.0 message, for the relationship's Connection state machine."""

    message: Message


@dataclass(frozen=True, slots=True)
class PingResponded:
    ping_id: str


@dataclass(frozen=True, slots=True)
class Disclosed:
    thid: str
    features: tuple[Feature, ...]


@dataclass(frozen=True, slots=True)
class ProblemReceived:
    report: problem_report.ProblemReport


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """The peer acknowledged these message ids (DIDComm `ack` header)."""

    message_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A peer fault: the message had no effect. `replied` says whether a problem
    report about it is among the replies."""

    code: str
    detail: str
    message_id: str | None
    replied: bool


Event = Delivered | ConnectMessage | PingResponded | Disclosed | ProblemReceived | Acknowledged | Rejected


@dataclass(frozen=True, slots=True)
class Outcome:
    replies: tuple[Message, ...] = ()
    events: tuple[Any, ...] = ()


class Status:
    """Where the message arrived: on an active relationship, a revoked one, or on
    none yet (an agent DID's inbox, where only connect requests are taken)."""

    ACTIVE = "active"
    REVOKED = "revoked"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Context:
    """What dispatch needs to know about the relationship. `reply_id` is the id for
    the (at most one) reply dispatch makes; the caller draws it fresh for each call."""

    now: int
    reply_id: str
    our_did: str | None = None
    their_did: str | None = None
    status: str = Status.ACTIVE
    features: tuple[Feature, ...] = CORE_FEATURES
    max_skew: int = message.DEFAULT_MAX_SKEW

    def supports(self, doc: str, protocol: str, major: int) -> bool:
        """Do we announce a protocol with this doc-uri, name and major version? (DIDComm
        semver: a different minor version of a known major is still understood.)"""
        return (doc, protocol, major) in _announced(self.features)


@functools.lru_cache(maxsize=64)
def _announced(features: tuple[Feature, ...]) -> frozenset:
    # A Context is made per message; its features tuple is usually the same object.
    return frozenset(_protocol_key(f.id) for f in features if f.feature_type == "protocol")


def _protocol_key(piuri: str) -> tuple[str, str, int] | None:
    try:
        doc, protocol, major, _minor, _name = message.piuri(piuri + "/x")
    except InvalidField:
        return None
    return doc, protocol, major


_CORE_KEYS = frozenset(_protocol_key(p) for p in _CORE_PROTOCOLS)
# Parsed once: dispatch compares (doc, protocol, major) tuples per message.
_PING = _protocol_key(trust_ping.PROTOCOL)
_DISCOVER = _protocol_key(discover.PROTOCOL)
_PROBLEM = _protocol_key(problem_report.PROTOCOL)
_EMPTY = _protocol_key(ack_protocol.EMPTY_PROTOCOL)
_CONNECT = _protocol_key(connection.PROTOCOL)


# --- dispatch -------------------------------------------------------------------------


def dispatch(msg: Message, ctx: Context) -> Outcome:
    """Route one decoded message. Never raises a RemoteError: peer faults come back as
    a problem report in `replies` (if one may be sent) plus a `Rejected` event."""
    try:
        return _dispatch(msg, ctx)
    except RemoteError as exc:
        return _reject(exc, msg, ctx)


def dispatch_bytes(plaintext: bytes, ctx: Context) -> Outcome:
    """Decode (with time checks at ctx.now) and dispatch an opened plaintext."""
    try:
        msg = message.decode(plaintext, now=ctx.now, max_skew=ctx.max_skew)
    except RemoteError as exc:
        return _reject(exc, None, ctx, thread=_salvage_thread(plaintext))
    return dispatch(msg, ctx)


def _salvage_thread(plaintext: bytes) -> tuple[str, str] | None:
    """(message id, thread id) of an invalid message if it still has readable ones, so
    the problem report can name the thread (DIDComm requires pthid)."""
    try:
        m = cbor.loads(plaintext, max_size=message.MAX_MESSAGE_BYTES)
    except P2PError:
        return None
    if type(m) is not dict:
        return None
    mid, thid = m.get("id"), m.get("thid", m.get("id"))
    try:
        for value in (mid, thid):
            message.parse_map({"id": value, "type": ack_protocol.EMPTY_TYPE, "body": {}})
    except InvalidMessage:
        return None
    return mid, thid


def _reply_allowed(ctx: Context) -> bool:
    # Only on an authenticated, live relationship: never answer strangers (no amplifier),
    # and a revoked relationship's keys may be gone.
    return ctx.status == Status.ACTIVE and ctx.our_did is not None and ctx.their_did is not None


def _reject(exc: RemoteError, msg: Message | None, ctx: Context, *, thread: tuple[str, str] | None = None) -> Outcome:
    if msg is not None:
        thread = (msg.id, msg.thread_id)
    is_problem = msg is not None and msg.type.startswith(problem_report.PROTOCOL + "/")
    if thread is None or is_problem or not _reply_allowed(ctx):
        # A broken problem report is never answered with another (DIDComm: no cascades).
        return Outcome(events=(Rejected(exc.code, exc.detail, thread and thread[0], False),))
    mid, thid = thread
    reply = problem_report.report(exc, pthid=thid, id=ctx.reply_id, frm=ctx.our_did, to=ctx.their_did, now=ctx.now,
                                  offending_id=mid)
    return Outcome(replies=(reply,), events=(Rejected(exc.code, exc.detail, mid, True),))


def _dispatch(msg: Message, ctx: Context) -> Outcome:
    if ctx.status == Status.REVOKED:
        raise RelationshipRevoked("the relationship is revoked")
    doc, protocol, major, _minor, name = message.piuri(msg.type)
    key = (doc, protocol, major)
    if ctx.status == Status.NONE:
        # No relationship yet: only a connect request may start one.
        if key == _CONNECT and name == "request":
            return Outcome(events=(ConnectMessage(msg),))
        raise UnexpectedMessage("no relationship: only a connect request is accepted here")
    events: list[Any] = []
    if msg.ack:
        events.append(Acknowledged(msg.ack))
    want_ack = ack_protocol.wants_ack(msg)
    ack_ids = (msg.id,) if want_ack else None
    replies: list[Message] = []
    reply_kw = dict(id=ctx.reply_id, frm=ctx.our_did, to=ctx.their_did, now=ctx.now)

    if key == _PING and name == "ping":
        if trust_ping.response_requested(msg):
            replies.append(trust_ping.response(msg, ack=ack_ids, **reply_kw))
            want_ack = False
    elif key == _PING and name == "ping-response":
        if msg.thid is None:
            raise InvalidField("thid: a ping-response names the ping")
        events.append(PingResponded(msg.thid))
    elif key == _DISCOVER and name == "queries":
        found = discover.answer(discover.parse_queries(msg), ctx.features)
        replies.append(discover.disclose(found, thid=msg.thread_id, ack=ack_ids, **reply_kw))
        want_ack = False
    elif key == _DISCOVER and name == "disclose":
        events.append(Disclosed(msg.thread_id, discover.parse_disclose(msg)))
    elif key == _PROBLEM and name == "problem-report":
        events.append(ProblemReceived(problem_report.parse(msg)))
    elif key == _EMPTY and name == "empty":
        pass  # headers only; an `ack` on it was turned into Acknowledged above
    elif key == _CONNECT and msg.type in connection.MESSAGE_TYPES:
        events.append(ConnectMessage(msg))
        want_ack = False  # the connect protocol's own replies are its acks
    elif key not in _CORE_KEYS and ctx.supports(*key):
        events.append(Delivered(msg))
    else:
        raise UnsupportedMessageType(f"{msg.type[:120]!r} is not a message type this agent implements")

    if want_ack:
        replies.append(ack_protocol.ack((msg.id,), thid=msg.thread_id, **reply_kw))
    if replies and not _reply_allowed(ctx):
        replies = []
    return Outcome(replies=tuple(replies), events=tuple(events))
