"""terms/1.0: the customer proffers its terms; the business agrees, counters or refuses.

    customer                                                    business
    DRAFTED --proffer (agreement signed by the customer)-->     PROFFERED
    ACCEPTED <--accept (countersigned: both signatures)--        ACCEPTED
          or <--counter (an alternative, signed by the business)  COUNTERED
             --accept (both signatures)-->                        ACCEPTED
          or <--reject {reason}--                                 REJECTED
    ... later, either side: withdraw --> WITHDRAWN

This is Me2B in the spirit of IEEE 7012 ("MyTerms"): the *person* brings the terms,
picked from a public roster of machine-readable terms with stable ids, and the
business answers by policy. Both sides end with the same record: a COSE_Sign (RFC
9052 §4.1, tag 98, COSE's multi-signer structure) over the agreement's CBOR, with
the customer's signature first and the business's second. The agreement's
BLAKE2b-256 hash goes into later messages as the extension field `x-agreement`, so
each message names the terms it was sent under.

p2p.core.cose implements COSE_Sign1 only; the COSE_Sign here is built and parsed by
this module, in a fixed profile (empty body headers, EdDSA signers named by kid).
spec/17-terms.md is normative.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from .. import cbor, message
from ..cose import ALG_EDDSA, H_ALG, H_KID
from ..errors import (
    BadArgument,
    BadSignature,
    InvalidField,
    InvalidMessage,
    LocalError,
    MissingField,
    RemoteError,
    StateError,
    UnsupportedAlgorithm,
)
from ..keys import SIGNATURE_BYTES, ed25519_verify
from ..message import Message
from . import DIDCOMM_DOC_URI, P2P_DOC_URI, _body
from .errors import UnexpectedMessage

PROTOCOL = f"{P2P_DOC_URI}/terms/1.0"
PROFFER_TYPE = PROTOCOL + "/proffer"
ACCEPT_TYPE = PROTOCOL + "/accept"
COUNTER_TYPE = PROTOCOL + "/counter"
REJECT_TYPE = PROTOCOL + "/reject"
WITHDRAW_TYPE = PROTOCOL + "/withdraw"
MESSAGE_TYPES = frozenset({PROFFER_TYPE, ACCEPT_TYPE, COUNTER_TYPE, REJECT_TYPE, WITHDRAW_TYPE})
ROLES = ("customer", "business")

TAG_SIGN = 98  # COSE_Sign (RFC 9052 §4.1)
MAX_AGREEMENT_BYTES = 16_384
MAX_HEADER_BYTES = 8192
MAX_TERMS = 32
MAX_TERM_CHARS = 128
MAX_REASON_CHARS = 1024
HASH_BYTES = 32
SIGNING_FRAGMENT = "key-1"  # agent layout (spec/02 §2.7): #key-1 is the Ed25519 key

X_AGREEMENT = "x-agreement"
UNDERSTOOD = frozenset({X_AGREEMENT})  # pass to message.decode(understood=...)


# --- errors --------------------------------------------------------------------------------


class UnknownTerm(RemoteError):
    """A term id not in the roster (or a roster version the receiver does not know)."""

    code = "unknown-term"


class InvalidCounter(RemoteError):
    """A counter that is not the proffer with terms replaced by their roster alternatives."""

    code = "invalid-counter"


class InvalidAgreement(RemoteError):
    """An agreement record or payload outside the p2p COSE_Sign profile (spec/17 §17.4)."""

    code = "invalid-agreement"


class AgreementMismatch(RemoteError):
    """A record, hash or party that is not the agreement of this thread / relationship."""

    code = "agreement-mismatch"


class AgreementRequired(RemoteError):
    """The customer requires an accepted agreement, and the message does not reference one."""

    code = "agreement-required"


ERRORS = (UnknownTerm, InvalidCounter, InvalidAgreement, AgreementMismatch, AgreementRequired)


# --- the roster ----------------------------------------------------------------------------

ROSTER_VERSION = 1


@dataclass(frozen=True, slots=True)
class Term:
    id: str
    title: str
    text: str
    alternatives: tuple[str, ...] = ()  # what a business may counter this term with


ROSTER: tuple[Term, ...] = (
    Term("p2p:terms:service-only", "Service only",
         "Use my data only to provide what I ask for in this relationship.",
         ("p2p:terms:service-and-improvement",)),
    Term("p2p:terms:service-and-improvement", "Service and improvement",
         "Use my data to provide what I ask for and to improve that service; for nothing else."),
    Term("p2p:terms:no-third-party", "No third parties",
         "Disclose my data to no other party; processors acting only on your instructions and bound by "
         "these terms count as you."),
    Term("p2p:terms:delete-on-revoke", "Delete when I leave",
         "Delete my data within 30 days after this relationship is revoked, except what law requires you to keep.",
         ("p2p:terms:retain-limited",)),
    Term("p2p:terms:retain-limited", "Limited retention",
         "Delete my data within 365 days after this relationship is revoked, except what law requires you "
         "to keep."),
    Term("p2p:terms:no-tracking", "No tracking",
         "Do not track me across other sites, apps or relationships, and do not profile me for advertising."),
    Term("p2p:terms:no-marketing", "No marketing",
         "Send me marketing only on notification topics I opted into."),
    Term("p2p:terms:data-copy", "Copy on request",
         "Give me a copy of my data in a machine-readable form within 30 days of my asking."),
)
TERMS: Mapping[str, Term] = {t.id: t for t in ROSTER}


def _check_terms(terms: object, where: str) -> tuple[str, ...]:
    """1..32 roster ids, unique, in ascending (bytewise) order: one spelling per set."""
    if type(terms) not in (list, tuple) or not 1 <= len(terms) <= MAX_TERMS:
        raise InvalidAgreement(f"{where}: expected 1..{MAX_TERMS} term ids")
    for t in terms:
        if type(t) is not str or not 0 < len(t) <= MAX_TERM_CHARS:
            raise InvalidAgreement(f"{where}: term ids are text of 1..{MAX_TERM_CHARS} characters")
        if t not in TERMS:
            raise UnknownTerm(f"{where}: {t[:80]!r} is not in roster {ROSTER_VERSION}")
    if list(terms) != sorted(set(terms), key=lambda s: s.encode("utf-8")):
        raise InvalidAgreement(f"{where}: term ids must be unique and in ascending order")
    return tuple(terms)


def canonical_terms(terms: Iterable[str]) -> tuple[str, ...]:
    """Our caller's terms as the wire wants them (unique, sorted); BadArgument if not in the roster."""
    out = tuple(sorted(set(terms), key=lambda s: s.encode("utf-8")))
    try:
        return _check_terms(out, "terms")
    except RemoteError as exc:
        raise BadArgument(f"{exc.code}: {exc.detail}") from None


