"""notifications/1.0: a business tells its customers things they asked to hear about.

    business                                              customer
    catalogue (topics on offer)  ------------------------>
                                 <------  subscribe / unsubscribe / preferences
    notify (topic, urgency, links, quick-reply actions) ->
                                 <------  action (thid = notify id)
                                 <------  read (only if the customer enables receipts)

The customer holds the controls: its `Subscriptions` is the source of truth (opt-in
per topic, mute, a rate limit, read-receipt preference), and the business keeps an
`Audience`, a mirror fed by the customer's messages. Both enforce the same rules:
the business refuses to build a notify the customer did not ask for (LocalError), and
the customer's agent drops and reports any that arrives anyway (RemoteError in a
`Decision`), so a buggy or hostile business never reaches the customer's application.

Both objects are immutable: every method that changes state returns the new state,
so the daemon can store it in the same transaction as the message. The status of a
notification on the business side is a transition table (`STATUS_TRANSITIONS`).
spec/16-notifications.md is normative.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..errors import BadArgument, InvalidField, LocalError, MessageExpired, MissingField, RemoteError, StateError
from ..message import Message
from . import P2P_DOC_URI, _body
from .errors import UnexpectedMessage

PROTOCOL = f"{P2P_DOC_URI}/notifications/1.0"
CATALOGUE_TYPE = PROTOCOL + "/catalogue"
SUBSCRIBE_TYPE = PROTOCOL + "/subscribe"
UNSUBSCRIBE_TYPE = PROTOCOL + "/unsubscribe"
PREFERENCES_TYPE = PROTOCOL + "/preferences"
NOTIFY_TYPE = PROTOCOL + "/notify"
ACTION_TYPE = PROTOCOL + "/action"
READ_TYPE = PROTOCOL + "/read"
ROLES = ("sender", "recipient")

# --- limits (spec/16 §16.2) ------------------------------------------------------------
MAX_TOPICS = 64
MAX_TOPIC_ID_CHARS = 64
MAX_TITLE_CHARS = 256
MAX_PURPOSE_CHARS = 1024
MAX_TEXT_CHARS = 4096
MAX_LINKS = 8
MAX_URL_CHARS = 2048
MAX_ACTIONS = 8
MAX_ACTION_ID_CHARS = 64
MAX_LABEL_CHARS = 64
MAX_RATE = 10_000
MIN_WINDOW = 60
MAX_WINDOW = 30 * 86_400
MAX_REVISION = 2**63 - 1
MAX_NOTIFY_AGE = 604_800  # spec/12's default expiry: older notifies are stale

URGENCIES = ("low", "normal", "high", "critical")
# A token: lowercase words joined by '.', '_' or '-'; one spelling per id, no spaces.
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
# Only https links: anything a customer's app renders or opens must not be javascript:,
# data: or file:. No whitespace or controls, so what is shown is what is opened.
_URL_RE = re.compile(r"https://[\x21-\x7e]+")


class NotSubscribed(LocalError):
    """The business asked to notify on a topic the customer has not opted into."""

    code = "not-subscribed"


class RateLimitReached(LocalError):
    """The business asked to notify above the customer's rate limit."""

    code = "rate-limit-reached"


class UnknownTopic(RemoteError):
    """A topic that is not in the (business's current) catalogue."""

    code = "unknown-topic"


class UnsolicitedNotification(RemoteError):
    """A notify on a catalogue topic the customer has not opted into."""

    code = "unsolicited-notification"


class RateLimited(RemoteError):
    """A notify above the rate limit the customer set."""

    code = "rate-limited"


class UnknownAction(RemoteError):
    """An action reply naming an action the notify did not offer."""

    code = "unknown-action"


ERRORS = (UnknownTopic, UnsolicitedNotification, RateLimited, UnknownAction)


# --- values ------------------------------------------------------------------------------


def _token(value: object, where: str, limit: int) -> str:
    if type(value) is not str or not 0 < len(value) <= limit or not _TOKEN_RE.fullmatch(value):
        raise InvalidField(f"{where}: expected a token of 1..{limit} characters ([a-z0-9] words joined by . _ -)")
    return value


def _map(value: object, where: str) -> dict:
    if type(value) is not dict:
        raise InvalidField(f"{where}: expected a map")
    return value


def _local(fn, *args):
    """Run a body check on our own caller's input: a fault is their bug (LocalError)."""
    try:
        return fn(*args)
    except RemoteError as exc:
        raise BadArgument(f"{exc.code}: {exc.detail}") from None


