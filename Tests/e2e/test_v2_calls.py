"""PROTOCOL.md part B.4 (voice and video calls: WebRTC signalling, TURN credentials) over real sockets, as
uvchatd 0.6.0 reads it (issue #16): the request/accept/decline/end table and every refusal;
the `ice` object with STUN, TURN (coturn `use-auth-secret` credentials checked with an independent HMAC) and the
relay policy; bad configurations refused at startup without the secret in any output; `signal` relayed byte for
byte; the request and signal buckets; a version 1 partner (B.7); the call ending with its chat and with a drop
(B.2); the metrics.

"Nothing else arrived" is always checked with a command-order barrier (`ping`/`pong` on version 2, an unknown
type's `bad_request` on version 1), never with a sleep. Every wait is bounded.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import time

import pytest

from conftest import BINARY, WWW
from ops_helpers import http_get, metric_values
from v2_helpers import (NO_RATE, barrier, check_paired_v1, check_paired_v2, check_resumed, resume, send_start,
                        v1_barrier, v1_open, v2_open, v2_pair)
from wsclient import close_all, run

GRACE = 5
ACCEPT = {"type": "call", "action": "accept"}
DECLINE = {"type": "call", "action": "decline"}
END = {"type": "call", "action": "end"}
SIGNAL_HEAD = '{"type":"signal","data":'
USERNAME_RE = re.compile(r"^(\d+):([0-9a-f]{16})$")
START_KEYS = {"type", "action", "initiator", "ice"}
ICE_KEYS = {"iceServers", "iceTransportPolicy"}


def request(video=None):
    cmd = {"type": "call", "action": "request"}
    if video is not None:
        cmd["video"] = video
    return cmd


def signal(data_text):
    """A signal command written compactly, with the data value exactly as given."""
    return SIGNAL_HEAD + data_text + "}"


def srv_with(server_factory, *flags):
    return server_factory("--resume-grace", str(GRACE), *NO_RATE, *flags)


_last_scrape = {}


def metrics(port):
    """The counters, freshly rendered: uvchatd answers /metrics from a rendering up to 1 s old (MetricsCache), so a
    scrape waits until 1 s has passed since this test's last one on the port."""
    wait = _last_scrape.get(port, -10.0) + 1.05 - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    _last_scrape[port] = time.monotonic()
    return metric_values(port)


def metrics_text(port):
    return http_get(port, "/metrics")[2].decode("utf-8", "replace")


async def recv_text(c, timeout=5.0):
    """The next text frame exactly as it came (online updates skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        raw = await c.recv_raw(max(0.01, deadline - time.monotonic()))
        assert isinstance(raw, str), f"{c.name}: binary frame {raw!r}"
        if json.loads(raw).get("type") == "online":
            continue
        return raw


async def nothing(c):
    """Everything sent to c so far has been read: the barrier finds nothing before its pong."""
    got = await barrier(c)
    assert got == [], f"{c.name}: expected nothing, got {got}"


async def refused(c, cmd, code):
    """cmd gets exactly one error, with this code, and nothing else."""
    await c.send(cmd)
    got = await barrier(c)
    assert len(got) == 1 and got[0].get("type") == "error" and got[0].get("code") == code, \
        f"{c.name}: {cmd} should get error {code}, got {got}"
    assert isinstance(got[0].get("message"), str) and got[0]["message"], got
    return got[0]


async def ring(caller, callee, video=True):
    """caller requests, callee sees exactly the request event (video omitted means false)."""
    await caller.send(request(video))
    got = await callee.recv()
    assert got == {"type": "call", "action": "request", "video": bool(video)}, f"{callee.name}: {got}"


def check_start(m, initiator):
    assert m.get("type") == "call" and m.get("action") == "start", m
    assert set(m) == START_KEYS, f"start has keys {set(m)}: {m}"
    assert m["initiator"] is initiator, f"initiator should be {initiator}: {m}"
    ice = m["ice"]
    assert isinstance(ice, dict) and set(ice) == ICE_KEYS, f"ice has keys {set(ice)}: {ice}"
    assert isinstance(ice["iceServers"], list) and ice["iceTransportPolicy"] in ("all", "relay"), ice
    return ice


async def answer(caller, callee):
    """callee accepts; returns (caller's ice, callee's ice) after checking both start events."""
    await callee.send(ACCEPT)
    ice_callee = check_start(await callee.recv(), False)
    ice_caller = check_start(await caller.recv(), True)
    return ice_caller, ice_callee


async def started(caller, callee, video=True):
    await ring(caller, callee, video)
    return await answer(caller, callee)


async def relays(sender, receiver, data_text, frame=None):
    """sender's signal (frame, or the compact one around data_text) reaches receiver as the exact bytes."""
    await sender.send(frame if frame is not None else signal(data_text))
    got = await recv_text(receiver)
    assert got == SIGNAL_HEAD + data_text + "}", f"{receiver.name} got {got!r}"


async def mixed_pair(srv):
    one = await v1_open(srv, "v1")
    await one.expect("waiting")
    two = await v2_open(srv, "v2")
    await send_start(two)
    check_paired_v2(await two.expect("paired"), images=False)
    check_paired_v1(await one.expect("paired"))
    return one, two


# ---------------------------------------------------------------------------
# the B.4 table