def check_counter(proffered: tuple[str, ...], countered: tuple[str, ...]) -> None:
    """A counter keeps or replaces each proffered term by one of its roster alternatives,
    adds nothing else, and differs from the proffer (spec/17 §17.5)."""
    if set(countered) == set(proffered):
        raise InvalidCounter("a counter must change the terms (else it is an accept)")
    offered = set(proffered)
    allowed = offered | {a for p in proffered for a in TERMS[p].alternatives}
    extra = [c for c in countered if c not in allowed]
    if extra:
        raise InvalidCounter(f"{extra[0]!r} is neither proffered nor an alternative of a proffered term")
    for p in proffered:
        if p not in countered and not any(a in countered for a in TERMS[p].alternatives):
            raise InvalidCounter(f"{p!r} was dropped without an alternative")


# --- the business's policy -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Policy:
    """What a business agrees to: terms it accepts as they are, terms it answers with
    an alternative (term -> alternative, which must be one the roster lists), and terms
    that make it refuse the whole proffer. A term in none of them is refused too."""

    accept: frozenset[str] = frozenset()
    alternatives: tuple[tuple[str, str], ...] = ()
    reject: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "accept", frozenset(self.accept))
        object.__setattr__(self, "reject", frozenset(self.reject))
        pairs = tuple(sorted(dict(self.alternatives).items()))
        object.__setattr__(self, "alternatives", pairs)
        for t in self.accept | self.reject | {p for p, _ in pairs} | {a for _, a in pairs}:
            if t not in TERMS:
                raise BadArgument(f"policy names {t!r}, which is not in the roster")
        for term, alt in pairs:
            if alt not in TERMS[term].alternatives:
                raise BadArgument(f"{alt!r} is not a roster alternative of {term!r}")
        keys = [self.accept, self.reject, {p for p, _ in pairs}]
        if sum(len(k) for k in keys) != len(set().union(*keys)):
            raise BadArgument("a term is in more than one of accept, alternatives, reject")


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str  # "accept", "counter" or "reject"
    terms: tuple[str, ...] = ()  # counter: the alternative set; reject: the refused terms
    reason: str = ""


def decide(terms: tuple[str, ...], policy: Policy) -> Verdict:
    """The business's answer to proffered `terms`: a pure function of the two."""
    refused = [t for t in terms if t in policy.reject]
    if refused:
        return Verdict("reject", tuple(refused), "refused by policy: " + ", ".join(refused))
    alternatives = dict(policy.alternatives)
    out, unknown = [], []
    for t in terms:
        if t in policy.accept:
            out.append(t)
        elif t in alternatives:
            out.append(alternatives[t])
        else:
            unknown.append(t)
    if unknown:
        return Verdict("reject", tuple(unknown), "not offered by policy: " + ", ".join(unknown))
    countered = tuple(sorted(set(out), key=lambda s: s.encode("utf-8")))
    if set(countered) == set(terms):
        return Verdict("accept", tuple(terms))
    return Verdict("counter", countered)


