// A model's download while its source is fetched (state Downloading): GET models' `download`
// {done, total, rate} (bytes, bytes/s) as a progress bar with bytes done/total, rate and ETA.

import { h } from './dom.js';

const MIB = 1024 * 1024;

export function fmtSize(bytes) {
  if (bytes === null || bytes === undefined) return '?';
  if (bytes >= 1024 * MIB) return `${(bytes / 1024 / MIB).toFixed(1)} GiB`;
  return `${(bytes / MIB).toFixed(1)} MiB`;
}

export function fmtEta(seconds) {
  const s = Math.ceil(seconds);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

// "1.2/4.8 GiB": both in the total's unit (no total: the bytes done alone)
function doneOfTotal(done, total) {
  if (!total) return `${fmtSize(done)} of ?`;
  const [unit, div] = total >= 1024 * MIB ? ['GiB', 1024 * MIB] : ['MiB', MIB];
  return `${(done / div).toFixed(1)}/${(total / div).toFixed(1)} ${unit}`;
}

// "10.0/24.0 MiB · 4.0 MiB/s · ETA 4s" (rate and ETA only once known)
export function downloadText(d) {
  const parts = [doneOfTotal(d.done || 0, d.total)];
  if (d.rate > 0) {
    parts.push(`${fmtSize(d.rate)}/s`);
    if (d.total) parts.push(`ETA ${fmtEta(Math.max(0, d.total - (d.done || 0)) / d.rate)}`);
  }
  return parts.join(' · ');
}

export function downloadBar(m) {
  const d = m && m.download;
  if (!d) return null;
  const text = downloadText(d);
  const bar = h('progress', { max: d.total || null, 'aria-label': `download of ${m.name}: ${text}` });
  if (d.total) bar.value = Math.min(d.done || 0, d.total);  // no total: an indeterminate bar
  const pct = d.total ? ` (${Math.floor((100 * Math.min(d.done || 0, d.total)) / d.total)}%)` : '';
  return h('div', { class: 'download', data: { done: d.done || 0, total: d.total ?? '', rate: d.rate ?? '' } },
    bar, h('span', { class: 'dl-text' }, text + pct));
}
