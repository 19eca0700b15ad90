"""Clients for the end-to-end tests.

`Chat` wraps a `websockets` connection for well-behaved chat traffic. `RawWS` and
`http_exchange` talk over plain sockets so that malformed frames and requests reach the
server byte for byte, with nothing fixed up by a client library. Every wait has a
timeout so a misbehaving server fails a test instead of hanging it.
"""
import asyncio
import base64
import json
import os
import select
import socket
import struct
import threading
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

HOST = "127.0.0.1"
TIMEOUT = 5.0

# RFC 6455 opcodes
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def start(server_factory, *args, **kw):
    """Start a server and keep its stderr drained.

    The shared fixture reads stderr only until the listening line; a server that logs
    per connection would otherwise block on a full pipe in the longer tests.
    """
    srv = server_factory(*args, **kw)

    def pump():
        for line in srv.proc.stderr:
            srv.log.append(line)

    threading.Thread(target=pump, daemon=True).start()
    return srv


# ---------------------------------------------------------------------------
# websockets-based chat client

class Closed(Exception):
    """The server closed the connection; `code` is its close code (None without one)."""

    def __init__(self, code):
        super().__init__(f"connection closed with {code}")
        self.code = code


class Chat:
    def __init__(self, ws, name=""):
        self.ws = ws
        self.name = name
        self.onlines = []  # (monotonic time, count) of every online frame seen

    @classmethod
    async def open(cls, server, query=None, path="/ws", name="", timeout=TIMEOUT, subprotocols=None, **kw):
        """Connect. `subprotocols` (a list of names) is offered in `Sec-WebSocket-Protocol`."""
        uri = f"ws://{HOST}:{server.port}{path}"
        if query is not None:
            uri += "?" + query
        if subprotocols is not None:
            kw["subprotocols"] = list(subprotocols)
        ws = await asyncio.wait_for(
            connect(uri, open_timeout=timeout, close_timeout=2, ping_interval=None,
                    compression=None, max_size=None, **kw),
            timeout + 1)
        return cls(ws, name)

    @classmethod
    async def joined(cls, server, query=None, name="", **kw):
        """Connect and consume the initial `online` frame."""
        c = await cls.open(server, query=query, name=name, **kw)
        first = await c.recv(keep_online=True)
        assert first["type"] == "online", f"{name}: first frame {first}"
        return c

    async def send(self, obj):
        data = obj if isinstance(obj, (str, bytes)) else json.dumps(obj)
        await asyncio.wait_for(self.ws.send(data), TIMEOUT)

    async def recv_raw(self, timeout=TIMEOUT):
        try:
            return await asyncio.wait_for(self.ws.recv(), timeout)
        except ConnectionClosed as e:
            raise Closed(e.rcvd.code if e.rcvd else None) from None

    async def recv(self, timeout=TIMEOUT, keep_online=False):
        """The next JSON frame; `online` updates are recorded and skipped unless asked for."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError(f"{self.name}: nothing within {timeout} s")
            raw = await self.recv_raw(left)
            assert isinstance(raw, str), f"{self.name}: binary frame {raw!r}"
            msg = json.loads(raw)
            assert isinstance(msg, dict) and isinstance(msg.get("type"), str), raw
            if msg["type"] == "online":
                assert isinstance(msg.get("count"), int), raw
                self.onlines.append((time.monotonic(), msg["count"]))
                if not keep_online:
                    continue
            return msg

    async def expect(self, type_, timeout=TIMEOUT, **fields):
        msg = await self.recv(timeout)
        assert msg["type"] == type_, f"{self.name}: expected {type_}, got {msg}"
        for k, v in fields.items():
            assert msg.get(k) == v, f"{self.name}: expected {k}={v!r} in {msg}"
        return msg

    async def expect_error(self, code, timeout=TIMEOUT):
        msg = await self.expect("error", timeout, code=code)
        assert isinstance(msg.get("message"), str) and msg["message"], msg
        return msg

    async def silence(self, seconds=0.3):
        """Assert that nothing but `online` updates arrives for `seconds`."""
        try:
            msg = await self.recv(seconds)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"{self.name}: expected silence, got {msg}")

    async def drain(self, seconds):
        """Read everything for `seconds`; return the frames other than `online`."""
        deadline = time.monotonic() + seconds
        out = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            try:
                out.append(await self.recv(left))
            except asyncio.TimeoutError:
                return out

    async def closed(self, timeout=TIMEOUT):
        """Wait for the server to close; return its close code. Other frames are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: still open after {timeout} s")
            try:
                await self.recv_raw(left)
            except Closed as e:
                return e.code
            except asyncio.TimeoutError:
                pass

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), 3)
        except Exception:
            pass

    @property
    def subprotocol(self):
        """The subprotocol the server chose (None when its 101 named none)."""
        return self.ws.subprotocol

    def response_headers(self, name):
        """Every value of header `name` in the server's 101 response."""
        return self.ws.response.headers.get_all(name)

    async def drop(self, how="rst", timeout=2.0):
        """End the TCP connection without a close frame.

        `how="rst"`: SO_LINGER 0 and close, so the server sees a reset. `how="fin"`: shut the
        write side (the server reads end of stream), wait up to `timeout` for the server to end
        its side, then close. Nothing is sent on the connection afterwards.
        """
        transport = self.ws.transport
        sock = transport.get_extra_info("socket")
        if how == "rst":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        elif how == "fin":
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            try:
                await asyncio.wait_for(asyncio.shield(self.ws.wait_closed()), timeout)
            except (asyncio.TimeoutError, Exception):
                pass
            transport.abort()
        else:
            raise ValueError(how)
        await asyncio.sleep(0)


