// Model detail: facts, the rendered command (secrets as ***), env (masked), labels and aliases, the
// log as it grows (its own event stream), the model's events and the router's figures.

import { $, h, fill, fmtTime, fmtUptime, stateBadge } from './dom.js';
import { P, STALE, get, newest } from './api.js';
import { store, onChange, uptimeNow } from './store.js';
import { actionButtons, gpusOf, memoryText, problemOf } from './app.js';
import { downloadBar } from './progress.js';

const MAX_LOG_LINES = 2000;
const DETAIL_REFRESH = 30000;  // router figures; events of this model refresh them sooner
let openName = null;
let logStream = null;
let timer = null;
let refreshTimer = null;

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => [h('dt', {}, k), h('dd', { data: { fact: k } }, v)]));
}

function factsOf(m) {
  return facts([
    ['state', m ? stateBadge(m.state, m.held) : 'not running'], ['download', m && downloadBar(m)],
    ['backend', m && m.backend], ['pid', m && m.pid], ['port', m && m.port],
    ['endpoint', m && m.endpoint], ['GPUs', m && gpusOf(m)],
    ['restarts', m && String(m.restarts)], ['uptime', m && fmtUptime(uptimeNow(m))],
    ['memory', m && memoryText(m)], ['manifest', m && m.file], ['declared by', m && m.source],
    ['problem', m && problemOf(m)],
  ]);
}

function figures(r) {
  const codes = Object.entries(r.requests || {}).map(([c, n]) => `${n} × ${c}`).join(', ') || 'none';
  const secs = (s) => (s === null || s === undefined ? '–' : `${(s * 1000).toFixed(0)} ms`);
  return facts([['requests', codes], ['in flight', String(r.in_flight)],
    ['time to first byte (avg)', `${secs(r.ttfb_seconds_avg)} over ${r.ttfb_count}`],
    ['cold starts', `${r.cold_starts} (avg ${secs(r.cold_start_seconds_avg)})`],
    ['evictions', String(r.evictions)], ['idle stops', String(r.idle_stops)]]);
}

function eventLine(ev) {
  const what = ev.type === 'state' ? `${ev.old} → ${ev.new}${ev.reason ? `: ${ev.reason}` : ''}`
    : ev.type === 'error' ? `${ev.state}: ${ev.error}`
      : ev.type === 'manifest_invalid' ? `manifest invalid: ${ev.error}`
        : Object.entries(ev).filter(([k]) => !['id', 'type', 'time', 'model'].includes(k))
          .map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
  return h('li', { data: { event: ev.id } }, `${fmtTime(ev.time)} ${ev.type} `, what);
}

function commandPart(d) {
  const r = d.rendered;
  const parts = [h('h3', {}, 'Command (rendered now; secrets as ***)')];
  if (!r) {
    parts.push(h('p', { class: 'muted' }, 'not rendered'));
  } else {
    parts.push(h('ul', { class: 'argv', id: 'model-argv' }, r.argv.map((a) => h('li', {}, a))));
    const env = Object.entries(r.env || {});
    parts.push(h('h3', {}, 'Environment (secrets as ***)'), env.length
      ? h('table', { id: 'model-env' }, h('tbody', {}, env.map(([k, v]) => h('tr', {}, h('td', { class: 'mono' }, k),
        h('td', { class: 'mono' }, v === null ? '(unset)' : v)))))
      : h('p', { class: 'muted' }, 'no variables set by the manifest'));
    parts.push(h('p', { class: 'muted' }, `backend ${r.backend}: ${r.backend_reason}`));
  }
  if (d.problems.length) parts.push(h('ul', { class: 'reasons' }, d.problems.map((p) => h('li', {}, p))));
  return parts;
}

function render(name, d) {
  const m = store.models.get(name);
  const labels = Object.entries(d.labels || {});
  fill($('#model-body'),
    h('div', { class: 'card' }, h('div', { class: 'endpoint' }, actionButtons(name)), h('div', { id: 'model-facts' }, factsOf(m)),
      facts([['labels', labels.length ? labels.map(([k, v]) => `${k}=${v}`).join(', ') : null],
        ['aliases', (d.alias || []).join(', ') || null], ['activation', d.activation]])),
    h('div', { class: 'grid2' },
      h('div', { class: 'card' }, commandPart(d)),
      h('div', { class: 'card' }, h('h3', {}, 'Router'), h('div', { id: 'model-router' }, figures(d.router)),
        h('h3', {}, 'Events'), h('ul', { class: 'events', id: 'model-events' },
          store.events.filter((ev) => ev.model === name).map(eventLine)))),
    h('div', { class: 'card' }, h('h3', {}, 'Log (follows live)'),
      h('pre', { class: 'output', id: 'model-log', tabindex: '0', 'aria-label': `log of ${name}` })));
}

const detailPath = (name) => `${P}/models/${encodeURIComponent(name)}/detail`;
const readFigures = newest(detailPath);  // the re-reads: only the newest answer counts

async function loadDetail(name, first) {
  let d;
  try {
    d = await (first ? get(detailPath(name)) : readFigures(name));
  } catch (e) {
    if (first) fill($('#model-body'), h('p', { class: 'overcommit' }, `cannot read ${name}: ${e.message}`));
    return;
  }
  if (openName !== name || d === STALE) return;
  if (first) {
    render(name, d);
    follow(name);
  } else {
    fill($('#model-router'), figures(d.router));
  }
}

function follow(name) {
  stopLog();
  const out = $('#model-log');
  logStream = new EventSource(`${P}/models/${encodeURIComponent(name)}/log/stream?lines=200`);
  logStream.addEventListener('log', (msg) => {
    const { lines } = JSON.parse(msg.data);
    if (!lines.length) return;
    const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    out.append(document.createTextNode(lines.join('\n') + '\n'));
    const text = out.textContent.split('\n');
    if (text.length > MAX_LOG_LINES) out.textContent = text.slice(-MAX_LOG_LINES).join('\n');
    if (atEnd) out.scrollTop = out.scrollHeight;
  });
}

function stopLog() {
  if (logStream) logStream.close();
  logStream = null;
}

export function openModel(name) {
  leaveModel();
  openName = name;
  $('#h-model').textContent = `Model ${name}`;
  fill($('#model-body'), h('p', { class: 'muted' }, 'loading…'));
  loadDetail(name, true);
  timer = setInterval(() => loadDetail(name, false), DETAIL_REFRESH);
}

export function leaveModel() {
  stopLog();
  clearInterval(timer);
  openName = null;
}

onChange((what) => {
  if (!openName || !$('#model-facts')) return;
  if (what.models) fill($('#model-facts'), factsOf(store.models.get(openName)));
  if (what.event && what.event.model === openName) {
    $('#model-events').append(eventLine(what.event));
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => loadDetail(openName, false), 500);
  }
});
