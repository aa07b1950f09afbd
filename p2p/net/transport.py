"""The TCP transport of the daemon: a listener service, a dialer, and served connections.

* `serve(host, port, *, static, handler, limits)` is a trio service (it calls
  `task_status.started(port)`): it accepts TCP connections, runs the responder
  handshake under the caps and timeouts of `TransportLimits`, and calls
  `handler(conn)` in its own task for each established connection.
* `connect(host, port, *, static, remote_static=None, timeout)` dials and runs the
  initiator handshake, returning a `NoiseConnection`.
* `serve_connection(conn, handler, limits=...)` is what the listener does with an
  established connection, usable for dialed ones too: one reader task feeds a
  bounded queue (backpressure: while the queue is full we stop reading, the peer's
  TCP window fills and it stalls), an idle timer, and the handler.

Isolation: everything that goes wrong with one connection (a hostile peer, a
crashing handler) ends in that connection's task, is logged as one line on the
"p2p.net" logger (codes and addresses only: no keys, no payload bytes), and never
reaches the listener. spec/09-transport-limits.md is the normative text.
"""

from __future__ import annotations

import errno
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from p2p.core.errors import P2PError, RemoteError

from .limits import DEFAULT_LIMITS, TransportLimits
from .noise_stream import (
    ConnectionClosed,
    HandshakeTimeout,
    IdleTimeout,
    NoiseConnection,
    Unreachable,
)

log = logging.getLogger("p2p.net")

# accept(2) failures that mean "the machine is out of something right now":
# wait and retry rather than crash the listener (as trio.serve_listeners does).
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_RETRY_DELAY = 0.1
# At most one "cap reached" warning per this many seconds: a flood must not
# become a log flood.
_CAP_WARNING_INTERVAL = 60.0
# An idle established connection evicted to admit a newcomer gets this long to close
# cleanly (its handler's on_evict); then it is cut (spec/09 §9.3).
EVICT_GRACE = 1.0


def _fingerprint(public: bytes) -> str:
    # A public key prefix: enough to tell peers apart in a log, and not a secret.
    return public[:4].hex()


# --- a served connection ------------------------------------------------------


class ServedConnection(trio.abc.Channel[bytes]):
    """What a handler gets: an established connection whose inbound side is queued.

    `receive()` takes from a bounded queue filled by the connection's reader task;
    `send()` writes directly (with the send timeout). When the connection ends
    (peer closed, peer fault, idle timeout), messages already queued are still
    delivered, then `receive()` raises the reason once (a RemoteError), then
    ConnectionClosed.
    """

    __slots__ = (
        "_conn",
        "_limits",
        "_queue_in",
        "_queue_out",
        "_queued_bytes",
        "_drained",
        "_idle_scope",
        "_reason",
        "_reason_given",
        "peer",
        "remote_static",
        "handshake_hash",
        "pattern",
        "last_active",
        "busy",
        "on_evict",
    )

    def __init__(self, conn: NoiseConnection, limits: TransportLimits, peer: str = "") -> None:
        self._conn = conn
        self._limits = limits
        self._queue_in, self._queue_out = trio.open_memory_channel[bytes](limits.inflight_messages)
        self._queued_bytes = 0
        self._drained = trio.Event()
        now = trio.current_time()
        self._idle_scope = trio.CancelScope(deadline=now + limits.idle_timeout)
        self._reason: RemoteError | None = None
        self._reason_given = False
        self.peer = peer
        self.remote_static = conn.remote_static
        self.handshake_hash = conn.handshake_hash
        self.pattern = conn.pattern
        # trio time of the last complete message in either direction (or of the handshake).
        self.last_active = now
        # Set by the handler. `busy()`: it has work in flight on this connection (e.g.
        # frames awaiting receipts), so the listener must not evict it. `on_evict()`:
        # called synchronously when the listener evicts it; the handler then closes it
        # cleanly (e.g. sends a close frame) within EVICT_GRACE, after which it is cut.
        self.busy: Callable[[], bool] | None = None
        self.on_evict: Callable[[], None] | None = None

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    @property
    def queued_messages(self) -> int:
        return self._queue_out.statistics().current_buffer_used

    def _touch(self) -> None:
        self.last_active = now = trio.current_time()
        self._idle_scope.deadline = now + self._limits.idle_timeout

    @property
    def idle(self) -> bool:
        """Nothing in flight: no send under way, nothing queued for the handler, and
        the handler does not say it is busy. Only such a connection may be evicted."""
        return (not self._conn.sending and not self._queue_out.statistics().current_buffer_used
                and not (self.busy is not None and self.busy()))

    def request_rekey(self) -> None:
        self._conn.request_rekey()

    async def send(self, message: bytes) -> None:
        await self._conn.send(message)
        self._touch()

    async def send_many(self, messages: Sequence[bytes]) -> None:
        """Several messages in order, joined into as few writes as possible."""
        await self._conn.send_many(messages)
        self._touch()

    async def receive(self) -> bytes:
        try:
            message = await self._queue_out.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            if self._reason is not None and not self._reason_given:
                self._reason_given = True
                raise self._reason from None
            raise ConnectionClosed("connection is closed") from None
        self._queued_bytes -= len(message)
        if self._queued_bytes < self._limits.inflight_bytes:
            self._drained.set()
        return message

    async def aclose(self) -> None:
        await self._conn.aclose()
        self._idle_scope.cancel()

    async def _read_loop(self) -> None:
        """The reader task: socket -> bounded queue, until the connection ends."""
        conn = self._conn
        budget = self._limits.inflight_bytes
        try:
            with self._idle_scope:
                while True:
                    message = await conn.receive()
                    self._touch()
                    # Byte budget first (the queue's own bound is by count): we hold
                    # at most this one message while the handler catches up.
                    while self._queued_bytes >= budget:
                        self._drained = trio.Event()
                        await self._drained.wait()
                    self._queued_bytes += len(message)
                    await self._queue_in.send(message)
            if self._idle_scope.cancelled_caught and not conn.closed:
                self._reason = IdleTimeout(f"no message for {self._limits.idle_timeout} s")
        except RemoteError as exc:
            self._reason = exc
        finally:
            # Closing our end of the queue lets the handler drain what is queued
            # and then see the reason; closing the connection frees the socket now.
            self._queue_in.close()
            await conn.aclose()


