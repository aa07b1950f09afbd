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

Both sit on per-message paths, so each has a fast path that gives the same bytes /
values / errors as the general code: `dumps` encodes values whose maps are already
in order without copying them, `dumps_bytes` writes a byte string item for code that
splices fixed structures (p2p.core.cose), and `loads_tag_content` decodes a tag's
content into lists and dicts rather than cbor2's slower immutable types.
"""

from __future__ import annotations

import io
from typing import Any

import cbor2

from .errors import LocalError, MalformedCBOR, TooLarge, TrailingData, Truncated

CBORTag = cbor2.CBORTag

_SCALARS = frozenset({str, bytes, int, bool, type(None)})


def _key_order(key: Any) -> bytes:
    return cbor2.dumps(key)


def _text_key_order(key: str) -> tuple[int, bytes]:
    # For text keys the bytewise order of encodings is: shorter first, then by
    # UTF-8 bytes, because the header byte grows with the length.
    raw = key.encode("utf-8")
    return (len(raw), raw)


def _int_key_order(key: int) -> tuple[bool, int]:
    # For int keys below 2**64 in magnitude the bytewise order of encodings is: every
    # unsigned (major 0) before every negative (major 1); unsigned ascending; negative
    # by ascending argument -1-k, i.e. -1, -2, -3...
    return (key < 0, key if key >= 0 else -key)


def _sorted_map(value: dict) -> dict:
    items = [(k, _presort(v)) for k, v in value.items()]
    if all(type(k) is str for k in value):
        items.sort(key=lambda kv: _text_key_order(kv[0]))
    elif all(type(k) is int and -(2**64) <= k < 2**64 for k in value):
        items.sort(key=lambda kv: _int_key_order(kv[0]))
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


# The fast path. Most values reach dumps already in deterministic order: maps that
# code builds in that order, maps decoded from deterministic CBOR, maps of one key.
# `_in_order` checks that without copying anything, and then cbor2 (which keeps
# insertion order and always writes the shortest heads) encodes the value as it
# is. Otherwise `_presort` builds a sorted copy, as before. (cbor2's canonical=True
# is no help: it sorts by the older RFC 7049 rule, length first, which differs when
# a map mixes key types, and it is about 3x slower than a plain dumps.) Floats, tags
# and any type outside the data model are "not in order", so they take `_presort`,
# which is the reference behaviour (and refuses floats).


def _keys_in_order(value: dict) -> bool:
    prev: Any = None
    prev_n = -1
    for k in value:
        t = type(k)
        if t is str:
            if type(prev) is not str and prev_n >= 0:
                return False
            n = len(k) if k.isascii() else len(k.encode("utf-8"))
            # Code point order is UTF-8 byte order, so str comparison does.
            if n < prev_n or (n == prev_n and k < prev):
                return False
        elif t is int:
            if type(prev) is not int and prev_n >= 0:
                return False
            if not -(2**64) <= k < 2**64:
                return False
            if prev_n >= 0 and _int_key_order(k) < _int_key_order(prev):
                return False
            n = 0
        elif t is bytes:
            if type(prev) is not bytes and prev_n >= 0:
                return False
            n = len(k)
            if n < prev_n or (n == prev_n and k < prev):
                return False
        else:
            return False
        prev, prev_n = k, n
    return True


def _in_order(value: Any) -> bool:
    t = type(value)
    if t in _SCALARS:
        return True
    if t is dict:
        if not _keys_in_order(value):
            return False
        for v in value.values():
            if type(v) not in _SCALARS and not _in_order(v):
                return False
        return True
    if t is list or t is tuple:
        for v in value:
            if type(v) not in _SCALARS and not _in_order(v):
                return False
        return True
    return False


def dumps(value: Any) -> bytes:
    """Encode `value` in core deterministic CBOR."""
    if _in_order(value):
        return cbor2.dumps(value)
    return cbor2.dumps(_presort(value))


def dumps_tagged(tag: int, value: Any) -> bytes:
    if _in_order(value):
        return cbor2.dumps(CBORTag(tag, value))
    return cbor2.dumps(CBORTag(tag, _presort(value)))


def dumps_bytes(value: bytes) -> bytes:
    """`cbor2.dumps(value)` for a byte string, without the call: COSE structures are
    spliced from such items on every seal and open (see p2p.core.cose)."""
    n = len(value)
    if n < 24:
        return bytes((0x40 | n,)) + value
    if n < 0x100:
        return bytes((0x58, n)) + value
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big") + value
    if n < 0x100000000:
        return b"\x5a" + n.to_bytes(4, "big") + value
    return b"\x5b" + n.to_bytes(8, "big") + value


_BytesIO = io.BytesIO
_Decoder = cbor2.CBORDecoder
_MAX_DEPTH = 400  # cbor2's default nesting limit, made explicit: a tag's content gets one less


def _decode(data: bytes, start: int, max_depth: int) -> Any:
    fp = _BytesIO(data)
    if start:
        fp.seek(start)
    try:
        value = _Decoder(fp, allow_duplicate_keys=False, max_depth=max_depth).decode()
    except cbor2.CBORDecodeEOF as exc:
        raise Truncated(str(exc) or "input ends inside a CBOR item") from None
    except RecursionError:
        raise MalformedCBOR("nesting too deep") from None
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, MemoryError, LookupError) as exc:
        raise MalformedCBOR(str(exc) or type(exc).__name__) from None
    if fp.tell() != len(data):
        raise TrailingData(f"{len(data) - fp.tell()} bytes after the CBOR item")
    return value


def loads(data: bytes, *, max_size: int) -> Any:
    """Decode exactly one CBOR item from `data`, raising a RemoteError on any fault."""
    if type(data) is not bytes and not isinstance(data, (bytearray, memoryview)):
        raise MalformedCBOR(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise TooLarge(f"{len(data)} bytes exceeds the limit of {max_size}")
    if not data:
        raise Truncated("empty input")
    return _decode(data, 0, _MAX_DEPTH)


def loads_tag_content(data: bytes, head: bytes, *, max_size: int) -> Any:
    """For `data` that starts with the tag head `head` (e.g. D8 60 for tag 96):
    `loads(data, max_size=max_size).value`, with the same checks and errors.

    Why: cbor2 decodes everything inside a tag as immutable (tuple, cbor2.frozendict,
    a Python-level Mapping several times slower to read than a dict), and COSE
    structures are read field by field on every open. Decoding the content alone
    gives lists and dicts."""
    if type(data) is not bytes or not data.startswith(head):
        raise LocalError("loads_tag_content needs bytes that start with `head`")
    if len(data) > max_size:
        raise TooLarge(f"{len(data)} bytes exceeds the limit of {max_size}")
    if len(data) == len(head):
        raise Truncated("input ends inside a CBOR item")
    return _decode(data, len(head), _MAX_DEPTH - 1)
