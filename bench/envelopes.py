"""Envelope benchmark: p2p's COSE envelopes and Noise transport against their
primitive ceiling and against DIDComm v2 (`didcomm` 0.3.2), all in one run.

    python bench/envelopes.py            # full run, < 60 s (first run also makes a venv)
    python bench/envelopes.py --quick    # smoke run: few iterations, same code paths
    python bench/envelopes.py --no-didcomm --json out.json

What is printed, for a 1 KiB message (a p2p plaintext message encoded to exactly
1024 bytes of CBOR; DIDComm gets the same body text):
  * seal and open rates of each envelope kind: median of 3 passes, one core (the
    process is pinned to one CPU), every pass cut into slices that visit all the
    measurements in turn, so ratios compare figures taken side by side;
  * the ceiling: the primitive operations a minimal implementation of that kind must
    do, each timed in this same run with pynacl / hashlib, summed; ratio = ceiling
    time / our time (1.0 would be "no overhead at all");
  * didcomm 0.3.2 doing the same job, run in its own venv (bench/.venv-didcomm,
    created on first use) by bench/didcomm_peer.py, as a speed-up factor;
  * Noise transport encrypt + decrypt of 1 KiB frames against ChaCha20-Poly1305;
  * one verdict line per target of the issue.
bench/README.md explains the method and how to read the figures.
"""

from __future__ import annotations

import argparse
import gc
import hmac
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # run from anywhere without installing p2p
sys.path.insert(0, str(BENCH))

import nacl.bindings as nb  # noqa: E402

import _timing  # noqa: E402
from p2p.core import envelope, message, noise  # noqa: E402

DIDCOMM_VERSION = "0.3.2"
DIDCOMM_VENV = BENCH / ".venv-didcomm"
MESSAGE_BYTES = 1024
NOW = 1_700_000_000

# Targets from the issue.
TARGET_CEILING_RATIO = 0.50  # authcrypt seal+open >= 50% of its (cached-ECDH) ceiling
TARGET_VS_DIDCOMM_AUTHCRYPT = 10.0
TARGET_VS_DIDCOMM_SIGNED_AUTHCRYPT = 5.0

FULL_ITERATIONS, QUICK_ITERATIONS = 4000, 30
FULL_DIDCOMM_ITERATIONS, QUICK_DIDCOMM_ITERATIONS = 300, 5
FULL_SLICES, QUICK_SLICES = 8, 2


# --- timing: interleaved passes ----------------------------------------------------


class Pair:
    """Median seal and open costs (us/op) of one measurement."""

    __slots__ = ("seal_us", "open_us", "total_us")

    def __init__(self, seal_us: float, open_us: float, total_us: float) -> None:
        self.seal_us, self.open_us, self.total_us = seal_us, open_us, total_us

    def as_dict(self) -> dict[str, float]:
        return {"seal_us": self.seal_us, "open_us": self.open_us, "total_us": self.total_us}


