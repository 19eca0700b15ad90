'use strict';
// The uvchat page: one WebSocket to /ws at a time, speaking PROTOCOL.md version 2 (subprotocol `uvchat.2`, with the
// readings of docs/protocol-v2.md). A chat survives a lost connection: the page keeps the chat's token, the last
// `seq` it showed, its own message numbers and what the server may not have yet in sessionStorage (one chat per
// tab), reconnects with backoff and resumes. Every text from a person or the server goes in as text
// (textContent, text nodes), never as HTML.
(() => {
  const SUBPROTOCOL = 'uvchat.2';
  const MAX_SCALARS = 2000;      // the server's default message limit, in Unicode scalars
  const INTEREST_WAIT = 5;       // seconds the server waits for a common interest (its default)
  const TYPING_IDLE_MS = 3000;   // we say typing:false after this much quiet
  const TYPING_STALE_MS = 6000;  // a stranger's indicator goes after this much quiet (a lost false)
  const MAX_TAGS = 5;
  const ACK_EVERY = 16;          // ack at least every 16 messages...
  const ACK_DELAY_MS = 500;      // ...and at most this long after the first one not acknowledged
  const PROBE_MS = 3000;         // a ping that nothing answers within this long: the connection is dead
  const CONFIRM_MS = 1000;       // this long after sending, a ping; its pong settles everything sent before it
  const QUIET_MS = 15000;        // while in a chat, a ping after this long without a frame
  const GREETING_MS = 10000;     // a socket that says nothing (no `online`) this long after we open it is dead
  const RESEND_BURST = 8;        // after a resume, re-sent messages beyond this many go out at...
  const RESEND_GAP_MS = 125;     // ...one per this long (under the server's 10 a second)
  const KEEP_LINES = 400;        // log lines kept in sessionStorage, so that a reloaded tab shows them
  const IMAGE_MAX = 1024 * 1024; // the server's default image limit, in bytes
  const IMAGE_SIDE = 1600;       // a photo's longest side is scaled down to this many pixels before it is offered
  const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/webp', 'image/gif'];
  const OFFER_MS = 60000;        // an offer nobody answered is dead on the server after this long
  const STORE = 'uvchat.chat';
  const NAME = 'uvchat';

  const $ = (id) => document.getElementById(id);
  const app = $('app'), startPane = $('start'), chatPane = $('chat'), statusEl = $('status'), noticeEl = $('notice');
  const log = $('log'), typingEl = $('typing'), text = $('text'), sendBtn = $('send'), nextBtn = $('next');
  const counter = $('counter'), onlineEl = $('online'), tagInput = $('interest-input'), tagList = $('tags');
  const countdownEl = $('countdown'), jumpBtn = $('jump'), soundBox = $('sound'), changeBtn = $('change');
  const attachBtn = $('attach'), fileInput = $('file'), imagesBox = $('images'), imagesStart = $('images-start');
  const imagesHint = $('images-hint'), logWrap = $('logwrap');
  const termsPane = $('terms'), gatePane = $('gate'), modButtons = $('mod-buttons'), reportBtn = $('report');
  const blockBtn = $('block'), reportPanel = $('report-panel');
  const TERMS_KEY = 'uvchat.terms';   // localStorage: the rules and age this browser accepted
  const REPORT_GRACE_MS = 60000;      // the server takes a report of the last stranger this long after the chat

  let ws = null;             // the one socket we listen to, or null
  let stale = [];            // sockets given up for dead (a probe went unanswered); closed once a new one is settled
  let state = 'start';       // start | connecting | waiting | paired | resuming | idle | lost
  let wanted = false;        // the person wants to be queued or chatting (so a lost socket is retried)
  let interests = [];
  let confirming = false;    // the Stop -> Really? step
  let attempt = 0;           // failed connects since the last socket that greeted us
  let reconnectTimer = 0, countdownTimer = 0, typingTimer = 0, strangerTimer = 0, awayTimer = 0;
  let lastSent = null;       // the last message sent: { entry, item, text }, to mark if the server refuses it
  let typingSent = false;
  let partnerAway = false;
  let partnerImages = false; // the partner's `start` said it accepts image offers (from `paired` / `resumed`)
  let askedImages = false;   // what our own last `start` said
  let unread = 0;
  const baseTitle = document.title;
  // Identity and moderation (PROTOCOL.md B.5): what GET /status said, and the last stranger we may still report.
  let site = { termsUrl: '/terms.html', minAge: 13 };
  let gated = false;         // a ban or a required login: the page does not connect
  let endedAt = 0;           // when the last chat ended (0: none to report)
  let reportedLast = false, blockedLast = false;
  let modTimer = 0;

  // The chat, as kept in sessionStorage: null when there is none to resume.
  //   token, grace: from `paired`/`resumed`; lastSeq: the last `seq` shown; nextId: the id of our next message;
  //   unconfirmed: [{ id, text }] sent (or to be sent) that the server may not have; hello: what the status says.
  let chat = null;
  let lines = [];            // the log, as [{ k: class, w: who, b: body, id }] (also the saved transcript)
  let head = '';             // the transcript's first line
  const items = new Map();   // message id -> its <li> in the log

  // Per socket.
  let greeted = false;       // its first frame (`online`) came, and we sent our first command
  let resuming = false;      // `resume` sent, no answer yet
  let sentMax = 0;           // the highest message id sent on this socket
  let pings = [];            // for each ping not answered yet, sentMax when it went out
  let pingsSent = 0, pongsSeen = 0;   // counted, so that an image offer knows which errors can still be about it
  let outbox = [];           // unconfirmed entries waiting to go out on this socket, in order
  let burst = Infinity;      // how many of them may go out at once; the rest are paced
  let ackedSeq = 0, unacked = 0;
  let ackTimer = 0, probeTimer = 0, confirmTimer = 0, pumpTimer = 0, greetTimer = 0, lastFrameAt = 0;

  // ---- sessionStorage: one chat per tab ----
  function save() {
    try {
      if (!chat) { sessionStorage.removeItem(STORE); return; }
      sessionStorage.setItem(STORE, JSON.stringify({ chat, interests, head, lines: lines.slice(-KEEP_LINES) }));
    } catch { /* storage off or full: the chat still works, it just cannot survive a reload */ }
  }
  function load() {
    try {
      const s = JSON.parse(sessionStorage.getItem(STORE) || 'null');
      if (!s || !s.chat || typeof s.chat.token !== 'string' || !s.chat.token) return null;
      const c = s.chat;
      return {
        chat: { token: c.token, grace: Number(c.grace) || 30, lastSeq: Math.max(0, Math.floor(Number(c.lastSeq) || 0)),
                nextId: Math.max(1, Math.floor(Number(c.nextId) || 1)), hello: String(c.hello || ''),
                imageId: Math.max(0, Math.floor(Number(c.imageId) || 0)) % 2 ** 31,
                unconfirmed: Array.isArray(c.unconfirmed) ? c.unconfirmed.filter((u) => u && Number.isInteger(u.id) && typeof u.text === 'string') : [] },
        interests: Array.isArray(s.interests) ? s.interests.map(String).slice(0, MAX_TAGS) : [],
        head: String(s.head || ''),
        lines: Array.isArray(s.lines) ? s.lines.filter((e) => e && typeof e.b === 'string') : [],
      };
    } catch { return null; }
  }
  function endChat() {
    dropOffers('the chat ended');
    chatEndsCall('The call ended with the chat.');
    chat = null;
    outbox = [];
    items.clear();
    setAway(false);
    save();
  }

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
  function render(entry) {
    const stick = nearBottom();
    const li = document.createElement('li');
    li.className = entry.k;
    if (entry.w) {
      const w = document.createElement('span');
      w.className = 'who';
      w.textContent = entry.w + ':';
      li.append(w, ' ');
    }
    li.append(entry.b);
    if (entry.id) items.set(entry.id, li);
    return place(li, stick);
  }
  function place(li, stick) {
    log.append(li);
    // Stay put while the person has scrolled up to read; offer a way down instead.
    if (stick || li.className.startsWith('you')) toBottom(); else jumpBtn.hidden = false;
    return li;
  }
  function line(kind, who, body, id) {
    const entry = { k: kind, w: who, b: body };
    if (id) entry.id = id;
    lines.push(entry);
    const li = render(entry);
    save();
    return { entry, item: li };
  }
  function note(body, kind) { return line('note' + (kind ? ' ' + kind : ''), '', body); }
  function mark(sent, suffix) {   // a message of ours the server did not take
    sent.entry.k += ' refused';
    sent.entry.b += suffix;
    sent.item.classList.add('refused');
    sent.item.classList.remove('queued');
    sent.item.append(suffix);
    save();
  }
  function clearLog() {
    dropOffers('');
    for (const u of blobUrls) URL.revokeObjectURL(u);
    blobUrls.length = 0;
    log.textContent = '';
    lines = [];
    items.clear();
    head = NAME + ' conversation, ' + new Date().toLocaleString();
  }
  log.addEventListener('scroll', () => { if (nearBottom()) jumpBtn.hidden = true; });
  jumpBtn.addEventListener('click', () => { toBottom(); log.focus(); });

  function setStatus(s) { statusEl.textContent = s; }
  function setNotice(s) { noticeEl.textContent = s || ''; noticeEl.hidden = !s; }

  // ---- state ----
  function setState(s) {
    state = s;
    app.dataset.state = s;
    confirming = false;
    sendBtn.disabled = s !== 'paired' && s !== 'resuming';
    nextBtn.classList.remove('confirm');
    nextBtn.textContent = wanted ? 'Stop' : 'New';
    nextBtn.classList.toggle('new', !wanted);
    changeBtn.hidden = wanted;
    if (s !== 'paired') strangerTyping(false);
    if (s !== 'waiting') stopCountdown();
    updateAttach();
    updateCallButtons();
    updateModeration();
  }

  function start() {
    if (gated) return;
    if (!termsAccepted()) { showTerms(); return; }
    if (tagInput.value.trim()) { addTags(tagInput.value); tagInput.value = ''; }
    startPane.hidden = true;
    chatPane.hidden = false;
    wanted = true;
    attempt = 0;
    connect();
    text.focus();
  }

  // ---- the socket ----
  function connect() {
    clearTimeout(reconnectTimer);
    if (ws) return;
    if (chat) {
      setState('resuming');
    } else {
      setState('connecting');
      setStatus(attempt ? 'Connection lost, reconnecting…' : 'Connecting…');
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const sock = new WebSocket(scheme + '//' + location.host + '/ws', [SUBPROTOCOL]);
    sock.binaryType = 'arraybuffer';   // images come as one binary message each
    ws = sock;
    greeted = false;
    resuming = false;
    sentMax = 0;
    pings = [];
    pingsSent = pongsSeen = 0;
    outbox = [];
    burst = Infinity;
    ackedSeq = chat ? chat.lastSeq : 0;
    unacked = 0;
    lastFrameAt = Date.now();
    clearTimeout(greetTimer);
    greetTimer = setTimeout(() => { if (ws === sock && !greeted) abandon(); }, GREETING_MS);
    sock.onmessage = (ev) => { if (ws !== sock) return; if (typeof ev.data === 'string') onFrame(ev.data); else onBinary(ev.data); };
    sock.onclose = (ev) => { if (ws === sock) onLost(ev.code, ev.reason); };
  }

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(obj)); return true; }
    return false;
  }

  // The first frame is `online`; our first command follows it: `resume` when there is a chat to go back to,
  // else `start` when the person wants to meet someone.
  function greet() {
    greeted = true;
    attempt = 0;
    clearTimeout(greetTimer);
    if (chat) {
      resuming = true;
      send({ type: 'resume', token: chat.token, seq: chat.lastSeq });
    } else {
      closeStale();
      if (wanted) sendStart();
    }
  }
  function sendStart() {
    askedImages = imagesBox.checked;
    imagesHint.hidden = true;
    send({ type: 'start', interests: interests.slice(), images: askedImages });
  }
  function closeStale() {
    for (const s of stale) try { s.close(); } catch { /* already gone */ }
    stale = [];
  }

  function stopSocketTimers() {
    for (const t of [ackTimer, probeTimer, confirmTimer, pumpTimer, greetTimer]) clearTimeout(t);
    ackTimer = probeTimer = confirmTimer = pumpTimer = greetTimer = 0;
  }

  // Give up on a socket that does not answer. It is not closed now: a close frame that did get through would
  // end the chat (a leave), while the server takes a socket that just went silent for a drop and holds the chat.
  // If it is still open on the server's side, our resume on a new socket closes it (4001).
  function abandon() {
    const s = ws;
    if (!s) return;
    ws = null;
    if (s.readyState === WebSocket.CONNECTING) try { s.close(); } catch { /* gone */ } else stale.push(s);
    onLost(1006);
  }

  function onLost(code, reason) {
    const failed = !greeted;   // it never got as far as `online`: the upgrade was refused, or no server
    ws = null;
    dropOffers('the connection was lost');   // offers die with either side's socket
    chatEndsCall('The connection was lost; the call ended.');   // so does a call (the server ends it at the drop)
    stopSocketTimers();
    const was = state;
    greeted = false;
    resuming = false;
    typingSent = false;
    clearTimeout(typingTimer);
    onlineEl.textContent = '–';   // unknown until we are back
    if (code === 1008 && reason === 'banned') {
      // Other people reported this browser: the server closed the chat. /status says until when.
      endChat();
      wanted = false;
      setState('idle');
      setStatus('You cannot chat right now.');
      note('The server ended your chat: you were reported by several people.', 'alert');
      checkStatus();
      return;
    }
    if (failed) checkStatus();   // a refused upgrade (403 banned, 401 login) shows why instead of retrying blindly
    if (code === 4001) {
      // This chat was resumed on another connection: a duplicated tab took it (it copied our sessionStorage).
      // That tab has it now; this one stops, and does not come back on its own.
      endChat();
      wanted = false;
      setState('idle');
      setStatus('This chat continued in another tab.');
      note('This chat continued in another tab.', 'alert');
      return;
    }
    if (chat) {   // a drop, not a leave: the server holds the chat for its grace period
      wanted = true;
      setState('resuming');
      setStatus('Connection lost, reconnecting…');
      if (was === 'paired') note('Connection lost, reconnecting…', 'alert');
      retry(Math.max(2000, chat.grace * 1000 / 4));   // several tries within the grace period
      return;
    }
    setState('lost');
    if (!wanted) {   // not looking for anyone: reconnecting would queue them unasked
      setStatus('Connection lost. Press New to reconnect.');
      return;
    }
    setStatus('Connection lost, reconnecting…');
    retry(15000);
  }
  function retry(cap) {
    // Exponential backoff with ±30% jitter: a restarted server is not hit by everyone at once.
    const delay = Math.min(cap, 500 * 2 ** attempt) * (0.7 + Math.random() * 0.6);
    attempt += 1;
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, delay);
  }

  // ---- is the connection still there? ----
  // After a sleep or a network change a socket can look open and be dead. A `ping` asks; the server answers
  // `pong`, and any frame at all proves the way back works. No answer within PROBE_MS: a new socket, and resume.
  function ping() {
    if (!greeted || !send({ type: 'ping' })) return;
    pings.push(sentMax);
    pingsSent += 1;
    // A ping queued behind an image still going out leaves only when the image has: wait that much longer
    // (counted at a slow 16 KB/s) before taking the silence for a dead connection.
    const behind = Math.min(60000, ws.bufferedAmount / 16);
    if (!probeTimer) probeTimer = setTimeout(() => { probeTimer = 0; abandon(); }, PROBE_MS + behind);
  }
  function probe() {
    if (!ws) {
      if (wanted && (state === 'lost' || state === 'resuming')) { attempt = 0; connect(); }
      return;
    }
    if (!greeted) {   // a connect begun while offline may hang: begin again now
      const s = ws;
      ws = null;
      try { s.close(); } catch { /* gone */ }
      stopSocketTimers();
      attempt = 0;
      connect();
      return;
    }
    if (!probeTimer) ping();
  }
  window.addEventListener('online', probe);
  let hiddenAt = 0, tickAt = Date.now();
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) { hiddenAt = Date.now(); return; }
    unread = 0;
    document.title = baseTitle;
    if (hiddenAt && Date.now() - hiddenAt > 5000) probe();
  });
  setInterval(() => {
    const now = Date.now();
    if (now - tickAt > 6000) probe();   // the timers stood still: the machine slept
    else if ((state === 'paired' || resuming) && greeted && now - lastFrameAt > QUIET_MS && !probeTimer) ping();
    tickAt = now;
  }, 2000);

  // ---- acknowledgements ----
  // The server keeps at most 64 messages or 64 KiB we have not acknowledged, and refuses our partner beyond that
  // (rate_limited): long messages are acknowledged sooner.
  let unackedChars = 0;
  function received(length) {
    unacked += 1;
    unackedChars += length;
    if (unacked >= ACK_EVERY || unackedChars >= 8192) sendAck();
    else if (!ackTimer) ackTimer = setTimeout(sendAck, ACK_DELAY_MS);
  }
  function sendAck() {
    clearTimeout(ackTimer);
    ackTimer = 0;
    unacked = 0;
    unackedChars = 0;
    if (chat && chat.lastSeq > ackedSeq && send({ type: 'ack', seq: chat.lastSeq })) ackedSeq = chat.lastSeq;
  }

  // ---- our messages: numbered, kept until the server surely has them ----
  function queue(u) { outbox.push(u); pump(); }
  function pump() {
    clearTimeout(pumpTimer);
    pumpTimer = 0;
    while (outbox.length && state === 'paired' && !resuming) {
      if (burst <= 0) { pumpTimer = setTimeout(() => { burst = 1; pump(); }, RESEND_GAP_MS); return; }
      const u = outbox[0];
      if (!send({ type: 'message', text: u.text, id: u.id })) return;
      lastKind = 'text';
      outbox.shift();
      if (!u.sent) { u.sent = true; save(); }
      burst -= 1;
      sentMax = u.id;
      const li = items.get(u.id);
      if (li) li.classList.remove('queued');
      if (!confirmTimer) confirmTimer = setTimeout(() => { confirmTimer = 0; ping(); }, CONFIRM_MS);
    }
    if (!outbox.length) burst = Infinity;
  }
  // The server processes one socket's frames in order, so a pong means it has dealt with (kept, relayed or
  // refused) every message sent before the ping.
  function settled(upTo) {
    if (!chat) return;
    const before = chat.unconfirmed.length;
    chat.unconfirmed = chat.unconfirmed.filter((u) => u.id > upTo);
    if (chat.unconfirmed.length !== before) save();
  }

  // ---- the partner is away ----
  function setAway(on, grace) {
    partnerAway = on;
    if (on) dropOffers("Stranger's connection dropped");
    if (on) chatEndsCall("Stranger's connection dropped; the call ended.");
    updateAttach();
    updateCallButtons();
    clearInterval(awayTimer);
    countdownEl.hidden = true;
    if (!on) return;
    let left = Math.max(0, Math.round(grace));
    const tick = () => {
      countdownEl.textContent = left + ' s left';
      countdownEl.hidden = false;
      if (left > 0) left -= 1;
    };
    tick();
    awayTimer = setInterval(tick, 1000);
  }

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
  function stopCountdown() { clearInterval(countdownTimer); if (!partnerAway) countdownEl.hidden = true; }

  function helloText(m) {
    const common = Array.isArray(m.common) ? m.common.map(String) : [];
    return common.length ? 'You both like ' + common.join(', ') + '.' : "You're now chatting with a random stranger.";
  }

  function onFrame(data) {
    lastFrameAt = Date.now();
    clearTimeout(probeTimer);   // the way back works
    probeTimer = 0;
    let m;
    try { m = JSON.parse(data); } catch { return; }
    if (!m || typeof m !== 'object') return;
    switch (m.type) {
      case 'online':
        onlineEl.textContent = String(Number(m.count) || 0);
        if (!greeted) greet();
        break;
      case 'pong':
        if (pings.length) settled(pings.shift());
        pongsSeen += 1;
        offerSettled();
        break;
      case 'waiting':
        setState('waiting');
        setNotice('');
        startCountdown();
        break;
      case 'paired': {
        endedAt = 0;
        reportedLast = blockedLast = false;
        reportPanel.hidden = true;
        dropCall();
        partnerNoCalls = false;
        clearLog();
        lastSent = null;
        setAway(false);
        const hello = helloText(m);
        chat = { token: String(m.token || ''), grace: Number(m.grace) || 30, lastSeq: 0, nextId: 1, imageId, unconfirmed: [], hello };
        partnerImages = !!(m.partner && m.partner.images === true);
        if (!chat.token) chat = null;   // nothing to resume with
        ackedSeq = 0;
        unacked = 0;
        setState('paired');
        setStatus(hello);
        note(hello + ' Say hi!');   // also saves the chat
        if (!chat) save();
        if (m.random && interests.length) setNotice('No one shared your interests in time, so you were matched with a random stranger.');
        else setNotice('');
        attention('New stranger');
        if (!('ontouchstart' in window)) text.focus();   // no keyboard popping up on a phone
        break;
      }
      case 'resumed': {
        if (!chat) break;
        resuming = false;
        closeStale();
        chat.token = String(m.token || chat.token);
        chat.grace = Number(m.grace) || chat.grace;
        if (Array.isArray(m.common)) chat.hello = helloText(m);
        if (m.partner) partnerImages = m.partner.images === true;
        // The server has every message up to `id`; the rest go again, in order, with the same ids.
        const got = Number(m.id) || 0;
        settled(got);
        save();
        setAway(false);   // a partner_away follows when the partner is away too
        setState('paired');
        setStatus(chat.hello);
        setNotice('');
        note('Reconnected. The chat goes on.');
        outbox = chat.unconfirmed.slice();
        burst = RESEND_BURST;
        pump();
        if (document.activeElement === document.body && !('ontouchstart' in window)) text.focus();
        break;
      }
      case 'message': {
        const seq = Number(m.seq);
        if (chat && Number.isInteger(seq) && seq > 0) {
          if (seq <= chat.lastSeq) break;   // shown already (a replay we had): never twice
          chat.lastSeq = seq;
        }
        strangerTyping(false);
        line('them', 'Stranger', String(m.text));   // saved (with lastSeq) before it is acknowledged
        attention('New message');
        received(String(m.text).length);
        break;
      }
      case 'typing':
        strangerTyping(m.active === true && state === 'paired' && !partnerAway);
        break;
      case 'partner_away': {
        const grace = Math.max(0, Number(m.grace) || 0);
        strangerTyping(false);
        setAway(true, grace);
        setStatus("Stranger's connection dropped; waiting up to " + Math.round(grace) + ' s.');
        note("Stranger's connection dropped; waiting up to " + Math.round(grace) + ' s for them to come back.', 'alert');
        break;
      }
      case 'partner_back':
        setAway(false);
        if (chat) setStatus(chat.hello);
        note('Stranger is back.');
        attention('Stranger is back');
        break;
      case 'partner_left':
        chatEnded();
        endChat();
        wanted = false;
        typingSent = false;
        clearTimeout(typingTimer);
        setState('idle');
        setStatus('Stranger has disconnected.');
        note('Stranger has disconnected.', 'alert');
        attention('Stranger left');
        if (document.activeElement !== text) nextBtn.focus();
        break;
      case 'image_offer':
        offered(m);
        break;
      case 'call':
        onCall(m);
        break;
      case 'signal':
        onSignal(m.data);
        break;
      case 'image_accept':
        if (outOffer && m.id === outOffer.id && outOffer.state === 'offered') sendImage(outOffer);
        break;
      case 'image_decline':
        if (outOffer && m.id === outOffer.id && outOffer.state === 'offered') {
          endOut(outOffer, ' (declined)', 'Declined.');
          note('Stranger declined your image.');   // a line of its own, so that the live region reads it
        }
        break;
      case 'reported':
      case 'blocked':
        moderated(m.type);
        break;
      case 'error':
        onError(String(m.code || ''), String(m.message || ''));
        break;
    }
  }

  function onError(code, message) {
    if (code === 'nothing_to_report') {
      endedAt = 0;
      reportPanel.hidden = true;
      updateModeration();
      note('There is no one to report: that chat ended more than a minute ago.', 'refused');
      return;
    }
    if (callRefused(code)) return;
    if (imageRefused(code)) return;
    if (resuming && code === 'rate_limited') {   // the resume itself was refused for now: ask again shortly
      setTimeout(() => { if (resuming && chat) send({ type: 'resume', token: chat.token, seq: chat.lastSeq }); }, 2000);
      return;
    }
    if (code === 'resume_failed') {
      if (!resuming) return;   // never sent while in a chat; nothing to undo
      resuming = false;
      closeStale();
      // What never reached any socket surely was not delivered.
      if (chat) for (const u of chat.unconfirmed) {
        const li = items.get(u.id);
        const entry = lines.find((e) => e.id === u.id);
        if (li && entry && !u.sent) mark({ item: li, entry }, ' (not sent)');
      }
      endChat();
      wanted = false;
      setState('idle');
      setStatus('The chat ended while you were away.');
      note('The chat ended while you were away. Press New to meet someone else.', 'alert');
      if (document.activeElement !== text) nextBtn.focus();
      return;
    }
    refused(code, message);
  }

  // The server answers only refusals, in order; the most recent message is the one it refused.
  function refused(code, message) {
    const why = { too_long: 'Your message is too long.', rate_limited: 'You are sending messages too fast. Wait a moment.',
                  not_paired: "You're not chatting with anyone right now.", bad_request: 'The server did not understand that.',
                  partner_away: "Stranger's connection dropped and too much is already waiting for them." }[code] || message;
    if (lastSent && code !== 'bad_request') {
      const sent = lastSent;
      lastSent = null;
      if (chat) chat.unconfirmed = chat.unconfirmed.filter((u) => u.id !== sent.entry.id);
      mark(sent, code === 'partner_away' ? ' (not delivered)' : ' (not sent)');
      // What the person typed is never lost: it goes back into the box, before anything typed since.
      const t = sent.text;
      if (!text.value) text.value = t;
      else if (code !== 'partner_away' && !text.value.startsWith(t)) text.value = t + '\n' + text.value;
      updateCounter();
    }
    note((code === 'partner_away' ? 'Not delivered: ' : 'Not sent: ') + why, 'refused');
  }

  // ---- report and block (B.5) ----
  function chatEnded() {
    endedAt = Date.now();
    reportedLast = blockedLast = false;
    clearTimeout(modTimer);
    modTimer = setTimeout(updateModeration, REPORT_GRACE_MS + 100);
  }
  function canModerate() {
    if (state === 'paired' && !resuming && chat) return true;
    return !!endedAt && Date.now() - endedAt < REPORT_GRACE_MS && !(reportedLast && blockedLast);
  }
  function updateModeration() {
    const on = canModerate() && !gated;
    modButtons.hidden = !on;
    if (!on) { reportPanel.hidden = true; reportBtn.setAttribute('aria-expanded', 'false'); return; }
    const after = state !== 'paired';
    reportBtn.textContent = after ? 'Report this stranger' : 'Report';
    reportBtn.hidden = after && reportedLast;
    blockBtn.hidden = after && blockedLast;
  }
  function openReport() {
    reportPanel.hidden = !reportPanel.hidden;
    reportBtn.setAttribute('aria-expanded', String(!reportPanel.hidden));
    if (!reportPanel.hidden) reportPanel.querySelector('input[name=reason]:checked').focus();
  }
  function sendReport() {
    const reason = (reportPanel.querySelector('input[name=reason]:checked') || {}).value || 'other';
    reportPanel.hidden = true;
    reportBtn.setAttribute('aria-expanded', 'false');
    send({ type: 'report', reason });
  }
  // The server ended the chat (if one was open) and took the report or block.
  function moderated(what) {
    const during = state === 'paired';
    if (during) {
      chatEnded();
      endChat();
      wanted = false;
      setState('idle');
    }
    if (what === 'reported') reportedLast = true; else blockedLast = true;
    const said = what === 'reported'
      ? 'You reported the stranger. Thank you: reports keep this place safe.'
      : 'You blocked the stranger. You will not be paired with them again.';
    note(said + (during ? ' The chat has ended.' : ''), 'alert');
    if (during) setStatus((what === 'reported' ? 'Reported. ' : 'Blocked. ') + 'Press New (or Esc) to meet someone else.');
    updateModeration();
    if (during && document.activeElement !== text) nextBtn.focus();
  }
  reportBtn.addEventListener('click', openReport);
  blockBtn.addEventListener('click', () => { reportPanel.hidden = true; send({ type: 'block' }); });
  reportPanel.addEventListener('submit', (e) => { e.preventDefault(); sendReport(); });
  $('report-cancel').addEventListener('click', () => { reportPanel.hidden = true; reportBtn.setAttribute('aria-expanded', 'false'); reportBtn.focus(); });

  // ---- the rules, bans and logins: GET /status ----
  function termsKey() { return site.minAge + '|' + site.termsUrl; }
  function termsAccepted() {
    try { return localStorage.getItem(TERMS_KEY) === termsKey(); } catch { return true; }   // storage off: not asked again and again
  }
  function showTerms() {
    if (gated) return;
    for (const a of [$('terms-link'), $('rules-link')]) a.href = site.termsUrl;
    $('min-age').textContent = $('min-age-button').textContent = String(site.minAge);
    startPane.hidden = true;
    chatPane.hidden = true;
    termsPane.hidden = false;
    $('terms-accept').focus();
  }
  $('terms-accept').addEventListener('click', () => {
    try { localStorage.setItem(TERMS_KEY, termsKey()); } catch { /* storage off */ }
    termsPane.hidden = true;
    startPane.hidden = false;
    tagInput.focus();
    refreshOnline();
  });
  function showGate(title, body, link, linkText) {
    gated = true;
    wanted = false;
    clearTimeout(reconnectTimer);
    const s = ws;
    ws = null;
    if (s) try { s.close(); } catch { /* gone */ }
    stopSocketTimers();
    updateModeration();
    $('gate-title').textContent = title;
    $('gate-text').textContent = body;
    const a = $('gate-link');
    a.hidden = !link;
    if (link) { a.href = link; a.textContent = linkText; }
    termsPane.hidden = startPane.hidden = chatPane.hidden = true;
    gatePane.hidden = false;
  }
  function applyStatus(st) {
    if (typeof st.termsUrl === 'string' && st.termsUrl) site.termsUrl = st.termsUrl;
    if (Number.isInteger(st.minAge)) site.minAge = st.minAge;
    for (const a of [$('terms-link'), $('rules-link')]) a.href = site.termsUrl;
    if (st.banned === true) {
      const until = new Date((Number(st.until) || Date.now() / 1000 + Number(st.retryAfter) || 0) * 1000);
      showGate('You cannot chat right now',
               'Several people reported you, so you are banned until ' +
               until.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) + ' (' + until.toLocaleDateString() + '). ' +
               'Please read the rules before you come back.', site.termsUrl, 'Read the rules');
      return true;
    }
    if (st.auth === 'required' && st.authenticated !== true) {
      showGate('Log in to chat', 'This chat is for members only: you need to log in first.',
               typeof st.loginUrl === 'string' ? st.loginUrl : '', 'Log in');
      return true;
    }
    return false;
  }
  async function checkStatus() {
    try {
      const r = await fetch('/status', { cache: 'no-store' });
      if (!r.ok) return null;
      const st = await r.json();
      return applyStatus(st) ? null : st;
    } catch { return null; }   // offline, or an older server: the page works as before
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
    if (!chat || (state !== 'paired' && state !== 'resuming')) {
      note("You're not chatting with anyone right now. Your message is still in the box.", 'refused');
      return;
    }
    const n = scalars(t);
    if (n > MAX_SCALARS) { note('Your message is too long (' + n + ' / ' + MAX_SCALARS + '). Shorten it and send again.', 'refused'); return; }
    // Shown at once; kept (and saved) until the server surely has it; sent now, or after the resume.
    const u = { id: chat.nextId, text: t };
    chat.nextId += 1;
    chat.unconfirmed.push(u);
    const sent = line('you', 'You', t, u.id);
    lastSent = { entry: sent.entry, item: sent.item, text: t };
    if (state === 'paired' && !resuming) queue(u);
    if (!u.sent) sent.item.classList.add('queued');   // not on its way yet: it goes after the resume
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
      if (was === 'connecting' || was === 'lost' || was === 'resuming') {
        // A close frame is a leave: the server ends a chat it holds for us at once.
        const s = ws;
        ws = null;
        stopSocketTimers();
        clearTimeout(reconnectTimer);
        if (s) s.close();
        closeStale();
        const hadChat = !!chat;
        endChat();
        setState('lost');
        if (hadChat) note('You have disconnected.', 'alert');
        setStatus('Stopped. Press New to look again.');
        return;
      }
      send({ type: 'stop' });
      if (was === 'paired') chatEnded();
      endChat();
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
    if (ws && ws.readyState === WebSocket.OPEN && greeted) {
      sendStart();
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
    stopSocketTimers();
    clearTimeout(reconnectTimer);
    if (s) s.close();
    closeStale();
    endChat();
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

  // ---- images, with the receiver's consent (PROTOCOL.md B.3) ----
  // Picture bytes live only in memory and in blob: URLs (revoked with the log); the log lines, the saved
  // transcript and sessionStorage hold a `[image]` marker in their place. At most one offer of ours and one of
  // the partner's are open; any drop or end of the chat kills both, on both sides, without a word from the server.
  let imageId = 0;        // the id of our last offer: ids grow with each offer, across chats and reloads
  let outOffer = null;    // ours: { id, data, mime, entry, item, status, state: preparing|offered|sending|sent, until, timer }
  let inOffer = null;     // the partner's: { id, mime, entry, item, state: offered|accepted, timer }
  let lastKind = '';      // 'text' or 'image': what we sent last, to tell whose rate_limited it is
  let answered = null;    // the partner's offer we last answered, while a bad_request can still be about it
  const blobUrls = [];

  function canAttach() { return state === 'paired' && !resuming && partnerImages && !partnerAway && !!chat; }
  function updateAttach() {
    attachBtn.hidden = !canAttach();
    attachBtn.disabled = !!outOffer;   // one open offer at a time (the server says busy otherwise)
  }
  function kb(n) { return Math.max(1, Math.round(n / 1024)) + ' KB'; }

  // An image line: "You: [image]" in the transcript, with a status and later the picture in the log.
  function imageLine(kind, who, lead) {
    const stick = nearBottom();
    const entry = { k: kind + ' image', w: who, b: '[image]' };
    lines.push(entry);
    save();
    const li = document.createElement('li');
    li.className = entry.k;
    const w = document.createElement('span');
    w.className = 'who';
    w.textContent = who + ':';
    const status = document.createElement('span');
    status.className = 'istate';
    li.append(w, ' ', lead, status);
    place(li, stick);
    return { entry, item: li, status };
  }
  function endLine(o, suffix, shown) {   // the transcript keeps `[image]` and says what became of it
    o.entry.b = '[image]' + suffix;
    const ours = o.entry.w === 'You';   // ours in red when it did not go; the partner's that did not come stay grey
    if (suffix && ours) o.entry.k += ' refused';
    o.status.textContent = shown;
    o.item.classList.toggle('refused', !!suffix && ours);
    save();
  }
  function picture(o, url, blurred) {
    const fig = document.createElement('figure');
    fig.className = 'shot';
    const img = document.createElement('img');
    img.alt = o.entry.w === 'You' ? 'Your image' : 'Image from Stranger';
    img.addEventListener('error', () => { fig.remove(); endLine(o, ' (could not be shown)', 'The image could not be shown.'); });
    img.src = url;
    fig.append(img);
    o.item.append(fig);
    if (!blurred) return;
    // Blurred until the person asks to see it, and blurred again on Hide.
    const veil = document.createElement('button');
    veil.type = 'button';
    veil.className = 'veil';
    const label = document.createElement('span');
    label.textContent = 'Click to show';
    veil.append(label);
    const hide = document.createElement('button');
    hide.type = 'button';
    hide.className = 'link';
    hide.textContent = 'Hide image';
    const show = (on) => {
      fig.classList.toggle('blurred', !on);
      veil.hidden = on;
      hide.hidden = !on;
      (on ? hide : veil).focus();
    };
    veil.addEventListener('click', () => show(true));
    hide.addEventListener('click', () => show(false));
    fig.classList.add('blurred');
    fig.append(veil);
    hide.hidden = true;
    o.item.append(hide);
  }

  // Scale a photo down and re-encode it through a canvas, which also leaves every piece of metadata behind.
  // createImageBitmap applies the EXIF orientation. A GIF within the limit goes as it is (a canvas would keep one
  // frame of an animation; the server cleans GIFs); a larger one becomes a still.
  async function prepare(file) {
    if (file.type === 'image/gif' && file.size <= IMAGE_MAX) return { blob: file, mime: 'image/gif' };
    let bmp;
    try {
      bmp = await createImageBitmap(file, { imageOrientation: 'from-image' });
    } catch {
      throw new Error('This browser cannot open that file as an image (HEIC photos, for one). Try a JPEG or PNG.');
    }
    try {
      const alpha = file.type !== 'image/jpeg' && transparent(bmp);
      const canvas = document.createElement('canvas');
      let scale = Math.min(1, IMAGE_SIDE / Math.max(bmp.width, bmp.height));
      for (let round = 0; round < 6; round += 1, scale *= 0.7) {
        canvas.width = Math.max(1, Math.round(bmp.width * scale));
        canvas.height = Math.max(1, Math.round(bmp.height * scale));
        const g = canvas.getContext('2d');
        if (!alpha) { g.fillStyle = '#fff'; g.fillRect(0, 0, canvas.width, canvas.height); }   // JPEG has no alpha
        g.drawImage(bmp, 0, 0, canvas.width, canvas.height);
        for (const q of alpha ? [0] : [0.9, 0.8, 0.7, 0.6, 0.5]) {
          const mime = alpha ? 'image/png' : 'image/jpeg';
          const blob = await new Promise((done) => canvas.toBlob(done, mime, q));
          if (blob && blob.size <= IMAGE_MAX) return { blob, mime };
        }
      }
      throw new Error('That image is too large to send, even scaled down.');
    } finally {
      bmp.close();
    }
  }
  function transparent(bmp) {   // looked at in a small copy: enough to tell a PNG with a see-through part
    const f = Math.min(1, 256 / Math.max(bmp.width, bmp.height));
    const c = document.createElement('canvas');
    c.width = Math.max(1, Math.round(bmp.width * f));
    c.height = Math.max(1, Math.round(bmp.height * f));
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(bmp, 0, 0, c.width, c.height);
    const px = g.getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < px.length; i += 4) if (px[i] < 255) return true;
    return false;
  }

  async function attach(file) {
    if (!file) return;
    if (!canAttach()) { note("Stranger doesn't accept images in this chat.", 'refused'); return; }
    if (outOffer) { note('Wait until Stranger has answered your last image.', 'refused'); return; }
    const o = imageLine('you', 'You', '');
    o.state = 'preparing';
    o.status.textContent = 'Preparing image…';
    outOffer = o;
    updateAttach();
    const theChat = chat;
    let ready;
    try {
      ready = await prepare(file);
    } catch (e) {
      if (outOffer === o) { outOffer = null; updateAttach(); }
      endLine(o, ' (not sent)', 'Not sent.');
      note('Not sent: ' + e.message, 'refused');
      return;
    }
    if (outOffer === o) o.data = new Uint8Array(await ready.blob.arrayBuffer());
    if (outOffer !== o) return;   // the chat ended meanwhile (dropOffers said so)
    if (chat !== theChat || !canAttach()) { endOut(o, ' (not sent)', 'Not sent.'); return; }
    o.mime = ready.mime;
    o.blob = ready.blob;
    imageId = imageId % (2 ** 32 - 2) + 1;
    o.id = imageId;
    if (chat) { chat.imageId = imageId; save(); }
    if (!send({ type: 'image_offer', id: o.id, mime: o.mime, bytes: o.data.length })) {
      outOffer = null;
      updateAttach();
      endLine(o, ' (not sent)', 'Not sent: no connection.');
      return;
    }
    lastKind = 'image';
    o.state = 'offered';
    o.status.textContent = 'Waiting for Stranger to accept… (' + kb(o.data.length) + ')';
    settleAfter(o);
    o.timer = setTimeout(() => {
      if (outOffer === o && o.state === 'offered') endOut(o, ' (not answered)', 'Stranger did not answer in time; not sent.');
    }, OFFER_MS);
  }
  // The errors the server has for a command all come before the answer to a ping sent after it.
  function settleAfter(o) { ping(); o.until = pingsSent; }
  function fresh(o) { return pongsSeen < o.until; }
  function offerSettled() {
    if (outOffer && outOffer.state === 'sent' && !fresh(outOffer)) { outOffer = null; updateAttach(); }
  }
  function endOut(o, suffix, shown) {
    clearTimeout(o.timer);
    clearInterval(o.poll);
    if (outOffer === o) outOffer = null;
    o.data = null;
    endLine(o, suffix, shown);
    updateAttach();
  }

  function sendImage(o) {
    // One binary message: the offer id (4 bytes, big-endian), then exactly the offered bytes.
    const frame = new Uint8Array(4 + o.data.length);
    new DataView(frame.buffer).setUint32(0, o.id);
    frame.set(o.data, 4);
    const sock = ws;
    if (!sock || sock.readyState !== WebSocket.OPEN) return;
    clearTimeout(o.timer);
    sock.send(frame);
    lastKind = 'image';
    o.state = 'sending';
    o.data = null;
    const total = frame.length;
    const progress = () => {
      if (outOffer !== o) { clearInterval(o.poll); return; }
      const left = Math.min(total, sock.bufferedAmount);
      o.status.textContent = left ? 'Sending image… ' + Math.floor(100 * (total - left) / total) + '%' : '';
      if (left) return;
      clearInterval(o.poll);
      o.state = 'sent';
      const url = URL.createObjectURL(o.blob);
      blobUrls.push(url);
      o.blob = null;
      picture(o, url, false);
      if (nearBottom()) toBottom();
      settleAfter(o);
    };
    o.poll = setInterval(progress, 100);
    progress();
  }

  // Image errors carry no id; with one open offer of ours they are about it. A code that text messages share
  // (rate_limited, not_paired, partner_away, bad_request) is the offer's only while the server may still be
  // answering the offer (or its bytes), and when the offer was the last thing we sent.
  function imageRefused(code) {
    if (code === 'bad_request' && answered && fresh(answered)) {   // our answer came after the offer had died
      const a = answered;
      answered = null;
      if (inOffer === a) endIn(a, ' (not received)', 'The offer was no longer open.');
      return true;
    }
    const o = outOffer;
    const why = { images_off: "Stranger doesn't accept images.", too_large: 'That image is too large to send.',
                  busy: 'Your last image is still waiting for an answer.', bad_image: 'That file is not a valid image.',
                  rate_limited: 'Too many images, wait a moment.', not_paired: "You're not chatting with anyone right now.",
                  partner_away: "Stranger's connection dropped.", bad_request: 'The server did not take that image.' }[code];
    if (!why) return false;
    const own = ['images_off', 'too_large', 'busy', 'bad_image'].includes(code);
    if (!o || o.state === 'preparing') {
      if (!own) return false;
      note('Not sent: ' + why, 'refused');
      return true;
    }
    if (!own && !(fresh(o) && lastKind === 'image')) return false;
    if (code === 'images_off') { partnerImages = false; updateAttach(); }
    const shot = o.item.querySelector('.shot');
    if (shot) shot.remove();
    endOut(o, ' (not sent)', 'Not sent.');
    note('Not sent: ' + why, 'refused');
    return true;
  }

  function offered(m) {
    const id = m.id, bytes = m.bytes, mime = String(m.mime);
    if (!Number.isInteger(id) || id <= 0 || id >= 2 ** 32 || !IMAGE_TYPES.includes(mime) || !Number.isInteger(bytes) || bytes <= 0) return;
    if (!chat || state !== 'paired') return;
    if (inOffer) endIn(inOffer, ' (not answered)', '');   // a new offer means the old one is dead
    if (!imagesBox.checked) {   // turned off during this chat: the server still thinks we accept
      send({ type: 'image_decline', id });
      note('Stranger tried to send you an image; it was declined because you turned images off.');
      return;
    }
    const o = imageLine('them', 'Stranger', 'wants to send you an image (' + kb(bytes) + '): ');
    Object.assign(o, { id, mime, state: 'offered' });
    const view = document.createElement('button');
    view.type = 'button';
    view.className = 'primary';
    view.textContent = 'View';
    const no = document.createElement('button');
    no.type = 'button';
    no.textContent = 'Decline';
    const buttons = document.createElement('span');
    buttons.append(view, no);
    o.item.append(buttons);
    o.buttons = buttons;
    view.addEventListener('click', () => {
      if (inOffer !== o || !send({ type: 'image_accept', id })) return;
      answered = o;
      settleAfter(o);
      o.state = 'accepted';
      buttons.remove();
      o.status.textContent = 'Receiving…';
      clearTimeout(o.timer);   // the bytes may take a while on a slow line; a minute more for them
      o.timer = setTimeout(() => { if (inOffer === o) endIn(o, ' (not received)', 'The image did not arrive.'); }, OFFER_MS);
      log.focus();
    });
    no.addEventListener('click', () => {
      if (inOffer !== o) return;
      if (send({ type: 'image_decline', id })) { answered = o; settleAfter(o); }
      endIn(o, ' (declined)', 'You declined it.');
      log.focus();
    });
    inOffer = o;
    // Dead on the server after a minute unanswered; an accepted one whose bytes never come goes too.
    o.timer = setTimeout(() => { if (inOffer === o) endIn(o, ' (not answered)', 'The offer has expired.'); }, OFFER_MS);
    attention('Stranger wants to send an image');
  }
  function endIn(o, suffix, shown) {
    clearTimeout(o.timer);
    if (inOffer === o) inOffer = null;
    if (o.buttons) o.buttons.remove();
    endLine(o, suffix, shown);
  }
  function onBinary(data) {
    lastFrameAt = Date.now();
    clearTimeout(probeTimer);
    probeTimer = 0;
    const o = inOffer;
    if (!(data instanceof ArrayBuffer) || data.byteLength < 4 || !o || o.state !== 'accepted') return;
    if (new DataView(data).getUint32(0) !== o.id) return;
    clearTimeout(o.timer);
    inOffer = null;
    const url = URL.createObjectURL(new Blob([data.slice(4)], { type: o.mime }));
    blobUrls.push(url);
    o.status.textContent = '';
    const stick = nearBottom();
    picture(o, url, true);
    if (stick) toBottom();
    attention('Stranger sent an image');
  }

  // Every open offer dies when the chat ends or either side drops.
  function dropOffers(why) {
    if (outOffer && outOffer.state === 'sent') { outOffer = null; updateAttach(); }   // gone out whole already
    if (outOffer) endOut(outOffer, ' (not sent)', why ? 'Not sent: ' + why + '.' : '');
    if (inOffer) endIn(inOffer, ' (not received)', why ? 'Not received: ' + why + '.' : '');
  }

  attachBtn.addEventListener('click', () => fileInput.click());
  fileInput.addEventListener('change', () => {
    const f = fileInput.files && fileInput.files[0];
    fileInput.value = '';   // the same file can be chosen again
    attach(f);
  });
  text.addEventListener('paste', (e) => {
    const items = e.clipboardData ? [...e.clipboardData.items] : [];
    const it = items.find((i) => i.kind === 'file' && i.type.startsWith('image/'));
    if (!it) return;
    e.preventDefault();
    attach(it.getAsFile());
  });
  // A file dropped anywhere on the page is ours to handle: left alone, the browser would open it in place of the chat.
  const dragsFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  document.addEventListener('dragover', (e) => {
    if (!dragsFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = canAttach() ? 'copy' : 'none';
    logWrap.classList.toggle('dropping', canAttach());
  });
  document.addEventListener('dragleave', (e) => { if (!e.relatedTarget) logWrap.classList.remove('dropping'); });
  document.addEventListener('drop', (e) => {
    if (!dragsFiles(e)) return;
    e.preventDefault();
    logWrap.classList.remove('dropping');
    if (!chatPane.hidden) attach(e.dataTransfer.files[0]);
  });

  // The setting, remembered; it goes with each `start`, so a change made during a chat counts from the next one.
  function setImages(on, changed) {
    imagesBox.checked = imagesStart.checked = on;
    try { localStorage.setItem('uvchat.images', on ? '1' : '0'); } catch { /* storage off */ }
    if (!changed) return;
    if (state === 'waiting' && wanted && greeted) { sendStart(); return; }   // queued: queue again, with it
    const inChat = wanted && (state === 'paired' || state === 'resuming');
    imagesHint.hidden = !wanted || on === askedImages;
    imagesHint.textContent = on ? 'From your next chat.'
      : inChat && askedImages ? 'Off: offers in this chat are declined.' : 'From your next chat.';
  }
  try { setImages(localStorage.getItem('uvchat.images') === '1', false); } catch { /* storage off */ }
  imagesBox.addEventListener('change', () => setImages(imagesBox.checked, true));
  imagesStart.addEventListener('change', () => setImages(imagesStart.checked, true));

  // ---- voice and video calls (PROTOCOL.md B.4) ----
  // uvchatd only relays the signalling: `call` request / accept / decline / end, then `signal` objects, each one of
  // {sdp: description}, {candidate: ICE candidate} or {media: {audio, video}} (what we send, so that the partner can
  // say "muted"). The media go between the browsers, or through the TURN server the `ice` of `start` names. The
  // callee asks for the microphone (and camera) only after pressing Accept, the caller when the call starts. One
  // call at a time; everything it holds (tracks, the connection, the video elements) is let go in releaseCall.
  const RING_MS = 45000;      // a call nobody answers: the caller gives up after this long
  const CONNECT_MS = 30000;   // a call not connected this long after `start` has failed
  const UNSTABLE_MS = 12000;  // a connection `disconnected` this long has failed
  const OUTCOME_MS = 6000;    // how long the panel shows how the last call ended (the log keeps it)
  const SIGNAL_MAX = 15000;   // bytes: the server closes a frame over 16 KiB, and the chat with it, so never send one
  const canCall = !!(window.RTCPeerConnection && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  const callButtons = $('call-buttons'), callPane = $('call'), stage = $('stage'), callStatus = $('call-status');
  const remoteVideo = $('remote-video'), remoteAudio = $('remote-audio'), localVideo = $('local-video');
  const remoteState = $('remote-state'), callTime = $('call-time'), acceptBtn = $('call-accept');
  const declineBtn = $('call-decline'), muteBtn = $('call-mute'), cameraBtn = $('call-camera'), hangupBtn = $('call-hangup');
  // { video, outgoing, phase: ringing|incoming|starting|connecting|connected|unstable, initiator, ice, media
  //   (the getUserMedia promise), local, pc, pcReady, chain (signals, in order), candidates, muted, cameraOff,
  //   timer, clock, since }
  let call = null;
  let asked = null;           // our last request, while errors and a `decline` before the next pong are about it
  let partnerNoCalls = false; // the server declined for the partner (a version 1 client, B.7): no buttons this chat
  let outcomeTimer = 0;

  function callable() { return canCall && state === 'paired' && !resuming && !partnerAway && !!chat && !partnerNoCalls; }
  function updateCallButtons() { callButtons.hidden = !callable() || !!call; }
  function sendCall(action, extra) {
    if (!send(Object.assign({ type: 'call', action }, extra))) return false;
    lastKind = 'call';
    return true;
  }
  function signal(data) {
    const frame = JSON.stringify({ type: 'signal', data });
    if (new TextEncoder().encode(frame).length > SIGNAL_MAX) { callFailed(call); return; }
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(frame); lastKind = 'signal'; }
  }

  function newCall(video, outgoing, phase) {
    clearTimeout(outcomeTimer);
    const c = { video, outgoing, phase, candidates: [], muted: false, cameraOff: false, timer: 0, clock: 0 };
    c.pcReady = new Promise((ready) => { c.resolvePc = ready; });
    c.chain = c.pcReady;
    return c;
  }
  function requestCall(video) {
    if (!callable() || call || !sendCall('request', { video })) return;
    call = newCall(video, true, 'ringing');
    asked = { until: 0 };
    settleAfter(asked);   // a `decline` before the pong is the server's own: the partner can't take calls
    showCall('Calling the stranger…');
    const c = call;
    c.timer = setTimeout(() => { if (call === c && c.phase === 'ringing') finishCall('missed', 'Stranger did not answer.', 'end'); }, RING_MS);
    hangupBtn.focus();
  }
  function incoming(m) {
    const video = m.video === true;
    if (call && call.outgoing && call.phase === 'ringing') dropCall();   // both asked at once: theirs rang, ours gets busy
    else if (call) return;   // one call at a time; the server says so too
    if (!canCall) {
      sendCall('decline');
      note('Stranger wanted a ' + (video ? 'video' : 'voice') + " call; this browser can't make calls here.");
      return;
    }
    call = newCall(video, false, 'incoming');
    showCall('Stranger wants a ' + (video ? 'video' : 'voice') + ' call');
    attention('Stranger is calling');
    if (document.activeElement === document.body || document.activeElement === nextBtn) acceptBtn.focus();
  }
  function acceptCall() {
    const c = call;
    if (!c || c.phase !== 'incoming' || !sendCall('accept')) return;
    c.phase = 'starting';
    showCall('Connecting the call…');
    getMedia(c);   // only now: nothing is asked of the camera before the person agreed
    hangupBtn.focus();
  }
  function declineCall() {
    if (!call || call.phase !== 'incoming') return;
    finishCall('declined', 'You declined the call.', 'decline');
  }
  function hangUp() {
    const c = call;
    if (!c) return;
    if (c.phase === 'incoming') { declineCall(); return; }
    finishCall('ended', c.phase === 'ringing' ? 'You cancelled the call.' : 'You ended the call.', 'end');
  }

  function getMedia(c) {
    if (c.media) return c.media;
    const want = { audio: true, video: c.video ? { width: { ideal: 640 }, height: { ideal: 480 } } : false };
    c.media = navigator.mediaDevices.getUserMedia(want).then((s) => {
      if (call !== c) { for (const t of s.getTracks()) t.stop(); throw new Error('the call is over'); }
      c.local = s;
      for (const t of s.getAudioTracks()) t.enabled = !c.muted;
      for (const t of s.getVideoTracks()) t.enabled = !c.cameraOff;
      if (c.video) { localVideo.srcObject = s; localVideo.play().catch(() => {}); }
      return s;
    }, (e) => {
      if (call === c) mediaRefused(c, e);
      throw e;
    });
    c.media.catch(() => {});   // handled above; the chain below only waits for it
    return c.media;
  }
  function mediaRefused(c, e) {
    const what = c.video ? 'camera and microphone' : 'microphone';
    const name = e && e.name;
    if (name === 'NotAllowedError' || name === 'SecurityError') {
      finishCall('denied', 'The call ended: the browser did not allow this page to use your ' + what +
                 '. To call, allow it in the site settings. Your chat goes on.', 'end');
    } else if (name === 'NotFoundError' || name === 'OverconstrainedError') {
      finishCall('denied', 'The call ended: no ' + what + ' was found. Your chat goes on.', 'end');
    } else {
      finishCall('denied', 'The call ended: your ' + what + " could not be started (another app may be using it). Your chat goes on.", 'end');
    }
  }

  // Both sides get `start`; the initiator (the caller) makes the offer.
  function started(m) {
    const c = call;
    if (!c || (c.phase !== 'ringing' && c.phase !== 'starting')) return;   // ended here meanwhile: our end is on its way
    clearTimeout(c.timer);
    c.initiator = m.initiator === true;
    c.ice = iceConfig(m.ice);
    c.phase = 'connecting';
    showCall('Connecting the call…');
    c.timer = setTimeout(() => { if (call === c && c.phase === 'connecting') callFailed(c); }, CONNECT_MS);
    // The connection only once the media are there: Chrome offers every network interface only to a page that
    // may use the microphone.
    getMedia(c).then(() => connectPeer(c), () => {});
  }
  function iceConfig(ice) {
    const o = ice && typeof ice === 'object' ? ice : {};
    return { iceServers: Array.isArray(o.iceServers) ? o.iceServers : [],
             iceTransportPolicy: o.iceTransportPolicy === 'relay' ? 'relay' : 'all' };
  }
  function connectPeer(c) {
    if (call !== c) return;
    let pc;
    try { pc = new RTCPeerConnection(c.ice); } catch { callFailed(c); return; }
    c.pc = pc;
    pc.onicecandidate = (e) => { if (call === c && e.candidate) signal({ candidate: e.candidate.toJSON() }); };
    pc.ontrack = (e) => {
      if (call !== c) return;
      const s = e.streams[0] || new MediaStream([e.track]);
      if (remoteAudio.srcObject !== s) {
        remoteAudio.srcObject = s;
        remoteAudio.play().catch(() => {});
        if (c.video) { remoteVideo.srcObject = s; remoteVideo.play().catch(() => {}); }
      }
    };
    pc.onconnectionstatechange = pc.oniceconnectionstatechange = () => linkChanged(c);
    for (const t of c.local.getTracks()) pc.addTrack(t, c.local);
    c.resolvePc();
    if (c.muted || c.cameraOff) sendMediaState(c);
    if (c.initiator) queueSignal(c, async () => {
      await pc.setLocalDescription(await pc.createOffer());
      signal({ sdp: pc.localDescription });
    });
  }
  function queueSignal(c, step) {   // signals are handled one after the other, once the connection exists
    c.chain = c.chain.then(() => (call === c ? step() : undefined)).catch(() => { if (call === c) callFailed(c); });
  }
  function onSignal(d) {
    const c = call;
    if (!c || !d || typeof d !== 'object' || c.phase === 'ringing' || c.phase === 'incoming') return;
    if (d.sdp && typeof d.sdp === 'object') {
      const desc = { type: String(d.sdp.type), sdp: String(d.sdp.sdp) };
      queueSignal(c, async () => {
        const pc = c.pc;
        if (desc.type === 'offer' && !c.initiator && !pc.remoteDescription) {
          await pc.setRemoteDescription(desc);
          await pc.setLocalDescription(await pc.createAnswer());
          signal({ sdp: pc.localDescription });
        } else if (desc.type === 'answer' && c.initiator && pc.signalingState === 'have-local-offer') {
          await pc.setRemoteDescription(desc);
        } else {
          return;   // not what this side expects now: ignored
        }
        for (const cand of c.candidates.splice(0)) await pc.addIceCandidate(cand).catch(() => {});
      });
    } else if (d.candidate && typeof d.candidate === 'object') {
      const cand = d.candidate;
      queueSignal(c, async () => {
        if (!c.pc.remoteDescription) c.candidates.push(cand);
        else await c.pc.addIceCandidate(cand).catch(() => {});   // one bad candidate is not the end of the call
      });
    } else if (d.media && typeof d.media === 'object') {
      const off = [];
      if (d.media.audio === false) off.push('Stranger is muted');
      if (c.video && d.media.video === false) off.push("Stranger's camera is off");
      remoteState.textContent = off.join(' · ');
      remoteState.hidden = !off.length;
    }
  }
  function linkChanged(c) {
    if (call !== c || !c.pc) return;
    const s = c.pc.connectionState || c.pc.iceConnectionState;
    if (s === 'connected' || s === 'completed') {
      clearTimeout(c.timer);
      if (c.phase === 'connected') return;
      c.phase = 'connected';
      if (!c.since) {
        c.since = Date.now();
        c.clock = setInterval(tickCall, 1000);
      }
      showCall((c.video ? 'Video' : 'Voice') + ' call with Stranger');
      tickCall();
    } else if (s === 'disconnected' && c.phase === 'connected') {
      c.phase = 'unstable';
      showCall('The call is reconnecting…');
      c.timer = setTimeout(() => { if (call === c && c.phase === 'unstable') callFailed(c); }, UNSTABLE_MS);
    } else if (s === 'failed') {
      callFailed(c);
    }
  }
  function tickCall() {
    if (!call || !call.since) return;
    const t = Math.floor((Date.now() - call.since) / 1000);
    callTime.textContent = Math.floor(t / 60) + ':' + String(t % 60).padStart(2, '0');
  }
  function callFailed(c) {
    if (c && call === c) finishCall('failed', c.since ? 'The call was cut off; your chat goes on.' : 'The call could not connect; your chat goes on.', 'end');
  }

  function sendMediaState(c) {
    if (c.pc) signal({ media: { audio: !c.muted, video: c.video && !c.cameraOff } });
  }
  function toggleMute() {
    const c = call;
    if (!c) return;
    c.muted = !c.muted;
    if (c.local) for (const t of c.local.getAudioTracks()) t.enabled = !c.muted;
    muteBtn.setAttribute('aria-pressed', String(c.muted));
    sendMediaState(c);
  }
  function toggleCamera() {
    const c = call;
    if (!c || !c.video) return;
    c.cameraOff = !c.cameraOff;
    if (c.local) for (const t of c.local.getVideoTracks()) t.enabled = !c.cameraOff;
    cameraBtn.setAttribute('aria-pressed', String(c.cameraOff));
    sendMediaState(c);
  }

  // The panel: its phase (also for the style), the status line, and the buttons that phase has.
  function showCall(status) {
    const c = call;
    const phase = c.phase === 'starting' ? 'connecting' : c.phase === 'unstable' ? 'connected' : c.phase;
    callPane.dataset.phase = phase;
    callPane.hidden = false;
    const live = phase === 'connecting' || phase === 'connected';
    callStatus.textContent = status;
    stage.hidden = !(c.video && live);
    acceptBtn.hidden = declineBtn.hidden = phase !== 'incoming';
    muteBtn.hidden = !live;
    cameraBtn.hidden = !(live && c.video);
    hangupBtn.hidden = phase === 'incoming';
    hangupBtn.textContent = phase === 'ringing' ? 'Cancel' : 'Hang up';
    muteBtn.setAttribute('aria-pressed', String(c.muted));
    cameraBtn.setAttribute('aria-pressed', String(c.cameraOff));
    callTime.hidden = !c.since;
    updateCallButtons();
  }
  // The one way a call ends here: `tell` is what the server hears ('end', 'decline' or null when it knows already).
  function finishCall(outcome, message, tell) {
    const c = call;
    if (!c) return;
    call = null;
    if (tell) sendCall(tell);
    const focused = callPane.contains(document.activeElement);   // a button about to be hidden
    releaseCall(c);
    callPane.dataset.phase = outcome;
    callStatus.textContent = message;
    for (const b of [acceptBtn, declineBtn, muteBtn, cameraBtn, hangupBtn]) b.hidden = true;
    callPane.hidden = false;
    clearTimeout(outcomeTimer);
    outcomeTimer = setTimeout(() => { if (!call) callPane.hidden = true; }, OUTCOME_MS);
    note(message);
    updateCallButtons();
    if (focused) (('ontouchstart' in window) ? log : text).focus();   // no keyboard popping up on a phone
  }
  function dropCall() {   // without a word: a call replaced by the partner's, or one the chat took with it
    const c = call;
    if (!c) return;
    call = null;
    releaseCall(c);
    callPane.hidden = true;
    updateCallButtons();
  }
  function releaseCall(c) {
    clearTimeout(c.timer);
    clearInterval(c.clock);
    if (c.local) for (const t of c.local.getTracks()) t.stop();   // the camera light goes off
    c.local = null;
    if (c.pc) {
      c.pc.onicecandidate = c.pc.ontrack = c.pc.onconnectionstatechange = c.pc.oniceconnectionstatechange = null;
      c.pc.close();
    }
    c.pc = null;
    c.candidates = [];
    for (const v of [remoteVideo, remoteAudio, localVideo]) { v.pause(); v.srcObject = null; }
    stage.hidden = true;
    remoteState.hidden = true;
    remoteState.textContent = '';
    callTime.hidden = true;
    callTime.textContent = '';
  }
  // The chat, or our connection, ended: so did the call (the server ended it on its side).
  function chatEndsCall(message) {
    if (call) finishCall(call.phase === 'incoming' ? 'missed' : 'ended', message, null);
  }

  // Events from the server.
  function onCall(m) {
    switch (m.action) {
      case 'request':
        incoming(m);
        break;
      case 'start':
        started(m);
        break;
      case 'decline':
        if (!call || !call.outgoing || call.phase !== 'ringing') break;
        if (asked && fresh(asked)) {   // answered before our ping was: the server, for a version 1 partner
          partnerNoCalls = true;
          finishCall('unavailable', "The stranger can't take calls.", null);
        } else {
          finishCall('declined', 'Stranger declined the call.', null);
        }
        break;
      case 'end':
        if (!call) break;
        if (call.phase === 'incoming') finishCall('missed', 'Stranger cancelled the call.', null);
        else finishCall('ended', 'Stranger ended the call.', null);
        break;
    }
  }
  // Errors that are about a call: `no_call` always; the others only right after our request (or a signal).
  function callRefused(code) {
    if (code === 'no_call') {   // the call was over on the server already (the partner's end crossed ours)
      if (call && call.phase !== 'incoming' && call.phase !== 'ringing') finishCall('ended', 'The call ended.', null);
      return true;
    }
    if (code === 'rate_limited' && lastKind === 'signal' && call) return true;   // the connect timer decides
    // A call command (or signal) that crossed the end of the chat: the chat's end said all there is to say, and the
    // last message sent in that chat must not be marked as refused.
    if (code === 'not_paired' && (lastKind === 'call' || lastKind === 'signal') && !(asked && fresh(asked))) return true;
    if (!asked || !fresh(asked) || (code !== 'busy' && lastKind !== 'call')) return false;
    const why = { busy: 'A call is already open in this chat.', rate_limited: 'Too many calls; wait a moment before calling again.',
                  partner_away: "Stranger's connection dropped; try again when they are back.", not_paired: '' }[code];
    if (why === undefined) return false;
    asked = null;
    if (call && call.outgoing && call.phase === 'ringing') {
      if (why) finishCall('failed', why, null); else dropCall();
    }
    return true;   // a busy after the partner's call replaced ours: nothing to say
  }

  $('call-voice').addEventListener('click', () => requestCall(false));
  $('call-video').addEventListener('click', () => requestCall(true));
  acceptBtn.addEventListener('click', acceptCall);
  declineBtn.addEventListener('click', declineCall);
  hangupBtn.addEventListener('click', hangUp);
  muteBtn.addEventListener('click', toggleMute);
  cameraBtn.addEventListener('click', toggleCamera);

  // ---- save the conversation, in the browser only ----
  $('save').addEventListener('click', () => {
    const body = lines.length ? [head, ...lines.map((e) => (e.w ? e.w + ': ' : '') + e.b)] : [NAME + ': nothing said yet'];
    const blob = new Blob([body.join('\n') + '\n'], { type: 'text/plain;charset=utf-8' });
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

  // A reloaded tab with a chat in its sessionStorage goes straight back to it.
  const kept = load();
  if (kept) {
    chat = kept.chat;
    imageId = chat.imageId;
    interests = kept.interests;
    head = kept.head || NAME + ' conversation, ' + new Date().toLocaleString();
    lines = kept.lines;
    const waiting = new Set(chat.unconfirmed.filter((u) => !u.sent).map((u) => u.id));
    for (const e of lines) { const li = render(e); if (e.id && waiting.has(e.id)) li.classList.add('queued'); }
    toBottom();
    startPane.hidden = true;
    chatPane.hidden = false;
    wanted = true;
    renderTags();
    updateCounter();
    connect();
    setStatus('Reconnecting to your chat…');
  } else {
    try { sessionStorage.removeItem(STORE); } catch { /* storage off */ }
    renderTags();
    updateCounter();
    // First visit: the rules and the age before anything else (the defaults until /status has answered).
    let asked = false;
    try { asked = localStorage.getItem(TERMS_KEY) !== null; } catch { asked = true; }
    if (!asked) showTerms(); else refreshOnline();
  }
  // Banned, or a login required: say so. Rules changed since they were accepted: ask again (not mid-chat).
  checkStatus().then((st) => {
    if (st && !kept && chatPane.hidden && !termsAccepted()) showTerms();
  });
})();
