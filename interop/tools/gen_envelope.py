#!/usr/bin/env python3
"""Write interop/vectors/envelope/*.json from p2p's implementation.

Independent checks: tests/test_cose.py opens every `seal` vector's envelope with pycose
(and checks every `open` vector that pycose can open), and reproduces the cose-wg/Examples
cases byte for byte; vector 020 *is* a cose-wg example (eddsa-sig-01), vector 021 another
(x25519-ss-hkdf-256-direct, refused for its A128GCM content algorithm).

Must-reject cases are made by changing one thing in a valid envelope; the change is
named in each description.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from _vectors import VectorSet  # sets up sys.path for the imports below

import cbor2  # noqa: E402

import ops_envelope  # noqa: E402
from p2p.core import cbor  # noqa: E402
from p2p.core import envelope as env  # noqa: E402



def secret(label: str) -> bytes:
    return hashlib.sha256(b"p2p envelope vectors: " + label.encode()).digest()


ALICE_DID = "did:peer:2.Ez6LSalice.Vz6MkAlice"
BOB_DID = "did:peer:2.Ez6LSbob.Vz6MkBob"
MALLORY_DID = "did:peer:2.Ez6LSmallory.Vz6MkMallory"
ALICE = env.AgreementKey.from_secret(ALICE_DID + "#key-1", secret("alice x25519"))
ALICE_SIG = env.SigningKey.from_seed(ALICE_DID + "#key-2", secret("alice ed25519"))
BOB = env.AgreementKey.from_secret(BOB_DID + "#key-1", secret("bob x25519"))
MALLORY = env.AgreementKey.from_secret(MALLORY_DID + "#key-1", secret("mallory x25519"))
MALLORY_SIG = env.SigningKey.from_seed(MALLORY_DID + "#key-2", secret("mallory ed25519"))
RELAY = env.AgreementKey.from_secret("did:key:z6LSrelay#z6LSrelay", secret("relay x25519"))

PAYLOAD = cbor.dumps({"id": "1", "type": "https://didcomm.org/basicmessage/2.0/message",
                      "from": ALICE_DID, "to": [BOB_DID], "body": {"content": "hello Bob"}})
EPH = secret("ephemeral 1")
IV = bytes.fromhex("000102030405060708090a0b")
NONCE = secret("partyu nonce 1")  # 32 bytes, as p2p emits

VECTORS = VectorSet("envelope", ops_envelope.OPS)


def seal_request(kind: str, *, payload: bytes = PAYLOAD, sender: env.AgreementKey = ALICE,
                 signer: env.SigningKey = ALICE_SIG, recipient: env.AgreementKey = BOB, nonce: bytes = NONCE,
                 form: str = "kid") -> dict:
    req = {"kind": kind, "payload": payload.hex()}
    if kind.startswith("signed"):
        req.update(signer_kid=signer.kid, signer_seed=signer.seed.hex())
    if kind != "signed":
        req.update(recipient_kid=recipient.kid, recipient_public=recipient.public.hex(), iv=IV.hex())
    if kind.endswith("authcrypt"):
        req.update(sender_kid=sender.kid, sender_secret=sender.secret.hex(), nonce=nonce.hex(),
                   sender_key_form=form)
    if kind.endswith("anoncrypt"):
        req["ephemeral_secret"] = EPH.hex()
    return req


def sealed(kind: str, **kw) -> bytes:
    return bytes.fromhex(ops_envelope.seal(seal_request(kind, **kw))["envelope"])


def add_seal(name: str, description: str, **kw) -> None:
    kind = kw.pop("kind")
    req = seal_request(kind, **kw)
    reply = ops_envelope.seal(dict(req))
    cddl = {"envelope": "cose-sign1" if kind == "signed" else "cose-encrypt"}
    for key, rule in (("to_be_signed", "cose-sig-structure"), ("signed", "cose-sign1"),
                      ("kdf_context", "cose-kdf-context"), ("aad", "cose-enc-structure")):
        if key in reply:
            cddl[key] = rule
    VECTORS.add(name, description, "seal", req, reply, cddl=cddl)


def open_request(envelope: bytes, *, recipient: env.AgreementKey | None = BOB, senders=None, signers=None,
                 extra=None) -> dict:
    req = {"envelope": envelope.hex()}
    if recipient is not None:
        req.update(recipient_kid=recipient.kid, recipient_secret=recipient.secret.hex())
    if extra:
        req["extra_keys"] = {k.kid: k.secret.hex() for k in extra}
    req["known_senders"] = {k: v.hex() for k, v in (senders if senders is not None
                                                     else {ALICE.kid: ALICE.public}).items()}
    req["known_signers"] = {k: v.hex() for k, v in (signers if signers is not None
                                                     else {ALICE_SIG.kid: ALICE_SIG.public}).items()}
    return req


def add_open(name: str, description: str, envelope: bytes, *, op: str = "open", ours: bool = True, **kw) -> None:
    req = open_request(envelope, **kw)
    VECTORS.add(name, description, op, req, VECTORS.call(op, req),
                cddl={"envelope": "cose-envelope"} if ours else None)


def add_reject(name: str, description: str, envelope: bytes, code: str, **kw) -> None:
    req = open_request(envelope, **kw)
    VECTORS.reject(name, description, "open", req, code)


def mutable(value):
    if isinstance(value, cbor2.CBORTag):
        return cbor2.CBORTag(value.tag, mutable(value.value))
    if isinstance(value, (list, tuple)):
        return [mutable(v) for v in value]
    if isinstance(value, Mapping):  # cbor2 decodes nested maps as (immutable) frozendicts
        return {k: mutable(v) for k, v in value.items()}
    return value


def edit(envelope: bytes, change) -> bytes:
    """Decode, apply `change` to the mutable structure, re-encode deterministically."""
    value = mutable(cbor2.loads(envelope))
    change(value.value)
    return cbor.dumps(value)


def flip(b: bytes, i: int = 0) -> bytes:
    return b[:i] + bytes((b[i] ^ 0x01,)) + b[i + 1:]


# --- seal ------------------------------------------------------------------------

add_seal("001-seal-signed", "COSE_Sign1, EdDSA, kid in the protected header", kind="signed")
add_seal("002-seal-anoncrypt", "COSE_Encrypt, ECDH-ES+HKDF-256 with X25519, ChaCha20/Poly1305", kind="anoncrypt")
add_seal("003-seal-authcrypt-kid", "COSE_Encrypt, ECDH-SS+HKDF-256, sender named by key id (-3), 32-byte PartyU nonce",
         kind="authcrypt")
add_seal("004-seal-authcrypt-key", "authcrypt with the sender's full static COSE_Key (-2, kid inside)",
         kind="authcrypt", form="key")
add_seal("005-seal-signed-authcrypt", "sign then authcrypt: the encrypted payload is the tagged COSE_Sign1",
         kind="signed+authcrypt")
add_seal("006-seal-signed-anoncrypt", "sign then anoncrypt: the signature is the only sender authentication",
         kind="signed+anoncrypt")
add_seal("007-seal-authcrypt-empty", "authcrypt of an empty payload: ciphertext is just the 16-byte tag",
         kind="authcrypt", payload=b"")
add_seal("008-seal-authcrypt-nonce-16", "authcrypt with the shortest PartyU nonce allowed (16 bytes)",
         kind="authcrypt", nonce=NONCE[:16])
add_seal("009-seal-authcrypt-nonce-64", "authcrypt with the longest PartyU nonce allowed (64 bytes)",
         kind="authcrypt", nonce=NONCE + secret("partyu nonce 2"))
LONG_SIGNER = env.SigningKey.from_seed(
    "did:peer:2.Ez6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc.Vz6MkqRYqQiSgvZQdnBytw86Qbs2ZWUkGv22od935YF4s8M7V"
    ".SeyJ0IjoiZG0iLCJzIjp7InVyaSI6Imh0dHBzOi8vZXhhbXBsZS5jb20vZW5kcG9pbnQiLCJhIjpbImRpZGNvbW0vdjIiXX19#key-2",
    secret("long ed25519"))
add_seal("010-seal-signed-long-kid", "a did:peer:2 kid with an inline service: kid is its UTF-8 bytes",
         kind="signed", signer=LONG_SIGNER)

# --- open ------------------------------------------------------------------------

add_open("011-open-signed", "open a COSE_Sign1: signer from the protected kid", sealed("signed"))
add_open("012-open-anoncrypt", "open an anoncrypt envelope: no sender", sealed("anoncrypt"))
add_open("013-open-authcrypt-kid", "open authcrypt: -3 sender key id resolved via known_senders",
         sealed("authcrypt"))
add_open("014-open-authcrypt-key-known", "open authcrypt with a -2 key whose kid is known with that key",
         sealed("authcrypt", form="key"))
add_reject("015-reject-authcrypt-key-unknown", "authcrypt with a -2 key whose kid is not in known_senders: "
           "a kid inside -2 is only a claim", sealed("authcrypt", form="key"), "unknown-sender", senders={})
add_open("016-open-signed-authcrypt", "open sign-then-authcrypt: signer DID equals sender DID",
         sealed("signed+authcrypt"))
add_open("017-open-signed-anoncrypt", "open sign-then-anoncrypt", sealed("signed+anoncrypt"))
INNER = sealed("signed+authcrypt")
RELAYED = env.seal_for_relay(INNER, relay_kid=RELAY.kid, relay_public=RELAY.public,
                             ephemeral_secret=secret("ephemeral relay"), iv=bytes(range(12, 24)))
add_open("018-open-relayed", "open an anoncrypt-for-a-relay around sign-then-authcrypt holding both keys: "
         "three layers", RELAYED, extra=[RELAY])
add_open("019-open-layer-relay-peel", "a relay peels exactly one layer; the content is the inner envelope",
         RELAYED, op="open_layer", recipient=RELAY)
EDDSA_SIG_01 = bytes.fromhex(  # cose-wg/Examples eddsa-examples/eddsa-sig-01.json
    "D28445A201270300A10442313154546869732069732074686520636F6E74656E742E58407142FD2FF96D56DB85BEE905A76BA1D0"
    "B7321A95C8C4D3607C5781932B7AFB8711497DFA751BF40B58B3BCC32300B1487F3DB34085EEF013BF08F4A44D6FEF0D")
add_open("020-open-cose-wg-eddsa-sig-01", "the COSE WG's Ed25519 COSE_Sign1 example (kid '11' unprotected, "
         "content type 0 protected)", EDDSA_SIG_01, recipient=None, senders={},
         signers={"11": bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")},
         ours=False)

# --- must reject -------------------------------------------------------------------

X25519_SS = bytes.fromhex(  # cose-wg/Examples X25519-tests/x25519-ss-hkdf-256-direct.json
    "D8608443A10101A1054CCDA8E5632E1501A698960E2B582460F0E32B4E511A964DFA671D95F00463D094EDC3FCB3DF782C0EDEDDD94"
    "36FB8CC79F482818344A101381AA3224C5832353531392D616C696365044A5832353531392D626F6235584060"
    "7A92A41974DF0CB967E1C395B21F557469379E011781B6BE9189F40ADFECE4715AB87A79B36FB20913240FBB833FAB14B6A72A232A"
    "3CB18D1996A16256E44540")
bob_ex = env.AgreementKey.from_secret("X25519-bob", bytes.fromhex(
    "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
add_reject("021-reject-cose-wg-x25519-ss-a128gcm", "the COSE WG's X25519 ECDH-SS example: well formed, but its "
           "content algorithm is A128GCM (1), not ChaCha20/Poly1305", X25519_SS, "unsupported-algorithm",
           recipient=bob_ex, senders={"X25519-alice": bytes.fromhex(
               "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")})

AUTH = sealed("authcrypt")
ANON = sealed("anoncrypt")
SIGNED = sealed("signed")


def _ct(v):
    v[2] = flip(v[2], 5)


def _iv(v):
    v[1][5] = flip(v[1][5], 0)


def _eph(v):
    v[3][0][1][-1][-2] = flip(v[3][0][1][-1][-2], 3)


def _nonce(v):
    v[3][0][1][-22] = flip(v[3][0][1][-22], 7)


def _rkid(v):
    v[3][0][1][4] = v[3][0][1][4].replace(b"bob", b"bib")


def _skid(v):
    v[3][0][1][-3] = v[3][0][1][-3].replace(b"key-1", b"key-9")


def _sig(v):
    v[3] = flip(v[3], 10)


def _payload(v):
    v[2] = flip(v[2], len(v[2]) - 1)


def _sig_kid(v):
    v[0] = cbor.dumps({1: -8, 4: (ALICE_DID + "#key-3").encode()})


add_reject("022-reject-tampered-ciphertext", "authcrypt with one ciphertext bit flipped", edit(AUTH, _ct),
           "decryption-failed")
add_reject("023-reject-tampered-iv", "authcrypt with one IV bit flipped", edit(AUTH, _iv), "decryption-failed")
add_reject("024-reject-tampered-ephemeral", "anoncrypt with one bit of the ephemeral public key flipped",
           edit(ANON, _eph), "decryption-failed")
add_reject("025-reject-tampered-nonce", "authcrypt with one bit of the PartyU nonce flipped (changes the CEK)",
           edit(AUTH, _nonce), "decryption-failed")
add_reject("026-reject-tampered-recipient-kid", "authcrypt whose recipient kid was changed", edit(AUTH, _rkid),
           "wrong-recipient")
add_reject("027-reject-tampered-sender-kid", "authcrypt whose -3 sender key id names a key we do not know",
           edit(AUTH, _skid), "unknown-sender")
add_reject("028-reject-tampered-signature", "COSE_Sign1 with one signature bit flipped", edit(SIGNED, _sig),
           "bad-signature")
add_reject("029-reject-tampered-payload", "COSE_Sign1 with one payload bit flipped", edit(SIGNED, _payload),
           "bad-signature")
add_reject("030-reject-tampered-signer-kid", "COSE_Sign1 whose protected kid names another key",
           edit(SIGNED, _sig_kid), "unknown-sender")
add_reject("031-reject-truncated", "authcrypt envelope missing its last byte", AUTH[:-1], "truncated")
add_reject("032-reject-trailing", "authcrypt envelope followed by one extra byte", AUTH + b"\x00", "trailing-data")
add_reject("033-reject-bad-cbor", "a reserved additional-information value (0x1c) where the envelope's "
           "first item should be", b"\xd8\x60\x84\x5c" + AUTH[4:], "malformed-cbor")
add_reject("034-reject-wrong-recipient", "authcrypt for Bob opened by Mallory: the recipient kid is not hers",
           AUTH, "wrong-recipient", recipient=MALLORY)
add_reject("035-reject-wrong-secret", "Bob's kid but another secret: the ECDH result differs",
           AUTH, "decryption-failed",
           recipient=env.AgreementKey(BOB.kid, MALLORY.secret, MALLORY.public))
add_reject("036-reject-unknown-sender", "authcrypt from a sender not in known_senders", AUTH, "unknown-sender",
           senders={})
add_reject("037-reject-unknown-signer", "COSE_Sign1 from a signer not in known_signers", SIGNED, "unknown-sender",
           signers={})


def _ralg(v):
    v[3][0][0] = cbor.dumps({1: -26})  # ECDH-ES+HKDF-512


def _calg(v):
    v[0] = cbor.dumps({1: 3})  # A256GCM


def _crv(v):
    v[3][0][1][-1][-1] = 6  # Ed25519 where X25519 is due


add_reject("038-reject-recipient-alg", "anoncrypt whose recipient alg is ECDH-ES+HKDF-512 (-26)",
           edit(ANON, _ralg), "unsupported-algorithm")
add_reject("039-reject-content-alg", "anoncrypt whose content alg is A256GCM (3)", edit(ANON, _calg),
           "unsupported-algorithm")
add_reject("040-reject-ephemeral-crv", "anoncrypt whose ephemeral COSE_Key says crv Ed25519 (6)",
           edit(ANON, _crv), "unsupported-algorithm")
MISMATCH = env.seal_authcrypt(env.seal_signed(PAYLOAD, MALLORY_SIG), env.PairwiseKey.derive(ALICE, BOB.kid, BOB.public),
                              iv=IV, nonce=NONCE)
add_reject("041-reject-sender-mismatch", "authcrypt by Alice around a COSE_Sign1 by Mallory", MISMATCH,
           "sender-mismatch", signers={ALICE_SIG.kid: ALICE_SIG.public, MALLORY_SIG.kid: MALLORY_SIG.public})


def _two(v):
    v[3].append(v[3][0])


def _untag(v):
    pass


def _iv8(v):
    v[1][5] = v[1][5][:8]


def _low(v):
    v[3][0][1][-1][-2] = bytes(32)  # u = 0: a point of small order


def _crit(v):
    v[0] = cbor.dumps({1: 24, 2: [99], 99: 1})


def _no_nonce(v):
    del v[3][0][1][-22]


def _alg_unprotected(v):
    v[0] = b""
    v[1][1] = 24


def _private(v):
    v[3][0][1][-1][-4] = EPH


add_reject("042-reject-two-recipients", "anoncrypt with its recipient listed twice", edit(ANON, _two),
           "malformed-envelope")
add_reject("043-reject-untagged", "the same COSE_Encrypt without tag 96", cbor.dumps(cbor2.loads(ANON).value),
           "malformed-envelope")
add_reject("044-reject-iv-length", "authcrypt with an 8-byte IV", edit(AUTH, _iv8), "malformed-envelope")
add_reject("045-reject-low-order-ephemeral", "anoncrypt whose ephemeral key is u = 0 (small order)",
           edit(ANON, _low), "invalid-key")
deep = PAYLOAD
for i in range(5):
    deep = env.seal_anoncrypt(deep, recipient_kid=BOB.kid, recipient_public=BOB.public,
                              ephemeral_secret=secret(f"deep {i}"), iv=IV)
add_reject("046-reject-too-deep", "five nested anoncrypt layers (the limit is 4)", deep, "malformed-envelope")
add_reject("047-reject-crit", "content layer marks an unknown header (99) critical", edit(ANON, _crit),
           "malformed-envelope")
add_reject("048-reject-ss-without-nonce", "authcrypt without the PartyU nonce (-22)", edit(AUTH, _no_nonce),
           "malformed-envelope")
IMPOSTOR = env.seal_authcrypt(PAYLOAD, env.PairwiseKey.derive(
    env.AgreementKey(ALICE.kid, MALLORY.secret, MALLORY.public), BOB.kid, BOB.public),
    iv=IV, nonce=NONCE, sender_key_form="key")
add_reject("049-reject-key-differs-from-known", "authcrypt with a -2 key claiming Alice's kid but holding "
           "Mallory's key", IMPOSTOR, "unknown-sender")
add_reject("050-reject-alg-unprotected", "content alg moved to the unprotected header", edit(ANON, _alg_unprotected),
           "malformed-envelope")
DOUBLE = env.seal_authcrypt(AUTH, env.PairwiseKey.derive(ALICE, BOB.kid, BOB.public), iv=IV, nonce=NONCE)
add_reject("051-reject-two-authcrypt", "authcrypt inside authcrypt: at most one authcrypt layer", DOUBLE,
           "malformed-envelope")
add_reject("052-reject-private-key", "anoncrypt whose ephemeral COSE_Key also carries d (-4)", edit(ANON, _private),
           "malformed-envelope")


def main() -> None:
    VECTORS.write(numbered=False)  # names carry their numbers


if __name__ == "__main__":
    main()
