"""Run real p2p daemons as child processes, for end-to-end tests and bench/e2e.py.

Each `Daemon` has its own temporary home (P2P_HOME), a config.toml that pins its Noise
listener and its admin API to free ports on 127.0.0.1 (found by binding port 0), and a
log file. `start()` runs `python -m p2p.cli daemon` and returns once the API answers
with the token the daemon wrote; `stop()` sends SIGTERM, `kill()` SIGKILL, and
`start()` again restarts on the same home and ports. `Api` is a small stdlib HTTP
client (keep-alive, JSON) for the admin API (spec/14): the tests talk to the daemon
exactly as the `p2p` command does, but without its process start-up per call.

Nothing here knows the protocol: it only starts processes and speaks the admin API.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
BASIC = "https://didcomm.org/basicmessage/2.0/message"


# --- processes and ports ------------------------------------------------------------


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick for port 0).

    There is a window between closing this socket and the daemon binding the port;
    on a loopback-only test machine nothing else races for it in practice.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def p2p_command() -> list[str]:
    """The `p2p` executable if installed, else the module, run by this interpreter."""
    exe = shutil.which("p2p")
    return [exe] if exe else [sys.executable, "-m", "p2p.cli"]


def child_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["P2P_HOME"] = str(home)
    # The package is run from the checkout, installed or not.
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("P2P_PASSPHRASE", None)
    env.pop("P2P_LISTEN", None)
    env.pop("P2P_ADVERTISE", None)
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a live process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


# --- the admin API client --------------------------------------------------------------


class ApiError(Exception):
    """A non-2xx answer: the HTTP status and the `{"error", "detail"}` body."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


class Api:
    """One keep-alive HTTP connection to a daemon's admin API. Not thread-safe: give
    each thread its own (`clone()`)."""

    def __init__(self, host: str, port: int, token: str, *, timeout: float = 60.0) -> None:
        self.host, self.port, self.token, self.timeout = host, port, token, timeout
        self._conn: http.client.HTTPConnection | None = None

    def clone(self) -> Api:
        return Api(self.host, self.port, self.token, timeout=self.timeout)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: Any = None, *, query: dict | None = None,
                auth: bool = True) -> Any:
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"accept": "application/json"}
        if auth:
            headers["authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        while True:
            reused = self._conn is not None
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, "/v1" + path, body=data, headers=headers)
                response = self._conn.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                # A keep-alive connection the server closed while it was idle: retry
                # once on a fresh one. A fresh connection that breaks is a real
                # failure (the daemon died): never resend, the request may have landed.
                if not reused:
                    raise
            except BaseException:
                self.close()
                raise
        if response.getheader("connection", "").lower() == "close":
            self.close()
        doc = json.loads(raw) if raw else None
        if not 200 <= response.status < 300:
            doc = doc if isinstance(doc, dict) else {}
            raise ApiError(response.status, doc.get("error", "?"), doc.get("detail", ""))
        return doc

    # The routes of spec/14, one method each.
    def health(self) -> dict:
        return self.request("GET", "/health", auth=False)

    def status(self) -> dict:
        return self.request("GET", "/status")

    def invite(self, **fields: Any) -> dict:
        return self.request("POST", "/invitations", fields)

    def accept(self, url: str, **fields: Any) -> dict:
        return self.request("POST", "/invitations/accept", {"url": url, **fields})

    def relationships(self, state: str | None = None) -> list[dict]:
        return self.request("GET", "/relationships", query={"state": state})["relationships"]

    def relationship(self, rid: str) -> dict:
        return self.request("GET", f"/relationships/{quote(rid, safe='')}")

    def revoke(self, rid: str, reason: str | None = None) -> dict:
        return self.request("POST", f"/relationships/{quote(rid, safe='')}/revoke",
                            {"reason": reason} if reason else {})

    def ping(self, rid: str, timeout: float | None = None) -> dict:
        return self.request("POST", f"/relationships/{quote(rid, safe='')}/ping",
                            {"timeout": timeout} if timeout else {})

    def send(self, rid: str, body: dict, *, type: str = BASIC, **fields: Any) -> dict:
        return self.request("POST", "/messages", {"relationship": rid, "type": type, "body": body, **fields})

    def send_many(self, rid: str, messages: list[dict]) -> list[dict]:
        items = [{"type": BASIC, **m} for m in messages]
        return self.request("POST", "/messages", {"relationship": rid, "messages": items})["messages"]

    def messages_page(self, **query: Any) -> dict:
        return self.request("GET", "/messages", query=query)

    def messages(self, *, limit: int = 1000, **query: Any) -> list[dict]:
        """Every message matching `query`, following the cursor through all pages."""
        out: list[dict] = []
        after = query.pop("after", None)
        while True:
            page = self.messages_page(after=after, limit=limit, **query)
            out.extend(page["messages"])
            if page.get("next_after") is None:
                return out
            after = page["next_after"]

    def message(self, mid: str) -> dict:
        return self.request("GET", f"/messages/{quote(mid, safe='')}")

    def thread(self, thid: str) -> list[dict]:
        return self.request("GET", f"/threads/{quote(thid, safe='')}")["messages"]

    def events(self, *, timeout: float | None = None) -> Iterator[dict]:
        """The SSE event stream (its own connection), one dict per `data:` line."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("GET", "/v1/events", headers={"authorization": f"Bearer {self.token}",
                                                        "accept": "text/event-stream"})
            response = conn.getresponse()
            if response.status != 200:
                raise ApiError(response.status, "?", response.read().decode(errors="replace"))
            while True:
                line = response.fp.readline()
                if not line:
                    return
                if line.startswith(b"data: "):
                    yield json.loads(line[6:])
        finally:
            conn.close()


# --- config.toml -----------------------------------------------------------------------

_BARE_KEY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def toml_key(key: str) -> str:
    return key if key and set(key) <= _BARE_KEY else json.dumps(key)


def toml_value(value: Any) -> str:
    """A TOML value: a JSON string is a valid TOML basic string; lists become arrays and
    dicts inline tables (so a list of dicts is an array of tables), None is left out."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # Not ensure_ascii: TOML has no surrogate-pair escapes for characters beyond the BMP.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


