'use strict';
// The uvchat page: one WebSocket to /ws at a time, speaking PROTOCOL.md version 1. Every text from a person or
// the server goes in as text (textContent, text nodes), never as HTML.
(() => {
  const MAX_SCALARS = 2000;      // the server's default message limit, in Unicode scalars
  const INTEREST_WAIT = 5;       // seconds the server waits for a common interest (its default)
  const TYPING_IDLE_MS = 3000;   // we say typing:false after this much quiet
  const TYPING_STALE_MS = 6000;  // a stranger's indicator goes after this much quiet (a lost false)
  const MAX_TAGS = 5;
  const NAME = 'uvchat';

  const $ = (id) => document.getElementById(id);
  const app = $('app'), startPane = $('start'), chatPane = $('chat'), statusEl = $('status'), noticeEl = $('notice');
  const log = $('log'), typingEl = $('typing'), text = $('text'), sendBtn = $('send'), nextBtn = $('next');
  const counter = $('counter'), onlineEl = $('online'), tagInput = $('interest-input'), tagList = $('tags');
  const countdownEl = $('countdown'), jumpBtn = $('jump'), soundBox = $('sound'), changeBtn = $('change');

  let ws = null;             // the one socket, or null
  let state = 'start';       // start | connecting | waiting | paired | idle | lost
  let wanted = false;        // the person wants to be queued or chatting (so a lost socket is retried)
  let interests = [];
  let confirming = false;    // the Stop -> Really? step
  let attempt = 0;           // failed connects since the last open socket
  let reconnectTimer = 0, countdownTimer = 0, typingTimer = 0, strangerTimer = 0;
  let lostChat = false;      // a chat ended because the connection was lost
  let lastSent = null;       // the last message sent, to restore if the server refuses it
  let typingSent = false;
  let leftAt = 0;            // when the last partner_left came
  let transcript = [];
  let unread = 0;
  const baseTitle = document.title;

  // ---- interests as removable tags ----
  function addTags(raw) {
    for (const piece of raw.split(',')) {
      const t = piece.trim().toLowerCase();
      const n = [...t].length;   // the server counts characters, not UTF-16 units
      if (n >= 1 && n <= 32 && !interests.includes(t) && interests.length < MAX_TAGS) interests.push(t);
    }
    renderTags();
  }
  function renderTags() {
    tagList.textContent = '';
    for (const t of interests) {
      const li = document.createElement('li');
      li.append(t);
      const x = document.createElement('button');
      x.type = 'button';
      x.textContent = '×';
      x.setAttribute('aria-label', 'Remove interest ' + t);
      x.addEventListener('click', () => { interests = interests.filter((i) => i !== t); renderTags(); tagInput.focus(); });
      li.append(x);
      tagList.append(li);
    }
    const full = interests.length >= MAX_TAGS;
    tagInput.readOnly = full;
    tagInput.placeholder = full ? 'That is 5 interests' : (interests.length ? 'Add another…' : 'music, movies…');
  }
  tagInput.addEventListener('keydown', (e) => {
    if ((e.key === 'Enter' || e.key === ',') && tagInput.value.trim()) {
      e.preventDefault();
      addTags(tagInput.value);
      tagInput.value = '';
    } else if (e.key === 'Enter') {
      e.preventDefault();
      start();
    } else if (e.key === 'Backspace' && !tagInput.value && interests.length) {
      interests.pop();
      renderTags();
    }
  });
  tagInput.addEventListener('input', () => {   // a pasted list, or a comma from an on-screen keyboard
    if (tagInput.value.includes(',')) { addTags(tagInput.value); tagInput.value = ''; }
  });

  // ---- the log ----
  function nearBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 48; }
  function toBottom() { log.scrollTop = log.scrollHeight; jumpBtn.hidden = true; }
  function line(kind, who, body) {
    const stick = nearBottom();
    const li = document.createElement('li');
    li.className = kind;
    if (who) {
      const w = document.createElement('span');
      w.className = 'who';
      w.textContent = who + ':';
      li.append(w, ' ');
    }
    li.append(body);
    log.append(li);
    transcript.push((who ? who + ': ' : '') + body);
    // Stay put while the person has scrolled up to read; offer a way down instead.
    if (stick || kind === 'you') toBottom(); else jumpBtn.hidden = false;
    return li;
  }
  function note(body, kind) { return line('note' + (kind ? ' ' + kind : ''), '', body); }
  log.addEventListener('scroll', () => { if (nearBottom()) jumpBtn.hidden = true; });
  jumpBtn.addEventListener('click', () => { toBottom(); log.focus(); });

  function setStatus(s) { statusEl.textContent = s; }
  function setNotice(s) { noticeEl.textContent = s || ''; noticeEl.hidden = !s; }

  // ---- state ----
  function setState(s) {
    state = s;
    app.dataset.state = s;
    confirming = false;
    sendBtn.disabled = s !== 'paired';
    nextBtn.classList.remove('confirm');
    nextBtn.textContent = wanted ? 'Stop' : 'New';
    nextBtn.classList.toggle('new', !wanted);
    changeBtn.hidden = wanted;
    if (s !== 'paired') strangerTyping(false);
    if (s !== 'waiting') stopCountdown();
  }

  function start() {
    if (tagInput.value.trim()) { addTags(tagInput.value); tagInput.value = ''; }
    startPane.hidden = true;
    chatPane.hidden = false;
    lostChat = false;
    wanted = true;
    attempt = 0;
    connect();
    text.focus();
  }

  function connect() {
    clearTimeout(reconnectTimer);
    if (ws) return;
    setState('connecting');
    setStatus(attempt ? 'Reconnecting…' : 'Connecting…');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const q = interests.length ? '?interests=' + interests.map(encodeURIComponent).join(',') : '';
    const sock = new WebSocket(scheme + '//' + location.host + '/ws' + q);
    ws = sock;
    sock.onopen = () => { if (ws === sock) attempt = 0; };
    sock.onmessage = (ev) => { if (ws === sock) onEvent(ev.data); };
    sock.onclose = (ev) => { if (ws === sock) onLost(ev.code); };
  }

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(obj)); return true; }
    return false;
  }

  function onLost(code) {
    ws = null;
    typingSent = false;
    onlineEl.textContent = '–';   // unknown until we are back
    // A server going away (1001) ends every chat at once; it sends no partner_left then, but a partner_left that
    // came just before the 1001 is the same loss: treat that chat like our own lost one and come back with the person.
    if (state === 'paired' || (state === 'idle' && code === 1001 && Date.now() - leftAt < 3000)) {
      lostChat = true;
      wanted = true;
      note('Connection lost. This chat has ended.', 'alert');
    }
    setState('lost');
    if (!wanted) {   // not looking for anyone: reconnecting would queue them unasked
      setStatus('Connection lost. Press New to reconnect.');
      return;
    }
    setStatus('Connection lost. Reconnecting…');
    // Exponential backoff with ±30% jitter: a restarted server is not hit by everyone at once.
    const delay = Math.min(15000, 500 * 2 ** attempt) * (0.7 + Math.random() * 0.6);
    attempt += 1;
    reconnectTimer = setTimeout(connect, delay);
  }
  // Back online (laptop woke up, Wi-Fi returned): try at once instead of waiting out the backoff.
  window.addEventListener('online', () => { if (state === 'lost' && wanted) { attempt = 0; connect(); } });

  function startCountdown() {
    stopCountdown();
    if (!interests.length) { setStatus('Looking for someone you can chat with…'); return; }
    setStatus('Looking for someone who likes ' + interests.join(', ') + '…');
    let left = INTEREST_WAIT;
    const tick = () => {
      if (left > 0) {
        countdownEl.textContent = left + ' s, then anyone';
        countdownEl.hidden = false;
      } else {
        stopCountdown();
        setStatus('No one with your interests yet. Looking for anyone…');
      }
      left -= 1;
    };
    tick();
    countdownTimer = setInterval(tick, 1000);
  }
  function stopCountdown() { clearInterval(countdownTimer); countdownEl.hidden = true; }

  function onEvent(data) {
    let m;
    try { m = JSON.parse(data); } catch { return; }
    switch (m.type) {
      case 'online':
        onlineEl.textContent = String(m.count);
        break;
      case 'waiting':
        setState('waiting');
        setNotice(lostChat ? 'Your previous chat ended when the connection was lost.' : '');
        startCountdown();
        break;
      case 'paired': {
        log.textContent = '';
        transcript = [NAME + ' conversation, ' + new Date().toLocaleString()];
        lastSent = null;
        setState('paired');
        const common = Array.isArray(m.common) ? m.common.map(String) : [];
        const hello = common.length ? 'You both like ' + common.join(', ') + '.' : "You're now chatting with a random stranger.";
        setStatus(hello);
        note(hello + ' Say hi!');
        if (lostChat) setNotice('Your previous chat ended when the connection was lost.');
        else if (m.random && interests.length) setNotice('No one shared your interests in time, so you were matched with a random stranger.');
        else setNotice('');
        lostChat = false;
        attention('New stranger');
        if (!('ontouchstart' in window)) text.focus();   // no keyboard popping up on a phone
        break;
      }
      case 'message':
        strangerTyping(false);
        line('them', 'Stranger', String(m.text));
        attention('New message');
        break;
      case 'typing':
        strangerTyping(m.active === true && state === 'paired');
        break;
      case 'partner_left':
        wanted = false;
        leftAt = Date.now();
        typingSent = false;
        clearTimeout(typingTimer);
        setState('idle');
        setStatus('Stranger has disconnected.');
        note('Stranger has disconnected.', 'alert');
        attention('Stranger left');
        if (document.activeElement !== text) nextBtn.focus();
        break;
      case 'error':
        refused(m.code, String(m.message || ''));
        break;
    }
  }

  // The server answers only refusals, in order; the most recent message is the one it refused.
  function refused(code, message) {
    const why = { too_long: 'Your message is too long.', rate_limited: 'You are sending messages too fast. Wait a moment.',
                  not_paired: "You're not chatting with anyone right now.", bad_request: 'The server did not understand that.' }[code] || message;
    if (lastSent && code !== 'bad_request') {
      lastSent.item.classList.add('refused');
      lastSent.item.append(' (not sent)');
      // What the person typed is never lost: it goes back into the box, before anything typed since.
      const t = lastSent.text;
      if (!text.value) text.value = t; else if (!text.value.startsWith(t)) text.value = t + '\n' + text.value;
      lastSent = null;
      updateCounter();
    }
    note('Not sent: ' + why, 'refused');
  }

  // ---- typing ----
  function strangerTyping(on) {
    clearTimeout(strangerTimer);
    typingEl.textContent = on ? 'Stranger is typing…' : '';
    if (on) strangerTimer = setTimeout(() => { typingEl.textContent = ''; }, TYPING_STALE_MS);
  }
  function typed() {
    if (state !== 'paired') return;
    clearTimeout(typingTimer);
    if (!text.value) { stopTyping(); return; }
    if (!typingSent) typingSent = send({ type: 'typing', active: true });
    typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  }
  function stopTyping() {
    clearTimeout(typingTimer);
    if (typingSent) { send({ type: 'typing', active: false }); typingSent = false; }
  }

  // ---- sending ----
  function scalars(s) { let n = 0; for (const _ of s) n += 1; return n; }   // code points, as the server counts
  function updateCounter() {
    const n = scalars(text.value);
    counter.hidden = n < MAX_SCALARS * 0.9;
    counter.textContent = n + ' / ' + MAX_SCALARS;
    counter.classList.toggle('over', n > MAX_SCALARS);
    // Grow with the text; an empty box (or one not laid out yet) keeps its one-row height.
    text.style.height = '';
    if (text.value && text.scrollHeight > text.clientHeight) text.style.height = Math.min(text.scrollHeight + 2, 128) + 'px';
  }
  function submit() {
    const t = text.value;
    if (!t.trim()) return;
    if (state !== 'paired') { note("You're not chatting with anyone right now. Your message is still in the box.", 'refused'); return; }
    const n = scalars(t);
    if (n > MAX_SCALARS) { note('Your message is too long (' + n + ' / ' + MAX_SCALARS + '). Shorten it and send again.', 'refused'); return; }
    if (!send({ type: 'message', text: t })) { note('Not connected. Your message is still in the box.', 'refused'); return; }
    lastSent = { text: t, item: line('you', 'You', t) };
    text.value = '';
    stopTyping();
    updateCounter();
  }
  $('composer').addEventListener('submit', (e) => { e.preventDefault(); submit(); text.focus(); });
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });
  text.addEventListener('input', () => { updateCounter(); typed(); });

  // ---- one button for Stop -> Really? -> New, and Esc ----
  function nextAction() {
    if (wanted) {
      if (!confirming) {
        confirming = true;
        nextBtn.textContent = 'Really?';
        nextBtn.classList.add('confirm');
        return;
      }
      stopTyping();
      wanted = false;
      const was = state;
      if (was === 'connecting' || was === 'lost') {
        const s = ws;
        ws = null;
        clearTimeout(reconnectTimer);
        if (s) s.close();
        setState('lost');
        setStatus('Stopped. Press New to look again.');
        return;
      }
      send({ type: 'stop' });
      setState('idle');
      if (was === 'paired') {
        note('You have disconnected.', 'alert');
        setStatus('You have disconnected. Press New (or Esc) to meet someone else.');
      } else {
        setStatus('Stopped looking. Press New (or Esc) to look again.');
      }
      return;
    }
    // New, with the same interests: the same socket when it is open, else a fresh one.
    wanted = true;
    setNotice('');
    if (ws && ws.readyState === WebSocket.OPEN) {
      send({ type: 'next' });
      setState('waiting');
      startCountdown();
    } else {
      attempt = 0;
      connect();
    }
  }
  nextBtn.addEventListener('click', nextAction);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !chatPane.hidden && !e.isComposing) { e.preventDefault(); nextAction(); }
  });
  nextBtn.addEventListener('blur', () => {   // leaving the button forgets the confirm step
    if (confirming) { confirming = false; nextBtn.textContent = 'Stop'; nextBtn.classList.remove('confirm'); }
  });

  // Back to the start screen to change interests; only offered while not queued.
  changeBtn.addEventListener('click', () => {
    const s = ws;
    ws = null;
    clearTimeout(reconnectTimer);
    if (s) s.close();
    setState('start');
    setNotice('');
    chatPane.hidden = true;
    startPane.hidden = false;
    tagInput.focus();
    refreshOnline();
  });

  // ---- a hidden tab shows news in its title (and beeps, if asked to) ----
  function attention(what) {
    if (!document.hidden) return;
    unread += 1;
    document.title = '(' + unread + ') ' + what + ' – ' + NAME;
    if (soundBox.checked) beep();
  }
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) { unread = 0; document.title = baseTitle; }
  });
  let audio = null;
  function beep() {
    try {
      audio = audio || new AudioContext();
      const o = audio.createOscillator(), g = audio.createGain(), t = audio.currentTime;
      o.frequency.value = 660;
      g.gain.setValueAtTime(0.08, t);
      g.gain.exponentialRampToValueAtTime(0.0001, t + 0.25);
      o.connect(g).connect(audio.destination);
      o.start();
      o.stop(t + 0.25);
    } catch { /* no audio: the title still tells */ }
  }
  try { soundBox.checked = localStorage.getItem('uvchat.sound') === '1'; } catch { /* storage off */ }
  soundBox.addEventListener('change', () => {
    // The first beep needs an AudioContext made during a user gesture, so make it now.
    if (soundBox.checked && !audio) try { audio = new AudioContext(); } catch { /* none */ }
    try { localStorage.setItem('uvchat.sound', soundBox.checked ? '1' : '0'); } catch { /* storage off */ }
  });

  // ---- save the conversation, in the browser only ----
  $('save').addEventListener('click', () => {
    const lines = transcript.length ? transcript : [NAME + ': nothing said yet'];
    const blob = new Blob([lines.join('\n') + '\n'], { type: 'text/plain;charset=utf-8' });
    const a = document.createElement('a');
    const d = new Date(), pad = (n) => String(n).padStart(2, '0');
    a.download = NAME + '-' + d.getFullYear() + pad(d.getMonth() + 1) + pad(d.getDate()) + '-' + pad(d.getHours()) + pad(d.getMinutes()) + '.txt';
    a.href = URL.createObjectURL(blob);
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  });

  // ---- keep the composer above an on-screen keyboard where `interactive-widget` is not honoured ----
  const vv = window.visualViewport;
  if (vv) {
    vv.addEventListener('resize', () => {
      const stick = nearBottom();
      const covered = vv.scale < 1.01 && vv.height < window.innerHeight - 1;
      app.style.height = covered ? vv.height + 'px' : '';
      if (covered) window.scrollTo(0, 0);
      if (stick) toBottom();
    });
  }

  $('start-button').addEventListener('click', start);
  renderTags();
  updateCounter();
  // The start screen shows how many people are online (GET /online: joining /ws would queue at once).
  let onlineTimer = 0;
  async function refreshOnline() {
    clearTimeout(onlineTimer);
    if (startPane.hidden) return;
    try {
      const r = await fetch('/online', { cache: 'no-store' });
      if (r.ok) onlineEl.textContent = String((await r.json()).count);
    } catch { /* offline: the count stays as it was */ }
    onlineTimer = setTimeout(refreshOnline, 10000);
  }
  refreshOnline();
})();
