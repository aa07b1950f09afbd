#!/usr/bin/env python3
"""Write interop/vectors/customer/*.json (support/1.0 and ownership/1.0) from p2p's
implementation.

Independent checks live in tests/test_protocols_support.py and
tests/test_protocols_ownership.py: every signature in these vectors is verified with
libsodium over a Sig_structure built with cbor2, and every CBOR value named in a
vector's "cddl" is validated against spec/cddl.
"""

from __future__ import annotations

import hashlib

from _vectors import VectorSet  # sets up sys.path for the imports below

import ops_customer as ops  # noqa: E402
from p2p.core import cbor, envelope, keys, message  # noqa: E402
from p2p.core.message import Attachment, Message  # noqa: E402
from p2p.core.protocols import connection, ownership, support  # noqa: E402

NOW = 1_764_320_000  # 2025-11-28T08:53:20Z


def secret(name: str) -> str:
    return hashlib.sha256(f"p2p customer vectors: {name}".encode()).hexdigest()


def identity(name: str) -> tuple[dict, str, envelope.SigningKey]:
    """Key secrets for a request, the agent-layout DID, and its #key-1 signing key."""
    secrets = {"ed25519_seed": secret(f"{name} ed25519"), "x25519_secret": secret(f"{name} x25519")}
    agent = keys.AgentKeys.from_secrets(bytes.fromhex(secrets["ed25519_seed"]), bytes.fromhex(secrets["x25519_secret"]))
    did = connection.pairwise_did(agent)
    return secrets, did, envelope.SigningKey.from_seed(ownership.signing_kid(did), agent.signing.seed)


VECTORS = VectorSet("customer", ops.OPS)
accept, reject = VECTORS.accept, VECTORS.reject


def hx(msg: Message) -> str:
    return message.encode(msg).hex()


