"""Webhooks: the agent's events as signed HTTP POSTs to configured URLs
(spec/20-webhooks.md is normative; config: `[[webhooks]]` in config.toml).

    EventHub ──subscription (65,536 buffered)──> enqueuer ──one transaction per 20 ms──> webhook_events
       (intake publishes after its commit,        (batches)                              webhook_queue
        never waits: a full buffer drops                                                      │
        the subscriber, not the event)          one delivery task per webhook <──── wake ─────┘
                                                POST in event id order; 2xx deletes the row;
                                                anything else retries with full-jitter backoff

Why a hub subscriber and not a hook inside intake: intake commits, then publishes with
`send_nowait` on a memory channel, so the only cost webhooks add to a received batch
is building the event dicts; the SQLite insert happens later, in the enqueuer's own
transaction, batched over every event of the last 20 ms. If the enqueuer ever falls
65,536 events behind (the event loop starved for seconds), the hub closes its
subscription; the enqueuer resubscribes and recovers `message.received` from the
archive (a cursor mark, stored in the same transaction as each batch). The same mark
recovers the messages of the last moments before a crash. Other event kinds are
notifications of state the receiver can re-read through the admin API; they can be
lost only in those two cases, and the log says so (`webhooks.overflow`).

Receivers verify with `verify_signature(secret, headers, body, now)`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio

from p2p import __version__
from p2p.core import message as message_codec
from p2p.core.errors import P2PError, RemoteError
from p2p.core.protocols import routing
from p2p.store import WebhookDelivery, WebhookEvent

log = logging.getLogger("p2p.webhooks")

# --- the wire format (spec/20 §20.3) ------------------------------------------------------

HEADER_ID = "P2P-Webhook-Id"
HEADER_TIMESTAMP = "P2P-Webhook-Timestamp"
HEADER_SIGNATURE = "P2P-Webhook-Signature"
SIGNATURE_SCHEME = "v1"
TOLERANCE_S = 300  # receivers reject a timestamp further than this from their clock

EVENT_NAMES = frozenset({"message.received", "message.state", "relationship.created", "relationship.revoked",
                         "invitation.used", "problem.received"})

# --- policy (spec/20 §20.4) ----------------------------------------------------------------

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
MAX_AGE_S = 3 * 24 * 3600  # an event not delivered by then is marked failed
FAILED_KEEP_S = 7 * 24 * 3600  # failed rows stay this long for inspection
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 300.0
MAX_RESPONSE_BYTES = 64 * 1024  # read (and ignore) at most this much of an answer
FLUSH_INTERVAL_S = 0.02  # the enqueuer collects events this long, then one transaction
MAX_BATCH = 4096  # events per enqueue transaction
SUBSCRIPTION_BUFFER = 65_536
DELIVERY_BATCH = 256  # queue rows read per query by a delivery task
CATCH_UP_PAGE = 1000
PRUNE_INTERVAL_S = 3600
MIN_SECRET_BYTES = 16
MAX_SECRET_BYTES = 1024

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_DIGITS = re.compile(r"^[0-9]{1,19}$")
_KEYS = {"name", "url", "secret", "secret_file", "events", "timeout", "allow_http"}


# --- errors a receiver's verification raises ------------------------------------------------


class InvalidWebhookHeaders(RemoteError):
    """A P2P-Webhook-* header is missing, repeated or malformed."""

    code = "invalid-webhook-headers"


class InvalidWebhookSignature(RemoteError):
    """No v1 signature in the header matches HMAC-SHA256(secret, timestamp "." body)."""

    code = "invalid-webhook-signature"


class WebhookTimestampOutOfRange(RemoteError):
    """Signed correctly but too far from the receiver's clock: a replay, or a bad clock."""

    code = "webhook-timestamp-out-of-range"


class WebhookIdMismatch(RemoteError):
    """The body is not a JSON object whose event_id equals the P2P-Webhook-Id header."""

    code = "webhook-id-mismatch"


