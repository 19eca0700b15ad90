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
import tempfile
import time
import urllib.parse
import urllib.request

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

def socket_activate_tool():
    for path in (shutil.which("systemd-socket-activate"), "/usr/bin/systemd-socket-activate",
                 "/lib/systemd/systemd-socket-activate"):
        if path and os.access(path, os.X_OK):
            return path
    pytest.fail("systemd-socket-activate is missing (Debian package systemd; make test-deps installs it)")


def test_socket_activation_serves_the_inherited_socket():
    port = free_port()
    proc = subprocess.Popen([socket_activate_tool(), "-l", f"127.0.0.1:{port}", BINARY, "--www", WWW,
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


# --- metrics and logs ------------------------------------------------------------------------------------------

async def binary_is_closed_1003(url):
    ws = await connect(url, ping_interval=None)
    await ws.send(b"binary")
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    except Exception:
        pass
    return ws.close_code


def test_metrics_pass_promtool_and_name_the_families(server_factory):
    server = server_factory()
    asyncio.run(chat_pair(server.ws))
    assert asyncio.run(binary_is_closed_1003(server.ws)) == 1003   # a close the server starts: a code sent
    status, head, body = http_get(server.port, "/metrics")
    assert status == 200 and "text/plain; version=0.0.4" in head
    r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert r.returncode == 0, r.stdout + r.stderr
    text = body.decode()
    # The families the issue names: connections by state, pairs, messages relayed and refused by code, bytes in
    # and out, close codes both ways, rate-limit hits, slow-consumer closes, accept errors, loop lag as a
    # histogram, RSS, open fds, build info.
    for family in ['uvchat_connections{state="http"}', 'uvchat_connections{state="queued"}',
                   'uvchat_connections{state="paired"}', 'uvchat_connections{state="closing"}',
                   "uvchat_pairs_total", "uvchat_messages_relayed_total",
                   'uvchat_messages_refused_total{code="bad_request"}',
                   'uvchat_messages_refused_total{code="not_paired"}',
                   'uvchat_messages_refused_total{code="too_long"}',
                   'uvchat_messages_refused_total{code="rate_limited"}',
                   "uvchat_received_bytes_total", "uvchat_sent_bytes_total",
                   'uvchat_close_codes_sent_total{code="1003"}', 'uvchat_close_codes_received_total{code="1000"}',
                   "uvchat_rate_limit_hits_total", "uvchat_slow_consumer_closes_total", "uvchat_accept_errors_total",
                   'uvchat_loop_lag_seconds_bucket{le="+Inf"}', "uvchat_loop_lag_seconds_count",
                   "process_resident_memory_bytes", "process_open_fds", "uvchat_build_info{"]:
        assert family in text, family
    assert "# TYPE uvchat_loop_lag_seconds histogram" in text
    assert re.search(r"^uvchat_pairs_total 1$", text, re.M)
    # One binary frame on /ws, one close frame with 1003: counted once (it used to be counted twice).
    assert re.search(r'^uvchat_close_codes_sent_total\{code="1003"\} 1$', text, re.M), text
    assert re.search(r"^uvchat_messages_relayed_total 1$", text, re.M)
    assert re.search(r'^uvchat_upgrades_total\{endpoint="ws"\} [1-9]', text, re.M)
    assert re.search(r"^uvchat_sent_frames_total [1-9]", text, re.M)
    assert int(re.search(r"^process_resident_memory_bytes (\d+)$", text, re.M).group(1)) > 1 << 20
    assert int(re.search(r"^process_open_fds (\d+)$", text, re.M).group(1)) >= 3


def test_a_real_prometheus_scrapes_uvchatd(server_factory, tmp_path):
    if not shutil.which("prometheus"):
        pytest.fail("prometheus is missing (Debian package prometheus; make test-deps installs it)")
    server = server_factory()
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: uvchat\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{server.port}']\n")
    proc = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{prom_port}/api/v1"
    try:
        target, result = None, []
        deadline = time.time() + 25
        while time.time() < deadline and not result:
            time.sleep(0.2)
            try:
                targets = json.load(urllib.request.urlopen(api + "/targets", timeout=2))["data"]["activeTargets"]
                target = targets[0] if targets else None
                if target and target["health"] == "up":
                    q = urllib.parse.quote('uvchat_build_info{job="uvchat"}')
                    result = json.load(urllib.request.urlopen(f"{api}/query?query={q}", timeout=2))["data"]["result"]
            except OSError:
                pass
        assert target and target["health"] == "up" and target["lastError"] == "", target
        assert result and result[0]["value"][1] == "1", result
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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


@pytest.mark.parametrize("with_addresses", [False, True])
def test_client_addresses_are_logged_only_with_log_addresses(server_factory, with_addresses):
    # A slow consumer is an event about one client worth a log line: its address appears only when asked for.
    args = ["--no-rate-limits", "--outgoing-cap", "65536"] + (["--log-addresses"] if with_addresses else [])
    server = server_factory(*args)

    async def run():
        receiver = socket.socket()
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        receiver.connect(("127.0.0.1", server.port))
        receiver.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        await asyncio.sleep(0.2)
        sender = await connect(server.ws, ping_interval=None)
        left, deadline = False, time.time() + 10
        while not left and time.time() < deadline:
            await sender.send(json.dumps({"type": "message", "text": "z" * 1900}))
            try:
                while not left:
                    left = json.loads(await asyncio.wait_for(sender.recv(), 0.001))["type"] == "partner_left"
            except asyncio.TimeoutError:
                pass
        assert left, "the slow consumer was never closed"
        await sender.close()
        receiver.close()
    asyncio.run(run())
    time.sleep(0.2)
    lines = [l for l in server.log if "msg=\"slow consumer closed\"" in l]
    assert lines, "".join(server.log)
    assert ("127.0.0.1" in lines[0]) is with_addresses, lines[0]


def test_log_level_filters(server_factory):
    server = server_factory("--log-level", "error")
    server.stop()
    time.sleep(0.2)
    assert not [l for l in server.log if "level=info" in l and "msg=listening" not in l]


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
    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)


def https_get(port, ctx, path, source="127.0.0.1"):
    raw = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return int(data.split()[1])


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


def test_deployment_stack_socket_activation_behind_nginx(nginx_front):
    """The README's production layout: a dual-stack socket bound by the service manager (as uvchat.socket does),
    uvchatd adopting it and trusting nginx on the same host, nginx terminating TLS in front."""
    port = free_port()
    proc = subprocess.Popen([socket_activate_tool(), "-l", str(port), BINARY, "--www", WWW,
                             "--trusted-proxy", "127.0.0.1", "--max-connections-per-address", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        tls_port, ctx = nginx_front(port)
        url = f"wss://127.0.0.1:{tls_port}/ws"
        # A client of the dual-stack socket shows up as ::ffff:127.0.0.1, and must still count as the trusted proxy.
        assert asyncio.run(chat_pair(url, ctx, ("127.0.0.2", "127.0.0.3"))) == "hello over the wire"
        assert asyncio.run(second_upgrade_from(url, ctx, "127.0.0.4", "127.0.0.4")) is False
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


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


def test_make_install_default_prefix_puts_units_where_systemd_reads_them(tmp_path):
    dest = tmp_path / "root"
    r = subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}", f"RELEASE={BINARY}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.access(dest / "usr/local/bin/uvchatd", os.X_OK)
    assert (dest / "usr/local/share/uvchat/www/index.html").exists()
    assert (dest / "usr/local/share/man/man8/uvchatd.8").exists()
    units = [str(dest / "etc/systemd/system" / u) for u in ("uvchat.service", "uvchat.socket")]
    assert "ExecStart=/usr/local/bin/uvchatd --www /usr/local/share/uvchat/www" in open(units[0]).read()
    # Verify the installed units inside the staged root, so that their ExecStart must name the installed binary.
    shutil.copytree("/usr/lib/systemd/system", dest / "usr/lib/systemd/system", symlinks=True)
    os.makedirs(dest / "bin")
    shutil.copy("/bin/kill", dest / "bin/kill")
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={dest}"] + units, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    os.remove(dest / "usr/local/bin/uvchatd")
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={dest}", units[0]], capture_output=True, text=True)
    assert r.returncode != 0 and "/usr/local/bin/uvchatd" in r.stdout + r.stderr, r.stdout + r.stderr


def test_make_install_refuses_without_a_built_binary(tmp_path):
    r = subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={tmp_path}", f"RELEASE={tmp_path}/none"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "make build" in r.stdout + r.stderr, r.stdout + r.stderr
    assert not os.path.exists(tmp_path / "usr")


def test_man_page_documents_every_flag_and_renders_cleanly():
    page = os.path.join(DEPLOY, "uvchatd.8")
    help_text = subprocess.run([BINARY, "--help"], capture_output=True, text=True).stdout
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text))
    assert len(flags) > 20, help_text
    lines = open(page).read().replace("\\-", "-").splitlines()
    # A flag counts as described when it is the tag of a .TP paragraph, the line after the .TP.
    tagged = {f for prev, line in zip(lines, lines[1:]) if prev == ".TP"
              for f in re.findall(r"(?<![\w-])--[a-z][a-z-]*", line)}
    missing = sorted(flags - tagged)
    assert not missing, f"flags in --help but not described in deploy/uvchatd.8: {missing}"
    r = subprocess.run(["groff", "-man", "-ww", "-z", page], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr, r.stderr
