"""ownership/1.0: signed product-ownership records, maker updates, transfers (spec/19-ownership.md).

Three signed objects, each a COSE_Sign1 (spec/04 §4.2) over a deterministic CBOR map:

- a **record** by the business agent's key (`<agent DID>#key-1`): this product
  (model, serial, dates) belongs to this owner, a customer's pairwise DID;
- an **update** by the same key: a recall, firmware, warranty or manual notice for a
  model and some of its serials;
- a **consent** by the current owner's pairwise key (`<owner>#key-1`): transfer
  record R to new owner N.

They are signed (non-repudiable, spec/04 §4.9) rather than only authcrypted because
they are shown to third parties: a record to a repair shop or a buyer, a consent to
whoever audits a transfer. Verification is a pure function of the bytes, the
expected signer and `now`.

State per record, on both sides (`Holding`):

    issued --activate--> active --request-transfer--> transfer_pending --complete--> superseded
       \\                   |  <--cancel-transfer--/        |
        \\-----revoke-------+-------- revoke ---------------+--> revoked

The business side keeps a `Registry` of everything it issued: the live record per
(model, serial), its owner, and `owners_of(update)`, the DIDs an update goes to.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any

from .. import cbor, cose, did, envelope
from ..errors import (
    BadArgument,
    ClockSkew,
    InvalidDID,
    InvalidKey,
    InvalidField,
    LocalError,
    MissingField,
    P2PError,
    RemoteError,
    SenderMismatch,
    StateError,
)
from ..keys import KeyType
from ..message import DEFAULT_MAX_SKEW, Attachment, Message
from . import P2P_DOC_URI, _body
from .errors import IllegalTransition

PROTOCOL = f"{P2P_DOC_URI}/ownership/1.0"
ROLES = ("issuer", "owner")
MESSAGE_NAMES = ("record", "present", "update", "transfer-request", "transfer-complete", "revoke")
MESSAGE_TYPES = frozenset(f"{PROTOCOL}/{n}" for n in MESSAGE_NAMES)

SIGNING_FRAGMENT = "key-1"  # agent layout (spec/02 §2.7): #key-1 is the Ed25519 key
COSE_SIGN1_MEDIA_TYPE = 'application/cose; cose-type="cose-sign1"'

MAX_RECORD_BYTES = 16_384  # two DIDs of up to 4096 characters, a kid, ids, a signature
MAX_UPDATE_BYTES = 65_536
MAX_CONSENT_BYTES = 16_384
MAX_MODEL_CHARS = 128
MAX_SERIAL_CHARS = 64
MAX_SERIAL_LIST = 256
MAX_TITLE_CHARS = 256
MAX_UPDATE_TEXT_CHARS = 8192
MAX_LINKS = 8
MAX_LINK_CHARS = 2048
MAX_REASON_CHARS = 1024
UPDATE_KINDS = ("recall", "firmware", "warranty", "manual")

_SERIAL_RE = re.compile(r"[\x21-\x7e]+")
_ID_RE = re.compile(r"[\x21-\x7e]+")
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


# --- errors -------------------------------------------------------------------------


class BadRecord(RemoteError):
    """An ownership record that is not a COSE_Sign1 over a well-formed record map."""

    code = "bad-record"


class BadUpdate(RemoteError):
    """A maker update that is not a COSE_Sign1 over a well-formed update map (this
    includes a serial range whose first serial sorts after its last)."""

    code = "bad-update"


class BadConsent(RemoteError):
    """A transfer consent that is missing, not signed by the current owner's key, or
    does not name this record, this new owner and a time."""

    code = "bad-consent"


class BadProof(RemoteError):
    """A presentation whose proof is missing, not signed by the record owner's key, or
    not bound to this record, this audience, the challenge and a recent time."""

    code = "bad-proof"


class WrongIssuer(RemoteError):
    """A record or update signed by a key other than the maker's (`<agent DID>#key-1`)."""

    code = "wrong-issuer"


class WrongOwner(RemoteError):
    """A record whose owner is not the DID it was expected for (e.g. delivered to
    someone else, or a transfer asked for by someone who does not own it)."""

    code = "wrong-owner"


class UnknownRecord(RemoteError):
    """A message naming a record id the receiver never issued or holds."""

    code = "unknown-record"


# --- the signed objects ---------------------------------------------------------------


