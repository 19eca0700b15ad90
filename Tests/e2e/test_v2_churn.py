"""PROTOCOL.md part B.2 under churn: 200 version 2 clients (100 chats) talk for CHURN_SECONDS while they drop
(RST, FIN without a close frame, or a second connection that takes the chat over) and resume, and no message is
lost, duplicated, reordered or misrouted.

Each client is a careful version 2 client:
- every text is "<sender>|<counter>|<padding>", the counter growing by one per message of that sender; a
  final "<sender>|<counter>|FIN" says how many came before it;
- it sends one message at a time followed by `ping`: the `pong` says the server has handled the message, and an
  `error` `partner_away` before it says the message was refused (the partner is away and its ring is full), as
  does `rate_limited` (the partner is connected and has not acknowledged a full ring);
  a refused message is sent again later, with the same counter and a new `id`;
- after a drop it resumes with the last `seq` it handled; `resumed.id` says whether the message in flight was
  accepted (then it is not sent again);
- it acknowledges every 8 messages or after half a second.
Each receiver checks that `seq` goes 1, 2, 3 ... without a gap across resumes, that every message comes from
its one partner, and that the counters go 1, 2, 3 ...; at the end, every FIN must have arrived, and the partners
must name each other.
"""
import asyncio
import random
import time

from v2_helpers import V2, check_token
from wsclient import Chat, Closed, close_all, run, start as start_server

CLIENTS = 200
CHURN_SECONDS = 18
GRACE = 15  # a long drop lasts up to LONG_AWAY; both partners may be away one after the other
LONG_AWAY = 6.0
FINISH_SECONDS = 10  # after the churn: everyone back, everything delivered


class Stats:
    def __init__(self):
        self.violations = []
        self.sent = 0
        self.received = 0
        self.refused = 0
        self.drops = {"rst": 0, "fin": 0, "takeover": 0}
        self.resumes = 0
        self.replayed_ids = 0  # resumes where the message in flight had been accepted
        self.resent_after_resume = 0
        self.partner_away = 0
        self.hold_timeouts = 0

    def bad(self, what):
        if len(self.violations) < 50:
            self.violations.append(what)


