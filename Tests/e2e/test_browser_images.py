"""The page's side of PROTOCOL.md B.3 (images with the receiver's consent) in real headless Chromium against a real
uvchatd: the setting, the attach button shown only toward a partner who accepts images, the sender's re-encode
(scaled down, EXIF orientation applied, metadata gone), the receiver's View / Decline, the blurred picture with
Click to show and Hide, and `[image]` in place of the bytes in the transcript and in sessionStorage."""
import base64
import os
import re

from PIL import Image, ImageDraw
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browser_helpers import browsers, el, is_paired, log_text, pair_started, status, wait  # noqa: F401
from test_browser import SHOTS, axe_problems, axe_source

SENTINEL = "uvchat-secret-place-7f3a"   # written into the photo's GPS IFD and its description

# Runs before the page's script (CDP injection is not subject to the page's CSP): keeps each Blob the page turns
# into a URL, so that the test can read the bytes behind an <img> (a fetch of a blob: URL is a connect-src
# request, which the page's policy rightly refuses), and records any policy violation.
SPY = """
(() => {
  const real = URL.createObjectURL.bind(URL);
  window.__blobs = {};
  URL.createObjectURL = (o) => { const u = real(o); window.__blobs[u] = o; return u; };
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
})();
"""
READ_BLOB = """
const done = arguments[arguments.length - 1];
const r = new FileReader();
r.onload = () => done(r.result.split(',')[1]);
r.onerror = () => done(null);
r.readAsDataURL(window.__blobs[arguments[0]]);
"""


def photo(path, size=(2400, 1800), orientation=6):
    """A JPEG from a camera: larger than the page sends, with an EXIF orientation (6: shown turned a quarter to
    the right, so 2400x1800 is seen as 1800x2400) and a GPS position."""
    img = Image.new("RGB", size, (40, 90, 160))
    d = ImageDraw.Draw(img)
    for i in range(0, size[0], 60):
        d.rectangle([i, 0, i + 30, size[1]], fill=(200, (i * 7) % 256, 60))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010E] = SENTINEL                        # ImageDescription
    gps = exif.get_ifd(0x8825)                     # the GPS IFD
    gps[1], gps[2] = "N", (59.0, 19.0, 42.0)       # GPSLatitudeRef, GPSLatitude
    gps[3], gps[4] = "E", (18.0, 4.0, 12.0)
    gps[28] = SENTINEL                              # GPSAreaInformation
    img.save(path, "JPEG", quality=92, exif=exif.tobytes())
    raw = open(path, "rb").read()
    assert SENTINEL.encode() in raw and b"Exif" in raw   # the test image does carry what must not arrive
    return path


def start_with(d, server, images):
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": SPY})
    d.get(server.http + "/")
    box = el(d, "images-start")
    if box.is_selected() != images:
        box.click()
    el(d, "start-button").click()


def pair(browsers, server, images=(True, True), **kw):
    return pair_started(browsers, lambda d: start_with(d, server, images[0]),
                        lambda d: start_with(d, server, images[1]), **kw)


def send_and_answer(a, b, path, button):
    """a attaches the file; b sees the offer and presses `button` (View or Decline)."""
    el(a, "file").send_keys(path)
    wait(b, lambda d: offer_item(d) is not None, what="offer shown")
    offer_item(b).find_element(By.XPATH, f".//button[text()='{button}']").click()


def shot(d, side):
    return d.find_elements(By.CSS_SELECTOR, f"#log li.{side} .shot img")


def loaded(d, img):
    return d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)


def filter_of(d, img):
    return d.execute_script("return getComputedStyle(arguments[0]).filter", img)


def offer_item(d):
    items = d.find_elements(By.CSS_SELECTOR, "#log li.them.image")
    return items[-1] if items else None


