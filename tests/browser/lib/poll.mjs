// Sampling a receiving page's getStats() over time, and "rising" / "flat" assertions over the samples.
import assert from 'node:assert/strict';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The consumers in `stats` from `userId` of `kind`. */
export function pick(stats, { userId, kind, consumerId } = {}) {
  return stats.filter((s) => (!userId || s.userId === userId) && (!kind || s.kind === kind) && (!consumerId || s.consumerId === consumerId));
}

/** Poll `participant.stats()` until `predicate(stats)` is true; throws with the last stats after `timeoutMs`. */
export async function waitForStats(participant, predicate, { timeoutMs = 20_000, intervalMs = 250, what = 'condition' } = {}) {
  const until = Date.now() + timeoutMs;
  let last = [];
  for (;;) {
    last = await participant.stats();
    if (predicate(last)) return last;
    if (Date.now() > until) {
      throw new Error(`${participant.name}: timed out after ${timeoutMs} ms waiting for ${what}; last stats: ${JSON.stringify(last)}`);
    }
    await sleep(intervalMs);
  }
}

/** Poll `participant.events(name)` until `predicate(events)`; returns the events. */
export async function waitForEvents(participant, name, predicate, { timeoutMs = 10_000, what } = {}) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const events = await participant.events(name);
    if (predicate(events)) return events;
    if (Date.now() > until) {
      throw new Error(`${participant.name}: timed out after ${timeoutMs} ms waiting for ${what ?? name}; got ${JSON.stringify(events)}`);
    }
    await sleep(100);
  }
}

/** Sample the page's stats every `intervalMs` for `seconds`: [{t, stats}] (first sample at t=0). */
export async function sample(participant, { seconds = 5, intervalMs = 500 } = {}) {
  const samples = [];
  const t0 = Date.now();
  for (;;) {
    samples.push({ t: Date.now() - t0, stats: await participant.stats() });
    if (Date.now() - t0 >= seconds * 1000) return samples;
    await sleep(intervalMs);
  }
}

/** The values of `field` of the one consumer matching `filter` in each sample. */
export function series(samples, filter, field) {
  return samples.map(({ stats }) => {
    const found = pick(stats, filter);
    if (found.length !== 1) {
      throw new Error(`expected exactly one consumer matching ${JSON.stringify(filter)}, found ${found.length}: ${JSON.stringify(stats)}`);
    }
    return found[0][field];
  });
}

/**
 * Rising: the last value exceeds the first by at least `minDelta`, and the value grew in at least `minFraction`
 * of the sampling intervals (a short freeze is tolerated; a stall is not).
 */
export function assertRising(samples, filter, field, { minDelta = 1, minFraction = 0.6, label = '' } = {}) {
  const v = series(samples, filter, field);
  const steps = v.length - 1;
  let up = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[i - 1]) up++;
  const msg = `${label} ${field} of ${JSON.stringify(filter)} should rise over ${samples.at(-1).t} ms: ${JSON.stringify(v)}`;
  assert.ok(v.at(-1) - v[0] >= minDelta, `${msg} (delta ${v.at(-1) - v[0]} < ${minDelta})`);
  assert.ok(up >= Math.ceil(steps * minFraction), `${msg} (grew in ${up}/${steps} intervals)`);
  return v;
}

/** Flat: the value did not change over the samples (at most `maxDelta`). */
export function assertFlat(samples, filter, field, { maxDelta = 0, label = '' } = {}) {
  const v = series(samples, filter, field);
  assert.ok(v.at(-1) - v[0] <= maxDelta, `${label} ${field} of ${JSON.stringify(filter)} should stay flat over ${samples.at(-1).t} ms: ${JSON.stringify(v)}`);
  return v;
}
