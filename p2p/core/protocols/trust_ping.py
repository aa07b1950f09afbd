"""Trust Ping 2.0 (DIDComm v2.1 §"Trust Ping Protocol 2.0"): `ping` and `ping-response`.

A ping that arrives proves the envelope and transport work both ways once answered;
the answer carries the ping's id as `thid`. spec/11-core-protocols.md §11.2.
"""

from __future__ import annotations

from ..message import Message
from . import DIDCOMM_DOC_URI, _body

PROTOCOL = f"{DIDCOMM_DOC_URI}/trust-ping/2.0"
PING_TYPE = PROTOCOL + "/ping"
PING_RESPONSE_TYPE = PROTOCOL + "/ping-response"
ROLES = ("sender", "receiver")


def ping(*, id: str, frm: str, to: str, now: int, response_requested: bool = True,
         expires_time: int | None = None) -> Message:
    return Message(id=id, type=PING_TYPE, body={"response_requested": response_requested}, frm=frm, to=(to,),
                   created_time=now, expires_time=expires_time)


def response_requested(msg: Message) -> bool:
    """DIDComm: absent means true. Anything but a boolean is InvalidField."""
    return _body.boolean(msg.body, "response_requested", default=True)


def response(ping_msg: Message, *, id: str, frm: str, to: str, now: int, ack: tuple[str, ...] | None = None) -> Message:
    return Message(id=id, type=PING_RESPONSE_TYPE, body={}, frm=frm, to=(to,), thid=ping_msg.id, created_time=now,
                   ack=ack)
