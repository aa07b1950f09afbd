"""An agent's home: where it lives on disk, its configuration, and `p2p init`.

    <home>/                 0700; $P2P_HOME, else platformdirs.user_data_dir("p2p")
        config.toml         optional; every key has a default (spec/13-daemon.md §13.2)
        agent.db            the SQLite store (spec/08), 0600; holds the sealed agent keys
        daemon.lock         held (flock) by the running daemon: one daemon per store

The agent's key set (Ed25519 + X25519, from os.urandom) is sealed with
p2p.store.keyfile (under the passphrase if one is configured, else in clear and
protected by the file mode) and kept in the store's identity row. The agent DID is a
did:peer:2 of those keys and the advertised endpoint, so it is recomputed whenever
the endpoint changes; the keys never change.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import logging
import os
import time
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from p2p.core import did
from p2p.core.errors import LocalError
from p2p.core.keys import AgentKeys
from p2p.core.protocols.endpoint import format_endpoint
from p2p.net.limits import TransportLimits
from p2p.store import SQLiteStore
from p2p.store.keyfile import Sealer

if TYPE_CHECKING:
    from p2p.webhooks import Webhook

log = logging.getLogger("p2p.daemon")

DEFAULT_PORT = 7400  # p2p's default TCP port (unassigned by IANA; see spec/13 §13.2)
DEFAULT_PROTOCOLS = ("https://didcomm.org/basicmessage/2.0",)
DB_NAME = "agent.db"
CONFIG_NAME = "config.toml"
LOCK_NAME = "daemon.lock"
HOME_MODE = 0o700


class ConfigError(LocalError):
    code = "config-error"


class AlreadyInitialized(LocalError):
    code = "already-initialized"


class HomeLocked(LocalError):
    """Another daemon has this home (and its store) open."""

    code = "home-locked"


def home_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    value = env.get("P2P_HOME")
    return Path(value).expanduser() if value else Path(platformdirs.user_data_dir("p2p"))


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """The `[discovery]` table (spec/13 §13.2, spec/15): LAN advertising is off unless
    the operator turns it on, because an advertisement tells the whole LAN who we are
    (spec/15 §15.7.3): right for a shop, wrong for a customer."""

    advertise: bool = False
    interfaces: tuple[str, ...] | None = None  # local addresses to bind mDNS to; None: all IPv4 ones
    label: str | None = None  # the advertised invitation's label; None: the agent's `label`


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the daemon reads at start. Defaults give a working agent."""

    home: Path
    listen_host: str = "0.0.0.0"
    listen_port: int = DEFAULT_PORT
    advertise_host: str = "127.0.0.1"
    advertise_port: int | None = None  # None: the port actually listened on
    synchronous: str = "normal"
    label: str = ""
    passphrase: str | None = field(default=None, repr=False)
    limits: TransportLimits = field(default_factory=lambda: DAEMON_LIMITS)
    log_level: str = "info"
    log_format: str = "logfmt"  # or "json"
    api: dict[str, Any] = field(default_factory=dict)  # the [api] table, read by p2p.api.server
    # Application protocols the agent announces (discover-features) and hands to the
    # application; messages of any other protocol get a problem report (spec/11 §11.6).
    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    advertise_warning: bool = False  # advertise_host fell back to 127.0.0.1
    discovery: DiscoveryConfig = field(default_factory=lambda: DiscoveryConfig())  # the [discovery] table
    webhooks: tuple[Webhook, ...] = ()  # the [[webhooks]] tables (p2p.webhooks, spec/20)
    # Which side of the customer-business protocols this agent takes (spec/13):
    # a customer's agent by default; a business sets role = "business".
    role: str = "customer"
    # The [notifications], [terms], [support], [ownership] tables, as read: each
    # protocol's daemon side (p2p/services/) checks its own at start.
    services: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.home / DB_NAME

    @property
    def lock_path(self) -> Path:
        return self.home / LOCK_NAME


# Local limits of the daemon's connections (spec/09 marks them local): a relationship
# may have 256 frames unreceipted (spec/12 §12.4), so the receive queue holds as many,
# and the reader can take a whole window in one batch (one commit).
DAEMON_LIMITS = TransportLimits(inflight_messages=256, inflight_bytes=4 << 20)

