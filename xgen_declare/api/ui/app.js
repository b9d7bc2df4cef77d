// xgen-declare dashboard: views switched by the URL hash, data from the management API, kept live by
// its Server-Sent Events (a state change is patched in at once; the full list is fetched again
// shortly after, and every RESYNC ms in case an event was missed).

import { $, h, fill, fmtBytes, fmtMiB, fmtUptime, stateBadge } from './dom.js';
import { P, STALE, get, newest, send, setupTokenForm } from './api.js';
import { store, changed, onChange, remember, uptimeNow, memoryTotals } from './store.js';
import { showGpus, showPlan, planChanged } from './memory.js';
import { openModel, leaveModel } from './detail.js';
import { setupPlayground, fillPlayModels } from './play.js';
import { downloadBar } from './progress.js';
import { setupSource, showSource } from './source.js';
import { enterFleet, leaveFleet, showFleet } from './fleet.js';

const VIEWS = ['models', 'gpus', 'plan', 'model', 'playground', 'fleet'];
const EVENT_TYPES = ['state', 'restart', 'error', 'manifest_invalid', 'manifest_valid', 'on_demand_start',
  'idle_stop', 'eviction', 'download_started', 'download_finished', 'download_failed', 'source_switched',
  'source_refused'];
const RESYNC = 30000;
const DOWNLOAD_POLL = 1000;  // while a model is Downloading, its progress (written to its record every second)
let current = null;

// ---- notices and actions -------------------------------------------------------------------------
export function notice(text, kind) {
  const el = $('#notice');
  el.className = `notice ${kind || ''}`;
  el.textContent = text;
  el.hidden = !text;
}

const unauthorized = (detail) => notice(`401 Unauthorized: ${detail}`, 'error');

export async function act(name, verb) {
  notice(`${verb} ${name}…`);
  try {
    const r = await send(`${P}/models/${encodeURIComponent(name)}/${verb}?wait=0`, {}, unauthorized);
    const body = await r.json();
    if (r.ok) {
      notice(`${verb} ${name}: ${body.status === 'success' ? 'done' : 'accepted'}, now ${body.state}${body.held ? ' (held)' : ''}`, 'ok');
    } else {
      notice(`${verb} ${name} failed (${r.status}): ${body.detail}`, 'error');
    }
    refreshSoon(0);
  } catch (e) {
    notice(`${verb} ${name}: ${e.message}`, 'error');
  }
}

export function actionButtons(name) {
  return ['restart', 'down', 'up'].map((verb) => h('button', {
    type: 'button', data: { action: verb, model: name }, 'aria-label': `${verb} ${name}`,
    onclick: () => act(name, verb),
  }, verb[0].toUpperCase() + verb.slice(1)));
}

export function snippet(m) {
  const base = m.endpoint || `${location.origin}/v1`;
  return [
    'from openai import OpenAI',
    '',
    `client = OpenAI(base_url="${base}", api_key="none")  # or base_url="${location.origin}/v1" (the router)`,
    `answer = client.chat.completions.create(model="${m.name}", messages=[{"role": "user", "content": "Hello"}])`,
    'print(answer.choices[0].message.content)',
  ].join('\n');
}

async function copySnippet(m) {
  const text = snippet(m);
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch (e) {
    const ta = h('textarea', { class: 'offscreen', readonly: true }, text);
    document.body.append(ta);
    ta.select();
    ok = document.execCommand('copy');
    ta.remove();
  }
  notice(`${ok ? 'Copied' : 'Copy this'} (openai client for ${m.name}):\n${text}`, ok ? 'ok' : '');
}

// ---- models table ------------------------------------------------------------------------------
const COLUMNS = ['model', 'state', 'backend', 'gpus', 'port', 'endpoint', 'restarts', 'uptime', 'memory', 'problem',
  'manifest', 'actions'];
const LABELS = { gpus: 'GPUs', memory: 'Memory', problem: 'Problem' };
const rows = new Map();

export function problemOf(m) {
  const parts = [];
  if (m.last_error) parts.push(m.last_error);
  if (m.download && m.download.text) parts.push(m.download.text);
  const blocked = m.memory && m.memory.blocked;
  if (blocked && !parts.some((p) => p.includes(blocked))) parts.push(`memory: ${blocked}`);
  if (m.manifest_error) parts.push(`manifest: ${m.manifest_error}`);
  if (m.held) parts.push('held stopped by `down` (Up releases it)');
  return parts.join('\n');
}

