"""Deployment guide step 7, "Change, restart, upgrade": drain on stop or restart (healthz 503, messages flushed, 1001,
exit 0 within --drain-timeout) and reload of the page files on SIGHUP."""
import asyncio
import json
import shutil
import signal
import socket
import time

from websockets.asyncio.client import connect

from conftest import WWW
from ops_helpers import http_get, recv_until


# --- drain and reload ------------------------------------------------------------------------------------------

def test_drain_flushes_paired_messages_then_1001_and_exits_0(server_factory):
    server = server_factory("--no-rate-limits", "--drain-timeout", "5")

    async def run():
        url = server.ws
        a = await connect(url, ping_interval=None)
        b = await connect(url, ping_interval=None)
        await recv_until(a, "paired")
        await recv_until(b, "paired")
        q = await connect(url, ping_interval=None)     # queued, alone
        await recv_until(q, "waiting")
        keep = socket.create_connection(("127.0.0.1", server.port), timeout=5)   # an idle keep-alive HTTP client
        for i in range(50):
            await a.send(json.dumps({"type": "message", "text": f"m{i}"}))
        server.proc.send_signal(signal.SIGTERM)
        started = time.time()
        await asyncio.sleep(0.2)   # let the loop see the signal
        keep.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        health = keep.recv(4096)
        keep.close()
        got, b_kinds, a_kinds = [], [], []
        try:
            while True:
                msg = json.loads(await asyncio.wait_for(b.recv(), 5))
                b_kinds.append(msg["type"])
                if msg["type"] == "message":
                    got.append(msg["text"])
        except Exception:
            pass
        assert got == [f"m{i}" for i in range(50)]
        assert b.close_code == 1001
        try:
            while True:
                await asyncio.wait_for(q.recv(), 5)
        except Exception:
            pass
        assert q.close_code == 1001
        try:
            while True:
                a_kinds.append(json.loads(await asyncio.wait_for(a.recv(), 5))["type"])
        except Exception:
            pass
        assert a.close_code == 1001
        # Nobody left: the server is going away, and 1001 alone says so.
        assert "partner_left" not in a_kinds and "partner_left" not in b_kinds, (a_kinds, b_kinds)
        return health, started
    health, started = asyncio.run(run())
    assert health.startswith(b"HTTP/1.1 503"), health
    assert server.proc.wait(timeout=10) == 0
    # Everyone answered the close, so the drain ends without waiting out its 5 s.
    assert time.time() - started < 3


def test_drain_timeout_ends_a_peer_that_never_closes(server_factory):
    server = server_factory("--drain-timeout", "1", "--close-timeout", "30")
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    time.sleep(0.3)
    start = time.time()
    server.proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    # The silent peer holds the drain open; meanwhile nobody new is served.
    assert server.proc.poll() is None
    try:
        late = socket.create_connection(("127.0.0.1", server.port), timeout=2)
        late.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = late.recv(4096)
        late.close()
    except OSError:
        answer = b""
    assert answer == b"", answer
    assert server.proc.wait(timeout=10) == 0
    assert time.time() - start < 3


def test_sighup_reloads_files_without_dropping_connections(server_factory, tmp_path):
    www = tmp_path / "www"
    shutil.copytree(WWW, www)
    server = server_factory(www=str(www))

    async def run():
        ws = await connect(server.ws, ping_interval=None)
        await recv_until(ws, "waiting")
        (www / "hello.txt").write_text("version 2")
        assert http_get(server.port, "/hello.txt")[0] == 404
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while time.time() < deadline and http_get(server.port, "/hello.txt")[0] != 200:
            await asyncio.sleep(0.05)
        status, _, body = http_get(server.port, "/hello.txt")
        assert (status, body) == (200, b"version 2")
        await ws.send(json.dumps({"type": "stop"}))
        await ws.send(json.dumps({"type": "next"}))
        assert (await recv_until(ws, "waiting"))["type"] == "waiting"   # the WebSocket survived the reload
        await ws.close()
    asyncio.run(run())
