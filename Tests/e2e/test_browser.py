"""The chat page in real headless Chromium (Debian's chromium and chromedriver, driven by Selenium) against a real
uvchatd: what a new user does, from Start to Stop, plus safety, accessibility and screenshots."""
import importlib.util
import os
import time
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browser_helpers import (SOCKET_SPY, TITLE, browsers, el, is_paired, log_text, paired_pair,  # noqa: F401
                             say, start, status, typing, wait)
from conftest import ROOT, Server

SHOTS = os.path.join(ROOT, ".build", "screenshots")
IMPACTS = ("serious", "critical")


def test_two_browsers_pair_and_talk_both_ways(browsers, server):
    a, b = paired_pair(browsers, server)
    assert status(a) == "You're now chatting with a random stranger."
    assert status(b) == "You're now chatting with a random stranger."
    say(a, "hello from a")
    wait(b, lambda d: "Stranger: hello from a" in log_text(d), what="b got a's message")
    say(b, "hi from b")
    wait(a, lambda d: "Stranger: hi from b" in log_text(d), what="a got b's message")
    assert "You: hello from a" in log_text(a)
    assert el(a, "text").get_attribute("value") == ""
    # Shift+Enter is a new line, not a send.
    box = el(a, "text")
    box.send_keys("line one", Keys.SHIFT, Keys.ENTER, Keys.SHIFT, "line two", Keys.ENTER)
    wait(b, lambda d: "line one\nline two" in log_text(d), what="multi-line message")
    assert el(b, "online").text == "2"   # b joined second: its first `online` counts both


def test_typing_indicator_appears_and_clears(browsers, server):
    a, b = paired_pair(browsers, server)
    el(a, "text").send_keys("typing something")
    wait(b, lambda d: typing(d) == "Stranger is typing…", what="indicator shown")
    el(a, "text").send_keys(Keys.ENTER)   # the message clears it
    wait(b, lambda d: typing(d) == "" and "typing something" in log_text(d), what="cleared by the message")
    el(a, "text").send_keys("more")
    wait(b, lambda d: typing(d) != "", what="indicator shown again")
    # Emptying the box says typing:false at once.
    el(a, "text").send_keys(Keys.BACKSPACE * 4)
    wait(b, lambda d: typing(d) == "", timeout=2, what="cleared when the box is emptied")
    el(a, "text").send_keys("and again")
    wait(b, lambda d: typing(d) != "", what="indicator shown a third time")
    # Quiet for about 3 s: the sender says it stopped, and the indicator goes.
    t0 = time.time()
    wait(b, lambda d: typing(d) == "", timeout=8, what="cleared after quiet")
    assert 2 < time.time() - t0 < 5   # our 3 s idle rule, not the 6 s stale fallback
    # The partner leaving clears it too.
    el(a, "text").send_keys("!")
    wait(b, lambda d: typing(d) != "", what="indicator before leaving")
    body = a.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ESCAPE, Keys.ESCAPE)
    wait(b, lambda d: "Stranger has disconnected." in status(d), what="partner left")
    assert typing(b) == ""


def test_escape_twice_ends_the_chat_and_new_pairs_again(browsers, server):
    a, b = paired_pair(browsers, server)
    body = a.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ESCAPE)
    assert el(a, "next").text == "Really?"
    assert is_paired(b)   # nothing happens before the confirm step
    body.send_keys(Keys.ESCAPE)
    wait(b, lambda d: "Stranger has disconnected." in status(d), what="partner sees it")
    assert "Stranger has disconnected." in log_text(b)
    assert "You have disconnected." in log_text(a)
    assert el(a, "next").text == "New" and el(b, "next").text == "New"
    # New on both sides (a by Esc, b by the button) on the same sockets: both look again. Version 2 never pairs
    # them with each other again (repeat partners, PROTOCOL.md B.1); a newcomer meets a (the longest waiting),
    # with a fresh log.
    body.send_keys(Keys.ESCAPE)
    wait(a, lambda d: "Looking" in status(d), what="a looks again")
    el(b, "next").click()
    wait(b, lambda d: "Looking" in status(d), what="b looks again")
    for d in (a, b):
        assert el(d, "next").text == "Stop"
    time.sleep(0.5)
    assert not is_paired(a) and not is_paired(b)
    c = browsers()
    start(c, server)
    for d in (a, c):
        wait(d, is_paired, what="a meets the newcomer")
    assert "You have disconnected." not in log_text(a)
    assert not is_paired(b)
    say(c, "again")
    wait(a, lambda d: "Stranger: again" in log_text(d))


def test_interests_show_you_both_like(browsers, server):
    a, b = paired_pair(browsers, server, interests=(("cats", "Music"), ("music",)))
    assert status(a) == "You both like music."
    assert status(b) == "You both like music."
    assert not el(a, "notice").is_displayed()
    # The tags were normalized the way the server does it.
    assert a.execute_script("return [...document.querySelectorAll('#tags li')].map(li => li.firstChild.data)") == ["cats", "music"]


