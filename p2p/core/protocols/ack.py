"""Acknowledgements, as DIDComm v2.1 defines them (§"ACKs", §"The Empty Message").

DIDComm v2.1 has no ack message type: `please_ack` (an array of message ids, "" meaning
"this message") asks for an acknowledgement, and an `ack` header (ids, in the order
received) on any later message gives it. When there is nothing else to send, the
acknowledgement rides on the empty message `https://didcomm.org/empty/1.0/empty`.
spec/11-core-protocols.md §11.5.

p2p honours `please_ack` only for the message that carries it ("" or its own id):
earlier ids are already covered by delivery receipts (spec/12), which acknowledge
every stored message hop by hop. This is what makes acks end to end, not a
replacement for receipts.
"""

from __future__ import annotations

from ..message import Message
from . import DIDCOMM_DOC_URI

EMPTY_PROTOCOL = f"{DIDCOMM_DOC_URI}/empty/1.0"
EMPTY_TYPE = EMPTY_PROTOCOL + "/empty"


def wants_ack(msg: Message) -> bool:
    """True if `msg` asks us to acknowledge it and we should. Never for a pure ack (an
    empty message carrying `ack`): DIDComm's rule against ack loops."""
    if not msg.please_ack or is_pure_ack(msg):
        return False
    return "" in msg.please_ack or msg.id in msg.please_ack


def is_pure_ack(msg: Message) -> bool:
    return msg.type == EMPTY_TYPE and msg.ack is not None


def ack(ids: tuple[str, ...] | list[str], *, id: str, frm: str, to: str, now: int, thid: str | None = None) -> Message:
    """An empty message acknowledging `ids` (oldest first). It never asks for an ack."""
    return Message(id=id, type=EMPTY_TYPE, body={}, frm=frm, to=(to,), thid=thid, created_time=now, ack=tuple(ids))