def _is_date(value: Any) -> bool:
    """RFC 3339 full-date "YYYY-MM-DD" naming a real day of the proleptic Gregorian
    calendar (no datetime in the core: the rule is four lines)."""
    if type(value) is not str:
        return False
    m = _DATE_RE.fullmatch(value)
    if m is None:
        return False
    y, mo, d = int(m[1]), int(m[2]), int(m[3])
    if not 1 <= mo <= 12 or d < 1:
        return False
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    return d <= (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[mo - 1]


def _is_serial(value: Any) -> bool:
    return type(value) is str and 0 < len(value) <= MAX_SERIAL_CHARS and _SERIAL_RE.fullmatch(value) is not None


def serial_key(serial: str) -> tuple[int, bytes]:
    """Serials sort shortlex: shorter first, then bytewise. Zero-padded numbers of one
    width sort numerically, and "9" < "10" as a person expects."""
    return len(serial), serial.encode("ascii")


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    issuer: str  # the business agent DID; the record is signed by <issuer>#key-1
    owner: str  # the owner's pairwise DID with the business
    model: str
    serial: str
    purchased: str  # "YYYY-MM-DD"
    warranty_end: str  # "YYYY-MM-DD", not before `purchased`
    issued_time: int
    previous: str | None = None  # the record this one supersedes (after a transfer)

    def to_map(self) -> dict:
        out: dict[str, Any] = {"id": self.id, "model": self.model, "owner": self.owner, "issuer": self.issuer,
                               "serial": self.serial}
        if self.previous is not None:
            out["previous"] = self.previous
        out.update({"purchased": self.purchased, "issued_time": self.issued_time, "warranty_end": self.warranty_end})
        return out

    def payload(self) -> bytes:
        return cbor.dumps(self.to_map())


@dataclass(frozen=True, slots=True)
class SerialRange:
    first: str
    last: str

    def __contains__(self, serial: str) -> bool:
        return serial_key(self.first) <= serial_key(serial) <= serial_key(self.last)


@dataclass(frozen=True, slots=True)
class Update:
    id: str
    issuer: str
    kind: str  # one of UPDATE_KINDS
    model: str
    serials: SerialRange | frozenset[str] | None  # None: every serial of the model
    title: str
    text: str
    links: tuple[str, ...]
    issued_time: int

    def to_map(self) -> dict:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "text": self.text, "links": list(self.links),
                               "model": self.model, "title": self.title, "issuer": self.issuer}
        if isinstance(self.serials, SerialRange):
            out["serials"] = {"range": [self.serials.first, self.serials.last]}
        elif self.serials is not None:
            out["serials"] = {"list": sorted(self.serials, key=serial_key)}
        out["issued_time"] = self.issued_time
        return out

    def payload(self) -> bytes:
        return cbor.dumps(self.to_map())


@dataclass(frozen=True, slots=True)
class Consent:
    record: str
    new_owner: str
    time: int
    signer_kid: str = ""

    def payload(self) -> bytes:
        return cbor.dumps({"time": self.time, "record": self.record, "new_owner": self.new_owner})


def matches(update: Update, record: Record) -> bool:
    """Is `record`'s product among those `update` concerns? Same maker, same model,
    and the serial in the update's range or list (or any serial if it names none)."""
    if update.issuer != record.issuer or update.model != record.model:
        return False
    return update.serials is None or record.serial in update.serials


def signing_kid(agent_did: str) -> str:
    return f"{agent_did}#{SIGNING_FRAGMENT}"


def _signer_for(kid: str, signer: envelope.SigningKey) -> None:
    if signer.kid != kid:
        raise BadArgument(f"must be signed with {kid[-40:]!r}, not {signer.kid[-40:]!r}")
    try:
        public = did.resolve_key(kid, KeyType.ED25519).raw
    except (InvalidDID, InvalidKey) as exc:
        raise BadArgument(f"{kid[-40:]!r} does not resolve to an Ed25519 key: {exc.code}") from None
    if public != signer.public:
        raise BadArgument(f"the signing key is not the key {kid[-40:]!r} names")


def sign_record(record: Record, signer: envelope.SigningKey) -> bytes:
    """The record as a COSE_Sign1 by the issuer's #key-1 (which `signer` must be)."""
    try:
        _record_from_map(record.to_map())
    except RemoteError as exc:
        raise BadArgument(f"refusing to sign a record we would reject: {exc.detail}") from None
    _signer_for(signing_kid(record.issuer), signer)
    return envelope.seal_signed(record.payload(), signer)