@pytest.mark.parametrize("video", [True, False, None], ids=["video", "voice", "omitted"])
def test_request_accept_both_start_with_initiator_and_ice(server_factory, video):
    srv = srv_with(server_factory)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await ring(a, b, video)
        await nothing(a)  # the caller hears nothing until an answer
        ice_a, ice_b = await answer(a, b)
        assert ice_a == ice_b == {"iceServers": [], "iceTransportPolicy": "all"}, (ice_a, ice_b)
        await nothing(a)
        await nothing(b)
        # one call per chat, from either side
        await refused(a, request(), "busy")
        await refused(b, request(True), "busy")
        await refused(b, ACCEPT, "no_call")  # already started
        await refused(b, DECLINE, "no_call")
        await nothing(a)
        await close_all(a, b)

    run(body())


def test_decline_reaches_the_caller_only_and_frees_the_chat(server_factory):
    srv = srv_with(server_factory)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await ring(a, b, True)
        await b.send(DECLINE)
        assert await a.recv() == DECLINE
        await nothing(b)  # the decliner gets nothing back
        await nothing(a)
        await refused(b, ACCEPT, "no_call")  # nothing rings any more
        await refused(a, signal('{"x":1}'), "no_call")
        await refused(a, END, "no_call")
        # a new request rings, now the other way round
        await ring(b, a, False)
        await answer(b, a)
        await close_all(a, b)

    run(body())


@pytest.mark.parametrize("state,who", [("ringing", "caller"), ("ringing", "callee"),
                                       ("started", "caller"), ("started", "callee")])
def test_end_reaches_the_partner_only(server_factory, state, who):
    srv = srv_with(server_factory)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await ring(a, b)
        if state == "started":
            await answer(a, b)
        ender, other = (a, b) if who == "caller" else (b, a)
        await ender.send(END)
        assert await other.recv() == END
        await nothing(ender)
        await nothing(other)
        for c in (a, b):
            await refused(c, END, "no_call")
            await refused(c, signal('{"x":1}'), "no_call")
        await refused(b, ACCEPT, "no_call")
        await refused(b, DECLINE, "no_call")
        await ring(b, a)  # not busy: the call is over
        await close_all(a, b)

    run(body())


# ---------------------------------------------------------------------------
# refusals

def test_refusals_outside_a_call(server_factory):
    srv = srv_with(server_factory)

    async def body():
        lone = await v2_open(srv, "lone")
        # never started (idle) and queued: not paired
        for phase in ("idle", "queued"):
            await refused(lone, request(), "not_paired")
            await refused(lone, signal('{"x":1}'), "not_paired")
            if phase == "idle":
                await send_start(lone)
                await lone.expect("waiting")
        other = await v2_open(srv, "other")
        await send_start(other)
        await other.expect("paired")
        await lone.expect("paired")
        a, b = lone, other
        # paired, no call
        for c in (a, b):
            await refused(c, signal('{"x":1}'), "no_call")
            await refused(c, ACCEPT, "no_call")
            await refused(c, DECLINE, "no_call")
            m = await refused(c, END, "no_call")
            assert m["message"] == "There is no call to answer or end.", m
        # ringing: only the callee answers; nobody signals yet
        await ring(a, b)
        await refused(a, ACCEPT, "no_call")   # the caller accepting its own request
        await refused(a, DECLINE, "no_call")
        await refused(a, signal('{"x":1}'), "no_call")
        await refused(b, signal('{"x":1}'), "no_call")
        await refused(a, request(), "busy")
        await refused(b, request(False), "busy")
        await nothing(b)
        await nothing(a)
        await answer(a, b)  # the refusals did not spoil the ringing call
        await close_all(a, b)

    run(body())


def test_accept_decline_end_when_not_paired_are_not_paired(server_factory):
    """Every call action and signal from a client without a partner is not_paired, checked first (docs/protocol-v2.md,
    Calls); no_call is for a paired client whose call state does not allow the action. Idle, queued, and after the
    chat (and its call) ended."""
    srv = srv_with(server_factory)

    async def body():
        lone = await v2_open(srv, "lone")
        for cmd in (ACCEPT, DECLINE, END):
            await refused(lone, cmd, "not_paired")
        await send_start(lone)
        await lone.expect("waiting")
        for cmd in (ACCEPT, DECLINE, END):
            await refused(lone, cmd, "not_paired")
        other = await v2_open(srv, "other")
        await send_start(other)
        await other.expect("paired")
        await lone.expect("paired")
        await ring(lone, other)
        await other.send({"type": "stop"})
        assert await lone.recv() == {"type": "partner_left"}
        for c in (lone, other):
            for cmd in (ACCEPT, DECLINE, END):
                await refused(c, cmd, "not_paired")
        await close_all(lone, other)

    run(body())


BAD_CALLS = {
    "video-string": '{"type":"call","action":"request","video":"true"}',
    "video-number": '{"type":"call","action":"request","video":1}',
    "video-null": '{"type":"call","action":"request","video":null}',
    "video-array": '{"type":"call","action":"request","video":[true]}',
    "action-unknown": '{"type":"call","action":"ring"}',
    "action-upper": '{"type":"call","action":"REQUEST"}',
    "action-empty": '{"type":"call","action":""}',
    "action-number": '{"type":"call","action":1}',
    "action-missing": '{"type":"call","video":true}',
}


def test_bad_call_commands_are_bad_request(server_factory):
    srv = srv_with(server_factory)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        for name, frame in BAD_CALLS.items():
            got = await refused(a, frame, "bad_request")
            assert got, name
        await nothing(b)
        await ring(a, b, True)  # nothing rang before; the chat takes a call
        await close_all(a, b)

    run(body())


