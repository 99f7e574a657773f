// The lobby's messages for bad names, tokens and meeting ids; sign-in with a pasted JWT; chat history paging
// (meeting-state.recentMessages + GET …/messages); reconnect and rejoin after the connection drops (new transports
// and producers, video flows again). The server keeps only 3 recent messages in the join snapshot, so paging is
// exercised.
import assert from 'node:assert/strict';
import jwt from 'jsonwebtoken';
import { randomBytes } from 'node:crypto';
import { useHarness } from './lib/harness.mjs';
import { DESKTOP, until } from './lib/browser.mjs';

const { env, open, step } = useHarness({ serverEnv: { MEET_MEETINGS__RECENT_MESSAGES: '3' } });
const s = {};

function token(secret, { userId, userName, campusId = 'campus_dev', ttl = 3600 }) {
  return jwt.sign(
    { user_id: userId, campus_id: campusId, userName, email: `${userId}@example.com`, exp: Math.floor(Date.now() / 1000) + ttl },
    secret,
    { algorithm: 'HS256', noTimestamp: true },
  );
}

s.meetingId = `meeting_web_${randomBytes(4).toString('hex')}`;

step('the lobby explains bad tokens and names', async () => {
  const frank = await open('frank', { device: DESKTOP, path: `/?m=${s.meetingId}` });
  assert.equal(await frank.page.inputValue('#meeting-input'), s.meetingId);
  const { page } = frank;
  await page.fill('#name-input', '');
  await page.click('#join-btn');
  await page.locator('#lobby-error', { hasText: 'Enter your name' }).waitFor();
  await page.click('#token-box summary');
  await page.fill('#token-input', 'not-a-jwt');
  await page.click('#join-btn');
  await page.locator('#lobby-error', { hasText: 'The pasted token is not a JWT' }).waitFor();
  await page.fill('#token-input', token('some-other-secret-of-at-least-32-bytes!!', { userId: 'user_frank', userName: 'Frank' }));
  await page.click('#join-btn');
  await page.locator('#lobby-error', { hasText: 'The token was not signed for this server.' }).waitFor();
  await page.fill('#token-input', token(env.server.secret, { userId: 'user_frank', userName: 'Frank', ttl: -60 }));
  await page.click('#join-btn');
  await page.locator('#lobby-error', { hasText: 'expired' }).waitFor();
  await page.fill('#token-input', '');
  await page.fill('#name-input', 'Frank');
  await page.fill('#meeting-input', 'not a meeting!');
  await page.click('#join-btn');
  await page.locator('#lobby-error', { hasText: 'That is not a meeting ID or meeting link.' }).waitFor();
  await frank.close(); // its camera preview would only load the machine
});

step('a user signs in with a pasted JWT and joins a meeting by its id', async () => {
  s.dave = await open('dave', { device: DESKTOP });
  const { page } = s.dave;
  await page.click('#token-box summary');
  await page.fill('#token-input', token(env.server.secret, { userId: 'user_dave_web', userName: 'Dave Token' }));
  await page.locator('#token-info', { hasText: 'Signed in as Dave Token (campus_dev)' }).waitFor();
  await page.fill('#meeting-input', `http://example.invalid/?m=${s.meetingId}`); // a pasted link works too
  await page.click('#join-btn');
  await s.dave.inMeeting();
  assert.equal(s.dave.you.userId, 'user_dave_web');
  assert.equal(s.dave.you.role, 'host'); // development mode: the first joiner of an auto-created meeting
  assert.equal(new URL(page.url()).searchParams.get('m'), s.meetingId);
});

step('chat history: the join snapshot has the latest messages, older ones page in from the REST API', async () => {
  for (let i = 1; i <= 5; i++) await s.dave.sendChat(`history ${i}`);
  s.erin = await open('erin', { device: DESKTOP, path: `/?m=${s.meetingId}` });
  await s.erin.joinMeeting('Erin Late');
  await s.erin.openPanel('chat');
  const texts = () => s.erin.page.locator('#chat-list .msg .msg-text').allInnerTexts();
  assert.deepEqual(await texts(), ['history 3', 'history 4', 'history 5']);
  await s.erin.page.click('#chat-more');
  await until(async () => (await texts()).length === 5, { what: 'earlier messages loaded' });
  assert.deepEqual(await texts(), ['history 1', 'history 2', 'history 3', 'history 4', 'history 5']);
  await until(async () => !(await s.erin.page.locator('#chat-more').isVisible()), { what: 'no more pages' });
});

step('after the connection drops the client reconnects, rejoins and recreates its media', async () => {
  await s.dave.expectVideo('Erin Late');
  await s.erin.expectVideo('Dave Token');
  const before = s.erin.you.participantId;
  await s.erin.page.evaluate(() => window.meetDebug.dropConnection());
  await until(async () => {
    const st = await s.erin.state();
    return st.state === 'joined' && st.you.participantId !== before;
  }, { timeoutMs: 20_000, what: 'Erin rejoined with a new participant session' });
  const reconnects = await s.erin.events('ack:join-meeting');
  assert.equal(reconnects.filter((e) => e.data.ok).length, 2, 'joined twice (initial + rejoin)');
  await until(async () => (await s.erin.page.locator('#banner').isHidden()), { what: 'reconnecting banner gone' });
  // Media flows both ways again over the new transports and producers.
  await s.dave.expectVideo('Erin Late');
  await s.erin.expectVideo('Dave Token');
  const st = await s.erin.state();
  assert.deepEqual(st.producers.map((p) => p.source).sort(), ['camera', 'mic']);
  assert.equal(st.transports.send, 'connected');
  // Dave saw Erin leave (disconnected) and come back: still two people.
  await until(async () => (await s.dave.page.locator('#stage .tile[data-source="camera"]').count()) === 2, { what: 'two tiles on Dave' });
  // Chat keeps working after the rejoin.
  await s.erin.sendChat('back again');
  await s.dave.chatMessage('back again').waitFor();
});


step('a silent network drop: the rejoin replaces the stale session at once, no duplicate tile for the others', async () => {
  const stale = (await s.erin.state()).you.participantId;
  assert.ok(stale, 'Erin is in the meeting');
  await s.erin.page.evaluate(() => window.meetDebug.dropConnectionSilently());
  const t0 = Date.now();
  await until(async () => {
    const st = await s.erin.state();
    return st.state === 'joined' && st.you.participantId !== stale;
  }, { timeoutMs: 20_000, what: 'Erin rejoined on a new connection' });
  // The server still had the old websocket open; the rejoin named the old session, so it left right away
  // (without previousParticipantId Dave would see two Erin tiles until the server's 45 s ping timeout).
  await until(async () => (await s.dave.events('participant-left')).some((e) => e.data.participantId === stale && e.data.reason === 'replaced'),
    { timeoutMs: 10_000, what: "Dave got participant-left (replaced) for Erin's stale session" });
  await until(async () => (await s.dave.page.locator('#stage .tile[data-source="camera"]').count()) === 2, { what: 'two tiles on Dave' });
  assert.ok(Date.now() - t0 < 20_000, 'long before the ping timeout');
  await s.dave.expectVideo('Erin Late');
  await s.erin.expectVideo('Dave Token');
});
