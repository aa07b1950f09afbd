"""p2p.net: NoiseConnection over trio test streams, and the TCP listener/dialer.

Memory streams exercise the protocol shell deterministically (autojump clock for the
timeouts); real TCP on 127.0.0.1 checks serve/connect, caps and isolation.
Hostile-peer cases are in test_transport_abuse.py.
"""

from __future__ import annotations

import logging
import random
from functools import partial

import pytest
import trio
import trio.testing

from p2p.core.errors import (
    BadArgument,
    HandshakeFailed,
    RemoteError,
    StateError,
    TooLarge,
    TransportDecryptFailed,
    Truncated,
)
from p2p.core.framing import (
    MAX_APP_MESSAGE,
    MAX_CHUNK,
    PROLOGUE,
    Channel,
    FrameReader,
    encode_frame,
)
from p2p.core.noise import Handshake, KeyPair, Role
from p2p.net import (
    ConnectionClosed,
    HandshakeTimeout,
    IdleTimeout,
    ListenerStats,
    NoiseConnection,
    SendTimeout,
    TransportLimits,
    UnexpectedPeer,
    Unreachable,
    connect,
    serve,
)

SERVER = KeyPair.from_private(bytes(range(1, 33)))
CLIENT = KeyPair.from_private(bytes(range(101, 133)))
OTHER = KeyPair.from_private(bytes(range(201, 233)))

PAIRS = {
    "memory": trio.testing.memory_stream_pair,
    "lockstep": trio.testing.lockstep_stream_pair,
}


async def _capture(results, key, fn, *args, **kwargs):
    try:
        results[key] = await fn(*args, **kwargs)
    except Exception as exc:  # the test inspects it
        results[key] = exc


async def handshake(pair="memory", *, remote_static=None, pattern=None,
                    client_limits=TransportLimits(), server_limits=TransportLimits(),
                    server_static=SERVER):
    """Both handshake sides concurrently; returns (client, server) results or exceptions."""
    a, b = PAIRS[pair]()
    results = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(
            _capture, results, "server", NoiseConnection.respond, b,
            static=server_static, limits=server_limits))
        nursery.start_soon(partial(
            _capture, results, "client", NoiseConnection.initiate, a,
            static=CLIENT, remote_static=remote_static, pattern=pattern, limits=client_limits))
    return results["client"], results["server"]


async def exchange(sender, receiver, messages):
    """Send `messages` in one task, receive them in another; return what arrived."""
    got = []

    async def pump():
        for message in messages:
            await sender.send(message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump)
        for _ in messages:
            got.append(await receiver.receive())
    return got


# --- handshake and messages over memory streams ---------------------------------


@pytest.mark.parametrize("pair", sorted(PAIRS))
@pytest.mark.parametrize("ik", [False, True], ids=["XX", "IK"])
async def test_handshake_and_messages_both_ways(pair, ik):
    client, server = await handshake(pair, remote_static=SERVER.public if ik else None)
    assert isinstance(client, NoiseConnection) and isinstance(server, NoiseConnection)
    assert client.pattern == server.pattern == ("IK" if ik else "XX")
    assert client.remote_static == SERVER.public
    assert server.remote_static == CLIENT.public
    assert client.handshake_hash == server.handshake_hash
    assert len(client.handshake_hash) == 64
    up = [b"hello", b"", bytes(1000)]
    down = [b"welcome", b"x" * 70000]
    # Both directions at once: the directions are independent.
    async with trio.open_nursery() as nursery:
        results = {}
        nursery.start_soon(_capture, results, "up", exchange, client, server, up)
        nursery.start_soon(_capture, results, "down", exchange, server, client, down)
    assert results == {"up": up, "down": down}
    await client.aclose()
    await server.aclose()


async def test_send_many_is_one_write_per_burst_and_equals_sends():
    client, server = await handshake()
    writes = []
    stream = client._stream
    real = stream.send_all

    async def counting(data):
        writes.append(len(data))
        await real(data)

    stream.send_all = counting
    burst = [b"m%d" % i * (i + 1) for i in range(200)]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_many, burst)
        got = [await server.receive() for _ in burst]
    assert got == burst and len(writes) == 1
    # Over about max_message bytes a burst is split (each write under send_timeout).
    writes.clear()
    big = [bytes(600_000), bytes(600_000), b"tail"]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_many, big)
        got = [await server.receive() for _ in big]
    assert got == big and len(writes) == 2
    # Mixed with send(), order and nonces stay right; an oversized item sends nothing.
    await client.send(b"one")
    with pytest.raises(BadArgument):
        await client.send_many([b"ok", bytes(MAX_APP_MESSAGE + 1)])
    await client.send_many([])
    await client.send_many([b"two"])
    assert [await server.receive(), await server.receive()] == [b"one", b"two"]


