"""The COSE (RFC 9052 / RFC 9053) structures p2p uses, and nothing more.

Two message types: a tagged COSE_Sign1 signed with EdDSA (Ed25519), and a tagged
COSE_Encrypt with ChaCha20/Poly1305 content encryption and exactly one recipient doing
direct key agreement with X25519: ECDH-ES+HKDF-256 (ephemeral sender, "anoncrypt") or
ECDH-SS+HKDF-256 (static sender, "authcrypt"). spec/04-envelopes.md is the normative
description; this module is its byte-level half (building, parsing, key derivation),
and p2p.core.envelope is the profile on top (kinds, nesting, key lookup).

Parsing is split from crypto on purpose: `decode_sign1` / `decode_encrypt` check shape,
algorithms and header types of untrusted input before any key is touched, so a hostile
envelope costs a CBOR parse, not a curve operation.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

import nacl.bindings as _nb
import nacl.exceptions as _nacl_exc

from . import cbor
from .errors import (
    BadSignature,
    DecryptionFailed,
    InvalidKey,
    MalformedEnvelope,
    UnsupportedAlgorithm,
)
from .keys import KEY_BYTES, SIGNATURE_BYTES, ed25519_sign, ed25519_verify

# --- registered values (IANA "COSE" registries) ------------------------------

TAG_SIGN1 = 18
TAG_ENCRYPT = 96

H_ALG = 1
H_CRIT = 2
H_KID = 4
H_IV = 5
H_PARTIAL_IV = 6
H_EPHEMERAL_KEY = -1
H_STATIC_KEY = -2
H_STATIC_KEY_ID = -3
H_PARTY_U_IDENTITY = -21
H_PARTY_U_NONCE = -22
H_PARTY_U_OTHER = -23
H_PARTY_V_IDENTITY = -24
H_PARTY_V_NONCE = -25
H_PARTY_V_OTHER = -26

ALG_EDDSA = -8
ALG_ECDH_ES_HKDF_256 = -25
ALG_ECDH_SS_HKDF_256 = -27
ALG_CHACHA20_POLY1305 = 24

KTY_OKP = 1
CRV_X25519 = 4
CRV_ED25519 = 6
KEY_KTY = 1
KEY_KID = 2
KEY_CRV = -1
KEY_X = -2
KEY_D = -4

# --- limits (spec/04-envelopes.md, "Limits") ---------------------------------

MAX_ENVELOPE_BYTES = 1 << 20  # 1 MiB, whole envelope including every nested layer
MAX_HEADER_BYTES = 8192  # one serialized protected header
MAX_KID_BYTES = 4096  # did:peer:2 URLs with inline services get long
IV_BYTES = 12
MIN_PARTY_NONCE_BYTES = 16
MAX_PARTY_NONCE_BYTES = 64
CEK_BITS = 256

# Header labels whose meaning this module implements; a `crit` list may name only these.
UNDERSTOOD_LABELS = frozenset(
    {H_ALG, H_CRIT, H_KID, H_IV, H_EPHEMERAL_KEY, H_STATIC_KEY, H_STATIC_KEY_ID,
     H_PARTY_U_IDENTITY, H_PARTY_U_NONCE, H_PARTY_U_OTHER,
     H_PARTY_V_IDENTITY, H_PARTY_V_NONCE, H_PARTY_V_OTHER}
)

# --- primitives ----------------------------------------------------------------
# (The curve primitives are p2p.core.keys'; this module adds the KDF.)


def hkdf_sha256(ikm: bytes, info: bytes, length: int = 32, salt: bytes = b"") -> bytes:
    """RFC 5869 HKDF with SHA-256; an empty salt means HashLen zero bytes (RFC 5869 2.2)."""
    prk = hmac.digest(salt or b"\x00" * 32, ikm, hashlib.sha256)
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes((counter,)), hashlib.sha256)
        out += block
        counter += 1
    return out[:length]


# --- COSE structures -------------------------------------------------------------


def cose_key(crv: int, x: bytes, kid: str | None = None) -> dict:
    """An OKP COSE_Key holding a public key (RFC 9053 section 7.2)."""
    key = {KEY_KTY: KTY_OKP, KEY_CRV: crv, KEY_X: x}
    if kid is not None:
        key[KEY_KID] = kid.encode("utf-8")
    return key


def sig_structure(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """RFC 9052 section 4.4 Sig_structure for COSE_Sign1: the bytes Ed25519 signs."""
    return cbor.dumps(["Signature1", protected, external_aad, payload])


def enc_structure(protected: bytes, external_aad: bytes = b"") -> bytes:
    """RFC 9052 section 5.3 Enc_structure for COSE_Encrypt: the AEAD's associated data."""
    return cbor.dumps(["Encrypt", protected, external_aad])


