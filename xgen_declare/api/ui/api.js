// Talking to the management API: reads are open; writes (and the /v1 router) carry the token once the
// user gave it (kept in sessionStorage, i.e. for this tab only). A 401 is shown and the token asked for.

import { $ } from './dom.js';

const KEY = 'xgen-declare-token';
export const P = '/api/management';

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function authHeaders(extra) {
  const t = token();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : { ...extra };
}

export async function detailOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body.error && body.error.message) return body.error.message;  // the router's OpenAI shape
    return body.detail || text;
  } catch (e) {
    return text || response.statusText;
  }
}

export async function get(path) {
  const r = await fetch(path, { headers: { Accept: 'application/json' } });
  if (!r.ok) throw new ApiError(r.status, await detailOf(r));
  return r.json();
}

// A reader for views that re-read on every event: several reads may be in flight and their answers
// may come back out of order (the API answers each in its own thread). Only the newest answer counts:
// an older one that arrives after it resolves to STALE, so it never undoes what the newer one showed.
// `path` is a string or a function of the reader's arguments.
export const STALE = Symbol('stale');

export function newest(path) {
  let asked = 0;
  let shown = 0;
  return async (...args) => {
    const mine = ++asked;
    const body = await get(typeof path === 'function' ? path(...args) : path);
    if (mine < shown) return STALE;
    shown = mine;
    return body;
  };
}

// POST (or any request that needs the token); asks for the token on a 401 and tries again.
export async function send(path, init, onUnauthorized) {
  for (;;) {
    const r = await fetch(path, { method: 'POST', ...init, headers: authHeaders(init && init.headers) });
    if (r.status !== 401) return r;
    const detail = await detailOf(r);
    if (onUnauthorized) onUnauthorized(detail);
    const given = await askToken(detail);
    if (!given) throw new ApiError(401, detail);
  }
}

let pending = null;

// Shows the token form; resolves with the token, or null when cancelled.
export function askToken(why) {
  const form = $('#token-form');
  const input = $('#token-input');
  $('#token-why').textContent = token()
    ? 'The token was refused (401). Enter the API token again:'
    : 'This API needs a token for changes (401). Enter the API token:';
  if (why) $('#token-why').title = why;
  form.hidden = false;
  input.value = '';
  input.focus();
  if (pending) return pending.promise;
  let resolve;
  const promise = new Promise((r) => { resolve = r; });
  pending = { promise, resolve };
  return promise;
}

function finish(value) {
  $('#token-form').hidden = true;
  if (pending) {
    const { resolve } = pending;
    pending = null;
    resolve(value);
  }
}

export function setupTokenForm() {
  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = $('#token-input').value.trim();
    if (!value) return;
    sessionStorage.setItem(KEY, value);
    finish(value);
  });
  $('#token-cancel').addEventListener('click', () => finish(null));
}
