"""support/1.0: support tickets between a customer and a business (spec/18-support.md).

A ticket is a DIDComm thread: its id is the id of the `open` message, and every later
message carries it as `thid`. Either side may open one. Both sides keep the whole
history and derive the ticket's state from it, so a `Ticket` is a pure fold over its
messages and `Ticket.rebuild(history, ...)` gives back the same object.

    open --reply/status/assign--> waiting_on_customer <-> waiting_on_business
      \\--resolve (business)--> resolved --close--> closed (terminal, may be rated)
                                  |  \\--reopen--> reopened --(as open)...
                                  \\--rate (customer), stays resolved

The transition table is keyed by (state, event, side): the same message is legal from
one side and not from the other (only the business resolves, only the customer rates).
A local call out of turn raises StateError; a peer's message out of turn raises
IllegalTransition (`illegal-transition`); either leaves the ticket as it was.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .. import message
from ..errors import BadArgument, InvalidField, LocalError, MissingField, RemoteError, SenderMismatch, StateError
from ..message import Attachment, Message
from . import P2P_DOC_URI, _body
from .errors import IllegalTransition

PROTOCOL = f"{P2P_DOC_URI}/support/1.0"
ROLES = ("customer", "business")

MAX_SUBJECT_CHARS = 256
MAX_TEXT_CHARS = 16_384
MAX_CATEGORY_CHARS = 64
MAX_ASSIGNEE_CHARS = 256
MAX_NOTE_CHARS = 1024
PRIORITIES = ("low", "normal", "high", "urgent")
MIN_SCORE, MAX_SCORE = 1, 5

# Attachments. Inline content travels inside the sealed message and stays in both
# sides' history for the life of the ticket, so it is kept small; anything larger
# goes by link, bound to its content by the BLAKE2b-256 `hash` (spec/03 §3.3).
MAX_ATTACHMENTS = 8
MAX_INLINE_BYTES = 65_536  # all inline `bytes` of one message together
MAX_LINKS = 4
MAX_LINK_CHARS = 2048
MAX_LINKED_BYTES = 104_857_600  # the `byte_count` a linked attachment may announce
ATTACHMENT_MESSAGES = frozenset({"open", "reply", "resolve", "reopen"})


class AttachmentTooLarge(RemoteError):
    """Inline attachment content over MAX_INLINE_BYTES: it must travel by link."""

    code = "attachment-too-large"


class Side(enum.Enum):
    CUSTOMER = "customer"
    BUSINESS = "business"


class State(enum.Enum):
    OPEN = "open"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    WAITING_ON_BUSINESS = "waiting_on_business"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"


class Event(enum.Enum):
    OPEN = "open"
    REPLY = "reply"
    ASSIGN = "assign"
    WAIT_ON_CUSTOMER = "status:waiting_on_customer"
    WAIT_ON_BUSINESS = "status:waiting_on_business"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    RATE = "rate"


C, B = Side.CUSTOMER, Side.BUSINESS
_WORKING = (State.OPEN, State.WAITING_ON_CUSTOMER, State.WAITING_ON_BUSINESS, State.REOPENED)

# (state, event, side) -> next state. Anything absent is illegal. `open` is not here:
# it creates the ticket (in OPEN) and is legal exactly once, as the first message.
TRANSITIONS: dict[tuple[State, Event, Side], State] = {}
for _s in _WORKING:
    TRANSITIONS.update({
        (_s, Event.REPLY, C): State.WAITING_ON_BUSINESS,  # the customer spoke: the ball is with the business
        (_s, Event.REPLY, B): State.WAITING_ON_CUSTOMER,
        (_s, Event.ASSIGN, B): _s,  # a notice only; routing inside the business is its own state
        (_s, Event.WAIT_ON_CUSTOMER, B): State.WAITING_ON_CUSTOMER,
        (_s, Event.WAIT_ON_BUSINESS, B): State.WAITING_ON_BUSINESS,
        (_s, Event.RESOLVE, B): State.RESOLVED,
        # The customer may withdraw a ticket at any time; the business may close only
        # what it resolved first, so a ticket is never closed on the customer unanswered.
        (_s, Event.CLOSE, C): State.CLOSED,
    })
TRANSITIONS.update({
    (State.RESOLVED, Event.CLOSE, C): State.CLOSED,
    (State.RESOLVED, Event.CLOSE, B): State.CLOSED,
    (State.RESOLVED, Event.REOPEN, C): State.REOPENED,
    (State.RESOLVED, Event.REOPEN, B): State.REOPENED,
    (State.RESOLVED, Event.RATE, C): State.RESOLVED,
    (State.CLOSED, Event.RATE, C): State.CLOSED,  # the latest rating counts
})
del _s

_BY_NAME = {e.value: e for e in Event if not e.value.startswith("status:")}
_STATUS_EVENTS = {"waiting_on_customer": Event.WAIT_ON_CUSTOMER, "waiting_on_business": Event.WAIT_ON_BUSINESS}
MESSAGE_NAMES = ("open", "reply", "assign", "status", "resolve", "close", "reopen", "rate")
MESSAGE_TYPES = frozenset(f"{PROTOCOL}/{n}" for n in MESSAGE_NAMES)


def message_type(name: str) -> str:
    return f"{PROTOCOL}/{name}"


@dataclass(frozen=True, slots=True)
class Rating:
    score: int
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """What applying one message did."""

    message_id: str
    event: Event
    side: Side
    before: State | None  # None for the open
    after: State


@dataclass(frozen=True, slots=True)
class _Parsed:
    """The fields of one message's body that the ticket keeps (all already checked)."""

    event: Event
    fields: dict


