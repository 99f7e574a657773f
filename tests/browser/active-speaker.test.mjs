// Active speaker and audio levels, measured on the server from the ssrc-audio-level header extension: two real
// Chromium participants with Chromium's fake microphone (a beep tone); one disables its track (it keeps sending
// packets of silence). Proven by the socket events each page receives.
// Run from the repo root: node --test --test-concurrency=1 tests/browser/active-speaker.test.mjs
import assert from 'node:assert/strict';
import { useHarness } from './lib/harness.mjs';
import { meetingId } from './lib/tokens.mjs';
import { waitForEvents, sleep } from './lib/poll.mjs';

const { scenario } = useHarness();

scenario('the one with a live microphone is the active speaker; a muted one has no level', async ({ open }, t) => {
  const id = meetingId('speaker');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  await bob.startMedia({ audio: true, video: false });
  await bob.eval(() => window.meeting.setTrackEnabled('audio', false));
  await alice.startMedia({ audio: true, video: false });
  const aliceP = alice.you.participantId;
  const bobP = bob.you.participantId;

  // Both pages hear that alice is the active speaker; nobody ever names bob.
  for (const p of [alice, bob]) {
    const ev = await waitForEvents(p, 'active-speaker', (e) => e.length > 0, { timeoutMs: 20_000, what: 'active-speaker' });
    assert.equal(ev[0].data.participantId, aliceP, JSON.stringify(ev));
    assert.equal(ev[0].data.userId, alice.userId);
    assert.equal(ev[0].data.meetingId, id);
  }
  // A few seconds of levels: alice first (the loudest), bob never above silence, at most two reports a second.
  const before = (await bob.events('audio-levels')).length;
  await sleep(4_000);
  const levels = (await bob.events('audio-levels')).slice(before);
  t.diagnostic(`audio-levels over 4 s: ${levels.length}; last: ${JSON.stringify(levels.at(-1)?.data)}`);
  assert.ok(levels.length >= 2, `levels kept coming while alice's beep plays: ${JSON.stringify(levels)}`);
  assert.ok(levels.length <= 9, `at most every 500 ms: ${levels.length} in 4 s`);
  const withSound = levels.filter((e) => e.data.levels.length > 0);
  assert.ok(withSound.length >= 2, JSON.stringify(levels));
  for (const e of withSound) {
    assert.equal(e.data.levels[0].participantId, aliceP, JSON.stringify(e.data));
    assert.ok(e.data.levels[0].level > 0 && e.data.levels[0].level <= 1, JSON.stringify(e.data));
    assert.ok(e.data.levels.every((l) => l.participantId !== bobP), `the muted one has a level: ${JSON.stringify(e.data)}`);
    const ordered = e.data.levels.every((l, i, a) => i === 0 || a[i - 1].level >= l.level);
    assert.ok(ordered, `levels loudest first: ${JSON.stringify(e.data)}`);
  }
  assert.ok((await alice.events('active-speaker')).every((e) => e.data.participantId === aliceP));

  // Bob unmutes and alice mutes: bob takes over (both beep at the same level, so only alice's silence hands over).
  await alice.eval(() => window.meeting.setTrackEnabled('audio', false));
  await bob.eval(() => window.meeting.setTrackEnabled('audio', true));
  const ev = await waitForEvents(alice, 'active-speaker', (e) => e.some((x) => x.data.participantId === bobP), { timeoutMs: 15_000, what: 'active-speaker naming bob' });
  t.diagnostic(`active-speaker events at alice: ${ev.map((e) => e.data.participantId === aliceP ? 'alice' : 'bob').join(', ')}`);
  await sleep(1_500);
  const late = (await alice.events('audio-levels')).at(-1).data.levels;
  assert.ok(late.length > 0 && late[0].participantId === bobP && late.every((l) => l.participantId !== aliceP), JSON.stringify(late));
});
