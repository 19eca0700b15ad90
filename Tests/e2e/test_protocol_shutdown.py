"""PROTOCOL.md part A, close code 1001 ("Close codes") and `/healthz` 503 while draining ("Endpoints"): SIGTERM
closes every client with 1001 and exits 0, even when a client never answers the close.

Every wait is bounded.
"""
import asyncio
import signal
import time

from wsclient import Chat, HTTPConn, RawWS, get, pair, run, start


# ---------------------------------------------------------------------------
# shutdown

def test_sigterm_closes_clients_1001_and_exits_0(server_factory):
    srv = start(server_factory)

    async def body():
        a, b, _, _ = await pair(srv)
        c = await Chat.joined(srv, name="c")
        await c.expect("waiting")
        srv.proc.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(a.closed(), b.closed(), c.closed())
        assert codes == [1001, 1001, 1001], codes
        rc = await asyncio.to_thread(srv.proc.wait, 10)
        assert rc == 0

    run(body())


def test_healthz_not_ok_while_draining(server_factory):
    srv = start(server_factory)
    http = HTTPConn(srv.port)
    http.send(get("/healthz"))
    assert http.read_response().status == 200
    raw = RawWS(srv.port)  # never answers the close frame, so the server has to wait
    srv.proc.send_signal(signal.SIGTERM)
    assert raw.close_code() == 1001
    try:
        http.send(get("/healthz"))
        r = http.read_response()
        assert r.status == 503, f"healthz while draining: {r.status}"
    except (EOFError, ConnectionResetError, BrokenPipeError):
        pass  # the idle HTTP connection was closed for the shutdown: fine too
    raw.close()
    http.close()
    assert srv.proc.wait(10) == 0


def test_sigterm_exits_0_even_if_a_client_never_answers_close(server_factory):
    srv = start(server_factory, "--drain-timeout", "1", "--close-timeout", "1")
    raw = RawWS(srv.port)  # reads nothing, answers nothing, never closes
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(8) == 0
    assert time.monotonic() - t0 < 5
    assert raw.close_code() == 1001
    assert raw.eof(2)
    raw.close()