def support_vectors() -> dict:
    _, cust, _ = identity("alice pairwise")
    _, biz, _ = identity("shop pairwise")
    _, mallory, _ = identity("mallory pairwise")
    parties = {"customer": cust, "business": biz}
    c = support.Ticket(customer=cust, business=biz, ours=support.Side.CUSTOMER)
    b = support.Ticket(customer=cust, business=biz, ours=support.Side.BUSINESS)
    shot = support.inline_attachment("photo-1", bytes(range(48)), media_type="image/png", filename="kettle.png")
    opened = c.open(id="tkt-1", now=NOW, subject="Kettle does not heat", text="It clicks off after a second.",
                    category="repairs", priority="high", attachments=(shot,))
    accept("support-open", "the customer opens a ticket with an inline photo; the business applies it",
           "support_apply", {**parties, "ours": "business", "history": [], "message": hx(opened)},
           cddl={"message": "support-open"})
    b.apply(opened)
    r1 = b.reply(id="msg-2", now=NOW + 60, text="Is the lid closed firmly?")
    accept("support-business-reply", "a business reply: the ticket waits on the customer", "support_apply",
           {**parties, "ours": "customer", "history": [hx(opened)], "message": hx(r1)}, cddl={"message": "support-reply"})
    c.apply(r1)
    log = support.linked_attachment("log-1", ["https://files.shop.example/a/log-1.txt"],
                                    hash=hashlib.blake2b(b"log", digest_size=32).digest(), byte_count=3_500_000,
                                    media_type="text/plain")
    r2 = c.reply(id="msg-3", now=NOW + 120, text="Yes. The log is attached.", attachments=(log,))
    accept("support-customer-reply-link", "a customer reply with a linked attachment (https, hash, byte_count): "
           "the ticket waits on the business", "support_apply",
           {**parties, "ours": "business", "history": [hx(m) for m in c.history[:-1]], "message": hx(r2)},
           cddl={"message": "support-reply"})
    b.apply(r2)
    a = b.assign(id="msg-4", now=NOW + 180, assignee="Sam (repairs)")
    accept("support-assign", "the business tells the customer who handles the ticket; the state is unchanged",
           "support_apply", {**parties, "ours": "customer", "history": [hx(m) for m in c.history], "message": hx(a)},
           cddl={"message": "support-assign"})
    c.apply(a)
    st = b.set_status("waiting_on_customer", id="msg-5", now=NOW + 200, note="Waiting for the serial number")
    accept("support-status", "an explicit status change by the business", "support_apply",
           {**parties, "ours": "customer", "history": [hx(m) for m in c.history], "message": hx(st)},
           cddl={"message": "support-status"})
    c.apply(st)
    history_open = [hx(m) for m in c.history]
    rs = b.resolve(id="msg-6", now=NOW + 300, text="A replacement is on its way.")
    accept("support-resolve", "the business resolves", "support_apply",
           {**parties, "ours": "customer", "history": history_open, "message": hx(rs)},
           cddl={"message": "support-resolve"})
    c.apply(rs)
    rate = c.rate(4, id="msg-7", now=NOW + 400, comment="Quick, thanks")
    accept("support-rate", "the customer rates the resolved ticket; the state stays resolved", "support_apply",
           {**parties, "ours": "business", "history": [hx(m) for m in c.history[:-1]], "message": hx(rate)},
           cddl={"message": "support-rate"})
    b.apply(rate)
    resolved = [hx(m) for m in b.history]
    # A second pair of copies to branch from the resolved state.
    c2 = support.Ticket.rebuild(c.history, customer=cust, business=biz, ours=support.Side.CUSTOMER)
    reopen = c2.reopen(id="msg-8", now=NOW + 500, text="The replacement has the same fault.")
    accept("support-reopen", "the customer reopens a resolved ticket", "support_apply",
           {**parties, "ours": "business", "history": resolved, "message": hx(reopen)}, cddl={"message": "support-reopen"})
    close = b.close(id="msg-9", now=NOW + 600, reason="Replacement delivered")
    accept("support-business-close", "the business closes a resolved ticket", "support_apply",
           {**parties, "ours": "customer", "history": resolved, "message": hx(close)}, cddl={"message": "support-close"})
    b3 = support.Ticket(customer=cust, business=biz, ours=support.Side.BUSINESS)
    notice = b3.open(id="tkt-2", now=NOW, subject="Your order ships late", text="About three days.", priority="normal")
    accept("support-business-opens", "either side may open a ticket", "support_apply",
           {**parties, "ours": "customer", "history": [], "message": hx(notice)}, cddl={"message": "support-open"})

    # --- must-reject ------------------------------------------------------------------
    def msg(name: str, body: dict, *, frm: str, id: str, thid: str | None = "tkt-1", attachments=()) -> Message:
        to = biz if frm != biz else cust
        return Message(id=id, type=support.message_type(name), body=body, frm=frm, to=(to,), thid=thid,
                       created_time=NOW + 700, attachments=tuple(attachments))

    reject("reject-support-rate-before-resolution", "a rating while the ticket waits on the customer",
           "support_apply", {**parties, "ours": "business", "history": history_open,
                             "message": hx(msg("rate", {"score": 5}, frm=cust, id="bad-1"))}, "illegal-transition",
           cddl={"message": "support-rate"})
    reject("reject-support-customer-resolves", "only the business resolves", "support_apply",
           {**parties, "ours": "business", "history": history_open,
            "message": hx(msg("resolve", {}, frm=cust, id="bad-2"))}, "illegal-transition")
    reject("reject-support-business-closes-unresolved", "the business may close only a resolved ticket",
           "support_apply", {**parties, "ours": "customer", "history": history_open,
                             "message": hx(msg("close", {}, frm=biz, id="bad-3"))}, "illegal-transition")
    closed = resolved + [hx(close)]
    reject("reject-support-reply-after-close", "closed is terminal: a reply is refused", "support_apply",
           {**parties, "ours": "customer", "history": closed,
            "message": hx(msg("reply", {"text": "one more thing"}, frm=biz, id="bad-4"))}, "illegal-transition")
    big = support.inline_attachment("dump", b"\x00" * (support.MAX_INLINE_BYTES + 1))
    reject("reject-support-inline-too-large", f"{support.MAX_INLINE_BYTES + 1} bytes of inline attachment "
           "(the limit is 65536; larger content goes by link)", "support_apply",
           {**parties, "ours": "business", "history": history_open,
            "message": hx(msg("reply", {"text": "dump attached"}, frm=cust, id="bad-5", attachments=(big,)))},
           "attachment-too-large")
    reject("reject-support-score-6", "a score outside 1..5", "support_apply",
           {**parties, "ours": "business", "history": resolved[:-1],
            "message": hx(msg("rate", {"score": 6}, frm=cust, id="bad-6"))}, "invalid-field")
    http = Attachment(id="log-2", data={"links": ["http://files.shop.example/log"], "hash": b"\x11" * 32},
                      byte_count=10)
    reject("reject-support-http-link", "a linked attachment over plain http", "support_apply",
           {**parties, "ours": "business", "history": history_open,
            "message": hx(msg("reply", {"text": "see link"}, frm=cust, id="bad-7", attachments=(http,)))},
           "invalid-field")
    reject("reject-support-stranger", "a reply from a DID that is neither party", "support_apply",
           {**parties, "ours": "business", "history": history_open,
            "message": hx(msg("reply", {"text": "hi"}, frm=mallory, id="bad-8"))}, "sender-mismatch")
    return {"parties": parties, "history_open": history_open, "msg": msg, "cust": cust}


