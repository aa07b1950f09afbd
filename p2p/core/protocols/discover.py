"""Discover Features 2.0 (DIDComm v2.1 §"Discover Features Protocol 2.0").

`queries` asks which features (protocols, goal codes, headers) the peer supports,
matching identifiers with `*` wildcards; `disclose` answers with what matched. A
responder discloses only what it chooses: an empty answer means "not telling", not
"none". spec/11-core-protocols.md §11.3.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..errors import InvalidField
from ..message import Message
from . import DIDCOMM_DOC_URI, _body

PROTOCOL = f"{DIDCOMM_DOC_URI}/discover-features/2.0"
QUERIES_TYPE = PROTOCOL + "/queries"
DISCLOSE_TYPE = PROTOCOL + "/disclose"
ROLES = ("requester", "responder")
FEATURE_TYPES = ("protocol", "goal-code", "header")

MAX_QUERIES = 32
MAX_MATCH_CHARS = 256
MAX_DISCLOSURES = 256
MAX_ROLES = 16
MAX_ROLE_CHARS = 64


@dataclass(frozen=True, slots=True)
class Feature:
    feature_type: str  # "protocol", "goal-code", "header", or another type (kept as is)
    id: str  # a PIURI for protocols, e.g. "https://didcomm.org/trust-ping/2.0"
    roles: tuple[str, ...] | None = None

    def to_map(self) -> dict:
        out: dict = {"feature-type": self.feature_type, "id": self.id}
        if self.roles is not None:
            out["roles"] = list(self.roles)
        return out


@dataclass(frozen=True, slots=True)
class Query:
    feature_type: str
    match: str


@functools.lru_cache(maxsize=256)
def _pattern(match: str) -> re.Pattern:
    # `*` matches any run of characters (also none); every other character is literal.
    return re.compile(".*".join(re.escape(part) for part in match.split("*")), re.DOTALL)


def matches(match: str, identifier: str) -> bool:
    return _pattern(match).fullmatch(identifier) is not None


def queries(items: list[Query] | tuple[Query, ...], *, id: str, frm: str, to: str, now: int) -> Message:
    body = {"queries": [{"feature-type": q.feature_type, "match": q.match} for q in items]}
    return Message(id=id, type=QUERIES_TYPE, body=body, frm=frm, to=(to,), created_time=now)


def parse_queries(msg: Message) -> tuple[Query, ...]:
    raw = _body.array(msg.body, "queries", limit=MAX_QUERIES, required=True, min_items=1)
    out = []
    for i, q in enumerate(raw):
        if type(q) is not dict:
            raise InvalidField(f"body.queries[{i}]: expected a map")
        ftype = _body.text(q, "feature-type", limit=MAX_MATCH_CHARS, required=True, allow_empty=False)
        match = _body.text(q, "match", limit=MAX_MATCH_CHARS, required=True, allow_empty=False)
        out.append(Query(ftype, match))
    return tuple(out)


def answer(items: tuple[Query, ...], features: tuple[Feature, ...]) -> tuple[Feature, ...]:
    """Features that match any query, in the order of `features`, each once. Queries of
    feature types we do not know match nothing (DIDComm: ignored)."""
    return tuple(f for f in features
                 if any(q.feature_type == f.feature_type and matches(q.match, f.id) for q in items))[:MAX_DISCLOSURES]


def disclose(found: tuple[Feature, ...], *, thid: str, id: str, frm: str, to: str, now: int,
             ack: tuple[str, ...] | None = None) -> Message:
    return Message(id=id, type=DISCLOSE_TYPE, body={"disclosures": [f.to_map() for f in found]}, frm=frm, to=(to,),
                   thid=thid, created_time=now, ack=ack)


def parse_disclose(msg: Message) -> tuple[Feature, ...]:
    raw = _body.array(msg.body, "disclosures", limit=MAX_DISCLOSURES, required=True)
    out = []
    for i, d in enumerate(raw):
        if type(d) is not dict:
            raise InvalidField(f"body.disclosures[{i}]: expected a map")
        ftype = _body.text(d, "feature-type", limit=MAX_MATCH_CHARS, required=True, allow_empty=False)
        fid = _body.text(d, "id", limit=MAX_MATCH_CHARS, required=True, allow_empty=False)
        roles = _body.text_list(d, "roles", limit=MAX_ROLES, item_limit=MAX_ROLE_CHARS)
        out.append(Feature(ftype, fid, roles))
    return tuple(out)
