#!/usr/bin/env python3
"""Run the interop vectors against an implementation of the adapter contract.

    python interop/run.py [--impl 'CMD'] [--filter AREA] [-v]

CMD is started once; it gets one JSON request per line on stdin and must answer one
JSON line per request (interop/README.md). For each vector the reply must carry every
`expect` key with an equal value; keys are checked in order, so the first mismatch
names the step where the implementation diverged.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_IMPL = f"{shlex.quote(sys.executable)} {shlex.quote(str(HERE / 'adapter.py'))}"


def load_vectors(area: str | None) -> list[tuple[str, dict]]:
    out = []
    for path in sorted((HERE / "vectors").glob("*/*.json")):
        rel = str(path.relative_to(HERE / "vectors"))
        if area and not rel.startswith(area + "/"):
            continue
        out.append((rel, json.loads(path.read_text())))
    return out


def short(value: object, limit: int = 120) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check(vector: dict, reply: dict) -> str | None:
    """None when the reply matches, else a one-line account of the first divergence."""
    expect = vector["expect"]
    if "error" in reply and "error" not in expect:
        return f"expected success, got error {reply['error']!r}: {reply.get('detail', '')}"
    for key, want in expect.items():
        if key not in reply:
            return f"step {key!r}: missing from reply"
        if reply[key] != want:
            detail = f" ({reply['detail']})" if key == "error" and reply.get("detail") else ""
            return f"step {key!r}: expected {short(want)}, got {short(reply[key])}{detail}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", default=DEFAULT_IMPL, help="adapter command (default: p2p's own)")
    parser.add_argument("--filter", default=None, help="only vectors of this area (a folder of interop/vectors)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing vectors too")
    args = parser.parse_args()

    vectors = load_vectors(args.filter)
    proc = subprocess.Popen(
        shlex.split(args.impl), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    passed = failed = rejects = 0
    try:
        for n, (name, vector) in enumerate(vectors):
            request = {"id": n, "op": vector["op"], **vector["request"]}
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            if not line:
                print(f"FAIL {name}: adapter exited without a reply")
                failed += len(vectors) - n
                break
            try:
                reply = json.loads(line)
            except ValueError:
                reply = {"error": "unparseable-reply", "detail": line.strip()[:200]}
            problem = check(vector, reply)
            rejects += bool(vector.get("reject"))
            if problem is None:
                passed += 1
                if args.verbose:
                    print(f"ok   {name}")
            else:
                failed += 1
                print(f"FAIL {name}: {problem}")
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=10)
    print(f"{len(vectors)} vectors, {rejects} of them must-reject")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
