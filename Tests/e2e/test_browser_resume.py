"""The page's side of PROTOCOL.md B.2 (resume) in real headless Chromium against a real uvchatd: a chat survives a
lost network, a reload after a drop, and a duplicated tab; a resume that fails ends in a clear idle state.

How the network is cut. Chromium's DevTools offline emulation (`Network.emulateNetworkConditions` with
offline=true) does not touch a WebSocket that is already open: checked with Chromium 156, where frames still flow
both ways after it (only new connections fail, and `navigator.onLine` with the `offline`/`online` events change).
So each browser that loses its network reaches uvchatd through `Link`, a TCP relay on a port of its own, which can:
- `blackhole()`: stop moving bytes on every connection it carries, closing nothing (a Wi-Fi that went away: no
  FIN, no RST). uvchatd notices by its paired pings (`--paired-ping-interval 1`: away within about 2 s); the page
  notices when a ping of its own goes unanswered. New connections are refused (reset) while it lasts.
- `reset()`: abort every connection with a TCP RST (a NAT or a router that forgot the connection), and refuse new
  ones until `restore()`.
- `restore()`: the network is back: connections held by a blackhole are reset (their far ends have long forgotten
  them, as a real peer answers a stale segment with RST), and new connections go through again. With
  `keep_dead=True` the held connections stay as they are, silent, while new ones go through (the way back works,
  but nothing has told the old connection yet).
The DevTools offline switch is flipped together with the relay, so that the page also sees what a browser sees
(`offline`, then `online`, and connects that fail at once while offline).
"""
import json
import re
import select
import socket
import struct
import threading
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browser_helpers import (SOCKET_SPY, browsers, el, is_paired, log_text, say, start, state,  # noqa: F401
                             status, wait)

STORE = "uvchat.chat"
FAST = ("--paired-ping-interval", "1", "--resume-grace", "10")