def test_request_bucket_default_burst_3_busy_first_and_next_does_not_refill(server_factory):
    srv = server_factory("--resume-grace", str(GRACE), *NO_RATE)  # call buckets at their defaults (0.2/s, 3)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await ring(a, b)                        # token 1
        await refused(a, request(), "busy")     # refused before the bucket: no token
        await a.send(END)
        assert await b.recv() == END
        for _ in (2, 3):
            await ring(a, b)
            await a.send(END)
            assert await b.recv() == END
        await refused(a, request(), "rate_limited")
        await nothing(b)
        # b has a bucket of its own; with a call ringing a's request is busy, not rate_limited
        await ring(b, a)
        await refused(a, request(), "busy")
        await a.send(DECLINE)
        assert await b.recv() == DECLINE
        # next does not refill a's bucket
        await a.send({"type": "next"})
        assert await b.recv() == {"type": "partner_left"}
        await a.expect("waiting")
        c = await v2_open(srv, "c")
        await send_start(c)
        await c.expect("paired")
        await a.expect("paired")
        await refused(a, request(), "rate_limited")
        await nothing(c)
        await ring(c, a)
        await close_all(a, b, c)

    run(body())


def test_request_bucket_flags(server_factory):
    srv = srv_with(server_factory, "--call-requests-per-second", "0.01", "--call-request-burst", "1")

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await ring(a, b)
        await a.send(END)
        assert await b.recv() == END
        await refused(a, request(), "rate_limited")
        await nothing(b)
        assert metrics(srv.port)['uvchat_messages_refused_total{code="rate_limited"}'] == 1
        await close_all(a, b)

    run(body())


def test_request_refusals_come_in_the_readings_order(server_factory):
    """not_paired, version 1 partner (decline), partner_away, busy, then the bucket: with the bucket empty, each of
    the earlier answers still comes as such."""
    srv = srv_with(server_factory, "--call-requests-per-second", "0.01", "--call-request-burst", "1")

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        await ring(a, b)
        await a.send(END)
        assert await b.recv() == END
        await refused(a, request(), "rate_limited")      # a's one token is spent
        await ring(b, a)
        await refused(a, request(), "busy")
        await b.send(END)
        assert await a.recv() == END
        await b.drop("rst")
        assert (await a.recv())["type"] == "partner_away"
        await refused(a, request(), "partner_away")
        b2, r = await resume(srv, pb["token"], 0, name="b2")
        check_resumed(r)
        await a.expect("partner_back")
        await refused(a, request(), "rate_limited")
        await a.send({"type": "stop"})
        assert await b2.recv() == {"type": "partner_left"}
        await refused(a, request(), "not_paired")
        one = await v1_open(srv, "v1")
        await one.expect("waiting")
        await send_start(a)
        await a.expect("paired")
        await one.expect("paired")
        await a.send(request())
        assert await barrier(a) == [DECLINE], "a version 1 partner's decline comes before the bucket"
        assert await v1_barrier(one) == []
        await close_all(a, b2, one)

    run(body())


def test_signal_bucket_flags(server_factory):
    srv = srv_with(server_factory, "--signals-per-second", "0.01", "--signal-burst", "5")

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await started(a, b)
        for i in range(5):
            await a.send(signal(f'{{"n":{i}}}'))
        await a.send(signal('{"n":5}'))
        await a.send(signal('{"n":6}'))
        got = await barrier(a)
        assert [m.get("code") for m in got] == ["rate_limited", "rate_limited"], got
        for i in range(5):
            assert await recv_text(b) == SIGNAL_HEAD + f'{{"n":{i}}}' + "}"
        await nothing(b)
        # b's bucket is its own
        await relays(b, a, '{"from":"b"}')
        await close_all(a, b)

    run(body())


def test_signal_bucket_defaults_take_a_burst_of_100(server_factory):
    srv = srv_with(server_factory)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await started(a, b)
        for i in range(100):
            await a.send(signal(f'{{"n":{i}}}'))
        assert await barrier(a) == [], "a burst of 100 signals is within the default bucket"
        t0 = time.monotonic()
        for i in range(200):
            await a.send(signal(f'{{"n":{100 + i}}}'))
        got = await barrier(a)
        elapsed = time.monotonic() - t0
        assert got and all(m.get("code") == "rate_limited" for m in got), got
        refused_n = len(got)
        assert 200 - refused_n <= 20 * elapsed + 2, \
            f"{200 - refused_n} of 200 more signals relayed in {elapsed:.2f} s: more than 20/s refills"
        seen = []
        for _ in range(300 - refused_n):
            raw = await recv_text(b)
            assert raw.startswith(SIGNAL_HEAD), raw
            seen.append(json.loads(raw)["data"]["n"])
        assert seen[:100] == list(range(100)) and seen == sorted(seen), seen
        await nothing(b)
        await close_all(a, b)

    run(body())


def test_no_rate_limits_lifts_the_call_buckets(server_factory):
    srv = server_factory("--resume-grace", str(GRACE), "--no-rate-limits")

    async def body():
        a, b, _, _ = await v2_pair(srv)
        for _ in range(6):
            await ring(a, b)
            await a.send(END)
            assert await b.recv() == END
        await started(a, b)
        for i in range(300):
            await a.send(signal(f'{{"n":{i}}}'))
        assert await barrier(a) == []
        for i in range(300):
            assert await recv_text(b) == SIGNAL_HEAD + f'{{"n":{i}}}' + "}"
        await close_all(a, b)

    run(body())


