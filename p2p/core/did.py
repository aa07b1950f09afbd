"""DIDs p2p speaks: did:key (one public key) and did:peer:2 (keys + a service).

Both are self-certifying and resolve without any network: the DID *is* the document,
compressed. Parsing is strict (one accepted spelling per key, bounded sizes, every
fault an InvalidDID or InvalidKey with a detail saying what was wrong), because DIDs
arrive from peers inside messages. Normative text: spec/02-identifiers.md.

Parsing results are cached: the same handful of DIDs and kids shows up on every
message of a relationship, and checking an Ed25519 point costs as much as a signature
verification.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import base58

from .errors import InvalidDID, InvalidKey, LocalError
from .keys import AgentKeys, KeyType, PublicKey, check_public_key, ed25519_to_x25519

MAX_DID_LENGTH = 4096
MAX_FRAGMENT_LENGTH = 128
MAX_PEER2_KEYS = 16
MAX_PEER2_SERVICES = 8
MAX_SERVICE_DEPTH = 8  # JSON nesting inside one decoded service, counting the service object

DID_CONTEXT = "https://www.w3.org/ns/did/v1"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
ED25519_2020_CONTEXT = "https://w3id.org/security/suites/ed25519-2020/v1"
X25519_2020_CONTEXT = "https://w3id.org/security/suites/x25519-2020/v1"

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_MULTIKEY_RE = re.compile(f"z[{_B58}]+")
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+")
_FRAGMENT_RE = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@/?%-]+")
_PEER_KEY_FRAGMENT_RE = re.compile(r"key-([1-9][0-9]{0,3})")
_PREFIX_TO_TYPE = {kt.multicodec: kt for kt in KeyType}
_MULTIKEY_LENGTH = 48  # 'z' + base58 of 2 + 32 bytes, for both key types


class Purpose(enum.Enum):
    """did:peer:2 purpose codes for keys (the service code S is handled apart)."""

    ASSERTION = "A"
    KEY_AGREEMENT = "E"
    AUTHENTICATION = "V"
    CAPABILITY_INVOCATION = "I"
    CAPABILITY_DELEGATION = "D"

    @property
    def relationship(self) -> str:
        return _RELATIONSHIP[self]

    @property
    def key_type(self) -> KeyType:
        """The only key type p2p accepts for this purpose."""
        return KeyType.X25519 if self is Purpose.KEY_AGREEMENT else KeyType.ED25519


_RELATIONSHIP = {
    Purpose.ASSERTION: "assertionMethod",
    Purpose.KEY_AGREEMENT: "keyAgreement",
    Purpose.AUTHENTICATION: "authentication",
    Purpose.CAPABILITY_INVOCATION: "capabilityInvocation",
    Purpose.CAPABILITY_DELEGATION: "capabilityDelegation",
}
_PURPOSE_CODES = {p.value: p for p in Purpose}


# --- multikey (multibase base58btc of multicodec || key) ------------------


def multikey(key: PublicKey) -> str:
    """'z' + base58btc(multicodec varint || raw key): did:key's method-specific id."""
    return "z" + base58.b58encode(key.key_type.multicodec + key.raw).decode("ascii")


def parse_multikey(value: str) -> PublicKey:
    """Inverse of `multikey`, strict: InvalidDID for the encoding, InvalidKey for the point."""
    if not isinstance(value, str) or not value:
        raise InvalidDID("a multibase key is a non-empty string")
    return _parse_multikey(value)


@functools.lru_cache(maxsize=4096)
def _parse_multikey(value: str) -> PublicKey:
    if value[0] != "z":
        raise InvalidDID(f"multibase prefix must be 'z' (base58btc), got {value[0]!r}")
    if not _MULTIKEY_RE.fullmatch(value):
        raise InvalidDID("multibase key contains characters outside the base58btc alphabet")
    if len(value) > 2 * _MULTIKEY_LENGTH:
        raise InvalidDID(f"multibase key is {len(value)} characters, too long for a 32-byte key")
    data = base58.b58decode(value[1:])
    prefix = data[:2]
    key_type = _PREFIX_TO_TYPE.get(prefix)
    if key_type is None:
        raise InvalidDID(f"unsupported multicodec prefix {data[:2].hex() or 'none'} (want ed01 or ec01)")
    if len(data) != 34:
        raise InvalidDID(f"{key_type.value} key must be 32 bytes, multibase value holds {len(data) - 2}")
    # base58 has exactly one spelling per byte string of fixed length, so no
    # re-encoding check is needed: the prefix is non-zero, so no leading '1's.
    return check_public_key(key_type, data[2:])


