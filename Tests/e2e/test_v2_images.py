"""PROTOCOL.md part B.3 (images with the receiver's consent) over real sockets, as docs/protocol-v2.md reads it:
the offer/accept/decline table with every refusal, the binary message format both ways, metadata removal checked
with an independent decoder (Pillow), binary without an offer, version 1's 1003, the image limit from the frame
header, and a receiver that does not read closed at its cap while images stream to it.

Every wait is bounded.
"""
import asyncio
import io
import os
import struct
import time

import pytest
from PIL import Image

from ops_helpers import metric_values
from v2_helpers import NO_RATE, barrier, send_start, v1_open, v2_open, v2_pair, raw_v2
from wsclient import Chat, Closed, RawWS, close_all, run

SENTINEL = b"UVCHAT-GPS-SENTINEL"
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "UVChatTests", "Fixtures", "images")
IMAGES_ON = {"images": True}


def gps_jpeg(size=(96, 64), comment=b"UVCHAT-COMMENT", trailing=b""):
    """A small JPEG as a phone writes one: Exif with Make/Model and a GPS IFD carrying the sentinel, a comment."""
    img = Image.new("RGB", size)
    img.putdata([((x * 7) % 256, (y * 5) % 256, (x * y) % 256) for y in range(size[1]) for x in range(size[0])])
    exif = Image.Exif()
    exif[0x010F] = "Google"
    exif[0x0110] = "Pixel 8"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0), 27: b"ASCII\0\0\0" + SENTINEL}
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif, comment=comment, quality=90)
    data = out.getvalue() + trailing
    assert SENTINEL in data
    return data


def png_bytes(size=(32, 32)):
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


def metrics(port):
    return metric_values(port)


async def recv_binary(c, timeout=5.0):
    """The next binary message (online updates skipped; any other text frame fails)."""
    deadline = time.monotonic() + timeout
    while True:
        raw = await c.recv_raw(max(0.01, deadline - time.monotonic()))
        if isinstance(raw, bytes):
            return raw
        assert '"type":"online"' in raw, f"{c.name}: expected a binary message, got {raw}"


def image_message(offer_id, data):
    return struct.pack(">I", offer_id) + data


async def images_pair(srv, a_images=True, b_images=True):
    """a (waiting first) and b, both version 2; returns (a, b) after checking each one's partner.images."""
    a, b, pa, pb = await v2_pair(srv, {"images": a_images}, {"images": b_images})
    assert pa["partner"]["images"] is b_images, pa
    assert pb["partner"]["images"] is a_images, pb
    return a, b


async def offer(sender, receiver, offer_id, data, mime="image/jpeg"):
    """sender offers, receiver sees exactly the same event and accepts, sender hears the accept."""
    event = {"type": "image_offer", "id": offer_id, "mime": mime, "bytes": len(data)}
    await sender.send(event)
    assert await receiver.recv() == event
    await receiver.send({"type": "image_accept", "id": offer_id})
    assert await sender.recv() == {"type": "image_accept", "id": offer_id}


async def still_chats(a, b, text="still here"):
    await a.send({"type": "message", "text": text})
    m = await b.expect("message")
    assert m["text"] == text, m


def test_offer_accept_relays_a_cleaned_decodable_image(server):
    async def go():
        a, b = await images_pair(server)
        path = os.path.join(FIXTURES, "phone-gps.jpg")
        data = open(path, "rb").read() if os.path.exists(path) else gps_jpeg(trailing=b"TRAILING-BYTES")
        assert SENTINEL in data
        await offer(a, b, 7, data)
        await a.send(image_message(7, data))
        got = await recv_binary(b)
        assert got[:4] == struct.pack(">I", 7), got[:8]
        image = got[4:]
        assert 0 < len(image) <= len(data)
        assert SENTINEL not in image, "the GPS sentinel reached the receiver"
        assert b"Exif\0\0" not in image and b"http://ns.adobe.com/xap/1.0/" not in image
        decoded = Image.open(io.BytesIO(image))
        decoded.load()
        original = Image.open(io.BytesIO(data))
        assert decoded.format == "JPEG" and decoded.size == original.size
        assert not decoded.getexif().get_ifd(0x8825), "GPS IFD survived"
        assert "comment" not in decoded.info
        # The sender hears nothing back for a delivered image; both still chat.
        assert await barrier(a) == []
        await still_chats(b, a)
        m = metrics(server.port)
        assert m["uvchat_image_offers_total"] == 1 and m["uvchat_image_accepts_total"] == 1
        assert m["uvchat_images_relayed_total"] == 1
        assert m["uvchat_image_bytes_relayed_total"] == len(image)
        assert m["uvchat_image_metadata_bytes_removed_total"] == len(data) - len(image) > 0
        await close_all(a, b)
    run(go())


