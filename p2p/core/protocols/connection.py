"""connect/1.0: turning an invitation into a pairwise relationship, and ending one.

    invitee                                              inviter
    START --request (authcrypt, key form -2)-->          START
    REQUESTED                        <--response + endorsement--  RESPONDED
    ACTIVE --complete-->                                 ACTIVE
    ... either side: revoke --> REVOKED (terminal)

Each side makes fresh pairwise keys and a pairwise did:peer:2 for the relationship, so
the relationship's envelopes name neither agent DID. The inviter proves that its
pairwise DID speaks for the invitation with an *endorsement*: a COSE_Sign1 by the
invitation's signing key over {did, invitation, request} (the role DIDComm's
`from_prior` plays). spec/10-connections.md is normative.

One `Connection` object per relationship and role, h11-style: the transition table
below is the whole state machine; a local call out of turn raises StateError, a peer's
message out of turn raises UnexpectedMessage (RelationshipRevoked once revoked), and
either leaves the state as it was.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from .. import cbor, did, envelope, message
from ..errors import (
    BadSignature,
    InvalidField,
    LocalError,
    MissingField,
    P2PError,
    SenderMismatch,
    StateError,
    UnknownSender,
)
from ..keys import AgentKeys
from ..message import Attachment, Message
from . import P2P_DOC_URI, _body
from .anchors import SENDERS
from .endpoint import Endpoint, service_endpoint
from .errors import BadEndorsement, RelationshipRevoked, UnexpectedMessage, UnknownInvitation
from .invitation import MAX_LABEL_CHARS, Invitation, Issued

PROTOCOL = f"{P2P_DOC_URI}/connect/1.0"
REQUEST_TYPE = PROTOCOL + "/request"
RESPONSE_TYPE = PROTOCOL + "/response"
COMPLETE_TYPE = PROTOCOL + "/complete"
REVOKE_TYPE = PROTOCOL + "/revoke"
MESSAGE_TYPES = frozenset({REQUEST_TYPE, RESPONSE_TYPE, COMPLETE_TYPE, REVOKE_TYPE})

ENDORSEMENT_ID = "endorsement"
ENDORSEMENT_MEDIA_TYPE = 'application/cose; cose-type="cose-sign1"'
MAX_ENDORSEMENT_BYTES = 16_384  # kid + two DIDs + ids + signature; 4 KiB DIDs fit
MAX_REASON_CHARS = 1024
SIGNING_FRAGMENT = "key-1"  # agent layout (spec/02 §2.7): #key-1 Ed25519 V, #key-2 X25519 E
AGREEMENT_FRAGMENT = "key-2"


class Role(enum.Enum):
    INVITER = "inviter"
    INVITEE = "invitee"


class State(enum.Enum):
    START = "start"
    REQUESTED = "requested"  # invitee: request sent, waiting for the response
    RESPONDED = "responded"  # inviter: response sent, waiting for complete
    ACTIVE = "active"
    REVOKED = "revoked"  # terminal: keys may be erased
    ABANDONED = "abandoned"  # terminal: setup failed or was given up


class Event(enum.Enum):
    SEND_REQUEST = "send-request"
    RECEIVE_REQUEST = "receive-request"
    RECEIVE_RESPONSE = "receive-response"
    RECEIVE_COMPLETE = "receive-complete"
    SEND_REVOKE = "send-revoke"
    RECEIVE_REVOKE = "receive-revoke"
    RECEIVE_PROBLEM = "receive-problem"  # a problem report on the connect thread
    ABANDON = "abandon"  # local: give up a setup (timeout, user cancel)


# Events caused by a peer's message; an illegal one is the peer's fault (RemoteError).
REMOTE_EVENTS = frozenset({Event.RECEIVE_REQUEST, Event.RECEIVE_RESPONSE, Event.RECEIVE_COMPLETE,
                           Event.RECEIVE_REVOKE, Event.RECEIVE_PROBLEM})

TRANSITIONS: dict[Role, dict[State, dict[Event, State]]] = {
    Role.INVITEE: {
        State.START: {Event.SEND_REQUEST: State.REQUESTED, Event.ABANDON: State.ABANDONED},
        State.REQUESTED: {Event.RECEIVE_RESPONSE: State.ACTIVE, Event.RECEIVE_PROBLEM: State.ABANDONED,
                          Event.ABANDON: State.ABANDONED},
        State.ACTIVE: {Event.SEND_REVOKE: State.REVOKED, Event.RECEIVE_REVOKE: State.REVOKED},
        State.REVOKED: {},
        State.ABANDONED: {},
    },
    Role.INVITER: {
        State.START: {Event.RECEIVE_REQUEST: State.RESPONDED, Event.ABANDON: State.ABANDONED},
        # The inviter knows the invitee's pairwise DID once it responded, so it may
        # already revoke; the invitee cannot revoke before it is ACTIVE.
        State.RESPONDED: {Event.RECEIVE_COMPLETE: State.ACTIVE, Event.RECEIVE_PROBLEM: State.ABANDONED,
                          Event.SEND_REVOKE: State.REVOKED, Event.ABANDON: State.ABANDONED},
        State.ACTIVE: {Event.SEND_REVOKE: State.REVOKED, Event.RECEIVE_REVOKE: State.REVOKED},
        State.REVOKED: {},
        State.ABANDONED: {},
    },
}


def pairwise_did(keys: AgentKeys, endpoint: Endpoint | str | None = None) -> str:
    """A pairwise did:peer:2 in the agent layout, with a DIDCommMessaging service for
    `endpoint` if this side listens, else none."""
    service = None
    if endpoint is not None:
        service = did.didcomm_service(endpoint.uri if isinstance(endpoint, Endpoint) else endpoint)
    return did.agent_did(keys, service)


def agent_keyring(agent_keys: AgentKeys, agent_did: str) -> envelope.Keyring:
    """The keyring that opens connect requests sent to an agent DID: its X25519 key,
    and every self-certifying sender (a request comes from a stranger by design)."""
    mine = envelope.AgreementKey.from_secret(f"{agent_did}#{AGREEMENT_FRAGMENT}", agent_keys.agreement.secret)
    return envelope.Keyring([mine], senders=SENDERS)


def _peer_keys(peer_did: str, field: str) -> tuple[bytes, bytes, Endpoint | None]:
    """(Ed25519, X25519, endpoint) of a peer's pairwise DID, which must be a did:peer:2
    in the agent layout."""
    if not peer_did.startswith("did:peer:2"):
        raise InvalidField(f"{field}: a pairwise DID is a did:peer:2")
    peer = did.parse_peer2(peer_did)
    if len(peer.keys) < 2:
        raise InvalidField(f"{field}: a pairwise DID has #key-1 (V, Ed25519) and #key-2 (E, X25519)")
    (p1, k1), (p2, k2) = peer.keys[0], peer.keys[1]
    if p1 is not did.Purpose.AUTHENTICATION or p2 is not did.Purpose.KEY_AGREEMENT:
        raise InvalidField(f"{field}: a pairwise DID has #key-1 (V, Ed25519) and #key-2 (E, X25519)")
    return k1.raw, k2.raw, service_endpoint(peer_did)


def _require_type(msg: Message, expected: str) -> None:
    if msg.type != expected:
        raise UnexpectedMessage(f"expected a {expected.rsplit('/', 1)[-1]}, got {msg.type[:80]!r}")


def _sender(msg: Message, sender_kid: str | None) -> str:
    """The message's `from`, checked against the authcrypt sender (spec/10 §10.4.5)."""
    if sender_kid is None:
        raise UnknownSender("connect/1.0 messages must be authcrypted")
    if msg.frm is None:
        raise MissingField("from")
    if envelope.did_of(sender_kid) != msg.frm:
        raise SenderMismatch("from is not the DID of the authcrypt sender key")
    return msg.frm


