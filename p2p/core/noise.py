"""Noise Protocol Framework (revision 34), sans-IO, for the two handshakes p2p uses.

Only ``Noise_XX_25519_ChaChaPoly_BLAKE2b`` and ``Noise_IK_25519_ChaChaPoly_BLAKE2b``
are implemented (spec/05-transport.md says why those two). The Noise objects
(CipherState, SymmetricState) follow the Noise spec section 5 one to one, so the
code can be read against it; `Handshake` wraps the HandshakeState in an h11-style
state machine and `Transport` is what Split() hands back.

Randomness is never drawn here: the caller passes the ephemeral private key, which
is what makes handshakes reproducible against published test vectors.
"""

from __future__ import annotations

import hmac
import struct
from hashlib import blake2b as _blake2b
from dataclasses import dataclass
from enum import Enum
from typing import Any

from nacl.bindings import (
    crypto_aead_chacha20poly1305_ietf_decrypt as _aead_decrypt,
    crypto_aead_chacha20poly1305_ietf_encrypt as _aead_encrypt,
)
from nacl.exceptions import CryptoError

from .errors import (
    BadArgument,
    HandshakeFailed,
    InvalidKey,
    NonceExhausted,
    RemoteError,
    StateError,
    TransportDecryptFailed,
)
from .keys import check_key_bytes, x25519, x25519_public

DHLEN = 32
HASHLEN = 64
KEYLEN = 32
TAGLEN = 16
MAX_MESSAGE = 65535
MAX_PLAINTEXT = MAX_MESSAGE - TAGLEN
# Noise section 5.1: nonce 2**64-1 is reserved (it is the rekey nonce).
MAX_NONCE = 2**64 - 1

PROTOCOL_NAMES = {
    "XX": "Noise_XX_25519_ChaChaPoly_BLAKE2b",
    "IK": "Noise_IK_25519_ChaChaPoly_BLAKE2b",
}
PATTERN_BY_NAME = {name: pattern for pattern, name in PROTOCOL_NAMES.items()}

# Message patterns (Noise section 7). Pre-messages are handled in Handshake.__init__.
_PATTERNS: dict[str, tuple[tuple[str, ...], ...]] = {
    "XX": (("e",), ("e", "ee", "s", "es"), ("s", "se")),
    "IK": (("e", "es", "s", "ss"), ("e", "ee", "se")),
}

_NONCE_PREFIX = b"\x00\x00\x00\x00"
_pack_counter = struct.Struct("<Q").pack
_ZEROS32 = bytes(32)


# --- primitives -----------------------------------------------------------


def _hmac(key: bytes, data: bytes) -> bytes:
    # "blake2b" by name lets hmac use OpenSSL's one-shot path (BLAKE2b-512, block 128).
    return hmac.digest(key, data, "blake2b")