def test_decline_reaches_the_sender_and_spends_the_offer(server):
    async def go():
        a, b = await images_pair(server)
        data = gps_jpeg()
        event = {"type": "image_offer", "id": 1, "mime": "image/jpeg", "bytes": len(data)}
        await a.send(event)
        assert await b.recv() == event
        await b.send({"type": "image_decline", "id": 1})
        assert await a.recv() == {"type": "image_decline", "id": 1}
        # Declined: its bytes are refused, a second answer is about nothing, and a new offer is not busy.
        await a.send(image_message(1, data))
        await a.expect_error("bad_request")
        await b.send({"type": "image_accept", "id": 1})
        await b.expect_error("bad_request")
        await a.send({**event, "id": 2})
        assert (await b.recv())["id"] == 2
        await still_chats(a, b)
        assert metrics(server.port)["uvchat_image_declines_total"] == 1
        await close_all(a, b)
    run(go())


def test_images_off_when_the_partner_takes_none(server):
    async def go():
        a, b = await images_pair(server, a_images=True, b_images=False)
        data = gps_jpeg()
        # b takes no images: a's offer is refused; b may still offer to a, who takes them.
        await a.send({"type": "image_offer", "id": 1, "mime": "image/jpeg", "bytes": len(data)})
        await a.expect_error("images_off")
        await b.silence(0.2)
        await offer(b, a, 3, data)
        await b.send(image_message(3, data))
        assert (await recv_binary(a))[:4] == struct.pack(">I", 3)
        m = metrics(server.port)
        assert m['uvchat_messages_refused_total{code="images_off"}'] == 1
        await close_all(a, b)
    run(go())


def test_a_version_1_partner_takes_no_images_and_version_1_binary_is_still_1003(server):
    async def go():
        one = await v1_open(server, "v1")
        await one.expect("waiting")
        two = await v2_open(server, "v2")
        await send_start(two, images=True)
        p2 = await two.expect("paired")
        await one.expect("paired")
        assert p2["partner"]["images"] is False
        await two.send({"type": "image_offer", "id": 1, "mime": "image/png", "bytes": 100})
        await two.expect_error("images_off")
        await one.silence(0.2)   # version 1 never sees a version 2 event
        await one.send(b"\x00\x00\x00\x01binary")
        assert await one.closed() == 1003
        await two.expect("partner_left")
        await close_all(one, two)
    run(go())


def test_not_paired_too_large_busy_and_bad_offers(server):
    async def go():
        lone = await v2_open(server, "lone")
        await lone.send({"type": "image_offer", "id": 1, "mime": "image/jpeg", "bytes": 10})
        await lone.expect_error("not_paired")
        await lone.send({"type": "image_accept", "id": 1})
        await lone.expect_error("not_paired")
        await send_start(lone, images=True)
        await lone.expect("waiting")
        await lone.send({"type": "image_offer", "id": 1, "mime": "image/jpeg", "bytes": 10})
        await lone.expect_error("not_paired")
        await lone.close()

        a, b = await images_pair(server)
        limit = 1024 * 1024
        await a.send({"type": "image_offer", "id": 1, "mime": "image/jpeg", "bytes": limit + 1})
        await a.expect_error("too_large")
        # Malformed offers: an id that does not fit 4 bytes or is 0, an unknown type, a size of 0, a string size.
        for bad in [{"id": 0}, {"id": 2 ** 32}, {"id": -1}, {"mime": "image/svg+xml"}, {"mime": "IMAGE/JPEG"},
                    {"bytes": 0}, {"bytes": "10"}, {"id": 1.5}]:
            await a.send({"type": "image_offer", "id": 1, "mime": "image/png", "bytes": 10, **bad})
            await a.expect_error("bad_request")
        event = {"type": "image_offer", "id": 2 ** 32 - 1, "mime": "image/webp", "bytes": limit}
        await a.send(event)
        assert await b.recv() == event
        # One open offer per sender, answered or not.
        await a.send({**event, "id": 5})
        await a.expect_error("busy")
        await b.send({"type": "image_accept", "id": 5})
        await b.expect_error("bad_request")
        await b.send({"type": "image_accept", "id": 2 ** 32 - 1})
        await a.expect("image_accept", id=2 ** 32 - 1)
        await a.send({**event, "id": 6})
        await a.expect_error("busy")   # accepted and waiting for its bytes is still open
        # b's own offer is independent of a's.
        await b.send({"type": "image_offer", "id": 1, "mime": "image/gif", "bytes": 50})
        assert (await a.recv())["type"] == "image_offer"
        await close_all(a, b)
    run(go())


