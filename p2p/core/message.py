"""The plaintext message: DIDComm v2's message model as a CBOR map.

Field names and meanings are DIDComm v2.1's (id, type, from, to, thid, pthid,
created_time, expires_time, body, attachments); the encoding is a CBOR map in core
deterministic form (spec/03-messages.md). Times are integer seconds since the Unix
epoch, as in DIDComm. What DIDComm leaves open and p2p fixes: size limits, a `crit`
list naming extension fields a receiver must understand, and CBOR-native attachment
data (a byte string instead of base64).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import cbor
from .errors import (
    ClockSkew,
    InvalidField,
    InvalidMessage,
    LocalError,
    MessageExpired,
    MissingField,
    UnknownCriticalField,
)

# Limits (spec/03-messages.md section "Limits").
MAX_MESSAGE_BYTES = 262_144
MAX_ID_CHARS = 128
MAX_TYPE_CHARS = 256
MAX_DID_CHARS = 4096
MAX_RECIPIENTS = 16
MAX_ATTACHMENTS = 32
MAX_CRIT = 16
DEFAULT_MAX_SKEW = 300  # seconds a sender's clock may run ahead of ours

# DIDComm message type URI: <doc-uri>/<protocol-name>/<major>.<minor>/<message-name>
# Used with fullmatch only: `$` also matches before a trailing "\n", so `match` with
# `^...$` would accept "abc\n" as an id.
_TYPE_RE = re.compile(r"[a-z][a-z0-9+.-]*:[^\s]*?/([a-z0-9._-]+)/(\d+)\.(\d+)/([a-z0-9._-]+)", re.I)
_ID_RE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces

KNOWN_FIELDS = frozenset(
    {"id", "type", "from", "to", "thid", "pthid", "created_time", "expires_time", "body",
     "attachments", "crit", "please_ack", "ack"}
)
_ATTACHMENT_FIELDS = frozenset(
    {"id", "description", "filename", "media_type", "format", "lastmod_time", "byte_count", "data"}
)


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment. `data` holds exactly one of: inline `bytes`, `links` with a
    `hash` (BLAKE2b-256 of the content, so a link cannot swap it), or `cbor` (an
    embedded value)."""

    id: str
    data: dict
    media_type: str | None = None
    filename: str | None = None
    description: str | None = None
    format: str | None = None
    lastmod_time: int | None = None
    byte_count: int | None = None

    def to_map(self) -> dict:
        out: dict[str, Any] = {"id": self.id, "data": self.data}
        for name in ("media_type", "filename", "description", "format", "lastmod_time", "byte_count"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    type: str
    body: dict = field(default_factory=dict)
    frm: str | None = None  # "from" on the wire; a Python keyword here
    to: tuple[str, ...] | None = None
    thid: str | None = None
    pthid: str | None = None
    created_time: int | None = None
    expires_time: int | None = None
    attachments: tuple[Attachment, ...] = ()
    please_ack: tuple[str, ...] | None = None
    ack: tuple[str, ...] | None = None
    extensions: dict = field(default_factory=dict)  # unknown fields, kept as received
    crit: tuple[str, ...] = ()

    @property
    def thread_id(self) -> str:
        """A message with no thid starts its own thread (DIDComm v2 section 'Threads')."""
        return self.thid or self.id

    def to_map(self) -> dict:
        out: dict[str, Any] = dict(self.extensions)
        out["id"] = self.id
        out["type"] = self.type
        out["body"] = self.body
        if self.frm is not None:
            out["from"] = self.frm
        if self.to is not None:
            out["to"] = list(self.to)
        for name in ("thid", "pthid", "created_time", "expires_time"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.attachments:
            out["attachments"] = [a.to_map() for a in self.attachments]
        if self.please_ack is not None:
            out["please_ack"] = list(self.please_ack)
        if self.ack is not None:
            out["ack"] = list(self.ack)
        if self.crit:
            out["crit"] = list(self.crit)
        return out


def encode(message: Message, *, understood: frozenset[str] = frozenset()) -> bytes:
    """Validate `message` as a receiver would, then encode it deterministically.

    A message we would reject on receipt is our caller's bug, so it raises LocalError.
    `understood` names extension fields the sender implements, so they may stand in
    `crit` (as decode's argument of the same name).
    """
    if _plainly_valid(message):
        # The map to_map() builds (a tuple encodes as the same CBOR array as a list),
        # inserted in deterministic key order (shorter first, then bytewise: id, to,
        # ack, body, from, thid, type, pthid, please_ack, created_time, expires_time)
        # so that cbor.dumps finds it in order and encodes it without sorting a copy.
        to, ack, frm, thid, pthid = message.to, message.ack, message.frm, message.thid, message.pthid
        wire: dict[str, Any] = {"id": message.id}
        if to is not None:
            wire["to"] = to
        if ack is not None:
            wire["ack"] = ack
        wire["body"] = message.body
        if frm is not None:
            wire["from"] = frm
        if thid is not None:
            wire["thid"] = thid
        wire["type"] = message.type
        if pthid is not None:
            wire["pthid"] = pthid
        if message.please_ack is not None:
            wire["please_ack"] = message.please_ack
        if message.created_time is not None:
            wire["created_time"] = message.created_time
        if message.expires_time is not None:
            wire["expires_time"] = message.expires_time
    else:
        wire = message.to_map()
        try:
            parse_map(wire, understood=understood)
        except InvalidMessage as exc:
            raise LocalError(f"refusing to encode an invalid message: {exc.code}: {exc.detail}") from None
    data = cbor.dumps(wire)
    if len(data) > MAX_MESSAGE_BYTES:
        raise LocalError(f"message is {len(data)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    return data


def _plainly_valid(message: Message) -> bool:
    """True only if parse_map(message.to_map()) would accept `message`: the common
    case (no extensions, crit or attachments) checked on the fields directly, rather
    than by building the wire map and a Message from it on every encode. False means
    "not sure": encode then takes the full to_map + parse_map path, which also
    produces the precise error."""
    if message.extensions or message.crit or message.attachments:
        return False
    if not (_is_id(message.id) and _is_type(message.type) and type(message.body) is dict):
        return False
    frm, to = message.frm, message.to
    if frm is not None and not _is_did(frm):
        return False
    if to is not None:
        if type(to) is not tuple and type(to) is not list or not 0 < len(to) <= MAX_RECIPIENTS:
            return False
        for did in to:
            if not _is_did(did):
                return False
    if message.thid is not None and not _is_id(message.thid):
        return False
    if message.pthid is not None and not _is_id(message.pthid):
        return False
    created, expires = message.created_time, message.expires_time
    if created is not None and (type(created) is not int or not 0 <= created < 2**63):
        return False
    if expires is not None:
        if type(expires) is not int or not 0 <= expires < 2**63 or (created is not None and expires < created):
            return False
    for value, limit, least in ((message.please_ack, 4, 0), (message.ack, 64, 1)):
        if value is not None:
            if type(value) is not tuple and type(value) is not list or len(value) > limit:
                return False
            for item in value:
                if type(item) is not str or not least <= len(item) <= MAX_TYPE_CHARS:
                    return False
    return True


def decode(data: bytes, *, now: int | None = None, max_skew: int = DEFAULT_MAX_SKEW,
           understood: frozenset[str] = frozenset()) -> Message:
    """Parse and validate a plaintext message.

    With `now`, also check time: expired -> MessageExpired, created more than
    `max_skew` seconds in the future -> ClockSkew. `understood` names extension
    fields the caller handles, so they may appear in `crit`.
    """
    message = parse_map(cbor.loads(data, max_size=MAX_MESSAGE_BYTES), understood=understood)
    if now is not None:
        check_time(message, now=now, max_skew=max_skew)
    return message


def check_time(message: Message, *, now: int, max_skew: int = DEFAULT_MAX_SKEW) -> None:
    if message.expires_time is not None and message.expires_time <= now:
        raise MessageExpired(f"expired at {message.expires_time}, now is {now}")
    if message.created_time is not None and message.created_time > now + max_skew:
        raise ClockSkew(
            f"created_time {message.created_time} is {message.created_time - now}s ahead; at most {max_skew}s allowed"
        )


# --- field checks -----------------------------------------------------------


def _text(m: dict, name: str, *, required: bool = False, limit: int, pattern: re.Pattern | None = None) -> str | None:
    if name not in m:
        if required:
            raise MissingField(name)
        return None
    value = m[name]
    if type(value) is not str:
        raise InvalidField(f"{name}: expected text, got {_kind(value)}")
    if not value or len(value) > limit:
        raise InvalidField(f"{name}: length {len(value)} outside 1..{limit}")
    if pattern is not None and not pattern.fullmatch(value):
        raise InvalidField(f"{name}: {value[:80]!r} is not well formed")
    return value


def _did(m: dict, name: str, value: Any) -> str:
    if type(value) is not str:
        raise InvalidField(f"{name}: expected a DID as text, got {_kind(value)}")
    if not value.startswith("did:") or len(value) > MAX_DID_CHARS or value.count(":") < 2:
        raise InvalidField(f"{name}: {value[:80]!r} is not a DID")
    return value


def _time(m: dict, name: str) -> int | None:
    if name not in m:
        return None
    value = m[name]
    if type(value) is not int or value < 0 or value >= 2**63:
        raise InvalidField(f"{name}: expected seconds since the epoch as an unsigned integer")
    return value


def _text_list(m: dict, name: str, limit: int, *, empty_ok: bool = False) -> tuple[str, ...] | None:
    if name not in m:
        return None
    value = m[name]
    if type(value) is not list or len(value) > limit:
        raise InvalidField(f"{name}: expected a list of at most {limit} text strings")
    least = 0 if empty_ok else 1
    for item in value:
        if type(item) is not str or not least <= len(item) <= MAX_TYPE_CHARS:
            what = "text" if empty_ok else "non-empty text"
            raise InvalidField(f"{name}: every entry must be {what} of at most {MAX_TYPE_CHARS} characters")
    return tuple(value)


# Predicates for the fast paths (encode's _plainly_valid, parse_map's common fields):
# each is exactly the acceptance condition of the checker named beside it, which
# still runs whenever a predicate says no, to raise the precise error.


def _is_id(value: Any) -> bool:  # _text(..., limit=MAX_ID_CHARS, pattern=_ID_RE)
    return type(value) is str and 0 < len(value) <= MAX_ID_CHARS and _ID_RE.fullmatch(value) is not None


# Message type URIs that matched _TYPE_RE. A conversation uses a handful of types, and
# this regex (lazy quantifier, four groups) costs more than the rest of a decode's
# field checks together; bounded, cleared when full.
_valid_types: dict[str, None] = {}
_VALID_TYPES_MAX = 1024


def _is_type(value: Any) -> bool:  # _text(..., limit=MAX_TYPE_CHARS, pattern=_TYPE_RE)
    if type(value) is not str:
        return False
    if value in _valid_types:
        return True
    if not 0 < len(value) <= MAX_TYPE_CHARS or not _TYPE_RE.fullmatch(value):
        return False
    if len(_valid_types) >= _VALID_TYPES_MAX:
        _valid_types.clear()
    _valid_types[value] = None
    return True


def _is_did(value: Any) -> bool:  # _did
    return (type(value) is str and value.startswith("did:") and len(value) <= MAX_DID_CHARS
            and value.count(":") >= 2)


def _kind(value: Any) -> str:
    return {bytes: "bytes", str: "text", int: "integer", list: "array", dict: "map",
            bool: "boolean", type(None): "null"}.get(type(value), type(value).__name__)


def _attachment(index: int, a: Any) -> Attachment:
    where = f"attachments[{index}]"
    if type(a) is not dict:
        raise InvalidField(f"{where}: expected a map")
    unknown = [k for k in a if k not in _ATTACHMENT_FIELDS]
    if unknown:
        raise InvalidField(f"{where}: unknown field {unknown[0]!r}")
    aid = _text(a, "id", required=True, limit=MAX_ID_CHARS, pattern=_ID_RE)
    data = a.get("data")
    if type(data) is not dict:
        raise (MissingField if data is None else InvalidField)(f"{where}.data")
    forms = [k for k in ("bytes", "links", "cbor") if k in data]
    if len(forms) != 1 or any(k not in ("bytes", "links", "cbor", "hash") for k in data):
        raise InvalidField(f"{where}.data: exactly one of bytes, links, cbor (with an optional hash)")
    if "bytes" in data and type(data["bytes"]) is not bytes:
        raise InvalidField(f"{where}.data.bytes: expected a byte string")
    if "links" in data:
        links = data["links"]
        if type(links) is not list or not links or not all(type(x) is str and x for x in links):
            raise InvalidField(f"{where}.data.links: expected a non-empty list of URLs")
        if "hash" not in data:
            raise MissingField(f"{where}.data.hash: required with links")
    if "hash" in data and (type(data["hash"]) is not bytes or len(data["hash"]) != 32):
        raise InvalidField(f"{where}.data.hash: expected 32 bytes (BLAKE2b-256)")
    kwargs = {}
    for name in ("media_type", "filename", "description", "format"):
        kwargs[name] = _text(a, name, limit=MAX_TYPE_CHARS if name != "description" else 4096)
    for name in ("lastmod_time", "byte_count"):
        kwargs[name] = _time(a, name)
    return Attachment(id=aid, data=data, **kwargs)


def parse_map(m: Any, *, understood: frozenset[str] = frozenset()) -> Message:
    """Validate a decoded CBOR value as a message; raises an InvalidMessage subclass."""
    if type(m) is not dict:
        raise InvalidMessage(f"a message is a CBOR map, got {_kind(m)}")
    for key in m:
        if type(key) is not str:
            raise InvalidField(f"message field names are text, got {_kind(key)}")
    crit = (_text_list(m, "crit", MAX_CRIT) or ()) if "crit" in m else ()
    for name in crit:
        if name not in KNOWN_FIELDS and name not in understood:
            raise UnknownCriticalField(name)
        if name not in m:
            raise InvalidField(f"crit names {name!r}, which is absent")
    # Common fields: a cheap acceptance test first; the checker raises the error.
    mid = m.get("id")
    if not _is_id(mid):
        mid = _text(m, "id", required=True, limit=MAX_ID_CHARS, pattern=_ID_RE)
    mtype = m.get("type")
    if not _is_type(mtype):
        mtype = _text(m, "type", required=True, limit=MAX_TYPE_CHARS, pattern=_TYPE_RE)
    if "body" not in m:
        raise MissingField("body")
    body = m["body"]
    if type(body) is not dict:
        raise InvalidField(f"body: expected a map, got {_kind(body)}")
    frm = None
    if "from" in m:
        frm = m["from"]
        if not _is_did(frm):
            _did(m, "from", frm)
    to = None
    if "to" in m:
        to = m["to"]
        if type(to) is not list or not to or len(to) > MAX_RECIPIENTS:
            raise InvalidField(f"to: expected a list of 1..{MAX_RECIPIENTS} DIDs")
        for did in to:
            if not _is_did(did):
                _did(m, "to", did)
        to = tuple(to)
    thid = m.get("thid")
    if not _is_id(thid):
        thid = _text(m, "thid", limit=MAX_ID_CHARS, pattern=_ID_RE)
    pthid = m.get("pthid")
    if not _is_id(pthid):
        pthid = _text(m, "pthid", limit=MAX_ID_CHARS, pattern=_ID_RE)
    created = _time(m, "created_time")
    expires = _time(m, "expires_time")
    if created is not None and expires is not None and expires < created:
        raise InvalidField("expires_time is before created_time")
    attachments: tuple[Attachment, ...] = ()
    if "attachments" in m:
        raw = m["attachments"]
        if type(raw) is not list or len(raw) > MAX_ATTACHMENTS:
            raise InvalidField(f"attachments: expected a list of at most {MAX_ATTACHMENTS}")
        attachments = tuple(_attachment(i, a) for i, a in enumerate(raw))
        ids = [a.id for a in attachments]
        if len(set(ids)) != len(ids):
            raise InvalidField("attachments: ids must be unique within a message")
    please_ack = _text_list(m, "please_ack", 4, empty_ok=True)  # DIDComm: "" means this message
    ack = _text_list(m, "ack", 64)
    # issuperset runs in C; the comprehension only when there are extensions.
    extensions = {} if KNOWN_FIELDS.issuperset(m) else {k: v for k, v in m.items() if k not in KNOWN_FIELDS}
    return Message(mid, mtype, body, frm, to, thid, pthid, created, expires, attachments, please_ack, ack,
                   extensions, tuple(crit))


def piuri(message_type: str) -> tuple[str, str, int, int, str]:
    """Split a message type URI into (doc-uri, protocol, major, minor, message name)."""
    match = _TYPE_RE.fullmatch(message_type)
    if not match:
        raise InvalidField(f"type: {message_type[:80]!r} is not a message type URI")
    protocol, major, minor, name = match.groups()
    doc = message_type[: match.start(1)].rstrip("/")
    return doc, protocol, int(major), int(minor), name
