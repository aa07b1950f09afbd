"""The daemon as a process and as a service: home, config, init, lock, logging, signals.

The process tests run `python -m p2p.cli daemon` with P2P_HOME in a temporary
directory and check that SIGTERM ends it with status 0 within seconds, and that
its log holds no secret. The in-process test runs p2p.daemon.run with the same
log formatter at debug level while two agents exchange messages, then greps the
log for every secret key (agent and pairwise) and for the message bodies.
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from p2p import daemon
from p2p.agent import Agent
from p2p.core.errors import P2PError
from p2p.core.keys import AgentKeys
from p2p.home import DEFAULT_PORT, HomeLock, init, load_config
from p2p.store import SQLiteStore
from p2p.store.keyfile import Sealer

ROOT = Path(__file__).resolve().parent.parent
BASIC = "https://didcomm.org/basicmessage/2.0/message"


def write_config(home: Path, text: str) -> None:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


def secrets_of(db: Path) -> list[str]:
    """Hex of every secret key in a store without passphrase: the agent's key set
    and every pairwise key set that is still there."""
    store = SQLiteStore(db)
    try:
        blobs = [store.get_identity().secret] + [r.our_secret for r in store.list_relationships() if r.our_secret]
    finally:
        store.close()
    out = []
    for blob in blobs:
        keys = AgentKeys.from_cbor(Sealer(None).open(blob))
        out += [keys.signing.seed.hex(), keys.agreement.secret.hex(), keys.signing.secret64.hex()]
    return out


# --- config and init ----------------------------------------------------------------------


def test_config_defaults_and_advertise_rules(tmp_path):
    cfg = load_config(tmp_path / "h", environ={})
    assert (cfg.listen_host, cfg.listen_port, cfg.synchronous) == ("0.0.0.0", DEFAULT_PORT, "normal")
    assert cfg.advertise_host == "127.0.0.1" and cfg.advertise_warning
    cfg = load_config(tmp_path / "h", environ={"P2P_ADVERTISE": "shop.example"})
    assert cfg.advertise_host == "shop.example" and not cfg.advertise_warning
    write_config(tmp_path / "h", 'listen_host = "10.1.2.3"\nlisten_port = 7500\nsynchronous = "full"\n'
                                 'label = "Corner Shop"\n[limits]\nmax_connections = 100\n')
    cfg = load_config(tmp_path / "h", environ={"P2P_PASSPHRASE": "pw"})
    assert (cfg.advertise_host, cfg.listen_port, cfg.synchronous, cfg.label) == ("10.1.2.3", 7500, "full",
                                                                                 "Corner Shop")
    assert cfg.limits.max_connections == 100 and cfg.passphrase == "pw" and "pw" not in repr(cfg)
    write_config(tmp_path / "h", 'listen_prot = 1\n')
    with pytest.raises(P2PError) as e:
        load_config(tmp_path / "h", environ={})
    assert e.value.code == "config-error"
    write_config(tmp_path / "h", '[limits]\nmax_connections = 10\n')  # below max_handshaking
    with pytest.raises(P2PError) as e:
        load_config(tmp_path / "h", environ={})
    assert e.value.code == "config-error"
    write_config(tmp_path / "h", 'synchronous = "off"\n')
    with pytest.raises(P2PError):
        load_config(tmp_path / "h", environ={})


def test_passphrase_file_is_read(tmp_path):
    home = tmp_path / "h"
    write_config(home, 'passphrase_file = "pass.txt"\n')
    (home / "pass.txt").write_text("correct horse\n")
    assert load_config(home, environ={}).passphrase == "correct horse"


def run_cli(*args, home: Path, timeout: float = 60):
    env = dict(os.environ, P2P_HOME=str(home), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "p2p.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout)


def test_init_creates_a_private_home_and_refuses_to_overwrite(tmp_path):
    home = tmp_path / "agent-home"
    out = run_cli("init", home=home)
    assert out.returncode == 0, out.stderr
    did = out.stdout.strip()
    assert did.startswith("did:peer:2.V") and "\n" not in did
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "agent.db").stat().st_mode) == 0o600
    again = run_cli("init", home=home)
    assert again.returncode == 1 and again.stderr.startswith("p2p: already-initialized:")
    assert "Traceback" not in again.stderr
    store = SQLiteStore(home / "agent.db")
    assert store.get_identity().did == did  # untouched
    store.close()


def test_init_with_passphrase_seals_the_keys(tmp_path):
    cfg = load_config(tmp_path / "h", environ={"P2P_PASSPHRASE": "s3cret"})
    init(cfg)
    store = SQLiteStore(cfg.db_path)
    blob = store.get_identity().secret
    store.close()
    with pytest.raises(P2PError) as e:
        Sealer(None).open(blob)
    assert e.value.code == "passphrase-required"
    assert len(Sealer("s3cret").open(blob)) > 64


def test_home_lock_allows_one_daemon(tmp_path):
    with HomeLock(tmp_path / "daemon.lock"):
        with pytest.raises(P2PError) as e:
            HomeLock(tmp_path / "daemon.lock").acquire()
        assert e.value.code == "home-locked"
    with HomeLock(tmp_path / "daemon.lock"):  # released: free again
        pass


# --- the process ----------------------------------------------------------------------------


def test_daemon_process_starts_without_init_and_stops_on_sigterm(tmp_path):
    home = tmp_path / "home"
    write_config(home, 'listen_host = "127.0.0.1"\nlisten_port = 0\n[api]\nport = 0\n')
    env = dict(os.environ, P2P_HOME=str(home), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "p2p.cli", "daemon"], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rest = ""
    try:
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "event=daemon.ready" in line:
                break
        assert any("event=daemon.ready" in l for l in lines), "".join(lines)
        # a second daemon on the same home is refused
        second = run_cli("daemon", home=home, timeout=30)
        assert second.returncode == 1 and "home-locked" in second.stderr
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = "".join(lines) + rest
    assert "event=daemon.signal signal=SIGTERM" in log and "event=daemon.stopped" in log
    for line in log.splitlines():
        assert line.startswith("ts=") and " level=" in line and " event=" in line, line
    for secret in secrets_of(home / "agent.db"):
        assert secret not in log
    assert "Traceback" not in log


# --- in process: logs of real traffic hold no secret ---------------------------------------


async def test_log_lines_hold_no_secret_and_no_body(tmp_path):
    stream = io.StringIO()
    cfg_a = load_config(tmp_path / "a", environ={})
    cfg_a = type(cfg_a)(**{**{f: getattr(cfg_a, f) for f in cfg_a.__dataclass_fields__},
                           "listen_host": "127.0.0.1", "listen_port": 0, "log_level": "debug",
                           "api": {"enabled": False}})
    daemon.setup_logging(cfg_a, stream)
    body_marker = "the-body-must-not-be-logged-7f3a"
    try:
        async with trio.open_nursery() as nursery:
            stop = trio.Event()
            a = await nursery.start(lambda task_status: daemon.run(cfg_a, handle_signals=False, stop=stop,
                                                                   task_status=task_status))
            cfg_b = type(cfg_a)(**{**{f: getattr(cfg_a, f) for f in cfg_a.__dataclass_fields__},
                                   "home": tmp_path / "b"})
            b = Agent.open(cfg_b)
            b_scope = trio.CancelScope()

            async def run_b(task_status=trio.TASK_STATUS_IGNORED):
                with b_scope:
                    await b.run(task_status=task_status)

            await nursery.start(run_b)
            rel_b = await b.accept_invitation((await a.create_invitation())["url"])
            rel_a = (await a.list_relationships())[0]
            await b.send_many(rel_b["id"], [dict(type=BASIC, body={"content": body_marker, "n": i})
                                            for i in range(20)])
            await a.send(rel_a["id"], type="https://example.org/unknown/1.0/x", body={"content": body_marker})
            await a.ping(rel_a["id"])
            with trio.fail_after(10):
                while len(await a.messages(direction="in", type=BASIC)) < 20:
                    await trio.sleep(0.02)
            # every secret, read before the revoke erases the pairwise ones
            keys = secrets_of(cfg_a.db_path) + secrets_of(cfg_b.db_path)
            assert len(keys) == 12
            await a.revoke(rel_a["id"], reason=body_marker)
            await trio.sleep(0.3)
            await b.shutdown()
            b_scope.cancel()
            b.close()
            stop.set()
    finally:
        logging_handler_reset()
    log = stream.getvalue()
    assert "event=connection.established" in log and "event=relationship.revoked" in log
    assert "level=debug" in log or "level=info" in log
    assert body_marker not in log
    for secret in keys:
        assert secret not in log


def logging_handler_reset() -> None:
    import logging

    root = logging.getLogger("p2p")
    for h in list(root.handlers):
        root.removeHandler(h)
    root.propagate = True
    root.setLevel(logging.NOTSET)


def test_json_log_format():
    import logging

    fmt = daemon.EventFormatter("json")
    rec = logging.LogRecord("p2p.agent", logging.INFO, __file__, 1, "message.rejected", None, None)
    rec.fields = {"relationship": "r1", "code": "invalid-field"}
    doc = json.loads(fmt.format(rec))
    assert doc["event"] == "message.rejected" and doc["code"] == "invalid-field" and doc["level"] == "info"
    text = daemon.EventFormatter().format(rec)
    assert text.endswith("event=message.rejected relationship=r1 code=invalid-field")