# ---------------------------------------------------------------------------
# signal: verbatim relay

SDP = (r'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n'
       r'a=extmap-allow-mixed\r\na=msid-semantic: WMS stream\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8\r\n'
       r'c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:Hx3b\r\na=ice-pwd:Xp2y8xjK0gM9X1d5x3Kk1c3p\r\n'
       r'a=ice-options:trickle\r\na=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:'
       r'5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\na=setup:actpass\r\na=mid:0\r\na=sendrecv\r\n'
       r'a=msid:stream track-\"audio\"\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n'
       r'a=fmtp:111 minptime=10;useinbandfec=1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\n'
       r'a=mid:1\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\na=ssrc-group:FID 1234 5678\r\n')

DATA = {
    "sdp-offer": '{"type":"offer","sdp":"' + SDP + '"}',
    "sdp-answer-spaced": '{ "sdp" :\t"' + SDP + '" ,\n  "type" : "answer"\r\n }',
    "candidate": ('{"candidate":"candidate:842163049 1 udp 1677729535 203.0.113.7 54321 typ srflx raddr 10.0.0.2 '
                  'rport 54321 generation 0 ufrag Hx3b network-cost 999","sdpMid":"0","sdpMLineIndex":0,'
                  '"usernameFragment":"Hx3b"}'),
    "end-of-candidates": '{"candidate":"","sdpMid":"0","sdpMLineIndex":0}',
    "unicode": r'{"note":"caf\u00e9 \ud83d\ude00 \u0000","raw":"café 😀 ß","esc":"\"\\\/\b\f\n\r\t","\u006b":1}',
    "nested-numbers": ('{"z":[1,-0,1e3,2.5E-3,-1.0e+2,12345678901234567890,[],{}],"a":{"b":{"c":[true,false,null,'
                       '{"d":[[[]]]}]}},"A":0.0}'),
    "empty": "{}",
    "looks-like-a-frame": r'{"type":"message","text":"}\"data\":{","data":{"type":"signal"}}',
}


@pytest.mark.parametrize("name", list(DATA))
def test_signal_data_is_relayed_byte_for_byte_both_ways(server_factory, name):
    srv = srv_with(server_factory)
    data = DATA[name]
    json.loads(data)  # the test's own data is valid JSON

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await started(a, b)
        await relays(a, b, data)
        await relays(b, a, data)
        await nothing(a)
        await nothing(b)
        await close_all(a, b)

    run(body())


FRAMES = {
    "data-first": lambda d: '{"data":' + d + ',"type":"signal"}',
    "extra-fields": lambda d: '{"type":"signal","id":3,"x":[1,{"data":2}],"data":' + d + ',"y":"data"}',
    "whitespace-around": lambda d: '{ "type" : "signal" ,\n "data" :\t ' + d + ' \r\n}',
    "escaped-key": lambda d: '{"type":"signal","d\\u0061ta":' + d + '}',
}


@pytest.mark.parametrize("form", list(FRAMES))
def test_signal_frame_form_does_not_change_the_relayed_bytes(server_factory, form):
    """Key order, unknown fields and whitespace around the value belong to the command, not to `data`."""
    srv = srv_with(server_factory)
    data = DATA["nested-numbers"]
    frame = FRAMES[form](data)
    assert json.loads(frame)["data"] == json.loads(data)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await started(a, b)
        await relays(a, b, data, frame=frame)
        await nothing(b)
        await close_all(a, b)

    run(body())


def test_signal_duplicate_data_key_last_one_wins(server_factory):
    """Part A: duplicate keys, the last one wins; so the last `data` is the one checked and relayed."""
    srv = srv_with(server_factory)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await started(a, b)
        await relays(a, b, '{"second":2}', frame='{"type":"signal","data":{"first":1},"data":{"second":2}}')
        await relays(a, b, '{"ok":1}', frame='{"type":"signal","data":"not an object","data":{"ok":1}}')
        await refused(a, '{"type":"signal","data":{"ok":1},"data":"not an object"}', "bad_request")
        await nothing(b)
        await close_all(a, b)

    run(body())


BAD_SIGNALS = {
    "missing": '{"type":"signal"}',
    "string": '{"type":"signal","data":"v=0\\r\\n"}',
    "array": '{"type":"signal","data":[{"candidate":""}]}',
    "number": '{"type":"signal","data":1}',
    "exponent": '{"type":"signal","data":1e3}',
    "null": '{"type":"signal","data":null}',
    "true": '{"type":"signal","data":true}',
    "trailing-comma": '{"type":"signal","data":{"a":1,}}',
    "bare-key": '{"type":"signal","data":{a:1}}',
    "single-quotes": "{\"type\":\"signal\",\"data\":{'a':1}}",
    "leading-zero": '{"type":"signal","data":{"a":01}}',
    "nan": '{"type":"signal","data":{"a":NaN}}',
    "bad-escape": '{"type":"signal","data":{"a":"\\x41"}}',
    "raw-tab-in-string": '{"type":"signal","data":{"a":"tab\there"}}',
    "unterminated-string": '{"type":"signal","data":{"a":"open}}',
    "no-colon": '{"type":"signal","data":{"a" 1}}',
    "unclosed-data": '{"type":"signal","data":{"a":[1,2}}',
    "unclosed-frame": '{"type":"signal","data":{"a":1}',
    "trailing-garbage": '{"type":"signal","data":{"a":1}}}',
}