def test_stop_while_looking_leaves_the_queue(browsers, server):
    a, b = browsers(), browsers()
    start(a, server)
    wait(a, lambda d: "Looking" in status(d))
    body = a.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ESCAPE, Keys.ESCAPE)
    wait(a, lambda d: status(d).startswith("Stopped looking"))
    start(b, server)
    wait(b, lambda d: "Looking" in status(d))
    time.sleep(1)
    assert not is_paired(a) and not is_paired(b)   # a stopped: it is not in the queue any more
    body.send_keys(Keys.ESCAPE)                   # New, on the same socket
    for d in (a, b):
        wait(d, is_paired, what="paired after New")


def test_fallback_notice_when_no_interest_matches(browsers, server_factory):
    server = server_factory("--interest-timeout", "1")
    a, b = browsers(), browsers()
    start(a, server, ("knitting",))
    wait(a, lambda d: "who likes knitting" in status(d), what="the interest being tried")
    assert "then anyone" in el(a, "countdown").text   # the visible countdown
    start(b, server, ("chess",))
    for d in (a, b):
        wait(d, lambda d: "random stranger" in status(d), timeout=10, what="random fallback")
    assert "No one shared your interests" in el(a, "notice").text
    assert not el(a, "countdown").is_displayed()


def test_xss_payload_is_shown_as_text(browsers, server):
    a, b = paired_pair(browsers, server)
    payload = '<img src=x onerror=alert(1)><script>document.title="pwned"</script>'
    say(a, payload)
    wait(b, lambda d: payload in log_text(d), what="payload shown literally")
    assert b.find_elements(By.CSS_SELECTOR, "#log *") == [li for li in b.find_elements(By.CSS_SELECTOR, "#log li, #log .who")]
    assert len(b.find_elements(By.TAG_NAME, "img")) == 1   # the logo, nothing else
    assert b.title == TITLE
    # Links are plain text, never clickable.
    say(a, "see https://example.com/x")
    wait(b, lambda d: "https://example.com/x" in log_text(d))
    assert b.find_elements(By.CSS_SELECTOR, "#log a") == []


def test_csp_header_and_no_third_party_requests(browsers, server):
    d = browsers()
    d.get(server.http + "/")
    entries = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(e.startswith(server.http) for e in entries), entries
    with urllib.request.urlopen(server.http + "/") as r:
        csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    # The page runs under that policy without a single violation, and stays small.
    d.execute_script("window.__csp = []; document.addEventListener('securitypolicyviolation', e => __csp.push(e.violatedDirective))")
    el(d, "start-button").click()
    wait(d, lambda d: "Looking" in status(d))
    assert d.execute_script("return window.__csp") == []
    size = sum(os.path.getsize(os.path.join(ROOT, "www", f)) for f in os.listdir(os.path.join(ROOT, "www")))
    # Version 2 (resume, acks, a reload that keeps the chat) made app.js about 15 KB larger; images with consent
    # (B.3: offers, the canvas re-encode, the blurred view) about 20 KB more; calls (B.4: the prompt, the
    # connection and its signals, the call panel with its video) about 22 KB more; identity and moderation (B.5:
    # the first-visit rules and terms.html, Report and Block, the ban and login screens) about 11 KB more.
    assert size < 104_000


def test_title_changes_while_the_tab_is_hidden(browsers, server):
    a, b = paired_pair(browsers, server)
    chat_tab = b.current_window_handle
    b.switch_to.new_window("tab")       # the chat tab is now really in the background: document.hidden is true
    say(a, "are you there?")

    def chat_tab_titles():
        targets = b.execute_cdp_cmd("Target.getTargets", {})["targetInfos"]
        return [t["title"] for t in targets if t["type"] == "page" and t["url"].startswith(server.http)]
    wait(b, lambda _: "(1) New message – uvchat" in chat_tab_titles(), what="title shows the unread message")
    say(a, "hello?")
    wait(b, lambda _: "(2) New message – uvchat" in chat_tab_titles(), what="title counts")
    b.close()
    b.switch_to.window(chat_tab)
    wait(b, lambda d: d.title == TITLE, what="title restored on return")


def test_refused_message_goes_back_into_the_box(browsers, server_factory):
    server = server_factory("--rate-per-second", "0.1", "--rate-burst", "1")
    a, b = paired_pair(browsers, server)
    say(a, "first")
    wait(b, lambda d: "Stranger: first" in log_text(d))
    say(a, "second, too fast")
    wait(a, lambda d: "Not sent: You are sending messages too fast." in log_text(d), what="refusal shown inline")
    assert el(a, "text").get_attribute("value") == "second, too fast"
    assert "second, too fast (not sent)" in log_text(a)
    assert "second, too fast" not in log_text(b)


