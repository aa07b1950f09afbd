#!/usr/bin/env python3
"""Write interop/vectors/message/*.json from p2p's implementation.

The vectors are checked independently: tests/test_interop.py validates every CBOR value
against spec/cddl, and the deterministic-encoding vectors were checked by hand against
RFC 8949 section 4.2.1 ordering.
"""

from __future__ import annotations

from _vectors import VectorSet  # sets up sys.path for the imports below

import cbor2  # noqa: E402

import ops_message  # noqa: E402
from p2p.core import cbor, message  # noqa: E402

PING = "https://didcomm.org/trust-ping/2.0/ping"
ALICE = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
BOB = "did:key:z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc"

VECTORS = VectorSet("message", ops_message.OPS)


def accept(name, description, msg_json, *, now=None):
    request = {"message": msg_json}
    encoded = VECTORS.accept(f"{name}-encode", description, "message_encode", request,
                             cddl={"cbor": "msg-message"})["cbor"]
    dec_req = {"cbor": encoded}
    if now is not None:
        dec_req["now"] = now
    VECTORS.accept(f"{name}-decode", description + " (decoded back)", "message_decode", dec_req,
                   cddl={"cbor": "msg-message"})


def reject(name, description, raw: bytes, code: str, **extra):
    req = {"cbor": raw.hex(), **extra}
    VECTORS.reject(name, description, "message_decode", req, code)


def base(**fields):
    m = {"id": "1", "type": PING, "body": {}}
    m.update(fields)
    return {k: v for k, v in m.items() if v is not None}


accept("minimal", "the smallest valid message: id, type, empty body", base())
accept("ping", "a trust ping with every header field set; shows key order is bytewise (shorter names first)",
       base(id="ping-7f3a", body={"response_requested": True}, **{"from": ALICE}, to=[BOB],
            thid="thread-1", pthid="parent-1", created_time=1764320000, expires_time=1764323600),
       now=1764320100)
accept("attachments", "one attachment of each data form: inline bytes, links + hash, embedded cbor",
       base(id="att", attachments=[
           {"id": "a", "media_type": "text/plain", "data": {"bytes": {"hex": "68656c6c6f"}}},
           {"id": "b", "filename": "manual.pdf", "byte_count": 1024,
            "data": {"links": ["https://example.com/manual.pdf"], "hash": {"hex": "11" * 32}}},
           {"id": "c", "data": {"cbor": {"serial": "SN-1", "model": "X1"}}},
       ]))
accept("body-order", "body keys in bytewise order of their encodings, whatever order the writer used",
       base(id="order", body={"zz": 1, "b": 2, "aaa": 3, "a": -1, "bb": [1, 2, 3]}))
accept("extension", "an unknown non-critical field is kept and ignored", base(id="ext", **{"x-trace": "abc"}))

good = cbor.dumps(base())
reject("reject-missing-id", "field id removed", cbor.dumps({"type": PING, "body": {}}), "missing-field")
reject("reject-missing-type", "field type removed", cbor.dumps({"id": "1", "body": {}}), "missing-field")
reject("reject-missing-body", "field body removed", cbor.dumps({"id": "1", "type": PING}), "missing-field")
reject("reject-id-not-text", "id is an integer", cbor.dumps(base(id=1)), "invalid-field")
reject("reject-type-not-uri", "type is not a protocol message type URI", cbor.dumps(base(type="ping")), "invalid-field")
reject("reject-body-array", "body is an array", cbor.dumps(base(body=[])), "invalid-field")
reject("reject-from-not-did", "from is not a DID", cbor.dumps(base(**{"from": "alice@example.com"})), "invalid-field")
reject("reject-time-negative", "created_time is negative", cbor.dumps(base(created_time=-5)), "invalid-field")
reject("reject-expiry-before-creation", "expires_time before created_time",
       cbor.dumps(base(created_time=100, expires_time=50)), "invalid-field")
reject("reject-unknown-critical", "crit names a field the receiver does not understand",
       cbor.dumps(base(crit=["x-must-understand"], **{"x-must-understand": 1})), "unknown-critical-field")
reject("reject-expired", "expires_time has passed at `now`",
       cbor.dumps(base(created_time=1000, expires_time=2000)), "message-expired", now=2000)
reject("reject-clock-skew", "created_time is more than 300 s ahead of `now`",
       cbor.dumps(base(created_time=10_000)), "clock-skew", now=10_000 - 301)
reject("reject-truncated", "last byte removed", good[:-1], "truncated")
reject("reject-trailing", "a zero byte appended", good + b"\x00", "trailing-data")
reject("reject-duplicate-key", "the map repeats the key \"id\" (a map of four entries, two of them named id)",
       bytes.fromhex("a4") + cbor2.dumps("id") + cbor2.dumps("1") + cbor2.dumps("id") + cbor2.dumps("2")
       + cbor2.dumps("body") + b"\xa0" + cbor2.dumps("type") + cbor2.dumps(PING), "malformed-cbor")
reject("reject-bad-cbor", "a lone break code", b"\xff", "malformed-cbor")
reject("reject-not-map", "a CBOR array instead of a map", cbor.dumps(["1", PING, {}]), "invalid-message")
reject("reject-oversized", "a message whose body holds 262144 bytes, over the 262144-byte message limit",
       cbor2.dumps({**base(), "body": {"x": bytes(message.MAX_MESSAGE_BYTES)}}), "too-large")
reject("reject-attachment-link-without-hash", "an attachment by link has no hash",
       cbor.dumps(base(attachments=[{"id": "a", "data": {"links": ["https://example.com/x"]}}])), "missing-field")


def main() -> None:
    VECTORS.write()


if __name__ == "__main__":
    main()
