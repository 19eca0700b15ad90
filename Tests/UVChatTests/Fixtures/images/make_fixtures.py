#!/usr/bin/env python3
"""Makes the image fixtures for ImageCleanerTests and the seeds of the `image` fuzz target.

Run from anywhere with a Python that has Pillow:  python make_fixtures.py
Output is deterministic (seeded noise, fixed timestamps). Metadata goes in through Pillow where Pillow can write it
(Exif, ICC, comments, PNG text, WebP EXIF/XMP/ICC, GIF comments and looping) and by splicing raw segments, chunks and
extensions where it cannot (XMP APP1, Photoshop APP13, Adobe APP14, JFIF thumbnails, JFXX, fill bytes, tIME, a private
PNG chunk, an unknown WebP chunk, GIF XMP and plain-text extensions, trailing bytes). Every file is re-opened with
Pillow at the end, which checks it decodes (and for PNG, verifies the chunk CRCs).

Sentinels the tests look for: SENTINEL (GPS, XMP, PNG text, WebP EXIF/XMP), COMMENT, and the other b"UVCHAT-..."
strings below.
"""
import io
import os
import random
import struct
import zlib

from PIL import Image, ImageCms, PngImagePlugin

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "..", ".."))
CORPUS = os.path.join(ROOT, "Fuzz", "corpus", "image")

SENTINEL = b"UVCHAT-GPS-SENTINEL"
COMMENT = b"UVCHAT-COMMENT-SENTINEL"
XMP = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
       b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.4N" '
       b'exif:GPSLongitude="2,17.7E" exif:UserComment="' + SENTINEL + b'"/></rdf:RDF></x:xmpmeta>'
       b'<?xpacket end="w"?>')
TRAILER = b"UVCHAT-TRAILING-SENTINEL" * 4
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()

rng = random.Random(1515)


def photo(width, height, noise=18):
    """Gradients plus seeded noise and a few soft shapes: photographic enough that JPEG has real work to do."""
    img = Image.new("RGB", (width, height))
    px = img.load()
    for y in range(height):
        for x in range(width):
            r = int(255 * x / width)
            g = int(255 * y / height)
            b = int(128 + 100 * ((x - width / 2) * (y - height / 2)) / (width * height / 4))
            cx, cy = x - width * 0.6, y - height * 0.4
            if cx * cx + cy * cy < (height / 4) ** 2:
                r, g, b = (r + 255) // 2, (g + 200) // 2, b // 2
            n = rng.randint(-noise, noise)
            px[x, y] = (max(0, min(255, r + n)), max(0, min(255, g + n)), max(0, min(255, b + n)))
    return img


# ---------------------------------------------------------------- TIFF/Exif writer (for a phone-like Exif block)

ASCII, SHORT, LONG, RATIONAL, UNDEFINED, BYTE = 2, 3, 4, 5, 7, 1
SIZES = {BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, UNDEFINED: 1}


def value_bytes(typ, value):
    if typ == ASCII:
        return value + b"\0"
    if typ in (UNDEFINED, BYTE):
        return bytes(value)
    if typ == SHORT:
        return b"".join(struct.pack(">H", v) for v in value)
    if typ == LONG:
        return b"".join(struct.pack(">I", v) for v in value)
    if typ == RATIONAL:
        return b"".join(struct.pack(">II", n, d) for n, d in value)
    raise ValueError(typ)


def ifd(entries, offset, next_ifd=0):
    """One big-endian IFD at `offset` (from the TIFF header) with its out-of-line values after it."""
    entries = sorted(entries)
    count_bytes = 2 + 12 * len(entries) + 4
    data = b""
    table = struct.pack(">H", len(entries))
    for tag, typ, value in entries:
        raw = value_bytes(typ, value)
        count = len(raw) // SIZES[typ]
        if len(raw) <= 4:
            field = raw.ljust(4, b"\0")
        else:
            field = struct.pack(">I", offset + count_bytes + len(data))
            data += raw + (b"\0" if len(raw) % 2 else b"")
        table += struct.pack(">HHI", tag, typ, count) + field
    table += struct.pack(">I", next_ifd)
    return table + data


