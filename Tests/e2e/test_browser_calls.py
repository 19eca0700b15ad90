"""The page's side of PROTOCOL.md B.4 (voice and video calls) in real headless Chromium against a real uvchatd, on
loopback, with Chromium's fake camera and microphone: the call buttons only while paired, the callee's prompt with
Accept / Decline, getUserMedia only after Accept, the states both sides show, mute and camera, hang up, and every
way a call ends (hang up, the partner's end, Stop, the partner's drop, our own socket's drop, a refused
permission, a version 1 partner). Each end must let the camera and microphone go (every track `ended`), close the
RTCPeerConnection and empty the video elements, and the chat goes on working through all of it.

On loopback the media may or may not flow (whether ICE finds a path depends on the machine's interfaces), so this
suite asserts the call's connecting-or-connected state only; test_browser_webrtc.py runs real calls, direct and
through TURN, inside network namespaces of its own and checks frames arrive."""
import os

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browser_helpers import browsers, el, is_paired, log_text, say, start, status, wait  # noqa: F401
from call_helpers import DENIED_MEDIA, FAKE_MEDIA, call_buttons_shown, call_status, phase, released, rtc, shown, spy
from test_browser import SHOTS, axe_problems, axe_source
from test_browser_resume import FAST, Link
from v2_helpers import raw_v2
from wsclient import RawWS

LIVE = ("connecting", "connected")


def call_pair(browsers, server, a_args=FAKE_MEDIA, b_args=FAKE_MEDIA, a_origin=None, **kw):
    """Two pages paired with each other (a waited first), each with the RTC spy; a may come through another
    origin (a relay)."""
    a, b = browsers(args=a_args, **kw), browsers(args=b_args, **kw)
    for d in (a, b):
        spy(d)
    start(a, a_origin or server)
    wait(a, lambda d: "Looking" in status(d), what="a waiting")
    assert not call_buttons_shown(a)
    start(b, server)
    for d in (a, b):
        wait(d, is_paired, what="paired")
        wait(d, call_buttons_shown, what="call buttons while paired")
    return a, b


def ring(a, b, video=True):
    """a asks for a call; b shows the prompt."""
    el(a, "call-video" if video else "call-voice").click()
    wait(a, lambda d: phase(d) == "ringing", what="a ringing")
    wait(b, lambda d: phase(d) == "incoming", what="b sees the prompt")


def connect(a, b, video=True):
    ring(a, b, video)
    el(b, "call-accept").click()
    for d in (a, b):
        wait(d, lambda d: phase(d) in LIVE, what="call starting")
        wait(d, lambda d: rtc(d)["pcs"], what="an RTCPeerConnection")


def both_ended(a, b, a_says, b_says, what="call ended"):
    for d, says in ((a, a_says), (b, b_says)):
        wait(d, lambda d: phase(d) in ("ended", "missed") and says in log_text(d), what=f"{what}: {says}")
        wait(d, released, what="camera, microphone and connection released")


def fits(d):
    return d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def on_screen(d, id_):
    return d.execute_script("const r = arguments[0].getBoundingClientRect(); "
                            "return r.width > 0 && r.bottom <= innerHeight && r.right <= innerWidth", el(d, id_))


def test_buttons_only_while_paired_decline_and_cancel(browsers, server):
    axe_js = axe_source()
    d = browsers(args=FAKE_MEDIA)
    d.get(server.http + "/")
    assert not call_buttons_shown(d) and not shown(d, "call")   # the start screen
    d.quit()
    a, b = call_pair(browsers, server)
    ring(a, b, video=True)
    assert call_status(a) == "Calling the stranger…"
    assert shown(a, "call-hangup") and el(a, "call-hangup").text == "Cancel"
    assert not call_buttons_shown(a) and not call_buttons_shown(b)   # one call at a time
    assert call_status(b) == "Stranger wants a video call"
    assert shown(b, "call-accept") and shown(b, "call-decline") and not shown(b, "call-hangup")
    assert rtc(b)["asks"] == 0 and rtc(a)["asks"] == 0   # nobody's camera is asked for while it rings
    os.makedirs(SHOTS, exist_ok=True)
    b.save_screenshot(os.path.join(SHOTS, "call-incoming-1280x800.png"))
    problems = axe_problems(b, "incoming call", axe_js)
    el(b, "call-decline").click()
    wait(a, lambda d: phase(d) == "declined" and "Stranger declined the call." in log_text(d), what="a told")
    assert call_status(a) == "Stranger declined the call."
    assert phase(b) == "declined" and "You declined the call." in log_text(b)
    assert rtc(b)["asks"] == 0 and rtc(a)["asks"] == 0 and rtc(a)["pcs"] == [] == rtc(b)["pcs"]
    for d in (a, b):
        wait(d, call_buttons_shown, what="buttons back after the decline")
    # The other way, voice only, and the caller gives up before an answer.
    ring(b, a, video=False)
    assert call_status(a) == "Stranger wants a voice call"
    el(b, "call-hangup").click()
    wait(a, lambda d: phase(d) == "missed" and "Stranger cancelled the call." in log_text(d), what="a told")
    assert "You cancelled the call." in log_text(b) and not shown(a, "call-accept")
    assert rtc(a)["asks"] == 0 and rtc(b)["asks"] == 0
    # The chat never stopped; and once it ends, the buttons go.
    say(a, "still here")
    wait(b, lambda d: "Stranger: still here" in log_text(d))
    b.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE, Keys.ESCAPE)
    for d in (a, b):
        wait(d, lambda d: not is_paired(d) and not call_buttons_shown(d), what="no buttons once the chat ended")
    assert problems == []


