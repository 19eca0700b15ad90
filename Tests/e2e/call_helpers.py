"""What the two call suites (test_browser_calls.py on loopback, test_browser_webrtc.py in network namespaces) share:
Chromium's fake media switches, a spy that records what the page asks of getUserMedia and RTCPeerConnection, and
readers for the call panel."""
from browser_helpers import el

# Fake camera (a test pattern, 10 frames a second: two browsers share a small machine) and microphone (a beep),
# and a permission prompt that always says yes.
FAKE_MEDIA = ("--use-fake-device-for-media-stream=fps=10", "--use-fake-ui-for-media-stream")
# Fake devices, but every permission prompt is refused: a person who pressed Block.
DENIED_MEDIA = ("--use-fake-device-for-media-stream=fps=10", "--deny-permission-prompts")

# Runs before the page's own script (CDP injection is not subject to the page's CSP). It keeps every stream
# getUserMedia gave the page and every RTCPeerConnection the page made, so that a test can see that the camera and
# microphone were let go (each track `ended`) and the connection closed, without a test hook in the page. It also
# records policy violations: playing a MediaStream through `srcObject` must need nothing from the CSP.
RTC_SPY = """
(() => {
  const rec = window.__rtc = { asks: [], streams: [], errors: [], pcs: [], configs: [] };
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
  const Real = window.RTCPeerConnection;
  if (Real) {
    window.RTCPeerConnection = class extends Real {
      constructor(...args) { super(...args); rec.pcs.push(this); rec.configs.push(JSON.parse(JSON.stringify(args[0] || null))); }
    };
  }
  const md = navigator.mediaDevices;
  if (md && md.getUserMedia) {
    const real = md.getUserMedia.bind(md);
    md.getUserMedia = (c) => {
      rec.asks.push({ at: performance.now(), constraints: JSON.parse(JSON.stringify(c)) });
      return real(c).then((s) => { rec.streams.push(s); return s; }, (e) => { rec.errors.push(e.name); throw e; });
    };
  }
})();
"""

# What the spy saw, in a form Python can compare.
RTC_STATE = """
const r = window.__rtc;
const media = ['remote-video', 'remote-audio', 'local-video'].map((id) => document.getElementById(id).srcObject !== null);
return {
  asks: r.asks.length,
  errors: r.errors,
  tracks: r.streams.flatMap((s) => s.getTracks().map((t) => [t.kind, t.readyState, t.enabled])),
  pcs: r.pcs.map((pc) => [pc.signalingState, pc.connectionState]),
  configs: r.configs,
  attached: media,
  csp: window.__csp,
};
"""


def spy(d):
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RTC_SPY})


def rtc(d):
    return d.execute_script(RTC_STATE)


def phase(d):
    return el(d, "call").get_attribute("data-phase")


def call_status(d):
    return el(d, "call-status").text


def shown(d, id_):
    return el(d, id_).is_displayed()


def call_buttons_shown(d):
    return shown(d, "call-voice") and shown(d, "call-video")


def released(d):
    """Every track the page got is stopped (the camera light is off), every connection closed, and no media
    element holds a stream any more."""
    r = rtc(d)
    return (all(t[1] == "ended" for t in r["tracks"]) and all(p[0] == "closed" for p in r["pcs"])
            and not any(r["attached"]))
