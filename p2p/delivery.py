"""Sessions: one Noise connection per relationship, the outbox sender and the receiver.

spec/12-delivery.md is normative; this module is its I/O half (the frames and the
sequence windows are sans-IO in p2p.core.protocols.delivery).

* A `Session` is one relationship's delivery state: at most one live `Link` (a Noise
  connection carrying only that relationship's frames, in both directions), the
  receive window, the dial backoff and the wake-up for new outbound work.
* `Sessions` runs them all under one nursery. Each session has a task that dials
  the peer while messages are queued and no link is up (exponential backoff with
  full jitter, spec/12 §12.6); each link has a writer (outbox -> deliver frames, in
  seq order, at most `WINDOW` unreceipted) and a reader (frames -> one batch ->
  `Receiver.take` commits it -> one receipt).
* On the listening side, the initiator's Noise static key names the relationship
  (spec/12 §12.3): it is the peer's pairwise X25519 key. A key we do not know gets a
  *setup connection*, handed to `Receiver.setup` (a connect request for a live
  invitation, or a quick close).

The protocol work (opening envelopes, dispatch, storing) is the `Receiver`'s, i.e.
the Agent's: this module only moves frames and keeps the windows.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

import trio

from p2p.core.errors import RemoteError
from p2p.core.protocols import delivery as frames
from p2p.core.protocols.delivery import Close, Deliver, Receipt, ReceiveWindow, SendWindow
from p2p.core.protocols.endpoint import Endpoint
from p2p.net import ConnectionClosed, ServedConnection, TransportLimits, connect, serve_connection
from p2p.store import SQLiteStore

log = logging.getLogger("p2p.delivery")

WINDOW = 256  # unreceipted deliver frames per connection (spec/12 §12.4 rule 3)
RECEIPT_TIMEOUT = 60.0  # frames outstanding and no receipt for this long: reconnect (rule 5)
RESEND_AFTER = 60  # seconds; an outbox row marked sent is "due again" after this (store bookkeeping)
DIAL_TIMEOUT = 10.0
CLOSE_TIMEOUT = 2.0
# A link with nothing in flight and no frame either way for this long is closed
# (`close` reason idle, spec/12 §12.4 rule 7): links are cheap to dial again, and an
# open one holds a slot of the peer's listener (its connection cap, spec/09 §9.3).
LINK_IDLE = 30.0
# Frames per receive batch (one commit, one receipt). Smaller than WINDOW on purpose:
# the sender gets receipts for the first part of its window while we still work on
# the rest, so both sides stay busy instead of taking turns.
MAX_BATCH = 64


def fingerprint(public: bytes) -> str:
    """A public key prefix for logs: tells peers apart, reveals nothing secret."""
    return public[:4].hex()


def spec_backoff(attempt: int) -> float:
    """Seconds before dial attempt `attempt + 1` (spec/12 §12.6: base 1 s, cap 300 s, full jitter)."""
    return frames.backoff_ms(attempt, int.from_bytes(os.urandom(4), "big")) / 1000


class Receiver(Protocol):
    """What the engine needs from the protocol layer (the Agent)."""

    async def take(self, session: Session, delivers: list[Deliver]) -> list[int]:
        """Process deliver frames (new ones only: seq above the window), commit, and
        return every seq to receipt. Called with the session's receive lock held."""

    async def setup(self, served: ServedConnection) -> Session | None:
        """A connection from an unknown static key: a connect request, or nothing."""

    def acked(self, session: Session, message_ids: list[str]) -> None:
        """The peer receipted these outbound messages (already marked in the store)."""

    def sent(self, session: Session, message_ids: list[str]) -> None:
        """Deliver frames carried these outbound messages (not yet receipted)."""


class Link:
    """One established connection carrying one relationship's frames."""

    __slots__ = ("served", "initiated_by_us", "scope", "done", "window", "in_flight", "receipted",
                 "last_receipt", "closing")

    def __init__(self, initiated_by_us: bool) -> None:
        self.served: ServedConnection | None = None
        self.initiated_by_us = initiated_by_us
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        self.window = SendWindow(WINDOW)
        self.in_flight: dict[int, str] = {}  # seq -> message id, in send order
        self.receipted = False  # at least one receipt arrived: the peer is really there
        self.last_receipt = trio.current_time()
        self.closing = False