# --- one daemon ------------------------------------------------------------------------


class DaemonFailed(AssertionError):
    pass


class Daemon:
    """A p2p agent home and, while running, its daemon process."""

    def __init__(self, base: Path, name: str, *, label: str | None = None,
                 config: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.home = Path(base) / name
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.p2p_port = free_port()
        self.api_port = free_port()
        self.label = label if label is not None else name
        self.extra_config = config or {}
        self.env = child_env(self.home, env)
        self.log_path = self.home / "daemon.log"
        self.proc: subprocess.Popen | None = None
        self._api: Api | None = None
        self.starts = 0
        self.peak_rss_kib = 0  # the largest VmHWM seen over all runs

    # config.toml pins every port, so a restart finds the same endpoint (the agent DID
    # and the peers' records of it hold the endpoint).
    def write_config(self) -> None:
        top: dict[str, Any] = {"listen_host": HOST, "listen_port": self.p2p_port, "advertise_host": HOST,
                               "label": self.label, "log_level": "info"}
        tables: dict[str, dict[str, Any]] = {"api": {"host": HOST, "port": self.api_port}}
        for key, value in self.extra_config.items():
            if isinstance(value, dict):
                tables.setdefault(key, {}).update(value)
            else:
                top[key] = value
        lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in top.items() if v is not None]
        for table, values in tables.items():
            lines.append(f"[{toml_key(table)}]")
            lines.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in values.items() if v is not None)
        (self.home / "config.toml").write_text("\n".join(lines) + "\n")

    def run_cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run([*p2p_command(), *args], env=self.env, capture_output=True, text=True,
                                timeout=timeout, cwd=self.home)
        if check and result.returncode != 0:
            raise DaemonFailed(f"p2p {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def init(self) -> str:
        self.write_config()
        return self.run_cli("init").stdout

    # --- process life ------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} is not running"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, timeout: float = 30.0) -> Daemon:
        assert not self.running, f"{self.name} is already running"
        if not (self.home / "config.toml").exists():
            self.init()
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"--- harness: start #{self.starts} ---\n".encode())
        log.flush()
        self.proc = subprocess.Popen(self.daemon_argv(), env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.home)
        log.close()
        self._api = None
        self.wait_ready(timeout)
        return self

    @staticmethod
    def daemon_argv() -> list[str]:
        return [*p2p_command(), "daemon"]

    def wait_ready(self, timeout: float) -> None:
        """Until the API that *this* process started answers an authenticated call."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DaemonFailed(f"{self.name} exited {self.proc.returncode} at start:\n{self.log_tail()}")
            try:
                doc = json.loads((self.home / "api.json").read_text())
                token = (self.home / "api-token").read_text().strip()
                # A stale api.json from a killed run names the old pid.
                if doc.get("pid") == self.proc.pid:
                    api = Api(doc["host"], doc["port"], token)
                    api.status()
                    self._api = api
                    return
            except (OSError, ValueError, ApiError, http.client.HTTPException) as exc:
                last = exc
            time.sleep(0.05)
        self.kill()
        raise DaemonFailed(f"{self.name}: API not ready within {timeout} s ({last!r}):\n{self.log_tail()}")

    @property
    def api(self) -> Api:
        assert self._api is not None and self.running, f"{self.name} is not running"
        return self._api

    def _note_rss(self) -> None:
        if self.running:
            try:
                self.peak_rss_kib = max(self.peak_rss_kib, proc_status(self.proc.pid)["VmHWM"])
            except (OSError, KeyError):
                pass

    def stop(self, *, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit status. A daemon that does not stop in
        `timeout` is killed and the test fails (a clean stop is part of the contract)."""
        assert self.proc is not None
        self._note_rss()
        if self._api is not None:
            self._api.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise DaemonFailed(f"{self.name} ignored SIGTERM for {timeout} s:\n{self.log_tail()}") from None
        self._api = None
        return rc

    def kill(self) -> None:
        """SIGKILL: the crash the durability promises are about."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self._note_rss()
        if self._api is not None:
            self._api.close()
        self.proc.kill()
        self.proc.wait()
        self._api = None

    def restart(self, **kwargs: Any) -> Daemon:
        if self.running:
            self.stop()
        return self.start(**kwargs)

    # --- observation ---------------------------------------------------------------------

    def rss_kib(self) -> int:
        return proc_status(self.pid)["VmRSS"]

    def hwm_kib(self) -> int:
        return proc_status(self.pid)["VmHWM"]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


class Cluster:
    """Daemons under one temporary directory; all are killed on exit, whatever happened."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.daemons: list[Daemon] = []

    def add(self, name: str, **kwargs: Any) -> Daemon:
        daemon = Daemon(self.base, name, **kwargs)
        self.daemons.append(daemon)
        return daemon

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        for daemon in self.daemons:
            daemon.kill()


# --- helpers the scenarios share ---------------------------------------------------------


def connect_pair(inviter: Daemon, invitee: Daemon) -> tuple[str, str]:
    """Invitation from `inviter`, accepted by `invitee`; returns (inviter's relationship
    id, invitee's relationship id) once both sides list the relationship as active."""
    invitation = inviter.api.invite(label=f"{inviter.name} to {invitee.name}")
    rel_b = invitee.api.accept(invitation["url"])
    assert rel_b["state"] == "active", rel_b
    deadline = time.monotonic() + 10
    while True:
        active = [r for r in inviter.api.relationships(state="active") if r["their_did"] == rel_b["our_did"]]
        if active:
            return active[0]["id"], rel_b["id"]
        if time.monotonic() > deadline:
            raise AssertionError(f"{inviter.name} never listed the relationship with {invitee.name}")
        time.sleep(0.05)


def wait_for(predicate, *, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def log_problems(text: str) -> list[str]:
    """Lines of a daemon log that no healthy run writes: tracebacks and crashes."""
    bad = ("Traceback (most recent call last)", "Exception in", "Unhandled", "CRITICAL")
    return [line for line in text.splitlines() if any(b in line for b in bad)]
