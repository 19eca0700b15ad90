"""Limits nobody can walk around (issue 13, PROTOCOL.md part A "Guarantees" and client addresses): every byte
queued for a receiver counts against its cap, typing and next/stop have buckets, people sharing an address are not
punished for each other, and HTTP before the upgrade is bounded. Each test fails on a server without the limit."""
import json
import os
import socket
import threading
import time

from wsclient import CLOSE, TEXT, Closed, RawWS, encode_frame, start

TYPING = json.dumps({"type": "typing", "active": True}, separators=(",", ":"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def joined(port, **kw):
    """A raw chat client past its `online` frame."""
    ws = RawWS(port, **kw)
    assert ws.recv_json(keep_online=True)["type"] == "online"
    return ws


def raw_pair(port, rcvbuf=None):
    a = joined(port)
    assert a.recv_json() == {"type": "waiting"}
    b = joined(port, rcvbuf=rcvbuf)
    assert b.recv_json()["type"] == "paired"
    assert a.recv_json()["type"] == "paired"
    return a, b


def collect(ws, seconds):
    """Every JSON event `ws` gets within `seconds`."""
    out, deadline = [], time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        try:
            out.append(ws.recv_json(timeout=left))
        except (TimeoutError, socket.timeout):
            return out


# --- 1. typing cannot bypass the outgoing cap ------------------------------------------------------------

def test_typing_flood_at_a_non_reading_receiver_is_capped(server_factory):
    # The typing bucket lifted, so that only the outgoing cap stands between the flood and the server's memory.
    srv = start(server_factory, "--typing-rate-per-second", "1000000", "--typing-burst", "1000000")
    sender, receiver = raw_pair(srv.port, rcvbuf=4096)   # the receiver never reads
    before = rss_kib(srv.proc.pid)
    frame = encode_frame(TEXT, TYPING, key=b"\x01\x02\x03\x04")
    flood = frame * 20_000   # 740 KB a write
    sent = 0
    try:
        for _ in range(60):   # 44 MB of typing events, 1.2 M of them
            sender.send(flood)
            sent += len(flood)
    except (BrokenPipeError, ConnectionResetError):
        pass
    # The receiver passed the 1 MiB cap: it is closed (1008), and the sender told its partner left.
    events = collect(sender, 5)
    assert {"type": "partner_left"} in events, events[-5:]
    grown = rss_kib(srv.proc.pid) - before
    assert grown < 16 * 1024, f"server RSS grew {grown} KiB for {sent} bytes of typing"
    receiver.close()
    sender.close()


def test_typing_has_a_bucket_of_its_own(server_factory):
    srv = start(server_factory)
    sender, receiver = raw_pair(srv.port)
    sender.send(encode_frame(TEXT, TYPING) * 100)
    events = collect(sender, 1.5)
    refused = [e for e in events if e.get("code") == "rate_limited"]
    assert len(refused) >= 70, events[:3]
    got = [e for e in collect(receiver, 1.0) if e["type"] == "typing"]
    assert 1 <= len(got) <= 30, len(got)
    # A chat message still goes through: typing spent none of the message bucket.
    sender.send_text(json.dumps({"type": "message", "text": "still here"}))
    assert receiver.recv_json() == {"type": "message", "text": "still here"}


# --- 2. next and stop are metered -------------------------------------------------------------------------

def test_next_storm_cannot_send_the_queue_away(server_factory):
    srv = start(server_factory)
    bot = joined(srv.port)
    assert bot.recv_json() == {"type": "waiting"}
    victim = joined(srv.port)
    assert victim.recv_json()["type"] == "paired"
    assert bot.recv_json()["type"] == "paired"
    bot.send(encode_frame(TEXT, '{"type":"next"}') * 40)
    assert victim.recv_json() == {"type": "partner_left"}
    # Ten are carried out (each puts the bot back in the queue: `waiting`); the other thirty are refused.
    answers = collect(bot, 0.5)
    refused = [e for e in answers if e.get("code") == "rate_limited"]
    assert len(refused) == 30 and answers.count({"type": "waiting"}) == 10, answers
    # The next newcomer meets the bot, which can no longer send it away.
    second = joined(srv.port)
    assert second.recv_json()["type"] == "paired"
    bot.send_text('{"type":"next"}')
    assert collect(second, 0.8) == []
    # And people still pair with each other.
    third, fourth = joined(srv.port), None
    assert third.recv_json() == {"type": "waiting"}
    fourth = joined(srv.port)
    assert fourth.recv_json()["type"] == "paired"
    assert third.recv_json()["type"] == "paired"
    fourth.send_text(json.dumps({"type": "message", "text": "hi"}))
    assert third.recv_json() == {"type": "message", "text": "hi"}


# --- 3. NAT fairness ----------------------------------------------------------------------------------------

def test_an_ipv6_slash_64_is_one_address_for_the_caps(server_factory):
    srv = start(server_factory, "--trusted-proxy", "127.0.0.1")
    statuses, clients = [], []
    for n in range(20):
        ws = RawWS(srv.port, upgrade=False)
        try:
            ws.handshake(headers=[f"X-Forwarded-For: 2001:db8:aa:bb::{n + 1:x}"])
            statuses.append(ws.status)
        except AssertionError:
            statuses.append(int(ws.head.split(" ", 2)[1]))
        clients.append(ws)
    assert statuses == [101] * 16 + [503] * 4, statuses
    other = RawWS(srv.port, upgrade=False)
    other.handshake(headers=["X-Forwarded-For: 2001:db8:aa:bc::1"])
    assert other.status == 101
    for ws in clients + [other]:
        ws.close()


def test_twelve_people_behind_one_address_are_never_refused(server_factory):
    srv = start(server_factory)
    clients = [joined(srv.port) for _ in range(12)]
    for ws in clients:
        while ws.recv_json()["type"] not in ("paired",):
            pass
    errors, received = [], [0]
    lock = threading.Lock()

    def talk(ws):
        for k in range(20):   # five a second for four seconds
            ws.send_text(json.dumps({"type": "message", "text": f"hello {k}"}))
            time.sleep(0.2)

    def listen(ws):
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            try:
                msg = ws.recv_json(timeout=max(0.05, deadline - time.monotonic()))
            except (TimeoutError, socket.timeout):
                return
            with lock:
                if msg["type"] == "error":
                    errors.append(msg)
                elif msg["type"] == "message":
                    received[0] += 1

    threads = [threading.Thread(target=f, args=(ws,)) for ws in clients for f in (talk, listen)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert received[0] == 12 * 20


# --- 4. HTTP before the upgrade is bounded ------------------------------------------------------------------

def test_pipelined_requests_from_non_reading_sockets_hold_bounded_memory(server_factory, tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><title>t</title>")
    (tmp_path / "big.bin").write_bytes(os.urandom(200 * 1024))
    srv = start(server_factory, www=str(tmp_path))
    before = rss_kib(srv.proc.pid)
    request = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n" * 60   # 12 MB of answers per socket
    socks, refused = [], 0
    for _ in range(150):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", srv.port))
        s.sendall(request)
        socks.append(s)
    time.sleep(2)
    grown = rss_kib(srv.proc.pid) - before
    # Past the per-address cap (64) connections are answered 503 at once.
    for s in socks[100:]:
        s.settimeout(2)
        head = s.recv(64)
        refused += head.startswith(b"HTTP/1.1 503")
    for s in socks:
        s.close()
    assert refused == 50
    assert grown < 48 * 1024, f"server RSS grew {grown} KiB for 150 non-reading pipelining sockets"


def test_a_second_request_head_gets_the_head_timeout_not_the_keep_alive(server_factory):
    srv = start(server_factory, "--handshake-timeout", "1", "--keep-alive-timeout", "30")
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    first = s.recv(4096)
    assert first.startswith(b"HTTP/1.1 200")
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")   # a head that never ends
    started = time.monotonic()
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = s.recv(4096)
        if not chunk:
            break
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert time.monotonic() - started < 3
    s.close()


def test_an_upgrade_with_a_body_gets_400(server_factory):
    srv = start(server_factory)
    ws = RawWS(srv.port, upgrade=False)
    try:
        ws.handshake(headers=["Content-Length: 6"])
    except AssertionError:
        pass
    assert ws.status == 400, ws.head
    ws.close()


# --- 6. responses are never cut -----------------------------------------------------------------------------

def slow_download(port, request, expect_bytes, rcvbuf=8192, chunk=32 * 1024, pause=0.05):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(request)
    data = b""
    started = time.monotonic()
    while True:
        got = s.recv(chunk)
        if not got:
            break
        data += got
        time.sleep(pause)
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body, time.monotonic() - started


def test_a_slow_connection_close_download_arrives_whole(server_factory, tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><title>t</title>")
    payload = os.urandom(1024 * 1024)
    (tmp_path / "big.bin").write_bytes(payload)
    srv = start(server_factory, "--close-timeout", "1", www=str(tmp_path))
    for request in (b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    b"GET /big.bin HTTP/1.0\r\n\r\n"):
        head, body, took = slow_download(srv.port, request, len(payload))
        assert head.startswith(b"HTTP/1.1 200"), head
        assert took > 1.5, f"the download took {took:.1f} s: too fast to test the close timeout"
        assert len(body) == len(payload) and body == payload


def test_a_large_file_to_clients_that_do_not_read_holds_a_chunk_each(server_factory, tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><title>t</title>")
    (tmp_path / "large.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    srv = start(server_factory, www=str(tmp_path))
    before = rss_kib(srv.proc.pid)
    socks = []
    for _ in range(60):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", srv.port))
        s.sendall(b"GET /large.bin HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        socks.append(s)
    time.sleep(1.5)
    grown = rss_kib(srv.proc.pid) - before
    # 60 clients asked for 12 MB each; the server holds a chunk or two of each, not the file.
    assert grown < 24 * 1024, f"server RSS grew {grown} KiB"
    # And a client that does read gets every byte of all three answers, in order.
    s = socks[0]
    s.settimeout(10)
    data = b""
    while data.count(b"HTTP/1.1 200") < 3 or len(data) < 3 * 4 * 1024 * 1024:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    assert data.count(b"HTTP/1.1 200") == 3
    assert len(data) >= 3 * 4 * 1024 * 1024
    for s in socks:
        s.close()


def test_a_forged_first_x_forwarded_for_line_does_not_count(server_factory):
    # A proxy that adds a line of its own leaves the client's forgeable line first: the last entry of all counts.
    srv = start(server_factory, "--trusted-proxy", "127.0.0.1", "--max-connections-per-address", "1")
    first = RawWS(srv.port, upgrade=False)
    first.handshake(headers=["X-Forwarded-For: 10.9.9.1", "X-Forwarded-For: 198.51.100.7"])
    assert first.status == 101
    second = RawWS(srv.port, upgrade=False)
    try:
        second.handshake(headers=["X-Forwarded-For: 10.9.9.2", "X-Forwarded-For: 198.51.100.7"])
    except AssertionError:
        pass
    assert second.head.startswith("HTTP/1.1 503"), second.head
    first.close()
    second.close()
