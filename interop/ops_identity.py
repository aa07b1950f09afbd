"""Adapter ops for identifiers and keys (spec/02-identifiers.md).

Ops (request fields -> reply fields; bytes are lowercase hex):
  did_key          {key_type, public}               -> {did, kid}
  did_resolve      {did}                            -> {document}
  did_peer_2       {keys: [{purpose, key_type, public}], service?} -> {did}
  did_resolve_key  {kid, expect?}                   -> {key_type, public}
  cose_key         {key_type, public}               -> {cose_key}
  cose_key_decode  {cose_key}                       -> {key_type, public}
"""

from __future__ import annotations

from typing import Any, Callable

from p2p.core import did as D
from p2p.core import keys as K
from p2p.core.errors import InvalidDID, InvalidKey, LocalError


def _hex(value: Any, what: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except (TypeError, ValueError):
        raise LocalError(f"{what} must be a hex string") from None


def _key_type(name: Any) -> K.KeyType:
    try:
        return K.KeyType(name)
    except ValueError:
        raise InvalidKey(f"unknown key_type {name!r} (want 'ed25519' or 'x25519')") from None


def _public(req: dict) -> K.PublicKey:
    return K.check_public_key(_key_type(req.get("key_type")), _hex(req.get("public"), "public"))


def _key_reply(key: K.PublicKey) -> dict:
    return {"key_type": key.key_type.value, "public": key.raw.hex()}


def did_key(req: dict) -> dict:
    key = _public(req)
    did = D.did_key(key)
    return {"did": did, "kid": D.kid(did, key)}


def did_resolve(req: dict) -> dict:
    return {"document": D.resolve(req.get("did"))}


_PURPOSES = {p.value: p for p in D.Purpose}


def did_peer_2(req: dict) -> dict:
    pairs = []
    for entry in req.get("keys") or []:
        code = entry.get("purpose")
        purpose = _PURPOSES.get(code) if isinstance(code, str) else None
        if purpose is None:
            raise InvalidDID(f"unknown purpose code {entry.get('purpose')!r} (want A, E, V, I or D)")
        pairs.append((purpose, _public(entry)))
    service = req.get("service")
    return {"did": D.peer2(pairs, [service] if service is not None else [])}


def did_resolve_key(req: dict) -> dict:
    expect = req.get("expect")
    return _key_reply(D.resolve_key(req.get("kid"), _key_type(expect) if expect is not None else None))


def cose_key(req: dict) -> dict:
    return {"cose_key": K.encode_cose_key(_public(req)).hex()}


def cose_key_decode(req: dict) -> dict:
    return _key_reply(K.decode_cose_key(_hex(req.get("cose_key"), "cose_key")))


OPS: dict[str, Callable[[dict], dict]] = {
    "did_key": did_key,
    "did_resolve": did_resolve,
    "did_peer_2": did_peer_2,
    "did_resolve_key": did_resolve_key,
    "cose_key": cose_key,
    "cose_key_decode": cose_key_decode,
}