class Link:
    """A TCP relay between one browser and uvchatd that can lose the network (see the module's docstring)."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.mode = "up"          # up | blackhole | refuse
        self.pairs = {}           # socket -> its other end
        self.open_reads = set()   # sockets whose reading side is still open
        self.frozen = set()       # sockets a blackhole holds: never read again, closed only by restore or close
        self.browser_side = set() # browser-side sockets that have not sent anything yet
        self.websockets = set()   # browser-side sockets whose connection was upgraded (asked for `Upgrade: websocket`)
        self.commands = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def http(self):
        return f"http://127.0.0.1:{self.port}"

    def _do(self, name):
        done = threading.Event()
        with self.lock:
            self.commands.append((name, done))
        assert done.wait(5), f"relay did not {name}"

    def blackhole(self, websockets_only=False):
        """websockets_only: the page's keep-alive HTTP connection goes on working (else a reload would send its
        request down a dead connection and wait for it as long as a browser does)."""
        self._do("blackhole-ws" if websockets_only else "blackhole")

    def reset(self):
        self._do("reset")

    def restore(self, keep_dead=False):
        self._do("reopen" if keep_dead else "restore")


    def close(self):
        self._do("close")
        self.thread.join(5)

    @staticmethod
    def _abort(s):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # close sends RST
        except OSError:
            pass
        s.close()

    def _drop_all(self):
        for s in list(self.pairs):
            self._abort(s)
        self.pairs.clear()
        self.open_reads.clear()
        self.frozen.clear()
        self.websockets.clear()

    def _run(self):
        while self.running:
            with self.lock:
                commands, self.commands = self.commands, []
            for name, done in commands:
                if name == "blackhole":
                    self.mode = "blackhole"
                    self.frozen |= set(self.pairs)
                    self.open_reads.clear()
                elif name == "blackhole-ws":
                    held = {x for ws in self.websockets if ws in self.pairs for x in (ws, self.pairs[ws])}
                    self.frozen |= held
                    self.open_reads -= held
                elif name == "reset":
                    self._drop_all()
                    self.mode = "refuse"
                elif name == "restore":
                    for x in self.frozen:
                        self.pairs.pop(x, None)
                        self._abort(x)
                    self.frozen.clear()
                    self.mode = "up"
                elif name == "reopen":
                    self.mode = "up"
                elif name == "close":
                    self._drop_all()
                    self.listener.close()
                    self.running = False
                done.set()
            if not self.running:
                return
            readable = [self.listener] + list(self.open_reads)
            ready, _, _ = select.select(readable, [], [], 0.02)
            for s in ready:
                if s is self.listener:
                    self._accept()
                elif s in self.open_reads:
                    self._pump(s)

    def _accept(self):
        conn, _ = self.listener.accept()
        if self.mode != "up":
            self._abort(conn)
            return
        up = socket.create_connection(("127.0.0.1", self.upstream))
        for s in (conn, up):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pairs[conn], self.pairs[up] = up, conn
        self.open_reads.update((conn, up))
        self.browser_side.add(conn)

    def _pump(self, s):
        peer = self.pairs[s]
        try:
            data = s.recv(65536)
        except OSError:
            data = None
        if data and s in self.browser_side:   # the first bytes from the browser: a request head
            self.browser_side.discard(s)
            if b"upgrade: websocket" in data.lower():
                self.websockets.add(s)
        if data:
            try:
                peer.sendall(data)
                return
            except OSError:
                data = None
        if data is None:    # an error: the other end is aborted too
            for x in (s, peer):
                self.open_reads.discard(x)
                self.pairs.pop(x, None)
                self._abort(x)
            return
        # A FIN: pass it on, keep the other direction, close both once both directions are done.
        self.open_reads.discard(s)
        try:
            peer.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if peer not in self.open_reads:
            for x in (s, peer):
                self.pairs.pop(x, None)
                x.close()


def offline(d, on):
    d.execute_cdp_cmd("Network.enable", {})
    d.execute_cdp_cmd("Network.emulateNetworkConditions",
                      {"offline": on, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})


def lose_network(d, link):
    link.blackhole()
    offline(d, True)


def network_back(d, link):
    link.restore()
    offline(d, False)


def said(d):
    """The chat lines in the log, in order, without the notes: [("You", text), ("Stranger", text), ...]."""
    rows = d.execute_script(
        "return [...document.querySelectorAll('#log li.you, #log li.them')].map(li => li.textContent)")
    out = []
    for row in rows:
        who, _, body = row.partition(": ")
        out.append((who, body))
    return out


def mine(d):
    return [b for w, b in said(d) if w == "You"]


def theirs(d):
    return [b for w, b in said(d) if w == "Stranger"]


def stored(d):
    raw = d.execute_script(f"return sessionStorage.getItem('{STORE}')")
    return json.loads(raw) if raw else None


def pair_through(browsers, link, server):
    """a reaches the server through `link`, b directly; a waits first, so they are paired with each other."""
    a, b = browsers(), browsers()
    start(a, link)
    wait(a, lambda d: "Looking" in status(d), what="a waiting")
    start(b, server)
    for d in (a, b):
        wait(d, is_paired, what="paired")
    return a, b


def exchange(a, b, mine_, theirs_):
    say(a, mine_)
    wait(b, lambda d: mine_ in theirs(d), what=f"b got {mine_!r}")
    say(b, theirs_)
    wait(a, lambda d: theirs_ in theirs(d), what=f"a got {theirs_!r}")


def test_chat_survives_a_lost_network_with_nothing_missing_or_twice(browsers, server_factory):
    server = server_factory(*FAST)
    link = Link(server.port)
    try:
        a, b = pair_through(browsers, link, server)
        exchange(a, b, "a1", "b1")
        lose_network(a, link)
        # uvchatd notices the silence (paired pings every 1 s) and holds the chat; b is told, with the grace.
        wait(b, lambda d: "Stranger's connection dropped; waiting up to" in status(d), timeout=6, what="b told")
        assert re.fullmatch(r"Stranger's connection dropped; waiting up to (9|10) s\.", status(b)), status(b)
        for t in ("b2", "b3", "b4"):   # kept for a by the server
            say(b, t)
        # a types while cut off: shown at once, kept; its own probe (a ping no one answers) tells it the
        # connection is gone, and it says so.
        say(a, "a2")
        say(a, "a3")
        assert mine(a) == ["a1", "a2", "a3"]
        wait(a, lambda d: status(d) == "Connection lost, reconnecting…", timeout=6, what="a noticed the loss")
        assert el(a, "text").get_attribute("value") == ""
        el(a, "text").send_keys("half typed")    # unsent text stays in the box through the resume
        time.sleep(1)                            # a few failed reconnects while offline
        network_back(a, link)
        wait(a, lambda d: theirs(d) == ["b1", "b2", "b3", "b4"], timeout=8, what="a got what b said meanwhile")
        wait(b, lambda d: theirs(d) == ["a1", "a2", "a3"], timeout=5, what="b got what a typed offline")
        wait(b, lambda d: "Stranger is back." in log_text(d), what="b told a is back")
        assert is_paired(a) and status(a) == "You're now chatting with a random stranger."
        assert el(a, "text").get_attribute("value") == "half typed"
        el(a, "text").clear()
        # Live traffic goes on in the same chat, both ways.
        exchange(a, b, "a4", "b5")
        time.sleep(0.5)   # anything doubled would have arrived by now
        assert said(a) == [("You", "a1"), ("Stranger", "b1"), ("You", "a2"), ("You", "a3"),
                           ("Stranger", "b2"), ("Stranger", "b3"), ("Stranger", "b4"),
                           ("You", "a4"), ("Stranger", "b5")], said(a)
        assert mine(b) == ["b1", "b2", "b3", "b4", "b5"] and theirs(b) == ["a1", "a2", "a3", "a4"], said(b)
        assert "not sent" not in log_text(a) and "not delivered" not in log_text(b)
        assert "Stranger has disconnected." not in log_text(b)
        # The tab keeps what it needs to resume again: the new token (each resume gives one), the last seq.
        kept = stored(a)
        assert kept["chat"]["lastSeq"] == 5 and kept["chat"]["nextId"] == 5
    finally:
        link.close()


def test_partner_sees_the_drop_then_the_return(browsers, server_factory):
    # This time the connection is reset (RST) rather than silent: uvchatd knows at once, the page too (close 1006).
    server = server_factory(*FAST)
    link = Link(server.port)
    try:
        a, b = pair_through(browsers, link, server)
        exchange(a, b, "hello", "hi")
        link.reset()
        wait(b, lambda d: status(d) == "Stranger's connection dropped; waiting up to 10 s.", timeout=3,
             what="b sees the drop with the grace from partner_away")
        assert "Stranger's connection dropped; waiting up to 10 s for them to come back." in log_text(b)
        assert is_paired(b) and el(b, "next").text == "Stop"   # still in the chat, waiting
        wait(b, lambda d: re.fullmatch(r"\d+ s left", el(d, "countdown").text) and el(d, "countdown").is_displayed(),
             what="a countdown of the grace")
        wait(a, lambda d: status(d) == "Connection lost, reconnecting…", timeout=3, what="a sees its loss")
        assert state(a) == "resuming"
        time.sleep(1.5)
        link.restore()
        wait(b, lambda d: "Stranger is back." in log_text(d), timeout=8, what="b sees a back")
        assert status(b) == "You're now chatting with a random stranger."
        assert not el(b, "countdown").is_displayed()
        wait(a, is_paired, what="a back in the chat")
        assert "Reconnected. The chat goes on." in log_text(a)
        exchange(a, b, "still there?", "yes")
        assert "Stranger has disconnected." not in log_text(b)
    finally:
        link.close()


def test_reload_after_a_drop_resumes_the_same_chat(browsers, server_factory):
    server = server_factory(*FAST)
    link = Link(server.port)
    try:
        a, b = pair_through(browsers, link, server)
        exchange(a, b, "before", "reply")
        # The old connection dies silently; the person, seeing nothing happen, reloads the tab once the network
        # works again. The reload's close frame goes down the dead connection (lost), the new page comes from
        # a new one, finds the chat in sessionStorage and resumes it.
        link.blackhole(websockets_only=True)
        say(a, "lost in the dead socket")
        wait(b, lambda d: "connection dropped" in status(d), timeout=6, what="b sees the drop")
        say(b, "while you were gone")
        assert any(u["text"] == "lost in the dead socket" for u in stored(a)["chat"]["unconfirmed"])
        link.restore(keep_dead=True)
        a.refresh()
        wait(a, is_paired, timeout=8, what="the reloaded tab is back in the chat")
        wait(a, lambda d: theirs(d) == ["reply", "while you were gone"], what="replayed after the reload")
        wait(b, lambda d: theirs(d) == ["before", "lost in the dead socket"], what="re-sent after the reload")
        wait(b, lambda d: "Stranger is back." in log_text(d), what="b sees a back")
        # The earlier transcript came back with the page, once.
        assert mine(a) == ["before", "lost in the dead socket"], said(a)
        assert not a.find_element(By.ID, "chat").get_attribute("hidden")
        exchange(a, b, "after reload", "welcome back")
        assert theirs(b) == ["before", "lost in the dead socket", "after reload"]
        assert theirs(a) == ["reply", "while you were gone", "welcome back"]
    finally:
        link.close()


def test_plain_reload_while_paired(browsers, server_factory):
    """Chromium sends close 1001 ("going away") when a page with an open WebSocket is reloaded (checked with
    Chromium 156). PROTOCOL.md B.2 makes every close frame a leave, so the chat ends there and the reloaded tab's
    resume fails; the page says so and keeps the transcript. (A reload would resume only if the server took a
    client's 1001 for a drop, which would also make a closed tab look away for the whole grace period.)"""
    server = server_factory(*FAST)
    a, b = browsers(), browsers()
    start(a, server)
    wait(a, lambda d: "Looking" in status(d))
    start(b, server)
    for d in (a, b):
        wait(d, is_paired)
    exchange(a, b, "one", "two")
    a.refresh()
    wait(b, lambda d: status(d) == "Stranger has disconnected.", timeout=5, what="the reload was a leave")
    wait(a, lambda d: status(d) == "The chat ended while you were away.", what="the reloaded tab says so")
    assert said(a) == [("You", "one"), ("Stranger", "two")]   # the transcript survived the reload
    assert el(a, "next").text == "New" and stored(a) is None


def test_failed_resume_ends_in_a_clear_idle_state_with_a_working_new(browsers, server_factory):
    server = server_factory(*FAST)
    link = Link(server.port)
    try:
        a, b = pair_through(browsers, link, server)
        exchange(a, b, "hi", "hello")
        lose_network(a, link)
        wait(b, lambda d: "connection dropped" in status(d), timeout=6, what="b sees the drop")
        body = b.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.ESCAPE, Keys.ESCAPE)   # b leaves while a is away: the chat is over
        wait(b, lambda d: "You have disconnected." in log_text(d))
        say(a, "into the dead socket")              # a does not know yet; its unanswered probe tells it
        wait(a, lambda d: state(d) == "resuming", timeout=6, what="a noticed its loss")
        say(a, "typed while offline")
        network_back(a, link)
        wait(a, lambda d: status(d) == "The chat ended while you were away.", timeout=8, what="resume_failed shown")
        assert "The chat ended while you were away." in log_text(a)
        assert stored(a) is None   # the dead token is gone
        assert el(a, "next").text == "New" and el(a, "change").is_displayed()
        # What never reached any socket is marked; what went into the dead one might have arrived, so it is not.
        assert "typed while offline (not sent)" in log_text(a)
        assert "into the dead socket (not sent)" not in log_text(a)
        assert "typed while offline" not in log_text(b) and "into the dead socket" not in log_text(b)
        # New works: a meets a newcomer on the socket it has.
        el(a, "next").click()
        wait(a, lambda d: "Looking" in status(d), what="a looks again")
        c = browsers()
        start(c, server)
        for d in (a, c):
            wait(d, is_paired, what="a meets c")
        assert "hi" not in mine(a) and said(a) == []
        exchange(a, c, "new chat", "yes")
        assert stored(a)["chat"]["token"]
    finally:
        link.close()