def test_offers_are_rate_limited_one_per_5_seconds_burst_3(server):
    async def go():
        a, b = await images_pair(server)
        for i in (1, 2, 3):
            await a.send({"type": "image_offer", "id": i, "mime": "image/png", "bytes": 10})
            assert (await b.recv())["id"] == i
            await b.send({"type": "image_decline", "id": i})
            await a.expect("image_decline", id=i)
        await a.send({"type": "image_offer", "id": 4, "mime": "image/png", "bytes": 10})
        await a.expect_error("rate_limited")
        await b.silence(0.2)
        await close_all(a, b)
    run(go())


def test_binary_that_matches_no_accepted_offer_is_bad_request_and_the_connection_chats(server):
    async def go():
        a, b = await images_pair(server)
        data = png_bytes()
        # No offer at all: small and large (the large one is skipped unread, under the image limit).
        await a.send(image_message(1, data))
        await a.expect_error("bad_request")
        await a.send(b"\x00" * 300_000)
        await a.expect_error("bad_request")
        await a.send(b"")
        await a.expect_error("bad_request")
        await still_chats(a, b)
        # Offered but not yet accepted.
        await a.send({"type": "image_offer", "id": 9, "mime": "image/png", "bytes": len(data)})
        assert (await b.recv())["id"] == 9
        await a.send(image_message(9, data))
        await a.expect_error("bad_request")
        await b.send({"type": "image_accept", "id": 9})
        await a.expect("image_accept", id=9)
        # Accepted: the wrong id, one byte short, one byte over: refused, and the offer stays for the right one.
        await a.send(image_message(8, data))
        await a.expect_error("bad_request")
        await a.send(image_message(9, data[:-1]))
        await a.expect_error("bad_request")
        await a.send(image_message(9, data + b"\x00"))
        await a.expect_error("bad_request")
        await a.send(image_message(9, data))
        got = await recv_binary(b)
        assert got[:4] == struct.pack(">I", 9) and Image.open(io.BytesIO(got[4:])).size == (32, 32)
        await still_chats(b, a)
        await close_all(a, b)
    run(go())


