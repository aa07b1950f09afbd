#!/usr/bin/env python3
"""Write interop/vectors/notifications/*.json (notifications/1.0 and terms/1.0) from p2p's
implementation.

Independent checks live in tests/test_protocols_terms.py and
tests/test_protocols_notifications.py: agreement signatures are verified with libsodium
over a cbor2-built Sig_structure and with pycose's COSE_Sign, bodies with cbor2, and every
CBOR value named in a vector against spec/cddl.
"""

from __future__ import annotations

import hashlib

from _vectors import VectorSet  # sets up sys.path for the imports below

import ops_notifications as ops  # noqa: E402
from p2p.core import cbor, envelope, keys  # noqa: E402
from p2p.core.protocols import connection  # noqa: E402
from p2p.core.protocols import terms as T  # noqa: E402

NOW = 1_764_320_000  # 2025-11-28T08:53:20Z


def secret(name: str) -> bytes:
    return hashlib.sha256(f"p2p notification vectors: {name}".encode()).digest()


VECTORS = VectorSet("notifications", ops.OPS)
accept, reject = VECTORS.accept, VECTORS.reject


CUSTOMER_KEYS = keys.AgentKeys.from_secrets(secret("customer ed25519"), secret("customer x25519"))
BUSINESS_KEYS = keys.AgentKeys.from_secrets(secret("business ed25519"), secret("business x25519"))
CUSTOMER = connection.pairwise_did(CUSTOMER_KEYS)
BUSINESS = connection.pairwise_did(BUSINESS_KEYS)
C_SEED, B_SEED = CUSTOMER_KEYS.signing.seed.hex(), BUSINESS_KEYS.signing.seed.hex()
C_PUB, B_PUB = CUSTOMER_KEYS.signing.public.hex(), BUSINESS_KEYS.signing.public.hex()

CATALOGUE = [
    {"id": "orders", "title": "Your orders", "purpose": "Shipping and delivery of what you bought.",
     "default_urgency": "normal"},
    {"id": "offers.weekly", "title": "Weekly offers", "purpose": "One message a week with our offers.",
     "default_urgency": "low"},
    {"id": "security", "title": "Security alerts", "purpose": "Sign-ins and changes to your account.",
     "default_urgency": "critical"},
]
B2C = {"from": BUSINESS, "to": CUSTOMER}
C2B = {"from": CUSTOMER, "to": BUSINESS}


def notify_msg(topic: str, *, urgency: str = "normal", created: int = NOW, mid: str = "notify-1",
               body_extra: dict | None = None, drop_created: bool = False) -> str:
    """A notify as a (possibly misbehaving) business would send it, built by hand."""
    body = {"topic": topic, "title": "Parcel on its way", "body": "Your order 1234 left our store.",
            "urgency": urgency, **(body_extra or {})}
    m = {"id": mid, "type": "https://p2p.example/notifications/1.0/notify", "body": body, "from": BUSINESS,
         "to": [CUSTOMER]}
    if not drop_created:
        m["created_time"] = created
    return cbor.dumps(m).hex()


