'use strict';
// The uvchat page. One WebSocket to /ws at a time, speaking PROTOCOL.md version 1. Every text a person or the
// server supplies is put on the page with textContent, never as HTML.
(() => {
  const MAX_SCALARS = 2000;          // the server's default message limit, in Unicode scalars
  const INTEREST_WAIT = 5;           // seconds the server waits for a common interest (its default)
  const TYPING_IDLE_MS = 3000;       // we send typing:false after this much quiet
  const TYPING_STALE_MS = 6000;      // a stranger's indicator disappears after this much quiet
  const MAX_TAGS = 5;

  const $ = (id) => document.getElementById(id);
  const app = $('app'), startPane = $('start'), chatPane = $('chat'), statusEl = $('status'), noticeEl = $('notice');
  const log = $('log'), typingEl = $('typing'), text = $('text'), sendBtn = $('send'), nextBtn = $('next');
  const counter = $('counter'), onlineEl = $('online'), tagInput = $('interest-input'), tagList = $('tags');

  let ws = null;                     // the one socket, or null
  let state = 'start';               // start | connecting | waiting | paired | idle | lost
  let interests = [];
  let confirming = false;            // the Stop -> Really? step
  let attempt = 0;                   // reconnect attempts since the last success
  let reconnectTimer = 0;
  let lostChat = false;              // a chat ended because the connection was lost
  let lastSent = null;               // the last message we sent, to put back if the server refuses it
  let typingSent = false, typingTimer = 0, strangerTimer = 0;
  let countdownTimer = 0;
  let transcript = [];
  let unread = 0;
  const baseTitle = document.title;

  // ---- interests as removable tags ----
  function normalizeTag(raw) {
    const t = raw.trim().toLowerCase();
    return [...t].length >= 1 && [...t].length <= 32 ? t : '';
  }
  function addTags(raw) {
    for (const piece of raw.split(',')) {
      const t = normalizeTag(piece);
      if (t && !interests.includes(t) && interests.length < MAX_TAGS) interests.push(t);
    }
    renderTags();
  }
  function renderTags() {
    tagList.textContent = '';
    for (const t of interests) {
      const li = document.createElement('li');
      li.append(document.createTextNode(t));
      const x = document.createElement('button');
      x.type = 'button';
      x.textContent = '×';
      x.setAttribute('aria-label', 'Remove interest ' + t);
      x.addEventListener('click', () => { interests = interests.filter((i) => i !== t); renderTags(); tagInput.focus(); });
      li.append(x);
      tagList.append(li);
    }
    tagInput.disabled = interests.length >= MAX_TAGS;
    tagInput.placeholder = interests.length >= MAX_TAGS ? 'Up to 5 interests' : (interests.length ? 'Add another…' : 'music, movies…');
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
  tagInput.addEventListener('input', () => {
    if (tagInput.value.includes(',')) { addTags(tagInput.value); tagInput.value = ''; }
  });

  // ---- the log ----
  function nearBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 48; }
  function line(kind, who, body) {
    const stick = nearBottom();
    const li = document.createElement('li');
    li.className = kind;
    if (who) {
      const w = document.createElement('span');
      w.className = 'who';
      w.textContent = who + ': ';
      li.append(w);
    }
    li.append(document.createTextNode(body));
    log.append(li);
    transcript.push((who ? who + ': ' : '') + body);
    if (stick) log.scrollTop = log.scrollHeight;   // stay put when the person scrolled up to read
    return li;
  }
  function note(body) { return line('note', '', body); }
  function setStatus(s) { statusEl.textContent = s; }
  function setNotice(s) { noticeEl.textContent = s || ''; noticeEl.hidden = !s; }

  // ---- state ----
  function setState(s) {
    state = s;
    app.dataset.state = s;
    confirming = false;
    const canChat = s === 'paired';
    sendBtn.disabled = !canChat;
    nextBtn.classList.remove('confirm');
    nextBtn.textContent = (s === 'paired' || s === 'waiting' || s === 'connecting') ? 'Stop' : 'New';
    if (s !== 'paired') showStrangerTyping(false);
    if (s !== 'waiting') clearInterval(countdownTimer);
  }

  function showChat() {
    startPane.hidden = true;
    chatPane.hidden = false;
  }

  function start() {
    if (tagInput.value.trim()) { addTags(tagInput.value); tagInput.value = ''; }
    showChat();
    lostChat = false;
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
    sock.onclose = () => { if (ws === sock) onLost(); };
  }

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(obj)); return true; }
    return false;
  }

  function onLost() {
    ws = null;
    if (state === 'paired') { lostChat = true; note('Connection lost. This chat has ended.'); }
    setState('lost');
    // Exponential backoff with jitter, one socket at a time.
    const delay = Math.min(15000, 500 * 2 ** attempt) * (0.7 + Math.random() * 0.6);
    attempt += 1;
    setStatus('Connection lost. Reconnecting in ' + Math.ceil(delay / 1000) + ' s…');
    reconnectTimer = setTimeout(connect, delay);
  }

  function startCountdown() {
    clearInterval(countdownTimer);
    if (!interests.length) { setStatus('Looking for someone you can chat with…'); return; }
    let left = INTEREST_WAIT;
    const tick = () => {
      if (left > 0) {
        setStatus('Looking for someone who likes ' + interests.join(', ') + '… (' + left + ' s, then anyone)');
      } else {
        setStatus('No one with your interests yet. Looking for any stranger…');
        clearInterval(countdownTimer);
      }
      left -= 1;
    };
    tick();
    countdownTimer = setInterval(tick, 1000);
  }

  function onEvent(data) {
    let m;
    try { m = JSON.parse(data); } catch { return; }
    switch (m.type) {
      case 'online':
        onlineEl.textContent = String(m.count);
        break;
      case 'waiting':
        setState('waiting');
        // The lost-chat notice stays until the next chat begins.
        setNotice(lostChat ? 'Your previous chat ended when the connection was lost.' : '');
        startCountdown();
        break;
      case 'paired': {
        log.textContent = '';
        transcript = ['uvchat conversation, ' + new Date().toLocaleString()];
        setState('paired');
        const common = Array.isArray(m.common) ? m.common : [];
        const hello = common.length ? 'You both like ' + common.join(', ') + '.' : "You're now chatting with a random stranger.";
        setStatus(hello);
        note(hello + ' Say hi!');
        if (lostChat) setNotice('Your previous chat ended when the connection was lost.');
        else if (m.random && interests.length) setNotice('No one shared your interests, so you were matched with a random stranger.');
        else setNotice('');
        lostChat = false;
        attention('New stranger');
        text.focus();
        break;
      }
      case 'message':
        showStrangerTyping(false);
        line('them', 'Stranger', String(m.text));
        attention('New message');
        break;
      case 'typing':
        showStrangerTyping(m.active === true);
        break;
      case 'partner_left':
        setState('idle');
        setStatus('Stranger has disconnected.');
        note('Stranger has disconnected.');
        attention('Stranger left');
        nextBtn.focus();
        break;
      case 'error':
        refused(m.code, String(m.message || ''));
        break;
    }
  }

  function refused(code, message) {
    const why = { too_long: 'Your message is too long.', rate_limited: 'You are sending messages too fast.',
                  not_paired: "You're not chatting with anyone right now.", bad_request: 'The server did not understand that.' }[code] || message;
    if (lastSent !== null && code !== 'bad_request') {
      const item = lastSent.item;
      if (item) { item.classList.add('refused'); item.append(document.createTextNode(' (not sent)')); }
      // What the person typed is never lost: it goes back into the box.
      if (!text.value) text.value = lastSent.text; else if (!text.value.startsWith(lastSent.text)) text.value = lastSent.text + '\n' + text.value;
      updateCounter();
      lastSent = null;
    }
    line('note refused', '', 'Not sent: ' + why);
  }

  // ---- typing ----
  function showStrangerTyping(on) {
    clearTimeout(strangerTimer);
    typingEl.hidden = !on;
    if (on) strangerTimer = setTimeout(() => { typingEl.hidden = true; }, TYPING_STALE_MS);
  }
  function typed() {
    if (state !== 'paired') return;
    if (!typingSent && text.value) { typingSent = send({ type: 'typing', active: true }); }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
    if (!text.value) stopTyping();
  }
  function stopTyping() {
    clearTimeout(typingTimer);
    if (typingSent) { send({ type: 'typing', active: false }); typingSent = false; }
  }

  // ---- sending ----
  function scalars(s) { let n = 0; for (const _ of s) n += 1; return n; }
  function updateCounter() {
    const n = scalars(text.value);
    counter.hidden = n < MAX_SCALARS * 0.9;
    counter.textContent = n + ' / ' + MAX_SCALARS;
    counter.classList.toggle('over', n > MAX_SCALARS);
    text.style.height = 'auto';
    text.style.height = Math.min(text.scrollHeight + 2, 128) + 'px';
  }
  function submit() {
    const t = text.value;
    if (!t.trim()) return;
    if (state !== 'paired') { note("You're not chatting with anyone right now. Your message is still in the box."); return; }
    if (scalars(t) > MAX_SCALARS) { note('Your message is too long (' + scalars(t) + ' / ' + MAX_SCALARS + '). Shorten it and send again.'); return; }
    if (!send({ type: 'message', text: t })) { note('Not connected. Your message is still in the box.'); return; }
    lastSent = { text: t, item: line('you', 'You', t) };
    text.value = '';
    typingSent = false;      // the stranger's page clears its indicator on our message
    clearTimeout(typingTimer);
    updateCounter();
  }
  $('composer').addEventListener('submit', (e) => { e.preventDefault(); submit(); });
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });
  text.addEventListener('input', () => { updateCounter(); typed(); });

  // ---- next / stop, with Esc ----
  function nextAction() {
    if (state === 'paired' || state === 'waiting' || state === 'connecting') {
      if (!confirming) {
        confirming = true;
        nextBtn.textContent = 'Really?';
        nextBtn.classList.add('confirm');
        return;
      }
      stopTyping();
      if (state === 'connecting') { const s = ws; ws = null; if (s) s.close(); setState('idle'); setStatus('Stopped.'); return; }
      const was = state;
      send({ type: 'stop' });
      if (was === 'paired') note('You have disconnected.');
      setState('idle');
      setStatus(was === 'paired' ? 'You left the chat. Press New (or Esc) to meet someone else.' : 'Stopped looking. Press New (or Esc) to look again.');
      return;
    }
    // idle or lost: New, with the same interests.
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
    if (e.key === 'Escape' && !chatPane.hidden) { e.preventDefault(); nextAction(); }
  });
  nextBtn.addEventListener('blur', () => { if (confirming) setState(state); });

  // ---- a hidden tab hears about new messages ----
  function attention(what) {
    if (!document.hidden) return;
    unread += 1;
    document.title = '(' + unread + ') ' + what + ' – ' + baseTitle;
    if ($('sound').checked) beep();
  }
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) { unread = 0; document.title = baseTitle; }
  });
  let audio = null;
  function beep() {
    try {
      audio = audio || new AudioContext();
      const o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = 660;
      g.gain.setValueAtTime(0.08, audio.currentTime);
      g.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.25);
      o.connect(g).connect(audio.destination);
      o.start();
      o.stop(audio.currentTime + 0.25);
    } catch { /* no audio: the title still tells */ }
  }

  // ---- save the conversation, in the browser only ----
  $('save').addEventListener('click', () => {
    const blob = new Blob([transcript.join('\n') + '\n'], { type: 'text/plain;charset=utf-8' });
    const a = document.createElement('a');
    const d = new Date();
    const pad = (n) => String(n).padStart(2, '0');
    a.download = 'uvchat-' + d.getFullYear() + pad(d.getMonth() + 1) + pad(d.getDate()) + '-' + pad(d.getHours()) + pad(d.getMinutes()) + '.txt';
    a.href = URL.createObjectURL(blob);
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  });

  $('start-button').addEventListener('click', start);
  renderTags();
  updateCounter();
  // The start screen shows how many people are online (GET /online), refreshed while it is shown.
  async function refreshOnline() {
    if (!startPane.hidden) {
      try {
        const r = await fetch('/online', { cache: 'no-store' });
        if (r.ok) onlineEl.textContent = String((await r.json()).count);
      } catch { /* offline: the count stays as it was */ }
      setTimeout(refreshOnline, 10000);
    }
  }
  refreshOnline();
})();
