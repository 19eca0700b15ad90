"""The chat page in real headless Chromium (Debian's chromium and chromedriver, driven by Selenium) against a real
uvchatd: what a new user does, from Start to Stop, plus safety, accessibility and screenshots."""
import asyncio
import json
import os
import shutil
import signal
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ROOT, Server

SHOTS = os.path.join(ROOT, ".build", "screenshots")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browsers():
    drivers = []

    def make(width=1280, height=800):
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    f"--window-size={width},{height}", "--lang=en-US"]:
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        d.set_page_load_timeout(15)
        drivers.append(d)
        return d

    yield make
    for d in drivers:
        d.quit()


def wait(driver, predicate, timeout=8, what="condition"):
    return WebDriverWait(driver, timeout).until(lambda d: predicate(d), message=what)


def el(d, id_):
    return d.find_element(By.ID, id_)


def start(d, server, interests=()):
    d.get(server.http + "/")
    box = el(d, "interest-input")
    for tag in interests:
        box.send_keys(tag, Keys.ENTER)
    el(d, "start-button").click()


def status(d):
    return el(d, "status").text


def log_text(d):
    return el(d, "log").text


def paired_pair(browsers, server, interests=((), ())):
    a, b = browsers(), browsers()
    start(a, server, interests[0])
    wait(a, lambda d: "Looking" in status(d), what="a waiting")
    start(b, server, interests[1])
    for d in (a, b):
        wait(d, lambda d: "chatting with" in status(d) or "You both like" in status(d), what="paired")
    return a, b


def say(d, text):
    box = el(d, "text")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def test_two_browsers_pair_and_talk_both_ways(browsers, server):
    a, b = paired_pair(browsers, server)
    assert status(a) == "You're now chatting with a random stranger."
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
    wait(b, lambda d: el(d, "typing").is_displayed(), what="indicator shown")
    el(a, "text").send_keys(Keys.ENTER)   # the message clears it
    wait(b, lambda d: not el(d, "typing").is_displayed(), what="indicator cleared by the message")
    el(a, "text").send_keys("more")
    wait(b, lambda d: el(d, "typing").is_displayed(), what="indicator shown again")
    # Quiet for a while: the sender says it stopped typing, and the indicator goes.
    wait(b, lambda d: not el(d, "typing").is_displayed(), timeout=8, what="indicator cleared after quiet")


def test_escape_twice_ends_the_chat_and_new_pairs_again(browsers, server):
    a, b = paired_pair(browsers, server)
    body = a.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ESCAPE)
    assert el(a, "next").text == "Really?"
    body.send_keys(Keys.ESCAPE)
    wait(b, lambda d: "Stranger has disconnected." in status(d), what="partner sees it")
    assert "You have disconnected." in log_text(a)
    assert el(a, "next").text == "New"
    # New on both sides: they meet again with a fresh log.
    el(a, "next").click()
    el(b, "next").click()
    for d in (a, b):
        wait(d, lambda d: "chatting with a random stranger" in status(d), what="paired again")
    assert "You have disconnected." not in log_text(a)


def test_interests_show_you_both_like(browsers, server):
    a, b = paired_pair(browsers, server, interests=(("cats", "Music"), ("music",)))
    assert status(a) == "You both like music."
    assert status(b) == "You both like music."
    assert el(a, "notice").is_displayed() is False


def test_fallback_notice_when_no_interest_matches(browsers, server_factory):
    server = server_factory("--interest-timeout", "1")
    a, b = browsers(), browsers()
    start(a, server, ("knitting",))
    wait(a, lambda d: "who likes knitting" in status(d), what="countdown with the interest")
    start(b, server, ("chess",))
    for d in (a, b):
        wait(d, lambda d: "random stranger" in status(d), timeout=10, what="random fallback")
    assert "No one shared your interests" in el(a, "notice").text


def test_xss_payload_is_shown_as_text(browsers, server):
    a, b = paired_pair(browsers, server)
    payload = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
    say(a, payload)
    wait(b, lambda d: payload in log_text(d), what="payload shown literally")
    assert b.find_elements(By.CSS_SELECTOR, "#log img, #log script") == []
    assert b.title != "pwned"
    # Links are plain text, never clickable.
    say(a, "see https://example.com/x")
    wait(b, lambda d: "https://example.com/x" in log_text(d))
    assert b.find_elements(By.CSS_SELECTOR, "#log a") == []