def phone_exif(thumbnail):
    """Exif as a phone writes it: IFD0 (Make, Model, Orientation, dates), the Exif IFD, a GPS IFD and IFD1 with a
    JPEG thumbnail. Sizes are computed in two passes since each IFD's offset depends on those before it."""
    gps = [
        (0x0000, BYTE, [2, 2, 0, 0]),
        (0x0001, ASCII, b"N"), (0x0002, RATIONAL, [(48, 1), (51, 1), (2484, 100)]),
        (0x0003, ASCII, b"E"), (0x0004, RATIONAL, [(2, 1), (17, 1), (4020, 100)]),
        (0x0005, BYTE, [0]), (0x0006, RATIONAL, [(3520, 100)]),
        (0x001B, UNDEFINED, list(b"ASCII\0\0\0" + SENTINEL)),
        (0x001D, ASCII, b"2024:05:17"),
    ]
    exif_ifd = [
        (0x9000, UNDEFINED, list(b"0232")),
        (0x9003, ASCII, b"2024:05:17 14:03:27"),
        (0x9004, ASCII, b"2024:05:17 14:03:27"),
        (0x9010, ASCII, b"+02:00"),
        (0x829A, RATIONAL, [(1, 120)]), (0x829D, RATIONAL, [(185, 100)]),
        (0x8827, SHORT, [64]), (0x920A, RATIONAL, [(690, 100)]),
        (0xA420, ASCII, b"UVCHAT-IMAGE-UNIQUE-ID-0123456789"),
    ]

    def build(o_exif, o_gps, o_ifd1, o_thumb):
        ifd0 = [
            (0x010F, ASCII, b"Google"), (0x0110, ASCII, b"Pixel 8"), (0x0112, SHORT, [6]),
            (0x011A, RATIONAL, [(72, 1)]), (0x011B, RATIONAL, [(72, 1)]), (0x0128, SHORT, [2]),
            (0x0131, ASCII, b"HDR+ 1.0.641377693zd"), (0x0132, ASCII, b"2024:05:17 14:03:27"),
            (0x0213, SHORT, [1]), (0x8769, LONG, [o_exif]), (0x8825, LONG, [o_gps]),
        ]
        ifd1 = [(0x0103, SHORT, [6]), (0x0201, LONG, [o_thumb]), (0x0202, LONG, [len(thumbnail)])]
        out = b"MM\0\x2a" + struct.pack(">I", 8)
        out += ifd(ifd0, 8, o_ifd1)
        e = ifd(exif_ifd, len(out)); o_exif_real = len(out); out += e
        g = ifd(gps, len(out)); o_gps_real = len(out); out += g
        o_ifd1_real = len(out); out += ifd(ifd1, len(out))
        o_thumb_real = len(out); out += thumbnail
        return out, (o_exif_real, o_gps_real, o_ifd1_real, o_thumb_real)

    offsets = (0, 0, 0, 0)
    for _ in range(3):
        tiff, offsets = build(*offsets)
    return b"Exif\0\0" + tiff


# ---------------------------------------------------------------- JPEG splicing

def segment(marker, body):
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def split_jpeg(data):
    """SOI, the segments before the first SOS as (marker, whole bytes), and the rest from SOS on."""
    assert data[:2] == b"\xff\xd8"
    pos, segs = 2, []
    while True:
        marker = data[pos + 1]
        if marker == 0xDA:
            return segs, data[pos:]
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        segs.append((marker, data[pos:pos + 2 + length]))
        pos += 2 + length


def join_jpeg(segs, rest):
    return b"\xff\xd8" + b"".join(s for _, s in segs) + rest


def xmp_app1():
    return segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0" + XMP)


def photoshop_app13():
    # Photoshop IRB: one 8BIM 0x0404 (IPTC-NAA) resource holding an IPTC caption (2:120) with the sentinel.
    caption = b"UVCHAT-IPTC-SENTINEL by a photographer"
    iptc = b"\x1c\x02\x78" + struct.pack(">H", len(caption)) + caption
    res = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(iptc)) + iptc
    if len(iptc) % 2:
        res += b"\0"
    return segment(0xED, b"Photoshop 3.0\0" + res)


def adobe_app14(transform=1):
    return segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, transform))


def jfif_with_thumbnail():
    # JFIF 1.02, no units, 1:1, a 2x2 RGB thumbnail whose pixels spell part of a sentinel.
    thumb = b"UVCHAT"[:6] + b"THUMB!"
    return segment(0xE0, b"JFIF\0\x01\x02\0\0\x01\0\x01\x02\x02" + thumb)


