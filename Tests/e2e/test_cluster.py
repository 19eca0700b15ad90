"""Scale-out (issue 18): three uvchatd nodes and one real redis-server behave as one server. Clients speak the
protocol over real sockets to different nodes; Redis is inspected over its own socket."""
import random
import signal
import time

import pytest

from cluster_helpers import cluster_factory, redis  # noqa: F401 (fixtures)
from wsclient import Closed, RawWS, get, http_exchange

V2 = ["Sec-WebSocket-Protocol: uvchat.2"]
# Version 2 tests that send many messages: the rate limits out of the way.
V2_FAST = ["--rate-per-second", "10000", "--rate-burst", "10000", "--next-rate-per-second", "1000",
           "--next-burst", "1000"]


def waiting_or_paired(ws):
    msg = ws.recv_json()
    assert msg["type"] in ("waiting", "paired"), msg
    return msg


def pair_across(a_node, b_node, path="/ws", headers=None):
    a = RawWS(a_node.port, path, headers=headers)
    if headers:
        a.send_json({"type": "start"})
    assert a.recv_json()["type"] == "waiting"
    b = RawWS(b_node.port, path, headers=headers)
    if headers:
        b.send_json({"type": "start"})
    assert b.recv_json()["type"] == "paired"
    assert a.recv_json()["type"] == "paired"
    return a, b


def test_thousand_messages_each_way_in_order_then_partner_left(cluster_factory):
    c = cluster_factory(3, extra=["--no-rate-limits"])
    a, b = pair_across(c.nodes[0], c.nodes[1])
    n = 1000
    # Interleaved, without waiting: both directions are in flight at once.
    for i in range(n):
        a.send_json({"type": "message", "text": f"a{i}"})
        b.send_json({"type": "message", "text": f"b{i}"})
    got_a, got_b = [], []
    while len(got_b) < n:
        m = b.recv_json()
        assert m["type"] == "message", m
        got_b.append(m["text"])
    while len(got_a) < n:
        m = a.recv_json()
        assert m["type"] == "message", m
        got_a.append(m["text"])
    assert got_b == [f"a{i}" for i in range(n)]
    assert got_a == [f"b{i}" for i in range(n)]
    # The last messages, then the leaving: partner_left comes after every one of them.
    for i in range(5):
        a.send_json({"type": "message", "text": f"last{i}"})
    a.send_json({"type": "next"})
    assert [b.recv_json()["text"] for _ in range(5)] == [f"last{i}" for i in range(5)]
    assert b.recv_json()["type"] == "partner_left"
    assert a.recv_json()["type"] == "waiting"


def test_version2_chat_across_nodes_keeps_seq_and_ids(cluster_factory):
    c = cluster_factory(2, extra=["--no-rate-limits"])
    a, b = pair_across(c.nodes[0], c.nodes[1], headers=V2)
    for i in range(1, 51):
        a.send_json({"type": "message", "text": f"m{i}", "id": i})
    seqs = []
    for i in range(1, 51):
        m = b.recv_json()
        assert m["type"] == "message" and m["text"] == f"m{i}", m
        seqs.append(m["seq"])
    assert seqs == list(range(1, 51))
    # The home keeps the sender's id rule: an id that does not grow is refused, across nodes too.
    a.send_json({"type": "message", "text": "again", "id": 3})
    m = a.recv_json()
    assert (m["type"], m["code"]) == ("error", "bad_request"), m
    b.send_json({"type": "typing", "active": True})
    assert a.recv_json() == {"type": "typing", "active": True}


def test_fifo_across_nodes(cluster_factory):
    c = cluster_factory(3)
    clients, firsts = [], []
    for i in range(10):
        ws = RawWS(c.nodes[i % 3].port)
        firsts.append(waiting_or_paired(ws)["type"])
        clients.append(ws)
    # Arrival order is pairing order: 0 with 1, 2 with 3, ... whatever node each is on.
    assert firsts == ["waiting", "paired"] * 5
    for i in range(0, 10, 2):
        assert clients[i].recv_json()["type"] == "paired"
        clients[i].send_json({"type": "message", "text": f"from {i}"})
        assert clients[i + 1].recv_json() == {"type": "message", "text": f"from {i}"}