PartyInfo = tuple  # (identity, nonce, other), each bytes/int or None


def kdf_context(
    alg: int,
    key_bits: int,
    protected: bytes,
    party_u: PartyInfo = (None, None, None),
    party_v: PartyInfo = (None, None, None),
) -> bytes:
    """RFC 9053 section 5.2 COSE_KDF_Context, without SuppPubInfo.other / SuppPrivInfo
    (p2p never sets them). `protected` is the recipient layer's protected header as
    serialized on the wire, so the recipient's alg is bound into the key."""
    return cbor.dumps([alg, list(party_u), list(party_v), [key_bits, protected]])


# Fixed p2p headers, serialized once: the profile never varies them.
CONTENT_PROTECTED = cbor.dumps({H_ALG: ALG_CHACHA20_POLY1305})
RECIPIENT_PROTECTED_ES = cbor.dumps({H_ALG: ALG_ECDH_ES_HKDF_256})
RECIPIENT_PROTECTED_SS = cbor.dumps({H_ALG: ALG_ECDH_SS_HKDF_256})
CONTENT_AAD = enc_structure(CONTENT_PROTECTED)
_EMPTY_PARTY = (None, None, None)
# The ECDH-ES context has no per-message input: one constant for every message.
KDF_CONTEXT_ES = kdf_context(ALG_CHACHA20_POLY1305, CEK_BITS, RECIPIENT_PROTECTED_ES)


def sign1_protected(kid: str) -> bytes:
    return cbor.dumps({H_ALG: ALG_EDDSA, H_KID: kid.encode("utf-8")})


def encode_sign1(payload: bytes, *, protected: bytes, unprotected: Mapping, secret64: bytes,
                 trace: dict | None = None) -> bytes:
    """Tagged COSE_Sign1 over `payload` with a libsodium 64-byte Ed25519 secret key."""
    tbs = sig_structure(protected, payload)
    signature = ed25519_sign(secret64, tbs)
    if trace is not None:
        trace["to_be_signed"] = tbs
        trace["signature"] = signature
    return cbor.dumps_tagged(TAG_SIGN1, [protected, dict(unprotected), payload, signature])


def encode_encrypt(plaintext: bytes, *, cek: bytes, iv: bytes, recipient_protected: bytes,
                   recipient_unprotected: Mapping, trace: dict | None = None) -> bytes:
    """Tagged COSE_Encrypt with p2p's fixed content layer and one direct-agreement recipient."""
    ciphertext = _nb.crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, CONTENT_AAD, iv, cek)
    if trace is not None:
        trace["aad"] = CONTENT_AAD
    return cbor.dumps_tagged(
        TAG_ENCRYPT,
        [CONTENT_PROTECTED, {H_IV: iv}, ciphertext, [[recipient_protected, dict(recipient_unprotected), b""]]],
    )


# --- parsing untrusted envelopes ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sign1:
    protected: bytes  # as received: the signature covers these exact bytes
    payload: bytes
    signature: bytes
    kid: str


@dataclass(frozen=True, slots=True)
class Encrypt:
    protected: bytes  # content layer protected header as received (AEAD AAD input)
    iv: bytes
    ciphertext: bytes
    alg: int  # recipient algorithm: ALG_ECDH_ES_HKDF_256 or ALG_ECDH_SS_HKDF_256
    recipient_protected: bytes  # as received (KDF context input)
    recipient_kid: str
    ephemeral_public: bytes | None  # -1 (ECDH-ES)
    static_public: bytes | None  # -2 x (ECDH-SS, full key form)
    static_key_kid: str | None  # kid (label 2) inside the -2 COSE_Key, if any
    static_kid: str | None  # -3 (ECDH-SS, key id form)
    party_u: PartyInfo = field(default=_EMPTY_PARTY)
    party_v: PartyInfo = field(default=_EMPTY_PARTY)


