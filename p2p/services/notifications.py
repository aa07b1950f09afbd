"""notifications/1.0 in the daemon (spec/16 §16.10): the I/O shell around
p2p/core/protocols/notifications.py.

Business side (agent.role == "business"): the topic catalogue (config default, then
the API; kept in the store), one `Audience` mirror per relationship, single notifies
and broadcasts, and the status of every notify it built. Customer side: one
`Subscriptions` per relationship (the source of truth), the check of every incoming
notify (a refused one is dropped and reported by the Agent: the application never
sees it), read receipts and quick replies.

State changes a peer causes are written inside the transaction that records its
message (`receive`); changes the API causes are written with the messages they send
in one `store.atomic()`. Events are published only after the commit.

Status (business side) is not written on the delivery path: it is computed from the
outbox (p2p/store/notifications.py). The only per-message work on the hot path is
the `acked` hook's set lookup.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from p2p.core import cbor, message as message_codec
from p2p.core.errors import BadArgument, LocalError, P2PError, RemoteError, StateError
from p2p.core.message import Message
from p2p.core.protocols import notifications as core, terms
from p2p.core.protocols.discover import Feature
from p2p.core.protocols.errors import UnexpectedMessage
from p2p.core.protocols.notifications import (Action, Audience, Link, RateLimit, Status, StatusEvent, Subscriptions,
                                              Topic)
from p2p.home import ConfigError
from p2p.services import BUSINESS, CUSTOMER, Peer, Received
from p2p.store import notifications as nstore

if TYPE_CHECKING:
    from p2p.agent import Agent

log = logging.getLogger("p2p.services.notifications")

NAME = "notifications"
MAX_LIST = 1000
MAX_STATE_BYTES = 1 << 20
CONFIG_KEYS = {"topics", "read_receipts"}
STATUSES = tuple(s.value for s in Status)
_CATALOGUE_CACHE_MAX = 64


class UnknownNotification(LocalError):
    code = "unknown-notification"


class UnknownBroadcast(LocalError):
    code = "unknown-broadcast"


class WrongRole(LocalError):
    """A business-only call on a customer's agent, or the reverse."""

    code = "wrong-role"


# --- state codecs (our own store's bytes: trusted, but still decoded strictly) ---------------


def _topics_blob(topics: tuple[Topic, ...]) -> bytes:
    return cbor.dumps([t.to_map() for t in topics])


def _rate(m: Any) -> RateLimit | None:
    return None if m is None else RateLimit(m[0], m[1])


def _rate_out(r: RateLimit | None) -> list | None:
    return None if r is None else [r.max, r.window]


class _Catalogues:
    """Decoded catalogues by their bytes: every relationship of a business holds the
    same one, so a broadcast decodes it once, not once per recipient."""

    def __init__(self) -> None:
        self._cache: dict[bytes, tuple[Topic, ...]] = {}

    def get(self, blob: bytes) -> tuple[Topic, ...]:
        topics = self._cache.get(blob)
        if topics is None:
            if len(self._cache) >= _CATALOGUE_CACHE_MAX:
                self._cache.clear()
            topics = core.parse_catalogue_body({"topics": cbor.loads(blob, max_size=MAX_STATE_BYTES)})
            self._cache[blob] = topics
        return topics


def encode_audience(a: Audience) -> bytes:
    return cbor.dumps({"catalogue": _topics_blob(a.catalogue), "topics": sorted(a.topics),
                       "rate_limit": _rate_out(a.rate_limit), "revision": a.revision, "sent": list(a.sent)})


def decode_audience(blob: bytes, catalogues: _Catalogues) -> Audience:
    m = cbor.loads(blob, max_size=MAX_STATE_BYTES)
    return Audience(catalogues.get(m["catalogue"]), frozenset(m["topics"]), _rate(m["rate_limit"]), m["revision"],
                    tuple(m["sent"]))


def encode_subscriptions(s: Subscriptions) -> bytes:
    return cbor.dumps({"catalogue": _topics_blob(s.catalogue), "topics": sorted(s.topics), "muted": sorted(s.muted),
                       "rate_limit": _rate_out(s.rate_limit), "read_receipts": s.read_receipts,
                       "revision": s.revision, "received": list(s.received), "last_time": s.last_time})


