"""The daemon: one nursery tree, structured logs, signals (spec/13-daemon.md).

    run(config)
      ├── signal watcher        SIGTERM / SIGINT -> graceful stop
      ├── WebhookService.run    event queue + one POST task per webhook (p2p.webhooks),
      │                         only with [[webhooks]] configured
      ├── Agent.run             listener (p2p.net.serve), sessions (p2p.delivery),
      │                         timers (expiry, pruning, WAL checkpoints)
      ├── advertise_invitation  LAN advertising of a multi-use invitation (spec/15),
      │                         only with [discovery] advertise = true
      └── serve_api             the admin API (p2p.api.server), when it is installed

A graceful stop: the listener stops accepting, every connection gets a `close`
frame (each batch already taken was committed and receipted before; a batch being
taken finishes its commit, which is synchronous), then every task is cancelled and
the store is closed. A process crash at any moment loses no accepted message: the
store is the only state (spec/08 §8.2).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TextIO

import trio

from p2p.agent import Agent
from p2p.core.protocols import invitation as inv
from p2p.home import Config, DiscoveryConfig, HomeLock, make_home

log = logging.getLogger("p2p.daemon")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    if text and all(c.isalnum() or c in "-_.:/@+#[]" for c in text):
        return text
    return json.dumps(text)


class EventFormatter(logging.Formatter):
    """One line per event: `ts=... level=info event=connection.established k=v ...`
    (logfmt), or the same as a JSON object. Our own records carry the event name as
    the message and their data in `extra={"fields": {...}}`; records from other
    loggers (p2p.net logs printf-style lines) become `event=log msg="..."`.

    What goes in is chosen at the call sites: codes, ids, counts, public-key
    prefixes, never key material, message bodies or exception texts."""

    def __init__(self, style: str = "logfmt") -> None:
        super().__init__()
        self.json = style == "json"

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        fields = getattr(record, "fields", None)
        items: dict[str, Any] = {"ts": ts, "level": record.levelname.lower(), "logger": record.name}
        if fields is not None:
            items["event"] = record.msg
            items.update(fields)
        else:
            items["event"] = "log"
            items["msg"] = record.getMessage()
        if self.json:
            return json.dumps(items, separators=(",", ":"), default=str)
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in items.items())


def setup_logging(config: Config, stream: TextIO | None = None) -> logging.Handler:
    """Route the p2p loggers to one stream handler (stderr by default)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(EventFormatter(config.log_format))
    root = logging.getLogger("p2p")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS[config.log_level])
    root.propagate = False
    return handler


def _api() -> Any:
    """The admin API modules if installed (p2p/api, spec/14), else None: the daemon
    also runs without them (tests of the delivery engine, embedded use)."""
    try:
        from p2p.api import server, token
    except ImportError:
        return None
    return server, token


async def _serve_api(agent: Agent, config: Config, nursery: trio.Nursery) -> tuple[str, int] | None:
    """Start the admin API as spec/14 says: settings from [api], the bearer token
    in the home, and api.json written once it listens."""
    api = _api()
    if api is None:
        return None
    server, token = api
    settings = server.settings_from_config(config.api)
    if not settings.enabled:
        return None
    secret = token.ensure_token(config.home)
    host, port = await nursery.start(partial(server.serve_api, agent, host=settings.host, port=settings.port,
                                             token=secret, allow_remote=settings.allow_remote))
    token.write_address(config.home, host, port)
    return host, port


def _forget_api(config: Config) -> None:
    api = _api()
    if api is not None:
        api[1].remove_address(config.home)


# --- LAN advertising (spec/15 §15.6) ---------------------------------------------------

ADVERTISED_SETTING = "discovery.invitation"  # the id of the invitation we advertise, in the store
ADVERTISE_CHECK_S = 2.0  # how often the advertised invitation's state is re-read
ADVERTISE_RETRY_S = 30.0  # after a failure to advertise (no multicast interface, ...)
ADVERTISE_MIN_LIFE_S = 60  # an invitation closer than this to its expiry is replaced, not advertised


def advertised_invitation(agent: Agent, settings: DiscoveryConfig) -> tuple[str, str] | None:
    """(id, url) of the stored advertised invitation if it may still be advertised: open,
    multi-use, not about to expire, signed by the agent DID of the current endpoint (a
    moved endpoint changes the DID, and the old invitation points where we no longer
    listen) and with the configured label. Else None; a stale one that is still open is
    revoked, since only discovery ever handed it out."""
    stored = agent.store.get_setting(ADVERTISED_SETTING)
    if not isinstance(stored, str):
        return None
    row = agent.store.get_invitation(stored)
    if row is None:
        return None
    invitation = inv.from_signed(row.blob)
    label = agent.config.label if settings.label is None else settings.label
    fresh = row.expires_at is None or row.expires_at - agent.now() > ADVERTISE_MIN_LIFE_S
    if (row.state == "open" and fresh and invitation.multi_use and invitation.inviter_did == agent.did
            and invitation.label == label):
        return invitation.id, invitation.url
    if row.state == "open":
        agent.store.revoke_invitation(row.id)
        log.info("discovery.invitation_replaced", extra={"fields": {"invitation": row.id}})
    return None


