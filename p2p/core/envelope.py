"""p2p envelopes: DIDComm's signed / anoncrypt / authcrypt, built from COSE.

DIDComm v2 wraps a plaintext message in JWS and JWE; p2p wraps the same plaintext
(a CBOR message, p2p.core.message) in COSE_Sign1 and COSE_Encrypt (p2p.core.cose),
and nests them the way DIDComm does: sign, then encrypt the tagged COSE_Sign1. A relay
("forward") gets an anoncrypt layer around an already sealed envelope and peels exactly
one layer with `open_one_layer`. spec/04-envelopes.md is normative.

Cost model: X25519 dominates (about 45 us against 7 us for HKDF and 8 us for AEAD).
ECDH-SS between two static keys is the same for every message of a pair, so
`PairwiseKey` (sealing) and `Keyring` (opening, a bounded LRU) compute it once per
relationship; a PartyU nonce in the KDF context still makes every CEK unique.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from . import cbor, cose, keys
from .cose import (
    ALG_ECDH_ES_HKDF_256,
    CRV_X25519,
    H_EPHEMERAL_KEY,
    H_KID,
    H_PARTY_U_NONCE,
    H_STATIC_KEY,
    H_STATIC_KEY_ID,
    IV_BYTES,
    KDF_CONTEXT_ES,
    MAX_ENVELOPE_BYTES,
    MAX_PARTY_NONCE_BYTES,
    MIN_PARTY_NONCE_BYTES,
    RECIPIENT_PROTECTED_ES,
    RECIPIENT_PROTECTED_SS,
    TAG_SIGN1,
)
from .errors import (
    LocalError,
    MalformedEnvelope,
    SenderMismatch,
    UnknownSender,
    WrongRecipient,
)
from .keys import KEY_BYTES, x25519, x25519_public

MAX_DEPTH = 4  # layers `open` will peel: relay anoncrypt + authcrypt + signed fits with one to spare
DEFAULT_CACHE_SIZE = 1024

SIGNED = "signed"
ANONCRYPT = "anoncrypt"
AUTHCRYPT = "authcrypt"
KINDS = ("signed", "anoncrypt", "authcrypt", "signed+anoncrypt", "signed+authcrypt")
SENDER_KEY_FORMS = ("kid", "key")


# --- keys ----------------------------------------------------------------------
# An envelope names every key by its DID URL (the COSE kid), so the keys here are
# p2p.core.keys' keys plus that kid.


@dataclass(frozen=True, slots=True, init=False)
class AgreementKey(keys.AgreementKey):
    """A keys.AgreementKey (X25519) named by its DID URL."""

    kid: str

    def __init__(self, kid: str, secret: bytes, public: bytes) -> None:
        # Written out to keep the kid first, as callers pass it; a generated
        # __init__ would put the base class's fields first.
        keys.AgreementKey.__init__(self, secret, public)
        object.__setattr__(self, "kid", kid)

    @classmethod
    def from_secret(cls, kid: str, secret: bytes) -> AgreementKey:  # type: ignore[override]
        key = keys.AgreementKey.from_secret(secret)
        return cls(kid, key.secret, key.public)


@dataclass(frozen=True, slots=True)
class SigningKey(keys.SigningKey):
    """A keys.SigningKey (Ed25519) named by its DID URL. Keeps libsodium's expanded
    secret (`secret64`) and the Sign1 protected header, both fixed per key, so a
    signature costs neither a hash of the seed nor a header encoding."""

    kid: str
    protected: bytes = field(repr=False)

    @classmethod
    def from_seed(cls, kid: str, seed: bytes) -> SigningKey:  # type: ignore[override]
        key = keys.SigningKey.from_seed(seed)
        return cls(key.seed, key.public, key.secret64, kid, cose.sign1_protected(kid))


@dataclass(frozen=True, slots=True)
class PairwiseKey:
    """Our static X25519 key and a peer's, with their ECDH-SS secret computed once.
    Keep one per relationship; X25519 is symmetric, so it also opens the peer's mail."""

    mine: AgreementKey
    peer_kid: str
    peer_public: bytes
    shared_secret: bytes = field(repr=False)

    @classmethod
    def derive(cls, mine: AgreementKey, peer_kid: str, peer_public: bytes) -> PairwiseKey:
        _need(peer_public, KEY_BYTES, "peer X25519 public key")
        return cls(mine, peer_kid, peer_public, x25519(mine.secret, peer_public))