def decode_envelope(data: bytes) -> cbor.CBORTag:
    """Parse one tagged COSE_Sign1 or COSE_Encrypt; CBOR faults keep their own codes."""
    value = cbor.loads(data, max_size=MAX_ENVELOPE_BYTES)
    if type(value) is not cbor.CBORTag or value.tag not in (TAG_SIGN1, TAG_ENCRYPT):
        raise MalformedEnvelope("not a tagged COSE_Sign1 (18) or COSE_Encrypt (96)")
    return value


def _array(value: object, n: int, what: str) -> tuple | list:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise MalformedEnvelope(f"{what} must be an array of {n} items")
    return value


def _bstr(value: object, what: str) -> bytes:
    if type(value) is not bytes:
        raise MalformedEnvelope(f"{what} must be a byte string")
    return value


def _protected_map(raw: object, what: str) -> Mapping:
    raw = _bstr(raw, f"{what} protected header")
    if not raw:
        return {}
    if len(raw) > MAX_HEADER_BYTES:
        raise MalformedEnvelope(f"{what} protected header exceeds {MAX_HEADER_BYTES} bytes")
    value = cbor.loads(raw, max_size=MAX_HEADER_BYTES)
    if not isinstance(value, Mapping):
        raise MalformedEnvelope(f"{what} protected header is not a map")
    return value


def _headers(protected: Mapping, unprotected: object, what: str) -> tuple[dict, Mapping]:
    """Both header buckets as one map, after the RFC 9052 section 3 rules that apply
    whatever the layer: labels are int or text, none in both buckets, alg protected,
    crit protected and naming only labels we implement."""
    if not isinstance(unprotected, Mapping):
        raise MalformedEnvelope(f"{what} unprotected header is not a map")
    for bucket in (protected, unprotected):
        for label in bucket:
            if type(label) not in (int, str):
                raise MalformedEnvelope(f"{what} header label must be int or text")
    if any(label in protected for label in unprotected):
        raise MalformedEnvelope(f"{what} header label in both buckets")
    if H_CRIT in unprotected:
        raise MalformedEnvelope(f"{what} crit must be in the protected header")
    crit = protected.get(H_CRIT)
    if crit is not None:
        if not isinstance(crit, (list, tuple)) or not crit:
            raise MalformedEnvelope(f"{what} crit must be a non-empty array")
        for label in crit:
            if type(label) not in (int, str) or label not in UNDERSTOOD_LABELS or label not in protected:
                raise MalformedEnvelope(f"{what} crit names a header p2p does not implement: {label!r}")
    if H_PARTIAL_IV in protected or H_PARTIAL_IV in unprotected:
        raise MalformedEnvelope(f"{what} Partial IV is not used by p2p")
    merged = dict(unprotected)
    merged.update(protected)
    return merged, protected


def _alg(headers: tuple[dict, Mapping], allowed: tuple[int, ...], what: str) -> int:
    merged, protected = headers
    if H_ALG not in merged:
        raise MalformedEnvelope(f"{what} has no alg")
    alg = merged[H_ALG]
    if type(alg) is not int or alg not in allowed:
        raise UnsupportedAlgorithm(f"{what} alg {alg!r} not in {allowed}")
    # The alg must be covered by the signature / AEAD / KDF context, or an attacker
    # could re-label the same bytes as another algorithm.
    if H_ALG not in protected:
        raise MalformedEnvelope(f"{what} alg must be in the protected header")
    return alg


def _kid(value: object, what: str) -> str:
    if type(value) is not bytes:
        raise MalformedEnvelope(f"{what} must be a byte string")
    if not value or len(value) > MAX_KID_BYTES:
        raise MalformedEnvelope(f"{what} must be 1..{MAX_KID_BYTES} bytes")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEnvelope(f"{what} is not UTF-8") from None


