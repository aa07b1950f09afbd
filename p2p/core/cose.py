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


_ZERO_SALT = b"\x00" * 32


def hkdf_sha256(ikm: bytes, info: bytes, length: int = 32, salt: bytes = b"") -> bytes:
    """RFC 5869 HKDF with SHA-256; an empty salt means HashLen zero bytes (RFC 5869 2.2)."""
    prk = hmac.digest(salt or _ZERO_SALT, ikm, hashlib.sha256)
    if length == 32:
        # Every CEK p2p derives: one expand block, T(1) = HMAC(PRK, info | 0x01).
        return hmac.digest(prk, info + b"\x01", hashlib.sha256)
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


# The structures below are built by concatenating CBOR bytes rather than through
# cbor.dumps: they are fixed-shape arrays of byte strings with constant parts, built
# on every seal and open, and splicing costs a fraction of a generic encode. The
# result is the same deterministic CBOR (tests/test_cose.py compares the two).


_cbor_bstr = cbor.dumps_bytes

_SIG1_PREFIX = b"\x84\x6aSignature1"  # ["Signature1", ...  (array of 4, text of 10)
_ENC_PREFIX = b"\x83\x67Encrypt"  # ["Encrypt", ...  (array of 3, text of 7)


def sig_structure(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """RFC 9052 section 4.4 Sig_structure for COSE_Sign1: the bytes Ed25519 signs."""
    return _SIG1_PREFIX + _cbor_bstr(protected) + _cbor_bstr(external_aad) + _cbor_bstr(payload)


def enc_structure(protected: bytes, external_aad: bytes = b"") -> bytes:
    """RFC 9052 section 5.3 Enc_structure for COSE_Encrypt: the AEAD's associated data."""
    return _ENC_PREFIX + _cbor_bstr(protected) + _cbor_bstr(external_aad)


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
# The ECDH-SS context of p2p's profile varies only in the PartyU nonce:
# [24, [null, nonce, null], [null, null, null], [256, RECIPIENT_PROTECTED_SS]]
# is this prefix, the nonce as a byte string, and this suffix.
_KDF_SS_PREFIX = b"\x84" + cbor.dumps(ALG_CHACHA20_POLY1305) + b"\x83\xf6"
_KDF_SS_SUFFIX = b"\xf6" + cbor.dumps(list(_EMPTY_PARTY)) + cbor.dumps([CEK_BITS, RECIPIENT_PROTECTED_SS])


def kdf_context_ss(nonce: bytes) -> bytes:
    """kdf_context(ALG_CHACHA20_POLY1305, CEK_BITS, RECIPIENT_PROTECTED_SS, (None, nonce, None)),
    spliced from constant bytes: the context of every authcrypt message."""
    return _KDF_SS_PREFIX + _cbor_bstr(nonce) + _KDF_SS_SUFFIX


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
    # 18([protected, unprotected, payload, signature]): D2 84 ...
    return (b"\xd2\x84" + _cbor_bstr(protected) + (cbor.dumps(dict(unprotected)) if unprotected else b"\xa0")
            + _cbor_bstr(payload) + _cbor_bstr(signature))


# 96([CONTENT_PROTECTED, {5: iv ...  : everything before the IV's byte string.
_ENCRYPT_PREFIX = b"\xd8\x60\x84" + _cbor_bstr(CONTENT_PROTECTED) + b"\xa1" + cbor.dumps(H_IV)


def encode_encrypt(plaintext: bytes, *, cek: bytes, iv: bytes, recipient_protected: bytes,
                   recipient_unprotected: Mapping | bytes, trace: dict | None = None) -> bytes:
    """Tagged COSE_Encrypt with p2p's fixed content layer and one direct-agreement recipient.
    `recipient_unprotected` is a header map, or that map already in deterministic CBOR."""
    ciphertext = _nb.crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, CONTENT_AAD, iv, cek)
    if trace is not None:
        trace["aad"] = CONTENT_AAD
    if type(recipient_unprotected) is not bytes:
        recipient_unprotected = cbor.dumps(dict(recipient_unprotected))
    # 96([CONTENT_PROTECTED, {5: iv}, ciphertext, [[recipient_protected, unprotected, h'']]])
    return (_ENCRYPT_PREFIX + _cbor_bstr(iv) + _cbor_bstr(ciphertext) + b"\x81\x83" + _cbor_bstr(recipient_protected)
            + recipient_unprotected + b"\x40")


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


