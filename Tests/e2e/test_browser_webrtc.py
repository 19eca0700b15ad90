"""Real calls (PROTOCOL.md B.4) between two headless Chromiums with fake camera and microphone, in network
namespaces of the test's own, through the page as a person uses it: Start, the video call button, Accept. Checked in
each page with getStats(): video frames decoded and audio samples received grow, and the candidate pair the call
runs on. Twice: direct (uvchatd offers no STUN or TURN: host candidates), and relayed (a real coturn with
use-auth-secret, uvchatd with --turn-url and --ice-transport-policy relay: both ends on relay candidates).

Why namespaces, and how. WebRTC never uses loopback addresses for ICE, so the browsers need real interfaces. The
test makes two namespaces joined by a veth pair, 10.213.0.1 (namespace a: uvchatd, coturn and browser a) and
10.213.0.2 (namespace b: browser b), each with a default route over the veth and no way further (neither
namespace forwards), so no packet can leave the test's own addresses; there are no external URLs in any config.
Chromedriver and this test stay in the root namespace: Chromium is started inside a namespace by a launcher
(`ip netns exec NS chromium ...`) and driven over --remote-debugging-pipe (file descriptors survive the exec, so
chromedriver needs no network path into the namespace). The page comes from http://10.213.0.1:PORT, which the
browsers are told to treat as secure (getUserMedia needs a secure context). Namespaces are named after the pid of
the run; leftovers of a run that died (its pid gone) are removed first, with anything still running in them. At
the end every process started in them is stopped and both namespaces are deleted, also when a test fails.
Without root, or where `ip netns add` is refused (a container without CAP_SYS_ADMIN), the suite is skipped."""
import base64
import hashlib
import hmac
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time

import pytest

from browser_helpers import CHROMIUM, browsers, el, is_paired, log_text, say, start, status, wait  # noqa: F401
from call_helpers import FAKE_MEDIA, phase, released, rtc, spy
from conftest import BINARY, WWW

A_ADDR, B_ADDR = "10.213.0.1", "10.213.0.2"
PREFIX = "uvchat-rtc-"
TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=check)


def pids_in(ns):
    r = ip("netns", "pids", ns, check=False)
    return [int(p) for p in r.stdout.split()] if r.returncode == 0 else []


def remove_namespace(ns):
    """Stop whatever still runs inside (only this suite starts processes there), then delete it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = pids_in(ns)
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 3
        while pids and time.time() < deadline and pids_in(ns):
            time.sleep(0.05)
    ip("netns", "delete", ns, check=False)


def remove_leftovers():
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(re.escape(PREFIX) + r"(\d+)-[ab]", name)
        if m and (int(m.group(1)) == os.getpid() or not os.path.exists(f"/proc/{m.group(1)}")):
            remove_namespace(name)


@pytest.fixture(scope="module")
def netns(tmp_path_factory):
    """Two namespaces joined by a veth pair; yields {"a": name, "b": name, "dir": a temp folder}."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns add)")
    if not shutil.which("ip"):
        pytest.skip("no `ip` (iproute2) to make network namespaces")
    remove_leftovers()
    names = {"a": f"{PREFIX}{os.getpid()}-a", "b": f"{PREFIX}{os.getpid()}-b"}
    made = []
    try:
        for ns in names.values():
            r = ip("netns", "add", ns, check=False)
            if r.returncode != 0:
                pytest.skip("network namespaces are not allowed here: ip netns add: " + r.stderr.strip())
            made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        a, b = names["a"], names["b"]
        r = ip("link", "add", "uvc0", "netns", a, "type", "veth", "peer", "name", "uvc1", "netns", b, check=False)
        if r.returncode != 0:
            pytest.skip("no veth pair between network namespaces here: ip link add: " + r.stderr.strip())
        for ns, dev, addr, peer in ((a, "uvc0", A_ADDR, B_ADDR), (b, "uvc1", B_ADDR, A_ADDR)):
            ip("-n", ns, "addr", "add", addr + "/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            # A default route, as every real machine has (Chromium looks for it before it gathers candidates);
            # the peer namespace does not forward, so nothing goes beyond the two test addresses.
            ip("-n", ns, "route", "add", "default", "via", peer, "dev", dev)
        folder = tmp_path_factory.mktemp("netns")
        for key, ns in names.items():   # a Chromium launcher per namespace
            path = folder / f"chromium-{key}"
            path.write_text(f"#!/bin/sh\nexec ip netns exec {ns} {CHROMIUM} \"$@\"\n")
            path.chmod(0o755)
        yield {**names, "dir": folder}
    finally:
        for ns in made:
            remove_namespace(ns)
        left = [ns for ns in made if ns in ip("netns", "list", check=False).stdout]
        assert not left, f"namespaces left behind: {left}"


class Proc:
    """A process inside a namespace, its stderr (and stdout) kept."""

    def __init__(self, ns, cmd, ready, what, timeout=10):
        self.what = what
        self.log = []
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=lambda: [self.log.append(line) for line in self.proc.stdout], daemon=True).start()
        deadline = time.time() + timeout
        while time.time() < deadline:
            for line in list(self.log):
                m = re.search(ready, line)
                if m:
                    self.match = m
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{what} did not start: " + "".join(self.log))

    def stop(self, timeout=20):   # above uvchatd's drain (--drain-timeout 10 s) and close timeout
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def procs():
    """The processes a test starts in the namespaces, stopped at its end. Tests ask for it before `browsers`, so
    that the browsers quit first and uvchatd drains no open page."""
    started = []
    yield started
    codes = {p.what: p.stop() for p in reversed(started)}
    assert codes.get("uvchatd", 0) == 0, f"uvchatd exited with {codes['uvchatd']}"   # a clean drain on SIGTERM


