#!/usr/bin/env python3
"""Write interop/vectors/protocols/*.json from p2p's implementation.

Independent checks live in tests/test_protocols_vectors.py: the invitation signature is
verified with libsodium over a cbor2-built Sig_structure, the DIDs are resolved with the
did_peer_2 library, and every CBOR value is validated against spec/cddl.
"""

from __future__ import annotations

import base64
import hashlib

from _vectors import VectorSet  # sets up sys.path for the imports below

import ops_protocols as ops  # noqa: E402
from p2p.core import cbor, envelope, keys, message  # noqa: E402
from p2p.core.protocols import connection  # noqa: E402

NOW = 1_764_320_000  # 2025-11-28T08:53:20Z


def secret(name: str) -> str:
    return hashlib.sha256(f"p2p protocol vectors: {name}".encode()).hexdigest()


def rnd(name: str, n: int) -> str:
    return hashlib.sha256(f"p2p protocol vectors random: {name}".encode()).digest()[:n].hex()


VECTORS = VectorSet("protocols", ops.OPS)
accept, reject = VECTORS.accept, VECTORS.reject


AGENT = {"ed25519_seed": secret("agent ed25519"), "x25519_secret": secret("agent x25519")}
ALICE_PW = {"ed25519_seed": secret("alice pairwise ed25519"), "x25519_secret": secret("alice pairwise x25519")}
SHOP_PW = {"pairwise_ed25519_seed": secret("shop pairwise ed25519"),
           "pairwise_x25519_secret": secret("shop pairwise x25519")}