class Bench:
    """Every measurement is a seal pass (n operations on fresh inputs) followed by an
    open pass over what it produced; p2p kinds, jobs, Noise and primitives alike.

    Shared machines speed up and slow down over seconds, and a ratio between two
    figures taken ten seconds apart measures that drift as much as the code. So each
    of the 3 passes is cut into slices, and every slice visits every measurement
    (start rotating): a slow spell is spread over all of them, and ceilings and
    ours are timed side by side. Per-message random values are drawn before each
    slice, outside the timed region (the sans-IO core takes them as arguments)."""

    def __init__(self, n: int, slices: int) -> None:
        self.slices = max(1, min(slices, n))
        self.per_slice = max(1, n // self.slices)
        self.n = self.per_slice * self.slices
        self._items: dict[str, tuple] = {}
        self._ns: dict[str, list[list[int]]] = {}  # name -> per pass [seal ns, open ns]

    def add(self, name: str, draw: Callable[[int], list], seal_pass: Callable[[list], list],
            open_pass: Callable[[list], list] = list, check: Callable[[list, list], None] | None = None) -> None:
        warm = seal_pass(draw(min(self.n, 20)))  # warm-up: caches, lazily built constants
        opened = open_pass(warm)
        if check:
            check(warm, opened)
        self._items[name] = (draw, seal_pass, open_pass, check)

    def run(self, after_pass: Callable[[int], None] | None = None) -> None:
        names = list(self._items)
        self._ns = {name: [] for name in names}
        for p in range(_timing.PASSES):
            totals = {name: [0, 0] for name in names}
            for s in range(self.slices):
                gc.collect()
                r = s % len(names)
                for name in names[r:] + names[:r]:
                    draw, seal_pass, open_pass, check = self._items[name]
                    inputs = draw(self.per_slice)
                    t_seal, sealed = _timing.timed(lambda: seal_pass(inputs), collect=False)
                    t_open, opened = _timing.timed(lambda: open_pass(sealed), collect=False)
                    if check:  # outside the timed region: we compare real, correct work
                        check(sealed, opened)
                    totals[name][0] += t_seal
                    totals[name][1] += t_open
            for name in names:
                self._ns[name].append(totals[name])
            if after_pass:
                after_pass(p)

    def pair(self, name: str) -> Pair:
        ns = self._ns[name]
        return Pair(_timing.median_us([s for s, _ in ns], self.n), _timing.median_us([o for _, o in ns], self.n),
                    _timing.median_us([s + o for s, o in ns], self.n))


def nothing(n: int) -> list:
    return [None] * n


def randoms(*sizes: int) -> Callable[[int], list]:
    """A `draw` giving each message its own random values (ephemeral secret, IV,
    PartyU nonce): p2p's core takes randomness as arguments, so it is drawn outside
    the timed region, for the ceiling just the same."""
    if len(sizes) == 1:
        return lambda n: [os.urandom(sizes[0]) for _ in range(n)]
    return lambda n: [tuple(os.urandom(s) for s in sizes) for _ in range(n)]


# --- the ceiling: primitives, timed in this run ----------------------------------------


def hkdf_sha256_min(ikm: bytes, info: bytes) -> bytes:
    """The least an HKDF-SHA256 to 32 bytes can do: one extract, one expand block."""
    return hmac.digest(hmac.digest(b"\x00" * 32, ikm, "sha256"), info + b"\x01", "sha256")


PRIMITIVES = {
    "ed25519_sign": "Ed25519 sign, 1 KiB (nacl crypto_sign)",
    "ed25519_verify": "Ed25519 verify, 1 KiB (nacl crypto_sign_open)",
    "x25519_keygen": "X25519 keygen (nacl crypto_scalarmult_base)",
    "x25519": "X25519 shared secret (nacl crypto_scalarmult)",
    "hkdf_sha256": "HKDF-SHA256 to 32 B (2 x hmac.digest)",
    "aead_encrypt": "ChaCha20-Poly1305 encrypt 1 KiB, 16 B AAD",
    "aead_decrypt": "ChaCha20-Poly1305 decrypt 1 KiB, 16 B AAD",
    "aead_noad_encrypt": "ChaCha20-Poly1305 encrypt 1 KiB, empty AD (Noise)",
    "aead_noad_decrypt": "ChaCha20-Poly1305 decrypt 1 KiB, empty AD (Noise)",
}
SHORT = {"ed25519_sign": "sign", "ed25519_verify": "verify", "x25519_keygen": "X25519 base",
         "x25519": "X25519", "hkdf_sha256": "HKDF", "aead_encrypt": "AEAD enc", "aead_decrypt": "AEAD dec"}


def add_primitives(bench: Bench, payload: bytes) -> None:
    """Each primitive on the inputs the envelopes use: the 1 KiB payload, a
    KDF-context-sized HKDF info, an Enc_structure-sized AAD (Noise: empty AD)."""
    pk_ed, sk_ed = nb.crypto_sign_seed_keypair(os.urandom(32))
    peer_public = nb.crypto_scalarmult_base(os.urandom(32))
    key, info, aad16 = os.urandom(32), os.urandom(48), os.urandom(16)
    sign, sign_open = nb.crypto_sign, nb.crypto_sign_open
    base, mult = nb.crypto_scalarmult_base, nb.crypto_scalarmult
    enc, dec = nb.crypto_aead_chacha20poly1305_ietf_encrypt, nb.crypto_aead_chacha20poly1305_ietf_decrypt

    def round_trip(sealed: list, opened: list) -> None:
        assert opened[0] == payload and opened[-1] == payload

    bench.add("ed25519", nothing, lambda xs: [sign(payload, sk_ed)[:64] for _ in xs],
              lambda sigs: [sign_open(s + payload, pk_ed) for s in sigs], round_trip)
    bench.add("x25519_keygen", randoms(32), lambda xs: [base(s) for s in xs])
    bench.add("x25519", randoms(32), lambda xs: [mult(s, peer_public) for s in xs])
    bench.add("hkdf_sha256", randoms(32), lambda xs: [hkdf_sha256_min(s, info) for s in xs])
    for label, aad in (("aead", aad16), ("aead_noad", b"")):
        bench.add(label, randoms(12), lambda ivs, aad=aad: [(enc(payload, aad, iv, key), iv) for iv in ivs],
                  lambda cts, aad=aad: [dec(c, aad, iv, key) for c, iv in cts], round_trip)


def primitive_costs(bench: Bench) -> dict[str, float]:
    out = {"x25519_keygen": bench.pair("x25519_keygen").seal_us, "x25519": bench.pair("x25519").seal_us,
           "hkdf_sha256": bench.pair("hkdf_sha256").seal_us}
    for pair_name, first, second in (("ed25519", "ed25519_sign", "ed25519_verify"),
                                     ("aead", "aead_encrypt", "aead_decrypt"),
                                     ("aead_noad", "aead_noad_encrypt", "aead_noad_decrypt")):
        pair = bench.pair(pair_name)
        out[first], out[second] = pair.seal_us, pair.open_us
    return out


# What a minimal implementation of each kind must do per seal and per open.
# authcrypt's ECDH-SS secret is the same for every message of a pair, so the ceiling
# the ratio uses computes it once per relationship, as p2p does (PairwiseKey when
# sealing, Keyring's LRU when opening); the no-cache ceiling adds one X25519 per side.
CEILINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "signed": (("ed25519_sign",), ("ed25519_verify",)),
    "anoncrypt": (("x25519_keygen", "x25519", "hkdf_sha256", "aead_encrypt"),
                  ("x25519", "hkdf_sha256", "aead_decrypt")),
    "authcrypt": (("hkdf_sha256", "aead_encrypt"), ("hkdf_sha256", "aead_decrypt")),
    "signed+authcrypt": (("ed25519_sign", "hkdf_sha256", "aead_encrypt"),
                         ("hkdf_sha256", "aead_decrypt", "ed25519_verify")),
}
CACHED_KINDS = ("authcrypt", "signed+authcrypt")