def decode_subscriptions(blob: bytes, catalogues: _Catalogues) -> Subscriptions:
    m = cbor.loads(blob, max_size=MAX_STATE_BYTES)
    return Subscriptions(catalogues.get(m["catalogue"]), frozenset(m["topics"]), frozenset(m["muted"]),
                         _rate(m["rate_limit"]), m["read_receipts"], m["revision"], tuple(m["received"]),
                         m["last_time"])


# --- input from the faces ------------------------------------------------------------------------


_TOPIC_KEYS = ("id", "title", "purpose", "default_urgency")


def parse_topics(raw: Any, *, fault: type[P2PError] = BadArgument, where: str = "topics") -> tuple[Topic, ...]:
    """A catalogue as the API or the config gives it: a list of {id, title, purpose?,
    default_urgency?} (`fault` is ConfigError for the config, BadArgument for the API)."""
    shape = "{" + ", ".join(_TOPIC_KEYS) + "}"
    if type(raw) is not list:
        raise fault(f"{where} is a list of {shape}")
    filled = []
    for i, t in enumerate(raw):
        if type(t) is not dict:
            raise fault(f"{where}[{i}] is a table/object {shape}")
        unknown = set(t) - set(_TOPIC_KEYS)
        if unknown:
            raise fault(f"{where}[{i}]: unknown keys {sorted(unknown)}")
        filled.append({"purpose": "", "default_urgency": "normal", **t})
    try:
        return core.parse_catalogue_body({"topics": filled})
    except RemoteError as exc:
        raise fault(exc.detail.replace("body.topics", where)) from None


def _links(raw: Any) -> tuple[Link, ...]:
    if raw is None:
        return ()
    if type(raw) is not list:
        raise BadArgument("links is a list of {title, url}")
    out = []
    for i, item in enumerate(raw):
        if type(item) is not dict or set(item) != {"title", "url"}:
            raise BadArgument(f"links[{i}] is an object {{title, url}}")
        out.append(Link(item["title"], item["url"]))
    return tuple(out)


def _actions(raw: Any) -> tuple[Action, ...]:
    if raw is None:
        return ()
    if type(raw) is not list:
        raise BadArgument("actions is a list of {id, label}")
    out = []
    for i, item in enumerate(raw):
        if type(item) is not dict or set(item) != {"id", "label"}:
            raise BadArgument(f"actions[{i}] is an object {{id, label}}")
        out.append(Action(item["id"], item["label"]))
    return tuple(out)


def _topic_list(raw: Any, name: str) -> list[str]:
    if raw is None:
        return []
    if type(raw) is not list or not all(type(t) is str for t in raw):
        raise BadArgument(f"{name} is a list of topic ids")
    return raw


def _rate_limit(raw: Any) -> RateLimit | None:
    if raw is None:
        return None
    if type(raw) is not dict or set(raw) != {"max", "window"}:
        raise BadArgument("rate_limit is an object {max, window}: at most `max` notifications in `window` seconds")
    return RateLimit(raw["max"], raw["window"])


def _advance(status: Status, event: StatusEvent) -> Status:
    """next_status, taking a message the customer answered about (a receipt, a read, a
    refusal) as proof that it was sent: after a reconnect the outbox row may still
    say queued (it is marked only at its receipt)."""
    if status is Status.QUEUED and event in (StatusEvent.RECEIPT, StatusEvent.READ, StatusEvent.REFUSED):
        status = Status.SENT
    return core.next_status(status, event)


def _topics_view(topics: tuple[Topic, ...]) -> list[dict]:
    return [t.to_map() for t in topics]


# --- the service -------------------------------------------------------------------------------


