"""Deployment guide step 4, "Start": the systemd units (systemd-analyze verify and security), the notify protocol
and watchdog, and socket activation. Each uses the real tool from Debian."""
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import BINARY, WWW
from ops_helpers import DEPLOY, chat_pair, free_port, socket_activate_tool


# --- systemd units ---------------------------------------------------------------------------------------------

def units_for_test(tmp_path):
    service = open(os.path.join(DEPLOY, "systemd", "uvchat.service")).read()
    service = service.replace("/usr/local/bin/uvchatd", BINARY).replace("/usr/local/share/uvchat/www", WWW)
    (tmp_path / "uvchat.service").write_text(service)
    shutil.copy(os.path.join(DEPLOY, "systemd", "uvchat.socket"), tmp_path / "uvchat.socket")
    return [str(tmp_path / "uvchat.service"), str(tmp_path / "uvchat.socket")]


def unit_settings(name):
    """(section, key, value) for each setting of a shipped unit, in order (a key may repeat)."""
    settings, section = [], None
    for line in open(os.path.join(DEPLOY, "systemd", name)).read().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.append((section, key.strip(), value.strip()))
    return settings


def test_units_pass_systemd_analyze_verify(tmp_path):
    units = units_for_test(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no"] + units, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # A setting systemd cannot parse (an unknown key, a bad MemoryMax= value) is only a warning: there must be none.
    warnings = [l for l in (r.stdout + r.stderr).splitlines() if "uvchat.service:" in l or "uvchat.socket:" in l]
    assert warnings == [], warnings
    # And it does check something: a unit whose binary is missing fails.
    bad = tmp_path / "broken.service"
    bad.write_text(open(units[0]).read().replace(BINARY, "/nonexistent/uvchatd"))
    assert subprocess.run(["systemd-analyze", "verify", "--man=no", str(bad)], capture_output=True).returncode != 0


def test_socket_listens_on_loopback_only_by_default():
    # nginx in front on the same host is the shipped layout; listening on every address is a deliberate change.
    listens = [v for section, k, v in unit_settings("uvchat.socket") if section == "Socket" and k == "ListenStream"]
    assert listens == ["127.0.0.1:8080"], listens


def test_service_bounds_memory_and_tasks():
    service = {(section, k): v for section, k, v in unit_settings("uvchat.service")}
    memory = service.get(("Service", "MemoryMax"), "")
    m = re.fullmatch(r"(\d+)([KMG]?)", memory)
    assert m, f"MemoryMax={memory!r}"
    assert 256 << 20 <= int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2)] <= 8 << 30
    # One thread: a small number of tasks, with room for what systemd forks (ExecReload).
    tasks = service.get(("Service", "TasksMax"), "")
    assert tasks.isdigit() and 4 <= int(tasks) <= 64, f"TasksMax={tasks!r}"
    # And uvchatd trusts the nginx in front of its loopback socket, or every client would be one address.
    assert "--trusted-proxy 127.0.0.1" in service[("Service", "ExecStart")]


def test_service_exposure_is_under_2():
    r = subprocess.run(["systemd-analyze", "security", "--offline=true",
                        os.path.join(DEPLOY, "systemd", "uvchat.service")], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for uvchat.service: ([0-9.]+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) < 2.0, m.group(0)


# --- the notify protocol, with a real datagram socket standing in for systemd ----------------------------------

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