def _check_to(msg: Message, ours: str) -> None:
    if msg.to is None:
        raise MissingField("to")
    if ours not in msg.to:
        raise InvalidField("to: does not name the receiver's DID")


def endorsement_payload(pairwise: str, invitation_id: str, request_id: str) -> bytes:
    """CBOR of the endorsement (CDDL `proto-endorsement`)."""
    return cbor.dumps({"did": pairwise, "invitation": invitation_id, "request": request_id})


class Connection:
    """The state of one relationship as seen by one side. Holds our pairwise keys
    (secrets) and the peer's public keys; the daemon persists the fields."""

    __slots__ = ("role", "state", "invitation", "thid", "our_keys", "our_did", "our_label", "their_did",
                 "their_label", "their_signing", "their_agreement", "their_endpoint", "_pairwise")

    def __init__(self, role: Role, invitation: Invitation | None = None, *, state: State = State.START, thid: str | None = None,
                 our_keys: AgentKeys | None = None, our_did: str | None = None, our_label: str = "",
                 their_did: str | None = None, their_label: str = "") -> None:
        if state not in TRANSITIONS[role]:
            raise LocalError(f"a {role.value} is never {state.value}")
        self.role = role
        self.state = state
        self.invitation = invitation
        self.thid = thid  # the connect thread: the request's id
        self.our_keys = our_keys
        self.our_did = our_did
        self.our_label = our_label
        self.their_did: str | None = None
        self.their_label = their_label
        self.their_signing: bytes | None = None
        self.their_agreement: bytes | None = None
        self.their_endpoint: Endpoint | None = None
        self._pairwise: envelope.PairwiseKey | None = None
        if their_did is not None:
            self._set_peer(their_did)

    @classmethod
    def invitee(cls, invitation: Invitation) -> Connection:
        return cls(Role.INVITEE, invitation)

    @classmethod
    def inviter(cls, invitation: Invitation) -> Connection:
        return cls(Role.INVITER, invitation)

    def __repr__(self) -> str:
        return f"<Connection {self.role.value} {self.state.value} thid={self.thid!r} their_did={self.their_did!r}>"

    # --- the table -----------------------------------------------------------------

    def _check(self, event: Event) -> State:
        """The state `event` leads to; raises (state unchanged) if it is illegal now."""
        nxt = TRANSITIONS[self.role][self.state].get(event)
        if nxt is not None:
            return nxt
        if event in REMOTE_EVENTS:
            if self.state is State.REVOKED:
                raise RelationshipRevoked("the relationship is revoked")
            raise UnexpectedMessage(f"{self.role.value} cannot {event.value} in state {self.state.value}")
        raise StateError(f"{self.role.value} cannot {event.value} in state {self.state.value}")

    def _set_peer(self, their_did: str) -> None:
        signing, agreement, endpoint = _peer_keys(their_did, "from")
        self.their_did, self.their_signing, self.their_agreement = their_did, signing, agreement
        self.their_endpoint = endpoint

    # --- invitee ---------------------------------------------------------------------

    def request(self, keys: AgentKeys, *, id: str, now: int, label: str = "", endpoint: Endpoint | str | None = None,
                expires_time: int | None = None) -> Message:
        """Make the request (START -> REQUESTED). `keys` are fresh pairwise keys."""
        nxt = self._check(Event.SEND_REQUEST)
        if self.invitation is None:
            raise StateError("an invitee connection starts from an invitation")
        if type(label) is not str or len(label) > MAX_LABEL_CHARS:
            raise LocalError(f"label must be text of at most {MAX_LABEL_CHARS} characters")
        our_did = pairwise_did(keys, endpoint)
        msg = Message(id=id, type=REQUEST_TYPE, body={"label": label}, frm=our_did, to=(self.invitation.inviter_did,),
                      pthid=self.invitation.id, created_time=now, expires_time=expires_time)
        message.encode(msg)  # a message we would refuse is our caller's bug: raise before changing state
        self.our_keys, self.our_did, self.our_label, self.thid = keys, our_did, label, msg.thread_id
        self.state = nxt
        return msg

    def receive_response(self, msg: Message, *, sender_kid: str | None, complete_id: str, now: int) -> Message:
        """Check a response and its endorsement (REQUESTED -> ACTIVE); return `complete`."""
        nxt = self._check(Event.RECEIVE_RESPONSE)
        _require_type(msg, RESPONSE_TYPE)
        if msg.thid != self.thid:
            raise UnexpectedMessage("response is not on the thread of our request")
        their_did = _sender(msg, sender_kid)
        _check_to(msg, self.our_did)
        signing, agreement, endpoint = _peer_keys(their_did, "from")
        label = _body.text(msg.body, "label", limit=MAX_LABEL_CHARS, default="")
        if self.invitation is None:
            raise StateError("an invitee needs the invitation to check the endorsement")
        verify_endorsement(msg, invitation=self.invitation, request_id=self.thid)
        complete = Message(id=complete_id, type=COMPLETE_TYPE, body={}, frm=self.our_did, to=(their_did,),
                           thid=self.thid, created_time=now)
        message.encode(complete)
        self.their_did, self.their_signing, self.their_agreement = their_did, signing, agreement
        self.their_endpoint, self.their_label, self._pairwise = endpoint, label, None
        self.state = nxt
        return complete

    # --- inviter ---------------------------------------------------------------------

    def receive_request(self, msg: Message, *, sender_kid: str | None, issued: Issued | None, agent_keys: AgentKeys,
                        keys: AgentKeys, response_id: str, now: int, label: str = "",
                        endpoint: Endpoint | str | None = None, expires_time: int | None = None
                        ) -> tuple[Message, Issued]:
        """Check a request against the invitation it names and answer it (START ->
        RESPONDED). `issued` is our record of the invitation named by `msg.pthid` (None
        if we have none); `keys` are fresh pairwise keys. Returns the response and the
        invitation's next record, which the caller stores."""
        nxt = self._check(Event.RECEIVE_REQUEST)
        if self.invitation is None:
            raise StateError("an inviter connection starts from an invitation")
        _require_type(msg, REQUEST_TYPE)
        their_did = _sender(msg, sender_kid)
        if msg.pthid is None:
            raise MissingField("pthid: a request names its invitation")
        if issued is None or msg.pthid != issued.invitation.id or issued.invitation.id != self.invitation.id:
            raise UnknownInvitation(f"no invitation {msg.pthid!r} here")
        _check_to(msg, self.invitation.inviter_did)
        signing, agreement, their_endpoint = _peer_keys(their_did, "from")
        their_label = _body.text(msg.body, "label", limit=MAX_LABEL_CHARS, default="")
        next_issued = issued.use(now)
        if agent_keys.signing.public != self.invitation.signer_public:
            raise LocalError("agent_keys did not sign this invitation")
        our_did = pairwise_did(keys, endpoint)
        endorsement = envelope.seal_signed(
            endorsement_payload(our_did, self.invitation.id, msg.thread_id),
            envelope.SigningKey.from_seed(self.invitation.signer_kid, agent_keys.signing.seed))
        response = Message(
            id=response_id, type=RESPONSE_TYPE, body={"label": label}, frm=our_did, to=(their_did,),
            thid=msg.thread_id, created_time=now, expires_time=expires_time,
            attachments=(Attachment(id=ENDORSEMENT_ID, media_type=ENDORSEMENT_MEDIA_TYPE,
                                    data={"bytes": endorsement}),))
        message.encode(response)
        self.thid, self.our_keys, self.our_did, self.our_label = msg.thread_id, keys, our_did, label
        self.their_did, self.their_signing, self.their_agreement = their_did, signing, agreement
        self.their_endpoint, self.their_label, self._pairwise = their_endpoint, their_label, None
        self.state = nxt
        return response, next_issued

    def receive_complete(self, msg: Message, *, sender_kid: str | None) -> None:
        """RESPONDED -> ACTIVE."""
        nxt = self._check(Event.RECEIVE_COMPLETE)
        _require_type(msg, COMPLETE_TYPE)
        self._from_peer(msg, sender_kid)
        if msg.thid != self.thid:
            raise UnexpectedMessage("complete is not on the connect thread")
        self.state = nxt

    # --- both --------------------------------------------------------------------------

    def receive_problem(self, pthid: str | None) -> None:
        """A problem report whose pthid is the connect thread ends the setup."""
        nxt = self._check(Event.RECEIVE_PROBLEM)
        if pthid != self.thid:
            raise UnexpectedMessage("problem report is not about the connect thread")
        self.state = nxt

    def abandon(self) -> None:
        self.state = self._check(Event.ABANDON)

    def revoke(self, *, id: str, now: int, reason: str | None = None, expires_time: int | None = None) -> Message:
        """End the relationship (-> REVOKED). Seal the returned message *before* erasing keys."""
        nxt = self._check(Event.SEND_REVOKE)
        if reason is not None and (type(reason) is not str or len(reason) > MAX_REASON_CHARS):
            raise LocalError(f"reason must be text of at most {MAX_REASON_CHARS} characters")
        body: dict[str, Any] = {} if reason is None else {"reason": reason}
        msg = Message(id=id, type=REVOKE_TYPE, body=body, frm=self.our_did, to=(self.their_did,), created_time=now,
                      expires_time=expires_time)
        message.encode(msg)
        self.state = nxt
        return msg

    def receive_revoke(self, msg: Message, *, sender_kid: str | None) -> str | None:
        """The peer ended the relationship (-> REVOKED); returns its reason, if any."""
        nxt = self._check(Event.RECEIVE_REVOKE)
        _require_type(msg, REVOKE_TYPE)
        self._from_peer(msg, sender_kid)
        reason = _body.text(msg.body, "reason", limit=MAX_REASON_CHARS)
        self.state = nxt
        return reason

    def check_inbound(self, msg: Message, *, sender_kid: str | None) -> None:
        """Any other message on this relationship: allowed only while ACTIVE, and only
        from the peer's pairwise DID."""
        if self.state is State.REVOKED:
            raise RelationshipRevoked("the relationship is revoked")
        if self.state is not State.ACTIVE:
            raise UnexpectedMessage(f"relationship is {self.state.value}, not active")
        self._from_peer(msg, sender_kid)

    def _from_peer(self, msg: Message, sender_kid: str | None) -> None:
        if _sender(msg, sender_kid) != self.their_did:
            raise SenderMismatch("message is not from this relationship's peer")
        if sender_kid != f"{self.their_did}#{AGREEMENT_FRAGMENT}":
            raise SenderMismatch("the sender key is not the peer's pairwise key-agreement key")

    # --- sealing and opening ------------------------------------------------------------

    @property
    def our_kid(self) -> str:
        return f"{self.our_did}#{AGREEMENT_FRAGMENT}"

    @property
    def their_kid(self) -> str:
        return f"{self.their_did}#{AGREEMENT_FRAGMENT}"

    def pairwise_key(self) -> envelope.PairwiseKey:
        """ECDH-SS state for sealing to the peer (computed once, then cached)."""
        if self._pairwise is None:
            if self.our_keys is None or self.their_did is None:
                raise StateError("no pairwise keys yet")
            mine = envelope.AgreementKey.from_secret(self.our_kid, self.our_keys.agreement.secret)
            self._pairwise = envelope.PairwiseKey.derive(mine, self.their_kid, self.their_agreement)
        return self._pairwise

    def seal(self, msg: Message, *, iv: bytes, nonce: bytes) -> bytes:
        """Authcrypt `msg` to the peer. The request (no peer DID yet) goes to the
        inviter's agent key with our full public key (-2); everything later, pairwise
        with our kid (-3)."""
        plaintext = message.encode(msg)
        if self.their_did is None:
            if self.role is not Role.INVITEE or self.state is not State.REQUESTED:
                raise StateError("nothing to seal to before the request")
            mine = envelope.AgreementKey.from_secret(self.our_kid, self.our_keys.agreement.secret)
            pairwise = envelope.PairwiseKey.derive(mine, self.invitation.recipient_kid,
                                                   self.invitation.recipient_public)
            return envelope.seal_authcrypt(plaintext, pairwise, iv=iv, nonce=nonce, sender_key_form="key")
        return envelope.seal_authcrypt(plaintext, self.pairwise_key(), iv=iv, nonce=nonce)

    def keyring(self) -> envelope.Keyring:
        """Opens what the peer sends on this relationship, and nothing else."""
        if self.our_keys is None:
            raise StateError("no pairwise keys yet")
        mine = envelope.AgreementKey.from_secret(self.our_kid, self.our_keys.agreement.secret)
        senders: Mapping[str, bytes] = {}
        signers: Mapping[str, bytes] = {}
        if self.their_did is not None:
            senders = {self.their_kid: self.their_agreement}
            signers = {f"{self.their_did}#{SIGNING_FRAGMENT}": self.their_signing}
        elif self.role is Role.INVITEE:
            senders = SENDERS  # the response comes from a pairwise DID we do not know yet
        return envelope.Keyring([mine], senders=senders, signers=signers)


