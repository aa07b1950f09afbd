"""connect/1.0 (spec/10 §10.4-10.6): the full setup through real envelopes, every
transition of both roles' tables, and the refusals."""

import hashlib
import itertools

import pytest

from p2p.core import cbor, envelope, keys, message
from p2p.core.errors import LocalError, RemoteError, StateError
from p2p.core.message import Attachment, Message
from p2p.core.protocols import connection as c, endpoint as ep, invitation as inv
from p2p.core.protocols.connection import Event, Role, State

NOW = 1_764_320_000
_counter = itertools.count()


def K(name: str) -> keys.AgentKeys:
    return keys.AgentKeys.from_secrets(hashlib.sha256(b"ed " + name.encode()).digest(),
                                       hashlib.sha256(b"x " + name.encode()).digest())


def rnd(n: int) -> bytes:
    return hashlib.sha256(b"rnd %d" % next(_counter)).digest()[:n] if n <= 32 else b"\x07" * n


AGENT = K("shop")
ENDPOINT = ep.format_endpoint(AGENT.agreement.public_key, "shop.example", 7400)
AGENT_DID = c.pairwise_did(AGENT, ENDPOINT)
INVITATION = inv.create(AGENT, AGENT_DID, id="inv-1", label="Shop", now=NOW, expires_time=NOW + 3600)


def transfer(sender: c.Connection, msg: Message, keyring: envelope.Keyring) -> tuple[Message, str]:
    """Seal with the sender's keys, open with the receiver's keyring, decode."""
    sealed = sender.seal(msg, iv=rnd(12), nonce=rnd(32))
    opened = envelope.open(sealed, keyring)
    assert opened.layers == ("authcrypt",)
    return message.decode(opened.plaintext, now=NOW + 5), opened.sender_kid


def setup(*, upto: str = "complete"):
    """Run the protocol as far as `upto`; returns (invitee, inviter, last message, its sender kid)."""
    invitee = c.Connection.invitee(inv.parse_url(INVITATION.url, now=NOW))
    inviter = c.Connection.inviter(INVITATION)
    req = invitee.request(K("alice-pw"), id="req-1", now=NOW, label="Alice")
    got, kid = transfer(invitee, req, c.agent_keyring(AGENT, AGENT_DID))
    if upto == "request":
        return invitee, inviter, got, kid
    resp, issued = inviter.receive_request(got, sender_kid=kid, issued=inv.Issued(INVITATION), agent_keys=AGENT,
                                           keys=K("shop-pw"), response_id="resp-1", now=NOW + 1, label="Shop",
                                           endpoint=ENDPOINT)
    assert issued.state is inv.IssuedState.USED
    got, kid = transfer(inviter, resp, invitee.keyring())
    if upto == "response":
        return invitee, inviter, got, kid
    complete = invitee.receive_response(got, sender_kid=kid, complete_id="comp-1", now=NOW + 2)
    got, kid = transfer(invitee, complete, inviter.keyring())
    if upto == "complete":
        return invitee, inviter, got, kid
    inviter.receive_complete(got, sender_kid=kid)
    return invitee, inviter, None, None


def test_full_setup_through_envelopes():
    invitee, inviter, _, _ = setup(upto="active")
    assert invitee.state is State.ACTIVE and inviter.state is State.ACTIVE
    assert invitee.their_did == inviter.our_did and inviter.their_did == invitee.our_did
    assert invitee.their_label == "Shop" and inviter.their_label == "Alice"
    assert invitee.their_endpoint.uri == ENDPOINT and inviter.their_endpoint is None
    # pairwise DIDs are fresh: neither is the agent DID
    assert AGENT_DID not in (invitee.their_did, inviter.our_did)
    # both directions now work pairwise (sender key form -3), and revoke ends it
    ping = Message(id="p1", type="https://didcomm.org/trust-ping/2.0/ping", body={}, frm=invitee.our_did,
                   to=(invitee.their_did,))
    got, kid = transfer(invitee, ping, inviter.keyring())
    inviter.check_inbound(got, sender_kid=kid)
    rev = inviter.revoke(id="rev-1", now=NOW + 9, reason="closing the account")
    assert inviter.state is State.REVOKED
    got, kid = transfer(inviter, rev, invitee.keyring())
    assert invitee.receive_revoke(got, sender_kid=kid) == "closing the account"
    assert invitee.state is State.REVOKED
    with pytest.raises(RemoteError) as e:
        invitee.check_inbound(got, sender_kid=kid)
    assert e.value.code == "relationship-revoked"


