"""Helpers for the test_v2_*.py files, which test part B (B.1, B.2, B.7) of PROTOCOL.md as uvchatd reads it
(docs/protocol-v2.md).

A version 2 client is a `wsclient.Chat` that offers the subprotocol `uvchat.2`; `RawWS` clients offer it with
a header line. `barrier` (a version 2 `ping`, answered `pong` in command order) tells a test that the server
has handled everything sent before it, and which errors those commands got.
"""
import asyncio
import re
import time

from wsclient import Chat, RawWS

V2 = "uvchat.2"
V2_HEADER = "Sec-WebSocket-Protocol: " + V2
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22,}$")
# Flags that keep the per-connection rate limits out of the way of tests about something else.
NO_RATE = ("--rate-per-second", "10000", "--rate-burst", "10000",
           "--next-rate-per-second", "1000", "--next-burst", "1000")

PAIRED_V2_KEYS = {"type", "common", "random", "token", "grace", "partner"}
RESUMED_KEYS = {"type", "token", "grace", "id", "common", "random", "partner"}


async def v2_open(srv, name="", query=None, **kw):
    """A version 2 connection; its `online` frame is consumed. Asserts the subprotocol was chosen."""
    c = await Chat.open(srv, query=query, name=name, subprotocols=[V2], **kw)
    assert c.subprotocol == V2, f"{name}: subprotocol {c.subprotocol!r}"
    first = await c.recv(keep_online=True)
    assert first["type"] == "online", f"{name}: first frame {first}"
    return c


async def v1_open(srv, name="", query=None):
    """A version 1 connection (no subprotocol); `online` consumed, `waiting` or `paired` left to the test."""
    return await Chat.joined(srv, query=query, name=name)


def check_token(tok):
    assert isinstance(tok, str) and TOKEN_RE.match(tok), f"not a base64url token of >= 16 bytes: {tok!r}"
    return tok


def check_paired_v2(p, grace=None, images=None):
    assert p["type"] == "paired", p
    missing = PAIRED_V2_KEYS - set(p)
    assert not missing, f"paired to version 2 lacks {missing}: {p}"
    check_token(p["token"])
    assert isinstance(p["common"], list) and isinstance(p["random"], bool), p
    assert isinstance(p["grace"], (int, float)) and not isinstance(p["grace"], bool), p
    assert isinstance(p["partner"], dict) and isinstance(p["partner"].get("images"), bool), p
    if grace is not None:
        assert p["grace"] == grace, f"grace {p['grace']} != {grace}: {p}"
    if images is not None:
        assert p["partner"]["images"] is images, f"partner.images should be {images}: {p}"
    return p


def check_paired_v1(p):
    assert p["type"] == "paired", p
    assert set(p) == {"type", "common", "random"}, f"version 1 paired with extra fields: {p}"
    return p


def check_resumed(r, grace=None, id_=None, common=None, old_token=None):
    assert r["type"] == "resumed", f"expected resumed, got {r}"
    missing = RESUMED_KEYS - set(r)
    assert not missing, f"resumed lacks {missing}: {r}"
    check_token(r["token"])
    if old_token is not None:
        assert r["token"] != old_token, f"resumed must carry a new token: {r}"
    assert isinstance(r["id"], int) and r["id"] >= 0, r
    assert isinstance(r["random"], bool) and isinstance(r["common"], list), r
    assert isinstance(r["partner"], dict) and isinstance(r["partner"].get("images"), bool), r
    if grace is not None:
        assert r["grace"] == grace, r
    if id_ is not None:
        assert r["id"] == id_, f"resumed.id {r['id']} != {id_}: {r}"
    if common is not None:
        assert r["common"] == common, r
    return r


async def send_start(c, **settings):
    await c.send({"type": "start", **settings})


async def v2_pair(srv, a_settings=None, b_settings=None, grace=None, qa=None, qb=None):
    """Two version 2 clients paired with each other: a starts first (waiting), b pairs at once."""
    a = await v2_open(srv, "a", qa)
    await send_start(a, **(a_settings or {}))
    await a.expect("waiting")
    b = await v2_open(srv, "b", qb)
    await send_start(b, **(b_settings or {}))
    pb = check_paired_v2(await b.expect("paired"), grace)
    pa = check_paired_v2(await a.expect("paired"), grace)
    assert pa["token"] != pb["token"], (pa, pb)
    return a, b, pa, pb


async def barrier(c, timeout=5.0):
    """Send `ping`, wait for `pong`; return the frames (other than online) that came before it."""
    await c.send({"type": "ping"})
    before = []
    deadline = time.monotonic() + timeout
    while True:
        m = await c.recv(max(0.01, deadline - time.monotonic()))
        if m["type"] == "pong":
            return before
        before.append(m)


async def expect_messages(c, texts, first_seq, timeout=5.0):
    """The next frames are exactly `message` events with these texts and seq first_seq, first_seq+1, ..."""
    for i, t in enumerate(texts):
        m = await c.recv(timeout)
        assert m == {"type": "message", "text": t, "seq": first_seq + i}, \
            f"{c.name}: expected message {t!r} seq {first_seq + i}, got {m}"


async def resume(srv, token, seq, name="r", **kw):
    """A new version 2 connection that sends `resume`; returns (client, first reply)."""
    c = await v2_open(srv, name, **kw)
    await c.send({"type": "resume", "token": token, "seq": seq})
    return c, await c.recv()


def raw_v2(port, extra_headers=()):
    """A raw-socket version 2 client; its `online` frame is consumed."""
    r = RawWS(port, headers=[V2_HEADER] + list(extra_headers))
    assert r.recv_json(keep_online=True)["type"] == "online"
    return r


async def wait_for_type(c, type_, timeout=5.0, allowed=()):
    """Skip frames whose type is in `allowed` until one of `type_`; anything else fails."""
    deadline = time.monotonic() + timeout
    while True:
        m = await c.recv(max(0.01, deadline - time.monotonic()))
        if m["type"] == type_:
            return m
        assert m["type"] in allowed, f"{c.name}: expected {type_}, got {m}"


async def v1_barrier(c, timeout=5.0):
    """Version 1 has no `ping`: it is an unknown type there, answered `bad_request` in command order. Send one and
    return the frames (other than online) that came before that error, as `barrier` does for version 2."""
    await c.send({"type": "ping"})
    before = []
    deadline = time.monotonic() + timeout
    while True:
        m = await c.recv(max(0.01, deadline - time.monotonic()))
        if m["type"] == "error" and m.get("code") == "bad_request":
            return before
        before.append(m)
