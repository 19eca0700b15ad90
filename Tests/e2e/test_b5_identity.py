"""PROTOCOL.md part B.5 (identity, reports and blocks) over real sockets, as uvchatd 0.7.0 reads it (issue #17):
operator tokens minted here with PyJWT (HS256 and EdDSA) accepted or refused at the upgrade with the exact 401;
the signed identity cookie (on a version 2 101 and on GET /status, never on a version 1 101); every report and
block row; three different reporters ban (1008 for the open connection, 403 with Retry-After for upgrades, the
address for cookie-less clients, expiry), one reporter never does; blocks keep a pair apart while others wait;
groups never mix; quarantine; the metrics; and no token, cookie or chat text in the server's log.
"""
import asyncio
import base64
import os
import socket
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ops_helpers import http_get, metric_values
from v2_helpers import NO_RATE, barrier, send_start, v1_open, v2_open
from wsclient import Chat, close_all, run

SECRET = b"a test HS256 secret that is long enough"
V2 = "uvchat.2"


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def hs_token(sub="alice", exp_in=600, key=SECRET, **claims):
    now = int(time.time())
    body = {"sub": sub, "exp": now + exp_in, **claims}
    if sub is None:
        del body["sub"]
    return jwt.encode(body, key, algorithm="HS256")