def ownership_vectors() -> dict:
    shop_secrets, shop, shop_key = identity("shop agent")
    alice_secrets, alice, alice_key = identity("alice pairwise")
    _, bob, bob_key = identity("bob pairwise")
    _, carol, _ = identity("carol pairwise")
    issuer_req = {f"issuer_{k}": v for k, v in shop_secrets.items()}
    fields = {"record_id": "rec-1", "owner": alice, "model": "Kettle K2", "serial": "K2-000042",
              "purchased": "2025-11-01", "warranty_end": "2027-11-01", "issued_time": NOW}
    rec1 = accept("own-record-sign", "the business signs Alice's ownership record: payload, Sig_structure, "
                  "COSE_Sign1", "own_record_sign", {**issuer_req, **fields},
                  cddl={"payload": "own-record", "signed": "cose-sign1"},
                  keys_order=["issuer", "payload", "to_be_signed", "signed"])
    accept("own-record-verify", "Alice verifies the record she was sent", "own_record_verify",
           {"signed": rec1["signed"], "issuer": shop, "owner": alice}, cddl={"signed": "cose-sign1"})
    bad = bytearray(bytes.fromhex(rec1["signed"]))
    bad[-1] ^= 0x01
    reject("reject-own-record-bad-signature", "last signature byte flipped", "own_record_verify",
           {"signed": bad.hex(), "issuer": shop, "owner": alice}, "bad-signature")
    reject("reject-own-record-other-owner", "a valid record for Alice, checked by Bob's agent", "own_record_verify",
           {"signed": rec1["signed"], "issuer": shop, "owner": bob}, "wrong-owner")
    _, mallory, mallory_key = identity("mallory agent")
    forged_rec = ownership.Record("rec-1", mallory, alice, "Kettle K2", "K2-000042", "2025-11-01", "2027-11-01", NOW)
    reject("reject-own-record-not-the-issuer", "a record signed by another agent than the expected issuer",
           "own_record_verify", {"signed": ownership.sign_record(forged_rec, mallory_key).hex(), "issuer": shop,
                                 "owner": alice}, "wrong-issuer")
    inverted_dates = {**ownership.Record("rec-9", shop, alice, "Kettle K2", "K2-000043", "2025-11-01",
                                         "2025-10-01", NOW).to_map()}
    reject("reject-own-record-warranty-before-purchase", "a signed record whose warranty ends before the purchase",
           "own_record_verify", {"signed": envelope.seal_signed(cbor.dumps(inverted_dates), shop_key).hex(),
                                 "issuer": shop}, "bad-record")

    upd = {"update_id": "upd-1", "kind": "recall", "model": "Kettle K2", "serials": {"range": ["K2-000001", "K2-000100"]},
           "title": "Recall: K2 kettles made in October", "text": "Stop using the kettle; we replace it for free.",
           "links": ["https://shop.example/recall/k2"], "issued_time": NOW + 86400}
    u1 = accept("own-update-sign", "the maker signs a recall for a serial range", "own_update_sign",
                {**issuer_req, **upd}, cddl={"payload": "own-update", "signed": "cose-sign1"},
                keys_order=["issuer", "payload", "signed"])
    accept("own-update-matches", "the recall concerns Alice's K2-000042", "own_update_verify",
           {"signed": u1["signed"], "issuer": shop, "record": rec1["signed"]})
    u2 = ops.own_update_sign({**issuer_req, **upd, "update_id": "upd-2", "kind": "firmware",
                              "serials": {"list": ["K2-000100", "K2-000007"]}, "title": "Firmware 1.3",
                              "text": "", "links": []})
    accept("own-update-list-no-match", "a firmware notice for a serial list that does not include K2-000042",
           "own_update_verify", {"signed": u2["signed"], "issuer": shop, "record": rec1["signed"]},
           cddl={"signed": "cose-sign1"})
    forged_upd = ownership.Update("upd-1", mallory, "recall", "Kettle K2", None, "Recall", "Send us your card number",
                                  (), NOW)
    reject("reject-own-update-not-maker", "an update signed by another agent's key", "own_update_verify",
           {"signed": ownership.sign_update(forged_upd, mallory_key).hex(), "issuer": shop}, "wrong-issuer")
    inverted = ownership.Update("upd-3", shop, "recall", "Kettle K2", None, "Recall", "", (), NOW).to_map()
    inverted["serials"] = {"range": ["K2-000100", "K2-000001"]}
    reject("reject-own-update-range-inverted", "a signed update whose serial range runs backwards",
           "own_update_verify", {"signed": envelope.seal_signed(cbor.dumps(inverted), shop_key).hex(), "issuer": shop},
           "bad-update")

    consent = accept("own-consent-sign", "Alice consents to transfer rec-1 to Bob's pairwise DID", "own_consent_sign",
                     {**{f"owner_{k}": v for k, v in alice_secrets.items()}, "record": rec1["signed"],
                      "new_owner": bob, "time": NOW + 1000},
                     cddl={"payload": "own-consent", "signed": "cose-sign1"}, keys_order=["owner", "payload", "signed"])

    def transfer(consent_hex: str, *, frm: str = alice, new_owner: str = bob, record: str = "rec-1",
                 id: str = "xfer-1") -> str:
        return hx(Message(id=id, type=ownership.message_type("transfer-request"),
                          body={"record": record, "new_owner": new_owner}, frm=frm, to=(shop,),
                          created_time=NOW + 1000, attachments=(Attachment(
                              id="consent", media_type=ownership.COSE_SIGN1_MEDIA_TYPE,
                              data={"bytes": bytes.fromhex(consent_hex)}),)))

    registry = {"issuer": shop, "records": [rec1["signed"]]}
    req_ok = transfer(consent["signed"])
    accept("own-transfer-request", "the business accepts Alice's consent: rec-1 is transfer_pending",
           "own_transfer_request", {**registry, "message": req_ok, "now": NOW + 1000},
           cddl={"message": "own-transfer-request"})
    # Consent signed by Bob (not the owner): build the payload by hand, since sign_consent refuses.
    bobs = envelope.seal_signed(ownership.Consent("rec-1", bob, NOW + 1000).payload(), bob_key).hex()
    reject("reject-own-transfer-consent-not-owner", "the consent is signed by Bob's key, not the owner's",
           "own_transfer_request", {**registry, "message": transfer(bobs), "now": NOW + 1000}, "bad-consent")
    reject("reject-own-transfer-consent-other-new-owner", "Alice's consent names Bob; the request names Carol",
           "own_transfer_request", {**registry, "message": transfer(consent["signed"], new_owner=carol),
                                    "now": NOW + 1000}, "bad-consent")
    reject("reject-own-transfer-not-owner", "Bob asks to transfer Alice's record", "own_transfer_request",
           {**registry, "message": transfer(consent["signed"], frm=bob), "now": NOW + 1000}, "wrong-owner")
    reject("reject-own-transfer-unknown-record", "a transfer of a record the business never issued",
           "own_transfer_request", {**registry, "message": transfer(consent["signed"], record="rec-77"),
                                    "now": NOW + 1000}, "unknown-record")
    rec2 = ops.own_record_sign({**issuer_req, **fields, "record_id": "rec-2", "owner": bob,
                                "issued_time": NOW + 1100, "previous": "rec-1"})
    done = {**registry, "transfers": [{"request": req_ok, "now": NOW + 1000, "successor": rec2["signed"]}]}
    reject("reject-own-transfer-superseded", "transferring rec-1 again after it was superseded by rec-2",
           "own_transfer_request", {**done, "message": transfer(consent["signed"], id="xfer-2"), "now": NOW + 2000},
           "illegal-transition")
    rec3 = ops.own_record_sign({**issuer_req, **fields, "record_id": "rec-3", "owner": carol, "serial": "K2-000050",
                                "issued_time": NOW})
    rec4 = ops.own_record_sign({**issuer_req, **fields, "record_id": "rec-4", "owner": carol, "serial": "K2-000200",
                                "issued_time": NOW})
    accept("own-owners-of-after-transfer", "after the transfer the recall reaches Bob (K2-000042) and Carol "
           "(K2-000050), not Alice (superseded) nor K2-000200 (out of range)", "own_owners_of",
           {"issuer": shop, "records": [rec1["signed"], rec3["signed"], rec4["signed"]],
            "transfers": done["transfers"], "update": u1["signed"], "report": ["rec-1", "rec-2"]},
           keys_order=["owners", "states"])

    bob_holding = ownership.Holding(ownership.verify_record(bytes.fromhex(rec2["signed"])),
                                    bytes.fromhex(rec2["signed"]), ownership.State.ACTIVE)
    _, repair, _ = identity("repair shop")
    pres = ownership.present_message(bob_holding, bob_key, id="pres-1", frm=bob, to=repair, now=NOW + 3000,
                                     challenge="n-8c1e")
    accept("own-present", "Bob shows his record to a repair shop, with a proof bound to the shop and its challenge",
           "own_present_verify", {"message": hx(pres), "audience": repair, "now": NOW + 3010, "issuer": shop,
                                  "challenge": "n-8c1e"}, cddl={"message": "own-present"})
    reject("reject-own-present-other-audience", "the same presentation replayed to another verifier",
           "own_present_verify", {"message": hx(pres), "audience": carol, "now": NOW + 3010, "issuer": shop,
                                  "challenge": "n-8c1e"}, "bad-proof")
    return {"issuer_req": issuer_req, "alice_secrets": alice_secrets, "shop": shop, "alice": alice, "bob": bob,
            "mallory": mallory, "rec1": rec1["signed"], "rec2": rec2["signed"], "u1": u1["signed"],
            "registry": registry, "transfer": transfer, "consent": consent["signed"]}


