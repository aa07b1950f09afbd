"""Out-of-band invitations (DIDComm OOB 2.0) as signed `p2p:invite?_oob=` URLs.

An invitation is a plaintext DIDComm message whose `from` is the inviter's agent DID
(a did:peer:2 with its endpoint), sealed as a COSE_Sign1 by that DID's Ed25519 key, and
base64url-encoded into a URL. The DID is self-certifying, so a URL verifies with no
lookup: the signer kid must belong to `from`. spec/10-connections.md §10.3 is normative.

DIDComm puts the *plaintext* JWM in `_oob`; p2p signs it, because an invitation is
what a business hands out on paper and screens, and the invitee must know that the
endpoint and keys in it come from the holder of the DID (§10.3, Departures).
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass, field, replace

from .. import envelope, message
from ..did import Purpose, parse_peer2
from ..errors import InvalidDID, LocalError, MessageExpired, MissingField, SenderMismatch, StateError, TooLarge
from ..keys import AgentKeys
from ..message import Message
from . import DIDCOMM_DOC_URI, _body
from .anchors import SIGNERS
from .endpoint import Endpoint, service_endpoint
from .errors import InvalidInvitation, InvitationExpired, InvitationUsed, UnknownInvitation

INVITATION_TYPE = f"{DIDCOMM_DOC_URI}/out-of-band/2.0/invitation"
GOAL_CODE = "p2p.connect"
ACCEPT = "p2p/1"
URL_PREFIX = "p2p:invite?"
OOB_PARAM = "_oob"
MAX_URL_CHARS = 4096
MAX_LABEL_CHARS = 256
MAX_SIGNED_BYTES = 3072  # 4096 base64url characters hold at most 3072 bytes

_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class Invitation:
    """A verified invitation: what the invitee needs to send a connect request, and
    what the invitee later checks the inviter's endorsement against."""

    id: str
    inviter_did: str
    label: str
    multi_use: bool
    created_time: int | None
    expires_time: int | None
    endpoint: Endpoint
    signer_kid: str  # the Ed25519 key that signed; it also signs the endorsement (§10.4)
    signer_public: bytes
    recipient_kid: str  # the inviter's X25519 key-agreement kid: the request is sealed to it
    recipient_public: bytes
    signed: bytes = field(repr=False)  # the COSE_Sign1, as stored by the inviter

    @property
    def url(self) -> str:
        return to_url(self.signed)

    def usable_at(self, now: int) -> bool:
        return self.expires_time is None or now < self.expires_time


def build_message(*, inviter_did: str, id: str, label: str, multi_use: bool, now: int,
                  expires_time: int | None = None) -> Message:
    body = {"goal_code": GOAL_CODE, "label": label, "accept": [ACCEPT], "multi_use": multi_use}
    return Message(id=id, type=INVITATION_TYPE, body=body, frm=inviter_did, created_time=now,
                   expires_time=expires_time)


def create(keys: AgentKeys, agent_did: str, *, id: str, label: str = "", multi_use: bool = False, now: int,
           expires_time: int | None = None) -> Invitation:
    """Sign an invitation from `agent_did` (whose #key-1 must be `keys.signing`)."""
    if type(label) is not str or len(label) > MAX_LABEL_CHARS:
        raise LocalError(f"label must be text of at most {MAX_LABEL_CHARS} characters")
    if type(multi_use) is not bool:
        raise LocalError("multi_use must be a bool")
    if expires_time is not None and expires_time <= now:
        raise LocalError("an invitation that expires before it is created is useless")
    try:
        peer = parse_peer2(agent_did)
    except InvalidDID as exc:
        raise LocalError(f"agent DID is not a did:peer:2: {exc.detail}") from None
    if peer.key(1)[1].raw != keys.signing.public:
        raise LocalError("the agent DID's #key-1 is not this key set's Ed25519 key")
    if service_endpoint(agent_did) is None:
        raise LocalError("the agent DID has no p2p+tcp endpoint: an invitee could not reach it")
    payload = message.encode(build_message(inviter_did=agent_did, id=id, label=label, multi_use=multi_use,
                                           now=now, expires_time=expires_time))
    signed = envelope.seal_signed(payload, envelope.SigningKey.from_seed(agent_did + "#key-1", keys.signing.seed))
    if len(signed) > MAX_SIGNED_BYTES:
        raise LocalError(f"invitation is {len(signed)} bytes; a URL holds at most {MAX_SIGNED_BYTES}")
    return from_signed(signed)


def to_url(signed: bytes) -> str:
    return URL_PREFIX + OOB_PARAM + "=" + base64.urlsafe_b64encode(signed).rstrip(b"=").decode("ascii")


def _oob_value(url: str) -> str:
    if not url.startswith(URL_PREFIX):
        raise InvalidInvitation(f"an invitation URL starts with {URL_PREFIX!r}")
    values = []
    for param in url[len(URL_PREFIX):].split("&"):
        name, sep, value = param.partition("=")
        if name == OOB_PARAM:
            if not sep:
                raise InvalidInvitation("_oob has no value")
            values.append(value)
    if len(values) != 1:
        raise InvalidInvitation(f"the URL must carry {OOB_PARAM} exactly once, found {len(values)}")
    return values[0]