def sign_update(update: Update, signer: envelope.SigningKey) -> bytes:
    try:
        _update_from_map(update.to_map())
    except RemoteError as exc:
        raise BadArgument(f"refusing to sign an update we would reject: {exc.detail}") from None
    _signer_for(signing_kid(update.issuer), signer)
    return envelope.seal_signed(update.payload(), signer)


def sign_consent(record: Record, new_owner: str, time: int, signer: envelope.SigningKey) -> bytes:
    """The current owner's consent to transfer `record` to `new_owner`, signed with the
    owner's pairwise #key-1."""
    if not _is_did(new_owner) or new_owner == record.owner:
        raise BadArgument("new_owner must be a DID other than the current owner")
    if type(time) is not int or not 0 <= time < 2**63:
        raise BadArgument("time must be seconds since the epoch")
    _signer_for(signing_kid(record.owner), signer)
    return envelope.seal_signed(Consent(record.id, new_owner, time).payload(), signer)


def _is_did(value: Any) -> bool:
    return type(value) is str and value.startswith("did:") and value.count(":") >= 2 and len(value) <= 4096


def _signer_fault(fault: type[RemoteError]) -> type[RemoteError]:
    # A record or update by the wrong key is a wrong issuer; a consent or proof by
    # the wrong key is simply not the owner's consent or proof.
    return WrongIssuer if fault in (BadRecord, BadUpdate) else fault


def _open_signed(signed: Any, *, limit: int, fault: type[RemoteError], what: str,
                 expected_kid: str | None) -> cose.Sign1:
    """A COSE_Sign1 from untrusted bytes, signature checked. The signer must be
    `expected_kid` (or, when None, any #key-1 that resolves to an Ed25519 key)."""
    if type(signed) is not bytes or not signed or len(signed) > limit or signed[:1] != b"\xd2":
        raise fault(f"the {what} is not a COSE_Sign1 of at most {limit} bytes")
    try:
        sign1 = cose.decode_sign1(cose.decode_envelope(signed))
    except RemoteError as exc:
        raise fault(f"the {what} is not a valid COSE_Sign1: {exc.code}") from None
    if expected_kid is not None and sign1.kid != expected_kid:
        raise _signer_fault(fault)(
            f"the {what} is signed by {sign1.kid[-48:]!r}, not {expected_kid[-48:]!r}")
    if not sign1.kid.endswith("#" + SIGNING_FRAGMENT):
        raise _signer_fault(fault)(f"the {what} is not signed by a #key-1")
    try:
        public = did.resolve_key(sign1.kid, KeyType.ED25519).raw
    except (InvalidDID, InvalidKey):
        raise _signer_fault(fault)(
            f"the {what}'s signer {sign1.kid[-48:]!r} does not resolve to an Ed25519 key") from None
    cose.verify_sign1(sign1, public)  # BadSignature
    return sign1


def _payload(sign1: cose.Sign1, limit: int, fault: type[RemoteError], what: str) -> dict:
    try:
        value = cbor.loads(sign1.payload, max_size=limit)
    except P2PError as exc:
        if isinstance(exc, LocalError):
            raise
        raise fault(f"{what} payload: {exc.code}") from None
    if type(value) is not dict or not all(type(k) is str for k in value):
        raise fault(f"{what} payload is not a map with text keys")
    return value


def _field(m: dict, name: str, ok, fault: type[RemoteError], what: str, *, optional: bool = False) -> Any:
    if name not in m:
        if optional:
            return None
        raise fault(f"{what}.{name} is missing")
    value = m[name]
    if not ok(value):
        raise fault(f"{what}.{name} is not valid")
    return value


def _text_ok(limit: int, least: int = 1):
    # UTF-8 bytes, as the CDDL's `.size` counts (spec/01 section 1.6)
    return lambda v: type(v) is str and least <= len(v.encode("utf-8")) <= limit


def _id_ok(v: Any) -> bool:
    return type(v) is str and 0 < len(v) <= 128 and _ID_RE.fullmatch(v) is not None


def _time_ok(v: Any) -> bool:
    return type(v) is int and 0 <= v < 2**63


_RECORD_KEYS = frozenset({"id", "issuer", "owner", "model", "serial", "purchased", "warranty_end", "issued_time",
                          "previous"})