def test_interests_across_nodes_then_timeout_to_random(cluster_factory):
    c = cluster_factory(3, extra=["--interest-timeout", "1"])
    a = RawWS(c.nodes[0].port, "/ws?interests=music,chess")
    assert a.recv_json()["type"] == "waiting"
    x = RawWS(c.nodes[1].port, "/ws?interests=cooking")
    assert x.recv_json()["type"] == "waiting"
    b = RawWS(c.nodes[2].port, "/ws?interests=chess")
    assert b.recv_json() == {"type": "paired", "common": ["chess"], "random": False}
    assert a.recv_json() == {"type": "paired", "common": ["chess"], "random": False}
    # Nobody shares x's interest: after the timeout (kept by x's own node) it meets a random newcomer elsewhere.
    time.sleep(1.5)
    r = RawWS(c.nodes[0].port)
    assert r.recv_json() == {"type": "paired", "common": [], "random": True}
    assert x.recv_json() == {"type": "paired", "common": [], "random": True}
    r.send_json({"type": "message", "text": "hello x"})
    assert x.recv_json() == {"type": "message", "text": "hello x"}


def test_never_self_and_repeat_avoidance_across_nodes(cluster_factory):
    c = cluster_factory(2)
    a, b = pair_across(c.nodes[0], c.nodes[1], headers=V2)
    # a leaves for someone new: b is not paired with a again at once (version 2 repeat avoidance).
    a.send_json({"type": "next"})
    assert b.recv_json()["type"] == "partner_left"
    assert a.recv_json()["type"] == "waiting"
    b.send_json({"type": "next"})
    assert b.recv_json()["type"] == "waiting"
    z = RawWS(c.nodes[1].port, headers=V2)
    z.send_json({"type": "start"})
    assert z.recv_json()["type"] == "paired"
    assert a.recv_json()["type"] == "paired"
    z.send_json({"type": "message", "text": "to a", "id": 1})
    m = a.recv_json()
    assert m["type"] == "message" and m["text"] == "to a"


def test_next_storm_and_churn_nothing_misrouted(cluster_factory):
    """24 clients over three nodes press next and talk at random for a few seconds. Every message names its
    sender and the sender's pairing count; a receiver must only ever hear the one partner its pairing gave it,
    whose first message of the pairing says who it is."""
    c = cluster_factory(3, extra=["--no-rate-limits"])
    rng = random.Random(18)
    clients = [RawWS(c.nodes[i % 3].port) for i in range(24)]
    # "leaving": next was sent and neither waiting nor paired came back yet: the old partner's messages sent before
    # the server took the next may still arrive (and only its).
    state = [{"paired": False, "gen": 0, "partner": None, "leaving": False} for _ in clients]
    violations = []
    delivered = 0

    def handle(i, m):
        nonlocal delivered
        s = state[i]
        t = m["type"]
        if t == "paired":
            s.update(paired=True, gen=s["gen"] + 1, partner=None, leaving=False)
            clients[i].send_json({"type": "message", "text": f"hello|{i}|{s['gen']}"})
        elif t in ("partner_left", "waiting"):
            s.update(paired=False, partner=None, leaving=False)
        elif t == "message":
            kind, sender, _ = m["text"].split("|")
            sender = int(sender)
            if s["leaving"] and (s["partner"] is None or s["partner"] == sender):
                s["partner"] = sender
            elif not s["paired"]:
                violations.append((i, "message while not paired", m))
            elif s["partner"] is None:
                if kind != "hello":
                    violations.append((i, "first message is not a hello", m))
                s["partner"] = sender
            elif s["partner"] != sender:
                violations.append((i, f"message from {sender}, partner is {s['partner']}", m))
            delivered += 1
        elif t == "error" and m["code"] != "not_paired":
            # not_paired is a race the protocol allows: a message sent as the partner's leaving crossed it.
            violations.append((i, "error", m))

    def drain(i, wait=0.0):
        ws = clients[i]
        end = time.monotonic() + wait
        while True:
            left = end - time.monotonic()
            try:
                m = ws.recv_json(timeout=max(0.005, left))
            except Exception:
                return
            handle(i, m)

    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        i = rng.randrange(len(clients))
        drain(i)
        if state[i]["paired"] and rng.random() < 0.7:
            clients[i].send_json({"type": "message", "text": f"msg|{i}|{state[i]['gen']}"})
        elif rng.random() < 0.5:
            clients[i].send_json({"type": "next"})
            state[i].update(leaving=state[i]["paired"], paired=False)
    for i in range(len(clients)):
        drain(i, 0.3)
    assert not violations, violations[:10]
    assert delivered > 200
    for ws in clients:
        ws.close()
    # Nothing is left behind in the queue: every client that left took its entry with it.
    time.sleep(0.5)
    assert [k for k in c.redis.keys("uvchat:e:*")] == []