async def serve_connection(
    conn: NoiseConnection,
    handler: Callable[[ServedConnection], Awaitable[Any]],
    *,
    limits: TransportLimits = DEFAULT_LIMITS,
    peer: str = "",
) -> None:
    """Run `handler` on an established connection until it returns; then close it.

    A handler's exception is logged (one line) and swallowed: it ends this
    connection only.
    """
    await _serve(ServedConnection(conn, limits, peer), handler)


async def _serve(served: ServedConnection, handler: Callable[[ServedConnection], Awaitable[Any]]) -> None:
    conn = served._conn
    label = f"{served.peer} peer {_fingerprint(conn.remote_static)}"
    fault: RemoteError | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(served._read_loop)
            try:
                await handler(served)
            except RemoteError as exc:
                # The peer's fault, passed on by the handler (e.g. from receive()),
                # or one the handler found in a message: not a handler bug.
                fault = exc
            except Exception as exc:  # the handler is ours, but one bug must not stop the listener
                log.error("connection %s: handler failed: %s", label, _describe(exc))
            nursery.cancel_scope.cancel()
    finally:
        await conn.aclose()
    fault = fault or served._reason
    if fault is not None and not isinstance(fault, ConnectionClosed):
        log.info("connection %s closed: %s", label, fault.code)


def _describe(exc: BaseException) -> str:
    """Exception class and where it was raised, never its message (it may hold payload)."""
    if isinstance(exc, P2PError):
        return f"{type(exc).__name__} ({exc.code})"
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
    return f"{type(exc).__name__}{where}"


# --- the listener ---------------------------------------------------------------


@dataclass(slots=True)
class ListenerStats:
    """Live counters of one listener (mutable on purpose: the listener updates them).

    `admitted` = handshaking + established: the server-side sockets the caps count.
    """

    admitted: int = 0
    handshaking: int = 0
    established: int = 0
    peak_admitted: int = 0
    peak_handshaking: int = 0
    accepted: int = 0
    refused: int = 0  # closed at accept: every slot held by a busy established connection
    evicted: int = 0  # oldest handshaking connection closed to make room
    evicted_idle: int = 0  # least recently active idle established connection closed to make room
    handshake_failures: int = 0  # peer faults and timeouts before the handshake completed
    completed_handshakes: int = 0


