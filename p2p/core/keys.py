"""An agent's key set: one Ed25519 key that signs, one X25519 key that agrees.

The two keys are independent (not derived from each other): a compromise of the
agreement secret, which is used far more often (every ECDH envelope, every Noise
handshake), then says nothing about the signing key. spec/02-identifiers.md is the
normative text; this module is its implementation.

No randomness is drawn here: callers pass 32 random bytes for each secret, so
tests and vectors are reproducible and the core stays sans-IO.

This is also the one module that calls the curve functions: cose, envelope and
noise use the primitives below (`x25519_public`, `x25519`, `ed25519_keypair`,
`ed25519_sign`, `ed25519_verify`) and the key checks (`check_public_key`,
`check_key_bytes`) rather than libsodium directly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import nacl.bindings as _nb
import nacl.exceptions as _nx

from . import cbor
from .errors import BadSignature, InvalidKey, LocalError, P2PError

KEY_BYTES = 32
SIGNATURE_BYTES = 64

# COSE labels (RFC 9052 section 7, RFC 9053 section 7.2).
COSE_KTY = 1
COSE_OKP_CRV = -1
COSE_OKP_X = -2
COSE_OKP_D = -4
COSE_KTY_OKP = 1
COSE_CRV_X25519 = 4
COSE_CRV_ED25519 = 6

# A stored COSE_Key is tiny; anything bigger than this is not one of ours.
MAX_COSE_KEY_BYTES = 128
MAX_KEY_SET_BYTES = 128
KEY_SET_VERSION = 1

_P = 2**255 - 19


class KeyType(enum.Enum):
    """Public key types p2p knows; the value is the name used in vectors and APIs."""

    ED25519 = "ed25519"
    X25519 = "x25519"

    @property
    def multicodec(self) -> bytes:
        """Unsigned-varint multicodec prefix (ed25519-pub 0xed, x25519-pub 0xec)."""
        return _MULTICODEC[self]

    @property
    def cose_crv(self) -> int:
        return _COSE_CRV[self]


_MULTICODEC = {KeyType.ED25519: b"\xed\x01", KeyType.X25519: b"\xec\x01"}
_COSE_CRV = {KeyType.ED25519: COSE_CRV_ED25519, KeyType.X25519: COSE_CRV_X25519}
_CRV_TO_TYPE = {v: k for k, v in _COSE_CRV.items()}


class PublicKey(NamedTuple):
    """A checked public key. A NamedTuple so callers can unpack `(key_type, raw)`."""

    key_type: KeyType
    raw: bytes


# Canonical X25519 u-coordinates of small order (order 1, 2, 4, 8). ECDH with one of
# these yields a fixed shared secret whatever our secret is, so they are refused
# up front. Non-canonical encodings (u >= p, or the top bit set) are refused
# separately, which also covers libsodium's p and p+1 entries.
_X25519_SMALL_ORDER = frozenset(
    u.to_bytes(32, "little")
    for u in (
        0,
        1,
        _P - 1,
        0x00B8495F16056286FDB1329CEB8D09DA6AC49FF1FAE35616AEB8413B7C7AEBE0,
        0x57119FD0DD4E22D8868E1C58C45C44045BEF839C55B1D0B1248C50A3BC959C5F,
    )
)


def check_public_key(key_type: KeyType, raw: Any) -> PublicKey:
    """Return `PublicKey(key_type, raw)` if `raw` is an acceptable key, else InvalidKey.

    Each point is accepted in exactly one encoding, so that two different byte strings
    (and therefore two different DIDs or kids) never name the same key.
    """
    if not isinstance(raw, (bytes, bytearray)):
        raise InvalidKey(f"{key_type.value} public key must be bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    if len(raw) != KEY_BYTES:
        raise InvalidKey(f"{key_type.value} public key must be {KEY_BYTES} bytes, got {len(raw)}")
    if key_type is KeyType.X25519:
        if raw[31] & 0x80 or int.from_bytes(raw, "little") >= _P:
            raise InvalidKey("x25519 public key is not canonically encoded (u >= 2^255-19 or top bit set)")
        if raw in _X25519_SMALL_ORDER:
            raise InvalidKey("x25519 public key is a small-order point")
    elif key_type is KeyType.ED25519:
        # libsodium: canonical encoding, on the curve, in the prime-order subgroup,
        # not of small order -- the same checks crypto_sign_open applies.
        if not _nb.crypto_core_ed25519_is_valid_point(raw):
            raise InvalidKey("ed25519 public key is not a valid prime-order point")
    else:  # pragma: no cover - KeyType is closed
        raise LocalError(f"unknown key type {key_type!r}")
    return PublicKey(key_type, raw)


def check_key_bytes(value: Any, what: str, error: type[P2PError] = LocalError) -> bytes:
    """`value` as bytes if it is 32 bytes (bytes or bytearray), else `error`.

    For key material handed to us by our own caller (secrets, seeds, configured
    peer keys); `error` lets each API keep its own code (noise uses BadArgument).
    """
    if not isinstance(value, (bytes, bytearray)) or len(value) != KEY_BYTES:
        raise error(f"{what} must be {KEY_BYTES} bytes")
    return bytes(value)


# --- curve primitives ---------------------------------------------------------
# Thin and unchecked on purpose: they sit on per-message paths, so each is one
# libsodium call. Callers check their own arguments (lengths, canonical keys) once,
# where they know which error fits; what libsodium itself refuses is mapped here.


def x25519_public(secret: bytes) -> bytes:
    """X25519(secret, 9): the public key of a 32-byte secret (RFC 7748 section 6.1)."""
    return _nb.crypto_scalarmult_base(secret)


def x25519(secret: bytes, public: bytes) -> bytes:
    """X25519 shared secret. A public key of small order gives the all-zero output,
    which libsodium refuses; we report that as the peer's bad key (InvalidKey)."""
    try:
        return _nb.crypto_scalarmult(secret, public)
    except (_nx.RuntimeError, _nx.CryptoError):
        raise InvalidKey("X25519 public key of small order (all-zero shared secret)") from None


