"""Deployment guide, "Voice and video calls (TURN)": the coturn recipe (deploy/coturn/turnserver.conf) is read by
the real turnserver from Debian's coturn without a single unknown key or bad value and serves with its own
settings (use-auth-secret: an unauthenticated Allocate is refused 401 in the recipe's realm), and the systemd
drop-in (deploy/systemd/uvchat-turn.conf) passes systemd-analyze verify beside the shipped units and hands uvchatd
flags it starts with, the secret read from the credential file."""
import base64
import hashlib
import hmac
import os
import re
import shlex
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import BINARY, WWW, Server
from ops_helpers import DEPLOY
from test_ops_systemd import units_for_test
from v2_helpers import raw_v2

RECIPE = os.path.join(DEPLOY, "coturn", "turnserver.conf")
DROP_IN = os.path.join(DEPLOY, "systemd", "uvchat-turn.conf")
TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"


def settings(text):
    """(key, value) for each setting line of a coturn config, in order."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.append((key.strip(), value.strip()))
    return out


def turnserver_or_skip():
    if not os.path.exists(TURNSERVER):
        if os.environ.get("CI"):
            pytest.fail("turnserver (Debian's coturn) is missing; `make test-deps` installs it")
        pytest.skip("turnserver (Debian's coturn) is not installed")


def free_ports(n):
    """n ports free for both UDP and TCP on 127.0.0.1 (a TURN listener takes both)."""
    ports = []
    while len(ports) < n:
        t, u = socket.socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            u.bind(("127.0.0.1", port))
            if port not in ports:
                ports.append(port)
        except OSError:
            pass
        finally:
            t.close()
            u.close()
    return ports


def test_recipe_says_what_the_guide_promises():
    keys = settings(open(RECIPE).read())
    one = dict(keys)
    for k in ("use-auth-secret", "static-auth-secret", "realm", "no-cli", "fingerprint", "no-multicast-peers",
              "no-tcp-relay", "user-quota", "total-quota", "max-bps", "bps-capacity", "cert", "pkey", "stale-nonce"):
        assert k in one, k
    assert one["listening-port"] == "3478" and one["tls-listening-port"] == "5349"
    assert int(one["min-port"]) >= 49152 and int(one["max-port"]) > int(one["min-port"])
    assert "REPLACE" in one["static-auth-secret"]   # a placeholder, never a usable secret
    assert "allow-loopback-peers" not in one and "allowed-peer-ip" not in one
    denied = [v for k, v in keys if k == "denied-peer-ip"]
    for r in ("10.0.0.0-10.255.255.255", "172.16.0.0-172.31.255.255", "192.168.0.0-192.168.255.255",
              "127.0.0.0-127.255.255.255", "169.254.0.0-169.254.255.255", "100.64.0.0-100.127.255.255",
              "224.0.0.0-255.255.255.255", "0.0.0.0-0.255.255.255", "::-::1", "::ffff:0.0.0.0-::ffff:255.255.255.255",
              "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
              "ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "64:ff9b::-64:ff9b::ffff:ffff"):
        assert r in denied, r


def stun_allocate(port, timeout=5):
    """An Allocate request without credentials over UDP; returns (message type, {attribute type: value})."""
    tid = os.urandom(12)
    attr = struct.pack("!HHI", 0x0019, 4, 17 << 24)   # REQUESTED-TRANSPORT: UDP
    msg = struct.pack("!HHI", 0x0003, len(attr), 0x2112A442) + tid + attr
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(msg, ("127.0.0.1", port))
        data, _ = s.recvfrom(2048)
    finally:
        s.close()
    kind, length = struct.unpack("!HH", data[:4])
    assert data[8:20] == tid
    attrs, pos = {}, 20
    while pos < 20 + length:
        t, n = struct.unpack("!HH", data[pos:pos + 4])
        attrs[t] = data[pos + 4:pos + 4 + n]
        pos += 4 + (n + 3) // 4 * 4
    return kind, attrs


def test_coturn_reads_every_key_of_the_recipe_and_serves(tmp_path):
    turnserver_or_skip()
    recipe = open(RECIPE).read()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    plain, tls = free_ports(2)
    # The recipe as it is, but for what a test machine needs: loopback and free ports, a throwaway certificate,
    # its files in the temp folder, the log on stdout (the recipe logs to syslog) and a secret of the test's.
    swaps = {"listening-port": f"listening-port={plain}", "tls-listening-port": f"tls-listening-port={tls}",
             "cert": f"cert={cert}", "pkey": f"pkey={key}", "syslog": "log-file=stdout\nsimple-log",
             "static-auth-secret": "static-auth-secret=" + os.urandom(16).hex()}
    lines = []
    for line in recipe.splitlines():
        k = line.partition("=")[0].strip()
        lines.append(swaps.pop(k) if k in swaps and not line.startswith("#") else line)
    assert swaps == {}, swaps   # each line the test replaces is in the recipe
    lines += ["listening-ip=127.0.0.1", "relay-ip=127.0.0.1", f"pidfile={tmp_path / 'turnserver.pid'}",
              f"userdb={tmp_path / 'turndb'}", "verbose"]
    conf = tmp_path / "turnserver.conf"
    conf.write_text("\n".join(lines) + "\n")
    log = []
    proc = subprocess.Popen([TURNSERVER, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=tmp_path)
    reader = threading.Thread(target=lambda: [log.append(line) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        ready = re.compile(r"UDP listener opened on\s*:\s*127\.0\.0\.1:" + str(plain) + r"\b")
        deadline = time.time() + 10
        while not any(ready.search(line) for line in list(log)):
            assert proc.poll() is None and time.time() < deadline, "turnserver did not start:\n" + "".join(log)
            time.sleep(0.05)
        assert any(re.search(r"TLS/TCP listener opened on\s*:\s*127\.0\.0\.1:" + str(tls), line) for line in log), \
            "".join(log)
        kind, attrs = stun_allocate(plain)
        assert kind == 0x0113, hex(kind)   # Allocate error response
        code = attrs[0x0009]               # ERROR-CODE: class and number
        assert code[2] * 100 + code[3] == 401
        assert attrs[0x0014].decode() == dict(settings(recipe))["realm"]   # REALM: the recipe's
        assert 0x0015 in attrs             # NONCE
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)
    text = "".join(log)
    # coturn names a key it does not know "Bad configuration format", and a value it cannot read an ERROR.
    assert "Bad configuration format" not in text, text
    assert not re.search(r"\bERROR\b", text), text


def drop_in_exec_start():
    """The drop-in's last ExecStart=, continuation lines joined, as argv."""
    text = open(DROP_IN).read().replace("\\\n", " ")
    starts = [line.partition("=")[2].strip() for line in text.splitlines() if line.startswith("ExecStart=")]
    assert starts[0] == "", "the drop-in must clear the shipped ExecStart= first"
    return shlex.split(starts[-1])