def parse_okp_key(value: object, crv: int, what: str) -> tuple[bytes, str | None]:
    """(x, kid) of a public OKP COSE_Key on curve `crv`. A key with a private part
    is refused: a peer that sends its secret has made a mistake we must not echo."""
    if not isinstance(value, Mapping):
        raise MalformedEnvelope(f"{what} is not a COSE_Key map")
    kty = value.get(KEY_KTY)
    if type(kty) is not int:
        raise MalformedEnvelope(f"{what} kty missing or not an int")
    if kty != KTY_OKP:
        raise UnsupportedAlgorithm(f"{what} kty {kty} is not OKP (1)")
    got_crv = value.get(KEY_CRV)
    if type(got_crv) is not int:
        raise MalformedEnvelope(f"{what} crv missing or not an int")
    if got_crv != crv:
        raise UnsupportedAlgorithm(f"{what} crv {got_crv} is not {crv}")
    x = value.get(KEY_X)
    if type(x) is not bytes or len(x) != KEY_BYTES:
        raise MalformedEnvelope(f"{what} x must be a {KEY_BYTES}-byte string")
    if KEY_D in value:
        raise MalformedEnvelope(f"{what} carries a private key")
    # RFC 7748 lets X25519 ignore bit 255; we refuse it instead so that no bit of an
    # envelope can change without changing the outcome (non-malleable encodings).
    if crv == CRV_X25519 and x[31] & 0x80:
        raise InvalidKey(f"{what} x has bit 255 set")
    kid = value.get(KEY_KID)
    return x, (None if kid is None else _kid(kid, f"{what} kid"))


def decode_sign1(value: cbor.CBORTag) -> Sign1:
    """Check a COSE_Sign1's shape and headers (no crypto)."""
    items = _array(value.value, 4, "COSE_Sign1")
    protected_raw, unprotected, payload, signature = items
    both = _headers(_protected_map(protected_raw, "COSE_Sign1"), unprotected, "COSE_Sign1")
    _alg(both, (ALG_EDDSA,), "COSE_Sign1")
    headers = both[0]
    if H_KID not in headers:
        raise MalformedEnvelope("COSE_Sign1 has no kid")
    kid = _kid(headers[H_KID], "COSE_Sign1 kid")
    payload = _bstr(payload, "COSE_Sign1 payload (detached payloads are not used)")
    signature = _bstr(signature, "COSE_Sign1 signature")
    if len(signature) != SIGNATURE_BYTES:
        raise MalformedEnvelope(f"Ed25519 signature must be {SIGNATURE_BYTES} bytes")
    return Sign1(protected_raw, payload, signature, kid)


def verify_sign1(sign1: Sign1, public: bytes) -> None:
    if not ed25519_verify(public, sig_structure(sign1.protected, sign1.payload), sign1.signature):
        raise BadSignature(f"signature by {sign1.kid} does not verify")


def _party(headers: Mapping, labels: tuple[int, int, int], what: str) -> PartyInfo:
    out = []
    for i, label in enumerate(labels):
        v = headers.get(label)
        # identity and other are bstr; the nonce may be bstr or int (RFC 9053 5.2).
        if v is not None and type(v) is not bytes and not (i == 1 and type(v) is int):
            raise MalformedEnvelope(f"{what} header {label} has the wrong type")
        out.append(v)
    if out == [None, None, None]:
        return _EMPTY_PARTY  # shared constant: lets recipient_kdf_context take its fast path
    return tuple(out)


