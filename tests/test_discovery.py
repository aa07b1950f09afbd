"""LAN discovery (p2p/net/discovery.py, spec/15-discovery.md).

Two kinds of test:

* the TXT layout and the verification rule, in process, no network: round trips,
  every reject code, RFC 6763 parsing details, hypothesis mutations, and zeroconf's own
  TXT codec as the independent implementation in both directions;
* real mDNS with zeroconf, each scenario in a private network namespace: the test
  re-runs this file as a script under `unshare -n`, where only a loopback interface
  exists (`ip link set lo up multicast on`, `ip route add 224.0.0.0/4 dev lo`) and
  zeroconf binds to 127.0.0.1. No packet leaves the namespace, and nothing on the
  machine's real network can answer. Without unshare/ip (or the right to make a
  namespace) these tests are skipped, with the reason.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings, strategies as st
from zeroconf import DNSQuestionType, IPVersion, ServiceBrowser, ServiceInfo, Zeroconf

from p2p.core import envelope, keys, message
from p2p.core.errors import LocalError, RemoteError, TooLarge
from p2p.core.protocols import connection, endpoint as ep, invitation as inv
from p2p.net import discovery as d

ROOT = Path(__file__).resolve().parent.parent
LO = ["127.0.0.1"]
NOW = int(time.time())


def K(name: str) -> keys.AgentKeys:
    return keys.AgentKeys.from_secrets(hashlib.sha256(b"ed " + name.encode()).digest(),
                                       hashlib.sha256(b"x " + name.encode()).digest())


def agent(name: str, port: int) -> tuple[keys.AgentKeys, str]:
    k = K(name)
    return k, connection.pairwise_did(k, ep.format_endpoint(k.agreement.public_key, "127.0.0.1", port))


SHOP, SHOP_DID = agent("corner shop", 7400)
OTHER, OTHER_DID = agent("other corner shop", 7401)
MALLORY, MALLORY_DID = agent("mallory", 7666)


def invite(k=SHOP, did=SHOP_DID, *, label="Corner Shop", multi_use=True, now=NOW, ttl=3600, id="inv-lan-1"):
    return inv.create(k, did, id=id, label=label, multi_use=multi_use, now=now,
                      expires_time=None if ttl is None else now + ttl)


def rdata(strings: list[bytes]) -> bytes:
    return b"".join(bytes([len(s)]) + s for s in strings)


def forged_same_payload(real: inv.Invitation) -> bytes:
    """The shop's invitation payload, re-signed by Mallory's key under the shop's kid."""
    layer = envelope.open_one_layer(real.signed, envelope.Keyring(signers={real.signer_kid: real.signer_public}))
    return envelope.seal_signed(layer.content, envelope.SigningKey.from_seed(real.signer_kid, MALLORY.signing.seed))


def forged_from_shop(label="Corner Shop") -> bytes:
    """An invitation that says from = the shop but is signed by Mallory's own DID key."""
    msg = inv.build_message(inviter_did=SHOP_DID, id="inv-evil", label=label, multi_use=True, now=NOW)
    return envelope.seal_signed(message.encode(msg),
                                envelope.SigningKey.from_seed(MALLORY_DID + "#key-1", MALLORY.signing.seed))