def _record_from_map(m: dict) -> Record:
    w = "record"
    extra = set(m) - _RECORD_KEYS
    if extra:
        # A signed record is shown to third parties: no field may mean something to
        # one reader and nothing to another.
        raise BadRecord(f"record has unknown field {sorted(extra)[0][:40]!r}")
    rec = Record(
        id=_field(m, "id", _id_ok, BadRecord, w),
        issuer=_field(m, "issuer", _is_did, BadRecord, w),
        owner=_field(m, "owner", _is_did, BadRecord, w),
        model=_field(m, "model", _text_ok(MAX_MODEL_CHARS), BadRecord, w),
        serial=_field(m, "serial", _is_serial, BadRecord, w),
        purchased=_field(m, "purchased", _is_date, BadRecord, w),
        warranty_end=_field(m, "warranty_end", _is_date, BadRecord, w),
        issued_time=_field(m, "issued_time", _time_ok, BadRecord, w),
        previous=_field(m, "previous", _id_ok, BadRecord, w, optional=True),
    )
    if rec.warranty_end < rec.purchased:  # same-width ISO dates compare as text
        raise BadRecord("record.warranty_end is before record.purchased")
    if rec.previous == rec.id:
        raise BadRecord("record.previous names the record itself")
    return rec


_UPDATE_KEYS = frozenset({"id", "issuer", "kind", "model", "serials", "title", "text", "links", "issued_time"})


def _update_from_map(m: dict) -> Update:
    w = "update"
    extra = set(m) - _UPDATE_KEYS
    if extra:
        raise BadUpdate(f"update has unknown field {sorted(extra)[0][:40]!r}")
    links = _field(m, "links", lambda v: type(v) is list and len(v) <= MAX_LINKS and all(
        type(x) is str and x.startswith("https://") and 8 < len(x) <= MAX_LINK_CHARS for x in v), BadUpdate, w)
    raw = _field(m, "serials", lambda v: type(v) is dict and len(v) == 1, BadUpdate, w, optional=True)
    serials: SerialRange | frozenset[str] | None = None
    if raw is not None:
        if "range" in raw:
            rng = raw["range"]
            if type(rng) is not list or len(rng) != 2 or not all(_is_serial(s) for s in rng):
                raise BadUpdate("update.serials.range is [first, last], two serials")
            if serial_key(rng[0]) > serial_key(rng[1]):
                raise BadUpdate(f"update.serials.range is inverted: {rng[0][:20]!r} sorts after {rng[1][:20]!r}")
            serials = SerialRange(rng[0], rng[1])
        elif "list" in raw:
            lst = raw["list"]
            if type(lst) is not list or not 0 < len(lst) <= MAX_SERIAL_LIST or not all(_is_serial(s) for s in lst):
                raise BadUpdate(f"update.serials.list holds 1..{MAX_SERIAL_LIST} serials")
            if len(set(lst)) != len(lst):
                raise BadUpdate("update.serials.list repeats a serial")
            serials = frozenset(lst)
        else:
            raise BadUpdate("update.serials is {range: [first, last]} or {list: [...]}")
    kind = _field(m, "kind", lambda v: v in UPDATE_KINDS and type(v) is str, BadUpdate, w)
    return Update(
        id=_field(m, "id", _id_ok, BadUpdate, w),
        issuer=_field(m, "issuer", _is_did, BadUpdate, w),
        kind=kind,
        model=_field(m, "model", _text_ok(MAX_MODEL_CHARS), BadUpdate, w),
        serials=serials,
        title=_field(m, "title", _text_ok(MAX_TITLE_CHARS), BadUpdate, w),
        text=_field(m, "text", _text_ok(MAX_UPDATE_TEXT_CHARS, 0), BadUpdate, w),
        links=tuple(links),
        issued_time=_field(m, "issued_time", _time_ok, BadUpdate, w),
    )


def verify_record(signed: bytes, *, issuer: str | None = None, owner: str | None = None) -> Record:
    """Check a signed record (spec/19 §19.3): COSE_Sign1 shape, signer = `issuer`'s
    #key-1 (any self-certifying #key-1 if `issuer` is None: the caller then decides
    whether it trusts `record.issuer`), signature, payload, the payload's issuer = the
    signer's DID, and owner = `owner` if given."""
    sign1 = _open_signed(signed, limit=MAX_RECORD_BYTES, fault=BadRecord, what="record",
                         expected_kid=None if issuer is None else signing_kid(issuer))
    record = _record_from_map(_payload(sign1, MAX_RECORD_BYTES, BadRecord, "record"))
    if signing_kid(record.issuer) != sign1.kid:
        raise WrongIssuer("the record names an issuer other than its signer")
    if owner is not None and record.owner != owner:
        raise WrongOwner("the record belongs to another owner")
    return record