# --- the agreement payload -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Draft:
    """The signed payload (CDDL `terms-agreement`)."""

    id: str
    terms: tuple[str, ...]
    customer: str  # the customer's pairwise DID
    business: str  # the business's pairwise DID
    created_time: int
    version: int = ROSTER_VERSION
    counter_to: bytes | None = None  # a counter: hash of the proffered payload

    def to_map(self) -> dict:
        m = {"id": self.id, "terms": list(self.terms), "version": self.version, "customer": self.customer,
             "business": self.business, "created_time": self.created_time}
        if self.counter_to is not None:
            m["counter_to"] = self.counter_to
        return m

    def encode(self) -> bytes:
        data = cbor.dumps(self.to_map())
        try:
            parse_payload(data)
        except RemoteError as exc:
            raise BadArgument(f"refusing to sign an invalid agreement: {exc.code}: {exc.detail}") from None
        return data


_PAYLOAD_KEYS = frozenset({"id", "terms", "version", "customer", "business", "created_time", "counter_to"})


def digest(payload: bytes) -> bytes:
    """The agreement hash: BLAKE2b-256 of the payload bytes."""
    return hashlib.blake2b(payload, digest_size=HASH_BYTES).digest()


def parse_payload(payload: bytes) -> Draft:
    m = cbor.loads(payload, max_size=MAX_AGREEMENT_BYTES)
    if type(m) is not dict:
        raise InvalidAgreement("the agreement payload is a CBOR map")
    for k in m:
        if k not in _PAYLOAD_KEYS:
            raise InvalidAgreement(f"unknown agreement field {k!r}"[:120])
    for k in ("id", "terms", "version", "customer", "business", "created_time"):
        if k not in m:
            raise InvalidAgreement(f"agreement field {k!r} is missing")
    version = m["version"]
    if type(version) is not int or version < 0:
        raise InvalidAgreement("version is an unsigned integer")
    if version != ROSTER_VERSION:
        raise UnknownTerm(f"roster version {version} is not known here (we know {ROSTER_VERSION})")
    try:
        message.parse_map({"id": m["id"], "type": PROFFER_TYPE, "body": {}, "from": m["customer"],
                           "to": [m["business"]], "created_time": m["created_time"]})
    except InvalidMessage as exc:
        raise InvalidAgreement(f"agreement {exc.detail}") from None
    counter_to = m.get("counter_to")
    if counter_to is not None and (type(counter_to) is not bytes or len(counter_to) != HASH_BYTES):
        raise InvalidAgreement(f"counter_to is a {HASH_BYTES}-byte hash")
    draft = Draft(m["id"], _check_terms(m["terms"], "terms"), m["customer"], m["business"], m["created_time"],
                  version, counter_to)
    # The hash names the agreement, so there must be one encoding per agreement.
    if cbor.dumps(m) != payload:
        raise InvalidAgreement("the agreement payload is not in deterministic encoding")
    return draft


# --- COSE_Sign --------------------------------------------------------------------------------

BODY_PROTECTED = b""  # no body headers: each signer's alg and kid are in its own protected header
_SIG_PREFIX = b"\x85\x69Signature"  # ["Signature", ...  (array of 5, text of 9)


def to_be_signed(signer_protected: bytes, payload: bytes) -> bytes:
    """RFC 9052 §4.4 Sig_structure for one signer of a COSE_Sign:
    ["Signature", body_protected, sign_protected, external_aad, payload]."""
    return (_SIG_PREFIX + cbor.dumps_bytes(BODY_PROTECTED) + cbor.dumps_bytes(signer_protected)
            + cbor.dumps_bytes(b"") + cbor.dumps_bytes(payload))


def signer_protected(kid: str) -> bytes:
    return cbor.dumps({H_ALG: ALG_EDDSA, H_KID: kid.encode("utf-8")})


@dataclass(frozen=True, slots=True)
class Signature:
    kid: str
    protected: bytes
    signature: bytes


def sign(payload: bytes, signer) -> Signature:
    """`signer`: an envelope.SigningKey (Ed25519, named by its kid)."""
    protected = signer_protected(signer.kid)
    return Signature(signer.kid, protected, signer.sign(to_be_signed(protected, payload)))


def encode_sign(payload: bytes, signatures: Iterable[Signature]) -> bytes:
    """98([h'', {}, payload, [[protected, {}, signature], ...]])"""
    sigs = tuple(signatures)
    out = b"\xd8\x62\x84" + cbor.dumps_bytes(BODY_PROTECTED) + b"\xa0" + cbor.dumps_bytes(payload)
    out += bytes((0x80 | len(sigs),))
    for s in sigs:
        out += b"\x83" + cbor.dumps_bytes(s.protected) + b"\xa0" + cbor.dumps_bytes(s.signature)
    return out


