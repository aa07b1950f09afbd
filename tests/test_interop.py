"""The language-neutral vectors: they pass through our adapter, and every CBOR value
they name validates against the CDDL in spec/cddl."""

import glob
import json
import pathlib
import subprocess
import sys

import cddl_verifier
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
VECTORS = sorted((ROOT / "interop" / "vectors").glob("*/*.json"))
CDDL = "".join(pathlib.Path(f).read_text() + "\n" for f in sorted(glob.glob(str(ROOT / "spec" / "cddl" / "*.cddl"))))


SCHEMA = cddl_verifier.Validator(CDDL)


def validate(rule: str, data: bytes):
    # require_deterministic: every CBOR value we publish is in RFC 8949 4.2.1 form
    return SCHEMA.validate(data, rule, require_deterministic=True)


def test_runner_passes_every_vector():
    out = subprocess.run([sys.executable, str(ROOT / "interop" / "run.py")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.strip().endswith(f"{len(VECTORS)} passed, 0 failed")


def test_vector_set_is_big_enough_and_rejects_a_third():
    rejects = sum(json.loads(p.read_text()).get("reject", False) for p in VECTORS)
    assert len(VECTORS) >= 60
    assert rejects * 3 >= len(VECTORS)


def test_runner_reports_the_diverging_step(tmp_path):
    # A fake implementation that answers every request wrongly must fail every vector.
    fake = tmp_path / "fake.py"
    fake.write_text("import sys, json\nfor l in sys.stdin:\n    print(json.dumps({'id': json.loads(l)['id'], 'x': 1}), flush=True)\n")
    out = subprocess.run([sys.executable, str(ROOT / "interop" / "run.py"), "--impl", f"{sys.executable} {fake}"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert out.stdout.strip().endswith(f"0 passed, {len(VECTORS)} failed")
    assert "missing from reply" in out.stdout


def _cddl_checks():
    for path in VECTORS:
        vector = json.loads(path.read_text())
        for key, rule in vector.get("cddl", {}).items():
            yield pytest.param(path, key, rule, id=f"{path.parent.name}/{path.stem}:{key}")


@pytest.mark.parametrize("path, key, rule", list(_cddl_checks()))
def test_cbor_in_vectors_matches_cddl(path, key, rule):
    vector = json.loads(path.read_text())
    value = vector["expect"].get(key, vector["request"].get(key))
    assert isinstance(value, str), f"{key} not found in {path.name}"
    result = validate(rule, bytes.fromhex(value))
    assert result.valid, [d.message for d in result.diagnostics]


def test_cddl_rejects_a_broken_message():
    # guards against a schema so loose that the check above could never fail
    assert validate("msg-message", bytes.fromhex("a36269640164626f6479a06474797065617a")).valid is False
    assert validate("msg-message", bytes.fromhex("a36269646131" "64626f6479a0" "6474797065617a")).valid is True
    # same map, keys not in bytewise order: not deterministic, so not publishable
    assert validate("msg-message", bytes.fromhex("a36269646131" "6474797065617a" "64626f6479a0")).valid is False