def test_too_long_is_refused_and_kept(browsers, server_factory):
    # A server with a smaller limit than the page knows: its too_long puts the text back.
    server = server_factory("--max-text-scalars", "10")
    a, b = paired_pair(browsers, server)
    say(a, "this is longer than ten")
    wait(a, lambda d: "Not sent: Your message is too long." in log_text(d), what="too_long shown inline")
    assert el(a, "text").get_attribute("value") == "this is longer than ten"
    # The page's own limit counts Unicode scalars: 2000 emoji (4000 UTF-16 units) are fine, 2001 are not.
    set_text = ("const t = document.getElementById('text'); t.value = '\U0001F600'.repeat(arguments[0]);"
                "t.dispatchEvent(new Event('input'))")
    a.execute_script(set_text, 2000)
    assert el(a, "counter").text == "2000 / 2000"
    assert "over" not in el(a, "counter").get_attribute("class")
    a.execute_script(set_text, 2001)
    assert el(a, "counter").text == "2001 / 2000"
    el(a, "text").send_keys(Keys.ENTER)
    wait(a, lambda d: "too long (2001 / 2000)" in log_text(d))
    assert a.execute_script("return [...document.getElementById('text').value].length") == 2001


def test_autoscroll_stops_while_reading_back(browsers, server):
    a, b = paired_pair(browsers, server, width=360, height=740)
    burst = ("const t = document.getElementById('text'); t.value = arguments[0] + '\\nline'.repeat(8);"
             "document.getElementById('composer').requestSubmit()")
    for i in range(8):
        b.execute_script(burst, f"message {i}")
    wait(a, lambda d: "message 7" in log_text(d))
    at_bottom = "const l = document.getElementById('log'); return l.scrollHeight - l.scrollTop - l.clientHeight < 2"
    assert a.execute_script("const l = document.getElementById('log'); return l.scrollHeight > 2 * l.clientHeight")
    assert a.execute_script(at_bottom)   # followed the conversation
    a.execute_script("document.getElementById('log').scrollTop = 0")   # the person scrolls up to read
    b.execute_script(burst, "one more")
    wait(a, lambda d: "one more" in log_text(d))
    assert a.execute_script("return document.getElementById('log').scrollTop") == 0
    assert el(a, "jump").is_displayed()
    el(a, "jump").click()
    assert a.execute_script(at_bottom) and not el(a, "jump").is_displayed()


def test_save_transcript_downloads_a_text_file(browsers, server, tmp_path):
    a, b = paired_pair(browsers, server)
    a.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    say(a, "hello there")
    say(b, "hi <b>you</b>")
    wait(a, lambda d: "Stranger: hi <b>you</b>" in log_text(d))
    el(a, "save").click()
    wait(a, lambda _: [f for f in os.listdir(tmp_path) if f.endswith(".txt")], what="a .txt download")
    name = [f for f in os.listdir(tmp_path) if f.endswith(".txt")][0]
    body = open(os.path.join(tmp_path, name), encoding="utf-8").read()
    assert name.startswith("uvchat-")
    assert "You're now chatting with a random stranger." in body
    assert "You: hello there\nStranger: hi <b>you</b>\n" in body


def test_page_survives_a_server_restart(browsers, server_factory):
    server = server_factory()
    port = server.port
    a, b = browsers(), browsers()
    a.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": SOCKET_SPY})
    start(a, server)
    wait(a, lambda d: "Looking" in status(d))
    start(b, server)
    for d in (a, b):
        wait(d, is_paired)
    assert server.stop() == 0   # drains: close 1001, and (version 2) nobody is told partner_left
    for d in (a, b):
        wait(d, lambda d: status(d) == "Connection lost, reconnecting…", what="loss noticed")
        assert "Connection lost, reconnecting…" in log_text(d)
    time.sleep(3)   # several failed attempts while nobody listens
    again = Server([]).start(port=port)
    try:
        # The page tries to resume its chat; a restarted server has never heard of it (resume_failed): the chat
        # is over, said plainly, and New starts another one on the same socket.
        for d in (a, b):
            wait(d, lambda d: status(d) == "The chat ended while you were away.", timeout=25, what="resume refused")
            assert el(d, "next").text == "New"
            assert d.execute_script("return sessionStorage.getItem('uvchat.chat')") is None
        for d in (a, b):
            el(d, "next").click()
        for d in (a, b):
            wait(d, is_paired, what="paired again")
        say(a, "still here")
        wait(b, lambda d: "Stranger: still here" in log_text(d), what="usable after the restart")
    finally:
        assert again.stop() == 0
    spy = a.execute_script("return window.__ws")
    assert spy["maxLive"] == 1   # one socket at a time
    assert all(p == ["uvchat.2"] for p in spy["protocols"]), spy["protocols"]   # each one offers version 2
    # Exponential backoff: 0.5 s, then 1 s (the first gap here), doubling, ±30% jitter: each gap longer than the last.
    gaps = [y - x for x, y in zip(spy["made"][1:], spy["made"][2:])]
    assert len(gaps) >= 2, spy
    assert 650 < gaps[0] < 1400 and all(g2 > g1 for g1, g2 in zip(gaps, gaps[1:])), gaps