def uvchatd(netns, procs, *flags):
    p = Proc(netns["a"], [BINARY, "--host", A_ADDR, "--port", "0", "--www", WWW, *flags],
             r"msg=listening .*port=(\d+)", "uvchatd")
    procs.append(p)
    p.http = f"http://{A_ADDR}:{p.match.group(1)}"
    return p


def coturn(netns, procs, secret):
    folder = netns["dir"]
    conf = folder / "turnserver.conf"
    # The production recipe (deploy/coturn/turnserver.conf) refuses relays to private addresses; this one allows
    # only the test's own range, and refuses everything else.
    conf.write_text(f"""listening-ip={A_ADDR}
relay-ip={A_ADDR}
listening-port=3478
min-port=49160
max-port=49260
use-auth-secret
static-auth-secret={secret}
realm=uvchat.test
fingerprint
no-cli
no-tls
no-dtls
no-multicast-peers
denied-peer-ip=0.0.0.0-255.255.255.255
allowed-peer-ip=10.213.0.0-10.213.0.255
userdb={folder / "turndb"}
pidfile={folder / "turnserver.pid"}
log-file=stdout
simple-log
verbose
""")
    # Verbose: the listener lines (ready) and each allocation are logged.
    p = Proc(netns["a"], [TURNSERVER, "-c", str(conf)], r"UDP listener opened on\s*:\s*" + re.escape(A_ADDR) + ":3478",
             "turnserver")
    procs.append(p)
    return p


def page_browser(browsers, netns, side, server):
    d = browsers(binary=str(netns["dir"] / f"chromium-{side}"),
                 args=(*FAKE_MEDIA, "--remote-debugging-pipe",
                       f"--unsafely-treat-insecure-origin-as-secure={server.http}",
                       "--disable-features=WebRtcHideLocalIpsWithMdns"))
    spy(d)
    return d


STATS = """
const done = arguments[arguments.length - 1];
const pcs = window.__rtc.pcs;
if (!pcs.length) { done({ error: 'no RTCPeerConnection' }); return; }
pcs[pcs.length - 1].getStats().then((report) => {
  const all = {};
  report.forEach((s) => { all[s.id] = s; });
  const out = { frames: 0, samples: 0, pair: null };
  let pairId = null;
  for (const s of Object.values(all)) {
    if (s.type === 'inbound-rtp' && s.kind === 'video') out.frames = s.framesDecoded || 0;
    if (s.type === 'inbound-rtp' && s.kind === 'audio') out.samples = s.totalSamplesReceived || 0;
    if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  }
  if (!pairId) for (const s of Object.values(all)) if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pairId = s.id;
  const pair = all[pairId];
  if (pair) {
    const l = all[pair.localCandidateId], r = all[pair.remoteCandidateId];
    out.pair = { local: [l.candidateType, l.address, l.protocol], remote: [r.candidateType, r.address] };
  }
  done(out);
}, (e) => done({ error: String(e) }));
"""


def stats(d):
    s = d.execute_async_script(STATS)
    assert "error" not in s, s
    return s


def playing(d, id_):
    return d.execute_script("const v = document.getElementById(arguments[0]); "
                            "return !!v.srcObject && !v.paused && (v.tagName !== 'VIDEO' || v.videoWidth > 0)", id_)


