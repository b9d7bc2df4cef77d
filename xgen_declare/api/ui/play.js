// Playground: one chat request through the router (/v1), streamed; the answer is shown as text.

import { $, h, fill } from './dom.js';
import { detailOf, send } from './api.js';
import { store } from './store.js';

let controller = null;

// options are kept (only their text changes), so a list open in the user's hands is not rebuilt
export function fillPlayModels() {
  const select = $('#play-model');
  const chosen = select.value;
  const names = [...store.models.keys()].sort();
  const have = [...select.options].map((o) => o.value);
  if (have.join('\n') !== names.join('\n')) {
    fill(select, names.map((name) => h('option', { value: name })));
    if (chosen && store.models.has(chosen)) select.value = chosen;
  }
  for (const option of select.options) {
    const m = store.models.get(option.value);
    option.textContent = `${m.name} (${m.state})`;
  }
}

function contentOf(chunk) {
  const choice = chunk.choices && chunk.choices[0];
  if (!choice) return '';
  return (choice.delta && choice.delta.content) || choice.text || (choice.message && choice.message.content) || '';
}

async function run(notice) {
  const out = $('#play-output');
  const stats = $('#play-stats');
  const model = $('#play-model').value;
  out.textContent = '';
  stats.textContent = `asking ${model}…`;
  controller = new AbortController();
  $('#play-stop').disabled = false;
  $('#play-send').disabled = true;
  const t0 = performance.now();
  let first = null;
  let chunks = 0;
  try {
    const body = JSON.stringify({ model, stream: true, max_tokens: Number($('#play-max').value) || 128,
      messages: [{ role: 'user', content: $('#play-prompt').value }] });
    const r = await send('/v1/chat/completions', { body, signal: controller.signal,
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' } },
    (detail) => notice(`401 Unauthorized: ${detail}`, 'error'));
    if (!r.ok) {
      stats.textContent = `error ${r.status}: ${await detailOf(r)}`;
      return;
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      const lines = buf.split('\n');
      buf = lines.pop();
      for (const line of lines) {
        if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
        const chunk = JSON.parse(line.slice(6));
        if (chunk.error) {
          stats.textContent = `error: ${chunk.error.message || JSON.stringify(chunk.error)}`;
          continue;
        }
        const text = contentOf(chunk);
        if (!text) continue;
        if (first === null) first = performance.now() - t0;
        chunks += 1;
        out.append(document.createTextNode(text));
        stats.textContent = `streaming from ${model}: first text after ${first.toFixed(0)} ms, ${chunks} chunks`;
      }
    }
    stats.textContent = `done: ${model}, first text after ${first === null ? '–' : first.toFixed(0)} ms, ` +
      `${chunks} chunks, ${(performance.now() - t0).toFixed(0)} ms in all`;
  } catch (e) {
    stats.textContent = e.name === 'AbortError' ? 'stopped' : `error: ${e.message}`;
  } finally {
    controller = null;
    $('#play-stop').disabled = true;
    $('#play-send').disabled = false;
  }
}

export function setupPlayground(notice) {
  $('#play-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!controller) run(notice);
  });
  $('#play-stop').addEventListener('click', () => controller && controller.abort());
}
