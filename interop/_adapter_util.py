"""Request-field helpers shared by the interop handler modules (interop/ops_*.py).

Requests arrive as JSON: bytes as lowercase hex, keys as 32-byte hex secrets. A field
that is missing or of the wrong JSON type is caller misuse, so it raises LocalError
(the adapter reports its code); only the p2p code under test raises RemoteErrors.
"""

from __future__ import annotations

from p2p.core import keys
from p2p.core.errors import LocalError


def hex_field(request: dict, key: str, *, optional: bool = False) -> bytes | None:
    value = request.get(key)
    if value is None:
        if optional:
            return None
        raise LocalError(f"request needs {key!r}")
    try:
        return bytes.fromhex(value)
    except (TypeError, ValueError):
        raise LocalError(f"{key!r} is not hex") from None


def _typed_field(request: dict, key: str, kind: type, what: str, optional: bool):
    value = request.get(key)
    if value is None and optional:
        return None
    # type() rather than isinstance: JSON true/false must not pass as 1/0.
    if type(value) is not kind:
        raise LocalError(f"request needs {what} {key!r}")
    return value


def text_field(request: dict, key: str, *, optional: bool = False) -> str | None:
    return _typed_field(request, key, str, "text", optional)


def int_field(request: dict, key: str, *, optional: bool = False) -> int | None:
    return _typed_field(request, key, int, "integer", optional)


def agent_keys(request: dict, prefix: str = "") -> keys.AgentKeys:
    """An agent's key pair from `<prefix>ed25519_seed` and `<prefix>x25519_secret`."""
    return keys.AgentKeys.from_secrets(hex_field(request, f"{prefix}ed25519_seed"),
                                       hex_field(request, f"{prefix}x25519_secret"))
