"""terms/1.0, the daemon's side (spec/17 §17.11; the core is p2p.core.protocols.terms).

The customer proffers terms from the roster through the admin API; the business's
agent answers each proffer by its configured policy inside the transaction that
records the proffer (accept: countersign; counter: one alternative set; reject), so
a business never holds a proffer unanswered. Both sides keep every agreement thread in
the `agreements` table, the final record being byte-identical on both.

Per-message hooks, both O(1) with no query in the common case:
- `admit` (every received message): a customer that requires an agreement refuses
  what a business sends outside one (spec/17 §17.8); any side refuses a message that
  names an agreement other than the one in force.
- `outbound` (every message we seal): a business binds each non-exempt message to the
  agreement in force with `x-agreement` (spec/17 §17.7).
Both read two in-memory maps, loaded at start and written through after each change:
relationship -> agreement in force, relationship -> require_agreement override.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from p2p.core import cbor, message
from p2p.core.errors import BadArgument, InvalidField, LocalError, StateError, TooLarge
from p2p.core.message import Message
from p2p.core.protocols import terms as core
from p2p.core.protocols.discover import Feature
from p2p.core.protocols.errors import UnexpectedMessage, UnsupportedMessageType
from p2p.home import ConfigError
from p2p.store import terms as db

from . import BUSINESS, CUSTOMER, Peer, Received, one_by_id

if TYPE_CHECKING:
    from p2p.agent import Agent

log = logging.getLogger("p2p.services.terms")

NAME = "terms"
EVENT = "agreement.updated"
CONFIG_KEYS = frozenset({"accept", "alternatives", "reject", "require"})
# Rows per relationship: proffers cost the business a row each, so a customer cannot
# grow the business's store without bound by proffering in a loop.
MAX_AGREEMENTS = 1000
MAX_TYPE_CACHE = 256  # message types are peer-chosen: the exemption cache stays bounded
TERM_PREFIX = "p2p:terms:"


class UnknownAgreement(LocalError):
    code = "unknown-agreement"


class UnknownTermId(LocalError):
    """A term id the caller passed that is not in the roster (the API's 400)."""

    code = "unknown-term"


# --- config --------------------------------------------------------------------------------


def _term_list(table: dict, key: str) -> list[str]:
    value = table.get(key, [])
    if type(value) is not list or not all(type(t) is str for t in value):
        raise ConfigError(f"[terms] {key} is a list of term ids")
    for t in value:
        if t not in core.TERMS:
            raise ConfigError(f"[terms] {key}: {t!r} is not in roster {core.ROSTER_VERSION} "
                              f"(known: {', '.join(core.TERMS)})")
    return value


def parse_config(table: dict) -> tuple[core.Policy, bool]:
    """`[terms]` -> (the business's policy, the customer's `require` default)."""
    unknown = set(table) - CONFIG_KEYS
    if unknown:
        raise ConfigError(f"unknown [terms] keys {sorted(unknown)} (known: {', '.join(sorted(CONFIG_KEYS))})")
    accept, reject = _term_list(table, "accept"), _term_list(table, "reject")
    alternatives = table.get("alternatives", {})
    if type(alternatives) is not dict or not all(type(k) is str and type(v) is str for k, v in alternatives.items()):
        raise ConfigError("[terms] alternatives is a table of term id = alternative term id")
    for k, v in alternatives.items():
        for t in (k, v):
            if t not in core.TERMS:
                raise ConfigError(f"[terms] alternatives: {t!r} is not in roster {core.ROSTER_VERSION}")
    require = table.get("require", False)
    if type(require) is not bool:
        raise ConfigError("[terms] require is true or false")
    try:
        policy = core.Policy(frozenset(accept), tuple(alternatives.items()), frozenset(reject))
    except BadArgument as exc:
        raise ConfigError(f"[terms]: {exc.detail}") from None
    return policy, require


# --- stored form -------------------------------------------------------------------------------


def _sig_bytes(sig: core.Signature | None) -> bytes | None:
    return None if sig is None else cbor.dumps([sig.kid, sig.protected, sig.signature])


def _sig_from(data: bytes | None) -> core.Signature | None:
    if data is None:
        return None
    kid, protected, signature = cbor.loads(data, max_size=core.MAX_HEADER_BYTES + 4096)
    return core.Signature(kid, protected, signature)


def _hex(b: bytes | None) -> str | None:
    return None if b is None else b.hex()


def create(agent: Agent) -> TermsService:
    return TermsService(agent)


class TermsService:
    name = NAME
    protocol = core.PROTOCOL
    quiet = (core.PROTOCOL + "/",)  # the negotiation: its routes show the agreements
    sole_sender = True  # a terms message sent around us would change the peer's agreement, not ours

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.store = agent.store
        self.side = agent.role
        self.policy, self.require = parse_config(agent.config.services.get(NAME, {}))
        self.features = (Feature("protocol", core.PROTOCOL, (agent.role,)),)
        # relationship -> (agreement id, hash) in force; relationship -> require override
        self._in_force: dict[str, tuple[str, bytes]] = db.in_force(self.store)
        self._required: dict[str, bool] = {r.id: r.require_agreement for r in self.store.list_relationships()
                                           if r.require_agreement is not None}
        self._exempt_cache: dict[str, bool] = {}

    def relationship_updated(self, relationship_id: str, row: Any) -> None:
        """The relationship's settings changed (require_agreement None: the config default)."""
        require_agreement = row.require_agreement
        if require_agreement is None:
            self._required.pop(relationship_id, None)
        else:
            self._required[relationship_id] = bool(require_agreement)

    # --- the per-message hooks ------------------------------------------------------------

    def _exempt(self, type_: str) -> bool:
        cache = self._exempt_cache
        hit = cache.get(type_)
        if hit is None:
            if len(cache) >= MAX_TYPE_CACHE:
                cache.clear()
            try:
                hit = message.piuri(type_)[:3] in core.EXEMPT_PROTOCOLS
            except InvalidField:
                hit = False
            cache[type_] = hit
        return hit

    def required(self, relationship_id: str) -> bool:
        if self.side != CUSTOMER:
            return False
        override = self._required.get(relationship_id)
        return self.require if override is None else override

    def admit(self, peer: Peer, msg: Message) -> None:
        # The Agent admits a batch in order, each message after the earlier ones were
        # handled: an accept in the batch is in force for the messages behind it.
        rel = peer.id
        if msg.type in core.MESSAGE_TYPES:  # exempt (spec/17 §17.8)
            return
        entry = self._in_force.get(rel)
        agreement_hash = entry[1] if entry is not None else None
        required = self.required(rel)
        if agreement_hash is None and not required and core.X_AGREEMENT not in msg.extensions:
            return  # the common case of a relationship without terms: no parse at all
        if self._exempt(msg.type):
            return
        core.check_reference(msg, agreement_hash=agreement_hash, required=required)

    def outbound(self, peer: Peer, msg: Message) -> Message:
        if peer.side != BUSINESS:
            return msg
        entry = self._in_force.get(peer.id)
        if entry is None or self._exempt(msg.type):
            return msg
        return core.bind(msg, entry[1])

    def export(self, relationship_id: str) -> dict:
        return {"agreements": [self._dict(r) for r in db.list_for(self.store, relationship_id)]}

    # --- rows <-> the core's Agreement ---------------------------------------------------------

    def _agreement(self, peer: Peer, row: db.AgreementRow) -> core.Agreement:
        role = core.Role(row.role)
        customer, business = ((peer.our_did, peer.their_did) if role is core.Role.CUSTOMER
                              else (peer.their_did, peer.our_did))
        return core.Agreement(role, customer=customer, business=business, state=core.State(row.state),
                              thid=row.id, payload=row.payload, signature=_sig_from(row.signature),
                              record=row.record)

    def _save(self, rel: str, agreement: core.Agreement, *, created: int, now: int,
              reason: str | None = None, old_reason: str | None = None) -> db.AgreementRow:
        row = db.AgreementRow(rel, agreement.thid, agreement.role.value, agreement.state.value, agreement.payload,
                              _sig_bytes(agreement.signature), agreement.record, agreement.hash,
                              reason if reason is not None else old_reason, created, now)
        db.save(self.store, row)
        return row

    def _changed(self, row: db.AgreementRow) -> None:
        """Write-through of the in-force map after the row was written."""
        rel = row.relationship_id
        if row.state == core.State.ACCEPTED.value:
            self._in_force[rel] = (row.id, row.hash)
        elif row.state == core.State.WITHDRAWN.value and self._in_force.get(rel, ("",))[0] == row.id:
            latest = db.latest_accepted(self.store, rel)  # an earlier agreement, if any, holds again
            if latest is None:
                del self._in_force[rel]
            else:
                self._in_force[rel] = latest

    def _dict(self, row: db.AgreementRow) -> dict:
        draft = core.parse_payload(row.payload) if row.payload is not None else None
        entry = self._in_force.get(row.relationship_id)
        return {"id": row.id, "relationship": row.relationship_id, "role": row.role, "state": row.state,
                "terms": list(draft.terms) if draft else [], "hash": _hex(row.hash), "record": _hex(row.record),
                "counter_to": _hex(draft.counter_to) if draft else None, "reason": row.reason,
                "in_force": entry is not None and entry[0] == row.id,
                "created_time": row.created_at, "updated_time": row.updated_at}

    # --- receiving -------------------------------------------------------------------------------

    def receive(self, peer: Peer, msg: Message, tx: Received) -> None:
        if msg.type == core.PROFFER_TYPE:
            row = self._receive_proffer(peer, msg, tx)
        else:
            row = self._receive_on_thread(peer, msg, tx)
        self._changed(row)
        log.info("agreement.updated", extra={"fields": {"relationship": peer.id, "agreement": row.id,
                                                        "state": row.state}})
        tx.publish(EVENT, agreement=self._dict(row))

    def _receive_proffer(self, peer: Peer, msg: Message, tx: Received) -> db.AgreementRow:
        if peer.side != BUSINESS:
            raise UnexpectedMessage("only a business's agent takes a proffer")
        rel, aid = peer.id, msg.thread_id
        if db.get(self.store, rel, aid) is not None:
            raise UnexpectedMessage("a proffer must start a new agreement thread")
        if db.count(self.store, rel) >= MAX_AGREEMENTS:
            raise TooLarge(f"this relationship already has {MAX_AGREEMENTS} agreements")
        agreement = core.Agreement.awaiting(customer=peer.their_did, business=peer.our_did)
        agreement.receive_proffer(msg, customer_key=peer.their_signing_key)
        answer = agreement.respond(self.policy, peer.signer, id=self.agent.new_id(), now=tx.now)
        tx.reply(answer)
        reason = answer.body.get("reason") if answer.type == core.REJECT_TYPE else None
        return self._save(rel, agreement, created=tx.now, now=tx.now, reason=reason)

    def _receive_on_thread(self, peer: Peer, msg: Message, tx: Received) -> db.AgreementRow:
        if msg.type not in core.MESSAGE_TYPES:
            raise UnsupportedMessageType(f"terms/1.0 has no message {msg.type.rsplit('/', 1)[-1][:40]!r}")
        row = db.get(self.store, peer.id, msg.thid) if msg.thid is not None else None
        if row is None:
            raise UnexpectedMessage("no agreement on this thread")
        agreement = self._agreement(peer, row)
        reason = None
        if msg.type == core.ACCEPT_TYPE:
            agreement.receive_accept(msg, their_key=peer.their_signing_key)
        elif msg.type == core.COUNTER_TYPE:
            agreement.receive_counter(msg, business_key=peer.their_signing_key)
        elif msg.type == core.REJECT_TYPE:
            text, refused = agreement.receive_reject(msg)
            reason = text + (f" (terms: {', '.join(refused)})" if refused and not text else "")
        else:  # withdraw
            reason = agreement.receive_withdraw(msg)
        return self._save(peer.id, agreement, created=row.created_at, now=tx.now, reason=reason,
                          old_reason=row.reason)

    # --- the faces' calls ---------------------------------------------------------------------------
    # No await between reading a row and writing it: a received message cannot interleave.

    async def roster(self) -> dict:
        out: dict[str, Any] = {"version": core.ROSTER_VERSION, "terms": [
            {"id": t.id, "title": t.title, "text": t.text, "alternatives": list(t.alternatives)} for t in core.ROSTER]}
        if self.side == BUSINESS:
            out["policy"] = {"accept": sorted(self.policy.accept), "alternatives": dict(self.policy.alternatives),
                             "reject": sorted(self.policy.reject)}
        else:
            out["require"] = self.require
        return out

    async def proffer(self, relationship_id: str, terms: list[str]) -> dict:
        if self.side != CUSTOMER:
            raise StateError("only a customer's agent proffers terms; a business answers by its policy")
        if type(terms) is not list or not terms or not all(type(t) is str for t in terms):
            raise BadArgument("terms is a non-empty list of roster term ids")
        for t in terms:
            if t not in core.TERMS:
                raise UnknownTermId(f"{t[:80]!r} is not in roster {core.ROSTER_VERSION} (see GET /v1/terms/roster)")
        if len(set(terms)) > core.MAX_TERMS:
            raise BadArgument(f"at most {core.MAX_TERMS} terms")
        peer = self.agent.peer(relationship_id)
        now, aid = self.agent.now(), self.agent.new_id()
        agreement = core.Agreement.drafted(id=aid, terms=terms, customer=peer.our_did, business=peer.their_did,
                                           now=now)
        msg = agreement.proffer(peer.signer, id=aid, now=now)
        with self.store.atomic():
            row = self._save(peer.id, agreement, created=now, now=now)
            self.agent.queue(peer.id, [msg])
        return self._published(row)

    def _find(self, agreement_id: str, relationship: str | None) -> db.AgreementRow:
        return one_by_id(agreement_id, relationship, get=partial(db.get, self.store),
                         find=partial(db.find, self.store), unknown=UnknownAgreement, ambiguous=BadArgument,
                         what="agreement")

    async def agreements(self, relationship_id: str) -> dict:
        """Every agreement thread of a relationship, oldest first, and which one is in force."""
        await self.agent.get_relationship(relationship_id)  # UnknownRelationship
        entry = self._in_force.get(relationship_id)
        return {"agreements": [self._dict(r) for r in db.list_for(self.store, relationship_id)],
                "in_force": entry[0] if entry is not None else None, "required": self.required(relationship_id)}

    async def get(self, agreement_id: str, *, relationship: str | None = None) -> dict:
        return self._dict(self._find(agreement_id, relationship))

    def _act(self, agreement_id: str, relationship: str | None, what: str, **kwargs: Any) -> dict:
        row = self._find(agreement_id, relationship)
        peer = self.agent.peer(row.relationship_id)  # an active relationship only
        agreement = self._agreement(peer, row)
        now, mid = self.agent.now(), self.agent.new_id()
        reason = kwargs.get("reason")
        if what == "accept":
            msg = agreement.accept(peer.signer, id=mid, now=now)
        elif what == "reject":
            msg = agreement.reject(reason or "", id=mid, now=now)
        else:
            msg = agreement.withdraw(id=mid, now=now, reason=reason)
        with self.store.atomic():
            row = self._save(peer.id, agreement, created=row.created_at, now=now, reason=reason,
                             old_reason=row.reason)
            self.agent.queue(peer.id, [msg])
        self._changed(row)
        return self._published(row)

    def _published(self, row: db.AgreementRow) -> dict:
        out = self._dict(row)
        self.agent.hub.publish(EVENT, agreement=out)
        return out

    async def accept(self, agreement_id: str, *, relationship: str | None = None) -> dict:
        """The customer accepts the business's counter (countersigns it)."""
        return self._act(agreement_id, relationship, "accept")

    async def reject(self, agreement_id: str, *, reason: str | None = None, relationship: str | None = None) -> dict:
        return self._act(agreement_id, relationship, "reject", reason=reason)

    async def withdraw(self, agreement_id: str, *, reason: str | None = None,
                       relationship: str | None = None) -> dict:
        return self._act(agreement_id, relationship, "withdraw", reason=reason)


__all__ = ["TermsService", "create", "parse_config", "UnknownAgreement", "UnknownTermId", "EVENT", "MAX_AGREEMENTS"]
