"""The chat protocol and WebSocket framing of PROTOCOL.md, against a real uvchatd.

One test per table row or rule. Chat traffic uses the `websockets` client; anything a
library would refuse to send (unmasked, reserved bits, invalid UTF-8) goes through
`RawWS`. Every wait is bounded.
"""
import asyncio
import json
import signal
import socket
import time

import pytest

from wsclient import (BINARY, CLOSE, CONT, PING, PONG, TEXT, Chat, HTTPConn, RawWS,
                      close_all, close_payload, encode_frame, get, http_exchange, pair, run, start)

EMOJI = "\U0001F600"  # 4 bytes in UTF-8, a surrogate pair in JSON escapes
UPGRADE_HEADERS = ["Upgrade: websocket", "Connection: Upgrade",
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]


# ---------------------------------------------------------------------------
# online, waiting, paired

def test_first_frame_is_online_with_count_of_open_connections(server_factory):
    srv = start(server_factory)

    async def body():
        clients = []
        for n in range(1, 5):
            c = await Chat.open(srv, name=f"c{n}")
            first = await c.recv(keep_online=True)
            assert first == {"type": "online", "count": n}, first
            clients.append(c)
        await clients[0].close()
        await clients[1].close()
        await asyncio.sleep(0.3)
        c = await Chat.open(srv, name="late")
        first = await c.recv(keep_online=True)
        assert first == {"type": "online", "count": 3}, first
        await close_all(c, *clients)

    run(body())


def test_waiting_only_when_queued_not_when_paired_at_once(server_factory):
    srv = start(server_factory)

    async def body():
        a = await Chat.open(srv, name="a")
        assert (await a.recv(keep_online=True))["type"] == "online"
        assert (await a.recv(keep_online=True)) == {"type": "waiting"}
        b = await Chat.open(srv, name="b")
        assert (await b.recv(keep_online=True))["type"] == "online"
        pb = await b.recv(keep_online=True)
        assert pb["type"] == "paired", f"b was paired at once and must not see waiting: {pb}"
        assert pb["common"] == [] and pb["random"] is True
        pa = await a.expect("paired")
        assert pa["common"] == [] and pa["random"] is True
        await a.silence(0.2)
        await b.silence(0.1)
        await close_all(a, b)

    run(body())


def test_fifo_pairing_of_ten_clients(server_factory):
    srv = start(server_factory)

    async def body():
        clients = []
        for i in range(10):
            c = await Chat.joined(srv, name=f"c{i}")
            clients.append(c)
            if i % 2 == 0:
                await c.expect("waiting")
            else:
                await c.expect("paired")
                await clients[i - 1].expect("paired")
        # Each client tells its partner who it is; i must hear from i^1 only.
        for i, c in enumerate(clients):
            await c.send({"type": "message", "text": f"from {i}"})
        for i, c in enumerate(clients):
            await c.expect("message", text=f"from {i ^ 1}")
            await c.silence(0.05)
        await close_all(*clients)

    run(body())


def test_frame_in_same_segment_as_handshake_is_processed(server_factory):
    srv = start(server_factory)
    raw = RawWS(srv.port, upgrade=False)
    raw.sock.sendall(get("/ws", headers=UPGRADE_HEADERS).encode()
                     + encode_frame(TEXT, '{"type":"message","text":"early"}'))
    while b"\r\n\r\n" not in raw.buf:
        chunk = raw.sock.recv(65536)
        assert chunk, raw.buf
        raw.buf += chunk
    head, raw.buf = raw.buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert raw.recv_json() == {"type": "waiting"}
    err = raw.recv_json()
    assert err["type"] == "error" and err["code"] == "not_paired", err
    raw.close()


def test_frame_sent_one_byte_at_a_time(server_factory):
    srv = start(server_factory)
    raw = RawWS(srv.port)
    raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert raw.recv_json() == {"type": "waiting"}
    frame = encode_frame(TEXT, '{"type":"message","text":"' + "y" * 200 + '"}')
    for i in range(len(frame)):
        raw.send(frame[i:i + 1])
        if i < 16:
            time.sleep(0.005)
    err = raw.recv_json()
    assert err["type"] == "error" and err["code"] == "not_paired", err
    raw.close()


def test_message_in_one_byte_fragments_is_relayed(server_factory):
    srv = start(server_factory)

    async def body():
        raw = await asyncio.to_thread(_paired_raw, srv)
        b = await _join_partner_of(raw, srv)
        data = json.dumps({"type": "message", "text": "fragé" + EMOJI}, ensure_ascii=False).encode()
        frames = [encode_frame(TEXT if i == 0 else CONT, data[i:i + 1], fin=i == len(data) - 1)
                  for i in range(len(data))]
        raw.send(b"".join(frames))
        await b.expect("message", text="fragé" + EMOJI)
        raw.send_frame(TEXT, b"", fin=False)  # empty fragments are legal too
        raw.send_frame(CONT, b'{"type":"typing",', fin=False)
        raw.send_frame(CONT, b"", fin=False)
        raw.send_frame(CONT, b'"active":true}', fin=True)
        await b.expect("typing", active=True)
        raw.close()
        await b.close()

    run(body())


