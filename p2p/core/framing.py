"""Stream framing for Noise: preamble, length-prefixed frames, chunked messages, rekey.

Three layers, all sans-IO (spec/05-transport.md is the normative text):

* the preamble, 6 bytes the initiator sends first: ASCII ``p2p/1`` and one byte
  naming the handshake pattern (``X`` for XX, ``I`` for IK), so the responder knows
  which handshake to run before it has seen any Noise bytes;
* frames: a 2-byte big-endian length and one Noise message (<= 65535 bytes), the
  format Noise section 13 suggests for TCP;
* after the handshake, every transport plaintext starts with a 1-byte chunk header
  (MORE, REKEY flags) so an application message can span several Noise messages
  (reassembled size at most 1 MiB) and a rekey is announced in-band.
"""

from __future__ import annotations

import struct

from .errors import (
    BadArgument,
    FrameTooLarge,
    MalformedFrame,
    RemoteError,
    StateError,
    TooLarge,
    Truncated,
    UnsupportedProtocol,
)
from .noise import MAX_MESSAGE, MAX_PLAINTEXT, Transport

PROLOGUE = b"p2p/1"
PREAMBLES = {"XX": PROLOGUE + b"X", "IK": PROLOGUE + b"I"}
PATTERN_BY_PREAMBLE = {value: key for key, value in PREAMBLES.items()}
PREAMBLE_LEN = 6

FRAME_HEADER_LEN = 2
MAX_FRAME = MAX_MESSAGE  # 65535: what a 2-byte length can say, and Noise's own limit
# Handshake messages carry empty payloads in p2p/1 (at most 96 bytes), so an
# unauthenticated peer gets a much smaller buffer until the handshake is done.
HANDSHAKE_MAX_FRAME = 1024

CHUNK_HEADER_LEN = 1
MAX_CHUNK = MAX_PLAINTEXT - CHUNK_HEADER_LEN  # 65518 application bytes per Noise message
FLAG_MORE = 0x01  # more chunks of this application message follow
FLAG_REKEY = 0x02  # sender rekeyed its sending key right after this Noise message
_RESERVED = 0xFF & ~(FLAG_MORE | FLAG_REKEY)

MAX_APP_MESSAGE = 1 << 20  # 1 MiB reassembled
REKEY_INTERVAL = 1 << 20  # Noise messages per direction between rekeys, at most

_u16 = struct.Struct(">H")




def encode_frame(body: bytes) -> bytes:
    if len(body) > MAX_FRAME:
        raise BadArgument(f"frame body over {MAX_FRAME} bytes")
    return _u16.pack(len(body)) + body


def parse_preamble(data: bytes) -> str:
    """6 bytes -> "XX" or "IK"."""
    pattern = PATTERN_BY_PREAMBLE.get(bytes(data))
    if pattern is None:
        if bytes(data[:5]) != PROLOGUE:
            raise UnsupportedProtocol(f"preamble {bytes(data)!r} is not p2p/1")
        raise UnsupportedProtocol(f"preamble names unknown handshake {bytes(data[5:6])!r}")
    return pattern