# --- bodies -------------------------------------------------------------------


def _name(msg: Message) -> str:
    if not msg.type.startswith(PROTOCOL + "/"):
        raise InvalidField(f"type: {msg.type[:80]!r} is not a support/1.0 message")
    name = msg.type[len(PROTOCOL) + 1:]
    if name not in MESSAGE_NAMES:
        raise InvalidField(f"type: support/1.0 has no message {name[:40]!r}")
    return name


def check_attachments(msg: Message, name: str) -> None:
    """Support's rules on top of spec/03 §3.3: only open, reply, resolve and reopen
    carry attachments; at most 8; inline bytes or an https link with hash and
    byte_count; inline content at most MAX_INLINE_BYTES in total."""
    if not msg.attachments:
        return
    if name not in ATTACHMENT_MESSAGES:
        raise InvalidField(f"attachments: a {name} carries none")
    if len(msg.attachments) > MAX_ATTACHMENTS:
        raise InvalidField(f"attachments: at most {MAX_ATTACHMENTS} on a support message")
    inline = 0
    for i, a in enumerate(msg.attachments):
        data = a.data
        if "bytes" in data:
            inline += len(data["bytes"])
        elif "links" in data:
            links = data["links"]
            if len(links) > MAX_LINKS:
                raise InvalidField(f"attachments[{i}].data.links: at most {MAX_LINKS}")
            for link in links:
                if not link.startswith("https://") or len(link) > MAX_LINK_CHARS or len(link) <= 8:
                    raise InvalidField(f"attachments[{i}].data.links: https URLs of at most {MAX_LINK_CHARS} characters")
            if a.byte_count is None:
                raise MissingField(f"attachments[{i}].byte_count: required with links")
            if a.byte_count > MAX_LINKED_BYTES:
                raise InvalidField(f"attachments[{i}].byte_count: at most {MAX_LINKED_BYTES}")
        else:
            raise InvalidField(f"attachments[{i}].data: support attachments are inline bytes or links")
    if inline > MAX_INLINE_BYTES:
        raise AttachmentTooLarge(f"{inline} bytes of inline attachments; at most {MAX_INLINE_BYTES}, send the rest by link")


