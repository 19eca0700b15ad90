"""PROTOCOL.md part B.1 (and the negotiation in its preamble), as docs/protocol-v2.md reads it: the subprotocol
`uvchat.2`, `start` and its settings, the version 2 `paired`, repeat-partner avoidance, and the version 2 commands
that a version 1 client may not use.

Every wait is bounded; every server is started by the test that uses it.
"""
import asyncio
import json

import pytest

from v2_helpers import (NO_RATE, V2, V2_HEADER, barrier, check_paired_v1, check_paired_v2, check_token,
                        send_start, v1_open, v2_open, v2_pair)
from wsclient import Chat, RawWS, close_all, run, start as start_server


# ---------------------------------------------------------------------------
# negotiation

@pytest.mark.parametrize("offer", [[V2], ["foo", V2], [V2, "foo"], ["uvchat.1", "x-chat", V2]])
def test_uvchat2_offered_is_echoed_alone(server_factory, offer):
    srv = start_server(server_factory)

    async def body():
        c = await Chat.open(srv, subprotocols=offer, name="c")
        assert c.subprotocol == V2
        assert c.response_headers("Sec-WebSocket-Protocol") == [V2], c.response_headers("Sec-WebSocket-Protocol")
        first = await c.recv(keep_online=True)
        assert first["type"] == "online", first
        await c.silence(0.4)  # version 2: not queued on connect
        await c.close()

    run(body())


@pytest.mark.parametrize("headers", [
    [V2_HEADER],
    ["Sec-WebSocket-Protocol: foo, uvchat.2"],
    ["Sec-WebSocket-Protocol: foo,uvchat.2 , bar"],
    ["Sec-WebSocket-Protocol: foo", "Sec-WebSocket-Protocol: uvchat.2"],
], ids=["alone", "list", "list-spaces", "two-lines"])
def test_uvchat2_raw_header_forms(server_factory, headers):
    srv = start_server(server_factory)
    r = RawWS(srv.port, headers=headers)
    try:
        proto = [ln.split(":", 1)[1].strip() for ln in r.head.split("\r\n")[1:]
                 if ln.lower().startswith("sec-websocket-protocol:")]
        assert proto == [V2], r.head
        assert r.recv_json(keep_online=True)["type"] == "online"
        # Version 2: `start` is a command, not bad_request, and queues.
        r.send_json({"type": "start"})
        assert r.recv_json() == {"type": "waiting"}
    finally:
        r.close()


@pytest.mark.parametrize("offer", [None, ["uvchat.1"], ["chat", "superchat"], ["uvchat.20"], ["uvchat"]])
def test_without_uvchat2_no_subprotocol_and_version_1(server_factory, offer):
    srv = start_server(server_factory)

    async def body():
        c = await Chat.open(srv, subprotocols=offer, name="c")
        assert c.subprotocol is None
        assert c.response_headers("Sec-WebSocket-Protocol") == []
        assert (await c.recv(keep_online=True))["type"] == "online"
        assert await c.recv() == {"type": "waiting"}, "version 1 is queued at connect"
        d = await Chat.open(srv, subprotocols=offer, name="d")
        assert (await d.recv(keep_online=True))["type"] == "online"
        check_paired_v1(await d.expect("paired"))
        check_paired_v1(await c.expect("paired"))
        await d.send({"type": "message", "text": "hi", "id": 1})
        assert await c.recv() == {"type": "message", "text": "hi"}, "version 1 gets no seq"
        await close_all(c, d)

    run(body())


def test_raw_v1_101_has_no_subprotocol_header(server_factory):
    srv = start_server(server_factory)
    r = RawWS(srv.port, headers=["Sec-WebSocket-Protocol: uvchat.1, chat"])
    try:
        assert "sec-websocket-protocol" not in r.head.lower(), r.head
        assert r.recv_json(keep_online=True)["type"] == "online"
        assert r.recv_json() == {"type": "waiting"}
    finally:
        r.close()


# ---------------------------------------------------------------------------
# start

def test_v2_is_not_queued_until_start(server_factory):
    srv = start_server(server_factory)

    async def body():
        idle = await v2_open(srv, "idle")
        await idle.silence(0.3)
        # A version 1 client arriving is queued and must not be paired with the idle version 2 client.
        v1 = await v1_open(srv, "v1")
        await v1.expect("waiting")
        await v1.silence(0.3)
        await idle.silence(0.1)
        # A version 2 client that starts pairs with the waiting one, not with idle.
        s = await v2_open(srv, "s")
        await send_start(s)
        check_paired_v2(await s.expect("paired"))
        check_paired_v1(await v1.expect("paired"))
        await idle.silence(0.2)
        # Now idle starts: it waits (nobody else is queued).
        await send_start(idle)
        await idle.expect("waiting")
        await close_all(idle, v1, s)

    run(body())