async def _advertisable(agent: Agent, settings: DiscoveryConfig) -> tuple[str, str]:
    """The invitation to advertise: the stored one (so it survives restarts and a
    customer who saw it yesterday still finds the same one), else a new multi-use one."""
    found = advertised_invitation(agent, settings)
    if found is not None:
        return found
    label = agent.config.label if settings.label is None else settings.label
    created = await agent.create_invitation(multi_use=True, label=label)
    agent.store.set_setting(ADVERTISED_SETTING, created["id"])
    log.info("discovery.invitation_created", extra={"fields": {"invitation": created["id"]}})
    return created["id"], created["url"]


def _still_advertisable(agent: Agent, invitation_id: str) -> bool:
    if agent.store.get_setting(ADVERTISED_SETTING) != invitation_id:
        return False  # replaced
    row = agent.store.get_invitation(invitation_id)
    return row is not None and row.state == "open"  # not revoked


async def _advertise_once(url: str, port: int | None, settings: DiscoveryConfig, ended: trio.Event, *,
                          task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    from p2p.net import discovery  # zeroconf: only loaded by agents that advertise or browse

    try:
        await discovery.advertise(url, port=port, interfaces=settings.interfaces, task_status=task_status)
    finally:
        ended.set()  # the invitation expired (or we were cancelled)


async def _advertise_round(agent: Agent, settings: DiscoveryConfig, check_interval: float,
                           started: Callable[[str], None]) -> None:
    """Advertise one invitation until it expires, is revoked or replaced (or we are
    cancelled); leaving the nursery withdraws it with goodbye records."""
    invitation_id, url = await _advertisable(agent, settings)
    async with trio.open_nursery() as nursery:
        ended = trio.Event()
        name = await nursery.start(partial(_advertise_once, url, agent.port, settings, ended))
        log.info("discovery.advertising", extra={"fields": {"invitation": invitation_id, "name": name}})
        started(name)
        while not ended.is_set() and _still_advertisable(agent, invitation_id):
            with trio.move_on_after(check_interval):
                await ended.wait()
        nursery.cancel_scope.cancel()
    log.info("discovery.withdrawn", extra={"fields": {"invitation": invitation_id}})


async def advertise_invitation(agent: Agent, settings: DiscoveryConfig, *, check_interval: float = ADVERTISE_CHECK_S,
                               retry_after: float = ADVERTISE_RETRY_S,
                               task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Advertise the agent's multi-use invitation on the LAN until cancelled. A revoked,
    replaced or expired invitation is withdrawn (goodbye records) and a fresh one
    advertised; a failure to advertise is logged and retried, never fatal to the daemon.
    started(instance name) after the first registration."""
    pending = [task_status]

    def started(name: str) -> None:
        while pending:
            pending.pop().started(name)

    while True:
        failed = False
        try:
            await _advertise_round(agent, settings, check_interval, started)
        except* Exception as group:  # zeroconf's own errors too: advertising is never fatal to the daemon
            failed = True
            first = group.exceptions[0]
            log.warning("discovery.advertise_failed", extra={"fields": {
                "code": getattr(first, "code", None) or type(first).__name__, "retry_s": retry_after}})
        if failed:
            await trio.sleep(retry_after)


async def _advertise_service(agent: Agent, config: Config, scope: trio.CancelScope) -> None:
    with scope:
        if config.advertise_warning:
            log.warning("discovery.loopback_endpoint", extra={"fields": {
                "detail": "advertising an invitation whose endpoint is 127.0.0.1: nobody else on the LAN can "
                          "connect; set advertise_host"}})
        await advertise_invitation(agent, config.discovery)


async def _watch_signals(stop: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            log.info("daemon.signal", extra={"fields": {"signal": signal.Signals(signum).name}})
            stop.set()
            return


async def run(config: Config, *, handle_signals: bool = True, stop: trio.Event | None = None,
              task_status: trio.TaskStatus[Agent] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the daemon until SIGTERM/SIGINT or `stop` is set (a cancel also ends it,
    without the polite close); started(agent) once the agent listens and the API (if
    installed) serves. Returns normally after a stop."""
    make_home(config.home)
    stop = stop if stop is not None else trio.Event()
    with HomeLock(config.lock_path):
        agent = await trio.to_thread.run_sync(Agent.open, config)  # Argon2id may run: off the loop
        try:
            async with trio.open_nursery() as nursery:
                if handle_signals:
                    await nursery.start(_watch_signals, stop)
                if config.webhooks:  # first: subscribed before the agent publishes anything
                    from p2p.webhooks import WebhookService

                    await nursery.start(WebhookService(agent, config.webhooks).run)
                await nursery.start(agent.run)
                # Its own scope: withdrawn (goodbye records) before the connections close.
                # Not awaited to start: mDNS probing must not delay readiness.
                advertising = trio.CancelScope()
                if config.discovery.advertise:
                    nursery.start_soon(_advertise_service, agent, config, advertising)
                api = await _serve_api(agent, config, nursery)
                log.info("daemon.ready", extra={"fields": {
                    "endpoint": agent.endpoint, "home": str(config.home),
                    "api": f"{api[0]}:{api[1]}" if api else "off"}})
                task_status.started(agent)
                await stop.wait()
                log.info("daemon.stopping", extra={"fields": {}})
                advertising.cancel()
                await agent.shutdown()
                nursery.cancel_scope.cancel()
        finally:
            _forget_api(config)
            agent.close()
            log.info("daemon.stopped", extra={"fields": {}})


def main(config: Config) -> int:
    setup_logging(config)
    trio.run(run, config)
    return 0


__all__ = ["run", "main", "setup_logging", "EventFormatter", "advertise_invitation", "advertised_invitation"]
