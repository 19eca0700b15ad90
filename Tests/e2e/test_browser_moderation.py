"""The page's side of PROTOCOL.md B.5 in Chromium, as a new user meets it: the first-visit rules and age step
(remembered across a reload), reporting a stranger (the confirmation, the chat's end, a new chat), and a browser
banned by three reporters (the 1008 close and, after a reload, the ban screen with its end time). The strangers
are version 2 clients over real sockets, holding identity cookies of their own from GET /status."""
import asyncio
import threading

from selenium.webdriver.common.by import By

from browser_helpers import browsers  # noqa: F401 (the fixture)
from browser_helpers import el, is_paired, log_text, start, state, status, wait
from test_b5_identity import new_cookie, started
from v2_helpers import NO_RATE
from wsclient import close_all, run


def test_first_visit_shows_the_rules_and_age_once(browsers, server_factory):
    srv = server_factory("--min-age", "18")
    d = browsers(accept_terms=False)
    d.get(srv.http + "/")
    wait(d, lambda d: el(d, "terms").is_displayed() and el(d, "min-age").text == "18", what="the rules step")
    assert not el(d, "start").is_displayed()
    assert el(d, "terms-link").get_attribute("href").endswith("/terms.html")
    el(d, "terms-accept").click()
    wait(d, lambda d: el(d, "start").is_displayed())
    d.refresh()
    wait(d, lambda d: el(d, "start").is_displayed(), what="no rules step after a reload")
    assert not el(d, "terms").is_displayed()
    # The rules are linked from the chat too.
    el(d, "start-button").click()
    wait(d, lambda d: "Looking" in status(d))
    assert el(d, "rules-link").get_attribute("href").endswith("/terms.html")


def test_report_a_stranger_then_start_a_new_chat(browsers, server_factory):
    srv = server_factory(*NO_RATE)
    d = browsers()
    start(d, srv)
    wait(d, lambda d: "Looking" in status(d))

    async def go():
        b = await started(srv, "b")
        await b.expect("paired")
        wait(d, is_paired)
        assert el(d, "report").is_displayed() and el(d, "block").is_displayed()
        el(d, "report").click()
        d.find_element(By.CSS_SELECTOR, "#report-panel input[value=abuse]").click()
        el(d, "report-send").click()
        await b.expect("partner_left")
        wait(d, lambda d: "You reported the stranger" in log_text(d), what="the confirmation")
        assert state(d) == "idle" and "Reported" in status(d)
        # After the chat: Block this stranger is still offered, Report is done.
        assert not el(d, "report").is_displayed() and el(d, "block").is_displayed()
        el(d, "next").click()   # New
        c = await started(srv, "c")
        await c.expect("paired")
        wait(d, is_paired, what="a new chat")
        await close_all(b, c)
    run(go())


def test_a_banned_browser_sees_why_and_until_when(browsers, server_factory):
    srv = server_factory("--ban-seconds", "600", *NO_RATE)
    d = browsers()
    start(d, srv)
    wait(d, lambda d: "Looking" in status(d))
    # The page got its identity cookie from /status (or the 101): Chromium keeps the Secure cookie on loopback.
    assert any(c["name"] == "uvchat_id" for c in d.get_cookies())

    async def go():
        for i in range(3):
            r = await started(srv, f"reporter{i}", cookie=new_cookie(srv.port))
            await r.expect("paired")
            wait(d, is_paired, what=f"paired with reporter {i}")
            await r.send({"type": "report", "reason": "spam"})
            await r.expect("reported")
            await r.close()
            if i < 2:
                wait(d, lambda d: "disconnected" in status(d), what="the chat ended")
                el(d, "next").click()   # New
                wait(d, lambda d: "Looking" in status(d))
    run(go())
    wait(d, lambda d: el(d, "gate").is_displayed() and "banned until" in el(d, "gate-text").text,
         timeout=10, what="the ban screen")
    assert el(d, "gate-title").text == "You cannot chat right now"
    d.refresh()
    wait(d, lambda d: el(d, "gate").is_displayed() and "banned until" in el(d, "gate-text").text,
         what="the ban screen after a reload")
    assert not el(d, "start").is_displayed()