def upgrade(port, headers=(), path="/ws", v2=False):
    """A raw upgrade request: (status, {lower-case name: [values]}, body)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if v2:
        lines.append("Sec-WebSocket-Protocol: " + V2)
    lines += list(headers)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    text = head.decode("latin-1").split("\r\n")
    status = int(text[0].split()[1])
    fields = {}
    for line in text[1:]:
        name, _, value = line.partition(":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    body = rest
    if status != 101:
        n = int(fields.get("content-length", ["0"])[0])
        s.settimeout(5)
        while len(body) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    s.close()
    return status, fields, body


def status_json(port, extra=""):
    import json
    status, head, body = http_get(port, "/status", extra)
    assert status == 200, head
    return json.loads(body), head


def new_cookie(port):
    """A fresh identity cookie (name=value), as the page gets it from GET /status."""
    _, head = status_json(port)
    line = next(l for l in head.split("\r\n") if l.lower().startswith("set-cookie:"))
    return line.split(":", 1)[1].strip().split(";")[0]


async def v2(srv, name, cookie=None, token=None, query=None):
    headers = {}
    if cookie:
        headers["Cookie"] = cookie
    if token:
        headers["Authorization"] = "Bearer " + token
    c = await v2_open(srv, name, query, additional_headers=headers)
    return c


async def started(srv, name, **kw):
    c = await v2(srv, name, **kw)
    await send_start(c)
    return c


# MARK: - Operator tokens


@pytest.fixture
def hs_server(server_factory, tmp_path):
    return server_factory("--jwt-secret-file", write(tmp_path, "secret", SECRET + b"\n"))


def test_valid_hs256_tokens_are_accepted_in_every_place_and_version(hs_server):
    t = hs_token()
    for v2_ in (False, True):
        assert upgrade(hs_server.port, [f"Authorization: Bearer {t}"], v2=v2_)[0] == 101
        assert upgrade(hs_server.port, [f"Cookie: a=b; uvchat_token={t}"], v2=v2_)[0] == 101
        assert upgrade(hs_server.port, [], path=f"/ws?interests=x&token={t}", v2=v2_)[0] == 101
    # Without a token, anonymous (authentication is optional here).
    assert upgrade(hs_server.port)[0] == 101


@pytest.mark.parametrize("bad", ["expired", "nbf", "signature", "none", "hs512", "two_parts", "base64", "oversized",
                                 "no_sub", "no_exp"])
def test_invalid_tokens_get_401_invalid_token(hs_server, bad):
    now = int(time.time())
    tokens = {
        "expired": hs_token(exp_in=-120),
        "nbf": hs_token(nbf=now + 300),
        "signature": hs_token(key=b"another secret of a good length!!"),
        "none": jwt.encode({"sub": "a", "exp": now + 600}, None, algorithm="none"),
        "hs512": jwt.encode({"sub": "a", "exp": now + 600}, SECRET, algorithm="HS512"),
        "two_parts": ".".join(hs_token().split(".")[:2]),
        "base64": hs_token()[:-3] + "*=*",
        "oversized": hs_token(pad="x" * 5000),
        "no_sub": hs_token(sub=None),
        "no_exp": jwt.encode({"sub": "a"}, SECRET, algorithm="HS256"),
    }
    for v2_ in (False, True):
        status, fields, _ = upgrade(hs_server.port, [f"Authorization: Bearer {tokens[bad]}"], v2=v2_)
        assert status == 401, (bad, status)
        assert fields["www-authenticate"] == ['Bearer error="invalid_token"'], fields
    assert metric_values(hs_server.port)['uvchat_auth_rejections_total{reason="invalid"}'] == 2


def test_nbf_within_the_leeway_is_accepted(hs_server):
    assert upgrade(hs_server.port, [f"Authorization: Bearer {hs_token(nbf=int(time.time()) + 30)}"])[0] == 101


def test_eddsa_tokens_and_no_algorithm_confusion(server_factory, tmp_path):
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    srv = server_factory("--jwt-public-key-file", write(tmp_path, "pub.pem", pem))
    now = int(time.time())
    good = jwt.encode({"sub": "e", "exp": now + 600}, key, algorithm="EdDSA")
    assert upgrade(srv.port, [f"Authorization: Bearer {good}"])[0] == 101
    # An HS256 token whose "secret" is the public key file: refused, the key is not an HMAC secret.
    forged = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + good.split(".")[1]
    import hashlib, hmac
    sig = base64.urlsafe_b64encode(hmac.new(pem, forged.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    assert upgrade(srv.port, [f"Authorization: Bearer {forged}.{sig}"])[0] == 401
    other = jwt.encode({"sub": "e", "exp": now + 600}, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    assert upgrade(srv.port, [f"Authorization: Bearer {other}"])[0] == 401
    assert upgrade(srv.port, [f"Authorization: Bearer {hs_token()}"])[0] == 401


def test_require_auth_and_status(server_factory, tmp_path):
    srv = server_factory("--jwt-secret-file", write(tmp_path, "s", SECRET), "--require-auth",
                         "--login-url", "https://login.example/start", "--min-age", "18",
                         "--terms-url", "https://example.org/rules")
    status, fields, _ = upgrade(srv.port)
    assert status == 401
    assert fields["www-authenticate"][0].startswith("Bearer") and "error=" not in fields["www-authenticate"][0]
    assert upgrade(srv.port, [f"Cookie: uvchat_token={hs_token()}"])[0] == 101
    st, _ = status_json(srv.port)
    assert st["auth"] == "required" and st["authenticated"] is False and st["banned"] is False
    assert st["loginUrl"] == "https://login.example/start" and st["minAge"] == 18
    assert st["termsUrl"] == "https://example.org/rules"
    st, _ = status_json(srv.port, f"Cookie: uvchat_token={hs_token()}\r\n")
    assert st["authenticated"] is True
    assert metric_values(srv.port)['uvchat_auth_rejections_total{reason="missing"}'] == 1


def test_without_keys_tokens_are_ignored(server):
    assert upgrade(server.port, ["Authorization: Bearer not.a.token"])[0] == 101
    st, _ = status_json(server.port)
    assert st["auth"] == "none" and st["minAge"] == 13 and st["termsUrl"] == "/terms.html" and st["loginUrl"] is None


def test_audience(server_factory, tmp_path):
    srv = server_factory("--jwt-secret-file", write(tmp_path, "s", SECRET), "--jwt-audience", "chat.example")
    assert upgrade(srv.port, [f"Authorization: Bearer {hs_token(aud='chat.example')}"])[0] == 101
    assert upgrade(srv.port, [f"Authorization: Bearer {hs_token(aud='other')}"])[0] == 401


def test_groups_never_mix(server_factory, tmp_path):
    srv = server_factory("--jwt-secret-file", write(tmp_path, "s", SECRET), "--interest-timeout", "0.2")

    async def go():
        a = await started(srv, "a", token=hs_token("a", grp="red"))
        b = await started(srv, "b", token=hs_token("b", grp="blue"))
        c = await started(srv, "c")
        for x in (a, b, c):
            await x.expect("waiting")
        d = await started(srv, "d", token=hs_token("d", grp="blue"))
        await d.expect("paired")
        await b.expect("paired")
        e = await started(srv, "e")
        await e.expect("paired")
        await c.expect("paired")
        assert [m["type"] for m in await barrier(a)] == []   # red waits alone
        await close_all(a, b, c, d, e)
    run(go())


# MARK: - The identity cookie


def test_identity_cookie_on_v2_and_status_not_v1(server):
    status, fields, _ = upgrade(server.port, v2=True)
    assert status == 101
    (cookie,) = fields["set-cookie"]
    parts = [p.strip() for p in cookie.split(";")]
    assert parts[0].startswith("uvchat_id=") and len(parts[0]) > 40
    assert set(parts[1:]) == {"Path=/", "Max-Age=2592000", "Secure", "HttpOnly", "SameSite=Lax"}, parts
    assert "set-cookie" not in upgrade(server.port)[1]
    # A valid cookie is kept, not replaced; a forged one is replaced.
    assert "set-cookie" not in upgrade(server.port, [f"Cookie: {parts[0]}"], v2=True)[1]
    forged = parts[0][:-4] + ("AAAA" if not parts[0].endswith("AAAA") else "BBBB")
    assert "set-cookie" in upgrade(server.port, [f"Cookie: {forged}"], v2=True)[1]
    assert metric_values(server.port)["uvchat_identities_issued_total"] == 2


# MARK: - Reports and blocks


def test_report_rows(server_factory):
    srv = server_factory("--report-grace-seconds", "1", *NO_RATE)

    async def go():
        a = await started(srv, "a", cookie=new_cookie(srv.port))
        await a.expect("waiting")
        await a.send({"type": "report", "reason": "spam"})
        await a.expect_error("nothing_to_report")
        b = await started(srv, "b", cookie=new_cookie(srv.port))
        await b.expect("paired")
        await a.expect("paired")
        await a.send({"type": "report", "reason": "rude"})
        await a.expect_error("bad_request")
        await a.send({"type": "report", "reason": "abuse"})
        await a.expect("reported")
        await b.expect("partner_left")
        # The reporter is idle: not queued again.
        assert await barrier(a) == []
        await a.send({"type": "report", "reason": "spam"})
        await a.expect_error("nothing_to_report")
        await a.send({"type": "block"})
        await a.expect("blocked")
        # The reported one may report back within the grace, once; after it, nothing to report.
        await b.send({"type": "report"})
        await b.expect("reported")
        await asyncio.sleep(1.2)
        await b.send({"type": "block"})
        await b.expect_error("nothing_to_report")
        v1 = await v1_open(srv, "v1")
        await v1.send({"type": "report", "reason": "spam"})
        msgs = [await v1.recv() for _ in range(2)]
        assert {m["type"] for m in msgs} == {"waiting", "error"} and any(m.get("code") == "bad_request" for m in msgs)
        m = metric_values(srv.port)
        assert m['uvchat_reports_total{reason="abuse"}'] == 1 and m['uvchat_reports_total{reason="other"}'] == 1
        assert m["uvchat_blocks_total"] == 1
        await close_all(a, b, v1)
    run(go())


def test_three_reporters_ban_and_the_ban_holds(server_factory):
    srv = server_factory("--ban-seconds", "3", *NO_RATE)

    async def go():
        target = new_cookie(srv.port)
        neighbour = new_cookie(srv.port)   # another browser at the same address, with its own cookie
        for i in range(3):
            t = await started(srv, f"target{i}", cookie=target)
            await t.expect("waiting")
            r = await started(srv, f"reporter{i}", cookie=new_cookie(srv.port))
            await r.expect("paired")
            await t.expect("paired")
            await r.send({"type": "message", "text": f"hello {i}"})
            await r.send({"type": "report", "reason": "spam"})
            await r.expect("reported")
            if i < 2:
                await t.expect("message")
                await t.expect("partner_left")
                await t.close()
            else:
                # The third report bans: the open connection hears the chat end, then 1008 "banned".
                await t.expect("message")
                await t.expect("partner_left")
                assert await t.closed() == 1008
                assert t.ws.close_reason == "banned"
            await r.close()
        status, fields, body = upgrade(srv.port, [f"Cookie: {target}"], v2=True)
        assert status == 403 and int(fields["retry-after"][0]) > 0 and b"banned" in body
        # Clearing cookies does not escape: the address is banned for clients without an identity, not for a
        # client with a cookie of its own.
        assert upgrade(srv.port)[0] == 403
        assert upgrade(srv.port, [f"Cookie: {neighbour}"])[0] == 101
        # Nor does asking for a new cookie: a banned address gets none.
        st, head = status_json(srv.port)
        assert st["banned"] is True and "set-cookie" not in head.lower()
        st, _ = status_json(srv.port, f"Cookie: {target}\r\n")
        assert st["banned"] is True and st["retryAfter"] > 0 and st["until"] > time.time()
        m = metric_values(srv.port)
        assert m["uvchat_bans_total"] == 1 and m["uvchat_ban_closes_total"] == 1
        assert m["uvchat_ban_rejections_total"] == 2
        await asyncio.sleep(3.2)
        assert upgrade(srv.port, [f"Cookie: {target}"], v2=True)[0] == 101
    run(go())


def test_token_reporters_ban_a_token(server_factory, tmp_path):
    srv = server_factory("--jwt-secret-file", write(tmp_path, "s", SECRET), *NO_RATE)

    async def go():
        target = hs_token("target")
        for i in range(3):
            t = await started(srv, f"target{i}", token=target)
            await t.expect("waiting")
            r = await started(srv, f"reporter{i}", token=hs_token(f"reporter{i}"))
            await r.expect("paired")
            await t.expect("paired")
            await r.send({"type": "report", "reason": "abuse"})
            await r.expect("reported")
            await t.expect("partner_left")
            if i == 2:
                assert await t.closed() == 1008
            await close_all(t, r)
        status, fields, _ = upgrade(srv.port, [f"Authorization: Bearer {target}"])
        assert status == 403 and int(fields["retry-after"][0]) > 0
        # A token's ban stays with its `sub`: the address, and other members, are not banned.
        assert upgrade(srv.port)[0] == 101
        assert upgrade(srv.port, [f"Authorization: Bearer {hs_token('someone')}"])[0] == 101
    run(go())


def test_one_reporter_never_bans(server_factory):
    srv = server_factory(*NO_RATE)

    async def go():
        target = new_cookie(srv.port)
        for i in range(3):
            t = await started(srv, "target", cookie=target)
            await t.expect("waiting")
            # No cookie: every connection of this reporter is its address, one identity.
            r = await started(srv, "reporter")
            await r.expect("paired")
            await r.send({"type": "report", "reason": "abuse"})
            await r.expect("reported")
            await close_all(t, r)
        assert upgrade(srv.port, [f"Cookie: {target}"], v2=True)[0] == 101
        assert metric_values(srv.port)["uvchat_bans_total"] == 0
    run(go())


def test_a_blocked_pair_is_not_paired_again_while_others_wait(server_factory):
    srv = server_factory(*NO_RATE)

    async def go():
        ca, cb = new_cookie(srv.port), new_cookie(srv.port)
        a = await started(srv, "a", cookie=ca)
        await a.expect("waiting")
        b = await started(srv, "b", cookie=cb)
        await b.expect("paired")
        await a.expect("paired")
        await a.send({"type": "block"})
        await a.expect("blocked")
        await close_all(a, b)
        # New connections of both (the cookies survive a reload): they wait apart; a third person takes one.
        b = await started(srv, "b2", cookie=cb)
        await b.expect("waiting")
        a = await started(srv, "a2", cookie=ca)
        await a.expect("waiting")
        c = await started(srv, "c", cookie=new_cookie(srv.port))
        await c.expect("paired")
        await b.expect("paired")
        assert await barrier(a) == []
        await close_all(a, b, c)
    run(go())


def test_quarantine_pairs_only_quarantined(server_factory):
    srv = server_factory("--quarantine-score", "3", *NO_RATE)

    async def go():
        q1 = await v2(srv, "q1", cookie=new_cookie(srv.port))
        # Four refusals of weight 1 against a line at 3: the score decays a little between them.
        for _ in range(4):
            await q1.send("{")
        await send_start(q1)
        normal = await started(srv, "normal", cookie=new_cookie(srv.port))
        await normal.expect("waiting")
        q2 = await v2(srv, "q2", cookie=new_cookie(srv.port))
        for _ in range(4):
            await q2.send("not json")
        await send_start(q2)
        got = [m["type"] for m in await barrier(q2)]
        assert "paired" in got, got
        assert await barrier(normal) == []
        assert metric_values(srv.port)["uvchat_quarantines_total"] == 2
        await close_all(q1, normal, q2)
    run(go())


def test_nothing_secret_reaches_the_log(server_factory, tmp_path):
    srv = server_factory("--jwt-secret-file", write(tmp_path, "s", SECRET), "--log-level", "debug", *NO_RATE)
    t = hs_token("secret-subject")

    async def go():
        cookie = new_cookie(srv.port)
        a = await started(srv, "a", token=t, cookie=cookie)
        await a.expect("waiting")
        b = await started(srv, "b")
        await b.expect("paired")
        await a.expect("paired")
        await a.send({"type": "message", "text": "my private words"})
        await b.expect("message")
        await b.send({"type": "report", "reason": "spam"})
        await b.expect("reported")
        await close_all(a, b)
        upgrade(srv.port, ["Authorization: Bearer " + hs_token(exp_in=-600)])
        return cookie
    cookie = run(go())
    srv.stop()
    log = "".join(srv.log)
    for secret in (t, t.split(".")[2], "secret-subject", cookie.split("=", 1)[1], "my private words"):
        assert secret not in log