def ed25519_keypair(seed: bytes) -> tuple[bytes, bytes]:
    """(public, libsodium's 64-byte secret) from a 32-byte seed."""
    return _nb.crypto_sign_seed_keypair(seed)


def ed25519_sign(secret64: bytes, message: bytes) -> bytes:
    """Detached Ed25519 signature (RFC 8032 pure EdDSA), 64 bytes."""
    return _nb.crypto_sign(message, secret64)[:SIGNATURE_BYTES]


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """True if `signature` is a valid Ed25519 signature of `message` by `public`.
    A bool, not an exception, so each caller raises BadSignature with its own detail."""
    signed = signature + message
    try:
        _nb.crypto_sign_open(signed, public)
    except (_nx.CryptoError, ValueError, TypeError):  # BadSignatureError is a CryptoError
        return False
    return True


# --- our keys -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SigningKey:
    """Ed25519: the seed is the secret; libsodium's 64-byte form is cached for signing."""

    seed: bytes = field(repr=False)
    public: bytes
    secret64: bytes = field(repr=False, compare=False)

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        seed = check_key_bytes(seed, "ed25519 seed")
        return cls(seed, *ed25519_keypair(seed))

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(KeyType.ED25519, self.public)

    def sign(self, message: bytes) -> bytes:
        """Detached Ed25519 signature (RFC 8032 pure EdDSA), 64 bytes."""
        return ed25519_sign(self.secret64, message)


@dataclass(frozen=True, slots=True)
class AgreementKey:
    """X25519: used for COSE ECDH and as the Noise static key."""

    secret: bytes = field(repr=False)
    public: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> AgreementKey:
        # Stored as given; X25519 clamps the scalar on every use (RFC 7748 section 5).
        secret = check_key_bytes(secret, "x25519 secret")
        return cls(secret, x25519_public(secret))

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(KeyType.X25519, self.public)

    def exchange(self, peer_public: bytes) -> bytes:
        """Raw X25519 shared secret with `peer_public`, which is checked first
        (check_public_key): InvalidKey if it is not canonical or of small order."""
        return x25519(self.secret, check_public_key(KeyType.X25519, peer_public).raw)