@dataclass(frozen=True, slots=True)
class Signed:
    """A COSE_Sign whose shape, payload and signatures were checked."""

    data: bytes
    payload: bytes
    draft: Draft
    signatures: tuple[Signature, ...]

    @property
    def hash(self) -> bytes:
        return digest(self.payload)


def _seq(value: object, n: int | None, where: str) -> tuple | list:
    if type(value) not in (list, tuple) or (n is not None and len(value) != n):
        raise InvalidAgreement(f"{where}: expected an array" + (f" of {n}" if n else ""))
    return value


def _empty_map(value: object, where: str) -> None:
    if not isinstance(value, Mapping) or len(value):
        raise InvalidAgreement(f"{where}: the unprotected header is an empty map in p2p")


def _signature(item: object, i: int) -> Signature:
    where = f"signatures[{i}]"
    protected, unprotected, sig = _seq(item, 3, where)
    if type(protected) is not bytes or type(sig) is not bytes:
        raise InvalidAgreement(f"{where}: protected header and signature are byte strings")
    _empty_map(unprotected, where)
    if len(protected) > MAX_HEADER_BYTES:
        raise InvalidAgreement(f"{where}: protected header too large")
    header = cbor.loads(protected, max_size=MAX_HEADER_BYTES)
    if not isinstance(header, Mapping) or set(header) != {H_ALG, H_KID}:
        raise InvalidAgreement(f"{where}: the protected header holds exactly alg (1) and kid (4)")
    if type(header[H_ALG]) is not int or header[H_ALG] != ALG_EDDSA:
        raise UnsupportedAlgorithm(f"{where}: alg {header[H_ALG]!r} is not EdDSA (-8)")
    kid = header[H_KID]
    if type(kid) is not bytes or not 0 < len(kid) <= 4096:
        raise InvalidAgreement(f"{where}: kid is a byte string of 1..4096 bytes")
    try:
        kid_text = kid.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidAgreement(f"{where}: kid is not UTF-8") from None
    if protected != signer_protected(kid_text):
        raise InvalidAgreement(f"{where}: protected header is not in deterministic encoding")
    if len(sig) != SIGNATURE_BYTES:
        raise BadSignature(f"{where}: an Ed25519 signature is {SIGNATURE_BYTES} bytes")
    return Signature(kid_text, protected, sig)


def signing_kid(did: str) -> str:
    return f"{did}#{SIGNING_FRAGMENT}"


def open_sign(data: bytes, *, expect: tuple[str, ...], customer: bytes | Signature | None = None,
              business: bytes | Signature | None = None) -> Signed:
    """Parse and verify an agreement record. `expect` names the signers it must have,
    in order: ("customer",), ("business",) or ("customer", "business") (the final
    record). Each signer's kid is `<its DID in the payload>#key-1`. For each expected
    role the caller gives either the party's Ed25519 public key (the relationship's),
    and the signature must verify under it, or a Signature we made ourselves, and the
    record must carry exactly that one."""
    if type(data) is not bytes:
        raise InvalidAgreement("an agreement record is a byte string")
    value = cbor.loads(data, max_size=MAX_AGREEMENT_BYTES)
    if type(value) is not cbor.CBORTag or value.tag != TAG_SIGN:
        raise InvalidAgreement("an agreement record is a tagged COSE_Sign (98)")
    body_protected, unprotected, payload, sigs = _seq(value.value, 4, "COSE_Sign")
    if type(body_protected) is not bytes or body_protected != BODY_PROTECTED:
        raise InvalidAgreement("the COSE_Sign body protected header is empty (h'') in p2p")
    _empty_map(unprotected, "COSE_Sign")
    if type(payload) is not bytes:
        raise InvalidAgreement("the payload is an attached byte string")
    sigs = _seq(sigs, None, "signatures")
    if len(sigs) != len(expect):
        raise InvalidAgreement(f"expected {len(expect)} signature(s), got {len(sigs)}")
    signatures = tuple(_signature(s, i) for i, s in enumerate(sigs))
    draft = parse_payload(payload)
    for s, role in zip(signatures, expect):
        did, anchor = (draft.customer, customer) if role == "customer" else (draft.business, business)
        if s.kid != signing_kid(did):
            raise AgreementMismatch(f"the {role}'s signature must be by {signing_kid(did)[:80]!r}")
        if isinstance(anchor, Signature):
            if s != anchor:
                raise AgreementMismatch(f"the record does not carry our ({role}) signature")
        elif type(anchor) is bytes:
            if not ed25519_verify(anchor, to_be_signed(s.protected, payload), s.signature):
                raise BadSignature(f"the {role}'s signature does not verify")
        else:
            raise LocalError(f"open_sign needs the {role}'s key or our own signature")
    if encode_sign(payload, signatures) != data:
        raise InvalidAgreement("the record is not in deterministic encoding")
    return Signed(data, payload, draft, signatures)