_SIGN1_HEAD = b"\xd2"  # tag 18
_ENCRYPT_HEAD = b"\xd8\x60"  # tag 96


def decode_envelope(data: bytes) -> cbor.CBORTag:
    """Parse one tagged COSE_Sign1 or COSE_Encrypt; CBOR faults keep their own codes."""
    # Both tags in their shortest (deterministic) head, the only ones p2p writes:
    # decode the content alone so it comes back as lists and dicts (see
    # cbor.loads_tag_content). Any other head takes the generic path.
    if type(data) is bytes:
        if data[:1] == _SIGN1_HEAD:
            return cbor.CBORTag(TAG_SIGN1, cbor.loads_tag_content(data, _SIGN1_HEAD, max_size=MAX_ENVELOPE_BYTES))
        if data[:2] == _ENCRYPT_HEAD:
            return cbor.CBORTag(TAG_ENCRYPT, cbor.loads_tag_content(data, _ENCRYPT_HEAD, max_size=MAX_ENVELOPE_BYTES))
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
    if type(unprotected) is not dict and not isinstance(unprotected, Mapping):
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


# Protected headers (as received) that passed every check of `_headers` that looks at
# the protected bucket alone: label types, crit, no Partial IV. Seeded with the
# profile's three constant headers, it also learns the Sign1 headers of recent signers
# (one per signing key). A hit skips a CBOR parse and those checks on every envelope;
# a miss takes the full path. Bounded in entries and entry size; cleared when full.
# The cached maps are shared, so nothing may mutate a protected map.
_PROFILE_PROTECTED = {
    CONTENT_PROTECTED: {H_ALG: ALG_CHACHA20_POLY1305},
    RECIPIENT_PROTECTED_ES: {H_ALG: ALG_ECDH_ES_HKDF_256},
    RECIPIENT_PROTECTED_SS: {H_ALG: ALG_ECDH_SS_HKDF_256},
}
_checked_protected: dict[bytes, Mapping] = dict(_PROFILE_PROTECTED)
_CHECKED_PROTECTED_MAX = 256
_CHECKED_PROTECTED_MAX_BYTES = 1024


def _buckets(protected_raw: object, unprotected: object, what: str) -> tuple[dict, Mapping]:
    """`_headers(_protected_map(protected_raw, what), unprotected, what)`, with the
    same checks in the same order, minus the ones a known protected header passed."""
    protected = _checked_protected.get(protected_raw) if type(protected_raw) is bytes else None
    if protected is None:
        both = _headers(_protected_map(protected_raw, what), unprotected, what)
        if len(protected_raw) <= _CHECKED_PROTECTED_MAX_BYTES:
            if len(_checked_protected) >= _CHECKED_PROTECTED_MAX:
                _checked_protected.clear()
                _checked_protected.update(_PROFILE_PROTECTED)
            _checked_protected[protected_raw] = both[1]
        return both
    if type(unprotected) is not dict and not isinstance(unprotected, Mapping):
        raise MalformedEnvelope(f"{what} unprotected header is not a map")
    for label in unprotected:
        if type(label) is not int and type(label) is not str:
            raise MalformedEnvelope(f"{what} header label must be int or text")
    for label in unprotected:
        if label in protected:
            raise MalformedEnvelope(f"{what} header label in both buckets")
    if H_CRIT in unprotected:
        raise MalformedEnvelope(f"{what} crit must be in the protected header")
    if H_PARTIAL_IV in unprotected:
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
    if type(value) is not dict and not isinstance(value, Mapping):
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
    both = _buckets(protected_raw, unprotected, "COSE_Sign1")
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
    get = headers.get
    identity, nonce, other = get(labels[0]), get(labels[1]), get(labels[2])
    if identity is None and nonce is None and other is None:
        return _EMPTY_PARTY  # shared constant: lets recipient_kdf_context take its fast path
    # identity and other are bstr; the nonce may be bstr or int (RFC 9053 5.2).
    for v, label, int_ok in ((identity, labels[0], False), (nonce, labels[1], True), (other, labels[2], False)):
        if v is not None and type(v) is not bytes and not (int_ok and type(v) is int):
            raise MalformedEnvelope(f"{what} header {label} has the wrong type")
    return (identity, nonce, other)