def parse(msg: Message) -> _Parsed:
    """Check one support message's type, thread fields, body and attachments (no state)."""
    name = _name(msg)
    body = msg.body
    fields: dict[str, Any] = {}
    if name == "open":
        if msg.thid is not None and msg.thid != msg.id:
            raise InvalidField("thid: an open starts the ticket's thread")
        fields["subject"] = _body.text(body, "subject", limit=MAX_SUBJECT_CHARS, required=True, allow_empty=False)
        fields["text"] = _body.text(body, "text", limit=MAX_TEXT_CHARS, required=True)
        fields["category"] = _body.text(body, "category", limit=MAX_CATEGORY_CHARS, allow_empty=False)
        priority = _body.text(body, "priority", limit=16)
        if priority is not None and priority not in PRIORITIES:
            raise InvalidField(f"body.priority: one of {', '.join(PRIORITIES)}")
        fields["priority"] = priority
        event = Event.OPEN
    else:
        if msg.thid is None:
            raise MissingField("thid: names the ticket (the open's id)")
        if name == "status":
            status = _body.text(body, "status", limit=32, required=True)
            event = _STATUS_EVENTS.get(status)
            if event is None:
                raise InvalidField("body.status: waiting_on_customer or waiting_on_business")
            fields["note"] = _body.text(body, "note", limit=MAX_NOTE_CHARS)
        else:
            event = _BY_NAME[name]
            if name == "reply":
                fields["text"] = _body.text(body, "text", limit=MAX_TEXT_CHARS, required=True, allow_empty=False)
            elif name == "assign":
                fields["assignee"] = _body.text(body, "assignee", limit=MAX_ASSIGNEE_CHARS, required=True,
                                                allow_empty=False)
            elif name in ("resolve", "reopen"):
                fields["text"] = _body.text(body, "text", limit=MAX_TEXT_CHARS)
            elif name == "close":
                fields["reason"] = _body.text(body, "reason", limit=MAX_NOTE_CHARS)
            elif name == "rate":
                score = body.get("score")
                if score is None:
                    raise MissingField("body.score")
                if type(score) is not int or not MIN_SCORE <= score <= MAX_SCORE:
                    raise InvalidField(f"body.score: an integer {MIN_SCORE}..{MAX_SCORE}")
                fields["rating"] = Rating(score, _body.text(body, "comment", limit=MAX_NOTE_CHARS))
    check_attachments(msg, name)
    return _Parsed(event, fields)


def ticket_id(msg: Message) -> str:
    """The ticket a support message belongs to: its own id for an open, else its thid."""
    if _name(msg) == "open":
        return msg.id
    if msg.thid is None:
        raise MissingField("thid: names the ticket (the open's id)")
    return msg.thid


# --- the ticket -------------------------------------------------------------------


