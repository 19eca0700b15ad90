"""The Guarantees section of PROTOCOL.md: ordering and delivery across partner changes,
refusals always answered, slow receivers cut off, and a churn run that checks no
message ever reaches anyone but the sender's partner of that moment.
"""
import asyncio
import json
import random
import socket
import struct
import time
import uuid

import pytest

from wsclient import (CLOSE, TEXT, Chat, Closed, RawWS, close_all, close_payload, encode_frame, pair,
                      run, start)

CHURN_SECONDS = 5.0   # how long the churn test cycles; the whole file stays well under 30 s
CHURN_CLIENTS = 200


async def _raw_then_partner(srv):
    """A raw client `r` queued first and a websockets client `b` paired with it."""
    r = await asyncio.to_thread(RawWS, srv.port)
    assert (await asyncio.to_thread(r.recv_json, 5, True))["type"] == "online"
    assert (await asyncio.to_thread(r.recv_json)) == {"type": "waiting"}
    b = await Chat.joined(srv, name="b")
    await b.expect("paired")
    assert (await asyncio.to_thread(r.recv_json))["type"] == "paired"
    return r, b


@pytest.mark.parametrize("how", ["close_frame", "tcp_close", "tcp_reset", "next", "stop"])
def test_all_accepted_messages_arrive_in_order_before_partner_left(server_factory, how):
    srv = start(server_factory, "--no-rate-limits")

    async def body():
        r, b = await _raw_then_partner(srv)
        # All 100 messages and the leave command go out in one write.
        data = b"".join(
            encode_frame(TEXT, json.dumps({"type": "message", "text": f"m{i}"}))
            for i in range(100))
        tail = {
            "close_frame": encode_frame(CLOSE, close_payload(1000)),
            "next": encode_frame(TEXT, '{"type":"next"}'),
            "stop": encode_frame(TEXT, '{"type":"stop"}'),
        }.get(how, b"")
        r.send(data + tail)
        if how == "tcp_close":
            r.sock.close()
        elif how == "tcp_reset":
            # RST instead of FIN. Data the server already read still counts as accepted,
            # so only require the prefix property below.
            r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await asyncio.sleep(0.3)
            r.sock.close()
        got = []
        while True:
            msg = await b.recv()
            if msg["type"] == "partner_left":
                break
            assert msg["type"] == "message", msg
            got.append(msg["text"])
        assert got == [f"m{i}" for i in range(len(got))], got[:10]
        assert len(got) == 100, f"only {len(got)} of 100 messages before partner_left"
        await b.silence(0.2)
        await b.close()
        r.close()

    run(body())


def test_partner_gone_from_its_close_frame(server_factory):
    """After the partner's close frame nothing more is relayed to it; the sender is refused."""
    srv = start(server_factory)

    async def body():
        r, b = await _raw_then_partner(srv)
        r.send_frame(CLOSE, close_payload(1000))  # the TCP connection stays open
        await b.expect("partner_left")
        await b.send({"type": "message", "text": "too late"})
        await b.expect_error("not_paired")
        assert await asyncio.to_thread(r.close_code) == 1000
        # The raw client still reads: nothing but the close frame came after its close.
        assert b"too late" not in r.buf
        r.close()
        await b.close()

    run(body())


def test_nothing_reaches_a_later_partner(server_factory):
    srv = start(server_factory, "--no-rate-limits")

    async def body():
        a, b, _, _ = await pair(srv)
        c = await Chat.joined(srv, name="c")
        await c.expect("waiting")
        sent = 200

        async def talk():
            for i in range(sent):
                await a.send({"type": "message", "text": f"a{i}"})
                await asyncio.sleep(0.001)

        talker = asyncio.create_task(talk())
        got = []
        first = await b.expect("message")
        got.append(first["text"])
        await b.send({"type": "next"})
        while True:
            msg = await b.recv()
            if msg["type"] == "paired":
                break
            assert msg["type"] == "message", msg
            got.append(msg["text"])
        await c.expect("paired")
        await asyncio.wait_for(talker, 10)
        assert got == [f"a{i}" for i in range(len(got))]
        # a was unpaired: partner_left, and every later message refused, none lost.
        refused, left = 0, False
        try:
            while True:
                msg = await a.recv(0.5)
                if msg["type"] == "partner_left":
                    assert not left
                    left = True
                else:
                    assert msg["type"] == "error" and msg["code"] == "not_paired", msg
                    assert left, "not_paired before partner_left"
                    refused += 1
        except asyncio.TimeoutError:
            pass
        assert left
        assert len(got) + refused == sent, f"{len(got)} relayed + {refused} refused != {sent}"
        await b.send({"type": "message", "text": "from b"})
        await c.expect("message", text="from b")
        await c.silence(0.2)  # nothing of a's
        await close_all(a, b, c)

    run(body())


