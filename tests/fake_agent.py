"""An in-memory Agent that keeps the contract of /work/agent_api.md (p2p/agent.py's
interface), so the admin API and the CLI can be tested without a daemon or a network.

It raises the same error classes (and so the same codes) the real agent does, and has a
few test hooks: `deliver()` plays an incoming message, `fail_next` makes the next call
raise an unexpected exception, and URLs naming an unreachable inviter raise Unreachable.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import uuid

import trio

from p2p.core.errors import BadArgument, LocalError
from p2p.core.protocols.errors import InvalidInvitation, InvitationExpired
from p2p.net.noise_stream import Unreachable
from p2p.store import RelationshipRevoked, UnknownRelationship

BASIC = "https://didcomm.org/basicmessage/2.0/message"
URL_PREFIX = "p2p:invite?_oob="
FEATURES = [
    {"feature-type": "protocol", "id": "https://didcomm.org/trust-ping/2.0", "roles": ["sender", "receiver"]},
    {"feature-type": "protocol", "id": "https://didcomm.org/basicmessage/2.0"},
    {"feature-type": "protocol", "id": "https://didcomm.org/discover-features/2.0"},
]


class UnknownMessage(LocalError):
    code = "unknown-message"


class UnknownThread(LocalError):
    code = "unknown-thread"


# As the agent: the core protocols' messages are archived but not shown by default.
CORE_TYPE_PREFIXES = ("https://didcomm.org/trust-ping/2.", "https://didcomm.org/discover-features/2.",
                      "https://didcomm.org/report-problem/2.", "https://didcomm.org/empty/1.",
                      "https://didcomm.org/out-of-band/2.", "https://p2p.example/connect/1.")


def is_protocol(msg: dict) -> bool:
    return msg["type"].startswith(CORE_TYPE_PREFIXES)


def fake_url(label: str, inviter: str = "did:peer:2.Vz6MkSHOP") -> str:
    """An invitation URL the fake's accept_invitation takes (base64url JSON, not signed)."""
    payload = json.dumps({"id": str(uuid.uuid5(uuid.NAMESPACE_URL, inviter + label)), "label": label,
                          "inviter": inviter}).encode()
    return URL_PREFIX + base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def nearby(label: str, fingerprint: str, *, inviter: str = "did:peer:2.Vz6MkSHOP", own: bool = False,
           advertised_label: str | None = None) -> dict:
    """One entry of GET /v1/discover, as Agent.discover_nearby makes it."""
    return {"label": label, "fingerprint": fingerprint,
            "fingerprint_display": "-".join(fingerprint[i:i + 4] for i in range(0, 16, 4)),
            "agent_did": inviter, "endpoint": f"p2p+tcp://z6LS{fingerprint[:6]}@192.0.2.7:7400",
            "url": fake_url(label, inviter), "expires_time": None, "own": own,
            "advertised_label": label if advertised_label is None else advertised_label,
            "label_mismatch": advertised_label is not None and advertised_label != label,
            "addresses": ["192.0.2.7"], "name": f"{label} ({fingerprint})._p2p._tcp.local."}


# What the seeded fake "hears" on the LAN: two shops with one label told apart by their
# fingerprints (one also advertised under another TXT label), and one forgery.
NEARBY = {
    "nearby": [nearby("Corner Shop", "ydd256rzlh7onrtv", advertised_label="Mallory's"),
               nearby("Corner Shop", "mmmmaaaallllorry", inviter="did:peer:2.Vz6MkMALLORY"),
               nearby("Fake Agent", "ownownownownown2", inviter="did:peer:2.Vz6MkFAKE", own=True)],
    "rejected": [{"name": "Corner Shop (ydd256rzlh7onrtv)-2._p2p._tcp.local.", "code": "advertisement-mismatch",
                  "detail": "fp is not the fingerprint of the key that signed the invitation",
                  "addresses": ["192.0.2.66"]}],
}