def axe_source():
    # Prefer the newest axe-core any installed package bundles; each ships axe.min.js beside its __init__.py.
    for pkg in ("axe_playwright_python", "axe_core_python"):
        spec = importlib.util.find_spec(pkg)
        if spec and spec.origin:
            path = os.path.join(os.path.dirname(spec.origin), "axe.min.js")
            if os.path.exists(path):
                return open(path, encoding="utf-8").read()
    pytest.fail("no axe.min.js: install axe-core-python (Tests/requirements.txt)")


def axe_problems(d, step, axe_js):
    d.execute_script(axe_js)
    result = d.execute_async_script(
        "const done = arguments[0]; axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations));")
    return [(step, v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
            for v in result if v["impact"] in IMPACTS]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_accessibility_has_no_serious_violations(browsers, server, scheme):
    axe_js = axe_source()
    a, b = browsers(scheme=scheme), browsers(scheme=scheme)
    a.get(server.http + "/")
    el(a, "interest-input").send_keys("music", Keys.ENTER)
    problems = axe_problems(a, "start", axe_js)
    el(a, "start-button").click()
    wait(a, lambda d: "Looking" in status(d))
    problems += axe_problems(a, "waiting", axe_js)
    start(b, server, ("music",))
    wait(a, is_paired)
    say(a, "hello")
    say(b, "hi there")
    el(b, "text").send_keys("x")
    wait(a, lambda d: "hi there" in log_text(d) and typing(d))
    problems += axe_problems(a, "paired", axe_js)
    b.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE, Keys.ESCAPE)
    wait(a, lambda d: "disconnected" in status(d))
    problems += axe_problems(a, "partner left", axe_js)
    assert problems == []


def test_keyboard_only_from_start_to_chat(browsers, server):
    a, b = browsers(), browsers()
    a.get(server.http + "/")
    # Tab reaches the interests field first; Enter on an empty field starts.
    a.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    focused = a.switch_to.active_element
    assert focused.get_attribute("id") == "interest-input"
    focused.send_keys("books", Keys.ENTER, Keys.BACKSPACE)   # Backspace in an empty field removes the last tag
    assert a.find_elements(By.CSS_SELECTOR, "#tags li") == []
    focused.send_keys("books", Keys.ENTER, Keys.ENTER)
    wait(a, lambda d: "who likes books" in status(d))
    assert a.switch_to.active_element.get_attribute("id") == "text"
    start(b, server, ("books",))
    wait(a, is_paired)
    # Focus is visible: the focused control draws an outline.
    outline = a.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


@pytest.mark.parametrize("size", [(1280, 800), (360, 740)])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(browsers, server, size, scheme):
    os.makedirs(SHOTS, exist_ok=True)
    w, h = size
    a, b = browsers(w, h, scheme), browsers(w, h, scheme)
    a.get(server.http + "/")
    for tag in ("music", "jazz"):
        el(a, "interest-input").send_keys(tag, Keys.ENTER)
    wait(a, lambda d: el(d, "online").text != "–")
    a.save_screenshot(os.path.join(SHOTS, f"start-{w}x{h}-{scheme}.png"))
    start(b, server, ("music", "books"))
    wait(b, lambda d: "Looking" in status(d) and el(d, "countdown").text)
    b.save_screenshot(os.path.join(SHOTS, f"waiting-{w}x{h}-{scheme}.png"))
    el(a, "start-button").click()
    wait(a, lambda d: "You both like" in status(d))
    say(b, "hi! what are you listening to?")
    wait(a, lambda d: "listening" in log_text(d))
    say(a, "some old jazz records, Coltrane mostly. you?")
    wait(b, lambda d: "jazz" in log_text(d))
    el(b, "text").send_keys("Kind of Blue on repeat")
    wait(a, lambda d: typing(d))
    a.save_screenshot(os.path.join(SHOTS, f"chat-{w}x{h}-{scheme}.png"))
    # The layout fits: nothing scrolls sideways, and the composer is on screen.
    assert a.execute_script("return window.innerWidth") == w
    assert a.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    for id_ in ("text", "send", "next"):
        assert a.execute_script("const r = arguments[0].getBoundingClientRect(); return r.bottom <= innerHeight && r.right <= innerWidth",
                                el(a, id_)), id_