def test_paired_v2_fields_token_grace_partner_images(server_factory):
    srv = start_server(server_factory, "--resume-grace", "7")

    async def body():
        a, b, pa, pb = await v2_pair(srv, {"images": True}, {}, grace=7)
        assert pa["partner"]["images"] is False, "b's start had no images: default false"
        assert pb["partner"]["images"] is True, "a's start said images true"
        assert pa["common"] == [] and pa["random"] is True, pa
        for p in (pa, pb):
            assert "seq" not in p and "id" not in p, p
        assert pa["token"] != pb["token"]
        # Tokens of a second chat are new as well.
        await a.send({"type": "stop"})
        await b.expect("partner_left")
        c = await v2_open(srv, "c")
        await send_start(c, images=False)
        await c.expect("waiting")
        await send_start(b)
        pb2 = check_paired_v2(await b.expect("paired"), grace=7, images=False)
        pc = check_paired_v2(await c.expect("paired"), grace=7, images=False)
        tokens = {pa["token"], pb["token"], pb2["token"], pc["token"]}
        assert len(tokens) == 4, tokens
        await close_all(a, b, c)

    run(body())


def test_default_grace_is_30(server_factory):
    srv = start_server(server_factory)

    async def body():
        a, b, pa, pb = await v2_pair(srv, grace=30)
        await close_all(a, b)

    run(body())


def test_many_tokens_are_distinct(server_factory):
    srv = start_server(server_factory, *NO_RATE)

    async def body():
        seen = set()
        a, b, pa, pb = await v2_pair(srv)
        seen |= {pa["token"], pb["token"]}
        for _ in range(15):
            await a.send({"type": "stop"})
            await b.expect("partner_left")
            a, b = b, a
            # b and a have just been partners: a third client is needed for each new chat.
            n = await v2_open(srv, "n")
            await send_start(n)
            await n.expect("waiting")
            await send_start(a)
            pa = check_paired_v2(await a.expect("paired"))
            pn = check_paired_v2(await n.expect("paired"))
            seen |= {pa["token"], pn["token"]}
            await b.close()
            b = n
        assert len(seen) == 32, f"tokens repeat: {len(seen)} distinct of 32"
        await close_all(a, b)

    run(body())


def test_start_interests_array_and_tag_rules(server_factory):
    srv = start_server(server_factory, "--interest-timeout", "30")

    async def body():
        a, b, pa, pb = await v2_pair(
            srv,
            {"interests": ["  Music ", "x" * 33, "", "MOVIES", "music", "chess", "Chess"]},
            {"interests": ["movies", "chess", "music", "art"]})
        for p in (pa, pb):
            assert sorted(p["common"]) == ["chess", "movies", "music"], p
            assert p["random"] is False, p
        await close_all(a, b)

    run(body())


def test_start_keeps_at_most_five_interests(server_factory):
    srv = start_server(server_factory, "--interest-timeout", "30")

    async def body():
        tags = ["a", "b", "c", "d", "e", "f"]
        a, b, pa, pb = await v2_pair(srv, {"interests": tags}, {"interests": tags})
        for p in (pa, pb):
            assert sorted(p["common"]) == tags[:5], f"at most 5 tags kept, the first ones: {p}"
        await close_all(a, b)

    run(body())


def test_start_without_interests_uses_the_query(server_factory):
    srv = start_server(server_factory, "--interest-timeout", "30")

    async def body():
        a = await v2_open(srv, "a", query="interests=chess,art")
        await send_start(a)
        await a.expect("waiting")
        other = await v2_open(srv, "other")
        await send_start(other, interests=["cooking"])
        await other.expect("waiting")
        b = await v2_open(srv, "b")
        await send_start(b, interests=["art"])
        pb = check_paired_v2(await b.expect("paired"))
        pa = check_paired_v2(await a.expect("paired"))
        assert pa["common"] == ["art"] and pb["common"] == ["art"] and pa["random"] is False, (pa, pb)
        await other.silence(0.2)
        await close_all(a, b, other)

    run(body())


