"""The Agent: the daemon's heart (contract: /work/agent_api.md, spec/13-daemon.md).

It owns the store, the agent key set, every relationship's pairwise keys and
`Connection` state machine (p2p.core.protocols.connection), the delivery sessions
(p2p.delivery) and an event hub. Its public methods are what the admin API and the
tests call; they return JSON-able dicts (bytes as hex) and raise P2PErrors.

Durability (spec/08 §8.2, spec/13 §13.4):
* `send` returns after the message is committed to the outbox (and the archive):
  that is what "accepted" means.
* A batch of received frames is opened, checked and dispatched, then recorded in ONE
  transaction together with its archive rows, the replies it caused and the state
  changes (complete, revoke); only then is it receipted and handed to subscribers.
  The inbox row is the duplicate filter and the archive row is the application's
  copy, written in the same transaction: the application sees each message once.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

import trio

from p2p import __version__
from p2p.core import envelope, message
from p2p.core.errors import BadArgument, LocalError, P2PError, RemoteError
from p2p.core.keys import AgentKeys
from p2p.core.message import Message
from p2p.core.protocols import connection, discover, invitation as inv, new_id, problem_report, routing, terms, trust_ping
from p2p.core.protocols import delivery as frames
from p2p.core.protocols.connection import Connection, Role, State
from p2p.core.protocols.delivery import Deliver, Receipt
from p2p.core.protocols.discover import Feature
from p2p.core.protocols.endpoint import format_endpoint
from p2p.core.protocols.errors import InvitationUsed, UnexpectedMessage, UnknownInvitation
from p2p.core.protocols.routing import Context, Status
from p2p.delivery import Session, Sessions, fingerprint, spec_backoff
from p2p.home import Config, agent_did, init, load_keys, new_agent_keys, open_store, sealer_for
from p2p.net import ListenerStats, ServedConnection, connect, serve
from p2p.store import (
    ArchivedMessage,
    ArchiveRecord,
    ArchiveState,
    Incoming,
    InvitationKind,
    Outgoing,
    RelationshipRevoked,
    SQLiteStore,
    UnknownRelationship,
)
from p2p.services import Peer, Received
from p2p.store.keyfile import Sealer
from p2p import services as service_modules

log = logging.getLogger("p2p.agent")

SETUP_TIMEOUT = 10.0  # an unknown static key gets this long to show a connect request
REVOKE_EXPIRY = 24 * 3600  # how long we keep trying to deliver our revoke
PRUNE_INTERVAL = 3600
OUTBOX_KEEP = 24 * 3600  # finished outbox rows (the archive keeps the history)
SEEN_KEEP = 30 * 24 * 3600  # duplicate filter: longer than any sane sender expiry + skew
MAX_LIST = 10_000
CHECKPOINT_INTERVAL = 0.5  # seconds between WAL checkpoints (worker thread)
MAX_DISCOVER_S = 30  # a LAN browse window; longer only holds the caller (spec/15 §15.5)
# Extensions every message is decoded with: `x-agreement` (spec/17 §17.7) may be
# critical in any message a business sends under an agreement.
UNDERSTOOD = terms.UNDERSTOOD


class Timeout(RemoteError):
    """The peer did not answer in time."""

    code = "timeout"


class ServiceFailed(RemoteError):
    """A service failed on a peer's message with something other than a P2PError: a
    fault on our side. The message is refused with a problem report (e.p.me) instead
    of failing again on every retransmission, which would stall the relationship."""

    code = "internal-error"


class UnknownMessage(LocalError):
    code = "unknown-message"


class UnknownThread(LocalError):
    code = "unknown-thread"


class DiscoveryUnavailable(LocalError):
    """This host cannot browse the LAN now (no multicast interface, socket refused)."""

    code = "discovery-unavailable"


class SetupRefused(RemoteError):
    """The inviter refused our connect request with a problem report; `code` is theirs."""

    code = "setup-refused"

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail)
        self.code = code


# Type prefixes of the protocols p2p itself runs (routing.CORE_FEATURES), one per
# protocol and major version ("https://didcomm.org/trust-ping/2."): the archive keeps
# their messages, the application's views (inbox, threads) leave them out by default.
CORE_TYPE_PREFIXES: tuple[str, ...] = tuple(sorted(
    f.id.rsplit(".", 1)[0] + "." for f in routing.CORE_FEATURES if f.feature_type == "protocol"))




def _log_hook_failure(hook: str, relationship_id: str, exc: Exception) -> None:
    log.error("service.failed", extra={"fields": {"relationship": relationship_id, "hook": hook,
                                                   "error": type(exc).__name__, "detail": str(exc)[:200]}})


def _agreement_of(msg: Message) -> str | None:
    """The `x-agreement` hash a message was sent under (spec/17 §17.7), as hex."""
    value = msg.extensions.get(terms.X_AGREEMENT) if msg.extensions else None
    return value.hex() if type(value) is bytes else None


def _random_id() -> str:
    return new_id(os.urandom(16))


def _sender_key(rel_id: str) -> str:
    """The inbox's duplicate filter is UNIQUE (sender, message id). On a relationship
    the sender is its peer's pairwise DID, one per relationship and vice versa, so the
    relationship id names the same sender in 26 characters instead of a did:peer:2 of
    several hundred (which would sit in that index once per message)."""
    return "rel:" + rel_id


def jsonable(value: Any) -> Any:
    """Plain JSON types only: bytes become hex strings."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


class _Relationship:
    """The protocol side of one relationship: the state machine (with our pairwise
    keys) and what sealing and opening need, computed once."""

    __slots__ = ("id", "conn", "keyring", "pairwise", "label", "their_agent_did", "muted", "_peer")

    def __init__(self, rel_id: str, conn: Connection, label: str, *, their_agent_did: str | None = None,
                 muted: bool = False) -> None:
        self.id = rel_id
        self.conn = conn
        self.keyring = conn.keyring()
        self.pairwise = conn.pairwise_key()
        self.label = label
        self.their_agent_did = their_agent_did
        self.muted = muted
        self._peer: Peer | None = None

    def peer(self, side: str) -> Peer:
        """The relationship as the services see it (built once)."""
        if self._peer is None:
            conn = self.conn
            signer = envelope.SigningKey.from_seed(f"{conn.our_did}#{terms.SIGNING_FRAGMENT}",
                                                   conn.our_keys.signing.seed)
            self._peer = Peer(self.id, conn.our_did, conn.their_did, self.their_agent_did, side, signer,
                              conn.their_signing, self.label)
        return self._peer


# --- events ----------------------------------------------------------------------------


class EventSubscription:
    """`async with agent.subscribe() as events: async for e in events: ...`. A
    subscriber that falls `buffer` events behind gets one `subscription.overflow` event
    and is closed: the daemon never waits for a slow reader."""

    def __init__(self, hub: EventHub, buffer: int) -> None:
        self._hub = hub
        self._buffer = buffer
        self._send, self._receive = trio.open_memory_channel[dict](buffer + 1)

    async def __aenter__(self) -> trio.MemoryReceiveChannel[dict]:
        self._hub._subscribers.add(self)
        return self._receive

    async def __aexit__(self, *exc: object) -> None:
        self._hub._subscribers.discard(self)
        self._send.close()
        self._receive.close()

    def _offer(self, event: dict) -> None:
        try:
            if self._send.statistics().current_buffer_used >= self._buffer:
                self._send.send_nowait({"event": "subscription.overflow", "time": event["time"]})
                self._drop()
            else:
                self._send.send_nowait(event)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.WouldBlock):
            self._drop()

    def _drop(self) -> None:
        self._hub._subscribers.discard(self)
        self._send.close()