def jfxx_app0():
    # JFXX extension: thumbnail stored as 1-byte-per-pixel palette (code 0x11): 1x1 + 768-byte palette.
    return segment(0xE0, b"JFXX\0\x11\x01\x01" + bytes(768) + b"\x07")


def save_jpeg(img, **kw):
    out = io.BytesIO()
    img.save(out, "JPEG", **kw)
    return out.getvalue()


def gps_exif_pillow():
    exif = Image.Exif()
    exif[0x010F] = "UVCHAT-MAKE-SENTINEL"
    exif[0x0112] = 1
    gps = exif.get_ifd(0x8825)
    gps[1] = "S"
    gps[2] = (33.0, 51.0, 35.9)
    gps[3] = "E"
    gps[4] = (151.0, 12.0, 40.0)
    gps[0x1B] = b"ASCII\0\0\0" + SENTINEL
    return exif


# ---------------------------------------------------------------- PNG splicing

def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_insert_before_idat(data, *chunks):
    i = data.index(b"IDAT") - 4
    return data[:i] + b"".join(chunks) + data[i:]


def save_png(img, **kw):
    out = io.BytesIO()
    img.save(out, "PNG", **kw)
    return out.getvalue()


# ---------------------------------------------------------------- WebP splicing

def webp_chunk(tag, data):
    return tag + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def webp_append(data, chunk, trailing=b""):
    body = data[12:8 + struct.unpack("<I", data[4:8])[0]] + chunk
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body + trailing


def save_webp(img, **kw):
    out = io.BytesIO()
    img.save(out, "WEBP", **kw)
    return out.getvalue()


# ---------------------------------------------------------------- GIF splicing

def gif_subblocks(data):
    out = b""
    for i in range(0, len(data), 255):
        part = data[i:i + 255]
        out += bytes([len(part)]) + part
    return out + b"\0"


def gif_app_ext(ident, data):
    return b"\x21\xff\x0b" + ident + gif_subblocks(data)


def gif_plain_text(text):
    header = b"\x0c" + struct.pack("<HHHHBBBB", 0, 0, 8, 8, 8, 8, 1, 0)
    return b"\x21\x01" + header + gif_subblocks(text)


def gif_insert_before_trailer(data, blocks, trailing=b""):
    assert data.endswith(b"\x3b")
    return data[:-1] + blocks + b"\x3b" + trailing


def gif_frames(size, count):
    frames = []
    for i in range(count):
        f = Image.new("P", size, 0)
        f.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
        px = f.load()
        for y in range(size[1]):
            for x in range(size[0]):
                px[x, y] = (x // 4 + y // 4 + i) % 4
        frames.append(f)
    return frames


def save_gif(frames, **kw):
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=len(frames) > 1, append_images=frames[1:], **kw)
    return out.getvalue()


# ---------------------------------------------------------------- the fixtures