def test_start_interests_override_the_query(server_factory):
    srv = start_server(server_factory, "--interest-timeout", "30")

    async def body():
        a = await v2_open(srv, "a", query="interests=chess")
        await send_start(a, interests=["art"])
        await a.expect("waiting")
        c = await v2_open(srv, "c")
        await send_start(c, interests=["chess"])
        await c.expect("waiting")  # a's query interest does not count any more
        b = await v2_open(srv, "b")
        await send_start(b, interests=["art"])
        pb = check_paired_v2(await b.expect("paired"))
        assert pb["common"] == ["art"], pb
        await a.expect("paired")
        await c.silence(0.2)
        await close_all(a, b, c)

    run(body())


def test_start_while_queued_is_next_with_new_settings(server_factory):
    srv = start_server(server_factory, "--interest-timeout", "30", *NO_RATE)

    async def body():
        a = await v2_open(srv, "a")
        await send_start(a, interests=["old"])
        await a.expect("waiting")
        await send_start(a, interests=["new"], images=True)
        await a.expect("waiting")
        o = await v2_open(srv, "o")
        await send_start(o, interests=["old"])
        await o.expect("waiting")  # a no longer has "old"
        b = await v2_open(srv, "b")
        await send_start(b, interests=["new"])
        pb = check_paired_v2(await b.expect("paired"), images=True)
        assert pb["common"] == ["new"], pb
        pa = check_paired_v2(await a.expect("paired"), images=False)
        assert pa["common"] == ["new"], pa
        await o.silence(0.2)
        await close_all(a, b, o)

    run(body())


def test_start_while_paired_is_next_with_new_settings(server_factory):
    srv = start_server(server_factory, *NO_RATE)

    async def body():
        a, b, pa, pb = await v2_pair(srv, {"images": False}, {"images": False})
        assert pb["partner"]["images"] is False
        await send_start(a, images=True)
        await b.expect("partner_left")
        await a.expect("waiting")  # b is idle after partner_left and was a's partner anyway
        c = await v2_open(srv, "c")
        await send_start(c)
        pc = check_paired_v2(await c.expect("paired"), images=True)
        check_paired_v2(await a.expect("paired"), images=False)
        assert pc["token"] not in (pa["token"], pb["token"])
        await b.silence(0.2)
        # next keeps the last start settings
        await a.send({"type": "next"})
        await c.expect("partner_left")
        await a.expect("waiting")
        d = await v2_open(srv, "d")
        await send_start(d)
        check_paired_v2(await d.expect("paired"), images=True)
        await a.expect("paired")
        await close_all(a, b, c, d)

    run(body())


def test_start_after_stop_and_after_partner_left(server_factory):
    srv = start_server(server_factory, *NO_RATE)

    async def body():
        a = await v2_open(srv, "a")
        await send_start(a)
        await a.expect("waiting")
        await a.send({"type": "stop"})
        await a.silence(0.2)
        b = await v2_open(srv, "b")
        await send_start(b)
        await b.expect("waiting")  # a stopped: not queued
        await send_start(a)
        check_paired_v2(await a.expect("paired"))
        check_paired_v2(await b.expect("paired"))
        await close_all(a, b)

    run(body())


BAD_STARTS = [
    {"interests": "music"},
    {"interests": [1]},
    {"interests": ["music", 2]},
    {"interests": {"music": True}},
    {"interests": 5},
    {"interests": [["music"]]},
    {"images": "yes"},
    {"images": 1},
    {"images": "true"},
    {"images": []},
    {"interests": None},  # docs/protocol-v2.md: an array of strings, bad_request otherwise
    {"images": None},
]


@pytest.mark.parametrize("fields", BAD_STARTS, ids=[json.dumps(f) for f in BAD_STARTS])
def test_bad_start_fields_are_bad_request_and_not_carried_out(server_factory, fields):
    srv = start_server(server_factory, *NO_RATE)

    async def body():
        a = await v2_open(srv, "a")
        await a.send({"type": "start", **fields})
        await a.expect_error("bad_request")
        await a.silence(0.2)
        b = await v2_open(srv, "b")
        await send_start(b)
        await b.expect("waiting")  # a was not queued by the refused start
        await b.silence(0.2)
        await send_start(a)  # a well-formed start still works
        check_paired_v2(await a.expect("paired"))
        check_paired_v2(await b.expect("paired"))
        await close_all(a, b)

    run(body())


def test_bad_start_while_paired_changes_nothing(server_factory):
    srv = start_server(server_factory, *NO_RATE)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await a.send({"type": "start", "images": "no"})
        await a.expect_error("bad_request")
        await b.silence(0.2)
        await a.send({"type": "message", "text": "still here"})
        await b.expect("message", text="still here", seq=1)
        await close_all(a, b)

    run(body())


