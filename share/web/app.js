// mt-web's page. Every piece of text from the files reaches the page as a
// text node (textContent), never as markup; links are built only from
// names and ids that match the strict patterns below.
'use strict';

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const TOKEN = /(@[A-Za-z0-9][A-Za-z0-9._-]*)|#(\d{1,9})\b|#([a-z0-9][a-z0-9._-]*)/g;
let session = { person: '', csrf: '' };
let live = null; // the open EventSource
let stopView = () => {};

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

// Control characters (terminal escapes among them) and direction overrides
// show as visible symbols instead of acting on the text.
function visible(s) {
  return String(s).replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, c => {
    const n = c.charCodeAt(0);
    if (n < 0x20) return String.fromCharCode(0x2400 + n);
    if (n === 0x7f) return '\u2421';
    return '\ufffd';
  });
}

function link(href, text, cls) {
  const a = el('a', cls, text);
  a.href = href;
  a.dataset.nav = '';
  return a;
}

// Message text as text nodes, with @mentions marked and #channel and #12
// (a task) as links.
function richText(parent, text) {
  const s = visible(text);
  let last = 0;
  for (const m of s.matchAll(TOKEN)) {
    let tok = m[0];
    let name = m[3];
    if (name) {
      const trimmed = name.replace(/[._-]+$/, '');
      tok = tok.slice(0, tok.length - (name.length - trimmed.length));
      name = trimmed;
    }
    parent.append(document.createTextNode(s.slice(last, m.index)));
    last = m.index + tok.length;
    if (m[1]) {
      const who = m[1].slice(1).replace(/[._-]+$/, '');
      parent.append(el('span', who === session.person ? 'at me' : 'at', m[1]));
    } else if (m[2]) {
      parent.append(link('/tasks#task-' + m[2], tok, 'ref'));
    } else if (name && NAME.test(name)) {
      parent.append(link('/c/' + name, tok, 'ref'));
    } else {
      parent.append(document.createTextNode(tok));
    }
  }
  parent.append(document.createTextNode(s.slice(last)));
}

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-MT-CSRF': session.csrf },
    body: JSON.stringify(body),
  };
  const r = await fetch(path, opts);
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.error || r.statusText);
  return j;
}

function when(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return isNaN(d) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function ago(ts) {
  if (!ts) return '';
  const s = Math.max(0, (Date.now() - new Date(ts)) / 1000);
  if (s < 90) return Math.round(s) + 's ago';
  if (s < 5400) return Math.round(s / 60) + 'm ago';
  return Math.round(s / 3600) + 'h ago';
}

// ---- channels

async function showChannels(main) {
  const list = await api('/api/channels');
  main.append(el('h1', '', 'channels'));
  const ul = el('ul', 'channels');
  for (const c of list) {
    if (!NAME.test(c.name)) continue;
    const li = el('li');
    li.append(link('/c/' + c.name, '#' + c.name));
    if (c.unread > 0) li.append(el('span', 'badge', c.unread));
    li.append(el('span', 'dim', c.records + ' messages · ' + ago(c.last_activity)));
    ul.append(li);
  }
  if (!list.length) main.append(el('p', 'dim', 'No channel yet: post to start one.'));
  main.append(ul);
}

// A record mt-sync brought from another host names it: york@build.
function sender(rec) {
  const from = visible(rec.from);
  return typeof rec.origin === 'string' ? from + '@' + visible(rec.origin) : from;
}

function messageRow(rec) {
  const row = el('article', 'msg');
  row.dataset.seq = rec.seq;
  row.id = 'm' + Number(rec.seq);
  if (Array.isArray(rec.mentions) && rec.mentions.includes(session.person)) row.classList.add('mention');
  if (rec.type && rec.type !== 'text') row.classList.add('kind');
  const head = el('div', 'head');
  head.append(el('span', 'from', sender(rec)));
  if (rec.type && rec.type !== 'text') head.append(el('span', 'type', visible(rec.type)));
  const t = el('time', 'dim', when(rec.timestamp));
  t.title = visible(rec.timestamp || '');
  head.append(t);
  row.append(head);
  const body = el('div', 'text');
  richText(body, rec.content || '');
  row.append(body);
  return row;
}

function notifyMention(channel, rec) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  if (rec.from === session.person) return;
  if (!(Array.isArray(rec.mentions) && rec.mentions.includes(session.person))) return;
  new Notification(sender(rec) + ' in #' + channel, { body: visible(rec.content || '').slice(0, 200), tag: 'mt-' + channel + '-' + rec.seq });
}

