"""The I/O shell of p2p: Noise connections over trio streams, the TCP listener and dialer.

p2p.core holds the protocol logic without I/O; this package runs it on sockets.
"""

from .limits import DEFAULT_LIMITS, TransportLimits
from .noise_stream import (
    ConnectionClosed,
    HandshakeTimeout,
    IdleTimeout,
    NoiseConnection,
    SendTimeout,
    UnexpectedPeer,
    Unreachable,
)
from .transport import ListenerStats, ServedConnection, connect, serve, serve_connection

__all__ = [
    "DEFAULT_LIMITS",
    "ConnectionClosed",
    "HandshakeTimeout",
    "IdleTimeout",
    "ListenerStats",
    "NoiseConnection",
    "SendTimeout",
    "ServedConnection",
    "TransportLimits",
    "UnexpectedPeer",
    "Unreachable",
    "connect",
    "serve",
    "serve_connection",
]