def notifications() -> str:
    accept("notif-catalogue", "the business offers three topics", "notif_catalogue",
           {"catalogue": CATALOGUE, "message_id": "cat-1", "now": NOW, **B2C}, cddl={"message": "notif-catalogue"})
    accept("notif-subscribe", "the customer opts into orders and security, with a rate limit of 5 per hour",
           "notif_subscribe",
           {"catalogue": CATALOGUE, "revision": 0, "topics": ["orders", "security"],
            "rate_limit": {"max": 5, "window": 3600}, "message_id": "sub-1", "now": NOW, **C2B},
           cddl={"message": "notif-subscribe"})
    sub = ops.notif_subscribe({"catalogue": CATALOGUE, "revision": 0, "topics": ["orders", "security"],
                               "rate_limit": {"max": 5, "window": 3600}, "message_id": "sub-1", "now": NOW, **C2B})
    accept("notif-mirror-subscribe", "the business mirrors the subscribe: topics, revision and rate limit",
           "notif_mirror", {"catalogue": CATALOGUE, "revision": 0, "message": sub["message"]})
    unsub = accept("notif-unsubscribe", "the customer opts out of security (revision 2)", "notif_subscribe",
                   {"kind": "unsubscribe", "catalogue": CATALOGUE, "subscribed": ["orders", "security"],
                    "revision": 1, "rate_limit": {"max": 5, "window": 3600}, "topics": ["security"],
                    "message_id": "unsub-1", "now": NOW + 60, **C2B}, cddl={"message": "notif-unsubscribe"})
    accept("notif-mirror-unsubscribe", "the mirror drops the topic", "notif_mirror",
           {"catalogue": CATALOGUE, "subscribed": ["orders", "security"], "revision": 1,
            "rate_limit": {"max": 5, "window": 3600}, "message": unsub["message"]})
    accept("notif-mirror-stale", "a change whose revision is not above the mirror's changes nothing",
           "notif_mirror", {"catalogue": CATALOGUE, "subscribed": ["orders"], "revision": 5,
                            "message": sub["message"]})
    prefs = accept("notif-preferences", "a full snapshot: subscribed topics and the rate limit", "notif_subscribe",
                   {"kind": "preferences", "catalogue": CATALOGUE, "subscribed": ["orders"], "revision": 2,
                    "rate_limit": {"max": 3, "window": 86400}, "message_id": "prefs-1", "now": NOW + 120, **C2B},
                   cddl={"message": "notif-preferences"})
    accept("notif-mirror-preferences", "the snapshot replaces the mirror", "notif_mirror",
           {"catalogue": CATALOGUE, "subscribed": ["orders", "offers.weekly"], "revision": 2,
            "message": prefs["message"]})
    reject("notif-reject-mirror-unknown-topic", "a subscribe names a topic not in the catalogue", "notif_mirror",
           {"catalogue": CATALOGUE, "revision": 0, "message": ops.notif_subscribe(
               {"catalogue": CATALOGUE + [{"id": "raffle", "title": "Raffle", "purpose": "",
                                           "default_urgency": "low"}],
                "revision": 0, "topics": ["raffle"], "message_id": "sub-9", "now": NOW, **C2B})["message"]},
           "unknown-topic")

    notify_req = {"catalogue": CATALOGUE, "subscribed": ["orders"], "rate_limit": {"max": 5, "window": 3600},
                  "sent": [NOW - 4000, NOW - 100], "topic": "orders", "title": "Parcel on its way",
                  "text": "Your order 1234 left our store.", "urgency": "normal",
                  "links": [{"title": "Track it", "url": "https://shop.example/track/1234"}],
                  "actions": [{"id": "ok", "label": "Thanks"}, {"id": "call-me", "label": "Call me"}],
                  "expires_time": NOW + 86400, "message_id": "notify-1", "now": NOW, **B2C}
    sent = accept("notif-notify", "the business notifies on a subscribed topic, with a link and two quick replies",
                  "notif_notify", notify_req, cddl={"message": "notif-notify"})
    reject("notif-reject-notify-not-subscribed", "local: the business may not notify on a topic without opt-in",
           "notif_notify", {**notify_req, "topic": "offers.weekly"}, "not-subscribed")
    reject("notif-reject-notify-rate-limit-reached",
           "local: five notifications were sent in the last hour, the limit is 5 per 3600 s", "notif_notify",
           {**notify_req, "sent": [NOW - 3000, NOW - 2000, NOW - 1000, NOW - 10, NOW]}, "rate-limit-reached")

    recv = {"catalogue": CATALOGUE, "subscribed": ["orders", "security"], "muted": [],
            "rate_limit": {"max": 5, "window": 3600}, "received": [NOW - 100], "last_time": NOW - 100,
            "now": NOW + 5}
    accept("notif-receive", "the customer's agent delivers a solicited notify (effective time = created_time)",
           "notif_receive", {**recv, "message": sent["message"]})
    accept("notif-receive-muted", "a muted topic is delivered without alert", "notif_receive",
           {**recv, "muted": ["orders"], "message": sent["message"]})
    accept("notif-receive-backdated", "a backdated notify counts at the last accepted time (last_time), "
           "not at its own created_time", "notif_receive",
           {**recv, "message": notify_msg("orders", created=NOW - 86400)})
    reject("notif-reject-stale", "a notify created more than 604800 s before now", "notif_receive",
           {**recv, "message": notify_msg("orders", created=NOW - 604801)}, "message-expired")
    reject("notif-reject-unsolicited", "a notify on a catalogue topic the customer never opted into",
           "notif_receive", {**recv, "message": notify_msg("offers.weekly")}, "unsolicited-notification")
    reject("notif-reject-unknown-topic", "a notify on a topic that is not in the catalogue", "notif_receive",
           {**recv, "message": notify_msg("raffle")}, "unknown-topic")
    reject("notif-reject-bad-urgency", "urgency is not one of low, normal, high, critical", "notif_receive",
           {**recv, "message": notify_msg("orders", urgency="urgent")}, "invalid-field")
    reject("notif-reject-rate-limited", "a sixth notify within 3600 s (limit 5)", "notif_receive",
           {**recv, "received": [NOW - 3000, NOW - 2000, NOW - 1000, NOW - 500, NOW - 100],
            "message": notify_msg("orders")}, "rate-limited")
    reject("notif-reject-link-scheme", "a link that is not https://", "notif_receive",
           {**recv, "message": notify_msg("orders", body_extra={
               "links": [{"title": "Win", "url": "javascript:alert(1)"}]})}, "invalid-field")
    reject("notif-reject-no-created-time", "a notify without created_time (the rate limit counts by it)",
           "notif_receive", {**recv, "message": notify_msg("orders", drop_created=True)}, "missing-field")

    action = cbor.dumps({"id": "act-1", "type": "https://p2p.example/notifications/1.0/action",
                         "body": {"action": "call-me"}, "thid": "notify-1", "from": CUSTOMER, "to": [BUSINESS],
                         "created_time": NOW + 30})
    accept("notif-action", "the customer picked the quick reply call-me", "notif_action",
           {"notify": sent["message"], "message": action.hex()}, cddl={"message": "notif-action-reply"})
    bad_action = cbor.dumps({"id": "act-2", "type": "https://p2p.example/notifications/1.0/action",
                             "body": {"action": "refund"}, "thid": "notify-1", "from": CUSTOMER, "to": [BUSINESS],
                             "created_time": NOW + 30})
    reject("notif-reject-unknown-action", "an action the notify did not offer", "notif_action",
           {"notify": sent["message"], "message": bad_action.hex()}, "unknown-action")
    accept("notif-status-read", "queued -> sent -> delivered (receipt) -> read (read receipt)", "notif_status",
           {"events": ["send", "receipt", "read"]})
    reject("notif-reject-status-read-before-send", "local: a queued notification cannot be read",
           "notif_status", {"events": ["read"]}, "state-error")
    return sent["message"]


