#!/usr/bin/env python3
"""Write interop/vectors/identity/*.json from p2p's implementation.

    python interop/tools/gen_identity.py

The expected values come from our code, so tests/test_did.py checks these files
again against the did:key method's published vectors and the `did_peer_2` library.
Inputs that come from published sources say so in their description.
"""

from __future__ import annotations

import base64
import hashlib
import json

from _vectors import VectorSet  # sets up sys.path for the imports below

import base58  # noqa: E402

import ops_identity  # noqa: E402
from p2p.core import cbor  # noqa: E402
from p2p.core.errors import P2PError  # noqa: E402

VECTORS = VectorSet("identity", ops_identity.OPS)

# did:key method test vectors (w3c-ccg/did-method-key, test-vectors/ed25519-x25519.json
# and x25519.json): the public key for seed 00..00, and the first X25519 entry.
PUB_ED25519_SEED0 = base58.b58decode("4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS").hex()
PUB_X25519_PUBLISHED = base58.b58decode("4Dy8E9UaZscuPUf2GLxV44RCNL7oxmEXXkgWXaug1WKV").hex()
# did:key spec example (section "Create") and an unsupported secp256k1 did:key
# (test-vectors/secp256k1.json).
DID_KEY_SPEC_EXAMPLE = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
DID_KEY_X25519 = "did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F"
DID_KEY_SECP256K1 = "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"
# DIF peer DID method spec, "Example Peer DID 2" (decentralized-identity/peer-did-method-spec).
PEER2_SPEC_EXAMPLE = (
    "did:peer:2.Vz6Mkj3PUd1WjvaDhNZhhhXQdz5UnZXmS7ehtx8bsPpD47kKc"
    ".Ez6LSg8zQom395jKLrGiBNruB9MM6V8PWuf2FpEy4uRFiqQBR"
    ".SeyJ0IjoiZG0iLCJzIjp7InVyaSI6Imh0dHA6Ly9leGFtcGxlLmNvbS9kaWRjb21tIiwiYSI6WyJkaWRjb21tL3YyIl0sInIiOlsiZGlkOmV4YW1wbGU6MTIzNDU2Nzg5YWJjZGVmZ2hpI2tleS0xIl19fQ"
    ".SeyJ0IjoiZG0iLCJzIjp7InVyaSI6Imh0dHA6Ly9leGFtcGxlLmNvbS9hbm90aGVyIiwiYSI6WyJkaWRjb21tL3YyIl0sInIiOlsiZGlkOmV4YW1wbGU6MTIzNDU2Nzg5YWJjZGVmZ2hpI2tleS0yIl19fQ"
)


def _agent_keys() -> tuple[str, str]:
    """Fixed agent keys for p2p's own cases: Ed25519 seed and X25519 secret from SHA-256."""
    from p2p.core.keys import AgentKeys

    ak = AgentKeys.from_secrets(
        hashlib.sha256(b"p2p identity vectors: ed25519 seed").digest(),
        hashlib.sha256(b"p2p identity vectors: x25519 secret").digest(),
    )
    return ak.signing.public.hex(), ak.agreement.public.hex()


ED_PUB, X_PUB = _agent_keys()
AGENT_KEYS = [
    {"purpose": "V", "key_type": "ed25519", "public": ED_PUB},
    {"purpose": "E", "key_type": "x25519", "public": X_PUB},
]
TCP_SERVICE = {"type": "DIDCommMessaging", "serviceEndpoint": "tcp://192.0.2.10:7400"}
OBJECT_SERVICE = {
    "type": "DIDCommMessaging",
    "serviceEndpoint": {
        "uri": "p2p:mediator.example",
        "accept": ["didcomm/v2"],
        "routingKeys": [DID_KEY_X25519 + "#" + DID_KEY_X25519[8:]],
    },
}


def _call(op: str, request: dict) -> dict:
    try:
        return VECTORS.call(op, request)
    except P2PError as exc:
        return {"error": exc.code}


def _mb(prefix: bytes, raw: bytes) -> str:
    return "z" + base58.b58encode(prefix + raw).decode()


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _dirty_bits(body: str) -> str:
    """Set the lowest unused bit of the final base64url character (the bytes decode the same)."""
    assert len(body) % 4 in (2, 3)
    return body[:-1] + _B64URL[_B64URL.index(body[-1]) | 1]


