"""PROTOCOL.md part A, "Pairing" and the `online`, `waiting` and `paired` rows of "Server to client": the first
frame and online count updates, FIFO pairing, interests (and their normalisation from "Endpoints"), never self.

Chat traffic uses the `websockets` client through wsclient.Chat. Every wait is bounded.
"""
import asyncio
import time

import pytest

from wsclient import Chat, close_all, pair, run, start


# ---------------------------------------------------------------------------
# online, waiting, paired

def test_first_frame_is_online_with_count_of_open_connections(server_factory):
    srv = start(server_factory)

    async def body():
        clients = []
        for n in range(1, 5):
            c = await Chat.open(srv, name=f"c{n}")
            first = await c.recv(keep_online=True)
            assert first == {"type": "online", "count": n}, first
            clients.append(c)
        await clients[0].close()
        await clients[1].close()
        await asyncio.sleep(0.3)
        c = await Chat.open(srv, name="late")
        first = await c.recv(keep_online=True)
        assert first == {"type": "online", "count": 3}, first
        await close_all(c, *clients)

    run(body())


def test_waiting_only_when_queued_not_when_paired_at_once(server_factory):
    srv = start(server_factory)

    async def body():
        a = await Chat.open(srv, name="a")
        assert (await a.recv(keep_online=True))["type"] == "online"
        assert (await a.recv(keep_online=True)) == {"type": "waiting"}
        b = await Chat.open(srv, name="b")
        assert (await b.recv(keep_online=True))["type"] == "online"
        pb = await b.recv(keep_online=True)
        assert pb["type"] == "paired", f"b was paired at once and must not see waiting: {pb}"
        assert pb["common"] == [] and pb["random"] is True
        pa = await a.expect("paired")
        assert pa["common"] == [] and pa["random"] is True
        await a.silence(0.2)
        await b.silence(0.1)
        await close_all(a, b)

    run(body())


def test_fifo_pairing_of_ten_clients(server_factory):
    srv = start(server_factory)

    async def body():
        clients = []
        for i in range(10):
            c = await Chat.joined(srv, name=f"c{i}")
            clients.append(c)
            if i % 2 == 0:
                await c.expect("waiting")
            else:
                await c.expect("paired")
                await clients[i - 1].expect("paired")
        # Each client tells its partner who it is; i must hear from i^1 only.
        for i, c in enumerate(clients):
            await c.send({"type": "message", "text": f"from {i}"})
        for i, c in enumerate(clients):
            await c.expect("message", text=f"from {i ^ 1}")
            await c.silence(0.05)
        await close_all(*clients)

    run(body())


def test_never_paired_with_itself(server_factory):
    srv = start(server_factory)

    async def body():
        a = await Chat.joined(srv, name="a")
        await a.expect("waiting")
        for _ in range(3):
            await a.send({"type": "next"})
            await a.expect("waiting")
        await a.silence(0.3)
        await a.close()

    run(body())


def test_never_paired_with_a_closed_connection(server_factory):
    srv = start(server_factory)

    async def body():
        a = await Chat.joined(srv, name="a")
        await a.expect("waiting")
        await a.close()  # returns after the server's close frame: it has seen ours
        b = await Chat.joined(srv, name="b")
        await b.expect("waiting")
        await b.silence(0.3)
        await b.close()

    run(body())


# ---------------------------------------------------------------------------
# online updates

def test_online_count_updates(server_factory):
    interval = 0.5
    srv = start(server_factory, "--online-interval", str(interval))

    async def body():
        obs = await Chat.joined(srv, name="obs")
        others = []
        for i in range(5):
            others.append(await Chat.joined(srv, name=f"o{i}"))
            await asyncio.sleep(0.06)
        await obs.drain(1.5)  # collects online frames meanwhile
        assert obs.onlines, "no online update was pushed"
        assert obs.onlines[-1][1] == 6, obs.onlines
        for c in others[:3]:
            await c.close()
        await obs.drain(1.2)
        assert obs.onlines[-1][1] == 3, obs.onlines
        seen = len(obs.onlines)
        await obs.drain(1.2)  # nothing changes: nothing is pushed
        assert len(obs.onlines) == seen, obs.onlines
        # The first frame is left out: a server may push on a shared timer whose phase
        # a newcomer does not choose.
        times = [t for t, _ in obs.onlines[1:]]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(g >= interval * 0.8 for g in gaps), f"updates too close together: {gaps}"
        counts = [n for _, n in obs.onlines]
        assert all(x != y for x, y in zip(counts, counts[1:])), f"unchanged count pushed: {counts}"
        await close_all(obs, *others)

    run(body())


def test_online_count_not_pushed_to_lone_client(server_factory):
    srv = start(server_factory, "--online-interval", "0.3")

    async def body():
        obs = await Chat.joined(srv, name="obs")
        await obs.expect("waiting")
        await obs.drain(1.2)
        assert len(obs.onlines) == 1, f"count never changed from 1, yet pushed: {obs.onlines}"
        await obs.close()

    run(body())


def test_online_count_unchanged_is_not_pushed(server_factory):
    srv = start(server_factory, "--online-interval", "0.3")

    async def body():
        obs = await Chat.joined(srv, name="obs")
        # Connect and close at once, repeatedly: the count ends where it was.
        for _ in range(3):
            c = await Chat.joined(srv, name="blip")
            await c.close()
            await asyncio.sleep(0.01)
        await obs.drain(1.2)
        counts = [n for _, n in obs.onlines]
        assert all(x != y for x, y in zip(counts, counts[1:])), counts
        assert not counts or counts[-1] == 1, counts
        await obs.close()

    run(body())