export function memoryText(m) {
  const t = memoryTotals(m);
  if (!t) return '';
  const parts = [];
  if (t.bytes) parts.push(`${fmtBytes(t.bytes)} ${t.source}${t.blocked ? ' (not admitted)' : ''}`);
  if (t.measuredMiB) parts.push(`${fmtMiB(t.measuredMiB)} measured`);
  if (!parts.length && t.source === 'unknown') parts.push('unknown');
  return parts.join(' / ');
}

// the manifest's gpus, else the GPUs the memory ledger puts the model on
export function gpusOf(m) {
  if (m.gpus && m.gpus.length) return m.gpus.join(', ');
  const onGpu = Object.keys((m.memory && m.memory.bytes) || {}).filter((k) => k.startsWith('GPU'));
  return onGpu.map((k) => k.slice(3)).join(', ');
}

function endpointCell(m) {
  if (!m.endpoint) return '';
  return h('span', { class: 'endpoint' }, h('a', { href: `${m.endpoint}/models`, class: 'mono' }, m.endpoint),
    h('button', { type: 'button', data: { copy: m.name }, 'aria-label': `copy an openai client snippet for ${m.name}`,
      onclick: () => copySnippet(store.models.get(m.name) || m) }, 'Copy'));
}

function cellContent(col, m) {
  switch (col) {
    case 'model': return [h('a', { href: `#model/${encodeURIComponent(m.name)}` }, m.name),
      m.source === 'api' ? h('span', { class: 'badge' }, 'api') : null];
    case 'state': return [stateBadge(m.state, m.held), downloadBar(m)];
    case 'backend': return m.backend || '';
    case 'gpus': return gpusOf(m);
    case 'port': return m.port ?? '';
    case 'endpoint': return endpointCell(m);
    case 'restarts': return String(m.restarts ?? 0);
    case 'uptime': return fmtUptime(uptimeNow(m));
    case 'memory': return memoryText(m);
    case 'problem': return problemOf(m);
    case 'manifest': return m.file || '';
    default: return '';
  }
}

function rowFor(name) {
  let tr = rows.get(name);
  if (!tr) {
    tr = h('tr', { data: { model: name } }, COLUMNS.map((col) => h('td', {
      class: `c-${col}`, data: { col, label: LABELS[col] || col[0].toUpperCase() + col.slice(1) } })));
    fill(tr.lastChild, actionButtons(name));
    rows.set(name, tr);
  }
  return tr;
}

function renderModels() {
  const tbody = $('#models-table tbody');
  for (const [name, tr] of rows) {
    if (!store.models.has(name)) { tr.remove(); rows.delete(name); }
  }
  const names = [...store.models.keys()].sort();
  names.forEach((name, i) => {
    const m = store.models.get(name);
    const tr = rowFor(name);
    tr.dataset.state = m.state;
    tr.querySelectorAll('td').forEach((td) => {
      if (td.dataset.col !== 'actions') fill(td, cellContent(td.dataset.col, m));
    });
    if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
  });
  const counts = {};
  for (const m of store.models.values()) counts[m.state] = (counts[m.state] || 0) + 1;
  $('#models-summary').textContent = names.length
    ? `${names.length} model${names.length === 1 ? '' : 's'}: ` + Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(', ')
    : 'No model is declared yet: add a manifest to the manifests directory.';
}

function tickUptimes() {
  for (const [name, tr] of rows) {
    const m = store.models.get(name);
    if (m) fill(tr.querySelector('td.c-uptime'), fmtUptime(uptimeNow(m)));
  }
}

// ---- data ----------------------------------------------------------------------------------------
let refreshTimer = null;
export function refreshSoon(delay) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, delay);
}

const readModels = newest(`${P}/models`);

async function refresh() {
  try {
    const body = await readModels();
    if (body === STALE) return;  // a later read already answered
    store.models = new Map(body.models.map((m) => [m.name, m]));
    store.fetchedAt = performance.now();
    renderModels();
    changed({ models: true });
  } catch (e) {
    notice(`cannot read the models: ${e.message}`, 'error');
  }
}

