"""`p2p init` and `p2p daemon`: create the agent's home, run the agent (the home is
$P2P_HOME, see spec/13-daemon.md)."""

from __future__ import annotations

import argparse

from ._common import Command


def cmd_init(args: argparse.Namespace) -> int:
    from ..home import init, load_config

    config = load_config()
    print(init(config))
    return 0


def cmd_daemon(args: argparse.Namespace) -> int:
    from .. import daemon
    from ..home import load_config

    return daemon.main(load_config())


def add_commands(command: Command) -> None:
    command("init", cmd_init, "create the agent's home, keys and store; print the agent DID", client=False)
    command("daemon", cmd_daemon, "run the agent (initialises the home first if needed)", client=False)
