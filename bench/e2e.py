"""End-to-end delivery between two real daemons on loopback.

    python bench/e2e.py            # 10,000 messages, 10 s at 1,000 msg/s
    python bench/e2e.py --quick    # a smoke run: 2,000 messages, 3 s

Two `p2p daemon` processes (A sends, B receives; tests/daemon_harness.py starts them
in temporary homes, synchronous = normal, 127.0.0.1 only), connected by invitation.
This script is only an admin API client of both: what it measures is what an
application sees.

1. Throughput: N messages A -> B, posted in batches (one transaction per batch) as
   fast as A accepts them, while a poller pages through B's message archive. The
   figure is messages per second *durably delivered end to end*: from the first
   POST to A until B's API lists the N-th message (stored, receipted, readable by B's
   application). "Sustained" is the rate between 10 % and 90 % delivered, which leaves
   out the start and the tail.
2. Latency at an offered rate of 1,000 msg/s (batches of 10 every 10 ms by default):
   each body carries the sender's clock at the moment before its POST; B's event
   stream (GET /v1/events, `message.received`) is read in this process and the
   difference is the latency. Same process, same monotonic clock.
3. Memory: each daemon's peak resident set (VmHWM from /proc) over the run.

Targets: >= 3,000 msg/s sustained, p99 < 50 ms at 1,000 msg/s, peak RSS < 80 MiB per
daemon. On the 2-core CI machines the two daemons and this client share both cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from daemon_harness import BASIC, Cluster, connect_pair, proc_status  # noqa: E402

TARGET_RATE = 3000
TARGET_P99_MS = 50
TARGET_RSS_MB = 80


def throughput(a, b, rel_a, rel_b, total: int, batch: int, senders: int) -> dict:
    after0 = _last_cursor(b, rel_b)
    arrivals: list[float] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def poll():
        api = b.api.clone()
        after = after0
        try:
            while len(arrivals) < total:
                page = api.messages_page(relationship=rel_b, direction="in", type=BASIC, after=after, limit=1000)
                now = time.perf_counter()
                if page["messages"]:
                    arrivals.extend([now] * len(page["messages"]))
                    after = page["messages"][-1]["cursor"]
                if page.get("next_after") is None:
                    time.sleep(0.02)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    accepted_at: list[float] = []
    lock = threading.Lock()

    def send(share: int, tag: int):
        api = a.api.clone()
        try:
            sent = 0
            while sent < share:
                k = min(batch, share - sent)
                api.send_many(rel_a, [{"body": {"content": "x" * 200, "s": tag, "n": sent + i}} for i in range(k)])
                sent += k
                with lock:
                    accepted_at.append(time.perf_counter())
        except BaseException as exc:
            errors.append(exc)

    poller = threading.Thread(target=poll, daemon=True)
    shares = [total // senders + (1 if i < total % senders else 0) for i in range(senders)]
    workers = [threading.Thread(target=send, args=(share, i), daemon=True) for i, share in enumerate(shares)]
    t0 = time.perf_counter()
    poller.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.wait(300)
    if errors:
        raise errors[0]
    if len(arrivals) < total:
        raise SystemExit(f"only {len(arrivals)} of {total} messages arrived")
    t_end = arrivals[total - 1]
    lo, hi = arrivals[int(total * 0.1)], arrivals[int(total * 0.9)]
    return {
        "total": total,
        "elapsed_s": t_end - t0,
        "end_to_end_rate": total / (t_end - t0),
        "sustained_rate": (int(total * 0.9) - int(total * 0.1)) / (hi - lo) if hi > lo else float("nan"),
        "accept_rate": total / (max(accepted_at) - t0),
    }


def settle(a, rel_a) -> None:
    """Let A finish the previous phase (receipts, state updates) so it does not bill
    the next one: until nothing is pending, then a moment more."""
    deadline = time.monotonic() + 60
    while a.api.relationship(rel_a)["outbox_pending"] and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)


def _last_cursor(daemon, rel) -> int | None:
    page = daemon.api.messages_page(relationship=rel, direction="in", limit=1000)
    last = None
    while True:
        if page["messages"]:
            last = page["messages"][-1]["cursor"]
        if page.get("next_after") is None:
            return last
        page = daemon.api.messages_page(relationship=rel, direction="in", after=page["next_after"], limit=1000)


def latency(a, b, rel_a, rel_b, rate: int, seconds: float, batch: int) -> dict:
    total = int(rate * seconds)
    latencies: list[float] = []
    ready = threading.Event()
    finished = threading.Event()
    errors: list[BaseException] = []

    def listen():
        try:
            events = b.api.events(timeout=seconds + 60)
            ready.set()
            for event in events:
                if event.get("event") == "subscription.overflow":
                    raise RuntimeError("event subscription overflowed: the reader fell behind")
                if event.get("event") != "message.received":
                    continue
                now = time.perf_counter_ns()
                body = (event.get("message") or {}).get("body") or {}
                if "sent" in body:
                    latencies.append((now - body["sent"]) / 1e9)
                    if len(latencies) >= total:
                        break
        except BaseException as exc:
            errors.append(exc)
        finally:
            ready.set()
            finished.set()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(10)
    time.sleep(0.3)  # the stream is subscribed before traffic starts
    api = a.api.clone()
    interval = batch / rate
    start = time.perf_counter()
    sent = 0
    late = 0
    while sent < total:
        due = start + (sent // batch) * interval
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        elif now - due > interval:
            late += 1
        k = min(batch, total - sent)
        stamp = time.perf_counter_ns()  # an integer: floats are not in p2p's data model
        api.send_many(rel_a, [{"body": {"content": "y" * 200, "sent": stamp}} for _ in range(k)])
        sent += k
    offered_s = time.perf_counter() - start
    finished.wait(60)
    if errors:
        raise errors[0]
    if len(latencies) < total:
        raise SystemExit(f"only {len(latencies)} of {total} latency samples arrived")
    ms = sorted(x * 1000 for x in latencies)
    return {
        "offered_rate": total / offered_s,
        "late_batches": late,
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "max_ms": ms[-1],
    }


class RssWatch(threading.Thread):
    def __init__(self, daemons):
        super().__init__(daemon=True)
        self.daemons = daemons
        self.peak = {d.name: 0 for d in daemons}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for d in self.daemons:
                try:
                    self.peak[d.name] = max(self.peak[d.name], proc_status(d.pid)["VmHWM"])
                except (OSError, KeyError):
                    pass
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (2,000 messages, 3 s of latency)")
    parser.add_argument("--messages", type=int, help="throughput phase size (default 10,000)")
    parser.add_argument("--batch", type=int, default=200, help="messages per POST in the throughput phase")
    parser.add_argument("--senders", type=int, default=2, help="concurrent POSTing threads (throughput)")
    parser.add_argument("--rate", type=int, default=1000, help="offered rate of the latency phase, msg/s")
    parser.add_argument("--seconds", type=float, help="length of the latency phase (default 10)")
    parser.add_argument("--latency-batch", type=int, default=10, help="messages per POST in the latency phase")
    args = parser.parse_args(argv)
    total = args.messages or (2000 if args.quick else 10_000)
    seconds = args.seconds or (3.0 if args.quick else 10.0)

    with tempfile.TemporaryDirectory(prefix="p2p-bench-") as tmp, Cluster(Path(tmp)) as cluster:
        a = cluster.add("sender").start()
        b = cluster.add("receiver").start()
        rel_a, rel_b = connect_pair(a, b)
        watch = RssWatch([a, b])
        watch.start()
        # Warm up: connection up, code paths and caches hot.
        throughput(a, b, rel_a, rel_b, 500, args.batch, 1)
        settle(a, rel_a)
        t = throughput(a, b, rel_a, rel_b, total, args.batch, args.senders)
        settle(a, rel_a)
        lat = latency(a, b, rel_a, rel_b, args.rate, seconds, args.latency_batch)
        watch.stop.set()
        watch.join()
        rss = {name: kib / 1024 for name, kib in watch.peak.items()}
        for d in (a, b):
            d.stop()

    rows = [
        ("messages A -> B", f"{t['total']:,}", ""),
        ("accepted by A's API", f"{t['accept_rate']:,.0f} msg/s", ""),
        ("delivered end to end (first POST -> last in B)", f"{t['end_to_end_rate']:,.0f} msg/s", ""),
        ("sustained (10 % -> 90 % delivered)", f"{t['sustained_rate']:,.0f} msg/s",
         _verdict(t["sustained_rate"] >= TARGET_RATE, f">= {TARGET_RATE:,}")),
        (f"offered rate (batches of {args.latency_batch})", f"{lat['offered_rate']:,.0f} msg/s",
         f"{lat['late_batches']} late batches" if lat["late_batches"] else ""),
        ("latency p50", f"{lat['p50_ms']:.1f} ms", ""),
        ("latency p99", f"{lat['p99_ms']:.1f} ms", _verdict(lat["p99_ms"] < TARGET_P99_MS, f"< {TARGET_P99_MS} ms")),
        ("latency max", f"{lat['max_ms']:.1f} ms", ""),
    ] + [(f"peak RSS {name}", f"{mb:.1f} MiB", _verdict(mb < TARGET_RSS_MB, f"< {TARGET_RSS_MB} MiB"))
         for name, mb in rss.items()]
    width = max(len(r[0]) for r in rows)
    print(f"p2p end to end, two daemons on loopback{' (quick)' if args.quick else ''}")
    for name, value, verdict in rows:
        print(f"  {name:<{width}}  {value:>14}  {verdict}")
    failed = [r for r in rows if r[2].startswith("FAIL")]
    print("verdict:", "all targets met" if not failed else f"{len(failed)} target(s) missed")
    return 0


def _verdict(ok: bool, target: str) -> str:
    return f"{'ok' if ok else 'FAIL'} (target {target})"


if __name__ == "__main__":
    sys.exit(main())