def test_refused_commands_each_get_an_error_in_order(server_factory):
    srv = start(server_factory, "--max-text-scalars", "10", "--rate-per-second", "1", "--rate-burst", "2")

    async def body():
        a = await Chat.joined(srv, name="a")
        await a.expect("waiting")
        cmds = ['nope', '{"type":"message","text":"x"}', '{"type":"bogus"}',
                '{"type":"message","text":""}', '{"type":"typing","active":"no"}']
        for cmd in cmds:
            await a.send(cmd)
        codes = [(await a.expect("error"))["code"] for _ in cmds]
        assert codes == ["bad_request", "not_paired", "bad_request", "bad_request", "bad_request"], codes
        b = await Chat.joined(srv, name="b")
        await b.expect("paired")
        await a.expect("paired")
        for cmd in ['{"type":"message","text":"12345678901"}', '{"type":"message","text":"1"}',
                    '{"type":"message","text":"2"}', '{"type":"message","text":"3"}']:
            await a.send(cmd)
        assert (await a.expect("error"))["code"] == "too_long"
        assert (await a.expect("error"))["code"] == "rate_limited"
        await b.expect("message", text="1")
        await b.expect("message", text="2")
        await b.silence(0.2)
        await close_all(a, b)

    run(body())


def test_slow_receiver_is_closed_1008_and_partner_told(server_factory):
    srv = start(server_factory, "--outgoing-cap", "65536", "--no-rate-limits")

    async def body():
        r = await asyncio.to_thread(RawWS, srv.port, "/ws", 4096)
        assert (await asyncio.to_thread(r.recv_json))["type"] == "waiting"
        a = await Chat.joined(srv, name="a")
        await a.expect("paired")
        assert (await asyncio.to_thread(r.recv_json))["type"] == "paired"
        # r stops reading now.
        big = json.dumps({"type": "message", "text": "\U0001F600" * 2000}, ensure_ascii=False)
        left = asyncio.create_task(a.expect("partner_left", timeout=20))
        t0 = time.monotonic()
        sent = 0
        while not left.done() and sent < 3000 and time.monotonic() - t0 < 15:
            await a.send(big)
            sent += 1
            if sent % 10 == 0:
                await asyncio.sleep(0)
        await asyncio.wait_for(left, 5)
        assert sent < 3000, "the slow receiver was never cut off"
        # Now read what was queued for r: it must end with a close frame, code 1008.
        code = await asyncio.to_thread(r.close_code, 10)
        assert code == 1008, code
        r.close()
        await a.close()

    run(body())


def test_fast_receiver_under_the_cap_is_not_cut_off(server_factory):
    srv = start(server_factory, "--outgoing-cap", "65536", "--no-rate-limits")

    async def body():
        a, b, _, _ = await pair(srv)
        text = "\U0001F600" * 2000
        for i in range(200):  # 1.6 MB in total, read as fast as it comes
            await a.send(json.dumps({"type": "message", "text": text}, ensure_ascii=False))
            await b.expect("message", text=text)
        await a.silence(0.1)
        await close_all(a, b)

    run(body())


# ---------------------------------------------------------------------------
# churn

class Epoch:
    """One pairing as one client sees it, from `paired` to its end."""

    def __init__(self, owner):
        self.owner = owner
        self.nonce = uuid.uuid4().hex
        self.sent = 0          # messages this client sent in it
        self.errors = 0        # not_paired refusals charged to it
        self.final = False     # its error window closed by a later paired/waiting
        self.truncated = False  # ended by our own close or the deadline
        self.ended = False
        self.partner_nonce = None
        self.received = 0


class ChurnStats:
    def __init__(self):
        self.violations = []
        self.senders = {}     # nonce -> Epoch (sending side)
        self.receivers = {}   # partner nonce -> Epoch (receiving side)
        self.relayed = 0
        self.pairings = 0
        self.reconnects = 0

    def bad(self, what):
        if len(self.violations) < 50:
            self.violations.append(what)


