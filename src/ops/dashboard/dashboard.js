// georeg's dashboard: polls /api/overview every few seconds and draws it. No framework and no build
// step: what is here is what the browser runs. Every value from the server goes in as text
// (textContent, attributes), never as HTML.
'use strict';

// Every 3 s, or every ?every=<seconds> (1 to 60: a wall display may want less traffic, a test less waiting).
const POLL_MS = (() => {
  const every = Number(new URL(location.href).searchParams.get('every'));
  return every >= 1 && every <= 60 ? every * 1000 : 3000;
})();
const KEY = 'georeg.dashboard.key';
const SECRET = 'georeg.dashboard.secret';
const state = { paused: false, open: new Set(), busy: false, timer: undefined };

// The key arrives once in the address (?key=, and ?secret= when the admin secret differs from the
// function key); it is kept for this tab only and taken out of the address bar and history.
(function takeKeyFromAddress() {
  const url = new URL(location.href);
  for (const [param, slot] of [['key', KEY], ['secret', SECRET]]) {
    const value = url.searchParams.get(param);
    if (value) sessionStorage.setItem(slot, value);
    url.searchParams.delete(param);
  }
  history.replaceState(null, '', url.pathname + url.search + url.hash);
})();

function authHeaders() {
  const key = sessionStorage.getItem(KEY);
  const secret = sessionStorage.getItem(SECRET) || key;
  const headers = {};
  // Azure checks the function key (x-functions-key); georeg checks GEOREG_ADMIN_SECRET (Authorization).
  if (key) headers['x-functions-key'] = key;
  if (secret) headers.authorization = `Bearer ${secret}`;
  return headers;
}

async function api(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { ...authHeaders(), ...(init.body ? { 'content-type': 'application/json' } : {}) }, cache: 'no-store' });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = { error: text.slice(0, 300) };
  }
  if (res.status === 401) showAuth('The dashboard needs the admin key: open it as …/api/dashboard?key=<GEOREG_ADMIN_SECRET or function key> (npm start prints the address).');
  if (!res.ok && res.status !== 207) throw new Error(body.error || `${res.status} ${res.statusText}`);
  return body;
}

function showAuth(message) {
  const el = document.getElementById('auth');
  el.textContent = message;
  el.hidden = false;
}

