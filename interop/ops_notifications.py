"""Interop ops for notifications/1.0 (spec/16) and terms/1.0 (spec/17). Bytes travel as
lowercase hex. State that an agent would have stored (catalogue, subscriptions, send
and receive windows, the proffer on the table) is given in the request, so every op
is a pure function of its request.
"""

from __future__ import annotations

from p2p.core import envelope, keys, message
from p2p.core.protocols import notifications as N
from p2p.core.protocols import terms as T

from _adapter_util import hex_field as _hex
from _adapter_util import int_field as _int
from _adapter_util import text_field as _text


def _addr(request: dict) -> dict:
    return {"id": _text(request, "message_id"), "frm": _text(request, "from"), "to": _text(request, "to"),
            "now": _int(request, "now")}


def _catalogue(request: dict) -> tuple[N.Topic, ...]:
    return tuple(N.Topic(t["id"], t["title"], t["purpose"], t["default_urgency"]) for t in request.get("catalogue", ()))


def _rate(request: dict) -> N.RateLimit | None:
    r = request.get("rate_limit")
    return None if r is None else N.RateLimit(r["max"], r["window"])


def _rate_out(rate: N.RateLimit | None) -> dict | None:
    return None if rate is None else rate.to_map()


# --- notifications ----------------------------------------------------------------------


def notif_catalogue(request: dict) -> dict:
    return {"message": message.encode(N.catalogue(_catalogue(request), **_addr(request))).hex()}


def notif_subscribe(request: dict) -> dict:
    """The customer opts into `topics` (a subscribe), given its current settings."""
    subs = N.Subscriptions(catalogue=_catalogue(request), topics=frozenset(request.get("subscribed", ())),
                           rate_limit=_rate(request), revision=request.get("revision", 0))
    kind = request.get("kind", "subscribe")
    if kind == "subscribe":
        subs, msg = subs.subscribe(request.get("topics", ()), **_addr(request))
    elif kind == "unsubscribe":
        subs, msg = subs.unsubscribe(request.get("topics", ()), **_addr(request))
    else:
        subs, msg = subs.preferences(**_addr(request))
    return {"revision": subs.revision, "subscribed": sorted(subs.topics), "message": message.encode(msg).hex()}


def notif_mirror(request: dict) -> dict:
    """The business applies a customer's subscribe / unsubscribe / preferences."""
    aud = N.Audience(catalogue=_catalogue(request), topics=frozenset(request.get("subscribed", ())),
                     rate_limit=_rate(request), revision=request.get("revision", 0))
    aud = aud.receive(message.decode(_hex(request, "message")))
    return {"subscribed": sorted(aud.topics), "revision": aud.revision, "rate_limit": _rate_out(aud.rate_limit)}


def notif_notify(request: dict) -> dict:
    """The business builds a notify, or refuses (not-subscribed, rate-limit-reached)."""
    aud = N.Audience(catalogue=_catalogue(request), topics=frozenset(request.get("subscribed", ())),
                     rate_limit=_rate(request), sent=tuple(request.get("sent", ())))
    aud, msg = aud.notify(
        topic=_text(request, "topic"), title=_text(request, "title"), text=_text(request, "text"),
        urgency=_text(request, "urgency"), expires_time=_int(request, "expires_time", optional=True),
        links=[N.Link(x["title"], x["url"]) for x in request.get("links", ())],
        actions=[N.Action(x["id"], x["label"]) for x in request.get("actions", ())], **_addr(request))
    return {"sent": list(aud.sent), "message": message.encode(msg).hex()}


def notif_receive(request: dict) -> dict:
    """The customer's agent checks a notify: deliver, or drop and report (the error)."""
    subs = N.Subscriptions(catalogue=_catalogue(request), topics=frozenset(request.get("subscribed", ())),
                           muted=frozenset(request.get("muted", ())), rate_limit=_rate(request),
                           received=tuple(request.get("received", ())), last_time=request.get("last_time", 0))
    now = _int(request, "now")
    subs, decision = subs.receive_notify(message.decode(_hex(request, "message"), now=now), now=now)
    if not decision.deliver:
        raise decision.error
    n = decision.notification
    return {"deliver": True, "alert": decision.alert, "topic": n.topic, "urgency": n.urgency,
            "actions": [a.id for a in n.actions], "received": list(subs.received)}


def notif_action(request: dict) -> dict:
    """The business reads a customer's quick reply to the notify it sent."""
    sent = N.parse_notify(message.decode(_hex(request, "notify")))
    return {"action": N.parse_action(message.decode(_hex(request, "message")), sent)}


def notif_read_receipt(request: dict) -> dict:
    """The customer's agent, once its application displayed `notify`, sends a read
    receipt, or nothing when the customer has read receipts off (the default)."""
    subs = N.Subscriptions(read_receipts=bool(request.get("read_receipts", False)))
    msg = subs.read_receipt(N.parse_notify(message.decode(_hex(request, "notify"))), **_addr(request))
    return {"message": None if msg is None else message.encode(msg).hex()}


def notif_read(request: dict) -> dict:
    """The business reads a read receipt: which notify it is about."""
    return {"notify_id": N.parse_read(message.decode(_hex(request, "message")))}


def notif_status(request: dict) -> dict:
    status = N.Status(request.get("status", "queued"))
    trail = []
    for event in request.get("events", ()):
        status = N.next_status(status, N.StatusEvent(event))
        trail.append(status.value)
    return {"trail": trail, "status": status.value}


# --- terms --------------------------------------------------------------------------------------


def _signer(request: dict, prefix: str, did: str) -> envelope.SigningKey:
    return envelope.SigningKey.from_seed(T.signing_kid(did), _hex(request, f"{prefix}_ed25519_seed"))