async function showChannel(main, name) {
  const first = await api('/api/channel/' + name);
  const h = el('h1', '', '#' + name);
  main.append(h);
  const log = el('section', 'log');
  log.setAttribute('aria-live', 'polite');
  main.append(log);
  let lastSeq = 0;
  for (const rec of first.records) {
    log.append(messageRow(rec));
    lastSeq = rec.seq;
  }
  lastSeq = Math.max(lastSeq, first.last_seq || 0);
  window.mtShown = lastSeq;
  const atBottom = () => window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
  window.scrollTo(0, document.body.scrollHeight);

  let ackTimer = null;
  let acked = first.read || 0;
  const ack = () => {
    ackTimer = null;
    if (document.visibilityState !== 'visible' || lastSeq <= acked) return;
    const seq = lastSeq;
    api('/api/seen', { channel: name, seq }).then(() => { acked = Math.max(acked, seq); }).catch(() => {});
  };
  const ackSoon = () => { if (!ackTimer) ackTimer = setTimeout(ack, 250); };
  ackSoon();
  document.addEventListener('visibilitychange', ackSoon);

  const form = el('form', 'say');
  const box = el('textarea');
  box.name = 'text';
  box.rows = 2;
  box.placeholder = 'Message #' + name + ' as ' + session.person;
  const send = el('button', '', 'send');
  send.type = 'submit';
  const err = el('div', 'error');
  form.append(box, send, err);
  main.append(form);
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const text = box.value;
    if (!text.trim()) return;
    send.disabled = true;
    try {
      await api('/api/post', { channel: name, text });
      box.value = '';
      err.textContent = '';
    } catch (e) {
      err.textContent = 'not sent: ' + e.message;
    } finally {
      send.disabled = false;
    }
  });
  box.addEventListener('keydown', ev => {
    if (ev.key === 'Enter' && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
  });

  let closed = false;
  let retry = null;
  const connect = () => {
    const es = new EventSource('/events/' + name + '?after=' + lastSeq);
    live = es;
    es.onopen = () => { document.body.dataset.live = '1'; };
    es.onmessage = ev => {
      let rec;
      try { rec = JSON.parse(ev.data); } catch { return; }
      if (typeof rec.seq !== 'number' || rec.seq <= lastSeq) return; // never twice
      const follow = atBottom();
      log.append(messageRow(rec));
      lastSeq = rec.seq;
      window.mtShown = lastSeq;
      if (follow) window.scrollTo(0, document.body.scrollHeight);
      notifyMention(name, rec);
      ackSoon();
    };
    es.onerror = () => {
      document.body.dataset.live = '0';
      // The browser retries by itself unless the answer was an error;
      // then start again from what the page has shown.
      if (es.readyState === EventSource.CLOSED && !closed) {
        retry = setTimeout(connect, 1000);
      }
    };
  };
  connect();
  stopView = () => {
    closed = true;
    clearTimeout(retry);
    document.removeEventListener('visibilitychange', ackSoon);
  };
}

// ---- coworkers, tasks, worktrees: fetched again on each change

function liveTeam(render) {
  const es = new EventSource('/events/team');
  live = es;
  es.onmessage = () => render().catch(() => {});
  es.onopen = () => { document.body.dataset.live = '1'; };
  return render();
}

function cell(tr, text, cls) { tr.append(el('td', cls, text)); }

async function showTeam(main) {
  main.append(el('h1', '', 'coworkers'));
  const box = el('div', 'team');
  main.append(box);
  const render = async () => {
    const o = await api('/api/team');
    const t = el('table');
    const hr = el('tr');
    for (const c of ['name', 'state', 'task', 'tokens', 'cost', 'last event', 'rate limit', '']) hr.append(el('th', '', c));
    t.append(hr);
    for (const a of o.agents || []) {
      const tr = el('tr', 'agent ' + visible(a.state));
      cell(tr, visible(a.name), 'name');
      cell(tr, visible(a.state), 'state');
      cell(tr, a.task ? visible(a.task) : '');
      cell(tr, ((a.input_tokens || 0) + (a.output_tokens || 0)).toLocaleString(), 'num');
      cell(tr, '$' + Number(a.cost_usd || 0).toFixed(2), 'num');
      cell(tr, ago(a.last_event_at));
      cell(tr, a.rate_limit ? visible(a.rate_limit.status || 'limited') + ' ' + visible(a.rate_limit.resets_at || '') : '');
      const act = el('td', 'act');
      const f = el('form', 'nudge');
      const i = el('input');
      i.placeholder = 'nudge ' + a.name;
      i.name = 'text';
      const b = el('button', '', 'nudge');
      const s = el('button', 'stop', 'stop');
      s.type = 'button';
      s.disabled = !a.running;
      f.append(i, b, s);
      f.addEventListener('submit', async ev => {
        ev.preventDefault();
        if (!i.value.trim()) return;
        try { await api('/api/nudge', { name: a.name, text: i.value }); i.value = ''; }
        catch (e) { i.value = ''; i.placeholder = e.message; }
      });
      s.addEventListener('click', async () => {
        if (!confirm('Stop ' + a.name + '?')) return;
        await api('/api/stop', { name: a.name }).catch(e => alert(e.message));
      });
      act.append(f);
      tr.append(act);
      t.append(tr);
    }
    const tot = o.totals || {};
    const sum = el('p', 'dim', (tot.agents || 0) + ' coworkers, ' + (tot.running || 0) + ' running, $' + Number(tot.cost_usd || 0).toFixed(2));
    box.replaceChildren(sum, (o.agents || []).length ? t : el('p', 'dim', 'No coworker yet.'));
  };
  await liveTeam(render);
}