def ceiling(kind: str, prim: dict[str, float], *, cached: bool = True) -> tuple[float, float]:
    seal_ops, open_ops = CEILINGS[kind]
    extra = prim["x25519"] if not cached and kind in CACHED_KINDS else 0.0
    return sum(prim[p] for p in seal_ops) + extra, sum(prim[p] for p in open_ops) + extra


# --- p2p: the message, the parties, the four kinds -------------------------------------


def one_kib_message() -> tuple[message.Message, bytes]:
    """A p2p message whose deterministic CBOR is exactly MESSAGE_BYTES long."""
    def build(k: int) -> message.Message:
        return message.Message(id="1234567890", type="https://didcomm.org/basicmessage/2.0/message",
                               body={"content": "x" * k}, frm="did:example:alice",
                               to=("did:example:bob",), created_time=NOW)
    k = MESSAGE_BYTES - len(message.encode(build(0)))
    while len(message.encode(build(k))) > MESSAGE_BYTES:  # the CBOR length header grows with k
        k -= 1
    msg = build(k)
    data = message.encode(msg)
    assert len(data) == MESSAGE_BYTES, len(data)
    return msg, data


class Parties:
    """Alice sends to Bob. Long-term keys are random; Bob's keyring knows Alice's
    agreement and signing keys, as it would after a DID exchange."""

    def __init__(self) -> None:
        self.signer = envelope.SigningKey.from_seed("did:example:alice#key-ed25519-1", os.urandom(32))
        self.alice = envelope.AgreementKey.from_secret("did:example:alice#key-x25519-1", os.urandom(32))
        self.bob = envelope.AgreementKey.from_secret("did:example:bob#key-x25519-1", os.urandom(32))
        self.pairwise = envelope.PairwiseKey.derive(self.alice, self.bob.kid, self.bob.public)
        self.keyring = envelope.Keyring([self.bob], senders={self.alice.kid: self.alice.public},
                                        signers={self.signer.kid: self.signer.public})