def _b64url_decode(value: str) -> bytes:
    if not value or not _B64URL.issuperset(value) or len(value) % 4 == 1:
        raise InvalidInvitation("_oob is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - ruled out above
        raise InvalidInvitation("_oob is not unpadded base64url") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != value:
        raise InvalidInvitation("_oob base64url has non-zero padding bits")
    return raw


def parse_url(url: str, *, now: int | None = None, max_skew: int = message.DEFAULT_MAX_SKEW) -> Invitation:
    """Verify an invitation URL (spec/10 §10.3.3 gives the order of the checks).
    With `now`, an expired invitation is InvitationExpired."""
    if type(url) is not str:
        raise InvalidInvitation("an invitation URL is text")
    if len(url) > MAX_URL_CHARS:
        raise TooLarge(f"invitation URL is {len(url)} characters; the limit is {MAX_URL_CHARS}")
    return from_signed(_b64url_decode(_oob_value(url)), now=now, max_skew=max_skew)


def from_signed(signed: bytes, *, now: int | None = None, max_skew: int = message.DEFAULT_MAX_SKEW) -> Invitation:
    """Verify the COSE_Sign1 of an invitation (the `_oob` bytes, or the inviter's stored copy)."""
    if signed[:1] != b"\xd2":
        raise InvalidInvitation("an invitation is a tagged COSE_Sign1 (first byte d2)")
    layer = envelope.open_one_layer(signed, envelope.Keyring(signers=SIGNERS))
    msg = message.decode(layer.content)
    if msg.type != INVITATION_TYPE:
        raise InvalidInvitation(f"signed message is a {msg.type[:80]!r}, not an invitation")
    if msg.frm is None:
        raise MissingField("from: an invitation names its sender")
    if envelope.did_of(layer.signer_kid) != msg.frm:
        raise SenderMismatch("the invitation is signed by a key of another DID than its from")
    body = msg.body
    if body.get("goal_code") != GOAL_CODE:
        raise InvalidInvitation(f"goal_code is not {GOAL_CODE!r}")
    accept = _body.text_list(body, "accept", limit=16, item_limit=64) or ()
    if ACCEPT not in accept:
        raise InvalidInvitation(f"the inviter does not accept {ACCEPT!r}")
    label = _body.text(body, "label", limit=MAX_LABEL_CHARS, default="")
    multi_use = _body.boolean(body, "multi_use", default=False)
    if not msg.frm.startswith("did:peer:2"):
        raise InvalidInvitation("the inviter must be a did:peer:2 (it carries the endpoint)")
    peer = parse_peer2(msg.frm)
    agreement = [(n, k) for n, (p, k) in enumerate(peer.keys, start=1) if p is Purpose.KEY_AGREEMENT]
    if not agreement:
        raise InvalidInvitation("the inviter DID has no key-agreement (E) key")
    endpoint = service_endpoint(msg.frm)
    if endpoint is None:
        raise InvalidInvitation("the inviter DID has no p2p+tcp service endpoint")
    if now is not None:
        try:
            message.check_time(msg, now=now, max_skew=max_skew)
        except MessageExpired as exc:
            raise InvitationExpired(exc.detail) from None
    n, key = agreement[0]
    return Invitation(
        id=msg.id, inviter_did=msg.frm, label=label, multi_use=multi_use, created_time=msg.created_time,
        expires_time=msg.expires_time, endpoint=endpoint, signer_kid=layer.signer_kid,
        signer_public=SIGNERS[layer.signer_kid], recipient_kid=f"{msg.frm}#key-{n}", recipient_public=key.raw,
        signed=bytes(signed),
    )


# --- the inviter's side: an issued invitation and its uses ---------------------------


class IssuedState(enum.Enum):
    OPEN = "open"
    USED = "used"  # a one-time invitation after its one use
    REVOKED = "revoked"


# state -> operations allowed in it. `use` on a multi-use invitation stays OPEN.
ISSUED_TRANSITIONS: dict[IssuedState, frozenset[str]] = {
    IssuedState.OPEN: frozenset({"use", "revoke"}),
    IssuedState.USED: frozenset({"revoke"}),
    IssuedState.REVOKED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Issued:
    """An invitation we handed out, with how often it was used. Immutable: `use` and
    `revoke` return the next value, which the caller stores (atomically, so two racing
    requests cannot both use a one-time invitation)."""

    invitation: Invitation
    state: IssuedState = IssuedState.OPEN
    uses: int = 0

    def use(self, now: int) -> Issued:
        """Count one connect request. Peer-visible refusals are RemoteErrors."""
        if "use" not in ISSUED_TRANSITIONS[self.state]:
            if self.state is IssuedState.USED:
                raise InvitationUsed(f"one-time invitation {self.invitation.id!r} was already used")
            raise UnknownInvitation(f"invitation {self.invitation.id!r} is not open")
        if not self.invitation.usable_at(now):
            raise InvitationExpired(f"invitation expired at {self.invitation.expires_time}, now is {now}")
        state = IssuedState.OPEN if self.invitation.multi_use else IssuedState.USED
        return replace(self, state=state, uses=self.uses + 1)

    def revoke(self) -> Issued:
        if "revoke" not in ISSUED_TRANSITIONS[self.state]:
            raise StateError(f"invitation {self.invitation.id!r} is already revoked")
        return replace(self, state=IssuedState.REVOKED)


__all__ = ["Invitation", "INVITATION_TYPE", "GOAL_CODE", "ACCEPT", "URL_PREFIX", "MAX_URL_CHARS", "create",
           "build_message", "to_url", "parse_url", "from_signed", "Issued", "IssuedState", "ISSUED_TRANSITIONS"]
