"""The `p2p` command's daemon-free subcommands, run as a real process."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def p2p(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "p2p.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_resolve_prints_the_did_document():
    did = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    out = p2p("resolve", did)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["id"] == did


def test_bad_did_is_one_line_error_and_nonzero_exit():
    out = p2p("resolve", "did:key:zzz")
    assert out.returncode == 1
    assert out.stderr.startswith("p2p: invalid-did:") and out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr


def test_inspect_decodes_an_envelope_from_hex():
    vector = json.loads((ROOT / "interop/vectors/envelope/001-seal-signed.json").read_text())
    out = p2p("inspect", "-", stdin=vector["expect"]["envelope"])
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["tag"] == 18


def test_inspect_reports_truncation():
    out = p2p("inspect", "-", stdin="a2016161")
    assert out.returncode == 1 and out.stderr.startswith("p2p: truncated:")


def test_inbox_summary_says_what_a_message_says():
    from p2p.cli._common import _summary
    n = "https://p2p.example/notifications/1.0/notify"
    assert _summary({"type": n, "body": {"title": "Order shipped", "body": "Today."}}) == \
        "notifications/1.0/notify: Order shipped: Today."
    assert _summary({"type": "https://p2p.example/support/1.0/open", "body": {"subject": "Lid", "text": "Scratched"}}) \
        == "support/1.0/open: Lid / Scratched"
    assert _summary({"type": "https://p2p.example/ownership/1.0/record", "body": {}, "attachments": [{"id": "record"}]}) \
        == "ownership/1.0/record: (1 attachment)"
    assert _summary({"type": "https://example.com/x/1.0/y", "body": {"a": 1}}) == 'x/1.0/y: {"a": 1}'
    assert len(_summary({"type": n, "body": {"title": "t" * 300}})) == 100