def cases() -> list[tuple[str, str, str, dict, dict | None]]:
    """(name, description, op, request, cddl) in file order; expect comes from our code."""
    agent_did = _call("did_peer_2", {"keys": AGENT_KEYS, "service": TCP_SERVICE})["did"]
    ed_mk = _mb(b"\xed\x01", bytes.fromhex(ED_PUB))
    x_mk = _mb(b"\xec\x01", bytes.fromhex(X_PUB))
    svc = _b64('{"t":"dm","s":"tcp://192.0.2.10:7400"}')
    long_svc = _b64(json.dumps({"t": "dm", "s": "tcp://192.0.2.10:7400", "pad": "x" * 3200}, separators=(",", ":")))
    ed_seed0 = bytes.fromhex(PUB_ED25519_SEED0)
    not_a_point = (2**255 - 1).to_bytes(32, "little")  # y = 2^255-1 >= p: not canonical

    cose_x = cbor.dumps({1: 1, -1: 4, -2: bytes.fromhex(X_PUB)})
    return [
        ("did-key-ed25519-published", "did:key of the Ed25519 key for seed 00..00 (did:key test vector ed25519-x25519.json)",
         "did_key", {"key_type": "ed25519", "public": PUB_ED25519_SEED0}, None),
        ("did-key-x25519-published", "did:key of an X25519 key (did:key test vector x25519.json, first entry)",
         "did_key", {"key_type": "x25519", "public": PUB_X25519_PUBLISHED}, None),
        ("did-resolve-key-ed25519-spec-example", "DID document of the did:key spec's Ed25519 example, with the derived X25519 keyAgreement key",
         "did_resolve", {"did": DID_KEY_SPEC_EXAMPLE}, None),
        ("did-resolve-key-x25519", "DID document of an X25519 did:key (keyAgreement only)",
         "did_resolve", {"did": DID_KEY_X25519}, None),
        ("did-peer-2-agent-tcp", "an agent's did:peer:2: V Ed25519 (#key-1), E X25519 (#key-2), one DIDCommMessaging service with a string endpoint",
         "did_peer_2", {"keys": AGENT_KEYS, "service": TCP_SERVICE}, None),
        ("did-resolve-peer-2-agent", "DID document of the agent did:peer:2 above",
         "did_resolve", {"did": agent_did}, None),
        ("did-peer-2-object-service", "did:peer:2 with the {uri, accept, routingKeys} service endpoint form",
         "did_peer_2", {"keys": AGENT_KEYS, "service": OBJECT_SERVICE}, None),
        ("did-resolve-peer-2-spec-example", "DID document of the DIF peer DID spec's 'Example Peer DID 2' (two services: #service, #service-1)",
         "did_resolve", {"did": PEER2_SPEC_EXAMPLE}, None),
        ("did-resolve-key-peer-2-key-2", "the kid <agent did>#key-2 names the X25519 key-agreement key",
         "did_resolve_key", {"kid": agent_did + "#key-2", "expect": "x25519"}, None),
        ("did-resolve-key-derived-x25519", "the kid of the X25519 key derived from an Ed25519 did:key (seed 00..00 vector)",
         "did_resolve_key", {"kid": "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp#z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW"}, None),
        ("cose-key-ed25519", "COSE_Key of an Ed25519 public key", "cose_key",
         {"key_type": "ed25519", "public": ED_PUB}, {"cose_key": "did-cose-key"}),
        ("cose-key-x25519", "COSE_Key of an X25519 public key", "cose_key",
         {"key_type": "x25519", "public": X_PUB}, {"cose_key": "did-cose-key"}),
        ("cose-key-decode-x25519", "decoding an X25519 COSE_Key", "cose_key_decode",
         {"cose_key": cose_x.hex()}, {"cose_key": "did-cose-key"}),
        # ---- must-reject ----
        ("reject-did-key-multibase-prefix", "did:key whose multibase prefix is 'm' (base64) instead of 'z'",
         "did_resolve", {"did": "did:key:m" + base64.b64encode(b"\xed\x01" + ed_seed0).decode().rstrip("=")}, None),
        ("reject-did-key-secp256k1", "a did:key with multicodec secp256k1-pub (0xe7): not a key type p2p accepts (did:key vector secp256k1.json)",
         "did_resolve", {"did": DID_KEY_SECP256K1}, None),
        ("reject-did-key-short", "Ed25519 did:key holding 31 key bytes (last byte dropped)",
         "did_resolve", {"did": "did:key:" + _mb(b"\xed\x01", ed_seed0[:31])}, None),
        ("reject-did-key-not-a-point", "Ed25519 did:key whose 32 bytes are not a canonical curve point (y = 2^255-1)",
         "did_resolve", {"did": "did:key:" + _mb(b"\xed\x01", not_a_point)}, None),
        ("reject-did-key-x25519-small-order", "X25519 did:key of the all-zero (small-order) u-coordinate",
         "did_resolve", {"did": "did:key:" + _mb(b"\xec\x01", bytes(32))}, None),
        ("reject-did-key-bad-base58", "did:key with '0' (not in the base58btc alphabet) in the key",
         "did_resolve", {"did": DID_KEY_X25519[:20] + "0" + DID_KEY_X25519[21:]}, None),
        ("reject-not-a-did", "'key:z6Mk...' lacks the 'did:' scheme",
         "did_resolve", {"did": DID_KEY_SPEC_EXAMPLE[4:]}, None),
        ("reject-unsupported-method", "did:web is not a method p2p resolves",
         "did_resolve", {"did": "did:web:example.com"}, None),
        ("reject-peer-2-bad-base64", "did:peer:2 service element with '+' and '/' (standard base64, not base64url)",
         "did_resolve", {"did": f"did:peer:2.V{ed_mk}.E{x_mk}.SeyJ0Ijoi+G0iLCJzIjoi/GNwOi8vIn0"}, None),
        ("reject-peer-2-base64-padding-bits", "did:peer:2 service whose last base64url character has non-zero unused bits",
         "did_resolve", {"did": f"did:peer:2.V{ed_mk}.E{x_mk}.S{_dirty_bits(svc)}"}, None),
        ("reject-peer-2-unknown-purpose", "did:peer:2 element with purpose code 'X'",
         "did_resolve", {"did": f"did:peer:2.V{ed_mk}.X{x_mk}"}, None),
        ("reject-peer-2-agreement-ed25519", "did:peer:2 whose E (key agreement) element holds an Ed25519 key",
         "did_resolve", {"did": f"did:peer:2.V{ed_mk}.E{ed_mk}"}, None),
        ("reject-peer-2-service-not-object", "did:peer:2 service that decodes to a JSON array",
         "did_resolve", {"did": f"did:peer:2.V{ed_mk}.E{x_mk}.S{_b64('[1,2]')}"}, None),
        ("reject-peer-2-too-long", "did:peer:2 of more than 4096 characters (a padded service)",
         "did_resolve", {"did": f"did:peer:2.V{ed_mk}.E{x_mk}.S{long_svc}"}, None),
        ("reject-peer-2-no-keys", "did:peer:2 with a service but no key",
         "did_resolve", {"did": f"did:peer:2.S{svc}"}, None),
        ("reject-resolve-key-out-of-range", "kid #key-3 of a did:peer:2 that has two keys",
         "did_resolve_key", {"kid": agent_did + "#key-3"}, None),
        ("reject-resolve-key-wrong-type", "a signing kid (expect ed25519) naming the X25519 #key-2",
         "did_resolve_key", {"kid": agent_did + "#key-2", "expect": "ed25519"}, None),
        ("reject-did-key-ed25519-31-bytes", "did_key of a 31-byte Ed25519 public key",
         "did_key", {"key_type": "ed25519", "public": PUB_ED25519_SEED0[:62]}, None),
        ("reject-cose-key-wrong-crv", "COSE_Key with crv 6 (Ed25519) replaced by 5 (X448)",
         "cose_key_decode", {"cose_key": cbor.dumps({1: 1, -1: 5, -2: bytes.fromhex(ED_PUB)}).hex()}, None),
        ("reject-cose-key-wrong-kty", "COSE_Key with kty 2 (EC2) instead of 1 (OKP)",
         "cose_key_decode", {"cose_key": cbor.dumps({1: 2, -1: 4, -2: bytes.fromhex(X_PUB)}).hex()}, None),
        ("reject-cose-key-short-x", "X25519 COSE_Key whose x has 31 bytes",
         "cose_key_decode", {"cose_key": cbor.dumps({1: 1, -1: 4, -2: bytes.fromhex(X_PUB)[:31]}).hex()}, None),
        ("reject-cose-key-private", "COSE_Key that also carries the private key d (-4)",
         "cose_key_decode", {"cose_key": cbor.dumps({1: 1, -1: 6, -2: bytes.fromhex(ED_PUB), -4: bytes(32)}).hex()}, None),
        ("reject-cose-key-x25519-noncanonical", "X25519 COSE_Key whose x has the top bit set (a second spelling of u)",
         "cose_key_decode", {"cose_key": cbor.dumps({1: 1, -1: 4, -2: bytes(31) + b"\x80"}).hex()}, None),
    ]


def main() -> None:
    for name, description, op, request, cddl in cases():
        reply = _call(op, request)
        reject = "error" in reply
        if reject != name.startswith("reject-"):
            raise SystemExit(f"{name}: unexpected outcome {reply}")
        expect = {"error": reply["error"]} if reject else reply
        VECTORS.add(name, description, op, request, expect, reject=reject, cddl=cddl)
    VECTORS.write(ensure_ascii=False)


if __name__ == "__main__":
    main()
