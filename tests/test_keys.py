"""Agent key sets, signatures, X25519, COSE_Key and the stored key-set form."""

from __future__ import annotations

import pathlib

import base58
import cbor2
import nacl.bindings as nb
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycose.keys import CoseKey, OKPKey
from pycose.keys.curves import Ed25519 as COSE_Ed25519
from pycose.keys.curves import X25519 as COSE_X25519

import cddl_schema
from p2p.core import keys as K
from p2p.core.errors import BadSignature, InvalidKey, LocalError, RemoteError

ROOT = pathlib.Path(__file__).resolve().parent.parent
P = 2**255 - 19
secrets32 = st.binary(min_size=32, max_size=32)




# --- published vectors -------------------------------------------------------

# RFC 8032 section 7.1, TEST 1 (empty message).
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
# RFC 7748 section 6.1.
ALICE_SK = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PK = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_SK = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PK = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


def test_rfc8032_ed25519():
    sk = K.SigningKey.from_seed(RFC8032_SECRET)
    assert sk.public == RFC8032_PUBLIC
    assert sk.sign(b"") == RFC8032_SIG
    K.verify(RFC8032_PUBLIC, b"", RFC8032_SIG)


def test_rfc7748_x25519():
    alice, bob = K.AgreementKey.from_secret(ALICE_SK), K.AgreementKey.from_secret(BOB_SK)
    assert (alice.public, bob.public) == (ALICE_PK, BOB_PK)
    assert alice.exchange(BOB_PK) == bob.exchange(ALICE_PK) == SHARED


# did:key test vectors, w3c-ccg/did-method-key test-vectors/ed25519-x25519.json:
# (seed hex, Ed25519 publicKeyBase58, derived X25519 publicKeyBase58, its privateKeyBase58).
DID_KEY_SEEDS = [
    ("00" * 32, "4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS", "7By6kV2t2d188odEM4ExAve1UithKT6dLva4dwsDT3ak",
     "6QN8DfuN9hjgHgPvLXqgzqYE3jRRGRrmJQZkd5tL8paR"),
    ("00" * 31 + "01", "6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt", "FcoNC5NqP9CePWbhfz95iHaEsCjGkZUioK9Ck7Qiw286",
     "HBTcN2MrXNRj9xF9oi8QqYyuEPv3JLLjQKuEgW9oxVKP"),
    ("00" * 31 + "02", "8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH", "A5fe37PAxhX5WNKngBpGHhC1KpNE7nwbK9oX2tqwxYxU",
     "ACa4PPJ1LnPNq1iwS33V3Akh7WtnC71WkKFZ9ccM6sX2"),
    ("00" * 31 + "03", "HPYVwAQmskwT1qEEeRzhoomyfyupJGASQQtCXSNG8XS2", "7ocvdvQinfqtyQ3Dh9aA7ggoVCQkmfaoueZazHETDv3B",
     "FZrzd1osCnbK6y6MJzMBW1RcVfL524sNKhSbqRwMuwHT"),
]


@pytest.mark.parametrize("seed, ed_pub, x_pub, x_priv", DID_KEY_SEEDS)
def test_did_key_vector_keys(seed, ed_pub, x_pub, x_priv):
    sk = K.SigningKey.from_seed(bytes.fromhex(seed))
    assert sk.public == base58.b58decode(ed_pub)
    assert K.ed25519_to_x25519(sk.public) == base58.b58decode(x_pub)
    # The vector's X25519 private key is the libsodium conversion of the Ed25519
    # secret; p2p does not derive keys this way (its keys are independent), but the
    # pair must still agree, which checks our reading of the vector.
    x = K.AgreementKey.from_secret(base58.b58decode(x_priv))
    assert x.public == base58.b58decode(x_pub)


# --- key set ---------------------------------------------------------------


def test_key_set_is_two_independent_keys():
    ak = K.AgentKeys.from_secrets(bytes(32), bytes(32))
    assert ak.signing.public == nb.crypto_sign_seed_keypair(bytes(32))[0]
    assert ak.agreement.public == nb.crypto_scalarmult_base(bytes(32))
    assert ak.agreement.public != K.ed25519_to_x25519(ak.signing.public)


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33), "00" * 32, None])
def test_bad_secret_lengths_are_local_errors(bad):
    with pytest.raises(LocalError):
        K.AgentKeys.from_secrets(bad, bytes(32))
    with pytest.raises(LocalError):
        K.AgentKeys.from_secrets(bytes(32), bad)


