"""LAN discovery wired into the daemon, the admin API and the `p2p` command (spec/15,
spec/14 `GET /v1/discover` and `p2p discover`).

* `[discovery]` configuration, and the daemon's choice of the invitation it advertises
  (reused across restarts, replaced when revoked, relabelled or when the endpoint
  moves), in process, without a network;
* an advertiser that cannot advertise does not take the daemon down;
* real daemons in a private network namespace (the approach of tests/test_discovery.py:
  `unshare -n`, multicast on lo, zeroconf bound to 127.0.0.1): a business advertises,
  a customer runs `p2p discover`, accepts what it found and sends a message; an
  impostor advertising the business's label with its own key is shown under its own
  fingerprint, and a forged advertisement is rejected; a stopped daemon says goodbye.
  An in-process agent shows the advertisement being replaced after a revocation.
  Skipped, with the reason, where no namespace with multicast can be made.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import sys
import time
from pathlib import Path

import pytest
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script inside the namespace

from daemon_harness import Cluster, wait_for  # noqa: E402
from test_discovery import MALLORY, MALLORY_DID, invite, run_in_netns, strings_for  # noqa: E402

from p2p import daemon  # noqa: E402
from p2p.agent import open_agent  # noqa: E402
from p2p.core.protocols import invitation as inv  # noqa: E402
from p2p.home import Config, ConfigError, DiscoveryConfig, load_config  # noqa: E402
from p2p.net import discovery as d  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LO = ["127.0.0.1"]


# --- configuration ------------------------------------------------------------------------


def test_discovery_config_defaults_to_not_advertising(tmp_path):
    assert load_config(tmp_path, environ={}).discovery == DiscoveryConfig(advertise=False, interfaces=None, label=None)
    (tmp_path / "config.toml").write_text('[discovery]\nadvertise = true\ninterfaces = ["127.0.0.1", "::1"]\n'
                                          'label = "Corner Shop"\n')
    assert load_config(tmp_path, environ={}).discovery == DiscoveryConfig(True, ("127.0.0.1", "::1"), "Corner Shop")


@pytest.mark.parametrize("table", [
    "advertise = 1", 'advertise = "yes"', 'interfaces = "127.0.0.1"', "interfaces = []", 'interfaces = ["eth0"]',
    "interfaces = [1]", "label = 3", f'label = "{"x" * 257}"', "advertize = true",
])
def test_discovery_config_is_checked(tmp_path, table):
    (tmp_path / "config.toml").write_text(f"[discovery]\n{table}\n")
    with pytest.raises(ConfigError):
        load_config(tmp_path, environ={})


# --- which invitation is advertised (no network) -----------------------------------------------


async def _running_agent(nursery: trio.Nursery, home: Path, **config):
    cfg = Config(home=home, listen_host="127.0.0.1", listen_port=0, advertise_host="127.0.0.1", **config)
    agent = await open_agent(cfg)
    await nursery.start(agent.run)
    return agent


async def _with_agent(home: Path, fn, **config):
    async with trio.open_nursery() as nursery:
        agent = await _running_agent(nursery, home, **config)
        try:
            return await fn(agent)
        finally:
            nursery.cancel_scope.cancel()
            agent.close()


async def test_advertised_invitation_is_reused_and_replaced(tmp_path):
    settings = DiscoveryConfig(advertise=True)

    async def first_run(agent):
        iid, url = await daemon._advertisable(agent, settings)
        parsed = inv.parse_url(url, now=agent.now())
        assert parsed.multi_use and parsed.label == "Corner Shop" and parsed.inviter_did == agent.did
        assert parsed.expires_time is None
        assert await daemon._advertisable(agent, settings) == (iid, url)  # one invitation, not one per call
        assert daemon._still_advertisable(agent, iid)
        # Revoked (by the owner): withdrawn, and a fresh one takes its place.
        agent.store.revoke_invitation(iid)
        assert not daemon._still_advertisable(agent, iid)
        iid2, _ = await daemon._advertisable(agent, settings)
        assert iid2 != iid and daemon._still_advertisable(agent, iid2)
        # Another label in [discovery]: replaced, and the old one revoked (only discovery handed it out).
        iid3, url3 = await daemon._advertisable(agent, DiscoveryConfig(advertise=True, label="Corner Shop East"))
        assert iid3 != iid2 and inv.parse_url(url3, now=agent.now()).label == "Corner Shop East"
        assert agent.store.get_invitation(iid2).state == "revoked" and not daemon._still_advertisable(agent, iid2)
        # Replaced behind its back (the setting names another): the advertiser must restart.
        agent.store.set_setting(daemon.ADVERTISED_SETTING, iid)
        assert not daemon._still_advertisable(agent, iid3)
        agent.store.set_setting(daemon.ADVERTISED_SETTING, iid3)
        return iid3, url3

    # A fixed advertised port: with listen_port 0 the endpoint, and so the DID, would
    # change at every start, and the invitation with it.
    iid, url = await _with_agent(tmp_path, first_run, label="Corner Shop", advertise_port=7498)
    east = DiscoveryConfig(advertise=True, label="Corner Shop East")

    async def advertisable(agent):
        return await daemon._advertisable(agent, east)

    # A restart on the same endpoint advertises the same invitation.
    assert await _with_agent(tmp_path, advertisable, label="Corner Shop", advertise_port=7498) == (iid, url)

    # The endpoint moved: the DID changed, the old invitation points where we no longer listen.
    async def moved(agent):
        again = await daemon._advertisable(agent, east)
        assert agent.store.get_invitation(iid).state == "revoked"
        assert inv.parse_url(again[1], now=agent.now()).inviter_did == agent.did
        return again

    moved_to = await _with_agent(tmp_path, moved, label="Corner Shop", advertise_port=7499)
    assert moved_to[0] != iid
    assert await _with_agent(tmp_path, advertisable, label="Corner Shop", advertise_port=7499) == moved_to


async def test_an_advertiser_that_fails_is_retried_not_fatal(tmp_path, monkeypatch, caplog):
    attempts = []

    async def broken(url, **kwargs):
        attempts.append(url)
        raise OSError(19, "No such device")

    monkeypatch.setattr(d, "advertise", broken)

    async def run(agent):
        with trio.move_on_after(0.5):
            await daemon.advertise_invitation(agent, DiscoveryConfig(advertise=True), retry_after=0.1)
        return await agent.status()

    with caplog.at_level(logging.WARNING, logger="p2p.daemon"):
        status = await _with_agent(tmp_path, run)
    assert status["did"] and len(attempts) >= 3 and len(set(attempts)) == 1  # same invitation each time
    assert any(r.msg == "discovery.advertise_failed" and r.fields["code"] == "OSError" for r in caplog.records)


# --- real mDNS, real daemons, in a private network namespace -------------------------------------


def _run(scenario: str) -> None:
    run_in_netns(scenario, script=__file__, timeout=60)


@pytest.mark.slow
def test_customer_discovers_the_business_and_connects():
    _run("daemons")


def test_advertisement_follows_the_invitation():
    _run("readvertise")


# Everything below runs inside the namespace.


def scenario_daemons() -> None:
    import tempfile

    from zeroconf import IPVersion, ServiceInfo, Zeroconf

    with tempfile.TemporaryDirectory() as base, Cluster(Path(base)) as cluster:
        shop = cluster.add("shop", label="Corner Shop", config={"discovery": {"advertise": True, "interfaces": LO}})
        bea = cluster.add("bea", label="Bea", config={"discovery": {"interfaces": LO}})
        shop.start()
        bea.start()
        shop_fp = wait_for(lambda: _advertised_fp(shop), timeout=10, what="the shop to advertise")
        # Mallory, on the same LAN, advertises her own valid invitation under the shop's
        # label, and a copy of it that claims the shop's fingerprint.
        mallory = invite(MALLORY, MALLORY_DID, label="Corner Shop", id="inv-mallory")
        zc = Zeroconf(interfaces=LO, ip_version=IPVersion.V4Only)
        try:
            for name, strings in [("Corner Shop", strings_for(mallory.url, fp=d.fingerprint(MALLORY.signing.public)
                                                              .encode())),
                                  ("Corner Shop claims", strings_for(mallory.url, fp=shop_fp.encode()))]:
                raw = b"".join(bytes([len(s)]) + s for s in strings)
                zc.register_service(ServiceInfo(d.SERVICE_TYPE, f"{name}.{d.SERVICE_TYPE}", port=7666,
                                                properties=raw, server="mallory.local.", parsed_addresses=LO),
                                    cooperating_responders=True)
            time.sleep(1.0)  # RFC 6762 §6: a fresh announcement is multicast again only after 1 s
            scan = json.loads(bea.run_cli("discover", "--timeout", "2", "--json").stdout)
            shops = [n for n in scan["nearby"] if n["fingerprint"] == shop_fp]
            assert len(shops) == 1, scan
            assert shops[0]["label"] == "Corner Shop" and not shops[0]["own"]
            assert shops[0]["endpoint"] == shop.api.status()["endpoint"]
            # The impostor is listed as what she is: another key, never the shop's.
            others = [n for n in scan["nearby"] if n["fingerprint"] != shop_fp]
            assert [(n["label"], n["fingerprint"], n["agent_did"]) for n in others] == [
                ("Corner Shop", d.fingerprint(MALLORY.signing.public), MALLORY_DID)], scan
            assert [(r["name"], r["code"]) for r in scan["rejected"]] == [
                (f"Corner Shop claims.{d.SERVICE_TYPE}", "advertisement-mismatch")], scan
            # What a person sees: both under their fingerprints, and a warning.
            text = bea.run_cli("discover", "--timeout", "2").stdout
            assert d.display_fingerprint(shop_fp) in text and d.display_fingerprint(
                d.fingerprint(MALLORY.signing.public)) in text, text
            assert "note: 2 agents call themselves 'Corner Shop'" in text, text
            assert "(1 advertisement(s) failed verification" in text, text
            # The shop sees itself marked as its own.
            own = json.loads(shop.run_cli("discover", "--timeout", "2", "--json").stdout)
            assert [n["own"] for n in own["nearby"] if n["fingerprint"] == shop_fp] == [True], own
        finally:
            zc.close()
        # Connect through the normal accept path, choosing by fingerprint.
        out = bea.run_cli("discover", "--timeout", "2", "--accept", d.display_fingerprint(shop_fp)[:9]).stdout
        assert out.splitlines()[0].startswith(f"connecting to Corner Shop {d.display_fingerprint(shop_fp)} at "), out
        assert out.splitlines()[1].startswith("connected: Corner Shop "), out
        [rel] = bea.api.relationships(state="active")
        bea.api.send(rel["id"], {"content": "found you on the Wi-Fi"})
        got = wait_for(lambda: [m for m in shop.api.messages(direction="in")
                                if m["body"].get("content") == "found you on the Wi-Fi"], timeout=10,
                       what="the shop to receive the message")
        assert len(got) == 1
        # A clean stop withdraws the advertisement (goodbye records) and exits 0.
        assert shop.stop() == 0
        left = json.loads(bea.run_cli("discover", "--timeout", "1", "--json").stdout)
        assert left == {"nearby": [], "rejected": []}, left
        assert bea.stop() == 0


def _advertised_fp(shop) -> str | None:
    """The shop's fingerprint once its log says it advertises (probing takes ~1.5 s)."""
    if "discovery.advertising" not in shop.log_text():
        return None
    [row] = [i for i in shop.api.request("GET", "/invitations")["invitations"] if i["multi_use"]]
    return d.fingerprint(inv.parse_url(row["url"], now=int(time.time())).signer_public)