@pytest.mark.parametrize("cmd", [
    {"type": "start"},
    {"type": "start", "interests": ["music"], "images": True},
    {"type": "ack", "seq": 0},
    {"type": "resume", "token": "A" * 27, "seq": 0},
    {"type": "ping"},
], ids=["start", "start-fields", "ack", "resume", "ping"])
def test_v2_commands_on_v1_are_bad_request(server_factory, cmd):
    srv = start_server(server_factory)

    async def body():
        a = await v1_open(srv, "a")
        await a.expect("waiting")
        await a.send(cmd)
        await a.expect_error("bad_request")
        # a is still queued (the refused command changed nothing): the next client pairs with it
        b = await v1_open(srv, "b")
        check_paired_v1(await b.expect("paired"))
        check_paired_v1(await a.expect("paired"))
        await a.send(cmd)
        await a.expect_error("bad_request")
        await b.silence(0.2)
        await close_all(a, b)

    run(body())


def test_v2_ping_is_answered_pong(server_factory):
    srv = start_server(server_factory)

    async def body():
        a = await v2_open(srv, "a")
        for _ in range(3):
            assert await barrier(a) == []
        await send_start(a)
        assert await barrier(a) == [{"type": "waiting"}]
        await a.close()

    run(body())


# ---------------------------------------------------------------------------
# repeat partners

def test_v2_is_not_paired_again_with_its_last_partner(server_factory):
    srv = start_server(server_factory, *NO_RATE)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await a.send({"type": "next"})
        await b.expect("partner_left")
        await a.expect("waiting")
        await send_start(b)
        await b.expect("waiting")  # a is queued, but it was b's last partner
        await b.silence(0.4)
        await a.silence(0.1)
        c = await v2_open(srv, "c")
        await send_start(c)
        check_paired_v2(await c.expect("paired"))
        check_paired_v2(await a.expect("paired"))  # a waited longest: FIFO for everyone else
        await b.silence(0.2)
        d = await v2_open(srv, "d")
        await send_start(d)
        check_paired_v2(await d.expect("paired"))
        check_paired_v2(await b.expect("paired"))
        # Message routing confirms who is with whom.
        await a.send({"type": "message", "text": "a->c"})
        await c.expect("message", text="a->c", seq=1)
        await b.send({"type": "message", "text": "b->d"})
        await d.expect("message", text="b->d", seq=1)
        await close_all(a, b, c, d)

    run(body())


def test_v2_repeat_avoidance_both_ways_with_next(server_factory):
    """Both former partners send next: they are queued together and still not paired."""
    srv = start_server(server_factory, *NO_RATE)

    async def body():
        a, b, _, _ = await v2_pair(srv)
        await a.send({"type": "next"})
        await b.expect("partner_left")
        await a.expect("waiting")
        await b.send({"type": "next"})
        await b.expect("waiting")
        await asyncio.gather(a.silence(0.5), b.silence(0.5))
        await close_all(a, b)

    run(body())


def test_v1_clients_are_paired_again_as_before(server_factory):
    srv = start_server(server_factory, *NO_RATE)

    async def body():
        a = await v1_open(srv, "a")
        await a.expect("waiting")
        b = await v1_open(srv, "b")
        await b.expect("paired")
        await a.expect("paired")
        await a.send({"type": "next"})
        await b.expect("partner_left")
        await a.expect("waiting")
        await b.send({"type": "next"})
        check_paired_v1(await b.expect("paired"))
        check_paired_v1(await a.expect("paired"))
        await close_all(a, b)

    run(body())


def test_v2_avoids_a_v1_partner_it_had(server_factory):
    srv = start_server(server_factory, *NO_RATE)

    async def body():
        a = await v2_open(srv, "a2")
        await send_start(a)
        await a.expect("waiting")
        b = await v1_open(srv, "b1")
        check_paired_v1(await b.expect("paired"))
        check_paired_v2(await a.expect("paired"), images=False)
        await a.send({"type": "next"})
        await b.expect("partner_left")
        await a.expect("waiting")
        await b.send({"type": "next"})
        await b.expect("waiting")  # the version 2 side remembers its version 1 partner
        await asyncio.gather(a.silence(0.4), b.silence(0.4))
        c = await v1_open(srv, "c1")
        check_paired_v1(await c.expect("paired"))
        check_paired_v2(await a.expect("paired"))  # a waited longest
        await b.silence(0.2)
        await close_all(a, b, c)

    run(body())
