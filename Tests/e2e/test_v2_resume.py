"""PROTOCOL.md part B.2 (resume) as docs/protocol-v2.md reads it: `seq`, `id`, `ack`; away versus leave;
`partner_away`, `resume`, `resumed`, `partner_back`; tokens (one use, dead with their chat, forged ones refused);
grace expiry; the half-open old connection (4001); the bound on messages kept for an absent partner; both sides
away; drops while queued or idle; away after unanswered pings.

Every wait is bounded; grace periods are small so that each test ends within a few seconds.
"""
import asyncio
import base64
import json
import os
import threading
import time

import pytest

from v2_helpers import (NO_RATE, TOKEN_RE, barrier, check_paired_v2, check_resumed, check_token,
                        expect_messages, raw_v2, resume, send_start, v2_open, v2_pair, wait_for_type)
from wsclient import PING, PONG, TEXT, Chat, close_all, encode_frame, run, start as start_server

GRACE = 5


def grace_server(server_factory, grace=GRACE, *extra):
    return start_server(server_factory, "--resume-grace", str(grace), *NO_RATE, *extra)


async def msg(c, text, id_=None):
    m = {"type": "message", "text": text}
    if id_ is not None:
        m["id"] = id_
    await c.send(m)


async def expect_away(c, grace=GRACE, timeout=5.0, allow_zero=False):
    """partner_away with 0 < grace <= `grace` (0 allowed when less than a second may be left)."""
    m = await c.expect("partner_away", timeout)
    g = m.get("grace")
    assert isinstance(g, (int, float)) and not isinstance(g, bool), m
    assert (g >= 0 if allow_zero else g > 0) and g <= grace, f"{c.name}: grace left {g} of {grace}: {m}"
    return m


# ---------------------------------------------------------------------------
# seq, id, ack

def test_seq_counts_per_direction_and_restarts_in_a_new_chat(server_factory):
    srv = grace_server(server_factory)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        for i in range(1, 4):
            await msg(a, f"a{i}")
        await msg(b, "b1")
        await expect_messages(b, ["a1", "a2", "a3"], 1)
        await expect_messages(a, ["b1"], 1)
        await msg(b, "b2")
        await expect_messages(a, ["b2"], 2)
        await msg(a, "a4", id_=1)
        await expect_messages(b, ["a4"], 4)
        # typing carries no seq and does not count
        await a.send({"type": "typing", "active": True})
        assert await b.recv() == {"type": "typing", "active": True}
        await msg(a, "a5")
        await expect_messages(b, ["a5"], 5)
        # a new chat starts again at 1
        await a.send({"type": "next"})
        await b.expect("partner_left")
        await a.expect("waiting")
        c = await v2_open(srv, "c")
        await send_start(c)
        await c.expect("paired")
        await a.expect("paired")
        await msg(c, "c1")
        await expect_messages(a, ["c1"], 1)
        await msg(a, "to c")
        await expect_messages(c, ["to c"], 1)
        await b.silence(0.2)
        await close_all(a, b, c)

    run(body())


BAD_IDS = ['5', '4', '0', '-1', '1.5', '"9"', 'true', 'null', '6e0', '9007199254740992', '[7]']


@pytest.mark.parametrize("bad", BAD_IDS)
def test_message_id_must_be_a_growing_positive_integer(server_factory, bad):
    srv = grace_server(server_factory)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await msg(a, "first", id_=5)
        await expect_messages(b, ["first"], 1)
        await a.send('{"type":"message","text":"refused","id":' + bad + '}')
        await a.expect_error("bad_request")
        await b.silence(0.2)
        # The refused id did not count: 6 still grows, and so does the largest allowed id.
        await msg(a, "second", id_=6)
        await a.send('{"type":"message","text":"third","id":9007199254740991}')
        await expect_messages(b, ["second", "third"], 2)
        assert await barrier(a) == []
        await close_all(a, b)

    run(body())