class Keyring:
    """What opening needs: our agreement keys by kid, the X25519 keys of senders we
    know and the Ed25519 keys of signers we know (both by DID URL), and a bounded LRU
    of ECDH-SS secrets. `senders` / `signers` are the trust anchors: an authcrypt sender
    or a signer is accepted only under a kid found there. They may be any Mapping, e.g.
    one that resolves did:key URLs on lookup."""

    __slots__ = ("agreement_keys", "senders", "signers", "_cache", "_cache_size")

    def __init__(
        self,
        agreement_keys: Iterable[AgreementKey] = (),
        *,
        senders: Mapping[str, bytes] | None = None,
        signers: Mapping[str, bytes] | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.agreement_keys = {k.kid: k for k in agreement_keys}
        self.senders = senders if senders is not None else {}
        self.signers = signers if signers is not None else {}
        self._cache: dict[tuple[str, bytes], bytes] = {}
        self._cache_size = cache_size

    def static_secret(self, mine: AgreementKey, peer_public: bytes) -> bytes:
        key = (mine.kid, peer_public)
        cache = self._cache
        secret = cache.pop(key, None)
        if secret is None:
            secret = x25519(mine.secret, peer_public)
            if len(cache) >= self._cache_size:
                del cache[next(iter(cache))]  # dicts keep insertion order: first = least recent
        cache[key] = secret
        return secret

    def pairwise(self, my_kid: str, peer_kid: str, peer_public: bytes) -> PairwiseKey:
        """A PairwiseKey for sealing to `peer_kid`, sharing this keyring's cache."""
        mine = self.agreement_keys.get(my_kid)
        if mine is None:
            raise LocalError(f"no agreement key {my_kid!r} in this keyring")
        _need(peer_public, KEY_BYTES, "peer X25519 public key")
        return PairwiseKey(mine, peer_kid, peer_public, self.static_secret(mine, peer_public))


def _need(value: object, n: int, what: str) -> None:
    if type(value) is not bytes or len(value) != n:
        raise LocalError(f"{what} must be {n} bytes")


def did_of(kid: str) -> str:
    """The DID a DID URL belongs to: everything before the fragment."""
    return kid.partition("#")[0]


def is_envelope(data: bytes) -> bool:
    """True if `data` starts like a tagged COSE_Sign1 (D2) or COSE_Encrypt (D8 60).
    p2p plaintext messages are CBOR maps (A0..BF), so the two never collide."""
    return data[:1] == b"\xd2" or data[:2] == b"\xd8\x60"


# --- sealing ---------------------------------------------------------------------

_cbor_bstr = cbor.dumps_bytes
_SS_UNPROTECTED_HEAD = b"\xa3" + cbor.dumps(H_KID)  # a map of 3 pairs, then label 4
_H_STATIC_KEY_ID = cbor.dumps(H_STATIC_KEY_ID)
_H_STATIC_KEY = cbor.dumps(H_STATIC_KEY)
_H_PARTY_U_NONCE = cbor.dumps(H_PARTY_U_NONCE)


def _check_size(envelope: bytes) -> bytes:
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise LocalError(f"envelope of {len(envelope)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    return envelope


def seal_signed(payload: bytes, signer: SigningKey, *, trace: dict | None = None) -> bytes:
    """COSE_Sign1, EdDSA, kid in the protected header so the signature covers it."""
    return _check_size(
        cose.encode_sign1(payload, protected=signer.protected, unprotected={}, secret64=signer.secret64, trace=trace)
    )


def seal_anoncrypt(plaintext: bytes, *, recipient_kid: str, recipient_public: bytes, ephemeral_secret: bytes,
                   iv: bytes, trace: dict | None = None) -> bytes:
    """COSE_Encrypt to one recipient with ECDH-ES+HKDF-256: the sender stays anonymous.
    `ephemeral_secret` and `iv` must be fresh random values from the caller."""
    _need(ephemeral_secret, KEY_BYTES, "ephemeral secret")
    _need(iv, IV_BYTES, "IV")
    _need(recipient_public, KEY_BYTES, "recipient X25519 public key")
    ephemeral_public = x25519_public(ephemeral_secret)
    shared = x25519(ephemeral_secret, recipient_public)
    cek = cose.hkdf_sha256(shared, KDF_CONTEXT_ES)
    if trace is not None:
        trace.update(ephemeral_public=ephemeral_public, shared_secret=shared, kdf_context=KDF_CONTEXT_ES, cek=cek)
    unprotected = {H_EPHEMERAL_KEY: cose.cose_key(CRV_X25519, ephemeral_public), H_KID: recipient_kid.encode("utf-8")}
    return _check_size(cose.encode_encrypt(plaintext, cek=cek, iv=iv, recipient_protected=RECIPIENT_PROTECTED_ES,
                                           recipient_unprotected=unprotected, trace=trace))


def seal_authcrypt(plaintext: bytes, pairwise: PairwiseKey, *, iv: bytes, nonce: bytes, sender_key_form: str = "kid",
                   trace: dict | None = None) -> bytes:
    """COSE_Encrypt to one recipient with ECDH-SS+HKDF-256 between our static key and
    theirs. `nonce` (PartyU nonce, 16..64 fresh random bytes) makes each CEK unique;
    `sender_key_form` "kid" sends our key id (-3), "key" our full public COSE_Key (-2)."""
    _need(iv, IV_BYTES, "IV")
    if type(nonce) is not bytes or not MIN_PARTY_NONCE_BYTES <= len(nonce) <= MAX_PARTY_NONCE_BYTES:
        raise LocalError(f"nonce must be {MIN_PARTY_NONCE_BYTES}..{MAX_PARTY_NONCE_BYTES} bytes")
    mine = pairwise.mine
    # The recipient's unprotected header is spliced from CBOR bytes rather than
    # encoded from a map: its labels are fixed, so is their deterministic order
    # (4, then -3 or -2, then -22: bytewise 04 < 22 | 21 < 35), and this runs for
    # every message. tests/test_envelope.py checks it against cbor.dumps.
    if sender_key_form == "kid":
        sender = _H_STATIC_KEY_ID + _cbor_bstr(mine.kid.encode("utf-8"))
    elif sender_key_form == "key":
        sender = _H_STATIC_KEY + cbor.dumps(cose.cose_key(CRV_X25519, mine.public, kid=mine.kid))
    else:
        raise LocalError(f"sender_key_form must be one of {SENDER_KEY_FORMS}")
    context = cose.kdf_context_ss(nonce)
    cek = cose.hkdf_sha256(pairwise.shared_secret, context)
    if trace is not None:
        trace.update(shared_secret=pairwise.shared_secret, kdf_context=context, cek=cek)
    # {4: peer kid, -3 / -2: sender, -22: nonce}
    unprotected = (_SS_UNPROTECTED_HEAD + _cbor_bstr(pairwise.peer_kid.encode("utf-8")) + sender
                   + _H_PARTY_U_NONCE + _cbor_bstr(nonce))
    return _check_size(cose.encode_encrypt(plaintext, cek=cek, iv=iv, recipient_protected=RECIPIENT_PROTECTED_SS,
                                           recipient_unprotected=unprotected, trace=trace))


def seal_for_relay(envelope: bytes, *, relay_kid: str, relay_public: bytes, ephemeral_secret: bytes, iv: bytes,
                   trace: dict | None = None) -> bytes:
    """Anoncrypt an already sealed envelope for a relay (DIDComm "forward")."""
    if not is_envelope(envelope):
        raise LocalError("seal_for_relay wraps a sealed envelope, not a plaintext")
    return seal_anoncrypt(envelope, recipient_kid=relay_kid, recipient_public=relay_public,
                          ephemeral_secret=ephemeral_secret, iv=iv, trace=trace)


def seal(kind: str, payload: bytes, *, signer: SigningKey | None = None, pairwise: PairwiseKey | None = None,
         recipient_kid: str | None = None, recipient_public: bytes | None = None,
         ephemeral_secret: bytes | None = None, iv: bytes | None = None, nonce: bytes | None = None,
         sender_key_form: str = "kid", trace: dict | None = None) -> bytes:
    """One entry point for the five kinds in KINDS; `trace` (if given) collects the
    intermediates: to_be_signed, signature, signed, ephemeral_public, shared_secret,
    kdf_context, cek, aad."""
    if kind not in KINDS:
        raise LocalError(f"kind must be one of {KINDS}")
    if is_envelope(payload):
        # `open` would take it for a nested envelope; wrapping envelopes is seal_for_relay's job.
        raise LocalError("payload starts like a tagged COSE envelope (D2 / D8 60)")
    inner = payload
    if kind.startswith(SIGNED):
        if signer is None:
            raise LocalError(f"{kind} needs a signer")
        inner = seal_signed(payload, signer, trace=trace)
        if trace is not None:
            trace["signed"] = inner
        if kind == SIGNED:
            return inner
    if kind.endswith(AUTHCRYPT):
        if pairwise is None:
            raise LocalError(f"{kind} needs a pairwise key")
        if signer is not None and did_of(signer.kid) != did_of(pairwise.mine.kid):
            raise LocalError("signer and authcrypt sender must belong to the same DID")
        return seal_authcrypt(inner, pairwise, iv=iv, nonce=nonce, sender_key_form=sender_key_form, trace=trace)
    if type(recipient_kid) is not str or recipient_public is None:
        raise LocalError(f"{kind} needs recipient_kid and recipient_public")
    return seal_anoncrypt(inner, recipient_kid=recipient_kid, recipient_public=recipient_public,
                          ephemeral_secret=ephemeral_secret, iv=iv, trace=trace)


# --- opening ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layer:
    """One opened layer. `content` is the Sign1 payload or the decrypted plaintext;
    it may itself be an envelope (see `is_envelope`)."""

    kind: str  # SIGNED, ANONCRYPT or AUTHCRYPT
    content: bytes = field(repr=False)
    recipient_kid: str | None = None  # encrypted layers: which of our keys opened it
    sender_kid: str | None = None  # authcrypt: the sender's key id, as found in Keyring.senders
    sender_public: bytes | None = None  # authcrypt: that key, which the AEAD tag proves
    signer_kid: str | None = None  # signed: verified against Keyring.signers


@dataclass(frozen=True, slots=True)
class Opened:
    layers: tuple[str, ...]  # outermost first, e.g. ("authcrypt", "signed")
    plaintext: bytes = field(repr=False)
    recipient_kid: str | None
    sender_kid: str | None
    sender_public: bytes | None
    signer_kid: str | None


def _public(mapping: Mapping[str, bytes], kid: str) -> bytes | None:
    public = mapping.get(kid)
    if public is not None and (type(public) is not bytes or len(public) != KEY_BYTES):
        raise LocalError(f"keyring holds a malformed public key for {kid!r}")
    return public


def open_one_layer(data: bytes, keyring: Keyring, *, trace: dict | None = None) -> Layer:
    """Open the outermost layer of `data` only (what a relay does). Every header and
    algorithm is checked before any curve operation (spec/04-envelopes.md, "Opening")."""
    return Layer(*_open_layer(data, keyring, trace))


def _open_layer(data: bytes, keyring: Keyring, trace: dict | None) -> tuple:
    """open_one_layer's work, as a tuple in Layer's field order: `open` reads the
    fields directly rather than building a Layer per layer."""
    fast = cose.match_authcrypt(data)
    if fast is not None:
        # The one layout p2p seals for authcrypt (see cose.match_authcrypt): the
        # steps of the general ECDH-SS branch below, on fields already checked.
        recipient_kid, sender_kid, iv, ciphertext, nonce = fast
        mine = keyring.agreement_keys.get(recipient_kid)
        if mine is None:
            raise WrongRecipient(f"no key {recipient_kid!r} here")
        sender_public = _public(keyring.senders, sender_kid)
        if sender_public is None:
            raise UnknownSender(f"unknown sender {sender_kid!r}")
        shared = keyring.static_secret(mine, sender_public)
        context = cose.kdf_context_ss(nonce)
        cek = cose.hkdf_sha256(shared, context)
        if trace is not None:
            trace.update(shared_secret=shared, kdf_context=context, cek=cek)
        plaintext = cose.aead_decrypt(ciphertext, cose.CONTENT_AAD, iv, cek)
        return AUTHCRYPT, plaintext, recipient_kid, sender_kid, sender_public, None

    value = cose.decode_envelope(data)
    if value.tag == TAG_SIGN1:
        sign1 = cose.decode_sign1(value)
        public = _public(keyring.signers, sign1.kid)
        if public is None:
            raise UnknownSender(f"unknown signer {sign1.kid!r}")
        cose.verify_sign1(sign1, public)
        return SIGNED, sign1.payload, None, None, None, sign1.kid

    enc = cose.decode_encrypt(value)
    mine = keyring.agreement_keys.get(enc.recipient_kid)
    if mine is None:
        raise WrongRecipient(f"no key {enc.recipient_kid!r} here")
    sender_kid = sender_public = None
    if enc.alg == ALG_ECDH_ES_HKDF_256:
        kind = ANONCRYPT
        shared = x25519(mine.secret, enc.ephemeral_public)
    else:
        kind = AUTHCRYPT
        # Both sender-key forms end in the caller's `senders` mapping: -3 names the
        # key, -2 carries it together with a kid that must map to that same key. A kid
        # inside -2 is unauthenticated, so without this check anyone could claim any
        # name for their own key; the mapping is the only trust anchor.
        sender_kid = enc.static_kid if enc.static_kid is not None else enc.static_key_kid
        if sender_kid is None:
            raise UnknownSender("static sender key (-2) without a kid: cannot name the sender")
        sender_public = _public(keyring.senders, sender_kid)
        if sender_public is None:
            raise UnknownSender(f"unknown sender {sender_kid!r}")
        if enc.static_public is not None and enc.static_public != sender_public:
            raise UnknownSender(f"sender {sender_kid!r} presents a key other than the one we know")
        shared = keyring.static_secret(mine, sender_public)
    context = cose.recipient_kdf_context(enc)
    cek = cose.hkdf_sha256(shared, context)
    if trace is not None:
        trace.update(shared_secret=shared, kdf_context=context, cek=cek)
    plaintext = cose.decrypt_content(enc, cek)
    return kind, plaintext, enc.recipient_kid, sender_kid, sender_public, None


def open(data: bytes, keyring: Keyring, *, max_depth: int = MAX_DEPTH) -> Opened:  # noqa: A001
    """Open every layer addressed to us: encrypted layers continue while their
    plaintext is an envelope; a signed layer is always the innermost. At most one
    authcrypt layer; its sender's DID must equal the signer's DID when both exist."""
    layers: list[str] = []
    recipient_kid = sender_kid = sender_public = signer_kid = None
    current = data
    while True:
        if len(layers) >= max_depth:
            raise MalformedEnvelope(f"envelope nested deeper than {max_depth} layers")
        kind, current, layer_recipient, layer_sender, layer_sender_public, layer_signer = _open_layer(
            current, keyring, None)
        layers.append(kind)
        if kind == SIGNED:
            signer_kid = layer_signer
            break
        if recipient_kid is None:
            recipient_kid = layer_recipient
        if kind == AUTHCRYPT:
            if AUTHCRYPT in layers[:-1]:
                raise MalformedEnvelope("more than one authcrypt layer")
            sender_kid, sender_public = layer_sender, layer_sender_public
        if not is_envelope(current):
            break
    if signer_kid is not None and AUTHCRYPT in layers:
        if did_of(sender_kid) != did_of(signer_kid):
            raise SenderMismatch(f"signed by {did_of(signer_kid)!r}, authcrypted by {sender_kid!r}")
    return Opened(tuple(layers), current, recipient_kid, sender_kid, sender_public, signer_kid)
