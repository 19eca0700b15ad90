"""The cluster's deployment files (deploy/README-deployment.md, "Running a cluster"), each with the real tool:
the systemd template unit, the nginx upstream recipe, and the hardened Redis configuration with its ACL, which a
real uvchatd node must be able to run on."""
import base64
import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

from cluster_helpers import RedisConn, REDIS
from conftest import BINARY, Server
from ops_helpers import DEPLOY, free_port
from wsclient import RawWS, get, http_exchange

PASSWORD = "a test password, not a real one"


def test_template_unit_passes_systemd_analyze_verify(tmp_path):
    text = open(os.path.join(DEPLOY, "systemd", "uvchat@.service")).read()
    for needed in ("--reuse-port", "--node-id %H-%i", "CPUAffinity=%i", "LoadCredential=redis-password:",
                   "--redis-password-file ${CREDENTIALS_DIRECTORY}/redis-password", "AF_UNIX", "NoNewPrivileges=yes"):
        assert needed in text, needed
    (tmp_path / "uvchat@.service").write_text(text.replace("/usr/local/bin/uvchatd", "/bin/true"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "uvchat@0.service")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def unit_settings(path):
    """{key: [values]} of a unit file's settings (comments and continuations aside)."""
    settings = {}
    for line in open(path).read().replace("\\\n", " ").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def exposure(path, name):
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", path], capture_output=True, text=True)
    m = re.search(rf"Overall exposure level for {re.escape(name)}: ([0-9.]+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    return float(m.group(1))


def test_template_unit_keeps_the_single_units_hardening(tmp_path):
    single = os.path.join(DEPLOY, "systemd", "uvchat.service")
    shutil.copy(os.path.join(DEPLOY, "systemd", "uvchat@.service"), tmp_path / "uvchat@.service")
    # The same threshold as the single unit's (test_service_exposure_is_under_2), which it meets.
    assert exposure(single, "uvchat.service") < 2.0
    assert exposure(str(tmp_path / "uvchat@0.service"), "uvchat@0.service") < 2.0
    # Every hardening setting of uvchat.service, with its value; PrivateUsers= alone differs, on purpose (inside a
    # user namespace the redis group of Redis's unix socket would not be the node's).
    ours, theirs = unit_settings(single), unit_settings(str(tmp_path / "uvchat@.service"))
    hardening = open(single).read().split("# Hardening", 1)[1]
    keys = {l.split("=", 1)[0] for l in hardening.splitlines() if "=" in l and not l.startswith(("#", "["))}
    keys.discard("WantedBy")
    assert len(keys) > 25, keys
    for key in sorted(keys - {"PrivateUsers"}):
        assert theirs.get(key) == ours[key], key
    assert theirs["PrivateUsers"] == ["no"]
    for key in ("Type", "Restart", "WatchdogSec", "MemoryMax", "TasksMax", "LimitNOFILE"):
        assert theirs.get(key) == ours[key], key
    assert theirs["CPUAffinity"] == ["%i"] and theirs["SupplementaryGroups"] == ["redis"]
    # systemd waits longer than the drain that sends version 2 clients 1012.
    exec_start = theirs["ExecStart"][0]
    drain = re.search(r"--drain-timeout (\d+)", exec_start)
    assert int(theirs["TimeoutStopSec"][0]) > (int(drain.group(1)) if drain else 10)
    assert "--host 127.0.0.1 --port 8080 --reuse-port" in exec_start
    assert "--redis unix:/run/redis-uvchat/redis.sock" in exec_start


def cluster_nginx_conf(workdir, tls_port, http_port, upstreams=None):
    """The recipe with test ports and certificate (and, given, the machines replaced by loopback ports), inside a
    minimal nginx.conf that a normal user can run."""
    recipe = open(os.path.join(DEPLOY, "nginx", "uvchat-cluster.conf")).read()
    assert recipe.count("server 10.0.0.") == 3 and "least_conn;" in recipe and "proxy_next_upstream" in recipe
    swaps = [("listen 443 ssl;", f"listen 127.0.0.1:{tls_port} ssl;"), ("listen [::]:443 ssl;", ""),
             ("listen 80;", f"listen 127.0.0.1:{http_port};"), ("listen [::]:80;", ""),
             ("/etc/ssl/certs/chat.example.org.pem", f"{workdir}/cert.pem"),
             ("/etc/ssl/private/chat.example.org.key", f"{workdir}/key.pem")]
    for i, port in enumerate(upstreams or []):
        swaps.append((f"server 10.0.0.{11 + i}:8080 ", f"server 127.0.0.1:{port} "))
    for old, new in swaps:
        assert old in recipe, old
        recipe = recipe.replace(old, new)
    return (f"worker_processes 1;\nerror_log stderr;\npid {workdir}/nginx.pid;\nevents {{ worker_connections 64; }}\n"
            f"http {{\naccess_log off;\nclient_body_temp_path {workdir}/b;\nproxy_temp_path {workdir}/p;\n"
            f"fastcgi_temp_path {workdir}/f;\nuwsgi_temp_path {workdir}/u;\nscgi_temp_path {workdir}/s;\n{recipe}\n}}\n")


@pytest.fixture
def nginx_workdir():
    if not shutil.which("nginx"):
        pytest.skip("nginx is not installed (make test-deps installs it)")
    # Not pytest's tmp_path: run as root, nginx's workers are nobody, who could not enter it.
    workdir = tempfile.mkdtemp(prefix="uvchat-nginx-cluster-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-days", "1", "-keyout", f"{workdir}/key.pem", "-out", f"{workdir}/cert.pem"],
                   check=True, capture_output=True)
    yield workdir
    shutil.rmtree(workdir, ignore_errors=True)


def test_cluster_nginx_recipe_passes_nginx_t(nginx_workdir):
    with open(f"{nginx_workdir}/nginx.conf", "w") as f:
        f.write(cluster_nginx_conf(nginx_workdir, free_port(), free_port()))
    r = subprocess.run(["nginx", "-t", "-e", "stderr", "-p", nginx_workdir, "-c", f"{nginx_workdir}/nginx.conf"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "test is successful" in r.stderr, r.stderr


class RecordingUpstream:
    """A stand-in for one machine's nodes: records each request head; answers an upgrade with 101 and then echoes
    the tunnel's bytes, anything else with 200 and a close."""

    def __init__(self, name):
        self.name = name
        self.heads = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            conn.settimeout(10)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
                self.heads.append(head)
                fields = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
                          for l in head.split("\r\n")[1:] if ":" in l}
                if fields.get("upgrade", "").lower() == "websocket":
                    key = fields.get("sec-websocket-key", "")
                    accept = base64.b64encode(hashlib.sha1(
                        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
                    conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                  f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
                    while chunk := conn.recv(4096):
                        conn.sendall(chunk)
                else:
                    body = self.name.encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                                 + body)
            except OSError:
                pass

    def close(self):
        self.listener.close()


def tls_request(port, ctx, request):
    """Sends one request over TLS; returns (status, head, the socket, bytes past the head)."""
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost")
    s.sendall(request.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    head = head.decode("latin-1")
    return int(head.split()[1]), head, s, rest


def test_cluster_nginx_spreads_forwards_the_upgrade_and_skips_a_dead_machine(nginx_workdir):
    workdir = nginx_workdir
    machines = [RecordingUpstream("a"), RecordingUpstream("b")]
    dead = free_port()   # a machine that is down (restarting): nothing listens there
    tls_port, http_port = free_port(), free_port()
    with open(f"{workdir}/nginx.conf", "w") as f:
        f.write(cluster_nginx_conf(workdir, tls_port, http_port, [m.port for m in machines] + [dead]))
    as_user = []
    if os.geteuid() == 0:
        os.chmod(workdir, 0o755)
        for d, _, files in os.walk(workdir):
            for name in [d] + [os.path.join(d, f) for f in files]:
                os.chown(name, 65534, 65534)
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    proc = subprocess.Popen(as_user + ["nginx", "-e", "stderr", "-p", workdir, "-c", f"{workdir}/nginx.conf",
                                       "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", tls_port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, "nginx did not start: " + proc.stderr.read().decode()
                time.sleep(0.05)
        ctx = ssl.create_default_context(cafile=f"{workdir}/cert.pem")
        ctx.check_hostname = False

        # Plain requests: every one answered although one machine is down (proxy_next_upstream error), and both
        # live machines get some (least_conn with no open connections breaks ties round robin).
        answers = []
        for _ in range(12):
            status, _, s, body = tls_request(tls_port, ctx, "GET /healthz HTTP/1.1\r\nHost: chat.example.org\r\n"
                                                            "Connection: close\r\n\r\n")
            while chunk := s.recv(4096):
                body += chunk
            s.close()
            assert status == 200
            answers.append(body.decode())
        assert set(answers) == {"a", "b"}, answers

        # The WebSocket upgrade: forwarded with its headers and the client's address, answered 101, then a tunnel.
        status, head, s, rest = tls_request(
            tls_port, ctx, "GET /ws HTTP/1.1\r\nHost: chat.example.org\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                           "Sec-WebSocket-Protocol: uvchat.2\r\n\r\n")
        assert status == 101, head
        assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head, head
        s.sendall(b"through the tunnel")
        while len(rest) < len(b"through the tunnel"):
            rest += s.recv(4096)
        assert rest == b"through the tunnel"
        s.close()
        [upgrade] = [h for m in machines for h in m.heads if h.startswith("GET /ws ")]
        fields = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in upgrade.split("\r\n")[1:]}
        assert upgrade.startswith("GET /ws HTTP/1.1\r\n"), upgrade
        assert fields["upgrade"] == "websocket" and fields["connection"].lower() == "upgrade", fields
        assert fields["sec-websocket-key"] == "dGhlIHNhbXBsZSBub25jZQ==" and fields["sec-websocket-protocol"] == "uvchat.2"
        assert fields["x-forwarded-for"] == "127.0.0.1" and fields["host"] == "chat.example.org", fields

        # /metrics is each node's own: not served through the balancer.
        status, _, s, _ = tls_request(tls_port, ctx, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        s.close()
        assert status == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for m in machines:
            m.close()


@pytest.fixture
def hardened_redis():
    """Debian's redis-server on the shipped configuration, with test paths and a known password."""
    if REDIS is None:
        pytest.skip("redis-server is not installed (make test-deps installs it)")
    d = tempfile.mkdtemp(prefix="uvchat-redis-conf-")
    sock = os.path.join(d, "redis.sock")
    port = free_port()
    acl = open(os.path.join(DEPLOY, "redis", "users.acl")).read()
    assert "user default off" in acl
    acl = acl.replace("#REPLACE_WITH_SHA256_HEX_OF_THE_PASSWORD", "#" + hashlib.sha256(PASSWORD.encode()).hexdigest())
    with open(os.path.join(d, "users.acl"), "w") as f:
        f.write(acl)
    conf = open(os.path.join(DEPLOY, "redis", "uvchat-redis.conf")).read()
    for old, new in [("port 6379", f"port {port}"), ("unixsocket /run/redis-uvchat/redis.sock", f"unixsocket {sock}"),
                     ("aclfile /etc/redis/uvchat-users.acl", f"aclfile {d}/users.acl")]:
        assert old in conf, old
        conf = conf.replace(old, new)
    assert 'save ""' in conf and "appendonly no" in conf and "maxmemory-policy noeviction" in conf
    with open(os.path.join(d, "redis.conf"), "w") as f:
        f.write(conf + f"\ndir {d}\n")
    proc = subprocess.Popen([REDIS, os.path.join(d, "redis.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not os.path.exists(sock):
        assert time.time() < deadline and proc.poll() is None, "redis-server did not start on the shipped configuration"
        time.sleep(0.05)
    def stop():
        if proc.poll() is None:
            proc.terminate()   # SIGTERM: Redis shuts down as it would under systemd, saving if configured to
            proc.wait(10)
        return proc.returncode

    yield sock, d, stop
    stop()
    shutil.rmtree(d, ignore_errors=True)


def refused(c, *args):
    try:
        c.call(*args)
    except RuntimeError as e:
        return str(e)
    return None


def test_redis_acl_lets_uvchat_do_its_work_and_nothing_else(hardened_redis):
    sock, _, _ = hardened_redis
    c = RedisConn(sock)
    assert "NOAUTH" in refused(c, "PING")
    assert refused(c, "AUTH", "default", "") is not None
    assert c.call("AUTH", "uvchat", PASSWORD) == "OK"
    assert c.call("PING") == "PONG"
    for forbidden in (("SET", "elsewhere", "1"), ("FLUSHALL",), ("CONFIG", "GET", "save"), ("KEYS", "*"),
                      ("PUBLISH", "elsewhere", "x"), ("SHUTDOWN",)):
        assert "NOPERM" in (refused(c, *forbidden) or ""), forbidden
    assert c.call("PUBLISH", "uvchat:n:node", "x") == 0
    assert c.call("SET", "uvchat:x", "1") == "OK"
    assert c.call("FUNCTION", "LIST") == []
    assert c.call("CLIENT", "SETNAME", "uvchat-test") == "OK"
    for forbidden in (("FUNCTION", "FLUSH"), ("FUNCTION", "DELETE", "uvchat"), ("CLIENT", "LIST"), ("ACL", "LIST"),
                      ("SUBSCRIBE", "elsewhere"), ("SAVE",), ("BGSAVE",)):
        assert "NOPERM" in (refused(c, *forbidden) or ""), forbidden
    c.close()
    # Nobody else gets in: the default user is off, whatever password it is given.
    c = RedisConn(sock)
    for password in ("", "x", PASSWORD):
        assert "WRONGPASS" in refused(c, "AUTH", password)
        assert "WRONGPASS" in refused(c, "AUTH", "default", password)
    assert "WRONGPASS" in refused(c, "AUTH", "uvchat", "not the password")
    assert "NOAUTH" in refused(c, "SET", "uvchat:x", "2")
    c.close()


def test_redis_socket_mode_and_no_persistence(hardened_redis):
    sock, d, stop = hardened_redis
    # The unix socket is for its group (redis, which uvchat@.service joins) and nobody else.
    assert os.stat(sock).st_mode & 0o777 == 0o770
    directives = {}
    for line in open(os.path.join(DEPLOY, "redis", "uvchat-redis.conf")).read().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            directives.setdefault(key, []).append(value)
    assert directives["save"] == ['""'] and directives["appendonly"] == ["no"]
    assert directives["maxmemory-policy"] == ["noeviction"] and directives["protected-mode"] == ["yes"]
    assert directives["timeout"] == ["0"] and directives["tcp-keepalive"] == ["60"]
    assert directives["client-output-buffer-limit"] == ["pubsub 64mb 16mb 60"]
    assert all(a.lstrip("-") in ("127.0.0.1", "::1") or a.lstrip("-").startswith("10.")
               for a in directives["bind"][0].split()), directives["bind"]
    # And Redis really writes nothing: state is written, Redis stops as systemd stops it, no file is left.
    c = RedisConn(sock)
    c.call("AUTH", "uvchat", PASSWORD)
    c.call("SET", "uvchat:kept", "no")
    c.close()
    assert stop() == 0
    assert not [f for f in os.listdir(d) if f.endswith((".rdb", ".aof")) or f.startswith("appendonly")], os.listdir(d)


def test_a_node_runs_on_the_hardened_redis(hardened_redis, tmp_path):
    sock, _, _ = hardened_redis
    secret = tmp_path / "redis-password"
    secret.write_text(PASSWORD + "\n")
    nodes = [Server(["--redis", "unix:" + sock, "--redis-user", "uvchat", "--redis-password-file", str(secret),
                     "--node-id", f"n{i}", "--cluster-heartbeat-seconds", "0.5"]).start() for i in range(2)]
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            if all(http_exchange(n.port, get("/healthz")).body == b"ok" for n in nodes):
                break
            time.sleep(0.1)
        assert all(http_exchange(n.port, get("/healthz")).body == b"ok" for n in nodes)
        a = RawWS(nodes[0].port)
        assert a.recv_json()["type"] == "waiting"
        b = RawWS(nodes[1].port)
        assert b.recv_json()["type"] == "paired"
        b.send_json({"type": "message", "text": "through the hardened redis"})
        assert a.recv_json() == {"type": "paired", "common": [], "random": True}
        assert a.recv_json() == {"type": "message", "text": "through the hardened redis"}
        # The password reaches no log.
        assert not any(PASSWORD in line for n in nodes for line in n.log)
    finally:
        for n in nodes:
            assert n.stop() == 0