def test_message_ids_start_again_in_a_new_chat_and_are_optional(server_factory):
    srv = grace_server(server_factory)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await msg(a, "x", id_=100)
        await msg(a, "no id")  # id is optional
        await expect_messages(b, ["x", "no id"], 1)
        await a.send({"type": "stop"})
        await b.expect("partner_left")
        c = await v2_open(srv, "c")
        await send_start(c)
        await c.expect("waiting")
        await send_start(a)
        await a.expect("paired")
        await c.expect("paired")
        await msg(a, "new chat", id_=1)
        await expect_messages(c, ["new chat"], 1)
        assert await barrier(a) == []
        await close_all(a, b, c)

    run(body())


def test_ack_rules(server_factory):
    srv = grace_server(server_factory)

    async def body():
        a = await v2_open(srv, "a")
        # not paired: an ack changes nothing and gets no answer
        await a.send({"type": "ack", "seq": 3})
        assert await barrier(a) == []
        await send_start(a)
        await a.expect("waiting")
        b = await v2_open(srv, "b")
        await send_start(b)
        await b.expect("paired")
        await a.expect("paired")
        await a.send({"type": "ack", "seq": 0})
        assert await barrier(a) == []
        for i in range(1, 4):
            await msg(b, f"m{i}")
        await expect_messages(a, ["m1", "m2", "m3"], 1)
        await a.send({"type": "ack", "seq": 3})
        await a.send({"type": "ack", "seq": 2})  # below an earlier one: nothing
        assert await barrier(a) == []
        await a.send({"type": "ack", "seq": 4})  # above the last seq sent
        assert [m.get("code") for m in await barrier(a)] == ["bad_request"]
        for bad in ['-1', '1.5', '"3"', 'null', 'true']:
            await a.send('{"type":"ack","seq":' + bad + '}')
            got = await barrier(a)
            assert [m.get("code") for m in got] == ["bad_request"], (bad, got)
        await a.send({"type": "ack"})
        assert [m.get("code") for m in await barrier(a)] == ["bad_request"]
        await b.silence(0.1)
        await close_all(a, b)

    run(body())


# ---------------------------------------------------------------------------
# drop and resume

@pytest.mark.parametrize("how", ["rst", "fin"])
def test_drop_and_resume_delivers_exactly_the_missing_messages(server_factory, how):
    srv = grace_server(server_factory, GRACE, "--interest-timeout", "30")

    async def body():
        a, b, pa, pb = await v2_pair(srv, {"interests": ["music"]}, {"interests": ["music"], "images": True})
        assert pa["common"] == ["music"] and pa["random"] is False
        await msg(b, "b1")
        await msg(b, "b2")
        await expect_messages(a, ["b1", "b2"], 1)
        await a.send({"type": "ack", "seq": 2})
        await msg(a, "a1", 1)
        await msg(a, "a2", 2)
        assert await barrier(a) == []
        await expect_messages(b, ["a1", "a2"], 1)
        # b1, b2 acked; b3..b5 sent while a is still connected but never read by it
        for t in ("b3", "b4", "b5"):
            await msg(b, t)
        assert await barrier(b) == []
        await a.drop(how)
        await expect_away(b)
        for t in ("b6", "b7"):
            await msg(b, t)
        await b.send({"type": "typing", "active": True})  # dropped silently
        assert await barrier(b) == [], "messages within the bound are kept without a reply"
        a2, r = await resume(srv, pa["token"], 2, name="a2")
        check_resumed(r, grace=GRACE, id_=2, common=["music"], old_token=pa["token"])
        assert r["random"] is False and r["partner"]["images"] is True, r
        assert r["token"] != pb["token"]
        await expect_messages(a2, ["b3", "b4", "b5", "b6", "b7"], 3)
        await a2.silence(0.3)  # nothing twice, no typing replayed
        assert await b.recv() == {"type": "partner_back"}
        # live traffic both ways, numbering continued
        await msg(b, "b8")
        await expect_messages(a2, ["b8"], 8)
        await msg(a2, "a3", 3)
        await expect_messages(b, ["a3"], 3)
        await msg(a2, "stale", 3)  # ids keep growing across the resume
        await a2.expect_error("bad_request")
        await b.silence(0.2)
        await close_all(a2, b)

    run(body())


