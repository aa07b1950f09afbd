"""LAN discovery: a business's daemon advertises its multi-use invitation over DNS-SD
(mDNS, service type `_p2p._tcp`), and a customer's daemon lists the agents nearby.

Discovery only *finds* invitations; it never vouches for them. Everything a browser
shows comes from the signed invitation carried whole in the TXT record and verified
with `invitation.parse_url` (signature, sender, expiry), never from the unauthenticated
DNS-SD names and TXT text around it. Connecting then goes through the invitation's
endpoint and the connect/1.0 handshake as for a printed QR code, so a spoofed
advertisement can at most show *another* agent under a copied label, with a different
fingerprint, or be dropped. spec/15-discovery.md is the normative text.

Two halves, as elsewhere in p2p:

* a pure part, with `now` passed in: `txt_record(invitation)` builds the TXT rdata,
  `verify(rdata, now=...)` checks one advertisement and returns a `Nearby` or raises a
  RemoteError (its `code` is the reason shown in the debug list);
* the I/O shell on trio: `advertise(...)` (a daemon service with `task_status`) and
  `scan(...)` / `browse(...)`.

python-zeroconf is blocking and runs its own asyncio loop in its own thread. We use its
sync `Zeroconf` class, created and called only in worker threads
(`trio.to_thread.run_sync`), so the trio loop never waits on a socket or a sleep of
zeroconf's. Browse callbacks arrive on zeroconf's browser thread; they hand each event
to trio with `TrioToken.run_sync_soon`, which never blocks that thread, into a bounded
memory channel.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import math
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import trio
from zeroconf import (DNSQuestionType, InterfaceChoice, IPVersion, ServiceBrowser, ServiceInfo, Zeroconf,
                      get_all_addresses, get_all_addresses_v6)

from p2p.core.errors import LocalError, RemoteError, TooLarge
from p2p.core.protocols import invitation as inv_mod
from p2p.core.protocols.invitation import Invitation

log = logging.getLogger("p2p.discovery")

SERVICE_TYPE = "_p2p._tcp.local."
TXT_VERSION = b"1"
CHUNK_BYTES = 240  # invitation characters per `inv<i>` string
MAX_CHUNKS = math.ceil(inv_mod.MAX_URL_CHARS / CHUNK_BYTES)  # 18: inv0 .. inv17
MAX_TXT_STRING = 255  # RFC 6763 §6.1: one length octet per string
MAX_TXT_LABEL_BYTES = MAX_TXT_STRING - len(b"label=")  # 249
MAX_TXT_BYTES = 5120  # a whole TXT rdata; the largest valid one is 4 498 bytes (spec/15 §15.3)
MAX_INSTANCE_BYTES = 63  # RFC 6763 §4.1.1
FINGERPRINT_BYTES = 10  # 80 bits of SHA-256, 16 base32 characters
MAX_SERVICES = 64  # distinct instances resolved per scan; more is a flood
MAX_EVENTS = 256  # browse events queued towards trio before we drop
RESOLVE_TIMEOUT = 3.0  # seconds for one instance's SRV/TXT/A
RESOLVE_GRACE = 1.0  # after the browse window, in-flight resolutions get this long
DEFAULT_BROWSE_SECONDS = 3.0

# A round chunk size that leaves room for the longest key ("inv17=") in one
# 255-byte TXT string.
assert len(f"inv{MAX_CHUNKS - 1}=") + CHUNK_BYTES <= MAX_TXT_STRING


# --- errors (reasons in the debug list of rejected advertisements) -------------------


class InvalidAdvertisement(RemoteError):
    """A TXT record that is not a p2p advertisement: a required key missing, chunks
    out of order or of the wrong size, a one-time invitation."""

    code = "invalid-advertisement"


class UnsupportedAdvertisement(RemoteError):
    """`txtvers` names a version of the TXT layout we do not know."""

    code = "unsupported-advertisement"


class AdvertisementMismatch(RemoteError):
    """The TXT `fp` is not the fingerprint of the key that signed the invitation: the
    advertisement claims one agent and carries another's invitation."""

    code = "advertisement-mismatch"