KINDS = ("signed", "anoncrypt", "authcrypt", "signed+authcrypt")


def seal_pass_for(kind: str, who: Parties, payload: bytes) -> tuple[Callable[[int], list], Callable[[list], list]]:
    """(draw, seal_pass) for `kind`: the public `envelope.seal` entry point, with
    exactly the arguments that kind needs."""
    seal = envelope.seal
    if kind == "signed":
        signer = who.signer
        return nothing, lambda xs: [seal(kind, payload, signer=signer) for _ in xs]
    if kind == "anoncrypt":
        kid, public = who.bob.kid, who.bob.public
        return randoms(32, 12), lambda xs: [
            seal(kind, payload, recipient_kid=kid, recipient_public=public, ephemeral_secret=e, iv=iv)
            for e, iv in xs]
    signer = who.signer if kind == "signed+authcrypt" else None
    pairwise = who.pairwise
    return randoms(12, 16), lambda xs: [seal(kind, payload, signer=signer, pairwise=pairwise, iv=iv, nonce=nonce)
                                        for iv, nonce in xs]


def add_kind(bench: Bench, kind: str, who: Parties, payload: bytes) -> dict:
    """Register `kind`; the returned dict gets the envelope size once it has run."""
    draw, seal_pass = seal_pass_for(kind, who, payload)
    open_, keyring = envelope.open, who.keyring
    layers = tuple(kind.split("+")[::-1])  # outermost first: ("authcrypt", "signed")
    info: dict = {}

    def check(sealed: list, opened: list) -> None:
        for o in (opened[0], opened[-1]):
            assert o.plaintext == payload and o.layers == layers, (kind, o.layers)
            if "signed" in layers:
                assert o.signer_kid == who.signer.kid
            if "authcrypt" in layers:
                assert o.sender_kid == who.alice.kid
        info["envelope_bytes"] = len(sealed[0])

    bench.add(kind, draw, seal_pass, lambda envs: [open_(e, keyring) for e in envs], check)
    return info


def add_job(bench: Bench, kind: str, who: Parties, msg: message.Message) -> None:
    """What didcomm's pack_encrypted + unpack do: message object in, message object
    out. Seal = encode the message + seal; open = open + decode and validate the
    message (with the clock check) + check its `from` is the authenticated sender."""
    draw, _ = seal_pass_for(kind, who, b"")
    seal, encode, open_, decode, did_of = envelope.seal, message.encode, envelope.open, message.decode, envelope.did_of
    signer = who.signer if kind == "signed+authcrypt" else None
    pairwise, keyring = who.pairwise, who.keyring

    def open_pass(envs: list) -> list:
        out = []
        for e in envs:
            opened = open_(e, keyring)
            m = decode(opened.plaintext, now=NOW)
            if did_of(opened.sender_kid) != m.frm:
                raise AssertionError("from is not the authenticated sender")
            out.append(m)
        return out

    def check(sealed: list, opened: list) -> None:
        assert opened[-1].body == msg.body and opened[-1].frm == msg.frm

    bench.add(f"job:{kind}", draw,
              lambda xs: [seal(kind, encode(msg), signer=signer, pairwise=pairwise, iv=iv, nonce=nonce)
                          for iv, nonce in xs],
              open_pass, check)


