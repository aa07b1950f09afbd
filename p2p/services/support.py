"""support/1.0 in the daemon: tickets between a customer and a business (spec/18 §18.7).

The sans-IO `Ticket` (p2p/core/protocols/support.py) decides what is legal; this
service finds the ticket a message belongs to, applies the message and keeps the
`tickets` row (p2p/store/support.py) in step, in the transaction that records the
message. The history itself is the archive's thread: a ticket is rebuilt from it
(minus our messages the peer refused) whenever the in-memory copy is missing or stale.

Cache: (relationship, ticket id) -> (row revision, Ticket). A copy is used only if its
revision is the row's, and it is taken out of the cache while it is being changed and
put back only after the row was written, so a rolled-back transaction can at worst
leave a stale revision behind, which the next use detects and rebuilds.
"""

from __future__ import annotations

import base64
import binascii
import logging
from functools import partial
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from p2p.core import message as message_codec
from p2p.core.errors import BadArgument, LocalError, P2PError, RemoteError, StateError
from p2p.core.message import Attachment, Message
from p2p.core.protocols import support as core
from p2p.core.protocols.discover import Feature
from p2p.core.protocols.errors import UnexpectedMessage
from p2p.core.protocols.problem_report import ProblemReport
from p2p.core.protocols.support import Side, Ticket
from p2p.home import ConfigError
from p2p.services import BUSINESS, CUSTOMER, Peer, Received, one_by_id
from p2p.store import support as rows
from p2p.store.support import TicketRow

if TYPE_CHECKING:
    from p2p.agent import Agent

log = logging.getLogger("p2p.support")

NAME = "support"
OPEN_TYPE = core.message_type("open")
MAX_HISTORY = 5000  # messages one ticket may hold; rebuilding stays bounded
CACHE_SIZE = 256  # tickets kept decoded in memory
PAGE = 1000  # archive rows read per query when rebuilding
MAX_LIST = 1000
CONFIG_KEYS = {"announce_assignments"}


class UnknownTicket(LocalError):
    code = "unknown-ticket"


class AmbiguousTicket(LocalError):
    """A ticket id that names tickets on several relationships: the caller names one."""

    code = "ambiguous-ticket"


class InlineTooLarge(LocalError):
    """Inline attachment bytes over core.MAX_INLINE_BYTES in one message (send a link)."""

    code = "attachment-too-large"


class TicketFull(RemoteError):
    """A ticket already holds MAX_HISTORY messages: open a new one."""

    code = "ticket-full"


def _parties(peer: Peer) -> dict[str, Any]:
    if peer.side == CUSTOMER:
        return {"customer": peer.our_did, "business": peer.their_did, "ours": Side.CUSTOMER}
    return {"customer": peer.their_did, "business": peer.our_did, "ours": Side.BUSINESS}


def _name(msg: Message) -> str:
    return msg.type.rsplit("/", 1)[-1]


def ticket_dict(row: TicketRow) -> dict:
    return {"id": row.id, "relationship": row.relationship_id, "opened_by": row.opened_by, "state": row.state,
            "subject": row.subject, "category": row.category, "priority": row.priority, "assignee": row.assignee,
            "rating": None if row.rating is None else {"score": row.rating, "comment": row.rating_comment},
            "created_time": row.created_at, "updated_time": row.updated_at, "cursor": row.cursor}


# --- attachments as the faces give them (JSON) ------------------------------------------

_INLINE_KEYS = {"id", "filename", "media_type", "description", "base64"}
_LINK_KEYS = {"id", "filename", "media_type", "description", "url", "urls", "hash", "byte_count"}


def _opt_text(item: dict, key: str, where: str) -> str | None:
    value = item.get(key)
    if value is not None and type(value) is not str:
        raise BadArgument(f"{where}.{key} is text")
    return value