async function showTasks(main) {
  main.append(el('h1', '', 'tasks'));
  const board = el('div', 'board');
  const form = el('form', 'newtask');
  const subj = el('input');
  subj.name = 'subject';
  subj.placeholder = 'new task';
  const desc = el('input');
  desc.name = 'description';
  desc.placeholder = 'description';
  const b = el('button', '', 'create');
  const err = el('div', 'error');
  form.append(subj, desc, b, err);
  main.append(form, board);
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    if (!subj.value.trim()) return;
    try {
      await api('/api/tasks', { subject: subj.value, description: desc.value });
      subj.value = desc.value = err.textContent = '';
    } catch (e) { err.textContent = e.message; }
  });
  const render = async () => {
    const l = await api('/api/tasks');
    const cols = { pending: [], in_progress: [], completed: [] };
    for (const t of l.tasks) (cols[t.status] || cols.pending).push(t);
    const parts = [];
    for (const [k, title] of [['pending', 'pending'], ['in_progress', 'in progress'], ['completed', 'completed']]) {
      const col = el('section', 'col ' + k);
      col.append(el('h2', '', title + ' (' + cols[k].length + ')'));
      for (const t of cols[k]) {
        const card = el('div', 'card');
        card.id = 'task-' + Number(t.id);
        card.append(el('span', 'id', '#' + Number(t.id)), el('span', 'subject', visible(t.subject)));
        if (t.owner) card.append(el('span', 'owner', visible(t.owner)));
        if (t.blocked_by.length) card.append(el('span', 'blocked', 'blocked by ' + t.blocked_by.map(n => '#' + Number(n)).join(' ')));
        if (t.description) card.append(el('p', 'dim', visible(t.description)));
        col.append(card);
      }
      parts.push(col);
    }
    board.replaceChildren(...parts);
  };
  await liveTeam(render);
}

async function showWorktrees(main) {
  main.append(el('h1', '', 'worktrees with unmerged work'));
  const box = el('div');
  main.append(box);
  const render = async () => {
    const o = await api('/api/team');
    const w = o.worktrees;
    if (!w) { box.replaceChildren(el('p', 'dim', 'No repository.')); return; }
    const ul = el('ul', 'trees');
    for (const t of w.unmerged) {
      const li = el('li');
      li.append(el('span', 'name', visible(t.name)), el('span', 'dim', visible(t.branch || 'detached')));
      if (t.ahead) li.append(el('span', 'badge', t.ahead + ' ahead'));
      if (t.dirty) li.append(el('span', 'badge warn', 'uncommitted'));
      ul.append(li);
    }
    for (const b of w.branches) {
      const li = el('li');
      li.append(el('span', 'name', visible(b.name)), el('span', 'dim', 'no worktree'), el('span', 'badge', (b.unmerged || 0) + ' unmerged'));
      ul.append(li);
    }
    box.replaceChildren(ul.children.length ? ul : el('p', 'dim', 'Everything is merged.'));
  };
  await liveTeam(render);
}

// ---- routing

async function route() {
  stopView();
  stopView = () => {};
  if (live) { live.close(); live = null; }
  document.body.dataset.live = '0';
  const main = document.getElementById('main');
  main.replaceChildren();
  const p = location.pathname;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('on', a.getAttribute('href') === p || (p.startsWith('/c/') && a.getAttribute('href') === '/'));
  try {
    if (p.startsWith('/c/') && NAME.test(p.slice(3))) await showChannel(main, p.slice(3));
    else if (p === '/team') await showTeam(main);
    else if (p === '/tasks') await showTasks(main);
    else if (p === '/worktrees') await showWorktrees(main);
    else await showChannels(main);
    document.body.dataset.ready = '1';
  } catch (e) {
    main.append(el('p', 'error', e.message));
    document.body.dataset.ready = 'error';
  }
}

document.addEventListener('click', ev => {
  const a = ev.target.closest('a[data-nav]');
  if (!a || ev.metaKey || ev.ctrlKey) return;
  ev.preventDefault();
  history.pushState(null, '', a.getAttribute('href'));
  route();
});
window.addEventListener('popstate', route);

async function start() {
  session = await api('/api/session');
  document.getElementById('who').textContent = session.person;
  const n = document.getElementById('notify');
  if ('Notification' in window && Notification.permission === 'default') {
    n.hidden = false;
    n.addEventListener('click', () => Notification.requestPermission().then(() => { n.hidden = true; }));
  }
  route();
}
start();