def _proffer(terms: list[str], *, agreement_id: str = "agr-1", mid: str = "proffer-1") -> dict:
    return ops.terms_proffer({"customer": CUSTOMER, "business": BUSINESS, "customer_ed25519_seed": C_SEED,
                              "agreement_id": agreement_id, "terms": terms, "message_id": mid, "now": NOW})


def _forged(payload_map: dict, *, signer_seed: bytes, signer_did: str, type_: str, mid: str, frm: str, to: str,
            thid: str | None = None) -> str:
    """A message whose agreement payload the builders would refuse, signed properly."""
    payload = cbor.dumps(payload_map)
    signer = envelope.SigningKey.from_seed(T.signing_kid(signer_did), signer_seed)
    record = T.encode_sign(payload, (T.sign(payload, signer),))
    m = {"id": mid, "type": type_, "body": {"agreement": record}, "from": frm, "to": [to], "created_time": NOW}
    if thid:
        m["thid"] = thid
    return cbor.dumps(m).hex()


def terms() -> dict:
    base = ["p2p:terms:delete-on-revoke", "p2p:terms:no-tracking", "p2p:terms:service-only"]
    req = {"customer": CUSTOMER, "business": BUSINESS, "customer_ed25519_seed": C_SEED, "agreement_id": "agr-1",
           "terms": base, "message_id": "proffer-1", "now": NOW}
    p = accept("terms-proffer", "the customer proffers three roster terms, signed (COSE_Sign, one signature)",
               "terms_proffer", req, keys_order=["payload", "hash", "to_be_signed", "agreement", "message"],
               cddl={"payload": "terms-agreement", "to_be_signed": "terms-to-be-signed",
                     "agreement": "terms-record", "message": "terms-proffer"})
    policy_all = {"accept": base + ["p2p:terms:no-marketing"], "alternatives": {}, "reject": []}
    resp = {"customer": CUSTOMER, "business": BUSINESS, "customer_public": C_PUB, "business_ed25519_seed": B_SEED,
            "proffer": p["message"], "message_id": "answer-1", "now": NOW + 1}
    acc = accept("terms-respond-accept", "the policy accepts every term: the business countersigns",
                 "terms_respond", {**resp, "policy": policy_all},
                 cddl={"agreement": "terms-record", "message": "terms-accept"})
    policy_counter = {"accept": ["p2p:terms:no-tracking", "p2p:terms:service-only"],
                      "alternatives": {"p2p:terms:delete-on-revoke": "p2p:terms:retain-limited"}, "reject": []}
    counter = accept("terms-respond-counter", "the policy answers delete-on-revoke with its roster alternative "
                     "retain-limited: a counter signed by the business", "terms_respond",
                     {**resp, "policy": policy_counter},
                     cddl={"payload": "terms-agreement", "agreement": "terms-record", "message": "terms-counter"})
    accept("terms-respond-reject", "the policy refuses no-tracking: a reject with the reason", "terms_respond",
           {**resp, "policy": {"accept": ["p2p:terms:service-only", "p2p:terms:delete-on-revoke"],
                               "reject": ["p2p:terms:no-tracking"]}}, cddl={"message": "terms-reject"})
    final = accept("terms-accept-counter", "the customer accepts the counter: the record has both signatures, "
                   "customer first", "terms_accept_counter",
                   {"customer": CUSTOMER, "business": BUSINESS, "customer_ed25519_seed": C_SEED,
                    "business_public": B_PUB, "proffer": p["message"], "counter": counter["message"],
                    "message_id": "accept-1", "now": NOW + 2},
                   cddl={"record": "terms-record", "message": "terms-accept"})
    accept("terms-verify", "the final record verifies under both parties' keys", "terms_verify",
           {"record": acc["agreement"], "customer_public": C_PUB, "business_public": B_PUB})
    plain = cbor.dumps({"id": "n-7", "type": "https://p2p.example/notifications/1.0/notify",
                        "body": {"topic": "orders", "title": "Hi", "body": "", "urgency": "low"},
                        "from": BUSINESS, "to": [CUSTOMER], "created_time": NOW}).hex()
    bound = accept("terms-bind", "a later message names the agreement: x-agreement, listed in crit", "terms_bind",
                   {"message": plain, "agreement_hash": final["hash"]}, cddl={"message": "terms-bound-message"})
    accept("terms-admit", "the customer's agent admits a message that names the agreement in force", "terms_admit",
           {"message": bound["message"], "agreement_hash": final["hash"], "required": True})

    # --- must-reject ---
    rec = bytearray(bytes.fromhex(acc["agreement"]))
    rec[-1] ^= 1  # last byte of the business's signature
    reject("terms-reject-bad-signature", "one bit of the business's signature flipped", "terms_verify",
           {"record": rec.hex(), "customer_public": C_PUB, "business_public": B_PUB}, "bad-signature")
    signed = T.open_sign(bytes.fromhex(acc["agreement"]), expect=("customer", "business"),
                         customer=bytes.fromhex(C_PUB), business=bytes.fromhex(B_PUB))
    tampered = cbor.loads(signed.payload, max_size=T.MAX_AGREEMENT_BYTES)
    tampered["terms"] = ["p2p:terms:no-tracking", "p2p:terms:service-only"]
    reject("terms-reject-tampered-payload", "delete-on-revoke removed from the signed payload", "terms_verify",
           {"record": T.encode_sign(cbor.dumps(tampered), signed.signatures).hex(), "customer_public": C_PUB,
            "business_public": B_PUB}, "bad-signature")
    reject("terms-reject-swapped-signatures", "the record lists the business's signature first", "terms_verify",
           {"record": T.encode_sign(signed.payload, signed.signatures[::-1]).hex(), "customer_public": C_PUB,
            "business_public": B_PUB}, "agreement-mismatch")
    es256 = T.Signature(signed.signatures[0].kid, cbor.dumps({1: -7, 4: signed.signatures[0].kid.encode()}),
                        signed.signatures[0].signature)
    reject("terms-reject-alg", "a signer header with alg ES256 (-7)", "terms_verify",
           {"record": T.encode_sign(signed.payload, (es256, signed.signatures[1])).hex(), "customer_public": C_PUB,
            "business_public": B_PUB}, "unsupported-algorithm")
    payload = {"id": "agr-2", "terms": ["p2p:terms:sell-my-data"], "version": 1, "customer": CUSTOMER,
               "business": BUSINESS, "created_time": NOW}
    reject("terms-reject-proffer-unknown-term", "a proffer with a term not in roster 1", "terms_respond",
           {**resp, "policy": policy_all,
            "proffer": _forged(payload, signer_seed=CUSTOMER_KEYS.signing.seed, signer_did=CUSTOMER,
                               type_=T.PROFFER_TYPE, mid="proffer-2", frm=CUSTOMER, to=BUSINESS)},
           "unknown-term")
    ctr = {"id": "agr-1", "terms": ["p2p:terms:no-tracking", "p2p:terms:service-only", "p2p:terms:sell-my-data"],
           "version": 1, "customer": CUSTOMER, "business": BUSINESS, "created_time": NOW + 1,
           "counter_to": bytes.fromhex(p["hash"])}
    acc_req = {"customer": CUSTOMER, "business": BUSINESS, "customer_ed25519_seed": C_SEED, "business_public": B_PUB,
               "proffer": p["message"], "message_id": "accept-1", "now": NOW + 2}

    def forged_counter(m: dict) -> str:
        return _forged(m, signer_seed=BUSINESS_KEYS.signing.seed, signer_did=BUSINESS, type_=T.COUNTER_TYPE,
                       mid="answer-1", frm=BUSINESS, to=CUSTOMER, thid="proffer-1")

    reject("terms-reject-counter-unknown-term", "a counter with a term not in the roster", "terms_accept_counter",
           {**acc_req, "counter": forged_counter(ctr)}, "unknown-term")
    reject("terms-reject-counter-not-alternative",
           "a counter replacing delete-on-revoke by no-marketing, which is not its roster alternative",
           "terms_accept_counter",
           {**acc_req, "counter": forged_counter({**ctr, "terms": ["p2p:terms:no-marketing", "p2p:terms:no-tracking",
                                                                   "p2p:terms:service-only"]})}, "invalid-counter")
    reject("terms-reject-counter-to", "a counter whose counter_to is not the proffer's hash", "terms_accept_counter",
           {**acc_req, "counter": forged_counter({**ctr, "terms": ["p2p:terms:no-tracking", "p2p:terms:retain-limited",
                                                                   "p2p:terms:service-only"],
                                                  "counter_to": b"\x00" * 32})}, "agreement-mismatch")
    h = bytearray(bytes.fromhex(final["hash"]))
    h[0] ^= 0x80
    reject("terms-reject-tampered-hash", "x-agreement differs from the agreement in force in one bit", "terms_admit",
           {"message": bound["message"], "agreement_hash": bytes(h).hex(), "required": True}, "agreement-mismatch")
    reject("terms-reject-agreement-required", "the customer requires an agreement; the message names none",
           "terms_admit", {"message": plain, "agreement_hash": final["hash"], "required": True},
           "agreement-required")
    reject("terms-reject-no-agreement", "the customer requires an agreement and has none", "terms_admit",
           {"message": plain, "required": True}, "agreement-required")
    return {"proffer": p, "accepted": acc, "counter": counter, "resp": resp, "policy": policy_all}