def test_bad_signals_are_bad_request_and_nothing_is_relayed(server_factory):
    srv = srv_with(server_factory)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await started(a, b)
        for name, frame in BAD_SIGNALS.items():
            await a.send(frame)
            got = await barrier(a)
            assert [m.get("code") for m in got] == ["bad_request"], (name, frame, got)
        await nothing(b)
        await relays(a, b, '{"still":"fine"}')  # the call goes on
        await close_all(a, b)

    run(body())


def test_signal_frame_at_the_message_limit_is_relayed_one_over_closes_1009(server_factory):
    limit = 2048
    srv = srv_with(server_factory, "--max-message-bytes", str(limit))

    def frame_of(size):
        head, tail = SIGNAL_HEAD + '{"sdp":"', '"}}'
        return head + "x" * (size - len(head) - len(tail)) + tail

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await started(a, b)
        exact = frame_of(limit)
        assert len(exact.encode()) == limit
        await a.send(exact)
        assert await recv_text(b) == exact  # the compact form relays as itself
        await a.send(frame_of(limit + 1))
        assert await a.closed() == 1009
        # a protocol close is a leave: the partner gets partner_left only (no call end)
        assert await b.recv() == {"type": "partner_left"}
        await nothing(b)
        await refused(b, signal('{"x":1}'), "not_paired")
        await close_all(a, b)

    run(body())


# ---------------------------------------------------------------------------
# the ice object

def secret_file(tmp_path, secret, ending="\n", name="turn-secret"):
    path = tmp_path / name
    path.write_bytes((secret + ending).encode())
    return str(path)


def new_secret():
    return "uvchat-test-secret-" + os.urandom(12).hex()


def check_turn(entry, urls, secret, lifetime, now):
    assert set(entry) == {"urls", "username", "credential"}, entry
    assert entry["urls"] == urls, entry
    m = USERNAME_RE.match(entry["username"])
    assert m, f"username not <expiry>:<16 lowercase hex>: {entry['username']!r}"
    expiry = int(m.group(1))
    assert abs(expiry - (now + lifetime)) <= 3, f"expiry {expiry} is not now + {lifetime} ({now:.0f})"
    mac = hmac.new(secret.encode(), entry["username"].encode(), hashlib.sha1).digest()
    assert entry["credential"] == base64.b64encode(mac).decode(), \
        f"credential is not base64(HMAC-SHA1(secret, username)): {entry}"
    return entry["username"]


def test_stun_urls_make_one_entry(server_factory):
    srv = srv_with(server_factory, "--stun-url", "stun:stun.test:3478", "--stun-url", "stuns:stun.test:5349")

    async def body():
        a, b, _, _ = await v2_pair(srv)
        ice_a, ice_b = await started(a, b)
        want = {"iceServers": [{"urls": ["stun:stun.test:3478", "stuns:stun.test:5349"]}],
                "iceTransportPolicy": "all"}
        assert ice_a == want and ice_b == want, (ice_a, ice_b)
        await close_all(a, b)

    run(body())


TURN_URLS = ["turn:turn.test:3478?transport=udp", "turns:turn.test:5349"]


def turn_flags(path, *extra):
    return ["--turn-url", TURN_URLS[0], "--turn-url", TURN_URLS[1], "--turn-secret-file", path, *extra]


@pytest.mark.parametrize("ending", ["\n", "", " \t\r\n\n"], ids=["newline", "bare", "whitespace"])
def test_turn_credentials_are_coturn_use_auth_secret(server_factory, tmp_path, ending):
    secret = new_secret()
    srv = srv_with(server_factory, *turn_flags(secret_file(tmp_path, secret, ending)))

    async def body():
        a, b, _, _ = await v2_pair(srv)
        ice_a, ice_b = await started(a, b)
        now = time.time()
        names = []
        for ice in (ice_a, ice_b):
            assert ice["iceTransportPolicy"] == "all" and len(ice["iceServers"]) == 1, ice
            names.append(check_turn(ice["iceServers"][0], TURN_URLS, secret, 600, now))
        assert names[0] != names[1], f"each side of a call gets its own username: {names}"
        # a second call in the chat: new usernames again
        await a.send(END)
        assert await b.recv() == END
        ice_b2, ice_a2 = await started(b, a)
        more = [check_turn(i["iceServers"][0], TURN_URLS, secret, 600, time.time()) for i in (ice_a2, ice_b2)]
        assert len(set(names + more)) == 4, names + more
        await close_all(a, b)

    run(body())


def test_turn_credential_seconds_stun_first_and_relay_policy(server_factory, tmp_path):
    secret = new_secret()
    srv = srv_with(server_factory, "--stun-url", "stun:stun.test:3478",
                   *turn_flags(secret_file(tmp_path, secret), "--turn-credential-seconds", "60",
                               "--ice-transport-policy", "relay"))

    async def body():
        a, b, _, _ = await v2_pair(srv)
        for ice in await started(a, b):
            assert ice["iceTransportPolicy"] == "relay", ice
            assert len(ice["iceServers"]) == 2 and ice["iceServers"][0] == {"urls": ["stun:stun.test:3478"]}, ice
            check_turn(ice["iceServers"][1], TURN_URLS, secret, 60, time.time())
        await close_all(a, b)

    run(body())


