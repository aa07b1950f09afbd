"""A Noise connection over any trio stream: the I/O shell around p2p.core.noise/framing.

`NoiseConnection.initiate(stream, ...)` / `NoiseConnection.respond(stream, ...)` run
the handshake of spec/05-transport.md (preamble, prologue, 1024-byte handshake
frames) under a timeout and return a connection that carries whole application
messages: `send(bytes)`, `receive() -> bytes`, `aclose()`. It works on
trio.testing memory streams and on TCP alike, like trio's SSLStream wraps any
`trio.abc.Stream` around a sans-IO TLS object; unlike SSLStream it is message
oriented, so it is a `trio.abc.Channel[bytes]` (and `async for` works).

Failure contract: every fault of the peer or of the network surfaces as a
p2p.core.errors.RemoteError subclass (never a trio or OS exception), and a fault
closes the underlying stream at once. A clean close by the peer between messages is
`ConnectionClosed`, which is also a `trio.EndOfChannel`, so `async for msg in conn`
simply ends.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Sequence
from typing import Any

import trio

from p2p.core.errors import BadArgument, HandshakeFailed, RemoteError, StateError
from p2p.core.framing import (
    HANDSHAKE_MAX_FRAME,
    PREAMBLES,
    PROLOGUE,
    Channel,
    FrameReader,
    encode_frame,
)
from p2p.core.noise import Handshake, HandshakeStatus, Role

from .limits import DEFAULT_LIMITS, HANDSHAKE_READ_SIZE, TRANSPORT_READ_SIZE, TransportLimits

# --- errors ---------------------------------------------------------------
# Transport-level events that p2p.core.errors has no class for (the core never sees
# time or sockets). Same two families, same `code` convention.


class ConnectionClosed(RemoteError, trio.EndOfChannel):
    """The connection is over: the peer closed it, it was reset, or it was closed here."""

    code = "connection-closed"


class HandshakeTimeout(RemoteError):
    """The peer did not complete the handshake within handshake_timeout."""

    code = "handshake-timeout"


class UnexpectedPeer(HandshakeFailed):
    """The responder's static key is not the one the initiator expected."""

    code = "unexpected-peer"


class SendTimeout(RemoteError):
    """A send did not drain within send_timeout: the peer is not reading."""

    code = "send-timeout"


class IdleTimeout(RemoteError):
    """No complete message in either direction for idle_timeout."""

    code = "idle-timeout"


class Unreachable(RemoteError):
    """The TCP connection could not be opened (refused, no route, name, timeout)."""

    code = "unreachable"


# --- connection -------------------------------------------------------------


def _new_ephemeral() -> bytes:
    return secrets.token_bytes(32)


