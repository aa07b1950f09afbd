"""What travels inside a Noise channel: delivery frames (spec/12-delivery.md).

Each application message of the transport (spec/05 §5.7) is one CBOR array:

    [1, seq, envelope]   deliver: the sender's seq-th message of this relationship
    [2, [seq, ...]]      receipt: the receiver has taken these for good (stored, or
                         rejected with a problem report): stop resending them
    [3, reason]          close: the sender will send no more frames

Receipts are hop-by-hop: the Noise channel is already authenticated to the
relationship's keys, so a receipt costs a few bytes and no envelope. Exactly-once to
the application comes from de-duplication by (sender DID, message id); per-thread
order from the sender sending each relationship's queue in seq order over one
connection (`SendWindow`) and the receiver dropping seqs it has already taken
(`ReceiveWindow`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from .. import cbor
from ..errors import LocalError
from .errors import MalformedDeliveryFrame, UnknownFrameKind

DELIVER = 1
RECEIPT = 2
CLOSE = 3

MAX_FRAME_BYTES = 1_048_576  # the transport's application message limit (spec/05 §5.7)
FRAME_OVERHEAD = 16  # array head, kind, a 9-byte seq, a 5-byte bstr head; rounded up
MAX_ENVELOPE_BYTES = MAX_FRAME_BYTES - FRAME_OVERHEAD
MAX_SEQ = 2**63 - 1
MAX_RECEIPT_SEQS = 1024
MAX_REASON_CHARS = 64
_REASON_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")

# Backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter"):
# the delay before retry n (n = 0, 1, ...) is uniform in [0, min(cap, base * 2^n)].
BACKOFF_BASE_MS = 1_000
BACKOFF_CAP_MS = 300_000
DEFAULT_EXPIRY_S = 7 * 24 * 3600  # when the application sets no expires_time


@dataclass(frozen=True, slots=True)
class Deliver:
    seq: int
    envelope: bytes


@dataclass(frozen=True, slots=True)
class Receipt:
    seqs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Close:
    reason: str


Frame = Union[Deliver, Receipt, Close]


def _head(major: int, n: int) -> bytes:
    """A CBOR head in its shortest form (RFC 8949 §4.2.1)."""
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return bytes((mt | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((mt | 26,)) + n.to_bytes(4, "big")
    return bytes((mt | 27,)) + n.to_bytes(8, "big")


def _seq_ok(seq: object) -> bool:
    return type(seq) is int and 1 <= seq <= MAX_SEQ


def encode(frame: Frame) -> bytes:
    """Deterministic CBOR of a frame. Deliver frames are built by hand: the envelope
    is copied once, not walked by a generic encoder (this is the per-message path)."""
    if type(frame) is Deliver:
        env = frame.envelope
        if not _seq_ok(frame.seq):
            raise LocalError(f"seq must be 1..{MAX_SEQ}")
        if type(env) is not bytes or not 0 < len(env) <= MAX_ENVELOPE_BYTES:
            raise LocalError(f"envelope must be 1..{MAX_ENVELOPE_BYTES} bytes")
        return b"".join((b"\x83\x01", _head(0, frame.seq), _head(2, len(env)), env))
    if type(frame) is Receipt:
        seqs = frame.seqs
        if not 0 < len(seqs) <= MAX_RECEIPT_SEQS or not all(_seq_ok(s) for s in seqs):
            raise LocalError(f"a receipt names 1..{MAX_RECEIPT_SEQS} seqs, each 1..{MAX_SEQ}")
        return b"".join((b"\x82\x02", _head(4, len(seqs)), *(_head(0, s) for s in seqs)))
    if type(frame) is Close:
        if type(frame.reason) is not str or len(frame.reason) > MAX_REASON_CHARS or \
                not _REASON_RE.fullmatch(frame.reason):
            raise LocalError("close reason must be a lowercase code token of at most 64 characters")
        return cbor.dumps([CLOSE, frame.reason])
    raise LocalError(f"not a delivery frame: {type(frame).__name__}")


def decode(data: bytes) -> Frame:
    """Parse one frame; spec/12 §12.2 gives the checks and their order."""
    value = cbor.loads(data, max_size=MAX_FRAME_BYTES)
    if type(value) is not list or not value or type(value[0]) is not int:
        raise MalformedDeliveryFrame("a frame is a CBOR array starting with its kind (an integer)")
    kind = value[0]
    if kind == DELIVER:
        if len(value) != 3:
            raise MalformedDeliveryFrame("deliver is [1, seq, envelope]")
        _, seq, env = value
        if not _seq_ok(seq):
            raise MalformedDeliveryFrame(f"deliver seq must be an integer 1..{MAX_SEQ}")
        if type(env) is not bytes or not 0 < len(env) <= MAX_ENVELOPE_BYTES:
            raise MalformedDeliveryFrame(f"deliver envelope must be a byte string of 1..{MAX_ENVELOPE_BYTES} bytes")
        return Deliver(seq, env)
    if kind == RECEIPT:
        if len(value) != 2 or type(value[1]) is not list:
            raise MalformedDeliveryFrame("receipt is [2, [seq, ...]]")
        seqs = value[1]
        if not 0 < len(seqs) <= MAX_RECEIPT_SEQS:
            raise MalformedDeliveryFrame(f"a receipt names 1..{MAX_RECEIPT_SEQS} seqs")
        if not all(_seq_ok(s) for s in seqs):
            raise MalformedDeliveryFrame(f"receipt seqs must be integers 1..{MAX_SEQ}")
        return Receipt(tuple(seqs))
    if kind == CLOSE:
        if len(value) != 2 or type(value[1]) is not str:
            raise MalformedDeliveryFrame("close is [3, reason]")
        reason = value[1]
        if len(reason) > MAX_REASON_CHARS or not _REASON_RE.fullmatch(reason):
            raise MalformedDeliveryFrame("close reason must be a lowercase code token of at most 64 characters")
        return Close(reason)
    raise UnknownFrameKind(f"frame kind {kind} (p2p/1 knows 1 deliver, 2 receipt, 3 close)")


# --- sequencing helpers (sans-IO; the daemon keeps one per relationship) ---------------


class ReceiveWindow:
    """Receiver side, per relationship: the highest seq taken for good. A seq at or
    below it is a retransmission: receipt it again, do not process it again. Because
    senders never send a seq below one they already sent on the connection (§12.4),
    `high` alone suffices; gaps (messages the sender let expire) are normal."""

    __slots__ = ("high",)

    def __init__(self, high: int = 0) -> None:
        self.high = high

    def is_new(self, seq: int) -> bool:
        return seq > self.high

    def taken(self, seq: int) -> None:
        """Call after the message with `seq` is stored (or rejected for good)."""
        if seq > self.high:
            self.high = seq


class SendWindow:
    """Sender side, per connection and relationship: seqs sent and not yet receipted,
    in send order. Enforces the ordering rule and bounds what is in flight."""

    __slots__ = ("_in_flight", "last_sent", "limit")

    def __init__(self, limit: int = 256) -> None:
        self._in_flight: dict[int, None] = {}
        self.last_sent = 0
        self.limit = limit

    @property
    def in_flight(self) -> tuple[int, ...]:
        return tuple(self._in_flight)

    def can_send(self) -> bool:
        return len(self._in_flight) < self.limit

    def sent(self, seq: int) -> None:
        if seq <= self.last_sent:
            raise LocalError(f"seq {seq} after {self.last_sent}: a connection carries a relationship's seqs in order")
        if not self.can_send():
            raise LocalError("send window is full; wait for receipts")
        self._in_flight[seq] = None
        self.last_sent = seq

    def receipted(self, seqs: tuple[int, ...]) -> tuple[int, ...]:
        """The seqs newly acknowledged (mark them acked in the outbox). Seqs we did not
        send on this connection are ignored: a late receipt may refer to an earlier one."""
        done = tuple(s for s in dict.fromkeys(seqs) if s in self._in_flight)
        for s in done:
            del self._in_flight[s]
        return done


def backoff_ms(attempt: int, random_u32: int) -> int:
    """Delay before retry `attempt` (0 for the first retry): uniform in
    [0, min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2^attempt)] from a 32-bit random value."""
    if type(attempt) is not int or attempt < 0 or type(random_u32) is not int or not 0 <= random_u32 < 2**32:
        raise LocalError("attempt >= 0 and a 32-bit random value")
    ceiling = min(BACKOFF_CAP_MS, BACKOFF_BASE_MS << min(attempt, 32))
    return (random_u32 * (ceiling + 1)) >> 32


def expires_at(created_time: int, expires_time: int | None) -> int:
    """When the sender gives up on a message: its expires_time, or 7 days after creation."""
    return expires_time if expires_time is not None else created_time + DEFAULT_EXPIRY_S
