"""Sealed secret blobs: round trip, wrong passphrase, tampering, downgrade, file writes."""

from __future__ import annotations

import hashlib
import os
import pathlib
import stat

import nacl.pwhash.argon2id as argon2id
import nacl.secret
import pytest

from p2p.core import cbor
from p2p.store import keyfile
from p2p.store.keyfile import (
    BadPassphrase,
    KeyfileCorrupt,
    KeyfileError,
    PassphraseRequired,
    Sealer,
)

# Tests use the cheapest Argon2id parameters; the defaults (MODERATE) cost ~0.7 s.
FAST = dict(opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN)
SECRET = bytes(range(64))


def sealer(pw="correct horse", **kw):
    return Sealer(pw, **{**FAST, **kw})


def test_round_trip_and_fresh_nonce_per_blob():
    s = sealer()
    a, b = s.seal(SECRET), s.seal(SECRET)
    assert a != b
    assert s.open(a) == SECRET and s.open(b) == SECRET
    assert sealer().open(a) == SECRET  # a new Sealer with the same passphrase
    assert SECRET not in a


def test_format_matches_the_documented_construction():
    """Open a sealed blob with nothing but the formula in the module docstring and
    pynacl's own XChaCha20-Poly1305 AEAD class (not the code under test)."""
    blob = sealer("pässword").seal(SECRET)
    doc = cbor.loads(blob, max_size=4096)
    assert set(doc) == {"v", "kdf", "salt", "opslimit", "memlimit", "check", "nonce", "ct"}
    assert (doc["v"], doc["kdf"], doc["opslimit"], doc["memlimit"]) == (
        1, "argon2id13", argon2id.OPSLIMIT_MIN, argon2id.MEMLIMIT_MIN)
    assert cbor.dumps(doc) == blob  # deterministic encoding
    master = argon2id.kdf(32, "pässword".encode(), doc["salt"], opslimit=doc["opslimit"],
                          memlimit=doc["memlimit"])
    key = hashlib.blake2b(key=master, person=b"p2p-kf-encrypt", digest_size=32).digest()
    check = hashlib.blake2b(key=master, person=b"p2p-kf-check", digest_size=16).digest()
    assert check == doc["check"]
    aad = cbor.dumps([1, "argon2id13", doc["salt"], doc["opslimit"], doc["memlimit"], doc["check"]])
    assert nacl.secret.Aead(key).decrypt(doc["nonce"] + doc["ct"], aad) == SECRET


def test_passphrase_is_nfc_normalised():
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert sealer(decomposed).open(sealer(composed).seal(SECRET)) == SECRET


def test_wrong_passphrase():
    blob = sealer("right").seal(SECRET)
    with pytest.raises(BadPassphrase) as e:
        sealer("wrong").open(blob)
    assert e.value.code == "bad-passphrase"


def test_no_passphrase_means_explicitly_unencrypted():
    plain = Sealer(None)
    blob = plain.seal(SECRET)
    assert cbor.loads(blob, max_size=4096) == {"v": 1, "kdf": "none", "pt": SECRET}
    assert plain.open(blob) == SECRET
    with pytest.raises(PassphraseRequired):
        plain.open(sealer().seal(SECRET))
    # A clear blob where an encrypted one is expected is a swap, not a format choice.
    with pytest.raises(KeyfileCorrupt, match="not encrypted"):
        sealer().open(blob)


def test_ciphertext_tamper_with_right_passphrase():
    s = sealer()
    doc = cbor.loads(s.seal(SECRET), max_size=4096)
    doc["ct"] = bytes([doc["ct"][0] ^ 1]) + doc["ct"][1:]
    with pytest.raises(KeyfileCorrupt, match="altered"):
        s.open(cbor.dumps(doc))


def test_every_single_byte_change_truncation_and_extension_is_refused():
    s = sealer()
    blob = s.seal(SECRET)
    mutants = [blob[:i] + bytes([blob[i] ^ bit]) + blob[i + 1:] for i in range(len(blob)) for bit in (0x01, 0x80)]
    mutants += [blob[:n] for n in range(len(blob))] + [blob + b"\x00", b"", b"\xa0", b"\xf6"]
    for m in mutants:
        try:
            got = s.open(m)
        except KeyfileError:
            continue
        pytest.fail(f"mutant accepted, returned {got!r}")


@pytest.mark.parametrize("field,value", [
    ("memlimit", keyfile.MEMLIMIT_MAX + 1), ("opslimit", keyfile.OPSLIMIT_MAX + 1),
    ("memlimit", 0), ("opslimit", 0), ("salt", b"short"), ("nonce", b"x" * 12), ("v", 2),
    ("kdf", "scrypt"), ("ct", "text"),
])
def test_forged_parameters_are_refused_before_any_work(field, value):
    doc = cbor.loads(sealer().seal(SECRET), max_size=4096)
    doc[field] = value
    with pytest.raises(KeyfileCorrupt):
        sealer().open(cbor.dumps(doc))