class Agent:
    def __init__(self, idx, srv, rng, stats, registry):
        self.name = f"c{idx:03d}"
        self.registry = registry  # name -> Agent, to see when a partner has met the bound
        self.last_refused = 0.0
        self.srv = srv
        self.rng = rng
        self.stats = stats
        self.chat = None
        self.token = None
        self.partner = None
        self.burster = rng.random() < 0.5  # sends as fast as it can while its partner is away
        # receiving
        self.last_seq = 0
        self.acked = 0
        self.last_ack = time.monotonic()
        self.expected = 1
        self.partner_fin = None
        # sending
        self.next_counter = 1  # the lowest counter not yet accepted
        self.last_id = 0
        self.confirmed_id = 0  # id of the last message known to be accepted
        self.inflight = None  # (id, counter, is_fin)
        self.inflight_refused = False
        self.next_send = 0.0
        self.partner_away = False
        self.fin_accepted = False
        self.takeover_checks = []
        self.hold = False  # see may_send
        self.hold_deadline = 0.0

    # -- connection -------------------------------------------------------

    async def connect(self):
        c = await Chat.open(self.srv, name=self.name, subprotocols=[V2])
        if c.subprotocol != V2:
            raise AssertionError(f"{self.name}: subprotocol {c.subprotocol!r}")
        first = await c.recv(keep_online=True)
        assert first["type"] == "online", first
        return c

    async def setup(self):
        self.chat = await self.connect()
        await self.chat.send({"type": "start"})
        while True:
            m = await self.chat.recv(20)
            if m["type"] == "waiting":
                continue
            assert m["type"] == "paired", f"{self.name}: {m}"
            self.token = check_token(m["token"])
            assert m["grace"] == GRACE, m
            return

    async def resume(self):
        c = await self.connect()
        await c.send({"type": "resume", "token": self.token, "seq": self.last_seq})
        r = await c.recv(10)
        if r["type"] != "resumed":
            raise AssertionError(f"{self.name}: resume with seq {self.last_seq} got {r}")
        if r["token"] == self.token:
            self.stats.bad(f"{self.name}: resumed with the same token")
        self.token = r["token"]
        k = r["id"]
        if self.inflight is not None:
            fid, counter, is_fin = self.inflight
            if k == fid:
                if self.inflight_refused:
                    self.stats.bad(f"{self.name}: message id {fid} refused with partner_away, yet resumed.id = {k}")
                self._accepted(fid, is_fin)
                self.stats.replayed_ids += 1
            elif k == self.confirmed_id:
                self.stats.resent_after_resume += 1  # not accepted: sent again with the same counter
            else:
                self.stats.bad(f"{self.name}: resumed.id {k}, expected {self.confirmed_id} or {fid}")
            self.inflight = None
            self.inflight_refused = False
        elif k != self.confirmed_id:
            self.stats.bad(f"{self.name}: resumed.id {k} != last accepted id {self.confirmed_id}")
        self.partner_away = False  # a partner_away follows the resumed when the partner is still away
        self.chat = c
        self.stats.resumes += 1
        self.start_hold()

    async def drop(self, how, away_for):
        self.stats.drops[how] += 1
        old = self.chat
        if how == "takeover":
            # The old connection stays open; the server must close it with 4001.
            await self.resume()

            async def check_old():
                try:
                    code = await old.closed(5)
                except AssertionError as e:
                    self.stats.bad(f"{self.name}: old connection after a takeover: {e}")
                    return
                if code != 4001:
                    self.stats.bad(f"{self.name}: old connection closed with {code}, not 4001")
            self.takeover_checks.append(asyncio.create_task(check_old()))
        else:
            await old.drop(how)
            t0 = time.monotonic()
            if away_for is None:
                # A long absence: until a bursting partner has met the bound (or LONG_AWAY), so that the
                # refusal and re-send path is exercised however slow this machine is.
                p = self.registry.get(self.partner)
                limit = t0 + (LONG_AWAY if p is not None and p.burster else self.rng.uniform(1.0, 3.0))
                while time.monotonic() < limit and not (p is not None and p.burster and p.last_refused > t0):
                    await asyncio.sleep(0.05)
                await asyncio.sleep(self.rng.uniform(0, 0.3))
            else:
                await asyncio.sleep(away_for)
            await self.resume()

    # -- sending ----------------------------------------------------------

    def start_hold(self):
        self.hold = True
        self.hold_deadline = time.monotonic() + 5

    def may_send(self):
        """After a resume (ours or the partner's), wait until the partner has read every message of ours that
        was accepted, unless it is away. The ring toward a connected partner forgets its oldest message when it
        is full, read or not (test_v2_resume.py, ..._though_the_client_kept_to_the_ack_rules); right after a
        replay of a full ring that would lose messages here. This pacing keeps the churn test about the rest."""
        if not self.hold:
            return True
        p = self.registry.get(self.partner)
        if self.partner_away or p is None or p.expected >= self.next_counter:
            self.hold = False
        elif time.monotonic() > self.hold_deadline:
            self.hold = False
            self.stats.hold_timeouts += 1
        return not self.hold

    def _accepted(self, fid, is_fin):
        self.confirmed_id = fid
        self.next_counter += 1
        self.stats.sent += 1
        if is_fin:
            self.fin_accepted = True

    async def send_next(self, final):
        counter = self.next_counter
        is_fin = final
        if is_fin:
            pad = "FIN"
        elif self.burster and self.partner_away:
            # Large and small texts: the 64 KiB bound is met after a few (the server runs with
            # --max-text-scalars 15000), the 64-message bound counts the small ones too.
            pad = "y" * (self.rng.randrange(6000, 14900) if self.rng.random() < 0.5 else self.rng.randrange(1, 50))
        else:
            pad = "x" * self.rng.randrange(0, 120)
        text = f"{self.name}|{counter}|" + pad
        self.last_id += self.rng.choice((1, 1, 1, 2, 7))  # ids grow, not always by one
        self.inflight = (self.last_id, counter, is_fin)
        self.inflight_refused = False
        await self.chat.send({"type": "message", "text": text, "id": self.last_id})
        await self.chat.send({"type": "ping"})

    # -- receiving --------------------------------------------------------

    async def handle(self, m):
        t = m["type"]
        now = time.monotonic()
        if t == "message":
            seq = m.get("seq")
            if seq != self.last_seq + 1:
                self.stats.bad(f"{self.name}: seq {seq} after {self.last_seq}: {m['text'][:40]}")
            self.last_seq = seq if isinstance(seq, int) else self.last_seq + 1
            try:
                sender, counter, rest = m["text"].split("|", 2)
                counter = int(counter)
            except ValueError:
                self.stats.bad(f"{self.name}: foreign text {m['text'][:60]!r}")
                return
            if self.partner is None:
                self.partner = sender
            elif sender != self.partner:
                self.stats.bad(f"{self.name}: message from {sender}, partner is {self.partner} (misrouted)")
                return
            if counter != self.expected:
                kind = "duplicate or reordered" if counter < self.expected else "lost"
                self.stats.bad(f"{self.name}: from {sender} counter {counter}, expected {self.expected} ({kind})")
            self.expected = max(self.expected, counter + 1)
            if rest == "FIN":
                self.partner_fin = counter
            self.stats.received += 1
            if self.last_seq - self.acked >= 8:
                await self.ack()
        elif t == "pong":
            if self.inflight is None:
                self.stats.bad(f"{self.name}: pong with nothing in flight")
                return
            fid, counter, is_fin = self.inflight
            self.inflight = None
            if self.inflight_refused:
                self.inflight_refused = False
                self.next_send = now + 0.25  # or at partner_back
            else:
                self._accepted(fid, is_fin)
                fast = self.burster and self.partner_away
                self.next_send = now + (0.002 if fast else self.rng.uniform(0.08, 0.3))
        elif t == "error":
            code = m.get("code")
            if code in ("partner_away", "rate_limited") and self.inflight is not None and not self.inflight_refused:
                # partner_away: the partner is away and its ring full; rate_limited: the partner is connected
                # but has not acknowledged a full ring yet. Either way the message was not kept: send it again.
                self.inflight_refused = True
                self.stats.refused += 1
                self.last_refused = time.monotonic()
                if code == "partner_away" and not self.partner_away:
                    self.stats.bad(f"{self.name}: error partner_away while the partner was not said to be away")
            else:
                self.stats.bad(f"{self.name}: unexpected error {m}")
        elif t == "partner_away":
            self.partner_away = True
            self.stats.partner_away += 1
            g = m.get("grace")
            if not isinstance(g, (int, float)) or not 0 <= g <= GRACE:
                self.stats.bad(f"{self.name}: partner_away grace {g!r}")
        elif t == "partner_back":
            if not self.partner_away:
                self.stats.bad(f"{self.name}: partner_back without partner_away")
            self.partner_away = False
            self.next_send = min(self.next_send, now)
            self.start_hold()
        elif t == "typing":
            pass
        else:
            self.stats.bad(f"{self.name}: unexpected frame {m}")

    async def ack(self):
        self.acked = self.last_seq
        self.last_ack = time.monotonic()
        await self.chat.send({"type": "ack", "seq": self.last_seq})

    def done(self):
        return self.fin_accepted and self.partner_fin is not None and self.expected == self.partner_fin + 1

    # -- the loop ---------------------------------------------------------

    async def run(self, churn_end, finish_end, all_done):
        now = time.monotonic()
        next_drop = now + self.rng.uniform(0.5, 6)
        marked = False
        while True:
            now = time.monotonic()
            final = now >= churn_end
            if final and now >= finish_end:
                if not self.done():
                    self.stats.bad(f"{self.name}: not finished: fin_accepted={self.fin_accepted} "
                                   f"partner_fin={self.partner_fin} expected={self.expected} "
                                   f"partner_away={self.partner_away} inflight={self.inflight}")
                return
            if self.done() and not marked:
                marked = True
                all_done.release()
            if marked and all_done.finished():
                return
            if not final and now >= next_drop:
                r = self.rng.random()
                how = "rst" if r < 0.7 else "fin" if r < 0.85 else "takeover"
                # A fifth of the drops are long (see drop); the others last up to 0.6 s.
                away = None if self.rng.random() < 0.2 else self.rng.uniform(0.05, 0.6)
                try:
                    await self.drop(how, away)
                except Exception as e:
                    self.stats.bad(f"{self.name}: drop {how} / resume failed: {e!r}")
                    return
                # not again before the replayed messages have been handled and acknowledged
                next_drop = time.monotonic() + max(0.3, self.rng.expovariate(1 / 5))
                continue
            if self.inflight is None and not self.fin_accepted and now >= self.next_send and self.may_send():
                await self.send_next(final)
                continue
            if self.last_seq > self.acked and now - self.last_ack >= 0.5:
                await self.ack()
            wake = [finish_end if final else churn_end, now + 0.5]
            if not final:
                wake.append(next_drop)
            if self.inflight is None and not self.fin_accepted:
                wake.append(max(self.next_send, now + 0.02) if self.hold else self.next_send)
            timeout = max(0.001, min(wake) - now)
            try:
                m = await self.chat.recv(timeout)
            except asyncio.TimeoutError:
                continue
            except Closed as e:
                self.stats.bad(f"{self.name}: connection closed by the server with {e.code}")
                return
            await self.handle(m)


