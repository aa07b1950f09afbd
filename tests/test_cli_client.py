"""The `p2p` client commands as real processes against a real admin API (serve_api over
the in-memory FakeAgent, run by tests/serve_fake.py in its own process)."""

import json
import os
import pathlib
import select
import socket
import stat
import subprocess
import sys
import time

import pytest

from p2p.core import cbor

ROOT = pathlib.Path(__file__).resolve().parent.parent
ALICE = "a1b2c3d4-0000-4000-8000-000000000001"
BOB = "a1b2ffff-0000-4000-8000-000000000002"  # revoked
NOT_RUNNING = "p2p: the daemon is not running (no API at 127.0.0.1:{port}); start it with `p2p daemon`\n"


class Daemon:
    def __init__(self, home: pathlib.Path) -> None:
        self.home = home
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests/serve_fake.py"), str(home)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline()
        assert line.startswith("ready "), line
        self.host, port = line.split()[1:]
        self.port = int(port)

    def deliver(self, relationship: str, text: str) -> None:
        self.proc.stdin.write(f"deliver {relationship} {text}\n")
        self.proc.stdin.flush()

    def play(self, relationship: str, mtype: str, thid: str) -> None:
        self.proc.stdin.write(f"play {relationship} {mtype} {thid}\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def p2p(home, *args, stdin=None, env=None):
    environ = {**os.environ, "P2P_HOME": str(home), **(env or {})}
    return subprocess.run([sys.executable, "-m", "p2p.cli", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env=environ)


def ok(out):
    assert out.returncode == 0, out.stderr
    assert out.stderr == "" or "Traceback" not in out.stderr
    return out.stdout


def one_line_error(out, code, start):
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert out.stderr.startswith(start), out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("home"))
    yield d
    d.stop()


@pytest.fixture
def fresh(tmp_path):
    d = Daemon(tmp_path)
    yield d
    d.stop()


def test_status(daemon):
    out = ok(p2p(daemon.home, "status"))
    assert "did:peer:2.Vz6MkFAKE" in out and "1 active, 1 revoked" in out and "p2p+tcp://" in out
    doc = json.loads(ok(p2p(daemon.home, "status", "--json")))
    assert doc["relationships"] == {"active": 1, "revoked": 1}


def test_home_option_wins_over_the_environment(daemon, tmp_path):
    out = p2p(tmp_path, "status", "--json", "--home", str(daemon.home))
    assert json.loads(ok(out))["did"].startswith("did:peer:2")


def test_invite(daemon):
    out = ok(p2p(daemon.home, "invite", "--label", "Shop", "--multi-use", "--qr"))
    lines = out.splitlines()
    assert lines[0].startswith("p2p:invite?_oob=")
    assert any("█" in line or "▀" in line for line in lines[1:]), "no QR code drawn"
    assert lines[-1].startswith("multi-use invitation ") and lines[-1].endswith("does not expire")
    out = ok(p2p(daemon.home, "invite"))  # not a terminal: no QR code unless asked
    assert len(out.splitlines()) == 2 and out.splitlines()[1].startswith("one-time invitation ")
    inv = json.loads(ok(p2p(daemon.home, "invite", "--expires-in", "15m", "--json")))
    assert inv["expires_time"] == inv["created_time"] + 900 and inv["multi_use"] is False
    out = p2p(daemon.home, "invite", "--expires-in", "soon")
    assert out.returncode == 2 and "not a duration" in out.stderr


def test_accept(daemon):
    url = json.loads(ok(p2p(daemon.home, "invite", "--label", "Corner Shop", "--json")))["url"]
    out = ok(p2p(daemon.home, "accept", url, "--label", "shop"))
    assert out.startswith("connected: shop ") and "'Corner Shop'" in out
    rel = json.loads(ok(p2p(daemon.home, "accept", url, "--json")))
    assert rel["role"] == "invitee" and rel["state"] == "active"


def test_accept_errors(daemon):
    one_line_error(p2p(daemon.home, "accept", "https://example.com/x"), 1, "p2p: invalid-invitation: ")
    out = p2p(daemon.home, "accept", "nonsense", "--json")
    assert out.returncode == 1 and json.loads(out.stderr)["error"] == "invalid-invitation"
    unreachable = json.loads(ok(p2p(daemon.home, "invite", "--label", "unreachable", "--json")))["url"]
    one_line_error(p2p(daemon.home, "accept", unreachable), 1, "p2p: unreachable: ")


def test_discover(daemon):
    out = ok(p2p(daemon.home, "discover", "--timeout", "0.5"))
    lines = out.splitlines()
    # Signed label, fingerprint and endpoint address per agent, numbered for --accept.
    assert lines[0].split() == ["1", "Corner", "Shop", "ydd2-56rz-lh7o-nrtv", "192.0.2.7:7400", "(!)", "also",
                                "advertised", "as", "\"Mallory's\""]
    assert lines[1].split() == ["2", "Corner", "Shop", "mmmm-aaaa-llll-orry", "192.0.2.7:7400"]
    assert lines[2].split()[:3] == ["3", "Fake", "Agent"] and lines[2].endswith("(this agent)")
    assert lines[3].startswith("note: 2 agents call themselves 'Corner Shop': the fingerprint tells them apart")
    assert lines[4].startswith("(1 advertisement(s) failed verification and are not shown")
    assert lines[5] == "to connect: p2p discover --accept N (or --accept FINGERPRINT)"
    assert "advertisement-mismatch" not in out and "p2p:invite" not in out
    debug = ok(p2p(daemon.home, "discover", "--debug"))
    assert "rejected  Corner Shop (ydd256rzlh7onrtv)-2._p2p._tcp.local.  advertisement-mismatch: " in debug
    assert "(from 192.0.2.66)" in debug and debug.count("    url       p2p:invite?_oob=") == 3
    assert "did       did:peer:2.Vz6MkMALLORY" in debug
    scan = json.loads(ok(p2p(daemon.home, "discover", "--json", "--timeout", "2")))
    assert [n["fingerprint"] for n in scan["nearby"]] == ["ydd256rzlh7onrtv", "mmmmaaaallllorry", "ownownownownown2"]
    assert scan["rejected"][0]["code"] == "advertisement-mismatch"


@pytest.mark.parametrize("timeout", ["0", "31", "-1", "nan", "soon"])
def test_discover_timeout_is_checked(daemon, timeout):
    out = p2p(daemon.home, "discover", "--timeout", timeout)
    assert out.returncode == 2 and "not a number of seconds in (0, 30]" in out.stderr


def test_discover_accept(fresh):
    out = ok(p2p(fresh.home, "discover", "--accept", "2", "--label", "the other one"))
    assert out.splitlines()[0] == "connecting to Corner Shop mmmm-aaaa-llll-orry at 192.0.2.7:7400 ..."
    assert out.splitlines()[1].startswith("connected: the other one ") and "'Corner Shop'" in out
    # By fingerprint, dashes and case as the user types them; JSON gives the relationship.
    rel = json.loads(ok(p2p(fresh.home, "discover", "--accept", "YDD2-56rz", "--json")))
    assert rel["role"] == "invitee" and rel["state"] == "active" and rel["their_label"] == "Corner Shop"
    one_line_error(p2p(fresh.home, "discover", "--accept", "3"), 2, "p2p: usage: that is this agent's own")
    one_line_error(p2p(fresh.home, "discover", "--accept", "9"), 1, "p2p: not-nearby: no entry 9: 3 agent(s)")
    one_line_error(p2p(fresh.home, "discover", "--accept", "zzzz"), 1, "p2p: not-nearby: no agent(s) nearby")
    one_line_error(p2p(fresh.home, "discover", "--accept", "yd"), 2, "p2p: usage: --accept takes the number")
    assert len(json.loads(ok(p2p(fresh.home, "connections", "--json")))) == 4  # seeded 2 + the two accepted


def test_connections(daemon):
    out = ok(p2p(daemon.home, "connections"))
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["ID", "LABEL", "THEIR"]
    assert any(r.startswith(ALICE[:12]) and "alice" in r and "active" in r for r in rows)
    assert any(r.startswith(BOB[:12]) and "revoked" in r for r in rows)
    revoked = json.loads(ok(p2p(daemon.home, "connections", "--state", "revoked", "--json")))
    assert [r["id"] for r in revoked] == [BOB]


@pytest.mark.parametrize("name", ["alice", "Alice", ALICE, "a1b2c", ALICE[:12]])
def test_send_by_label_prefix_or_id(daemon, name):
    msg = json.loads(ok(p2p(daemon.home, "send", name, f"hello via {name}", "--json")))
    assert msg["relationship"] == ALICE and msg["body"] == {"content": f"hello via {name}"}
    assert msg["type"] == "https://didcomm.org/basicmessage/2.0/message" and msg["state"] == "queued"


def test_send_options(daemon):
    out = ok(p2p(daemon.home, "send", "alice", "in a thread", "--thread", "thread-1"))
    assert out.startswith("queued ") and "to alice (thread thread-1)" in out
    msg = json.loads(ok(p2p(daemon.home, "send", "alice", "--type", "https://example.org/order/1.0/place",
                            "--body-json", '{"sku": "A-1", "qty": 2}', "--expires-in", "1h", "--json")))
    assert msg["body"] == {"sku": "A-1", "qty": 2} and msg["type"].endswith("/place")
    assert msg["expires_time"] == msg["created_time"] + 3600
    msg = json.loads(ok(p2p(daemon.home, "send", "alice", "-", "--json", stdin="from stdin\n")))
    assert msg["body"] == {"content": "from stdin\n"}


def test_send_errors(daemon):
    one_line_error(p2p(daemon.home, "send", "a1b2", "x"), 1, "p2p: unknown-connection: 'a1b2' matches 2 connections")
    one_line_error(p2p(daemon.home, "send", "carol", "x"), 1, "p2p: unknown-connection: no connection 'carol'")
    one_line_error(p2p(daemon.home, "send", "bob", "x"), 1, "p2p: relationship-revoked: ")
    one_line_error(p2p(daemon.home, "send", "alice"), 2, "p2p: usage: ")
    one_line_error(p2p(daemon.home, "send", "alice", "x", "--body-json", "{}"), 2, "p2p: usage: ")
    one_line_error(p2p(daemon.home, "send", "alice", "--body-json", "[1]"), 2, "p2p: usage: ")
    one_line_error(p2p(daemon.home, "send", "alice", "--body-json", "{nope"), 2, "p2p: usage: --body-json is not JSON")


def test_inbox(daemon):
    out = ok(p2p(daemon.home, "inbox"))
    assert "hello from alice" in out and "second message" in out
    assert all("alice" in line for line in out.splitlines())
    newest = json.loads(ok(p2p(daemon.home, "inbox", "--limit", "1", "--json")))
    assert [m["body"]["content"] for m in newest] == ["second message"]
    assert json.loads(ok(p2p(daemon.home, "inbox", "--connection", "alice", "--json")))[0]["direction"] == "in"
    assert p2p(daemon.home, "inbox", "--limit", "0").returncode == 2


def test_thread(daemon):
    out = ok(p2p(daemon.home, "thread", "thread-1"))
    lines = out.splitlines()
    assert "alice" in lines[0] and "hello from alice" in lines[0]
    assert " me " in lines[1] and "hi alice" in lines[1] and "[queued]" in lines[1]
    msgs = json.loads(ok(p2p(daemon.home, "thread", "thread-1", "--json")))
    assert [m["direction"] for m in msgs[:2]] == ["in", "out"]
    one_line_error(p2p(daemon.home, "thread", "no-such-thread"), 1, "p2p: unknown-thread: ")


def test_inbox_and_thread_show_application_messages_unless_all(fresh):
    ping = "https://didcomm.org/trust-ping/2.0/ping"
    fresh.play(ALICE, ping, "thread-1")
    for _ in range(100):  # the fake takes the command asynchronously
        everything = json.loads(ok(p2p(fresh.home, "inbox", "--all", "--json")))
        if any(m["type"] == ping for m in everything):
            break
        time.sleep(0.05)
    assert [m["type"] for m in everything][-1] == ping
    inbox = json.loads(ok(p2p(fresh.home, "inbox", "--json")))
    assert inbox == [m for m in everything if m["type"] != ping] and inbox
    assert "trust-ping" not in ok(p2p(fresh.home, "inbox"))
    thread = json.loads(ok(p2p(fresh.home, "thread", "thread-1", "--json")))
    assert ping not in [m["type"] for m in thread] and thread
    assert ping in [m["type"] for m in json.loads(ok(p2p(fresh.home, "thread", "thread-1", "--all", "--json")))]
    # A thread of protocol messages only exists, and is empty by default.
    fresh.play(ALICE, ping, "ping-thread")
    for _ in range(100):
        if p2p(fresh.home, "thread", "ping-thread", "--all").returncode == 0:
            break
        time.sleep(0.05)
    assert json.loads(ok(p2p(fresh.home, "thread", "ping-thread", "--json"))) == []


def test_ping_and_features(daemon):
    assert ok(p2p(daemon.home, "ping", "alice")) == "pong from alice in 1.2 ms\n"
    assert json.loads(ok(p2p(daemon.home, "ping", "alice", "--json"))) == {"rtt_ms": 1.25}
    out = ok(p2p(daemon.home, "features", "alice"))
    assert "https://didcomm.org/trust-ping/2.0 (sender, receiver)" in out
    features = json.loads(ok(p2p(daemon.home, "features", "alice", "--match", "*basic*", "--json")))
    assert features == [] or all("basic" in f["id"] for f in features)
    one_line_error(p2p(daemon.home, "ping", "bob"), 1, "p2p: relationship-revoked: ")


def test_revoke(fresh):
    out = ok(p2p(fresh.home, "revoke", "alice", "--reason", "moved"))
    assert out == f"revoked alice ({ALICE})\n"
    # alice is revoked now, and so is bob: the label resolves, the API refuses.
    one_line_error(p2p(fresh.home, "revoke", "alice", "--json"), 1, '{"error": "relationship-revoked"')
    assert json.loads(ok(p2p(fresh.home, "status", "--json")))["relationships"] == {"revoked": 2}


def test_events(fresh):
    proc = subprocess.Popen([sys.executable, "-m", "p2p.cli", "events", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "P2P_HOME": str(fresh.home)})
    try:
        deadline = time.monotonic() + 20
        line = ""
        while not line and time.monotonic() < deadline:
            fresh.deliver(ALICE, "live one")  # repeated until the subscription is up
            if select.select([proc.stdout], [], [], 0.3)[0]:
                line = proc.stdout.readline()
        event = json.loads(line)
        assert event["event"] == "message.received" and event["message"]["body"] == {"content": "live one"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_export(fresh, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    everything = json.loads(ok(p2p(fresh.home, "export")))
    assert everything["format"] == "p2p-export" and everything["version"] == 1
    assert everything["agent"]["did"].startswith("did:peer:2")
    by_id = {r["relationship"]["id"]: r for r in everything["relationships"]}
    assert set(by_id) == {ALICE, BOB}
    assert [m["body"]["content"] for m in by_id[ALICE]["messages"]] == ["hello from alice", "hi alice", "second message"]
    # each relationship's record (tickets, records, agreements, notification settings) is in it
    assert by_id[ALICE]["tickets"] == [{"id": "t-" + ALICE[-4:], "state": "open"}]
    assert by_id[BOB]["agreements"] == [] and by_id[BOB]["ownership"] == []

    out = ok(p2p(fresh.home, "export", "alice", "-o", str(tmp_path / "alice.json")))
    assert out == f"exported 1 connection(s) and 3 message(s) to {tmp_path / 'alice.json'}\n"
    one = json.loads((tmp_path / "alice.json").read_text())
    assert one["relationships"] == [by_id[ALICE]]
    assert stat.S_IMODE(os.stat(tmp_path / "alice.json").st_mode) == 0o600

    summary = json.loads(ok(p2p(fresh.home, "export", "--format", "cbor", "-o", str(tmp_path / "all.cbor"), "--json")))
    assert summary == {"file": str(tmp_path / "all.cbor"), "format": "cbor", "relationships": 2, "messages": 3}
    decoded = cbor.loads((tmp_path / "all.cbor").read_bytes(), max_size=1 << 24)
    assert decoded["relationships"] == everything["relationships"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice.json", "all.cbor"]  # no temporary files


def test_mute_and_unmute(fresh):
    out = ok(p2p(fresh.home, "mute", "alice"))
    assert out.startswith("muted alice") and "without alerts" in out
    assert json.loads(ok(p2p(fresh.home, "connections", "--json")))[0]["muted"] is True
    assert json.loads(ok(p2p(fresh.home, "unmute", "alice", "--json")))["muted"] is False


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_daemon_not_running(tmp_path):
    port = _closed_port()
    (tmp_path / "api.json").write_text(json.dumps({"version": 1, "host": "127.0.0.1", "port": port, "pid": 1}))
    for command in (["status"], ["connections", "--json"], ["send", "alice", "x"], ["events"]):
        out = p2p(tmp_path, *command)
        assert out.returncode == 3 and "Traceback" not in out.stderr
        if "--json" in command:
            assert json.loads(out.stderr)["error"] == "daemon-not-running"
        else:
            assert out.stderr == NOT_RUNNING.format(port=port)


def test_daemon_not_running_default_address(tmp_path):
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 7401)) == 0:
            pytest.skip("something listens on 127.0.0.1:7401")
    out = p2p(tmp_path, "status")
    assert out.returncode == 3 and out.stderr == NOT_RUNNING.format(port=7401)


def test_wrong_or_missing_token(daemon, tmp_path):
    (tmp_path / "api.json").write_text((daemon.home / "api.json").read_text())
    out = p2p(tmp_path, "status")  # no api-token in this home
    one_line_error(out, 4, "p2p: no API token in ")
    (tmp_path / "api-token").write_text("not-the-token\n")
    one_line_error(p2p(tmp_path, "status"), 4, "p2p: the daemon refused the API token in ")
    (tmp_path / "api-token").write_text("bad token with spaces\n")
    one_line_error(p2p(tmp_path, "status"), 1, "p2p: api-file-error: ")


def test_accept_names_the_connection_after_the_inviter(fresh):
    url = json.loads(ok(p2p(fresh.home, "invite", "--label", "Corner Shop", "--json")))["url"]
    out = ok(p2p(fresh.home, "accept", url))
    assert out.startswith("connected: Corner Shop ") and "they call themselves" not in out
    assert json.loads(ok(p2p(fresh.home, "ping", "Corner Shop", "--json"))) == {"rtt_ms": 1.25}


def test_a_label_naming_several_connections(fresh):
    url = json.loads(ok(p2p(fresh.home, "invite", "--json")))["url"]
    first = json.loads(ok(p2p(fresh.home, "accept", url, "--label", "dup", "--json")))
    ok(p2p(fresh.home, "accept", url, "--label", "dup"))
    one_line_error(p2p(fresh.home, "ping", "dup"), 1, "p2p: unknown-connection: 'dup' names 2 connections")
    ok(p2p(fresh.home, "revoke", first["id"][:13], "--yes"))
    assert json.loads(ok(p2p(fresh.home, "ping", "dup", "--json"))) == {"rtt_ms": 1.25}  # the active one
