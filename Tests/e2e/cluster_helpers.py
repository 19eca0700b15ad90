"""A real cluster for the end-to-end tests: Debian's redis-server on a unix socket in a temporary folder, and
uvchatd nodes started with --redis. Everything stops by itself at the end of the test."""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import Server

REDIS = shutil.which("redis-server")


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class RedisConn:
    """Just enough RESP2 to look at the keys the nodes leave behind."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(path)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError("bad reply " + repr(line))

    def call(self, *args):
        self.sock.sendall(resp(*args))
        return self._read()

    def close(self):
        self.sock.close()


class Redis:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="uvchat-redis-")
        self.path = os.path.join(self.dir, "redis.sock")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS, "--port", "0", "--unixsocket", self.path, "--unixsocketperm", "700", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                c = RedisConn(self.path)
                c.call("PING")
                c.close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def call(self, *args):
        c = RedisConn(self.path)
        try:
            return c.call(*args)
        finally:
            c.close()

    def keys(self, pattern="*"):
        return sorted(k.decode() for k in self.call("KEYS", pattern))

    @property
    def url(self):
        return "unix:" + self.path


NODE_ARGS = ["--cluster-heartbeat-seconds", "0.5", "--cluster-node-timeout-seconds", "3", "--online-interval", "1"]


class Cluster:
    def __init__(self, redis, count, extra=()):
        self.redis = redis
        self.nodes = []
        for i in range(count):
            self.nodes.append(self.start_node(f"node{i}", extra))
        self.wait_joined()

    def start_node(self, name, extra=(), port=0):
        return Server(["--redis", self.redis.url, "--node-id", name] + NODE_ARGS + list(extra)).start(port)

    def wait_joined(self, nodes=None, timeout=10):
        """Every node says ok (not degraded) on /healthz, and all are registered in Redis."""
        from wsclient import http_exchange, get
        nodes = nodes or self.nodes
        deadline = time.time() + timeout
        while time.time() < deadline:
            bodies = []
            for n in nodes:
                try:
                    bodies.append(http_exchange(n.port, get("/healthz")).body)
                except OSError:
                    bodies.append(b"")
            if all(b == b"ok" for b in bodies):
                return
            time.sleep(0.05)
        raise AssertionError(f"nodes did not join: {bodies}")

    def stop(self):
        for n in self.nodes:
            try:
                n.stop()
            except Exception:
                pass


@pytest.fixture
def redis():
    if REDIS is None:
        pytest.skip("redis-server is not installed (make test-deps installs it)")
    r = Redis().start()
    yield r
    r.stop()
    shutil.rmtree(r.dir, ignore_errors=True)


@pytest.fixture
def cluster_factory(redis):
    made = []

    def make(count=3, extra=()):
        c = Cluster(redis, count, extra)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()