def test_kill_9_of_a_node_partners_told_and_its_keys_gone(cluster_factory):
    c = cluster_factory(3)
    a, b = pair_across(c.nodes[0], c.nodes[1])
    waiter = RawWS(c.nodes[1].port)
    assert waiter.recv_json()["type"] == "waiting"
    assert any(k.startswith("uvchat:e:node1.") for k in c.redis.keys("uvchat:e:*"))
    killed = time.monotonic()
    c.nodes[1].proc.send_signal(signal.SIGKILL)
    c.nodes[1].proc.wait()
    assert a.recv_json(timeout=8)["type"] == "partner_left"
    assert time.monotonic() - killed < 6
    # Its waiting client left the queue with it: a newcomer waits instead of being paired with a ghost.
    n = RawWS(c.nodes[2].port)
    assert n.recv_json()["type"] == "waiting"
    left = [k for k in c.redis.keys() if "node1" in k]
    assert left == []
    assert b"node1" not in c.redis.call("HKEYS", "uvchat:online")
    assert b"node1" not in c.redis.call("ZRANGE", "uvchat:nodes", 0, -1)
    c.nodes[1].proc = None  # already gone


def test_redis_stopped_and_restarted(cluster_factory, redis):
    c = cluster_factory(2)
    redis.stop()
    # Each node goes on alone: /healthz still 200 but degraded, and local pairing works.
    deadline = time.time() + 8
    while time.time() < deadline:
        r = http_exchange(c.nodes[0].port, get("/healthz"))
        if r.body == b"degraded":
            break
        time.sleep(0.1)
    assert r.status == 200 and r.body == b"degraded"
    a = RawWS(c.nodes[0].port)
    assert a.recv_json()["type"] == "waiting"
    b = RawWS(c.nodes[0].port)
    assert b.recv_json()["type"] == "paired"
    assert a.recv_json()["type"] == "paired"
    a.send_json({"type": "message", "text": "still here"})
    assert b.recv_json() == {"type": "message", "text": "still here"}
    # Redis comes back (empty, as after a restart): the nodes rejoin and pair across nodes again.
    redis.start()
    c.wait_joined(timeout=15)
    x = RawWS(c.nodes[0].port)
    assert x.recv_json()["type"] == "waiting"
    y = RawWS(c.nodes[1].port)
    assert y.recv_json()["type"] == "paired"
    assert x.recv_json()["type"] == "paired"
    y.send_json({"type": "message", "text": "across again"})
    assert x.recv_json() == {"type": "message", "text": "across again"}


def test_online_count_is_cluster_wide(cluster_factory):
    c = cluster_factory(3)
    clients = [RawWS(c.nodes[i].port) for i in range(3)]
    deadline = time.time() + 8
    body = b""
    while time.time() < deadline:
        body = http_exchange(c.nodes[0].port, get("/online")).body
        if body == b'{"type":"online","count":3}':
            break
        time.sleep(0.2)
    assert body == b'{"type":"online","count":3}'
    metrics = http_exchange(c.nodes[2].port, get("/metrics")).body.decode()
    assert "uvchat_cluster_online 3" in metrics
    assert "uvchat_cluster_joined 1" in metrics
    for ws in clients:
        ws.close()


def test_single_node_without_redis_has_no_cluster_metrics(server_factory):
    s = server_factory()
    metrics = http_exchange(s.port, get("/metrics")).body.decode()
    assert "uvchat_cluster_" not in metrics
    assert http_exchange(s.port, get("/healthz")).body == b"ok"


def paired_v2(a_node, b_node):
    """Two version 2 clients paired across nodes: (a, a's paired, b, b's paired)."""
    a = RawWS(a_node.port, headers=V2)
    a.send_json({"type": "start"})
    assert a.recv_json()["type"] == "waiting"
    b = RawWS(b_node.port, headers=V2)
    b.send_json({"type": "start"})
    pb = b.recv_json()
    pa = a.recv_json()
    assert pa["type"] == pb["type"] == "paired", (pa, pb)
    return a, pa, b, pb


def test_resume_on_a_third_node_while_the_home_lives(cluster_factory):
    c = cluster_factory(3)
    a, pa, b, pb = paired_v2(c.nodes[0], c.nodes[1])
    a.drop("rst")
    assert b.recv_json()["type"] == "partner_away"
    b.send_json({"type": "message", "text": "while you were away", "id": 1})
    time.sleep(0.2)
    # Back through another node: the token finds its chat wherever it is.
    a2 = RawWS(c.nodes[2].port, headers=V2)
    a2.send_json({"type": "resume", "token": pa["token"], "seq": 0})
    r = a2.recv_json()
    assert r["type"] == "resumed" and r["token"] != pa["token"], r
    m = a2.recv_json()
    assert (m["type"], m["text"], m["seq"]) == ("message", "while you were away", 1), m
    assert b.recv_json()["type"] == "partner_back"
    a2.send_json({"type": "message", "text": "back", "id": 1})
    assert b.recv_json()["text"] == "back"
    b.send_json({"type": "message", "text": "welcome", "id": 2})
    m = a2.recv_json()
    assert (m["text"], m["seq"]) == ("welcome", 2), m