async def pair(server, qa=None, qb=None):
    """Two connected clients, paired with each other (a queued first, b pairs at once)."""
    a = await Chat.joined(server, qa, name="a")
    await a.expect("waiting")
    b = await Chat.joined(server, qb, name="b")
    pb = await b.expect("paired")
    pa = await a.expect("paired")
    return a, b, pa, pb


async def close_all(*clients):
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def run(coro, timeout=60):
    """Run a test coroutine with an overall deadline."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ---------------------------------------------------------------------------
# raw-socket WebSocket client

def encode_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, key=None, length=None):
    """One frame as bytes. `length` overrides the encoded payload length."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask:
        key = key if key is not None else os.urandom(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class RawWS:
    """A WebSocket client over a bare socket that sends exactly the frames it is told."""

    def __init__(self, port, path="/ws", rcvbuf=None, headers=None, upgrade=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Must be set before connect to bound the advertised window.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect((HOST, port))
        self.buf = b""
        self.status = None
        self.head = None
        if upgrade:
            self.handshake(path, headers)

    def handshake(self, path="/ws", headers=None):
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += headers or []
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("EOF during handshake: " + repr(self.buf))
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head.decode("latin-1")
        self.status = int(self.head.split(" ", 2)[1])
        assert self.status == 101, self.head
        return self

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(encode_frame(opcode, payload, **kw))

    def send_text(self, text, **kw):
        self.send_frame(TEXT, text, **kw)

    def send_json(self, obj, **kw):
        self.send_frame(TEXT, json.dumps(obj), **kw)

    def drop(self, how="rst", timeout=2.0):
        """End the TCP connection without a close frame: "rst" (SO_LINGER 0, then close) or
        "fin" (shut the write side, wait up to `timeout` for the server's end of stream, close)."""
        if how == "rst":
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        elif how == "fin":
            try:
                self.sock.shutdown(socket.SHUT_WR)
                self.eof(timeout)
            except OSError:
                pass
        else:
            raise ValueError(how)
        self.close()

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("frame not complete")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def recv_frame(self, timeout=TIMEOUT):
        """(fin, opcode, payload) of the next server frame; EOFError at end of stream."""
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frames must not be masked"
        assert not b0 & 0x70, "server set RSV bits"
        n, pos = b1 & 0x7F, 2
        if n == 126:
            self._fill(4, deadline)
            n, pos = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._fill(10, deadline)
            n, pos = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._fill(pos + n, deadline)
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_message(self, timeout=TIMEOUT, answer_pings=True):
        """The next whole data message as (opcode, payload); control frames handled."""
        deadline = time.monotonic() + timeout
        parts, first = [], None
        while True:
            fin, op, payload = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if op == PING:
                if answer_pings:
                    self.send_frame(PONG, payload)
                continue
            if op == PONG:
                continue
            if op == CLOSE:
                raise Closed(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None)
            if first is None:
                first = op
            parts.append(payload)
            if fin:
                return first, b"".join(parts)

    def recv_json(self, timeout=TIMEOUT, keep_online=False):
        deadline = time.monotonic() + timeout
        while True:
            op, payload = self.recv_message(max(0.01, deadline - time.monotonic()))
            assert op == TEXT, (op, payload)
            msg = json.loads(payload)
            if msg.get("type") == "online" and not keep_online:
                continue
            return msg

    def close_code(self, timeout=TIMEOUT):
        """Read until the server's close frame; return its code.

        Data frames before it are skipped. Returns None for a close frame without a
        code. Raises EOFError if the stream ends without any close frame.
        """
        deadline = time.monotonic() + timeout
        while True:
            fin, op, payload = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if op == CLOSE:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None

    def eof(self, timeout=TIMEOUT):
        """True when the server ends the TCP stream (after any remaining bytes) in time."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# raw HTTP

class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case name -> list of values
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        vals = self.headers.get(name.lower())
        return vals[-1] if vals else None

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:80]!r}>"


class HTTPConn:
    """One TCP connection; responses are parsed strictly from the byte stream."""

    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _more(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("response incomplete: " + repr(self.buf[:200]))
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed; have " + repr(self.buf[:200]))
        self.buf += chunk

    def read_response(self, head_only=False, timeout=TIMEOUT):
        """Parse one response. `head_only` for HEAD and 304 where no body follows."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._more(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        text = head.decode("latin-1")
        lines = text.split("\r\n")
        version, status, *reason = lines[0].split(" ", 2)
        assert version == "HTTP/1.1", lines[0]
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            assert sep and name and name == name.strip(), f"bad header line {line!r}"
            headers.setdefault(name.lower(), []).append(value.strip())
        status = int(status)
        body = b""
        if not head_only and status not in (204, 304) and status >= 200:
            te = headers.get("transfer-encoding")
            assert not te, "chunked responses are not expected"
            n = int(headers["content-length"][-1])
            while len(self.buf) < n:
                self._more(deadline)
            body, self.buf = self.buf[:n], self.buf[n:]
        return Response(status, reason[0] if reason else "", headers, body, text)

    def closed_by_server(self, timeout=TIMEOUT):
        """True if the server ends the stream (FIN or reset) with no further bytes."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk
            raise AssertionError("unexpected bytes after response: " + repr(self.buf[:200]))

    def idle(self, seconds=0.3):
        """True if nothing arrives (and the connection stays open) for `seconds`."""
        r, _, _ = select.select([self.sock], [], [], seconds)
        return not r

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def http_exchange(port, request, head_only=False):
    """Send one request on a new connection and parse one response."""
    c = HTTPConn(port)
    try:
        c.send(request)
        return c.read_response(head_only=head_only)
    finally:
        c.close()


def get(path, method="GET", headers=(), version="HTTP/1.1"):
    lines = [f"{method} {path} {version}", f"Host: {HOST}"] + list(headers)
    return "\r\n".join(lines) + "\r\n\r\n"


# ---------------------------------------------------------------------------
# a bare upgraded socket

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
UPGRADE = (f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def raw_upgrade(port):
    """A plain socket upgraded on /ws; the head is read a byte at a time, so no frame after it is taken."""
    s = socket.create_connection((HOST, port), timeout=5)
    s.sendall(UPGRADE)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s