def test_request_uses_full_sender_key_and_agent_recipient():
    invitee = c.Connection.invitee(INVITATION)
    req = invitee.request(K("bob-pw"), id="r", now=NOW)
    sealed = invitee.seal(req, iv=rnd(12), nonce=rnd(32))
    layer = envelope.open_one_layer(sealed, c.agent_keyring(AGENT, AGENT_DID))
    assert layer.recipient_kid == AGENT_DID + "#key-2" and layer.sender_kid == invitee.our_did + "#key-2"
    # the -2 (static key) header carries the sender's COSE_Key with its kid
    recipient_unprotected = cbor.loads(sealed, max_size=10**6).value[3][0][1]
    assert -2 in recipient_unprotected and -3 not in recipient_unprotected


def test_second_request_on_one_time_invitation_is_refused():
    _, inviter, got, kid = setup(upto="request")
    issued = inv.Issued(INVITATION).use(NOW)
    with pytest.raises(RemoteError) as e:
        inviter.receive_request(got, sender_kid=kid, issued=issued, agent_keys=AGENT, keys=K("x"),
                                response_id="r", now=NOW + 1)
    assert e.value.code == "invitation-used" and inviter.state is State.START


@pytest.mark.parametrize("change, code", [
    (lambda m, k: (m, None), "unknown-sender"),
    (lambda m, k: (m, "did:key:z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc#z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc"),
     "sender-mismatch"),
    (lambda m, k: (_replace(m, pthid="inv-2"), k), "unknown-invitation"),
    (lambda m, k: (_replace(m, pthid=None), k), "missing-field"),
    (lambda m, k: (_replace(m, to=("did:peer:2.Ez6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc",)), k), "invalid-field"),
    (lambda m, k: (_replace(m, body={"label": 7}), k), "invalid-field"),
    (lambda m, k: (_replace(m, type=c.COMPLETE_TYPE), k), "unexpected-message"),
])
def test_request_refusals_leave_state(change, code):
    _, inviter, got, kid = setup(upto="request")
    got, kid = change(got, kid)
    with pytest.raises(RemoteError) as e:
        inviter.receive_request(got, sender_kid=kid, issued=inv.Issued(INVITATION), agent_keys=AGENT, keys=K("x"),
                                response_id="r", now=NOW + 1)
    assert e.value.code == code
    assert inviter.state is State.START and inviter.their_did is None


def test_expired_invitation_refused_by_inviter():
    _, inviter, got, kid = setup(upto="request")
    with pytest.raises(RemoteError) as e:
        inviter.receive_request(got, sender_kid=kid, issued=inv.Issued(INVITATION), agent_keys=AGENT, keys=K("x"),
                                response_id="r", now=NOW + 3600)
    assert e.value.code == "invitation-expired"


def _replace(msg: Message, **kw) -> Message:
    """A copy of msg with fields changed (None removes the field), parsed as a receiver would."""
    m = msg.to_map()
    for name, value in kw.items():
        name = "from" if name == "frm" else name
        if value is None:
            m.pop(name, None)
        else:
            m[name] = list(value) if isinstance(value, tuple) else value
    return message.parse_map(m)


def _with_endorsement(resp: Message, signed: bytes | None) -> Message:
    m = resp.to_map()
    m["attachments"] = [] if signed is None else [Attachment(id="endorsement", data={"bytes": signed}).to_map()]
    if not m["attachments"]:
        del m["attachments"]
    return message.parse_map(m)


def _endorse(payload: bytes, signer=AGENT, kid=INVITATION.signer_kid) -> bytes:
    return envelope.seal_signed(payload, envelope.SigningKey.from_seed(kid, signer.signing.seed))


@pytest.mark.parametrize("make_signed, code", [
    (lambda r: None, "bad-endorsement"),
    (lambda r: _endorse(c.endorsement_payload(AGENT_DID, "inv-1", "req-1")), "bad-endorsement"),  # wrong DID
    (lambda r: _endorse(c.endorsement_payload(r.frm, "inv-2", "req-1")), "bad-endorsement"),
    (lambda r: _endorse(c.endorsement_payload(r.frm, "inv-1", "req-2")), "bad-endorsement"),
    (lambda r: _endorse(c.endorsement_payload(r.frm, "inv-1", "req-1"), K("mallory")), "bad-signature"),
    (lambda r: _endorse(c.endorsement_payload(r.frm, "inv-1", "req-1"), K("mallory"), r.frm + "#key-1"),
     "bad-endorsement"),
    (lambda r: _endorse(cbor.dumps({"did": r.frm, "invitation": "inv-1", "request": "req-1", "x": 1})),
     "bad-endorsement"),
    (lambda r: b"\xd2\x84", "bad-endorsement"),
    (lambda r: _endorse(c.endorsement_payload(r.frm, "inv-1", "req-1")), None),  # control: the real one passes
])
def test_endorsement_checks(make_signed, code):
    invitee, _, got, kid = setup(upto="response")
    resp = _with_endorsement(got, make_signed(got))
    if code is None:
        invitee.receive_response(resp, sender_kid=kid, complete_id="c", now=NOW)
        assert invitee.state is State.ACTIVE
        return
    with pytest.raises(RemoteError) as e:
        invitee.receive_response(resp, sender_kid=kid, complete_id="c", now=NOW)
    assert e.value.code == code
    assert invitee.state is State.REQUESTED and invitee.their_did is None


