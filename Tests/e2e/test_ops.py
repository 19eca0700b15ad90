"""Operations: systemd units and the notify protocol, socket activation, drain, reload, metrics, logs, the nginx
TLS recipe and make install. Each uses the real tool from Debian."""
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest
from websockets.asyncio.client import connect

from conftest import BINARY, ROOT, WWW

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


async def chat_pair(url, ssl_context=None, headers=None):
    a = await connect(url, ssl=ssl_context, ping_interval=None, additional_headers=headers)
    b = await connect(url, ssl=ssl_context, ping_interval=None, additional_headers=headers)
    await recv_until(a, "paired")
    await recv_until(b, "paired")
    await a.send(json.dumps({"type": "message", "text": "hello over the wire"}))
    got = await recv_until(b, "message")
    await a.close()
    await b.close()
    return got["text"]


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


# --- systemd units ---------------------------------------------------------------------------------------------

def units_for_test(tmp_path):
    service = open(os.path.join(DEPLOY, "systemd", "uvchat.service")).read()
    service = service.replace("/usr/local/bin/uvchatd", BINARY).replace("/usr/local/share/uvchat/www", WWW)
    (tmp_path / "uvchat.service").write_text(service)
    shutil.copy(os.path.join(DEPLOY, "systemd", "uvchat.socket"), tmp_path / "uvchat.socket")
    return [str(tmp_path / "uvchat.service"), str(tmp_path / "uvchat.socket")]