TOO_MANY = "too-many-advertisements"  # a Rejected code only: the scan's caps were reached
NOT_RESOLVED = "not-resolved"  # a Rejected code only: no SRV/TXT/A answer in time


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Nearby:
    """A verified invitation found on the LAN. `label`, `agent_did`, `fingerprint`,
    `endpoint` and `url` come from the signed invitation; `addresses` and
    `advertised_label` from mDNS, unauthenticated (shown for diagnosis only)."""

    label: str
    agent_did: str
    fingerprint: str  # 16 base32 characters of the invitation key; show it with the label
    endpoint: str  # the p2p+tcp URI to connect to (the signed one, not the mDNS address)
    url: str  # the verified p2p:invite URL: connecting starts from it
    addresses: tuple[str, ...]
    advertised_label: str
    label_mismatch: bool  # some advertisement of this agent showed another label in TXT
    expires_time: int | None
    name: str  # the DNS-SD instance name it was found under (first one, if several)

    @property
    def fingerprint_display(self) -> str:
        return display_fingerprint(self.fingerprint)


@dataclass(frozen=True, slots=True)
class Rejected:
    """An advertisement that failed verification: never shown as an agent."""

    name: str
    code: str
    detail: str
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Scan:
    nearby: tuple[Nearby, ...]
    rejected: tuple[Rejected, ...]


# --- the pure part ---------------------------------------------------------------------


def fingerprint(signer_public: bytes) -> str:
    """Lowercase base32 of the first 10 bytes of SHA-256 over the invitation key (the
    agent DID's Ed25519 `#key-1`). The key, not the DID: a did:peer:2 changes with its
    endpoint, the key does not, so a shop keeps its fingerprint when its address moves."""
    digest = hashlib.sha256(signer_public).digest()[:FINGERPRINT_BYTES]
    return base64.b32encode(digest).decode("ascii").lower()


def display_fingerprint(fp: str) -> str:
    return "-".join(fp[i:i + 4] for i in range(0, len(fp), 4))


def _truncate_utf8(text: str, limit: int) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return raw
    # Cut at a character boundary: never half a UTF-8 sequence on the wire.
    return raw[:limit].decode("utf-8", errors="ignore").encode("utf-8")


def txt_label(label: str) -> bytes:
    """The `label` value an advertiser writes: the signed label, cut to 249 bytes."""
    return _truncate_utf8(label, MAX_TXT_LABEL_BYTES)