/** h('td', {class: 'x'}, 'text', child) — elements from plain values. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'style') el.style.cssText = v; // through the CSSOM: the page's CSP refuses style attributes
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : String(c));
  return el;
}

const fmtMs = (ms) => (ms === undefined ? '' : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`);
const fmtBytes = (b) => (b < 1024 ? `${b} B` : b < 1048576 ? `${(b / 1024).toFixed(1)} KiB` : `${(b / 1048576).toFixed(1)} MiB`);
const fmtAge = (s) => (s === undefined ? '' : s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`);
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '');
const shortDigest = (d) => (d ? d.replace(/^sha256:/, '').slice(0, 12) : '');
const image = (p) => `${p.repository}:${p.tag || (p.digest ? `@${shortDigest(p.digest)}` : '')}`;

// Status words carry a symbol too, so nothing depends on colour.
const SYMBOL = { Ready: '✓', complete: '✓', Syncing: '⟳', copying: '⟳', pending: '…', Creating: '…', Failed: '✗', failed: '✗', superseded: '↷', Deleted: '–' };
function badge(status) {
  const s = String(status);
  return h('span', { class: `badge s-${s.toLowerCase().replace(/[^a-z]/g, '')}` }, `${SYMBOL[s] || '•'} ${s}`);
}

function replaceRows(tbody, rows, empty, columns) {
  tbody.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: columns, class: 'empty' }, empty))]));
}

function drawRegions(o) {
  const rows = o.regions.map((r) => {
    let status = [badge(r.status)];
    if (r.home) status.push(' (home)');
    if (r.status === 'Syncing' && r.sync) {
      const { done, total } = r.sync;
      status.push(' ', h('progress', { max: total.jobs || 1, value: done.jobs, 'aria-label': `${r.name} ${r.sync.kind}` }), ` ${done.jobs}/${total.jobs} jobs`);
    }
    if (r.error) status.push(h('div', { class: 'error' }, r.error));
    const last = r.lastSyncedPush;
    return h(
      'tr',
      { 'data-region': r.name },
      h('th', { scope: 'row' }, r.name),
      h('td', { class: 'status' }, status),
      h('td', {}, r.endpointEnabled ? 'on' : 'off (kept in sync, out of routing)'),
      h('td', {}, r.home ? '—' : fmtAge(r.lagSeconds)),
      h('td', {}, last ? `${last.repository}:${last.tag || shortDigest(last.digest)} at ${fmtTime(last.at)}` : r.home ? '—' : 'none yet'),
      h('td', { class: 'num', 'data-count': 'active' }, r.queue ? r.queue.active : '—'),
      h('td', { class: 'num', 'data-count': 'deadlettered' }, r.queue ? r.queue.deadLettered : '—'),
    );
  });
  replaceRows(document.querySelector('#regions tbody'), rows, 'no regions', 7);
  const { topic, webhookQueue: q } = o.entities;
  document.getElementById('entities').textContent =
    `Topic ${topic.name}: ${topic.error || `${topic.scheduled} scheduled retr${topic.scheduled === 1 ? 'y' : 'ies'}`}. ` +
    `Queue ${q.name}: ${q.error || `${q.active} active, ${q.scheduled} scheduled, ${q.deadLettered} dead-lettered`}.`;
}

function drawPushes(o) {
  const longest = Math.max(1, ...o.pushes.flatMap((p) => p.regions.map((r) => r.durationMs || 0)));
  const rows = [];
  for (const p of o.pushes) {
    const open = state.open.has(p.pushId);
    const regions = h(
      'ul',
      { class: 'regions' },
      p.regions.map((r) =>
        h(
          'li',
          { 'data-region': r.region, 'data-state': r.state, title: r.error || undefined },
          h('span', { class: 'rname' }, r.region),
          badge(r.state),
          r.durationMs !== undefined && r.state === 'complete'
            ? [h('span', { class: 'bar', 'aria-hidden': 'true' }, h('span', { style: `width:${Math.max(2, Math.round((100 * r.durationMs) / longest))}%` })), h('span', { class: 'ms' }, fmtMs(r.durationMs))]
            : null,
        ),
      ),
    );
    const detailsId = `d-${p.pushId}`;
    rows.push(
      h(
        'tr',
        { 'data-push': p.pushId },
        h('th', { scope: 'row' }, p.action === 'delete' ? `delete ${image(p)}` : image(p)),
        h('td', { class: 'mono', title: p.digest || '' }, shortDigest(p.digest)),
        h('td', {}, fmtTime(p.createdAt)),
        h('td', {}, regions),
        h('td', {}, h('button', { type: 'button', 'data-key': `details:${p.pushId}`, 'aria-expanded': String(open), 'aria-controls': detailsId, onclick: () => toggle(p.pushId) }, open ? 'Hide' : 'Details')),
      ),
    );
    if (open) rows.push(h('tr', { id: detailsId, class: 'details' }, h('td', { colspan: 5 }, pushDetails(p))));
  }
  replaceRows(document.querySelector('#pushes tbody'), rows, 'no pushes yet', 5);
}

function pushDetails(p) {
  return h(
    'table',
    { class: 'inner' },
    h('caption', {}, `${image(p)} — push ${p.pushId}`),
    h('thead', {}, h('tr', {}, ['Region', 'State', 'Blobs copied', 'Blobs skipped (already there)', 'Bytes copied', 'Bytes skipped', 'Copy method', 'Attempts', 'Push→ready', 'Error'].map((c) => h('th', { scope: 'col' }, c)))),
    h(
      'tbody',
      {},
      p.regions.map((r) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row' }, r.region),
          h('td', {}, badge(r.state)),
          h('td', { class: 'num' }, `${r.blobs.copied} of ${r.missingBlobs} planned`),
          h('td', { class: 'num' }, r.blobs.skipped),
          h('td', { class: 'num' }, fmtBytes(r.bytes.copied)),
          h('td', { class: 'num' }, fmtBytes(r.bytes.skipped)),
          h('td', {}, Object.entries(r.methods || {}).map(([m, n]) => `${m} × ${n}`).join(', ') || '—'),
          h('td', { class: 'num' }, r.attempts),
          h('td', { class: 'num' }, fmtMs(r.durationMs)),
          h('td', { class: 'error' }, r.error || ''),
        ),
      ),
    ),
  );
}

function toggle(pushId) {
  if (state.open.has(pushId)) state.open.delete(pushId);
  else state.open.add(pushId);
  if (state.last) keepingFocus(() => drawPushes(state.last));
}

// Each poll redraws the tables: a keyboard user's focus goes back to the same button afterwards.
function keepingFocus(draw) {
  const key = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : undefined;
  draw();
  if (key) {
    const again = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

function drawLatency(o) {
  const { regions, bucketMinutes } = o.latency;
  const names = Object.keys(regions);
  const max = Math.max(100, ...names.flatMap((n) => regions[n].map((b) => b.p95 || 0)));
  const W = 320, H = 140, L = 48, B = 22, T = 10, R = 8;
  const figures = names.map((name) => {
    const buckets = regions[name];
    const x = (i) => L + ((W - L - R) * (i + 0.5)) / buckets.length;
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const line = (key, dash) => {
      const pts = buckets.map((b, i) => (b[key] === undefined ? null : [x(i), y(b[key]), b])).filter(Boolean);
      const path = pts.length > 1 ? svg('polyline', { points: pts.map((p) => `${p[0]},${p[1]}`).join(' '), fill: 'none', stroke: 'currentColor', 'stroke-width': 1.5, 'stroke-dasharray': dash }) : null;
      const marks = pts.map(([px, py, b]) =>
        key === 'p50'
          ? svg('circle', { cx: px, cy: py, r: 3, fill: 'currentColor' }, svg('title', {}, `${fmtTime(b.start)}: p50 ${fmtMs(b.p50)} (${b.count} push${b.count === 1 ? '' : 'es'})`))
          : svg('rect', { x: px - 3, y: py - 3, width: 6, height: 6, fill: 'none', stroke: 'currentColor' }, svg('title', {}, `${fmtTime(b.start)}: p95 ${fmtMs(b.p95)}`)),
      );
      return [path, ...marks];
    };
    const samples = buckets.reduce((n, b) => n + b.count, 0);
    const last = [...buckets].reverse().find((b) => b.count);
    const summary = samples ? `${name}: ${samples} completed push${samples === 1 ? '' : 'es'} in the last hour; latest 5 minutes with data: p50 ${fmtMs(last.p50)}, p95 ${fmtMs(last.p95)}` : `${name}: no completed pushes in the last hour`;
    const chart = svg(
      'svg',
      { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': summary, class: 'chart' },
      svg('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: 'currentColor', 'stroke-opacity': 0.4 }),
      svg('line', { x1: L, y1: T, x2: L, y2: H - B, stroke: 'currentColor', 'stroke-opacity': 0.4 }),
      svg('text', { x: L - 4, y: T + 4, 'text-anchor': 'end', 'font-size': 10 }, fmtMs(Math.round(max))),
      svg('text', { x: L - 4, y: H - B, 'text-anchor': 'end', 'font-size': 10 }, '0'),
      svg('text', { x: L, y: H - 6, 'font-size': 10 }, `−${buckets.length * bucketMinutes} min`),
      svg('text', { x: W - R, y: H - 6, 'text-anchor': 'end', 'font-size': 10 }, 'now'),
      line('p95', '4 3'),
      line('p50', undefined),
    );
    return h('figure', { 'data-region': name }, h('figcaption', {}, summary), chart);
  });
  document.getElementById('latency').replaceChildren(...(figures.length ? figures : [h('p', {}, 'no replica regions')]));
}

function drawWebhooks(o) {
  const rows = o.webhooks.map((w) =>
    h(
      'tr',
      { 'data-webhook': w.name },
      h('th', { scope: 'row' }, w.name),
      h('td', {}, w.region),
      h('td', {}, w.status),
      h('td', { class: 'num' }, w.deliveries.succeeded),
      h('td', { class: 'num' }, w.deliveries.failed),
      h('td', { class: 'num' }, w.deliveries.pending),
      h('td', { class: w.lastError ? 'error' : undefined }, w.lastError ? `${fmtTime(w.lastError.at)}: ${w.lastError.error}` : '—'),
    ),
  );
  replaceRows(document.querySelector('#webhooks tbody'), rows, 'no webhooks', 7);
}

function drawDeadLetters(o) {
  const sections = o.deadLetters.map((q) => {
    const label = q.region ? `Region ${q.region}` : 'Webhook deliveries';
    const target = q.region ? { region: q.region } : { webhooks: true };
    const head = h('h3', {}, `${label}: `, h('span', { 'data-count': 'deadletters' }, q.count), ` dead letter${q.count === 1 ? '' : 's'}`);
    if (q.error) return h('div', { 'data-queue': q.source }, head, h('p', { class: 'error' }, q.error));
    if (!q.messages.length) return h('div', { 'data-queue': q.source }, head);
    const rows = q.messages.map((m) =>
      h(
        'tr',
        { 'data-job': m.id },
        h('th', { scope: 'row', class: 'mono' }, m.id),
        h('td', {}, m.repository ? `${m.repository}:${m.tag || ''}` : ''),
        h('td', {}, m.reason || ''),
        h('td', { class: 'desc' }, m.description || ''),
        h('td', {}, fmtAge(m.ageSeconds)),
        h(
          'td',
          { class: 'actions' },
          h('button', { type: 'button', 'data-key': `redrive:${q.source}:${m.id}`, disabled: !m.redrivable, onclick: () => act('redrive', target, m.id), 'aria-label': `Redrive ${m.id}` }, 'Redrive'),
          h('button', { type: 'button', 'data-key': `discard:${q.source}:${m.id}`, onclick: () => act('discard', target, m.id), 'aria-label': `Discard ${m.id}` }, 'Discard'),
        ),
      ),
    );
    return h(
      'div',
      { 'data-queue': q.source },
      head,
      h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, ['Job', 'Image', 'Reason', 'Description', 'Age', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))), h('tbody', {}, rows))),
    );
  });
  document.getElementById('deadletters').replaceChildren(...sections);
}

async function act(op, target, id) {
  if (op === 'discard' && !confirm(`Discard ${id}? It is removed from the dead-letter queue for good.`)) return;
  const out = document.getElementById('action-result');
  out.textContent = `${op === 'redrive' ? 'Re-driving' : 'Discarding'} ${id}…`;
  try {
    const res = await api(`deadletters/${op}`, { method: 'POST', body: JSON.stringify({ ...target, jobs: [id] }) });
    const done = res.done.map((d) => (d.newMessageId ? `${d.id} (sent again as ${d.newMessageId})` : d.id));
    out.textContent = res.failed.length ? `Could not ${op} ${id}: ${res.failed[0].error}` : `${op === 'redrive' ? 'Re-driven' : 'Discarded'}: ${done.join(', ')}`;
  } catch (e) {
    out.textContent = `Could not ${op} ${id}: ${e.message}`;
  }
  refresh();
}

async function refresh() {
  clearTimeout(state.timer);
  if (state.busy) return;
  state.busy = true;
  const status = document.getElementById('refresh');
  try {
    const o = await api('overview');
    state.last = o;
    document.getElementById('auth').hidden = true;
    keepingFocus(() => {
      drawRegions(o);
      drawPushes(o);
      drawLatency(o);
      drawWebhooks(o);
      drawDeadLetters(o);
    });
    status.textContent = `Updated ${fmtTime(o.generatedAt)}${state.paused ? ' (paused)' : `, every ${POLL_MS / 1000} s`}`;
  } catch (e) {
    status.textContent = `Update failed: ${e.message}; retrying`;
  } finally {
    state.busy = false;
    if (!state.paused) state.timer = setTimeout(refresh, POLL_MS);
  }
}

document.getElementById('pause').addEventListener('click', (e) => {
  state.paused = !state.paused;
  e.currentTarget.setAttribute('aria-pressed', String(state.paused));
  e.currentTarget.textContent = state.paused ? 'Resume updates' : 'Pause updates';
  refresh();
});

if (!sessionStorage.getItem(KEY)) showAuth('No key yet: open the dashboard as …/api/dashboard?key=<GEOREG_ADMIN_SECRET or function key>.');
refresh();