@dataclass(frozen=True, slots=True)
class Topic:
    id: str
    title: str
    purpose: str
    default_urgency: str = "normal"

    def to_map(self) -> dict:
        return {"id": self.id, "title": self.title, "purpose": self.purpose,
                "default_urgency": self.default_urgency}

    @classmethod
    def from_map(cls, m: object, where: str) -> Topic:
        m = _map(m, where)
        if "id" not in m:
            raise MissingField(f"{where}.id")
        tid = _token(m["id"], f"{where}.id", MAX_TOPIC_ID_CHARS)
        title = _body.text(m, "title", limit=MAX_TITLE_CHARS, required=True, allow_empty=False)
        purpose = _body.text(m, "purpose", limit=MAX_PURPOSE_CHARS, required=True)
        urgency = _body.text(m, "default_urgency", limit=16, required=True)
        if urgency not in URGENCIES:
            raise InvalidField(f"{where}.default_urgency: one of {', '.join(URGENCIES)}")
        return cls(tid, title, purpose, urgency)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `max` notifications in any `window` seconds (spec/16 §16.5)."""

    max: int
    window: int

    def __post_init__(self) -> None:
        for name, value, lo, hi in (("max", self.max, 1, MAX_RATE), ("window", self.window, MIN_WINDOW, MAX_WINDOW)):
            if type(value) is not int or not lo <= value <= hi:
                raise BadArgument(f"rate limit {name} must be an integer in {lo}..{hi}")

    def to_map(self) -> dict:
        return {"max": self.max, "window": self.window}

    @classmethod
    def from_map(cls, m: object, where: str) -> RateLimit:
        m = _map(m, where)
        values = []
        for name, lo, hi in (("max", 1, MAX_RATE), ("window", MIN_WINDOW, MAX_WINDOW)):
            if name not in m:
                raise MissingField(f"{where}.{name}")
            value = m[name]
            if type(value) is not int or not lo <= value <= hi:
                raise InvalidField(f"{where}.{name}: an integer in {lo}..{hi}")
            values.append(value)
        return cls(*values)


# Applies while the customer has sent no limit, so both sides always agree on one.
DEFAULT_RATE_LIMIT = RateLimit(24, 86_400)


@dataclass(frozen=True, slots=True)
class Link:
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class Action:
    id: str
    label: str


@dataclass(frozen=True, slots=True)
class Notification:
    """A parsed notify (business -> customer)."""

    id: str
    topic: str
    title: str
    text: str
    urgency: str
    links: tuple[Link, ...] = ()
    actions: tuple[Action, ...] = ()
    created_time: int = 0
    expires_time: int | None = None


def _links(raw: list | None) -> tuple[Link, ...]:
    out = []
    for i, item in enumerate(raw or ()):
        where = f"body.links[{i}]"
        m = _map(item, where)
        title = _body.text(m, "title", limit=MAX_TITLE_CHARS, required=True, allow_empty=False)
        url = _body.text(m, "url", limit=MAX_URL_CHARS, required=True)
        if not _URL_RE.fullmatch(url):
            raise InvalidField(f"{where}.url: an https:// URL without spaces or control characters")
        out.append(Link(title, url))
    return tuple(out)


def _actions(raw: list | None) -> tuple[Action, ...]:
    out, seen = [], set()
    for i, item in enumerate(raw or ()):
        where = f"body.actions[{i}]"
        m = _map(item, where)
        if "id" not in m:
            raise MissingField(f"{where}.id")
        aid = _token(m["id"], f"{where}.id", MAX_ACTION_ID_CHARS)
        if aid in seen:
            raise InvalidField(f"{where}.id: {aid!r} appears twice")
        seen.add(aid)
        out.append(Action(aid, _body.text(m, "label", limit=MAX_LABEL_CHARS, required=True, allow_empty=False)))
    return tuple(out)


def _topic_ids(body: dict, name: str = "topics") -> tuple[str, ...]:
    raw = _body.array(body, name, limit=MAX_TOPICS, required=True, min_items=1 if name == "topics" else 0)
    out = tuple(_token(t, f"body.{name}[{i}]", MAX_TOPIC_ID_CHARS) for i, t in enumerate(raw))
    if len(set(out)) != len(out):
        raise InvalidField(f"body.{name}: a topic appears twice")
    return out


def _revision(body: dict) -> int:
    if "revision" not in body:
        raise MissingField("body.revision")
    value = body["revision"]
    if type(value) is not int or not 1 <= value <= MAX_REVISION:
        raise InvalidField(f"body.revision: an integer in 1..{MAX_REVISION}")
    return value


def _require_type(msg: Message, expected: str) -> None:
    if msg.type != expected:
        raise UnexpectedMessage(f"expected a {expected.rsplit('/', 1)[-1]}, got {msg.type[:80]!r}")


# --- builders and parsers ---------------------------------------------------------------


def catalogue(topics: Iterable[Topic], *, id: str, frm: str, to: str, now: int) -> Message:
    topics = tuple(topics)
    body = {"topics": [t.to_map() for t in topics]}
    _local(parse_catalogue_body, body)
    return Message(id=id, type=CATALOGUE_TYPE, body=body, frm=frm, to=(to,), created_time=now)


def parse_catalogue_body(body: dict) -> tuple[Topic, ...]:
    raw = _body.array(body, "topics", limit=MAX_TOPICS, required=True)
    topics = tuple(Topic.from_map(t, f"body.topics[{i}]") for i, t in enumerate(raw))
    if len({t.id for t in topics}) != len(topics):
        raise InvalidField("body.topics: a topic id appears twice")
    return topics


def parse_catalogue(msg: Message) -> tuple[Topic, ...]:
    _require_type(msg, CATALOGUE_TYPE)
    return parse_catalogue_body(msg.body)


@dataclass(frozen=True, slots=True)
class Change:
    """A parsed subscribe, unsubscribe or preferences (customer -> business)."""

    kind: str  # "subscribe", "unsubscribe", "preferences"
    revision: int
    topics: tuple[str, ...]
    rate_limit: RateLimit | None = None


def parse_change(msg: Message) -> Change:
    kind = msg.type.rsplit("/", 1)[-1]
    if msg.type not in (SUBSCRIBE_TYPE, UNSUBSCRIBE_TYPE, PREFERENCES_TYPE):
        raise UnexpectedMessage(f"not a subscription change: {msg.type[:80]!r}")
    revision = _revision(msg.body)
    if kind == "preferences":
        topics = _topic_ids(msg.body, "subscribed")
        if "rate_limit" not in msg.body:
            raise MissingField("body.rate_limit")
    else:
        topics = _topic_ids(msg.body)
    rate = None
    if "rate_limit" in msg.body:
        if kind == "unsubscribe":
            raise InvalidField("body.rate_limit: not part of an unsubscribe")
        rate = RateLimit.from_map(msg.body["rate_limit"], "body.rate_limit")
    return Change(kind, revision, topics, rate)


def parse_notify(msg: Message) -> Notification:
    _require_type(msg, NOTIFY_TYPE)
    body = msg.body
    if "topic" not in body:
        raise MissingField("body.topic")
    topic = _token(body["topic"], "body.topic", MAX_TOPIC_ID_CHARS)
    title = _body.text(body, "title", limit=MAX_TITLE_CHARS, required=True, allow_empty=False)
    text = _body.text(body, "body", limit=MAX_TEXT_CHARS, required=True)
    urgency = _body.text(body, "urgency", limit=16, required=True)
    if urgency not in URGENCIES:
        raise InvalidField(f"body.urgency: one of {', '.join(URGENCIES)}")
    links = _links(_body.array(body, "links", limit=MAX_LINKS))
    actions = _actions(_body.array(body, "actions", limit=MAX_ACTIONS))
    if msg.created_time is None:
        raise MissingField("created_time: a notify carries it (the rate limit counts by it)")
    return Notification(msg.id, topic, title, text, urgency, links, actions, msg.created_time, msg.expires_time)


def _notify_body(topic: str, title: str, text: str, urgency: str, links, actions) -> dict:
    body: dict = {"topic": topic, "title": title, "body": text, "urgency": urgency}
    if links:
        body["links"] = [{"title": link.title, "url": link.url} for link in links]
    if actions:
        body["actions"] = [{"id": a.id, "label": a.label} for a in actions]
    return body


def action(notification: Notification, action_id: str, *, id: str, frm: str, to: str, now: int) -> Message:
    """The customer picked quick reply `action_id` of `notification`."""
    if action_id not in {a.id for a in notification.actions}:
        raise BadArgument(f"the notification offers no action {action_id!r}")
    return Message(id=id, type=ACTION_TYPE, body={"action": action_id}, frm=frm, to=(to,), thid=notification.id,
                   created_time=now)


def parse_action(msg: Message, sent: Notification) -> str:
    """The action id of a customer's reply to `sent` (the notify its thid names)."""
    _require_type(msg, ACTION_TYPE)
    if msg.thid != sent.id:
        raise UnexpectedMessage("an action's thid is the notify's id")
    if "action" not in msg.body:
        raise MissingField("body.action")
    aid = _token(msg.body["action"], "body.action", MAX_ACTION_ID_CHARS)
    if aid not in {a.id for a in sent.actions}:
        raise UnknownAction(f"the notify offered no action {aid!r}")
    return aid