class NoiseConnection(trio.abc.Channel[bytes]):
    """An established Noise session over a trio stream. Build it with initiate/respond.

    send() may be called from several tasks (a StrictFIFOLock keeps each message's
    frames contiguous and their nonces in write order); receive() from one task at
    a time. receive() is cancel-safe: a cancelled receive loses nothing.
    """

    __slots__ = (
        "_stream",
        "_channel",
        "_limits",
        "_send_lock",
        "_pending",
        "_receiving",
        "_closed",
        "_error",
        "role",
        "pattern",
        "remote_static",
        "handshake_hash",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        handshake: Handshake,
        reader: FrameReader,
        limits: TransportLimits,
    ) -> None:
        # Private: only initiate()/respond() can produce a completed handshake.
        self._stream = stream
        self._limits = limits
        self._channel = Channel(
            handshake.transport,
            max_message=limits.max_message,
            rekey_interval=limits.rekey_interval,
            reader=reader,  # may already hold transport frames sent right after the handshake
        )
        self._send_lock = trio.StrictFIFOLock()
        self._pending: deque[bytes] = deque()
        self._receiving = False
        self._closed = False
        # The first fault, kept so later calls can say why the connection is gone.
        self._error: RemoteError | None = None
        self.role: Role = handshake.role
        self.pattern: str = handshake.pattern
        self.remote_static: bytes = bytes(handshake.remote_static)
        self.handshake_hash: bytes = handshake.handshake_hash

    # -- handshake -------------------------------------------------------------

    @classmethod
    async def initiate(
        cls,
        stream: trio.abc.Stream,
        *,
        static: Any,
        remote_static: bytes | None = None,
        pattern: str | None = None,
        limits: TransportLimits = DEFAULT_LIMITS,
    ) -> NoiseConnection:
        """Run the initiator side on `stream`; on any failure the stream is closed.

        `static` is the key pair to present (KeyPair or AgreementKey). With
        `remote_static` the pattern defaults to IK; `pattern="XX"` with a
        `remote_static` runs XX and checks the key the responder shows *before*
        sending message 3, so our own identity is not revealed to the wrong peer.
        """
        if pattern is None:
            pattern = "IK" if remote_static is not None else "XX"
        if pattern not in PREAMBLES:
            raise BadArgument(f"unsupported handshake pattern {pattern!r}")
        handshake = Handshake(
            Role.INITIATOR,
            pattern,
            static,
            _new_ephemeral(),
            remote_static=remote_static if pattern == "IK" else None,
            prologue=PROLOGUE,
        )
        expected = bytes(remote_static) if remote_static is not None else None
        return await cls._handshake(stream, handshake, None, expected, limits)

    @classmethod
    async def respond(
        cls,
        stream: trio.abc.Stream,
        *,
        static: Any,
        limits: TransportLimits = DEFAULT_LIMITS,
    ) -> NoiseConnection:
        """Run the responder side: the preamble tells which handshake the peer chose."""
        return await cls._handshake(stream, None, static, None, limits)

    @classmethod
    async def _handshake(
        cls,
        stream: trio.abc.Stream,
        handshake: Handshake | None,
        static: Any,
        expected: bytes | None,
        limits: TransportLimits,
    ) -> NoiseConnection:
        initiator = handshake is not None
        reader = FrameReader(max_frame=HANDSHAKE_MAX_FRAME, expect_preamble=not initiator)
        try:
            with trio.move_on_after(limits.handshake_timeout) as scope:
                if initiator:
                    # Preamble and message 1 in one write: one segment, one round trip.
                    first = handshake.write_message()
                    await _send_all(stream, PREAMBLES[handshake.pattern] + encode_frame(first))
                else:
                    frame = await _next_handshake_frame(stream, reader)
                    # The responder learns its pattern from the preamble only now.
                    handshake = Handshake(
                        Role.RESPONDER, reader.pattern, static, _new_ephemeral(), prologue=PROLOGUE
                    )
                    handshake.read_message(frame)
                while not handshake.complete:
                    if handshake.status is HandshakeStatus.SEND:
                        if expected is not None and handshake.remote_static != expected:
                            raise UnexpectedPeer("responder's static key is not the expected one")
                        await _send_all(stream, encode_frame(handshake.write_message()))
                    else:
                        handshake.read_message(await _next_handshake_frame(stream, reader))
                if expected is not None and handshake.remote_static != expected:
                    raise UnexpectedPeer("responder's static key is not the expected one")
                return cls(stream, handshake, reader, limits)
            assert scope.cancelled_caught
            raise HandshakeTimeout(f"handshake not complete after {limits.handshake_timeout} s")
        except BaseException:
            # Covers peer faults, our timeout and outer cancellation alike: a
            # half-done handshake is never resumable, so the stream goes.
            await trio.aclose_forcefully(stream)
            raise

    # -- sending ---------------------------------------------------------------

    def request_rekey(self) -> None:
        """Rekey our sending key after the next Noise message we send (spec 5.8)."""
        self._channel.request_rekey()

    async def send(self, message: bytes) -> None:
        """Send one application message (<= limits.max_message bytes).

        Raises SendTimeout if the peer does not take it within limits.send_timeout,
        ConnectionClosed if the connection is gone; both leave the connection closed.
        """
        if len(message) > self._limits.max_message:
            raise BadArgument(f"message over {self._limits.max_message} bytes")
        async with self._send_lock:
            if self._closed:
                raise self._closed_error()
            await self._write(self._channel.send(message))

    async def send_many(self, messages: Sequence[bytes]) -> None:
        """Send several application messages, in order, with as few writes as possible:
        their frames are joined and written at once, up to about `max_message` bytes
        per write (each write under send_timeout, as one send()). A burst of small
        messages costs one system call and one TCP segment train instead of one each.
        Same errors as send(); a message over the limit is refused before any is sent.
        """
        limit = self._limits.max_message
        for message in messages:
            if len(message) > limit:
                raise BadArgument(f"message over {limit} bytes")
        async with self._send_lock:
            if self._closed:
                raise self._closed_error()
            channel_send = self._channel.send
            parts: list[bytes] = []
            size = 0
            for message in messages:
                data = channel_send(message)
                parts.append(data)
                size += len(data)
                if size >= limit:
                    await self._write(b"".join(parts))
                    parts, size = [], 0
            if parts:
                await self._write(parts[0] if len(parts) == 1 else b"".join(parts))

    @property
    def sending(self) -> bool:
        """A send is in progress (or waiting for the one before it)."""
        return self._send_lock.locked()

    async def _write(self, data: bytes) -> None:
        # Called with the send lock held.
        try:
            with trio.move_on_after(self._limits.send_timeout) as scope:
                await _send_all(self._stream, data)
                return
        except BaseException as exc:
            # Part of a frame may be on the wire: the stream is unusable now,
            # whatever interrupted us (peer reset, our own cancellation).
            await self._fail(exc if isinstance(exc, RemoteError) else None)
            raise
        assert scope.cancelled_caught
        error = SendTimeout(f"peer did not read a message within {self._limits.send_timeout} s")
        await self._fail(error)
        raise error

    # -- receiving -------------------------------------------------------------

    async def receive(self) -> bytes:
        """The next application message.

        Raises ConnectionClosed at a clean end of stream, or the peer's fault
        (Truncated, TransportDecryptFailed, FrameTooLarge, MalformedFrame,
        TooLarge...) once, then ConnectionClosed; the stream is closed on a fault.
        """
        pending = self._pending
        if pending:
            return pending.popleft()
        if self._receiving:
            raise StateError("another task is already receiving")
        if self._closed:
            raise self._closed_error()
        self._receiving = True
        try:
            channel = self._channel
            stream = self._stream
            data = b""  # first pass drains frames the handshake's reader already holds
            while True:
                try:
                    messages = channel.receive_data(data)
                except RemoteError as exc:
                    await self._fail(exc)
                    raise
                if messages:
                    if len(messages) > 1:
                        pending.extend(messages[1:])
                    return messages[0]
                data = await _receive_some(stream, TRANSPORT_READ_SIZE)
                if not data:
                    try:
                        channel.receive_eof()  # Truncated if the peer stopped mid-message
                    except RemoteError as exc:
                        await self._fail(exc)
                        raise
                    error = ConnectionClosed("peer closed the connection")
                    await self._fail(error)
                    raise error
        except ConnectionClosed as exc:
            if self._error is None:
                await self._fail(exc)
            raise
        finally:
            self._receiving = False

    # -- closing ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def error(self) -> RemoteError | None:
        """Why the connection ended, if the peer or the network ended it."""
        return self._error

    async def aclose(self) -> None:
        self._closed = True
        await trio.aclose_forcefully(self._stream)

    async def _fail(self, error: RemoteError | None) -> None:
        if self._error is None and error is not None:
            self._error = error
        self._closed = True
        await trio.aclose_forcefully(self._stream)

    def _closed_error(self) -> ConnectionClosed:
        if self._error is None:
            return ConnectionClosed("connection closed locally")
        return ConnectionClosed(f"connection closed after {self._error.code}")