def test_repr_hides_secrets():
    ak = K.AgentKeys.from_secrets(b"\x11" * 32, b"\x22" * 32)
    text = repr(ak)
    assert "\\x11" not in text and "\\x22" not in text and "1111" not in text and "2222" not in text


@settings(max_examples=50)
@given(secrets32, secrets32)
def test_key_set_cbor_round_trip(seed, secret):
    ak = K.AgentKeys.from_secrets(seed, secret)
    data = ak.to_cbor()
    assert cddl_schema.check("did-key-set", data) == []
    back = K.AgentKeys.from_cbor(data)
    assert back == ak and back.signing.seed == seed and back.agreement.secret == secret


@pytest.mark.parametrize(
    "value",
    [
        {0: 1, 1: bytes(32)},
        {0: 1, 1: bytes(32), 2: bytes(32), 3: 0},
        {0: 2, 1: bytes(32), 2: bytes(32)},
        {0: True, 1: bytes(32), 2: bytes(32)},
        {0: 1, 1: bytes(31), 2: bytes(32)},
        {0: 1, 1: bytes(32), 2: "x" * 32},
        [1, bytes(32), bytes(32)],
    ],
)
def test_key_set_strict(value):
    data = cbor2.dumps(value)
    with pytest.raises(InvalidKey):
        K.AgentKeys.from_cbor(data)


@settings(max_examples=200)
@given(st.data())
def test_key_set_mutations_raise_remote_errors(data):
    blob = K.AgentKeys.from_secrets(b"\x01" * 32, b"\x02" * 32).to_cbor()
    kind = data.draw(st.sampled_from(["flip", "truncate", "append"]))
    if kind == "flip":
        i = data.draw(st.integers(0, 5))  # a3 00 01 01 58 20: structure before the first secret
        bit = data.draw(st.integers(0, 7))
        mutated = blob[:i] + bytes([blob[i] ^ (1 << bit)]) + blob[i + 1 :]
    elif kind == "truncate":
        mutated = blob[: data.draw(st.integers(0, len(blob) - 1))]
    else:
        mutated = blob + data.draw(st.binary(min_size=1, max_size=8))
    with pytest.raises(RemoteError):
        K.AgentKeys.from_cbor(mutated)


# --- signatures: both directions against pynacl's high-level API -----------


@settings(max_examples=30)
@given(secrets32, st.binary(max_size=256))
def test_sign_verify_against_nacl(seed, message):
    ours = K.SigningKey.from_seed(seed)
    theirs = nacl.signing.SigningKey(seed)
    sig = K.sign(ours, message)
    theirs.verify_key.verify(message, sig)  # we sign, they verify
    K.verify(ours.public, message, theirs.sign(message).signature)  # they sign, we verify
    assert sig == theirs.sign(message).signature  # Ed25519 is deterministic


