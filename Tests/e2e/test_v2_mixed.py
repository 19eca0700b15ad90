"""PROTOCOL.md part B.7 (a version 2 client paired with a version 1 client) and the drain of B.2 ("Shutdown"),
as docs/protocol-v2.md reads them.

Every wait is bounded.
"""
import asyncio
import signal
import time

import pytest

from v2_helpers import (NO_RATE, barrier, check_paired_v1, check_paired_v2, check_resumed, expect_messages,
                        resume, send_start, v1_open, v2_open, v2_pair)
from wsclient import Chat, close_all, run, start as start_server

GRACE = 5


async def mixed_pair(srv, v1_first=True, v2_settings=None):
    """A version 1 and a version 2 client paired; returns (v1, v2, paired to v1, paired to v2)."""
    if v1_first:
        one = await v1_open(srv, "v1")
        await one.expect("waiting")
        two = await v2_open(srv, "v2")
        await send_start(two, **(v2_settings or {}))
        p2 = await two.expect("paired")
        p1 = await one.expect("paired")
    else:
        two = await v2_open(srv, "v2")
        await send_start(two, **(v2_settings or {}))
        await two.expect("waiting")
        one = await v1_open(srv, "v1")
        p1 = await one.expect("paired")
        p2 = await two.expect("paired")
    check_paired_v1(p1)
    check_paired_v2(p2, images=False)
    return one, two, p1, p2


@pytest.mark.parametrize("v1_first", [True, False], ids=["v1-waits", "v2-waits"])
def test_v1_and_v2_share_the_queue_and_v1_sees_no_v2_fields(server_factory, v1_first):
    srv = start_server(server_factory, "--resume-grace", str(GRACE), *NO_RATE)

    async def body():
        one, two, p1, p2 = await mixed_pair(srv, v1_first, {"images": True})
        assert p2["grace"] == GRACE
        await two.send({"type": "message", "text": "from v2", "id": 1})
        assert await one.recv() == {"type": "message", "text": "from v2"}, "no seq, no id to version 1"
        await one.send({"type": "message", "text": "from v1", "id": 77})
        await one.send({"type": "message", "text": "again"})
        await expect_messages(two, ["from v1", "again"], 1)
        await two.send({"type": "typing", "active": True})
        assert await one.recv() == {"type": "typing", "active": True}
        await one.silence(0.2)
        await close_all(one, two)

    run(body())


@pytest.mark.parametrize("how", ["rst", "fin"])
def test_v2_drops_v1_sees_nothing_and_gets_the_kept_messages_after_resume(server_factory, how):
    srv = start_server(server_factory, "--resume-grace", str(GRACE), *NO_RATE)

    async def body():
        one, two, p1, p2 = await mixed_pair(srv)
        await one.send({"type": "message", "text": "m1"})
        await expect_messages(two, ["m1"], 1)
        await two.send({"type": "ack", "seq": 1})
        await two.send({"type": "message", "text": "hi v1", "id": 1})
        assert await barrier(two) == []
        assert await one.recv() == {"type": "message", "text": "hi v1"}
        await two.drop(how)
        await one.silence(0.5)  # version 1 has no partner_away
        for t in ("m2", "m3", "m4"):
            await one.send({"type": "message", "text": t})
        await one.send({"type": "typing", "active": True})
        await one.silence(0.3)  # kept without a reply
        two2, r = await resume(srv, p2["token"], 1, name="v2b")
        check_resumed(r, grace=GRACE, id_=1, old_token=p2["token"])
        assert r["partner"]["images"] is False, r
        await expect_messages(two2, ["m2", "m3", "m4"], 2)
        await two2.silence(0.3)
        await one.silence(0.3)  # no partner_back to version 1
        await two2.send({"type": "message", "text": "back", "id": 2})
        assert await one.recv() == {"type": "message", "text": "back"}
        await one.send({"type": "message", "text": "m5"})
        await expect_messages(two2, ["m5"], 5)
        await close_all(one, two2)

    run(body())


def test_v2_grace_runs_out_v1_gets_partner_left(server_factory):
    srv = start_server(server_factory, "--resume-grace", "1", *NO_RATE)

    async def body():
        one, two, p1, p2 = await mixed_pair(srv)
        await two.drop("rst")
        t0 = time.monotonic()
        await one.send({"type": "message", "text": "into the void"})
        m = await one.recv(4)
        dt = time.monotonic() - t0
        assert m == {"type": "partner_left"}, m
        assert 0.6 <= dt <= 2.5, f"partner_left {dt:.2f} s after the drop, grace 1"
        two2, r = await resume(srv, p2["token"], 0, name="v2b")
        assert r["type"] == "error" and r["code"] == "resume_failed", r
        await close_all(one, two2)

    run(body())


