"""Fan-out: one notification broadcast from a business daemon to N subscribed customers.

    python bench/fanout.py                               # 2,000 customers, 3 runs
    python bench/fanout.py --customers 200 --runs 1      # a quick run (about 45 s)
    python bench/fanout.py --skip-cold                   # warm links only (no 30 s idle waits)

The BUSINESS is one real `p2p daemon` process (tests/daemon_harness.py, `role =
"business"`, its `[limits]` raised to hold thousands of links). This script talks to
it only through its admin API on 127.0.0.1, as an application would.

The CUSTOMERS are N in-process `p2p.agent.Agent`s (real homes, real SQLite, real TCP
listeners and Noise links on 127.0.0.1) spread over P worker processes (this file run
with `_worker`), each one trio program hosting N/P agents. Each customer accepts the
business's multi-use invitation, waits for its topic catalogue, subscribes to the
benchmark topic and waits until its subscribe is receipted (so the business's
audience has it). Workers report on a pipe (JSON lines); times are CLOCK_MONOTONIC,
which every process on the host shares.

Each run makes one `POST /v1/notifications/broadcast` and measures:
* accept: the API call (every recipient's notify sealed and committed to the outbox);
* delivered: until the business's progress (`GET /v1/notifications/broadcasts/{id}`)
  counts every recipient delivered (receipted by its agent); it is polled every
  20 ms from the moment the last customer has the message, so polls do not slow
  the fan-out they measure;
* received: until the last customer agent committed its notify (reported by the
  workers with each customer's own time stamp; p50 is the median customer);
* rate = recipients / delivered wall time;
* CPU: user + system seconds the business, and the workers, spent over the run.

Runs come in two kinds. The daemon closes a link after 30 s without traffic
(p2p.delivery.LINK_IDLE), so a broadcast after a quiet spell must first DIAL every
customer (N Noise handshakes): a *cold* run waits until the business lists no
connection, then broadcasts. A *warm* run broadcasts again right after a cold one
while all links are still up. Figures are the median over `--runs`. With
`--skip-cold` every run is warm (one unmeasured broadcast first brings the links up).

Memory: peak RSS (VmHWM) of the business daemon (before the first broadcast and at
the end), of each customer worker, and per customer agent ((worker peak - worker RSS
before it opened its agents) / agents).

Harness choices that are not the product: the workers stretch each agent's WAL
checkpoint timer (p2p.agent.CHECKPOINT_INTERVAL, 0.5 s -> 10 s) because a thousand
agents in one process would otherwise run 2,000 checkpoint threads a second between
them, a cost no real customer device has; and the customers' transport limits are
small (one link each). The business runs with the daemon's defaults except [limits].

On a 2-core machine the business, the workers and this script share both cores: the
customers' work (open, record, receipt) competes with the business's. Figures are
noisy; compare runs made on the same machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from daemon_harness import BASIC, HOST, Cluster, proc_status  # noqa: E402

NOTIFICATIONS = "https://p2p.example/notifications/1.0"
CATALOGUE_TYPE = NOTIFICATIONS + "/catalogue"
NOTIFY_TYPE = NOTIFICATIONS + "/notify"
TOPIC = {"id": "offers", "title": "Offers", "purpose": "bench/fanout.py broadcasts", "default_urgency": "normal"}
LINK_IDLE_WAIT_S = 120  # how long a cold run waits for the business's links to close


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard one; children (the daemon, the workers)
    inherit it. Each customer agent holds about 5 descriptors (SQLite db, wal, shm,
    listener, link), the business 1 per link plus its own."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a live process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def _status_kib(pid: int, key: str) -> int:
    try:
        return proc_status(pid)[key]
    except (OSError, KeyError):
        return 0


# --- the worker: N/P customer agents in one trio program ------------------------------------


def worker_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="fanout.py _worker")
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--mode", choices=("notifications", "basic"), required=True)
    p.add_argument("--concurrency", type=int, default=25)
    p.add_argument("--checkpoint-interval", type=float, default=10.0)
    args = p.parse_args(argv)
    import logging

    import trio

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    out = os.fdopen(os.dup(1), "w", buffering=1)

    def report(event: str, **data) -> None:
        out.write(json.dumps({"ev": event, "worker": args.index, **data}) + "\n")

    try:
        trio.run(_worker, args, report)
    except BaseException as exc:  # the parent shows it and stops the run
        report("error", detail=f"{type(exc).__name__}: {exc}")
        raise
    return 0


class _Customer:
    """One customer agent and what its event stream has shown."""

    __slots__ = ("agent", "rel_id", "catalogue", "delivered", "received", "changed")

    def __init__(self, agent) -> None:
        import trio

        self.agent = agent
        self.rel_id: str | None = None
        self.catalogue = False
        self.delivered: set[str] = set()  # our message ids the business receipted
        self.received: list[float] = []  # CLOCK_MONOTONIC of each broadcast message committed
        self.changed = trio.Event()

    def _changed(self) -> None:
        import trio

        self.changed.set()
        self.changed = trio.Event()

    async def wait(self, predicate, what: str, timeout: float = 300) -> None:
        import trio

        with trio.fail_after(timeout):
            while not predicate():
                await self.changed.wait()


async def _worker(args, report) -> None:
    import trio

    import p2p.agent as agent_module
    from p2p.agent import Agent
    from p2p.core.errors import P2PError
    from p2p.home import Config
    from p2p.net.limits import TransportLimits

    # See the module docstring: a harness cost, not a product one.
    agent_module.CHECKPOINT_INTERVAL = args.checkpoint_interval
    base_kib = _status_kib(os.getpid(), "VmRSS")
    report("hello", pid=os.getpid(), rss_kib=base_kib)
    limits = TransportLimits(max_connections=8, max_handshaking=4, inflight_messages=64, inflight_bytes=256 << 10)
    watch = {"notifications": NOTIFY_TYPE, "basic": BASIC}[args.mode]
    got: dict[int, list[float]] = {}  # k -> time each customer committed its k-th broadcast message
    customers: list[_Customer] = []

    def on_event(c: _Customer, e: dict) -> None:
        kind = e["event"]
        if kind == "message.received":
            mtype = e["message"]["type"]
            if mtype == watch:
                c.received.append(time.monotonic())
                k = len(c.received)
                times = got.setdefault(k, [])
                times.append(c.received[-1])
                if len(times) == len(customers):
                    report("got", k=k, times=times)
            elif mtype == CATALOGUE_TYPE:
                c.catalogue = True
        elif kind == "message.state" and e.get("state") == "delivered":
            c.delivered.add(e["id"])
        elif kind == "subscription.overflow":
            report("error", detail="an agent's event subscription overflowed")
        c._changed()

    async def watch_events(c: _Customer, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with c.agent.subscribe(buffer=256) as events:
            task_status.started()
            async for e in events:
                on_event(c, e)

    async def run_agent(agent, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            await agent.run(task_status=task_status)
        finally:
            agent.close()

    async def setup(c: _Customer, limiter: trio.CapacityLimiter, progress: list[int]) -> None:
        agent = c.agent
        async with limiter:
            for attempt in range(6):
                try:
                    rel = await agent.accept_invitation(args.url, timeout=60)
                    break
                except P2PError as exc:
                    if attempt == 5:
                        raise RuntimeError(f"accept failed 6 times: {exc.code}: {exc}") from None
                    await trio.sleep(0.5 * (attempt + 1))
        c.rel_id = rel["id"]
        if args.mode == "notifications":
            await c.wait(lambda: c.catalogue, "the catalogue")
            # The rate limit is raised so that any number of runs fits (the default is
            # 24 a day); it is checked per notify either way.
            doc = await agent.service("notifications").update_subscriptions(
                c.rel_id, subscribe=[args.topic], rate_limit={"max": 10_000, "window": 86_400})
            (mid,) = doc["sent"]
            # Receipted means the business committed it, and its audience with it.
            await c.wait(lambda: mid in c.delivered or _state(agent, mid) == "delivered", "the subscribe receipt")
        progress[0] += 1

    def _state(agent, mid: str) -> str:
        a = agent.store.get_archived(mid)
        return str(a.state) if a is not None else ""

    async with trio.open_nursery() as nursery:
        t0 = time.monotonic()
        for i in range(args.count):
            cfg = Config(home=Path(args.base) / f"w{args.index}-c{i}", listen_host=HOST, listen_port=0,
                         advertise_host=HOST, label=f"customer {args.index}.{i}", limits=limits)
            agent = Agent.open(cfg)
            c = _Customer(agent)
            customers.append(c)
            await nursery.start(watch_events, c)
            await nursery.start(run_agent, agent)
        report("opened", seconds=time.monotonic() - t0, rss_kib=_status_kib(os.getpid(), "VmRSS"))

        progress = [0]
        limiter = trio.CapacityLimiter(args.concurrency)

        async def tick() -> None:
            while True:
                await trio.sleep(2)
                report("progress", ready=progress[0])

        async with trio.open_nursery() as setup_nursery:
            ticker = trio.CancelScope()

            async def ticking() -> None:
                with ticker:
                    await tick()
            setup_nursery.start_soon(ticking)
            async with trio.open_nursery() as each:
                for c in customers:
                    each.start_soon(setup, c, limiter, progress)
            ticker.cancel()
        report("ready", count=len(customers), rss_kib=_status_kib(os.getpid(), "VmRSS"),
               relationships=[c.rel_id for c in customers])

        # Commands on stdin: "stop" (or EOF: the parent is gone).
        stdin = trio.lowlevel.FdStream(os.dup(0))
        buf = b""
        while b"stop" not in buf:
            data = await stdin.receive_some(1024)
            if not data:
                break
            buf += data
        hwm = _status_kib(os.getpid(), "VmHWM")
        with trio.move_on_after(5):
            async with trio.open_nursery() as closing:
                for c in customers:
                    closing.start_soon(c.agent.shutdown)
        nursery.cancel_scope.cancel()
    report("stopped", hwm_kib=hwm, base_kib=base_kib)


# --- the parent ---------------------------------------------------------------------------


class Worker:
    def __init__(self, index: int, count: int, argv: list[str], log: Path, events: queue.Queue) -> None:
        self.index, self.count = index, count
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
        self.info: dict[str, dict] = {}
        self.reader = threading.Thread(target=self._read, args=(events,), daemon=True)
        self.reader.start()

    def _read(self, events: queue.Queue) -> None:
        for line in self.proc.stdout:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            self.info[doc["ev"]] = doc
            events.put(doc)
        events.put({"ev": "exit", "worker": self.index, "rc": self.proc.wait()})

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"stop\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _wait_events(events: queue.Queue, workers: list[Worker], ev: str, *, timeout: float,
                 progress: str | None = None, k: int | None = None) -> dict[int, dict]:
    """Until every worker reported `ev` (and for "got", this `k`)."""
    seen: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    last_note = time.monotonic()
    ready: dict[int, int] = {}
    while len(seen) < len(workers):
        try:
            doc = events.get(timeout=max(0.01, min(1.0, deadline - time.monotonic())))
        except queue.Empty:
            doc = None
        if doc is not None:
            if doc["ev"] == "exit" and doc["worker"] in seen:
                continue  # it has said what we waited for, then ended
            if doc["ev"] in ("error", "exit"):
                w = workers[doc["worker"]]
                raise SystemExit(f"worker {doc['worker']} failed: {doc.get('detail') or doc}\n"
                                 f"{Path(w.log.name).read_text(errors='replace')[-3000:]}")
            if doc["ev"] == "progress":
                ready[doc["worker"]] = doc["ready"]
            if doc["ev"] == ev and (k is None or doc.get("k") == k):
                seen[doc["worker"]] = doc
        if progress and time.monotonic() - last_note > 5:
            last_note = time.monotonic()
            print(f"  {progress}: {sum(ready.values())} of {sum(w.count for w in workers)}", file=sys.stderr)
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout} s waiting for {ev} "
                             f"({len(seen)} of {len(workers)} workers)")
    return seen


def _connections(api) -> int:
    return api.status()["connections"]


def broadcast_run(business, events, workers, k: int, mode: str, rels: list[str], topic: str) -> dict:
    """One broadcast; returns its figures (seconds since the POST).

    The business's progress is polled only once every customer has reported the
    message: a recipient cannot be receipted before its agent committed it, and each
    poll costs the business a query over every recipient, which would slow the very
    fan-out it measures (about 6 % of its CPU when polled throughout)."""
    api = business.api
    pids = [w.proc.pid for w in workers]
    cpu_business, cpu_customers = _cpu_s(business.pid), sum(_cpu_s(p) for p in pids)
    t0 = time.monotonic()
    if mode == "notifications":
        doc = api.request("POST", "/notifications/broadcast",
                          {"topic": topic, "title": f"Offer {k}", "body": f"bench/fanout.py broadcast {k}"})
        t_accept = time.monotonic()
        skipped = sum((doc.get("skipped") or {}).values())
        if skipped:
            raise SystemExit(f"broadcast {doc['id']} skipped customers: {doc['skipped']}")
        recipients = doc["recipients"]
        path = f"/notifications/broadcasts/{doc['id']}"

        def delivered() -> bool:
            counts = api.request("GET", path)["counts"]
            if counts["failed"] or counts["expired"]:
                raise SystemExit(f"broadcast {doc['id']}: {counts}")
            return counts["delivered"] + counts["read"] >= recipients
    else:
        # Without the notifications service: one basic message per relationship,
        # posted by a few threads, each relationship's own POST.
        api_threads = 4
        errors: list[BaseException] = []

        def post(share: list[str]) -> None:
            client = api.clone()
            try:
                for rid in share:
                    client.send(rid, {"content": f"broadcast {k}"})
            except BaseException as exc:
                errors.append(exc)
            finally:
                client.close()
        threads = [threading.Thread(target=post, args=(rels[i::api_threads],)) for i in range(api_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        t_accept = time.monotonic()
        recipients = len(rels)

        def delivered() -> bool:
            out = api.status()["outbox"]
            if out["failed"] or out["expired"]:
                raise SystemExit(f"basic broadcast: outbox {out}")
            return out["queued"] + out["sent"] == 0
    got = _wait_events(events, workers, "got", timeout=600, k=k)
    times = sorted(t for doc in got.values() for t in doc["times"])
    while not delivered():
        time.sleep(0.02)
    t_delivered = time.monotonic()
    cpu_business = _cpu_s(business.pid) - cpu_business
    cpu_customers = sum(_cpu_s(p) for p in pids) - cpu_customers
    return {"recipients": recipients, "accept": t_accept - t0, "delivered": t_delivered - t0,
            "cpu_business": cpu_business, "cpu_per_recipient": cpu_business / recipients * 1000,
            "cpu_customers": cpu_customers,
            "received_p50": times[len(times) // 2] - t0, "received_max": times[-1] - t0,
            "rate": recipients / (t_delivered - t0)}


@contextlib.contextmanager
def _profiled(prefix: str | None, kind: str, pid: int):
    """py-spy (installed next to this interpreter) sampling the business meanwhile."""
    if prefix is None:
        yield
        return
    out = f"{prefix}-{kind}.txt"
    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw", "-o", out,
                            "-r", "200", "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(60)
        print(f"  profile of the {kind} run: {out}", file=sys.stderr)


def wait_links_closed(api, timeout: float = LINK_IDLE_WAIT_S) -> float:
    t0 = time.monotonic()
    while _connections(api):
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"the business still has {_connections(api)} links after {timeout} s")
        time.sleep(0.5)
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_worker":
        return worker_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=2000, help="subscribed customer agents (default 2000)")
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 4, help="worker processes hosting them")
    parser.add_argument("--runs", type=int, default=3, help="broadcasts of each kind; medians are printed")
    parser.add_argument("--skip-cold", action="store_true", help="warm runs only (no 30 s waits for idle links)")
    parser.add_argument("--concurrency", type=int, default=25, help="invitation accepts at once per worker")
    parser.add_argument("--mode", choices=("notifications", "basic"), default="notifications",
                        help="basic: one POST /v1/messages per customer instead of a broadcast (no service needed)")
    parser.add_argument("--log-level", default="info", help="the business daemon's log_level")
    parser.add_argument("--profile", metavar="PREFIX",
                        help="py-spy record the business during the first broadcast of each kind: "
                             "PREFIX-cold.txt, PREFIX-warm.txt (collapsed stacks; figures of that run are skewed)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, homes)")
    args = parser.parse_args(argv)
    n, procs = args.customers, max(1, min(args.procs, args.customers))

    nofile = raise_nofile()
    need = 5 * n + 200
    if nofile < need:
        print(f"warning: RLIMIT_NOFILE is {nofile}; {n} customers want about {need}", file=sys.stderr)

    tmp = tempfile.mkdtemp(prefix="p2p-fanout-")
    events: queue.Queue = queue.Queue()
    workers: list[Worker] = []
    try:
        with Cluster(Path(tmp)) as cluster:
            business = cluster.add("business", label="Bench Shop", config={
                "role": "business", "log_level": args.log_level,
                "limits": {"max_connections": n + 256, "max_handshaking": min(512, n + 256)}})
            business.start()
            api = business.api
            if args.mode == "notifications":
                api.request("PUT", "/notifications/topics", {"topics": [TOPIC]})
            url = api.invite(multi_use=True, label="Bench Shop")["url"]

            shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
            t_setup = time.monotonic()
            for i, count in enumerate(shares):
                workers.append(Worker(i, count, [
                    sys.executable, str(Path(__file__).resolve()), "_worker", "--index", str(i), "--count", str(count),
                    "--base", str(Path(tmp) / "customers"), "--url", url, "--topic", TOPIC["id"],
                    "--mode", args.mode, "--concurrency", str(args.concurrency)],
                    Path(tmp) / f"worker{i}.log", events))
            hello = _wait_events(events, workers, "opened", timeout=600)
            opened_s = time.monotonic() - t_setup
            print(f"  {n} customer agents open in {procs} workers after {opened_s:.1f} s; setting up",
                  file=sys.stderr)
            _wait_events(events, workers, "ready", timeout=1800, progress="subscribed")
            setup_s = time.monotonic() - t_setup
            # The inviter lists a relationship as active once the invitee's `complete`
            # is in: a moment after the invitee's own view.
            deadline = time.monotonic() + 120
            while len(active := api.relationships(state="active")) < n and time.monotonic() < deadline:
                time.sleep(0.2)
            if len(active) != n:
                raise SystemExit(f"the business lists {len(active)} active relationships, not {n}")
            print(f"  setup done in {setup_s:.1f} s: {len(active)} active relationships at the business",
                  file=sys.stderr)
            business_rels = [r["id"] for r in active]
            setup_hwm = business.hwm_kib()
            del hello

            results: dict[str, list[dict]] = {"cold": [], "warm": []}
            k = 0
            if args.skip_cold:
                k += 1
                broadcast_run(business, events, workers, k, args.mode, business_rels, TOPIC["id"])  # priming
            for run in range(args.runs):
                if not args.skip_cold:
                    waited = wait_links_closed(api)
                    print(f"  run {run + 1}: links idle-closed after {waited:.1f} s; cold broadcast", file=sys.stderr)
                    k += 1
                    with _profiled(args.profile if run == 0 else None, "cold", business.pid):
                        results["cold"].append(broadcast_run(business, events, workers, k, args.mode,
                                                             business_rels, TOPIC["id"]))
                links = _connections(api)
                k += 1
                with _profiled(args.profile if run == 0 else None, "warm", business.pid):
                    warm = broadcast_run(business, events, workers, k, args.mode, business_rels, TOPIC["id"])
                warm["links_up"] = links
                results["warm"].append(warm)
                r = results["cold"][-1] if results["cold"] else None
                print(f"  run {run + 1}: " + (f"cold {r['delivered']:.2f} s, " if r else "")
                      + f"warm {warm['delivered']:.2f} s ({links} links up)", file=sys.stderr)

            business_hwm = business.hwm_kib()
            for w in workers:
                w.stop()
            stopped = _wait_events(events, workers, "stopped", timeout=120)
            business.stop()
    finally:
        for w in workers:
            w.kill()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}", file=sys.stderr)

    _print_report(args, n, procs, setup_s, results, setup_hwm, business_hwm, workers, stopped, shares)
    return 0


def _print_report(args, n, procs, setup_s, results, setup_hwm, business_hwm, workers, stopped, shares) -> None:
    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    print(f"p2p fan-out: one business daemon -> {n:,} customer agents in {procs} worker processes "
          f"({args.mode}, {os.cpu_count()} CPUs)")
    print(f"  setup (open, accept invitation, catalogue, subscribe receipted): {setup_s:.1f} s "
          f"({n / setup_s:.0f} customers/s)")
    rows = [("recipients", "recipients", "{:,.0f}"), ("broadcast accepted (API call)", "accept", "{:.3f} s"),
            ("all delivered (business progress)", "delivered", "{:.3f} s"),
            ("customers received: median", "received_p50", "{:.3f} s"),
            ("customers received: last", "received_max", "{:.3f} s"),
            ("messages/s (recipients / delivered)", "rate", "{:,.0f}"),
            ("business CPU during it", "cpu_business", "{:.2f} s"),
            ("business CPU per recipient", "cpu_per_recipient", "{:.2f} ms"),
            ("customer workers' CPU during it", "cpu_customers", "{:.2f} s")]
    kinds = [k for k in ("cold", "warm") if results[k]]
    head = f"  {'median of ' + str(args.runs) + ' runs':<40}" + "".join(f"{k:>12}" for k in kinds)
    print(head)
    for label, key, fmt in rows:
        print(f"  {label:<40}" + "".join(f"{fmt.format(med(k, key)):>12}" for k in kinds))
    for kind in kinds:
        per = ", ".join(f"{r['delivered']:.2f}" for r in results[kind])
        print(f"  {kind} runs, delivered s: {per}")
    print(f"  peak RSS business daemon: {business_hwm / 1024:.1f} MiB "
          f"(after setup, before the first broadcast: {setup_hwm / 1024:.1f} MiB)")
    for w, count in zip(workers, shares):
        doc = stopped[w.index]
        per_agent = (doc["hwm_kib"] - doc["base_kib"]) / count
        print(f"  peak RSS worker {w.index}: {doc['hwm_kib'] / 1024:.1f} MiB for {count} agents "
              f"({per_agent:.0f} KiB per agent over its {doc['base_kib'] / 1024:.0f} MiB start)")


if __name__ == "__main__":
    sys.exit(main())