@settings(max_examples=100)
@given(st.binary(max_size=64), st.integers(0, 64 * 8 - 1))
def test_tampered_signature_fails(message, bit):
    sk = K.SigningKey.from_seed(b"\x05" * 32)
    sig = bytearray(sk.sign(message))
    sig[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(BadSignature):
        K.verify(sk.public, message, bytes(sig))
    with pytest.raises(BadSignature):
        K.verify(sk.public, message + b"x", sk.sign(message))
    with pytest.raises(BadSignature):
        K.verify(sk.public, message, sk.sign(message)[:63])


# --- public key checks -----------------------------------------------------

SMALL_ORDER_U = [0, 1, P - 1, 325606250916557431795983626356110631294008115727848805560023387167927233504,
                 39382357235489614581723060781553021112529911719440698176882885853963445705823]


@pytest.mark.parametrize("u", SMALL_ORDER_U)
def test_small_order_x25519_rejected(u):
    raw = u.to_bytes(32, "little")
    with pytest.raises(InvalidKey, match="small-order"):
        K.check_public_key(K.KeyType.X25519, raw)
    # Independent confirmation that these really are small order: libsodium refuses
    # any scalar multiplication with them (the result would be all zero).
    with pytest.raises(RuntimeError):
        nb.crypto_scalarmult(b"\x07" * 32, raw)


@pytest.mark.parametrize("u", [P, P + 1, P + 18, 2**255 - 1])
def test_noncanonical_x25519_rejected(u):
    with pytest.raises(InvalidKey, match="canonical"):
        K.check_public_key(K.KeyType.X25519, u.to_bytes(32, "little"))


def test_top_bit_x25519_rejected():
    good = K.AgreementKey.from_secret(b"\x09" * 32).public
    with pytest.raises(InvalidKey):
        K.check_public_key(K.KeyType.X25519, good[:31] + bytes([good[31] | 0x80]))


@settings(max_examples=50)
@given(secrets32)
def test_generated_keys_always_pass_checks(secret):
    K.check_public_key(K.KeyType.X25519, nb.crypto_scalarmult_base(secret))
    K.check_public_key(K.KeyType.ED25519, nb.crypto_sign_seed_keypair(secret)[0])


@pytest.mark.parametrize("raw", [bytes(32), (2**255 - 1).to_bytes(32, "little"), (1).to_bytes(32, "little")])
def test_bad_ed25519_points(raw):
    with pytest.raises(InvalidKey):
        K.check_public_key(K.KeyType.ED25519, raw)


def test_exchange_rejects_bad_peer_key():
    ak = K.AgreementKey.from_secret(b"\x03" * 32)
    with pytest.raises(InvalidKey):
        ak.exchange(bytes(32))
    with pytest.raises(InvalidKey):
        ak.exchange(b"\x01" * 31)


# --- COSE_Key: both directions against pycose ---------------------------------


@settings(max_examples=30)
@given(secrets32)
def test_cose_key_against_pycose(secret):
    for pub, crv in [
        (K.SigningKey.from_seed(secret).public_key, COSE_Ed25519),
        (K.AgreementKey.from_secret(secret).public_key, COSE_X25519),
    ]:
        data = K.encode_cose_key(pub)
        assert cddl_schema.check("did-cose-key", data) == []
        theirs = CoseKey.decode(data)  # we encode, they decode
        assert isinstance(theirs, OKPKey) and theirs.crv == crv and theirs.x == pub.raw
        assert K.decode_cose_key(OKPKey(crv=crv, x=pub.raw).encode()) == pub  # they encode, we decode
        assert K.decode_cose_key(K.cose_key_map(pub)) == pub  # already-decoded header form


def test_cose_key_exact_bytes():
    # {1: 1, -1: 4, -2: h'8520..'}, keys in deterministic order 1, -1, -2.
    pub = K.AgreementKey.from_secret(ALICE_SK).public_key
    assert K.encode_cose_key(pub) == bytes.fromhex("a301012004215820") + ALICE_PK


@pytest.mark.parametrize(
    "m",
    [
        {1: 2, -1: 4, -2: ALICE_PK},
        {1: 1, -1: 5, -2: ALICE_PK},
        {1: 1, -1: 1, -2: ALICE_PK},
        {1: 1, -1: 4, -2: ALICE_PK[:31]},
        {1: 1, -1: 4, -2: ALICE_PK + b"\0"},
        {1: 1, -1: 4, -2: ALICE_PK.hex()},
        {1: 1, -1: 4},
        {1: 1, -1: 4, -2: ALICE_PK, -4: ALICE_SK},
        {1: 1, -1: 4, -2: ALICE_PK, 2: b"kid"},
        {1: True, -1: 4, -2: ALICE_PK},
        {1: 1, -1: 6, -2: ALICE_PK},  # an X25519 key is not (generally) an Ed25519 point
        [1, 4, ALICE_PK],
    ],
)
def test_cose_key_strict(m):
    with pytest.raises(InvalidKey):
        K.decode_cose_key(cbor2.dumps(m))


@settings(max_examples=300)
@given(st.data())
def test_cose_key_mutations(data):
    pub = K.AgreementKey.from_secret(b"\x04" * 32).public_key
    blob = K.encode_cose_key(pub)
    kind = data.draw(st.sampled_from(["flip-structure", "flip-any", "truncate", "append"]))
    if kind.startswith("flip"):
        hi = 7 if kind == "flip-structure" else len(blob) - 1  # first 8 bytes: map header, labels, bstr header
        i = data.draw(st.integers(0, hi))
        mutated = blob[:i] + bytes([blob[i] ^ (1 << data.draw(st.integers(0, 7)))]) + blob[i + 1 :]
    elif kind == "truncate":
        mutated = blob[: data.draw(st.integers(0, len(blob) - 1))]
    else:
        mutated = blob + data.draw(st.binary(min_size=1, max_size=8))
    if kind == "flip-any":
        # A flipped bit inside x is just another key: there is no integrity to check,
        # but the result must be a checked key or a RemoteError, nothing else.
        try:
            got = K.decode_cose_key(mutated)
        except RemoteError:
            return
        assert got.key_type is K.KeyType.X25519 and len(got.raw) == 32
        return
    with pytest.raises(RemoteError):
        K.decode_cose_key(mutated)