def test_bytes_that_are_not_the_offered_type_are_bad_image(server_factory):
    # Six offers within a second: the offer bucket is lifted for this test.
    srv = server_factory("--image-offers-per-second", "100", "--image-offer-burst", "100")

    async def go():
        a, b = await images_pair(srv)
        png = png_bytes()
        jpeg = gps_jpeg()
        cases = [("image/jpeg", png), ("image/png", jpeg), ("image/gif", png), ("image/webp", jpeg),
                 ("image/jpeg", jpeg[: len(jpeg) // 2]), ("image/png", png[:-12])]
        for i, (mime, data) in enumerate(cases, start=1):
            await offer(a, b, i, data, mime)
            await a.send(image_message(i, data))
            await a.expect_error("bad_image")
            await b.silence(0.1)
            # Spent: the same bytes again are refused as matching no offer.
            await a.send(image_message(i, data))
            await a.expect_error("bad_request")
        await still_chats(a, b)
        assert metrics(srv.port)['uvchat_messages_refused_total{code="bad_image"}'] == len(cases)
        await close_all(a, b)
    run(go(), timeout=90)


def test_an_offer_dies_with_its_chat(server_factory):
    srv = server_factory(*NO_RATE)

    async def go():
        a, b = await images_pair(srv)
        data = png_bytes()
        await a.send({"type": "image_offer", "id": 1, "mime": "image/png", "bytes": len(data)})
        assert (await b.recv())["id"] == 1
        await b.send({"type": "next"})
        await a.expect("partner_left")
        await b.expect("waiting")
        # a stays idle after partner_left; a new client c pairs with b.
        c = await v2_open(srv, "c")
        await send_start(c, images=True)
        assert (await c.expect("paired"))["partner"]["images"] is True
        await b.expect("paired")
        await c.send({"type": "image_accept", "id": 1})
        await c.expect_error("bad_request")
        # An accepted offer dies too: after the chat ends, its bytes are refused.
        await offer(b, c, 4, data, "image/png")
        await c.send({"type": "stop"})
        await b.expect("partner_left")
        await b.send(image_message(4, data))
        await b.expect_error("bad_request")
        await close_all(a, b, c)
    run(go())


def test_an_offer_dies_when_a_side_drops_and_resumes(server):
    async def go():
        a, b, pa, pb = await v2_pair(server, IMAGES_ON, IMAGES_ON)
        data = png_bytes()
        await a.send({"type": "image_offer", "id": 1, "mime": "image/png", "bytes": len(data)})
        assert (await b.recv())["id"] == 1
        await b.drop("rst")
        await a.expect("partner_away")
        b2 = await v2_open(server, "b2")
        await b2.send({"type": "resume", "token": pb["token"], "seq": 0})
        assert (await b2.recv())["type"] == "resumed"
        await a.expect("partner_back")
        await b2.send({"type": "image_accept", "id": 1})
        await b2.expect_error("bad_request")
        # The sender is not busy: its offer died with the drop.
        await a.send({"type": "image_offer", "id": 2, "mime": "image/png", "bytes": len(data)})
        assert (await b2.recv())["id"] == 2
        await b2.send({"type": "image_accept", "id": 2})
        await a.expect("image_accept", id=2)
        await a.send(image_message(2, data))
        assert (await recv_binary(b2))[:4] == struct.pack(">I", 2)
        # While the partner is away, an offer is refused with partner_away.
        await b2.drop("rst")
        await a.expect("partner_away")
        await a.send({"type": "image_offer", "id": 3, "mime": "image/png", "bytes": len(data)})
        await a.expect_error("partner_away")
        await close_all(a, b2)
    run(go())


def test_a_binary_message_over_the_image_limit_is_refused_from_its_header(server_factory):
    srv = server_factory("--max-image-bytes", "1000")

    async def go():
        a, b = await images_pair(srv)
        await a.send({"type": "image_offer", "id": 1, "mime": "image/png", "bytes": 1001})
        await a.expect_error("too_large")
        await still_chats(a, b)
        await a.close()
        await b.expect("partner_left")
        await b.close()
        # A frame header that announces more than 4 + 1000 bytes closes 1009 at once, before any payload.
        r = raw_v2(srv.port)
        r.send_json({"type": "start", "images": True})
        from wsclient import encode_frame
        r.send(encode_frame(0x2, b"", length=1005))
        assert r.close_code() == 1009
        r.close()
    run(go())


def test_max_image_bytes_zero_turns_images_off(server_factory):
    srv = server_factory("--max-image-bytes", "0")

    async def go():
        a, b, pa, pb = await v2_pair(srv, IMAGES_ON, IMAGES_ON)
        assert pa["partner"]["images"] is False and pb["partner"]["images"] is False
        await a.send({"type": "image_offer", "id": 1, "mime": "image/png", "bytes": 10})
        await a.expect_error("images_off")
        await close_all(a, b)
    run(go())


def noise_jpeg(size=(400, 300)):
    """A JPEG that stays large after cleaning: noise does not compress."""
    out = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(out, "JPEG", quality=95)
    return out.getvalue()


def test_a_receiver_that_does_not_read_is_closed_at_its_cap_while_images_stream(server_factory):
    cap = 256 * 1024
    srv = server_factory("--outgoing-cap", str(cap), "--max-image-bytes", "400000",
                         "--image-offers-per-second", "1000", "--image-offer-burst", "1000")

    async def go():
        # The receiver: a raw socket with a small receive buffer that answers every offer without reading.
        receiver = RawWS(srv.port, rcvbuf=16384, headers=["Sec-WebSocket-Protocol: uvchat.2"])
        receiver.send_json({"type": "start", "images": True})
        sender = await v2_open(srv, "sender")
        await send_start(sender, images=True)
        assert (await sender.expect("paired"))["partner"]["images"] is True
        data = noise_jpeg()
        assert 100_000 < len(data) <= 400_000, len(data)
        relayed = 0
        for i in range(1, 400):
            await sender.send({"type": "image_offer", "id": i, "mime": "image/jpeg", "bytes": len(data)})
            # The offer is in before the blind accept (the offer itself may be what takes the receiver over).
            if {"type": "partner_left"} in await barrier(sender):
                break
            receiver.send_json({"type": "image_accept", "id": i})
            m = await sender.recv()
            if m["type"] == "partner_left":
                break
            assert m == {"type": "image_accept", "id": i}, m
            await sender.send(image_message(i, data))
            relayed += 1
            before = await barrier(sender)
            if {"type": "partner_left"} in before:
                break
        else:
            raise AssertionError("the receiver was never closed")
        assert relayed >= 2, relayed
        m = metrics(srv.port)
        assert m["uvchat_slow_consumer_closes_total"] == 1
        # Everything the server still holds for the closed receiver was dropped; the server goes on.
        assert m["uvchat_images_relayed_total"] == relayed
        receiver.close()
        await sender.close()
    run(go(), timeout=90)