# --- stream calls with trio's exceptions turned into domain errors ----------


async def _send_all(stream: trio.abc.Stream, data: bytes) -> None:
    try:
        await stream.send_all(data)
    except trio.BrokenResourceError:
        raise ConnectionClosed("connection reset while sending") from None
    except trio.ClosedResourceError:
        raise ConnectionClosed("connection closed locally") from None


async def _receive_some(stream: trio.abc.Stream, max_bytes: int) -> bytes:
    try:
        return await stream.receive_some(max_bytes)
    except trio.BrokenResourceError:
        raise ConnectionClosed("connection reset while receiving") from None
    except trio.ClosedResourceError:
        raise ConnectionClosed("connection closed locally") from None


async def _next_handshake_frame(stream: trio.abc.Stream, reader: FrameReader) -> bytes:
    # Small reads: an unauthenticated peer never gets us to hold more than about
    # two handshake-sized reads (spec 9.2), and FrameReader checks each declared
    # length as soon as its two bytes are here.
    while (frame := reader.next_frame()) is None:
        data = await _receive_some(stream, HANDSHAKE_READ_SIZE)
        if not data:
            reader.receive_eof()  # Truncated inside the preamble or a frame
            raise ConnectionClosed("peer closed the connection during the handshake")
        reader.feed(data)
    return frame