def add_noise(bench: Bench, frame: bytes) -> None:
    """Transport after a real XX handshake: encrypt on one side, decrypt on the other."""
    def keypair() -> noise.KeyPair:
        return noise.KeyPair.from_private(os.urandom(32))
    ini = noise.Handshake("initiator", "XX", keypair(), os.urandom(32))
    res = noise.Handshake("responder", "XX", keypair(), os.urandom(32))
    res.read_message(ini.write_message())
    ini.read_message(res.write_message())
    res.read_message(ini.write_message())
    send, recv = ini.transport, res.transport

    def check(sealed: list, opened: list) -> None:
        assert opened[0] == frame and opened[-1] == frame

    bench.add("noise", nothing, lambda xs: [send.encrypt(frame) for _ in xs],
              lambda cts: [recv.decrypt(c) for c in cts], check)


# --- didcomm, in its own venv ----------------------------------------------------------


def _run(cmd: list, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:160] if lines else "no output"


def didcomm_python() -> tuple[Path | None, str]:
    """The venv's python with didcomm==0.3.2 in it, making the venv on first use.
    Returns (None, reason) when that cannot be done (offline, no ensurepip...)."""
    python = DIDCOMM_VENV / "bin" / "python"
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('didcomm'))"]
    try:
        if not python.exists():
            print(f"creating {DIDCOMM_VENV} with didcomm=={DIDCOMM_VERSION} (first run only)...", flush=True)
            r = _run([sys.executable, "-m", "venv", str(DIDCOMM_VENV)], 120)
            if r.returncode != 0:
                return None, f"venv creation failed: {_last_line(r.stderr or r.stdout)}"
        r = _run(probe, 60)
        if r.returncode == 0 and r.stdout.strip() == DIDCOMM_VERSION:
            return python, ""
        r = _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  "--retries", "1", "--timeout", "15", f"didcomm=={DIDCOMM_VERSION}"], 300)
        if r.returncode != 0:
            return None, f"pip install didcomm=={DIDCOMM_VERSION} failed: {_last_line(r.stderr or r.stdout)}"
        r = _run(probe, 60)
        if r.returncode != 0 or r.stdout.strip() != DIDCOMM_VERSION:
            return None, f"didcomm {DIDCOMM_VERSION} not importable after install: {_last_line(r.stderr)}"
        return python, ""
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{exc.__class__.__name__}: {exc}"


def didcomm_pass(python: Path, iterations: int, body_chars: int) -> tuple[dict | None, str]:
    """One pass of bench/didcomm_peer.py in the didcomm venv (fresh process)."""
    try:
        r = _run([str(python), "-W", "ignore", str(BENCH / "didcomm_peer.py"), "--iterations", str(iterations),
                  "--passes", "1", "--body-bytes", str(body_chars)], 300)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"peer failed: {exc.__class__.__name__}: {exc}"
    if r.returncode != 0:
        return None, f"peer exited {r.returncode}: {_last_line(r.stderr)}"
    try:
        return json.loads(r.stdout.strip().splitlines()[-1]), ""
    except (ValueError, IndexError) as exc:
        return None, f"peer printed no JSON ({exc})"


def merge_didcomm(runs: list[dict]) -> dict:
    """One didcomm result from its per-pass runs: medians across passes, as for p2p."""
    out = {k: v for k, v in runs[0].items() if k != "jobs"}
    out["passes"] = sum(r["passes"] for r in runs)
    out["jobs"] = {}
    for job, first in runs[0]["jobs"].items():
        merged = {key: statistics.median(v for r in runs for v in r["jobs"][job][key])
                  for key in ("pack_us", "unpack_us", "total_us")}
        merged["envelope_bytes"] = first["envelope_bytes"]
        out["jobs"][job] = merged
    return out


# --- report ------------------------------------------------------------------------


def rate(us: float) -> str:
    return f"{1e6 / us:,.0f}"


def verdict(ok: bool) -> str:
    return "[met]    " if ok else "[NOT MET]"


