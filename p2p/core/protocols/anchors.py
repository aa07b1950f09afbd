"""Trust anchors for DIDs that certify themselves.

A did:peer:2 (or did:key) kid carries its public key, so "knowing" such a sender needs
no prior state: the key is read from the kid. envelope.Keyring takes its `senders` and
`signers` as Mappings; these resolve on lookup. Use them only where p2p accepts
strangers (an invitation's signer, a connect request's sender): everywhere else the
keyring must list exactly the relationship's keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .. import did
from ..errors import InvalidDID, InvalidKey
from ..keys import KeyType


class SelfCertifying(Mapping[str, bytes]):
    """kid -> raw public key of `key_type`, for every kid that resolves by itself.
    A kid that does not resolve (bad syntax, wrong key type) is simply absent, so the
    envelope layer reports `unknown-sender` for it."""

    __slots__ = ("key_type",)

    def __init__(self, key_type: KeyType) -> None:
        self.key_type = key_type

    def __getitem__(self, kid: str) -> bytes:
        try:
            return did.resolve_key(kid, self.key_type).raw
        except (InvalidDID, InvalidKey):
            raise KeyError(kid) from None

    def __iter__(self) -> Iterator[str]:  # the set of all resolvable kids is not enumerable
        return iter(())

    def __len__(self) -> int:
        return 0


SIGNERS = SelfCertifying(KeyType.ED25519)
SENDERS = SelfCertifying(KeyType.X25519)