def video_call(browsers, netns, server):
    """Pair a (namespace a) and b (namespace b) through the page, a calls with video, b accepts; both connected,
    and media flowing both ways. Returns the two drivers and the selected candidate pair of each."""
    a = page_browser(browsers, netns, "a", server)
    b = page_browser(browsers, netns, "b", server)
    start(a, server)
    wait(a, lambda d: "Looking" in status(d), what="a waiting")
    start(b, server)
    for d in (a, b):
        wait(d, is_paired, what="paired")
    el(a, "call-video").click()
    wait(b, lambda d: phase(d) == "incoming", what="b sees the prompt")
    el(b, "call-accept").click()
    for d in (a, b):
        wait(d, lambda d: phase(d) == "connected", timeout=20, what="call connected")
    pairs = {}
    first = {}
    for key, d in (("a", a), ("b", b)):
        wait(d, lambda d: stats(d)["frames"] > 0 and stats(d)["samples"] > 0, timeout=10, what="media arriving")
        first[key] = stats(d)
    time.sleep(1.5)
    for key, d in (("a", a), ("b", b)):
        later = stats(d)
        assert later["frames"] > first[key]["frames"], (key, first[key], later)   # video keeps being decoded
        assert later["samples"] > first[key]["samples"], (key, first[key], later)  # and sound received
        pairs[key] = later["pair"]
        assert playing(d, "remote-video") and playing(d, "remote-audio") and playing(d, "local-video"), key
    return a, b, pairs


def chat_and_hang_up(a, b):
    say(a, "hello through the call")
    wait(b, lambda d: "Stranger: hello through the call" in log_text(d))
    say(b, "hi back")
    wait(a, lambda d: "Stranger: hi back" in log_text(d))
    el(b, "call-hangup").click()
    for d, says in ((a, "Stranger ended the call."), (b, "You ended the call.")):
        wait(d, lambda d: phase(d) == "ended" and says in log_text(d), what="ended")
        wait(d, released, what="camera, microphone and connection released")
        assert rtc(d)["csp"] == []


def on_test_addresses(pair):
    return pair["local"][1].startswith("10.213.0.") and pair["remote"][1].startswith("10.213.0.")


def test_direct_call_between_two_namespaces(netns, procs, browsers):
    server = uvchatd(netns, procs)
    a, b, pairs = video_call(browsers, netns, server)
    for d in (a, b):
        assert rtc(d)["configs"] == [{"iceServers": [], "iceTransportPolicy": "all"}]
    for key, pair in pairs.items():
        assert pair["local"][0] == "host" and pair["remote"][0] == "host", (key, pair)
        assert on_test_addresses(pair), (key, pair)
    assert pairs["a"]["local"][1] == A_ADDR and pairs["b"]["local"][1] == B_ADDR   # each its own address
    chat_and_hang_up(a, b)


def test_relayed_call_through_coturn(netns, procs, browsers):
    if not os.path.exists(TURNSERVER):
        if os.environ.get("CI"):
            pytest.fail("turnserver (Debian's coturn) is missing; `make test-deps` installs it")
        pytest.skip("turnserver (Debian's coturn) is not installed")
    secret = secrets.token_hex(24)
    secret_file = netns["dir"] / "turn-secret"
    secret_file.write_text(secret + "\n")   # a trailing newline, as an editor leaves it: uvchatd trims it
    secret_file.chmod(0o600)
    turn = coturn(netns, procs, secret)
    url = f"turn:{A_ADDR}:3478?transport=udp"
    server = uvchatd(netns, procs, "--turn-url", url, "--turn-secret-file", str(secret_file),
                     "--ice-transport-policy", "relay")
    a, b, pairs = video_call(browsers, netns, server)
    users = set()
    for d in (a, b):
        (config,) = rtc(d)["configs"]
        assert config["iceTransportPolicy"] == "relay"
        (entry,) = config["iceServers"]
        assert entry["urls"] == [url]
        user = entry["username"]
        assert re.fullmatch(r"\d+:[0-9a-f]{16}", user), user
        assert 0 < int(user.split(":")[0]) - time.time() <= 600 + 5   # expires within the default 600 s
        mac = hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest()
        assert entry["credential"] == base64.b64encode(mac).decode()   # coturn's use-auth-secret scheme
        users.add(user)
    assert len(users) == 2   # each side of the call has its own username
    for key, pair in pairs.items():
        assert pair["local"][0] == "relay" and pair["remote"][0] == "relay", (key, pair)
        assert pair["local"][1] == A_ADDR and pair["remote"][1] == A_ADDR, (key, pair)   # coturn's relay address
    assert secret not in "".join(server.log)   # never logged
    chat_and_hang_up(a, b)
    # coturn logs a granted allocation as "ALLOCATE processed, success" (some builds also say "allocation").
    assert any("allocate processed, success" in line.lower() or "allocation" in line.lower() for line in turn.log), \
        "".join(turn.log[-20:])