def hkdf2(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """HKDF(ck, ikm, 2) of Noise section 4.3."""
    temp = _hmac(chaining_key, ikm)
    out1 = _hmac(temp, b"\x01")
    return out1, _hmac(temp, out1 + b"\x02")


def _hash(data: bytes) -> bytes:
    return _blake2b(data).digest()


def _check_key(value: bytes | None, what: str) -> bytes:
    return check_key_bytes(value, what, BadArgument)


@dataclass(frozen=True, slots=True)
class KeyPair:
    private: bytes
    public: bytes

    @classmethod
    def from_private(cls, private: bytes, what: str = "X25519 private key") -> KeyPair:
        private = _check_key(private, what)
        return cls(private, x25519_public(private))


# --- Noise objects (section 5) ----------------------------------------------


class CipherState:
    """k and n of Noise section 5.1. `k is None` means 'empty'."""

    __slots__ = ("k", "n")

    def __init__(self, k: bytes | None = None, n: int = 0) -> None:
        self.k = k
        self.n = n

    def has_key(self) -> bool:
        return self.k is not None

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        k = self.k
        if k is None:
            return plaintext
        n = self.n
        if n >= MAX_NONCE:
            raise NonceExhausted("send nonce reached 2**64-1; the session must end")
        out = _aead_encrypt(plaintext, ad, _NONCE_PREFIX + _pack_counter(n), k)
        self.n = n + 1
        return out

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Raises TransportDecryptFailed; n is unchanged on failure (Noise 5.1)."""
        k = self.k
        if k is None:
            return ciphertext
        n = self.n
        if n >= MAX_NONCE:
            raise NonceExhausted("receive nonce reached 2**64-1; the session must end")
        if len(ciphertext) < TAGLEN:
            raise TransportDecryptFailed("ciphertext shorter than the 16-byte tag")
        try:
            out = _aead_decrypt(ciphertext, ad, _NONCE_PREFIX + _pack_counter(n), k)
        except CryptoError as exc:
            raise TransportDecryptFailed("ChaCha20-Poly1305 tag did not verify") from exc
        self.n = n + 1
        return out

    def rekey(self) -> None:
        """REKEY(k) = ENCRYPT(k, maxnonce, zerolen, zeros)[:32] (Noise 4.2, 11.3); n kept."""
        if self.k is None:
            raise StateError("rekey of an empty CipherState")
        self.k = _aead_encrypt(_ZEROS32, b"", _NONCE_PREFIX + _pack_counter(MAX_NONCE), self.k)[
            :KEYLEN
        ]


class SymmetricState:
    __slots__ = ("cs", "ck", "h")

    def __init__(self, protocol_name: bytes) -> None:
        if len(protocol_name) <= HASHLEN:
            h = protocol_name.ljust(HASHLEN, b"\x00")
        else:
            h = _hash(protocol_name)
        self.h = h
        self.ck = h
        self.cs = CipherState()

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = hkdf2(self.ck, ikm)
        self.cs = CipherState(temp_k[:KEYLEN])

    def mix_hash(self, data: bytes) -> None:
        self.h = _hash(self.h + data)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cs.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cs.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        k1, k2 = hkdf2(self.ck, b"")
        return CipherState(k1[:KEYLEN]), CipherState(k2[:KEYLEN])


# --- transport ------------------------------------------------------------


class Transport:
    """The two CipherStates Split() returns, oriented as send/receive.

    A failed decrypt leaves the receive nonce unchanged (Noise 5.1), but p2p runs
    over an ordered stream where a bad message means the stream is corrupt or under
    attack, so the receive direction is then closed for good (`receive_failed`).
    """

    __slots__ = ("_send", "_recv", "receive_failed")

    def __init__(self, send: CipherState, receive: CipherState) -> None:
        self._send = send
        self._recv = receive
        self.receive_failed = False

    @property
    def send_nonce(self) -> int:
        return self._send.n

    @property
    def receive_nonce(self) -> int:
        return self._recv.n

    def encrypt(self, plaintext: bytes, ad: bytes = b"") -> bytes:
        if len(plaintext) > MAX_PLAINTEXT:
            raise BadArgument(f"transport plaintext over {MAX_PLAINTEXT} bytes")
        return self._send.encrypt_with_ad(ad, plaintext)

    def decrypt(self, ciphertext: bytes, ad: bytes = b"") -> bytes:
        if self.receive_failed:
            raise StateError("receive direction closed after a failed decrypt")
        if len(ciphertext) > MAX_MESSAGE:
            self.receive_failed = True
            raise TransportDecryptFailed(f"transport message over {MAX_MESSAGE} bytes")
        try:
            return self._recv.decrypt_with_ad(ad, ciphertext)
        except TransportDecryptFailed:
            self.receive_failed = True
            raise

    def rekey_send(self) -> None:
        self._send.rekey()

    def rekey_receive(self) -> None:
        self._recv.rekey()


# --- handshake ------------------------------------------------------------


class Role(Enum):
    INITIATOR = "initiator"
    RESPONDER = "responder"


class HandshakeStatus(Enum):
    SEND = "send"  # our turn to write_message
    RECEIVE = "receive"  # our turn to read_message
    COMPLETE = "complete"  # Split done: transport available
    ERROR = "error"  # a remote message failed: sticky, the handshake is dead


class _Event(Enum):
    WROTE = "wrote"
    WROTE_LAST = "wrote-last"
    READ = "read"
    READ_LAST = "read-last"
    FAILED = "failed"


_TRANSITIONS: dict[tuple[HandshakeStatus, _Event], HandshakeStatus] = {
    (HandshakeStatus.SEND, _Event.WROTE): HandshakeStatus.RECEIVE,
    (HandshakeStatus.SEND, _Event.WROTE_LAST): HandshakeStatus.COMPLETE,
    (HandshakeStatus.RECEIVE, _Event.READ): HandshakeStatus.SEND,
    (HandshakeStatus.RECEIVE, _Event.READ_LAST): HandshakeStatus.COMPLETE,
    (HandshakeStatus.RECEIVE, _Event.FAILED): HandshakeStatus.ERROR,
    # Writing fails only on a peer's bad key that had no DH until now (XX message
    # 1 carries e in clear; a low-order point is first used in our message 2).
    (HandshakeStatus.SEND, _Event.FAILED): HandshakeStatus.ERROR,
}


class Handshake:
    """One Noise handshake. Alternate write_message/read_message as `status` says.

    Calls out of turn raise StateError and change nothing. A bad message from the
    peer raises HandshakeFailed and moves to ERROR for good, because the symmetric
    state has already absorbed part of it and cannot be trusted afterwards.
    """

    __slots__ = (
        "role",
        "pattern",
        "protocol_name",
        "status",
        "_ss",
        "_s",
        "_e",
        "_rs",
        "_re",
        "_index",
        "_transport",
    )

    def __init__(
        self,
        role: Role | str,
        pattern: str,
        static: KeyPair | Any,
        ephemeral_private: bytes,
        *,
        remote_static: bytes | None = None,
        prologue: bytes = b"",
    ) -> None:
        try:
            self.role = Role(role)
        except ValueError:
            raise BadArgument(f"role must be initiator or responder, not {role!r}") from None
        if pattern not in _PATTERNS:
            raise BadArgument(f"unsupported handshake pattern {pattern!r}")
        # Duck-typed so p2p.core.keys.AgreementKey (.secret) works as well as KeyPair
        # (.private); the public half is always re-derived, never trusted.
        private = getattr(static, "private", None) or getattr(static, "secret", None)
        static = KeyPair.from_private(private, "static private key")
        initiator = self.role is Role.INITIATOR
        if pattern == "IK" and initiator:
            remote_static = _check_key(remote_static, "IK initiator's remote static key")
        elif remote_static is not None:
            raise BadArgument(f"{pattern} {self.role.value} learns the remote static key")
        self.pattern = pattern
        self.protocol_name = PROTOCOL_NAMES[pattern]
        self._s = static
        self._e = KeyPair.from_private(ephemeral_private, "ephemeral private key")
        self._rs = remote_static
        self._re: bytes | None = None
        self._index = 0
        self._transport: Transport | None = None
        ss = SymmetricState(self.protocol_name.encode("ascii"))
        ss.mix_hash(bytes(prologue))
        if pattern == "IK":  # pre-message "<- s"
            ss.mix_hash(self._s.public if not initiator else remote_static)
        self._ss = ss
        self.status = HandshakeStatus.SEND if initiator else HandshakeStatus.RECEIVE

    # -- results -------------------------------------------------------------

    @property
    def complete(self) -> bool:
        return self.status is HandshakeStatus.COMPLETE

    @property
    def handshake_hash(self) -> bytes:
        """h after the last message: a channel binding both sides share (Noise 11.2)."""
        if self.status is not HandshakeStatus.COMPLETE:
            raise StateError("handshake hash is only final once the handshake is complete")
        return self._ss.h

    @property
    def remote_static(self) -> bytes | None:
        """The peer's static public key, once it has been received (or given for IK)."""
        return self._rs

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise StateError("transport is only available once the handshake is complete")
        return self._transport

    # -- internals -----------------------------------------------------------

    def _tokens(self) -> tuple[str, ...]:
        return _PATTERNS[self.pattern][self._index]

    def _is_last(self) -> bool:
        return self._index == len(_PATTERNS[self.pattern]) - 1

    def _overhead(self) -> int:
        """Bytes write_message adds around the payload, computed without side effects."""
        has_key = self._ss.cs.has_key()
        size = 0
        for token in self._tokens():
            if token == "e":
                size += DHLEN
            elif token == "s":
                size += DHLEN + (TAGLEN if has_key else 0)
            else:
                has_key = True
        return size + (TAGLEN if has_key else 0)

    def _dh_token(self, token: str) -> bytes:
        if token == "ee":
            private, public = self._e.private, self._re
        elif token == "ss":
            private, public = self._s.private, self._rs
        # "es": initiator's e with responder's s; "se": initiator's s with responder's e
        elif (token == "es") == (self.role is Role.INITIATOR):
            private, public = self._e.private, self._rs
        else:
            private, public = self._s.private, self._re
        try:
            return x25519(private, public)
        except InvalidKey as exc:  # libsodium refuses low-order points (all-zero output)
            raise HandshakeFailed("X25519 with a low-order public key") from exc

    def _advance(self, event_more: _Event, event_last: _Event) -> None:
        last = self._is_last()
        if last:
            c1, c2 = self._ss.split()
            if self.role is Role.INITIATOR:
                self._transport = Transport(c1, c2)
            else:
                self._transport = Transport(c2, c1)
        self.status = _TRANSITIONS[(self.status, event_last if last else event_more)]
        self._index += 1

    # -- the two calls -------------------------------------------------------

    def write_message(self, payload: bytes = b"") -> bytes:
        if self.status is not HandshakeStatus.SEND:
            raise StateError(f"write_message while {self.status.value}")
        if len(payload) + self._overhead() > MAX_MESSAGE:
            raise BadArgument(f"handshake message would exceed {MAX_MESSAGE} bytes")
        ss = self._ss
        out = []
        try:
            for token in self._tokens():
                if token == "e":
                    out.append(self._e.public)
                    ss.mix_hash(self._e.public)
                elif token == "s":
                    out.append(ss.encrypt_and_hash(self._s.public))
                else:
                    ss.mix_key(self._dh_token(token))
        except HandshakeFailed:
            self.status = _TRANSITIONS[(self.status, _Event.FAILED)]
            raise
        out.append(ss.encrypt_and_hash(bytes(payload)))
        self._advance(_Event.WROTE, _Event.WROTE_LAST)
        return b"".join(out)

    def read_message(self, message: bytes) -> bytes:
        if self.status is not HandshakeStatus.RECEIVE:
            raise StateError(f"read_message while {self.status.value}")
        try:
            payload = self._read(bytes(message))
        except RemoteError as exc:
            self.status = _TRANSITIONS[(self.status, _Event.FAILED)]
            if isinstance(exc, HandshakeFailed):
                raise
            raise HandshakeFailed(exc.detail) from exc
        self._advance(_Event.READ, _Event.READ_LAST)
        return payload

    def _read(self, message: bytes) -> bytes:
        if len(message) > MAX_MESSAGE:
            raise HandshakeFailed(f"handshake message over {MAX_MESSAGE} bytes")
        ss = self._ss
        pos = 0
        for token in self._tokens():
            if token == "e":
                if len(message) - pos < DHLEN:
                    raise HandshakeFailed("handshake message truncated in ephemeral key")
                self._re = message[pos : pos + DHLEN]
                pos += DHLEN
                ss.mix_hash(self._re)
            elif token == "s":
                size = DHLEN + (TAGLEN if ss.cs.has_key() else 0)
                if len(message) - pos < size:
                    raise HandshakeFailed("handshake message truncated in static key")
                self._rs = ss.decrypt_and_hash(message[pos : pos + size])
                pos += size
            else:
                ss.mix_key(self._dh_token(token))
        return ss.decrypt_and_hash(message[pos:])