async def scenario_readvertise() -> None:
    """An in-process agent: its advertisement follows its invitation when that is
    revoked, and goes away (goodbye) when the advertiser is cancelled."""
    import tempfile

    with tempfile.TemporaryDirectory() as home:
        async with trio.open_nursery() as nursery:
            agent = await _running_agent(nursery, Path(home), label="Corner Shop")
            settings = DiscoveryConfig(advertise=True, interfaces=tuple(LO))
            with trio.CancelScope() as advertiser:
                async with trio.open_nursery() as inner:
                    await inner.start(functools.partial(daemon.advertise_invitation, agent, settings,
                                                        check_interval=0.1))
                    await trio.sleep(1.0)
                    first = await agent.discover_nearby(1.0)
                    [found] = first["nearby"]
                    assert found["own"] and found["label"] == "Corner Shop"
                    old = inv.parse_url(found["url"], now=agent.now()).id
                    agent.store.revoke_invitation(old)
                    # Withdrawn (goodbye), then a fresh invitation is created and registered
                    # (mDNS probing, about 1.5 s), then announced.
                    with trio.fail_after(5):
                        while (new := agent.store.get_setting(daemon.ADVERTISED_SETTING)) == old:
                            await trio.sleep(0.05)
                    await trio.sleep(2.5)
                    second = await agent.discover_nearby(1.0)
                    assert [inv.parse_url(n["url"], now=agent.now()).id for n in second["nearby"]] == [new], second
                    advertiser.cancel()
            assert (await agent.discover_nearby(0.5)) == {"nearby": [], "rejected": []}
            nursery.cancel_scope.cancel()
        agent.close()


if __name__ == "__main__":
    fn = globals()["scenario_" + sys.argv[1]]
    trio.run(fn) if inspect.iscoroutinefunction(fn) else fn()
    print("SCENARIO OK")