def test_upgrade_after_http_request_on_same_connection(server_factory):
    srv = start(server_factory)
    raw = RawWS(srv.port, upgrade=False)
    raw.send(get("/healthz").encode())
    while b"\r\n\r\n" not in raw.buf:
        raw.buf += raw.sock.recv(65536)
    head, rest = raw.buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    n = int([h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0])
    while len(rest) < n:
        rest += raw.sock.recv(65536)
    raw.buf = rest[n:]
    raw.handshake()
    assert raw.recv_json(keep_online=True)["type"] == "online"
    raw.close()


def test_upgrade_headers_are_case_insensitive_lists(server_factory):
    srv = start(server_factory)
    c = HTTPConn(srv.port)
    try:
        c.send("GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n"
               "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nSEC-WEBSOCKET-VERSION: 13\r\n"
               "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
        r = c.read_response(head_only=True)
        assert r.status == 101, r
        assert r.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    finally:
        c.close()


def test_echo_connections_are_not_counted_online(server_factory):
    srv = start(server_factory, "--echo")

    async def body():
        echoes = [await Chat.open(srv, path="/echo", name=f"e{i}") for i in range(2)]
        c = await Chat.open(srv, name="c")
        assert (await c.recv(keep_online=True)) == {"type": "online", "count": 1}
        await close_all(c, *echoes)

    run(body())


def test_never_paired_with_itself(server_factory):
    srv = start(server_factory)

    async def body():
        a = await Chat.joined(srv, name="a")
        await a.expect("waiting")
        for _ in range(3):
            await a.send({"type": "next"})
            await a.expect("waiting")
        await a.silence(0.3)
        await a.close()

    run(body())


def test_never_paired_with_a_closed_connection(server_factory):
    srv = start(server_factory)

    async def body():
        a = await Chat.joined(srv, name="a")
        await a.expect("waiting")
        await a.close()  # returns after the server's close frame: it has seen ours
        b = await Chat.joined(srv, name="b")
        await b.expect("waiting")
        await b.silence(0.3)
        await b.close()

    run(body())


# ---------------------------------------------------------------------------
# interests

def test_interests_pair_on_common_tag(server_factory):
    srv = start(server_factory, "--interest-timeout", "30")

    async def body():
        a, b, pa, pb = await pair(srv, "interests=music,Movies", "interests=movies,books")
        for p in (pa, pb):
            assert p["common"] == ["movies"] and p["random"] is False, p
        await close_all(a, b)

    run(body())


def test_interests_several_common_tags(server_factory):
    srv = start(server_factory, "--interest-timeout", "30")

    async def body():
        a, b, pa, pb = await pair(srv, "interests=music,movies,chess", "interests=chess,art,music")
        for p in (pa, pb):
            assert sorted(p["common"]) == ["chess", "music"] and p["random"] is False, p
        await close_all(a, b)

    run(body())


def test_interest_match_takes_longest_waiting_sharer(server_factory):
    srv = start(server_factory, "--interest-timeout", "30")

    async def body():
        waiting = []
        for tag in ("jazz", "rock", "pop"):
            c = await Chat.joined(srv, f"interests={tag}", name=tag)
            await c.expect("waiting")
            waiting.append(c)
        jazz, rock, pop = waiting
        d = await Chat.joined(srv, "interests=rock,jazz", name="d")
        assert (await d.expect("paired"))["common"] == ["jazz"]
        assert (await jazz.expect("paired"))["common"] == ["jazz"]
        e = await Chat.joined(srv, "interests=pop,rock", name="e")
        assert (await e.expect("paired"))["common"] == ["rock"]
        assert (await rock.expect("paired"))["common"] == ["rock"]
        await pop.silence(0.2)
        await close_all(d, e, *waiting)

    run(body())


@pytest.mark.parametrize("qa,qb,common", [
    ("interests=%20Music%20,,MUSIC", "interests=music", ["music"]),
    ("interests=rock%20%26%20roll", "interests=ROCK%20%26%20Roll", ["rock & roll"]),
    ("interests=%C3%A9t%C3%A9", "interests=%C3%A9t%C3%A9", ["\u00e9t\u00e9"]),
    ("interests=Tag,tag,TAG,%20tag", "interests=tag", ["tag"]),
    ("interests=" + "a" * 32, "interests=" + "A" * 32, ["a" * 32]),
    ("interests=,,%20,a,b,c,d,e", "interests=e", ["e"]),
    ("interests=" + "x" * 33 + ",ok", "interests=" + "x" * 33 + ",ok", ["ok"]),
    ("lang=en&interests=Music&x=1", "interests=music", ["music"]),
])
def test_interest_normalization(server_factory, qa, qb, common):
    srv = start(server_factory, "--interest-timeout", "30")

    async def body():
        a, b, pa, pb = await pair(srv, qa, qb)
        for p in (pa, pb):
            assert p["common"] == common and p["random"] is False, p
        await close_all(a, b)

    run(body())


def test_interest_over_32_chars_is_dropped(server_factory):
    # With every tag dropped both clients have no interests: a random match at once.
    srv = start(server_factory, "--interest-timeout", "30")

    async def body():
        t0 = time.monotonic()
        a, b, pa, pb = await pair(srv, "interests=" + "x" * 33, "interests=" + "x" * 33)
        assert time.monotonic() - t0 < 2
        for p in (pa, pb):
            assert p["common"] == [] and p["random"] is True, p
        await close_all(a, b)

    run(body())


def test_at_most_five_interests_are_kept(server_factory):
    srv = start(server_factory, "--interest-timeout", "30")

    async def body():
        a = await Chat.joined(srv, "interests=a,b,c,d,e,f", name="a")
        await a.expect("waiting")
        b = await Chat.joined(srv, "interests=f", name="b")
        await b.expect("waiting")
        await b.silence(0.5)
        await a.silence(0.05)
        await close_all(a, b)

    run(body())


def test_interest_timeout_falls_back_to_random(server_factory):
    srv = start(server_factory, "--interest-timeout", "0.5")

    async def body():
        a = await Chat.joined(srv, "interests=music", name="a")
        await a.expect("waiting")
        b = await Chat.joined(srv, "interests=books", name="b")
        t0 = time.monotonic()
        await b.expect("waiting")
        pb = await b.expect("paired", timeout=4)
        elapsed = time.monotonic() - t0
        pa = await a.expect("paired")
        for p in (pa, pb):
            assert p["common"] == [] and p["random"] is True, p
        assert 0.3 <= elapsed <= 3, f"paired after {elapsed:.2f} s, interest timeout 0.5 s"
        await close_all(a, b)

    run(body())


@pytest.mark.parametrize("first,second", [("interests=music", None), (None, "interests=music")])
def test_interest_client_meets_plain_client_after_timeout(server_factory, first, second):
    srv = start(server_factory, "--interest-timeout", "0.5")

    async def body():
        a = await Chat.joined(srv, first, name="a")
        await a.expect("waiting")
        t0 = time.monotonic()
        b = await Chat.joined(srv, second, name="b")
        await b.expect("waiting")
        pb = await b.expect("paired", timeout=4)
        pa = await a.expect("paired")
        for p in (pa, pb):
            assert p["common"] == [] and p["random"] is True, p
        # Neither pairing is immediate: the interest client waits out its own timeout.
        assert time.monotonic() - t0 >= (0.2 if first else 0.35)
        await close_all(a, b)

    run(body())


# ---------------------------------------------------------------------------
# message and typing

TEXTS = [
    "hello",
    "h\u00e9llo w\u00f6rld",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "emoji \U0001F600\U0001F389\U0001F44D\U0001F3FD \U0001F468\u200D\U0001F469\u200D\U0001F467",
    'quote " backslash \\ slash / newline \n tab \t cr \r',
    "nul \u0000 and bell \u0007 and del \u007f",
    "line sep \u2028 para sep \u2029 bom \ufeff",
    "<script>alert('x')</script> & &amp;",
    "  leading and trailing spaces  ",
    "e\u0301 combining, \U0010FFFF last scalar",
    "x",
    "   ",
]


def test_message_relay_is_exact(server_factory):
    srv = start(server_factory, "--no-rate-limits")

    async def body():
        a, b, _, _ = await pair(srv)
        for text in TEXTS:
            for ascii_only in (True, False):
                await a.send(json.dumps({"type": "message", "text": text}, ensure_ascii=ascii_only))
                msg = await b.expect("message")
                assert msg["text"] == text, (text, msg)
        await a.silence(0.1)
        await b.send({"type": "message", "text": "back"})
        await a.expect("message", text="back")
        await close_all(a, b)

    run(body())


def test_message_json_escapes_are_decoded(server_factory):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        await a.send(r'{"type":"message","text":"\u00e9\ud83d\ude00\n\"\/\\\b\f\r\t\u0041"}')
        await b.expect("message", text="\u00e9\U0001F600\n\"/\\\b\f\r\tA")
        await a.send('{ "type" : "message" ,\n\t"text" : "spaced" }')
        await b.expect("message", text="spaced")
        await close_all(a, b)

    run(body())


def test_typing_is_relayed_both_ways(server_factory):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        for active in (True, False):
            await a.send({"type": "typing", "active": active})
            msg = await b.expect("typing")
            assert msg["active"] is active
            await b.send({"type": "typing", "active": active})
            msg = await a.expect("typing")
            assert msg["active"] is active
        await a.silence(0.1)
        await close_all(a, b)

    run(body())


@pytest.mark.parametrize("payload", [
    '{"type":"typing","active":"true"}',
    '{"type":"typing","active":1}',
    '{"type":"typing","active":0}',
    '{"type":"typing","active":null}',
    '{"type":"typing","active":[]}',
    '{"type":"typing"}',
])
def test_typing_active_must_be_boolean(server_factory, payload):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        await a.send(payload)
        await a.expect_error("bad_request")
        await b.silence(0.2)
        await close_all(a, b)

    run(body())


def test_typing_while_unpaired_is_ignored(server_factory):
    srv = start(server_factory)

    async def body():
        a = await Chat.joined(srv, name="a")
        await a.expect("waiting")
        await a.send({"type": "typing", "active": True})
        await a.silence(0.4)
        b = await Chat.joined(srv, name="b")
        await b.expect("paired")
        await a.expect("paired")
        await b.silence(0.2)  # the earlier typing is not replayed to a new partner
        await b.send({"type": "stop"})
        await a.expect("partner_left")
        await a.send({"type": "typing", "active": False})  # idle now
        await a.silence(0.3)
        await close_all(a, b)

    run(body())


# ---------------------------------------------------------------------------
# next and stop

@pytest.mark.parametrize("leaver", ["a", "b"])
def test_next_with_someone_waiting(server_factory, leaver):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        c = await Chat.joined(srv, name="c")
        await c.expect("waiting")
        x, y = (a, b) if leaver == "a" else (b, a)
        await x.send({"type": "next"})
        await y.expect("partner_left")
        px = await x.recv()
        assert px["type"] == "paired", f"next must queue again and pair with c at once: {px}"
        await c.expect("paired")
        await x.send({"type": "message", "text": "to c"})
        await c.expect("message", text="to c")
        await y.silence(0.2)
        await close_all(a, b, c)

    run(body())


@pytest.mark.parametrize("leaver", ["a", "b"])
def test_next_with_nobody_waiting_then_partner_is_idle(server_factory, leaver):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        x, y = (a, b) if leaver == "a" else (b, a)
        await x.send({"type": "next"})
        await y.expect("partner_left")
        await x.expect("waiting")
        # y is idle, not queued: a newcomer pairs with x.
        d = await Chat.joined(srv, name="d")
        await d.expect("paired")
        await x.expect("paired")
        await y.silence(0.2)
        await y.send({"type": "message", "text": "anyone?"})
        await y.expect_error("not_paired")
        await close_all(a, b, d)

    run(body())


def test_next_while_waiting_queues_again(server_factory):
    srv = start(server_factory)

    async def body():
        a = await Chat.joined(srv, name="a")
        await a.expect("waiting")
        await a.send({"type": "next"})
        await a.expect("waiting")
        b = await Chat.joined(srv, name="b")
        await b.expect("paired")
        await a.expect("paired")
        await close_all(a, b)

    run(body())


def test_next_after_partner_left_queues_again(server_factory):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        await a.send({"type": "stop"})
        await b.expect("partner_left")
        await b.send({"type": "next"})
        await b.expect("waiting")
        await a.send({"type": "next"})
        await a.expect("paired")
        await b.expect("paired")
        await close_all(a, b)

    run(body())


def test_stop_leaves_partner_and_stays_idle(server_factory):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        await a.send({"type": "stop"})
        await b.expect("partner_left")
        await a.silence(0.3)  # stop has no reply
        await a.send({"type": "stop"})  # already idle: nothing happens
        await a.silence(0.3)
        await b.silence(0.05)
        await a.send({"type": "message", "text": "hello?"})
        await a.expect_error("not_paired")
        # Neither is queued: a newcomer waits.
        c = await Chat.joined(srv, name="c")
        await c.expect("waiting")
        await c.silence(0.2)
        await close_all(a, b, c)

    run(body())


def test_stop_while_waiting_leaves_queue(server_factory):
    srv = start(server_factory)

    async def body():
        a = await Chat.joined(srv, name="a")
        await a.expect("waiting")
        await a.send({"type": "stop"})
        await a.silence(0.3)
        b = await Chat.joined(srv, name="b")
        await b.expect("waiting")
        await b.silence(0.2)
        await a.silence(0.05)
        await close_all(a, b)

    run(body())


def test_message_while_not_paired_is_not_paired(server_factory):
    srv = start(server_factory)

    async def body():
        a = await Chat.joined(srv, name="a")
        await a.expect("waiting")
        await a.send({"type": "message", "text": "into the void"})
        await a.expect_error("not_paired")
        # Still queued and still open.
        b = await Chat.joined(srv, name="b")
        await b.expect("paired")
        await a.expect("paired")
        await close_all(a, b)

    run(body())


# ---------------------------------------------------------------------------
# refused commands

@pytest.mark.parametrize("payload", [
    "not json",
    "",
    "[1,2]",
    '"message"',
    "null",
    "{}",
    '{"type":5}',
    '{"type":null}',
    '{"type":["message"]}',
    '{"type":"dance"}',
    '{"type":"Message","text":"x"}',
    '{"type":"message"}',
    '{"type":"message","text":5}',
    '{"type":"message","text":null}',
    '{"type":"message","text":["a"]}',
    '{"type":"message","text":""}',
    '{"type":"message","text":"a"',
    '{"type":"message","text":"a"} x',
    '{"type":"message","text":"a",}',
    "{'type':'message','text':'a'}",
    '{"type":"message","text":"bad escape \\x"}',
    '{"type":"message","text":"short \\u12"}',
    '{"type":"message","text":"raw\ncontrol"}',
])
def test_bad_request(server_factory, payload):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        await a.send(payload)
        await a.expect_error("bad_request")
        await b.silence(0.2)
        # The connection stays open and paired.
        await a.send({"type": "message", "text": "still here"})
        await b.expect("message", text="still here")
        await close_all(a, b)

    run(body())


@pytest.mark.parametrize("escape", [
    r"\ud83d",
    r"\ude00",
    r"\ud83dx",
    r"\ud83d\ud83d",
    r"\ude00\ud83d",
    r"\ud83d\u0041",
])
def test_lone_surrogate_escape_is_bad_request(server_factory, escape):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        await a.send('{"type":"message","text":"a' + escape + 'b"}')
        await a.expect_error("bad_request")
        await b.silence(0.2)
        await close_all(a, b)

    run(body())


def test_text_limit_in_scalars_raw_4_byte_characters(server_factory):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        ok = EMOJI * 2000
        await a.send(json.dumps({"type": "message", "text": ok}, ensure_ascii=False))
        await b.expect("message", text=ok)
        await a.send(json.dumps({"type": "message", "text": EMOJI * 2001}, ensure_ascii=False))
        await a.expect_error("too_long")
        await b.silence(0.2)
        await a.send(json.dumps({"type": "message", "text": "a" * 2001}))
        await a.expect_error("too_long")
        await a.send(json.dumps({"type": "message", "text": "a" * 2000}))
        await b.expect("message", text="a" * 2000)
        await close_all(a, b)

    run(body())


def test_text_limit_in_scalars_escaped_surrogate_pairs(server_factory):
    # 2000 escaped pairs are 24 000 bytes: raise the frame limit so only the text limit bites.
    srv = start(server_factory, "--max-message-bytes", "65536")

    async def body():
        a, b, _, _ = await pair(srv)
        ok = json.dumps({"type": "message", "text": EMOJI * 2000})
        assert "\\ud83d\\ude00" in ok
        await a.send(ok)
        await b.expect("message", text=EMOJI * 2000)
        await a.send(json.dumps({"type": "message", "text": EMOJI * 2001}))
        await a.expect_error("too_long")
        await b.silence(0.2)
        await close_all(a, b)

    run(body())


def test_text_limit_is_configurable(server_factory):
    srv = start(server_factory, "--max-text-scalars", "5")

    async def body():
        a, b, _, _ = await pair(srv)
        await a.send({"type": "message", "text": "12345"})
        await b.expect("message", text="12345")
        await a.send({"type": "message", "text": "123456"})
        await a.expect_error("too_long")
        await a.send(json.dumps({"type": "message", "text": EMOJI * 5}))
        await b.expect("message", text=EMOJI * 5)
        await close_all(a, b)

    run(body())


def test_unknown_fields_are_ignored(server_factory):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        await a.send('{"color":"red","type":"message","n":{"a":[1,{"b":null}],"c":1.5e3},"text":"hi","t":true}')
        await b.expect("message", text="hi")
        await a.send('{"type":"typing","active":true,"extra":[]}')
        await b.expect("typing", active=True)
        await a.send('{"type":"next","why":"bored"}')
        await b.expect("partner_left")
        await a.expect("waiting")
        await close_all(a, b)

    run(body())


def test_duplicate_keys_last_wins(server_factory):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        await a.send('{"type":"message","text":"first","text":"second"}')
        await b.expect("message", text="second")
        await a.send('{"type":"dance","type":"message","text":"x"}')
        await b.expect("message", text="x")
        await a.send('{"type":"message","type":"typing","text":"x","active":false}')
        await b.expect("typing", active=False)
        await a.send('{"type":"typing","active":"yes","active":true}')
        await b.expect("typing", active=True)
        await a.send('{"type":"message","text":5,"text":"num"}')
        await b.expect("message", text="num")
        await a.send('{"type":"message","text":"ok","text":""}')
        await a.expect_error("bad_request")
        await b.silence(0.2)
        await close_all(a, b)

    run(body())


def test_rate_limit_burst_then_rate_limited(server_factory):
    srv = start(server_factory)  # default: 10 per second, burst 20

    async def body():
        a, b, _, _ = await pair(srv)
        sent = 30
        t0 = time.monotonic()
        for i in range(sent):
            await a.send({"type": "message", "text": str(i)})
        refill = int((time.monotonic() - t0) * 10) + 1
        got = []
        try:
            while True:
                got.append(int((await b.expect("message", timeout=0.5))["text"]))
        except asyncio.TimeoutError:
            pass
        errors = 0
        try:
            while True:
                await a.expect_error("rate_limited", timeout=0.5)
                errors += 1
        except asyncio.TimeoutError:
            pass
        assert got == sorted(got), got
        assert got[:20] == list(range(20)), f"the burst of 20 must pass: {got}"
        assert len(got) <= 20 + refill, f"burst 20 at 10/s, but {len(got)} of {sent} relayed"
        assert errors == sent - len(got), f"{errors} rate_limited errors for {sent - len(got)} refused"
        # Tokens come back at 10 per second.
        await asyncio.sleep(0.5)
        await a.send({"type": "message", "text": "later"})
        await b.expect("message", text="later")
        await close_all(a, b)

    run(body())


def test_rate_limit_is_configurable_and_can_be_disabled(server_factory):
    srv = start(server_factory, "--rate-per-second", "1", "--rate-burst", "3")

    async def body():
        a, b, _, _ = await pair(srv)
        for i in range(4):
            await a.send({"type": "message", "text": str(i)})
        for i in range(3):
            await b.expect("message", text=str(i))
        await a.expect_error("rate_limited")
        await b.silence(0.2)
        await close_all(a, b)

    run(body())
    srv = start(server_factory, "--no-rate-limits")

    async def unlimited():
        a, b, _, _ = await pair(srv)
        for i in range(200):
            await a.send({"type": "message", "text": str(i)})
        for i in range(200):
            await b.expect("message", text=str(i))
        await a.silence(0.1)
        await close_all(a, b)

    run(unlimited())


# ---------------------------------------------------------------------------
# frames

def _paired_raw(srv):
    """A raw client paired with a websockets client; returns (raw, chat coroutine result)."""
    raw = RawWS(srv.port)
    assert raw.recv_json(keep_online=True)["type"] == "online"
    assert raw.recv_json() == {"type": "waiting"}
    return raw


async def _join_partner_of(raw, srv):
    b = await Chat.joined(srv, name="b")
    await b.expect("paired")
    assert (await asyncio.to_thread(raw.recv_json))["type"] == "paired"
    return b


def test_binary_frame_on_ws_closes_1003(server_factory):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        await a.send(b'{"type":"message","text":"bin"}')
        assert await a.closed() == 1003
        await b.expect("partner_left")
        await b.silence(0.1)
        await b.close()

    run(body())


def test_message_size_limit_16k_boundary(server_factory):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        base = '{"type":"message","text":"x","pad":""}'
        exact = base.replace('""', '"' + "p" * (16384 - len(base)) + '"')
        assert len(exact) == 16384
        await a.send(exact)
        await b.expect("message", text="x")
        over = base.replace('""', '"' + "p" * (16385 - len(base)) + '"')
        await a.send(over)
        assert await a.closed() == 1009
        await b.expect("partner_left")
        await b.close()

    run(body())


def test_message_size_limit_is_configurable(server_factory):
    srv = start(server_factory, "--max-message-bytes", "1000")

    def body():
        raw = RawWS(srv.port)
        assert raw.recv_json() == {"type": "waiting"}
        raw.send_text("{" + " " * 998 + "}")  # 1000 bytes: allowed, then bad_request
        assert raw.recv_json()["code"] == "bad_request"
        raw.send_text("{" + " " * 999 + "}")
        assert raw.close_code() == 1009
        raw.close()

    body()


def test_fragmented_message_over_limit_closes_1009(server_factory):
    srv = start(server_factory)
    raw = RawWS(srv.port)
    raw.send_frame(TEXT, b'{"type":"message","text":"' + b"a" * 9000, fin=False)
    raw.send_frame(CONT, b"a" * 9000, fin=False)
    raw.send_frame(CONT, b'"}', fin=True)
    assert raw.close_code() == 1009
    raw.close()


def test_oversized_frame_header_closes_1009_before_payload(server_factory):
    srv = start(server_factory)
    raw = RawWS(srv.port)
    # Only the header of a 1 GiB frame: the server must not wait for the payload.
    raw.send(bytes([0x81, 0xFF]) + (1 << 30).to_bytes(8, "big") + b"\0\0\0\0")
    assert raw.close_code(3) == 1009
    raw.close()


@pytest.mark.parametrize("frames", [
    [(TEXT, b"\xff", True)],
    [(TEXT, b'{"type":"message","text":"\xc3"}', True)],
    [(TEXT, b'{"type":"message","text":"\xc0\xaf"}', True)],
    [(TEXT, b'{"type":"message","text":"\xed\xa0\x80"}', True)],
    [(TEXT, b'{"type":"message","text":"\xf4\x90\x80\x80"}', True)],
    [(TEXT, b'{"type":"message","text":"ok', False), (CONT, b'\xc3"}', True)],
])
def test_invalid_utf8_closes_1007(server_factory, frames):
    srv = start(server_factory)
    raw = RawWS(srv.port)
    for op, payload, fin in frames:
        raw.send_frame(op, payload, fin=fin)
    assert raw.close_code() == 1007
    raw.close()


def test_utf8_split_across_fragments_is_valid(server_factory):
    srv = start(server_factory)

    async def body():
        raw = await asyncio.to_thread(_paired_raw, srv)
        b = await _join_partner_of(raw, srv)
        raw.send_frame(TEXT, b'{"type":"message","text":"caf\xc3', fin=False)
        raw.send_frame(PING, b"mid")
        raw.send_frame(CONT, b'\xa9 \xf0\x9f', fin=False)
        raw.send_frame(CONT, b'\x98\x80"}', fin=True)
        await b.expect("message", text="caf\u00e9 " + EMOJI)
        fin, op, payload = await asyncio.to_thread(raw.recv_frame)
        assert (op, payload) == (PONG, b"mid")
        raw.close()
        await b.expect("partner_left")
        await b.close()

    run(body())


@pytest.mark.parametrize("name,data", [
    ("unmasked", [dict(opcode=TEXT, payload='{"type":"stop"}', mask=False)]),
    ("rsv1", [dict(opcode=TEXT, payload='{"type":"stop"}', rsv=4)]),
    ("rsv3", [dict(opcode=TEXT, payload='{"type":"stop"}', rsv=1)]),
    ("opcode3", [dict(opcode=0x3, payload=b"")]),
    ("opcode11", [dict(opcode=0xB, payload=b"")]),
    ("fragmented_ping", [dict(opcode=PING, payload=b"x", fin=False)]),
    ("long_ping", [dict(opcode=PING, payload=b"x" * 126)]),
    ("lone_continuation", [dict(opcode=CONT, payload=b"x")]),
    ("text_inside_fragmented", [dict(opcode=TEXT, payload=b"{", fin=False),
                                dict(opcode=TEXT, payload=b"}")]),
    ("close_one_byte", [dict(opcode=CLOSE, payload=b"\x03")]),
    ("close_code_999", [dict(opcode=CLOSE, payload=close_payload(999))]),
    ("close_code_1005", [dict(opcode=CLOSE, payload=close_payload(1005))]),
    ("close_bad_utf8_reason", [dict(opcode=CLOSE, payload=close_payload(1000, b"\xff"))]),
])
def test_protocol_violation_closes_1002(server_factory, name, data):
    srv = start(server_factory)
    raw = RawWS(srv.port)
    for kw in data:
        kw = dict(kw)
        raw.send_frame(kw.pop("opcode"), kw.pop("payload"), **kw)
    expected = 1007 if name == "close_bad_utf8_reason" else 1002
    assert raw.close_code() == expected, name
    assert raw.eof(3), "server keeps the TCP connection after a protocol error"
    raw.close()


def test_ping_gets_pong_with_same_payload(server_factory):
    srv = start(server_factory)
    raw = RawWS(srv.port)
    raw.send_frame(PING, b"hello ping")
    while True:
        fin, op, payload = raw.recv_frame()
        if op != TEXT:
            break
    assert (fin, op, payload) == (True, PONG, b"hello ping")
    raw.send_frame(PONG, b"unsolicited")  # allowed and ignored
    raw.send_text('{"type":"next"}')
    assert raw.recv_json() == {"type": "waiting"}
    raw.close()


def test_close_handshake_echoes_code(server_factory):
    srv = start(server_factory)
    raw = RawWS(srv.port)
    raw.send_frame(CLOSE, close_payload(1000, b"bye"))
    assert raw.close_code() == 1000
    assert raw.eof(3)
    raw.close()


def test_empty_close_frame_is_answered(server_factory):
    srv = start(server_factory)
    raw = RawWS(srv.port)
    raw.send_frame(CLOSE, b"")
    assert raw.close_code() in (None, 1000)
    assert raw.eof(3)
    raw.close()


# ---------------------------------------------------------------------------
# idle ping, online updates, caps

def test_idle_ping_keeps_answering_client_open(server_factory):
    srv = start(server_factory, "--ping-interval", "0.5")

    async def body():
        a = await Chat.joined(srv, name="a")  # websockets answers pings itself
        await a.expect("waiting")
        await a.silence(2.5)
        await a.send({"type": "message", "text": "still open"})
        await a.expect_error("not_paired")
        await a.close()

    run(body())


def test_idle_ping_closes_silent_client_1008(server_factory):
    srv = start(server_factory, "--ping-interval", "0.5")
    raw = RawWS(srv.port)
    t0 = time.monotonic()
    pings = 0
    code = "none"
    while time.monotonic() - t0 < 6:
        try:
            fin, op, payload = raw.recv_frame(6)
        except EOFError:
            break
        if op == PING:
            pings += 1
        elif op == CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            break
    elapsed = time.monotonic() - t0
    assert pings >= 1, "server never pinged"
    assert code == 1008, f"close code {code}"
    assert 0.8 <= elapsed <= 3.5, f"closed after {elapsed:.2f} s with a 0.5 s ping interval"
    raw.close()


def test_online_count_updates(server_factory):
    interval = 0.5
    srv = start(server_factory, "--online-interval", str(interval))

    async def body():
        obs = await Chat.joined(srv, name="obs")
        others = []
        for i in range(5):
            others.append(await Chat.joined(srv, name=f"o{i}"))
            await asyncio.sleep(0.06)
        await obs.drain(1.5)  # collects online frames meanwhile
        assert obs.onlines, "no online update was pushed"
        assert obs.onlines[-1][1] == 6, obs.onlines
        for c in others[:3]:
            await c.close()
        await obs.drain(1.2)
        assert obs.onlines[-1][1] == 3, obs.onlines
        seen = len(obs.onlines)
        await obs.drain(1.2)  # nothing changes: nothing is pushed
        assert len(obs.onlines) == seen, obs.onlines
        # The first frame is left out: a server may push on a shared timer whose phase
        # a newcomer does not choose.
        times = [t for t, _ in obs.onlines[1:]]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(g >= interval * 0.8 for g in gaps), f"updates too close together: {gaps}"
        counts = [n for _, n in obs.onlines]
        assert all(x != y for x, y in zip(counts, counts[1:])), f"unchanged count pushed: {counts}"
        await close_all(obs, *others)

    run(body())


def test_online_count_not_pushed_to_lone_client(server_factory):
    srv = start(server_factory, "--online-interval", "0.3")

    async def body():
        obs = await Chat.joined(srv, name="obs")
        await obs.expect("waiting")
        await obs.drain(1.2)
        assert len(obs.onlines) == 1, f"count never changed from 1, yet pushed: {obs.onlines}"
        await obs.close()

    run(body())


def test_online_count_unchanged_is_not_pushed(server_factory):
    srv = start(server_factory, "--online-interval", "0.3")

    async def body():
        obs = await Chat.joined(srv, name="obs")
        # Connect and close at once, repeatedly: the count ends where it was.
        for _ in range(3):
            c = await Chat.joined(srv, name="blip")
            await c.close()
            await asyncio.sleep(0.01)
        await obs.drain(1.2)
        counts = [n for _, n in obs.onlines]
        assert all(x != y for x, y in zip(counts, counts[1:])), counts
        assert not counts or counts[-1] == 1, counts
        await obs.close()

    run(body())


@pytest.mark.parametrize("flag", ["--max-connections-per-address", "--max-connections"])
def test_connection_cap_gives_503_with_retry_after(server_factory, flag):
    srv = start(server_factory, flag, "2")

    async def body():
        a = await Chat.joined(srv, name="a")
        b = await Chat.joined(srv, name="b")
        req = get("/ws", headers=["Upgrade: websocket", "Connection: Upgrade",
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                  "Sec-WebSocket-Version: 13"])
        r = await asyncio.to_thread(http_exchange, srv.port, req)
        assert r.status == 503, r
        assert r.header("retry-after") and r.header("retry-after").strip().isdigit(), r.headers
        await a.close()
        await asyncio.sleep(0.3)
        c = await Chat.joined(srv, name="c")
        await close_all(b, c)

    run(body())


def test_new_connections_per_minute_cap_gives_503(server_factory):
    srv = start(server_factory, "--new-connections-per-minute", "3")

    async def body():
        clients = [await Chat.joined(srv, name=f"c{i}") for i in range(3)]
        r = await asyncio.to_thread(http_exchange, srv.port, get("/ws", headers=UPGRADE_HEADERS))
        assert r.status == 503, r
        assert r.header("retry-after") and r.header("retry-after").strip().isdigit(), r.headers
        await close_all(*clients)

    run(body())


def test_origin_allow_list_gives_403(server_factory):
    srv = start(server_factory, "--allow-origin", "http://good.example")
    r = http_exchange(srv.port, get("/ws", headers=UPGRADE_HEADERS + ["Origin: http://evil.example"]))
    assert r.status == 403
    c = HTTPConn(srv.port)
    try:
        c.send(get("/ws", headers=UPGRADE_HEADERS + ["Origin: http://good.example"]))
        assert c.read_response(head_only=True).status == 101
    finally:
        c.close()


# ---------------------------------------------------------------------------
# /echo

def test_echo_is_404_without_flag(server_factory):
    srv = start(server_factory)
    r = http_exchange(srv.port, get("/echo", headers=["Upgrade: websocket", "Connection: Upgrade",
                                                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                                      "Sec-WebSocket-Version: 13"]))
    assert r.status == 404


def test_echo_text_and_binary(server_factory):
    srv = start(server_factory, "--echo")

    async def body():
        c = await Chat.open(srv, path="/echo", name="echo")
        for msg in ["h\u00e9llo " + EMOJI, "", "not json at all", b"\x00\x01\xfe\xff" * 10, b"", b"x" * 16000]:
            await c.send(msg)
            back = await c.recv_raw()
            assert type(back) is type(msg) and back == msg, (msg[:20], back[:20])
        await c.close()

    run(body())


def test_echo_fragmented_message(server_factory):
    srv = start(server_factory, "--echo")
    raw = RawWS(srv.port, path="/echo")
    raw.send_frame(BINARY, b"ab", fin=False)
    raw.send_frame(PING, b"p")
    raw.send_frame(CONT, b"cd", fin=False)
    raw.send_frame(CONT, b"ef", fin=True)
    assert raw.recv_message() == (BINARY, b"abcdef")
    raw.send_frame(TEXT, "caf\u00e9".encode()[:4], fin=False)
    raw.send_frame(CONT, "caf\u00e9".encode()[4:], fin=True)
    assert raw.recv_message() == (TEXT, "caf\u00e9".encode())
    raw.send_frame(TEXT, b"\xff")
    assert raw.close_code() == 1007
    raw.close()


# ---------------------------------------------------------------------------
# shutdown

def test_sigterm_closes_clients_1001_and_exits_0(server_factory):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        c = await Chat.joined(srv, name="c")
        await c.expect("waiting")
        srv.proc.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(a.closed(), b.closed(), c.closed())
        assert codes == [1001, 1001, 1001], codes
        rc = await asyncio.to_thread(srv.proc.wait, 10)
        assert rc == 0

    run(body())


def test_healthz_not_ok_while_draining(server_factory):
    srv = start(server_factory)
    http = HTTPConn(srv.port)
    http.send(get("/healthz"))
    assert http.read_response().status == 200
    raw = RawWS(srv.port)  # never answers the close frame, so the server has to wait
    srv.proc.send_signal(signal.SIGTERM)
    assert raw.close_code() == 1001
    try:
        http.send(get("/healthz"))
        r = http.read_response()
        assert r.status == 503, f"healthz while draining: {r.status}"
    except (EOFError, ConnectionResetError, BrokenPipeError):
        pass  # the idle HTTP connection was closed for the shutdown: fine too
    raw.close()
    http.close()
    assert srv.proc.wait(10) == 0


def test_sigterm_exits_0_even_if_a_client_never_answers_close(server_factory):
    srv = start(server_factory, "--drain-timeout", "1", "--close-timeout", "1")
    raw = RawWS(srv.port)  # reads nothing, answers nothing, never closes
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(8) == 0
    assert time.monotonic() - t0 < 5
    assert raw.close_code() == 1001
    assert raw.eof(2)
    raw.close()