def test_photo_is_scaled_cleaned_offered_viewed_blurred_and_hidden(browsers, server, tmp_path):
    path = photo(str(tmp_path / "camera.jpg"))
    a, b = pair(browsers, server, width=360, height=740)
    assert el(a, "attach").is_displayed() and el(b, "attach").is_displayed()
    el(a, "file").send_keys(path)
    wait(a, lambda d: "Waiting for Stranger to accept" in log_text(d), what="offer sent")
    wait(b, lambda d: offer_item(d) is not None, what="offer shown")
    text = offer_item(b).text
    m = re.search(r"Stranger: wants to send you an image \((\d+) KB\)", text)
    assert m and int(m.group(1)) > 0, text
    assert el(a, "attach").get_attribute("disabled")   # one open offer at a time
    assert b.find_elements(By.CSS_SELECTOR, "#log li.them img") == []   # nothing is fetched before View
    offer_item(b).find_element(By.XPATH, ".//button[text()='View']").click()
    wait(b, lambda d: shot(d, "them") and loaded(d, shot(d, "them")[0]), what="image received")
    img = shot(b, "them")[0]
    assert "blur" in filter_of(b, img)
    assert img.get_attribute("src").startswith("blob:")
    os.makedirs(SHOTS, exist_ok=True)
    b.save_screenshot(os.path.join(SHOTS, "image-blurred-360x740.png"))
    # 2400x1800 turned by its EXIF orientation is 1800x2400, and the longest side goes down to 1600.
    assert b.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img) == [1200, 1600]
    b.find_element(By.CSS_SELECTOR, "#log .shot .veil").click()
    wait(b, lambda d: filter_of(d, img) == "none", what="revealed")
    b.save_screenshot(os.path.join(SHOTS, "image-shown-360x740.png"))
    hide = offer_item(b).find_element(By.XPATH, ".//button[text()='Hide image']")
    hide.click()
    wait(b, lambda d: "blur" in filter_of(d, img), what="blurred again")
    # The bytes that arrived carry no trace of the GPS position (nor any Exif at all), and are a JPEG.
    data = base64.b64decode(b.execute_async_script(READ_BLOB, img.get_attribute("src")))
    assert data[:2] == b"\xff\xd8" and len(data) <= 1024 * 1024
    assert SENTINEL.encode() not in data and b"Exif\0\0" not in data
    assert len(data) <= (int(m.group(1)) + 1) * 1024   # cleaned bytes: never more than offered
    # The sender sees what it sent, and may offer again.
    wait(a, lambda d: shot(d, "you") and loaded(d, shot(d, "you")[0]), what="sender's copy")
    assert "Sending image" not in log_text(a)
    wait(a, lambda d: not el(d, "attach").get_attribute("disabled"), what="attach free again")
    # Images never go into sessionStorage: a marker does.
    for d in (a, b):
        kept = d.execute_script("return sessionStorage.getItem('uvchat.chat')")
        assert "[image]" in kept and len(kept) < 4000 and "blob:" not in kept
        assert d.execute_script("return window.__csp") == []
    # A phone's width still fits the picture.
    assert b.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    assert b.execute_script("const r = arguments[0].getBoundingClientRect(); return r.right <= innerWidth", img)


def test_transcript_says_image_for_both_sides(browsers, server, tmp_path):
    path = photo(str(tmp_path / "small.jpg"), size=(640, 480), orientation=1)
    a, b = pair(browsers, server)
    send_and_answer(a, b, path, "View")
    wait(b, lambda d: shot(d, "them") and loaded(d, shot(d, "them")[0]), what="image received")
    assert b.execute_script("return arguments[0].naturalWidth", shot(b, "them")[0]) == 640   # small: not scaled
    for d, who in ((a, "You"), (b, "Stranger")):
        folder = tmp_path / who
        folder.mkdir()
        d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})
        el(d, "save").click()
        # Chromium names the file before it has written it: wait for the whole transcript (it ends with a newline).
        def written(_):
            names = [f for f in os.listdir(folder) if f.endswith(".txt")]
            text = open(os.path.join(folder, names[0]), encoding="utf-8").read() if names else ""
            return text if text.endswith("\n") else None
        body = wait(d, written, what="a .txt download")
        assert f"\n{who}: [image]\n" in body, body


def test_decline_tells_the_sender(browsers, server, tmp_path):
    path = photo(str(tmp_path / "p.jpg"), size=(800, 600), orientation=1)
    a, b = pair(browsers, server)
    send_and_answer(a, b, path, "Decline")
    wait(a, lambda d: "Stranger declined your image." in log_text(d), what="sender told")
    assert "You: [image] (declined)" in a.execute_script(
        "return JSON.parse(sessionStorage.getItem('uvchat.chat')).lines.map(e => e.w + ': ' + e.b).join('\\n')")
    assert shot(a, "you") == [] and shot(b, "them") == []
    assert "declined" in offer_item(b).text
    wait(a, lambda d: not el(d, "attach").get_attribute("disabled"), what="attach free again")