# --- the state machine -------------------------------------------------------------------------


class Role(enum.Enum):
    CUSTOMER = "customer"
    BUSINESS = "business"


class State(enum.Enum):
    DRAFTED = "drafted"  # customer: a draft not yet sent; business: nothing received yet
    PROFFERED = "proffered"
    COUNTERED = "countered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # terminal
    WITHDRAWN = "withdrawn"  # terminal


class Event(enum.Enum):
    SEND_PROFFER = "send-proffer"
    RECEIVE_PROFFER = "receive-proffer"
    SEND_ACCEPT = "send-accept"
    RECEIVE_ACCEPT = "receive-accept"
    SEND_COUNTER = "send-counter"
    RECEIVE_COUNTER = "receive-counter"
    SEND_REJECT = "send-reject"
    RECEIVE_REJECT = "receive-reject"
    SEND_WITHDRAW = "send-withdraw"
    RECEIVE_WITHDRAW = "receive-withdraw"


REMOTE_EVENTS = frozenset({Event.RECEIVE_PROFFER, Event.RECEIVE_ACCEPT, Event.RECEIVE_COUNTER,
                           Event.RECEIVE_REJECT, Event.RECEIVE_WITHDRAW})

TRANSITIONS: dict[Role, dict[State, dict[Event, State]]] = {
    Role.CUSTOMER: {
        State.DRAFTED: {Event.SEND_PROFFER: State.PROFFERED},
        State.PROFFERED: {Event.RECEIVE_ACCEPT: State.ACCEPTED, Event.RECEIVE_COUNTER: State.COUNTERED,
                          Event.RECEIVE_REJECT: State.REJECTED, Event.SEND_WITHDRAW: State.WITHDRAWN},
        State.COUNTERED: {Event.SEND_ACCEPT: State.ACCEPTED, Event.SEND_REJECT: State.REJECTED,
                          Event.SEND_WITHDRAW: State.WITHDRAWN, Event.RECEIVE_WITHDRAW: State.WITHDRAWN},
        State.ACCEPTED: {Event.SEND_WITHDRAW: State.WITHDRAWN, Event.RECEIVE_WITHDRAW: State.WITHDRAWN},
        State.REJECTED: {},
        State.WITHDRAWN: {},
    },
    Role.BUSINESS: {
        State.DRAFTED: {Event.RECEIVE_PROFFER: State.PROFFERED},
        State.PROFFERED: {Event.SEND_ACCEPT: State.ACCEPTED, Event.SEND_COUNTER: State.COUNTERED,
                          Event.SEND_REJECT: State.REJECTED, Event.RECEIVE_WITHDRAW: State.WITHDRAWN},
        State.COUNTERED: {Event.RECEIVE_ACCEPT: State.ACCEPTED, Event.RECEIVE_REJECT: State.REJECTED,
                          Event.RECEIVE_WITHDRAW: State.WITHDRAWN, Event.SEND_WITHDRAW: State.WITHDRAWN},
        State.ACCEPTED: {Event.SEND_WITHDRAW: State.WITHDRAWN, Event.RECEIVE_WITHDRAW: State.WITHDRAWN},
        State.REJECTED: {},
        State.WITHDRAWN: {},
    },
}


def _agreement_field(body: dict) -> bytes:
    if "agreement" not in body:
        raise MissingField("body.agreement")
    value = body["agreement"]
    if type(value) is not bytes or not value or len(value) > MAX_AGREEMENT_BYTES:
        raise InvalidField(f"body.agreement: a byte string of 1..{MAX_AGREEMENT_BYTES} bytes")
    return value