def decode_encrypt(value: cbor.CBORTag) -> Encrypt:
    """Check a COSE_Encrypt's shape, algorithms and recipient headers (no crypto)."""
    protected_raw, unprotected, ciphertext, recipients = _array(value.value, 4, "COSE_Encrypt")
    both = _buckets(protected_raw, unprotected, "COSE_Encrypt")
    _alg(both, (ALG_CHACHA20_POLY1305,), "COSE_Encrypt")
    headers = both[0]
    iv = headers.get(H_IV)
    if type(iv) is not bytes or len(iv) != IV_BYTES:
        raise MalformedEnvelope(f"COSE_Encrypt IV must be {IV_BYTES} bytes")
    ciphertext = _bstr(ciphertext, "COSE_Encrypt ciphertext")
    if not isinstance(recipients, (list, tuple)) or len(recipients) != 1:
        raise MalformedEnvelope("COSE_Encrypt must have exactly one recipient")
    r_protected_raw, r_unprotected, r_ciphertext = _array(recipients[0], 3, "COSE_recipient")
    r_both = _buckets(r_protected_raw, r_unprotected, "COSE_recipient")
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


# --- the authcrypt fast path ---------------------------------------------------------
# Every authcrypt envelope p2p seals (seal_authcrypt, sender key form "kid") has one
# byte layout; only the IV, the ciphertext, the two kids and the nonce vary:
#
#   D8 60 84                      96([
#     44 A1 01 18 18                  << {1: 24} >>,
#     A1 05 4C <iv: 12 bytes>         {5: iv},
#     <bstr ciphertext>               ciphertext,
#     81 83                           [[
#       44 A1 01 38 1A                  << {1: -27} >>,
#       A3 04 <bstr recipient kid>      {4: kid,
#          22 <bstr sender kid>          -3: sender kid,
#          35 <bstr nonce>               -22: nonce},
#       40                              h''  ]]  ])
#
# `match_authcrypt` recognises exactly that layout and returns what decode_encrypt
# would return for it, without a CBOR parse or generic header checks: those bytes
# can only decode to that structure, and the structure passes every header rule by
# construction (labels distinct and in deterministic order, alg protected, no crit,
# no Partial IV). The field checks that can still fail (kid length and UTF-8, nonce
# length) and any other layout return None, and the caller takes the full path,
# which then raises the precise error. tests/test_cose.py checks that both agree.

_AUTHCRYPT_HEAD = (b"\xd8\x60\x84" + cbor.dumps_bytes(CONTENT_PROTECTED) + b"\xa1" + cbor.dumps(H_IV)
                   + cbor.dumps_bytes(b"\x00" * IV_BYTES)[:-IV_BYTES])
_AUTHCRYPT_RECIPIENT = (b"\x81\x83" + cbor.dumps_bytes(RECIPIENT_PROTECTED_SS) + b"\xa3" + cbor.dumps(H_KID))
_LABEL_STATIC_KEY_ID = cbor.dumps(H_STATIC_KEY_ID)[0]
_LABEL_PARTY_U_NONCE = cbor.dumps(H_PARTY_U_NONCE)[0]


def _read_bstr(data: bytes, pos: int) -> tuple[bytes, int] | None:
    """The byte string item at `pos` (definite length) and the position after it."""
    if pos >= len(data):
        return None
    head = data[pos]
    if 0x40 <= head < 0x58:
        n, pos = head - 0x40, pos + 1
    elif head == 0x58:
        n, pos = data[pos + 1] if pos + 1 < len(data) else -1, pos + 2
    elif head == 0x59:
        n, pos = int.from_bytes(data[pos + 1:pos + 3], "big") if pos + 3 <= len(data) else -1, pos + 3
    else:
        return None
    end = pos + n
    if n < 0 or end > len(data):
        return None
    return data[pos:end], end