def test_response_from_other_sender_refused():
    invitee, _, got, kid = setup(upto="response")
    with pytest.raises(RemoteError) as e:
        invitee.receive_response(got, sender_kid=AGENT_DID + "#key-2", complete_id="c", now=NOW)
    assert e.value.code == "sender-mismatch" and invitee.state is State.REQUESTED
    with pytest.raises(RemoteError) as e:
        invitee.receive_response(_replace(got, thid="other"), sender_kid=kid, complete_id="c", now=NOW)
    assert e.value.code == "unexpected-message"


# --- every cell of both transition tables ------------------------------------------------


def _connection_in(role: Role, state: State) -> c.Connection:
    conn = c.Connection(role, INVITATION, state=state, thid="req-1", our_keys=K("me"),
                        our_did=c.pairwise_did(K("me")), their_did=c.pairwise_did(K("peer")))
    return conn


def _drive(conn: c.Connection, event: Event) -> None:
    """Fire `event` with a message that is otherwise valid, so only the state decides."""
    peer = conn.their_did
    kid = peer + "#key-2"
    if event is Event.SEND_REQUEST:
        conn.request(K("fresh"), id="r2", now=NOW)
    elif event is Event.RECEIVE_REQUEST:
        req = Message(id="r9", type=c.REQUEST_TYPE, body={}, frm=peer, to=(AGENT_DID,), pthid="inv-1")
        conn.receive_request(req, sender_kid=kid, issued=inv.Issued(INVITATION), agent_keys=AGENT, keys=K("f"),
                             response_id="x", now=NOW)
    elif event is Event.RECEIVE_RESPONSE:
        resp = Message(id="x", type=c.RESPONSE_TYPE, body={}, frm=peer, to=(conn.our_did,), thid="req-1",
                       attachments=(Attachment(id="endorsement", data={"bytes": _endorse(
                           c.endorsement_payload(peer, "inv-1", "req-1"))}),))
        conn.receive_response(resp, sender_kid=kid, complete_id="c", now=NOW)
    elif event is Event.RECEIVE_COMPLETE:
        conn.receive_complete(Message(id="x", type=c.COMPLETE_TYPE, body={}, frm=peer, thid="req-1"), sender_kid=kid)
    elif event is Event.SEND_REVOKE:
        conn.revoke(id="v", now=NOW)
    elif event is Event.RECEIVE_REVOKE:
        conn.receive_revoke(Message(id="x", type=c.REVOKE_TYPE, body={}, frm=peer), sender_kid=kid)
    elif event is Event.RECEIVE_PROBLEM:
        conn.receive_problem("req-1")
    elif event is Event.ABANDON:
        conn.abandon()


CELLS = [(role, state, event) for role in Role for state in c.TRANSITIONS[role] for event in Event]


@pytest.mark.parametrize("role, state, event", CELLS, ids=lambda v: v.value)
def test_transition_table(role, state, event):
    conn = _connection_in(role, state)
    expected = c.TRANSITIONS[role][state].get(event)
    if expected is not None:
        _drive(conn, event)
        assert conn.state is expected
        return
    before = (conn.state, conn.their_did, conn.our_did, conn.thid)
    with pytest.raises((StateError, RemoteError)) as e:
        _drive(conn, event)
    if event in c.REMOTE_EVENTS:
        assert isinstance(e.value, RemoteError)
        assert e.value.code == ("relationship-revoked" if state is State.REVOKED else "unexpected-message")
    else:
        assert isinstance(e.value, StateError) and e.value.code == "state-error"
    assert (conn.state, conn.their_did, conn.our_did, conn.thid) == before
    assert "cannot" in str(e.value) or "revoked" in str(e.value)


def test_state_must_belong_to_role():
    with pytest.raises(LocalError):
        c.Connection(Role.INVITER, INVITATION, state=State.REQUESTED)


def test_local_misuse():
    conn = c.Connection.invitee(INVITATION)
    with pytest.raises(LocalError):
        conn.request(K("a"), id="has space", now=NOW)  # an id message.py refuses
    assert conn.state is State.START
    with pytest.raises(StateError):
        conn.seal(Message(id="x", type=c.COMPLETE_TYPE, body={}), iv=rnd(12), nonce=rnd(32))