def parse_read(msg: Message) -> str:
    """The notify id a read receipt is about."""
    _require_type(msg, READ_TYPE)
    if msg.thid is None:
        raise MissingField("thid: a read receipt names the notify")
    return msg.thid


# --- the customer's side -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with an incoming notify. `deliver` false means: drop it (the
    application never sees it) and report `error` to the business."""

    deliver: bool
    notification: Notification | None = None
    alert: bool = False  # false for a muted topic: store quietly, no alert
    error: RemoteError | None = None


def _window_count(times: tuple[int, ...], at: int, window: int) -> int:
    return sum(1 for t in times if t > at - window)


@dataclass(frozen=True, slots=True)
class Subscriptions:
    """The customer's notification settings for one relationship: the source of truth.

    `received` holds the effective times (spec/16 §16.5) of notifications accepted in
    the last window, so the rate check is exact without a clock inside."""

    catalogue: tuple[Topic, ...] = ()
    topics: frozenset[str] = frozenset()
    muted: frozenset[str] = frozenset()
    rate_limit: RateLimit | None = None
    read_receipts: bool = False
    revision: int = 0
    received: tuple[int, ...] = ()
    last_time: int = 0

    @property
    def limit(self) -> RateLimit:
        return self.rate_limit or DEFAULT_RATE_LIMIT

    def topic(self, topic_id: str) -> Topic | None:
        for t in self.catalogue:
            if t.id == topic_id:
                return t
        return None

    def receive_catalogue(self, msg: Message) -> Subscriptions:
        """A new catalogue replaces the old; opt-ins to topics it drops are void."""
        topics = parse_catalogue(msg)
        ids = {t.id for t in topics}
        return replace(self, catalogue=topics, topics=frozenset(self.topics & ids), muted=frozenset(self.muted & ids))

    def _change(self, type_: str, body: dict, *, id: str, frm: str, to: str, now: int) -> Message:
        return Message(id=id, type=type_, body={**body, "revision": self.revision + 1}, frm=frm, to=(to,),
                       created_time=now)

    def _known(self, topics: Iterable[str]) -> tuple[str, ...]:
        topics = tuple(topics)
        if not topics:
            raise BadArgument("name at least one topic")
        for t in topics:
            if self.topic(t) is None:
                raise BadArgument(f"{t!r} is not in the business's catalogue")
        if len(set(topics)) != len(topics):
            raise BadArgument("a topic appears twice")
        return topics

    def subscribe(self, topics: Iterable[str], *, id: str, frm: str, to: str, now: int,
                  rate_limit: RateLimit | None = None) -> tuple[Subscriptions, Message]:
        topics = self._known(topics)
        body: dict = {"topics": list(topics)}
        rate = self.rate_limit if rate_limit is None else rate_limit
        if rate is not None:
            body["rate_limit"] = rate.to_map()
        msg = self._change(SUBSCRIBE_TYPE, body, id=id, frm=frm, to=to, now=now)
        return replace(self, topics=self.topics | set(topics), rate_limit=rate, revision=self.revision + 1), msg

    def unsubscribe(self, topics: Iterable[str], *, id: str, frm: str, to: str, now: int
                    ) -> tuple[Subscriptions, Message]:
        topics = self._known(topics)
        msg = self._change(UNSUBSCRIBE_TYPE, {"topics": list(topics)}, id=id, frm=frm, to=to, now=now)
        return replace(self, topics=self.topics - set(topics), muted=self.muted - set(topics),
                       revision=self.revision + 1), msg

    def preferences(self, *, id: str, frm: str, to: str, now: int, rate_limit: RateLimit | None = None
                    ) -> tuple[Subscriptions, Message]:
        """A full snapshot (subscribed topics and rate limit): it resynchronises the
        business's mirror whatever it missed."""
        rate = rate_limit or self.limit
        body = {"subscribed": sorted(self.topics), "rate_limit": rate.to_map()}
        msg = self._change(PREFERENCES_TYPE, body, id=id, frm=frm, to=to, now=now)
        return replace(self, rate_limit=rate, revision=self.revision + 1), msg

    def mute(self, topic: str) -> Subscriptions:
        """Local only: the business is not told; muted notifications arrive without alert."""
        if topic not in self.topics:
            raise StateError(f"not subscribed to {topic!r}")
        return replace(self, muted=self.muted | {topic})

    def unmute(self, topic: str) -> Subscriptions:
        return replace(self, muted=self.muted - {topic})

    def with_read_receipts(self, enabled: bool) -> Subscriptions:
        return replace(self, read_receipts=bool(enabled))

    def receive_notify(self, msg: Message, *, now: int) -> tuple[Subscriptions, Decision]:
        """Check a notify (spec/16 §16.4). A refused one comes back as a Decision with
        `deliver=False` and the error to report; the state is then unchanged."""
        try:
            n = parse_notify(msg)
            if self.topic(n.topic) is None:
                raise UnknownTopic(f"{n.topic!r} is not in the catalogue")
            if n.topic not in self.topics:
                raise UnsolicitedNotification(f"not subscribed to {n.topic!r}")
            if n.created_time < now - MAX_NOTIFY_AGE:
                raise MessageExpired(f"created {now - n.created_time} s ago; at most {MAX_NOTIFY_AGE} s")
            limit = self.limit
            # Count by the sender's created_time, as the business does, so a late
            # delivery never turns an allowed notify into an excess one; but never
            # earlier than the last one accepted, so a backdated burst cannot reopen
            # windows it already used (spec/16 §16.5).
            at = max(n.created_time, self.last_time)
            recent = tuple(t for t in self.received if t > at - limit.window)
            if len(recent) >= limit.max:
                raise RateLimited(f"more than {limit.max} notifications in {limit.window} s")
        except RemoteError as exc:
            return self, Decision(False, error=exc)
        new = replace(self, received=recent + (at,), last_time=at)
        return new, Decision(True, n, alert=n.topic not in self.muted)

    def action(self, notification: Notification, action_id: str, *, id: str, frm: str, to: str, now: int) -> Message:
        return action(notification, action_id, id=id, frm=frm, to=to, now=now)

    def read_receipt(self, notification: Notification, *, id: str, frm: str, to: str, now: int) -> Message | None:
        """A read receipt, or None when the customer has them off (the default)."""
        if not self.read_receipts:
            return None
        return Message(id=id, type=READ_TYPE, body={}, frm=frm, to=(to,), thid=notification.id, created_time=now)


