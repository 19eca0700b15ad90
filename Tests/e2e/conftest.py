"""Shared fixtures for the end-to-end tests: a real uvchatd on a free loopback port."""
import os
import re
import signal
import subprocess
import threading
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("UVCHATD", os.path.join(ROOT, ".build", "debug", "uvchatd"))
WWW = os.path.join(ROOT, "www")


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
        deadline = time.time() + 15
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"msg=listening .*port=(\d+)", line)
            if m:
                self.port = int(m.group(1))
                # Keep reading stderr so that a chatty server never blocks on a full pipe.
                threading.Thread(target=self._pump, daemon=True).start()
                return self
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