@pytest.mark.parametrize("size,scheme", [((1280, 800), "light"), ((360, 740), "dark")])
def test_video_call_talk_mute_camera_and_hang_up(browsers, server, size, scheme):
    w, h = size
    a, b = call_pair(browsers, server, width=w, height=h, scheme=scheme)
    ring(a, b)
    el(b, "call-accept").click()
    # The callee asks for camera and microphone at once (Accept was the person's yes); the caller when it starts.
    wait(b, lambda d: rtc(d)["asks"] == 1, what="b asks for media after Accept")
    for d in (a, b):
        wait(d, lambda d: phase(d) in LIVE, what="connecting")
        wait(d, lambda d: d.execute_script("return document.getElementById('local-video').videoWidth") > 0,
             what="own preview playing")
        r = rtc(d)
        assert r["asks"] == 1 and r["errors"] == []
        assert [t[:2] for t in r["tracks"]] == [["audio", "live"], ["video", "live"]], r
        assert r["configs"] == [{"iceServers": [], "iceTransportPolicy": "all"}]   # the server's ice, as it is
        assert shown(d, "stage") and shown(d, "call-mute") and shown(d, "call-camera") and shown(d, "call-hangup")
        assert call_status(d) in ("Connecting the call…", "Video call with Stranger")
    assert el(a, "local-video").get_attribute("muted") is not None   # one's own preview never plays one's voice
    # Mute and camera are switches: pressed means off, and the track says so.
    el(a, "call-mute").click()
    assert el(a, "call-mute").get_attribute("aria-pressed") == "true"
    el(a, "call-camera").click()
    assert el(a, "call-camera").get_attribute("aria-pressed") == "true"
    assert [t[2] for t in rtc(a)["tracks"]] == [False, False]
    el(a, "call-mute").click()
    el(a, "call-camera").click()
    assert [t[2] for t in rtc(a)["tracks"]] == [True, True]
    assert el(a, "call-mute").get_attribute("aria-pressed") == "false"
    # The chat goes on during the call, both ways.
    say(a, "can you see me?")
    wait(b, lambda d: "Stranger: can you see me?" in log_text(d))
    say(b, "yes!")
    wait(a, lambda d: "Stranger: yes!" in log_text(d))
    os.makedirs(SHOTS, exist_ok=True)
    a.save_screenshot(os.path.join(SHOTS, f"call-video-{w}x{h}-{scheme}.png"))
    for d in (a, b):   # a phone's width: nothing scrolls sideways, the controls and the composer are on screen
        assert fits(d)
        for id_ in ("call-hangup", "call-mute", "text", "send"):
            assert on_screen(d, id_), id_
    problems = axe_problems(a, "video call", axe_source())   # labels, and contrast in both schemes
    assert problems == []
    el(a, "call-hangup").click()
    both_ended(a, b, "You ended the call.", "Stranger ended the call.")
    assert call_status(b) == "Stranger ended the call."
    for d in (a, b):
        assert not shown(d, "stage") and not shown(d, "call-hangup")
        wait(d, call_buttons_shown, what="buttons back after the call")
        assert rtc(d)["csp"] == []   # srcObject streams need nothing from the page's CSP
    say(b, "bye")
    wait(a, lambda d: "Stranger: bye" in log_text(d))


def test_voice_call_then_stop_ends_it_on_both_sides(browsers, server):
    a, b = call_pair(browsers, server)
    connect(a, b, video=False)
    for d in (a, b):
        r = rtc(d)
        assert r["asks"] == 1 and [t[0] for t in r["tracks"]] == ["audio"], r   # no camera for a voice call
        assert not shown(d, "stage") and not shown(d, "call-camera") and shown(d, "call-mute")
    b.save_screenshot(os.path.join(SHOTS, "call-voice-1280x800.png"))
    # Stop (Esc, Esc) on b ends the chat, and with it the call: a hears only partner_left.
    b.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE, Keys.ESCAPE)
    both_ended(a, b, "The call ended with the chat.", "The call ended with the chat.")
    assert "Stranger has disconnected." in log_text(a)
    for d in (a, b):
        assert not call_buttons_shown(d)


