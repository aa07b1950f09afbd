"""ownership/1.0 in the daemon (spec/19 §19.10 "Daemon and admin API").

A business agent (role "business") is the **issuer**: it keeps a core `Registry` of
every record it signed (rebuilt from `ownership_records` at start), signs records and
maker updates with its agent DID's #key-1, routes each update to the owners of the
live records it concerns, and carries out transfers. A customer agent is an **owner**:
it verifies and keeps the records its businesses send, shows their updates, presents
records and asks for transfers.

The Registry is an in-memory mirror of the issuer rows. Every change is written to the
database first and applied to the Registry last, in the same synchronous step (no
await in between); if anything raises after the Registry changed, the mirror is
dropped and rebuilt from the database on next use, so the two cannot diverge.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from p2p.core.errors import BadArgument, LocalError, P2PError
from p2p.core.message import Message
from p2p.core.protocols import invitation as inv
from p2p.core.protocols import ownership as own
from p2p.core.protocols import problem_report
from p2p.core.protocols.discover import Feature
from p2p.core.protocols.errors import IllegalTransition, UnexpectedMessage
from p2p.core.protocols.ownership import Holding, Record, Registry, SerialRange, State, Update
from p2p.home import ConfigError
from p2p.services import BUSINESS, CUSTOMER, Peer, Received
from p2p.store import OutboxState
from p2p.store import ownership as rows

if TYPE_CHECKING:
    from p2p.agent import Agent

log = logging.getLogger("p2p.services.ownership")

LIVE_STATES = frozenset(s.value for s in own.LIVE)
MAX_CHALLENGE_CHARS = 1024
DEFAULT_PRESENT_MAX_AGE = 3600
TRANSFER_CANCELLED = "transfer-cancelled"  # the problem-report code of a cancelled transfer (spec/19 §19.6 step 5)


class RecordNotFound(LocalError):
    """An API call naming a record this agent neither issued nor holds."""

    code = "record-not-found"


class NotIssuer(LocalError):
    """An issuer's action (issue, update, revoke, cancel) on an agent whose role is not business."""

    code = "not-issuer"


class RecordState(LocalError):
    """The record's state does not allow the action (e.g. transferring a superseded record)."""

    code = "record-state"


def _hex(b: bytes | None) -> str | None:
    return None if b is None else bytes(b).hex()


def record_dict(row: rows.OwnershipRow) -> dict:
    return {"id": row.id, "side": row.side, "issuer": row.issuer, "relationship": row.relationship_id,
            "model": row.model, "serial": row.serial, "owner": row.owner, "purchased": row.purchased,
            "warranty_end": row.warranty_end, "state": row.state, "issued_time": row.issued_time,
            "previous": row.previous, "pending_owner": row.pending_owner, "reason": row.reason,
            "signed": _hex(row.signed), "created_time": row.created_at, "updated_time": row.updated_at}


def _record_of(row: rows.OwnershipRow) -> Record:
    return Record(id=row.id, issuer=row.issuer, owner=row.owner, model=row.model, serial=row.serial,
                  purchased=row.purchased, warranty_end=row.warranty_end, issued_time=row.issued_time,
                  previous=row.previous)


def update_dict(update: Update) -> dict:
    serials: Any = None
    if isinstance(update.serials, SerialRange):
        serials = {"range": [update.serials.first, update.serials.last]}
    elif update.serials is not None:
        serials = {"list": sorted(update.serials, key=own.serial_key)}
    return {"id": update.id, "issuer": update.issuer, "kind": update.kind, "model": update.model,
            "serials": serials, "title": update.title, "text": update.text, "links": list(update.links),
            "issued_time": update.issued_time}