def test_explicit_policy_all(server_factory):
    srv = srv_with(server_factory, "--ice-transport-policy", "all")

    async def body():
        a, b, _, _ = await v2_pair(srv)
        for ice in await started(a, b):
            assert ice == {"iceServers": [], "iceTransportPolicy": "all"}, ice
        await close_all(a, b)

    run(body())


def run_to_exit(flags, timeout=5.0):
    """uvchatd with these flags; it must exit by itself within `timeout`. Returns (exit code, stdout + stderr)."""
    t0 = time.monotonic()
    proc = subprocess.Popen([BINARY, "--host", "127.0.0.1", "--port", "0", "--www", WWW, *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"uvchatd {flags} still running after {timeout} s: {err.decode('utf-8', 'replace')}")
    assert time.monotonic() - t0 < timeout
    return proc.returncode, (out + err).decode("utf-8", "replace")


# name -> (flags, the flag the message must name). "SECRET" stands for a --turn-secret-file with a real secret,
# "EMPTY:<text>" for one holding only <text>, "RAW" for the secret itself as an argument.
BAD_CONFIGS = {
    "relay-without-turn": (["--stun-url", "stun:stun.test:3478", "--ice-transport-policy", "relay"],
                           "--ice-transport-policy"),
    "relay-alone": (["--ice-transport-policy", "relay"], "--ice-transport-policy"),
    "policy-unknown": (["--ice-transport-policy", "none"], "--ice-transport-policy"),
    "turn-without-secret-file": (["--turn-url", "turn:turn.test:3478"], "--turn-secret-file"),
    "secret-file-missing": (["--turn-url", "turn:turn.test:3478", "--turn-secret-file", "/nonexistent/uvchat-secret"],
                            "--turn-secret-file"),
    "secret-file-empty": (["--turn-url", "turn:turn.test:3478", "EMPTY:"], "--turn-secret-file"),
    "secret-file-whitespace": (["--turn-url", "turn:turn.test:3478", "EMPTY: \n\t\r\n"], "--turn-secret-file"),
    "secret-as-a-flag": (["--turn-secret", "RAW"], "--turn-secret"),
    "stun-http": (["--stun-url", "http://stun.test", "SECRET", "--turn-url", "turn:turn.test:3478"], "--stun-url"),
    "stun-with-turn-scheme": (["--stun-url", "turn:turn.test:3478"], "--stun-url"),
    "stun-non-ascii": (["--stun-url", "stun:st\u00fcn.test:3478"], "--stun-url"),
    "stun-empty": (["--stun-url", ""], "--stun-url"),
    "turn-with-stun-scheme": (["--turn-url", "stun:stun.test:3478", "SECRET"], "--turn-url"),
    "turn-https": (["--turn-url", "https://turn.test", "SECRET"], "--turn-url"),
    "turn-space": (["--turn-url", "turn:turn test:3478", "SECRET"], "--turn-url"),
    "turn-quote": (["--turn-url", 'turn:turn"test:3478', "SECRET"], "--turn-url"),
    "turn-backslash": (["--turn-url", "turn:turn\\test:3478", "SECRET"], "--turn-url"),
    "turn-control": (["--turn-url", "turn:turn\ttest:3478", "SECRET"], "--turn-url"),
    "turn-second-url-bad": (["--turn-url", "turn:turn.test:3478", "--turn-url", "turns:turn test:5349", "SECRET"],
                            "--turn-url"),
    "stun-second-url-bad": (["--stun-url", "stun:stun.test:3478", "--stun-url", "turn:stun.test"], "--stun-url"),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_bad_call_configuration_exits_non_zero_at_once_without_the_secret(tmp_path, name):
    secret = new_secret()
    spec, names_flag = BAD_CONFIGS[name]
    flags = []
    for f in spec:
        if f == "SECRET":
            flags += ["--turn-secret-file", secret_file(tmp_path, secret)]
        elif f.startswith("EMPTY:"):
            flags += ["--turn-secret-file", secret_file(tmp_path, "", f[len("EMPTY:"):], "empty")]
        elif f == "RAW":
            flags.append(secret)
        else:
            flags.append(f)
    rc, output = run_to_exit(flags)
    assert rc != 0, f"{flags}: exit code {rc}: {output}"
    assert names_flag in output, f"{flags}: the message should name {names_flag}: {output}"
    assert secret not in output and secret[-24:] not in output, f"the secret appears in the output: {output}"


def test_the_secret_never_reaches_logs_metrics_or_frames(server_factory, tmp_path):
    secret = new_secret()
    srv = server_factory("--resume-grace", str(GRACE), "--log-level", "debug", "--stun-url", "stun:stun.test:3478",
                         *turn_flags(secret_file(tmp_path, secret)))

    async def body():
        a, b, _, _ = await v2_pair(srv)
        frames = []
        await a.send(request(True))
        frames.append(await recv_text(b))
        await b.send(ACCEPT)
        frames += [await recv_text(b), await recv_text(a)]
        await relays(a, b, DATA["sdp-offer"])
        await relays(b, a, DATA["candidate"])
        await a.send(END)
        frames.append(await recv_text(b))
        await a.send(request(False))
        frames.append(await recv_text(b))
        await a.drop("rst")
        frames += [await recv_text(b), await recv_text(b)]
        await b.send({"type": "stop"})
        assert await barrier(b) == []
        assert not any(secret in f for f in frames), frames
        assert secret not in metrics_text(srv.port)
        await close_all(a, b)

    run(body())
    assert srv.stop() == 0
    time.sleep(0.2)  # the stderr pump reads the last lines
    log = "".join(srv.log)
    assert "msg=" in log, "no log lines at all?"
    assert secret not in log and secret[-24:] not in log, "the TURN secret is in the log"


# ---------------------------------------------------------------------------
# version 1 partner (B.7)

def test_v2_request_to_a_v1_partner_is_declined_by_the_server(server_factory):
    srv = srv_with(server_factory)

    async def body():
        one, two = await mixed_pair(srv)
        before = metrics(srv.port)
        for video in (True, False):
            await two.send(request(video))
            got = await barrier(two)
            assert got == [DECLINE], f"the server answers a decline for a version 1 partner: {got}"
        assert await v1_barrier(one) == [], "version 1 sees nothing call-related"
        # no call came of it
        await refused(two, signal('{"x":1}'), "no_call")
        await refused(two, END, "no_call")
        await refused(two, ACCEPT, "no_call")
        # version 1 cannot use call commands at all (unknown types); the v2 side hears nothing
        for frame in ('{"type":"call","action":"request","video":true}', signal('{"x":1}')):
            await one.send(frame)
            await one.expect_error("bad_request")
            assert await v1_barrier(one) == []
        await nothing(two)
        after = metrics(srv.port)
        for name in ("uvchat_calls_declined_total", "uvchat_calls_requested_total"):  # requested: its HELP text
            assert after[name] - before[name] == 2, (name, before[name], after[name])
        for name in ("uvchat_calls_accepted_total", "uvchat_calls_started_total", "uvchat_calls_ended_total"):
            assert after[name] == before[name], name
        # the chat itself goes on
        await two.send({"type": "message", "text": "still here", "id": 1})
        assert await one.recv() == {"type": "message", "text": "still here"}
        await close_all(one, two)

    run(body())


# ---------------------------------------------------------------------------
# the call ends with its chat

LEAVES = ["next", "stop", "close", "drop-grace-0"]


@pytest.mark.parametrize("state", ["ringing", "started"])
@pytest.mark.parametrize("who", ["caller", "callee"])
@pytest.mark.parametrize("leave", LEAVES)
def test_the_call_ends_with_its_chat(server_factory, leave, who, state):
    grace = 0 if leave == "drop-grace-0" else GRACE
    srv = server_factory("--resume-grace", str(grace), *NO_RATE)

    async def body():
        a, b, _, _ = await v2_pair(srv, grace=grace)
        await ring(a, b)
        if state == "started":
            await answer(a, b)
        leaver, stayer = (a, b) if who == "caller" else (b, a)
        if leave in ("next", "stop"):
            await leaver.send({"type": leave})
        elif leave == "close":
            await leaver.close()
        else:
            await leaver.drop("rst")
        assert await stayer.recv() == {"type": "partner_left"}
        await nothing(stayer)  # partner_left only: no call end
        # (accept/decline/end when not paired: test_accept_decline_end_when_not_paired_are_no_call)
        await refused(stayer, signal('{"x":1}'), "not_paired")
        await refused(stayer, request(), "not_paired")
        if leave in ("next", "stop"):
            if leave == "next":
                await leaver.expect("waiting")
            await nothing(leaver)
            await refused(leaver, signal('{"x":1}'), "not_paired")
            await refused(leaver, request(), "not_paired")
        if leave == "next":
            # nothing of the old call follows the leaver into its next chat
            c = await v2_open(srv, "c")
            await send_start(c)
            await c.expect("paired")
            await leaver.expect("paired")
            await refused(leaver, signal('{"x":1}'), "no_call")
            await refused(leaver, ACCEPT, "no_call")
            await ring(c, leaver)
            await answer(c, leaver)
            await close_all(c)
        await close_all(a, b)

    run(body())


def test_grace_expiry_after_a_drop_in_a_call(server_factory):
    srv = server_factory("--resume-grace", "1", *NO_RATE)

    async def body():
        a, b, pa, _ = await v2_pair(srv, grace=1)
        await started(a, b)
        await a.drop("rst")
        assert (await b.recv())["type"] == "partner_away"
        assert await b.recv() == END
        assert await b.recv(4) == {"type": "partner_left"}
        await nothing(b)
        await refused(b, signal('{"x":1}'), "not_paired")
        await refused(b, request(), "not_paired")
        x, r = await resume(srv, pa["token"], 0, name="x")
        assert r["type"] == "error" and r["code"] == "resume_failed", r
        await close_all(b, x)

    run(body())


@pytest.mark.parametrize("how", ["rst", "fin"])
@pytest.mark.parametrize("state", ["ringing", "started"])
@pytest.mark.parametrize("who", ["caller", "callee"])
def test_a_drop_ends_the_call_and_after_the_resume_a_new_call_rings(server_factory, who, state, how):
    srv = srv_with(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv, grace=GRACE)
        await ring(a, b)
        if state == "started":
            await answer(a, b)
            await relays(a, b, '{"before":"drop"}')
        dropper, present, token = (a, b, pa["token"]) if who == "caller" else (b, a, pb["token"])
        await dropper.drop(how)
        away = await present.recv()
        assert away["type"] == "partner_away" and 0 < away["grace"] <= GRACE, away
        assert await present.recv() == END
        await nothing(present)
        await refused(present, request(), "partner_away")
        await refused(present, signal('{"x":1}'), "no_call")
        await refused(present, END, "no_call")
        await refused(present, ACCEPT, "no_call")
        back, r = await resume(srv, token, 0, name="back")
        check_resumed(r, old_token=token)
        await present.expect("partner_back")
        await nothing(back)  # the side that resumes has no call
        await refused(back, signal('{"x":1}'), "no_call")
        await refused(back, ACCEPT, "no_call")
        await refused(back, END, "no_call")
        await nothing(present)
        # a new call, from either side
        await ring(back, present, False)
        await answer(back, present)
        await relays(present, back, '{"after":"resume"}')
        await close_all(back, present)

    run(body())


# ---------------------------------------------------------------------------
# chat, images and metrics alongside

def test_messages_flow_during_a_call(server_factory):
    srv = srv_with(server_factory)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await started(a, b)
        await a.send(signal(DATA["sdp-offer"]))
        await a.send({"type": "message", "text": "can you hear me?", "id": 1})
        await a.send(signal(DATA["candidate"]))
        await b.send({"type": "message", "text": "yes", "id": 1})
        await b.send(signal(DATA["end-of-candidates"]))
        assert await recv_text(b) == SIGNAL_HEAD + DATA["sdp-offer"] + "}"
        assert await b.recv() == {"type": "message", "text": "can you hear me?", "seq": 1}
        assert await recv_text(b) == SIGNAL_HEAD + DATA["candidate"] + "}"
        assert await a.recv() == {"type": "message", "text": "yes", "seq": 1}
        assert await recv_text(a) == SIGNAL_HEAD + DATA["end-of-candidates"] + "}"
        await a.send({"type": "typing", "active": True})
        assert await b.recv() == {"type": "typing", "active": True}
        await a.send(END)
        assert await b.recv() == END
        await a.send({"type": "message", "text": "after the call", "id": 2})
        assert await b.recv() == {"type": "message", "text": "after the call", "seq": 2}
        await nothing(a)
        await nothing(b)
        await close_all(a, b)

    run(body())


def test_calls_and_images_are_independent(server_factory):
    srv = srv_with(server_factory)

    async def body():
        a, b, _, _ = await v2_pair(srv, {"images": True}, {"images": True})
        offer = {"type": "image_offer", "id": 1, "mime": "image/png", "bytes": 100}
        await ring(a, b)
        await a.send(offer)                      # an offer while a call rings: not busy
        assert await b.recv() == offer
        await refused(a, request(), "busy")      # the call is what is busy
        await answer(a, b)
        await b.send({"type": "image_decline", "id": 1})
        assert await a.recv() == {"type": "image_decline", "id": 1}
        await b.send({**offer, "id": 9})         # during a started call
        assert await a.recv() == {**offer, "id": 9}
        await relays(a, b, '{"x":1}')
        await b.send(END)
        assert await a.recv() == END
        # an open offer does not make a call busy
        await ring(b, a)
        await close_all(a, b)

    run(body())


def test_metrics_count_calls_signals_and_no_call(server_factory):
    srv = srv_with(server_factory)
    short = {"requested": "uvchat_calls_requested_total", "accepted": "uvchat_calls_accepted_total",
             "declined": "uvchat_calls_declined_total", "started": "uvchat_calls_started_total",
             "ended": "uvchat_calls_ended_total", "signals": "uvchat_signals_relayed_total",
             "bytes": "uvchat_signal_bytes_relayed_total", "no_call": 'uvchat_messages_refused_total{code="no_call"}'}

    def snap():
        m = metrics(srv.port)
        missing = [n for n in short.values() if n not in m]
        assert not missing, f"metrics missing: {missing}"
        return {k: m[n] for k, n in short.items()}

    def moved(before, **want):
        now = snap()
        got = {k: now[k] - before[k] for k in short}
        assert got == {k: want.get(k, 0) for k in short}, f"counters moved {got}, expected {want}"
        return now

    async def body():
        a, b, _, _ = await v2_pair(srv)
        s0 = snap()
        assert all(v == 0 for v in s0.values()), s0
        # a declined request (a decline is not an end: Calls.swift, ChatCounters.callsEnded)
        await ring(a, b)
        await b.send(DECLINE)
        assert await a.recv() == DECLINE
        # a started call with three signals, ended by end; three no_call refusals, a bad signal not relayed
        await started(a, b)
        sent = [DATA["sdp-offer"], DATA["candidate"], DATA["unicode"]]
        for d in sent:
            await relays(a, b, d)
        await refused(a, '{"type":"signal","data":[1]}', "bad_request")
        await b.send(END)
        assert await a.recv() == END
        await refused(a, signal('{"x":1}'), "no_call")
        await refused(b, ACCEPT, "no_call")
        await refused(a, END, "no_call")
        s1 = moved(s0, requested=2, declined=1, accepted=1, started=1, ended=1, signals=3,
                   bytes=sum(len(d.encode()) for d in sent), no_call=3)
        # a ringing call cancelled by end; a started call ended by next; one ended by a drop
        await ring(b, a)
        await b.send(END)
        assert await a.recv() == END
        await started(a, b)
        await a.send({"type": "next"})
        assert await b.recv() == {"type": "partner_left"}
        await a.expect("waiting")
        c = await v2_open(srv, "c")
        await send_start(c)
        await c.expect("paired")
        await a.expect("paired")
        await started(c, a)
        await c.drop("rst")
        assert (await a.recv())["type"] == "partner_away"
        assert await a.recv() == END
        moved(s1, requested=3, accepted=2, started=2, ended=3)
        await close_all(a, b)

    run(body())