function onEvent(ev) {
  if (ev.id <= store.lastEventId) return;  // a replay after reconnecting
  store.lastEventId = ev.id;
  remember(ev);
  const m = store.models.get(ev.model);
  if (m) {
    if (ev.type === 'state') {
      m.state = ev.new;
      if (ev.restarts !== null && ev.restarts !== undefined) m.restarts = ev.restarts;
      if (ev.new === 'Starting') m.uptime = 0;
    } else if (ev.type === 'error') m.last_error = ev.error;
    else if (ev.type === 'manifest_invalid') m.manifest_error = ev.error;
    else if (ev.type === 'manifest_valid') m.manifest_error = null;
    renderModels();
  }
  changed({ event: ev });
  if (ev.type.startsWith('source_')) showSource();  // only source events: a daemon with a source
  refreshSoon(300);
}

function parseSse(text) {
  const out = [];
  for (const block of text.split('\n\n')) {
    const line = block.split('\n').find((l) => l.startsWith('data: '));
    if (line) out.push(JSON.parse(line.slice(6)));
  }
  return out;
}

function live(on, text) {
  const el = $('#live');
  el.className = `live ${on ? 'on' : 'off'}`;
  el.textContent = text;
}

async function connect() {
  try {
    // what the daemon's ring still holds (the stream closes after 0.3 s), then follow from there
    const r = await fetch(`${P}/events?since=0&timeout=0.3`);
    const past = parseSse(await r.text());
    const last = past.length ? past[past.length - 1].id : 0;
    if (last < store.lastEventId) { store.events = []; store.lastEventId = 0; }  // the daemon was restarted
    for (const ev of past) if (ev.id > store.lastEventId) { remember(ev); store.lastEventId = ev.id; }
  } catch (e) {
    live(false, 'disconnected');
    setTimeout(connect, 2000);
    return;
  }
  const es = new EventSource(`${P}/events?since=${store.lastEventId}`);
  for (const t of EVENT_TYPES) es.addEventListener(t, (msg) => onEvent(JSON.parse(msg.data)));
  es.onopen = () => { live(true, 'live'); refreshSoon(0); };
  es.onerror = (e) => {
    // the API's own `error` events (a model failed) arrive here too, as messages with data
    if (e instanceof MessageEvent) return;
    es.close();
    live(false, 'reconnecting…');
    setTimeout(connect, 2000);
  };
}

// ---- views ---------------------------------------------------------------------------------------
function route() {
  const [view, ...rest] = (location.hash.slice(1) || 'models').split('/');
  const v = VIEWS.includes(view) ? view : 'models';
  for (const id of VIEWS) $(`#view-${id}`).hidden = id !== v;
  document.querySelectorAll('nav a').forEach((a) => {
    if (a.dataset.view === v) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  });
  if (current === 'model' && v !== 'model') leaveModel();
  if (current === 'fleet' && v !== 'fleet') leaveFleet();
  if (current !== null && current !== v && !$('#notice').classList.contains('error')) notice('');
  current = v;
  if (v === 'gpus') showGpus();
  else if (v === 'plan') showPlan();
  else if (v === 'model') openModel(decodeURIComponent(rest.join('/')));
  else if (v === 'playground') fillPlayModels();
  else if (v === 'fleet') enterFleet();
}

export const currentView = () => current;

onChange((what) => {
  if (what.models && current === 'playground') fillPlayModels();
  if (what.models && current === 'gpus') showGpus();
  if (what.event && current === 'plan') planChanged();
});

setupTokenForm();
setupPlayground(notice);
$('#plan-refresh').addEventListener('click', () => showPlan());
$('#fleet-refresh').addEventListener('click', () => showFleet());
window.addEventListener('hashchange', route);
route();
connect();
get(`${P}/views`).then((has) => {  // the source panel and the Fleet tab, only when the daemon has them
  if (has.source) setupSource();
  $('nav a[data-view="fleet"]').hidden = !has.fleet;
}).catch((e) => notice(`cannot read which views this daemon has: ${e.message}`, 'error'));
setInterval(refresh, RESYNC);
setInterval(() => {
  for (const m of store.models.values()) if (m.state === 'Downloading') { refresh(); return; }
}, DOWNLOAD_POLL);
setInterval(tickUptimes, 1000);