# Added after the first two sets (so that their files keep their numbers): the read
# receipt, the action's thread, withdraw, and invalid-agreement.


def notifications_read(notify: str) -> None:
    read_req = {"notify": notify, "message_id": "read-1", "now": NOW + 40, **C2B}
    read = accept("notif-read-receipt", "the customer enabled read receipts: a read for the notify it displayed "
                  "(thid = the notify's id, empty body)", "notif_read_receipt", {**read_req, "read_receipts": True},
                  cddl={"message": "notif-read"})
    accept("notif-read-receipt-off", "read receipts are off (the default): nothing is sent", "notif_read_receipt",
           {**read_req, "read_receipts": False})
    accept("notif-read", "the business learns which notify was read", "notif_read", {"message": read["message"]},
           cddl={"message": "notif-read"})
    no_thid = cbor.dumps({"id": "read-2", "type": "https://p2p.example/notifications/1.0/read", "body": {},
                          "from": CUSTOMER, "to": [BUSINESS], "created_time": NOW + 40})
    reject("notif-reject-read-no-thid", "a read without thid: it names no notify", "notif_read",
           {"message": no_thid.hex()}, "missing-field")
    reject("notif-reject-read-not-a-read", "a notify handed in where a read is expected", "notif_read",
           {"message": notify}, "unexpected-message")
    other = cbor.dumps({"id": "act-3", "type": "https://p2p.example/notifications/1.0/action",
                        "body": {"action": "ok"}, "thid": "notify-9", "from": CUSTOMER, "to": [BUSINESS],
                        "created_time": NOW + 30})
    reject("notif-reject-action-other-thread", "an action whose thid is not the notify's id", "notif_action",
           {"notify": notify, "message": other.hex()}, "unexpected-message")