def make():
    files = {}

    # A phone photo: 640x480, Exif with a GPS IFD and an IFD1 thumbnail, XMP with the sentinel.
    big = photo(640, 480, noise=12)
    thumb = save_jpeg(big.resize((160, 120)), quality=40)
    base = save_jpeg(big, quality=60, exif=phone_exif(thumb), subsampling=2)
    segs, rest = split_jpeg(base)
    exif_at = next(i for i, (m, s) in enumerate(segs) if m == 0xE1)
    segs.insert(exif_at + 1, (0xE1, xmp_app1()))
    files["phone-gps.jpg"] = join_jpeg(segs, rest)

    # Every kind of JPEG metadata at once, plus restart markers, fill bytes and trailing data.
    small = photo(64, 48)
    exif = gps_exif_pillow()
    base = save_jpeg(small, quality=80, exif=exif.tobytes(), icc_profile=ICC, comment=COMMENT,
                     restart_marker_blocks=4)
    segs, rest = split_jpeg(base)
    segs = [(m, s) for m, s in segs if m != 0xE0]
    dqt = next(i for i, (m, s) in enumerate(segs) if m == 0xDB)
    segs[dqt] = (0xDB, b"\xff\xff" + segs[dqt][1])  # fill bytes before the marker
    segs = [(0xE0, jfif_with_thumbnail()), (0xE0, jfxx_app0()), (0xEE, adobe_app14())] + segs
    segs.insert(4, (0xE1, xmp_app1()))
    segs.insert(5, (0xED, photoshop_app13()))
    segs.insert(6, (0xE9, segment(0xE9, b"UVCHAT-APP9-SENTINEL maker data")))
    files["meta.jpg"] = join_jpeg(segs, rest + TRAILER)

    # Progressive: many scans with Huffman tables between them, Exif and a comment.
    files["progressive.jpg"] = save_jpeg(photo(96, 64), quality=75, progressive=True, exif=exif.tobytes(),
                                         comment=COMMENT)

    # CMYK: Pillow writes the Adobe APP14 segment the decoder needs to read the colour transform.
    files["cmyk.jpg"] = save_jpeg(photo(32, 24).convert("CMYK"), quality=80, comment=COMMENT)

    # PNG: text of every kind, tIME, eXIf, iCCP, pHYs, a private ancillary chunk, trailing data.
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", COMMENT.decode())
    info.add_text("Author", "UVCHAT-ZTXT-SENTINEL " * 8, zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP.decode("utf-8"), lang="", tkey="")
    base = save_png(photo(48, 32), pnginfo=info, exif=gps_exif_pillow(), icc_profile=ICC, dpi=(144, 144))
    files["text.png"] = png_insert_before_idat(
        base,
        png_chunk(b"tIME", struct.pack(">HBBBBB", 2024, 5, 17, 14, 3, 27)),
        png_chunk(b"prVt", b"UVCHAT-PRIVATE-CHUNK-SENTINEL"),
    ) + TRAILER

    # Palette with transparency (PLTE and tRNS are kept) and a comment.
    pal = photo(40, 24).quantize(16)
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", COMMENT.decode())
    files["palette.png"] = save_png(pal, pnginfo=info, transparency=0)

    # APNG: acTL, fcTL and fdAT survive.
    frames = [photo(24, 16, noise=4) for _ in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:], duration=100, loop=0)
    files["anim.png"] = out.getvalue()

    # WebP, simple lossy and lossless (a trailing byte beyond the RIFF size goes too).
    files["lossy.webp"] = save_webp(photo(64, 48), quality=60) + TRAILER
    files["lossless.webp"] = save_webp(photo(32, 24, noise=2), lossless=True)

    # Extended: ICC, EXIF with GPS, XMP, an unknown chunk and trailing data.
    base = save_webp(photo(48, 32), quality=60, exif=gps_exif_pillow().tobytes(), xmp=XMP, icc_profile=ICC)
    files["extended.webp"] = webp_append(base, webp_chunk(b"UVCx", b"UVCHAT-WEBP-CHUNK-SENTINEL!"), TRAILER)

    # Animated with alpha, EXIF and XMP.
    frames = [photo(24, 16, noise=4).convert("RGBA") for _ in range(2)]
    frames[1].putalpha(128)
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0, quality=50,
                   exif=gps_exif_pillow().tobytes(), xmp=XMP)
    files["anim.webp"] = out.getvalue()

    # GIF: animated and looping, a comment, an XMP application extension, a plain-text extension, trailing bytes.
    base = save_gif(gif_frames((16, 12), 3), loop=0, duration=80, comment=COMMENT)
    files["anim.gif"] = gif_insert_before_trailer(
        base,
        gif_app_ext(b"XMP DataXMP", XMP) + gif_plain_text(b"UVCHAT-PLAINTEXT-SENTINEL")
        + b"\x21\xfe" + gif_subblocks(b"second comment " + COMMENT),
        TRAILER,
    )

    for name, data in files.items():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        with Image.open(io.BytesIO(data)) as im:
            im.load()
        print(f"{name}: {len(data)} bytes")

    # Fuzz seeds: the type byte (ImageType raw value) and a small image of each type, each under 4 KiB.
    os.makedirs(CORPUS, exist_ok=True)
    tiny = photo(16, 12)
    seeds = {
        "jpeg": b"\x00" + save_jpeg(tiny, quality=50, comment=COMMENT, exif=gps_exif_pillow().tobytes()),
        "jpeg-progressive": b"\x00" + save_jpeg(tiny, quality=50, progressive=True),
        "png": b"\x01" + save_png(tiny, pnginfo=info),
        "webp": b"\x02" + save_webp(tiny, quality=50, exif=gps_exif_pillow().tobytes(), xmp=XMP[:120]),
        "webp-lossless": b"\x02" + save_webp(tiny, lossless=True),
        "gif": b"\x03" + save_gif(gif_frames((8, 8), 2), loop=0, comment=COMMENT),
    }
    for name, data in seeds.items():
        assert len(data) < 4096, name
        with open(os.path.join(CORPUS, "seed-" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    make()