def test_no_attach_toward_a_partner_who_does_not_accept_images(browsers, server):
    a, b = pair(browsers, server, images=(True, False))
    # b does not accept images: a cannot send one; a does, so b can.
    assert not el(a, "attach").is_displayed()
    assert el(b, "attach").is_displayed()
    # The setting is remembered for the next visit.
    assert a.execute_script("return localStorage.getItem('uvchat.images')") == "1"
    assert b.execute_script("return localStorage.getItem('uvchat.images')") == "0"
    # Changed during a chat, it counts from the next one, and the page says so; this chat stays as it was.
    el(b, "images").click()
    assert el(b, "images-hint").text == "From your next chat."
    assert not el(a, "attach").is_displayed()
    el(b, "images").click()
    assert not el(b, "images-hint").is_displayed()
    el(b, "images").click()
    b.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE, Keys.ESCAPE)
    wait(a, lambda d: "Stranger has disconnected." in status(d), what="b left")
    el(b, "next").click()   # New: b's start now says images:true
    wait(b, lambda d: "Looking" in status(d), what="b looks again")
    c = browsers()
    start_with(c, server, True)
    wait(b, is_paired, what="b meets c")
    wait(b, lambda d: el(d, "attach").is_displayed(), what="c accepts images")
    assert not el(b, "images-hint").is_displayed()
    wait(c, lambda d: el(d, "attach").is_displayed(), what="b accepts images now")


def test_offer_and_picture_are_accessible_and_an_open_offer_dies_with_the_chat(browsers, server, tmp_path):
    axe_js = axe_source()
    path = photo(str(tmp_path / "p.jpg"), size=(800, 600), orientation=1)
    a, b = pair(browsers, server)
    el(a, "file").send_keys(path)
    wait(b, lambda d: offer_item(d) is not None, what="offer shown")
    # The offer is announced like any other event: it is a new line in the log's live region.
    assert offer_item(b).find_element(By.XPATH, "ancestor::ol").get_attribute("aria-live") == "polite"
    problems = axe_problems(b, "offer", axe_js)
    offer_item(b).find_element(By.XPATH, ".//button[text()='View']").click()
    wait(b, lambda d: shot(d, "them") and loaded(d, shot(d, "them")[0]), what="image received")
    problems += axe_problems(b, "blurred picture", axe_js)
    wait(a, lambda d: not el(d, "attach").get_attribute("disabled"), what="attach free again")
    problems += axe_problems(a, "sent picture", axe_js)
    el(a, "file").send_keys(path)
    wait(b, lambda d: offer_item(d).find_elements(By.XPATH, ".//button[text()='View']"), what="second offer")
    a.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE, Keys.ESCAPE)   # a leaves
    wait(b, lambda d: "Stranger has disconnected." in status(d), what="partner left")
    assert offer_item(b).find_elements(By.TAG_NAME, "button") == []   # nothing left to answer
    assert "Not received: the chat ended." in offer_item(b).text
    assert "Not sent: the chat ended." in log_text(a)
    problems += axe_problems(b, "after", axe_js)
    assert problems == []


def test_noisy_photo_transparent_png_and_a_file_the_browser_cannot_open(browsers, server, tmp_path):
    noisy = str(tmp_path / "noisy.jpg")
    Image.effect_noise((1600, 1600), 120).convert("RGB").save(noisy, "JPEG", quality=98)
    assert os.path.getsize(noisy) > 1024 * 1024   # over the limit as it is: only a lower quality brings it under
    clear = str(tmp_path / "clear.png")
    png = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    ImageDraw.Draw(png).ellipse([20, 20, 280, 180], fill=(220, 40, 40, 255))
    png.save(clear)
    heic = str(tmp_path / "photo.heic")
    with open(heic, "wb") as f:
        f.write(b"\0\0\0\x18ftypheic" + os.urandom(2000))   # what a browser without HEIC support cannot decode
    a, b = pair(browsers, server)
    el(a, "file").send_keys(heic)
    wait(a, lambda d: "cannot open that file as an image" in log_text(d), what="undecodable file refused")
    assert offer_item(b) is None
    for path, magic, mime in ((noisy, b"\xff\xd8", "image/jpeg"), (clear, b"\x89PNG", "image/png")):
        wait(a, lambda d: not el(d, "attach").get_attribute("disabled"), what="attach free")
        count = len(shot(b, "them"))
        el(a, "file").send_keys(path)
        wait(b, lambda d: offer_item(d) is not None and offer_item(d).find_elements(By.XPATH, ".//button[text()='View']"),
             timeout=15, what="offer shown")
        offer_item(b).find_element(By.XPATH, ".//button[text()='View']").click()
        wait(b, lambda d: len(shot(d, "them")) > count and loaded(d, shot(d, "them")[-1]), what="image received")
        img = shot(b, "them")[-1]
        data = base64.b64decode(b.execute_async_script(READ_BLOB, img.get_attribute("src")))
        assert data.startswith(magic) and len(data) <= 1024 * 1024, (path, len(data))
        assert b.execute_script("return window.__blobs[arguments[0]].type", img.get_attribute("src")) == mime


