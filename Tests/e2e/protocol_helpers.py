"""Helpers shared by the test_protocol_*.py files, which test part A of PROTOCOL.md.

The clients themselves (`Chat`, `RawWS`, `pair`, `start`, `run`, ...) live in wsclient.py; the
`server_factory` fixture in conftest.py.
"""
import asyncio

from wsclient import Chat, RawWS


EMOJI = "\U0001F600"  # 4 bytes in UTF-8, a surrogate pair in JSON escapes
UPGRADE_HEADERS = ["Upgrade: websocket", "Connection: Upgrade",
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]


def _paired_raw(srv):
    """A raw client paired with a websockets client; returns (raw, chat coroutine result)."""
    raw = RawWS(srv.port)
    assert raw.recv_json(keep_online=True)["type"] == "online"
    assert raw.recv_json() == {"type": "waiting"}
    return raw


async def _join_partner_of(raw, srv):
    b = await Chat.joined(srv, name="b")
    await b.expect("paired")
    assert (await asyncio.to_thread(raw.recv_json))["type"] == "paired"
    return b