def verify_update(signed: bytes, *, issuer: str) -> Update:
    """Check a signed maker update: signed by `issuer`'s #key-1 and naming it."""
    sign1 = _open_signed(signed, limit=MAX_UPDATE_BYTES, fault=BadUpdate, what="update",
                         expected_kid=signing_kid(issuer))
    update = _update_from_map(_payload(sign1, MAX_UPDATE_BYTES, BadUpdate, "update"))
    if update.issuer != issuer:
        raise WrongIssuer("the update names an issuer other than its signer")
    return update


def verify_consent(signed: Any, *, record: Record, new_owner: str, now: int,
                   max_skew: int = DEFAULT_MAX_SKEW) -> Consent:
    """The consent must be signed by the record owner's #key-1 over exactly
    {record: record.id, new_owner, time}, with time not after now + max_skew."""
    sign1 = _open_signed(signed, limit=MAX_CONSENT_BYTES, fault=BadConsent, what="consent",
                         expected_kid=signing_kid(record.owner))
    m = _payload(sign1, MAX_CONSENT_BYTES, BadConsent, "consent")
    time = m.get("time")
    if set(m) != {"record", "new_owner", "time"} or not _time_ok(time):
        raise BadConsent("consent is exactly {record, new_owner, time}")
    if m["record"] != record.id or m["new_owner"] != new_owner:
        raise BadConsent("the consent is for another record or another new owner")
    if time > now + max_skew:
        raise ClockSkew(f"consent time {time} is {time - now}s ahead")
    return Consent(record.id, new_owner, time, sign1.kid)


# --- per-record state ------------------------------------------------------------------


class State(enum.Enum):
    ISSUED = "issued"
    ACTIVE = "active"
    TRANSFER_PENDING = "transfer_pending"
    SUPERSEDED = "superseded"
    REVOKED = "revoked"


class Event(enum.Enum):
    ACTIVATE = "activate"  # business: the record was delivered; owner: it verified
    REQUEST_TRANSFER = "request-transfer"
    COMPLETE_TRANSFER = "complete-transfer"
    CANCEL_TRANSFER = "cancel-transfer"
    REVOKE = "revoke"


TRANSITIONS: dict[State, dict[Event, State]] = {
    State.ISSUED: {Event.ACTIVATE: State.ACTIVE, Event.REVOKE: State.REVOKED},
    State.ACTIVE: {Event.REQUEST_TRANSFER: State.TRANSFER_PENDING, Event.REVOKE: State.REVOKED},
    State.TRANSFER_PENDING: {Event.COMPLETE_TRANSFER: State.SUPERSEDED, Event.CANCEL_TRANSFER: State.ACTIVE,
                             Event.REVOKE: State.REVOKED},
    State.SUPERSEDED: {},
    State.REVOKED: {},
}
LIVE = frozenset({State.ISSUED, State.ACTIVE, State.TRANSFER_PENDING})  # the owner still owns it


class Holding:
    """One record and its state, on either side. `step` is the whole state machine."""

    __slots__ = ("record", "signed", "state", "pending_owner")

    def __init__(self, record: Record, signed: bytes, state: State = State.ISSUED) -> None:
        self.record, self.signed, self.state = record, signed, state
        self.pending_owner: str | None = None

    def __repr__(self) -> str:
        return f"<Holding {self.record.id!r} {self.state.value}>"

    def next_state(self, event: Event, *, remote: bool = False) -> State:
        nxt = TRANSITIONS[self.state].get(event)
        if nxt is None:
            text = f"record {self.record.id!r} cannot {event.value} while {self.state.value}"
            raise IllegalTransition(text) if remote else StateError(text)
        return nxt

    def step(self, event: Event, *, remote: bool = False) -> State:
        self.state = self.next_state(event, remote=remote)
        if self.state is not State.TRANSFER_PENDING:
            self.pending_owner = None
        return self.state


# --- messages ---------------------------------------------------------------------------


def message_type(name: str) -> str:
    return f"{PROTOCOL}/{name}"