# --- did:key ----------------------------------------------------------------


def did_key(key: PublicKey) -> str:
    return "did:key:" + multikey(key)


def parse_did_key(did: str) -> PublicKey:
    _check_did_string(did)
    if not did.startswith("did:key:"):
        raise InvalidDID("not a did:key")
    return parse_multikey(did[8:])


def _did_key_document(did: str, key: PublicKey) -> dict:
    mb = did[8:]
    if key.key_type is KeyType.X25519:
        vm_id = f"{did}#{mb}"
        return {
            "@context": [DID_CONTEXT, X25519_2020_CONTEXT],
            "id": did,
            "verificationMethod": [_vm(vm_id, "X25519KeyAgreementKey2020", did, mb)],
            "keyAgreement": [vm_id],
        }
    sig_id = f"{did}#{mb}"
    x_mb = multikey(PublicKey(KeyType.X25519, ed25519_to_x25519(key.raw)))
    enc_id = f"{did}#{x_mb}"
    return {
        "@context": [DID_CONTEXT, ED25519_2020_CONTEXT, X25519_2020_CONTEXT],
        "id": did,
        "verificationMethod": [
            _vm(sig_id, "Ed25519VerificationKey2020", did, mb),
            _vm(enc_id, "X25519KeyAgreementKey2020", did, x_mb),
        ],
        "authentication": [sig_id],
        "assertionMethod": [sig_id],
        "capabilityInvocation": [sig_id],
        "capabilityDelegation": [sig_id],
        "keyAgreement": [enc_id],
    }


def _vm(vm_id: str, vm_type: str, controller: str, mb: str) -> dict:
    return {"id": vm_id, "type": vm_type, "controller": controller, "publicKeyMultibase": mb}


# --- did:peer:2 -------------------------------------------------------------

_ABBREVIATIONS = {
    "type": "t",
    "DIDCommMessaging": "dm",
    "serviceEndpoint": "s",
    "routingKeys": "r",
    "accept": "a",
}
_EXPANSIONS = {v: k for k, v in _ABBREVIATIONS.items()}


@dataclass(frozen=True, slots=True)
class Peer2:
    """A parsed did:peer:2: keys in order of appearance (`#key-1` first), services."""

    did: str
    keys: tuple[tuple[Purpose, PublicKey], ...]
    services: tuple[str, ...]  # expanded service objects as compact JSON; dicts are mutable

    def key(self, n: int) -> tuple[Purpose, PublicKey]:
        """The key whose verification method id is `#key-n` (1-based)."""
        if not 1 <= n <= len(self.keys):
            raise InvalidDID(f"{self.did[:40]}... has no #key-{n} (it has {len(self.keys)} keys)")
        return self.keys[n - 1]