class EventHub:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._subscribers: set[EventSubscription] = set()
        self._clock = clock

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    def publish(self, event: str, **data: Any) -> None:
        if not self._subscribers:
            return
        item = {"event": event, "time": int(self._clock()), **data}
        for sub in list(self._subscribers):
            sub._offer(item)


class _Waiter:
    __slots__ = ("event", "result")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.result: Any = None


# --- the agent ----------------------------------------------------------------------------


class Agent:
    """One agent. `Agent.open(config)` opens (and if needed initialises) its home;
    `await nursery.start(agent.run)` listens and delivers until cancelled;
    `agent.close()` closes the store."""

    def __init__(self, config: Config, store: SQLiteStore, keys: AgentKeys, *,
                 backoff: Callable[[int], float] = spec_backoff, clock: Callable[[], float] = time.time,
                 sealer: Sealer | None = None) -> None:
        self.config = config
        self.store = store
        self.keys = keys
        self.sealer = sealer if sealer is not None else sealer_for(config)
        self.clock = clock
        self.hub = EventHub(clock)
        self.sessions = Sessions(store, self, limits=config.limits, backoff=backoff, clock=clock)
        self.features: tuple[Feature, ...] = routing.CORE_FEATURES + tuple(
            Feature("protocol", p) for p in config.protocols)
        identity = store.get_identity()
        self.did: str = identity.did if identity is not None else ""
        if identity is not None:
            # Pairwise keys are sealed with the identity's salt: the Argon2id run that
            # opened the identity serves them all, now and after every restart.
            self.sealer.adopt_salt(identity.secret)
        self.endpoint: str | None = None
        self.port: int | None = None
        self.listener_stats = ListenerStats()
        self.started_at = clock()
        self._waiters: dict[str, _Waiter] = {}
        self._agent_keyring: envelope.Keyring | None = None
        self._nursery: trio.Nursery | None = None
        self.role = config.role
        self._load_relationships()
        # The customer-business protocols (p2p/services): their features are announced
        # and their messages routed to them; the optional hooks are looked up once.
        self.services = service_modules.load(self)
        self.features += tuple(f for s in self.services for f in s.features)
        self._by_protocol = {message.piuri(s.protocol + "/x")[:3]: s for s in self.services}
        self._service_cache: dict[str, Any] = {}
        # Types left out of the application's default views (inbox, threads): the core
        # protocols' and the services' machinery (a catalogue, a subscription change,
        # the terms negotiation); their own routes show what they mean.
        self._quiet = CORE_TYPE_PREFIXES + tuple(q for s in self.services for q in getattr(s, "quiet", ()))
        self._hooks = {name: [getattr(s, name) for s in self.services if hasattr(s, name)]
                       for name in ("admit", "outbound", "acked", "problem", "activated", "export",
                                    "relationship_updated", "started")}

    @classmethod
    def open(cls, config: Config, **kwargs: Any) -> Agent:
        """Open the home's store and keys; a home without an identity is initialised
        first (so `p2p daemon` works with no `p2p init`)."""
        store = open_store(config)
        try:
            sealer = sealer_for(config)
            keys = load_keys(store, sealer)
            if keys is None:
                init(config, store=store, sealer=sealer)
                keys = load_keys(store, sealer)
            return cls(config, store, keys, sealer=sealer, **kwargs)
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        self.store.close()

    def now(self) -> int:
        return int(self.clock())

    # --- running ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Agent] = trio.TASK_STATUS_IGNORED) -> None:
        """Listener, sessions and timers, until cancelled. started(self) once listening."""
        cfg = self.config
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            port = await nursery.start(lambda task_status: serve(
                cfg.listen_host, cfg.listen_port, static=self.keys.agreement, handler=self.sessions.accept,
                limits=cfg.limits, stats=self.listener_stats, task_status=task_status))
            self._set_endpoint(port)
            await nursery.start(self.sessions.run)
            for hook in self._hooks["started"]:  # e.g. offer a changed catalogue to every peer
                try:
                    hook()
                except Exception as exc:
                    _log_hook_failure("started", "-", exc)
            nursery.start_soon(self._timers)
            nursery.start_soon(self._checkpoints)
            log.info("agent.started", extra={"fields": {"did_key": fingerprint(self.keys.agreement.public),
                                                         "endpoint": self.endpoint,
                                                         "relationships": len(self.sessions.by_id)}})
            if cfg.advertise_warning:
                log.warning("config.advertise_default", extra={"fields": {
                    "detail": "listening on an unspecified address and no advertise_host or P2P_ADVERTISE: "
                              "advertising 127.0.0.1, which only this machine can reach"}})
            task_status.started(self)

    async def shutdown(self) -> None:
        """Stop politely: close frames on every connection. The caller then cancels run()."""
        await self.sessions.close_all()

    def _set_endpoint(self, port: int) -> None:
        cfg = self.config
        self.port = port
        advertised = cfg.advertise_port or port
        self.endpoint = format_endpoint(self.keys.agreement.public_key, cfg.advertise_host, advertised)
        did_ = agent_did(self.keys, cfg.advertise_host, advertised)
        identity = self.store.get_identity()
        if identity is not None and identity.did != did_:
            self.store.set_identity(did_, identity.secret, self.now())
        self.did = did_
        self._agent_keyring = None

    async def _checkpoints(self) -> None:
        """WAL checkpoints in a worker thread (the store runs without automatic ones,
        which would stall a commit on the event loop). A PASSIVE checkpoint never
        blocks our writers; SQLite restarts the WAL from its start once everything
        in it has been copied."""
        while True:
            await trio.sleep(CHECKPOINT_INTERVAL)
            try:
                await trio.to_thread.run_sync(self.store.checkpoint, abandon_on_cancel=False)
            except P2PError as exc:  # closed under us at shutdown
                log.debug("store.checkpoint_failed", extra={"fields": {"code": exc.code}})
                return

    async def _timers(self) -> None:
        last_prune = -math.inf
        while True:
            await trio.sleep(1)
            now = self.now()
            expired = self.store.expire(now)
            for mid in expired:
                entry = self.store.get_outbox(mid)
                if entry is not None:
                    session = self.sessions.by_id.get(entry.relationship_id)
                    if session is not None:
                        session.wake()
                    self.hub.publish("message.state", id=mid, relationship=entry.relationship_id, state="expired")
            if expired:
                log.info("outbox.expired", extra={"fields": {"count": len(expired)}})
            if now - last_prune >= PRUNE_INTERVAL:
                last_prune = now
                self.store.prune_outbox(now - OUTBOX_KEEP)
                self.store.prune_seen(now - SEEN_KEEP)

    # --- relationships in memory ------------------------------------------------------------

    def _load_relationships(self) -> None:
        now = self.now()
        for r in self.store.list_relationships():
            if r.state != "active":
                self.sessions.refused_keys.add(r.their_x25519)
                continue
            keys = AgentKeys.from_cbor(self.sealer.open(r.our_secret))
            conn = Connection(Role(r.role), None, state=State.RESPONDED if r.setup else State.ACTIVE, thid=r.thid,
                              our_keys=keys, our_did=r.our_did, our_label=self.config.label, their_did=r.their_did,
                              their_label=r.their_label)
            self._add_session(_Relationship(r.id, conn, r.label, their_agent_did=r.their_agent_did, muted=r.muted))
        # A revoke still queued from a previous run cannot be sent any more: the keys
        # that would open the connection were erased when it was revoked.
        for rid in self.store.relationships_with_pending():
            if rid not in self.sessions.by_id:
                ids = [e.message_id for e in self.store.pending_after(rid, 0, now, MAX_LIST)]
                self.store.mark_failed_many(ids, error="relationship revoked; keys erased")

    def _add_session(self, rel: _Relationship) -> Session:
        conn = rel.conn
        session = Session(rel.id, our_did=conn.our_did, their_did=conn.their_did, static=conn.our_keys.agreement,
                          their_x25519=conn.their_agreement, endpoint=conn.their_endpoint, state=rel)
        self.sessions.add(session)
        return session

    def _session(self, relationship_id: str) -> Session:
        session = self.sessions.by_id.get(relationship_id)
        if session is None or session.revoked:
            row = self.store.get_relationship(relationship_id)
            if row is None:
                raise UnknownRelationship(f"no relationship {relationship_id!r}")
            raise RelationshipRevoked(f"relationship {relationship_id!r} is revoked")
        return session

    # --- sealing --------------------------------------------------------------------------

    def _seal(self, rel: _Relationship, msg: Message) -> tuple[bytes, bytes]:
        plaintext = message.encode(msg, understood=UNDERSTOOD)
        rnd = os.urandom(28)
        return plaintext, envelope.seal_authcrypt(plaintext, rel.pairwise, iv=rnd[:12], nonce=rnd[12:])

    def _queue(self, rel: _Relationship, msgs: list[Message], now: int) -> list[int]:
        """Seal and commit outbound messages (outbox + archive, one transaction)."""
        outgoing, records = self._prepare(rel, msgs, now)
        return self._commit(outgoing, records, now)

    def _prepare(self, rel: _Relationship, msgs: list[Message], now: int) -> tuple[list, list]:
        hooks = self._hooks["outbound"]
        if hooks and msgs:
            peer = rel.peer(self.role)
            for hook in hooks:
                msgs = [hook(peer, m) for m in msgs]
        outgoing, records = [], []
        for msg in msgs:
            plaintext, env = self._seal(rel, msg)
            expires = frames.expires_at(msg.created_time or now, msg.expires_time)
            outgoing.append(Outgoing(msg.id, rel.id, msg.thread_id, env, expires_at=expires))
            records.append((rel.id, msg, plaintext, expires))
        return outgoing, records

    def _commit(self, outgoing: list, records: list, now: int) -> list[int]:
        with self.store.atomic():
            seqs = self.store.enqueue_many(outgoing, now)
            self.store.archive_many([
                ArchiveRecord(rid, "out", m.id, m.type, m.thread_id, pt, pthid=m.pthid, seq=seq,
                              state=ArchiveState.QUEUED, created_time=m.created_time, expires_time=exp)
                for (rid, m, pt, exp), seq in zip(records, seqs)], now)
        return seqs

    # --- the Receiver interface (called by p2p.delivery) -------------------------------------

    async def take(self, session: Session, delivers: list[Deliver]) -> list[int]:
        rel: _Relationship = session.state
        now = self.now()
        ctx = self._context(rel, now)
        sender = _sender_key(rel.id)
        items = []  # (message, seq, plaintext, outcome, effect)
        rows = []
        replies_only = []  # problem reports about messages too broken to record
        for d in delivers:
            try:
                opened = envelope.open(d.envelope, rel.keyring)
            except RemoteError as exc:
                # Unreadable: no id to answer to (and no proof of who sent it).
                log.info("message.rejected", extra={"fields": {"relationship": rel.id, "seq": d.seq,
                                                                "code": exc.code}})
                continue
            try:
                msg = message.decode(opened.plaintext, now=now, understood=UNDERSTOOD)
            except RemoteError:
                outcome = routing.dispatch_bytes(opened.plaintext, ctx)
                replies_only.extend(outcome.replies)
                if outcome.replies:
                    ctx = self._context(rel, now)
                self._log_rejected(rel, d.seq, outcome)
                continue
            outcome, effect = self._route(rel, ctx, msg, opened.sender_kid, now)
            if outcome.replies or effect is not None:
                ctx = self._context(rel, now)  # its reply id is used, or the state changed
            items.append((msg, d.seq, opened.plaintext, outcome, effect))
            rows.append(Incoming(rel.id, sender, msg.id, msg.thread_id, msg.type, b""))
        fresh_items = []
        store = self.store
        handled: dict[str, Received] = {}  # message id -> what its service did
        admit = self._hooks["admit"]
        with store.atomic():
            fresh = store.record_received_many(rows, now, keep_payload=False)
            records, replies, effects = [], list(replies_only), []
            for item, new in zip(items, fresh):
                if not new:
                    continue  # a copy of a message already taken: receipt it, nothing else
                msg, seq, plaintext, outcome, effect = item
                if admit and effect is None and not any(type(e) is routing.Rejected for e in outcome.events):
                    # In order, inside the transaction: an earlier message of the batch
                    # (an agreement's accept) is in force for the later ones.
                    outcome = self._admit(rel, admit, msg, now, outcome)
                    item = (msg, seq, plaintext, outcome, effect)
                if self._by_protocol and outcome.events and type(outcome.events[0]) is routing.Delivered:
                    service = self._service_for(msg.type)
                    if service is not None:
                        outcome = self._serve(rel, service, msg, now, handled)
                        item = (msg, seq, plaintext, outcome, effect)
                fresh_items.append(item)
                if not any(type(e) is routing.Rejected for e in outcome.events):
                    records.append(ArchiveRecord(rel.id, "in", msg.id, msg.type, msg.thread_id, plaintext,
                                                 pthid=msg.pthid, seq=seq, state=ArchiveState.RECEIVED,
                                                 created_time=msg.created_time, expires_time=msg.expires_time))
                replies.extend(outcome.replies)
                if effect is not None:
                    effects.append(effect)
            cursors = store.archive_many(records, now)
            for tx in handled.values():
                replies.extend(tx.replies)
                for other_id, other_msg in tx.sends:
                    other = self.sessions.by_id.get(other_id)
                    if other is None or other.revoked:  # revoked meanwhile: nothing to send on
                        log.info("service.send_dropped", extra={"fields": {"relationship": other_id,
                                                                            "type": other_msg.type}})
                        continue
                    self._queue(other.state, [other_msg], now)
            if replies:
                self._queue(rel, replies, now)
            for effect in effects:
                if effect[0] == "complete":
                    store.update_relationship(rel.id, now=now, setup=None)
                elif effect[0] == "revoke":
                    store.revoke_relationship(rel.id, now)
        # Committed: now tell the world, in seq order.
        by_id = dict(zip((r.message_id for r in records), cursors))
        for msg, seq, plaintext, outcome, effect in fresh_items:
            tx = handled.get(msg.id)
            self._after(rel, session, msg, seq, outcome, by_id.get(msg.id), effect,
                        alert=not rel.muted and (tx is None or tx.alert))
            if tx is not None:
                for event, data in tx.events:
                    self.hub.publish(event, **data)
                for other_id, _ in tx.sends:
                    other = self.sessions.by_id.get(other_id)
                    if other is not None:
                        other.wake()
        if replies:
            session.wake()
        return [d.seq for d in delivers]

    # --- the customer-business protocols (p2p/services) -----------------------------------------

    def _service_for(self, type_: str) -> Any:
        cache = self._service_cache
        if type_ not in cache:
            if len(cache) >= 256:  # types are peer-chosen: the cache stays bounded
                cache.clear()
            try:
                cache[type_] = self._by_protocol.get(message.piuri(type_)[:3])
            except RemoteError:
                cache[type_] = None
        return cache[type_]

    def _admit(self, rel: _Relationship, hooks: list, msg: Message, now: int,
               outcome: routing.Outcome) -> routing.Outcome:
        """The services' admission checks (e.g. a required agreement, spec/17 §17.8) on
        every message but connect/1.0's: a refusal drops the dispatch's replies too."""
        if msg.type in connection.MESSAGE_TYPES:
            return outcome
        try:
            peer = rel.peer(self.role)
            for hook in hooks:
                hook(peer, msg)
        except RemoteError as exc:
            return self._reject(rel, exc, msg, now)
        except Exception as exc:  # a fault of ours: refuse once, as in _serve
            _log_hook_failure("admit", rel.id, exc)
            return self._reject(rel, ServiceFailed("the admission check failed"), msg, now)
        return outcome

    def _exclusions(self, include_protocol: bool, type: str | None = None) -> tuple[str, ...]:
        # A type asked for by name is shown whatever it is.
        return () if include_protocol or type is not None else self._quiet

    def _serve(self, rel: _Relationship, service: Any, msg: Message, now: int,
               handled: dict[str, Received]) -> routing.Outcome:
        """One message of a service's protocol, inside the recording transaction. A
        refusal undoes the service's writes and becomes a problem report."""
        tx = Received(rel.peer(self.role), msg, now)
        try:
            with self.store.savepoint():
                service.receive(tx.peer, msg, tx)
        except RemoteError as exc:
            return self._reject(rel, exc, msg, now)
        except Exception as exc:  # a bug in the service: never the relationship's end
            log.error("service.failed", extra={"fields": {"relationship": rel.id, "service": service.name,
                                                           "type": msg.type[:120], "error": type(exc).__name__,
                                                           "detail": str(exc)[:200]}})
            return self._reject(rel, ServiceFailed(f"{service.name} could not handle the message"), msg, now)
        handled[msg.id] = tx
        return routing.Outcome(events=(routing.Delivered(msg),))

    def service(self, name: str) -> Any:
        """The running service of that name (faces call its methods), or LocalError."""
        for s in self.services:
            if s.name == name:
                return s
        raise LocalError(f"no {name} service in this agent")

    def peer(self, relationship_id: str) -> Peer:
        """An active relationship as the services see it (UnknownRelationship,
        RelationshipRevoked otherwise)."""
        return self._session(relationship_id).state.peer(self.role)

    def peers(self) -> list[Peer]:
        """Every active relationship, for a service's broadcasts and lookups."""
        return [s.state.peer(self.role) for s in self.sessions.by_id.values() if not s.revoked]

    def new_id(self) -> str:
        return _random_id()

    def agent_signer(self) -> envelope.SigningKey:
        """The agent DID's #key-1: what a business signs ownership records and updates with."""
        return envelope.SigningKey.from_seed(f"{self.did}#{terms.SIGNING_FRAGMENT}", self.keys.signing.seed)

    def queue_many(self, batch: list[tuple[str, list[Message]]]) -> list[list[int]]:
        """`queue` for many relationships at once (a broadcast): everything is sealed
        first, then committed with one outbox and one archive write (joins an
        enclosing `store.atomic()`). Returns the seqs per batch item."""
        now = self.now()
        sessions = [self._session(rid) for rid, _ in batch]
        outgoing, records, counts = [], [], []
        for session, (_, msgs) in zip(sessions, batch):
            out, rec = self._prepare(session.state, msgs, now)
            outgoing += out
            records += rec
            counts.append(len(out))
        seqs = self._commit(outgoing, records, now)
        if self._nursery is not None:
            # Wake the links in a task of their own, after the caller (an API request)
            # had its turn: its answer then goes out before thousands of first sends.
            self._nursery.start_soon(_wake_later, sessions)
        else:
            for session in sessions:
                session.wake()
        result, i = [], 0
        for n in counts:
            result.append(seqs[i:i + n])
            i += n
        return result

    def queue(self, relationship_id: str, msgs: list[Message]) -> list[int]:
        """Seal and commit messages a service built (joins an enclosing `store.atomic()`)
        and wake the relationship's sender. Returns their seqs."""
        session = self._session(relationship_id)
        seqs = self._queue(session.state, msgs, self.now())
        session.wake()
        return seqs

    def _context(self, rel: _Relationship, now: int) -> Context:
        state = rel.conn.state
        status = Status.ACTIVE if state is State.ACTIVE else Status.REVOKED if state is State.REVOKED else Status.NONE
        return Context(now=now, reply_id=_random_id(), our_did=rel.conn.our_did, their_did=rel.conn.their_did,
                       status=status, features=self.features)

    def _route(self, rel: _Relationship, ctx: Context, msg: Message, sender_kid: str | None, now: int):
        conn = rel.conn
        try:
            if msg.type in connection.MESSAGE_TYPES:
                if msg.type == connection.COMPLETE_TYPE:
                    conn.receive_complete(msg, sender_kid=sender_kid)
                    return routing.Outcome(), ("complete",)
                if msg.type == connection.REVOKE_TYPE:
                    reason = conn.receive_revoke(msg, sender_kid=sender_kid)
                    return routing.Outcome(), ("revoke", reason)
                if conn.state is State.REVOKED:
                    conn.check_inbound(msg, sender_kid=sender_kid)
                raise UnexpectedMessage(f"a connect {msg.type.rsplit('/', 1)[-1]} on an established relationship")
            conn.check_inbound(msg, sender_kid=sender_kid)
        except RemoteError as exc:
            return self._reject(rel, exc, msg, now), None
        # `ctx` is renewed by the caller whenever a reply used its reply id or a
        # message changed the relationship's state: one Context per batch otherwise.
        return routing.dispatch(msg, ctx), None

    def _reject(self, rel: _Relationship, exc: RemoteError, msg: Message, now: int) -> routing.Outcome:
        conn = rel.conn
        replies: tuple[Message, ...] = ()
        # Reports only on a live relationship and never about a report (no cascades).
        if conn.state is State.ACTIVE and not msg.type.startswith(problem_report.PROTOCOL + "/"):
            replies = (problem_report.report(exc, pthid=msg.thread_id, id=_random_id(), frm=conn.our_did,
                                             to=conn.their_did, now=now, offending_id=msg.id),)
        return routing.Outcome(replies=replies, events=(routing.Rejected(exc.code, exc.detail, msg.id, bool(replies)),))

    def _log_rejected(self, rel: _Relationship, seq: int, outcome: routing.Outcome) -> None:
        for e in outcome.events:
            if type(e) is routing.Rejected:
                log.info("message.rejected", extra={"fields": {"relationship": rel.id, "seq": seq, "code": e.code,
                                                                "replied": e.replied}})

    def _after(self, rel: _Relationship, session: Session, msg: Message, seq: int, outcome: routing.Outcome,
               cursor: int | None, effect: tuple | None, *, alert: bool = True) -> None:
        hub = self.hub
        if effect is not None:
            if effect[0] == "complete":
                log.info("relationship.created", extra={"fields": {"relationship": rel.id, "role": "inviter"}})
                hub.publish("relationship.created", relationship=self._relationship_dict_safe(rel.id))
                self._activated(rel)
            elif effect[0] == "revoke":
                self._revoked(session, by="peer")
        for e in outcome.events:
            kind = type(e)
            if kind is routing.Delivered:
                if hub.active and cursor:
                    hub.publish("message.received", message=self._inbound_dict(rel, msg, seq, cursor), alert=alert)
            elif kind is routing.PingResponded:
                self._wake_waiter(e.ping_id, self.clock())
            elif kind is routing.Disclosed:
                self._wake_waiter(e.thid, e.features)
            elif kind is routing.ProblemReceived:
                report = e.report
                log.info("problem.received", extra={"fields": {"relationship": rel.id, "code": report.code}})
                hub.publish("problem.received", relationship=rel.id, code=report.code, pthid=report.pthid,
                            comment=problem_report.render(report))
                self._notify_hooks("problem", rel.peer(self.role), report)
                waiter = self._waiters.get(report.pthid)
                if waiter is not None:
                    waiter.result = SetupRefused(report.error_code, "the peer answered with a problem report")
                    waiter.event.set()
            elif kind is routing.Rejected:
                log.info("message.rejected", extra={"fields": {"relationship": rel.id, "seq": seq, "code": e.code,
                                                                "replied": e.replied}})

    def _wake_waiter(self, thid: str, result: Any) -> None:
        waiter = self._waiters.get(thid)
        if waiter is not None:
            waiter.result = result
            waiter.event.set()

    def sent(self, session: Session, message_ids: list[str]) -> None:
        if self.hub.active:
            for mid in message_ids:
                self.hub.publish("message.state", id=mid, relationship=session.rel_id, state="sent")

    def in_flight(self, relationship_id: str, message_id: str) -> bool:
        session = self.sessions.by_id.get(relationship_id)
        link = session.link if session is not None else None
        return link is not None and message_id in link.in_flight.values()

    def _notify_hooks(self, name: str, peer: Peer, *args: Any) -> None:
        """Hooks that report what happened (already committed): a failing one is
        logged and the others still run; it never breaks delivery."""
        for hook in self._hooks[name]:
            try:
                hook(peer, *args)
            except Exception as exc:
                _log_hook_failure(name, peer.id, exc)

    def _activated(self, rel: _Relationship) -> None:
        self._notify_hooks("activated", rel.peer(self.role))

    def acked(self, session: Session, message_ids: list[str]) -> None:
        if self._hooks["acked"]:
            self._notify_hooks("acked", session.state.peer(self.role), message_ids)
        if self.hub.active:
            for mid in message_ids:
                self.hub.publish("message.state", id=mid, relationship=session.rel_id, state="delivered")

    def _revoked(self, session: Session, *, by: str) -> None:
        session.revoked = True
        self.sessions.refused_keys.add(session.their_x25519)
        session.wake()
        log.info("relationship.revoked", extra={"fields": {"relationship": session.rel_id, "by": by}})
        self.hub.publish("relationship.revoked", relationship=session.rel_id, by=by)

    # --- the inviter's side of a setup connection -----------------------------------------------

    def _keyring_for_requests(self) -> envelope.Keyring:
        """Our agent key under every agent DID an open invitation names (the DID
        changes with the endpoint; older invitations stay usable)."""
        if self._agent_keyring is None:
            dids = {self.did} | {inv.from_signed(i.blob).inviter_did
                                 for i in self.store.list_invitations() if i.state == "open"}
            secret = self.keys.agreement.secret
            mine = [envelope.AgreementKey.from_secret(f"{d}#{connection.AGREEMENT_FRAGMENT}", secret)
                    for d in dids if d]
            self._agent_keyring = envelope.Keyring(mine, senders=connection.agent_keyring(self.keys, self.did).senders)
        return self._agent_keyring

    async def setup(self, served: ServedConnection) -> Session | None:
        peer = fingerprint(served.remote_static)
        data = None
        with trio.move_on_after(SETUP_TIMEOUT):
            try:
                data = await served.receive()
            except RemoteError:
                return None
        if data is None:
            log.info("setup.timeout", extra={"fields": {"peer": peer}})
            return None
        now = self.now()
        try:
            frame = frames.decode(data)
            if type(frame) is not Deliver:
                raise UnexpectedMessage("a connection from an unknown key must start with a connect request")
            opened = envelope.open(frame.envelope, self._keyring_for_requests())
            if opened.sender_public != served.remote_static:
                raise UnexpectedMessage("the request's sender key is not the connection's static key")
            msg = message.decode(opened.plaintext, now=now)
            outcome = routing.dispatch(msg, Context(now=now, reply_id="-", status=Status.NONE))
            if not outcome.events or type(outcome.events[0]) is not routing.ConnectMessage:
                raise UnexpectedMessage("only a connect request is taken from an unknown key")
        except RemoteError as exc:
            log.info("setup.refused", extra={"fields": {"peer": peer, "code": exc.code}})
            await _close_with(served, exc.code)
            return None
        try:
            return await self._accept_request(served, frame, opened, msg, now)
        except RemoteError as exc:
            log.info("setup.refused", extra={"fields": {"peer": peer, "code": exc.code}})
            await self._refuse_request(served, opened, msg, exc, now)
            return None

    async def _accept_request(self, served: ServedConnection, frame: Deliver, opened: envelope.Opened,
                              msg: Message, now: int) -> Session:
        row = self.store.get_invitation(msg.pthid) if msg.pthid else None
        if row is None or row.state == "revoked":
            raise UnknownInvitation(f"no invitation {msg.pthid!r} here")
        invitation = inv.from_signed(row.blob)
        issued = inv.Issued(invitation, inv.IssuedState(row.state), row.use_count)
        conn = Connection.inviter(invitation)
        pair_keys = new_agent_keys()
        response, _ = conn.receive_request(msg, sender_kid=opened.sender_kid, issued=issued, agent_keys=self.keys,
                                           keys=pair_keys, response_id=_random_id(), now=now,
                                           label=self.config.label, endpoint=self.endpoint)
        our_secret = await self._seal_secret(pair_keys)
        rel_id = _random_id()
        rel_label = conn.their_label  # the relationship's label names the peer (spec/14 §14.5)
        with self.store.atomic():
            if self.store.use_invitation(invitation.id, now) is None:  # a racing request won
                raise InvitationUsed(f"invitation {invitation.id!r} is no longer open")
            self.store.add_relationship(
                id=rel_id, our_did=conn.our_did, their_did=conn.their_did, their_ed25519=conn.their_signing,
                their_x25519=conn.their_agreement, our_secret=our_secret, now=now,
                endpoint=conn.their_endpoint.uri if conn.their_endpoint else None, label=rel_label, role="inviter",
                their_label=conn.their_label, setup="responded", thid=conn.thid, invitation_id=invitation.id)
            self.store.record_received_many(
                [Incoming(rel_id, _sender_key(rel_id), msg.id, msg.thread_id, msg.type, b"")], now,
                keep_payload=False)
            self.store.archive_many([ArchiveRecord(rel_id, "in", msg.id, msg.type, msg.thread_id, opened.plaintext,
                                                   pthid=msg.pthid, seq=frame.seq, created_time=msg.created_time,
                                                   expires_time=msg.expires_time)], now)
            rel = _Relationship(rel_id, conn, rel_label)
            self._queue(rel, [response], now)
        self._agent_keyring = None if not invitation.multi_use else self._agent_keyring
        await served.send(frames.encode(Receipt((frame.seq,))))
        # Only once committed, and with no checkpoint before Sessions.accept installs
        # this connection as its link (else the session would dial out meanwhile).
        session = self._add_session(rel)
        session.recv.taken(frame.seq)
        log.info("invitation.used", extra={"fields": {"invitation": invitation.id, "relationship": rel_id}})
        self.hub.publish("invitation.used", invitation=invitation.id, relationship=rel_id)
        return session

    async def _refuse_request(self, served: ServedConnection, opened: envelope.Opened, msg: Message,
                              exc: RemoteError, now: int) -> None:
        """spec/10 §10.4.2: a problem report sealed from the agent key to the request's
        sender, over the connection the request came on (never by dialing)."""
        try:
            mine = envelope.AgreementKey.from_secret(opened.recipient_kid, self.keys.agreement.secret)
            pairwise = envelope.PairwiseKey.derive(mine, opened.sender_kid, opened.sender_public)
            report = problem_report.report(exc, pthid=msg.thread_id, id=_random_id(),
                                           frm=envelope.did_of(opened.recipient_kid), to=msg.frm, now=now,
                                           offending_id=msg.id)
            rnd = os.urandom(28)
            env = envelope.seal_authcrypt(message.encode(report), pairwise, iv=rnd[:12], nonce=rnd[12:])
            with trio.move_on_after(SETUP_TIMEOUT):
                await served.send(frames.encode(Deliver(1, env)))
        except P2PError:
            pass
        await _close_with(served, exc.code)

    async def _seal_secret(self, keys: AgentKeys) -> bytes:
        if self.sealer.encrypts:  # Argon2id the first time: keep it off the event loop
            return await trio.to_thread.run_sync(self.sealer.seal, keys.to_cbor())
        return self.sealer.seal(keys.to_cbor())

    # --- public API: status, invitations --------------------------------------------------------

    async def status(self) -> dict:
        rels = self.store.relationship_counts()
        out = self.store.outbox_counts()
        return {"did": self.did, "endpoint": self.endpoint, "version": __version__, "role": self.role,
                "relationships": {"active": rels.get("active", 0), "revoked": rels.get("revoked", 0)},
                "outbox": {k: out.get(k, 0) for k in ("queued", "sent", "failed", "expired")},
                "connections": sum(1 for s in self.sessions.by_id.values() if s.link is not None),
                "uptime_s": int(self.clock() - self.started_at)}

    async def create_invitation(self, *, multi_use: bool = False, label: str | None = None,
                                expires_in: int | None = None) -> dict:
        if self.endpoint is None:
            raise BadArgument("the agent is not listening: an invitee could not reach it")
        if expires_in is not None and (type(expires_in) is not int or expires_in <= 0):
            raise BadArgument("expires_in is a positive number of seconds")
        now = self.now()
        invitation = inv.create(self.keys, self.did, id=_random_id(), label=self.config.label if label is None else label,
                                multi_use=bool(multi_use), now=now,
                                expires_time=None if expires_in is None else now + expires_in)
        kind = InvitationKind.MULTI_USE if invitation.multi_use else InvitationKind.ONE_TIME
        row = self.store.add_invitation(id=invitation.id, kind=kind, blob=invitation.signed, now=now,
                                        expires_at=invitation.expires_time)
        self._agent_keyring = None
        return self._invitation_dict(invitation, row.state, row.use_count)

    def _invitation_dict(self, invitation: inv.Invitation, state: str, uses: int) -> dict:
        return {"id": invitation.id, "url": invitation.url, "multi_use": invitation.multi_use,
                "label": invitation.label, "expires_time": invitation.expires_time,
                "created_time": invitation.created_time, "state": str(state), "use_count": uses}

    async def list_invitations(self) -> list[dict]:
        return [self._invitation_dict(inv.from_signed(r.blob), r.state, r.use_count)
                for r in self.store.list_invitations()]

    # --- LAN discovery (spec/15) ---------------------------------------------------------------

    async def discover_nearby(self, timeout: float = 3.0) -> dict:
        """Browse the LAN for advertised invitations for `timeout` seconds. Only what
        verified is in `nearby` (signed label, fingerprint, endpoint, URL); everything
        else is in `rejected` with its reason. Connecting goes through
        accept_invitation(url), which verifies the invitation again."""
        if type(timeout) not in (int, float) or not 0 < timeout <= MAX_DISCOVER_S:
            raise BadArgument(f"timeout is in (0, {MAX_DISCOVER_S}] seconds")
        from p2p.net import discovery  # zeroconf: only loaded by agents that browse

        try:
            scan = await discovery.scan(timeout, interfaces=self.config.discovery.interfaces, now=self.now())
        except OSError as exc:  # zeroconf could not bind or join the multicast group
            raise DiscoveryUnavailable(f"cannot browse the LAN: {exc.strerror or exc}") from None
        own = discovery.fingerprint(self.keys.signing.public)
        return {
            "nearby": [{"label": n.label, "fingerprint": n.fingerprint, "fingerprint_display": n.fingerprint_display,
                        "agent_did": n.agent_did, "endpoint": n.endpoint, "url": n.url,
                        "expires_time": n.expires_time, "own": n.fingerprint == own,
                        "advertised_label": n.advertised_label, "label_mismatch": n.label_mismatch,
                        "addresses": list(n.addresses), "name": n.name} for n in scan.nearby],
            "rejected": [{"name": r.name, "code": r.code, "detail": r.detail, "addresses": list(r.addresses)}
                         for r in scan.rejected],
        }

    # --- the invitee's side -------------------------------------------------------------------

    async def accept_invitation(self, url: str, *, label: str | None = None, timeout: float = 30) -> dict:
        """Connect to the inviter. `label` is our own name for the new relationship
        (shown and matched locally, never sent); by default it is the name the inviter
        presents. We present config.label to the inviter, as on every relationship."""
        if label is not None and (type(label) is not str or len(label) > connection.MAX_LABEL_CHARS):
            raise BadArgument(f"label is text of at most {connection.MAX_LABEL_CHARS} characters")
        now = self.now()
        invitation = inv.parse_url(url, now=now)
        conn = Connection.invitee(invitation)
        pair_keys = new_agent_keys()
        request = conn.request(pair_keys, id=_random_id(), now=now, label=self.config.label, endpoint=self.endpoint)
        rnd = os.urandom(28)
        env = conn.seal(request, iv=rnd[:12], nonce=rnd[12:])
        ep = invitation.endpoint
        with trio.move_on_after(timeout) as scope:
            noise = await connect(ep.host, ep.port, static=pair_keys.agreement, remote_static=ep.key.raw,
                                  timeout=min(timeout, 10.0), limits=self.config.limits)
            try:
                await noise.send(frames.encode(Deliver(1, env)))
                response, frame, opened = await self._await_response(noise, conn)
                complete = conn.receive_response(response, sender_kid=opened.sender_kid, complete_id=_random_id(),
                                                 now=self.now())
                rel = await self._store_invitee(conn, pair_keys, label, request, env, response, frame,
                                                opened, complete)
                await noise.send(frames.encode(Receipt((frame.seq,))))
            except BaseException:
                await noise.aclose()
                raise
        if scope.cancelled_caught:
            raise Timeout(f"no answer from the inviter within {timeout} s")
        # No checkpoint from here to attach: the session must not dial out meanwhile.
        session = self._add_session(rel)
        session.recv.taken(frame.seq)
        self.sessions.attach(session, noise)
        log.info("relationship.created", extra={"fields": {"relationship": session.rel_id, "role": "invitee"}})
        result = self._relationship_dict_safe(session.rel_id)
        self.hub.publish("relationship.created", relationship=result)
        self._activated(rel)
        return result

    async def _await_response(self, noise: Any, conn: Connection):
        while True:
            frame = frames.decode(await noise.receive())
            if type(frame) is frames.Close:
                raise SetupRefused(frame.reason, "the inviter closed the connection")
            if type(frame) is not Deliver:
                continue  # the receipt of our request
            opened = envelope.open(frame.envelope, conn.keyring())
            msg = message.decode(opened.plaintext, now=self.now(), understood=UNDERSTOOD)
            if msg.type == problem_report.PROBLEM_REPORT_TYPE and msg.pthid == conn.thid:
                report = problem_report.parse(msg)
                conn.receive_problem(report.pthid)
                raise SetupRefused(report.error_code, "the inviter refused the request")
            return msg, frame, opened

    async def _store_invitee(self, conn: Connection, pair_keys: AgentKeys, label: str | None, request: Message,
                             request_env: bytes, response: Message, frame: Deliver, opened: envelope.Opened,
                             complete: Message) -> _Relationship:
        now = self.now()
        # The relationship's label names the PEER: our name for it if we gave one, else
        # what the inviter calls itself (its response, else its invitation).
        label = label if label is not None else conn.their_label or conn.invitation.label
        our_secret = await self._seal_secret(pair_keys)
        rel_id = _random_id()
        with self.store.atomic():
            self.store.add_relationship(
                id=rel_id, our_did=conn.our_did, their_did=conn.their_did, their_ed25519=conn.their_signing,
                their_x25519=conn.their_agreement, our_secret=our_secret, now=now,
                endpoint=conn.their_endpoint.uri if conn.their_endpoint else None, label=label, role="invitee",
                their_label=conn.their_label, thid=conn.thid, invitation_id=conn.invitation.id,
                out_seq=1,  # the request travelled as seq 1
                their_agent_did=conn.invitation.inviter_did)
            self.store.record_received_many(
                [Incoming(rel_id, _sender_key(rel_id), response.id, response.thread_id, response.type, b"")], now,
                keep_payload=False)
            self.store.archive_many([
                ArchiveRecord(rel_id, "out", request.id, request.type, request.thread_id, message.encode(request),
                              pthid=request.pthid, seq=1, state=ArchiveState.DELIVERED,
                              created_time=request.created_time),
                ArchiveRecord(rel_id, "in", response.id, response.type, response.thread_id, opened.plaintext,
                              pthid=response.pthid, seq=frame.seq, created_time=response.created_time,
                              expires_time=response.expires_time)], now)
            rel = _Relationship(rel_id, conn, label, their_agent_did=conn.invitation.inviter_did)
            self._queue(rel, [complete], now)
        return rel

    # --- public API: relationships ------------------------------------------------------------

    def _relationship_dict(self, r: Any) -> dict:
        state = str(r.state)
        if state == "active" and r.setup:
            state = r.setup
        return {"id": r.id, "our_did": r.our_did, "their_did": r.their_did, "label": r.label or r.their_label,
                "their_label": r.their_label, "state": state, "role": r.role, "endpoint": r.endpoint,
                "created_time": r.created_at, "updated_time": r.updated_at,
                "outbox_pending": self.store.pending_count(r.id), "their_agent_did": r.their_agent_did,
                "muted": r.muted, "require_agreement": r.require_agreement}

    def _relationship_dict_safe(self, rel_id: str) -> dict:
        r = self.store.get_relationship(rel_id)
        if r is None:
            raise UnknownRelationship(f"no relationship {rel_id!r}")
        return self._relationship_dict(r)

    async def list_relationships(self, *, state: str | None = None) -> list[dict]:
        out = [self._relationship_dict(r) for r in self.store.list_relationships()]
        return out if state is None else [r for r in out if r["state"] == state]

    async def get_relationship(self, relationship_id: str) -> dict:
        return self._relationship_dict_safe(relationship_id)

    async def update_relationship(self, relationship_id: str, **changes: Any) -> dict:
        """Customer control: `muted` (bool: keep and show the peer's messages, without
        an alert) and `require_agreement` (bool, or None for the [terms] default:
        spec/17 §17.8). Other keys are a bad-argument."""
        unknown = set(changes) - {"muted", "require_agreement"}
        if unknown:
            raise BadArgument(f"unknown relationship settings {sorted(unknown)}")
        if "muted" in changes and type(changes["muted"]) is not bool:
            raise BadArgument("muted is true or false")
        if "require_agreement" in changes and type(changes["require_agreement"]) not in (bool, type(None)):
            raise BadArgument("require_agreement is true, false or null (the configured default)")
        if self.store.get_relationship(relationship_id) is None:
            raise UnknownRelationship(f"no relationship {relationship_id!r}")
        row = self.store.update_relationship(relationship_id, now=self.now(), **changes)
        session = self.sessions.by_id.get(relationship_id)
        if session is not None and "muted" in changes:
            session.state.muted = row.muted
        for hook in self._hooks["relationship_updated"]:
            hook(relationship_id, row)
        return self._relationship_dict(row)

    async def relationship_record(self, relationship_id: str) -> dict:
        """Everything the protocols keep about a relationship besides its messages
        (tickets, ownership records, agreements, notification settings): what an
        export adds to the message archive."""
        out = {"relationship": self._relationship_dict_safe(relationship_id)}
        for hook in self._hooks["export"]:
            out.update(hook(relationship_id))
        return jsonable(out)

    async def revoke(self, relationship_id: str, *, reason: str | None = None) -> dict:
        row = self.store.get_relationship(relationship_id)
        if row is None:
            raise UnknownRelationship(f"no relationship {relationship_id!r}")
        session = self.sessions.by_id.get(relationship_id)
        if row.state == "revoked" or session is None or session.revoked:
            return self._relationship_dict(row)
        rel: _Relationship = session.state
        now = self.now()
        msg = rel.conn.revoke(id=_random_id(), now=now, reason=reason, expires_time=now + REVOKE_EXPIRY)
        _, env = self._seal(rel, msg)  # sealed before the keys are erased (spec/10 §10.6)
        abandoned = self.store.revoke_relationship(
            relationship_id, now, final=Outgoing(msg.id, relationship_id, msg.thread_id, env,
                                                 expires_at=now + REVOKE_EXPIRY))
        for mid in abandoned:
            self.hub.publish("message.state", id=mid, relationship=relationship_id, state="failed")
        self._revoked(session, by="us")
        return self._relationship_dict_safe(relationship_id)

    # --- public API: messages -------------------------------------------------------------------

    def _build(self, rel: _Relationship, now: int, *, type: str, body: dict, thid: str | None = None,
               pthid: str | None = None, expires_in: int | None = None, please_ack: bool = False) -> Message:
        if not isinstance(body, dict):
            raise BadArgument("body is a JSON object")
        if expires_in is not None and (not isinstance(expires_in, int) or expires_in <= 0):
            raise BadArgument("expires_in is a positive number of seconds")
        mid = _random_id()
        expires = now + (expires_in if expires_in is not None else frames.DEFAULT_EXPIRY_S)
        return Message(id=mid, type=type, body=body, frm=rel.conn.our_did, to=(rel.conn.their_did,), thid=thid,
                       pthid=pthid, created_time=now, expires_time=expires,
                       please_ack=(mid,) if please_ack else None)

    async def send(self, relationship_id: str, *, type: str, body: dict, thid: str | None = None,
                   pthid: str | None = None, expires_in: int | None = None, please_ack: bool = False) -> dict:
        return (await self.send_many(relationship_id, [dict(type=type, body=body, thid=thid, pthid=pthid,
                                                            expires_in=expires_in, please_ack=please_ack)]))[0]

    async def send_many(self, relationship_id: str, messages: list[dict]) -> list[dict]:
        session = self._session(relationship_id)
        rel: _Relationship = session.state
        for m in messages:
            service = self._service_for(m["type"]) if isinstance(m, dict) and type(m.get("type")) is str else None
            if service is not None and getattr(service, "sole_sender", False):
                raise BadArgument(f"{service.protocol} messages are sent through the {service.name} routes, "
                                  "which keep its state")
        # An inviter may already queue messages while it waits for `complete`: they
        # travel after its response, in seq order, when the invitee is already active.
        now = self.now()
        try:
            msgs = [self._build(rel, now, **m) for m in messages]
            seqs = self._queue(rel, msgs, now)
        except TypeError as exc:
            raise BadArgument(f"unknown message field: {exc}") from None
        except LocalError as exc:
            if exc.code in ("local-error",):
                raise BadArgument(exc.detail) from None
            raise
        session.wake()
        return [{"id": m.id, "relationship": relationship_id, "thid": m.thread_id, "seq": seq, "state": "queued",
                 "created_time": m.created_time, "expires_time": m.expires_time} for m, seq in zip(msgs, seqs)]

    async def _request(self, relationship_id: str, msg_factory: Callable[[_Relationship, int], Message],
                       timeout: float) -> tuple[Any, float]:
        session = self._session(relationship_id)
        rel: _Relationship = session.state
        now = self.now()
        msg = msg_factory(rel, now)
        waiter = self._waiters[msg.id] = _Waiter()
        t0 = self.clock()
        try:
            self._queue(rel, [msg], now)
            session.wake()
            with trio.move_on_after(timeout):
                await waiter.event.wait()
        finally:
            del self._waiters[msg.id]
        if not waiter.event.is_set():
            raise Timeout(f"no answer within {timeout} s")
        if isinstance(waiter.result, P2PError):
            raise waiter.result
        return waiter.result, t0

    async def ping(self, relationship_id: str, *, timeout: float = 10) -> dict:
        expiry = math.ceil(timeout) + 1

        def make(rel: _Relationship, now: int) -> Message:
            return trust_ping.ping(id=_random_id(), frm=rel.conn.our_did, to=rel.conn.their_did, now=now,
                                   expires_time=now + expiry)
        answered_at, t0 = await self._request(relationship_id, make, timeout)
        return {"rtt_ms": round((answered_at - t0) * 1000, 3)}

    async def discover(self, relationship_id: str, *, match: str = "*", timeout: float = 10) -> list[dict]:
        def make(rel: _Relationship, now: int) -> Message:
            return discover.queries([discover.Query("protocol", match)], id=_random_id(), frm=rel.conn.our_did,
                                    to=rel.conn.their_did, now=now)
        features, _ = await self._request(relationship_id, make, timeout)
        return [jsonable(f.to_map()) for f in features]

    def _archived_dict(self, a: ArchivedMessage) -> dict:
        msg = message.decode(a.plaintext, understood=UNDERSTOOD)
        state = str(a.state)
        if state == "queued" and self.in_flight(a.relationship_id, a.message_id):
            state = "sent"  # on the wire, not receipted yet (the store says queued until then)
        return {"cursor": a.cursor, "id": a.message_id, "relationship": a.relationship_id, "direction": a.direction,
                "type": a.type, "thid": a.thid, "pthid": a.pthid, "from": msg.frm,
                "to": list(msg.to) if msg.to is not None else None, "created_time": a.created_time,
                "expires_time": a.expires_time, "body": jsonable(msg.body),
                "attachments": [jsonable(x.to_map()) for x in msg.attachments], "state": state, "seq": a.seq,
                "agreement": _agreement_of(msg)}

    def _inbound_dict(self, rel: _Relationship, msg: Message, seq: int, cursor: int) -> dict:
        return {"cursor": cursor, "id": msg.id, "relationship": rel.id, "direction": "in", "type": msg.type,
                "thid": msg.thread_id, "pthid": msg.pthid, "from": msg.frm,
                "to": list(msg.to) if msg.to is not None else None, "created_time": msg.created_time,
                "expires_time": msg.expires_time, "body": jsonable(msg.body),
                "attachments": [jsonable(x.to_map()) for x in msg.attachments], "state": "received", "seq": seq,
                "agreement": _agreement_of(msg)}

    async def messages(self, *, relationship: str | None = None, thid: str | None = None,
                       direction: str | None = None, type: str | None = None, after: int | None = None,
                       limit: int = 100, include_protocol: bool = False) -> list[dict]:
        """Archived messages, oldest first. Application messages only unless
        `include_protocol` (or a `type` is asked for by name): the archive keeps the
        core protocols' traffic too (connect, trust ping, discover, problem reports,
        acks), which is not the application's conversation."""
        if direction not in (None, "in", "out"):
            raise BadArgument("direction is 'in' or 'out'")
        if not isinstance(limit, int) or not 0 < limit <= MAX_LIST:
            raise BadArgument(f"limit is 1..{MAX_LIST}")
        rows = self.store.archived(relationship_id=relationship, thid=thid, direction=direction, type=type,
                                   after=after, limit=limit, exclude_type_prefixes=self._exclusions(include_protocol, type))
        return [self._archived_dict(a) for a in rows]

    async def get_message(self, message_id: str, *, relationship: str | None = None) -> dict:
        a = self.store.get_archived(message_id, relationship_id=relationship)
        if a is None:
            raise UnknownMessage(f"no message {message_id!r}")
        return self._archived_dict(a)

    async def thread(self, thid: str, *, include_protocol: bool = False) -> list[dict]:
        """The messages of one thread, in order; application messages only unless
        `include_protocol`. Raises UnknownThread if the thread has no message at all
        (a thread of protocol messages only is an empty list by default)."""
        rows = self.store.archived(thid=thid, limit=MAX_LIST, exclude_type_prefixes=self._exclusions(include_protocol))
        if not rows and (include_protocol or not self.store.archived(thid=thid, limit=1)):
            raise UnknownThread(f"no message in thread {thid!r}")
        return [self._archived_dict(a) for a in rows]

    def subscribe(self, *, buffer: int = 1024) -> EventSubscription:
        return EventSubscription(self.hub, buffer)


async def _wake_later(sessions: list[Session]) -> None:
    await trio.sleep(0)
    for session in sessions:
        session.wake()


async def _close_with(served: ServedConnection, reason: str) -> None:
    with trio.move_on_after(2):
        try:
            await served.send(frames.encode(frames.Close(reason)))
        except P2PError:
            pass


async def open_agent(config: Config, **kwargs: Any) -> Agent:
    """Agent.open off the event loop (unlocking may run Argon2id)."""
    return await trio.to_thread.run_sync(lambda: Agent.open(config, **kwargs))


__all__ = ["Agent", "EventHub", "EventSubscription", "Timeout", "UnknownMessage", "UnknownThread", "SetupRefused", "jsonable",
           "open_agent", "DiscoveryUnavailable"]
