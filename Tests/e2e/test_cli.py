"""The command line (Sources/uvchatd/Flags.swift): both spellings of a value, repeatable options, --help and
--version, and one clear line with exit status 1 for every kind of bad flag, before anything listens."""
import re
import subprocess

import pytest

from conftest import BINARY, WWW
from ops_helpers import http_get
from wsclient import HTTPConn


def run(*args):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=15)


def raw_request(port, head):
    """The status line of the answer to `head`."""
    conn = HTTPConn(port)
    conn.send(head)
    status = conn.read_response(head_only=True).raw_head.split("\r\n")[0]
    conn.sock.close()
    return status


def test_help_lists_every_flag_once_with_the_servers_defaults():
    r = run("--help")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    names = re.findall(r"^  (?:-h, )?--([a-z][a-z-]*)", r.stdout, re.M)
    assert len(names) == len(set(names)) and len(names) > 70, names
    for expected in ("port", "redis", "stun-url", "echo", "no-rate-limits", "help", "version"):
        assert expected in names, expected
    # Single-valued options show the default the server really uses.
    assert re.search(r"--port <value>\n .*\(default: 8080\)", r.stdout), r.stdout
    assert re.search(r"--handshake-timeout <value>\n .*\(default: 10\.0\)", r.stdout), r.stdout
    assert re.search(r"--stun-url <value> \(repeatable\)\n", r.stdout), r.stdout
    assert run("-h").stdout == r.stdout


def test_version_matches_the_metrics_build_info(server_factory):
    r = run("--version")
    assert r.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+\n", r.stdout), r.stdout
    status, _, body = http_get(server_factory().port, "/metrics")
    assert status == 200 and f'uvchat_build_info{{version="{r.stdout.strip()}"}} 1' in body.decode(), body[-400:]


@pytest.mark.parametrize("args, message", [
    (["--port", "abc"], "uvchatd: --port must be a whole number, not 'abc'"),
    (["--port"], "uvchatd: --port needs a value"),
    (["--www", "--echo"], "uvchatd: --www needs a value"),
    (["--port", "70000"], "uvchatd: --port must be 0 to 65535"),
    (["--bogus"], "uvchatd: unknown option '--bogus' (see --help)"),
    (["--bogus=1"], "uvchatd: unknown option '--bogus' (see --help)"),
    (["stray"], "uvchatd: unexpected argument 'stray' (see --help)"),
    (["-p", "80"], "uvchatd: unexpected argument '-p' (see --help)"),
    (["--echo=yes"], "uvchatd: --echo takes no value"),
    (["--handshake-timeout", "nan"], "uvchatd: --handshake-timeout must be a number of at most 1e9, not 'nan'"),
    (["--handshake-timeout", "1e300"], "uvchatd: --handshake-timeout must be a number of at most 1e9, not '1e300'"),
    (["--ping-interval", "0"], "uvchatd: --ping-interval must be positive"),
    (["--log-level", "loud"], "uvchatd: --log-level must be debug, info, warn or error"),
    (["--trusted-proxy", "10.0.0.1", "--trusted-proxy", "nope"], "uvchatd: invalid --trusted-proxy address 'nope'"),
])
def test_a_bad_flag_is_one_line_and_exit_status_1(args, message):
    r = run("--host", "127.0.0.1", "--port", "0", "--www", WWW, *args)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr == message + "\n" and r.stdout == "", r.stderr


def test_both_spellings_set_a_value_and_the_last_one_counts(server_factory):
    big = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + "a" * 1500 + "\r\n\r\n"
    # --name=value, then the same option again as --name value: the last one given is the one used.
    s = server_factory("--max-head-bytes=100000", "--max-head-bytes", "1024")
    assert raw_request(s.port, big) == "HTTP/1.1 431 Request Header Fields Too Large"
    s = server_factory("--max-head-bytes", "1024", "--max-head-bytes=100000")
    assert raw_request(s.port, big) == "HTTP/1.1 200 OK"


def test_a_repeatable_option_keeps_every_value(server_factory):
    s = server_factory("--allow-origin", "https://a.example", "--allow-origin=https://b.example")

    def upgrade(origin):
        return raw_request(s.port, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                                   f"Origin: {origin}\r\n\r\n")

    assert upgrade("https://a.example") == "HTTP/1.1 101 Switching Protocols"
    assert upgrade("https://b.example") == "HTTP/1.1 101 Switching Protocols"
    assert upgrade("https://c.example") == "HTTP/1.1 403 Forbidden"
