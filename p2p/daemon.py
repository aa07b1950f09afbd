"""The daemon: one nursery tree, structured logs, signals (spec/13-daemon.md).

    run(config)
      ├── signal watcher        SIGTERM / SIGINT -> graceful stop
      ├── Agent.run             listener (p2p.net.serve), sessions (p2p.delivery),
      │                         timers (expiry, pruning, WAL checkpoints)
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
from functools import partial
from typing import Any, TextIO

import trio

from p2p.agent import Agent
from p2p.home import Config, HomeLock, make_home

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
                await nursery.start(agent.run)
                api = await _serve_api(agent, config, nursery)
                log.info("daemon.ready", extra={"fields": {
                    "endpoint": agent.endpoint, "home": str(config.home),
                    "api": f"{api[0]}:{api[1]}" if api else "off"}})
                task_status.started(agent)
                await stop.wait()
                log.info("daemon.stopping", extra={"fields": {}})
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


__all__ = ["run", "main", "setup_logging", "EventFormatter"]