def parse_serials(value: Any) -> SerialRange | frozenset[str] | None:
    """The API's `serials`: absent (every serial), {"range": [first, last]} or {"list": [...]}."""
    if value is None:
        return None
    if type(value) is dict and set(value) == {"range"}:
        rng = value["range"]
        if type(rng) is list and len(rng) == 2 and all(type(s) is str for s in rng):
            return SerialRange(rng[0], rng[1])
    if type(value) is dict and set(value) == {"list"}:
        lst = value["list"]
        if type(lst) is list and all(type(s) is str for s in lst):
            if len(set(lst)) != len(lst):
                raise BadArgument("serials.list repeats a serial")
            return frozenset(lst)
    raise BadArgument('serials is {"range": [first, last]} or {"list": [serial, ...]}')


class OwnershipService:
    name = "ownership"
    protocol = own.PROTOCOL

    def __init__(self, agent: Agent, *, present_max_age: int = DEFAULT_PRESENT_MAX_AGE) -> None:
        self.agent = agent
        self.store = agent.store
        self.business = agent.role == BUSINESS
        self.present_max_age = present_max_age
        self.features = (Feature("protocol", own.PROTOCOL, ("issuer",) if self.business else ("owner",)),)
        self._registry: Registry | None = None
        # issuer: record message id -> record id, until the message is receipted (then `active`)
        self._awaiting: dict[str, str] = {}
        # issuer: new owner DID -> ids of records whose transfer waits for it to connect
        self._waiting: dict[str, set[str]] = {}
        self._expected_issuer: dict[str, str | None] = {}  # relationship id -> the agent DID its invitation named
        if self.business:
            self._load()  # the awaited receipts and waiting transfers are needed from the start

    # --- the issuer's registry -----------------------------------------------------------

    def _reg(self) -> Registry:
        """The Registry for the agent's current DID. The DID encodes the endpoint, so it
        changes only if the advertised endpoint does (then the registry is rebuilt)."""
        reg = self._registry
        if reg is None or reg.issuer != self.agent.did:
            reg = self._load()
        return reg

    def _load(self) -> Registry:
        did = self.agent.did
        reg = Registry(did)
        awaiting: dict[str, str] = {}
        waiting: dict[str, set[str]] = {}
        delivered = []
        for row in rows.issued(self.store, did):
            try:
                if row.previous is None:
                    holding = reg.issue(row.signed)
                else:  # replay the transfer that made it
                    old = reg.get(row.previous)
                    if old is None:
                        raise BadArgument(f"its previous record {row.previous!r} is missing")
                    old.state, old.pending_owner = State.TRANSFER_PENDING, row.owner
                    holding = reg.complete_transfer(row.previous, row.signed)
                state = State(row.state)
                if state is State.REVOKED:
                    reg.revoke(row.id)
                elif state is not State.SUPERSEDED:  # superseded: its successor (later) did it
                    holding.state, holding.pending_owner = state, row.pending_owner
            except (P2PError, ValueError) as exc:
                log.error("ownership.record_unloadable", extra={"fields": {"record": row.id, "error": str(exc)}})
                continue
            if state is State.ISSUED and row.message_id:
                entry = self.store.get_outbox(row.message_id)
                if entry is not None and entry.state == OutboxState.ACKED:
                    delivered.append(row.id)  # receipted just before a stop: activate now
                else:
                    awaiting[row.message_id] = row.id
            elif state is State.TRANSFER_PENDING and row.pending_owner:
                waiting.setdefault(row.pending_owner, set()).add(row.id)
        others = rows.issued_elsewhere(self.store, did)
        if others:
            log.warning("ownership.issuer_changed", extra={"fields": {
                "records": others, "detail": "records issued under an earlier agent DID (the advertised endpoint "
                                             "changed) get no updates or transfers"}})
        self._registry, self._awaiting, self._waiting = reg, awaiting, waiting
        now = self.agent.now()
        for rid in delivered:
            with self.store.atomic():
                rows.update(self.store, rows.ISSUER, did, rid, now=now, state=State.ACTIVE.value)
            reg.activate(rid)
        return reg

    @contextlib.contextmanager
    def _mirror(self) -> Iterator[None]:
        """Around code that changes the database and then the Registry: if anything
        raises, the database rolls back, so the mirror is dropped and rebuilt."""
        try:
            yield
        except BaseException:
            self._registry = None
            raise

    def _need_issuer(self) -> Registry:
        if not self.business:
            raise NotIssuer('only an agent with role = "business" issues records and updates')
        return self._reg()

    def _issuer_for(self, peer: Peer) -> None:
        """A customer verifies records against the agent DID its invitation named: if
        ours changed since (a new endpoint), what we sign would be refused."""
        if peer.id not in self._expected_issuer:
            expected = None
            rel = self.store.get_relationship(peer.id)
            if rel is not None and rel.invitation_id:
                invitation = self.store.get_invitation(rel.invitation_id)
                if invitation is not None:
                    expected = inv.from_signed(invitation.blob).inviter_did
            self._expected_issuer[peer.id] = expected
        expected = self._expected_issuer[peer.id]
        if expected is not None and expected != self.agent.did:
            raise BadArgument(f"relationship {peer.id!r} was made with this agent's earlier DID (another endpoint): "
                              "its agent would refuse records signed under the current one")

    def _peer_by_did(self, their_did: str) -> Peer | None:
        for p in self.agent.peers():
            if p.their_did == their_did:
                return p
        return None

    def _holding_row(self, record_id: str, side: str) -> rows.OwnershipRow:
        for row in rows.find(self.store, record_id):
            if row.side == side and (side == rows.OWNER or row.issuer == self.agent.did):
                return row
        raise RecordNotFound(f"no record {record_id!r} {'issued' if side == rows.ISSUER else 'held'} here")

    # --- issuer: faces --------------------------------------------------------------------

    async def issue(self, relationship: str, model: str, serial: str, purchased: str, warranty_end: str) -> dict:
        """Sign a record for the customer on `relationship` and send it (spec/19 §19.3)."""
        reg = self._need_issuer()
        peer = self.agent.peer(relationship)
        self._issuer_for(peer)
        if reg.current(model, serial) is not None:
            raise RecordState(f"{model} {serial} already has a live record: transfer or revoke it first")
        now = self.agent.now()
        record = Record(id=self.agent.new_id(), issuer=reg.issuer, owner=peer.their_did, model=model,
                        serial=serial, purchased=purchased, warranty_end=warranty_end, issued_time=now)
        signed = own.sign_record(record, self.agent.agent_signer())  # BadArgument on a bad field
        msg = own.record_message(signed, id=self.agent.new_id(), frm=peer.our_did, to=peer.their_did, now=now)
        with self._mirror(), self.store.atomic():
            rows.add(self.store, side=rows.ISSUER, record=record, signed=signed, relationship_id=peer.id,
                     state=State.ISSUED.value, now=now, message_id=msg.id)
            self.agent.queue(peer.id, [msg])
            reg.issue(signed)
        self._awaiting[msg.id] = record.id
        out = record_dict(rows.get(self.store, rows.ISSUER, reg.issuer, record.id))
        self.agent.hub.publish("ownership.record", record=out, change="issued")
        log.info("ownership.issued", extra={"fields": {"record": record.id, "relationship": peer.id}})
        return out

    async def update(self, kind: str, model: str, title: str, text: str = "", links: list[str] | None = None,
                     serials: Any = None) -> dict:
        """Sign one maker update and send it to the owner of every live record it
        concerns (spec/19 §19.5), each owner once."""
        reg = self._need_issuer()
        now = self.agent.now()
        upd = Update(id=self.agent.new_id(), issuer=reg.issuer, kind=kind, model=model, serials=parse_serials(serials),
                     title=title, text=text, links=tuple(links or ()), issued_time=now)
        signed = own.sign_update(upd, self.agent.agent_signer())  # BadArgument on a bad field
        owners = reg.owners_of(upd)
        by_did = {p.their_did: p for p in self.agent.peers()} if owners else {}
        sent, skipped = [], []
        with self.store.atomic():
            for owner in owners:
                peer = by_did.get(owner)
                if peer is None:  # its relationship was revoked: nobody to tell
                    skipped.append(owner)
                    continue
                self.agent.queue(peer.id, [own.update_message(signed, id=self.agent.new_id(), frm=peer.our_did,
                                                              to=owner, now=now)])
                sent.append(peer.id)
        log.info("ownership.update_sent", extra={"fields": {"update": upd.id, "kind": kind, "recipients": len(sent),
                                                             "skipped": len(skipped)}})
        return {"id": upd.id, "kind": kind, "model": model, "serials": update_dict(upd)["serials"],
                "recipients": len(sent), "relationships": sent, "skipped": len(skipped), "signed": signed.hex()}

    async def revoke(self, record_id: str, reason: str | None = None) -> dict:
        """End a live record (e.g. the product was returned) and tell its owner."""
        reg = self._need_issuer()
        row = self._holding_row(record_id, rows.ISSUER)
        holding = reg.get(record_id)
        if holding is None or holding.state not in own.LIVE:
            raise RecordState(f"record {record_id!r} is {row.state}: only a live record is revoked")
        if reason is not None and len(reason) > own.MAX_REASON_CHARS:
            raise BadArgument(f"reason is at most {own.MAX_REASON_CHARS} characters")
        now = self.agent.now()
        peer = self._live_peer(row.relationship_id)
        with self._mirror(), self.store.atomic():
            rows.update(self.store, rows.ISSUER, reg.issuer, record_id, now=now, state=State.REVOKED.value,
                        pending_owner=None, reason=reason)
            if peer is not None:
                self.agent.queue(peer.id, [own.revoke_message(holding.record, id=self.agent.new_id(),
                                                              frm=peer.our_did, now=now, reason=reason)])
            if holding.state is State.TRANSFER_PENDING:
                self._answer_transfer(row, TRANSFER_CANCELLED, "the record was revoked", now)
            reg.revoke(record_id)
        self._forget_waiting(holding)
        out = record_dict(rows.get(self.store, rows.ISSUER, reg.issuer, record_id))
        self.agent.hub.publish("ownership.record", record=out, change="revoked")
        return out

    async def cancel_transfer(self, record_id: str) -> dict:
        """Give up a pending transfer (e.g. the new owner never connected): the record
        is active again and the requester gets a problem report (spec/19 §19.6 step 5)."""
        reg = self._need_issuer()
        row = self._holding_row(record_id, rows.ISSUER)
        holding = reg.get(record_id)
        if holding is None or holding.state is not State.TRANSFER_PENDING:
            raise RecordState(f"record {record_id!r} has no pending transfer")
        now = self.agent.now()
        with self._mirror(), self.store.atomic():
            rows.update(self.store, rows.ISSUER, reg.issuer, record_id, now=now, state=State.ACTIVE.value,
                        pending_owner=None, transfer_request=None)
            self._answer_transfer(row, TRANSFER_CANCELLED, "the business cancelled the transfer", now)
            reg.cancel_transfer(record_id)
        self._forget_waiting(holding)
        out = record_dict(rows.get(self.store, rows.ISSUER, reg.issuer, record_id))
        self.agent.hub.publish("ownership.transfer", record=out, change="cancelled")
        return out

    def _live_peer(self, relationship_id: str | None) -> Peer | None:
        if relationship_id is None:
            return None
        try:
            return self.agent.peer(relationship_id)
        except P2PError:  # revoked or gone: nothing can be sent there
            return None

    def _answer_transfer(self, row: rows.OwnershipRow, code: str, detail: str, now: int) -> None:
        peer = self._live_peer(row.relationship_id)
        if peer is not None and row.transfer_request:
            self.agent.queue(peer.id, [problem_report.report(code, pthid=row.transfer_request, id=self.agent.new_id(),
                                                             frm=peer.our_did, to=peer.their_did, now=now,
                                                             detail=detail)])

    def _forget_waiting(self, holding: Holding) -> None:
        for ids in self._waiting.values():
            ids.discard(holding.record.id)

    def _complete(self, reg: Registry, old: Holding, new_peer: Peer, old_peer: Peer | None,
                  now: int) -> tuple[Message, Message | None]:
        """Sign and register the successor for the pending new owner (connected on
        `new_peer`); returns the record message for it and the transfer-complete for
        the old owner (None if its relationship is gone). The caller queues both in the
        transaction this writes in."""
        o = old.record
        row = rows.get(self.store, rows.ISSUER, reg.issuer, o.id)
        successor = Record(id=self.agent.new_id(), issuer=reg.issuer, owner=new_peer.their_did, model=o.model,
                           serial=o.serial, purchased=o.purchased, warranty_end=o.warranty_end, issued_time=now,
                           previous=o.id)
        signed = own.sign_record(successor, self.agent.agent_signer())
        record_msg = own.record_message(signed, id=self.agent.new_id(), frm=new_peer.our_did, to=new_peer.their_did,
                                        now=now)
        complete = None
        if old_peer is not None:
            complete = own.transfer_complete(o, request_id=row.transfer_request or o.id, id=self.agent.new_id(),
                                             frm=old_peer.our_did, now=now)
        rows.update(self.store, rows.ISSUER, reg.issuer, o.id, now=now, state=State.SUPERSEDED.value,
                    pending_owner=None)
        rows.add(self.store, side=rows.ISSUER, record=successor, signed=signed, relationship_id=new_peer.id,
                 state=State.ISSUED.value, now=now, message_id=record_msg.id)
        reg.complete_transfer(o.id, signed)
        self._awaiting[record_msg.id] = successor.id
        return record_msg, complete

    # --- owner: faces ----------------------------------------------------------------------

    async def transfer(self, record_id: str, new_owner: str) -> dict:
        """Ask the issuer to transfer a record we hold to `new_owner`: the new owner's
        pairwise DID with the issuer (its relationship's `our_did`), spec/19 §19.6."""
        row = self._holding_row(record_id, rows.OWNER)
        peer = self.agent.peer(row.relationship_id)
        holding = Holding(_record_of(row), row.signed, State(row.state))
        if holding.state is not State.ACTIVE:
            raise RecordState(f"record {record_id!r} is {row.state}: only an active record is transferred")
        now = self.agent.now()
        consent = own.sign_consent(holding.record, new_owner, now, peer.signer)  # BadArgument: not a DID, ourselves
        msg = own.transfer_request(holding, new_owner, consent, id=self.agent.new_id(), frm=peer.our_did,
                                   to=peer.their_did, now=now)
        with self.store.atomic():
            rows.update(self.store, rows.OWNER, row.issuer, record_id, now=now, state=holding.state.value,
                        pending_owner=new_owner, transfer_request=msg.id, consent=consent)
            self.agent.queue(peer.id, [msg])
        out = record_dict(rows.get(self.store, rows.OWNER, row.issuer, record_id))
        self.agent.hub.publish("ownership.transfer", record=out, change="requested")
        return out

    async def present(self, record_id: str, relationship: str, challenge: str | None = None) -> dict:
        """Show a record we hold to the peer on `relationship` (spec/19 §19.4). The proof
        is signed with our pairwise key with the issuer: the record's owner key."""
        if challenge is not None and not 0 < len(challenge) <= MAX_CHALLENGE_CHARS:
            raise BadArgument(f"challenge is 1..{MAX_CHALLENGE_CHARS} characters")
        row = self._holding_row(record_id, rows.OWNER)
        owner_peer = self.agent.peer(row.relationship_id)
        target = self.agent.peer(relationship)
        holding = Holding(_record_of(row), row.signed, State(row.state))
        if holding.state not in own.LIVE:
            raise RecordState(f"a {row.state} record is not ours to present")
        now = self.agent.now()
        msg = own.present_message(holding, owner_peer.signer, id=self.agent.new_id(), frm=target.our_did,
                                  to=target.their_did, now=now, challenge=challenge)
        self.agent.queue(target.id, [msg])
        return {"id": msg.id, "record": record_id, "relationship": target.id, "audience": target.their_did,
                "challenge": challenge}

    # --- either side: reading ----------------------------------------------------------------

    async def list(self, *, relationship: str | None = None, model: str | None = None, state: str | None = None,
                   serial: str | None = None, side: str | None = None, limit: int = 1000) -> list[dict]:
        return [record_dict(r) for r in rows.listing(self.store, relationship=relationship, model=model, state=state,
                                                     serial=serial, side=side, limit=limit)]

    async def get(self, record_id: str) -> dict:
        found = rows.find(self.store, record_id)
        if not found:
            raise RecordNotFound(f"no record {record_id!r} here")
        mine = rows.ISSUER if self.business else rows.OWNER
        found.sort(key=lambda r: r.side != mine)
        return record_dict(found[0])

    def export(self, relationship_id: str) -> dict:
        return {"ownership": [record_dict(r) for r in rows.for_relationship(self.store, relationship_id)]}

    # --- received messages --------------------------------------------------------------------

    def receive(self, peer: Peer, msg: Message, tx: Received) -> None:
        name = msg.type.rsplit("/", 1)[-1]
        handler = _HANDLERS.get(name)
        if handler is None:
            raise UnexpectedMessage(f"no ownership/1.0 {name[:40]!r} message")
        handler(self, peer, msg, tx)

    def _from_issuer(self, peer: Peer, what: str) -> str:
        if peer.side != CUSTOMER:
            raise UnexpectedMessage(f"a {what} goes from a business to its customer")
        if peer.their_agent_did is None:  # we were the inviter: we never learned an issuer DID
            raise own.WrongIssuer("this relationship has no issuer agent DID (we made the invitation)")
        return peer.their_agent_did

    def _on_record(self, peer: Peer, msg: Message, tx: Received) -> None:
        issuer = self._from_issuer(peer, "record")
        holding = own.receive_record(msg, issuer=issuer, owner=peer.our_did)
        record = holding.record
        if rows.get(self.store, rows.OWNER, issuer, record.id) is not None:
            raise IllegalTransition(f"record {record.id!r} is already held")
        rows.add(self.store, side=rows.OWNER, record=record, signed=holding.signed, relationship_id=peer.id,
                 state=State.ACTIVE.value, now=tx.now, message_id=msg.id)
        tx.publish("ownership.record", record=record_dict(rows.get(self.store, rows.OWNER, issuer, record.id)),
                   change="received")

    def _on_update(self, peer: Peer, msg: Message, tx: Received) -> None:
        issuer = self._from_issuer(peer, "maker update")
        upd = own.receive_update(msg, issuer=issuer)
        matched = [r.id for r in rows.held(self.store, peer.id, model=upd.model)
                   if r.state in LIVE_STATES and r.issuer == issuer
                   and (upd.serials is None or r.serial in upd.serials)]
        if not matched:
            # spec/19 §19.5: shown only for a live record we hold. It is kept (archived,
            # listed) but raises no alert: an update may overtake its record in flight.
            tx.alert = False
        tx.publish("ownership.update", relationship=peer.id, message=msg.id, update=update_dict(upd),
                   records=matched, signed=_attached_hex(msg, "update"))

    def _on_transfer_request(self, peer: Peer, msg: Message, tx: Received) -> None:
        if peer.side != BUSINESS or not self.business:
            raise UnexpectedMessage("a transfer-request goes from an owner to the business that issued the record")
        reg = self._reg()
        early = reg.get(own.parse_transfer_request(msg).record)
        if early is not None and early.state is State.ISSUED and msg.frm == early.record.owner:
            # The owner's consent names the record: it was delivered, even if its
            # receipt has not reached us (yet). Activate it first, as the receipt would.
            with self._mirror():
                rows.update(self.store, rows.ISSUER, reg.issuer, early.record.id, now=tx.now,
                            state=State.ACTIVE.value)
                reg.activate(early.record.id)
                self._transfer_request(reg, peer, msg, tx)
            return
        self._transfer_request(reg, peer, msg, tx)

    def _transfer_request(self, reg: Registry, peer: Peer, msg: Message, tx: Received) -> None:
        req = reg.request_transfer(msg, now=tx.now)  # refusal: raises, registry unchanged
        with self._mirror():
            rows.update(self.store, rows.ISSUER, reg.issuer, req.record, now=tx.now,
                        state=State.TRANSFER_PENDING.value, pending_owner=req.new_owner, transfer_request=req.id,
                        consent=req.consent)
            old = reg.get(req.record)
            new_peer = self._peer_by_did(req.new_owner)
            if new_peer is None:
                # Not (yet) connected: the transfer waits for a relationship whose peer DID
                # is the new owner's, or for the business to cancel it.
                self._waiting.setdefault(req.new_owner, set()).add(req.record)
                change = "pending"
            else:
                record_msg, complete = self._complete(reg, old, new_peer, peer, tx.now)
                tx.send(new_peer.id, record_msg)
                tx.reply(complete)
                change = "completed"
        out = record_dict(rows.get(self.store, rows.ISSUER, reg.issuer, req.record))
        tx.publish("ownership.transfer", record=out, change=change, new_owner=req.new_owner)

    def _on_status(self, peer: Peer, msg: Message, tx: Received) -> None:
        issuer = self._from_issuer(peer, "record status")
        record_id = msg.body.get("record")
        row = rows.get(self.store, rows.OWNER, issuer, record_id) if type(record_id) is str else None
        if row is None or row.relationship_id != peer.id:
            raise own.UnknownRecord(f"no record {str(record_id)[:40]!r} is held from this issuer")
        holding = Holding(_record_of(row), row.signed, State(row.state))
        # The status comes from the issuer's pairwise DID on this relationship.
        state = own.receive_status(msg, holding, issuer=peer.their_did)
        reason = msg.body.get("reason") if state is State.REVOKED else None
        rows.update(self.store, rows.OWNER, issuer, row.id, now=tx.now, state=state.value, pending_owner=None,
                    transfer_request=None, reason=reason)
        tx.publish("ownership.record", record=record_dict(rows.get(self.store, rows.OWNER, issuer, row.id)),
                   change=state.value)

    def _on_present(self, peer: Peer, msg: Message, tx: Received) -> None:
        challenge = msg.body.get("challenge")
        if challenge is not None and (type(challenge) is not str or not 0 < len(challenge) <= MAX_CHALLENGE_CHARS):
            raise own.BadProof(f"body.challenge is text of 1..{MAX_CHALLENGE_CHARS} characters")
        record = own.verify_presentation(msg, audience=peer.our_did, now=tx.now, challenge=challenge,
                                         max_age=self.present_max_age)
        ours = self.business and record.issuer == self.agent.did
        state = None
        if ours:
            holding = self._reg().get(record.id)
            state = holding.state.value if holding is not None else "unknown"
        tx.publish("ownership.presented", relationship=peer.id, message=msg.id, record=_fields(record),
                   challenge=challenge, issued_here=ours, state=state, signed=_attached_hex(msg, "record"))

    # --- hooks ---------------------------------------------------------------------------------

    def acked(self, peer: Peer, message_ids: list[str]) -> None:
        if not self._awaiting:  # every message's receipt passes here: O(1) when nothing waits
            return
        for mid in message_ids:
            record_id = self._awaiting.pop(mid, None)
            if record_id is None:
                continue
            reg = self._reg()
            holding = reg.get(record_id)
            if holding is None or holding.state is not State.ISSUED:
                continue
            now = self.agent.now()
            with self._mirror(), self.store.atomic():
                rows.update(self.store, rows.ISSUER, reg.issuer, record_id, now=now, state=State.ACTIVE.value)
                reg.activate(record_id)
            self.agent.hub.publish("ownership.record", record=record_dict(
                rows.get(self.store, rows.ISSUER, reg.issuer, record_id)), change="active")

    def problem(self, peer: Peer, report: Any) -> None:
        """Owner: a problem report about our transfer-request (refused, or cancelled by
        the business) makes our copy active again."""
        if self.business or not report.pthid:
            return
        now = self.agent.now()
        for row in rows.by_transfer_request(self.store, report.pthid):
            if row.side != rows.OWNER or row.relationship_id != peer.id or row.state != State.TRANSFER_PENDING.value:
                continue
            with self.store.atomic():
                rows.update(self.store, rows.OWNER, row.issuer, row.id, now=now, state=State.ACTIVE.value,
                            pending_owner=None, transfer_request=None)
            self.agent.hub.publish("ownership.transfer", record=record_dict(
                rows.get(self.store, rows.OWNER, row.issuer, row.id)), change="refused", code=report.code)

    def activated(self, peer: Peer) -> None:
        """Issuer: a transfer waiting for its new owner completes when that owner connects."""
        if not self._waiting or peer.their_did not in self._waiting:
            return
        reg = self._reg()
        done = []
        for record_id in sorted(self._waiting.pop(peer.their_did, ())):
            old = reg.get(record_id)
            if old is None or old.state is not State.TRANSFER_PENDING or old.pending_owner != peer.their_did:
                continue
            now = self.agent.now()
            with self._mirror(), self.store.atomic():
                row = rows.get(self.store, rows.ISSUER, reg.issuer, record_id)
                old_peer = self._live_peer(row.relationship_id)
                record_msg, complete = self._complete(reg, old, peer, old_peer, now)
                self.agent.queue(peer.id, [record_msg])
                if complete is not None:
                    self.agent.queue(old_peer.id, [complete])
            done.append(record_id)
        for record_id in done:
            self.agent.hub.publish("ownership.transfer", record=record_dict(
                rows.get(self.store, rows.ISSUER, reg.issuer, record_id)), change="completed",
                new_owner=peer.their_did)