class Agreement:
    """One negotiation (thread) and its outcome, as one side sees it. The caller
    persists the fields; `record` is the final COSE_Sign once ACCEPTED."""

    __slots__ = ("role", "state", "thid", "customer", "business", "payload", "draft", "signature", "record")

    def __init__(self, role: Role, *, customer: str, business: str, state: State = State.DRAFTED,
                 thid: str | None = None, payload: bytes | None = None, signature: Signature | None = None,
                 record: bytes | None = None) -> None:
        if state not in TRANSITIONS[role]:
            raise LocalError(f"no state {state!r}")
        self.role, self.state, self.thid = role, state, thid
        self.customer, self.business = customer, business
        self.payload = payload  # the payload on the table (proffered, countered or accepted)
        self.draft = parse_payload(payload) if payload is not None else None
        self.signature = signature  # the other side's or our signature on `payload`, while one is missing
        self.record = record

    def __repr__(self) -> str:
        return f"<Agreement {self.role.value} {self.state.value} thid={self.thid!r}>"

    @classmethod
    def drafted(cls, *, id: str, terms: Iterable[str], customer: str, business: str, now: int) -> Agreement:
        """The customer's draft (DRAFTED)."""
        draft = Draft(id, canonical_terms(terms), customer, business, now)
        return cls(Role.CUSTOMER, customer=customer, business=business, payload=draft.encode())

    @classmethod
    def awaiting(cls, *, customer: str, business: str) -> Agreement:
        """The business's side, before any proffer (DRAFTED)."""
        return cls(Role.BUSINESS, customer=customer, business=business)

    @property
    def hash(self) -> bytes | None:
        return None if self.payload is None else digest(self.payload)

    @property
    def terms(self) -> tuple[str, ...]:
        return self.draft.terms if self.draft else ()

    # --- the table ------------------------------------------------------------------------

    def _check(self, event: Event) -> State:
        nxt = TRANSITIONS[self.role][self.state].get(event)
        if nxt is not None:
            return nxt
        what = f"{self.role.value} cannot {event.value} in state {self.state.value}"
        raise UnexpectedMessage(what) if event in REMOTE_EVENTS else StateError(what)

    def _ours(self) -> tuple[str, str]:
        return (self.customer, self.business) if self.role is Role.CUSTOMER else (self.business, self.customer)

    def _message(self, type_: str, body: dict, *, id: str, now: int, start: bool = False) -> Message:
        frm, to = self._ours()
        msg = Message(id=id, type=type_, body=body, frm=frm, to=(to,), thid=None if start else self.thid,
                      created_time=now)
        message.encode(msg)
        return msg

    def _on_thread(self, msg: Message, type_: str) -> None:
        if msg.type != type_:
            raise UnexpectedMessage(f"expected a {type_.rsplit('/', 1)[-1]}, got {msg.type[:80]!r}")
        if msg.thid != self.thid:
            raise UnexpectedMessage("the message is not on this agreement's thread")

    def _signer_check(self, signer) -> None:
        mine = self.customer if self.role is Role.CUSTOMER else self.business
        if signer.kid != signing_kid(mine):
            raise BadArgument(f"sign with {signing_kid(mine)!r}")

    def _final(self, ours: Signature, theirs: Signature) -> bytes:
        pair = (ours, theirs) if self.role is Role.CUSTOMER else (theirs, ours)
        return encode_sign(self.payload, pair)

    # --- customer ---------------------------------------------------------------------------

    def proffer(self, signer, *, id: str, now: int) -> Message:
        """DRAFTED -> PROFFERED. The proffer's id is the agreement's thread."""
        nxt = self._check(Event.SEND_PROFFER)
        self._signer_check(signer)
        sig = sign(self.payload, signer)
        msg = self._message(PROFFER_TYPE, {"agreement": encode_sign(self.payload, (sig,))}, id=id, now=now,
                            start=True)
        self.thid, self.signature, self.state = msg.id, sig, nxt
        return msg

    def receive_counter(self, msg: Message, *, business_key: bytes) -> Draft:
        """PROFFERED -> COUNTERED: the business's alternative, signed by it."""
        nxt = self._check(Event.RECEIVE_COUNTER)
        self._on_thread(msg, COUNTER_TYPE)
        signed = open_sign(_agreement_field(msg.body), expect=("business",), business=business_key)
        d, mine = signed.draft, self.draft
        if (d.id, d.customer, d.business) != (mine.id, mine.customer, mine.business):
            raise AgreementMismatch("the counter is not about this agreement or these parties")
        if d.counter_to != self.hash:
            raise AgreementMismatch("counter_to is not the hash of the proffered agreement")
        check_counter(mine.terms, d.terms)
        self.payload, self.draft, self.signature, self.state = signed.payload, d, signed.signatures[0], nxt
        return d

    # --- business ----------------------------------------------------------------------------

    def receive_proffer(self, msg: Message, *, customer_key: bytes) -> Draft:
        """DRAFTED -> PROFFERED."""
        nxt = self._check(Event.RECEIVE_PROFFER)
        if msg.type != PROFFER_TYPE:
            raise UnexpectedMessage(f"expected a proffer, got {msg.type[:80]!r}")
        signed = open_sign(_agreement_field(msg.body), expect=("customer",), customer=customer_key)
        d = signed.draft
        if (d.customer, d.business) != (self.customer, self.business) or msg.frm != d.customer:
            raise AgreementMismatch("the agreement names other parties than this relationship's")
        if d.counter_to is not None:
            raise InvalidAgreement("a proffer has no counter_to")
        self.thid, self.payload, self.draft = msg.thread_id, signed.payload, d
        self.signature, self.state = signed.signatures[0], nxt
        return d

    def counter(self, terms: Iterable[str], signer, *, id: str, now: int) -> Message:
        """PROFFERED -> COUNTERED, with `terms` (roster alternatives of the proffer)."""
        nxt = self._check(Event.SEND_COUNTER)
        self._signer_check(signer)
        terms = canonical_terms(terms)
        try:
            check_counter(self.draft.terms, terms)
        except InvalidCounter as exc:
            raise BadArgument(exc.detail) from None
        d = replace(self.draft, terms=terms, created_time=now, counter_to=self.hash)
        payload = d.encode()
        sig = sign(payload, signer)
        msg = self._message(COUNTER_TYPE, {"agreement": encode_sign(payload, (sig,))}, id=id, now=now)
        self.payload, self.draft, self.signature, self.state = payload, d, sig, nxt
        return msg

    def respond(self, policy: Policy, signer, *, id: str, now: int) -> Message:
        """The business's answer by `policy` to the proffer on the table."""
        verdict = decide(self.terms, policy)
        if verdict.kind == "accept":
            return self.accept(signer, id=id, now=now)
        if verdict.kind == "counter":
            return self.counter(verdict.terms, signer, id=id, now=now)
        return self.reject(verdict.reason, id=id, now=now, terms=verdict.terms)

    # --- both ----------------------------------------------------------------------------------

    def accept(self, signer, *, id: str, now: int) -> Message:
        """Add our signature to the payload on the table: the business in PROFFERED
        (countersigning), the customer in COUNTERED. -> ACCEPTED."""
        nxt = self._check(Event.SEND_ACCEPT)
        self._signer_check(signer)
        record = self._final(sign(self.payload, signer), self.signature)
        msg = self._message(ACCEPT_TYPE, {"agreement": record}, id=id, now=now)
        self.record, self.signature, self.state = record, None, nxt
        return msg

    def receive_accept(self, msg: Message, *, their_key: bytes) -> Signed:
        """The other side signed the payload on the table (ours already carries our
        signature). -> ACCEPTED; `record` is then the final COSE_Sign."""
        nxt = self._check(Event.RECEIVE_ACCEPT)
        self._on_thread(msg, ACCEPT_TYPE)
        data = _agreement_field(msg.body)
        if self.role is Role.CUSTOMER:
            signed = open_sign(data, expect=("customer", "business"), customer=self.signature, business=their_key)
        else:
            signed = open_sign(data, expect=("customer", "business"), customer=their_key, business=self.signature)
        if signed.payload != self.payload:
            raise AgreementMismatch("the accepted agreement is not the one on the table")
        self.record, self.signature, self.state = signed.data, None, nxt
        return signed

    def reject(self, reason: str, *, id: str, now: int, terms: Iterable[str] = ()) -> Message:
        nxt = self._check(Event.SEND_REJECT)
        if type(reason) is not str or len(reason) > MAX_REASON_CHARS:
            raise BadArgument(f"reason is text of at most {MAX_REASON_CHARS} characters")
        body: dict = {"reason": reason}
        terms = tuple(terms)
        if len(terms) > MAX_TERMS or any(type(t) is not str or not 0 < len(t) <= MAX_TERM_CHARS for t in terms):
            raise BadArgument(f"terms: at most {MAX_TERMS} term ids")
        if terms:
            body["terms"] = list(terms)
        msg = self._message(REJECT_TYPE, body, id=id, now=now)
        self.state = nxt
        return msg

    def receive_reject(self, msg: Message) -> tuple[str, tuple[str, ...]]:
        nxt = self._check(Event.RECEIVE_REJECT)
        self._on_thread(msg, REJECT_TYPE)
        reason, terms = parse_reject(msg)
        self.state = nxt
        return reason, terms

    def withdraw(self, *, id: str, now: int, reason: str | None = None) -> Message:
        """-> WITHDRAWN: the agreement (or the proposal on the table) no longer holds."""
        nxt = self._check(Event.SEND_WITHDRAW)
        body: dict = {"agreement": self.hash}
        if reason is not None:
            if type(reason) is not str or len(reason) > MAX_REASON_CHARS:
                raise BadArgument(f"reason is text of at most {MAX_REASON_CHARS} characters")
            body["reason"] = reason
        msg = self._message(WITHDRAW_TYPE, body, id=id, now=now)
        self.state = nxt
        return msg

    def receive_withdraw(self, msg: Message) -> str | None:
        nxt = self._check(Event.RECEIVE_WITHDRAW)
        self._on_thread(msg, WITHDRAW_TYPE)
        if "agreement" not in msg.body:
            raise MissingField("body.agreement")
        h = msg.body["agreement"]
        if type(h) is not bytes or len(h) != HASH_BYTES:
            raise InvalidField(f"body.agreement: a {HASH_BYTES}-byte hash")
        if h != self.hash:
            raise AgreementMismatch("the withdraw names another agreement")
        reason = _body.text(msg.body, "reason", limit=MAX_REASON_CHARS)
        self.state = nxt
        return reason


