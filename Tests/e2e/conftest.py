"""Shared fixtures for the end-to-end tests: a real uvchatd on a free loopback port."""
import os
import re
import signal
import subprocess
import threading
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.path.abspath(os.environ.get("UVCHATD", os.path.join(ROOT, ".build", "debug", "uvchatd")))
WWW = os.path.join(ROOT, "www")


def listening_port(pid):
    """The TCP port a process listens on, from its socket inodes and /proc/net/tcp{,6}."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                m = re.match(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                continue
            if m:
                inodes.add(m.group(1))
    except FileNotFoundError:
        return None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[3] == "0A" and parts[9] in inodes:
                    return int(parts[1].split(":")[1], 16)
    return None


class Server:
    """A uvchatd process. `args` are extra command-line flags."""

    def __init__(self, args=(), www=WWW, env=None):
        self.args = list(args)
        self.www = www
        self.env = env
        self.proc = None
        self.port = None
        self.log = []

    def start(self, port=0):
        cmd = [BINARY, "--host", "127.0.0.1", "--port", str(port), "--www", self.www] + self.args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=self.env, text=True)
        # Keep reading stderr so that a chatty server never blocks on a full pipe.
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.time() + 15
        while time.time() < deadline:
            for line in list(self.log):
                m = re.search(r"msg=listening .*port=(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    return self
            # With --log-level above info there is no listening line: find the socket in /proc instead.
            self.port = listening_port(self.proc.pid)
            if self.port:
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.proc.kill()
        raise RuntimeError("uvchatd did not start: " + "".join(self.log))

    def _pump(self):
        for line in self.proc.stderr:
            self.log.append(line)

    @property
    def http(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self):
        return f"ws://127.0.0.1:{self.port}/ws"

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Signal the server and return its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@pytest.fixture
def server_factory():
    servers = []

    def make(*args, **kw):
        s = Server(args, **kw).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        rc = s.stop()
        # A clean shutdown is part of the contract: exit 0 after SIGTERM.
        assert rc in (0, None), f"uvchatd exited with {rc}"


@pytest.fixture
def server(server_factory):
    """A server with the default settings."""
    return server_factory()