async def test_every_handshake_is_fresh():
    first, _ = await handshake()
    second, _ = await handshake()
    assert first.handshake_hash != second.handshake_hash  # fresh ephemeral keys


@pytest.mark.parametrize(
    "size", [0, 1, MAX_CHUNK - 1, MAX_CHUNK, MAX_CHUNK + 1, 3 * MAX_CHUNK + 7, MAX_APP_MESSAGE]
)
async def test_large_messages_are_chunked_and_reassembled(size):
    client, server = await handshake("lockstep")
    message = random.Random(size).randbytes(size)
    assert await exchange(client, server, [message]) == [message]
    assert await exchange(server, client, [message[::-1]]) == [message[::-1]]
    # One Noise message per started chunk: the chunking really happened.
    chunks = max(1, -(-size // MAX_CHUNK))
    assert client._channel.transport.send_nonce == chunks


async def test_message_over_one_mib_refused_by_sender():
    client, _ = await handshake()
    with pytest.raises(BadArgument):
        await client.send(bytes(MAX_APP_MESSAGE + 1))
    # Nothing was written, the connection is still usable.
    assert client._channel.transport.send_nonce == 0


async def test_message_over_receiver_limit_is_too_large():
    client, server = await handshake(server_limits=TransportLimits(max_message=4096))
    await client.send(bytes(4096))
    assert await server.receive() == bytes(4096)
    await client.send(bytes(4097))
    with pytest.raises(TooLarge):
        await server.receive()
    with pytest.raises(ConnectionClosed):
        await server.receive()


async def test_rekey_across_many_messages():
    limits = TransportLimits(rekey_interval=3)
    client, server = await handshake(client_limits=limits, server_limits=limits)
    first_key = client._channel.transport._send.k
    rng = random.Random(7)
    up = [rng.randbytes(rng.choice([0, 10, MAX_CHUNK + 5])) for _ in range(60)]
    down = [rng.randbytes(rng.choice([1, 300])) for _ in range(60)]
    assert await exchange(client, server, up) == up
    assert await exchange(server, client, down) == down
    sent = client._channel.transport
    assert sent._send.k != first_key  # the key really changed
    # Each side's receive key followed the other's send key through every rekey.
    assert sent._send.k == server._channel.transport._recv.k
    assert server._channel.transport._send.k == sent._recv.k


async def test_request_rekey_is_followed_by_receiver():
    client, server = await handshake()
    before = client._channel.transport._send.k
    client.request_rekey()
    assert await exchange(client, server, [b"a", b"b"]) == [b"a", b"b"]
    assert client._channel.transport._send.k != before
    assert client._channel.transport._send.k == server._channel.transport._recv.k


async def test_concurrent_senders_keep_messages_whole():
    client, server = await handshake()
    size = MAX_CHUNK * 2 + 3  # three chunks each: interleaving would corrupt them

    async def sender(tag):
        for i in range(10):
            await client.send(bytes([tag, i]) * (size // 2))

    got = []
    async with trio.open_nursery() as nursery:
        for tag in range(5):
            nursery.start_soon(sender, tag)
        for _ in range(50):
            got.append(await server.receive())
    assert sorted(got) == sorted(bytes([t, i]) * (size // 2) for t in range(5) for i in range(10))


# --- wrong keys ----------------------------------------------------------------


async def test_xx_with_wrong_expected_static_fails_before_revealing_us():
    client, server = await handshake(remote_static=OTHER.public, pattern="XX")
    assert isinstance(client, UnexpectedPeer)
    assert isinstance(client, HandshakeFailed) and client.code == "unexpected-peer"
    # The responder never got message 3 (which would carry our static key).
    assert isinstance(server, ConnectionClosed)


async def test_xx_with_right_expected_static_succeeds():
    client, server = await handshake(remote_static=SERVER.public, pattern="XX")
    assert client.pattern == "XX" and client.remote_static == SERVER.public


async def test_ik_with_wrong_remote_static_fails_both_sides():
    client, server = await handshake(remote_static=OTHER.public)
    assert isinstance(server, HandshakeFailed)
    assert isinstance(client, ConnectionClosed)  # the responder just closes (5.3 fallback cue)


# --- ends of streams and faults -------------------------------------------------


async def test_clean_close_between_messages_ends_iteration():
    client, server = await handshake()
    for message in (b"1", b"2", b"3"):
        await client.send(message)
    await client.aclose()
    assert [m async for m in server] == [b"1", b"2", b"3"]
    with pytest.raises(ConnectionClosed):
        await server.send(b"late")


async def test_peer_closing_mid_message_is_truncated():
    client, server = await handshake()
    wire = client._channel.send(bytes(3 * MAX_CHUNK))  # three frames, MORE set on two
    await client._stream.send_all(wire[: len(wire) // 2])
    await client._stream.aclose()
    with pytest.raises(Truncated):
        await server.receive()
    with pytest.raises(ConnectionClosed):
        await server.receive()


async def test_peer_closing_mid_frame_is_truncated():
    client, server = await handshake()
    wire = client._channel.send(b"short")
    await client._stream.send_all(wire[:-3])
    await client._stream.aclose()
    with pytest.raises(Truncated):
        await server.receive()


async def test_tampered_frame_closes_the_connection():
    client, server = await handshake()
    await client.send(b"good")
    assert await server.receive() == b"good"
    wire = bytearray(client._channel.send(b"will be altered"))
    wire[5] ^= 1
    await client._stream.send_all(bytes(wire))
    with pytest.raises(TransportDecryptFailed):
        await server.receive()
    assert server.closed and server.error.code == "transport-decrypt-failed"
    with pytest.raises(ConnectionClosed):
        await server.send(b"reply")


async def test_messages_sent_right_behind_the_last_handshake_message_are_kept():
    # IK: a responder may send transport frames in the same write as message 2; the
    # initiator's handshake reader then already holds them when the handshake ends.
    a, b = trio.testing.memory_stream_pair()

    async def responder():
        reader = FrameReader(max_frame=1024, expect_preamble=True)
        while (frame := reader.next_frame()) is None:
            reader.feed(await b.receive_some(2000))
        hs = Handshake(Role.RESPONDER, reader.pattern, SERVER, bytes(range(50, 82)), prologue=PROLOGUE)
        hs.read_message(frame)
        message2 = encode_frame(hs.write_message())
        await b.send_all(message2 + Channel(hs.transport).send(b"early"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(responder)
        client = await NoiseConnection.initiate(a, static=CLIENT, remote_static=SERVER.public)
    assert await client.receive() == b"early"


async def test_handshake_timeout(autojump_clock):
    a, b = trio.testing.memory_stream_pair()
    with pytest.raises(HandshakeTimeout):
        await NoiseConnection.respond(b, static=SERVER, limits=TransportLimits(handshake_timeout=5))
    assert trio.current_time() == pytest.approx(5)
    # The stream was closed: the initiator side sees the end.
    assert await a.receive_some(10) == b""


async def test_send_timeout_when_peer_does_not_read(autojump_clock):
    limits = TransportLimits(send_timeout=7)
    client, server = await handshake("lockstep", client_limits=limits)
    with pytest.raises(SendTimeout):
        await client.send(b"nobody reads this")
    assert client.closed
    with pytest.raises(ConnectionClosed):
        await client.send(b"again")


async def test_receive_is_single_consumer_and_cancel_safe():
    client, server = await handshake()
    with trio.move_on_after(0.01):
        await server.receive()  # cancelled with nothing read: nothing may be lost
    await client.send(b"after cancel")
    assert await server.receive() == b"after cancel"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.receive)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(StateError):
            await server.receive()
        nursery.cancel_scope.cancel()


# --- real TCP ---------------------------------------------------------------------


async def start_server(nursery, **kwargs) -> int:
    return await nursery.start(partial(serve, "127.0.0.1", 0, **kwargs))


async def echo(conn):
    async for message in conn:
        await conn.send(message)


@pytest.mark.parametrize("ik", [False, True], ids=["XX", "IK"])
async def test_tcp_serve_and_connect(nursery, ik):
    seen = []

    async def handler(conn):
        seen.append(conn.remote_static)
        await echo(conn)

    port = await start_server(nursery, static=SERVER, handler=handler)
    conn = await connect("127.0.0.1", port, static=CLIENT,
                         remote_static=SERVER.public if ik else None, timeout=5)
    assert conn.pattern == ("IK" if ik else "XX")
    assert conn.remote_static == SERVER.public
    messages = [b"ping", b"", random.Random(1).randbytes(MAX_APP_MESSAGE)]
    for message in messages:
        await conn.send(message)
        assert await conn.receive() == message
    assert seen == [CLIENT.public]
    await conn.aclose()


async def test_tcp_concurrent_clients(nursery):
    stats = ListenerStats()
    port = await start_server(nursery, static=SERVER, handler=echo, stats=stats)

    async def client(n):
        key = KeyPair.from_private(bytes([n + 1]) * 32)
        conn = await connect("127.0.0.1", port, static=key, remote_static=SERVER.public if n % 2 else None)
        for i in range(10):
            message = f"{n}/{i}".encode() * (n + 1)
            await conn.send(message)
            assert await conn.receive() == message
        await conn.aclose()

    with trio.fail_after(10):
        async with trio.open_nursery() as clients:
            for n in range(25):
                clients.start_soon(client, n)
    assert stats.completed_handshakes == 25
    assert stats.peak_admitted <= 25


async def test_tcp_handler_crash_is_isolated_and_logged(nursery, caplog):
    caplog.set_level(logging.DEBUG, logger="p2p.net")

    async def handler(conn):
        message = await conn.receive()
        if message.startswith(b"boom"):
            raise ValueError(message)  # the payload must not reach the log
        await conn.send(message)

    port = await start_server(nursery, static=SERVER, handler=handler)
    bad = await connect("127.0.0.1", port, static=CLIENT)
    await bad.send(b"boom secret-payload")
    with pytest.raises(ConnectionClosed):
        await bad.receive()
    good = await connect("127.0.0.1", port, static=OTHER)
    await good.send(b"still here")
    assert await good.receive() == b"still here"
    crash_lines = [r.getMessage() for r in caplog.records if "handler failed" in r.getMessage()]
    assert len(crash_lines) == 1 and "ValueError" in crash_lines[0]
    assert all("secret-payload" not in r.getMessage() for r in caplog.records)


async def busy_echo(conn):
    conn.busy = lambda: True  # as a handler with work in flight says
    await echo(conn)


async def test_tcp_cap_refuses_when_all_slots_are_established_and_busy(nursery):
    limits = TransportLimits(max_connections=3, max_handshaking=3)
    stats = ListenerStats()
    port = await start_server(nursery, static=SERVER, handler=busy_echo,
                               limits=limits, stats=stats)
    held = [await connect("127.0.0.1", port, static=CLIENT) for _ in range(3)]
    for conn in held:  # make sure all three are past the handshake on the server
        await conn.send(b"x")
        assert await conn.receive() == b"x"
    with pytest.raises(ConnectionClosed):
        await connect("127.0.0.1", port, static=CLIENT, timeout=5)
    assert stats.refused == 1 and stats.peak_admitted == 3
    await held.pop().aclose()
    with trio.fail_after(5):
        while stats.admitted == 3:
            await trio.sleep(0.01)
    again = await connect("127.0.0.1", port, static=CLIENT)
    await again.send(b"in")
    assert await again.receive() == b"in"


async def test_tcp_cap_evicts_the_least_recently_active_idle_connection(nursery):
    # spec/09 §9.3: when every slot is established, a newcomer evicts the idle one
    # (nothing in flight) that was active least recently; busy ones are kept.
    limits = TransportLimits(max_connections=3, max_handshaking=3)
    stats = ListenerStats()
    evicted = []

    async def handler(conn):
        first = await conn.receive()
        if first == b"busy":
            conn.busy = lambda: True
        else:
            # A clean goodbye on eviction, as the delivery layer does (a close frame).
            conn.on_evict = lambda: nursery.start_soon(goodbye, conn)
        await conn.send(first)
        await echo(conn)

    async def goodbye(conn):
        evicted.append(first_words[conn.remote_static])
        await conn.send(b"bye")

    keys = [KeyPair.from_private(bytes([i]) * 32) for i in range(1, 6)]
    first_words = {}
    held = []
    for key, word in zip(keys, [b"busy", b"old", b"recent"]):
        first_words[key.public] = word
        conn = await connect("127.0.0.1", port := port if held else await start_server(
            nursery, static=SERVER, handler=handler, limits=limits, stats=stats), static=key)
        await conn.send(word)
        assert await conn.receive() == word
        held.append(conn)
        await trio.sleep(0.05)  # distinct activity times
    await held[2].send(b"again")  # "recent" is active again; "old" is now the least recent
    assert await held[2].receive() == b"again"
    newcomer = await connect("127.0.0.1", port, static=keys[3])
    first_words[keys[3].public] = b"new"
    await newcomer.send(b"new")
    assert await newcomer.receive() == b"new"
    with trio.fail_after(5):
        assert await held[1].receive() == b"bye"  # the goodbye, then the close
        with pytest.raises(ConnectionClosed):
            await held[1].receive()
    assert evicted == [b"old"] and stats.evicted_idle == 1 and stats.refused == 0
    assert stats.admitted == 3 and stats.established == 3
    for conn in (held[0], held[2]):  # the busy one and the recent one are untouched
        await conn.send(b"ping")
        assert await conn.receive() == b"ping"
    # "recent" was pinged just now: "new" is the least recently active idle one.
    busy = []
    for key in keys[4:] + [KeyPair.from_private(bytes([9]) * 32)]:
        conn = await connect("127.0.0.1", port, static=key)
        await conn.send(b"busy")
        assert await conn.receive() == b"busy"
        busy.append(conn)
    assert evicted == [b"old", b"new", b"recent"] and stats.evicted_idle == 3
    # Now every slot is busy: the next newcomer is refused.
    with pytest.raises(ConnectionClosed):
        await connect("127.0.0.1", port, static=OTHER, timeout=5)
    assert stats.refused == 1


async def test_tcp_cap_evicts_an_idle_connection_without_on_evict_at_once(nursery):
    stats = ListenerStats()
    port = await start_server(nursery, static=SERVER, handler=echo, stats=stats,
                               limits=TransportLimits(max_connections=1, max_handshaking=1))
    first = await connect("127.0.0.1", port, static=CLIENT)
    await first.send(b"x")
    assert await first.receive() == b"x"
    second = await connect("127.0.0.1", port, static=OTHER)
    await second.send(b"y")
    assert await second.receive() == b"y"
    with trio.fail_after(0.9), pytest.raises(ConnectionClosed):  # before EVICT_GRACE: no grace given
        await first.receive()
    assert stats.evicted_idle == 1 and stats.admitted == 1


async def test_tcp_idle_timeout(nursery):
    reasons = []

    async def handler(conn):
        try:
            await conn.receive()
        except RemoteError as exc:
            reasons.append(exc)

    limits = TransportLimits(idle_timeout=0.3)
    port = await start_server(nursery, static=SERVER, handler=handler, limits=limits)
    conn = await connect("127.0.0.1", port, static=CLIENT)
    start = trio.current_time()
    with trio.fail_after(3):
        with pytest.raises(ConnectionClosed):
            await conn.receive()
    assert 0.25 <= trio.current_time() - start < 2
    assert len(reasons) == 1 and isinstance(reasons[0], IdleTimeout)


async def test_tcp_traffic_keeps_connection_alive(nursery):
    limits = TransportLimits(idle_timeout=0.3)
    port = await start_server(nursery, static=SERVER, handler=echo, limits=limits)
    conn = await connect("127.0.0.1", port, static=CLIENT)
    for _ in range(8):  # 0.8 s in total, never 0.3 s quiet
        await trio.sleep(0.1)
        await conn.send(b"tick")
        assert await conn.receive() == b"tick"


async def test_connect_to_closed_port_is_unreachable():
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    with pytest.raises(Unreachable):
        await connect("127.0.0.1", port, static=CLIENT, timeout=5)


async def test_connect_expected_static_over_tcp(nursery):
    port = await start_server(nursery, static=SERVER, handler=echo)
    with pytest.raises(UnexpectedPeer):
        await connect("127.0.0.1", port, static=CLIENT, remote_static=OTHER.public, pattern="XX")
    with pytest.raises(ConnectionClosed):
        await connect("127.0.0.1", port, static=CLIENT, remote_static=OTHER.public)  # IK