class _Slot:
    """One admitted connection: its task's cancel scope (the handshake's, then the
    established connection's) and, once established, its ServedConnection."""

    __slots__ = ("scope", "stream", "evicted", "served")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.scope = trio.CancelScope()
        self.stream = stream
        self.evicted = False
        self.served: ServedConnection | None = None


class _Listener:
    """Admission control and per-connection tasks; `serve` is its public face."""

    def __init__(self, static: Any, handler: Callable, limits: TransportLimits,
                 stats: ListenerStats) -> None:
        self.static = static
        self.handler = handler
        self.limits = limits
        self.stats = stats
        # Insertion order is age: the first key is the oldest handshaking connection.
        self.handshaking: dict[_Slot, None] = {}
        self.established: dict[_Slot, None] = {}
        self.next_id = 0
        self.last_cap_warning = -math.inf

    def _warn_cap(self, what: str) -> None:
        now = trio.current_time()
        if now - self.last_cap_warning >= _CAP_WARNING_INTERVAL:
            self.last_cap_warning = now
            log.warning("listener at its %s cap; closing connections (counters in ListenerStats)", what)

    def _admit(self, stream: trio.SocketStream) -> _Slot | None:
        """Decide synchronously, right after accept, so the caps hold at every checkpoint."""
        limits, stats = self.limits, self.stats
        stats.accepted += 1
        if len(self.handshaking) >= limits.max_handshaking:
            self._evict_handshaking()
        elif stats.admitted >= limits.max_connections:
            # Make room, cheapest loss first: an established connection with nothing
            # in flight (its peer redials when it has something to send), else the
            # oldest handshake; refuse only when every slot is busy and established.
            idle = self._idle_established()
            if idle is not None:
                self._evict_established(idle)
            elif self.handshaking:
                self._evict_handshaking()
            else:
                stats.refused += 1
                self._warn_cap("connection")
                _close_now(stream)
                return None
        slot = _Slot(stream)
        self.handshaking[slot] = None
        stats.handshaking += 1
        stats.admitted += 1
        stats.peak_admitted = max(stats.peak_admitted, stats.admitted)
        stats.peak_handshaking = max(stats.peak_handshaking, stats.handshaking)
        return slot

    def _evict_handshaking(self) -> None:
        # The oldest one. A peer that handshakes promptly is never the oldest for
        # long, so idle junk cannot keep it out; to keep it out an attacker must open
        # max_handshaking new connections within that peer's handshake round trip.
        victim = next(iter(self.handshaking))
        self._release_handshaking(victim)
        victim.evicted = True
        victim.scope.cancel()
        _close_now(victim.stream)
        self.stats.evicted += 1
        self._warn_cap("handshake")

    def _idle_established(self) -> _Slot | None:
        """The least recently active established connection with nothing in flight."""
        best, best_time = None, math.inf
        for slot in self.established:
            served = slot.served
            if served.last_active < best_time and served.idle:
                best, best_time = slot, served.last_active
        return best

    def _evict_established(self, slot: _Slot) -> None:
        # Its slot is free at once. The handler gets EVICT_GRACE to close cleanly (a
        # close frame: the peer sees a normal end, not a fault, and redials when it
        # has something to send); then the scope's deadline cuts the connection.
        del self.established[slot]
        slot.evicted = True
        self.stats.established -= 1
        self.stats.admitted -= 1
        self.stats.evicted_idle += 1
        served = slot.served
        log.debug("connection %s evicted (idle for %.1f s) to admit a newcomer", served.peer,
                  trio.current_time() - served.last_active)
        self._warn_cap("connection")
        if served.on_evict is None:
            slot.scope.cancel()
            return
        slot.scope.deadline = min(slot.scope.deadline, trio.current_time() + EVICT_GRACE)
        try:
            served.on_evict()
        except Exception as exc:  # the handler's bug must not stop the listener
            log.error("connection %s: on_evict failed: %s", served.peer, _describe(exc))
            slot.scope.cancel()

    def _release_handshaking(self, slot: _Slot) -> None:
        del self.handshaking[slot]
        self.stats.handshaking -= 1
        self.stats.admitted -= 1

    async def accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                        raise
                    log.error("accept failed: %s; retrying", errno.errorcode.get(exc.errno, exc.errno))
                    await trio.sleep(_ACCEPT_RETRY_DELAY)
                    continue
                slot = self._admit(stream)
                if slot is not None:
                    self.next_id += 1
                    nursery.start_soon(self.run_connection, slot, self.next_id)

    async def run_connection(self, slot: _Slot, number: int) -> None:
        stream = slot.stream
        label = f"#{number} {_peer_address(stream)}"
        stats = self.stats
        conn = None
        try:
            with slot.scope:  # eviction cancels it (maybe before this task even starts)
                try:
                    conn = await NoiseConnection.respond(stream, static=self.static, limits=self.limits)
                except RemoteError as exc:
                    if not slot.evicted:
                        stats.handshake_failures += 1
                        # Timeouts and silent closes (port scanners) are routine on a
                        # public port; malformed bytes get an info line.
                        routine = isinstance(exc, (HandshakeTimeout, ConnectionClosed))
                        level = logging.DEBUG if routine else logging.INFO
                        log.log(level, "connection %s closed in handshake: %s", label, exc.code)
            if slot.evicted:
                return  # its slot was freed by _admit, possibly just as the handshake ended
            # From here to serve_connection there is no checkpoint: the counters
            # never show this connection in both states or in neither.
            self._release_handshaking(slot)
            if conn is None:
                return
            stats.completed_handshakes += 1
            stats.established += 1
            stats.admitted += 1
            slot.served = ServedConnection(conn, self.limits, label)
            slot.scope = trio.CancelScope()  # the established phase's: eviction cancels it
            self.established[slot] = None
            try:
                with slot.scope:
                    await _serve(slot.served, self.handler)
            finally:
                if slot in self.established:  # an evicted one was released at eviction
                    del self.established[slot]
                    stats.established -= 1
                    stats.admitted -= 1
        except Exception as exc:  # a bug here, not the peer's doing: still only this connection
            log.error("connection %s: unexpected error: %s", label, _describe(exc))
        finally:
            if slot in self.handshaking:  # left early through an unexpected error
                self._release_handshaking(slot)
            await trio.aclose_forcefully(stream)