def strings_for(url: str, *, label: bytes = b"Corner Shop", fp: bytes | None = None) -> list[bytes]:
    parsed_fp = fp if fp is not None else d.fingerprint(SHOP.signing.public).encode()
    raw = url.encode()
    return [b"txtvers=1", b"label=" + label, b"fp=" + parsed_fp] + [
        b"inv%d=" % (i // d.CHUNK_BYTES) + raw[i:i + d.CHUNK_BYTES] for i in range(0, len(raw), d.CHUNK_BYTES)]


# --- the TXT layout and verification (no network) -------------------------------------


def test_fingerprint_is_sha256_of_the_invitation_key_in_base32():
    expected = base64.b32encode(hashlib.sha256(SHOP.signing.public).digest()[:10]).decode().lower()
    assert d.fingerprint(SHOP.signing.public) == expected and len(expected) == 16
    assert d.display_fingerprint(expected) == "-".join([expected[0:4], expected[4:8], expected[8:12], expected[12:]])
    assert d.fingerprint(OTHER.signing.public) != expected


def test_txt_record_layout_and_round_trip():
    i = invite()
    strings = d.txt_strings(i)
    assert strings[:3] == [b"txtvers=1", b"label=Corner Shop", b"fp=" + d.fingerprint(SHOP.signing.public).encode()]
    chunks = strings[3:]
    assert [c.split(b"=", 1)[0] for c in chunks] == [b"inv%d" % n for n in range(len(chunks))]
    assert all(len(c.split(b"=", 1)[1]) == d.CHUNK_BYTES for c in chunks[:-1])
    assert 1 <= len(chunks[-1].split(b"=", 1)[1]) <= d.CHUNK_BYTES
    assert b"".join(c.split(b"=", 1)[1] for c in chunks).decode() == i.url
    assert all(len(s) <= 255 for s in strings)
    record = d.txt_record(i)
    assert record == rdata(strings)
    n = d.verify(record, now=NOW + 5, name="x", addresses=("192.0.2.1",))
    assert (n.label, n.agent_did, n.url, n.endpoint) == ("Corner Shop", SHOP_DID, i.url, i.endpoint.uri)
    assert n.fingerprint == d.fingerprint(SHOP.signing.public) and n.addresses == ("192.0.2.1",)
    assert not n.label_mismatch and n.expires_time == NOW + 3600


def test_largest_invitation_fits_the_stated_limits():
    # 64 four-byte characters: 256 UTF-8 bytes, the largest label an invitation takes.
    i = invite(label="\U0001F36A" * 64)
    strings = d.txt_strings(i)
    assert all(len(s) <= 255 for s in strings)
    assert strings[1] == b"label=" + ("\U0001F36A" * 62).encode()  # 248 bytes: cut at a character
    assert len(strings) - 3 == -(-len(i.url) // d.CHUNK_BYTES)
    assert d.verify(d.txt_record(i), now=NOW).label_mismatch is False
    # The stated worst case: a 4096-character URL in 18 chunks, 4 498 bytes of rdata.
    worst = strings_for("p" * inv.MAX_URL_CHARS, label=b"l" * d.MAX_TXT_LABEL_BYTES)
    assert len(worst) - 3 == d.MAX_CHUNKS == 18 and len(rdata(worst)) == 4498 <= d.MAX_TXT_BYTES
    assert all(len(s) <= 255 for s in worst)


def test_one_time_invitation_is_never_advertised_nor_accepted():
    once = invite(multi_use=False)
    with pytest.raises(LocalError):
        d.txt_record(once)
    with pytest.raises(d.InvalidAdvertisement):
        d.verify(rdata(strings_for(once.url)), now=NOW)

    async def go():
        with pytest.raises(LocalError):
            await d.advertise(once.url, interfaces=LO)
    trio.run(go)


def test_advertise_refuses_a_url_that_does_not_verify():
    async def go():
        with pytest.raises(LocalError, match="bad-signature|invalid"):
            await d.advertise(inv.to_url(forged_same_payload(invite())), interfaces=LO)
        with pytest.raises(LocalError, match="invitation-expired"):
            await d.advertise(invite(now=NOW - 7200).url, interfaces=LO)
    trio.run(go)


def test_label_mismatch_is_flagged_not_trusted():
    i = invite()
    n = d.verify(rdata(strings_for(i.url, label=b"Mallory's Bargains")), now=NOW)
    assert n.label == "Corner Shop" and n.advertised_label == "Mallory's Bargains" and n.label_mismatch
    n = d.verify(rdata(strings_for(i.url, label=b"\xff\xfe")), now=NOW)
    assert n.label == "Corner Shop" and n.label_mismatch


SHOP_URL = invite().url
SHOP_FP = d.fingerprint(SHOP.signing.public).encode()


@pytest.mark.parametrize("strings, code", [
    # someone else's valid invitation under the shop's fingerprint
    (lambda: strings_for(invite(MALLORY, MALLORY_DID).url, fp=SHOP_FP), "advertisement-mismatch"),
    # the shop's payload, signed by another key under the shop's kid
    (lambda: strings_for(inv.to_url(forged_same_payload(invite()))), "bad-signature"),
    # from = the shop, signed by Mallory's own DID
    (lambda: strings_for(inv.to_url(forged_from_shop())), "sender-mismatch"),
    # one character of the second chunk changed
    (lambda: [s if not s.startswith(b"inv1=") else s[:40] + (b"A" if s[40:41] != b"A" else b"B") + s[41:]
              for s in strings_for(SHOP_URL)], None),
    (lambda: strings_for(invite(now=NOW - 7200).url), "invitation-expired"),
    (lambda: [s for s in strings_for(SHOP_URL) if not s.startswith(b"txtvers")], "invalid-advertisement"),
    (lambda: [b"txtvers=2"] + strings_for(SHOP_URL)[1:], "unsupported-advertisement"),
    (lambda: [s for s in strings_for(SHOP_URL) if not s.startswith(b"fp=")], "invalid-advertisement"),
    (lambda: [s for s in strings_for(SHOP_URL) if not s.startswith(b"label=")], "invalid-advertisement"),
    (lambda: [s for s in strings_for(SHOP_URL) if not s.startswith(b"inv1=")], "invalid-advertisement"),
    (lambda: [s for s in strings_for(SHOP_URL) if not s.startswith(b"inv")], "invalid-advertisement"),
    (lambda: [s.replace(b"inv1=", b"inv01=") for s in strings_for(SHOP_URL)], "invalid-advertisement"),
    (lambda: strings_for(SHOP_URL) + [b"inv18=x"], "invalid-advertisement"),
    (lambda: strings_for(SHOP_URL) + [b"inv99=x"], "invalid-advertisement"),
    (lambda: [s[:-1] if s.startswith(b"inv0=") else s for s in strings_for(SHOP_URL)], "invalid-advertisement"),
    (lambda: [s for s in strings_for(SHOP_URL)] + [b"inv%d" % (len(strings_for(SHOP_URL)) - 3)],
     "invalid-advertisement"),
    (lambda: [s if not s.startswith(b"inv0=") else b"inv0=\xc3\xa9" + s[7:] for s in strings_for(SHOP_URL)],
     "invalid-advertisement"),
    (lambda: strings_for("https://shop.example/?_oob=abc"), "invalid-invitation"),
])
def test_rejections(strings, code):
    with pytest.raises(RemoteError) as info:
        d.verify(rdata(strings()), now=NOW)
    if code is not None:
        assert info.value.code == code
    else:  # a tampered chunk: some decoding or signature code, never a result
        assert info.value.code in {"bad-signature", "malformed-cbor", "invalid-invitation", "malformed-envelope",
                                   "truncated", "unknown-sender"}


def test_malformed_rdata():
    with pytest.raises(d.InvalidAdvertisement):
        d.verify(b"\x09txtvers=1\x30abc", now=NOW)
    with pytest.raises(TooLarge):
        d.verify(b"\x00" * (d.MAX_TXT_BYTES + 1), now=NOW)
    with pytest.raises(d.InvalidAdvertisement):
        d.verify(b"", now=NOW)


def test_rfc6763_key_rules():
    txt = d.parse_txt(rdata([b"TXTVERS=1", b"txtvers=2", b"=ignored", b"flag", b"k=", b"\x01bad=1", b"x=a=b"]))
    assert txt == {"txtvers": b"1", "flag": None, "k": b"", "x": b"a=b"}
    # upper-case keys from an advertiser are read as lower case (RFC 6763 §6.4)
    upper = [s.split(b"=", 1)[0].upper() + b"=" + s.split(b"=", 1)[1] for s in strings_for(SHOP_URL)]
    assert d.verify(rdata(upper), now=NOW).url == SHOP_URL
    # a later duplicate is ignored: the first occurrence wins
    dup = strings_for(SHOP_URL) + [b"inv0=" + b"A" * d.CHUNK_BYTES, b"fp=zzzz"]
    assert d.verify(rdata(dup), now=NOW).url == SHOP_URL


def test_instance_name():
    i = invite(label="St. Mary's\n\tBakery\x00 " + "x" * 100)
    name = d.instance_name(i)
    fp = d.fingerprint(SHOP.signing.public)
    assert name.endswith(f" ({fp})") and len(name.encode()) <= 63
    assert name.startswith("St  Mary's Bakery xxx".replace("  ", " ")) and "\n" not in name and "." not in name
    assert d.instance_name(invite(label="")) == f"p2p agent ({fp})"
    assert len(d.instance_name(invite(label="\U0001F36A" * 64)).encode()) <= 63


def test_zeroconf_reads_our_txt_and_we_read_zeroconf_txt():
    """zeroconf's TXT codec is the independent implementation: it parses what we build,
    and we parse what it builds."""
    i = invite(label="Café Olé")
    ours = d.txt_record(i)
    theirs = ServiceInfo(d.SERVICE_TYPE, "x." + d.SERVICE_TYPE, properties=ours).properties
    assert theirs == {s.split(b"=", 1)[0]: s.split(b"=", 1)[1] for s in d.txt_strings(i)}
    props = {s.split(b"=", 1)[0]: s.split(b"=", 1)[1] for s in d.txt_strings(i)}
    built = ServiceInfo(d.SERVICE_TYPE, "x." + d.SERVICE_TYPE, properties=props).text
    assert d.parse_txt(built) == {k.decode(): v for k, v in props.items()}
    assert d.verify(built, now=NOW).url == i.url


def test_merge_one_entry_per_agent():
    a = d.verify(d.txt_record(invite()), now=NOW, name="a", addresses=("192.0.2.1",))
    replay = d.verify(rdata(strings_for(SHOP_URL, label=b"Evil")), now=NOW, name="b", addresses=("192.0.2.66",))
    other = d.verify(d.txt_record(invite(OTHER, OTHER_DID)), now=NOW, name="c")
    merged = d.merge([a, replay, other])
    assert len(merged) == 2
    shop = next(m for m in merged if m.agent_did == SHOP_DID)
    assert shop.addresses == ("192.0.2.1", "192.0.2.66") and shop.label_mismatch and shop.label == "Corner Shop"


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutations_never_return_wrong_data(data):
    record = d.txt_record(invite())
    kind = data.draw(st.sampled_from(["flip", "truncate", "append", "splice"]))
    if kind == "flip":
        pos = data.draw(st.integers(0, len(record) - 1))
        mutated = record[:pos] + bytes([record[pos] ^ data.draw(st.integers(1, 255))]) + record[pos + 1:]
    elif kind == "truncate":
        mutated = record[:data.draw(st.integers(0, len(record) - 1))]
    elif kind == "append":
        mutated = record + data.draw(st.binary(min_size=1, max_size=300))
    else:
        pos = data.draw(st.integers(0, len(record)))
        mutated = record[:pos] + data.draw(st.binary(min_size=1, max_size=20)) + record[pos:]
    try:
        n = d.verify(mutated, now=NOW)
    except RemoteError:
        return
    # Accepted only if it still says exactly what the shop signed.
    assert (n.url, n.agent_did, n.label, n.fingerprint) == (SHOP_URL, SHOP_DID, "Corner Shop", SHOP_FP.decode())


# --- real mDNS, in a private network namespace ----------------------------------------

_NETNS_SETUP = "ip link set lo up multicast on && ip route add 224.0.0.0/4 dev lo"


@functools.cache
def _netns() -> tuple[list[str] | None, str]:
    """The command prefix that runs a command in a fresh network namespace with
    multicast on loopback, or None and why not."""
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing:
        return None, f"needs {' and '.join(missing)} (util-linux, iproute2) for a private network namespace"
    errors = []
    # As root `unshare -n`; otherwise a user namespace may grant the right (`-r`).
    for flags in (["-n"], ["-r", "-n"]):
        probe = subprocess.run(["unshare", *flags, "sh", "-c", _NETNS_SETUP], capture_output=True, text=True,
                               timeout=20)
        if probe.returncode == 0:
            return ["unshare", *flags, "sh", "-c", _NETNS_SETUP + ' && exec "$0" "$@"'], ""
        errors.append(f"unshare {' '.join(flags)}: {probe.stderr.strip()[:200]}")
    return None, "cannot make a network namespace with multicast on lo: " + "; ".join(errors)


def run_in_netns(scenario: str, *, script: str = __file__, timeout: float = 30) -> None:
    """Run `script scenario` in a private network namespace; it must print SCENARIO OK."""
    prefix, reason = _netns()
    if prefix is None:
        pytest.skip(reason)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    try:
        done = subprocess.run([*prefix, sys.executable, script, scenario], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"scenario {scenario} hung:\n{exc.stdout}\n{exc.stderr}")
    if done.returncode != 0 or "SCENARIO OK" not in done.stdout:
        pytest.fail(f"scenario {scenario} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr[-8000:]}")


@pytest.mark.parametrize("scenario", ["round_trip", "two_advertisers", "spoofs", "stop_unregisters"])
def test_mdns(scenario):
    run_in_netns(scenario)


# Everything below runs inside the namespace, started by run_in_netns.


# A responder multicasts a record at most once a second (RFC 6762 §6), and a new
# advertiser has just announced its records: a browse started at once hears them
# only after that second. Real browses come long after the announcements.
RATE_LIMIT = 1.0


async def _start(nursery: trio.Nursery, url: str, **kw) -> str:
    return await nursery.start(functools.partial(d.advertise, url, interfaces=LO, **kw))


def _raw_register(zc: Zeroconf, name: str, strings: list[bytes]) -> ServiceInfo:
    """What an attacker does: no p2p code, just zeroconf with a crafted TXT."""
    info = ServiceInfo(d.SERVICE_TYPE, f"{name}.{d.SERVICE_TYPE}", port=7666, properties=rdata(strings),
                       server=f"{name.lower().replace(' ', '-')}.local.", parsed_addresses=LO)
    zc.register_service(info, cooperating_responders=True)
    return info


async def scenario_round_trip() -> None:
    """Advertise a real signed invitation and find it; meanwhile a 10 ms ticker on the
    trio loop keeps ticking: zeroconf's probing, browsing and closing all happen in
    its own threads."""
    i = invite()
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(trio.current_time())
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await trio.sleep(0.05)
        start = trio.current_time()
        async with trio.open_nursery() as advertising:
            name = await _start(advertising, i.url)  # about 1.5 s of mDNS probing
            assert name == f"Corner Shop ({d.fingerprint(SHOP.signing.public)}).{d.SERVICE_TYPE}"
            await trio.sleep(RATE_LIMIT)
            scan = await d.scan(1.0, interfaces=LO)
            advertising.cancel_scope.cancel()
        end = trio.current_time()
        nursery.cancel_scope.cancel()
    assert scan.rejected == (), scan.rejected
    [n] = scan.nearby
    assert (n.label, n.agent_did, n.url, n.endpoint) == ("Corner Shop", SHOP_DID, i.url, i.endpoint.uri)
    assert n.fingerprint == d.fingerprint(SHOP.signing.public) and n.addresses == ("127.0.0.1",)
    assert not n.label_mismatch and n.name == name
    # What the browser hands on verifies on its own, as any invitation URL does.
    assert inv.parse_url(n.url, now=int(time.time())) == i
    during = [t for t in ticks if start <= t <= end]
    gaps = [b - a for a, b in zip(during, during[1:])]
    assert end - start > 3.0 and max(gaps) < 0.2, (end - start, max(gaps))
    assert len(during) >= 0.5 * (end - start) / 0.01, (len(during), end - start)


async def scenario_two_advertisers() -> None:
    # Same label, different keys; one with the largest label (256 UTF-8 bytes), so its
    # TXT record is more than one Ethernet frame.
    a = invite(label="Corner Shop")
    b = invite(OTHER, OTHER_DID, label="Corner Shop")
    big = invite(MALLORY, MALLORY_DID, label="\U0001F36A" * 64, id="inv-big")
    assert len(d.txt_record(big)) > 1500
    async with trio.open_nursery() as nursery:
        for i in (a, b, big):
            nursery.start_soon(functools.partial(_start, nursery, i.url))
        await trio.sleep(2.0 + RATE_LIMIT)  # the three probe and announce concurrently
        found = await d.browse(1.0, interfaces=LO)
        nursery.cancel_scope.cancel()
    assert {n.url for n in found} == {a.url, b.url, big.url}
    shops = [n for n in found if n.label == "Corner Shop"]
    assert len(shops) == 2 and shops[0].fingerprint != shops[1].fingerprint
    assert {n.agent_did for n in shops} == {SHOP_DID, OTHER_DID}
    assert next(n for n in found if n.url == big.url).label == "\U0001F36A" * 64


async def scenario_spoofs() -> None:
    real = invite()
    fp = d.fingerprint(SHOP.signing.public).encode()
    mallory_own = invite(MALLORY, MALLORY_DID, label="Corner Shop", id="inv-m")
    tampered = [s if not s.startswith(b"inv2=") else s[:30] + (b"x" if s[30:31] != b"x" else b"y") + s[31:]
                for s in strings_for(real.url)]
    spoofs = {
        "Corner Shop (fp)": (strings_for(mallory_own.url, fp=fp), {"advertisement-mismatch"}),
        "Corner Shop resigned": (strings_for(inv.to_url(forged_same_payload(real))), {"bad-signature"}),
        "Corner Shop from": (strings_for(inv.to_url(forged_from_shop())), {"sender-mismatch"}),
        "Corner Shop tampered": (tampered, {"bad-signature", "malformed-cbor", "invalid-invitation", "truncated",
                                            "malformed-envelope", "unknown-sender"}),
        "Corner Shop v2": ([b"txtvers=2"] + strings_for(real.url)[1:], {"unsupported-advertisement"}),
    }
    zc = await trio.to_thread.run_sync(lambda: Zeroconf(interfaces=LO, ip_version=IPVersion.V4Only))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(_start, nursery, real.url))
            for name, (strings, _) in spoofs.items():
                nursery.start_soon(trio.to_thread.run_sync, _raw_register, zc, name, strings)
            # Mallory's own, valid invitation under the copied label, and a replay of the
            # shop's real invitation with Mallory's label in TXT.
            nursery.start_soon(trio.to_thread.run_sync, _raw_register, zc, "Corner Shop 2",
                               strings_for(mallory_own.url, fp=d.fingerprint(MALLORY.signing.public).encode()))
            nursery.start_soon(trio.to_thread.run_sync, _raw_register, zc, "Replay",
                               strings_for(real.url, label=b"Mallory's Bargains"))
            await trio.sleep(2.0 + RATE_LIMIT)
            scan = await d.scan(1.0, interfaces=LO)
            nursery.cancel_scope.cancel()
    finally:
        await trio.to_thread.run_sync(zc.close)
    rejected = {r.name.removesuffix("." + d.SERVICE_TYPE): r.code for r in scan.rejected}
    for name, (_, codes) in spoofs.items():
        assert rejected.get(name) in codes, (name, rejected)
    assert len(scan.rejected) == len(spoofs), scan.rejected
    # The shop appears once, with what it signed; the replay only adds an address and a flag.
    shop = [n for n in scan.nearby if n.fingerprint == fp.decode()]
    assert len(shop) == 1 and shop[0].agent_did == SHOP_DID and shop[0].url == real.url
    assert shop[0].endpoint == real.endpoint.uri and shop[0].label == "Corner Shop" and shop[0].label_mismatch
    # Mallory's own invitation is listed as what it is: another agent, another fingerprint.
    others = [n for n in scan.nearby if n.fingerprint != fp.decode()]
    assert [(n.agent_did, n.fingerprint) for n in others] == [(MALLORY_DID, d.fingerprint(MALLORY.signing.public))]
    assert all(n.agent_did != SHOP_DID for n in others)


async def scenario_stop_unregisters() -> None:
    """A cancelled advertiser, and one whose invitation expires, both send goodbye
    records: a browser that saw them added sees them removed at once."""
    seen: list[tuple[str, str]] = []
    changed = threading.Condition()

    def on_change(zeroconf, service_type, name, state_change):  # zeroconf's thread
        with changed:
            seen.append((name, state_change.name))
            changed.notify_all()

    def wait_for(*events: tuple[str, str], timeout: float) -> bool:
        with changed:
            return changed.wait_for(lambda: all(e in seen for e in events), timeout)

    zc = await trio.to_thread.run_sync(lambda: Zeroconf(interfaces=LO, ip_version=IPVersion.V4Only))
    browser = await trio.to_thread.run_sync(lambda: ServiceBrowser(zc, d.SERVICE_TYPE, handlers=[on_change],
                                                                   question_type=DNSQuestionType.QM))
    short = invite(OTHER, OTHER_DID, now=int(time.time()), ttl=3, id="inv-short")
    try:
        async with trio.open_nursery() as outer:
            # The short one returns by itself when its invitation expires.
            outer.start_soon(functools.partial(d.advertise, short.url, interfaces=LO))
            with trio.CancelScope() as advertiser:
                async with trio.open_nursery() as nursery:
                    name = await _start(nursery, invite().url)
                    assert await trio.to_thread.run_sync(lambda: wait_for((name, "Added"), timeout=3.0)), seen
                    t0 = trio.current_time()
                    advertiser.cancel()
            # The goodbye (TTL 0) records make a browser drop it at once, not after the TTL.
            assert await trio.to_thread.run_sync(lambda: wait_for((name, "Removed"), timeout=3.0)), seen
            assert trio.current_time() - t0 < 2.0
        short_name = f"{d.instance_name(short)}.{d.SERVICE_TYPE}"
        assert await trio.to_thread.run_sync(
            lambda: wait_for((short_name, "Added"), (short_name, "Removed"), timeout=3.0)), seen
        assert time.time() >= short.expires_time
    finally:
        await trio.to_thread.run_sync(browser.cancel)
        await trio.to_thread.run_sync(zc.close)
    # Nobody answers for them any more.
    assert await d.browse(0.5, interfaces=LO) == []


if __name__ == "__main__":
    trio.run(globals()["scenario_" + sys.argv[1]])
    print("SCENARIO OK")