def report(res: dict) -> None:
    prim, kinds = res["primitives"], res["kinds"]
    n = res["iterations"]
    print(f"\np2p envelopes: {MESSAGE_BYTES} B message (a p2p message, deterministic CBOR), {res['affinity']}, "
          f"median of {_timing.PASSES} passes x {n} ops (each pass in {res['slices']} interleaved slices), "
          f"GC off while timing")
    print(f"\n{'kind':<18}{'envelope B':>11}{'seal us':>10}{'seal/s':>10}{'open us':>10}{'open/s':>10}"
          f"{'seal+open us':>14}{'pairs/s':>10}")
    for kind in KINDS:
        k = kinds[kind]
        print(f"{kind:<18}{k['envelope_bytes']:>11}{k['seal_us']:>10.1f}{rate(k['seal_us']):>10}"
              f"{k['open_us']:>10.1f}{rate(k['open_us']):>10}{k['total_us']:>14.1f}{rate(k['total_us']):>10}")

    print("\nceiling = sum of the primitive operations a minimal implementation must do, timed in this run:")
    for name, label in PRIMITIVES.items():
        print(f"  {label:<52}{prim[name]:>8.1f} us")
    print("\nratio = ceiling time / our time (1.00 = no overhead beyond the primitives)")
    print(f"{'kind':<18}{'seal ceiling':<38}{'us':>7}  {'open ceiling':<32}{'us':>7}"
          f"{'seal':>7}{'open':>7}{'both':>7}")
    for kind in KINDS:
        k = kinds[kind]
        for cached in (True, False) if kind in CACHED_KINDS else (True,):
            cs, co = ceiling(kind, prim, cached=cached)
            seal_ops, open_ops = (" + ".join(SHORT[p] for p in ops) for ops in CEILINGS[kind])
            label = kind
            if kind in CACHED_KINDS:
                label = f"{kind}" if cached else "  no-cache"
                if not cached:
                    seal_ops, open_ops = f"X25519 + {seal_ops}", f"X25519 + {open_ops}"
            print(f"{label:<18}{seal_ops:<38}{cs:>7.1f}  {open_ops:<32}{co:>7.1f}"
                  f"{cs / k['seal_us']:>7.2f}{co / k['open_us']:>7.2f}{(cs + co) / k['total_us']:>7.2f}")
    print("  authcrypt kinds: the first line is the ceiling used for the target (ECDH-SS cached per pair,")
    print("  as p2p does); 'no-cache' adds one X25519 per side; above 1.00 means the cache beats any")
    print("  implementation that recomputes ECDH-SS per message.")

    nz = res["noise"]
    nc = prim["aead_noad_encrypt"] + prim["aead_noad_decrypt"]
    print(f"\nNoise transport (XX, after the handshake), {MESSAGE_BYTES} B frames:")
    print(f"  encrypt {nz['seal_us']:.1f} us ({rate(nz['seal_us'])}/s), decrypt {nz['open_us']:.1f} us "
          f"({rate(nz['open_us'])}/s), both {nz['total_us']:.1f} us; ceiling ChaCha20-Poly1305 enc+dec "
          f"{nc:.1f} us; ratio {nc / nz['total_us']:.2f}")

    dc, jobs = res.get("didcomm"), res["jobs"]
    print(f"\nvs didcomm {DIDCOMM_VERSION} (DIDComm v2, Python), same message body, pack+unpack = seal+open:")
    if dc is None:
        print(f"  didcomm: n/a ({res['didcomm_reason']})")
    else:
        deps = ", ".join(f"{k} {v}" for k, v in dc.get("dependencies", {}).items())
        print(f"  didcomm {dc['version']} ({deps}), python {dc['python']}, {dc['affinity']}, "
              f"{dc['iterations']} ops x {dc['passes']} passes")
        print("  p2p 'envelope': seal+open of the encoded message (bytes in, bytes out); 'msg+env': also encode,")
        print("  decode and validate the message and check its sender, as didcomm's pack / unpack do (message")
        print("  object in, message object out): that is the same job, and the figure the verdicts use.")
        print(f"  {'job':<20}{'didcomm us':>11}{'bytes':>7}{'p2p envelope us':>17}{'speed-up':>10}"
              f"{'p2p msg+env us':>16}{'speed-up':>10}")
        for job, kind, label in (("authcrypt", "authcrypt", "authcrypt"),
                                 ("authcrypt_signed", "signed+authcrypt", "authcrypt + signed")):
            d = dc["jobs"][job]
            env_us, job_us = kinds[kind]["total_us"], jobs[kind]["total_us"]
            print(f"  {label:<20}{d['total_us']:>11.1f}{d['envelope_bytes']:>7}{env_us:>17.1f}"
                  f"{d['total_us'] / env_us:>9.1f}x{job_us:>16.1f}{d['total_us'] / job_us:>9.1f}x")

    print("\ntargets:")
    a = kinds["authcrypt"]
    ratio = sum(ceiling("authcrypt", prim)) / a["total_us"]
    print(f"  {verdict(ratio >= TARGET_CEILING_RATIO)} authcrypt seal+open at {ratio:.0%} of its ceiling "
          f"(ECDH-SS cached per pair; target >= {TARGET_CEILING_RATIO:.0%})")
    for job, kind, target, label in (
            ("authcrypt", "authcrypt", TARGET_VS_DIDCOMM_AUTHCRYPT, "authcrypt"),
            ("authcrypt_signed", "signed+authcrypt", TARGET_VS_DIDCOMM_SIGNED_AUTHCRYPT, "signed+authcrypt")):
        if dc is None:
            print(f"  [n/a]     {label} vs didcomm (target >= {target:.0f}x): didcomm not measured")
            continue
        d = dc["jobs"][job]["total_us"]
        same, env_only = d / jobs[kind]["total_us"], d / kinds[kind]["total_us"]
        print(f"  {verdict(same >= target)} {label} vs didcomm {job.replace('_', '+')} pack+unpack: {same:.1f}x "
              f"same job (target >= {target:.0f}x); envelope only {env_only:.1f}x"
              f" ({'met' if env_only >= target else 'not met'})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="p2p envelope benchmark (bench/README.md)")
    ap.add_argument("--quick", action="store_true", help="smoke run: few iterations, same code paths")
    ap.add_argument("--no-didcomm", action="store_true", help="skip the didcomm comparison (no venv, no pip)")
    ap.add_argument("--iterations", type=int, help=f"ops per pass for p2p and primitives "
                                                   f"(default {FULL_ITERATIONS}, --quick {QUICK_ITERATIONS})")
    ap.add_argument("--json", metavar="FILE", help="also write the raw figures (us/op) as JSON")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    n = args.iterations or (QUICK_ITERATIONS if args.quick else FULL_ITERATIONS)
    dc_n = QUICK_DIDCOMM_ITERATIONS if args.quick else FULL_DIDCOMM_ITERATIONS

    # The venv (and pip) first, so its installation cannot disturb any timing.
    python, reason = (None, "--no-didcomm") if args.no_didcomm else didcomm_python()
    affinity = _timing.pin_single_core()  # inherited by the didcomm peer process

    msg, payload = one_kib_message()
    who = Parties()
    bench = Bench(n, QUICK_SLICES if args.quick else FULL_SLICES)
    add_primitives(bench, payload)
    sizes = {kind: add_kind(bench, kind, who, payload) for kind in KINDS}
    for kind in CACHED_KINDS:
        add_job(bench, kind, who, msg)
    add_noise(bench, payload)

    # didcomm runs one pass between each two of ours, so drift is shared there too.
    runs: list[dict] = []

    def after_pass(p: int) -> None:
        nonlocal python, reason
        if python is not None:
            out, reason = didcomm_pass(python, dc_n, len(msg.body["content"]))
            if out is None:
                python = None
            else:
                runs.append(out)

    bench.run(after_pass)
    res: dict = {"message_bytes": MESSAGE_BYTES, "iterations": bench.n, "passes": _timing.PASSES,
                 "slices": bench.slices, "affinity": affinity, "python": sys.version.split()[0],
                 "primitives": primitive_costs(bench),
                 "kinds": {kind: {**bench.pair(kind).as_dict(), **sizes[kind]} for kind in KINDS},
                 "jobs": {kind: bench.pair(f"job:{kind}").as_dict() for kind in CACHED_KINDS},
                 "noise": bench.pair("noise").as_dict(),
                 "didcomm": merge_didcomm(runs) if python is not None and runs else None,
                 "didcomm_reason": reason}

    report(res)
    res["wall_seconds"] = time.perf_counter() - started
    print(f"\nwall time {res['wall_seconds']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