def attachments_from_json(items: Any, new_id: Callable[[], str]) -> tuple[Attachment, ...]:
    """`[{"filename", "media_type", "base64"}]` (inline) or `[{"url" | "urls", "hash",
    "byte_count", "media_type", "filename"}]` (linked; `hash` is the hex BLAKE2b-256 of
    the content, spec/03 §3.3) -> Attachments. Inline content over the core's limit is
    InlineTooLarge (the API's 413); every other fault BadArgument."""
    if items is None:
        return ()
    if type(items) is not list:
        raise BadArgument("attachments is a list")
    if len(items) > core.MAX_ATTACHMENTS:
        raise BadArgument(f"attachments: at most {core.MAX_ATTACHMENTS} on a support message")
    out, inline = [], 0
    for i, item in enumerate(items):
        where = f"attachments[{i}]"
        if type(item) is not dict:
            raise BadArgument(f"{where} is an object")
        common = {k: _opt_text(item, k, where) for k in ("filename", "media_type", "description")}
        aid = _opt_text(item, "id", where) or new_id()
        if "base64" in item:
            unknown = set(item) - _INLINE_KEYS
            if unknown:
                raise BadArgument(f"{where}: unknown fields {sorted(unknown)} (inline: {sorted(_INLINE_KEYS)})")
            if type(item["base64"]) is not str:
                raise BadArgument(f"{where}.base64 is text")
            try:
                content = base64.b64decode(item["base64"], validate=True)
            except (binascii.Error, ValueError):
                raise BadArgument(f"{where}.base64 is not base64") from None
            inline += len(content)
            if inline > core.MAX_INLINE_BYTES:
                raise InlineTooLarge(f"inline attachments of one message are at most {core.MAX_INLINE_BYTES} "
                                     "bytes together; send larger content by link")
            out.append(Attachment(id=aid, data={"bytes": content}, **common))
            continue
        unknown = set(item) - _LINK_KEYS
        if unknown:
            raise BadArgument(f"{where}: unknown fields {sorted(unknown)} (linked: {sorted(_LINK_KEYS)})")
        if ("url" in item) == ("urls" in item):
            raise BadArgument(f"{where}: inline content (base64) or a link (url or urls)")
        urls = [item["url"]] if "url" in item else item["urls"]
        if type(urls) is not list or not urls or any(type(u) is not str for u in urls):
            raise BadArgument(f"{where}: url is text, urls a non-empty list of text")
        digest = item.get("hash")
        try:
            hash_ = bytes.fromhex(digest) if type(digest) is str else None
        except ValueError:
            hash_ = None
        if hash_ is None or len(hash_) != 32:
            raise BadArgument(f"{where}.hash: 64 hex digits, the BLAKE2b-256 of the content")
        size = item.get("byte_count")
        if type(size) is not int or size < 0:
            raise BadArgument(f"{where}.byte_count: the content's size in bytes, required with a link")
        out.append(core.linked_attachment(aid, urls, hash=hash_, byte_count=size, **{
            k: v for k, v in common.items() if k != "description"}))
        if common["description"] is not None:
            a = out[-1]
            out[-1] = Attachment(id=a.id, data=a.data, media_type=a.media_type, filename=a.filename,
                                 description=common["description"], byte_count=a.byte_count)
    return tuple(out)


# --- the service --------------------------------------------------------------------------


