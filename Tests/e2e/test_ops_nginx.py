"""Deployment guide step 5, "Put nginx in front for TLS": the nginx recipe deploy/nginx/uvchat.conf, chat over
wss://, --trusted-proxy and X-Forwarded-For, and the whole production layout. Each uses the real tool from Debian."""
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time

import pytest
from websockets.asyncio.client import connect

from conftest import BINARY, WWW
from ops_helpers import DEPLOY, chat_pair, free_port, http_get, socket_activate_tool


# --- nginx in front, with TLS ----------------------------------------------------------------------------------

def nginx_conf(workdir, tls_port, upstream_port, http_port):
    """The documented recipe, with test ports, paths and certificate, wrapped in a minimal nginx.conf that a
    normal user can run: no `user` directive, no privileged port, every path under workdir."""
    recipe = open(os.path.join(DEPLOY, "nginx", "uvchat.conf")).read()
    for old, new in [("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};"),
                     ("listen 443 ssl;", f"listen 127.0.0.1:{tls_port} ssl;"),
                     ("listen [::]:443 ssl;", ""),
                     ("listen 80;", f"listen 127.0.0.1:{http_port};"),
                     ("listen [::]:80;", ""),
                     ("/etc/ssl/certs/chat.example.org.pem", f"{workdir}/cert.pem"),
                     ("/etc/ssl/private/chat.example.org.key", f"{workdir}/key.pem")]:
        assert old in recipe, f"the nginx recipe no longer has {old!r}"
        recipe = recipe.replace(old, new)
    return f"""
worker_processes 1;
error_log stderr;
pid {workdir}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
{recipe}
}}
"""