def test_permission_denied_is_said_and_ends_the_call(browsers, server):
    # b's browser refuses every permission prompt: b is asked after its Accept, and says why the call ended.
    a, b = call_pair(browsers, server, b_args=DENIED_MEDIA)
    ring(a, b, video=True)
    el(b, "call-accept").click()
    wait(b, lambda d: phase(d) == "denied", what="b denied")
    assert rtc(b)["errors"] == ["NotAllowedError"]
    assert call_status(b).startswith("The call ended: the browser did not allow this page to use your camera and "
                                      "microphone.") and "Your chat goes on." in call_status(b)
    b.save_screenshot(os.path.join(SHOTS, "call-denied-1280x800.png"))
    wait(a, lambda d: phase(d) == "ended" and "Stranger ended the call." in log_text(d), what="a told by b's end")
    for d in (a, b):
        wait(d, released, what="released")
        wait(d, call_buttons_shown, what="buttons back")   # not a dead button: b may try again
    # The other way: b calls (a voice call), a accepts, b's own start finds the microphone blocked.
    ring(b, a, video=False)
    el(a, "call-accept").click()
    wait(b, lambda d: phase(d) == "denied" and "did not allow this page to use your microphone." in call_status(d),
         what="b denied as the caller")
    wait(a, lambda d: phase(d) == "ended" and log_text(d).count("Stranger ended the call.") == 2, what="a told again")
    for d in (a, b):
        wait(d, released, what="released")
    say(b, "sorry, no camera today")
    wait(a, lambda d: "Stranger: sorry, no camera today" in log_text(d))


def test_version_1_partner_cannot_take_calls(browsers, server):
    a = browsers(args=FAKE_MEDIA)
    spy(a)
    start(a, server)
    wait(a, lambda d: "Looking" in status(d))
    v1 = RawWS(server.port)   # no subprotocol: version 1, queued at connect
    try:
        assert v1.recv_json(keep_online=True)["type"] == "online"
        assert v1.recv_json()["type"] == "paired"
        wait(a, call_buttons_shown, what="buttons (the page cannot know yet)")
        el(a, "call-video").click()
        wait(a, lambda d: phase(d) == "unavailable", what="the server's decline")
        assert call_status(a) == "The stranger can't take calls." and "The stranger can't take calls." in log_text(a)
        assert not call_buttons_shown(a)   # for the rest of this chat
        assert rtc(a)["asks"] == 0
        say(a, "hello v1")
        got = v1.recv_json()
        while got["type"] == "typing":
            got = v1.recv_json()
        assert got == {"type": "message", "text": "hello v1"}   # nothing of the call reached it
    finally:
        v1.close()


def test_partner_drop_ends_the_call(browsers, server):
    # The caller is a raw version 2 client: it sees exactly what the page sends it, then drops without a close.
    a = browsers(args=FAKE_MEDIA)
    spy(a)
    start(a, server)
    wait(a, lambda d: "Looking" in status(d))
    r = raw_v2(server.port)
    try:
        r.send_json({"type": "start"})
        assert r.recv_json()["type"] == "paired"
        wait(a, call_buttons_shown)
        r.send_json({"type": "call", "action": "request", "video": True})
        wait(a, lambda d: phase(d) == "incoming" and call_status(d) == "Stranger wants a video call")
        el(a, "call-accept").click()
        got = r.recv_json()
        assert got == {"type": "call", "action": "start", "initiator": True,
                       "ice": {"iceServers": [], "iceTransportPolicy": "all"}}, got
        wait(a, lambda d: phase(d) == "connecting" and rtc(d)["pcs"], what="a waits for the offer")
        assert rtc(a)["pcs"][0][0] == "stable"   # the callee makes no offer of its own
        r.drop("rst")
        wait(a, lambda d: phase(d) == "ended" and "Stranger's connection dropped; the call ended." in log_text(d),
             what="the call ends with the drop")
        wait(a, released, what="released")
        assert is_paired(a) and not call_buttons_shown(a)   # the chat is held; no calls while they are away
    finally:
        r.close()


def test_own_connection_drop_ends_the_call_and_the_chat_resumes(browsers, server_factory):
    server = server_factory(*FAST)
    link = Link(server.port)
    try:
        a, b = call_pair(browsers, server, a_origin=link)
        connect(b, a, video=True)
        link.reset()   # a's socket is reset: a ends its call; the server ends it too and tells b
        wait(a, lambda d: phase(d) == "ended" and "The connection was lost; the call ended." in log_text(d),
             what="a ends its call")
        wait(b, lambda d: phase(d) == "ended" and "Stranger's connection dropped; the call ended." in log_text(d),
             what="b told")
        for d in (a, b):
            wait(d, released, what="released")
        link.restore()
        wait(a, lambda d: is_paired(d) and "Reconnected. The chat goes on." in log_text(d), timeout=10,
             what="a resumed")
        for d in (a, b):
            wait(d, call_buttons_shown, what="calls possible again")
        say(a, "back")
        wait(b, lambda d: "Stranger: back" in log_text(d))
    finally:
        link.close()
