"""Typed reads of a message body (a decoded CBOR map from a peer).

Every failure is InvalidField / MissingField naming the field, so a problem report can
say which one; never a KeyError or TypeError.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidField, MissingField

_ABSENT = object()


def text(body: dict, name: str, *, limit: int, required: bool = False, default: str | None = None,
         allow_empty: bool = True) -> str | None:
    value = body.get(name, _ABSENT)
    if value is _ABSENT:
        if required:
            raise MissingField(f"body.{name}")
        return default
    if type(value) is not str:
        raise InvalidField(f"body.{name}: expected text")
    # Limits count UTF-8 bytes, as CDDL's `.size` on text does, so the code and the
    # schema in spec/cddl accept exactly the same strings.
    size = len(value) if value.isascii() else len(value.encode("utf-8"))
    if size > limit or (not value and not allow_empty):
        raise InvalidField(f"body.{name}: {size} UTF-8 bytes, outside {0 if allow_empty else 1}..{limit}")
    return value


def boolean(body: dict, name: str, *, default: bool | None = None, required: bool = False) -> bool | None:
    value = body.get(name, _ABSENT)
    if value is _ABSENT:
        if required:
            raise MissingField(f"body.{name}")
        return default
    if type(value) is not bool:
        raise InvalidField(f"body.{name}: expected true or false")
    return value


def array(body: dict, name: str, *, limit: int, required: bool = False, min_items: int = 0) -> list | None:
    value = body.get(name, _ABSENT)
    if value is _ABSENT:
        if required:
            raise MissingField(f"body.{name}")
        return None
    if type(value) is not list or not min_items <= len(value) <= limit:
        raise InvalidField(f"body.{name}: expected an array of {min_items}..{limit} items")
    return value


def text_list(body: dict, name: str, *, limit: int, item_limit: int, required: bool = False,
              min_items: int = 0) -> tuple[str, ...] | None:
    value = array(body, name, limit=limit, required=required, min_items=min_items)
    if value is None:
        return None
    for item in value:
        if type(item) is not str or not item or len(item) > item_limit:
            raise InvalidField(f"body.{name}: every item must be text of 1..{item_limit} characters")
    return tuple(value)


def kind(value: Any) -> str:
    return {bytes: "bytes", str: "text", int: "integer", list: "array", dict: "map",
            bool: "boolean", type(None): "null"}.get(type(value), type(value).__name__)