@pytest.fixture
def nginx_front():
    """Starts nginx from Debian in front of a uvchatd port, as a normal user (nobody, when the tests run as
    root), on a free port with a fresh self-signed certificate. Returns (TLS port, SSL context trusting it)."""
    if not shutil.which("nginx"):
        pytest.fail("nginx is missing (Debian package nginx-light; make test-deps installs it)")
    # Not pytest's tmp_path: that sits in a root-only folder that nobody could not enter.
    workdir = tempfile.mkdtemp(prefix="uvchat-nginx-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
                    "-keyout", f"{workdir}/key.pem", "-out", f"{workdir}/cert.pem"], check=True, capture_output=True)
    as_user = []
    if os.geteuid() == 0:
        os.chmod(workdir, 0o755)
        for d, _, files in os.walk(workdir):
            for f in [d] + [os.path.join(d, f) for f in files]:
                os.chown(f, 65534, 65534)
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    procs = []
    ports = {}

    def start(upstream_port):
        tls_port, http_port = free_port(), free_port()
        ports["http"] = http_port
        with open(f"{workdir}/nginx.conf", "w") as f:
            f.write(nginx_conf(workdir, tls_port, upstream_port, http_port))
        # -e: the log nginx opens before it reads the configuration (the default is under /var/log).
        p = subprocess.Popen(as_user + ["nginx", "-e", "stderr", "-p", workdir, "-c", f"{workdir}/nginx.conf",
                                        "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(p)
        deadline = time.time() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", tls_port), timeout=0.2).close()
                break
            except OSError:
                if p.poll() is not None or time.time() > deadline:
                    p.kill()
                    pytest.fail("nginx did not start: " + p.stderr.read().decode())
                time.sleep(0.05)
        ctx = ssl.create_default_context(cafile=f"{workdir}/cert.pem")
        ctx.check_hostname = False
        return tls_port, ctx

    start.ports = ports
    start.workdir = workdir
    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)


def https_get(port, ctx, path, source="127.0.0.1"):
    return https_head(port, ctx, path, source)[0]


def https_head(port, ctx, path, source="127.0.0.1"):
    """(status, {lower-case header name: value}) of one GET over TLS."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return int(head[0].split()[1]), fields


def pipelined_statuses(port, ctx, path, count, source):
    """Sends `count` GETs in one write on one TLS connection; returns the status of each answer."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    one = f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
    s.sendall(one * (count - 1) + f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def test_nginx_recipe_passes_nginx_t(nginx_front):
    workdir = nginx_front.workdir
    with open(f"{workdir}/nginx.conf", "w") as f:
        f.write(nginx_conf(workdir, free_port(), free_port(), free_port()))
    r = subprocess.run(["nginx", "-t", "-e", "stderr", "-p", workdir, "-c", f"{workdir}/nginx.conf"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "test is successful" in r.stderr, r.stderr
    # The limits are part of the recipe, not of the test's wrapper.
    recipe = open(os.path.join(DEPLOY, "nginx", "uvchat.conf")).read()
    for directive in ("limit_conn_zone $binary_remote_addr", "limit_req_zone $binary_remote_addr",
                      "limit_conn uvchat_conn", "limit_req zone=uvchat_req", "Strict-Transport-Security"):
        assert directive in recipe, directive


def test_nginx_sends_hsts_and_the_strict_csp(server_factory, nginx_front):
    server = server_factory()
    tls_port, ctx = nginx_front(server.port)
    status, fields = https_head(tls_port, ctx, "/")
    assert status == 200
    assert re.fullmatch(r"max-age=\d{7,}.*", fields.get("strict-transport-security", "")), fields
    # What the browser gets: the page may connect to its own origin only (ws: or wss: would allow any host).
    csp = {d.split()[0]: d.split()[1:] for d in fields["content-security-policy"].split(";") if d.strip()}
    assert csp["connect-src"] == ["'self'"], csp
    # Straight from uvchatd too, as /healthz, /ws and the static files share one header set.
    status, head, _ = http_get(server.port, "/")
    assert status == 200 and "connect-src 'self';" in head and "ws:" not in head, head


def test_nginx_limits_requests_per_client_address(server_factory, nginx_front):
    server = server_factory()
    tls_port, ctx = nginx_front(server.port)
    # A burst far beyond a chat page's few requests is cut short with 429, for that address only.
    statuses = pipelined_statuses(tls_port, ctx, "/healthz", 400, "127.0.0.2")
    assert len(statuses) == 400 and statuses[0] == 200, statuses[:5]
    assert 429 in statuses and statuses.count(200) >= 150, (statuses.count(200), statuses.count(429))
    assert https_get(tls_port, ctx, "/healthz", source="127.0.0.3") == 200


def test_version_2_is_negotiated_and_resumed_through_nginx(server_factory, nginx_front):
    """The recipe passes Sec-WebSocket-Protocol both ways, and a connection nginx loses (RST from the client) is a
    drop the chat survives: the resume through nginx gets the message sent meanwhile."""
    server = server_factory("--resume-grace", "20")
    tls_port, ctx = nginx_front(server.port)
    url = f"wss://127.0.0.1:{tls_port}/ws"

    async def body():
        async def open_v2():
            ws = await connect(url, ssl=ctx, ping_interval=None, subprotocols=["uvchat.2"])
            assert ws.subprotocol == "uvchat.2"
            assert json.loads(await ws.recv())["type"] == "online"
            return ws

        async def next_event(ws, kind):
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if m["type"] == kind:
                    return m

        a, b = await open_v2(), await open_v2()
        await a.send(json.dumps({"type": "start"}))
        await b.send(json.dumps({"type": "start"}))
        token = (await next_event(a, "paired"))["token"]
        await next_event(b, "paired")
        sock = a.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        a.transport.abort()
        assert (await next_event(b, "partner_away"))["grace"] == 20
        await b.send(json.dumps({"type": "message", "text": "while you were away", "id": 1}))
        back = await open_v2()
        await back.send(json.dumps({"type": "resume", "token": token, "seq": 0}))
        assert (await next_event(back, "resumed"))["id"] == 0
        assert await next_event(back, "message") == {"type": "message", "text": "while you were away", "seq": 1}
        await next_event(b, "partner_back")
        await back.close()
        await b.close()

    asyncio.run(asyncio.wait_for(body(), 30))


def test_chat_over_wss_through_nginx(server_factory, nginx_front):
    server = server_factory()
    tls_port, ctx = nginx_front(server.port)
    assert asyncio.run(chat_pair(f"wss://127.0.0.1:{tls_port}/ws", ssl_context=ctx)) == "hello over the wire"
    assert https_get(tls_port, ctx, "/") == 200
    assert https_get(tls_port, ctx, "/healthz") == 200
    # The recipe keeps /metrics for the host itself.
    assert https_get(tls_port, ctx, "/metrics") == 200
    assert https_get(tls_port, ctx, "/metrics", source="127.0.0.2") == 403
    # Plain http is sent to https.
    status, head, _ = http_get(nginx_front.ports["http"], "/x?y=1")
    assert status == 301 and "Location: https://x/x?y=1" in head, head


async def second_upgrade_from(url, ctx, first_source, second_source):
    """Opens one chat connection from first_source, then tries a second from second_source: True if admitted."""
    first = await connect(url, ssl=ctx, ping_interval=None, local_addr=(first_source, 0))
    try:
        second = await connect(url, ssl=ctx, ping_interval=None, local_addr=(second_source, 0))
        await second.close()
        return True
    except Exception as e:
        assert "503" in str(e), e
        return False
    finally:
        await first.close()


@pytest.mark.parametrize("trusted", [True, False])
def test_trusted_proxy_decides_whether_x_forwarded_for_counts(server_factory, nginx_front, trusted):
    args = ["--max-connections-per-address", "1"] + (["--trusted-proxy", "127.0.0.1"] if trusted else [])
    server = server_factory(*args)
    tls_port, ctx = nginx_front(server.port)
    url = f"wss://127.0.0.1:{tls_port}/ws"
    # Clients from two loopback addresses; nginx appends the address it saw to X-Forwarded-For. Behind a trusted
    # proxy they are two addresses under the cap of one each; otherwise both are the proxy, over the cap.
    assert asyncio.run(second_upgrade_from(url, ctx, "127.0.0.2", "127.0.0.3")) is trusted
    # Trusted or not, a second connection from the same client is over the cap.
    assert asyncio.run(second_upgrade_from(url, ctx, "127.0.0.2", "127.0.0.2")) is False


def shipped_listen_stream():
    unit = open(os.path.join(DEPLOY, "systemd", "uvchat.socket")).read()
    return re.findall(r"^ListenStream=(\S+)$", unit, re.M)


@pytest.mark.parametrize("layout", ["shipped", "public"])
def test_deployment_stack_socket_activation_behind_nginx(nginx_front, layout):
    """The README's production layout: the socket bound by the service manager as uvchat.socket does (shipped:
    its ListenStream, on loopback; public: the dual-stack socket its comment describes), uvchatd adopting it and
    trusting nginx on the same host, nginx terminating TLS in front."""
    port = free_port()
    if layout == "shipped":
        [listen] = shipped_listen_stream()
        host, _, _ = listen.rpartition(":")
        assert host == "127.0.0.1", listen
        address = f"{host}:{port}"
    else:
        address = str(port)
    proc = subprocess.Popen([socket_activate_tool(), "-l", address, BINARY, "--www", WWW,
                             "--trusted-proxy", "127.0.0.1", "--max-connections-per-address", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        tls_port, ctx = nginx_front(port)
        url = f"wss://127.0.0.1:{tls_port}/ws"
        # On the dual-stack socket a client shows up as ::ffff:127.0.0.1, and must still count as the trusted proxy.
        assert asyncio.run(chat_pair(url, ctx, ("127.0.0.2", "127.0.0.3"))) == "hello over the wire"
        assert asyncio.run(second_upgrade_from(url, ctx, "127.0.0.4", "127.0.0.4")) is False
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