# --- configuration -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Webhook:
    """One `[[webhooks]]` table, validated. `name` names its queue rows in the store,
    so renaming a webhook (or changing the URL of one without a name) starts a new
    queue and drops the old one at the next start."""

    name: str
    url: str
    secret: bytes = field(repr=False)
    events: frozenset[str] | None = None  # None: every event ("*")
    timeout: float = DEFAULT_TIMEOUT_S

    def wants(self, event: str) -> bool:
        return event in EVENT_NAMES and (self.events is None or event in self.events)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_webhooks(raw: Any, home: Path) -> tuple[Webhook, ...]:
    """The `webhooks` array of tables of config.toml -> Webhooks; ConfigError naming
    the table (webhooks[i]) and the field on anything wrong."""
    from p2p.home import ConfigError  # p2p.home imports this module

    if raw is None:
        return ()
    if type(raw) is not list:
        raise ConfigError("webhooks is an array of tables: [[webhooks]]")
    out: list[Webhook] = []
    for i, table in enumerate(raw):
        where = f"webhooks[{i}]"
        if type(table) is not dict:
            raise ConfigError(f"{where} is a table")
        unknown = set(table) - _KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
        url = table.get("url")
        if type(url) is not str or not url or len(url) > 2048:
            raise ConfigError(f"{where}.url is required: an http:// or https:// URL")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError as exc:
            raise ConfigError(f"{where}.url: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{where}.url must be http:// or https:// with a host, not {url[:80]!r}")
        if parts.fragment:
            raise ConfigError(f"{where}.url must not have a #fragment")
        allow_http = table.get("allow_http", False)
        if type(allow_http) is not bool:
            raise ConfigError(f"{where}.allow_http is true or false")
        if parts.scheme == "http" and not allow_http and not _is_loopback(parts.hostname):
            raise ConfigError(f"{where}.url: plain http:// is only allowed to a loopback host (bodies hold "
                              "message plaintext); use https://, or set allow_http = true")
        name = table.get("name")
        if name is None:
            name = "url-" + hashlib.sha256(url.encode()).hexdigest()[:12]
        elif type(name) is not str or not _NAME.match(name):
            raise ConfigError(f"{where}.name is 1..64 characters of A-Z a-z 0-9 . _ -")
        if any(w.name == name for w in out):
            raise ConfigError(f"{where}: a second webhook named {name!r} (name, or the same url twice)")
        has_secret, has_file = "secret" in table, "secret_file" in table
        if has_secret == has_file:
            raise ConfigError(f"{where} needs exactly one of secret and secret_file")
        if has_secret:
            secret = table["secret"]
            if type(secret) is not str:
                raise ConfigError(f"{where}.secret is text")
        else:
            sf = table["secret_file"]
            if type(sf) is not str or not sf:
                raise ConfigError(f"{where}.secret_file is a path")
            path = Path(sf).expanduser()
            if not path.is_absolute():
                path = home / path
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{where}.secret_file {path}: {getattr(exc, 'strerror', None) or exc}") from None
            secret = lines[0].strip() if lines else ""
        key = secret.encode("utf-8")
        if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
            raise ConfigError(f"{where}: the secret is {MIN_SECRET_BYTES}..{MAX_SECRET_BYTES} bytes (UTF-8); "
                              "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        events_raw = table.get("events", "*")
        events: frozenset[str] | None
        if events_raw == "*" or events_raw == ["*"]:
            events = None
        elif type(events_raw) is list and events_raw and all(type(e) is str for e in events_raw):
            bad = sorted(set(events_raw) - EVENT_NAMES)
            if bad:
                raise ConfigError(f"{where}.events: unknown {bad}; known: {sorted(EVENT_NAMES)} or \"*\"")
            events = frozenset(events_raw)
        else:
            raise ConfigError(f"{where}.events is \"*\" or a non-empty list of event names")
        timeout = table.get("timeout", DEFAULT_TIMEOUT_S)
        if type(timeout) not in (int, float) or not 0 < timeout <= MAX_TIMEOUT_S:
            raise ConfigError(f"{where}.timeout is a number of seconds in (0, {MAX_TIMEOUT_S:g}]")
        out.append(Webhook(name=name, url=url, secret=key, events=events, timeout=float(timeout)))
    return tuple(out)


# --- signing and verifying ------------------------------------------------------------------


def body_for(event_id: int, payload: bytes) -> bytes:
    """The POST body: the stored event object with "event_id" as its first member
    (so the id is covered by the signature)."""
    if payload == b"{}":
        return b'{"event_id":%d}' % event_id
    return b'{"event_id":%d,' % event_id + payload[1:]


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The P2P-Webhook-Signature value: "v1=" + hex(HMAC-SHA256(secret, "<timestamp>." + body))."""
    mac = hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_SCHEME}={mac}"


def signed_headers(secret: bytes, event_id: int, timestamp: int, body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": f"p2p/{__version__} webhooks",
            HEADER_ID: str(event_id), HEADER_TIMESTAMP: str(timestamp),
            HEADER_SIGNATURE: sign(secret, timestamp, body)}


def _header_map(headers: Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]) -> dict[str, str]:
    items = headers.items() if hasattr(headers, "items") else headers
    out: dict[str, str] = {}
    for name, value in items:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        key = name.lower()
        if key in (HEADER_ID.lower(), HEADER_TIMESTAMP.lower(), HEADER_SIGNATURE.lower()):
            if key in out:
                raise InvalidWebhookHeaders(f"{name} appears twice")
            out[key] = value.strip()
    return out


def verify_signature(secret: str | bytes, headers: Mapping[str, str] | Iterable[tuple[Any, Any]], body: bytes,
                     now: float, *, tolerance: int = TOLERANCE_S) -> dict:
    """What a receiver does with a POST (spec/20 §20.5): check the headers, the
    signature (constant time; any of several space-separated v1= values may match,
    for secret rotation), the timestamp (within `tolerance` seconds of `now`) and
    that the body's event_id is the header's id. Returns the event (parsed body);
    raises InvalidWebhookHeaders, InvalidWebhookSignature, WebhookTimestampOutOfRange
    or WebhookIdMismatch. `headers`: a mapping (any case) or (name, value) pairs, str
    or bytes (h11, ASGI). Dedupe by the returned event["event_id"]."""
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    h = _header_map(headers)
    try:
        id_text, ts_text, sig_text = (h[k.lower()] for k in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE))
    except KeyError:
        raise InvalidWebhookHeaders("P2P-Webhook-Id, -Timestamp and -Signature are all required") from None
    if not _DIGITS.match(id_text) or not _DIGITS.match(ts_text):
        raise InvalidWebhookHeaders("P2P-Webhook-Id and P2P-Webhook-Timestamp are decimal integers")
    timestamp = int(ts_text)
    expected = sign(key, timestamp, bytes(body)).encode("ascii")
    offered = [s.encode("utf-8") for s in sig_text.split(" ") if s.startswith(SIGNATURE_SCHEME + "=")]
    if not offered:
        raise InvalidWebhookHeaders("P2P-Webhook-Signature has no v1= value")
    matched = False
    for candidate in offered:  # every candidate is compared: no early exit to time
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise InvalidWebhookSignature("no signature matches the body and timestamp")
    if abs(now - timestamp) > tolerance:
        raise WebhookTimestampOutOfRange(f"timestamp is {int(now - timestamp)} s from now (limit {tolerance})")
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookIdMismatch("the body is not JSON") from None
    if type(event) is not dict or type(event.get("event_id")) is not int or event["event_id"] != int(id_text):
        raise WebhookIdMismatch("the body's event_id is not the P2P-Webhook-Id header")
    return event


def webhook_backoff(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before retry number `attempt` (1, 2, ...): full jitter, base 1 s, cap 5 min."""
    return rand() * min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(attempt - 1, 30))


