"""Helpers shared by the test_ops_*.py files, which test the deployment guide deploy/README-deployment.md.

The `server_factory` fixture and BINARY, ROOT, WWW live in conftest.py.
"""
import asyncio
import json
import os
import shutil
import socket

import pytest
from websockets.asyncio.client import connect

from conftest import ROOT


DEPLOY = os.path.join(ROOT, "deploy")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def recv_until(ws, kind, timeout=5):
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if msg["type"] == kind:
            return msg


async def chat_pair(url, ssl_context=None, sources=("127.0.0.1", "127.0.0.1")):
    a = await connect(url, ssl=ssl_context, ping_interval=None, local_addr=(sources[0], 0))
    b = await connect(url, ssl=ssl_context, ping_interval=None, local_addr=(sources[1], 0))
    await recv_until(a, "paired")
    await recv_until(b, "paired")
    await a.send(json.dumps({"type": "message", "text": "hello over the wire"}))
    got = await recv_until(b, "message")
    await a.close()
    await b.close()
    return got["text"]


def metric_values(port):
    """/metrics as {name with labels: value}."""
    status, _, body = http_get(port, "/metrics")
    assert status == 200
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def http_get(port, path, extra=""):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode(), body


def socket_activate_tool():
    for path in (shutil.which("systemd-socket-activate"), "/usr/bin/systemd-socket-activate",
                 "/lib/systemd/systemd-socket-activate"):
        if path and os.access(path, os.X_OK):
            return path
    pytest.fail("systemd-socket-activate is missing (Debian package systemd; make test-deps installs it)")