# --- the business's side --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Audience:
    """The business's mirror of one customer's settings, and its send window."""

    catalogue: tuple[Topic, ...] = ()
    topics: frozenset[str] = frozenset()
    rate_limit: RateLimit | None = None
    revision: int = 0
    sent: tuple[int, ...] = ()

    @property
    def limit(self) -> RateLimit:
        return self.rate_limit or DEFAULT_RATE_LIMIT

    def offer(self, topics: Iterable[Topic], *, id: str, frm: str, to: str, now: int) -> tuple[Audience, Message]:
        """Send a (new) catalogue; mirrored opt-ins to dropped topics are void, as on
        the customer's side."""
        msg = catalogue(topics, id=id, frm=frm, to=to, now=now)
        cat = parse_catalogue_body(msg.body)
        ids = {t.id for t in cat}
        return replace(self, catalogue=cat, topics=frozenset(self.topics & ids)), msg

    def receive(self, msg: Message) -> Audience:
        """Apply a subscribe, unsubscribe or preferences. A subscribe or unsubscribe whose
        revision is not above the mirror's is stale (a duplicate or overtaken) and
        changes nothing. A preferences snapshot always applies: it is the customer's
        whole state, and the way a customer whose counter went back (a restored backup)
        resynchronises; the mirror then counts from its revision (spec/16 §16.3)."""
        change = parse_change(msg)
        ids = {t.id for t in self.catalogue}
        for t in change.topics:
            if t not in ids and change.kind != "unsubscribe":
                raise UnknownTopic(f"{t!r} is not in the catalogue")
        if change.revision <= self.revision and change.kind != "preferences":
            return self
        if change.kind == "subscribe":
            topics = self.topics | set(change.topics)
        elif change.kind == "unsubscribe":
            topics = self.topics - set(change.topics)
        else:
            topics = frozenset(change.topics)
        rate = change.rate_limit if change.rate_limit is not None else self.rate_limit
        return replace(self, topics=frozenset(topics), rate_limit=rate, revision=change.revision)

    def notify(self, *, topic: str, title: str, text: str, urgency: str, id: str, frm: str, to: str, now: int,
               links: Iterable[Link] = (), actions: Iterable[Action] = (), expires_time: int | None = None
               ) -> tuple[Audience, Message]:
        """Build a notify, or refuse (NotSubscribed, RateLimitReached, BadArgument)."""
        if topic not in {t.id for t in self.catalogue}:
            raise BadArgument(f"{topic!r} is not in our catalogue")
        if topic not in self.topics:
            raise NotSubscribed(f"the customer has not opted into {topic!r}")
        links, actions = tuple(links), tuple(actions)
        body = _notify_body(topic, title, text, urgency, links, actions)
        msg = Message(id=id, type=NOTIFY_TYPE, body=body, frm=frm, to=(to,), created_time=now,
                      expires_time=expires_time)
        _local(parse_notify, msg)
        limit = self.limit
        recent = tuple(t for t in self.sent if t > now - limit.window)
        if len(recent) >= limit.max:
            raise RateLimitReached(f"{limit.max} notifications in {limit.window} s already sent")
        return replace(self, sent=recent + (now,)), msg