_TOP_KEYS = {"listen_host", "listen_port", "advertise_host", "advertise_port", "synchronous", "label",
             "passphrase_file", "log_level", "log_format", "protocols", "role"}
SERVICE_TABLES = ("notifications", "terms", "support", "ownership")
ROLES = ("customer", "business")
_TABLES = {"limits", "api", "discovery", "webhooks", *SERVICE_TABLES}


def _discovery(table: Any) -> DiscoveryConfig:
    if type(table) is not dict:
        raise ConfigError("[discovery] is a table")
    unknown = set(table) - {"advertise", "interfaces", "label"}
    if unknown:
        raise ConfigError(f"unknown [discovery] keys {sorted(unknown)}")
    advertise = table.get("advertise", False)
    if type(advertise) is not bool:
        raise ConfigError("[discovery] advertise is true or false")
    interfaces = table.get("interfaces")
    if interfaces is not None:
        if type(interfaces) is not list or not interfaces or not all(type(a) is str for a in interfaces):
            raise ConfigError("[discovery] interfaces is a non-empty list of local IP addresses")
        for address in interfaces:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ConfigError(f"[discovery] interfaces: {address!r} is not an IP address") from None
        interfaces = tuple(interfaces)
    label = table.get("label")
    if label is not None and (type(label) is not str or len(label) > 256):
        raise ConfigError("[discovery] label is text of at most 256 characters")
    return DiscoveryConfig(advertise=advertise, interfaces=interfaces, label=label)


def _advertise(listen_host: str, configured: str | None, environ: dict[str, str]) -> tuple[str, bool]:
    if configured:
        return configured, False
    if environ.get("P2P_ADVERTISE"):
        return environ["P2P_ADVERTISE"], False
    try:
        unspecified = ipaddress.ip_address(listen_host).is_unspecified
    except ValueError:
        unspecified = False  # a host name: advertise it as is
    if not unspecified:
        return listen_host, False
    return "127.0.0.1", True


