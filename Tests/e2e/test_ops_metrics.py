"""Deployment guide step 6, "Watch it": /metrics (promtool, a real Prometheus scraping it) and the logs (logfmt, no
chat text, addresses only with --log-addresses, --log-level). Each uses the real tool from Debian."""
import asyncio
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
from websockets.asyncio.client import connect

from ops_helpers import chat_pair, free_port, http_get, recv_until


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
