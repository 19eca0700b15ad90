"""Fixtures and helpers shared by the browser suites (test_browser.py, test_browser_resume.py): Debian's headless
chromium driven by Selenium, against a real uvchatd (conftest.py's `server` and `server_factory`)."""
import shutil

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
TITLE = "uvchat – talk to strangers"
# What the page stores once the default rules (/terms.html) and minimum age (13) were accepted.
ACCEPTED_TERMS = "try { localStorage.setItem('uvchat.terms', '13|/terms.html') } catch (e) {}"


@pytest.fixture
def browsers():
    drivers = []

    def make(width=1280, height=800, scheme=None, args=(), binary=None, accept_terms=True):
        """`args`: more Chromium switches (fake media devices, for one); `binary`: another Chromium launcher
        (test_browser_webrtc.py's starts it inside a network namespace); `accept_terms`: a browser that has
        accepted the default rules and age before (the first-visit step is test_browser_moderation.py's)."""
        opts = webdriver.ChromeOptions()
        opts.binary_location = binary or CHROMIUM   # Debian's build: selenium-manager never downloads a browser
        for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--lang=en-US", "--window-size=1280,900", *args]:
            opts.add_argument(arg)
        d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        d.set_page_load_timeout(15)
        drivers.append(d)
        # The viewport itself, not the window, has the asked-for size (a headless window has no chrome to
        # subtract, and a desktop window cannot be made 360 px wide).
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500})
        if accept_terms:
            d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": ACCEPTED_TERMS})
        if scheme:
            d.execute_cdp_cmd("Emulation.setEmulatedMedia",
                              {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
        return d

    yield make
    for d in drivers:
        d.quit()


def wait(driver, predicate, timeout=8, what="condition"):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: predicate(d), message=what)


def el(d, id_):
    return d.find_element(By.ID, id_)


def start(d, server, interests=()):
    """Open the page from `server` (anything with an `http` origin) and press Start."""
    d.get(server.http + "/")
    box = el(d, "interest-input")
    for tag in interests:
        box.send_keys(tag, Keys.ENTER)
    el(d, "start-button").click()


def status(d):
    return el(d, "status").text


def log_text(d):
    return el(d, "log").text


def typing(d):
    return el(d, "typing").text


def state(d):
    return d.find_element(By.ID, "app").get_attribute("data-state")


def is_paired(d):
    return state(d) == "paired"


def pair_started(browsers, start_a, start_b, **kw):
    """Two browsers: a is started (by `start_a(driver)`) and waits, then b is started; both end up paired."""
    a, b = browsers(**kw), browsers(**kw)
    start_a(a)
    wait(a, lambda d: "Looking" in status(d), what="a waiting")
    start_b(b)
    for d in (a, b):
        wait(d, is_paired, what="paired")
    return a, b


def paired_pair(browsers, server, interests=((), ()), **kw):
    return pair_started(browsers, lambda d: start(d, server, interests[0]), lambda d: start(d, server, interests[1]),
                        **kw)


def say(d, text):
    box = el(d, "text")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


# Runs before the page's own script (CDP injection is not subject to the page's CSP): records when each
# WebSocket is made, with which subprotocols, and how many are alive at once.
SOCKET_SPY = """
(() => {
  const Real = window.WebSocket;
  window.__ws = { made: [], protocols: [], live: 0, maxLive: 0 };
  window.WebSocket = function (url, protocols) {
    const s = new Real(url, protocols);
    __ws.made.push(performance.now());
    __ws.protocols.push(protocols);
    __ws.live += 1;
    __ws.maxLive = Math.max(__ws.maxLive, __ws.live);
    s.addEventListener('close', () => { __ws.live -= 1; });
    return s;
  };
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
})();
"""
