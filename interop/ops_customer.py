"""Interop ops for the customer-business protocols (spec/18-support.md,
spec/19-ownership.md). Bytes travel as lowercase hex; messages as their CBOR
encoding (spec/03); keys as 32-byte hex secrets from which DIDs are derived
(agent layout did:peer:2, no service), so every reply is byte-reproducible.
"""

from __future__ import annotations

from p2p.core import cose, envelope, message
from p2p.core.errors import LocalError
from p2p.core.protocols import connection, ownership, support

from _adapter_util import agent_keys
from _adapter_util import hex_field as _hex
from _adapter_util import int_field as _int
from _adapter_util import text_field as _text


def _identity(request: dict, prefix: str) -> tuple[str, envelope.SigningKey]:
    """(agent-layout DID, its #key-1 signing key) from `<prefix>ed25519_seed` and
    `<prefix>x25519_secret`."""
    agent = agent_keys(request, prefix)
    did = connection.pairwise_did(agent)
    return did, envelope.SigningKey.from_seed(ownership.signing_kid(did), agent.signing.seed)


def _decode(hex_message: str) -> message.Message:
    try:
        data = bytes.fromhex(hex_message)
    except (TypeError, ValueError):
        raise LocalError("a message is hex CBOR") from None
    return message.decode(data)


# --- support/1.0 ---------------------------------------------------------------------


def support_apply(request: dict) -> dict:
    """Apply `history` (messages, in order, each from the side its `from` names) to a
    ticket held by side `ours`, then the peer's `message`; report what it did."""
    ours = support.Side(_text(request, "ours"))
    ticket = support.Ticket(customer=_text(request, "customer"), business=_text(request, "business"), ours=ours)
    for item in request.get("history", []):
        msg = _decode(item)
        ticket.apply(msg, remote=ticket.side_of(msg.frm) is not ours)
    change = ticket.apply(_decode(_text(request, "message")), remote=True)
    return {"ticket": ticket.id, "event": change.event.value, "side": change.side.value,
            "before": change.before.value if change.before else None, "state": change.after.value,
            "subject": ticket.subject, "assignee": ticket.assignee,
            "rating": None if ticket.rating is None else ticket.rating.score}


# --- ownership/1.0 -------------------------------------------------------------------


def _record_reply(record: ownership.Record) -> dict:
    return {"record_id": record.id, "issuer": record.issuer, "owner": record.owner, "model": record.model,
            "serial": record.serial, "purchased": record.purchased, "warranty_end": record.warranty_end,
            "issued_time": record.issued_time, "previous": record.previous}


def own_record_sign(request: dict) -> dict:
    issuer, signer = _identity(request, "issuer_")
    record = ownership.Record(id=_text(request, "record_id"), issuer=issuer, owner=_text(request, "owner"),
                              model=_text(request, "model"), serial=_text(request, "serial"),
                              purchased=_text(request, "purchased"), warranty_end=_text(request, "warranty_end"),
                              issued_time=_int(request, "issued_time"), previous=_text(request, "previous", optional=True))
    signed = ownership.sign_record(record, signer)
    return {"issuer": issuer, "payload": record.payload().hex(),
            "to_be_signed": cose.sig_structure(signer.protected, record.payload()).hex(), "signed": signed.hex()}


def own_record_verify(request: dict) -> dict:
    record = ownership.verify_record(_hex(request, "signed"), issuer=_text(request, "issuer", optional=True),
                                     owner=_text(request, "owner", optional=True))
    return _record_reply(record)


def _update_reply(update: ownership.Update) -> dict:
    serials = update.serials
    if isinstance(serials, ownership.SerialRange):
        sel = {"range": [serials.first, serials.last]}
    elif serials is None:
        sel = None
    else:
        sel = {"list": sorted(serials, key=ownership.serial_key)}
    return {"update_id": update.id, "issuer": update.issuer, "kind": update.kind, "model": update.model,
            "serials": sel, "title": update.title, "text": update.text, "links": list(update.links),
            "issued_time": update.issued_time}


def _serials(request: dict) -> ownership.SerialRange | frozenset | None:
    sel = request.get("serials")
    if sel is None:
        return None
    if "range" in sel:
        return ownership.SerialRange(*sel["range"])
    return frozenset(sel["list"])


def own_update_sign(request: dict) -> dict:
    issuer, signer = _identity(request, "issuer_")
    update = ownership.Update(id=_text(request, "update_id"), issuer=issuer, kind=_text(request, "kind"),
                              model=_text(request, "model"), serials=_serials(request), title=_text(request, "title"),
                              text=_text(request, "text"), links=tuple(request.get("links", [])),
                              issued_time=_int(request, "issued_time"))
    return {"issuer": issuer, "payload": update.payload().hex(), "signed": ownership.sign_update(update, signer).hex()}


def own_update_verify(request: dict) -> dict:
    """Verify an update from `issuer`; with `record` (a signed record from the same
    issuer), also say whether the update concerns it."""
    issuer = _text(request, "issuer")
    update = ownership.verify_update(_hex(request, "signed"), issuer=issuer)
    reply = _update_reply(update)
    if "record" in request:
        reply["matches"] = ownership.matches(update, ownership.verify_record(_hex(request, "record"), issuer=issuer))
    return reply


