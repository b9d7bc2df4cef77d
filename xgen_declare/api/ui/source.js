// The git source the daemon follows (GET source, issue #24): the repository, the commit applied and
// since when, a commit fetched but not applied and why, the last fetch error and a pin. The panel stays
// hidden when the daemon serves a local directory (404).

import { $, h, fill } from './dom.js';
import { P, STALE, ApiError, newest } from './api.js';

const REFRESH = 10000;
const readSource = newest(`${P}/source`);
const short = (c) => (c ? c.slice(0, 12) : 'none');

export function fmtWhen(unix) {
  return unix ? `${new Date(unix * 1000).toISOString().slice(0, 19).replace('T', ' ')} UTC` : '-';
}

function describe(src) {
  return src.url + (src.ref !== 'HEAD' ? `#${src.ref}` : '') + (src.path ? `//${src.path}` : '');
}

function commitEl(c) {
  return h('span', { class: 'mono', title: c || '' }, short(c));
}

export function sourceFacts(data) {
  const src = data.source;
  const last = data.last_poll;
  const pin = data.pin;
  const applied = data.serving.commit ? data.serving : data.current;
  const rows = [['source', describe(src)],
    ['applied', applied.commit ? [commitEl(applied.commit), ` since ${fmtWhen(applied.at)}`]
      : 'none yet (no good commit fetched: the daemon waits for one)']];
  if (pin) rows.push(['pinned', [commitEl(pin.commit), ` since ${fmtWhen(pin.at)} (was ${short(pin.before)}; `,
    h('code', {}, 'xgen-declare unpin'), ` follows ${src.ref} again)`]]);
  // fetched and not taken: refused or pinned (a commit already current is being served at the next step)
  if (last && last.fetched && last.fetched !== applied.commit && last.fetched !== data.current.commit) {
    const why = last.reason || (pin ? 'pinned' : last.outcome);
    rows.push(['not applied', [commitEl(last.fetched), ` fetched, not applied: ${why}`]]);
  }
  rows.push(['last poll', last ? `${fmtWhen(last.at)}: ${last.outcome}${last.reason ? ` (${last.reason})` : ''}`
    : 'none recorded yet']);
  if (last && last.error) rows.push(['last error', last.error]);
  rows.push(['verify', src.verify ? 'signed commits only (source.verify.allowed_signers)' : 'not configured']);
  const gc = data.last_gc;  // the last git gc of repo.git (absent from an older daemon's answer)
  if (gc) {
    const mib = (u) => (u ? `${(u.bytes / 1048576).toFixed(1)} MiB` : '?');
    rows.push(['last gc', `${fmtWhen(gc.at)}: ${gc.ok ? `${mib(gc.before)} -> ${mib(gc.after)}, `
      + `${gc.kept.length} commit(s) kept` : `failed: ${gc.error}`}`]);
  }
  return rows;
}

function render(data) {
  const panel = $('#source-panel');
  const bad = data.last_poll && data.last_poll.error;
  panel.className = `card source${bad ? ' refused' : ''}`;
  fill(panel, h('h3', {}, 'Config from git'),
    h('dl', { class: 'facts' }, sourceFacts(data).map(([k, v]) => [h('dt', {}, k), h('dd', { data: { fact: k } }, v)])),
    data.problems.length ? h('ul', { class: 'reasons' }, data.problems.map((p) => h('li', {}, p))) : null);
  panel.hidden = false;
}

export async function showSource() {
  const panel = $('#source-panel');
  try {
    const data = await readSource();
    if (data === STALE) return;
    render(data);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      panel.hidden = true;  // a local manifests dir: nothing to show
      return;
    }
    fill(panel, h('p', { class: 'overcommit' }, `cannot read the git source: ${e.message}`));
    panel.hidden = false;
  }
}

export function setupSource() {
  showSource();
  setInterval(showSource, REFRESH);
}