class Session:
    """Delivery state of one relationship."""

    __slots__ = ("rel_id", "our_did", "their_did", "static", "their_x25519", "endpoint", "link", "work",
                 "link_changed", "recv", "recv_lock", "attempt", "revoked", "stopped", "state")

    def __init__(self, rel_id: str, *, our_did: str, their_did: str, static: Any, their_x25519: bytes,
                 endpoint: Endpoint | None, state: Any = None) -> None:
        self.rel_id = rel_id
        self.our_did = our_did
        self.their_did = their_did
        self.static = static  # our pairwise X25519 key: the Noise static key we dial with
        self.their_x25519 = their_x25519  # the initiator static key that names this relationship
        self.endpoint = endpoint
        self.state = state  # the protocol layer's per-relationship object (the Agent's)
        self.link: Link | None = None
        self.work = trio.Event()  # set when the outbox has something new for this peer
        self.link_changed = trio.Event()
        self.recv = ReceiveWindow()
        self.recv_lock = trio.Lock()  # two links may overlap briefly: one batch at a time
        self.attempt = 0
        self.revoked = False
        self.stopped = False

    def wake(self) -> None:
        self.work.set()

    def _signal_link(self) -> None:
        self.link_changed.set()
        self.link_changed = trio.Event()
        self.work.set()

    @property
    def we_sort_lower(self) -> bool:
        return self.our_did.encode() < self.their_did.encode()


