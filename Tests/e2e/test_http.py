"""HTTP side of PROTOCOL.md: static files, errors, limits, keep-alive, handshake refusals.

Everything goes over raw sockets so that no client library normalises paths, adds
headers or hides how a response is framed.
"""
import email.utils
import os
import re
import time

import pytest

from wsclient import HTTPConn, get, http_exchange, start

INDEX = b"<!doctype html><title>uvchat test</title><p>hello \xc3\xa9</p>\n"
FILES = {
    "index.html": INDEX,
    "style.css": b"body { color: #123; }\n",
    "app.js": b"console.log('uvchat');\n",
    "data.json": b'{"ok": true}\n',
    "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg"/>\n',
    "pixel.png": bytes.fromhex("89504e470d0a1a0a") + b"\0" * 16,
}
SECRET = b"top secret, outside www\n"


@pytest.fixture
def site(tmp_path, server_factory):
    """A server over a private www folder, with a file next to (outside) it."""
    www = tmp_path / "www"
    www.mkdir()
    for name, data in FILES.items():
        (www / name).write_bytes(data)
    (www / "sub").mkdir()
    (www / "sub" / "page.html").write_bytes(b"<p>sub</p>")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    srv = start(server_factory, www=str(www))
    srv.www_path = www
    return srv


def test_get_root_serves_index_html(site):
    r = http_exchange(site.port, get("/"))
    assert r.status == 200
    assert r.header("content-type").split(";")[0].strip() == "text/html"
    assert int(r.header("content-length")) == len(INDEX)
    assert r.body == INDEX
    assert r.header("etag")
    assert r.header("last-modified")


def test_last_modified_is_the_file_mtime(site):
    r = http_exchange(site.port, get("/style.css"))
    lm = email.utils.parsedate_to_datetime(r.header("last-modified"))
    assert r.header("last-modified").endswith(" GMT")
    assert int(lm.timestamp()) == int(os.stat(site.www_path / "style.css").st_mtime)


@pytest.mark.parametrize("name,ctype", [
    ("index.html", r"text/html"),
    ("style.css", r"text/css"),
    ("app.js", r"(text|application)/javascript"),
    ("data.json", r"application/json"),
    ("logo.svg", r"image/svg\+xml"),
    ("pixel.png", r"image/png"),
])
def test_static_file_has_correct_content_type_and_length(site, name, ctype):
    r = http_exchange(site.port, get("/" + name))
    assert r.status == 200
    assert re.fullmatch(ctype, r.header("content-type").split(";")[0].strip()), r.header("content-type")
    assert int(r.header("content-length")) == len(FILES[name])
    assert r.body == FILES[name]


def test_file_in_subfolder_and_query_string_ignored(site):
    assert http_exchange(site.port, get("/sub/page.html")).body == b"<p>sub</p>"
    assert http_exchange(site.port, get("/index.html?v=2")).body == INDEX


def test_head_has_headers_but_no_body(site):
    c = HTTPConn(site.port)
    try:
        # The GET right behind the HEAD shows exactly where the HEAD response ended.
        c.send(get("/", method="HEAD") + get("/healthz"))
        h = c.read_response(head_only=True)
        assert h.status == 200
        assert int(h.header("content-length")) == len(INDEX)
        assert h.header("content-type").startswith("text/html")
        assert c.buf == b"" or c.buf.startswith(b"HTTP/1.1 "), c.buf[:60]
        g = c.read_response()
        assert g.status == 200 and g.body.rstrip(b"\n") == b"ok"
    finally:
        c.close()


def test_etag_revalidation_gives_304(site):
    first = http_exchange(site.port, get("/"))
    etag = first.header("etag")
    c = HTTPConn(site.port)
    try:
        c.send(get("/", headers=[f"If-None-Match: {etag}"]) + get("/healthz"))
        r = c.read_response(head_only=True)
        assert r.status == 304
        assert r.header("etag") == etag
        # No body after a 304: the next bytes are the next response.
        assert c.read_response().body.rstrip(b"\n") == b"ok"
    finally:
        c.close()


def test_etag_list_and_mismatch(site):
    etag = http_exchange(site.port, get("/")).header("etag")
    r = http_exchange(site.port, get("/", headers=[f'If-None-Match: "nope", {etag}']), head_only=True)
    assert r.status == 304
    r = http_exchange(site.port, get("/", headers=['If-None-Match: "definitely-not-it"']))
    assert r.status == 200 and r.body == INDEX


def test_if_modified_since_gives_304(site):
    lm = http_exchange(site.port, get("/")).header("last-modified")
    r = http_exchange(site.port, get("/", headers=[f"If-Modified-Since: {lm}"]), head_only=True)
    assert r.status == 304