def main() -> None:
    # --- endpoints ----------------------------------------------------------------------
    agent_x = keys.AgentKeys.from_secrets(bytes.fromhex(AGENT["ed25519_seed"]),
                                          bytes.fromhex(AGENT["x25519_secret"])).agreement.public
    accept("endpoint-format-dns", "p2p+tcp URI of a listener on a DNS name", "endpoint_format",
           {"key_public": agent_x.hex(), "host": "shop.example", "port": 7400})
    ep6 = accept("endpoint-format-ipv6", "IPv6 hosts are bracketed and written in RFC 5952 form", "endpoint_format",
                 {"key_public": agent_x.hex(), "host": "2001:0db8:0000::0001", "port": 443})
    accept("endpoint-parse-ipv6", "parse gives the key, the host without brackets, the port", "endpoint_parse",
           {"uri": ep6["uri"]})
    key_mb = ep6["uri"].split("//")[1].split("@")[0]
    reject("reject-endpoint-scheme", "scheme tcp:// instead of p2p+tcp://", "endpoint_parse",
           {"uri": f"tcp://{key_mb}@shop.example:7400"}, "invalid-endpoint")
    reject("reject-endpoint-no-port", "the port is required", "endpoint_parse",
           {"uri": f"p2p+tcp://{key_mb}@shop.example"}, "invalid-endpoint")
    reject("reject-endpoint-ed25519-key", "the userinfo is an Ed25519 multikey, not the X25519 Noise key",
           "endpoint_parse", {"uri": "p2p+tcp://z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp@shop.example:7400"},
           "invalid-endpoint")

    # --- invitations ------------------------------------------------------------------------
    one = accept("invitation-create-one-time", "a one-time invitation without expiry: payload, COSE_Sign1, URL",
                 "invitation_create",
                 {**AGENT, "host": "shop.example", "port": 7400, "invitation_id": "inv-1", "label": "Corner Shop",
                  "multi_use": False, "now": NOW},
                 cddl={"message": "proto-invitation", "signed": "cose-sign1"},
                 keys_order=["endpoint", "agent_did", "message", "signed", "url"])
    multi = accept("invitation-create-multi-use", "a multi-use invitation that expires after one day",
                   "invitation_create",
                   {**AGENT, "host": "shop.example", "port": 7400, "invitation_id": "inv-2", "label": "Corner Shop",
                    "multi_use": True, "now": NOW, "expires_time": NOW + 86400},
                   cddl={"message": "proto-invitation", "signed": "cose-sign1"},
                   keys_order=["endpoint", "agent_did", "message", "signed", "url"])
    accept("invitation-parse", "parsing the one-time invitation URL", "invitation_parse",
           {"url": one["url"], "now": NOW + 60})
    accept("invitation-parse-multi-use", "parsing the multi-use URL before it expires", "invitation_parse",
           {"url": multi["url"], "now": NOW + 86399})
    reject("reject-invitation-expired", "now equals expires_time", "invitation_parse",
           {"url": multi["url"], "now": NOW + 86400}, "invitation-expired")
    signed = bytearray(bytes.fromhex(one["signed"]))
    signed[-1] ^= 0x01
    reject("reject-invitation-bad-signature", "last signature byte flipped", "invitation_parse",
           {"url": "p2p:invite?_oob=" + base64.urlsafe_b64encode(bytes(signed)).rstrip(b"=").decode()},
           "bad-signature")
    mallory = keys.AgentKeys.from_secrets(bytes.fromhex(secret("mallory ed25519")),
                                          bytes.fromhex(secret("mallory x25519")))
    mallory_did = connection.pairwise_did(mallory, "p2p+tcp://" + key_mb + "@evil.example:7400")
    forged = envelope.seal_signed(bytes.fromhex(one["message"]),
                                  envelope.SigningKey.from_seed(mallory_did + "#key-1", mallory.signing.seed))
    reject("reject-invitation-signer-not-from", "the shop's invitation payload re-signed by another DID's key",
           "invitation_parse", {"url": "p2p:invite?_oob=" + base64.urlsafe_b64encode(forged).rstrip(b"=").decode()},
           "sender-mismatch")
    url = one["url"]
    cut = len("p2p:invite?_oob=") + (len(url) - len("p2p:invite?_oob=")) // 8 * 4  # whole base64 quanta
    reject("reject-invitation-truncated", "URL cut in the middle of the COSE_Sign1", "invitation_parse",
           {"url": url[:cut]}, "truncated")
    reject("reject-invitation-scheme", "https:// instead of p2p:invite", "invitation_parse",
           {"url": "https://shop.example/?" + url.split("?", 1)[1]}, "invalid-invitation")
    reject("reject-invitation-too-long", "a URL over 4096 characters", "invitation_parse",
           {"url": url + "&pad=" + "x" * 4096}, "too-large")
    ping_payload = message.encode(message.Message(id="p", type="https://didcomm.org/trust-ping/2.0/ping", body={},
                                                  frm=one["agent_did"]))
    agent_keys = keys.AgentKeys.from_secrets(bytes.fromhex(AGENT["ed25519_seed"]), bytes.fromhex(AGENT["x25519_secret"]))
    not_inv = envelope.seal_signed(ping_payload, envelope.SigningKey.from_seed(one["agent_did"] + "#key-1",
                                                                               agent_keys.signing.seed))
    reject("reject-invitation-wrong-type", "a correctly signed message that is not an invitation", "invitation_parse",
           {"url": "p2p:invite?_oob=" + base64.urlsafe_b64encode(not_inv).rstrip(b"=").decode()},
           "invalid-invitation")

    # --- connect/1.0 ---------------------------------------------------------------------------
    req = accept("connect-request", "invitee's request: pairwise DID, message, authcrypt with the full sender key (-2)",
                 "connect_request",
                 {**ALICE_PW, "invitation_url": one["url"], "message_id": "req-1", "label": "Alice", "now": NOW + 60,
                  "iv": rnd("req iv", 12), "nonce": rnd("req nonce", 32)},
                 cddl={"message": "proto-connect-request", "envelope": "cose-encrypt"})
    sender_kid = req["pairwise_did"] + "#key-2"
    respond_base = {**{"agent_" + k: v for k, v in AGENT.items()}, **SHOP_PW, "invitation_url": one["url"],
                    "request": req["message"], "sender_kid": sender_kid, "response_id": "resp-1", "label": "Corner Shop",
                    "endpoint": one["endpoint"], "now": NOW + 61, "iv": rnd("resp iv", 12),
                    "nonce": rnd("resp nonce", 32)}
    resp = accept("connect-respond", "inviter's response: pairwise DID, endorsement payload and COSE_Sign1, message, "
                  "envelope (pairwise authcrypt, -3)", "connect_respond", respond_base,
                  cddl={"endorsement_payload": "proto-endorsement", "endorsement": "cose-sign1",
                        "message": "proto-connect-response", "envelope": "cose-encrypt"},
                  keys_order=["pairwise_did", "endorsement_payload", "endorsement", "message", "envelope"])
    reject("reject-connect-invitation-used", "a second request for a one-time invitation", "connect_respond",
           {**respond_base, "invitation_state": "used", "invitation_uses": 1}, "invitation-used")
    reject("reject-connect-invitation-expired", "a request that arrives after the invitation expired",
           "connect_respond", {**respond_base, "invitation_url": multi["url"], "now": NOW + 86400,
                               "request": message.encode(message.parse_map(
                                   {**cbor.loads(bytes.fromhex(req["message"]), max_size=10**6),
                                    "pthid": "inv-2"})).hex()},
           "invitation-expired")
    reject("reject-connect-unknown-invitation", "the request's pthid names no invitation of ours", "connect_respond",
           {**respond_base, "request": message.encode(message.parse_map(
               {**cbor.loads(bytes.fromhex(req["message"]), max_size=10**6), "pthid": "inv-9"})).hex()},
           "unknown-invitation")
    reject("reject-connect-sender-mismatch", "the authcrypt sender is the agent, not the request's from",
           "connect_respond", {**respond_base, "sender_kid": one["agent_did"] + "#key-2"}, "sender-mismatch")
    accept_base = {"invitation_url": one["url"], "request_id": "req-1", "our_did": req["pairwise_did"],
                   "response": resp["message"], "sender_kid": resp["pairwise_did"] + "#key-2",
                   "complete_id": "comp-1", "now": NOW + 62}
    acc = accept("connect-accept", "invitee checks the endorsement and answers complete", "connect_accept",
                 accept_base, cddl={"complete": "proto-connect-complete"})
    del acc
    resp_map = cbor.loads(bytes.fromhex(resp["message"]), max_size=10**6)

    def with_endorsement(payload: bytes, signer: keys.AgentKeys = agent_keys,
                         kid: str = one["agent_did"] + "#key-1") -> str:
        signed = envelope.seal_signed(payload, envelope.SigningKey.from_seed(kid, signer.signing.seed))
        m = {**resp_map, "attachments": [{**resp_map["attachments"][0], "data": {"bytes": signed}}]}
        return message.encode(message.parse_map(m)).hex()

    reject("reject-connect-endorsement-other-did", "the endorsement binds another DID (the agent's) to the invitation",
           "connect_accept", {**accept_base, "response": with_endorsement(
               connection.endorsement_payload(one["agent_did"], "inv-1", "req-1"))}, "bad-endorsement")
    reject("reject-connect-endorsement-wrong-request", "the endorsement names another request id", "connect_accept",
           {**accept_base, "response": with_endorsement(
               connection.endorsement_payload(resp["pairwise_did"], "inv-1", "req-2"))}, "bad-endorsement")
    reject("reject-connect-endorsement-self-signed", "the endorsement is signed by the pairwise DID's own key, "
           "not the invitation key", "connect_accept",
           {**accept_base, "response": with_endorsement(
               connection.endorsement_payload(resp["pairwise_did"], "inv-1", "req-1"),
               keys.AgentKeys.from_secrets(bytes.fromhex(SHOP_PW["pairwise_ed25519_seed"]),
                                           bytes.fromhex(SHOP_PW["pairwise_x25519_secret"])),
               resp["pairwise_did"] + "#key-1")}, "bad-endorsement")
    reject("reject-connect-endorsement-forged", "the endorsement claims the invitation key's kid but another key signed",
           "connect_accept", {**accept_base, "response": with_endorsement(
               connection.endorsement_payload(resp["pairwise_did"], "inv-1", "req-1"), mallory)}, "bad-signature")
    accept("connect-revoke", "revoke with a reason", "connect_revoke",
           {"from": req["pairwise_did"], "to": resp["pairwise_did"], "message_id": "rev-1", "now": NOW + 3600,
            "reason": "account closed"}, cddl={"message": "proto-connect-revoke"})

    # --- core protocols through dispatch ------------------------------------------------------------
    us, them = resp["pairwise_did"], req["pairwise_did"]
    ctx = {"our_did": us, "their_did": them, "now": NOW + 100, "reply_id": "reply-1"}

    def m(type_: str, body: dict, **kw) -> str:
        return message.encode(message.Message(id=kw.pop("id", "m-1"), type=type_, body=body, frm=them, to=(us,),
                                              created_time=NOW + 99, **kw)).hex()

    accept("dispatch-ping", "a ping is answered by a ping-response on its thread", "dispatch",
           {**ctx, "message": m("https://didcomm.org/trust-ping/2.0/ping", {"response_requested": True})},
           cddl={"message": "proto-ping", "reply": "proto-ping-response"})
    accept("dispatch-ping-no-response", "response_requested false: no reply", "dispatch",
           {**ctx, "message": m("https://didcomm.org/trust-ping/2.0/ping", {"response_requested": False})},
           cddl={"message": "proto-ping"})
    accept("dispatch-ping-response", "a ping-response is reported as an event", "dispatch",
           {**ctx, "message": m("https://didcomm.org/trust-ping/2.0/ping-response", {}, thid="p-7")},
           cddl={"message": "proto-ping-response"})
    accept("dispatch-queries", "discover-features queries with wildcards, answered by disclose", "dispatch",
           {**ctx, "message": m("https://didcomm.org/discover-features/2.0/queries",
                                {"queries": [{"feature-type": "protocol", "match": "https://didcomm.org/trust-ping/*"},
                                             {"feature-type": "protocol", "match": "https://p2p.example/*"},
                                             {"feature-type": "goal-code", "match": "*"}]})},
           cddl={"message": "proto-queries", "reply": "proto-disclose"})
    accept("dispatch-unknown-type", "a message of a protocol we do not speak gets a problem report", "dispatch",
           {**ctx, "message": m("https://example.org/poker/1.0/deal", {}, thid="game-1")},
           cddl={"reply": "proto-problem-report"})
    accept("dispatch-malformed-body", "response_requested is not a boolean: e.p.msg.invalid-field", "dispatch",
           {**ctx, "message": m("https://didcomm.org/trust-ping/2.0/ping", {"response_requested": "yes"})},
           cddl={"reply": "proto-problem-report"})
    accept("dispatch-expired", "an expired message: e.p.req.time.message-expired, pthid from the message",
           "dispatch", {**ctx, "message": m("https://didcomm.org/trust-ping/2.0/ping", {}, expires_time=NOW + 100)},
           cddl={"reply": "proto-problem-report"})
    accept("dispatch-please-ack", "an application message asking for an ack gets the empty message with ack",
           "dispatch", {**ctx, "app_protocols": ["https://p2p.example/chat/1.0"],
                        "message": m("https://p2p.example/chat/1.0/text", {"text": "hello"}, please_ack=("m-1",))},
           cddl={"reply": "proto-ack"})
    report = accept("dispatch-problem-report", "a problem report is reported as an event, never answered", "dispatch",
                    {**ctx, "message": m("https://didcomm.org/report-problem/2.0/problem-report",
                                         {"code": "e.p.trust.crypto.decryption-failed",
                                          "comment": "Cryptographic operation failed. (decryption-failed): {1}"},
                                         pthid="t-3", ack=("m-0",))},
                    cddl={"message": "proto-problem-report"})
    del report
    accept("dispatch-revoked", "on a revoked relationship nothing is processed or answered", "dispatch",
           {**ctx, "status": "revoked", "message": m("https://didcomm.org/trust-ping/2.0/ping", {})})

    # --- delivery frames ------------------------------------------------------------------------
    env = req["envelope"]
    accept("delivery-encode-deliver", "deliver frame: [1, seq, envelope]", "delivery_encode",
           {"kind": "deliver", "seq": 1, "envelope": env}, cddl={"frame": "proto-frame"})
    accept("delivery-encode-deliver-big-seq", "seq 2^32 takes the 8-byte form", "delivery_encode",
           {"kind": "deliver", "seq": 2**32, "envelope": env[:200]}, cddl={"frame": "proto-frame"})
    accept("delivery-encode-receipt", "receipt frame for seqs 1, 2 and 300", "delivery_encode",
           {"kind": "receipt", "seqs": [1, 2, 300]}, cddl={"frame": "proto-frame"})
    accept("delivery-encode-close", "close frame", "delivery_encode", {"kind": "close", "reason": "shutdown"},
           cddl={"frame": "proto-frame"})
    accept("delivery-decode-receipt", "decoding a receipt", "delivery_decode", {"frame": "82028301021901" + "2c"},
           cddl={"frame": "proto-frame"})
    for name, desc, hexframe, code in [
        ("reject-delivery-seq-zero", "deliver with seq 0", "830100" + "42d860", "malformed-delivery-frame"),
        ("reject-delivery-unknown-kind", "kind 4", "820401", "unknown-frame-kind"),
        ("reject-delivery-empty-receipt", "receipt with no seqs", "820280", "malformed-delivery-frame"),
        ("reject-delivery-envelope-text", "deliver whose envelope is a text string", "8301016268" + "69",
         "malformed-delivery-frame"),
        ("reject-delivery-not-array", "a map instead of an array", "a10101", "malformed-delivery-frame"),
        ("reject-delivery-truncated", "deliver frame cut inside the envelope", "83010145d860", "truncated"),
        ("reject-delivery-trailing", "a close frame followed by a byte", "820368" + b"shutdown".hex() + "00",
         "trailing-data"),
        ("reject-delivery-close-reason", "close reason with capitals and a space", "820367" + b"Bye now".hex(),
         "malformed-delivery-frame"),
    ]:
        reject(name, desc, "delivery_decode", {"frame": hexframe}, code)
    accept("backoff-full-jitter", "retry 3 with the largest random value: min(300 s, 1 s * 2^3)", "backoff",
           {"attempt": 3, "random_u32": 2**32 - 1})
    accept("backoff-cap", "retry 12 with a random value of one half: half of the 300 s cap", "backoff",
           {"attempt": 12, "random_u32": 2**31})

    VECTORS.write()


if __name__ == "__main__":
    main()