class SupportService:
    name = NAME
    protocol = core.PROTOCOL
    sole_sender = True  # a support message sent around us would be in the thread but not in the ticket

    def __init__(self, agent: Agent, *, announce_assignments: bool = True) -> None:
        self.agent = agent
        self.store = agent.store
        self.announce_assignments = announce_assignments
        self.features = (Feature("protocol", core.PROTOCOL, (agent.role,)),)
        self._cache: OrderedDict[tuple[str, str], tuple[int, Ticket]] = OrderedDict()

    # --- the cache and rebuilding ---------------------------------------------------------

    def _put(self, key: tuple[str, str], revision: int, ticket: Ticket) -> None:
        cache = self._cache
        cache[key] = (revision, ticket)
        cache.move_to_end(key)
        while len(cache) > CACHE_SIZE:
            cache.popitem(last=False)

    def _thread(self, relationship_id: str, ticket_id: str) -> Iterator[Any]:
        """The archive rows of the ticket's thread that are support messages, in order."""
        after = None
        while True:
            page = self.store.archived(relationship_id=relationship_id, thid=ticket_id, after=after, limit=PAGE)
            for a in page:
                if a.type in core.MESSAGE_TYPES:
                    yield a
            if len(page) < PAGE:
                return
            after = page[-1].cursor

    def _history(self, row: TicketRow) -> Iterator[Any]:
        withdrawn = set(row.withdrawn)
        for a in self._thread(row.relationship_id, row.id):
            if not (a.direction == "out" and a.message_id in withdrawn):
                yield a

    def _ticket(self, peer: Peer, row: TicketRow) -> Ticket:
        """The ticket as of `row`, taken OUT of the cache: the caller puts it back (with
        the new revision) once the change is written, or unchanged after a refusal."""
        hit = self._cache.pop((row.relationship_id, row.id), None)
        if hit is not None and hit[0] == row.revision:
            return hit[1]
        from p2p.agent import UNDERSTOOD  # the agent module imports the services package

        ticket = Ticket(**_parties(peer))
        for a in self._history(row):
            msg = message_codec.decode(a.plaintext, understood=UNDERSTOOD)
            try:
                ticket.apply(msg, remote=a.direction == "in")
            except P2PError as exc:
                # Only a message that never was part of the ticket fails here: one of ours the
                # peer refused before we could record that (the row's `withdrawn` covers the
                # rest); every other one was applied once and applies again.
                log.warning("ticket.rebuild_skipped", extra={"fields": {
                    "relationship": row.relationship_id, "ticket": row.id, "message": a.message_id,
                    "code": exc.code}})
        return ticket

    def _save(self, peer: Peer, ticket: Ticket, row: TicketRow | None, now: int, *,
              assignee: Any = None, withdrawn: tuple[str, ...] = ()) -> int:
        if peer.side == BUSINESS:
            # The business's assignment is its own (it may keep it to itself, spec/18 §18.1):
            # what it last set here, not what it last told the customer.
            assignee = assignee if assignee is not None else row.assignee if row is not None else None
        else:
            assignee = ticket.assignee
        rating = ticket.rating
        first = ticket.history[0]
        return rows.save(self.store, relationship_id=peer.id, id=ticket.id, opened_by=ticket.opened_by.value,
                         state=ticket.state.value, subject=ticket.subject, category=ticket.category,
                         priority=ticket.priority, assignee=assignee,
                         rating=rating.score if rating else None, rating_comment=rating.comment if rating else None,
                         created_at=first.created_time or now, updated_at=now,
                         withdrawn=(row.withdrawn if row is not None else ()) + withdrawn)

    # --- receiving --------------------------------------------------------------------------

    def receive(self, peer: Peer, msg: Message, tx: Received) -> None:
        tid = core.ticket_id(msg)
        row = rows.get(self.store, peer.id, tid)
        if row is None:
            if msg.type != OPEN_TYPE:
                raise UnexpectedMessage(f"no ticket {tid[:64]!r} on this relationship")
            ticket = Ticket(**_parties(peer))
        else:
            ticket = self._ticket(peer, row)
        key = (peer.id, tid)
        try:
            if len(ticket.history) >= MAX_HISTORY:
                raise TicketFull(f"the ticket holds {MAX_HISTORY} messages; open a new one")
            change = ticket.apply(msg, remote=True)
        except BaseException:
            if row is not None:  # a refused message leaves the ticket as it was
                self._put(key, row.revision, ticket)
            raise
        if change is None:  # a duplicate: the inbox filter normally sees to it
            self._put(key, row.revision, ticket)
            return
        revision = self._save(peer, ticket, row, tx.now)
        self._put(key, revision, ticket)
        if self.agent.hub.active:  # the row as written, for subscribers only: one read fewer otherwise
            tx.publish("ticket.updated", ticket=ticket_dict(rows.get(self.store, peer.id, tid)), message=msg.id,
                       action=_name(msg), by=change.side.value)

    def problem(self, peer: Peer, report: ProblemReport) -> None:
        """The peer refused a message of ours (its report's `ack` names it, its `pthid`
        the ticket): withdraw it and those of ours that no longer fit (spec/18 §18.2)."""
        if not report.ack:
            return
        row = rows.get(self.store, peer.id, report.pthid)
        if row is None:
            return
        offending = report.ack[0]
        key = (peer.id, row.id)
        ticket = self._ticket(peer, row)
        if not any(m.id == offending and m.frm == peer.our_did for m in ticket.history):
            self._put(key, row.revision, ticket)
            # A support message of ours in this thread that the ticket never took (one
            # refused while being rebuilt): out of the history shown, too.
            a = self.store.get_archived(offending, relationship_id=peer.id, direction="out")
            if (a is not None and a.thid == row.id and a.type in core.MESSAGE_TYPES
                    and offending not in row.withdrawn):
                revision = self._save(peer, ticket, row, self.agent.now(), withdrawn=(offending,))
                self._put(key, revision, ticket)
            return
        if offending == row.id:  # the open itself was refused: there is no ticket
            rows.delete(self.store, peer.id, row.id)
            log.info("ticket.withdrawn", extra={"fields": {"relationship": peer.id, "ticket": row.id,
                                                           "code": report.error_code}})
            self.agent.hub.publish("ticket.withdrawn", relationship=peer.id, id=row.id, code=report.error_code)
            return
        now = self.agent.now()
        try:
            dropped = ticket.withdraw(offending)
        except P2PError as exc:  # a later message of theirs needs ours: keep the ticket as it is
            self._put(key, row.revision, ticket)
            log.warning("ticket.withdraw_failed", extra={"fields": {"relationship": peer.id, "ticket": row.id,
                                                                    "code": exc.code}})
            return
        revision = self._save(peer, ticket, row, now, withdrawn=dropped)
        self._put(key, revision, ticket)
        log.info("ticket.message_withdrawn", extra={"fields": {"relationship": peer.id, "ticket": row.id,
                                                               "count": len(dropped), "code": report.error_code}})
        self.agent.hub.publish("ticket.updated", ticket=ticket_dict(rows.get(self.store, peer.id, row.id)),
                               withdrawn=list(dropped), code=report.error_code)

    def export(self, relationship_id: str) -> dict:
        out = []
        for row in self._all(relationship_id):
            d = ticket_dict(row)
            d["history"] = [a.message_id for a in self._history(row)]
            d["withdrawn"] = list(row.withdrawn)
            out.append(d)
        return {"tickets": out}

    def _all(self, relationship_id: str) -> Iterator[TicketRow]:
        after = None
        while True:
            page = rows.listing(self.store, relationship_id=relationship_id, after=after, limit=PAGE)
            yield from page
            if len(page) < PAGE:
                return
            after = page[-1].cursor

    # --- what the faces call -------------------------------------------------------------------

    def _find(self, ticket_id: str, relationship: str | None) -> TicketRow:
        if type(ticket_id) is not str or not ticket_id:
            raise BadArgument("a ticket id is text")
        return one_by_id(ticket_id, relationship, get=partial(rows.get, self.store),
                         find=partial(rows.find, self.store), unknown=UnknownTicket, ambiguous=AmbiguousTicket,
                         what="ticket")

    def _commit(self, peer: Peer, ticket: Ticket, row: TicketRow | None, msgs: list[Message], **save: Any) -> dict:
        """Write the row and queue `msgs` in one transaction, then tell subscribers."""
        agent = self.agent
        with self.store.atomic():
            revision = self._save(peer, ticket, row, agent.now(), **save)
            if msgs:
                agent.queue(peer.id, msgs)
        self._put((peer.id, ticket.id), revision, ticket)
        d = ticket_dict(rows.get(self.store, peer.id, ticket.id))
        if msgs:
            d["message_id"] = msgs[-1].id
        agent.hub.publish("ticket.updated", ticket={k: v for k, v in d.items() if k != "message_id"},
                          message=msgs[-1].id if msgs else None, action=_name(msgs[-1]) if msgs else "assign",
                          by=peer.side)
        return d

    async def _act(self, ticket_id: str, relationship: str | None, build: Callable[[Ticket, str, int], Message],
                   **save: Any) -> dict:
        row = self._find(ticket_id, relationship)
        peer = self.agent.peer(row.relationship_id)
        ticket = self._ticket(peer, row)
        try:
            if len(ticket.history) >= MAX_HISTORY:  # the peer would refuse it (ticket-full)
                raise StateError(f"the ticket holds {MAX_HISTORY} messages; open a new one")
            # The core checks the state (StateError) and the message before changing anything.
            msg = build(ticket, self.agent.new_id(), self.agent.now())
        except BaseException:
            self._put((peer.id, row.id), row.revision, ticket)
            raise
        return self._commit(peer, ticket, row, [msg], **save)

    def _attachments(self, attachments: Any) -> tuple[Attachment, ...]:
        return attachments_from_json(attachments, self.agent.new_id)

    async def open(self, relationship: str, *, subject: str, text: str = "", category: str | None = None,
                   priority: str | None = None, attachments: Any = None) -> dict:
        peer = self.agent.peer(relationship)
        ticket = Ticket(**_parties(peer))
        msg = ticket.open(id=self.agent.new_id(), now=self.agent.now(), subject=subject, text=text,
                          category=category, priority=priority, attachments=self._attachments(attachments))
        return self._commit(peer, ticket, None, [msg])

    async def reply(self, ticket_id: str, *, text: str, attachments: Any = None,
                    relationship: str | None = None) -> dict:
        atts = self._attachments(attachments)
        return await self._act(ticket_id, relationship,
                               lambda t, mid, now: t.reply(id=mid, now=now, text=text, attachments=atts))

    async def assign(self, ticket_id: str, *, assignee: str, notify: bool | None = None,
                     relationship: str | None = None) -> dict:
        """The business hands the ticket to a queue or person. `notify` (default: the
        config's announce_assignments) also tells the customer with an `assign` message;
        otherwise the assignment stays in this agent."""
        if self.agent.role != BUSINESS:
            raise StateError("only the business assigns tickets")
        if type(assignee) is not str or not assignee or len(assignee.encode()) > core.MAX_ASSIGNEE_CHARS:
            raise BadArgument(f"assignee is text of 1..{core.MAX_ASSIGNEE_CHARS} bytes")
        if notify is None:
            notify = self.announce_assignments
        if notify:
            return await self._act(ticket_id, relationship,
                                   lambda t, mid, now: t.assign(id=mid, now=now, assignee=assignee),
                                   assignee=assignee)
        row = self._find(ticket_id, relationship)
        peer = self.agent.peer(row.relationship_id)
        return self._commit(peer, self._ticket(peer, row), row, [], assignee=assignee)

    async def set_status(self, ticket_id: str, *, status: str, note: str | None = None,
                         relationship: str | None = None) -> dict:
        if status not in ("waiting_on_customer", "waiting_on_business"):
            raise BadArgument("status is waiting_on_customer or waiting_on_business")
        return await self._act(ticket_id, relationship,
                               lambda t, mid, now: t.set_status(status, id=mid, now=now, note=note))

    async def resolve(self, ticket_id: str, *, text: str | None = None, attachments: Any = None,
                      relationship: str | None = None) -> dict:
        atts = self._attachments(attachments)
        return await self._act(ticket_id, relationship,
                               lambda t, mid, now: t.resolve(id=mid, now=now, text=text, attachments=atts))

    async def close(self, ticket_id: str, *, reason: str | None = None, relationship: str | None = None) -> dict:
        return await self._act(ticket_id, relationship, lambda t, mid, now: t.close(id=mid, now=now, reason=reason))

    async def reopen(self, ticket_id: str, *, text: str | None = None, attachments: Any = None,
                     relationship: str | None = None) -> dict:
        atts = self._attachments(attachments)
        return await self._act(ticket_id, relationship,
                               lambda t, mid, now: t.reopen(id=mid, now=now, text=text, attachments=atts))

    async def rate(self, ticket_id: str, *, score: int, comment: str | None = None,
                   relationship: str | None = None) -> dict:
        if type(score) is not int or not core.MIN_SCORE <= score <= core.MAX_SCORE:
            raise BadArgument(f"score is an integer {core.MIN_SCORE}..{core.MAX_SCORE}")
        return await self._act(ticket_id, relationship,
                               lambda t, mid, now: t.rate(score, id=mid, now=now, comment=comment))

    async def list(self, *, relationship: str | None = None, state: str | None = None, after: int | None = None,
                   limit: int = 100) -> dict:
        if state is not None and state not in {s.value for s in core.State}:
            raise BadArgument(f"state is one of {', '.join(s.value for s in core.State)}")
        if type(limit) is not int or not 0 < limit <= MAX_LIST:
            raise BadArgument(f"limit is 1..{MAX_LIST}")
        found = rows.listing(self.store, relationship_id=relationship, state=state, after=after, limit=limit + 1)
        page = found[:limit]
        return {"tickets": [ticket_dict(r) for r in page],
                "next_after": page[-1].cursor if len(found) > limit else None}

    async def get(self, ticket_id: str, *, relationship: str | None = None) -> dict:
        """The ticket and its whole history (message dicts as GET /v1/messages gives)."""
        row = self._find(ticket_id, relationship)
        withdrawn = set(row.withdrawn)
        history, after = [], None
        while True:
            page = await self.agent.messages(relationship=row.relationship_id, thid=row.id, after=after, limit=PAGE)
            history.extend(m for m in page if m["type"] in core.MESSAGE_TYPES
                           and not (m["direction"] == "out" and m["id"] in withdrawn))
            if len(page) < PAGE:
                break
            after = page[-1]["cursor"]
        return {**ticket_dict(row), "history": history, "withdrawn": list(row.withdrawn)}


def create(agent: Agent) -> SupportService:
    raw = agent.config.services.get(NAME, {})
    unknown = set(raw) - CONFIG_KEYS
    if unknown:
        raise ConfigError(f"unknown [support] keys {sorted(unknown)}; known: {sorted(CONFIG_KEYS)}")
    announce = raw.get("announce_assignments", True)
    if type(announce) is not bool:
        raise ConfigError("[support] announce_assignments is true or false")
    return SupportService(agent, announce_assignments=announce)


__all__ = ["SupportService", "create", "ticket_dict", "attachments_from_json", "UnknownTicket", "AmbiguousTicket",
           "InlineTooLarge", "TicketFull", "MAX_HISTORY"]
