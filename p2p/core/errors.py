"""Every error the core raises, each with a stable code from spec/errors.md.

Two families, as h11 has them: `LocalError` when our own caller asked for
something impossible, `RemoteError` when bytes from a peer are bad. A RemoteError's
`code` is what goes into a problem-report to that peer. Codes are the API; the
class hierarchy exists so callers can `except` a family at once.
"""

from __future__ import annotations


class P2PError(Exception):
    code = "error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.code)
        self.detail = detail


class LocalError(P2PError):
    """Our caller misused the API (wrong state, bad argument)."""

    code = "local-error"


class RemoteError(P2PError):
    """Bytes that came from outside are unacceptable."""

    code = "remote-error"


# --- encoding -------------------------------------------------------------


class MalformedCBOR(RemoteError):
    code = "malformed-cbor"


class Truncated(RemoteError):
    code = "truncated"


class TrailingData(RemoteError):
    code = "trailing-data"


class TooLarge(RemoteError):
    code = "too-large"


# --- identifiers ----------------------------------------------------------


class InvalidDID(RemoteError):
    code = "invalid-did"


class InvalidKey(RemoteError):
    code = "invalid-key"


# --- messages -------------------------------------------------------------


class InvalidMessage(RemoteError):
    code = "invalid-message"


class MissingField(InvalidMessage):
    code = "missing-field"


class InvalidField(InvalidMessage):
    code = "invalid-field"


class UnknownCriticalField(InvalidMessage):
    code = "unknown-critical-field"


class MessageExpired(InvalidMessage):
    code = "message-expired"


class ClockSkew(InvalidMessage):
    code = "clock-skew"


# --- envelopes ------------------------------------------------------------


class MalformedEnvelope(RemoteError):
    """Well-formed CBOR that is not a COSE structure p2p accepts."""

    code = "malformed-envelope"


class UnsupportedAlgorithm(RemoteError):
    code = "unsupported-algorithm"


class WrongRecipient(RemoteError):
    """The envelope is not addressed to any key we hold."""

    code = "wrong-recipient"


class UnknownSender(RemoteError):
    code = "unknown-sender"


class DecryptionFailed(RemoteError):
    """AEAD tag did not verify: tampering, or the wrong key."""

    code = "decryption-failed"


class BadSignature(RemoteError):
    code = "bad-signature"


class SenderMismatch(RemoteError):
    """Signer of an inner envelope differs from the authenticated outer sender."""

    code = "sender-mismatch"


# --- transport ------------------------------------------------------------


class HandshakeFailed(RemoteError):
    code = "handshake-failed"


class FrameTooLarge(RemoteError):
    code = "frame-too-large"


class TransportDecryptFailed(RemoteError):
    code = "transport-decrypt-failed"


class NonceExhausted(LocalError):
    code = "nonce-exhausted"


class StateError(LocalError):
    code = "state-error"


class BadArgument(LocalError):
    """Our caller passed a value the API cannot use (wrong length, too large...)."""

    code = "bad-argument"


class MalformedFrame(RemoteError):
    """A decrypted transport plaintext whose chunk header p2p does not accept."""

    code = "malformed-frame"


class UnsupportedProtocol(RemoteError):
    """The preamble names a protocol version or handshake pattern we do not speak."""

    code = "unsupported-protocol"