def own_consent_sign(request: dict) -> dict:
    owner, signer = _identity(request, "owner_")
    record = ownership.verify_record(_hex(request, "record"), owner=owner)
    new_owner, time = _text(request, "new_owner"), _int(request, "time")
    signed = ownership.sign_consent(record, new_owner, time, signer)
    return {"owner": owner, "payload": ownership.Consent(record.id, new_owner, time).payload().hex(),
            "signed": signed.hex()}


def _registry(request: dict) -> ownership.Registry:
    """A registry for `issuer` holding the signed `records` (issued and delivered, so
    ACTIVE), then the completed `transfers` ({request: transfer-request message,
    now, successor: signed record}), in order."""
    registry = ownership.Registry(_text(request, "issuer"))
    for signed in request.get("records", []):
        registry.activate(registry.issue(bytes.fromhex(signed)).record.id)
    for t in request.get("transfers", []):
        req = registry.request_transfer(_decode(t["request"]), now=_int(t, "now"))
        registry.activate(registry.complete_transfer(req.record, bytes.fromhex(t["successor"])).record.id)
    return registry


def own_transfer_request(request: dict) -> dict:
    """The business receives a transfer-request `message` at `now`."""
    registry = _registry(request)
    req = registry.request_transfer(_decode(_text(request, "message")), now=_int(request, "now"))
    return {"record_id": req.record, "new_owner": req.new_owner, "state": registry.get(req.record).state.value}


def own_owners_of(request: dict) -> dict:
    registry = _registry(request)
    update = ownership.verify_update(_hex(request, "update"), issuer=registry.issuer)
    return {"owners": list(registry.owners_of(update)),
            "states": {rid: registry.get(rid).state.value for rid in request.get("report", [])}}


def own_present_verify(request: dict) -> dict:
    record = ownership.verify_presentation(_decode(_text(request, "message")), audience=_text(request, "audience"),
                                           now=_int(request, "now"), issuer=_text(request, "issuer", optional=True),
                                           challenge=_text(request, "challenge", optional=True))
    return _record_reply(record)


def own_message(request: dict) -> dict:
    """The issuer builds a `record` or `update` message carrying the COSE_Sign1
    `signed`, or a `transfer-complete` / `revoke` about the signed record `signed`
    (those two go to the record's owner)."""
    kind, signed = _text(request, "kind"), _hex(request, "signed")
    addr = {"id": _text(request, "message_id"), "frm": _text(request, "from"), "now": _int(request, "now")}
    if kind == "record":
        msg = ownership.record_message(signed, to=_text(request, "to"), thid=_text(request, "thid", optional=True),
                                       **addr)
    elif kind == "update":
        msg = ownership.update_message(signed, to=_text(request, "to"), **addr)
    elif kind == "transfer-complete":
        msg = ownership.transfer_complete(ownership.verify_record(signed), request_id=_text(request, "request_id"),
                                          **addr)
    elif kind == "revoke":
        msg = ownership.revoke_message(ownership.verify_record(signed), reason=_text(request, "reason", optional=True),
                                       **addr)
    else:
        raise LocalError(f"no ownership message kind {kind!r}")
    return {"message": message.encode(msg).hex()}


def own_record_receive(request: dict) -> dict:
    """The owner's agent receives a `record` message from `issuer` (the agent DID of
    the invitation), for `owner` (its pairwise DID)."""
    holding = ownership.receive_record(_decode(_text(request, "message")), issuer=_text(request, "issuer"),
                                       owner=_text(request, "owner"))
    return {**_record_reply(holding.record), "state": holding.state.value}


def own_update_receive(request: dict) -> dict:
    """The owner's agent receives an `update` message from `issuer`."""
    return _update_reply(ownership.receive_update(_decode(_text(request, "message")), issuer=_text(request, "issuer")))


def own_status_receive(request: dict) -> dict:
    """The owner's agent, holding the signed `record` in `state` (default `active`),
    receives a `transfer-complete` or `revoke` message; `issuer` is the agent DID the
    record's relationship expects it from."""
    issuer = _text(request, "issuer")
    signed = _hex(request, "record")
    holding = ownership.Holding(ownership.verify_record(signed, issuer=issuer), signed,
                                ownership.State(request.get("state", "active")))
    before = holding.state.value
    after = ownership.receive_status(_decode(_text(request, "message")), holding, issuer=issuer)
    return {"record_id": holding.record.id, "before": before, "state": after.value}


OPS = {
    "support_apply": support_apply,
    "own_record_sign": own_record_sign,
    "own_record_verify": own_record_verify,
    "own_update_sign": own_update_sign,
    "own_update_verify": own_update_verify,
    "own_consent_sign": own_consent_sign,
    "own_transfer_request": own_transfer_request,
    "own_owners_of": own_owners_of,
    "own_present_verify": own_present_verify,
    "own_message": own_message,
    "own_record_receive": own_record_receive,
    "own_update_receive": own_update_receive,
    "own_status_receive": own_status_receive,
}