class Ticket:
    """One ticket as one side sees it: the parties, the state, what the messages said
    (subject, category, priority, assignee, rating) and the full history. Mutated only
    by applying a message, and only after every check on that message passed."""

    __slots__ = ("id", "customer", "business", "ours", "opened_by", "state", "subject", "category", "priority",
                 "assignee", "rating", "_history", "_ids")

    def __init__(self, *, customer: str, business: str, ours: Side) -> None:
        if customer == business:
            raise BadArgument("customer and business DIDs must differ")
        self.customer, self.business, self.ours = customer, business, ours
        self.id: str | None = None
        self.opened_by: Side | None = None
        self.state: State | None = None  # None until the open is applied
        self.subject = ""
        self.category: str | None = None
        self.priority: str | None = None
        self.assignee: str | None = None
        self.rating: Rating | None = None
        self._history: list[Message] = []
        self._ids: set[tuple[str, str]] = set()

    def __repr__(self) -> str:
        return f"<Ticket {self.id!r} {self.state and self.state.value} ours={self.ours.value}>"

    @property
    def history(self) -> tuple[Message, ...]:
        return tuple(self._history)

    @property
    def our_did(self) -> str:
        return self.customer if self.ours is Side.CUSTOMER else self.business

    @property
    def their_did(self) -> str:
        return self.business if self.ours is Side.CUSTOMER else self.customer

    def side_of(self, did: str | None) -> Side:
        if did == self.customer:
            return Side.CUSTOMER
        if did == self.business:
            return Side.BUSINESS
        raise SenderMismatch("from is neither party of the ticket")

    @classmethod
    def rebuild(cls, history, *, customer: str, business: str, ours: Side) -> Ticket:
        """The ticket that applying `history` in order gives. Each message's side comes
        from its `from`; a stored history must be one that was accepted, so any fault
        raises as it would on receipt."""
        ticket = cls(customer=customer, business=business, ours=ours)
        for msg in history:
            ticket.apply(msg, remote=ticket.side_of(msg.frm) is not ours)
        return ticket

    # --- the table ---------------------------------------------------------------

    def next_state(self, event: Event, side: Side, *, remote: bool) -> State:
        """The state `event` by `side` leads to; raises (state unchanged) if illegal now."""
        if event is Event.OPEN:
            if self.state is None:
                return State.OPEN
            nxt = None
        elif self.state is None:
            nxt = None
        else:
            nxt = TRANSITIONS.get((self.state, event, side))
        if nxt is not None:
            return nxt
        where = "before the open" if self.state is None else f"in state {self.state.value}"
        text = f"the {side.value} cannot {event.value} {where}"
        raise IllegalTransition(text) if remote else StateError(text)

    def apply(self, msg: Message, *, remote: bool = True) -> Change | None:
        """Apply one message: a peer's (`remote`, faults are RemoteErrors) or one we
        sent (faults are LocalErrors). A message already applied (same from and id) is
        a duplicate and returns None without effect."""
        side = self.side_of(msg.frm)
        if remote and side is self.ours:
            raise SenderMismatch("a peer's message comes from the peer's DID")
        if not remote and side is not self.ours:
            raise LocalError("a message we send comes from our DID")
        if (msg.frm, msg.id) in self._ids:
            return None
        if remote:
            parsed = parse(msg)
        else:
            try:
                parsed = parse(msg)
            except RemoteError as exc:
                raise BadArgument(f"refusing to send a support message we would reject: {exc.code}: {exc.detail}") from None
        tid = ticket_id(msg)
        if self.id is not None and tid != self.id:
            # Routing by thid is the caller's job; a message of another ticket here is its bug.
            raise LocalError(f"message of ticket {tid!r} applied to ticket {self.id!r}")
        before = self.state
        after = self.next_state(parsed.event, side, remote=remote)
        # Every check passed: commit.
        f = parsed.fields
        if parsed.event is Event.OPEN:
            self.id, self.opened_by = msg.id, side
            self.subject, self.category, self.priority = f["subject"], f["category"], f["priority"]
        elif parsed.event is Event.ASSIGN:
            self.assignee = f["assignee"]
        elif parsed.event is Event.RATE:
            self.rating = f["rating"]
        self.state = after
        self._history.append(msg)
        self._ids.add((msg.frm, msg.id))
        return Change(msg.id, parsed.event, side, before, after)

    def withdraw(self, message_id: str) -> tuple[str, ...]:
        """The peer refused our message `message_id` (a problem report
        `illegal-transition` acking it): rebuild without it. Our later messages that
        the rebuilt state no longer allows are withdrawn too, since the peer refuses
        them as well; returns the ids withdrawn."""
        if not any(m.id == message_id and m.frm == self.our_did for m in self._history):
            raise LocalError(f"no message {message_id!r} of ours in this ticket")
        fresh = Ticket(customer=self.customer, business=self.business, ours=self.ours)
        dropped = [message_id]
        for msg in self._history:
            if msg.id == message_id and msg.frm == self.our_did:
                continue
            ours = msg.frm == self.our_did
            try:
                fresh.apply(msg, remote=not ours)
            except StateError:
                if not ours:
                    raise
                dropped.append(msg.id)
        if fresh.state is None:
            raise LocalError("withdrawing the open leaves no ticket")
        for name in self.__slots__:
            setattr(self, name, getattr(fresh, name))
        return tuple(dropped)

    # --- sending ----------------------------------------------------------------------

    def _send(self, name: str, body: dict, *, id: str, now: int, attachments=(), expires_time: int | None = None
              ) -> Message:
        if name != "open" and self.state is None:
            raise StateError(f"cannot {name} before the ticket is opened")
        msg = Message(id=id, type=message_type(name), body=body, frm=self.our_did, to=(self.their_did,),
                      thid=None if name == "open" else self.id, created_time=now, expires_time=expires_time,
                      attachments=tuple(attachments))
        message.encode(msg)  # a message we would refuse is our caller's bug
        self.apply(msg, remote=False)
        return msg

    def open(self, *, id: str, now: int, subject: str, text: str = "", category: str | None = None,
             priority: str | None = None, attachments=(), expires_time: int | None = None) -> Message:
        body: dict[str, Any] = {"subject": subject, "text": text}
        if category is not None:
            body["category"] = category
        if priority is not None:
            body["priority"] = priority
        return self._send("open", body, id=id, now=now, attachments=attachments, expires_time=expires_time)

    def reply(self, *, id: str, now: int, text: str, attachments=()) -> Message:
        return self._send("reply", {"text": text}, id=id, now=now, attachments=attachments)

    def assign(self, *, id: str, now: int, assignee: str) -> Message:
        """Tell the customer who handles the ticket (a display name). Queues and
        agents inside the business are not part of the protocol; sending this is a choice."""
        return self._send("assign", {"assignee": assignee}, id=id, now=now)

    def set_status(self, status: str, *, id: str, now: int, note: str | None = None) -> Message:
        body: dict[str, Any] = {"status": status}
        if note is not None:
            body["note"] = note
        return self._send("status", body, id=id, now=now)

    def resolve(self, *, id: str, now: int, text: str | None = None, attachments=()) -> Message:
        return self._send("resolve", {} if text is None else {"text": text}, id=id, now=now, attachments=attachments)

    def close(self, *, id: str, now: int, reason: str | None = None) -> Message:
        return self._send("close", {} if reason is None else {"reason": reason}, id=id, now=now)

    def reopen(self, *, id: str, now: int, text: str | None = None, attachments=()) -> Message:
        return self._send("reopen", {} if text is None else {"text": text}, id=id, now=now, attachments=attachments)

    def rate(self, score: int, *, id: str, now: int, comment: str | None = None) -> Message:
        body: dict[str, Any] = {"score": score}
        if comment is not None:
            body["comment"] = comment
        return self._send("rate", body, id=id, now=now)


def inline_attachment(id: str, content: bytes, *, media_type: str | None = None, filename: str | None = None
                      ) -> Attachment:
    return Attachment(id=id, data={"bytes": content}, media_type=media_type, filename=filename)


def linked_attachment(id: str, links, *, hash: bytes, byte_count: int, media_type: str | None = None,
                      filename: str | None = None) -> Attachment:
    """An attachment fetched from `links`; `hash` is the BLAKE2b-256 of the content,
    which the fetcher MUST check (spec/03 §3.3)."""
    return Attachment(id=id, data={"links": list(links), "hash": hash}, media_type=media_type, filename=filename,
                      byte_count=byte_count)


__all__ = ["PROTOCOL", "ROLES", "MESSAGE_TYPES", "MESSAGE_NAMES", "Side", "State", "Event", "TRANSITIONS", "Ticket",
           "Change", "Rating", "IllegalTransition", "AttachmentTooLarge", "parse", "check_attachments", "ticket_id",
           "message_type", "inline_attachment", "linked_attachment", "MAX_INLINE_BYTES", "MAX_ATTACHMENTS"]
