"""Error codes the protocol layer adds (spec/10, 11, 12; listed in spec/06 by the lead).

All are RemoteErrors: each names something a peer sent that we refuse, and its `code`
goes into the problem report (`e.p.<descriptor>.<code>`, see problem_report.py).
"""

from __future__ import annotations

from ..errors import RemoteError


class InvalidEndpoint(RemoteError):
    """A DIDComm service endpoint that is not a well-formed p2p+tcp URI."""

    code = "invalid-endpoint"


class InvalidInvitation(RemoteError):
    """An invitation URL or payload that is not a p2p connection invitation."""

    code = "invalid-invitation"


class InvitationExpired(RemoteError):
    code = "invitation-expired"


class UnknownInvitation(RemoteError):
    """A request names an invitation we never issued, or one that was revoked."""

    code = "unknown-invitation"


class InvitationUsed(RemoteError):
    """A second request for a one-time invitation."""

    code = "invitation-used"


class BadEndorsement(RemoteError):
    """A connect response whose endorsement does not bind the pairwise DID to the invitation."""

    code = "bad-endorsement"


class UnexpectedMessage(RemoteError):
    """A well-formed message that the protocol's state does not allow now."""

    code = "unexpected-message"


class RelationshipRevoked(RemoteError):
    """A message on a relationship that was revoked (a terminal state)."""

    code = "relationship-revoked"


class UnsupportedMessageType(RemoteError):
    """A message type of a protocol (or version) we do not implement."""

    code = "unsupported-message-type"


class MalformedDeliveryFrame(RemoteError):
    """A delivery frame (spec/12) with the wrong shape or out-of-range values."""

    code = "malformed-delivery-frame"


class UnknownFrameKind(RemoteError):
    code = "unknown-frame-kind"


class IllegalTransition(RemoteError):
    """A peer's message that the ticket's (or ownership record's) state does not allow from that
    peer's side. The receiver's state is unchanged; the sender withdraws the message."""

    code = "illegal-transition"


ALL = (InvalidEndpoint, InvalidInvitation, InvitationExpired, UnknownInvitation, InvitationUsed, BadEndorsement,
       UnexpectedMessage, RelationshipRevoked, UnsupportedMessageType, MalformedDeliveryFrame, UnknownFrameKind,
       IllegalTransition)
