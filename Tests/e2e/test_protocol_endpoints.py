"""PROTOCOL.md part A, "Endpoints": the `GET /ws` upgrade, the Origin allow-list, the connection caps and `/echo`.

(`/healthz` while draining is in test_protocol_shutdown.py; static files and HTTP errors in test_http.py.)
Upgrade requests go over raw sockets, chat traffic through wsclient.Chat; every wait is bounded.
"""
import asyncio

import pytest

from protocol_helpers import EMOJI, UPGRADE_HEADERS
from wsclient import (BINARY, CONT, PING, TEXT, Chat, HTTPConn, RawWS, close_all, encode_frame, get,
                      http_exchange, run, start)


# ---------------------------------------------------------------------------
# the /ws upgrade

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


# ---------------------------------------------------------------------------
# connection caps, Origin allow-list

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


def test_echo_connections_are_not_counted_online(server_factory):
    srv = start(server_factory, "--echo")

    async def body():
        echoes = [await Chat.open(srv, path="/echo", name=f"e{i}") for i in range(2)]
        c = await Chat.open(srv, name="c")
        assert (await c.recv(keep_online=True)) == {"type": "online", "count": 1}
        await close_all(c, *echoes)

    run(body())