def test_resumed_id_is_zero_without_ids_and_acked_messages_are_not_replayed(server_factory):
    srv = grace_server(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        for i in range(1, 6):
            await msg(b, f"b{i}")
        await expect_messages(a, [f"b{i}" for i in range(1, 6)], 1)
        await a.send({"type": "ack", "seq": 5})
        assert await barrier(a) == []
        await a.drop("rst")
        await expect_away(b)
        a2, r = await resume(srv, pa["token"], 5, name="a2")
        check_resumed(r, grace=GRACE, id_=0, common=[], old_token=pa["token"])
        assert r["random"] is True and r["partner"]["images"] is False, r
        await a2.silence(0.4)
        await b.expect("partner_back")
        await msg(b, "b6")
        await expect_messages(a2, ["b6"], 6)
        await close_all(a2, b)

    run(body())


def test_sender_drops_with_a_message_half_sent_and_resends_after_resumed_id(server_factory):
    """The message in flight at the drop was never accepted (half a frame): resumed.id says so, the
    client sends it again, and the partner gets every message once, in order."""
    srv = grace_server(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        await msg(a, "m1", 1)
        await msg(a, "m2", 2)
        await msg(a, "m3", 3)
        assert await barrier(a) == []
        await expect_messages(b, ["m1", "m2", "m3"], 1)
        frame = encode_frame(TEXT, json.dumps({"type": "message", "text": "m4", "id": 4}))
        a.ws.transport.write(frame[:len(frame) // 2])
        await asyncio.sleep(0.1)
        await a.drop("rst")
        await expect_away(b)
        a2, r = await resume(srv, pa["token"], 0, name="a2")
        check_resumed(r, id_=3)
        await b.expect("partner_back")
        await msg(a2, "m4", 4)
        await msg(a2, "m5", 5)
        await expect_messages(b, ["m4", "m5"], 4)
        await b.silence(0.3)
        await close_all(a2, b)

    run(body())


def test_sender_drops_right_after_writing_and_resends_what_resumed_id_lacks(server_factory):
    """Whether the last two writes were accepted is up to the race; resumed.id tells, and re-sending
    exactly the ones after it gives the partner each message once."""
    srv = grace_server(server_factory)

    async def body():
        for round_ in range(3):
            a, b, pa, pb = await v2_pair(srv)
            await msg(a, "m1", 1)
            assert await barrier(a) == []
            a.ws.transport.write(encode_frame(TEXT, json.dumps({"type": "message", "text": "m2", "id": 2}))
                                 + encode_frame(TEXT, json.dumps({"type": "message", "text": "m3", "id": 3})))
            await a.drop("rst")
            a2, r = await resume(srv, pa["token"], 0, name="a2")
            check_resumed(r)
            assert r["id"] in (1, 2, 3), r
            for i in range(r["id"] + 1, 4):
                await msg(a2, f"m{i}", i)
            await msg(a2, "m4", 4)
            got = []
            while len(got) < 4:
                m = await b.recv()
                if m["type"] in ("partner_away", "partner_back"):
                    continue
                got.append(m)
            assert got == [{"type": "message", "text": f"m{i}", "seq": i} for i in range(1, 5)], got
            await b.silence(0.2)
            await close_all(a2, b)

    run(body(), timeout=60)


def test_typing_while_partner_away_is_dropped_silently(server_factory):
    srv = grace_server(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        await a.drop("rst")
        await expect_away(b)
        await b.send({"type": "typing", "active": True})
        await b.send({"type": "typing", "active": False})
        assert await barrier(b) == []
        a2, r = await resume(srv, pa["token"], 0, name="a2")
        check_resumed(r, id_=0)
        await a2.silence(0.3)
        await b.expect("partner_back")
        await b.send({"type": "typing", "active": True})
        assert await a2.recv() == {"type": "typing", "active": True}
        await close_all(a2, b)

    run(body())


def test_resume_twice_in_a_row_with_each_new_token(server_factory):
    srv = grace_server(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        token, seq, cur = pa["token"], 0, a
        tokens = {pa["token"], pb["token"]}
        for i in range(1, 5):
            await msg(b, f"before drop {i}")
            await expect_messages(cur, [f"before drop {i}"], seq + 1)
            seq += 1
            await cur.drop("rst" if i % 2 else "fin")
            await expect_away(b)
            await msg(b, f"while away {i}")
            assert await barrier(b) == []
            cur, r = await resume(srv, token, seq, name=f"a{i}")
            check_resumed(r, old_token=token)
            token = r["token"]
            tokens.add(token)
            await expect_messages(cur, [f"while away {i}"], seq + 1)
            seq += 1
            await b.expect("partner_back")
        assert len(tokens) == 6
        await close_all(cur, b)

    run(body())


# ---------------------------------------------------------------------------
# tokens

def test_old_token_after_a_resume_is_dead(server_factory):
    srv = grace_server(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        await a.drop("rst")
        await expect_away(b)
        a2, r = await resume(srv, pa["token"], 0, name="a2")
        check_resumed(r, old_token=pa["token"])
        await b.expect("partner_back")
        x, rx = await resume(srv, pa["token"], 0, name="x")
        assert rx["type"] == "error" and rx["code"] == "resume_failed", rx
        await a2.silence(0.3)  # the live connection is not touched (no 4001)
        await b.silence(0.1)
        await msg(b, "still with a2")
        await expect_messages(a2, ["still with a2"], 1)
        await x.silence(0.2)
        # the new token still works
        await a2.drop("rst")
        await expect_away(b)
        a3, r3 = await resume(srv, r["token"], 1, name="a3")
        check_resumed(r3, old_token=r["token"])
        await b.expect("partner_back")
        await close_all(a3, b, x)

    run(body())


@pytest.mark.parametrize("leave", ["close", "next", "stop", "too_big"])
def test_a_leave_ends_the_chat_at_once_and_kills_both_tokens(server_factory, leave):
    srv = grace_server(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        t0 = time.monotonic()
        if leave == "close":
            await a.close()
        elif leave == "too_big":
            # A protocol failure the server closes for (1009 here) is a leave. (Binary data is no longer one on
            # version 2: it is an image or a `bad_request`, test_v2_images.py.)
            await a.send("x" * 20000)
            assert await a.closed() == 1009
        else:
            await a.send({"type": leave})
        m = await b.recv(2)
        assert m == {"type": "partner_left"}, f"a {leave} is a leave, not a drop: {m}"
        assert time.monotonic() - t0 < 1.5
        for tok in (pa["token"], pb["token"]):
            x, rx = await resume(srv, tok, 0, name="x")
            assert rx["type"] == "error" and rx["code"] == "resume_failed", rx
            await x.close()
        await b.silence(0.2)
        await close_all(a, b)

    run(body())


def test_token_from_a_finished_chat_fails_and_new_partner_sees_nothing(server_factory):
    srv = grace_server(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        await a.send({"type": "stop"})
        await b.expect("partner_left")
        c = await v2_open(srv, "c")
        await send_start(c)
        await c.expect("waiting")
        await send_start(b)
        pb2 = check_paired_v2(await b.expect("paired"))
        await c.expect("paired")
        for tok in (pb["token"], pa["token"]):
            x, rx = await resume(srv, tok, 0, name="x")
            assert rx["type"] == "error" and rx["code"] == "resume_failed", rx
            await send_start(x)
            await x.expect("waiting")  # idle after resume_failed; not attached to b/c's chat
            await x.close()
        await b.silence(0.3)
        await c.silence(0.1)
        await msg(c, "to b")
        await expect_messages(b, ["to b"], 1)
        await close_all(a, b, c)

    run(body())


def _change_char(tok, i):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    c = tok[i]
    return tok[:i] + alphabet[(alphabet.index(c) + 1) % 64] + tok[i + 1:]


FORGERIES = {
    "random": lambda tok: base64.urlsafe_b64encode(os.urandom(20)).rstrip(b"=").decode(),
    "random-same-length": lambda tok: base64.urlsafe_b64encode(os.urandom(len(tok) * 3 // 4 + 1)).decode()[:len(tok)],
    "first-char": lambda tok: _change_char(tok, 0),
    "middle-char": lambda tok: _change_char(tok, len(tok) // 2),
    "char-5-from-end": lambda tok: _change_char(tok, len(tok) - 5),
    "empty": lambda tok: "",
    "truncated": lambda tok: tok[:-4],
    "extended": lambda tok: tok + "AAAA",
    "not-base64": lambda tok: "!" * len(tok),
    "reversed": lambda tok: tok[::-1],
}


@pytest.mark.parametrize("kind", list(FORGERIES))
def test_forged_token_fails_leaves_client_idle_and_the_real_one_still_works(server_factory, kind):
    srv = grace_server(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        await msg(b, "kept 1")
        await expect_messages(a, ["kept 1"], 1)
        await a.drop("rst")
        await expect_away(b)
        await msg(b, "kept 2")
        forged = FORGERIES[kind](pa["token"])
        assert forged != pa["token"]
        x, rx = await resume(srv, forged, 1, name="x")
        assert rx["type"] == "error" and rx["code"] == "resume_failed", rx
        assert isinstance(rx.get("message"), str) and rx["message"]
        await x.silence(0.3)  # nothing of the held chat reaches the forger
        await b.silence(0.1)  # no partner_back
        await msg(b, "kept 3")
        await x.silence(0.2)
        await send_start(x)
        await x.expect("waiting")  # idle: it can start
        a2, r = await resume(srv, pa["token"], 1, name="a2")
        check_resumed(r, id_=0)
        await expect_messages(a2, ["kept 2", "kept 3"], 2)
        await b.expect("partner_back")
        await x.silence(0.1)
        await close_all(a2, b, x)

    run(body())


def test_resume_with_seq_above_what_was_sent_fails(server_factory):
    srv = grace_server(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        await msg(b, "one")
        await expect_messages(a, ["one"], 1)
        await a.drop("rst")
        await expect_away(b)
        x, rx = await resume(srv, pa["token"], 2, name="x")
        assert rx["type"] == "error" and rx["code"] == "resume_failed", rx
        await b.silence(0.2)
        await send_start(x)
        await x.expect("waiting")
        await close_all(x, b)

    run(body())


def test_resume_while_paired_or_queued_fails_and_changes_nothing(server_factory):
    srv = grace_server(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        # paired: resume (even with its own live token) is refused, the chat goes on
        await a.send({"type": "resume", "token": pa["token"], "seq": 0})
        await a.expect_error("resume_failed")
        await b.silence(0.2)
        await msg(b, "still paired")
        await expect_messages(a, ["still paired"], 1)
        # queued: refused, still queued
        q = await v2_open(srv, "q")
        await send_start(q)
        await q.expect("waiting")
        await q.send({"type": "resume", "token": pb["token"], "seq": 0})
        await q.expect_error("resume_failed")
        d = await v2_open(srv, "d")
        await send_start(d)
        await d.expect("paired")
        await q.expect("paired")
        # a's token was not used up by the refused resume
        await a.drop("rst")
        await expect_away(b)
        a2, r = await resume(srv, pa["token"], 1, name="a2")
        check_resumed(r, old_token=pa["token"])
        await b.expect("partner_back")
        await close_all(a2, b, q, d)

    run(body())


# ---------------------------------------------------------------------------
# grace

def test_grace_expiry_ends_the_chat_and_resume_fails(server_factory):
    srv = grace_server(server_factory, 1)

    async def body():
        a, b, pa, pb = await v2_pair(srv, grace=1)
        await a.drop("rst")
        t0 = time.monotonic()
        m = await expect_away(b, grace=1)
        await msg(b, "lost with the chat")
        assert await b.recv(4) == {"type": "partner_left"}
        dt = time.monotonic() - t0
        assert 0.6 <= dt <= 2.5, f"partner_left {dt:.2f} s after the drop with grace 1"
        a2, r = await resume(srv, pa["token"], 0, name="a2")
        assert r["type"] == "error" and r["code"] == "resume_failed", r
        # b is idle (as after partner_left): a message is not_paired, start queues it
        await msg(b, "nobody")
        await b.expect_error("not_paired")
        await send_start(b)
        await b.expect("waiting")
        await a2.silence(0.2)
        await close_all(a2, b)

    run(body())


def test_grace_zero_turns_resume_off(server_factory):
    srv = grace_server(server_factory, 0)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        await a.drop("rst")
        assert await b.recv(3) == {"type": "partner_left"}
        a2, r = await resume(srv, pa["token"], 0, name="a2")
        assert r["type"] == "error" and r["code"] == "resume_failed", r
        await close_all(a2, b)

    run(body())


# ---------------------------------------------------------------------------
# the old connection still open

def test_resume_while_old_connection_open_closes_it_4001(server_factory):
    srv = grace_server(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        await msg(b, "m1")
        await expect_messages(a, ["m1"], 1)
        await msg(a, "from old", 1)
        await expect_messages(b, ["from old"], 1)
        await msg(b, "m2")
        await msg(b, "m3")
        assert await barrier(b) == []
        a2, r = await resume(srv, pa["token"], 1, name="a2")
        check_resumed(r, id_=1, old_token=pa["token"])
        await expect_messages(a2, ["m2", "m3"], 2)
        assert await a.closed() == 4001
        await b.silence(0.4)  # no partner_left, no partner_away, no partner_back
        await msg(b, "m4")
        await expect_messages(a2, ["m4"], 4)
        await msg(a2, "from new", 2)
        await expect_messages(b, ["from new"], 2)
        await close_all(a2, b)

    run(body())


def test_old_connection_closed_4001_does_not_end_the_chat_later(server_factory):
    """After the takeover, the old connection's end (its close frame even) is not the chat's end."""
    srv = grace_server(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        a2, r = await resume(srv, pa["token"], 0, name="a2")
        check_resumed(r)
        assert await a.closed() == 4001
        await a.close()
        await asyncio.sleep(0.3)
        await b.silence(0.3)
        await msg(b, "hello")
        await expect_messages(a2, ["hello"], 1)
        await close_all(a2, b)

    run(body())


# ---------------------------------------------------------------------------
# the bound on messages kept for an absent partner

@pytest.mark.parametrize("acked", [True, False])
def test_64_messages_kept_for_an_absent_partner_then_partner_away(server_factory, acked):
    srv = grace_server(server_factory, 20)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        await msg(b, "seen")
        await expect_messages(a, ["seen"], 1)
        if acked:
            await a.send({"type": "ack", "seq": 1})
        assert await barrier(a) == []
        await a.drop("rst")
        await expect_away(b, 20)
        room = 64 if acked else 63  # the unacknowledged "seen" holds a place in the ring
        for i in range(1, room + 1):
            await msg(b, f"k{i}", i)
        assert await barrier(b) == [], f"{room} messages fit"
        await msg(b, "over 1", room + 1)
        await msg(b, "over 2", room + 2)
        got = await barrier(b)
        assert [(m["type"], m.get("code")) for m in got] == [("error", "partner_away")] * 2, got
        a2, r = await resume(srv, pa["token"], 1, name="a2")
        check_resumed(r)
        await expect_messages(a2, [f"k{i}" for i in range(1, room + 1)], 2)
        await a2.silence(0.3)
        await a2.send({"type": "ack", "seq": room + 1})   # connected, a full ring would refuse the next one
        await b.expect("partner_back")
        await msg(b, "over 1 again", room + 3)
        await expect_messages(a2, ["over 1 again"], room + 2)
        await close_all(a2, b)

    run(body())


def test_64_kib_kept_for_an_absent_partner_then_partner_away(server_factory):
    srv = grace_server(server_factory, 20)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        await a.drop("rst")
        await expect_away(b, 20)
        texts = [f"{i:04d}" + "x" * 1996 for i in range(1, 34)]  # 2000 bytes each
        for t in texts[:32]:
            await msg(b, t)  # 32 * 2000 = 64000 bytes <= 64 KiB
        assert await barrier(b) == []
        await msg(b, texts[32])  # 66000 bytes > 64 KiB
        got = await barrier(b)
        assert [(m["type"], m.get("code")) for m in got] == [("error", "partner_away")], got
        await msg(b, "small")  # a small one still fits (64000 + 5 bytes)
        assert await barrier(b) == []
        a2, r = await resume(srv, pa["token"], 0, name="a2")
        check_resumed(r)
        await expect_messages(a2, texts[:32] + ["small"], 1)
        await a2.silence(0.3)
        await b.expect("partner_back")
        await close_all(a2, b)

    run(body())


# ---------------------------------------------------------------------------
# both sides away

def test_both_away_first_back_sees_partner_away_until_the_other_returns(server_factory):
    srv = grace_server(server_factory, 4)

    async def body():
        a, b, pa, pb = await v2_pair(srv, grace=4)
        await a.drop("rst")
        await expect_away(b, 4)
        await msg(b, "b1")
        assert await barrier(b) == []
        await b.drop("rst")
        await asyncio.sleep(0.3)
        b2, rb = await resume(srv, pb["token"], 0, name="b2")
        check_resumed(rb, grace=4, id_=0)
        await expect_away(b2, 4)  # a is still away
        await msg(b2, "b2")
        assert await barrier(b2) == []
        a2, ra = await resume(srv, pa["token"], 0, name="a2")
        check_resumed(ra, grace=4, id_=0)
        await expect_messages(a2, ["b1", "b2"], 1)
        await a2.silence(0.3)  # b is back: no partner_away; a was never told b left: no partner_back
        assert await b2.recv() == {"type": "partner_back"}
        await msg(a2, "hi", 1)
        await expect_messages(b2, ["hi"], 1)
        await close_all(a2, b2)

    run(body())


@pytest.mark.parametrize("b_back", [True, False], ids=["b-back", "b-away"])
def test_both_away_the_chat_ends_with_the_first_ones_grace(server_factory, b_back):
    grace = 2
    srv = grace_server(server_factory, grace)

    async def body():
        a, b, pa, pb = await v2_pair(srv, grace=grace)
        await a.drop("rst")
        t0 = time.monotonic()
        await expect_away(b, grace)
        await asyncio.sleep(1.2 - (time.monotonic() - t0))
        await b.drop("rst")  # b's own grace would last until t0 + 3.2
        if b_back:
            await asyncio.sleep(0.2)
            b2, rb = await resume(srv, pb["token"], 0, name="b2")
            check_resumed(rb)
            await expect_away(b2, grace, allow_zero=True)  # 0.6 s left: 0 or 1 as whole seconds
            assert await b2.recv(4) == {"type": "partner_left"}
            dt = time.monotonic() - t0
            assert 1.5 <= dt <= 2.9, f"partner_left at {dt:.2f} s; a's grace ends at 2 s, b's at 3.2 s"
            await b2.close()
        else:
            await asyncio.sleep(2.4 - (time.monotonic() - t0))
            b2, rb = await resume(srv, pb["token"], 0, name="b2")
            assert rb["type"] == "error" and rb["code"] == "resume_failed", \
                f"2.4 s after a's drop (grace 2) the chat is over, though b dropped only 1.2 s ago: {rb}"
            await b2.close()
        a2, ra = await resume(srv, pa["token"], 0, name="a2")
        assert ra["type"] == "error" and ra["code"] == "resume_failed", ra
        await a2.close()

    run(body())


# ---------------------------------------------------------------------------
# drops while not in a chat

def test_drop_while_queued_simply_leaves(server_factory):
    srv = grace_server(server_factory)

    async def body():
        obs = await v2_open(srv, "obs")
        q = await v2_open(srv, "q")
        await send_start(q)
        await q.expect("waiting")
        await q.drop("rst")
        await asyncio.sleep(0.3)
        c = await Chat.open(srv, subprotocols=["uvchat.2"], name="c")
        first = await c.recv(keep_online=True)
        assert first == {"type": "online", "count": 2}, f"the dropped queued client is not held: {first}"
        await send_start(c)
        await c.expect("waiting")  # not paired with the dropped one
        await c.silence(0.3)
        await close_all(obs, c)

    run(body())


@pytest.mark.parametrize("how", ["rst", "fin"])
def test_drop_while_idle_simply_leaves(server_factory, how):
    srv = grace_server(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        await a.send({"type": "stop"})
        await b.expect("partner_left")
        # b is idle after partner_left, a after stop; b drops
        await b.drop(how)
        await a.silence(0.3)
        x, rx = await resume(srv, pb["token"], 0, name="x")
        assert rx["type"] == "error" and rx["code"] == "resume_failed", rx
        await asyncio.sleep(0.2)
        c = await Chat.open(srv, subprotocols=["uvchat.2"], name="c")
        first = await c.recv(keep_online=True)
        assert first == {"type": "online", "count": 3}, first  # a, x, c
        await close_all(a, x, c)

    run(body())


# ---------------------------------------------------------------------------
# away after unanswered pings

def _paired_raw_and_chat(srv):
    async def inner():
        r = await asyncio.to_thread(raw_v2, srv.port)
        r.send_json({"type": "start"})
        assert (await asyncio.to_thread(r.recv_json)) == {"type": "waiting"}
        b = await v2_open(srv, "b")
        await send_start(b)
        check_paired_v2(await b.expect("paired"))
        pr = await asyncio.to_thread(r.recv_json)
        check_paired_v2(pr)
        return r, b, pr
    return inner()


def test_paired_v2_client_that_stops_answering_pings_is_away_and_can_resume(server_factory):
    srv = grace_server(server_factory, 10, "--paired-ping-interval", "1")

    async def body():
        r, b, pr = await _paired_raw_and_chat(srv)
        t0 = time.monotonic()
        # r now reads nothing and answers no ping
        m = await b.recv(6)
        dt = time.monotonic() - t0
        assert m["type"] == "partner_away", f"unanswered pings make r away, not gone: {m}"
        assert 1.5 <= dt <= 4.0, f"away after {dt:.2f} s with --paired-ping-interval 1"
        await msg(b, "while away")
        assert await barrier(b) == []
        r2, rr = await resume(srv, pr["token"], 0, name="r2")
        check_resumed(rr, grace=10)
        await expect_messages(r2, ["while away"], 1)
        assert await b.recv() == {"type": "partner_back"}
        await b.silence(0.3)
        r.close()
        await close_all(r2, b)

    run(body())


def test_paired_v2_client_that_answers_pings_is_not_away(server_factory):
    srv = grace_server(server_factory, 10, "--paired-ping-interval", "1")

    async def body():
        r, b, pr = await _paired_raw_and_chat(srv)
        pings = []
        stop = threading.Event()

        def answer():
            # Quiet (no data frames sent) but answers every ping.
            while not stop.is_set():
                try:
                    fin, op, payload = r.recv_frame(0.2)
                except (TimeoutError, OSError):
                    continue
                except EOFError:
                    return
                if op == PING:
                    pings.append(time.monotonic())
                    r.send_frame(PONG, payload)

        t = threading.Thread(target=answer, daemon=True)
        t.start()
        try:
            await b.silence(4.5)
        finally:
            stop.set()
            t.join(2)
        assert pings, "a quiet paired version 2 client is pinged with --paired-ping-interval 1"
        await msg(b, "still here")
        m = await asyncio.to_thread(r.recv_json)
        assert m == {"type": "message", "text": "still here", "seq": 1}, m
        r.close()
        await b.close()

    run(body())


def test_messages_not_yet_read_are_never_forgotten_a_full_ring_refuses_the_sender(server_factory):
    """B.2: the client acks "at least every 16 messages or every second", and a resume gets "every message with
    seq above N". Twelve messages of 1998 emoji (about 8000 bytes each, within the default limits) arrive within a
    second; the client has read one and has not had to ack yet. The ring holds 64 KiB of what the client has not
    acknowledged: the first eight fit, the other four are refused with rate_limited (never kept and then
    forgotten). After a drop the resume brings back exactly seq 2 to 8, and the sender's re-sends follow."""
    srv = grace_server(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        texts = [f"{i:02d}" + "\U0001F600" * 1998 for i in range(1, 13)]
        t0 = time.monotonic()
        for t in texts:
            await b.send(json.dumps({"type": "message", "text": t}, ensure_ascii=False))
        refused = await barrier(b)
        assert [m.get("code") for m in refused] == ["rate_limited"] * 4, refused
        m = await a.recv()
        assert m == {"type": "message", "text": texts[0], "seq": 1}, m["text"][:10]
        assert time.monotonic() - t0 < 1.0, "the test needs the drop within the ack second"
        await a.drop("rst")
        await expect_away(b)
        a2, r = await resume(srv, pa["token"], 1, name="a2")
        check_resumed(r)
        await expect_messages(a2, texts[1:8], 2)
        await a2.send({"type": "ack", "seq": 8})
        assert await barrier(a2) == []
        await b.expect("partner_back")
        for t in texts[8:]:
            await b.send(json.dumps({"type": "message", "text": t}, ensure_ascii=False))
        assert await barrier(b) == []
        await expect_messages(a2, texts[8:], 9)
        await close_all(a2, b)

    run(body())