def test_turn_drop_in_passes_systemd_analyze_verify(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is missing (Debian package systemd; make test-deps installs it)")
    units = units_for_test(tmp_path)
    folder = tmp_path / "uvchat.service.d"
    folder.mkdir()
    drop_in = open(DROP_IN).read().replace("/usr/local/bin/uvchatd", BINARY).replace("/usr/local/share/uvchat/www", WWW)
    (folder / "turn.conf").write_text(drop_in)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no"] + units, capture_output=True, text=True)
    assert r.returncode == 0 and "turn.conf" not in r.stdout + r.stderr, r.stdout + r.stderr
    # verify does read the drop-in: a specifier systemd does not know there fails it (so %d is one it knows).
    (folder / "turn.conf").write_text(drop_in.replace("%d/turn-secret", "%Q/turn-secret"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no"] + units, capture_output=True, text=True)
    assert r.returncode != 0 and "turn.conf" in r.stdout + r.stderr, r.stdout + r.stderr
    settings_ = [line.strip() for line in open(DROP_IN) if not line.startswith("#")]
    assert "LoadCredential=turn-secret:/etc/uvchat/turn-secret" in settings_
    # The replaced command line is the shipped one plus the TURN flags.
    shipped = [line.partition("=")[2] for line in open(os.path.join(DEPLOY, "systemd", "uvchat.service"))
               if line.startswith("ExecStart=")]
    argv = drop_in_exec_start()
    assert " ".join(argv).startswith(shipped[0].strip()), (argv, shipped)
    assert argv[argv.index("--turn-secret-file") + 1] == "%d/turn-secret"


def test_uvchatd_starts_with_the_drop_in_flags_and_hands_out_its_credentials(tmp_path):
    argv = drop_in_exec_start()[1:]
    www = argv.index("--www")
    del argv[www:www + 2]              # the test's page folder, host and port instead
    secret = os.urandom(24).hex()
    (tmp_path / "turn-secret").write_text(secret + "\n")   # what LoadCredential= copies, newline and all
    argv = [a.replace("%d", str(tmp_path)) for a in argv]
    server = Server(argv).start()
    try:
        assert secret not in "".join(server.log)
        a, b = raw_v2(server.port), raw_v2(server.port)
        a.send_json({"type": "start"})
        assert a.recv_json()["type"] == "waiting"
        b.send_json({"type": "start"})
        for c in (a, b):
            assert c.recv_json()["type"] == "paired"
        a.send_json({"type": "call", "action": "request", "video": False})
        assert b.recv_json() == {"type": "call", "action": "request", "video": False}
        b.send_json({"type": "call", "action": "accept"})
        start = a.recv_json()
        assert start["action"] == "start" and start["initiator"] is True
        ice = start["ice"]
        assert ice["iceTransportPolicy"] == "relay"
        (entry,) = ice["iceServers"]
        assert entry["urls"] == [argv[i + 1] for i, v in enumerate(argv) if v == "--turn-url"]
        mac = hmac.new(secret.encode(), entry["username"].encode(), hashlib.sha1).digest()
        assert entry["credential"] == base64.b64encode(mac).decode()
        for c in (a, b):
            c.close()
    finally:
        assert server.stop() == 0