def test_online_event_probes_a_socket_that_looks_open(browsers, server_factory):
    # The connection dies while nobody says anything: the page has no reason to notice until the browser says
    # it is online again; then a ping that nothing answers makes it reconnect and resume.
    server = server_factory("--paired-ping-interval", "1", "--resume-grace", "15")
    link = Link(server.port)
    try:
        a, b = pair_through(browsers, link, server)
        a.execute_script("window.__frames = 0; const R = WebSocket.prototype.send;"
                         "WebSocket.prototype.send = function (d) { if (String(d).includes('\"ping\"')) __frames++;"
                         " return R.call(this, d); }")
        exchange(a, b, "quiet now", "ok")
        time.sleep(0.3)
        lose_network(a, link)
        wait(b, lambda d: "connection dropped" in status(d), timeout=6, what="b sees the drop")
        say(b, "are you there?")
        time.sleep(0.5)
        assert is_paired(a)   # a has not noticed: nothing told it
        link.restore(keep_dead=True)   # new connections work again, the old one stays dead
        offline(a, False)              # and the browser says it is online
        wait(a, lambda d: "are you there?" in theirs(d), timeout=8, what="probe, reconnect, resume")
        assert a.execute_script("return window.__frames") >= 1   # it asked with a ping first
        exchange(a, b, "yes, back", "good")
        assert theirs(a) == ["ok", "are you there?", "good"]
    finally:
        link.close()