def test_missing_file_is_404_page(site):
    r = http_exchange(site.port, get("/no-such-file.html"))
    assert r.status == 404
    assert int(r.header("content-length")) == len(r.body)
    assert r.body, "a 404 page, not an empty body"


@pytest.mark.parametrize("target", [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/%2e%2e%2fsecret.txt",
    "/..%2fsecret.txt",
    "/sub/../../secret.txt",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/./../secret.txt",
])
def test_path_escaping_www_is_404(site, target):
    c = HTTPConn(site.port)
    try:
        c.send(get(target))
        r = c.read_response()
        assert r.status == 404, (target, r)
        assert SECRET not in r.body
    finally:
        c.close()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_get_405_with_allow(site, method):
    r = http_exchange(site.port, get("/", method=method, headers=["Content-Length: 0"]))
    assert r.status == 405
    allow = {m.strip().upper() for m in (r.header("allow") or "").split(",")}
    assert {"GET", "HEAD"} <= allow, r.header("allow")


def _error_then_close(port, data, status):
    c = HTTPConn(port)
    try:
        c.send(data)
        r = c.read_response()
        assert r.status == status, r
        # "Every error response closes cleanly": the server ends the stream.
        assert c.closed_by_server(3), "connection left open after an error response"
        return r
    finally:
        c.close()


@pytest.mark.parametrize("data", [
    "GARBAGE\r\n\r\n",
    "GET /\r\n\r\n",
    "GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    "GET / FOO/1.1\r\nHost: x\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
])
def test_malformed_request_is_400(site, data):
    _error_then_close(site.port, data, 400)


def test_request_head_over_16k_is_431(site):
    pad = "".join(f"X-Pad-{i}: {'a' * 1000}\r\n" for i in range(18))
    data = f"GET / HTTP/1.1\r\nHost: x\r\n{pad}\r\n"
    assert len(data) > 17 * 1024
    _error_then_close(site.port, data, 431)


def test_too_many_header_lines_is_431(site):
    lines = "".join(f"X-H{i}: v\r\n" for i in range(150))
    _error_then_close(site.port, f"GET / HTTP/1.1\r\nHost: x\r\n{lines}\r\n", 431)


def test_request_target_over_limit_is_414(site):
    _error_then_close(site.port, get("/" + "a" * (9 * 1024)), 414)


def test_healthz(site):
    r = http_exchange(site.port, get("/healthz"))
    assert r.status == 200 and r.body == b"ok"  # exactly, as PROTOCOL.md says


METRIC_LINE = re.compile(
    r'[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*,?\})? '
    r'([-+]?[0-9.]+([eE][-+]?[0-9]+)?|NaN|[-+]Inf)( -?[0-9]+)?')


def test_metrics_is_prometheus_text(site):
    r = http_exchange(site.port, get("/metrics"))
    assert r.status == 200
    ctype = r.header("content-type")
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
    lines = r.body.decode().split("\n")
    assert lines[-1] == "", "exposition ends with a newline"
    samples = 0
    for line in lines[:-1]:
        if line.startswith("#"):
            if line.startswith("# TYPE "):
                assert re.fullmatch(r"# TYPE \S+ (counter|gauge|histogram|summary|untyped)", line), line
            continue
        assert METRIC_LINE.fullmatch(line), f"bad sample line {line!r}"
        samples += 1
    assert samples > 0


def test_keep_alive_two_requests_on_one_socket(site):
    c = HTTPConn(site.port)
    try:
        c.send(get("/"))
        assert c.read_response().body == INDEX
        assert c.idle(0.2), "connection closed or extra bytes after a keep-alive response"
        c.send(get("/style.css"))
        assert c.read_response().body == FILES["style.css"]
    finally:
        c.close()


def test_pipelined_requests_answered_in_order(site):
    c = HTTPConn(site.port)
    try:
        c.send(get("/app.js") + get("/", method="HEAD") + get("/healthz") + get("/style.css"))
        assert c.read_response().body == FILES["app.js"]
        h = c.read_response(head_only=True)
        assert h.status == 200 and h.header("content-type").startswith("text/html")
        assert c.read_response().body.rstrip(b"\n") == b"ok"
        assert c.read_response().body == FILES["style.css"]
    finally:
        c.close()


def test_pipelined_requests_split_at_every_byte(site):
    data = (get("/healthz") + get("/app.js")).encode()
    c = HTTPConn(site.port)
    try:
        for i in range(len(data)):
            c.send(data[i:i + 1])
        assert c.read_response().body.rstrip(b"\n") == b"ok"
        assert c.read_response().body == FILES["app.js"]
    finally:
        c.close()


