"""PROTOCOL.md part A, "Frames" and "Close codes": fragmentation, size limit (1009), binary (1003), invalid UTF-8
(1007), protocol violations (1002), ping/pong, the closing handshake and the idle ping (1008).

Anything a library would refuse to send (unmasked, reserved bits, invalid UTF-8) goes through `RawWS`.
Every wait is bounded.
"""
import asyncio
import json
import socket
import time

import pytest

from protocol_helpers import EMOJI, _join_partner_of, _paired_raw
from wsclient import (CLOSE, CONT, PING, PONG, TEXT, Chat, RawWS, close_payload, encode_frame, pair, run,
                      start)


# ---------------------------------------------------------------------------
# frames

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
# idle ping

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