@pytest.mark.parametrize("how", ["rst", "fin", "close"])
def test_v1_drop_is_a_leave_for_the_v2_side(server_factory, how):
    srv = start_server(server_factory, "--resume-grace", str(GRACE), *NO_RATE)

    async def body():
        one, two, p1, p2 = await mixed_pair(srv)
        t0 = time.monotonic()
        if how == "close":
            await one.close()
        else:
            await one.drop(how)
        m = await two.recv(3)
        assert m == {"type": "partner_left"}, f"version 1 has no resume: its drop is a leave, got {m}"
        assert time.monotonic() - t0 < 2.5
        x, r = await resume(srv, p2["token"], 0, name="x")
        assert r["type"] == "error" and r["code"] == "resume_failed", r
        await close_all(two, x)

    run(body())


def test_v1_sender_beyond_the_bound_gets_rate_limited(server_factory):
    srv = start_server(server_factory, "--resume-grace", "20", *NO_RATE)

    async def body():
        one, two, p1, p2 = await mixed_pair(srv)
        await two.drop("rst")
        await asyncio.sleep(0.3)
        for i in range(1, 65):
            await one.send({"type": "message", "text": f"k{i}"})
        await one.silence(0.5)  # 64 kept
        await one.send({"type": "message", "text": "over 1"})
        await one.send({"type": "message", "text": "over 2"})
        await one.expect_error("rate_limited")
        await one.expect_error("rate_limited")
        await one.silence(0.2)
        two2, r = await resume(srv, p2["token"], 0, name="v2b")
        check_resumed(r)
        await expect_messages(two2, [f"k{i}" for i in range(1, 65)], 1)
        await two2.silence(0.3)
        await two2.send({"type": "ack", "seq": 64})   # connected, a full ring would refuse the next one
        await asyncio.sleep(0.1)
        await one.send({"type": "message", "text": "after"})
        await expect_messages(two2, ["after"], 65)
        await close_all(one, two2)

    run(body())


def test_v2_side_of_a_mixed_chat_after_next_pairs_with_others(server_factory):
    """A v2 `next` out of a mixed chat: the v1 side gets partner_left, the queue goes on FIFO."""
    srv = start_server(server_factory, "--resume-grace", str(GRACE), *NO_RATE)

    async def body():
        one, two, p1, p2 = await mixed_pair(srv)
        await two.send({"type": "next"})
        assert await one.recv() == {"type": "partner_left"}
        await two.expect("waiting")
        other = await v1_open(srv, "other")
        check_paired_v1(await other.expect("paired"))
        check_paired_v2(await two.expect("paired"), images=False)
        await close_all(one, two, other)

    run(body())


# ---------------------------------------------------------------------------
# drain

def test_sigterm_v2_clients_get_pending_messages_then_1001_and_no_partner_left(server_factory):
    srv = start_server(server_factory, "--resume-grace", str(GRACE), "--drain-timeout", "5", *NO_RATE)

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        one, two, _, _ = await mixed_pair(srv)
        for i in range(1, 31):
            await a.send({"type": "message", "text": f"a{i}", "id": i})
            await two.send({"type": "message", "text": f"two{i}", "id": i})
        assert await barrier(a) == []
        assert await barrier(two) == []
        srv.proc.send_signal(signal.SIGTERM)

        async def everything(c):
            frames = []
            while True:
                try:
                    frames.append(await c.recv(6))
                except Exception as e:  # Closed, with its code
                    return frames, getattr(e, "code", repr(e))

        (fb, cb), (fa, ca), (f1, c1), (f2, c2) = await asyncio.gather(
            everything(b), everything(a), everything(one), everything(two))
        assert fb == [{"type": "message", "text": f"a{i}", "seq": i} for i in range(1, 31)], fb
        assert f1 == [{"type": "message", "text": f"two{i}"} for i in range(1, 31)], f1
        assert fa == [] and f2 == [], (fa, f2)  # no partner_left, no partner_away
        assert (ca, cb, c1, c2) == (1001, 1001, 1001, 1001)
        assert await asyncio.to_thread(srv.proc.wait, 10) == 0

    run(body())


def test_after_a_restart_the_old_token_gets_resume_failed(server_factory):
    srv = start_server(server_factory, "--resume-grace", str(GRACE))

    async def body():
        a, b, pa, pb = await v2_pair(srv)
        srv.proc.send_signal(signal.SIGTERM)
        assert await a.closed() == 1001
        assert await b.closed() == 1001
        await asyncio.to_thread(srv.proc.wait, 10)
        srv2 = start_server(server_factory, "--resume-grace", str(GRACE))
        x, r = await resume(srv2, pa["token"], 0, name="x")
        assert r["type"] == "error" and r["code"] == "resume_failed", r
        await send_start(x)
        await x.expect("waiting")
        await x.close()

    run(body())