class FrameReader:
    """Bytes from the stream in, complete frame bodies out.

    Two ways to use it: `receive_data(data)` buffers and returns every complete
    frame; or `feed(data)` then `next_frame()` one at a time, which the connection
    uses during the handshake so that it can raise `max_frame` from
    HANDSHAKE_MAX_FRAME to MAX_FRAME exactly after the last handshake message (the
    peer may already have sent transport frames in the same read).

    A declared length is checked against `max_frame` as soon as its two bytes are
    at the head of the buffer, so an incomplete frame never makes us hold more than
    2 + max_frame bytes. Any error is sticky: after it the stream position is
    meaningless.
    """

    __slots__ = ("_buf", "_pos", "max_frame", "pattern", "_expect_preamble", "_failed", "_eof")

    def __init__(self, *, max_frame: int = MAX_FRAME, expect_preamble: bool = False) -> None:
        if not 0 < max_frame <= MAX_FRAME:
            raise BadArgument(f"max_frame must be in 1..{MAX_FRAME}")
        self._buf = bytearray()
        self._pos = 0  # consumed prefix of _buf, dropped lazily to avoid O(n^2) copies
        self.max_frame = max_frame
        self.pattern: str | None = None  # set once the preamble has been read
        self._expect_preamble = expect_preamble
        self._failed = False
        self._eof = False

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def _fail(self, exc: RemoteError) -> RemoteError:
        self._failed = True
        self._buf.clear()
        self._pos = 0
        return exc

    def feed(self, data: bytes) -> None:
        if self._failed:
            raise StateError("frame reader failed earlier")
        if self._eof:
            raise StateError("data after end of stream")
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data
        if self._expect_preamble:
            self._read_preamble()

    def _read_preamble(self) -> None:
        buf = self._buf
        if len(buf) < PREAMBLE_LEN:
            # Reject a wrong start at once rather than waiting for all 6 bytes.
            if bytes(buf) != PROLOGUE[: len(buf)]:
                raise self._fail(UnsupportedProtocol("stream does not start with p2p/1"))
            return
        try:
            self.pattern = parse_preamble(buf[:PREAMBLE_LEN])
        except RemoteError as exc:
            raise self._fail(exc) from None
        self._expect_preamble = False
        self._pos = PREAMBLE_LEN

    def next_frame(self) -> bytes | None:
        """The next complete frame body, or None if more bytes are needed."""
        if self._failed:
            raise StateError("frame reader failed earlier")
        if self._expect_preamble:
            return None
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < FRAME_HEADER_LEN:
            return None
        (length,) = _u16.unpack_from(buf, pos)
        if length > self.max_frame:
            raise self._fail(
                FrameTooLarge(f"frame declares {length} bytes, limit {self.max_frame}")
            )
        stop = pos + FRAME_HEADER_LEN + length
        if stop > len(buf):
            return None
        self._pos = stop
        return bytes(buf[pos + FRAME_HEADER_LEN : stop])

    def receive_data(self, data: bytes) -> list[bytes]:
        self.feed(data)
        frames = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def receive_eof(self) -> None:
        """The peer closed its side. Raises Truncated if it stopped mid-frame."""
        if self._failed:
            raise StateError("frame reader failed earlier")
        self._eof = True
        if self._expect_preamble:
            raise self._fail(Truncated("stream ended before the preamble"))
        pending = self.buffered
        if pending:
            raise self._fail(Truncated(f"stream ended inside a frame ({pending} bytes pending)"))