def test_a_duplicated_tab_takes_the_chat_and_the_old_tab_stops(browsers, server):
    a, b = browsers(), browsers()
    a.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": SOCKET_SPY})
    start(a, server)
    wait(a, lambda d: "Looking" in status(d))
    start(b, server)
    for d in (a, b):
        wait(d, is_paired)
    exchange(a, b, "from the first tab", "seen")
    time.sleep(0.7)   # a acks what it saw
    # A duplicated tab starts with a copy of the first tab's sessionStorage.
    copy = a.execute_script(f"return sessionStorage.getItem('{STORE}')")
    d = browsers()
    d.get(server.http + "/")
    d.execute_script(f"sessionStorage.setItem('{STORE}', arguments[0])", copy)
    d.refresh()
    wait(d, is_paired, what="the copy resumed the chat")
    wait(a, lambda x: status(x) == "This chat continued in another tab.", what="the first tab was closed with 4001")
    assert mine(d) == ["from the first tab"] and theirs(d) == ["seen"]
    exchange(d, b, "from the second tab", "hello again")
    assert "Stranger: hello again" not in log_text(a)
    made = len(a.execute_script("return window.__ws")["made"])
    time.sleep(2)   # the first tab does not come back on its own
    assert len(a.execute_script("return window.__ws")["made"]) == made == 1
    assert el(a, "next").text == "New" and stored(a) is None
    assert "Stranger's connection dropped" not in log_text(b)   # the partner saw nothing of the switch


