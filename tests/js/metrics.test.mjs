// Prometheus metrics at /metrics.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { ok, expectError } from './lib/client.mjs';

/** Parse Prometheus text into [{name, labels, value}]. */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      for (const lm of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

const sum = (samples, name, where = () => true) =>
  samples.filter((s) => s.name === name && where(s.labels)).reduce((a, s) => a + s.value, 0);
const has = (samples, name) => samples.some((s) => s.name === name);

describe('metrics (no token configured)', () => {
  const ctx = useServer();

  ctx.test('/metrics exposes connections, meetings, participants, events and errors by code', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    await ok(b.socket, 'send-message', { meetingId, message: 'count me' });
    await ok(b.socket, 'hand:raise', { meetingId });
    await expectError(b.socket, 'layout:change', { meetingId, layout: 'speaker' }, 'FORBIDDEN');
    await expectError(b.socket, 'reaction:send', { meetingId, emoji: 'x' }, 'VALIDATION_ERROR');

    const res = await ctx.api('GET', '/metrics');
    assert.equal(res.status, 200, res.text);
    const samples = parseMetrics(res.text);
    for (const name of ['meet_connections', 'meet_meetings_active', 'meet_participants']) {
      assert.ok(has(samples, name), `/metrics lacks ${name}:\n${res.text.slice(0, 2000)}`);
    }
    assert.ok(samples.some((s) => s.name.startsWith('meet_events_total')), `no meet_events_total:\n${res.text.slice(0, 2000)}`);
    assert.ok(samples.some((s) => s.name.startsWith('meet_errors_total')), `no meet_errors_total:\n${res.text.slice(0, 2000)}`);
    assert.ok(sum(samples, 'meet_connections') >= 2, 'two sockets are connected');
    assert.ok(sum(samples, 'meet_meetings_active') >= 1);
    assert.ok(sum(samples, 'meet_participants') >= 2);
    assert.ok(sum(samples, 'meet_events_total') >= 4, 'events were handled');
    const errors = samples.filter((s) => s.name === 'meet_errors_total');
    assert.ok(errors.every((s) => 'code' in s.labels), `meet_errors_total must carry a code label: ${JSON.stringify(errors)}`);
    assert.ok(sum(samples, 'meet_errors_total', (l) => l.code === 'FORBIDDEN') >= 1, JSON.stringify(errors));
    assert.ok(sum(samples, 'meet_errors_total', (l) => l.code === 'VALIDATION_ERROR') >= 1, JSON.stringify(errors));

    // gauges go down when people leave
    const before = sum(samples, 'meet_participants');
    const beforeConn = sum(samples, 'meet_connections');
    b.socket.disconnect();
    await a.socket.rec.waitFor('participant-left');
    await new Promise((r) => setTimeout(r, 100));
    const after = parseMetrics((await ctx.api('GET', '/metrics')).text);
    assert.equal(sum(after, 'meet_participants'), before - 1);
    assert.equal(sum(after, 'meet_connections'), beforeConn - 1);
  });
});

describe('metrics (token configured)', () => {
  const ctx = useServer({ metricsToken: 'metrics-token-0123456789' });

  ctx.test('/metrics needs the bearer token', async () => {
    const none = await ctx.api('GET', '/metrics');
    assert.equal(none.status, 401, none.text);
    const wrong = await ctx.api('GET', '/metrics', { token: 'wrong' });
    assert.equal(wrong.status, 401, wrong.text);
    const good = await ctx.api('GET', '/metrics', { token: 'metrics-token-0123456789' });
    assert.equal(good.status, 200, good.text);
    assert.match(good.text, /meet_connections/);
  });
});