def txt_strings(invitation: Invitation) -> list[bytes]:
    """The TXT strings, in order: txtvers, label, fp, then the URL in chunks."""
    url = invitation.url.encode("ascii")
    strings = [b"txtvers=" + TXT_VERSION, b"label=" + txt_label(invitation.label),
               b"fp=" + fingerprint(invitation.signer_public).encode("ascii")]
    for i in range(0, len(url), CHUNK_BYTES):
        strings.append(b"inv%d=" % (i // CHUNK_BYTES) + url[i:i + CHUNK_BYTES])
    return strings


def txt_record(invitation: Invitation) -> bytes:
    """The TXT rdata (RFC 6763 §6: length-prefixed strings) advertising `invitation`."""
    if not invitation.multi_use:
        raise LocalError("only a multi-use invitation may be advertised: a one-time one goes to the first taker")
    return b"".join(bytes([len(s)]) + s for s in txt_strings(invitation))


def parse_txt(rdata: bytes) -> dict[str, bytes | None]:
    """RFC 6763 §6.3-6.5: key=value strings; keys compared case-insensitively; the first
    occurrence of a key wins; a string with an empty key is ignored; a key without '='
    maps to None. Keys are printable US-ASCII without '='; a string whose key is not
    is ignored like an empty one."""
    if len(rdata) > MAX_TXT_BYTES:
        raise TooLarge(f"TXT record is {len(rdata)} bytes; the limit is {MAX_TXT_BYTES}")
    out: dict[str, bytes | None] = {}
    i = 0
    while i < len(rdata):
        n = rdata[i]
        if i + 1 + n > len(rdata):
            raise InvalidAdvertisement("a TXT string runs past the end of the record")
        string = rdata[i + 1:i + 1 + n]
        i += 1 + n
        key, eq, value = string.partition(b"=")
        if not key or any(c < 0x20 or c > 0x7E for c in key):
            continue
        name = key.decode("ascii").lower()
        if name not in out:
            out[name] = value if eq else None
    return out


def _chunk_index(key: str) -> int | None:
    digits = key[3:]
    if not key.startswith("inv") or not digits.isascii() or not digits.isdigit():
        return None
    if digits != str(int(digits)):
        raise InvalidAdvertisement(f"chunk key {key!r} has a leading zero")
    return int(digits)


def reassemble(txt: dict[str, bytes | None]) -> str:
    """The invitation URL from `inv0`, `inv1`, ... (spec/15 §15.3)."""
    chunks: dict[int, bytes | None] = {}
    for key, value in txt.items():
        index = _chunk_index(key)
        if index is not None:
            chunks[index] = value
    if not chunks:
        raise InvalidAdvertisement("no invitation chunks (inv0 ...)")
    count = len(chunks)
    if count > MAX_CHUNKS or sorted(chunks) != list(range(count)):
        raise InvalidAdvertisement(f"chunk keys must be inv0 .. inv{count - 1} (at most {MAX_CHUNKS} chunks)")
    parts = [chunks[i] for i in range(count)]
    for i, part in enumerate(parts):
        if part is None or not part:
            raise InvalidAdvertisement(f"chunk inv{i} has no value")
        if len(part) != CHUNK_BYTES and i != count - 1:
            raise InvalidAdvertisement(f"chunk inv{i} is {len(part)} bytes; all but the last are {CHUNK_BYTES}")
        if not part.isascii():
            raise InvalidAdvertisement(f"chunk inv{i} is not ASCII")
    return b"".join(parts).decode("ascii")  # type: ignore[arg-type]  # None ruled out above


def verify(rdata: bytes, *, now: int, name: str = "", addresses: Sequence[str] = ()) -> Nearby:
    """Check one advertisement (spec/15 §15.4, in that order) and return what may be
    shown. Every fault is a RemoteError whose `code` says why."""
    txt = parse_txt(rdata)
    version = txt.get("txtvers")
    if version is None:
        raise InvalidAdvertisement("txtvers is missing")
    if version != TXT_VERSION:
        raise UnsupportedAdvertisement(f"txtvers {version[:16]!r} is not {TXT_VERSION.decode()}")
    url = reassemble(txt)
    invitation = inv_mod.parse_url(url, now=now)
    if not invitation.multi_use:
        raise InvalidAdvertisement("the advertised invitation is one-time")
    fp = fingerprint(invitation.signer_public)
    claimed = txt.get("fp")
    if claimed is None:
        raise InvalidAdvertisement("fp is missing")
    if claimed != fp.encode("ascii"):
        raise AdvertisementMismatch("fp is not the fingerprint of the key that signed the invitation")
    label_raw = txt.get("label")
    if label_raw is None:
        raise InvalidAdvertisement("label is missing")
    return Nearby(
        label=invitation.label, agent_did=invitation.inviter_did, fingerprint=fp,
        endpoint=invitation.endpoint.uri, url=invitation.url, addresses=tuple(addresses),
        advertised_label=label_raw.decode("utf-8", errors="replace"),
        label_mismatch=label_raw != txt_label(invitation.label), expires_time=invitation.expires_time,
        name=name,
    )


def instance_name(invitation: Invitation) -> str:
    """`<label> (<fingerprint>)`, at most 63 bytes: readable in generic DNS-SD browsers,
    and distinct for two shops with one label. Informational only: never trusted."""
    suffix = f" ({fingerprint(invitation.signer_public)})"
    # Control characters are not allowed in instance names (RFC 6763 §4.1.1); dots
    # would be read as label separators by tools that do not escape them.
    clean = "".join(" " if unicodedata.category(c).startswith("C") or c == "." else c for c in invitation.label)
    clean = " ".join(clean.split()) or "p2p agent"
    head = _truncate_utf8(clean, MAX_INSTANCE_BYTES - len(suffix)).decode("utf-8").rstrip()
    return head + suffix


def merge(found: Iterable[Nearby]) -> tuple[Nearby, ...]:
    """One entry per agent DID: the same invitation may be advertised under several
    names (a replay elsewhere on the LAN, a restart). Addresses are united; the label
    is flagged if any advertisement showed another; the newest invitation's URL wins."""
    by_did: dict[str, Nearby] = {}
    for item in found:
        have = by_did.get(item.agent_did)
        if have is None:
            by_did[item.agent_did] = item
            continue
        newer = item if (item.expires_time or 0, item.url) > (have.expires_time or 0, have.url) else have
        addresses = tuple(dict.fromkeys(have.addresses + item.addresses))
        by_did[item.agent_did] = Nearby(
            label=newer.label, agent_did=newer.agent_did, fingerprint=newer.fingerprint, endpoint=newer.endpoint,
            url=newer.url, addresses=addresses, advertised_label=newer.advertised_label,
            label_mismatch=have.label_mismatch or item.label_mismatch, expires_time=newer.expires_time,
            name=have.name,
        )
    return tuple(sorted(by_did.values(), key=lambda n: (n.label.casefold(), n.fingerprint)))


# --- the I/O shell ---------------------------------------------------------------------


def _zeroconf(interfaces: Sequence[str] | None, ipv6: bool) -> Zeroconf:  # runs in a worker thread
    return Zeroconf(interfaces=list(interfaces) if interfaces is not None else InterfaceChoice.All,
                    ip_version=IPVersion.All if ipv6 else IPVersion.V4Only)


def _local_addresses(interfaces: Sequence[str] | None, ipv6: bool) -> list[str]:
    """What the A/AAAA records say when the caller gives no addresses: the bound
    interface addresses, else every non-loopback address of the machine."""
    if interfaces is not None:
        candidates = [a for a in interfaces if isinstance(a, str)]
    else:
        candidates = list(get_all_addresses()) + ([a[0][0] for a in get_all_addresses_v6()] if ipv6 else [])
        candidates = [a for a in candidates if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
    return [a for a in candidates if ipv6 or ipaddress.ip_address(a.split("%")[0]).version == 4]


async def _close(zc: Zeroconf) -> None:
    # Zeroconf.close() sends the goodbye records (TTL 0) of every registered service,
    # which is what makes browsers drop us at once rather than after the TTL. It must
    # run even when we are being cancelled, and it takes well under a second.
    with trio.CancelScope(shield=True):
        await trio.to_thread.run_sync(zc.close)


async def advertise(invitation_url: str, *, port: int | None = None, interfaces: Sequence[str] | None = None,
                    addresses: Sequence[str] | None = None, ipv6: bool = False, now: int | None = None,
                    task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Advertise a multi-use invitation of ours as `_p2p._tcp` until cancelled or
    until the invitation expires; then unregister (goodbye records).

    A daemon service: `name = await nursery.start(partial(advertise, url, port=...))` returns
    once the instance is registered (after mDNS probing, about 1.5 s), with the
    instance name actually used (a `-2` suffix if the name was taken on the LAN).
    `port` is the SRV port (default: the invitation endpoint's port); `interfaces`
    the addresses zeroconf binds to (default: all IPv4 interfaces); `addresses` what
    the A records say (default: those interfaces' addresses, loopback excluded)."""
    now = int(time.time()) if now is None else now
    try:
        invitation = inv_mod.parse_url(invitation_url, now=now)
    except RemoteError as exc:
        raise LocalError(f"cannot advertise this invitation: {exc.code}: {exc.detail}") from None
    rdata = txt_record(invitation)  # LocalError for a one-time invitation
    if addresses is None:
        addresses = await trio.to_thread.run_sync(_local_addresses, interfaces, ipv6)
    if not addresses:
        raise LocalError("no address to advertise: pass addresses= or interfaces=")

    fp = fingerprint(invitation.signer_public)
    info = ServiceInfo(SERVICE_TYPE, f"{instance_name(invitation)}.{SERVICE_TYPE}",
                       port=port if port is not None else invitation.endpoint.port, properties=rdata,
                       server=f"p2p-{fp}.local.", parsed_addresses=list(addresses))
    zc = await trio.to_thread.run_sync(_zeroconf, interfaces, ipv6)
    try:
        # allow_name_change: someone squatting our instance name on the LAN must not
        # stop us advertising; the name is informational anyway.
        await trio.to_thread.run_sync(lambda: zc.register_service(info, allow_name_change=True))
        log.info("discovery.advertised", extra={"fields": {"name": info.name, "fp": fp}})
        task_status.started(info.name)
        if invitation.expires_time is None:
            await trio.sleep_forever()
        # An expired invitation must not stay on the LAN: browsers would drop it anyway.
        await trio.sleep(max(0.0, invitation.expires_time - time.time()))
    finally:
        await _close(zc)


class _Events:
    """Browse events from zeroconf's thread into trio, never blocking that thread."""

    def __init__(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self.send, self.receive = trio.open_memory_channel[tuple[str, str]](MAX_EVENTS)
        self.dropped = 0

    def _deliver(self, event: tuple[str, str]) -> None:  # runs in trio, must not raise
        try:
            self.send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped += 1
        except trio.ClosedResourceError:
            pass

    def handler(self, zeroconf, service_type: str, name: str, state_change) -> None:  # zeroconf's thread
        try:
            self.token.run_sync_soon(self._deliver, (name, state_change.name))
        except trio.RunFinishedError:
            pass


async def scan(timeout: float = DEFAULT_BROWSE_SECONDS, *, interfaces: Sequence[str] | None = None,
               ipv6: bool = False, now: int | None = None) -> Scan:
    """Browse `_p2p._tcp` for `timeout` seconds; return the verified agents (one per
    agent DID) and the rejected advertisements with their reasons."""
    now = int(time.time()) if now is None else now
    version = IPVersion.All if ipv6 else IPVersion.V4Only
    events = _Events()
    outcomes: dict[str, Nearby | Rejected] = {}
    generation: dict[str, int] = {}  # bumped on every event: a stale resolution is ignored
    pending: set[tuple[str, int]] = set()  # resolutions running: (name, generation)
    deadline = trio.current_time() + timeout
    zc = await trio.to_thread.run_sync(_zeroconf, interfaces, ipv6)
    try:
        # QM questions (answers by multicast), not zeroconf's default QU first query
        # (answer by unicast to port 5353): when an advertiser and a browser share a
        # host, both sockets are bound to port 5353 with SO_REUSEPORT and the kernel
        # hands a unicast answer to either one, so half the first answers were lost.
        browser = await trio.to_thread.run_sync(
            lambda: ServiceBrowser(zc, SERVICE_TYPE, handlers=[events.handler], question_type=DNSQuestionType.QM))

        async def resolve(name: str, gen: int) -> None:
            pending.add((name, gen))
            await _resolve(name, gen)
            pending.discard((name, gen))  # not reached when the scan's deadline cuts it

        async def _resolve(name: str, gen: int) -> None:
            budget = min(RESOLVE_TIMEOUT, deadline + RESOLVE_GRACE - trio.current_time())
            info = await trio.to_thread.run_sync(
                lambda: zc.get_service_info(SERVICE_TYPE, name, timeout=max(100, int(budget * 1000)),
                                            question_type=DNSQuestionType.QM),
                abandon_on_cancel=True)
            if generation.get(name) != gen:
                return
            if info is None:
                outcomes[name] = Rejected(name, NOT_RESOLVED, "no SRV/TXT/address answer in time")
                return
            found_at = tuple(info.parsed_addresses(version))
            try:
                outcomes[name] = verify(info.text, now=now, name=name, addresses=found_at)
            except RemoteError as exc:
                log.debug("discovery.rejected", extra={"fields": {"name": name[:80], "code": exc.code}})
                outcomes[name] = Rejected(name, exc.code, exc.detail, found_at)

        try:
            with trio.CancelScope(deadline=deadline + RESOLVE_GRACE):
                async with trio.open_nursery() as nursery:
                    with trio.move_on_at(deadline):
                        async for name, change in events.receive:
                            if change == "Removed":
                                generation[name] = generation.get(name, 0) + 1
                                outcomes.pop(name, None)
                                continue
                            if name not in generation and len(generation) >= MAX_SERVICES:
                                events.dropped += 1
                                continue
                            generation[name] = gen = generation.get(name, 0) + 1
                            nursery.start_soon(resolve, name, gen)
                    events.receive.close()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(browser.cancel)
    finally:
        await _close(zc)
    for name, gen in pending:
        if generation[name] == gen and name not in outcomes:
            outcomes[name] = Rejected(name, NOT_RESOLVED, "no SRV/TXT/address answer before the scan ended")
    nearby = merge(o for o in outcomes.values() if isinstance(o, Nearby))
    rejected = [o for o in outcomes.values() if isinstance(o, Rejected)]
    if events.dropped:
        rejected.append(Rejected("*", TOO_MANY, f"{events.dropped} browse events over the caps "
                                                f"({MAX_SERVICES} instances, {MAX_EVENTS} queued) were dropped"))
    return Scan(nearby=nearby, rejected=tuple(sorted(rejected, key=lambda r: (r.name, r.code))))


async def browse(timeout: float = DEFAULT_BROWSE_SECONDS, *, interfaces: Sequence[str] | None = None,
                 ipv6: bool = False) -> list[Nearby]:
    """The verified agents nearby (what `p2p discover` shows)."""
    return list((await scan(timeout, interfaces=interfaces, ipv6=ipv6)).nearby)


__all__ = ["SERVICE_TYPE", "CHUNK_BYTES", "MAX_CHUNKS", "MAX_TXT_BYTES", "MAX_TXT_LABEL_BYTES", "Nearby",
           "Rejected", "Scan", "InvalidAdvertisement", "UnsupportedAdvertisement", "AdvertisementMismatch",
           "TOO_MANY", "NOT_RESOLVED", "fingerprint", "display_fingerprint", "txt_label", "txt_strings",
           "txt_record", "parse_txt", "reassemble", "verify", "instance_name", "merge", "advertise", "scan",
           "browse"]