def test_units_pass_systemd_analyze_verify(tmp_path):
    units = units_for_test(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no"] + units, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # And it does check something: a unit whose binary is missing fails.
    bad = tmp_path / "broken.service"
    bad.write_text(open(units[0]).read().replace(BINARY, "/nonexistent/uvchatd"))
    assert subprocess.run(["systemd-analyze", "verify", "--man=no", str(bad)], capture_output=True).returncode != 0


def test_service_exposure_is_under_2():
    r = subprocess.run(["systemd-analyze", "security", "--offline=true",
                        os.path.join(DEPLOY, "systemd", "uvchat.service")], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for uvchat.service: ([0-9.]+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) < 2.0, m.group(0)


# --- the notify protocol, with a real datagram socket standing in for systemd ---------------------------------

@pytest.mark.parametrize("abstract", [False, True])
def test_notify_ready_watchdog_status_stopping(tmp_path, abstract):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"@uvchat-test-{os.getpid()}-{time.time_ns()}"
        sock.bind("\0" + name[1:])
    else:
        name = str(tmp_path / "notify.sock")
        sock.bind(name)
    sock.settimeout(5)
    env = dict(os.environ, NOTIFY_SOCKET=name, WATCHDOG_USEC="400000")
    server_proc = subprocess.Popen([BINARY, "--host", "127.0.0.1", "--port", "0", "--www", WWW], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        messages = []
        deadline = time.time() + 5
        while time.time() < deadline and sum("WATCHDOG=1" in m for m in messages) < 3:
            messages.append(sock.recv(4096).decode())
        assert messages[0].startswith("READY=1"), messages
        assert "STATUS=" in messages[0], messages
        assert sum("WATCHDOG=1" in m for m in messages) >= 3, messages
        server_proc.send_signal(signal.SIGTERM)
        stopping = False
        deadline = time.time() + 5
        while time.time() < deadline and not stopping:
            try:
                stopping = "STOPPING=1" in sock.recv(4096).decode()
            except socket.timeout:
                break
        assert stopping
        assert server_proc.wait(timeout=10) == 0
    finally:
        if server_proc.poll() is None:
            server_proc.kill()
        sock.close()


def test_watchdog_pings_come_from_the_loop_at_half_the_interval(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "n.sock")
    sock.bind(path)
    sock.settimeout(3)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
    proc = subprocess.Popen([BINARY, "--host", "127.0.0.1", "--port", "0", "--www", WWW], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        times = []
        deadline = time.time() + 3
        while time.time() < deadline:
            if "WATCHDOG=1" in sock.recv(4096).decode():
                times.append(time.time())
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert gaps and all(0.35 < g < 0.75 for g in gaps), gaps
        # A stopped loop sends nothing: that is what lets systemd restart a stuck server.
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.1)
        while True:
            try:
                sock.settimeout(0.05)
                sock.recv(4096)
            except socket.timeout:
                break
        sock.settimeout(1.2)
        with pytest.raises(socket.timeout):
            sock.recv(4096)
        proc.send_signal(signal.SIGCONT)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        sock.close()


# --- socket activation -----------------------------------------------------------------------------------------

def test_socket_activation_serves_the_inherited_socket():
    port = free_port()
    proc = subprocess.Popen(["systemd-socket-activate", "-l", f"127.0.0.1:{port}", BINARY, "--www", WWW,
                             "--port", "1"],   # a port it could never bind: it must use the inherited socket
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 5
        text = None
        while time.time() < deadline:
            try:
                text = asyncio.run(chat_pair(f"ws://127.0.0.1:{port}/ws"))
                break
            except OSError:
                time.sleep(0.1)
        assert text == "hello over the wire"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        log = proc.stderr.read()
    assert "inherited fd 3" in log, log


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
        await asyncio.sleep(0.2)   # let the loop see the signal
        keep.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        health = keep.recv(4096)
        got = []
        try:
            while True:
                msg = json.loads(await asyncio.wait_for(b.recv(), 5))
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
        return health
    health = asyncio.run(run())
    assert health.startswith(b"HTTP/1.1 503"), health
    assert server.proc.wait(timeout=10) == 0


def test_drain_timeout_ends_a_peer_that_never_closes(server_factory):
    server = server_factory("--drain-timeout", "1", "--close-timeout", "30")
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    time.sleep(0.3)
    start = time.time()
    server.proc.send_signal(signal.SIGINT)
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


# --- metrics and logs ------------------------------------------------------------------------------------------

def test_metrics_pass_promtool_and_name_the_families(server_factory):
    server = server_factory()
    asyncio.run(chat_pair(server.ws))
    status, head, body = http_get(server.port, "/metrics")
    assert status == 200 and "text/plain; version=0.0.4" in head
    r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert r.returncode == 0, r.stdout + r.stderr
    text = body.decode()
    for family in ["uvchat_connections{state=\"paired\"}", "uvchat_pairs_total", "uvchat_messages_relayed_total",
                   "uvchat_messages_refused_total{code=\"rate_limited\"}", "uvchat_received_bytes_total",
                   "uvchat_sent_bytes_total", "uvchat_close_codes_received_total", "uvchat_rate_limit_hits_total",
                   "uvchat_slow_consumer_closes_total", "uvchat_accept_errors_total", "uvchat_loop_lag_seconds_bucket",
                   "process_resident_memory_bytes", "process_open_fds", "uvchat_build_info"]:
        assert family in text, family
    assert re.search(r"^uvchat_pairs_total 1$", text, re.M)
    assert re.search(r"^uvchat_messages_relayed_total 1$", text, re.M)


def test_logs_are_logfmt_without_chat_content_or_addresses(server_factory):
    server = server_factory("--log-level", "debug", "--outgoing-cap", "1024", "--no-rate-limits")

    async def run():
        a = await connect(server.ws, ping_interval=None)
        b = await connect(server.ws, ping_interval=None)
        await recv_until(a, "paired")
        await a.send(json.dumps({"type": "message", "text": "SECRET-CHAT-CONTENT"}))
        await recv_until(b, "message")
        await a.close()
        await b.close()
    asyncio.run(run())
    server.stop()
    time.sleep(0.2)
    log = "".join(server.log)
    assert "SECRET-CHAT-CONTENT" not in log
    assert "127.0.0.1" not in log.replace("host=127.0.0.1", "")
    for line in log.strip().splitlines():
        assert re.match(r'^level=(debug|info|warn|error) msg=("[^"]*"|\S+)( \w+=("[^"]*"|\S*))*$', line), line


def test_log_level_filters(server_factory):
    server = server_factory("--log-level", "error")
    server.stop()
    time.sleep(0.2)
    assert not [l for l in server.log if "level=info" in l and "msg=listening" not in l]


# --- nginx in front, with TLS ----------------------------------------------------------------------------------

def nginx_conf(tmp_path, tls_port, upstream_port):
    """The documented recipe, with test ports, paths and certificate, wrapped in a minimal nginx.conf."""
    recipe = open(os.path.join(DEPLOY, "nginx", "uvchat.conf")).read()
    recipe = (recipe.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};")
                    .replace("listen 443 ssl;", f"listen 127.0.0.1:{tls_port} ssl;")
                    .replace("listen [::]:443 ssl;", "")
                    .replace("/etc/ssl/certs/chat.example.org.pem", str(tmp_path / "cert.pem"))
                    .replace("/etc/ssl/private/chat.example.org.key", str(tmp_path / "key.pem")))
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
{user}
worker_processes 1;
error_log {tmp_path}/error.log;
pid {tmp_path}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
{recipe}
}}
"""


@pytest.fixture
def nginx_front(tmp_path):
    if not shutil.which("nginx"):
        pytest.fail("nginx is not installed (make test-deps installs nginx-light)")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    procs = []

    def start(upstream_port):
        tls_port = free_port()
        (tmp_path / "nginx.conf").write_text(nginx_conf(tmp_path, tls_port, upstream_port))
        p = subprocess.Popen(["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(p)
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", tls_port), timeout=0.2).close()
                break
            except OSError:
                if p.poll() is not None:
                    pytest.fail("nginx did not start: " + p.stderr.read().decode())
                time.sleep(0.05)
        ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        ctx.check_hostname = False
        return tls_port, ctx

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def test_chat_over_wss_through_nginx(server_factory, nginx_front):
    server = server_factory()
    tls_port, ctx = nginx_front(server.port)
    assert asyncio.run(chat_pair(f"wss://127.0.0.1:{tls_port}/ws", ssl_context=ctx)) == "hello over the wire"


@pytest.mark.parametrize("trusted", [True, False])
def test_trusted_proxy_decides_whether_x_forwarded_for_counts(server_factory, nginx_front, trusted):
    args = ["--max-connections-per-address", "1"] + (["--trusted-proxy", "127.0.0.1"] if trusted else [])
    server = server_factory(*args)
    tls_port, ctx = nginx_front(server.port)

    async def run():
        url = f"wss://127.0.0.1:{tls_port}/ws"
        # Two clients from two loopback addresses; nginx appends the address it saw to X-Forwarded-For.
        first = await connect(url, ssl=ctx, ping_interval=None, local_addr=("127.0.0.2", 0))
        try:
            second = await connect(url, ssl=ctx, ping_interval=None, local_addr=("127.0.0.3", 0))
            await second.close()
            ok = True
        except Exception as e:
            ok = False
            assert "503" in str(e), e
        await first.close()
        return ok
    # Behind a trusted proxy the two clients are two addresses; otherwise both are the proxy, over the cap of 1.
    assert asyncio.run(run()) is trusted


# --- make install ----------------------------------------------------------------------------------------------

def test_make_install_and_uninstall_with_destdir(tmp_path):
    dest = tmp_path / "root"
    env = dict(os.environ, RELEASE=BINARY)
    r = subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}", "PREFIX=/usr", f"RELEASE={BINARY}"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.access(dest / "usr/bin/uvchatd", os.X_OK)
    assert (dest / "usr/share/uvchat/www/index.html").exists()
    assert (dest / "usr/share/man/man8/uvchatd.8").exists()
    service = (dest / "usr/lib/systemd/system/uvchat.service").read_text()
    assert "ExecStart=/usr/bin/uvchatd --www /usr/share/uvchat/www" in service
    assert (dest / "usr/lib/systemd/system/uvchat.socket").exists()
    r = subprocess.run(["make", "-s", "-C", ROOT, "uninstall", f"DESTDIR={dest}", "PREFIX=/usr"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    left = [os.path.join(d, f) for d, _, files in os.walk(dest) for f in files]
    assert left == [], left
