"""Every number the TCP transport enforces, in one place (spec/09-transport-limits.md).

The defaults are the normative values of spec section 9; a deployment or a test may
lower or raise them by building its own `TransportLimits`. Protocol constants that are
not a local choice (the 1024-byte handshake frame, 65535-byte frames, the 1 MiB
message ceiling, the 2^20-message rekey bound) live in p2p.core.framing and are only
referenced here.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2p.core.errors import BadArgument
from p2p.core.framing import (
    HANDSHAKE_MAX_FRAME,
    MAX_APP_MESSAGE,
    MAX_FRAME,
    PREAMBLE_LEN,
    REKEY_INTERVAL,
)

# Reads while unauthenticated are sized to one preamble plus one largest handshake
# frame, so a handshaking peer can make us hold at most about twice that (5.11).
HANDSHAKE_READ_SIZE = PREAMBLE_LEN + 2 + HANDSHAKE_MAX_FRAME  # 1032
# One largest frame per read after the handshake: a 1 MiB message takes 17 reads.
TRANSPORT_READ_SIZE = 2 + MAX_FRAME  # 65537


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """Limits of one listener or dialer. Times in seconds, sizes in bytes."""

    # Listener: accepted TCP connections alive at once (handshaking + established).
    max_connections: int = 256
    # Listener: of those, connections that have not finished the handshake. When full,
    # a new connection evicts the oldest handshaking one (so idle junk cannot lock a
    # legitimate peer out; spec 9.3).
    max_handshaking: int = 64
    # Both sides: from the first byte sent/accepted to the last handshake message.
    handshake_timeout: float = 10.0
    # Listener: an established connection with no complete message in either
    # direction for this long is closed.
    idle_timeout: float = 300.0
    # Both sides: one send() (up to 1 MiB) must be written within this time, or the
    # peer is not reading and the connection is closed.
    send_timeout: float = 60.0
    # Both sides: largest application message accepted (and sent).
    max_message: int = MAX_APP_MESSAGE
    # Listener: received messages queued for the handler, by count and by bytes.
    # The reader stops reading the socket while either is reached (TCP backpressure).
    inflight_messages: int = 32
    inflight_bytes: int = 1 << 20
    # Both sides: Noise messages between two REKEY flags we send (spec 5.8).
    rekey_interval: int = REKEY_INTERVAL

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.max_handshaking < 1:
            raise BadArgument("connection caps must be at least 1")
        if self.max_handshaking > self.max_connections:
            raise BadArgument("max_handshaking cannot exceed max_connections")
        for name in ("handshake_timeout", "idle_timeout", "send_timeout"):
            if not getattr(self, name) > 0:
                raise BadArgument(f"{name} must be positive")
        if not 0 < self.max_message <= MAX_APP_MESSAGE:
            raise BadArgument(f"max_message must be in 1..{MAX_APP_MESSAGE}")
        if self.inflight_messages < 1 or self.inflight_bytes < 1:
            raise BadArgument("in-flight limits must be at least 1")
        if not 0 < self.rekey_interval <= REKEY_INTERVAL:
            raise BadArgument(f"rekey_interval must be in 1..{REKEY_INTERVAL}")

    @property
    def worst_case_connection_memory(self) -> int:
        """Upper bound of buffered payload bytes one established connection can pin.

        Queue (the reader enqueues while below inflight_bytes, so at most one message
        over it), one message being reassembled, the frame buffer and one read of
        decrypted messages not yet queued.
        """
        return (
            self.inflight_bytes
            + 2 * self.max_message
            + 2 * TRANSPORT_READ_SIZE
            + TRANSPORT_READ_SIZE
        )


DEFAULT_LIMITS = TransportLimits()