class NotificationsService:
    name = NAME
    protocol = core.PROTOCOL
    # The settings traffic; notifies and quick replies stay in the inbox.
    quiet = (core.CATALOGUE_TYPE, core.SUBSCRIBE_TYPE, core.UNSUBSCRIBE_TYPE, core.PREFERENCES_TYPE,
             core.READ_TYPE)

    def __init__(self, agent: Agent, *, topics: tuple[Topic, ...] = (), read_receipts: bool = False) -> None:
        self.agent = agent
        self.store = agent.store
        self.side = BUSINESS if agent.role == BUSINESS else CUSTOMER
        self.features = (Feature("protocol", core.PROTOCOL, ("sender",) if self.side == BUSINESS else ("recipient",)),)
        self._catalogues = _Catalogues()
        self.default_read_receipts = read_receipts
        self.catalogue: tuple[Topic, ...] = ()
        # Business: notifies still waiting for their receipt, so the `acked` hook that
        # runs for every delivered message is a set lookup (no query per message).
        self._unacked: set[str] = set()
        self._unacked_reload_at = 0
        if self.side == BUSINESS:
            blob = nstore.load_catalogue(self.store)
            if blob is not None:
                self.catalogue = self._catalogues.get(blob)
            else:
                self.catalogue = topics
            self._reload_unacked()

    # --- helpers ---------------------------------------------------------------------------

    def _reload_unacked(self) -> None:
        self._unacked = set(nstore.live_ids(self.store))
        # Expired or failed notifies are never receipted: reload from the outbox's live
        # rows when the set has doubled, so it stays bounded by what is really pending.
        self._unacked_reload_at = max(4096, 2 * len(self._unacked))

    def _track(self, ids: list[str]) -> None:
        self._unacked.update(ids)
        if len(self._unacked) > self._unacked_reload_at:
            self._reload_unacked()

    def _business(self) -> None:
        if self.side != BUSINESS:
            raise WrongRole("this is a customer's agent: notifying is for role = \"business\"")

    def _customer(self) -> None:
        if self.side != CUSTOMER:
            raise WrongRole("this is a business's agent: subscriptions are the customer's")

    def _audience(self, rel_id: str) -> Audience:
        blob = nstore.load_state(self.store, rel_id)
        return Audience(catalogue=self.catalogue) if blob is None else decode_audience(blob, self._catalogues)

    def _subscriptions(self, rel_id: str) -> Subscriptions:
        blob = nstore.load_state(self.store, rel_id)
        if blob is None:
            return Subscriptions(read_receipts=self.default_read_receipts)
        return decode_subscriptions(blob, self._catalogues)

    def _status(self, row: nstore.Row) -> str:
        if row.status == "queued" and self.agent.in_flight(row.relationship_id, row.message_id):
            return "sent"
        return row.status

    def _view(self, row: nstore.Row) -> dict:
        out = {"id": row.message_id, "relationship": row.relationship_id, "topic": row.topic,
               "status": self._status(row), "created_time": row.created_at, "broadcast": row.broadcast_id,
               "read_time": row.read_at, "action": row.action, "action_time": row.action_at}
        if self.side == BUSINESS:
            out["refused"] = row.refused
        return out

    def _full_view(self, row: nstore.Row) -> dict:
        """The view with what the notify said (from the archive): what a customer's
        application shows, and what a business sent."""
        out = self._view(row)
        n = self._archived_notify(row.message_id, row.relationship_id, "out" if self.side == BUSINESS else "in")
        if n is not None:
            out.update(title=n.title, body=n.text, urgency=n.urgency, expires_time=n.expires_time,
                       links=[{"title": x.title, "url": x.url} for x in n.links],
                       actions=[{"id": x.id, "label": x.label} for x in n.actions])
        return out

    def _status_event(self, row: nstore.Row, status: str) -> dict:
        return {"id": row.message_id, "relationship": row.relationship_id, "topic": row.topic, "status": status,
                "broadcast": row.broadcast_id}

    def _archived_notify(self, message_id: str, rel_id: str, direction: str) -> core.Notification | None:
        a = self.store.get_archived(message_id, relationship_id=rel_id, direction=direction)
        if a is None or a.type != core.NOTIFY_TYPE:
            return None
        try:
            return core.parse_notify(message_codec.decode(a.plaintext, understood=terms.UNDERSTOOD))
        except RemoteError:
            return None

    # --- Service: receive ---------------------------------------------------------------------

    def receive(self, peer: Peer, msg: Message, tx: Received) -> None:
        if self.side == BUSINESS:
            self._receive_business(peer, msg, tx)
        else:
            self._receive_customer(peer, msg, tx)

    def _receive_customer(self, peer: Peer, msg: Message, tx: Received) -> None:
        t = msg.type
        if t == core.NOTIFY_TYPE:
            subs = self._subscriptions(peer.id)
            subs, decision = subs.receive_notify(msg, now=tx.now)
            if not decision.deliver:
                raise decision.error  # the Agent drops it and reports it (spec/16 §16.4)
            n = decision.notification
            nstore.save_states(self.store, [(peer.id, encode_subscriptions(subs))], tx.now)
            nstore.add_many(self.store, [(n.id, peer.id, n.topic, None, n.created_time)], ignore=True)
            tx.alert = decision.alert
            tx.publish("notification.received", id=n.id, relationship=peer.id, topic=n.topic, title=n.title,
                       urgency=n.urgency, alert=decision.alert)
        elif t == core.CATALOGUE_TYPE:
            subs = self._subscriptions(peer.id).receive_catalogue(msg)
            nstore.save_states(self.store, [(peer.id, encode_subscriptions(subs))], tx.now)
            tx.publish("notification.catalogue", relationship=peer.id, topics=_topics_view(subs.catalogue),
                       subscribed=sorted(subs.topics))
        else:
            raise UnexpectedMessage(f"a customer's agent takes no {t.rsplit('/', 1)[-1]} (only a business sends it)")

    def _receive_business(self, peer: Peer, msg: Message, tx: Received) -> None:
        t = msg.type
        if t in (core.SUBSCRIBE_TYPE, core.UNSUBSCRIBE_TYPE, core.PREFERENCES_TYPE):
            before = self._audience(peer.id)
            after = before.receive(msg)
            if after is not before:
                nstore.save_states(self.store, [(peer.id, encode_audience(after))], tx.now)
                tx.publish("subscription.changed", relationship=peer.id, topics=sorted(after.topics),
                           rate_limit=after.limit.to_map(), revision=after.revision)
        elif t == core.ACTION_TYPE:
            sent = self._archived_notify(msg.thid or "", peer.id, "out") if msg.thid else None
            if sent is None:
                raise UnexpectedMessage("an action's thid names no notify we sent on this relationship")
            action_id = core.parse_action(msg, sent)
            row = nstore.get(self.store, sent.id, relationship_id=peer.id)
            nstore.set_action(self.store, sent.id, peer.id, action_id, tx.now)
            tx.publish("notification.action", id=sent.id, relationship=peer.id, topic=sent.topic, action=action_id,
                       broadcast=row.broadcast_id if row else None, message=msg.id)
        elif t == core.READ_TYPE:
            thid = core.parse_read(msg)
            row = nstore.get(self.store, thid, relationship_id=peer.id)
            if row is None:
                raise UnexpectedMessage("a read receipt's thid names no notify we sent on this relationship")
            try:
                _advance(Status(self._status(row)), StatusEvent.READ)
            except StateError:  # e.g. expired: the status stays (spec/16 §16.7)
                log.info("notification.read_ignored", extra={"fields": {"id": row.message_id,
                                                                          "status": row.status}})
                return
            nstore.set_read(self.store, row.message_id, peer.id, tx.now)
            tx.publish("notification.status", **self._status_event(row, "read"))
        else:
            raise UnexpectedMessage(f"a business's agent takes no {t.rsplit('/', 1)[-1]} (only a customer sends it)")

    # --- Service hooks ----------------------------------------------------------------------

    def started(self) -> None:
        """A business's catalogue may have changed while it was down (config.toml):
        offer it to every customer whose mirror holds another one, so existing
        customers see new topics, not only new customers."""
        if self.side != BUSINESS or not self.catalogue:
            return
        states = nstore.load_states(self.store)
        stale = [p for p in self.agent.peers()
                 if (blob := states.get(p.id)) is None or decode_audience(blob, self._catalogues).catalogue
                 != self.catalogue]
        if stale:
            offered = self._offer(stale, self.catalogue)
            log.info("notification.catalogue", extra={"fields": {"topics": len(self.catalogue),
                                                                  "offered_to": offered}})

    def activated(self, peer: Peer) -> None:
        try:
            if self.side == BUSINESS:
                if self.catalogue:
                    self._offer([peer], self.catalogue)
            elif self.default_read_receipts:
                with self.store.atomic():
                    if nstore.load_state(self.store, peer.id) is None:
                        nstore.save_states(self.store, [(peer.id, encode_subscriptions(self._subscriptions(peer.id)))],
                                           self.agent.now())
        except P2PError as exc:  # the relationship went away meanwhile: nothing to offer to
            log.info("notification.offer_failed", extra={"fields": {"relationship": peer.id, "code": exc.code}})

    def acked(self, peer: Peer, message_ids: list[str]) -> None:
        unacked = self._unacked
        if not unacked:
            return
        hits = [m for m in message_ids if m in unacked]
        if not hits:
            return
        unacked.difference_update(hits)
        if not self.agent.hub.active:
            return
        for row in nstore.get_many(self.store, peer.id, hits):
            # Before this receipt it was on the wire, unless a read overtook the receipt
            # or a refusal came first: those keep their status (spec/16 §16.7).
            before = Status.READ if row.read_at is not None else Status.FAILED if row.refused else Status.SENT
            try:
                status = _advance(before, StatusEvent.RECEIPT)
            except StateError:
                continue
            self.agent.hub.publish("notification.status", **self._status_event(row, status.value))

    def problem(self, peer: Peer, report: Any) -> None:
        if self.side != BUSINESS:
            log.info("notification.problem", extra={"fields": {"relationship": peer.id, "code": report.error_code}})
            return
        code = report.error_code
        row = nstore.get(self.store, report.pthid, relationship_id=peer.id)
        if row is None:
            # A notify sent around the service (raw POST /v1/messages) is still ours.
            sent = self._archived_notify(report.pthid, peer.id, "out")
            if sent is None:
                return
            nstore.add_refused(self.store, sent.id, peer.id, sent.topic, sent.created_time, code)
            row = nstore.get(self.store, sent.id, relationship_id=peer.id)
        else:
            try:
                _advance(Status(self._status(row)), StatusEvent.REFUSED)
            except StateError:
                return
            nstore.set_refused(self.store, row.message_id, peer.id, code)
        self._unacked.discard(row.message_id)
        log.info("notification.refused", extra={"fields": {"id": row.message_id, "relationship": peer.id,
                                                            "code": code}})
        self.agent.hub.publish("notification.status", **self._status_event(row, "failed"), error=code)

    def export(self, relationship_id: str) -> dict:
        blob = nstore.load_state(self.store, relationship_id)
        if self.side == BUSINESS:
            a = decode_audience(blob, self._catalogues) if blob else Audience(catalogue=self.catalogue)
            rows = nstore.listing(self.store, side=BUSINESS, relationship_id=relationship_id, limit=1_000_000)
            return {"notifications": {"side": BUSINESS, "catalogue": _topics_view(a.catalogue),
                                      "subscribed": sorted(a.topics), "rate_limit": a.limit.to_map(),
                                      "revision": a.revision, "sent": [self._view(r) for r in rows]}}
        s = decode_subscriptions(blob, self._catalogues) if blob else self._subscriptions(relationship_id)
        return {"notifications": {"side": CUSTOMER, **self._subscriptions_view(relationship_id, s),
                                  "received": nstore.received_counts(self.store, relationship_id)}}

    # --- business API -----------------------------------------------------------------------

    async def topics(self) -> dict:
        if self.side == BUSINESS:
            return {"topics": _topics_view(self.catalogue)}
        raise WrongRole("a customer's agent has one catalogue per business: GET /v1/relationships/{id}/subscriptions")

    def _offer(self, peers: list[Peer], topics: tuple[Topic, ...]) -> int:
        now = self.agent.now()
        states = nstore.load_states(self.store) if len(peers) > 1 else {}
        with self.store.atomic():
            out = []
            for peer in peers:
                blob = states.get(peer.id) if states else nstore.load_state(self.store, peer.id)
                a = Audience(catalogue=self.catalogue) if blob is None else decode_audience(blob, self._catalogues)
                a, msg = a.offer(topics, id=self.agent.new_id(), frm=peer.our_did, to=peer.their_did, now=now)
                self.agent.queue(peer.id, [msg])
                out.append((peer.id, encode_audience(a)))
            nstore.save_states(self.store, out, now)
        return len(out)

    async def set_topics(self, topics: Any) -> dict:
        self._business()
        catalogue = parse_topics(topics)
        with self.store.atomic():
            nstore.save_catalogue(self.store, _topics_blob(catalogue))
            old, self.catalogue = self.catalogue, catalogue
            try:
                offered = self._offer(self.agent.peers(), catalogue)
            except BaseException:
                self.catalogue = old
                raise
        log.info("notification.catalogue", extra={"fields": {"topics": len(catalogue), "offered_to": offered}})
        return {"topics": _topics_view(catalogue), "offered_to": offered}

    def _topic(self, topic: Any) -> Topic:
        if type(topic) is not str:
            raise BadArgument("topic is a topic id")
        for t in self.catalogue:
            if t.id == topic:
                return t
        raise BadArgument(f"{topic!r} is not in our catalogue")

    def _content(self, topic: str, title: Any, body: Any, urgency: Any, links: Any, actions: Any,
                 expires_in: Any, now: int) -> dict:
        t = self._topic(topic)
        if expires_in is not None and (type(expires_in) is not int or expires_in <= 0):
            raise BadArgument("expires_in is a positive number of seconds")
        return {"topic": t.id, "title": title, "text": body, "urgency": urgency or t.default_urgency,
                "links": _links(links), "actions": _actions(actions),
                "expires_time": None if expires_in is None else now + expires_in}

    async def notify(self, relationship: str, topic: str, title: str, body: str, urgency: str | None = None,
                     links: Any = None, actions: Any = None, expires_in: int | None = None) -> dict:
        self._business()
        agent = self.agent
        peer = agent.peer(relationship)
        now = agent.now()
        content = self._content(topic, title, body, urgency, links, actions, expires_in, now)
        a = self._audience(peer.id)
        a, msg = a.notify(**content, id=agent.new_id(), frm=peer.our_did, to=peer.their_did, now=now)
        with self.store.atomic():
            agent.queue(peer.id, [msg])
            nstore.save_states(self.store, [(peer.id, encode_audience(a))], now)
            nstore.add_many(self.store, [(msg.id, peer.id, topic, None, now)])
        self._track([msg.id])
        out = {"id": msg.id, "relationship": peer.id, "topic": topic, "status": "queued", "created_time": now,
               "broadcast": None}
        agent.hub.publish("notification.status", id=msg.id, relationship=peer.id, topic=topic, status="queued",
                          broadcast=None)
        return out

    async def broadcast(self, topic: str, title: str, body: str, urgency: str | None = None, links: Any = None,
                        actions: Any = None, expires_in: int | None = None) -> dict:
        """One notify to every subscriber of `topic`, all committed in ONE transaction.
        Relationships whose mirror says subscribed but whose rate limit is used up are
        skipped (and listed); others are not recipients at all."""
        self._business()
        agent = self.agent
        now = agent.now()
        content = self._content(topic, title, body, urgency, links, actions, expires_in, now)
        # Check the content once, up front: a bad link is the caller's error, not a
        # per-recipient skip.
        Audience(catalogue=self.catalogue, topics=frozenset({topic})).notify(
            **content, id="probe", frm="did:example:probe", to="did:example:probe", now=now)
        states = nstore.load_states(self.store)
        bid = agent.new_id()
        sends, skips, rows, new_states = [], [], [], []
        catalogues = self._catalogues
        for peer in agent.peers():
            blob = states.get(peer.id)
            if blob is None:
                continue
            a = decode_audience(blob, catalogues)
            if topic not in a.topics:
                continue  # not a subscriber: not a recipient
            try:
                a, msg = a.notify(**content, id=agent.new_id(), frm=peer.our_did, to=peer.their_did, now=now)
            except LocalError as exc:  # rate-limit-reached, or a topic its mirror no longer offers
                skips.append((peer.id, exc.code))
                continue
            sends.append((peer.id, msg))
            rows.append((msg.id, peer.id, topic, bid, now))
            new_states.append((peer.id, encode_audience(a)))
        record = nstore.Broadcast(bid, topic, title, now, len(sends), len(skips))
        # Sealing and outbox/archive writes dominate; an Agent.queue_many (one
        # enqueue_many and one archive_many for the whole batch) is used if the Agent has it.
        queue_many = getattr(agent, "queue_many", None)
        with self.store.atomic():
            if queue_many is not None:
                queue_many([(rel_id, [msg]) for rel_id, msg in sends])
            else:
                for rel_id, msg in sends:
                    agent.queue(rel_id, [msg])
            nstore.save_states(self.store, new_states, now)
            nstore.add_many(self.store, rows)
            nstore.add_broadcast(self.store, record, skips)
        self._track([r[0] for r in rows])
        skipped: dict[str, int] = {}
        for _, reason in skips:
            skipped[reason] = skipped.get(reason, 0) + 1
        log.info("notification.broadcast", extra={"fields": {"id": bid, "topic": topic, "recipients": len(sends),
                                                              "skipped": len(skips)}})
        agent.hub.publish("notification.broadcast", id=bid, topic=topic, recipients=len(sends), skipped=skipped)
        return {"id": bid, "topic": topic, "created_time": now, "recipients": len(sends), "skipped": skipped}

    async def broadcast_status(self, broadcast_id: str) -> dict:
        self._business()
        b = nstore.get_broadcast(self.store, broadcast_id)
        if b is None:
            raise UnknownBroadcast(f"no broadcast {broadcast_id!r}")
        counts = dict.fromkeys(STATUSES, 0)
        in_flight = self.agent.in_flight
        for rel_id, mid, status in nstore.broadcast_statuses(self.store, broadcast_id):
            if status == "queued" and in_flight(rel_id, mid):
                status = "sent"
            counts[status] += 1
        return {"id": b.id, "topic": b.topic, "title": b.title, "created_time": b.created_at,
                "recipients": b.recipients, "skipped": nstore.skip_counts(self.store, broadcast_id),
                "counts": counts, "done": counts["queued"] + counts["sent"] == 0}

    async def broadcast_recipients(self, broadcast_id: str, *, after: str | None = None, limit: int = 100) -> dict:
        self._business()
        if nstore.get_broadcast(self.store, broadcast_id) is None:
            raise UnknownBroadcast(f"no broadcast {broadcast_id!r}")
        rows = nstore.broadcast_page(self.store, broadcast_id, after=after, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        in_flight = self.agent.in_flight
        out = []
        for rel_id, mid, status, reason in page:
            if status == "queued" and in_flight(rel_id, mid):
                status = "sent"
            item = {"relationship": rel_id, "notification": mid, "status": status}
            if reason is not None:
                item["reason"] = reason
            out.append(item)
        return {"recipients": out, "next_after": page[-1][0] if more else None}

    # --- both sides -------------------------------------------------------------------------

    async def notification(self, notification_id: str) -> dict:
        row = nstore.get(self.store, notification_id, side=self.side)
        if row is None:
            raise UnknownNotification(f"no notification {notification_id!r}")
        return self._full_view(row)

    async def notifications(self, *, relationship: str | None = None, topic: str | None = None,
                            status: str | None = None, after: int | None = None, limit: int = 100) -> dict:
        if not isinstance(limit, int) or not 0 < limit <= MAX_LIST:
            raise BadArgument(f"limit is 1..{MAX_LIST}")
        allowed = STATUSES if self.side == BUSINESS else ("received", "read")
        if status is not None and status not in allowed:
            raise BadArgument(f"status is one of {', '.join(allowed)}")
        # 'sent' is 'queued' in the store while the frame is on the wire.
        statuses = () if status is None else ("queued",) if status == "sent" else (status,)
        rows = nstore.listing(self.store, side=self.side, relationship_id=relationship, topic=topic,
                              statuses=statuses, after=after, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        views = [self._full_view(r) for r in page]
        if status in ("queued", "sent"):
            views = [v for v in views if v["status"] == status]
        return {"notifications": views, "next_after": page[-1].cursor if more else None}

    # --- customer API -----------------------------------------------------------------------

    def _subscriptions_view(self, rel_id: str, s: Subscriptions) -> dict:
        return {"relationship": rel_id,
                "catalogue": [{**t.to_map(), "subscribed": t.id in s.topics, "muted": t.id in s.muted}
                              for t in s.catalogue],
                "subscribed": sorted(s.topics), "muted": sorted(s.muted), "rate_limit": s.limit.to_map(),
                "read_receipts": s.read_receipts, "revision": s.revision}

    async def subscriptions(self, relationship: str) -> dict:
        self._customer()
        peer = self.agent.peer(relationship)
        return self._subscriptions_view(peer.id, self._subscriptions(peer.id))

    async def update_subscriptions(self, relationship: str, *, subscribe: Any = None, unsubscribe: Any = None,
                                   rate_limit: Any = None, read_receipts: Any = None, mute: Any = None,
                                   unmute: Any = None, resync: Any = None) -> dict:
        """Apply, in this order: subscribe (carrying a new rate limit), unsubscribe, a
        rate-limit change alone (a preferences snapshot), mute, unmute, receipts; every
        message it causes and the new state are one commit. All or nothing."""
        self._customer()
        agent = self.agent
        peer = agent.peer(relationship)
        sub, unsub = _topic_list(subscribe, "subscribe"), _topic_list(unsubscribe, "unsubscribe")
        mutes, unmutes = _topic_list(mute, "mute"), _topic_list(unmute, "unmute")
        if set(sub) & set(unsub):
            raise BadArgument("a topic is both subscribed and unsubscribed")
        if set(mutes) & set(unmutes):
            raise BadArgument("a topic is both muted and unmuted")
        rate = _rate_limit(rate_limit)
        if read_receipts is not None and type(read_receipts) is not bool:
            raise BadArgument("read_receipts is true or false")
        if resync is not None and type(resync) is not bool:
            raise BadArgument("resync is true or false")
        now = agent.now()
        ids = {"frm": peer.our_did, "to": peer.their_did, "now": now}
        s = before = self._subscriptions(peer.id)
        msgs = []
        if sub:
            s, m = s.subscribe(sub, id=agent.new_id(), rate_limit=rate, **ids)
            msgs.append(m)
        if unsub:
            s, m = s.unsubscribe(unsub, id=agent.new_id(), **ids)
            msgs.append(m)
        if (rate is not None and not sub) or resync:
            s, m = s.preferences(id=agent.new_id(), rate_limit=rate, **ids)
            msgs.append(m)
        for t in mutes:
            s = s.mute(t)
        for t in unmutes:
            s = s.unmute(t)
        if read_receipts is not None:
            s = s.with_read_receipts(read_receipts)
        if s != before or msgs:
            with self.store.atomic():
                nstore.save_states(self.store, [(peer.id, encode_subscriptions(s))], now)
                if msgs:
                    agent.queue(peer.id, msgs)
            agent.hub.publish("subscription.changed", relationship=peer.id, topics=sorted(s.topics),
                              muted=sorted(s.muted), rate_limit=s.limit.to_map(), revision=s.revision,
                              read_receipts=s.read_receipts)
        return {**self._subscriptions_view(peer.id, s), "sent": [m.id for m in msgs]}

    def _received(self, notification_id: str) -> tuple[nstore.Row, core.Notification]:
        self._customer()
        row = nstore.get(self.store, notification_id, side=CUSTOMER)
        if row is None:
            raise UnknownNotification(f"no notification {notification_id!r}")
        n = self._archived_notify(row.message_id, row.relationship_id, "in")
        if n is None:
            raise UnknownNotification(f"notification {notification_id!r} is no longer in the archive")
        return row, n

    async def read(self, notification_id: str) -> dict:
        """The customer's application showed it: remember that, and send a read
        receipt if (and only if) the customer enabled them; once."""
        row, n = self._received(notification_id)
        agent = self.agent
        sent = None
        if row.read_at is None:
            now = agent.now()
            peer = agent.peer(row.relationship_id)
            s = self._subscriptions(peer.id)
            receipt = s.read_receipt(n, id=agent.new_id(), frm=peer.our_did, to=peer.their_did, now=now)
            with self.store.atomic():
                nstore.set_read(self.store, row.message_id, peer.id, now)
                if receipt is not None:
                    agent.queue(peer.id, [receipt])
            sent = receipt.id if receipt is not None else None
            row = nstore.get(self.store, row.message_id, relationship_id=peer.id, side=CUSTOMER)
        return {**self._view(row), "receipt": sent}

    async def act(self, notification_id: str, action: Any) -> dict:
        """Answer with one of the quick replies the notify offered."""
        row, n = self._received(notification_id)
        if type(action) is not str:
            raise BadArgument("action is the id of one of the notification's actions")
        if row.action is not None:
            raise StateError(f"already answered with {row.action!r}")
        agent = self.agent
        peer = agent.peer(row.relationship_id)
        now = agent.now()
        msg = self._subscriptions(peer.id).action(n, action, id=agent.new_id(), frm=peer.our_did,
                                                  to=peer.their_did, now=now)
        with self.store.atomic():
            nstore.set_action(self.store, row.message_id, peer.id, action, now)
            agent.queue(peer.id, [msg])
        row = nstore.get(self.store, row.message_id, relationship_id=peer.id, side=CUSTOMER)
        return {**self._view(row), "message": msg.id}


def create(agent: Agent) -> NotificationsService:
    cfg = agent.config.services.get(NAME) or {}
    unknown = set(cfg) - CONFIG_KEYS
    if unknown:
        raise ConfigError(f"unknown [notifications] keys {sorted(unknown)}")
    topics: tuple[Topic, ...] = ()
    if "topics" in cfg:
        if agent.role != BUSINESS:
            raise ConfigError("[notifications] topics is a business's catalogue: set role = \"business\"")
        topics = parse_topics(cfg["topics"], fault=ConfigError, where="[notifications] topics")
    receipts = cfg.get("read_receipts", False)
    if type(receipts) is not bool:
        raise ConfigError("[notifications] read_receipts is true or false")
    if receipts and agent.role == BUSINESS:
        raise ConfigError("[notifications] read_receipts is a customer's setting")
    return NotificationsService(agent, topics=topics, read_receipts=receipts)


__all__ = ["NotificationsService", "create", "UnknownNotification", "UnknownBroadcast", "WrongRole",
           "encode_audience", "decode_audience", "encode_subscriptions", "decode_subscriptions", "parse_topics"]
