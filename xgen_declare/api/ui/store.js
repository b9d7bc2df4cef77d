// What the page knows: the models (GET models, patched by events), the events seen, the ledger.
// Views subscribe with onChange(fn); fn({models}), fn({event}) or fn({ledger}).

export const store = {
  models: new Map(),   // name -> GET models object
  fetchedAt: 0,        // performance.now() of the last GET models (uptimes count on from there)
  events: [],          // every event seen (ring of MAX_EVENTS)
  lastEventId: 0,
  ledger: null,        // GET ledger
};

const MAX_EVENTS = 1000;
const listeners = new Set();

export function onChange(fn) {
  listeners.add(fn);
}

export function changed(what) {
  for (const fn of listeners) {
    try {
      fn(what);
    } catch (e) {
      console.warn('view update failed', e);
    }
  }
}

export function remember(ev) {
  store.events.push(ev);
  if (store.events.length > MAX_EVENTS) store.events.shift();
}

export function uptimeNow(m) {
  if (m.uptime === null || m.uptime === undefined) return null;
  return m.uptime + (performance.now() - store.fetchedAt) / 1000;
}

const sumValues = (obj) => Object.values(obj || {}).reduce((a, b) => a + (Number(b) || 0), 0);

// bytes per device of the ledger; measured MiB per device (sum of the log's terms)
export function ledgerBytes(m, device) {
  return (m.memory && m.memory.bytes && m.memory.bytes[device]) || 0;
}
export function measuredMiB(m, device) {
  const per = m.memory && m.memory.measured_mib;
  return per && per[device] ? sumValues(per[device]) : 0;
}
export function memoryTotals(m) {
  const mem = m.memory;
  if (!mem) return null;
  const measured = Object.keys(mem.measured_mib || {}).reduce((a, k) => a + measuredMiB(m, k), 0);
  return { bytes: sumValues(mem.bytes), source: mem.source, measuredMiB: measured, blocked: mem.blocked };
}
