// GPUs & memory (GET ledger + each model's memory from GET models) and Plan (GET plan).

import { $, h, fill, fmtBytes, fmtMiB, hue, stateBadge } from './dom.js';
import { P, STALE, newest } from './api.js';
import { store, ledgerBytes, measuredMiB } from './store.js';

const MIB = 1024 * 1024;

const readLedger = newest(`${P}/ledger`);
const readPlan = newest(`${P}/plan`);

export async function showGpus() {
  try {
    const ledger = await readLedger();
    if (ledger === STALE) return;
    store.ledger = ledger;
    renderGpus();
  } catch (e) {
    fill($('#devices'), h('p', { class: 'overcommit' }, `cannot read the memory ledger: ${e.message}`));
  }
}

function segment(m, device, bytes, scale, source) {
  const seg = h('div', {
    class: `seg ${source}`, title: `${m.name} on ${device}: ${fmtBytes(bytes)} ${source}`,
    data: { model: m.name, device, bytes: Math.round(bytes), source },
  });
  seg.style.width = `${Math.min(100, (bytes / scale) * 100)}%`;
  seg.style.backgroundColor = hue(m.name);
  return seg;
}

function swatch(name) {
  const s = h('span', { class: 'swatch', 'aria-hidden': 'true' });
  s.style.backgroundColor = hue(name);
  return s;
}

function deviceCard(group, ledger, models) {
  const keys = group.map((d) => d.device);
  const host = group.find((d) => d.device === 'host') || group[0];
  // a shared pool: the host's size, and the tighter of its sides' usable memory
  const usables = group.map((d) => d.usable_mib).filter((u) => u !== null && u !== undefined);
  const main = { ...host, usable_mib: usables.length ? Math.min(...usables) : null };
  const over = group.some((d) => d.overcommitted);
  const pool = group.length > 1 || main.shared_pool;
  const title = pool ? `Shared memory pool: ${keys.join(' + ')}`
    : main.device === 'host' ? 'Host memory' : `${main.device}${main.name ? ` · ${main.name}` : ''}`;
  const badges = [group.some((d) => d.integrated) ? 'integrated GPU: shares the host memory' : null].filter(Boolean);
  const shares = [];
  const blocked = [];
  const measured = [];
  for (const m of models) {
    for (const key of keys) {
      const bytes = ledgerBytes(m, key);
      if (bytes && m.memory.blocked) blocked.push([m, key, bytes]);
      else if (bytes) shares.push([m, key, bytes]);
      const mib = measuredMiB(m, key);
      if (mib) measured.push([m, key, mib * MIB]);
    }
  }
  const used = shares.reduce((a, [, , b]) => a + b, 0);
  const total = main.total_mib ? main.total_mib * MIB : Math.max(used, 1) * 1.25;
  const label = (m, key) => (pool ? `${m.name} (${key})` : m.name);
  const bar = h('div', { class: `bar${over ? ' over' : ''}`, role: 'img',
    'aria-label': `${title}: ${fmtBytes(used)} of ${fmtBytes(total)}` },
  shares.map(([m, key, b]) => segment(m, key, b, total, m.memory.source)));
  if (main.usable_mib !== null && main.usable_mib !== undefined) {
    const line = h('div', { class: 'usable', title: `usable for our models: ${fmtMiB(main.usable_mib)}`,
      data: { usableMib: main.usable_mib } });
    line.style.left = `${Math.min(100, (main.usable_mib * MIB / total) * 100)}%`;
    bar.append(line);
  }
  const measuredBar = measured.length ? [h('div', { class: 'muted' }, 'measured (from the backends\' logs):'),
    h('div', { class: 'bar thin', role: 'img', 'aria-label': `${title}: measured` },
      measured.map(([m, key, b]) => segment(m, key, b, total, 'measured')))] : null;
  const summary = [
    main.used_mib !== null && main.used_mib !== undefined ? `${fmtMiB(main.used_mib)} used` : `${fmtBytes(used)} used`,
    main.usable_mib !== null && main.usable_mib !== undefined ? `of ${fmtMiB(main.usable_mib)} usable` : null,
    main.total_mib ? `total ${fmtMiB(main.total_mib)}` : 'total unknown',
    main.free_mib !== null && main.free_mib !== undefined ? `free now ${fmtMiB(main.free_mib)}` : null,
    ledger.margin_mib !== null ? `margin ${ledger.margin_mib} MiB` : null,
  ].filter(Boolean).join(' · ');
  return h('div', { class: `card${over ? ' over' : ''}`, data: { device: keys.join('+') } },
    h('h3', {}, title, badges.map((b) => h('span', { class: 'badge' }, b))),
    bar, measuredBar,
    h('p', { class: 'muted' }, summary),
    over ? h('p', { class: 'overcommit' }, 'OVERCOMMIT: our models use more than the usable memory') : null,
    h('ul', { class: 'legend' }, shares.map(([m, key, b]) => h('li', { data: { model: m.name } },
      swatch(m.name), `${label(m, key)}: ${fmtBytes(b)} ${m.memory.source}`))),
    blocked.length ? h('ul', { class: 'reasons' }, blocked.map(([m, key, b]) => h('li', {
      class: 'overcommit', data: { model: m.name } },
    `${m.name} (${m.state}) needs ${fmtBytes(b)} on ${key}, not admitted: ${m.memory.blocked}`))) : null);
}