# --- outbound status (business backend) ----------------------------------------------------


class Status(enum.Enum):
    QUEUED = "queued"  # in the outbox (store)
    SENT = "sent"  # a deliver frame carried it (transport)
    DELIVERED = "delivered"  # the customer's agent receipted it (spec/12 receipt frame)
    READ = "read"  # a read message arrived (only if the customer sends them)
    FAILED = "failed"  # refused by the customer's agent (problem report), or given up locally
    EXPIRED = "expired"  # expires_time passed before a receipt (spec/12 §12.4 rule 6)


class StatusEvent(enum.Enum):
    SEND = "send"
    RECEIPT = "receipt"
    READ = "read"
    REFUSED = "refused"  # a problem report whose pthid is the notify's thread
    FAIL = "fail"  # local: relationship revoked, outbox abandoned
    EXPIRE = "expire"


STATUS_TRANSITIONS: dict[Status, dict[StatusEvent, Status]] = {
    Status.QUEUED: {StatusEvent.SEND: Status.SENT, StatusEvent.FAIL: Status.FAILED,
                    StatusEvent.EXPIRE: Status.EXPIRED},
    # A read can overtake the delivery receipt (it travels as a message, the receipt as
    # a frame); a refusal can follow the receipt (a refused message is receipted too).
    Status.SENT: {StatusEvent.SEND: Status.SENT, StatusEvent.RECEIPT: Status.DELIVERED,
                  StatusEvent.READ: Status.READ, StatusEvent.REFUSED: Status.FAILED,
                  StatusEvent.FAIL: Status.FAILED, StatusEvent.EXPIRE: Status.EXPIRED},
    Status.DELIVERED: {StatusEvent.READ: Status.READ, StatusEvent.REFUSED: Status.FAILED},
    Status.READ: {},
    Status.FAILED: {},
    Status.EXPIRED: {},
}


def next_status(status: Status, event: StatusEvent) -> Status:
    """The status after `event`; StateError if the table has no entry (the caller
    keeps the old status)."""
    nxt = STATUS_TRANSITIONS[status].get(event)
    if nxt is None:
        raise StateError(f"a {status.value} notification cannot take {event.value}")
    return nxt


__all__ = ["PROTOCOL", "CATALOGUE_TYPE", "SUBSCRIBE_TYPE", "UNSUBSCRIBE_TYPE", "PREFERENCES_TYPE", "NOTIFY_TYPE",
           "ACTION_TYPE", "READ_TYPE", "URGENCIES", "DEFAULT_RATE_LIMIT", "Topic", "RateLimit", "Link", "Action",
           "Notification", "Change", "Decision", "Subscriptions", "Audience", "Status", "StatusEvent",
           "STATUS_TRANSITIONS", "next_status", "catalogue", "parse_catalogue", "parse_change", "parse_notify",
           "action", "parse_action", "parse_read", "NotSubscribed", "RateLimitReached", "UnknownTopic",
           "UnsolicitedNotification", "RateLimited", "UnknownAction"]