def load_config(home: Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read <home>/config.toml if it exists; environment: P2P_HOME, P2P_ADVERTISE,
    P2P_PASSPHRASE (wins over passphrase_file), P2P_LISTEN (host:port)."""
    env = dict(os.environ if environ is None else environ)
    home = Path(home) if home is not None else home_dir(env)
    raw: dict[str, Any] = {}
    path = home / CONFIG_NAME
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
    unknown = set(raw) - _TOP_KEYS - _TABLES
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}")
    listen_host = raw.get("listen_host", "0.0.0.0")
    listen_port = raw.get("listen_port", DEFAULT_PORT)
    if env.get("P2P_LISTEN"):
        h, _, p = env["P2P_LISTEN"].rpartition(":")
        listen_host, listen_port = h or listen_host, int(p)
    if type(listen_host) is not str or type(listen_port) is not int or not 0 <= listen_port <= 65535:
        raise ConfigError("listen_host is text and listen_port an integer 0..65535")
    advertise_host, warn = _advertise(listen_host, raw.get("advertise_host"), env)
    advertise_port = raw.get("advertise_port")
    if advertise_port is not None and (type(advertise_port) is not int or not 1 <= advertise_port <= 65535):
        raise ConfigError("advertise_port is an integer 1..65535")
    synchronous = raw.get("synchronous", "normal")
    if synchronous not in ("normal", "full"):
        raise ConfigError("synchronous is 'normal' or 'full'")
    label = raw.get("label", "")
    if type(label) is not str or len(label) > 256:
        raise ConfigError("label is text of at most 256 characters")
    passphrase = env.get("P2P_PASSPHRASE") or None
    if passphrase is None and raw.get("passphrase_file"):
        pf = Path(raw["passphrase_file"]).expanduser()
        if not pf.is_absolute():
            pf = home / pf
        try:
            passphrase = pf.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"passphrase_file {pf}: {exc.strerror}") from None
    limits = DAEMON_LIMITS
    if raw.get("limits"):
        known = {f.name for f in fields(TransportLimits)}
        bad = set(raw["limits"]) - known
        if bad:
            raise ConfigError(f"unknown [limits] keys {sorted(bad)}")
        try:
            limits = replace(DAEMON_LIMITS, **raw["limits"])
        except (LocalError, TypeError) as exc:
            raise ConfigError(f"[limits]: {getattr(exc, 'detail', None) or exc}") from None
    log_level = raw.get("log_level", "info")
    log_format = raw.get("log_format", "logfmt")
    if log_level not in ("debug", "info", "warning", "error") or log_format not in ("logfmt", "json"):
        raise ConfigError("log_level is debug|info|warning|error, log_format logfmt|json")
    protocols = raw.get("protocols", list(DEFAULT_PROTOCOLS))
    if type(protocols) is not list or not all(type(p) is str and p.count("/") >= 4 for p in protocols):
        raise ConfigError("protocols is a list of protocol URIs such as https://didcomm.org/basicmessage/2.0")
    role = raw.get("role", "customer")
    if role not in ROLES:
        raise ConfigError(f"role is one of {', '.join(ROLES)}")
    services = {}
    for name in SERVICE_TABLES:
        table = raw.get(name, {})
        if type(table) is not dict:
            raise ConfigError(f"[{name}] is a table")
        services[name] = table
    return Config(home=home, role=role, services=services, protocols=tuple(protocols), listen_host=listen_host, listen_port=listen_port, advertise_host=advertise_host,
                  advertise_port=advertise_port, synchronous=synchronous, label=label, passphrase=passphrase,
                  limits=limits, log_level=log_level, log_format=log_format, api=dict(raw.get("api", {})),
                  advertise_warning=warn, discovery=_discovery(raw.get("discovery", {})),
                  webhooks=_webhooks(raw.get("webhooks"), home))


def _webhooks(raw: Any, home: Path) -> tuple[Webhook, ...]:
    from p2p.webhooks import parse_webhooks  # trio and the service: only when configured

    return parse_webhooks(raw, home) if raw is not None else ()


def make_home(home: Path) -> None:
    home.mkdir(mode=HOME_MODE, parents=True, exist_ok=True)
    if (home.stat().st_mode & 0o777) != HOME_MODE:
        os.chmod(home, HOME_MODE)


def sealer_for(config: Config) -> Sealer:
    return Sealer(config.passphrase)


def new_agent_keys() -> AgentKeys:
    return AgentKeys.from_secrets(os.urandom(32), os.urandom(32))


def agent_did(keys: AgentKeys, host: str, port: int) -> str:
    """The public agent DID: did:peer:2 of the key set with the endpoint service."""
    endpoint = format_endpoint(keys.agreement.public_key, host, port)
    return did.agent_did(keys, did.didcomm_service(endpoint))


def open_store(config: Config) -> SQLiteStore:
    make_home(config.home)
    # The daemon checkpoints the WAL from a worker thread (Agent._checkpoints).
    return SQLiteStore(config.db_path, synchronous=config.synchronous, autocheckpoint=False)


def init(config: Config, *, store: SQLiteStore | None = None, sealer: Sealer | None = None) -> str:
    """Create the home, the store and the agent keys; return the agent DID.
    Refuses (AlreadyInitialized) if the store already holds an identity. Pass the
    `sealer` that will open the keys next to spare a second Argon2id run."""
    own = store is None
    store = store or open_store(config)
    try:
        if store.get_identity() is not None:
            raise AlreadyInitialized(f"{config.db_path} already holds an agent identity; "
                                     "refusing to replace it (move the home away to start over)")
        keys = new_agent_keys()
        port = config.advertise_port or config.listen_port or DEFAULT_PORT
        did_ = agent_did(keys, config.advertise_host, port)
        store.set_identity(did_, (sealer or sealer_for(config)).seal(keys.to_cbor()), int(time.time()))
        return did_
    finally:
        if own:
            store.close()


def load_keys(store: SQLiteStore, sealer: Sealer) -> AgentKeys | None:
    identity = store.get_identity()
    if identity is None:
        return None
    return AgentKeys.from_cbor(sealer.open(identity.secret))


class HomeLock:
    """An exclusive flock on <home>/daemon.lock, held while the daemon runs. The
    kernel drops it when the process dies, so a crash never leaves a stale lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise HomeLocked(f"another p2p daemon is running on {self.path.parent}") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> HomeLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