class Channel:
    """Application messages over an established Noise Transport, on a framed stream.

    `send(message)` returns the bytes to write; `receive_data(bytes)` returns the
    complete application messages they carried. Rekeying: the sender sets REKEY on
    the Noise message after which it rekeys, at the latest on the `rekey_interval`-th
    message since the last rekey; the receiver follows the flag, so it needs no
    counter of its own. Any remote error closes the receive side for good.
    """

    __slots__ = (
        "transport",
        "_reader",
        "max_message",
        "rekey_interval",
        "chunk_size",
        "_since_rekey",
        "_rekey_requested",
        "_parts",
        "_partial_len",
        "_failed",
        "_deferred",
    )

    def __init__(
        self,
        transport: Transport,
        *,
        max_message: int = MAX_APP_MESSAGE,
        rekey_interval: int = REKEY_INTERVAL,
        chunk_size: int = MAX_CHUNK,
        reader: FrameReader | None = None,
    ) -> None:
        if not 0 < max_message <= MAX_APP_MESSAGE:
            raise BadArgument(f"max_message must be in 1..{MAX_APP_MESSAGE}")
        if not 0 < rekey_interval <= REKEY_INTERVAL:
            raise BadArgument(f"rekey_interval must be in 1..{REKEY_INTERVAL}")
        if not 0 < chunk_size <= MAX_CHUNK:
            raise BadArgument(f"chunk_size must be in 1..{MAX_CHUNK}")
        self.transport = transport
        # The handshake's reader, if given, may already hold transport frames.
        self._reader = reader if reader is not None else FrameReader()
        self._reader.max_frame = MAX_FRAME
        self.max_message = max_message
        self.rekey_interval = rekey_interval
        self.chunk_size = chunk_size
        self._since_rekey = 0
        self._rekey_requested = False
        self._parts: list[bytes] = []
        self._partial_len = 0
        self._failed = False
        self._deferred: RemoteError | None = None

    # -- sending ---------------------------------------------------------------

    def request_rekey(self) -> None:
        """Rekey the sending key after the next Noise message (flagged REKEY)."""
        self._rekey_requested = True

    def send(self, message: bytes) -> bytes:
        if len(message) > MAX_APP_MESSAGE:
            raise BadArgument(f"application message over {MAX_APP_MESSAGE} bytes")
        step = self.chunk_size
        view = memoryview(message)
        out = []
        start = 0
        total = len(message)
        transport = self.transport
        while True:
            stop = min(start + step, total)
            flags = FLAG_MORE if stop < total else 0
            self._since_rekey += 1
            rekey = self._rekey_requested or self._since_rekey >= self.rekey_interval
            if rekey:
                flags |= FLAG_REKEY
            ciphertext = transport.encrypt(bytes((flags,)) + view[start:stop])
            out.append(_u16.pack(len(ciphertext)))
            out.append(ciphertext)
            if rekey:
                transport.rekey_send()
                self._since_rekey = 0
                self._rekey_requested = False
            start = stop
            if start >= total:
                return b"".join(out)

    # -- receiving -------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[bytes]:
        """The application messages `data` completes. On a fault, the messages that
        were complete before the faulty frame are returned first (they were
        authenticated) and the fault is raised by the next call: a peer's valid
        messages are never lost to a later bad frame in the same read."""
        self._raise_deferred()
        if self._failed:
            raise StateError("channel receive side failed earlier")
        messages: list[bytes] = []
        reader = self._reader
        try:
            reader.feed(data)
            while (frame := reader.next_frame()) is not None:
                message = self._chunk(frame)
                if message is not None:
                    messages.append(message)
        except RemoteError as exc:
            self._parts.clear()
            self._partial_len = 0
            if messages:
                self._deferred = exc
                return messages
            self._failed = True
            raise
        return messages

    def _raise_deferred(self) -> None:
        exc = self._deferred
        if exc is not None:
            self._deferred = None
            self._failed = True
            raise exc

    def receive_eof(self) -> None:
        self._raise_deferred()
        if self._failed:
            raise StateError("channel receive side failed earlier")
        try:
            self._reader.receive_eof()
            if self._parts or self._partial_len:
                raise Truncated("stream ended inside a chunked message")
        except RemoteError:
            self._failed = True
            self._parts.clear()
            raise

    def _chunk(self, frame: bytes) -> bytes | None:
        """One transport frame in; the message it completes, if any."""
        plaintext = self.transport.decrypt(frame)
        if not plaintext:
            raise MalformedFrame("transport plaintext without chunk header")
        flags = plaintext[0]
        if flags & _RESERVED:
            raise MalformedFrame(f"reserved chunk flags set: {flags:#04x}")
        if flags & FLAG_REKEY:
            self.transport.rekey_receive()
        size = len(plaintext) - CHUNK_HEADER_LEN
        if self._partial_len + size > self.max_message:
            raise TooLarge(f"reassembled message over {self.max_message} bytes")
        if flags & FLAG_MORE:
            if not size:
                raise MalformedFrame("empty non-final chunk")
            self._parts.append(plaintext[CHUNK_HEADER_LEN:])
            self._partial_len += size
            return None
        if self._parts:
            self._parts.append(plaintext[CHUNK_HEADER_LEN:])
            message = b"".join(self._parts)
            self._parts.clear()
            self._partial_len = 0
            return message
        return plaintext[CHUNK_HEADER_LEN:]