def decode_encrypt(value: cbor.CBORTag) -> Encrypt:
    """Check a COSE_Encrypt's shape, algorithms and recipient headers (no crypto)."""
    protected_raw, unprotected, ciphertext, recipients = _array(value.value, 4, "COSE_Encrypt")
    both = _headers(_protected_map(protected_raw, "COSE_Encrypt"), unprotected, "COSE_Encrypt")
    _alg(both, (ALG_CHACHA20_POLY1305,), "COSE_Encrypt")
    headers = both[0]
    iv = headers.get(H_IV)
    if type(iv) is not bytes or len(iv) != IV_BYTES:
        raise MalformedEnvelope(f"COSE_Encrypt IV must be {IV_BYTES} bytes")
    ciphertext = _bstr(ciphertext, "COSE_Encrypt ciphertext")
    if not isinstance(recipients, (list, tuple)) or len(recipients) != 1:
        raise MalformedEnvelope("COSE_Encrypt must have exactly one recipient")
    r_protected_raw, r_unprotected, r_ciphertext = _array(recipients[0], 3, "COSE_recipient")
    r_both = _headers(_protected_map(r_protected_raw, "COSE_recipient"), r_unprotected, "COSE_recipient")
    alg = _alg(r_both, (ALG_ECDH_ES_HKDF_256, ALG_ECDH_SS_HKDF_256), "COSE_recipient")
    rh = r_both[0]
    if _bstr(r_ciphertext, "COSE_recipient ciphertext"):
        raise MalformedEnvelope("direct key agreement has an empty recipient ciphertext")
    if H_KID not in rh:
        raise MalformedEnvelope("COSE_recipient has no kid")
    recipient_kid = _kid(rh[H_KID], "COSE_recipient kid")
    party_u = _party(rh, (H_PARTY_U_IDENTITY, H_PARTY_U_NONCE, H_PARTY_U_OTHER), "COSE_recipient")
    party_v = _party(rh, (H_PARTY_V_IDENTITY, H_PARTY_V_NONCE, H_PARTY_V_OTHER), "COSE_recipient")
    ephemeral = static = static_key_kid = static_kid = None
    if alg == ALG_ECDH_ES_HKDF_256:
        if H_EPHEMERAL_KEY not in rh:
            raise MalformedEnvelope("ECDH-ES recipient has no ephemeral key (-1)")
        if H_STATIC_KEY in rh or H_STATIC_KEY_ID in rh:
            raise MalformedEnvelope("ECDH-ES recipient carries a static sender key")
        ephemeral, _ = parse_okp_key(rh[H_EPHEMERAL_KEY], CRV_X25519, "ephemeral key")
    else:
        has_key, has_kid = H_STATIC_KEY in rh, H_STATIC_KEY_ID in rh
        if has_key == has_kid:
            raise MalformedEnvelope("ECDH-SS recipient needs exactly one of -2 (key) and -3 (key id)")
        if H_EPHEMERAL_KEY in rh:
            raise MalformedEnvelope("ECDH-SS recipient carries an ephemeral key")
        if has_key:
            static, static_key_kid = parse_okp_key(rh[H_STATIC_KEY], CRV_X25519, "static key")
        else:
            static_kid = _kid(rh[H_STATIC_KEY_ID], "static key id (-3)")
        nonce = party_u[1]
        if type(nonce) is not bytes or not MIN_PARTY_NONCE_BYTES <= len(nonce) <= MAX_PARTY_NONCE_BYTES:
            raise MalformedEnvelope(
                f"ECDH-SS needs a PartyU nonce (-22) of {MIN_PARTY_NONCE_BYTES}..{MAX_PARTY_NONCE_BYTES} bytes"
            )
    return Encrypt(protected_raw, iv, ciphertext, alg, r_protected_raw, recipient_kid,
                   ephemeral, static, static_key_kid, static_kid, party_u, party_v)


def recipient_kdf_context(enc: Encrypt) -> bytes:
    if (enc.alg == ALG_ECDH_ES_HKDF_256 and enc.recipient_protected == RECIPIENT_PROTECTED_ES
            and enc.party_u is _EMPTY_PARTY and enc.party_v is _EMPTY_PARTY):
        return KDF_CONTEXT_ES
    return kdf_context(ALG_CHACHA20_POLY1305, CEK_BITS, enc.recipient_protected, enc.party_u, enc.party_v)


def decrypt_content(enc: Encrypt, cek: bytes) -> bytes:
    aad = CONTENT_AAD if enc.protected == CONTENT_PROTECTED else enc_structure(enc.protected)
    try:
        return _nb.crypto_aead_chacha20poly1305_ietf_decrypt(enc.ciphertext, aad, enc.iv, cek)
    except (_nacl_exc.CryptoError, ValueError, TypeError):
        raise DecryptionFailed("ChaCha20/Poly1305 tag does not verify") from None