def _kid_or_none(raw: bytes) -> str | None:
    """`_kid`'s result when it accepts `raw`, else None."""
    if not raw or len(raw) > MAX_KID_BYTES:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def match_authcrypt(data: bytes) -> tuple[str, str, bytes, bytes, bytes] | None:
    """(recipient kid, sender kid (-3), iv, ciphertext, PartyU nonce) if `data` has the
    byte layout above, else None (which says nothing about validity: use the full
    path). For such data, decode_encrypt(decode_envelope(data)) is the Encrypt
    `authcrypt_encrypt` builds from this tuple; a tuple, because a frozen dataclass
    of 12 fields costs more to build than the rest of this function."""
    if type(data) is not bytes or not data.startswith(_AUTHCRYPT_HEAD) or len(data) > MAX_ENVELOPE_BYTES:
        return None
    pos = len(_AUTHCRYPT_HEAD)
    iv = data[pos:pos + IV_BYTES]
    item = _read_bstr(data, pos + IV_BYTES)
    if item is None:
        return None
    ciphertext, pos = item
    if not data.startswith(_AUTHCRYPT_RECIPIENT, pos):
        return None
    item = _read_bstr(data, pos + len(_AUTHCRYPT_RECIPIENT))
    if item is None:
        return None
    recipient_kid, pos = item
    if pos >= len(data) or data[pos] != _LABEL_STATIC_KEY_ID:
        return None
    item = _read_bstr(data, pos + 1)
    if item is None:
        return None
    static_kid, pos = item
    if pos >= len(data) or data[pos] != _LABEL_PARTY_U_NONCE:
        return None
    item = _read_bstr(data, pos + 1)
    if item is None:
        return None
    nonce, pos = item
    # h'' must be the last byte: anything after it is trailing data.
    if pos + 1 != len(data) or data[pos] != 0x40:
        return None
    if len(iv) != IV_BYTES or not MIN_PARTY_NONCE_BYTES <= len(nonce) <= MAX_PARTY_NONCE_BYTES:
        return None
    recipient_kid, static_kid = _kid_or_none(recipient_kid), _kid_or_none(static_kid)
    if recipient_kid is None or static_kid is None:
        return None
    return recipient_kid, static_kid, iv, ciphertext, nonce


def authcrypt_encrypt(fields: tuple[str, str, bytes, bytes, bytes]) -> Encrypt:
    """The Encrypt that decode_encrypt returns for an envelope match_authcrypt matched."""
    recipient_kid, static_kid, iv, ciphertext, nonce = fields
    return Encrypt(CONTENT_PROTECTED, iv, ciphertext, ALG_ECDH_SS_HKDF_256, RECIPIENT_PROTECTED_SS, recipient_kid,
                   None, None, None, static_kid, (None, nonce, None), _EMPTY_PARTY)


def recipient_kdf_context(enc: Encrypt) -> bytes:
    if (enc.alg == ALG_ECDH_ES_HKDF_256 and enc.recipient_protected == RECIPIENT_PROTECTED_ES
            and enc.party_u is _EMPTY_PARTY and enc.party_v is _EMPTY_PARTY):
        return KDF_CONTEXT_ES
    party_u = enc.party_u
    # Every authcrypt envelope p2p seals has this shape (only a PartyU nonce, which
    # decode_encrypt has checked is bytes): splice the context rather than encode it.
    if (enc.alg == ALG_ECDH_SS_HKDF_256 and enc.recipient_protected == RECIPIENT_PROTECTED_SS
            and party_u[0] is None and party_u[2] is None and type(party_u[1]) is bytes
            and enc.party_v is _EMPTY_PARTY):
        return kdf_context_ss(party_u[1])
    return kdf_context(ALG_CHACHA20_POLY1305, CEK_BITS, enc.recipient_protected, enc.party_u, enc.party_v)


def decrypt_content(enc: Encrypt, cek: bytes) -> bytes:
    aad = CONTENT_AAD if enc.protected == CONTENT_PROTECTED else enc_structure(enc.protected)
    return aead_decrypt(enc.ciphertext, aad, enc.iv, cek)


def aead_decrypt(ciphertext: bytes, aad: bytes, iv: bytes, cek: bytes) -> bytes:
    """ChaCha20/Poly1305 decryption; a bad tag (or a malformed input) is DecryptionFailed."""
    try:
        return _nb.crypto_aead_chacha20poly1305_ietf_decrypt(ciphertext, aad, iv, cek)
    except (_nacl_exc.CryptoError, ValueError, TypeError):
        raise DecryptionFailed("ChaCha20/Poly1305 tag does not verify") from None
