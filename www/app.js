'use strict';
// uvchat page: one WebSocket to /ws, speaking PROTOCOL.md version 1. Every text is set with textContent.
(() => {
  const $ = (id) => document.getElementById(id);
  const log = $('log'), status = $('status'), text = $('text'), next = $('next'), send = $('send');
  let ws = null, paired = false, confirmStop = false;

  function line(cls, who, body) {
    const li = document.createElement('li');
    li.className = cls;
    if (who) { const b = document.createElement('b'); b.textContent = who + ': '; li.append(b); }
    li.append(document.createTextNode(body));
    log.append(li);
    li.scrollIntoView({ block: 'end' });
  }

  function setPaired(on) {
    paired = on;
    text.disabled = !on; send.disabled = !on;
    confirmStop = false;
    next.disabled = !ws;
    next.textContent = on ? 'Stop' : 'New';
    if (on) text.focus();
  }

  function tags() {
    return $('interests').value.split(',').map((t) => t.trim().toLowerCase()).filter(Boolean).slice(0, 5);
  }

  function start() {
    if (ws) { ws.send(JSON.stringify({ type: 'next' })); log.textContent = ''; return; }
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const q = tags().length ? '?interests=' + encodeURIComponent(tags().join(',')) : '';
    ws = new WebSocket(proto + '//' + location.host + '/ws' + q);
    status.textContent = 'Connecting…';
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      switch (m.type) {
        case 'online': $('online').textContent = m.count + ' online'; break;
        case 'waiting': status.textContent = 'Looking for someone you can chat with…'; break;
        case 'paired':
          log.textContent = '';
          status.textContent = m.common.length ? 'You both like ' + m.common.join(', ') + '.' : "You're now chatting with a random stranger.";
          setPaired(true); break;
        case 'message': line('them', 'Stranger', m.text); break;
        case 'typing': status.textContent = m.active ? 'Stranger is typing…' : ''; break;
        case 'partner_left': line('note', '', 'Stranger has disconnected.'); status.textContent = 'Stranger has disconnected.'; setPaired(false); break;
        case 'error': line('note', '', m.message); break;
      }
    };
    ws.onclose = () => { ws = null; setPaired(false); status.textContent = 'Connection closed. Press Start to try again.'; };
  }

  $('go').addEventListener('click', start);
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = text.value;
    if (!paired || !t.trim()) return;
    ws.send(JSON.stringify({ type: 'message', text: t }));
    line('you', 'You', t);
    text.value = '';
  });
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); $('composer').requestSubmit(); }
  });
  next.addEventListener('click', () => {
    if (!ws) return start();
    if (paired && !confirmStop) { confirmStop = true; next.textContent = 'Really?'; return; }
    if (paired) { ws.send(JSON.stringify({ type: 'stop' })); line('note', '', 'You have disconnected.'); setPaired(false); return; }
    start();
  });
})();
