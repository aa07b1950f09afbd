"""The DIDComm v2 side of bench/envelopes.py: times `didcomm` 0.3.2 (the DIF Python
library) doing the jobs p2p's envelopes do, and prints one JSON object on stdout.

It runs in its own venv (bench/.venv-didcomm, made by envelopes.py) because didcomm
0.3.2 pins attrs<23 and packaging<24, which the project's own environment cannot
have. It is a benchmark peer, not project code: asyncio is fine here.

Jobs, 1 KiB message body, one recipient, keys resolved from memory:
  authcrypt         pack_encrypted(frm=alice) + unpack (ECDH-1PU+A256KW, A256CBC-HS512,
                    the library's default authcrypt algorithm)
  authcrypt_signed  pack_encrypted(frm=alice, sign_frm=alice) + unpack (EdDSA JWS inside)
Keys: X25519 JWKs for key agreement, Ed25519 JWKs for signing (JsonWebKey2020).
Forwarding is off and the DID docs have no services, so nothing but the envelope
work is timed.

    python didcomm_peer.py --iterations 200 --body-bytes 1024
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from importlib.metadata import version

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _timing  # noqa: E402  (shared with envelopes.py; stdlib only)

from didcomm.common.resolvers import ResolversConfig  # noqa: E402
from didcomm.did_doc.did_doc import DIDDoc  # noqa: E402
from didcomm.did_doc.did_resolver_in_memory import DIDResolverInMemory  # noqa: E402
from didcomm.message import Message  # noqa: E402
from didcomm.pack_encrypted import PackEncryptedConfig, pack_encrypted  # noqa: E402
from didcomm.secrets.secrets_resolver_in_memory import SecretsResolverInMemory  # noqa: E402
from didcomm.secrets.secrets_util import (  # noqa: E402
    generate_ed25519_keys_as_jwk_dict,
    generate_x25519_keys_as_jwk_dict,
    jwk_to_secret,
)
from didcomm.unpack import unpack  # noqa: E402

ALICE = "did:example:alice"
BOB = "did:example:bob"


def _party(did: str) -> tuple[dict, list]:
    """A DID doc with one X25519 keyAgreement key and one Ed25519 authentication key,
    and the matching secrets."""
    x_priv, x_pub = generate_x25519_keys_as_jwk_dict()
    e_priv, e_pub = generate_ed25519_keys_as_jwk_dict()
    x_kid, e_kid = f"{did}#key-x25519-1", f"{did}#key-ed25519-1"
    x_priv["kid"], e_priv["kid"] = x_kid, e_kid
    doc = DIDDoc.deserialize({
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "verificationMethod": [
            {"id": x_kid, "type": "JsonWebKey2020", "controller": did, "publicKeyJwk": x_pub},
            {"id": e_kid, "type": "JsonWebKey2020", "controller": did, "publicKeyJwk": e_pub},
        ],
        "keyAgreement": [x_kid],
        "authentication": [e_kid],
    })
    return doc, [jwk_to_secret(x_priv), jwk_to_secret(e_priv)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--passes", type=int, default=_timing.PASSES)
    ap.add_argument("--body-bytes", type=int, default=1024)
    args = ap.parse_args()
    pin_note = _timing.pin_single_core()
    n = args.iterations

    alice_doc, alice_secrets = _party(ALICE)
    bob_doc, bob_secrets = _party(BOB)
    did_resolver = DIDResolverInMemory([alice_doc, bob_doc])
    sender = ResolversConfig(SecretsResolverInMemory(alice_secrets), did_resolver)
    receiver = ResolversConfig(SecretsResolverInMemory(bob_secrets), did_resolver)
    config = PackEncryptedConfig(forward=False)
    body = {"content": "x" * args.body_bytes}
    message = Message(id="1234567890", type="https://didcomm.org/basicmessage/2.0/message",
                      body=body, frm=ALICE, to=[BOB], created_time=1_700_000_000)
    loop = asyncio.new_event_loop()

    async def pack_all(sign: bool) -> list[str]:
        sign_frm = ALICE if sign else None
        return [(await pack_encrypted(sender, message, to=BOB, frm=ALICE, sign_frm=sign_frm,
                                      pack_config=config)).packed_msg for _ in range(n)]

    async def unpack_all(packed: list[str]) -> list:
        return [await unpack(receiver, p) for p in packed]

    results = {}
    for job, sign in (("authcrypt", False), ("authcrypt_signed", True)):
        loop.run_until_complete(unpack_all(loop.run_until_complete(pack_all(sign))[:3]))  # warm-up
        pack_ns, unpack_ns = [], []
        for _ in range(args.passes):
            t_pack, packed = _timing.timed(lambda: loop.run_until_complete(pack_all(sign)))
            t_unpack, opened = _timing.timed(lambda: loop.run_until_complete(unpack_all(packed)))
            # unpack() leaves an async generator unfinished; let its aclose() run
            # now, outside the timed region, rather than inside the next pass.
            loop.run_until_complete(asyncio.sleep(0))
            pack_ns.append(t_pack)
            unpack_ns.append(t_unpack)
            # Compare real work: the receiver got the message back, authenticated
            # (and signed, for the second job), not an error or a short cut.
            for res in (opened[0], opened[-1]):
                assert res.message.body == body and res.message.frm == ALICE, "unpack lost the message"
                assert res.metadata.encrypted and res.metadata.authenticated
                assert res.metadata.non_repudiation == sign
        # Per pass (us/op); envelopes.py runs one pass at a time and takes medians.
        results[job] = {
            "pack_us": [t / n / 1000 for t in pack_ns],
            "unpack_us": [t / n / 1000 for t in unpack_ns],
            "total_us": [(p + u) / n / 1000 for p, u in zip(pack_ns, unpack_ns)],
            "envelope_bytes": len(packed[0]),
        }
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    print(json.dumps({
        "library": "didcomm", "version": version("didcomm"), "python": sys.version.split()[0],
        # The crypto underneath didcomm is not pinned by it: say what ran.
        "dependencies": {d: version(d) for d in ("authlib", "cryptography", "pycryptodomex")},
        "iterations": n, "passes": args.passes, "affinity": pin_note, "jobs": results,
    }))


if __name__ == "__main__":
    main()
