"""Adapter ops for the plaintext message (spec/03-messages.md)."""

from __future__ import annotations

from p2p.core import message


def _json_safe(value):
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _from_json(value):
    if isinstance(value, dict):
        if set(value) == {"hex"}:
            return bytes.fromhex(value["hex"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def message_encode(req: dict) -> dict:
    """A message written as JSON (byte strings as {"hex": ...}) -> deterministic CBOR."""
    parsed = message.parse_map(_from_json(req["message"]))
    return {"cbor": message.encode(parsed).hex()}


def message_decode(req: dict) -> dict:
    """CBOR bytes (+ optional now, max_skew) -> the validated fields, or an error code."""
    kwargs = {}
    if "now" in req:
        kwargs["now"] = req["now"]
    if "max_skew" in req:
        kwargs["max_skew"] = req["max_skew"]
    msg = message.decode(bytes.fromhex(req["cbor"]), **kwargs)
    return {"thread_id": msg.thread_id, "message": _json_safe(msg.to_map())}


OPS = {"message_encode": message_encode, "message_decode": message_decode}