def _swap(service: Any, table: Mapping[str, str], collide: type[Exception]) -> Any:
    """Rename keys (and every "type"/"t" value) by `table`, recursively, as the spec says."""
    if isinstance(service, list):
        return [_swap(v, table, collide) if isinstance(v, (dict, list)) else v for v in service]
    out: dict = {}
    for k, v in service.items():
        nk = table.get(k, k)
        if nk in out:
            raise collide(f"service has both {k!r} and its other spelling {nk!r}")
        if isinstance(v, (dict, list)):
            v = _swap(v, table, collide)
        out[nk] = v
    for type_key in ("type", "t"):
        tv = out.get(type_key)
        if isinstance(tv, str):
            out[type_key] = table.get(tv, tv)
    return out


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _service_json(service: Any) -> str:
    # Compact JSON, UTF-8, key order as given: the same bytes JavaScript's
    # JSON.stringify produces, which most peer DID implementations use.
    return json.dumps(service, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_service(service: Mapping[str, Any]) -> str:
    """The `.S` element body for one service: base64url(compact abbreviated JSON)."""
    if not isinstance(service, Mapping):
        raise LocalError("a did:peer:2 service must be a JSON object")
    expanded = _swap(dict(service), _EXPANSIONS, LocalError)  # so "t" and "type" cannot both slip in
    _check_service(expanded, LocalError)
    try:
        raw = _service_json(_swap(expanded, _ABBREVIATIONS, LocalError)).encode("utf-8")
    except (TypeError, ValueError) as exc:  # non-JSON values, NaN, lone surrogates
        raise LocalError(f"service is not plain JSON: {exc}") from None
    return _b64url(raw)


def peer2(keys: Sequence[tuple[Purpose, PublicKey]], services: Iterable[Mapping[str, Any]] = ()) -> str:
    """Build a did:peer:2 from (purpose, key) pairs, in order, then the services, in order."""
    if not keys:
        raise LocalError("a did:peer:2 needs at least one key")
    parts = ["did:peer:2"]
    for purpose, key in keys:
        if not isinstance(purpose, Purpose):
            raise LocalError(f"purpose must be a Purpose, got {purpose!r}")
        if key.key_type is not purpose.key_type:
            raise InvalidKey(f"purpose {purpose.value} takes an {purpose.key_type.value} key, not {key.key_type.value}")
        check_public_key(key.key_type, key.raw)
        parts.append("." + purpose.value + multikey(key))
    for service in services:
        parts.append(".S" + encode_service(service))
    did = "".join(parts)
    if len(keys) > MAX_PEER2_KEYS or len(parts) - 1 - len(keys) > MAX_PEER2_SERVICES:
        raise LocalError(f"at most {MAX_PEER2_KEYS} keys and {MAX_PEER2_SERVICES} services")
    if len(did) > MAX_DID_LENGTH:
        raise LocalError(f"did:peer:2 would be {len(did)} characters; the limit is {MAX_DID_LENGTH}")
    return did


def agent_did(keys: AgentKeys, service: Mapping[str, Any] | None = None) -> str:
    """An agent's did:peer:2: V = its Ed25519 key (#key-1), E = its X25519 key (#key-2)."""
    pairs = [
        (Purpose.AUTHENTICATION, keys.signing.public_key),
        (Purpose.KEY_AGREEMENT, keys.agreement.public_key),
    ]
    return peer2(pairs, [service] if service is not None else [])


def didcomm_service(endpoint: str | Mapping[str, Any]) -> dict:
    """A DIDCommMessaging service for `endpoint` (a URI such as tcp://host:port, or the
    {uri, accept, routingKeys} object form)."""
    return {"type": "DIDCommMessaging", "serviceEndpoint": endpoint if isinstance(endpoint, str) else dict(endpoint)}


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _check_service(service: dict, fault: type[Exception]) -> None:
    """The DID Core shape p2p insists on, after expansion."""
    if _depth(service) > MAX_SERVICE_DEPTH:
        raise fault(f"service nests deeper than {MAX_SERVICE_DEPTH} levels")
    stype = service.get("type")
    if not (isinstance(stype, str) and stype) and not (
        isinstance(stype, list) and stype and all(isinstance(t, str) and t for t in stype)
    ):
        raise fault("service needs a type: a non-empty string or list of strings")
    endpoint = service.get("serviceEndpoint")
    if isinstance(endpoint, list):
        ok = bool(endpoint) and all(isinstance(e, (str, dict)) for e in endpoint)
    else:
        ok = isinstance(endpoint, (str, dict))
    if not ok:
        raise fault("service needs a serviceEndpoint: a string, an object, or a list of those")
    if "id" in service and not (isinstance(service["id"], str) and service["id"].startswith("#")):
        raise fault("a did:peer:2 service id must be a relative reference starting with '#'")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate member name in service JSON")
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode_service(body: str, index: int) -> str:
    where = f"service element {index}"
    if not _B64URL_RE.fullmatch(body):
        raise InvalidDID(f"{where}: not unpadded base64url (only A-Z a-z 0-9 - _ allowed)")
    if len(body) % 4 == 1:
        raise InvalidDID(f"{where}: base64url length {len(body)} is impossible")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - the checks above rule it out
        raise InvalidDID(f"{where}: bad base64url") from None
    if _b64url(raw) != body:
        raise InvalidDID(f"{where}: base64url has non-zero padding bits")
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise InvalidDID(f"{where}: not UTF-8") from None
    except RecursionError:
        raise InvalidDID(f"{where}: JSON nests too deep") from None
    except ValueError as exc:
        raise InvalidDID(f"{where}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InvalidDID(f"{where}: JSON must be an object")
    expanded = _swap(value, _EXPANSIONS, InvalidDID)
    _check_service(expanded, InvalidDID)
    return _service_json(expanded)


def parse_peer2(did: str) -> Peer2:
    _check_did_string(did)
    return _parse_peer2(did)


@functools.lru_cache(maxsize=1024)
def _parse_peer2(did: str) -> Peer2:
    if not did.startswith("did:peer:2"):
        raise InvalidDID("not a did:peer:2")
    rest = did[10:]
    if not rest.startswith("."):
        raise InvalidDID("did:peer:2 must continue with '.' and an element")
    keys: list[tuple[Purpose, PublicKey]] = []
    services: list[str] = []
    for index, element in enumerate(rest[1:].split("."), start=1):
        if not element:
            raise InvalidDID(f"element {index} is empty")
        code, body = element[0], element[1:]
        if code == "S":
            if len(services) == MAX_PEER2_SERVICES:
                raise InvalidDID(f"more than {MAX_PEER2_SERVICES} services")
            services.append(_decode_service(body, index))
            continue
        purpose = _PURPOSE_CODES.get(code)
        if purpose is None:
            raise InvalidDID(f"element {index}: unknown purpose code {code!r} (want A, E, V, I, D or S)")
        if len(keys) == MAX_PEER2_KEYS:
            raise InvalidDID(f"more than {MAX_PEER2_KEYS} keys")
        key = parse_multikey(body)
        if key.key_type is not purpose.key_type:
            raise InvalidKey(
                f"element {index}: purpose {code} takes an {purpose.key_type.value} key, not {key.key_type.value}"
            )
        keys.append((purpose, key))
    if not keys:
        raise InvalidDID("did:peer:2 has no keys")
    return Peer2(did, tuple(keys), tuple(services))


def peer3(did: str) -> str:
    """The did:peer:3 short form of a did:peer:2 (its document's alsoKnownAs)."""
    digest = hashlib.sha256(did[10:].encode("ascii")).digest()
    return "did:peer:3z" + base58.b58encode(b"\x12\x20" + digest).decode("ascii")


def _peer2_document(p: Peer2) -> dict:
    did = p.did
    doc: dict = {
        "@context": [DID_CONTEXT, MULTIKEY_CONTEXT],
        "id": did,
        "alsoKnownAs": [peer3(did)],
        "verificationMethod": [],
    }
    for n, (purpose, key) in enumerate(p.keys, start=1):
        vm_id = f"#key-{n}"
        doc["verificationMethod"].append(_vm(vm_id, "Multikey", did, multikey(key)))
        doc.setdefault(purpose.relationship, []).append(vm_id)
    unnamed = 0
    for text in p.services:
        service = json.loads(text)
        if "id" not in service:
            service["id"] = "#service" if unnamed == 0 else f"#service-{unnamed}"
            unnamed += 1
        doc.setdefault("service", []).append(service)
    return doc


# --- any DID ---------------------------------------------------------------


def _check_did_string(did: Any) -> None:
    if not isinstance(did, str):
        raise InvalidDID(f"a DID is a string, got {type(did).__name__}")
    if len(did) > MAX_DID_LENGTH:
        raise InvalidDID(f"DID is {len(did)} characters; the limit is {MAX_DID_LENGTH}")
    if not did.startswith("did:"):
        raise InvalidDID("not a DID (must start with 'did:')")


def _method(did: str) -> str:
    _check_did_string(did)
    if did.startswith("did:key:"):
        return "key"
    if did.startswith("did:peer:2"):
        return "peer2"
    raise InvalidDID(f"unsupported DID method in {did[:24]!r} (p2p resolves did:key and did:peer:2)")


def resolve(did: str) -> dict:
    """The DID document, as the method's spec defines it (a fresh dict each call)."""
    if _method(did) == "key":
        return _did_key_document(did, parse_did_key(did))
    return _peer2_document(parse_peer2(did))


def check_did(did: str) -> str:
    """Parse `did` fully (raising InvalidDID/InvalidKey) and return it."""
    if _method(did) == "key":
        parse_did_key(did)
    else:
        parse_peer2(did)
    return did


# --- DID URLs and kids -----------------------------------------------------


def split_did_url(did_url: str) -> tuple[str, str | None]:
    """'did...#frag' -> ('did...', 'frag'); no '#' -> (did, None). Paths and queries
    are not part of p2p's kids and are refused."""
    if not isinstance(did_url, str):
        raise InvalidDID(f"a DID URL is a string, got {type(did_url).__name__}")
    did, sep, fragment = did_url.partition("#")
    _check_did_string(did)
    if "?" in did or "/" in did:
        raise InvalidDID("DID URLs with a path or query are not used in p2p")
    if not sep:
        return did, None
    if not fragment or len(fragment) > MAX_FRAGMENT_LENGTH or not _FRAGMENT_RE.fullmatch(fragment):
        raise InvalidDID(f"bad DID URL fragment (1..{MAX_FRAGMENT_LENGTH} URI fragment characters)")
    return did, fragment


def kid(did: str, key: PublicKey) -> str:
    """The DID URL naming `key` within `did`: what COSE headers carry as kid."""
    if _method(did) == "key":
        own = parse_did_key(did)
        if key == own:
            return f"{did}#{did[8:]}"
        if own.key_type is KeyType.ED25519 and key == PublicKey(KeyType.X25519, ed25519_to_x25519(own.raw)):
            return f"{did}#{multikey(key)}"
        raise LocalError("key is not part of this did:key")
    for n, (_purpose, k) in enumerate(parse_peer2(did).keys, start=1):
        if k == key:
            return f"{did}#key-{n}"
    raise LocalError("key is not part of this did:peer:2")


def resolve_key(did_url: str, expect: KeyType | None = None) -> PublicKey:
    """The public key a kid names. With `expect`, a key of another type is InvalidKey
    (e.g. a signature kid that names an X25519 key)."""
    if not isinstance(did_url, str):
        raise InvalidDID(f"a DID URL is a string, got {type(did_url).__name__}")
    key = _resolve_key(did_url)
    if expect is not None and key.key_type is not expect:
        raise InvalidKey(f"{did_url[-24:]!r} names an {key.key_type.value} key; {expect.value} needed")
    return key


@functools.lru_cache(maxsize=1024)
def _resolve_key(did_url: str) -> PublicKey:
    did, fragment = split_did_url(did_url)
    if fragment is None:
        raise InvalidDID("a kid needs a '#' fragment naming the key")
    if _method(did) == "key":
        own = parse_did_key(did)
        if fragment == did[8:]:
            return own
        if own.key_type is KeyType.ED25519:
            derived = PublicKey(KeyType.X25519, ed25519_to_x25519(own.raw))
            if fragment == multikey(derived):
                return derived
        raise InvalidDID("fragment names no key of this did:key")
    m = _PEER_KEY_FRAGMENT_RE.fullmatch(fragment)
    if m is None:
        raise InvalidDID("a did:peer:2 key fragment is 'key-N' with N from 1")
    return parse_peer2(did).key(int(m.group(1)))[1]
