"""The page's side of PROTOCOL.md B.3 (images with the receiver's consent) in real headless Chromium against a real
uvchatd: the setting, the attach button shown only toward a partner who accepts images, the sender's re-encode
(scaled down, EXIF orientation applied, metadata gone), the receiver's View / Decline, the blurred picture with
Click to show and Hide, and `[image]` in place of the bytes in the transcript and in sessionStorage."""
import base64
import os
import re

from PIL import Image, ImageDraw
from selenium.webdriver.common.by import By

from browser_helpers import browsers, el, is_paired, log_text, status, wait  # noqa: F401
from test_browser import axe_problems, axe_source

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
    a, b = browsers(**kw), browsers(**kw)
    start_with(a, server, images[0])
    wait(a, lambda d: "Looking" in status(d), what="a waiting")
    start_with(b, server, images[1])
    for d in (a, b):
        wait(d, is_paired, what="paired")
    return a, b


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
    # 2400x1800 turned by its EXIF orientation is 1800x2400, and the longest side goes down to 1600.
    assert b.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img) == [1200, 1600]
    b.find_element(By.CSS_SELECTOR, "#log .shot .veil").click()
    wait(b, lambda d: filter_of(d, img) == "none", what="revealed")
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
    el(a, "file").send_keys(path)
    wait(b, lambda d: offer_item(d) is not None, what="offer shown")
    offer_item(b).find_element(By.XPATH, ".//button[text()='View']").click()
    wait(b, lambda d: shot(d, "them") and loaded(d, shot(d, "them")[0]), what="image received")
    assert b.execute_script("return arguments[0].naturalWidth", shot(b, "them")[0]) == 640   # small: not scaled
    for d, who in ((a, "You"), (b, "Stranger")):
        folder = tmp_path / who
        folder.mkdir()
        d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})
        el(d, "save").click()
        wait(d, lambda _: [f for f in os.listdir(folder) if f.endswith(".txt")], what="a .txt download")
        name = [f for f in os.listdir(folder) if f.endswith(".txt")][0]
        body = open(os.path.join(folder, name), encoding="utf-8").read()
        assert f"\n{who}: [image]\n" in body, body


def test_decline_tells_the_sender(browsers, server, tmp_path):
    path = photo(str(tmp_path / "p.jpg"), size=(800, 600), orientation=1)
    a, b = pair(browsers, server)
    el(a, "file").send_keys(path)
    wait(b, lambda d: offer_item(d) is not None, what="offer shown")
    offer_item(b).find_element(By.XPATH, ".//button[text()='Decline']").click()
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


def test_offer_is_accessible_and_dies_with_the_chat(browsers, server, tmp_path):
    axe_js = axe_source()
    path = photo(str(tmp_path / "p.jpg"), size=(800, 600), orientation=1)
    a, b = pair(browsers, server)
    el(a, "file").send_keys(path)
    wait(b, lambda d: offer_item(d) is not None, what="offer shown")
    problems = axe_problems(b, "offer", axe_js)
    # The offer is announced like any other event: it is a new line in the log's live region.
    assert offer_item(b).find_element(By.XPATH, "ancestor::ol").get_attribute("aria-live") == "polite"
    a.find_element(By.TAG_NAME, "body").send_keys("\ue00c", "\ue00c")   # Esc, Esc: a leaves
    wait(b, lambda d: "Stranger has disconnected." in status(d), what="partner left")
    assert offer_item(b).find_elements(By.TAG_NAME, "button") == []   # nothing left to answer
    assert "Not received: the chat ended." in offer_item(b).text
    problems += axe_problems(b, "after", axe_js)
    assert problems == []
