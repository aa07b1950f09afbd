"""The sans-IO protocol layer the daemon drives (spec/10, 11, 12).

One module per protocol family: `invitation` (out-of-band 2.0 invitations as signed
URLs), `connection` (connect/1.0: request, response, complete, revoke; both roles'
state machines), `trust_ping`, `discover`, `problem_report`, `ack` (DIDComm core
protocols), `delivery` (what travels inside a Noise channel), and `routing` (dispatch
of a decoded message to its protocol). `endpoint` is the p2p+tcp service URI.

Nothing here does I/O or draws randomness: times (`now`), message ids, IVs, nonces
and keys are arguments.
"""

from __future__ import annotations

import base64

from ..errors import LocalError

# Message type URIs are <doc-uri>/<protocol>/<major>.<minor>/<name> (DIDComm v2).
# DIDComm's own protocols keep their didcomm.org doc-uri; protocols p2p defines use
# P2P_DOC_URI, a name under the reserved .example domain (RFC 2606), so it can never
# collide with a protocol someone else publishes. Receivers compare it as a string.
DIDCOMM_DOC_URI = "https://didcomm.org"
P2P_DOC_URI = "https://p2p.example"

MIN_ID_RANDOM_BYTES = 16


def new_id(random: bytes) -> str:
    """A message / invitation id from >= 16 fresh random bytes: base64url without
    padding (22 characters for 16 bytes), which fits DIDComm's unreserved URI
    characters and message.py's id rule.

    The first byte's top bit is cleared so an id never begins with "-" or "_": ids are
    typed on command lines, where a leading "-" reads as an option. (One bit of the
    randomness is spent on that.)"""
    if type(random) is not bytes or not MIN_ID_RANDOM_BYTES <= len(random) <= 64:
        raise LocalError(f"an id needs {MIN_ID_RANDOM_BYTES}..64 random bytes")
    random = bytes([random[0] & 0x7F]) + random[1:]
    return base64.urlsafe_b64encode(random).rstrip(b"=").decode("ascii")