def _fields(record: Record) -> dict:
    return {"id": record.id, "issuer": record.issuer, "owner": record.owner, "model": record.model,
            "serial": record.serial, "purchased": record.purchased, "warranty_end": record.warranty_end,
            "issued_time": record.issued_time, "previous": record.previous}


def _attached_hex(msg: Message, aid: str) -> str | None:
    for a in msg.attachments:
        if a.id == aid and type(a.data.get("bytes")) is bytes:
            return a.data["bytes"].hex()
    return None


_HANDLERS = {
    "record": OwnershipService._on_record,
    "update": OwnershipService._on_update,
    "transfer-request": OwnershipService._on_transfer_request,
    "transfer-complete": OwnershipService._on_status,
    "revoke": OwnershipService._on_status,
    "present": OwnershipService._on_present,
}


def create(agent: Agent) -> OwnershipService:
    table = dict(agent.config.services.get("ownership", {}))
    unknown = set(table) - {"present_max_age"}
    if unknown:
        raise ConfigError(f"unknown [ownership] keys {sorted(unknown)}: only present_max_age")
    max_age = table.get("present_max_age", DEFAULT_PRESENT_MAX_AGE)
    if type(max_age) is not int or not 60 <= max_age <= 86_400:
        raise ConfigError("[ownership] present_max_age is whole seconds in 60..86400")
    return OwnershipService(agent, present_max_age=max_age)


__all__ = ["OwnershipService", "RecordNotFound", "NotIssuer", "RecordState", "TRANSFER_CANCELLED", "create",
           "record_dict", "update_dict", "parse_serials"]