def _signed_attachment(aid: str, signed: bytes) -> Attachment:
    return Attachment(id=aid, media_type=COSE_SIGN1_MEDIA_TYPE, data={"bytes": signed})


def _attached(msg: Message, aid: str, fault: type[RemoteError]) -> bytes:
    found = [a for a in msg.attachments if a.id == aid]
    if len(found) != 1 or "bytes" not in found[0].data:
        raise fault(f"the message needs exactly one {aid!r} attachment with inline bytes")
    return found[0].data["bytes"]


def _require(msg: Message, name: str) -> None:
    if msg.type != message_type(name):
        raise InvalidField(f"type: expected ownership/1.0 {name}, got {msg.type[:80]!r}")


def record_message(signed: bytes, *, id: str, frm: str, to: str, now: int, thid: str | None = None) -> Message:
    """Deliver a signed record to its owner (`to` = record.owner)."""
    return Message(id=id, type=message_type("record"), body={}, frm=frm, to=(to,), thid=thid, created_time=now,
                   attachments=(_signed_attachment("record", signed),))


def receive_record(msg: Message, *, issuer: str, owner: str) -> Holding:
    """The owner's side: the record must come from `issuer` (our peer's agent DID,
    learned from the invitation) and be for `owner` (our pairwise DID). Active at once."""
    _require(msg, "record")
    signed = _attached(msg, "record", BadRecord)
    record = verify_record(signed, issuer=issuer, owner=owner)
    return Holding(record, signed, State.ACTIVE)


def presentation_payload(record_id: str, audience: str, time: int, challenge: str | None) -> bytes:
    m: dict[str, Any] = {"time": time, "record": record_id, "audience": audience}
    if challenge is not None:
        m["challenge"] = challenge
    return cbor.dumps(m)


def present_message(holding: Holding, owner_key: envelope.SigningKey, *, id: str, frm: str, to: str, now: int,
                    challenge: str | None = None, thid: str | None = None) -> Message:
    """Show a record to `to` (the business, or anyone): the record and a proof, signed
    by the owner's pairwise #key-1, that the presenter holds the owner key, bound to
    the audience and the time (and to a challenge the verifier chose, if any)."""
    if holding.state not in LIVE:
        raise StateError(f"a {holding.state.value} record is not ours to present")
    _signer_for(signing_kid(holding.record.owner), owner_key)
    proof = envelope.seal_signed(presentation_payload(holding.record.id, to, now, challenge), owner_key)
    body: dict[str, Any] = {} if challenge is None else {"challenge": challenge}
    return Message(id=id, type=message_type("present"), body=body, frm=frm, to=(to,), thid=thid, created_time=now,
                   attachments=(_signed_attachment("record", holding.signed), _signed_attachment("proof", proof)))


def verify_presentation(msg: Message, *, audience: str, now: int, issuer: str | None = None,
                        challenge: str | None = None, max_age: int = 3600,
                        max_skew: int = DEFAULT_MAX_SKEW) -> Record:
    """A pure check of a `present`: a valid record (by `issuer` if given) and a proof
    by the record owner's key over {record, audience = us, time (fresh), challenge}."""
    _require(msg, "present")
    record = verify_record(_attached(msg, "record", BadRecord), issuer=issuer)
    sign1 = _open_signed(_attached(msg, "proof", BadProof), limit=MAX_CONSENT_BYTES, fault=BadProof,
                         what="proof", expected_kid=signing_kid(record.owner))
    m = _payload(sign1, MAX_CONSENT_BYTES, BadProof, "proof")
    time = m.get("time")
    if not _time_ok(time) or not set(m) <= {"record", "audience", "time", "challenge"}:
        raise BadProof("proof is {record, audience, time, ? challenge}")
    if m.get("record") != record.id or m.get("audience") != audience or m.get("challenge") != challenge:
        raise BadProof("the proof is for another record, audience or challenge")
    if time > now + max_skew:
        raise ClockSkew("proof time is in the future")
    if time + max_age < now:
        raise BadProof("the proof is too old")
    return record


def update_message(signed: bytes, *, id: str, frm: str, to: str, now: int) -> Message:
    return Message(id=id, type=message_type("update"), body={}, frm=frm, to=(to,), created_time=now,
                   attachments=(_signed_attachment("update", signed),))