class Sessions:
    """All sessions of one agent, under one nursery (`run`)."""

    def __init__(self, store: SQLiteStore, receiver: Receiver, *, limits: TransportLimits,
                 backoff: Callable[[int], float] = spec_backoff, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.receiver = receiver
        self.limits = limits
        self.backoff = backoff
        self.clock = clock
        self.by_id: dict[str, Session] = {}
        self.by_key: dict[bytes, Session] = {}
        self.refused_keys: set[bytes] = set()  # peers' keys of revoked relationships
        self._nursery: trio.Nursery | None = None
        self.stopping = False
        self.link_idle = LINK_IDLE

    def now(self) -> int:
        return int(self.clock())

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for session in list(self.by_id.values()):
                nursery.start_soon(self._session_loop, session)
            task_status.started()
            await trio.sleep_forever()

    def add(self, session: Session) -> None:
        self.by_id[session.rel_id] = session
        self.by_key[session.their_x25519] = session
        if self._nursery is not None:
            self._nursery.start_soon(self._session_loop, session)

    def remove(self, session: Session) -> None:
        session.stopped = True
        self.by_id.pop(session.rel_id, None)
        if self.by_key.get(session.their_x25519) is session:
            del self.by_key[session.their_x25519]
        session._signal_link()

    async def close_all(self) -> None:
        """Graceful stop: a close frame on every link (what was taken is receipted
        already: receipts go out right after each commit), then hang up."""
        self.stopping = True
        links = [s.link for s in self.by_id.values() if s.link is not None and s.link.served is not None]
        with trio.move_on_after(CLOSE_TIMEOUT):
            async with trio.open_nursery() as nursery:
                for link in links:
                    nursery.start_soon(self._close_link, link, "shutdown")

    async def _close_link(self, link: Link, reason: str) -> None:
        link.closing = True
        if link.served is not None:
            with trio.move_on_after(CLOSE_TIMEOUT):
                try:
                    await link.served.send(frames.encode(Close(reason)))
                except RemoteError:
                    pass
        link.scope.cancel()

    # --- the dialer ------------------------------------------------------------------

    async def _session_loop(self, session: Session) -> None:
        """Keeps a link up while the relationship has queued messages."""
        while not session.stopped and not self.stopping:
            link = session.link
            if link is not None:
                await link.done.wait()
                if session.link is link:
                    session.link = None
                continue
            changed = session.link_changed
            if not self.store.pending_count(session.rel_id):
                if session.revoked:
                    self.remove(session)
                    return
                session.work = trio.Event()
                await _wait_any(changed, session.work)
                continue
            if session.endpoint is None:
                await changed.wait()  # the peer does not listen: it will come to us
                continue
            try:
                conn = await connect(session.endpoint.host, session.endpoint.port, static=session.static,
                                     remote_static=session.endpoint.key.raw, timeout=DIAL_TIMEOUT,
                                     limits=self.limits)
            except RemoteError as exc:
                delay = self.backoff(session.attempt)
                session.attempt += 1
                log.info("dial.failed", extra={"fields": {"relationship": session.rel_id, "code": exc.code,
                                                           "retry_in_s": round(delay, 3)}})
                with trio.move_on_after(delay):
                    await changed.wait()  # the peer may come to us meanwhile
                continue
            if session.stopped or self.stopping:
                await conn.aclose()
                return
            link = Link(initiated_by_us=True)
            if not self._install(session, link):
                await conn.aclose()
                continue
            self._nursery.start_soon(self._serve, session, link, conn)
            await link.done.wait()
            if not link.receipted and self.store.pending_count(session.rel_id):
                # Connected but nothing got through: treat it as a failed attempt.
                delay = self.backoff(session.attempt)
                session.attempt += 1
                with trio.move_on_after(delay):
                    await session.link_changed.wait()

    async def _serve(self, session: Session, link: Link, conn: Any) -> None:
        try:
            await serve_connection(conn, lambda served: self._run_link(session, link, served), limits=self.limits,
                                   peer=f"rel {session.rel_id}")
        finally:
            self._uninstall(session, link)

    # --- links -----------------------------------------------------------------------

    def _install(self, session: Session, link: Link) -> bool:
        """Make `link` the session's connection, unless the one it has wins (spec/12
        §12.3: of two connections opened at once in opposite directions, the one
        initiated by the side whose pairwise DID sorts lower survives)."""
        current = session.link
        if current is not None and not current.done.is_set():
            if current.initiated_by_us != link.initiated_by_us:
                new_wins = link.initiated_by_us == session.we_sort_lower
                if not new_wins:
                    return False
            # Same direction: the old one is stale (the peer reconnected).
            self._nursery.start_soon(self._close_link, current, "shutdown")
        session.link = link
        session._signal_link()
        return True

    def _uninstall(self, session: Session, link: Link) -> None:
        link.done.set()
        if session.link is link:
            session.link = None
            session._signal_link()

    async def accept(self, served: ServedConnection) -> None:
        """The listener's handler: route a connection to its relationship."""
        key = served.remote_static
        session = self.by_key.get(key)
        if session is None:
            if key in self.refused_keys:
                await _polite_close(served, "relationship-revoked")
                return
            served.busy = lambda: True  # a setup under way (at most SETUP_TIMEOUT): never evicted
            session = await self.receiver.setup(served)
            if session is None:
                return
        link = Link(initiated_by_us=False)
        if not self._install(session, link):
            await _polite_close(served, "shutdown")
            return
        try:
            await self._run_link(session, link, served)
        finally:
            self._uninstall(session, link)

    def attach(self, session: Session, conn: Any) -> None:
        """Use a connection we dialed for something else (the invitee's setup) as the
        session's link."""
        link = Link(initiated_by_us=True)
        if not self._install(session, link):
            self._nursery.start_soon(conn.aclose)
            return
        self._nursery.start_soon(self._serve, session, link, conn)

    async def _run_link(self, session: Session, link: Link, served: ServedConnection) -> None:
        link.served = served
        # For the listener (spec/09 §9.3): a link may be evicted to admit a newcomer
        # only while nothing is in flight, and then it says goodbye with a close frame.
        served.busy = lambda: _busy(session, link)
        served.on_evict = lambda: self._nursery.start_soon(self._close_link, link, "idle")
        log.info("connection.established", extra={"fields": {
            "relationship": session.rel_id, "peer": fingerprint(served.remote_static),
            "initiator": "us" if link.initiated_by_us else "peer"}})
        reason = "closed"
        with link.scope:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, session, link)
                    reason = await self._reader(session, link)
                    nursery.cancel_scope.cancel()
            except RemoteError as exc:
                reason = exc.code
        if link.receipted:
            session.attempt = 0  # spec/12 §12.6: reset after a connection that carried receipts
        if link.in_flight and not self.stopping:
            # Transmitted, never receipted: 'sent' (they go again on the next connection).
            self.store.mark_sent_many(list(link.in_flight.values()), next_attempt_at=self.now() + RESEND_AFTER)
        log.info("connection.closed", extra={"fields": {"relationship": session.rel_id, "reason": reason}})

    async def _reader(self, session: Session, link: Link) -> str:
        served = link.served
        while True:
            try:
                batch = [await served.receive()]
            except ConnectionClosed:
                return "closed"
            except RemoteError as exc:
                return exc.code
            # Let the connection's socket reader queue what has already arrived before
            # taking the batch: one commit for many frames (a few scheduler turns,
            # microseconds, against a commit per frame).
            for _ in range(MAX_BATCH):
                queued = served.queued_messages
                if queued >= MAX_BATCH:
                    break
                await trio.lowlevel.checkpoint()
                if served.queued_messages == queued:
                    break
            while served.queued_messages and len(batch) < MAX_BATCH:
                batch.append(await served.receive())
            delivers: list[Deliver] = []
            receipted: list[int] = []
            closing = None
            for data in batch:
                try:
                    frame = frames.decode(data)
                except RemoteError as exc:
                    # Fatal for the connection (spec/12 §12.2); say why, then hang up.
                    await self._close_link(link, exc.code)
                    return exc.code
                kind = type(frame)
                if kind is Deliver:
                    delivers.append(frame)
                elif kind is Receipt:
                    receipted.extend(frame.seqs)
                else:
                    closing = frame.reason
            if receipted:
                self._receipts(session, link, receipted)
            if delivers:
                try:
                    await self._take(session, link, delivers)
                except RemoteError as exc:  # a receipt could not be sent: the peer will retransmit
                    return exc.code
            if closing is not None:
                return f"peer-{closing}"

    async def _take(self, session: Session, link: Link, delivers: list[Deliver]) -> None:
        async with session.recv_lock:
            if session.revoked:
                # Refused without opening (spec/10 §10.5): receipt so the peer stops.
                seqs = [d.seq for d in delivers]
            else:
                window = session.recv
                fresh = [d for d in delivers if window.is_new(d.seq)]
                seqs = [d.seq for d in delivers if not window.is_new(d.seq)]  # retransmissions
                if fresh:
                    seqs += await self.receiver.take(session, fresh)
                    window.taken(fresh[-1].seq)
        served = link.served
        for i in range(0, len(seqs), frames.MAX_RECEIPT_SEQS):
            await served.send(frames.encode(Receipt(tuple(seqs[i:i + frames.MAX_RECEIPT_SEQS]))))
        if session.revoked and not link.in_flight:
            await self._close_link(link, "shutdown")  # nothing more will travel on it

    def _receipts(self, session: Session, link: Link, seqs: list[int]) -> None:
        done = link.window.receipted(tuple(seqs))
        if not done:
            return
        in_flight = link.in_flight
        ids = [in_flight.pop(s) for s in done]
        self.store.mark_acked_many(session.rel_id, ids)
        link.receipted = True
        link.last_receipt = trio.current_time()
        session.work.set()  # the window has room again
        self.receiver.acked(session, ids)
        if session.revoked and not link.in_flight and not self.store.pending_count(session.rel_id):
            self._nursery.start_soon(self._close_link, link, "shutdown")  # the revoke got through

    async def _writer(self, session: Session, link: Link) -> None:
        try:
            await self._write(session, link)
        except RemoteError as exc:
            # The connection is gone (reset, send timeout): the reader sees it too.
            log.debug("connection.send_failed", extra={"fields": {"relationship": session.rel_id,
                                                                   "code": exc.code}})
            link.scope.cancel()

    async def _write(self, session: Session, link: Link) -> None:
        served = link.served
        window = link.window
        store = self.store
        while not link.closing:
            work = session.work = trio.Event()
            space = WINDOW - len(link.in_flight)
            if space > 0:
                now = self.now()
                entries = store.pending_after(session.rel_id, window.last_sent, now, space)
                if entries:
                    if not link.in_flight:
                        link.last_receipt = trio.current_time()  # the receipt clock starts now
                    # No store write here: the outbox row stays 'queued' until its
                    # receipt (one write per message, not two). A connection that
                    # ends with frames unreceipted marks those 'sent' (_run_link).
                    for e in entries:
                        window.sent(e.seq)
                        link.in_flight[e.seq] = e.message_id
                    encoded = [frames.encode(Deliver(e.seq, e.payload)) for e in entries]
                    send_many = getattr(served, "send_many", None)
                    if send_many is not None:  # one write for the burst (see the report)
                        await send_many(encoded)
                    else:
                        for data in encoded:
                            await served.send(data)
                    self.receiver.sent(session, [e.message_id for e in entries])
                    continue
            if link.in_flight:
                deadline = link.last_receipt + RECEIPT_TIMEOUT
                with trio.move_on_at(deadline):
                    await work.wait()
                if link.in_flight and trio.current_time() >= link.last_receipt + RECEIPT_TIMEOUT:
                    log.info("connection.stalled", extra={"fields": {"relationship": session.rel_id,
                                                                      "in_flight": len(link.in_flight)}})
                    await self._close_link(link, "idle")
                    return
            elif session.endpoint is None:
                await work.wait()  # we could not dial this peer again: it ends the link
            else:
                # Idle: close after link_idle without a frame either way (last_active
                # counts received frames too), unless work arrives first.
                with trio.move_on_at(served.last_active + self.link_idle):
                    await work.wait()
                if (not work.is_set() and trio.current_time() >= served.last_active + self.link_idle
                        and not _busy(session, link) and not served.queued_messages):
                    log.info("connection.idle", extra={"fields": {"relationship": session.rel_id}})
                    await self._close_link(link, "idle")
                    return


def _busy(session: Session, link: Link) -> bool:
    """Something is in flight on the link: frames awaiting receipts, outbound work not
    yet picked up by the writer, or a received batch being taken."""
    return bool(link.in_flight) or session.work.is_set() or session.recv_lock.locked()


async def _wait_any(*events: trio.Event) -> None:
    async with trio.open_nursery() as nursery:
        for event in events:
            async def waiter(ev: trio.Event = event) -> None:
                await ev.wait()
                nursery.cancel_scope.cancel()
            nursery.start_soon(waiter)


async def _polite_close(served: ServedConnection, reason: str) -> None:
    with trio.move_on_after(CLOSE_TIMEOUT):
        try:
            await served.send(frames.encode(Close(reason)))
        except RemoteError:
            pass


__all__ = ["Session", "Sessions", "Link", "Receiver", "WINDOW", "spec_backoff", "fingerprint"]