def test_one_derivation_per_salt(monkeypatch):
    calls = []
    real = argon2id.kdf
    monkeypatch.setattr(argon2id, "kdf", lambda *a, **k: calls.append(1) or real(*a, **k))
    s = sealer()
    blobs = [s.seal(bytes([i]) * 32) for i in range(20)]
    assert [s.open(b)[0] for b in blobs] == list(range(20))
    assert len(calls) == 1


def test_adopt_salt_one_derivation_across_restarts(monkeypatch):
    calls = []
    real = argon2id.kdf
    monkeypatch.setattr(argon2id, "kdf", lambda *a, **k: calls.append(1) or real(*a, **k))
    identity = sealer().seal(SECRET)  # the first run (p2p init): one derivation
    assert len(calls) == 1
    for restart in range(3):  # each restart: open the identity, adopt, seal pairwise keys
        s = sealer()
        assert s.open(identity) == SECRET
        assert s.adopt_salt(identity) is True
        blobs = [s.seal(bytes([restart, i]) * 16) for i in range(5)]
        salts = {cbor.loads(b, max_size=4096)["salt"] for b in blobs}
        assert salts == {cbor.loads(identity, max_size=4096)["salt"]}
        assert [s.open(b) for b in blobs] == [bytes([restart, i]) * 16 for i in range(5)]
    assert len(calls) == 1 + 3  # one per process, not one more for the first seal
    # Without adopt_salt a restarted sealer picks a new salt: a second derivation.
    s = sealer()
    s.open(identity)
    s.seal(b"x")
    assert len(calls) == 1 + 3 + 2


def test_adopt_salt_checks_and_refuses_weaker_parameters():
    identity = sealer().seal(SECRET)
    with pytest.raises(BadPassphrase):
        sealer("wrong").adopt_salt(identity)
    doc = cbor.loads(identity, max_size=4096)
    doc["ct"] = doc["ct"][:-1] + bytes([doc["ct"][-1] ^ 1])
    with pytest.raises(KeyfileCorrupt):
        sealer().adopt_salt(cbor.dumps(doc))
    assert Sealer(None).adopt_salt(Sealer(None).seal(SECRET)) is False  # nothing to adopt
    with pytest.raises(KeyfileCorrupt):
        sealer().adopt_salt(Sealer(None).seal(SECRET))  # a clear blob under a passphrase
    # A blob sealed at a lower cost than ours is opened, but its salt and cost are not
    # taken over: what we seal next keeps our cost.
    stronger = sealer(opslimit=argon2id.OPSLIMIT_MIN + 1)
    assert stronger.adopt_salt(identity) is False
    assert cbor.loads(stronger.seal(b"k"), max_size=4096)["opslimit"] == argon2id.OPSLIMIT_MIN + 1
    # A blob sealed at a higher cost is adopted with its cost.
    weaker = sealer()
    assert weaker.adopt_salt(stronger.seal(b"k")) is True
    assert cbor.loads(weaker.seal(b"z"), max_size=4096)["opslimit"] == argon2id.OPSLIMIT_MIN + 1


def test_one_shot_helpers_with_interactive_cost():
    kw = dict(opslimit=argon2id.OPSLIMIT_INTERACTIVE, memlimit=argon2id.MEMLIMIT_INTERACTIVE)
    blob = keyfile.seal(SECRET, "pw", **kw)
    assert keyfile.open_sealed(blob, "pw") == SECRET
    with pytest.raises(BadPassphrase):
        keyfile.open_sealed(blob, "wp")
    with pytest.raises(KeyfileError):
        keyfile.seal(SECRET, "pw", opslimit=0, memlimit=0)


def test_write_atomic_is_private_and_replaces(tmp_path):
    path = tmp_path / "identity.key"
    old = os.umask(0)
    try:
        keyfile.write_atomic(path, b"one")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        keyfile.write_atomic(path, b"two")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["identity.key"]  # no temporary left behind


def test_write_atomic_failure_leaves_old_file(tmp_path, monkeypatch):
    path = tmp_path / "identity.key"
    keyfile.write_atomic(path, b"old")

    def boom(fd):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        keyfile.write_atomic(path, b"new")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["identity.key"]


def test_save_and_load_secret(tmp_path):
    path = tmp_path / "k"
    keyfile.save_secret(path, SECRET, sealer())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert keyfile.load_secret(path, sealer()) == SECRET
    with pytest.raises(BadPassphrase):
        keyfile.load_secret(path, sealer("nope"))
    path.write_bytes(b"\x00" * (keyfile.MAX_BLOB + 10))
    with pytest.raises(KeyfileCorrupt):
        keyfile.load_secret(path, sealer())


def test_blobs_match_the_cddl_in_spec():
    import glob

    import cddl_verifier

    root = pathlib.Path(__file__).resolve().parent.parent
    schema = cddl_verifier.Validator("".join(pathlib.Path(f).read_text() + "\n" for f in sorted(glob.glob(str(root / "spec/cddl/*.cddl")))))
    for blob in (keyfile.seal(b"secret", None), keyfile.seal(b"secret", "pw", opslimit=1, memlimit=8 << 20)):
        result = schema.validate(blob, "keyfile", require_deterministic=True)
        assert result.valid, [d.message for d in result.diagnostics]