def parse_reject(msg: Message) -> tuple[str, tuple[str, ...]]:
    reason = _body.text(msg.body, "reason", limit=MAX_REASON_CHARS, required=True)
    terms = _body.text_list(msg.body, "terms", limit=MAX_TERMS, item_limit=MAX_TERM_CHARS) or ()
    return reason, terms


# --- x-agreement: later messages name the agreement they were sent under -----------------------

# Protocols that run before or around an agreement, which `admit` never refuses: the
# relationship itself, making the agreement, and the core protocols that report faults
# and check liveness (otherwise no agreement could ever be reached or refused).
EXEMPT_PROTOCOLS = frozenset({
    (P2P_DOC_URI, "connect", 1), (P2P_DOC_URI, "terms", 1), (DIDCOMM_DOC_URI, "report-problem", 2),
    (DIDCOMM_DOC_URI, "trust-ping", 2), (DIDCOMM_DOC_URI, "discover-features", 2), (DIDCOMM_DOC_URI, "empty", 1),
})


def bind(msg: Message, agreement_hash: bytes) -> Message:
    """`msg` carrying `x-agreement` = the hash, listed in `crit` (a receiver that does
    not implement terms/1.0 must refuse rather than act outside the agreement)."""
    if type(agreement_hash) is not bytes or len(agreement_hash) != HASH_BYTES:
        raise BadArgument(f"an agreement hash is {HASH_BYTES} bytes")
    crit = msg.crit if X_AGREEMENT in msg.crit else msg.crit + (X_AGREEMENT,)
    return replace(msg, extensions={**msg.extensions, X_AGREEMENT: agreement_hash}, crit=crit)


