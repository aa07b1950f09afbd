"""The p2p service endpoint URI: `p2p+tcp://<x25519-multikey>@<host>:<port>`.

The userinfo is the X25519 key the listener at host:port uses as its Noise static key,
as Lightning's `pubkey@host:port` names a node: a dialer that holds the URI can run
Noise IK and knows whom it reached without any lookup (spec/10-connections.md §10.2).

One spelling per endpoint: lowercase scheme and DNS names, no leading zeros in the port,
IPv6 in RFC 5952 form. Parsing is strict because endpoints arrive inside peers' DIDs.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass

from .. import did
from ..errors import InvalidDID, InvalidKey, LocalError
from ..keys import KeyType, PublicKey
from .errors import InvalidEndpoint

SCHEME = "p2p+tcp"
MAX_ENDPOINT_CHARS = 512
MAX_HOST_CHARS = 253

_URI_RE = re.compile(r"p2p\+tcp://([^@/?#\[\]]+)@(\[[0-9a-f:.]+\]|[a-z0-9.-]+):([1-9][0-9]{0,4})")
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed endpoint. `host` is a DNS name, a dotted IPv4 address, or an IPv6
    address *without* brackets; `key` is the listener's X25519 Noise static key."""

    key: PublicKey
    host: str
    port: int

    @property
    def uri(self) -> str:
        return format_endpoint(self.key, self.host, self.port)

    @property
    def key_multibase(self) -> str:
        return did.multikey(self.key)


def _host(host: str) -> str:
    """Check a host as written in the URI; return it without IPv6 brackets."""
    if host.startswith("["):
        inner = host[1:-1]
        try:
            address = ipaddress.IPv6Address(inner)
        except ValueError:
            raise InvalidEndpoint(f"{inner!r} is not an IPv6 address") from None
        if address.compressed != inner:
            raise InvalidEndpoint(f"IPv6 address must be written in RFC 5952 form: {address.compressed}")
        return inner
    if len(host) > MAX_HOST_CHARS:
        raise InvalidEndpoint(f"host name longer than {MAX_HOST_CHARS} characters")
    labels = host.split(".")
    if labels[-1].isdigit():
        # All-numeric last label: only a dotted-quad IPv4 address is allowed, so that
        # "1.2.3" or "010.0.0.1" never means different hosts to different parsers.
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise InvalidEndpoint(f"{host!r} is neither an IPv4 address nor a DNS name") from None
        return host
    for label in labels:
        if not _LABEL_RE.fullmatch(label):
            raise InvalidEndpoint(f"{host[:80]!r} is not a lowercase DNS name (bad label {label[:63]!r})")
    return host


def parse_endpoint(uri: str) -> Endpoint:
    """Parse and check a p2p+tcp URI; InvalidEndpoint on any fault."""
    if type(uri) is not str:
        raise InvalidEndpoint("an endpoint is text")
    if len(uri) > MAX_ENDPOINT_CHARS:
        raise InvalidEndpoint(f"endpoint is {len(uri)} characters; the limit is {MAX_ENDPOINT_CHARS}")
    m = _URI_RE.fullmatch(uri)
    if m is None:
        if not uri.startswith(SCHEME + "://"):
            raise InvalidEndpoint(f"endpoint scheme must be {SCHEME}://")
        raise InvalidEndpoint(f"not of the form {SCHEME}://<x25519-multikey>@<host>:<port>")
    userinfo, host, port = m.groups()
    try:
        key = did.parse_multikey(userinfo)
    except (InvalidDID, InvalidKey) as exc:
        raise InvalidEndpoint(f"userinfo is not a multikey: {exc.detail}") from None
    if key.key_type is not KeyType.X25519:
        raise InvalidEndpoint("the endpoint key must be the listener's X25519 (Noise static) key")
    if int(port) > 65535:
        raise InvalidEndpoint(f"port {port} out of range 1..65535")
    return Endpoint(key, _host(host), int(port))


def format_endpoint(key: PublicKey, host: str, port: int) -> str:
    """The URI for a listener; LocalError if the parts would not parse back."""
    if not isinstance(key, PublicKey) or key.key_type is not KeyType.X25519:
        raise LocalError("an endpoint key is an X25519 PublicKey")
    if type(port) is not int or not 1 <= port <= 65535:
        raise LocalError("port must be 1..65535")
    if type(host) is not str or not host:
        raise LocalError("host must be non-empty text")
    written = host
    if ":" in host:
        try:
            written = "[" + ipaddress.IPv6Address(host).compressed + "]"
        except ValueError:
            raise LocalError(f"{host!r} is not an IPv6 address") from None
    else:
        written = host.lower()
    uri = f"{SCHEME}://{did.multikey(key)}@{written}:{port}"
    try:
        parse_endpoint(uri)
    except InvalidEndpoint as exc:
        raise LocalError(f"cannot format endpoint: {exc.detail}") from None
    return uri


def service_endpoint(did_string: str) -> Endpoint | None:
    """The p2p+tcp endpoint of a did:peer:2's first DIDCommMessaging service, or None
    if it has none. A DIDCommMessaging service whose URI is not p2p+tcp is skipped (the
    DID may list other transports); a malformed p2p+tcp URI is InvalidEndpoint."""
    for text in did.parse_peer2(did_string).services:
        service = json.loads(text)
        stype = service.get("type")
        if stype != "DIDCommMessaging" and not (isinstance(stype, list) and "DIDCommMessaging" in stype):
            continue
        for uri in _uris(service.get("serviceEndpoint")):
            if isinstance(uri, str) and uri.startswith(SCHEME + ":"):
                return parse_endpoint(uri)
    return None


def _uris(endpoint: object) -> list:
    # serviceEndpoint: a URI, a {uri, accept, routingKeys} object, or a list of those.
    items = endpoint if isinstance(endpoint, list) else [endpoint]
    return [item.get("uri") if isinstance(item, dict) else item for item in items]
