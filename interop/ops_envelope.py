"""Interop ops for the envelope area (spec/04-envelopes.md): `seal`, `open`, `open_layer`.

Bytes travel as lowercase hex. Every random input of sealing (ephemeral secret, IV,
PartyU nonce) is in the request, so replies are byte-reproducible and carry the
intermediates in the order an implementer computes them.
"""

from __future__ import annotations

from p2p.core import envelope as env
from p2p.core.errors import LocalError

from _adapter_util import hex_field as _hex
from _adapter_util import text_field as _text

# Reply keys of `seal`, in computation order; only those the kind produces appear.
SEAL_STEPS = ("to_be_signed", "signature", "signed", "ephemeral_public", "shared_secret", "kdf_context",
              "cek", "aad")


def _keymap(request: dict, key: str) -> dict[str, bytes]:
    raw = request.get(key) or {}
    try:
        return {kid: bytes.fromhex(h) for kid, h in raw.items()}
    except (AttributeError, TypeError, ValueError):
        raise LocalError(f"{key!r} must map kid -> hex") from None


def seal(request: dict) -> dict:
    kind = request.get("kind")
    payload = _hex(request, "payload")
    signer = pairwise = None
    if kind in ("signed", "signed+anoncrypt", "signed+authcrypt"):
        signer = env.SigningKey.from_seed(_text(request, "signer_kid"), _hex(request, "signer_seed"))
    if kind in ("authcrypt", "signed+authcrypt"):
        mine = env.AgreementKey.from_secret(_text(request, "sender_kid"), _hex(request, "sender_secret"))
        pairwise = env.PairwiseKey.derive(mine, _text(request, "recipient_kid"), _hex(request, "recipient_public"))
    trace: dict = {}
    envelope = env.seal(
        kind, payload, signer=signer, pairwise=pairwise,
        recipient_kid=request.get("recipient_kid"), recipient_public=_hex(request, "recipient_public", optional=True),
        ephemeral_secret=_hex(request, "ephemeral_secret", optional=True), iv=_hex(request, "iv", optional=True),
        nonce=_hex(request, "nonce", optional=True), sender_key_form=request.get("sender_key_form", "kid"),
        trace=trace,
    )
    reply = {k: trace[k].hex() for k in SEAL_STEPS if k in trace}
    reply["envelope"] = envelope.hex()
    return reply


def _keyring(request: dict) -> env.Keyring:
    secrets = _keymap(request, "extra_keys")
    if request.get("recipient_kid") is not None:
        secrets[request["recipient_kid"]] = _hex(request, "recipient_secret")
    return env.Keyring(
        [env.AgreementKey.from_secret(kid, s) for kid, s in secrets.items()],
        senders=_keymap(request, "known_senders"),
        signers=_keymap(request, "known_signers"),
    )


def _opt_hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def open_(request: dict) -> dict:
    opened = env.open(_hex(request, "envelope"), _keyring(request))
    return {
        "layers": list(opened.layers),
        "recipient_kid": opened.recipient_kid,
        "sender_kid": opened.sender_kid,
        "sender_public": _opt_hex(opened.sender_public),
        "signer_kid": opened.signer_kid,
        "payload": opened.plaintext.hex(),
    }


def open_layer(request: dict) -> dict:
    trace: dict = {}
    layer = env.open_one_layer(_hex(request, "envelope"), _keyring(request), trace=trace)
    reply = {k: trace[k].hex() for k in ("shared_secret", "kdf_context", "cek") if k in trace}
    reply.update(
        kind=layer.kind,
        recipient_kid=layer.recipient_kid,
        sender_kid=layer.sender_kid,
        sender_public=_opt_hex(layer.sender_public),
        signer_kid=layer.signer_kid,
        is_envelope=env.is_envelope(layer.content),
        content=layer.content.hex(),
    )
    return reply


OPS = {"seal": seal, "open": open_, "open_layer": open_layer}