def _public(request: dict, prefix: str) -> bytes:
    return keys.SigningKey.from_seed(_hex(request, f"{prefix}_ed25519_seed")).public \
        if f"{prefix}_ed25519_seed" in request else _hex(request, f"{prefix}_public")


def terms_proffer(request: dict) -> dict:
    customer, business = _text(request, "customer"), _text(request, "business")
    agr = T.Agreement.drafted(id=_text(request, "agreement_id"), terms=request.get("terms", ()), customer=customer,
                              business=business, now=_int(request, "now"))
    signer = _signer(request, "customer", customer)
    msg = agr.proffer(signer, id=_text(request, "message_id"), now=_int(request, "now"))
    return {"payload": agr.payload.hex(), "hash": agr.hash.hex(),
            "to_be_signed": T.to_be_signed(T.signer_protected(signer.kid), agr.payload).hex(),
            "agreement": msg.body["agreement"].hex(), "message": message.encode(msg).hex()}


def terms_respond(request: dict) -> dict:
    """The business answers a proffer by its policy."""
    customer, business = _text(request, "customer"), _text(request, "business")
    agr = T.Agreement.awaiting(customer=customer, business=business)
    agr.receive_proffer(message.decode(_hex(request, "proffer")), customer_key=_public(request, "customer"))
    p = request.get("policy", {})
    policy = T.Policy(frozenset(p.get("accept", ())), tuple(p.get("alternatives", {}).items()),
                      frozenset(p.get("reject", ())))
    verdict = T.decide(agr.terms, policy)
    msg = agr.respond(policy, _signer(request, "business", business), id=_text(request, "message_id"),
                      now=_int(request, "now"))
    reply = {"decision": verdict.kind, "terms": list(verdict.terms), "state": agr.state.value}
    if verdict.kind != "reject":
        reply.update(payload=agr.payload.hex(), hash=agr.hash.hex(), agreement=msg.body["agreement"].hex())
    reply["message"] = message.encode(msg).hex()
    return reply


def terms_accept_counter(request: dict) -> dict:
    """The customer, having proffered `proffer`, takes the business's `counter` and accepts it."""
    customer, business = _text(request, "customer"), _text(request, "business")
    proffer = message.decode(_hex(request, "proffer"))
    mine = T.open_sign(proffer.body["agreement"], expect=("customer",), customer=_public(request, "customer"))
    agr = T.Agreement(T.Role.CUSTOMER, customer=customer, business=business, state=T.State.PROFFERED,
                      thid=proffer.id, payload=mine.payload, signature=mine.signatures[0])
    agr.receive_counter(message.decode(_hex(request, "counter")), business_key=_public(request, "business"))
    msg = agr.accept(_signer(request, "customer", customer), id=_text(request, "message_id"), now=_int(request, "now"))
    return {"terms": list(agr.terms), "hash": agr.hash.hex(), "record": agr.record.hex(),
            "message": message.encode(msg).hex()}


def terms_verify(request: dict) -> dict:
    """Check a final record (both signatures) under the two parties' keys."""
    signed = T.open_sign(_hex(request, "record"), expect=("customer", "business"),
                         customer=_public(request, "customer"), business=_public(request, "business"))
    return {"agreement_id": signed.draft.id, "terms": list(signed.draft.terms), "hash": signed.hash.hex()}


def _held(request: dict) -> T.Agreement:
    """An agreement as side `role` stored it: `state`, `thid` and the agreement
    `payload` on the table (proffered, countered or accepted)."""
    return T.Agreement(T.Role(_text(request, "role")), customer=_text(request, "customer"),
                       business=_text(request, "business"), state=T.State(_text(request, "state")),
                       thid=_text(request, "thid"), payload=_hex(request, "payload"))


def terms_withdraw(request: dict) -> dict:
    """Side `role` withdraws the agreement (or the proposal) on the table."""
    agr = _held(request)
    msg = agr.withdraw(id=_text(request, "message_id"), now=_int(request, "now"),
                       reason=_text(request, "reason", optional=True))
    return {"hash": agr.hash.hex(), "state": agr.state.value, "message": message.encode(msg).hex()}


def terms_receive_withdraw(request: dict) -> dict:
    """Side `role` receives the peer's withdraw `message`."""
    agr = _held(request)
    reason = agr.receive_withdraw(message.decode(_hex(request, "message")))
    return {"reason": reason, "state": agr.state.value}


def terms_admit(request: dict) -> dict:
    """May the customer's agent process this message under the agreement state?"""
    msg = message.decode(_hex(request, "message"), understood=T.UNDERSTOOD)
    T.check_reference(msg, agreement_hash=_hex(request, "agreement_hash", optional=True),
                      required=bool(request.get("required", False)))
    return {"admit": True}


def terms_bind(request: dict) -> dict:
    """A message carrying x-agreement (in crit)."""
    msg = message.decode(_hex(request, "message"))
    return {"message": T.encode(T.bind(msg, _hex(request, "agreement_hash"))).hex()}


OPS = {
    "notif_catalogue": notif_catalogue,
    "notif_subscribe": notif_subscribe,
    "notif_mirror": notif_mirror,
    "notif_notify": notif_notify,
    "notif_receive": notif_receive,
    "notif_action": notif_action,
    "notif_read_receipt": notif_read_receipt,
    "notif_read": notif_read,
    "notif_status": notif_status,
    "terms_proffer": terms_proffer,
    "terms_respond": terms_respond,
    "terms_accept_counter": terms_accept_counter,
    "terms_verify": terms_verify,
    "terms_withdraw": terms_withdraw,
    "terms_receive_withdraw": terms_receive_withdraw,
    "terms_admit": terms_admit,
    "terms_bind": terms_bind,
}