# ---------------------------------------------------------------------------
# interests

def test_interests_pair_on_common_tag(server_factory):
    srv = start(server_factory, "--interest-timeout", "30")

    async def body():
        a, b, pa, pb = await pair(srv, "interests=music,Movies", "interests=movies,books")
        for p in (pa, pb):
            assert p["common"] == ["movies"] and p["random"] is False, p
        await close_all(a, b)

    run(body())


def test_interests_several_common_tags(server_factory):
    srv = start(server_factory, "--interest-timeout", "30")

    async def body():
        a, b, pa, pb = await pair(srv, "interests=music,movies,chess", "interests=chess,art,music")
        for p in (pa, pb):
            assert sorted(p["common"]) == ["chess", "music"] and p["random"] is False, p
        await close_all(a, b)

    run(body())


def test_interest_match_takes_longest_waiting_sharer(server_factory):
    srv = start(server_factory, "--interest-timeout", "30")

    async def body():
        waiting = []
        for tag in ("jazz", "rock", "pop"):
            c = await Chat.joined(srv, f"interests={tag}", name=tag)
            await c.expect("waiting")
            waiting.append(c)
        jazz, rock, pop = waiting
        d = await Chat.joined(srv, "interests=rock,jazz", name="d")
        assert (await d.expect("paired"))["common"] == ["jazz"]
        assert (await jazz.expect("paired"))["common"] == ["jazz"]
        e = await Chat.joined(srv, "interests=pop,rock", name="e")
        assert (await e.expect("paired"))["common"] == ["rock"]
        assert (await rock.expect("paired"))["common"] == ["rock"]
        await pop.silence(0.2)
        await close_all(d, e, *waiting)

    run(body())


@pytest.mark.parametrize("qa,qb,common", [
    ("interests=%20Music%20,,MUSIC", "interests=music", ["music"]),
    ("interests=rock%20%26%20roll", "interests=ROCK%20%26%20Roll", ["rock & roll"]),
    ("interests=%C3%A9t%C3%A9", "interests=%C3%A9t%C3%A9", ["\u00e9t\u00e9"]),
    ("interests=Tag,tag,TAG,%20tag", "interests=tag", ["tag"]),
    ("interests=" + "a" * 32, "interests=" + "A" * 32, ["a" * 32]),
    ("interests=,,%20,a,b,c,d,e", "interests=e", ["e"]),
    ("interests=" + "x" * 33 + ",ok", "interests=" + "x" * 33 + ",ok", ["ok"]),
    ("lang=en&interests=Music&x=1", "interests=music", ["music"]),
])
def test_interest_normalization(server_factory, qa, qb, common):
    srv = start(server_factory, "--interest-timeout", "30")

    async def body():
        a, b, pa, pb = await pair(srv, qa, qb)
        for p in (pa, pb):
            assert p["common"] == common and p["random"] is False, p
        await close_all(a, b)

    run(body())


def test_interest_over_32_chars_is_dropped(server_factory):
    # With every tag dropped both clients have no interests: a random match at once.
    srv = start(server_factory, "--interest-timeout", "30")

    async def body():
        t0 = time.monotonic()
        a, b, pa, pb = await pair(srv, "interests=" + "x" * 33, "interests=" + "x" * 33)
        assert time.monotonic() - t0 < 2
        for p in (pa, pb):
            assert p["common"] == [] and p["random"] is True, p
        await close_all(a, b)

    run(body())


def test_at_most_five_interests_are_kept(server_factory):
    srv = start(server_factory, "--interest-timeout", "30")

    async def body():
        a = await Chat.joined(srv, "interests=a,b,c,d,e,f", name="a")
        await a.expect("waiting")
        b = await Chat.joined(srv, "interests=f", name="b")
        await b.expect("waiting")
        await b.silence(0.5)
        await a.silence(0.05)
        await close_all(a, b)

    run(body())


def test_interest_timeout_falls_back_to_random(server_factory):
    srv = start(server_factory, "--interest-timeout", "0.5")

    async def body():
        a = await Chat.joined(srv, "interests=music", name="a")
        await a.expect("waiting")
        b = await Chat.joined(srv, "interests=books", name="b")
        t0 = time.monotonic()
        await b.expect("waiting")
        pb = await b.expect("paired", timeout=4)
        elapsed = time.monotonic() - t0
        pa = await a.expect("paired")
        for p in (pa, pb):
            assert p["common"] == [] and p["random"] is True, p
        assert 0.3 <= elapsed <= 3, f"paired after {elapsed:.2f} s, interest timeout 0.5 s"
        await close_all(a, b)

    run(body())


@pytest.mark.parametrize("first,second", [("interests=music", None), (None, "interests=music")])
def test_interest_client_meets_plain_client_after_timeout(server_factory, first, second):
    srv = start(server_factory, "--interest-timeout", "0.5")

    async def body():
        a = await Chat.joined(srv, first, name="a")
        await a.expect("waiting")
        t0 = time.monotonic()
        b = await Chat.joined(srv, second, name="b")
        await b.expect("waiting")
        pb = await b.expect("paired", timeout=4)
        pa = await a.expect("paired")
        for p in (pa, pb):
            assert p["common"] == [] and p["random"] is True, p
        # Neither pairing is immediate: the interest client waits out its own timeout.
        assert time.monotonic() - t0 >= (0.2 if first else 0.35)
        await close_all(a, b)

    run(body())
