"""Interop ops for the protocol area (spec/10-connections.md, 11-core-protocols.md,
12-delivery.md). Bytes travel as lowercase hex; every random input (ids, IVs, PartyU
nonces) is in the request, so replies are byte-reproducible.
"""

from __future__ import annotations

from dataclasses import replace

from p2p.core import keys, message
from p2p.core.errors import LocalError
from p2p.core.protocols import connection, delivery, endpoint, invitation, problem_report, routing
from p2p.core.protocols.discover import Feature

from _adapter_util import agent_keys as _keys
from _adapter_util import hex_field as _hex
from _adapter_util import int_field as _int
from _adapter_util import text_field as _text


def endpoint_parse(request: dict) -> dict:
    e = endpoint.parse_endpoint(request.get("uri"))
    return {"key": e.key_multibase, "key_public": e.key.raw.hex(), "host": e.host, "port": e.port, "uri": e.uri}


def endpoint_format(request: dict) -> dict:
    key = keys.check_public_key(keys.KeyType.X25519, _hex(request, "key_public"))
    return {"uri": endpoint.format_endpoint(key, _text(request, "host"), _int(request, "port"))}


def invitation_create(request: dict) -> dict:
    agent = _keys(request, "")
    uri = endpoint.format_endpoint(agent.agreement.public_key, _text(request, "host"), _int(request, "port"))
    agent_did = connection.pairwise_did(agent, uri)
    kwargs = dict(id=_text(request, "invitation_id"), label=request.get("label", ""), multi_use=request.get("multi_use", False),
                  now=_int(request, "now"), expires_time=_int(request, "expires_time", optional=True))
    payload = message.encode(invitation.build_message(inviter_did=agent_did, **kwargs))
    inv = invitation.create(agent, agent_did, **kwargs)
    return {"endpoint": uri, "agent_did": agent_did, "message": payload.hex(), "signed": inv.signed.hex(),
            "url": inv.url}


def _invitation_reply(inv: invitation.Invitation) -> dict:
    return {"invitation_id": inv.id, "from": inv.inviter_did, "label": inv.label, "multi_use": inv.multi_use,
            "created_time": inv.created_time, "expires_time": inv.expires_time, "endpoint": inv.endpoint.uri,
            "signer_kid": inv.signer_kid, "recipient_kid": inv.recipient_kid}


def invitation_parse(request: dict) -> dict:
    return _invitation_reply(invitation.parse_url(request.get("url"), now=_int(request, "now", optional=True)))


def connect_request(request: dict) -> dict:
    inv = invitation.parse_url(_text(request, "invitation_url"))
    conn = connection.Connection.invitee(inv)
    msg = conn.request(_keys(request, ""), id=_text(request, "message_id"), now=_int(request, "now"),
                       label=request.get("label", ""), endpoint=request.get("endpoint"))
    sealed = conn.seal(msg, iv=_hex(request, "iv"), nonce=_hex(request, "nonce"))
    return {"pairwise_did": conn.our_did, "message": message.encode(msg).hex(), "envelope": sealed.hex()}


def connect_respond(request: dict) -> dict:
    """The inviter's step: check a (decoded) request against the invitation and answer."""
    agent = _keys(request, "agent_")
    inv = invitation.parse_url(_text(request, "invitation_url"))
    state = invitation.IssuedState(request.get("invitation_state", "open"))
    issued = invitation.Issued(inv, state, request.get("invitation_uses", 0))
    msg = message.decode(_hex(request, "request"))
    conn = connection.Connection.inviter(inv)
    now = _int(request, "now")
    response, _ = conn.receive_request(
        msg, sender_kid=request.get("sender_kid"), issued=issued if msg.pthid == inv.id else None, agent_keys=agent,
        keys=_keys(request, "pairwise_"), response_id=_text(request, "response_id"), now=now,
        label=request.get("label", ""), endpoint=request.get("endpoint"))
    endorsement = response.attachments[0].data["bytes"]
    sealed = conn.seal(response, iv=_hex(request, "iv"), nonce=_hex(request, "nonce"))
    return {"pairwise_did": conn.our_did,
            "endorsement_payload": connection.endorsement_payload(conn.our_did, inv.id, msg.thread_id).hex(),
            "endorsement": endorsement.hex(), "message": message.encode(response).hex(), "envelope": sealed.hex()}