# Added after the first two sets (so that their files keep their numbers): a
# missing-field for support, and the ownership messages that had no vector of their own
# (record, update, transfer-complete, revoke) with their must-rejects.


def support_more(s: dict) -> None:
    reject("reject-support-reply-no-thid", "a reply without thid: it names no ticket", "support_apply",
           {**s["parties"], "ours": "business", "history": s["history_open"],
            "message": hx(s["msg"]("reply", {"text": "hello?"}, frm=s["cust"], id="bad-9", thid=None))},
           "missing-field")
    reject("reject-support-rate-no-score", "a rating without its score", "support_apply",
           {**s["parties"], "ours": "business", "history": s["history_open"],
            "message": hx(s["msg"]("rate", {"comment": "meh"}, frm=s["cust"], id="bad-10"))}, "missing-field")


def ownership_more(o: dict) -> None:
    shop, alice, bob, mallory = o["shop"], o["alice"], o["bob"], o["mallory"]
    rec_msg = accept("own-message-record", "the business delivers rec-1 to Alice in a record message",
                     "own_message", {"kind": "record", "signed": o["rec1"], "message_id": "rec-msg-1", "from": shop,
                                     "to": alice, "now": NOW + 10}, cddl={"message": "own-record-message"})
    accept("own-record-receive", "Alice's agent verifies it (expected issuer and owner given): rec-1 is active",
           "own_record_receive", {"message": rec_msg["message"], "issuer": shop, "owner": alice},
           cddl={"message": "own-record-message"})
    reject("reject-own-record-message-no-attachment", "a record message without its record attachment",
           "own_record_receive", {"message": hx(Message(id="rec-msg-2", type=ownership.message_type("record"), body={},
                                                        frm=shop, to=(alice,), created_time=NOW + 10)),
                                  "issuer": shop, "owner": alice}, "bad-record")
    reject("reject-own-record-message-other-owner", "the record message reaches Bob's agent", "own_record_receive",
           {"message": rec_msg["message"], "issuer": shop, "owner": bob}, "wrong-owner")
    upd_msg = accept("own-message-update", "the business sends the recall to Alice in an update message",
                     "own_message", {"kind": "update", "signed": o["u1"], "message_id": "upd-msg-1", "from": shop,
                                     "to": alice, "now": NOW + 86400}, cddl={"message": "own-update-message"})
    accept("own-update-receive", "Alice's agent verifies the update from the issuer", "own_update_receive",
           {"message": upd_msg["message"], "issuer": shop}, cddl={"message": "own-update-message"})
    reject("reject-own-update-message-not-issuer", "the update message is checked against another issuer",
           "own_update_receive", {"message": upd_msg["message"], "issuer": mallory}, "wrong-issuer")

    done = accept("own-message-transfer-complete", "the business tells Alice the transfer of rec-1 is done "
                  "(thid = the transfer-request's id)", "own_message",
                  {"kind": "transfer-complete", "signed": o["rec1"], "request_id": "xfer-1",
                   "message_id": "xfer-done-1", "from": shop, "now": NOW + 1100},
                  cddl={"message": "own-transfer-complete"})
    accept("own-status-transfer-complete", "Alice's copy, transfer_pending since her request, becomes superseded",
           "own_status_receive", {"issuer": shop, "record": o["rec1"], "state": "transfer_pending",
                                  "message": done["message"]}, cddl={"message": "own-transfer-complete"})
    revoke = accept("own-message-revoke", "the business revokes Bob's rec-2 (the kettle was returned)", "own_message",
                    {"kind": "revoke", "signed": o["rec2"], "reason": "Returned for a refund",
                     "message_id": "revoke-1", "from": shop, "now": NOW + 5000}, cddl={"message": "own-revoke"})
    accept("own-status-revoke", "Bob's active copy becomes revoked", "own_status_receive",
           {"issuer": shop, "record": o["rec2"], "message": revoke["message"]}, cddl={"message": "own-revoke"})
    forged = ops.own_message({"kind": "transfer-complete", "signed": o["rec1"], "request_id": "xfer-1",
                              "message_id": "xfer-done-2", "from": mallory, "now": NOW + 1100})
    reject("reject-own-status-not-issuer", "a transfer-complete from another DID than the issuer's",
           "own_status_receive", {"issuer": shop, "record": o["rec1"], "state": "transfer_pending",
                                  "message": forged["message"]}, "sender-mismatch",
           cddl={"message": "own-transfer-complete"})
    other = ops.own_message({"kind": "revoke", "signed": o["rec1"], "message_id": "revoke-2", "from": shop,
                             "now": NOW + 5000})
    reject("reject-own-status-unknown-record", "Bob's agent, holding rec-2, gets a revoke naming rec-1",
           "own_status_receive", {"issuer": shop, "record": o["rec2"], "message": other["message"]},
           "unknown-record", cddl={"message": "own-revoke"})
    reject("reject-own-status-complete-while-active", "a transfer-complete for a record its owner never asked to "
           "transfer (active, not transfer_pending)", "own_status_receive",
           {"issuer": shop, "record": o["rec1"], "state": "active", "message": done["message"]}, "illegal-transition")
    reject("reject-own-status-revoke-superseded", "a revoke of a record already superseded (terminal)",
           "own_status_receive", {"issuer": shop, "record": o["rec1"], "state": "superseded",
                                  "message": other["message"]}, "illegal-transition")

    future = ops.own_consent_sign({**{f"owner_{k}": v for k, v in o["alice_secrets"].items()}, "record": o["rec1"],
                                   "new_owner": bob, "time": NOW + 1301})
    reject("reject-own-transfer-consent-future", "a consent dated 301 s after the business's now (skew limit 300)",
           "own_transfer_request", {**o["registry"], "message": o["transfer"](future["signed"]), "now": NOW + 1000},
           "clock-skew")
    reject("reject-own-transfer-new-owner-not-did", "a transfer-request whose new_owner is not a DID",
           "own_transfer_request", {**o["registry"], "message": o["transfer"](o["consent"], new_owner="bob"),
                                    "now": NOW + 1000}, "invalid-field")


def main() -> None:
    s = support_vectors()
    o = ownership_vectors()
    support_more(s)
    ownership_more(o)
    VECTORS.write()


if __name__ == "__main__":
    main()