def test_server_refusals_are_said_plainly(browsers, server_factory, tmp_path):
    # One offer, then none for a long while.
    server = server_factory("--image-offer-burst", "1", "--image-offers-per-second", "0.01")
    fake = tmp_path / "fake.gif"
    fake.write_bytes(b"this is not a picture, whatever its name says\n" * 20)   # a GIF under 1 MiB goes as it is
    a, b = pair(browsers, server)
    el(a, "file").send_keys(str(fake))
    wait(b, lambda d: offer_item(d) is not None, what="offer shown")
    offer_item(b).find_element(By.XPATH, ".//button[text()='View']").click()
    wait(a, lambda d: "Not sent: That file is not a valid image." in log_text(d), what="bad_image")
    assert shot(a, "you") == [] and shot(b, "them") == []
    el(a, "file").send_keys(str(fake))
    wait(a, lambda d: "Not sent: Too many images, wait a moment." in log_text(d), what="rate_limited")
    assert not el(a, "attach").get_attribute("disabled")
    # Text still goes: the refusals were the images', not the chat's.
    el(a, "text").send_keys("still here\n")
    wait(b, lambda d: "Stranger: still here" in log_text(d), what="text after the refusals")
    assert "(not sent)" not in a.find_element(By.CSS_SELECTOR, "#log li.you:not(.image)").text


def test_an_image_over_the_servers_limit_is_refused(browsers, server_factory, tmp_path):
    server = server_factory("--max-image-bytes", "2000")
    path = photo(str(tmp_path / "p.jpg"), size=(800, 600), orientation=1)
    a, b = pair(browsers, server)
    el(a, "file").send_keys(path)
    wait(a, lambda d: "Not sent: That image is too large to send." in log_text(d), what="too_large")
    assert offer_item(b) is None
    assert "You: [image] (not sent)" in a.execute_script(
        "return JSON.parse(sessionStorage.getItem('uvchat.chat')).lines.map(e => e.w + ': ' + e.b).join('\\n')")


# A slow uplink, as the page sees one: after a binary send, bufferedAmount goes down over 2 s.
SLOW_UPLINK = """
(() => {
  const real = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'bufferedAmount').get;
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (typeof data !== 'string') { this.__big = data.byteLength; this.__at = performance.now(); }
    return send.call(this, data);
  };
  Object.defineProperty(WebSocket.prototype, 'bufferedAmount', { get() {
    const left = this.__big ? Math.round(this.__big * Math.max(0, 1 - (performance.now() - this.__at) / 2000)) : 0;
    return Math.max(left, real.call(this));
  } });
})();
"""


def test_sender_sees_the_upload_progress(browsers, server, tmp_path):
    path = photo(str(tmp_path / "p.jpg"), size=(800, 600), orientation=1)
    a, b = browsers(), browsers()
    a.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": SLOW_UPLINK})
    start_with(a, server, True)
    wait(a, lambda d: "Looking" in status(d), what="a waiting")
    start_with(b, server, True)
    for d in (a, b):
        wait(d, is_paired, what="paired")
    el(a, "file").send_keys(path)
    wait(b, lambda d: offer_item(d) is not None, what="offer shown")
    offer_item(b).find_element(By.XPATH, ".//button[text()='View']").click()
    seen = wait(a, lambda d: re.search(r"Sending image… (\d+)%", log_text(d)), what="progress shown")
    assert 0 <= int(seen.group(1)) < 100
    wait(a, lambda d: re.search(r"Sending image… ([3-9]\d)%", log_text(d)), what="progress moves")
    wait(a, lambda d: shot(d, "you"), what="sent")
    assert "Sending image" not in log_text(a)
    wait(b, lambda d: shot(d, "them"), what="received")


def test_small_gif_goes_as_it_is_and_arrives_without_its_comment(browsers, server, tmp_path):
    path = str(tmp_path / "wave.gif")
    frames = [Image.new("RGB", (120, 80), (i * 80, 40, 200 - i * 60)) for i in range(3)]   # a canvas would keep one
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=200, loop=0, comment=SENTINEL.encode())
    raw = open(path, "rb").read()
    assert SENTINEL.encode() in raw and raw.count(b"\x21\xf9") == 3   # a comment, and three frames
    a, b = pair(browsers, server)
    el(a, "file").send_keys(path)
    wait(b, lambda d: offer_item(d) is not None, what="offer shown")
    offer_item(b).find_element(By.XPATH, ".//button[text()='View']").click()
    wait(b, lambda d: shot(d, "them") and loaded(d, shot(d, "them")[0]), what="image received")
    img = shot(b, "them")[0]
    data = base64.b64decode(b.execute_async_script(READ_BLOB, img.get_attribute("src")))
    assert data.startswith(b"GIF8") and SENTINEL.encode() not in data   # the server took the comment out
    assert data.count(b"\x21\xf9") == 3   # every frame's graphic control: still animated
    assert b.execute_script("return window.__blobs[arguments[0]].type", img.get_attribute("src")) == "image/gif"