class DoneCount:
    def __init__(self, n):
        self.n = n
        self.done = 0

    def release(self):
        self.done += 1

    def finished(self):
        return self.done >= self.n


def test_churn_drops_and_resumes_lose_nothing(server_factory):
    srv = start_server(server_factory, "--no-rate-limits", "--resume-grace", str(GRACE), "--max-text-scalars", "15000",
                       "--rate-per-second", "100000", "--rate-burst", "100000",
                       "--max-connections-per-address", "1000", "--new-connections-per-minute", "100000")
    stats = Stats()
    rng = random.Random(20240611)
    registry = {}
    agents = [Agent(i, srv, random.Random(rng.random()), stats, registry) for i in range(CLIENTS)]
    registry.update((a.name, a) for a in agents)

    async def body():
        # Connect in waves so that the handshakes do not all land at once.
        for i in range(0, CLIENTS, 50):
            await asyncio.gather(*(a.setup() for a in agents[i:i + 50]))
        churn_end = time.monotonic() + CHURN_SECONDS
        finish_end = churn_end + FINISH_SECONDS
        all_done = DoneCount(CLIENTS)
        results = await asyncio.gather(*(a.run(churn_end, finish_end, all_done) for a in agents),
                                       return_exceptions=True)
        for a, r in zip(agents, results):
            if isinstance(r, BaseException):
                stats.bad(f"{a.name} crashed: {r!r}")
        checks = [t for a in agents for t in a.takeover_checks]
        await asyncio.gather(*checks, return_exceptions=True)
        await close_all(*(a.chat for a in agents if a.chat is not None))

    run(body(), timeout=CHURN_SECONDS + FINISH_SECONDS + 30)

    by_name = {a.name: a for a in agents}
    for a in agents:
        if a.partner is None:
            stats.bad(f"{a.name}: never heard from a partner")
            continue
        p = by_name.get(a.partner)
        if p is None or p.partner != a.name:
            stats.bad(f"{a.name}: partner {a.partner} names {p.partner if p else None}")
        elif p.fin_accepted and a.partner_fin is not None and a.partner_fin != p.next_counter - 1:
            stats.bad(f"{a.name}: FIN from {p.name} says {a.partner_fin}, it had {p.next_counter - 1} accepted")
    print(f"churn: {stats.sent} accepted, {stats.received} received, {stats.refused} refused (partner_away), "
          f"drops {stats.drops}, {stats.resumes} resumes, {stats.replayed_ids} in-flight accepted, "
          f"{stats.resent_after_resume} in-flight re-sent, {stats.partner_away} partner_away events, "
          f"{stats.hold_timeouts} hold timeouts")
    assert not stats.violations, "\n".join(stats.violations)
    assert stats.sent == stats.received, (stats.sent, stats.received)
    # Floors low enough for a busy 2-CPU machine (an idle one does about three times as much).
    assert stats.sent >= 2000, f"only {stats.sent} messages"
    assert stats.resumes >= 200, f"only {stats.resumes} resumes"
    assert min(stats.drops.values()) >= 20, stats.drops
    assert stats.refused >= 5, "the bound on kept messages was never met: the re-send path went untested"