def terms_withdraw(t: dict) -> None:
    p, acc, counter = t["proffer"], t["accepted"], t["counter"]
    parties = {"customer": CUSTOMER, "business": BUSINESS, "thid": "proffer-1"}
    w = accept("terms-withdraw-accepted", "the customer withdraws the accepted agreement; the body names its hash",
               "terms_withdraw", {**parties, "role": "customer", "state": "accepted", "payload": acc["payload"],
                                  "message_id": "withdraw-1", "now": NOW + 86400, "reason": "I left the shop"},
               keys_order=["hash", "state", "message"], cddl={"message": "terms-withdraw"})
    accept("terms-withdraw-receive", "the business receives it: no agreement is in force any more",
           "terms_receive_withdraw", {**parties, "role": "business", "state": "accepted", "payload": acc["payload"],
                                      "message": w["message"]}, cddl={"message": "terms-withdraw"})
    wc = accept("terms-withdraw-counter", "the business withdraws its counter (no reason given)", "terms_withdraw",
                {**parties, "role": "business", "state": "countered", "payload": counter["payload"],
                 "message_id": "withdraw-2", "now": NOW + 3}, keys_order=["hash", "state", "message"],
                cddl={"message": "terms-withdraw"})
    accept("terms-withdraw-receive-counter", "the customer receives the withdrawn counter", "terms_receive_withdraw",
           {**parties, "role": "customer", "state": "countered", "payload": counter["payload"],
            "message": wc["message"]})
    # The customer withdraws its proffer; the business already countered, so the counter is on its table.
    wp = ops.terms_withdraw({**parties, "role": "customer", "state": "proffered", "payload": p["payload"],
                             "message_id": "withdraw-3", "now": NOW + 2})
    reject("terms-reject-withdraw-other-hash", "the withdraw names the proffer's hash; the counter is on the "
           "business's table", "terms_receive_withdraw",
           {**parties, "role": "business", "state": "countered", "payload": counter["payload"],
            "message": wp["message"]}, "agreement-mismatch", cddl={"message": "terms-withdraw"})
    reject("terms-reject-withdraw-state", "a withdraw from the business while the customer's proffer is unanswered "
           "(the business may only accept, counter or reject it)", "terms_receive_withdraw",
           {**parties, "role": "customer", "state": "proffered", "payload": p["payload"], "message": wc["message"]},
           "unexpected-message")
    short = cbor.dumps({"id": "withdraw-4", "type": T.WITHDRAW_TYPE, "thid": "proffer-1",
                        "body": {"agreement": bytes.fromhex(acc["hash"])[:16]}, "from": CUSTOMER, "to": [BUSINESS],
                        "created_time": NOW + 86400})
    reject("terms-reject-withdraw-short-hash", "the withdraw's agreement is 16 bytes, not a 32-byte hash",
           "terms_receive_withdraw", {**parties, "role": "business", "state": "accepted", "payload": acc["payload"],
                                      "message": short.hex()}, "invalid-field")

    # invalid-agreement: a record or payload outside spec/17 §17.3-17.4.
    payload = {"id": "agr-3", "terms": ["p2p:terms:no-tracking"], "version": 1, "customer": CUSTOMER,
               "business": BUSINESS, "created_time": NOW, "counter_to": bytes.fromhex(p["hash"])}
    reject("terms-reject-proffer-counter-to", "a proffer whose payload carries counter_to (only a counter has it)",
           "terms_respond", {**t["resp"], "policy": t["policy"],
                             "proffer": _forged(payload, signer_seed=CUSTOMER_KEYS.signing.seed,
                                                signer_did=CUSTOMER, type_=T.PROFFER_TYPE, mid="proffer-3",
                                                frm=CUSTOMER, to=BUSINESS)}, "invalid-agreement")
    tag = cbor.loads(bytes.fromhex(acc["agreement"]), max_size=T.MAX_AGREEMENT_BYTES)
    protected_body = cbor.dumps_tagged(98, [cbor.dumps({1: -8}), *tag.value[1:]])
    reject("terms-reject-body-protected", "the COSE_Sign body protected header is not empty (h'a10127')",
           "terms_verify", {"record": protected_body.hex(), "customer_public": C_PUB, "business_public": B_PUB},
           "invalid-agreement")


def notifications_resync() -> None:
    """Added later: a preferences snapshot applies even below the mirror's revision (a
    customer whose counter went back resynchronises with it, spec/16 §16.3)."""
    prefs = ops.notif_subscribe({"kind": "preferences", "catalogue": CATALOGUE, "subscribed": ["orders"],
                                 "revision": 2, "rate_limit": {"max": 3, "window": 86400},
                                 "message_id": "prefs-1", "now": NOW + 120, **C2B})
    accept("notif-mirror-preferences-behind", "a snapshot whose revision (3) is below the mirror's (7) still "
           "replaces it, and the mirror counts from 3", "notif_mirror",
           {"catalogue": CATALOGUE, "subscribed": ["offers.weekly", "security"], "revision": 7,
            "message": prefs["message"]})


def main() -> None:
    notify = notifications()
    t = terms()
    notifications_read(notify)
    terms_withdraw(t)
    notifications_resync()
    VECTORS.write()


if __name__ == "__main__":
    main()
