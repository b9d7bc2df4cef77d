// DOM helpers: every string becomes a text node (never HTML), so a manifest, a log line or a backend's
// answer cannot add markup or script to the page.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'data') for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'href') el.setAttribute('href', safeHref(value));
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export function safeHref(url) {
  const s = String(url);
  return /^(https?:\/\/|#|\/)/.test(s) ? s : '#';
}

export const $ = (sel) => document.querySelector(sel);

const MIB = 1024 * 1024;
export function fmtBytes(bytes) {
  if (bytes === null || bytes === undefined) return '?';
  if (bytes >= 1024 * MIB) return `${(bytes / 1024 / MIB).toFixed(1)} GiB`;
  return `${Math.round(bytes / MIB)} MiB`;
}
export const fmtMiB = (mib) => (mib === null || mib === undefined ? '?' : fmtBytes(mib * MIB));

export function fmtUptime(s) {
  if (s === null || s === undefined) return '';
  if (s < 120) return `${Math.floor(s)}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export function fmtTime(unix) {
  return new Date(unix * 1000).toLocaleTimeString();
}

const STATE_CLASS = {
  Ready: 'st-ok', Starting: 'st-warn', Pending: 'st-warn', Downloading: 'st-warn', Stopping: 'st-warn', Unhealthy: 'st-warn', Exited: 'st-warn',
  CrashLoopBackOff: 'st-bad', Failed: 'st-bad', Blocked: 'st-bad', Invalid: 'st-bad', Stopped: 'st-idle', Idle: 'st-idle',
};
export function stateBadge(state, held) {
  return h('span', { class: `state ${STATE_CLASS[state] || 'st-idle'}`, data: { state } },
    state + (held ? ' (held)' : ''));
}

// a stable colour per model name
export function hue(name) {
  let x = 0;
  for (const ch of name) x = (x * 31 + ch.codePointAt(0)) % 360;
  return `hsl(${x} 60% 52%)`;
}