def test_http10_request_is_answered_and_closed(site):
    c = HTTPConn(site.port)
    try:
        c.send("GET /healthz HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body.rstrip(b"\n") == b"ok"
        assert c.closed_by_server(3)
    finally:
        c.close()


def test_connection_close_is_honoured(site):
    c = HTTPConn(site.port)
    try:
        c.send(get("/healthz", headers=["Connection: close"]))
        assert c.read_response().body.rstrip(b"\n") == b"ok"
        assert c.closed_by_server(3)
    finally:
        c.close()


UPGRADE = ["Upgrade: websocket", "Connection: Upgrade"]


def test_handshake_accept_matches_rfc_example(site):
    c = HTTPConn(site.port)
    try:
        c.send(get("/ws", headers=UPGRADE + ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                             "Sec-WebSocket-Version: 13"]))
        r = c.read_response(head_only=True)
        assert r.status == 101
        assert r.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert r.header("upgrade").lower() == "websocket"
        assert "upgrade" in r.header("connection").lower()
    finally:
        c.close()


def test_handshake_without_key_is_400(site):
    r = http_exchange(site.port, get("/ws", headers=UPGRADE + ["Sec-WebSocket-Version: 13"]))
    assert r.status == 400


def test_handshake_with_bad_key_is_400(site):
    r = http_exchange(site.port, get("/ws", headers=UPGRADE + ["Sec-WebSocket-Key: c2hvcnQ=",
                                                               "Sec-WebSocket-Version: 13"]))
    assert r.status == 400


def test_handshake_with_version_12_is_426(site):
    r = http_exchange(site.port, get("/ws", headers=UPGRADE + ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                                               "Sec-WebSocket-Version: 12"]))
    assert r.status == 426
    assert r.header("sec-websocket-version") == "13"


def test_unfinished_request_head_times_out(server_factory, tmp_path):
    srv = start(server_factory, "--handshake-timeout", "0.5", www=str(tmp_path))
    c = HTTPConn(srv.port)
    try:
        c.send("GET / HTTP/1.1\r\nHost: x\r\n")  # the head never ends
        t0 = time.monotonic()
        try:
            r = c.read_response(timeout=4)
            assert r.status == 408, r
            assert c.closed_by_server(2)
        except EOFError:
            pass  # closed without a response is acceptable too
        assert time.monotonic() - t0 < 3
    finally:
        c.close()


def test_idle_keep_alive_connection_is_closed(server_factory, tmp_path):
    srv = start(server_factory, "--keep-alive-timeout", "0.5", www=str(tmp_path))
    c = HTTPConn(srv.port)
    try:
        c.send(get("/healthz"))
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.closed_by_server(4)
        assert time.monotonic() - t0 >= 0.3
    finally:
        c.close()


def test_prebuilt_static_answer_matches_the_general_path(server):
    """A plain keep-alive GET is answered from bytes built at load time; they must equal what the general path
    builds (here forced by an If-None-Match that does not match)."""
    import socket as _s

    def fetch(extra):
        c = _s.create_connection(("127.0.0.1", server.port), timeout=5)
        c.sendall(f"GET / HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += c.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        while len(body) < length:
            body += c.recv(65536)
        c.close()
        return head, body

    fast = fetch("")
    general = fetch('If-None-Match: "no-such-tag"\r\n')
    assert fast == general
    assert fast[0].startswith(b"HTTP/1.1 200") and b"Content-Security-Policy" in fast[0]


# --- Date (RFC 9110 section 6.6.1: an origin server with a clock sends it on 2xx, 3xx and 4xx) ----------------------

def _date_of(r):
    value = r.header("date")
    assert value, f"no Date on {r.status}"
    assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                        r"\d{4} \d\d:\d\d:\d\d GMT", value), value
    return email.utils.parsedate_to_datetime(value).timestamp()


def test_every_response_carries_the_current_date(site):
    etag = http_exchange(site.port, get("/style.css")).header("etag")
    requests = [get("/"), get("/style.css"), get("/missing.txt"), get("/", method="POST"), get("/healthz"),
                get("/online"), get("/style.css", headers=[f"If-None-Match: {etag}"]), "GARBAGE\r\n\r\n"]
    for request in requests:
        before = time.time()
        r = http_exchange(site.port, request, head_only=request.endswith(f"{etag}\r\n\r\n"))
        stamp = _date_of(r)
        assert int(before) - 1 <= stamp <= time.time() + 1, (request, r.status, r.header("date"))


def test_prebuilt_responses_get_a_new_date_each_second(site):
    c = HTTPConn(site.port)
    try:
        c.send(get("/"))
        first = _date_of(c.read_response())
        time.sleep(1.6)
        c.send(get("/"))
        second = _date_of(c.read_response())
        assert second >= first + 1, (first, second)
        assert second <= time.time() + 1
    finally:
        c.close()
