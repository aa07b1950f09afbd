"""Serve the admin API over a seeded FakeAgent, as a daemon would, for the CLI tests.

    python tests/serve_fake.py HOME

Creates HOME/api-token, serves on 127.0.0.1 (a free port), writes HOME/api.json, prints
`ready HOST PORT` and then reads commands on standard input, one per line:

    deliver RELATIONSHIP_ID TEXT     play an incoming basic message (emits an event)
    play RELATIONSHIP_ID TYPE THID   play an incoming message of any type, body {}

It exits when standard input closes.
"""

import os
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import trio  # noqa: E402

from fake_agent import seeded  # noqa: E402
from p2p.api import token as homefiles  # noqa: E402
from p2p.api.server import serve_api  # noqa: E402


async def commands(agent, cancel_scope: trio.CancelScope) -> None:
    stream = trio.lowlevel.FdStream(os.dup(0))
    buffer = b""
    while chunk := await stream.receive_some():
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            verb, _, rest = line.decode().partition(" ")
            if verb == "deliver":
                rid, _, text = rest.partition(" ")
                agent.deliver(rid, body={"content": text})
            elif verb == "play":
                rid, mtype, thid = rest.split(" ")
                agent.deliver(rid, type=mtype, body={}, thid=thid)
    cancel_scope.cancel()


async def main(home: Path) -> None:
    agent = seeded()
    token = homefiles.ensure_token(home)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(lambda task_status: serve_api(agent, port=0, token=token,
                                                                       task_status=task_status))
        homefiles.write_address(home, host, port)
        print(f"ready {host} {port}", flush=True)
        nursery.start_soon(commands, agent, nursery.cancel_scope)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]))
