// Fleet (GET fleet, config `fleet: {hosts: FILE}`): every model on every host with the commit it runs,
// and whether the commit most hosts serve serves on all of them. The tab shows only when a fleet is
// configured (GET views); the view re-reads every REFRESH ms while open.

import { $, h, fill, fmtTime } from './dom.js';
import { P, STALE, ApiError, newest } from './api.js';

const REFRESH = 15000;
const readFleet = newest(`${P}/fleet`);
const short = (c) => (c ? c.slice(0, 12) : '-');
let timer = null;

export function fleetRows(data) {
  const rows = [];
  for (const host of data.hosts) {
    if (host.error) {
      rows.push({ host: host.host, serves: '-', model: '-', state: 'unreachable', from: '-', note: host.error });
      continue;
    }
    const serves = host.serving ? short(host.serving) : 'local dir';
    const models = host.models.length ? host.models : [{}];
    for (const m of models) {
      rows.push({ host: host.host, serves, model: m.name || '-', state: m.state || '-', from: short(m.commit),
        note: m.pending ? `pending: ${m.pending}` : '' });
    }
  }
  return rows;
}

export function answer(data) {
  const n = data.hosts.length;
  if (!data.commit) return 'no host serves a commit from a git source';
  if (data.everywhere) return `commit ${short(data.commit)} serves on all ${n} host${n === 1 ? '' : 's'}`;
  return `commit ${short(data.commit)} is not serving everywhere:`;
}

const COLS = ['host', 'serves', 'model', 'state', 'from', 'note'];
const HEADS = ['Host', 'Serving commit', 'Model', 'State', 'From commit', 'Note'];

function render(data) {
  const table = h('table', { id: 'fleet-table' },
    h('thead', {}, h('tr', {}, HEADS.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, fleetRows(data).map((r) => h('tr', { data: { host: r.host, model: r.model } },
      COLS.map((c) => h('td', { class: `c-${c}`, data: { col: c } }, r[c]))))));
  const refusals = data.hosts.filter((x) => !x.error && x.refusal).map((x) => `${x.host}: ${x.refusal}`);
  fill($('#fleet-body'),
    data.problems.length ? h('ul', { class: 'reasons', id: 'fleet-problems' }, data.problems.map((p) => h('li', {}, p))) : null,
    h('p', { id: 'fleet-answer', class: data.everywhere ? 'answer ok' : 'answer' }, answer(data)),
    data.missing.length ? h('ul', { class: 'reasons', id: 'fleet-missing' }, data.missing.map((p) => h('li', {}, p))) : null,
    h('div', { class: 'table-wrap' }, table),
    refusals.length ? h('ul', { class: 'reasons', id: 'fleet-refusals' }, refusals.map((p) => h('li', {}, p))) : null,
    h('p', { class: 'muted' }, `asked ${fmtTime(data.asked_at)} from ${data.hosts_file}`));
}

async function read() {
  try {
    const data = await readFleet();
    return data === STALE ? null : data;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {  // #fleet opened by hand on a daemon without a fleet
      fill($('#fleet-body'), h('p', { class: 'muted' }, e.detail));
      return null;
    }
    fill($('#fleet-body'), h('p', { class: 'overcommit' }, `cannot read the fleet: ${e.message}`));
    return null;
  }
}

export async function showFleet() {
  const data = await read();
  if (data) render(data);
}

export function enterFleet() {
  leaveFleet();
  showFleet();
  timer = setInterval(showFleet, REFRESH);
}

export function leaveFleet() {
  clearInterval(timer);
  timer = null;
}
