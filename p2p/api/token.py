"""The two small files through which the `p2p` command finds and authenticates to its daemon.

Both live in the agent's home directory (spec/14-admin-api.md §14.2):

- `api-token`: the bearer token, one line of URL-safe base64 (secrets.token_urlsafe(32),
  256 bits), mode 0600. Whoever can read it controls the agent, exactly like the keyfile.
- `api.json`: where the running daemon's API listens, `{"version": 1, "host": str,
  "port": int, "pid": int}`; written by the daemon once the API is up, removed on a clean
  stop. A stale file (daemon crashed) is harmless: the client's connection is refused and
  it says the daemon is not running.

Both are written atomically (temporary file in the same directory, fsync, rename), so a
reader never sees half a token or half an address.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from p2p.core.errors import LocalError

TOKEN_FILE = "api-token"
ADDRESS_FILE = "api.json"
ADDRESS_VERSION = 1
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7401
MAX_TOKEN_CHARS = 256
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class ApiFileError(LocalError):
    """`api-token` or `api.json` exists but is not what p2p writes."""

    code = "api-file-error"


def default_home() -> Path:
    """$P2P_HOME, else the platform's data directory: p2p.home's rule. The variable is
    read here first only so that a client command does not import the daemon's modules."""
    if os.environ.get("P2P_HOME"):
        return Path(os.environ["P2P_HOME"]).expanduser()
    from p2p.home import home_dir

    return home_dir()


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The rename itself must survive a crash, or the next start finds the old file.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --- token -----------------------------------------------------------------------


def create_token(home: Path | str) -> str:
    """A fresh token, stored as `home/api-token` (0600), replacing any previous one."""
    token = secrets.token_urlsafe(32)
    _write_atomic(Path(home) / TOKEN_FILE, (token + "\n").encode("ascii"), 0o600)
    return token


def load_token(home: Path | str) -> str | None:
    """The stored token, or None if there is none yet."""
    path = Path(home) / TOKEN_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ApiFileError(f"{path} is not ASCII") from None
    if not token or len(token) > MAX_TOKEN_CHARS or not _TOKEN_CHARS.issuperset(token):
        raise ApiFileError(f"{path} does not hold a p2p API token")
    return token


def ensure_token(home: Path | str) -> str:
    """The stored token, created on first use: what the daemon calls at start."""
    return load_token(home) or create_token(home)


# --- address ---------------------------------------------------------------------


def write_address(home: Path | str, host: str, port: int, *, pid: int | None = None) -> None:
    """Record where the API listens; the daemon calls this once serve_api has started."""
    doc = {"version": ADDRESS_VERSION, "host": host, "port": port, "pid": os.getpid() if pid is None else pid}
    _write_atomic(Path(home) / ADDRESS_FILE, (json.dumps(doc) + "\n").encode("utf-8"), 0o600)


def remove_address(home: Path | str) -> None:
    """Forget the address on a clean stop, so clients fail fast with 'not running'."""
    (Path(home) / ADDRESS_FILE).unlink(missing_ok=True)


def read_address(home: Path | str) -> tuple[str, int] | None:
    """(host, port) from `home/api.json`, or None if the daemon never wrote one."""
    path = Path(home) / ADDRESS_FILE
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        raise ApiFileError(f"{path} is not JSON") from None
    if not isinstance(doc, dict) or doc.get("version") != ADDRESS_VERSION:
        raise ApiFileError(f"{path} is not a version {ADDRESS_VERSION} p2p API address")
    host, port = doc.get("host"), doc.get("port")
    if type(host) is not str or not host or type(port) is not int or not 0 < port < 65536:
        raise ApiFileError(f"{path} has no valid host and port")
    return host, port