def verify_endorsement(msg: Message, *, invitation: Invitation, request_id: str) -> None:
    """The response's `endorsement` attachment must be a COSE_Sign1 by the key that
    signed the invitation, over {did: msg.from, invitation: its id, request: request_id}."""
    found = [a for a in msg.attachments if a.id == ENDORSEMENT_ID]
    if len(found) != 1 or "bytes" not in found[0].data:
        raise BadEndorsement("the response needs one 'endorsement' attachment with inline bytes")
    signed = found[0].data["bytes"]
    if len(signed) > MAX_ENDORSEMENT_BYTES or signed[:1] != b"\xd2":
        raise BadEndorsement("the endorsement is not a COSE_Sign1 within the size limit")
    try:
        layer = envelope.open_one_layer(
            signed, envelope.Keyring(signers={invitation.signer_kid: invitation.signer_public}))
    except UnknownSender:
        raise BadEndorsement("the endorsement is not signed by the invitation's key") from None
    except BadSignature:
        raise
    except P2PError as exc:
        if isinstance(exc, LocalError):
            raise
        raise BadEndorsement(f"the endorsement is not a valid COSE_Sign1: {exc.code}") from None
    try:
        payload = cbor.loads(layer.content, max_size=MAX_ENDORSEMENT_BYTES)
    except P2PError as exc:
        raise BadEndorsement(f"endorsement payload: {exc.code}") from None
    expected = {"did": msg.frm, "invitation": invitation.id, "request": request_id}
    if payload != expected:
        raise BadEndorsement("the endorsement does not bind this DID to this invitation and request")


__all__ = ["Role", "State", "Event", "TRANSITIONS", "REMOTE_EVENTS", "Connection", "pairwise_did", "agent_keyring",
           "endorsement_payload", "verify_endorsement", "PROTOCOL", "REQUEST_TYPE", "RESPONSE_TYPE", "COMPLETE_TYPE",
           "REVOKE_TYPE", "MESSAGE_TYPES", "ENDORSEMENT_ID"]