def receive_update(msg: Message, *, issuer: str) -> Update:
    _require(msg, "update")
    return verify_update(_attached(msg, "update", BadUpdate), issuer=issuer)


@dataclass(frozen=True, slots=True)
class TransferRequest:
    id: str  # the message id: the transfer thread
    record: str
    new_owner: str
    consent: bytes = field(repr=False)
    frm: str = ""


def transfer_request(holding: Holding, new_owner: str, consent: bytes, *, id: str, frm: str, to: str,
                     now: int) -> Message:
    """The owner asks the business to transfer (ACTIVE -> TRANSFER_PENDING on our copy)."""
    nxt = holding.next_state(Event.REQUEST_TRANSFER)
    if frm != holding.record.owner:
        raise BadArgument("a transfer request comes from the record's owner")
    msg = Message(id=id, type=message_type("transfer-request"), body={"record": holding.record.id,
                                                                       "new_owner": new_owner},
                  frm=frm, to=(to,), created_time=now, attachments=(_signed_attachment("consent", consent),))
    holding.state, holding.pending_owner = nxt, new_owner
    return msg


def parse_transfer_request(msg: Message) -> TransferRequest:
    _require(msg, "transfer-request")
    record_id = _body.text(msg.body, "record", limit=128, required=True, allow_empty=False)
    new_owner = _body.text(msg.body, "new_owner", limit=4096, required=True, allow_empty=False)
    if not _is_did(new_owner):
        raise InvalidField("body.new_owner: a DID")
    if msg.frm is None:
        raise MissingField("from")
    consent = _attached(msg, "consent", BadConsent)
    return TransferRequest(msg.id, record_id, new_owner, consent, msg.frm)


def transfer_complete(old: Record, *, request_id: str, id: str, frm: str, now: int) -> Message:
    """Tell the previous owner the transfer is done: its record is superseded."""
    return Message(id=id, type=message_type("transfer-complete"), body={"record": old.id}, frm=frm, to=(old.owner,),
                   thid=request_id, created_time=now)


def revoke_message(record: Record, *, id: str, frm: str, now: int, reason: str | None = None) -> Message:
    body: dict[str, Any] = {"record": record.id}
    if reason is not None:
        body["reason"] = reason
    return Message(id=id, type=message_type("revoke"), body=body, frm=frm, to=(record.owner,), created_time=now)


def receive_status(msg: Message, holding: Holding, *, issuer: str) -> State:
    """The owner's side of `transfer-complete` (-> SUPERSEDED) and `revoke` (-> REVOKED)."""
    if msg.frm != issuer:
        raise SenderMismatch("record status comes from the issuer")
    if msg.type == message_type("transfer-complete"):
        event = Event.COMPLETE_TRANSFER
    elif msg.type == message_type("revoke"):
        event = Event.REVOKE
        _body.text(msg.body, "reason", limit=MAX_REASON_CHARS)
    else:
        raise InvalidField(f"type: not a record status message: {msg.type[:80]!r}")
    if _body.text(msg.body, "record", limit=128, required=True) != holding.record.id:
        raise UnknownRecord("the message names another record")
    return holding.step(event, remote=True)


# --- the business's registry ------------------------------------------------------------


