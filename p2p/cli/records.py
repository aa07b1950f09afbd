"""Getting the agent's record out: all of it at once with `p2p export`, or live as it
happens with `p2p events`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..core import cbor
from ._common import Command, UsageError, _client_command, _name, _print_json, _summary, _when, resolve_connection

EXPORT_FORMAT, EXPORT_VERSION = "p2p-export", 1


def _write_private(path: Path, data: bytes) -> None:
    """All or nothing, readable by the owner only: an export holds every message."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@_client_command
def cmd_export(client: Any, args: argparse.Namespace) -> None:
    if args.format == "cbor" and args.output is None and sys.stdout.isatty():
        raise UsageError("refusing to write CBOR to a terminal; use -o FILE or a pipe")
    rels = [resolve_connection(client, args.connection)] if args.connection else client.relationships()
    progress = sys.stderr.isatty()
    records, total = [], 0
    for rel in rels:
        messages = []
        for msg in client.iter_messages(relationship=rel["id"]):
            messages.append(msg)
            if progress and len(messages) % 1000 == 0:
                print(f"\rexporting {_name(rel)}: {len(messages)} messages", end="", file=sys.stderr, flush=True)
        if progress:
            print(f"\rexporting {_name(rel)}: {len(messages)} messages", file=sys.stderr)
        # Tickets, ownership records, agreements and notification settings: what the
        # protocols keep besides the messages (GET /v1/relationships/{id}/record).
        record = client.request("GET", f"/relationships/{rel['id']}/record")
        records.append({**record, "relationship": record.get("relationship", rel), "messages": messages})
        total += len(messages)
    doc = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "exported_time": int(time.time()),
           "agent": {"did": client.status()["did"]}, "relationships": records}
    data = (cbor.dumps(doc) if args.format == "cbor"
            else (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    if args.output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    _write_private(Path(args.output), data)
    summary = {"file": args.output, "format": args.format, "relationships": len(records), "messages": total}
    if args.json:
        return _print_json(summary)
    print(f"exported {len(records)} connection(s) and {total} message(s) to {args.output}")


@_client_command
def cmd_events(client: Any, args: argparse.Namespace) -> None:
    for event in client.events():
        if args.json:
            print(json.dumps(event, ensure_ascii=False), flush=True)
            continue
        detail = {k: v for k, v in event.items() if k not in ("event", "time")}
        msg = detail.get("message")
        text = _summary(msg) if isinstance(msg, dict) else json.dumps(detail, ensure_ascii=False)
        print(f"{_when(event.get('time'))}  {event.get('event')}  {text}", flush=True)


def add_commands(command: Command) -> None:
    p = command("export", cmd_export, "write the whole record of one or all connections: relationship and messages")
    p.add_argument("connection", nargs="?")
    p.add_argument("--format", choices=["json", "cbor"], default="json")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (mode 0600) instead of standard output")
    command("events", cmd_events, "follow the agent's live events until interrupted")