class FakeAgent:
    def __init__(self, *, now: int = 1_700_000_000) -> None:
        self.did = "did:peer:2.Vz6MkFAKE.Ez6LSFAKE"
        self.endpoint = "p2p+tcp://z6LSFAKE@127.0.0.1:7400"
        self.now = now
        self.invitations: dict[str, dict] = {}
        self.relationships: dict[str, dict] = {}
        self.archive: list[dict] = []
        self._cursor = itertools.count(1)
        self._seq: dict[str, int] = {}
        self._subscribers: list[tuple[trio.MemorySendChannel, int]] = []
        self.fail_next: Exception | None = None
        self.nearby: dict = {"nearby": [], "rejected": []}  # what discover_nearby returns
        self.calls: list[tuple[str, dict]] = []

    # --- hooks ---------------------------------------------------------------------

    def _enter(self, name: str, **kwargs) -> None:
        self.calls.append((name, kwargs))
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc

    def emit(self, event: str, **data) -> None:
        for entry in list(self._subscribers):
            channel, buffer = entry
            if channel.statistics().current_buffer_used >= buffer:
                channel.send_nowait({"event": "subscription.overflow", "time": self.now})
                channel.close()
                self._subscribers.remove(entry)
                continue
            channel.send_nowait({"event": event, "time": self.now, **data})

    def add_relationship(self, *, id: str | None = None, label: str = "", their_label: str = "",
                         role: str = "inviter", state: str = "active") -> dict:
        rel = {"id": id or str(uuid.uuid4()), "our_did": f"did:peer:2.Vz6MkOUR{len(self.relationships)}",
               "their_did": f"did:peer:2.Vz6MkTHEIR{len(self.relationships)}", "label": label,
               "their_label": their_label, "state": state, "role": role, "endpoint": None,
               "created_time": self.now, "updated_time": self.now, "outbox_pending": 0}
        self.relationships[rel["id"]] = rel
        self._seq[rel["id"]] = 0
        return rel

    def deliver(self, relationship_id: str, *, type: str = BASIC, body: dict | None = None,
                thid: str | None = None) -> dict:
        """Play a message received from the peer."""
        rel = self.relationships[relationship_id]
        mid = str(uuid.uuid4())
        msg = self._record(rel, direction="in", id=mid, type=type, body=body or {}, thid=thid or mid, pthid=None,
                           expires_time=None, state="received", seq=None)
        self.emit("message.received", message=msg)
        return msg

    # --- the Agent interface ----------------------------------------------------------

    async def status(self) -> dict:
        self._enter("status")
        counts: dict[str, int] = {}
        for rel in self.relationships.values():
            counts[rel["state"]] = counts.get(rel["state"], 0) + 1
        outbox = {"queued": 0, "sent": 0, "failed": 0, "expired": 0}
        for msg in self.archive:
            if msg["direction"] == "out" and msg["state"] in outbox:
                outbox[msg["state"]] += 1
        return {"did": self.did, "endpoint": self.endpoint, "version": "0.1.0", "relationships": counts,
                "outbox": outbox, "uptime_s": 42}

    async def create_invitation(self, *, multi_use: bool = False, label: str | None = None,
                                expires_in: int | None = None) -> dict:
        self._enter("create_invitation", multi_use=multi_use, label=label, expires_in=expires_in)
        if label is not None and len(label) > 256:
            raise BadArgument("label is over 256 characters")
        iid = str(uuid.uuid4())
        payload = json.dumps({"id": iid, "label": label or "", "inviter": self.did}).encode()
        url = URL_PREFIX + base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        inv = {"id": iid, "url": url, "multi_use": multi_use, "label": label,
               "expires_time": self.now + expires_in if expires_in else None, "created_time": self.now}
        self.invitations[iid] = inv
        return inv

    async def list_invitations(self) -> list[dict]:
        self._enter("list_invitations")
        return list(self.invitations.values())

    async def accept_invitation(self, url: str, *, label: str | None = None, timeout: float = 30) -> dict:
        self._enter("accept_invitation", url=url, label=label, timeout=timeout)
        if not url.startswith(URL_PREFIX):
            raise InvalidInvitation("an invitation URL starts with 'p2p:invite?'")
        try:
            value = url[len(URL_PREFIX):]
            inv = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        except ValueError:
            raise InvalidInvitation("_oob is not base64url JSON") from None
        if inv.get("label") == "expired":
            raise InvitationExpired("the invitation expired")
        if inv.get("label") == "unreachable":
            raise Unreachable("could not reach 127.0.0.1:9: connection refused")
        rel = self.add_relationship(label=label or inv.get("label", ""), their_label=inv.get("label", ""),
                                    role="invitee")
        self.emit("relationship.created", relationship=rel)
        return rel

    async def list_relationships(self, *, state: str | None = None) -> list[dict]:
        self._enter("list_relationships", state=state)
        return [r for r in self.relationships.values() if state is None or r["state"] == state]

    async def get_relationship(self, relationship_id: str) -> dict:
        self._enter("get_relationship", relationship_id=relationship_id)
        try:
            return self.relationships[relationship_id]
        except KeyError:
            raise UnknownRelationship(f"no relationship {relationship_id!r}") from None

    def _active(self, relationship_id: str) -> dict:
        rel = self.relationships.get(relationship_id)
        if rel is None:
            raise UnknownRelationship(f"no relationship {relationship_id!r}")
        if rel["state"] != "active":
            raise RelationshipRevoked(f"relationship {relationship_id} is revoked")
        return rel

    async def relationship_record(self, relationship_id: str) -> dict:
        self._enter("relationship_record", relationship_id=relationship_id)
        rel = await self.get_relationship(relationship_id)
        return {"relationship": rel, "tickets": [{"id": "t-" + relationship_id[-4:], "state": "open"}],
                "agreements": [], "ownership": [], "notifications": {}}

    async def update_relationship(self, relationship_id: str, **changes) -> dict:
        self._enter("update_relationship", relationship_id=relationship_id, **changes)
        rel = await self.get_relationship(relationship_id)
        rel.update(changes)
        return rel

    async def revoke(self, relationship_id: str, *, reason: str | None = None) -> dict:
        self._enter("revoke", relationship_id=relationship_id, reason=reason)
        rel = self._active(relationship_id)
        rel["state"] = "revoked"
        self.emit("relationship.revoked", relationship=relationship_id, reason=reason)
        return rel

    def _record(self, rel: dict, **fields) -> dict:
        msg = {"cursor": next(self._cursor), "relationship": rel["id"], "attachments": [],
               "from": rel["our_did"] if fields["direction"] == "out" else rel["their_did"],
               "to": [rel["their_did"] if fields["direction"] == "out" else rel["our_did"]],
               "created_time": self.now, **fields}
        self.archive.append(msg)
        return msg

    def _send_one(self, rel: dict, *, type: str, body: dict, thid: str | None = None, pthid: str | None = None,
                  expires_in: int | None = None, please_ack: bool = False) -> dict:
        if not type:
            raise BadArgument("a message type is required")
        mid = str(uuid.uuid4())
        self._seq[rel["id"]] += 1
        return self._record(rel, direction="out", id=mid, type=type, body=body, thid=thid or mid, pthid=pthid,
                            expires_time=self.now + expires_in if expires_in else None, state="queued",
                            seq=self._seq[rel["id"]])

    async def send(self, relationship_id: str, *, type: str, body: dict, thid: str | None = None,
                   pthid: str | None = None, expires_in: int | None = None, please_ack: bool = False) -> dict:
        self._enter("send", relationship_id=relationship_id, type=type, body=body, thid=thid)
        msg = self._send_one(self._active(relationship_id), type=type, body=body, thid=thid, pthid=pthid,
                             expires_in=expires_in, please_ack=please_ack)
        self.emit("message.state", message=msg["id"], state="queued")
        return msg

    async def send_many(self, relationship_id: str, messages: list[dict]) -> list[dict]:
        self._enter("send_many", relationship_id=relationship_id, messages=messages)
        rel = self._active(relationship_id)
        return [self._send_one(rel, **item) for item in messages]

    async def ping(self, relationship_id: str, *, timeout: float = 10) -> dict:
        self._enter("ping", relationship_id=relationship_id, timeout=timeout)
        self._active(relationship_id)
        return {"rtt_ms": 1.25}

    async def discover(self, relationship_id: str, *, match: str = "*", timeout: float = 10) -> list[dict]:
        self._enter("discover", relationship_id=relationship_id, match=match, timeout=timeout)
        self._active(relationship_id)
        prefix = match.rstrip("*")
        return [f for f in FEATURES if f["id"] == match or (match.endswith("*") and f["id"].startswith(prefix))]

    async def discover_nearby(self, timeout: float = 3.0) -> dict:
        self._enter("discover_nearby", timeout=timeout)
        if not 0 < timeout <= 30:
            raise BadArgument("timeout is in (0, 30] seconds")
        return json.loads(json.dumps(self.nearby))  # a copy, as over the wire

    async def messages(self, *, relationship: str | None = None, thid: str | None = None,
                       direction: str | None = None, type: str | None = None, after: int | None = None,
                       limit: int = 100, include_protocol: bool = False) -> list[dict]:
        self._enter("messages", relationship=relationship, thid=thid, direction=direction, type=type, after=after,
                    limit=limit, include_protocol=include_protocol)
        out = []
        shown = include_protocol or type is not None
        for msg in self.archive:
            if ((relationship is None or msg["relationship"] == relationship) and (thid is None or msg["thid"] == thid)
                    and (direction is None or msg["direction"] == direction) and (type is None or msg["type"] == type)
                    and (after is None or msg["cursor"] > after) and (shown or not is_protocol(msg))):
                out.append(msg)
                if len(out) == limit:
                    break
        return out

    async def get_message(self, message_id: str, *, relationship: str | None = None) -> dict:
        self._enter("get_message", message_id=message_id, relationship=relationship)
        for msg in self.archive:
            if msg["id"] == message_id and (relationship is None or msg["relationship"] == relationship):
                return msg
        raise UnknownMessage(f"no message {message_id!r}")

    async def thread(self, thid: str, *, include_protocol: bool = False) -> list[dict]:
        self._enter("thread", thid=thid, include_protocol=include_protocol)
        found = [m for m in self.archive if m["thid"] == thid]
        if not found:
            raise UnknownThread(f"no message in thread {thid!r}")
        return [m for m in found if include_protocol or not is_protocol(m)]

    def subscribe(self, *, buffer: int = 1024):
        @contextlib.asynccontextmanager
        async def subscription():
            send, receive = trio.open_memory_channel(buffer + 1)  # +1: room for the overflow notice
            entry = (send, buffer)
            self._subscribers.append(entry)
            try:
                yield receive
            finally:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)
                send.close()
                receive.close()

        return subscription()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


def seeded() -> FakeAgent:
    """Two relationships whose ids share a 4-character prefix (for prefix resolution),
    one of them revoked, and a short conversation with the active one."""
    agent = FakeAgent()
    alice = agent.add_relationship(id="a1b2c3d4-0000-4000-8000-000000000001", label="alice", their_label="Alice")
    agent.add_relationship(id="a1b2ffff-0000-4000-8000-000000000002", label="bob", their_label="Bob Ltd",
                           role="invitee", state="revoked")
    hello = agent.deliver(alice["id"], body={"content": "hello from alice"}, thid="thread-1")
    agent._send_one(alice, type=BASIC, body={"content": "hi alice"}, thid=hello["thid"])
    agent.deliver(alice["id"], body={"content": "second message"})
    agent.nearby = json.loads(json.dumps(NEARBY))
    return agent