export function renderGpus() {
  const ledger = store.ledger;
  if (!ledger) return;
  const models = [...store.models.values()].sort((a, b) => a.name.localeCompare(b.name));
  const notes = [...ledger.notes, ...Object.entries(ledger.warnings).map(([n, w]) => `${n}: ${w}`)];
  fill($('#ledger-notes'), notes.length ? h('ul', {}, notes.map((n) => h('li', {}, n))) : null,
    ledger.computed ? null : h('p', { class: 'muted' }, 'No ledger yet (no pass has placed a model): the GPUs as detected.'));
  const cards = [];
  const pool = ledger.devices.filter((d) => d.shared_pool);
  for (const d of ledger.devices) if (!d.shared_pool) cards.push(deviceCard([d], ledger, models));
  if (pool.length) cards.push(deviceCard(pool, ledger, models));
  fill($('#devices'), cards.length ? cards : h('p', { class: 'muted' }, 'No GPU and no memory ledger yet.'));
}

// ---- plan ----------------------------------------------------------------------------------------
let planTimer = null;
export function planChanged() {
  clearTimeout(planTimer);
  planTimer = setTimeout(showPlan, 1000);
}

export async function showPlan() {
  $('#plan-summary').textContent = 'computing…';
  let plan;
  try {
    plan = await readPlan();
  } catch (e) {
    $('#plan-summary').textContent = `cannot compute the plan: ${e.message}`;
    return;
  }
  if (plan === STALE) return;
  $('#plan-summary').textContent = plan.summary;
  const rows = plan.actions.map((a) => h('tr', { data: { model: a.name, kind: a.kind } },
    h('td', { class: `plan-kind k-${a.kind}` }, a.kind),
    h('td', {}, h('a', { href: `#model/${encodeURIComponent(a.name)}` }, a.name),
      store.models.has(a.name) ? [' ', stateBadge(store.models.get(a.name).state)] : null),
    h('td', {}, a.reason, a.manifest_error ? h('div', { class: 'overcommit' }, `manifest: ${a.manifest_error}`) : null),
    h('td', {}, (a.changes || []).join(', '))));
  const parts = [h('div', { class: 'table-wrap' }, h('table', { id: 'plan-table' },
    h('thead', {}, h('tr', {}, ['Action', 'Model', 'Reason', 'Changed'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows)))];
  if (plan.notes.length) parts.push(h('h3', {}, 'Notes'), h('ul', {}, plan.notes.map((n) => h('li', {}, n))));
  if (plan.problems.length) {
    parts.push(h('h3', {}, 'Problems'), h('ul', { class: 'reasons' }, plan.problems.map((p) => h('li', {}, p))));
  }
  const ledger = plan.ledger;
  if (ledger && ledger.devices.length) {
    parts.push(h('h3', {}, 'Memory after this plan (what would still fit)'), h('ul', {}, ledger.devices.map((d) => {
      const left = d.usable_mib === null ? null : d.usable_mib - d.used_mib;
      return h('li', { data: { device: d.device } }, `${d.device}${d.shared_pool ? ' (shared pool)' : ''}: `,
        `${fmtMiB(d.used_mib)} used of ${fmtMiB(d.usable_mib)} usable`,
        left === null ? '' : left >= 0 ? ` → ${fmtMiB(left)} left for more models` : ' → OVERCOMMIT',
        d.overcommitted ? h('strong', { class: 'overcommit' }, ' (overcommitted)') : null);
    })));
    const blocked = ledger.models.filter((m) => m.blocked);
    if (blocked.length) {
      parts.push(h('h3', {}, 'Blocked by the memory ledger'), h('ul', { class: 'reasons' },
        blocked.map((m) => h('li', { data: { model: m.name } }, `${m.name}: ${m.blocked}`))));
    }
  }
  fill($('#plan-body'), parts);
}
