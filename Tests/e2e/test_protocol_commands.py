"""PROTOCOL.md part A, "Client to server" and the replies of "Server to client": message, typing, next, stop,
refused commands and their error codes, and the rate limits of "Guarantees".

Chat traffic uses the `websockets` client through wsclient.Chat. Every wait is bounded.
"""
import asyncio
import json
import time

import pytest

from protocol_helpers import EMOJI
from wsclient import Chat, close_all, pair, run, start


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


# ---------------------------------------------------------------------------
# rate limits

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