def connect_accept(request: dict) -> dict:
    """The invitee's step: check a (decoded) response and its endorsement; make `complete`."""
    inv = invitation.parse_url(_text(request, "invitation_url"))
    conn = connection.Connection(connection.Role.INVITEE, inv, state=connection.State.REQUESTED,
                                 thid=_text(request, "request_id"), our_did=_text(request, "our_did"))
    complete = conn.receive_response(message.decode(_hex(request, "response")), sender_kid=request.get("sender_kid"),
                                     complete_id=_text(request, "complete_id"), now=_int(request, "now"))
    return {"their_did": conn.their_did, "their_label": conn.their_label, "complete": message.encode(complete).hex()}


def connect_revoke(request: dict) -> dict:
    conn = connection.Connection(connection.Role.INVITEE, state=connection.State.ACTIVE,
                                 our_did=_text(request, "from"), their_did=_text(request, "to"))
    msg = conn.revoke(id=_text(request, "message_id"), now=_int(request, "now"), reason=request.get("reason"))
    return {"message": message.encode(msg).hex()}


def _event(event: object) -> dict:
    if isinstance(event, routing.Rejected):
        return {"event": "rejected", "code": event.code, "replied": event.replied}
    if isinstance(event, (routing.Delivered, routing.ConnectMessage)):
        return {"event": "delivered" if isinstance(event, routing.Delivered) else "connect",
                "message_id": event.message.id}
    if isinstance(event, routing.PingResponded):
        return {"event": "ping-responded", "ping_id": event.ping_id}
    if isinstance(event, routing.Acknowledged):
        return {"event": "acknowledged", "message_ids": list(event.message_ids)}
    if isinstance(event, routing.Disclosed):
        return {"event": "disclosed", "thid": event.thid, "features": [f.to_map() for f in event.features]}
    if isinstance(event, routing.ProblemReceived):
        return {"event": "problem", "code": event.report.code, "pthid": event.report.pthid}
    raise LocalError(f"unknown event {event!r}")


def dispatch(request: dict) -> dict:
    features = routing.CORE_FEATURES + tuple(Feature("protocol", p) for p in request.get("app_protocols", ()))
    ctx = routing.Context(now=_int(request, "now"), reply_id=_text(request, "reply_id"),
                          our_did=request.get("our_did"), their_did=request.get("their_did"),
                          status=request.get("status", routing.Status.ACTIVE), features=features)
    out = routing.dispatch_bytes(_hex(request, "message"), ctx)
    reply: dict = {"events": [_event(e) for e in out.events]}
    if out.replies:
        first = out.replies[0]
        if first.type == problem_report.PROBLEM_REPORT_TYPE and "args" in first.body:
            # args is free text (the detail); the contract compares the reply without it
            reply["reply_args"] = len(first.body["args"])
            first = replace(first, body={k: v for k, v in first.body.items() if k != "args"})
        reply["reply"] = message.encode(first).hex()
    return reply


def delivery_encode(request: dict) -> dict:
    kind = request.get("kind")
    if kind == "deliver":
        frame = delivery.Deliver(_int(request, "seq"), _hex(request, "envelope"))
    elif kind == "receipt":
        frame = delivery.Receipt(tuple(request.get("seqs") or ()))
    elif kind == "close":
        frame = delivery.Close(_text(request, "reason"))
    else:
        raise LocalError("kind is deliver, receipt or close")
    return {"frame": delivery.encode(frame).hex()}


def delivery_decode(request: dict) -> dict:
    frame = delivery.decode(_hex(request, "frame"))
    if isinstance(frame, delivery.Deliver):
        return {"kind": "deliver", "seq": frame.seq, "envelope": frame.envelope.hex()}
    if isinstance(frame, delivery.Receipt):
        return {"kind": "receipt", "seqs": list(frame.seqs)}
    return {"kind": "close", "reason": frame.reason}


def backoff(request: dict) -> dict:
    return {"delay_ms": delivery.backoff_ms(_int(request, "attempt"), _int(request, "random_u32"))}


OPS = {
    "endpoint_parse": endpoint_parse,
    "endpoint_format": endpoint_format,
    "invitation_create": invitation_create,
    "invitation_parse": invitation_parse,
    "connect_request": connect_request,
    "connect_respond": connect_respond,
    "connect_accept": connect_accept,
    "connect_revoke": connect_revoke,
    "dispatch": dispatch,
    "delivery_encode": delivery_encode,
    "delivery_decode": delivery_decode,
    "backoff": backoff,
}

__all__ = ["OPS"]
