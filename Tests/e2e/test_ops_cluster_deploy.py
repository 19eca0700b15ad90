"""The cluster's deployment files (deploy/README-deployment.md, "Running a cluster"), each with the real tool:
the systemd template unit, the nginx upstream recipe, and the hardened Redis configuration with its ACL, which a
real uvchatd node must be able to run on."""
import hashlib
import os
import shutil
import subprocess
import tempfile
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


def test_cluster_nginx_recipe_passes_nginx_t():
    if not shutil.which("nginx"):
        pytest.fail("nginx is missing (make test-deps installs it)")
    workdir = tempfile.mkdtemp(prefix="uvchat-nginx-")
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                        "-days", "1", "-keyout", f"{workdir}/key.pem", "-out", f"{workdir}/cert.pem"],
                       check=True, capture_output=True)
        recipe = open(os.path.join(DEPLOY, "nginx", "uvchat-cluster.conf")).read()
        for old, new in [("listen 443 ssl;", f"listen 127.0.0.1:{free_port()} ssl;"), ("listen [::]:443 ssl;", ""),
                         ("listen 80;", f"listen 127.0.0.1:{free_port()};"), ("listen [::]:80;", ""),
                         ("/etc/ssl/certs/chat.example.org.pem", f"{workdir}/cert.pem"),
                         ("/etc/ssl/private/chat.example.org.key", f"{workdir}/key.pem")]:
            assert old in recipe, old
            recipe = recipe.replace(old, new)
        assert recipe.count("server 10.0.0.") == 3 and "least_conn;" in recipe and "proxy_next_upstream" in recipe
        conf = (f"worker_processes 1;\nerror_log stderr;\npid {workdir}/nginx.pid;\nevents {{ worker_connections 64; }}\n"
                f"http {{\naccess_log off;\nclient_body_temp_path {workdir}/b;\nproxy_temp_path {workdir}/p;\n"
                f"fastcgi_temp_path {workdir}/f;\nuwsgi_temp_path {workdir}/u;\nscgi_temp_path {workdir}/s;\n{recipe}\n}}\n")
        with open(f"{workdir}/nginx.conf", "w") as f:
            f.write(conf)
        r = subprocess.run(["nginx", "-t", "-e", "stderr", "-p", workdir, "-c", f"{workdir}/nginx.conf"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


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
    yield sock, d
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(d, ignore_errors=True)


def refused(c, *args):
    try:
        c.call(*args)
    except RuntimeError as e:
        return str(e)
    return None


def test_redis_acl_lets_uvchat_do_its_work_and_nothing_else(hardened_redis):
    sock, _ = hardened_redis
    c = RedisConn(sock)
    assert "NOAUTH" in refused(c, "PING")
    assert refused(c, "AUTH", "default", "") is not None
    assert c.call("AUTH", "uvchat", PASSWORD) == "OK"
    assert c.call("PING") == "PONG"
    for forbidden in (("SET", "elsewhere", "1"), ("FLUSHALL",), ("CONFIG", "GET", "save"), ("KEYS", "*"),
                      ("PUBLISH", "elsewhere", "x"), ("SHUTDOWN",)):
        assert "NOPERM" in (refused(c, *forbidden) or ""), forbidden
    assert c.call("PUBLISH", "uvchat:n:node", "x") == 0
    c.close()


def test_a_node_runs_on_the_hardened_redis(hardened_redis, tmp_path):
    sock, _ = hardened_redis
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