async def _agent(idx, srv, deadline, stats, rng):
    epoch = None      # the pairing whose messages we may still receive
    last = None       # the epoch whose not_paired window is still open
    pending = None    # "next" (until paired/waiting) or "stop" (until a quiet spell)
    queued = False

    async def connect():
        return await Chat.open(srv, name=f"agent{idx}", timeout=10)

    async def send_message():
        text = json.dumps({"id": idx, "n": epoch.nonce, "s": epoch.sent})
        epoch.sent += 1
        await chat.send({"type": "message", "text": text})

    def end_epoch(truncated=False):
        nonlocal epoch
        if epoch is not None:
            epoch.ended = True
            epoch.truncated = truncated
        epoch = None

    async def leave(cmd):
        nonlocal pending
        pending = cmd
        await chat.send({"type": cmd})

    # A version 1 client is queued at connect: it must not also send `next` while its first `paired` is on the
    # way (that `paired` would then look like the answer to the `next`, and the partner's first messages would seem
    # to come from the wrong pairing).
    chat = await connect()
    queued = True
    try:
        while time.monotonic() < deadline:
            try:
                msg = await chat.recv(timeout=0.2)
            except asyncio.TimeoutError:
                if pending == "stop":
                    # stop has no reply; after a quiet spell nothing of the old pairing can come.
                    end_epoch()
                    pending = None
                elif pending is None and epoch is not None:
                    await send_message()
                elif pending is None and not queued:
                    await leave("next")
                continue
            except Closed as e:
                stats.bad(f"agent{idx}: server closed with {e.code}")
                return
            t = msg["type"]
            if t == "paired":
                if last is not None:
                    last.final = True
                end_epoch()
                epoch = last = Epoch(idx)
                pending, queued = None, False
                stats.senders[epoch.nonce] = epoch
                stats.pairings += 1
                for _ in range(rng.randint(1, 5)):
                    await send_message()
            elif t == "waiting":
                if last is not None:
                    last.final = True
                last = None
                end_epoch()
                pending, queued = None, True
            elif t == "partner_left":
                if epoch is None:
                    stats.bad(f"agent{idx}: partner_left while not paired")
                end_epoch()
                if pending is None and rng.random() < 0.9:
                    await leave("next")
            elif t == "message":
                if epoch is None:
                    stats.bad(f"agent{idx}: message outside any pairing: {msg['text'][:80]}")
                    continue
                body = json.loads(msg["text"])
                if epoch.partner_nonce is None:
                    epoch.partner_nonce = body["n"]
                    other = stats.receivers.setdefault(body["n"], epoch)
                    if other is not epoch:
                        stats.bad(f"agent{idx}: nonce {body['n']} also reached agent{other.owner}")
                    sender = stats.senders.get(body["n"])
                    if sender is None or sender.owner != body["id"]:
                        stats.bad(f"agent{idx}: unknown sender epoch {body}")
                elif body["n"] != epoch.partner_nonce:
                    stats.bad(f"agent{idx}: message from a different pairing {body} "
                              f"(current partner nonce {epoch.partner_nonce})")
                if body["s"] != epoch.received:
                    stats.bad(f"agent{idx}: out of order, expected seq {epoch.received}, got {body}")
                epoch.received += 1
                stats.relayed += 1
                if pending is not None:
                    continue
                p = rng.random()
                if p < 0.80:
                    await send_message()
                    if rng.random() < 0.05:
                        await chat.send({"type": "typing", "active": rng.random() < 0.5})
                elif p < 0.88:
                    await leave("next")
                elif p < 0.91:
                    await leave("stop")
                elif p < 0.92:
                    # Close and come back as a fresh connection.
                    end_epoch(truncated=True)
                    if last is not None:
                        last.truncated = True
                    last, pending = None, None
                    await chat.close()
                    stats.reconnects += 1
                    chat = await connect()
                    queued = True
            elif t == "typing":
                if epoch is None:
                    stats.bad(f"agent{idx}: typing outside any pairing")
            elif t == "error":
                if msg.get("code") != "not_paired":
                    stats.bad(f"agent{idx}: unexpected error {msg}")
                elif last is None:
                    stats.bad(f"agent{idx}: not_paired with no message outstanding")
                else:
                    last.errors += 1
            else:
                stats.bad(f"agent{idx}: unexpected frame {msg}")
    finally:
        end_epoch(truncated=True)
        if last is not None:
            last.truncated = True
        await chat.close()


def test_churn_no_message_ever_reaches_anyone_but_the_current_partner(server_factory):
    srv = start(server_factory, "--no-rate-limits", "--max-connections-per-address", "10000")
    stats = ChurnStats()

    async def body():
        deadline = time.monotonic() + CHURN_SECONDS + 2  # +2 s for connecting
        rng = random.Random(1234)
        tasks = [asyncio.create_task(_agent(i, srv, deadline, stats, random.Random(rng.random())))
                 for i in range(CHURN_CLIENTS)]
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True),
                                         CHURN_SECONDS + 30)
        for i, r in enumerate(results):
            if isinstance(r, BaseException):
                stats.bad(f"agent{i} crashed: {r!r}")

    run(body(), timeout=CHURN_SECONDS + 40)

    checked = 0
    for nonce, s in stats.senders.items():
        accepted = s.sent - s.errors
        r = stats.receivers.get(nonce)
        got = r.received if r else 0
        if s.errors > s.sent:
            stats.bad(f"agent{s.owner}: {s.errors} refusals for {s.sent} messages")
        if s.final and not s.truncated and r is not None and r.ended and not r.truncated:
            checked += 1
            if got != accepted:
                stats.bad(f"agent{s.owner} epoch {nonce}: {accepted} accepted, partner got {got}")
        elif got > s.sent:
            stats.bad(f"agent{s.owner} epoch {nonce}: sent {s.sent}, partner got {got}")
    print(f"churn: {stats.pairings} pairings, {stats.relayed} messages, {stats.reconnects} reconnects, "
          f"{checked} pairings checked exactly")
    assert not stats.violations, "\n".join(stats.violations)
    assert stats.pairings >= CHURN_CLIENTS, f"only {stats.pairings} pairings"
    assert stats.relayed >= 2000, f"only {stats.relayed} messages relayed"
    assert checked >= 50, f"only {checked} pairings fully checked"