class Registry:
    """Every record a business issued, for one issuer (its agent DID). Pure: the daemon
    persists what it returns. At most one live record per (model, serial)."""

    __slots__ = ("issuer", "_records", "_live", "_by_model")

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self._records: dict[str, Holding] = {}
        self._live: dict[tuple[str, str], str] = {}  # (model, serial) -> live record id
        self._by_model: dict[str, set[str]] = {}  # model -> serials with a live record

    def __len__(self) -> int:
        return len(self._records)

    def get(self, record_id: str) -> Holding | None:
        return self._records.get(record_id)

    def current(self, model: str, serial: str) -> Holding | None:
        rid = self._live.get((model, serial))
        return None if rid is None else self._records[rid]

    def issue(self, signed: bytes) -> Holding:
        """Add a record we signed (state ISSUED). A product has one live record: a new
        record for it must be the transfer's successor (`complete_transfer`)."""
        record = verify_record(signed, issuer=self.issuer)
        if record.id in self._records:
            raise BadArgument(f"record id {record.id!r} was already issued")
        if (record.model, record.serial) in self._live:
            raise StateError(f"{record.model} {record.serial} already has a live record; transfer or revoke it")
        if record.previous is not None:
            raise BadArgument("a record with `previous` is issued by complete_transfer")
        return self._add(record, signed)

    def _add(self, record: Record, signed: bytes) -> Holding:
        holding = Holding(record, signed)
        self._records[record.id] = holding
        self._live[(record.model, record.serial)] = record.id
        self._by_model.setdefault(record.model, set()).add(record.serial)
        return holding

    def _drop_live(self, record: Record) -> None:
        if self._live.get((record.model, record.serial)) == record.id:
            del self._live[(record.model, record.serial)]
            serials = self._by_model[record.model]
            serials.discard(record.serial)
            if not serials:
                del self._by_model[record.model]

    def activate(self, record_id: str) -> Holding:
        holding = self._holding(record_id)
        holding.step(Event.ACTIVATE)
        return holding

    def _holding(self, record_id: str) -> Holding:
        holding = self._records.get(record_id)
        if holding is None:
            raise LocalError(f"no record {record_id!r}")
        return holding

    def request_transfer(self, msg: Message, *, now: int, max_skew: int = DEFAULT_MAX_SKEW) -> TransferRequest:
        """Check a transfer-request (spec/19 §19.6) and move the record to
        TRANSFER_PENDING. Raises (record unchanged) on any fault."""
        req = parse_transfer_request(msg)
        holding = self._records.get(req.record)
        if holding is None:
            raise UnknownRecord(f"no record {req.record[:40]!r} was issued here")
        if req.frm != holding.record.owner:
            raise WrongOwner("only the record's current owner may transfer it")
        nxt = holding.next_state(Event.REQUEST_TRANSFER, remote=True)
        verify_consent(req.consent, record=holding.record, new_owner=req.new_owner, now=now, max_skew=max_skew)
        holding.state, holding.pending_owner = nxt, req.new_owner
        return req

    def complete_transfer(self, old_id: str, signed: bytes) -> Holding:
        """Issue the successor record (previous = old_id, same product, owner = the
        pending new owner): the old one is SUPERSEDED and its owner gets no more updates."""
        old = self._holding(old_id)
        nxt = old.next_state(Event.COMPLETE_TRANSFER)
        record = verify_record(signed, issuer=self.issuer)
        if record.previous != old_id or (record.model, record.serial) != (old.record.model, old.record.serial):
            raise BadArgument("the successor names the old record as previous, for the same product")
        if record.owner != old.pending_owner:
            raise BadArgument("the successor belongs to the new owner the transfer named")
        if record.id in self._records:
            raise BadArgument(f"record id {record.id!r} was already issued")
        old.state, old.pending_owner = nxt, None
        self._drop_live(old.record)
        return self._add(record, signed)

    def cancel_transfer(self, record_id: str) -> Holding:
        holding = self._holding(record_id)
        holding.step(Event.CANCEL_TRANSFER)
        return holding

    def revoke(self, record_id: str) -> Holding:
        holding = self._holding(record_id)
        holding.step(Event.REVOKE)
        self._drop_live(holding.record)
        return holding

    def owners_of(self, update: Update) -> tuple[str, ...]:
        """The owner DIDs an update goes to: owners of live records it `matches`, each
        once, in serial order."""
        if update.issuer != self.issuer:
            return ()
        serials = self._by_model.get(update.model, ())
        if isinstance(update.serials, frozenset):
            chosen = [s for s in update.serials if s in serials]
        else:
            chosen = [s for s in serials if update.serials is None or s in update.serials]
        owners: dict[str, None] = {}
        for s in sorted(chosen, key=serial_key):
            owners[self._records[self._live[(update.model, s)]].record.owner] = None
        return tuple(owners)


__all__ = ["PROTOCOL", "ROLES", "MESSAGE_TYPES", "Record", "Update", "SerialRange", "Consent", "State", "Event",
           "TRANSITIONS", "LIVE", "Holding", "Registry", "TransferRequest", "matches", "serial_key", "signing_kid",
           "sign_record", "sign_update", "sign_consent", "verify_record", "verify_update", "verify_consent",
           "record_message", "receive_record", "present_message", "verify_presentation", "update_message",
           "receive_update", "transfer_request", "parse_transfer_request", "transfer_complete", "revoke_message",
           "receive_status", "BadRecord", "BadUpdate", "BadConsent", "BadProof", "WrongIssuer", "WrongOwner", "UnknownRecord",
           "IllegalTransition"]