def test_csp_header_and_no_third_party_requests(browsers, server):
    d = browsers()
    d.get(server.http + "/")
    entries = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(e.startswith(server.http) for e in entries), entries
    import urllib.request
    with urllib.request.urlopen(server.http + "/") as r:
        csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_title_changes_while_the_tab_is_hidden(browsers, server):
    a, b = paired_pair(browsers, server)
    first = b.current_window_handle
    b.switch_to.new_window("tab")       # the chat tab is now in the background
    hidden = b.execute_cdp_cmd("Runtime.evaluate", {"expression": "1"})  # keep the session alive
    assert hidden
    say(a, "are you there?")

    def chat_tab_title(_):
        targets = b.execute_cdp_cmd("Target.getTargets", {})["targetInfos"]
        titles = [t["title"] for t in targets if t["type"] == "page" and t["url"].startswith(server.http)]
        return any(t.startswith("(1) New message") for t in titles)
    wait(b, chat_tab_title, what="title shows the unread message")
    b.close()
    b.switch_to.window(first)
    wait(b, lambda d: d.title == "uvchat – talk to strangers", what="title restored on return")


def test_refused_message_goes_back_into_the_box(browsers, server_factory):
    server = server_factory("--rate-per-second", "0.1", "--rate-burst", "1")
    a, b = paired_pair(browsers, server)
    say(a, "first")
    wait(b, lambda d: "Stranger: first" in log_text(d))
    say(a, "second, too fast")
    wait(a, lambda d: "Not sent: You are sending messages too fast." in log_text(d), what="refusal shown inline")
    assert el(a, "text").get_attribute("value") == "second, too fast"
    assert "second, too fast" not in log_text(b)


def test_page_survives_a_server_restart(browsers, server_factory):
    server = server_factory()
    port = server.port
    a, b = paired_pair(browsers, server)
    assert server.stop() == 0
    wait(a, lambda d: "Reconnecting" in status(d) or "Connection lost" in log_text(d), what="loss noticed")
    assert "Connection lost. This chat has ended." in log_text(a)
    again = Server([]).start(port=port)
    try:
        for d in (a, b):
            wait(d, lambda d: "chatting with a random stranger" in status(d), timeout=25, what="back and paired")
        assert "previous chat ended" in el(a, "notice").text
    finally:
        again.stop()


def test_accessibility_has_no_serious_violations(browsers, server):
    import axe_core_python
    axe_js = open(os.path.join(os.path.dirname(axe_core_python.__file__), "axe.min.js")).read()
    d = browsers()
    problems = []
    for step in ("start", "chat"):
        if step == "start":
            d.get(server.http + "/")
        else:
            el(d, "start-button").click()
            wait(d, lambda d: "Looking" in status(d))
        d.execute_script(axe_js)
        result = d.execute_async_script("const done = arguments[0]; axe.run(document).then(r => done(r.violations));")
        problems += [(step, v["id"], v["impact"], v["help"]) for v in result if v["impact"] in ("serious", "critical")]
    assert problems == []


@pytest.mark.parametrize("size", [(1280, 800), (360, 740)])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(browsers, server, size, scheme):
    os.makedirs(SHOTS, exist_ok=True)
    a, b = browsers(*size), browsers(*size)
    for d in (a, b):
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
        if size[0] < 500:   # a desktop window cannot be that narrow: emulate the phone's viewport
            d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                              {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": True})
    start(a, server, ("music",))
    wait(a, lambda d: "Looking" in status(d))
    start(b, server, ("music", "cats"))
    wait(a, lambda d: "You both like" in status(d))
    say(a, "hi! what are you listening to?")
    wait(b, lambda d: "listening" in log_text(d))
    say(b, "some old jazz records, you?")
    wait(a, lambda d: "jazz" in log_text(d))
    el(b, "text").send_keys("typing")
    wait(a, lambda d: el(d, "typing").is_displayed())
    name = f"chat-{size[0]}x{size[1]}-{scheme}.png"
    a.save_screenshot(os.path.join(SHOTS, name))
    # The layout fits: nothing scrolls sideways at phone width.
    assert a.execute_script("return window.innerWidth") == size[0]
    assert a.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert el(a, "text").is_displayed() and el(a, "send").is_displayed()