# --- the service ---------------------------------------------------------------------------


@dataclass(slots=True)
class WebhookStats:
    """Counters of one webhook since the service started (tests, status)."""

    delivered: int = 0
    failed_attempts: int = 0
    given_up: int = 0
    last_error: str | None = None


class WebhookService:
    """Queues the agent's events for `webhooks` and delivers them. `await
    nursery.start(service.run)` before the agent takes traffic (started() once it is
    subscribed and has caught up from the archive); cancel to stop: what it holds in
    memory is committed on the way out."""

    def __init__(self, agent: Any, webhooks: Sequence[Webhook], *,
                 backoff: Callable[[int], float] = webhook_backoff, clock: Callable[[], float] = time.time,
                 max_age: int = MAX_AGE_S, flush_interval: float = FLUSH_INTERVAL_S,
                 buffer: int = SUBSCRIPTION_BUFFER) -> None:
        self.agent = agent
        self.store = agent.store
        self.webhooks = tuple(webhooks)
        self.backoff = backoff
        self.clock = clock
        self.max_age = max_age
        self.flush_interval = flush_interval
        self.buffer = buffer
        self.stats = {w.name: WebhookStats() for w in self.webhooks}
        self.overflows = 0
        self._wakes: dict[str, trio.Event] = {}
        # message.received is recoverable from the archive: track the archive cursor
        # of the last one queued, if anyone wants them.
        self._track = any(w.wants("message.received") for w in self.webhooks)
        self._cursor = 0
        core = {_protocol_key(f.id) for f in routing.CORE_FEATURES if f.feature_type == "protocol"}
        self._app_protocols = frozenset(_protocol_key(p) for p in agent.config.protocols) - core

    # --- running -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._init_cursor()
        if not self.webhooks:
            task_status.started()
            return
        import httpx  # only a daemon with webhooks pays for it

        self._prune()
        async with trio.open_nursery() as nursery:
            for hook in self.webhooks:
                client = httpx.AsyncClient(timeout=httpx.Timeout(hook.timeout), trust_env=False,
                                           follow_redirects=False,
                                           limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
                nursery.start_soon(self._deliver_loop, hook, client)
            nursery.start_soon(self._prune_loop)
            await self._enqueue_loop(task_status)

    def _init_cursor(self) -> None:
        stored = self.store.get_setting(self.store.WEBHOOK_CURSOR_KEY)
        if self._track and isinstance(stored, int):
            self._cursor = stored
            return
        # First start (or nobody wants message.received): no history to replay.
        self._cursor = self.store.archive_cursor()
        self.store.webhook_enqueue_many([], int(self.clock()), archive_cursor=self._cursor)

    async def _enqueue_loop(self, task_status: trio.TaskStatus[None]) -> None:
        started = False
        while True:
            async with self.agent.subscribe(buffer=self.buffer) as channel:
                # Subscribed first, then read the archive: a message committed before
                # the subscription is in the archive, one after it is in the channel,
                # and the cursor mark drops the overlap.
                await self._catch_up()
                if not started:
                    started = True
                    task_status.started()
                await self._drain(channel)
            self.overflows += 1
            log.warning("webhooks.overflow", extra={"fields": {
                "buffer": self.buffer, "detail": "events fell behind; message.received recovered from the archive, "
                                                 "other events of the gap are lost"}})

    async def _drain(self, channel: trio.MemoryReceiveChannel[dict]) -> None:
        """Until the hub drops the subscription (overflow). Every batch is committed
        before the next is collected; on cancel, whatever was received is committed."""
        batch: list[dict] = []
        try:
            while True:
                try:
                    batch.append(await channel.receive())
                except trio.EndOfChannel:
                    return
                await trio.sleep(self.flush_interval)
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(channel.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                self._flush(batch)
                batch = []
        finally:
            while True:
                try:
                    batch.append(channel.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
            if batch:
                try:
                    self._flush(batch)
                except P2PError as exc:  # the store is gone: a crash-equivalent, recovered at start
                    log.warning("webhooks.flush_failed", extra={"fields": {"code": exc.code, "events": len(batch)}})

    def _flush(self, events: list[dict]) -> None:
        rows: list[WebhookEvent] = []
        cursor = None
        for event in events:
            name = event.get("event")
            if name == "message.received" and self._track:
                c = event["message"]["cursor"]
                if c <= self._cursor:
                    continue  # queued already by a catch-up
                self._cursor = cursor = c
            targets = tuple(w.name for w in self.webhooks if w.wants(name))
            if targets:
                rows.append(WebhookEvent(_json(event), targets))
        if not rows and cursor is None:
            return
        self.store.webhook_enqueue_many(rows, int(self.clock()), archive_cursor=cursor)
        self._wake({t for r in rows for t in r.webhooks})

    async def _catch_up(self) -> None:
        """Queue message.received for archived inbound application messages past the
        cursor mark (a crash or an overflow lost their events), at most max_age old."""
        if not self._track:
            return
        oldest = self.clock() - self.max_age
        total = 0
        while True:
            page = await self.agent.messages(direction="in", after=self._cursor, limit=CATCH_UP_PAGE)
            if not page:
                break
            now = int(self.clock())
            events = [{"event": "message.received", "time": now, "message": m} for m in page
                      if self._is_application(m["type"]) and (m["created_time"] is None or m["created_time"] >= oldest)]
            self._cursor = page[-1]["cursor"]
            rows = [WebhookEvent(_json(e), tuple(w.name for w in self.webhooks if w.wants("message.received")))
                    for e in events]
            self.store.webhook_enqueue_many(rows, now, archive_cursor=self._cursor)
            total += len(rows)
        if total:
            log.info("webhooks.caught_up", extra={"fields": {"events": total}})
            self._wake({w.name for w in self.webhooks if w.wants("message.received")})

    def _is_application(self, message_type: str) -> bool:
        """Would intake have published message.received for this archived type?
        (Archived inbound messages are those not rejected; of them, core protocol
        traffic is answered by the agent, application protocols are delivered.)"""
        try:
            doc, protocol, major, _minor, _name = message_codec.piuri(message_type)
        except P2PError:
            return False
        return (doc, protocol, major) in self._app_protocols

    def _wake(self, names: Iterable[str]) -> None:
        for name in names:
            wake = self._wakes.get(name)
            if wake is not None:
                wake.set()

    def _prune(self) -> None:
        gone = self.store.webhook_prune([w.name for w in self.webhooks], int(self.clock()) - FAILED_KEEP_S)
        if gone:
            log.info("webhooks.pruned", extra={"fields": {"rows": gone}})

    async def _prune_loop(self) -> None:
        while True:
            await trio.sleep(PRUNE_INTERVAL_S)
            self._prune()

    # --- delivery ----------------------------------------------------------------------

    async def _deliver_loop(self, hook: Webhook, client: Any) -> None:
        async with client:
            while True:
                # The event first, then the query: a flush between the two sets it.
                wake = self._wakes[hook.name] = trio.Event()
                rows = self.store.webhook_pending(hook.name, DELIVERY_BATCH)
                if not rows:
                    await wake.wait()
                    continue
                done: list[int] = []
                try:
                    for row in rows:
                        if not await self._deliver_one(hook, client, row, done):
                            break
                finally:
                    self._commit(hook, done)

    def _commit(self, hook: Webhook, done: list[int]) -> None:
        """Delivered rows leave the queue in one transaction per batch (before any
        wait, so a crash repeats at most the events since the last wait)."""
        if done:
            try:
                self.store.webhook_delivered_many(hook.name, done)
            except P2PError as exc:
                log.warning("webhooks.commit_failed", extra={"fields": {"code": exc.code, "webhook": hook.name}})
            done.clear()

    async def _deliver_one(self, hook: Webhook, client: Any, row: WebhookDelivery, done: list[int]) -> bool:
        """Deliver one event, retrying until a 2xx or until it is max_age old. True:
        go on with the next row; False: the queue changed under us, re-read it."""
        stats = self.stats[hook.name]
        attempts = row.attempts
        due = row.next_attempt_ms / 1000
        while True:
            wait = due - self.clock()
            if wait > 0:
                self._commit(hook, done)
                await trio.sleep(wait)
            error = await self._post(hook, client, row)
            if error is None:
                done.append(row.event_id)
                stats.delivered += 1
                return True
            attempts += 1
            stats.failed_attempts += 1
            stats.last_error = error
            now = self.clock()
            self._commit(hook, done)
            if now - row.created_at >= self.max_age:
                created_before = max(int(now) - self.max_age + 1, row.created_at + 1)
                n = self.store.webhook_fail_older(hook.name, created_before, error=error)
                stats.given_up += n
                log.warning("webhook.failed", extra={"fields": {"webhook": hook.name, "event_id": row.event_id,
                                                                 "events": n, "code": error,
                                                                 "attempts": attempts}})
                return False
            delay = self.backoff(attempts)
            due = now + delay
            self.store.webhook_retry(hook.name, row.event_id, next_attempt_ms=int(due * 1000), error=error)
            log.info("webhook.retry", extra={"fields": {"webhook": hook.name, "event_id": row.event_id,
                                                         "attempt": attempts, "code": error,
                                                         "retry_in_s": round(delay, 3)}})

    async def _post(self, hook: Webhook, client: Any, row: WebhookDelivery) -> str | None:
        """One attempt. None on a 2xx answer, else an error code for the log and the row."""
        import httpx

        body = body_for(row.event_id, row.payload)
        headers = signed_headers(hook.secret, row.event_id, int(self.clock()), body)
        status = 0
        try:
            # httpx's timeout is per phase (connect, each read...); this bounds the whole.
            with trio.move_on_after(hook.timeout) as scope:
                async with client.stream("POST", hook.url, content=body, headers=headers) as response:
                    status = response.status_code
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read > MAX_RESPONSE_BYTES:
                            break
            if scope.cancelled_caught:
                return "timeout"
        except httpx.TimeoutException:
            return "timeout"
        except httpx.ConnectError:
            return "connect-failed"
        except (httpx.HTTPError, httpx.StreamError, OSError) as exc:
            return "http-" + type(exc).__name__.lower()
        except Exception as exc:  # a webhook never takes the daemon down: log, retry later
            log.warning("webhook.internal_error", extra={"fields": {"webhook": hook.name,
                                                                     "type": type(exc).__name__}})
            return "internal-error"
        return None if 200 <= status < 300 else f"status-{status}"


def _json(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def _protocol_key(uri: str) -> tuple[str, str, int] | None:
    try:
        doc, protocol, major, _minor, _name = message_codec.piuri(uri + "/x")
    except P2PError:
        return None
    return doc, protocol, major


__all__ = [
    "EVENT_NAMES", "HEADER_ID", "HEADER_SIGNATURE", "HEADER_TIMESTAMP", "InvalidWebhookHeaders",
    "InvalidWebhookSignature", "TOLERANCE_S", "Webhook", "WebhookIdMismatch", "WebhookService", "WebhookStats",
    "WebhookTimestampOutOfRange", "body_for", "parse_webhooks", "sign", "signed_headers", "verify_signature",
    "webhook_backoff",
]
