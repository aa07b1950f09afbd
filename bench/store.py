"""Rows per second through the store's hot paths (prints, asserts nothing).

    python bench/store.py [--rows N]

Each figure is the median of five passes over a fresh database in a temporary
directory (on the same file system as /tmp). 1 KiB payloads, random UUID message ids,
batches of 100 unless the label says otherwise. The machines are shared: expect
+-30% between runs, compare rows of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from p2p.store import Incoming, Outgoing, SQLiteStore  # noqa: E402

PAYLOAD = os.urandom(1024)


def _fresh(tmp: str, sync: str, name: str) -> SQLiteStore:
    s = SQLiteStore(Path(tmp) / f"{name}-{sync}.db", synchronous=sync)
    s.add_relationship(id="r", our_did="did:us", their_did="did:them", their_ed25519=b"e" * 32,
                       their_x25519=b"x" * 32, our_secret=b"s" * 32, now=0)
    return s


def bench(tmp: str, sync: str, rows: int, batch: int, what: str) -> float:
    s = _fresh(tmp, sync, f"{what}-{batch}-{time.perf_counter_ns()}")
    try:
        if what == "enqueue":
            batches = [[Outgoing(str(uuid.uuid4()), "r", "th", PAYLOAD) for j in range(batch)]
                       for i in range(rows // batch)]
            t = time.perf_counter()
            for b in batches:
                s.enqueue_many(b, now=1)
        elif what == "receive":
            batches = [[Incoming("r", "did:them", str(uuid.uuid4()), "th", "t", PAYLOAD) for j in range(batch)]
                       for i in range(rows // batch)]
            t = time.perf_counter()
            for b in batches:
                s.record_received_many(b, now=1)
        elif what == "ack":
            ids = [str(uuid.uuid4()) for _ in range(rows)]
            for i in range(0, rows, 1000):
                s.enqueue_many([Outgoing(m, "r", "th", PAYLOAD) for m in ids[i:i + 1000]], now=1)
            t = time.perf_counter()
            for i in range(0, rows, batch):
                s.mark_acked_many("r", ids[i:i + batch])
        else:
            raise ValueError(what)
        return rows / (time.perf_counter() - t)
    finally:
        s.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'operation':<34} {'synchronous':<11} {'rows/s':>9} {'us/row':>8}")
        cases = [("enqueue", 100), ("enqueue", 1), ("receive", 100), ("ack", 100)]
        for what, batch in cases:
            for sync in ("normal", "full"):
                n = args.rows if batch > 1 else min(args.rows, 2000 if sync == "normal" else 500)
                rate = statistics.median(bench(tmp, sync, n, batch, what) for _ in range(5))
                label = f"{what}_many, batch {batch}"
                print(f"{label:<34} {sync:<11} {rate:>9,.0f} {1e6 / rate:>8.1f}")


if __name__ == "__main__":
    main()