def _close_now(stream: trio.SocketStream) -> None:
    # Synchronous close so the freed slot is also a freed file descriptor before the
    # next accept; a task blocked on the socket wakes with ClosedResourceError.
    stream.socket.close()


def _peer_address(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"


async def serve(
    host: str | None,
    port: int,
    *,
    static: Any,
    handler: Callable[[ServedConnection], Awaitable[Any]],
    limits: TransportLimits = DEFAULT_LIMITS,
    stats: ListenerStats | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on host:port (0 = any free port) until cancelled; started(actual_port).

    `static` is the responder's Noise static key pair (KeyPair or AgreementKey).
    `handler(conn)` runs in its own task for each established connection; the
    connection is closed when it returns. Pass a ListenerStats to observe counters.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    if port == 0 and len(listeners) > 1:
        # Port 0 gives each address family its own random port; one port is what a
        # caller can advertise, so keep the first listener only.
        for extra in listeners[1:]:
            await extra.aclose()
        listeners = listeners[:1]
    actual_port = listeners[0].socket.getsockname()[1]
    state = _Listener(static, handler, limits, stats if stats is not None else ListenerStats())
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(state.accept_loop, listener, nursery)
        log.debug("listening on port %d", actual_port)
        task_status.started(actual_port)


# --- the dialer -----------------------------------------------------------------


async def connect(
    host: str,
    port: int,
    *,
    static: Any,
    remote_static: bytes | None = None,
    pattern: str | None = None,
    timeout: float = DEFAULT_LIMITS.handshake_timeout,
    limits: TransportLimits = DEFAULT_LIMITS,
) -> NoiseConnection:
    """Open TCP to host:port and run the initiator handshake, all within `timeout`.

    IK when `remote_static` is given (else XX); see NoiseConnection.initiate.
    Raises Unreachable (TCP failed), HandshakeTimeout, UnexpectedPeer,
    ConnectionClosed or another RemoteError; never an OSError.
    """
    stream = None
    with trio.move_on_after(timeout) as scope:
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise Unreachable(f"cannot connect to {host}:{port}: {reason}") from None
        return await NoiseConnection.initiate(
            stream, static=static, remote_static=remote_static, pattern=pattern, limits=limits
        )
    assert scope.cancelled_caught
    # open_tcp_stream closes its socket when cancelled; initiate closes the stream.
    if stream is None:
        raise Unreachable(f"no TCP connection to {host}:{port} within {timeout} s")
    raise HandshakeTimeout(f"no handshake with {host}:{port} within {timeout} s")