def test_a_token_of_nowhere_fails_cleanly(cluster_factory):
    c = cluster_factory(2)
    a, pa, b, pb = paired_v2(c.nodes[0], c.nodes[1])
    bad = pa["token"][:-4] + ("AAAA" if not pa["token"].endswith("AAAA") else "BBBB")
    x = RawWS(c.nodes[0].port, headers=V2)
    x.send_json({"type": "resume", "token": bad, "seq": 0})
    assert x.recv_json()["code"] == "resume_failed"
    # It is idle, as after stop: start queues it.
    x.send_json({"type": "start"})
    assert x.recv_json()["type"] == "waiting"


class Careful:
    """A version 2 client that sends one numbered message at a time (then `ping`: its `pong` says the message
    was handled), checks that what it receives goes 1, 2, 3 ... with `seq` doing the same, and after a lost
    connection resumes on any live node, sending again what `resumed.id` says was not accepted."""

    def __init__(self, name, pick_node):
        self.name, self.pick_node = name, pick_node
        self.ws = self.token = None
        self.seq = 0          # last seq received
        self.got = 0          # last counter received from the partner
        self.sent = 0         # last counter sent and accepted
        self.inflight = None  # counter sent, pong not yet seen
        self.refused = False
        self.errors = []
        self.resumes = 0

    def handle(self, m):
        t = m["type"]
        if t == "paired":
            self.token = m["token"]
        elif t == "resumed":
            self.token = m["token"]
            self.resumes += 1
            if self.inflight is not None and m["id"] >= self.inflight:
                self.sent, self.inflight = self.inflight, None
            elif self.inflight is not None:
                self.inflight = None   # not accepted: sent again
        elif t == "message":
            if m["seq"] != self.seq + 1:
                self.errors.append(f"{self.name}: seq {m['seq']} after {self.seq}")
            self.seq = m["seq"]
            k = int(m["text"].split("|")[1])
            if k != self.got + 1:
                self.errors.append(f"{self.name}: message {k} after {self.got}")
            self.got = k
            if self.seq % 8 == 0:
                self.ws.send_json({"type": "ack", "seq": self.seq})
        elif t == "pong":
            if self.inflight is not None:
                if not self.refused:
                    self.sent = self.inflight
                self.inflight, self.refused = None, False
        elif t == "error":
            if m["code"] in ("partner_away", "rate_limited"):
                self.refused = True
            else:
                self.errors.append(f"{self.name}: error {m}")
        elif t == "partner_left":
            self.errors.append(f"{self.name}: partner_left")

    def reconnect(self):
        for _ in range(50):
            try:
                self.ws = RawWS(self.pick_node().port, headers=V2)
                self.ws.send_json({"type": "resume", "token": self.token, "seq": self.seq})
                return
            except OSError:
                time.sleep(0.1)
        self.errors.append(f"{self.name}: could not reconnect")

    def step(self, send):
        try:
            while True:
                try:
                    m = self.ws.recv_json(timeout=0.003)
                except TimeoutError:
                    break
                except OSError as e:
                    if "timed out" in str(e):
                        break
                    raise
                self.handle(m)
                if m["type"] == "error" and m["code"] == "resume_failed":
                    self.errors.append(f"{self.name}: resume_failed")
            if send and self.inflight is None and self.token:
                k = self.sent + 1
                self.ws.send_json({"type": "message", "text": f"{self.name}|{k}", "id": k})
                self.ws.send_json({"type": "ping"})
                self.inflight = k
        except (Closed, EOFError, ConnectionError, OSError):
            self.ws.close()
            self.reconnect()