def test_messages_beyond_what_the_server_keeps_are_shown_as_not_delivered(browsers, server_factory):
    server = server_factory(*FAST, "--rate-per-second", "200", "--rate-burst", "200")
    link = Link(server.port)
    try:
        a, b = pair_through(browsers, link, server)
        link.reset()
        wait(b, lambda d: "connection dropped" in status(d), timeout=3, what="b sees the drop")
        # The server keeps 64 messages for an absent partner (a had nothing unacknowledged before the drop).
        b.execute_script("const t = document.getElementById('text'), f = document.getElementById('composer');"
                         "for (let i = 1; i <= 64; i++) { t.value = 'kept ' + i; f.requestSubmit(); }")
        time.sleep(1)
        say(b, "one too many")
        wait(b, lambda d: "Not delivered:" in log_text(d), what="the refusal shown")
        assert "one too many (not delivered)" in log_text(b)
        assert el(b, "text").get_attribute("value") == "one too many"
        link.restore()
        wait(a, lambda d: len(theirs(d)) == 64, timeout=10, what="a gets the 64 kept messages")
        time.sleep(0.5)
        assert theirs(a) == [f"kept {i}" for i in range(1, 65)]
    finally:
        link.close()


# Records every frame the page sends (after the page has loaded: the patch is on the prototype its socket uses).
FRAME_SPY = ("window.__sent = []; const R = WebSocket.prototype.send;"
             "WebSocket.prototype.send = function (d) { __sent.push([performance.now(), JSON.parse(d)]); return R.call(this, d); }")


def sent(d, kind):
    return [(t, f) for t, f in d.execute_script("return window.__sent") if f["type"] == kind]


def test_messages_are_numbered_per_chat_and_acknowledged(browsers, server_factory):
    server = server_factory("--rate-per-second", "100", "--rate-burst", "100")
    a, b = browsers(), browsers()
    start(a, server)
    wait(a, lambda d: "Looking" in status(d))
    start(b, server)
    for d in (a, b):
        wait(d, is_paired)
        d.execute_script(FRAME_SPY)
    assert stored(a)["chat"]["token"] and stored(a)["chat"]["lastSeq"] == 0
    # 20 at once: an ack at the 16th at the latest, and one for all 20 within a second.
    b.execute_script("const t = document.getElementById('text'), f = document.getElementById('composer');"
                     "for (let i = 1; i <= 20; i++) { t.value = 'm' + i; f.requestSubmit(); }")
    wait(a, lambda d: len(theirs(d)) == 20, what="a got the burst")
    shown_at = time.time()
    wait(a, lambda d: any(f["seq"] == 20 for _, f in sent(d, "ack")), timeout=2, what="everything acknowledged")
    assert time.time() - shown_at < 1.2
    acks = [f["seq"] for _, f in sent(a, "ack")]
    assert acks == sorted(acks) and acks[0] <= 16, acks
    assert stored(a)["chat"]["lastSeq"] == 20
    ids = [f["id"] for _, f in sent(b, "message")]
    assert ids == list(range(1, 21)), ids
    assert [f["text"] for _, f in sent(b, "message")] == [f"m{i}" for i in range(1, 21)]
    # b's messages were settled by the pong of a ping sent after them: nothing is left to send again.
    wait(b, lambda d: stored(d)["chat"]["unconfirmed"] == [], timeout=4, what="b's messages settled")
    # A new chat numbers from 1 again.
    a.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE, Keys.ESCAPE)
    wait(b, lambda d: status(d) == "Stranger has disconnected.")
    el(b, "next").click()
    c = browsers()
    start(c, server)
    for d in (b, c):
        wait(d, is_paired, what="b meets c")
    say(b, "first of the new chat")
    wait(c, lambda d: theirs(d) == ["first of the new chat"])
    assert sent(b, "message")[-1][1]["id"] == 1
    assert [f for _, f in sent(b, "start")] == [{"type": "start", "interests": [], "images": False}]
