"""The daemon's side of the customer-business protocols (spec/16-19).

A service is the I/O-shell half of one protocol. Its sans-IO core is
p2p/core/protocols/<name>.py, its tables p2p/store/<name>.py, its HTTP routes
p2p/api/<name>.py and its commands p2p/cli/<name>.py. The Agent creates one of each
listed in SERVICES at start, announces their features, hands each received message
of their protocol to `receive` inside the transaction that records the message, and
lets them send with `Agent.queue`. A service holds no connection and no clock of
its own: the Agent gives it both.

Hooks a service MAY also define (the Agent looks them up once, at start):
- `admit(peer, msg)`: called for every received message outside connect/1.0 before
  it is dispatched; raise a RemoteError to refuse it (problem report, no effect).
- `outbound(peer, msg) -> Message`: called for every message the agent seals on a
  relationship; returns the message to seal (e.g. bound to an agreement).
- `acked(peer, message_ids)`: the peer receipted these messages (delivered).
- `problem(peer, report)`: a problem report arrived; its `pthid` may name a thread
  of this protocol (committed already; the service writes in its own transaction).
- `activated(peer)`: the relationship became active (both sides can send).
- `started()`: the agent is listening and delivering (each run, once).
- `export(relationship_id) -> dict`: the protocol's part of a relationship's export.

and MAY set `quiet`: message types (or type prefixes) its own routes present, which the
application's default message views (inbox, threads) leave out, like the core
protocols' traffic; `include_protocol` shows them; and `sole_sender = True`: its
messages are sent only through the service (`Agent.queue`), never through the
application's `Agent.send`, which would change the peer's state but not ours.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from p2p.core.envelope import SigningKey
from p2p.core.message import Message
from p2p.core.protocols.discover import Feature

if TYPE_CHECKING:
    from p2p.agent import Agent

# The service modules, in the order their hooks run. Each has `create(agent) -> Service`.
SERVICES: tuple[str, ...] = ("terms", "support", "notifications", "ownership")

CUSTOMER, BUSINESS = "customer", "business"


@dataclass(frozen=True, slots=True)
class Peer:
    """One active relationship, as a service sees it."""

    id: str
    our_did: str  # our pairwise DID on it
    their_did: str  # theirs
    their_agent_did: str | None  # the inviter's agent DID, if we were the invitee (spec/19 §19.2)
    side: str  # our side: CUSTOMER or BUSINESS (the agent's configured role)
    signer: SigningKey = field(repr=False)  # our pairwise #key-1 (agreements, consents, proofs)
    their_signing_key: bytes = field(repr=False)  # their pairwise Ed25519 public key
    label: str = ""

    @property
    def their_side(self) -> str:
        return BUSINESS if self.side == CUSTOMER else CUSTOMER


class Received:
    """What handling one received message does besides recording it; the Agent
    commits all of it in the transaction that records the message, and publishes
    the events only once that transaction is committed."""

    __slots__ = ("peer", "msg", "now", "replies", "sends", "events", "alert")

    def __init__(self, peer: Peer, msg: Message, now: int) -> None:
        self.peer, self.msg, self.now = peer, msg, now
        self.replies: list[Message] = []  # to queue on this relationship
        self.sends: list[tuple[str, Message]] = []  # (relationship id, message) on others
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.alert = True  # False: shown without an alert (a muted topic)

    def reply(self, msg: Message) -> None:
        self.replies.append(msg)

    def send(self, relationship_id: str, msg: Message) -> None:
        self.sends.append((relationship_id, msg))

    def publish(self, event: str, **data: Any) -> None:
        self.events.append((event, data))


class Service(Protocol):
    name: str  # its config table and store key, e.g. "notifications"
    protocol: str  # its PIURI without the message name, e.g. https://p2p.example/notifications/1.0
    features: tuple[Feature, ...]  # what discover-features discloses for it

    def receive(self, peer: Peer, msg: Message, tx: Received) -> None:
        """A message of this protocol, inside the recording transaction (and a
        savepoint: raising undoes the service's writes). Raise a RemoteError to
        refuse it: the Agent answers with a problem report and neither archives it
        nor tells the application."""


def one_by_id(item_id: str, relationship: str | None, *, get: Callable[[str, str], Any],
              find: Callable[[str], list], unknown: type[Exception], ambiguous: type[Exception],
              what: str) -> Any:
    """A ticket, an agreement...: ids a peer may choose are unique per relationship
    only, so an id alone must name exactly one (`relationship` disambiguates)."""
    if relationship is not None:
        row = get(relationship, item_id)
        if row is None:
            raise unknown(f"no {what} {item_id!r} on relationship {relationship!r}")
        return row
    found = find(item_id)
    if not found:
        raise unknown(f"no {what} {item_id!r}")
    if len(found) > 1:
        raise ambiguous(f"{what} id {item_id!r} names {what}s on several relationships; "
                        "name one with ?relationship= (--connection)")
    return found[0]


def load(agent: Agent) -> list[Any]:
    return [importlib.import_module(f"p2p.services.{name}").create(agent) for name in SERVICES]


__all__ = ["SERVICES", "CUSTOMER", "BUSINESS", "Peer", "Received", "Service", "load", "one_by_id"]
