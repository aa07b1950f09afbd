"""Secret blobs at rest: sealed under a passphrase, or explicitly not.

A sealed blob is a small versioned CBOR map, self-contained so that any one
blob can be opened with the passphrase alone:

    {"v": 1, "kdf": "argon2id13", "salt": bstr .size 16, "opslimit": uint,
     "memlimit": uint, "check": bstr .size 16, "nonce": bstr .size 24, "ct": bstr}
    {"v": 1, "kdf": "none", "pt": bstr}

master = Argon2id13(passphrase, salt, opslimit, memlimit) -> 32 bytes
key    = BLAKE2b-256(key=master, person="p2p-kf-encrypt")
check  = BLAKE2b-128(key=master, person="p2p-kf-check")
ct     = XChaCha20-Poly1305(key, nonce, plaintext, aad=CBOR [v, kdf, salt, opslimit, memlimit, check])

`check` exists only to tell "wrong passphrase" from "file damaged": both would
otherwise be the same AEAD failure. It gives an attacker nothing the ciphertext
does not already give (each guess still costs one Argon2id run).

Argon2id is slow on purpose (MODERATE: ~0.7 s, 256 MiB), so a `Sealer` derives the
key once per salt and reuses it: the identity and every pairwise key blob of one
agent share one salt and one derivation, each with its own random 24-byte nonce.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import unicodedata
from pathlib import Path

import nacl.bindings as nb
import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.utils

from p2p.core import cbor
from p2p.core.errors import LocalError, P2PError

VERSION = 1
KDF_ARGON2ID = "argon2id13"
KDF_NONE = "none"
SALT_SIZE = argon2id.SALTBYTES  # 16
NONCE_SIZE = nb.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES  # 24
CHECK_SIZE = 16
OPSLIMIT_DEFAULT = argon2id.OPSLIMIT_MODERATE  # 3
MEMLIMIT_DEFAULT = argon2id.MEMLIMIT_MODERATE  # 256 MiB
# Limits on what a file may ask of us: a forged file must not make unlocking
# allocate gigabytes or run for minutes.
OPSLIMIT_MAX = 16
MEMLIMIT_MAX = 1 << 30
MAX_BLOB = 1 << 20


class KeyfileError(LocalError):
    code = "keyfile-error"


class BadPassphrase(KeyfileError):
    code = "bad-passphrase"


class PassphraseRequired(KeyfileError):
    code = "passphrase-required"


class KeyfileCorrupt(KeyfileError):
    """Not a sealed blob we can read, or its ciphertext was altered."""

    code = "keyfile-corrupt"


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    # NFC so the same passphrase typed on different systems (macOS input gives
    # decomposed forms) derives the same key.
    if isinstance(passphrase, str):
        return unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return bytes(passphrase)


def _subkeys(master: bytes) -> tuple[bytes, bytes]:
    key = hashlib.blake2b(key=master, person=b"p2p-kf-encrypt", digest_size=32).digest()
    check = hashlib.blake2b(key=master, person=b"p2p-kf-check", digest_size=CHECK_SIZE).digest()
    return key, check


def _aad(salt: bytes, opslimit: int, memlimit: int, check: bytes) -> bytes:
    return cbor.dumps([VERSION, KDF_ARGON2ID, salt, opslimit, memlimit, check])


class Sealer:
    """Seals and opens secret blobs for one agent's passphrase (or for none).

    With `passphrase=None` blobs are stored in clear ({"kdf": "none"}), relying on
    the 0600 file mode, and an encrypted blob raises PassphraseRequired. With a
    passphrase, a clear blob is refused (KeyfileCorrupt): otherwise anyone able
    to write the file could swap in keys of their choosing without knowing the
    passphrase. To add or change a passphrase, open with the old Sealer and seal
    with the new one.
    """

    def __init__(self, passphrase: str | bytes | None, *, opslimit: int = OPSLIMIT_DEFAULT,
                 memlimit: int = MEMLIMIT_DEFAULT) -> None:
        self._pw = None if passphrase is None else _passphrase_bytes(passphrase)
        self.opslimit = opslimit
        self.memlimit = memlimit
        self._salt: bytes | None = None  # chosen at the first seal
        self._keys: dict[tuple[bytes, int, int], tuple[bytes, bytes]] = {}

    @property
    def encrypts(self) -> bool:
        return self._pw is not None

    def _derive(self, salt: bytes, opslimit: int, memlimit: int) -> tuple[bytes, bytes]:
        params = (salt, opslimit, memlimit)
        keys = self._keys.get(params)
        if keys is None:
            assert self._pw is not None
            master = argon2id.kdf(32, self._pw, salt, opslimit=opslimit, memlimit=memlimit)
            keys = self._keys[params] = _subkeys(master)
        return keys

    def adopt_salt(self, blob: bytes) -> bool:
        """Seal from now on with the salt of `blob`, an encrypted blob of this agent
        (its identity): then the Argon2id run that opened it at start also serves every
        blob sealed later, in this process and the next (one salt per agent, spec/08
        §8.5), instead of one run per process for a fresh salt.

        Checks the blob with the passphrase first (BadPassphrase, KeyfileCorrupt: the
        same errors as `open`; the derivation is cached, so after `open` this is free).
        Adopts nothing and returns False for a clear blob, without a passphrase, or
        when the blob's cost parameters are below ours: a file someone altered must not
        lower the cost of what we seal next. Returns True once the salt is adopted."""
        if self._pw is None:
            return False
        self.open(blob)  # validates the fields and the passphrase; raises like open
        doc = cbor.loads(blob, max_size=MAX_BLOB)
        if doc["kdf"] != KDF_ARGON2ID:  # not reached: open refuses clear blobs here
            return False
        ops, mem = doc["opslimit"], doc["memlimit"]
        if ops < self.opslimit or mem < self.memlimit:
            return False
        self._salt, self.opslimit, self.memlimit = doc["salt"], ops, mem
        return True

    def seal(self, plaintext: bytes, *, nonce: bytes | None = None) -> bytes:
        """`nonce` is for reproducible tests only; leave it None."""
        if self._pw is None:
            return cbor.dumps({"v": VERSION, "kdf": KDF_NONE, "pt": bytes(plaintext)})
        if self._salt is None:
            self._salt = nacl.utils.random(SALT_SIZE)
        try:
            key, check = self._derive(self._salt, self.opslimit, self.memlimit)
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise KeyfileError(f"cannot derive a key with opslimit={self.opslimit}, "
                               f"memlimit={self.memlimit}: {exc}") from None
        if nonce is None:
            nonce = nacl.utils.random(NONCE_SIZE)
        ct = nb.crypto_aead_xchacha20poly1305_ietf_encrypt(
            bytes(plaintext), _aad(self._salt, self.opslimit, self.memlimit, check), nonce, key)
        return cbor.dumps({"v": VERSION, "kdf": KDF_ARGON2ID, "salt": self._salt,
                           "opslimit": self.opslimit, "memlimit": self.memlimit,
                           "check": check, "nonce": nonce, "ct": ct})

    def open(self, blob: bytes) -> bytes:
        try:
            doc = cbor.loads(blob, max_size=MAX_BLOB)
        except P2PError as exc:
            raise KeyfileCorrupt(f"not a sealed blob: {exc.detail or exc.code}") from None
        if not isinstance(doc, dict) or doc.get("v") != VERSION:
            raise KeyfileCorrupt("not a version-1 sealed blob")
        kdf = doc.get("kdf")
        if kdf == KDF_NONE:
            if set(doc) != {"v", "kdf", "pt"} or not isinstance(doc["pt"], bytes):
                raise KeyfileCorrupt("malformed unencrypted blob")
            if self._pw is not None:
                raise KeyfileCorrupt("blob is not encrypted but a passphrase is configured")
            return doc["pt"]
        if kdf != KDF_ARGON2ID:
            raise KeyfileCorrupt(f"unknown kdf {kdf!r}")
        if set(doc) != {"v", "kdf", "salt", "opslimit", "memlimit", "check", "nonce", "ct"}:
            raise KeyfileCorrupt("malformed encrypted blob: wrong set of fields")
        salt, ops, mem, check, nonce, ct = (doc[k] for k in
                                            ("salt", "opslimit", "memlimit", "check", "nonce", "ct"))
        if not (isinstance(salt, bytes) and len(salt) == SALT_SIZE
                and isinstance(check, bytes) and len(check) == CHECK_SIZE
                and isinstance(nonce, bytes) and len(nonce) == NONCE_SIZE
                and isinstance(ct, bytes) and len(ct) >= nb.crypto_aead_xchacha20poly1305_ietf_ABYTES
                and type(ops) is int and argon2id.OPSLIMIT_MIN <= ops <= OPSLIMIT_MAX
                and type(mem) is int and argon2id.MEMLIMIT_MIN <= mem <= MEMLIMIT_MAX):
            raise KeyfileCorrupt("malformed encrypted blob: field type, size or limit")
        if self._pw is None:
            raise PassphraseRequired("this secret is encrypted; a passphrase is needed")
        try:
            key, expected = self._derive(salt, ops, mem)
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise KeyfileCorrupt(f"key derivation refused the parameters: {exc}") from None
        if not hmac.compare_digest(check, expected):
            raise BadPassphrase("wrong passphrase (or the file's salt or cost parameters were altered)")
        try:
            return nb.crypto_aead_xchacha20poly1305_ietf_decrypt(ct, _aad(salt, ops, mem, check), nonce, key)
        except nacl.exceptions.CryptoError:
            raise KeyfileCorrupt("the passphrase is right but the sealed data was altered") from None


def seal(plaintext: bytes, passphrase: str | bytes | None, *, opslimit: int = OPSLIMIT_DEFAULT,
         memlimit: int = MEMLIMIT_DEFAULT) -> bytes:
    """One-shot `Sealer(passphrase).seal(plaintext)` (one Argon2id run)."""
    return Sealer(passphrase, opslimit=opslimit, memlimit=memlimit).seal(plaintext)


def open_sealed(blob: bytes, passphrase: str | bytes | None) -> bytes:
    """One-shot `Sealer(passphrase).open(blob)`."""
    return Sealer(passphrase).open(blob)


# --- files ---------------------------------------------------------------------


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new
    file, never a mix: write a temporary file beside it (created with `mode`, so it
    is never readable by others, not even briefly), fsync it, rename it over
    `path`, fsync the directory so the rename itself is durable."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{nacl.utils.random(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have removed bits we asked for
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def save_secret(path: str | os.PathLike[str], secret: bytes, sealer: Sealer) -> None:
    write_atomic(path, sealer.seal(secret))


def load_secret(path: str | os.PathLike[str], sealer: Sealer) -> bytes:
    with open(path, "rb") as f:
        blob = f.read(MAX_BLOB + 1)
    return sealer.open(blob)