def test_rolling_restart_of_every_node_loses_no_chat(cluster_factory):
    import threading
    c = cluster_factory(3, extra=V2_FAST)
    live = list(c.nodes)
    lock = threading.Lock()

    def pick():
        with lock:
            return random.choice(live)

    pairs = []
    for i in range(6):
        a = Careful(f"a{i}", pick)
        b = Careful(f"b{i}", pick)
        a.ws = RawWS(c.nodes[i % 3].port, headers=V2)
        a.ws.send_json({"type": "start"})
        assert a.ws.recv_json()["type"] == "waiting"
        b.ws = RawWS(c.nodes[(i + 1) % 3].port, headers=V2)
        b.ws.send_json({"type": "start"})
        b.handle(b.ws.recv_json())
        a.handle(a.ws.recv_json())
        assert a.token and b.token
        pairs.append((a, b))
    clients = [x for p in pairs for x in p]
    done = threading.Event()

    problems = []

    def restart_all():
        try:
            for i in range(3):
                time.sleep(1.0)
                old = c.nodes[i]
                with lock:
                    live.remove(old)
                rc = old.stop()
                if rc != 0:
                    problems.append(f"node{i} exited with {rc}")
                new = c.start_node(f"node{i}", V2_FAST, port=old.port)
                c.nodes[i] = new
                c.wait_joined([new])
                with lock:
                    live.append(new)
            time.sleep(1.0)
        except Exception as e:   # the test fails below, it never hangs
            problems.append(repr(e))
        finally:
            done.set()

    t = threading.Thread(target=restart_all, daemon=True)
    t.start()
    give_up = time.time() + 90
    while not done.is_set() and time.time() < give_up:
        for x in clients:
            x.step(send=True)
    t.join(5)
    assert not problems, problems
    assert done.is_set(), "the restarts did not finish"
    # Everything accepted arrives: each side has every message its partner sent.
    deadline = time.time() + 10
    while time.time() < deadline and any(a.got != b.sent or b.got != a.sent for a, b in pairs):
        for x in clients:
            x.step(send=False)
    errors = [e for x in clients for e in x.errors]
    assert not errors, errors[:10]
    for a, b in pairs:
        assert a.got == b.sent and b.got == a.sent, (a.name, a.got, b.sent, b.got, a.sent)
    assert sum(x.sent for x in clients) > 100
    assert sum(x.resumes for x in clients) >= 6   # every client's node restarted at least once


def test_images_cross_nodes_with_consent_and_cleaning(cluster_factory):
    """The stub's side (a, whose chat lives on b's node) offers and sends; the home's side does the same back."""
    import struct
    from test_v2_images import SENTINEL, gps_jpeg
    c = cluster_factory(2)
    a = RawWS(c.nodes[0].port, headers=V2)
    a.send_json({"type": "start", "images": True})
    assert a.recv_json()["type"] == "waiting"
    b = RawWS(c.nodes[1].port, headers=V2)
    b.send_json({"type": "start", "images": True})
    pb, pa = b.recv_json(), a.recv_json()
    assert pa["partner"]["images"] is True and pb["partner"]["images"] is True, (pa, pb)
    data = gps_jpeg(trailing=b"TRAILING")
    for sender, receiver, offer_id in ((a, b, 7), (b, a, 8)):
        event = {"type": "image_offer", "id": offer_id, "mime": "image/jpeg", "bytes": len(data)}
        sender.send_json(event)
        assert receiver.recv_json() == event
        receiver.send_json({"type": "image_accept", "id": offer_id})
        assert sender.recv_json() == {"type": "image_accept", "id": offer_id}
        sender.send_frame(2, struct.pack(">I", offer_id) + data)
        op, got = receiver.recv_message()
        assert op == 2 and got[:4] == struct.pack(">I", offer_id), (op, got[:8])
        assert 0 < len(got) - 4 < len(data) and SENTINEL not in got
    a.send_json({"type": "message", "text": "after the images", "id": 1})
    assert b.recv_json()["text"] == "after the images"


def test_a_node_that_drains_while_redis_is_down_says_1001(cluster_factory, redis):
    """1012 promises that another node can take the resume (B.2): a node serving alone cannot keep that promise."""
    c = cluster_factory(2)
    redis.stop()
    deadline = time.time() + 8
    while time.time() < deadline and http_exchange(c.nodes[0].port, get("/healthz")).body != b"degraded":
        time.sleep(0.1)
    a = RawWS(c.nodes[0].port, headers=V2)
    a.send_json({"type": "start"})
    assert a.recv_json()["type"] == "waiting"
    b = RawWS(c.nodes[0].port, headers=V2)
    b.send_json({"type": "start"})
    assert b.recv_json()["type"] == "paired"
    c.nodes[0].proc.send_signal(signal.SIGTERM)
    assert a.close_code() == 1001 and b.close_code() == 1001
    assert c.nodes[0].proc.wait(15) == 0
    c.nodes[0].proc = None