@dataclass(frozen=True, slots=True)
class AgentKeys:
    """The key set of one identity (one DID): a signing key and an agreement key."""

    signing: SigningKey
    agreement: AgreementKey

    @classmethod
    def from_secrets(cls, ed25519_seed: bytes, x25519_secret: bytes) -> AgentKeys:
        """Build from two independent 32-byte secrets the caller drew from a CSPRNG."""
        return cls(SigningKey.from_seed(ed25519_seed), AgreementKey.from_secret(x25519_secret))

    def to_cbor(self) -> bytes:
        """Storage form, rule `did-key-set` in spec/cddl/identifiers.cddl."""
        return cbor.dumps({0: KEY_SET_VERSION, 1: self.signing.seed, 2: self.agreement.secret})

    @classmethod
    def from_cbor(cls, data: bytes) -> AgentKeys:
        m = cbor.loads(data, max_size=MAX_KEY_SET_BYTES)
        if type(m) is not dict or set(m) != {0, 1, 2}:
            raise InvalidKey("key set must be a map with exactly the keys 0, 1, 2")
        if m[0] != KEY_SET_VERSION or type(m[0]) is not int:
            raise InvalidKey(f"unsupported key set version {m[0]!r}")
        for label in (1, 2):
            if type(m[label]) is not bytes or len(m[label]) != KEY_BYTES:
                raise InvalidKey(f"key set entry {label} must be a {KEY_BYTES}-byte string")
        return cls.from_secrets(m[1], m[2])


def sign(key: SigningKey, message: bytes) -> bytes:
    return key.sign(message)


def verify(public: bytes, message: bytes, signature: bytes) -> None:
    """Check a detached Ed25519 signature; BadSignature (or InvalidKey) if it fails."""
    check_public_key(KeyType.ED25519, public)
    if not isinstance(signature, (bytes, bytearray)) or len(signature) != SIGNATURE_BYTES:
        raise BadSignature(f"an ed25519 signature is {SIGNATURE_BYTES} bytes")
    if not ed25519_verify(public, message, bytes(signature)):
        raise BadSignature("ed25519 signature does not verify")


def ed25519_to_x25519(public: bytes) -> bytes:
    """The birationally equivalent X25519 public key (used by did:key's keyAgreement)."""
    check_public_key(KeyType.ED25519, public)
    try:
        return _nb.crypto_sign_ed25519_pk_to_curve25519(public)
    except (_nx.RuntimeError, _nx.CryptoError, ValueError) as exc:  # pragma: no cover - checked above
        raise InvalidKey("ed25519 key has no x25519 equivalent") from exc


# --- COSE_Key -------------------------------------------------------------


def cose_key_map(key: PublicKey) -> dict:
    """The COSE_Key map of a public key: {1: 1, -1: crv, -2: x}."""
    return {COSE_KTY: COSE_KTY_OKP, COSE_OKP_CRV: key.key_type.cose_crv, COSE_OKP_X: key.raw}


def encode_cose_key(key: PublicKey) -> bytes:
    """Deterministic CBOR of `cose_key_map` (rule `did-cose-key`)."""
    return cbor.dumps(cose_key_map(key))


def decode_cose_key(data: bytes | dict) -> PublicKey:
    """Parse a public COSE_Key, given as CBOR bytes or as an already decoded map.

    Strict: exactly the labels 1, -1 and -2. A private part (-4) is refused rather
    than ignored, since its presence means someone leaked a secret.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            m = cbor.loads(bytes(data), max_size=MAX_COSE_KEY_BYTES)
        except P2PError as exc:
            raise InvalidKey(f"COSE_Key is not valid CBOR: {exc.detail or exc.code}") from None
    else:
        m = data
    if type(m) is not dict:
        raise InvalidKey("COSE_Key must be a map")
    if COSE_OKP_D in m:
        raise InvalidKey("COSE_Key carries a private key (label -4)")
    if set(m) != {COSE_KTY, COSE_OKP_CRV, COSE_OKP_X}:
        raise InvalidKey(f"COSE_Key must have exactly the labels 1, -1, -2; got {sorted(m, key=repr)}")
    kty, crv, x = m[COSE_KTY], m[COSE_OKP_CRV], m[COSE_OKP_X]
    if type(kty) is not int or kty != COSE_KTY_OKP:
        raise InvalidKey(f"COSE_Key kty must be 1 (OKP), got {kty!r}")
    if type(crv) is not int or crv not in _CRV_TO_TYPE:
        raise InvalidKey(f"COSE_Key crv must be 4 (X25519) or 6 (Ed25519), got {crv!r}")
    if type(x) is not bytes:
        raise InvalidKey("COSE_Key x must be a byte string")
    return check_public_key(_CRV_TO_TYPE[crv], x)