def encode(msg: Message) -> bytes:
    """message.encode for a message that may carry `x-agreement` in `crit`."""
    return message.encode(msg, understood=UNDERSTOOD)


@dataclass(frozen=True, slots=True)
class Admission:
    """`admit`'s answer: accept, or refuse with `error` (to report; the message has no effect)."""

    accept: bool
    error: RemoteError | None = None


def check_reference(msg: Message, *, agreement_hash: bytes | None, required: bool) -> None:
    """Raise unless `msg` may be processed under the relationship's agreement state
    (spec/17 §17.8). `agreement_hash` is the hash of the ACCEPTED agreement, or None."""
    try:
        doc, protocol, major, _minor, _name = message.piuri(msg.type)
    except InvalidField:
        doc, protocol, major = "", "", -1
    if (doc, protocol, major) in EXEMPT_PROTOCOLS:
        return
    if X_AGREEMENT in msg.extensions:
        value = msg.extensions[X_AGREEMENT]
        if type(value) is not bytes or len(value) != HASH_BYTES:
            raise InvalidField(f"{X_AGREEMENT}: a {HASH_BYTES}-byte hash")
        if agreement_hash is None:
            raise AgreementMismatch("the message names an agreement, but none is in force")
        if value != agreement_hash:
            raise AgreementMismatch("the message names another agreement than the one in force")
        return
    if required:
        raise AgreementRequired("no accepted agreement" if agreement_hash is None
                                else f"the message does not carry {X_AGREEMENT}")


def admit(msg: Message, *, agreement_hash: bytes | None, required: bool) -> Admission:
    try:
        check_reference(msg, agreement_hash=agreement_hash, required=required)
    except RemoteError as exc:
        return Admission(False, exc)
    return Admission(True)


__all__ = ["PROTOCOL", "PROFFER_TYPE", "ACCEPT_TYPE", "COUNTER_TYPE", "REJECT_TYPE", "WITHDRAW_TYPE",
           "MESSAGE_TYPES", "ROSTER_VERSION", "ROSTER", "TERMS", "Term", "Policy", "Verdict", "decide", "Draft",
           "digest", "parse_payload", "to_be_signed", "signer_protected", "Signature", "sign", "encode_sign",
           "Signed", "open_sign", "signing_kid", "check_counter", "canonical_terms", "Role", "State", "Event",
           "TRANSITIONS", "REMOTE_EVENTS", "Agreement", "parse_reject", "X_AGREEMENT", "UNDERSTOOD",
           "EXEMPT_PROTOCOLS", "bind", "encode", "Admission", "check_reference", "admit", "UnknownTerm",
           "InvalidCounter", "InvalidAgreement", "AgreementMismatch", "AgreementRequired"]
