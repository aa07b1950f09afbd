"""CBOR with the two properties p2p needs and cbor2 does not give by default.

* Encoding is RFC 8949 section 4.2.1 core deterministic: map keys sorted by the
  bytewise order of their encodings. cbor2's ``canonical=True`` sorts by length
  first (the older RFC 7049 rule), which differs for maps whose keys mix major
  types (e.g. ``{24: .., -1: ..}``), so we order maps ourselves. Floats are not part
  of the p2p data model (spec/01-conventions.md): they would need shortest-form
  encoding and invite non-determinism, so the encoder refuses them.
* Decoding is strict: an input limit is checked before parsing, trailing bytes
  after the one top-level item are an error, a map with a repeated key is an error
  (RFC 9052 section 3 requires refusing duplicate header labels; p2p refuses them in
  every map so no two readers can see different values), and every failure surfaces as one of
  the core's RemoteErrors rather than whatever cbor2 or Python raised.
"""

from __future__ import annotations

import io
from typing import Any

import cbor2

from .errors import LocalError, MalformedCBOR, TooLarge, TrailingData, Truncated

CBORTag = cbor2.CBORTag

_SIMPLE_KEY_TYPES = (str, int)


def _key_order(key: Any) -> bytes:
    return cbor2.dumps(key)


def _text_key_order(key: str) -> tuple[int, bytes]:
    # For text keys the bytewise order of encodings is: shorter first, then by
    # UTF-8 bytes, because the header byte grows with the length.
    raw = key.encode("utf-8")
    return (len(raw), raw)


def _sorted_map(value: dict) -> dict:
    items = [(k, _presort(v)) for k, v in value.items()]
    if all(type(k) is str for k in value):
        items.sort(key=lambda kv: _text_key_order(kv[0]))
    else:
        items.sort(key=lambda kv: _key_order(_presort(kv[0])))
    return dict(items)


def _presort(value: Any) -> Any:
    t = type(value)
    if t is dict:
        return _sorted_map(value)
    if t is list or t is tuple:
        return [_presort(v) for v in value]
    if t is float:
        raise LocalError("floats are not part of the p2p data model; use int or text")
    if t is CBORTag:
        return CBORTag(value.tag, _presort(value.value))
    return value


def dumps(value: Any) -> bytes:
    """Encode `value` in core deterministic CBOR."""
    return cbor2.dumps(_presort(value))


def dumps_tagged(tag: int, value: Any) -> bytes:
    return cbor2.dumps(CBORTag(tag, _presort(value)))


def loads(data: bytes, *, max_size: int) -> Any:
    """Decode exactly one CBOR item from `data`, raising a RemoteError on any fault."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedCBOR(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise TooLarge(f"{len(data)} bytes exceeds the limit of {max_size}")
    if not data:
        raise Truncated("empty input")
    fp = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(fp, allow_duplicate_keys=False).decode()
    except cbor2.CBORDecodeEOF as exc:
        raise Truncated(str(exc) or "input ends inside a CBOR item") from None
    except RecursionError:
        raise MalformedCBOR("nesting too deep") from None
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, MemoryError, LookupError) as exc:
        raise MalformedCBOR(str(exc) or type(exc).__name__) from None
    if fp.tell() != len(data):
        raise TrailingData(f"{len(data) - fp.tell()} bytes after the CBOR item")
    return value
