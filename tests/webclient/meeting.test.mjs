// One meeting, told in steps through the real UI of the bundled web client (web/dist served by meet-server):
// Alice (host, desktop) creates a meeting in the lobby; Bob (desktop) and Carol (phone-sized, camera off) join
// by its link. They see each other's video, chat (all / private / hosts), react, raise hands; the host mutes Bob
// (the server pauses his producer; the meeting does not let people unmute themselves, so Bob can turn his mic back on
// only after the host allows it), changes the layout, spotlights, promotes Bob; Bob shares his screen; the
// quality indicator reports stats; screenshots of the meeting view; Bob leaves; Alice ends the meeting.
import assert from 'node:assert/strict';
import { useHarness } from './lib/harness.mjs';
import { DESKTOP, PHONE, until, sleep } from './lib/browser.mjs';

const { open, step, artifact } = useHarness();
const s = {}; // alice, bob, carol, meetingId

const ALICE = 'Alice Host';
const BOB = 'Bob Builder';
const CAROL = 'Carol Phone';

async function cameraTiles(u) {
  return u.page.locator('#stage .tile[data-source="camera"]').count();
}

step('the host starts a meeting from the lobby; two others join by its link (one on a phone, camera off)', async () => {
  s.alice = await open('alice', { device: DESKTOP });
  const { page } = s.alice;
  // Preview and device choice before joining.
  await page.locator('#preview-frame[data-camera="on"]').waitFor();
  await until(() => page.locator('#preview-video').evaluate((v) => v.getVideoPlaybackQuality().totalVideoFrames > 0), { what: 'preview frames' });
  assert.ok((await page.locator('#camera-select option').count()) >= 1, 'camera choice offered');
  assert.ok((await page.locator('#mic-select option').count()) >= 1, 'microphone choice offered');
  await s.alice.fillName(ALICE);
  await s.alice.screenshot(artifact('lobby-desktop.png'));
  // As createMeeting (lib/browser.mjs), with "Participants may unmute themselves" off.
  await s.alice.fillName(ALICE);
  await page.click('.options summary');
  await page.fill('#title-input', 'Design review');
  await page.check('#allow-recording');
  await page.uncheck('#allow-unmute');
  await page.click('#create-btn');
  await s.alice.inMeeting();
  s.meetingId = new URL(page.url()).searchParams.get('m');
  assert.match(s.meetingId, /^meeting_/);
  assert.equal(await page.locator('#meeting-title').innerText(), 'Design review');

  s.bob = await open('bob', { device: DESKTOP, path: `/?m=${s.meetingId}` });
  assert.equal(await s.bob.page.locator('#lobby-title').innerText(), 'Join meeting');
  assert.equal(await s.bob.page.inputValue('#meeting-input'), s.meetingId);
  await s.bob.joinMeeting(BOB);

  s.carol = await open('carol', { device: PHONE, path: `/?m=${s.meetingId}` });
  await s.carol.fillName(CAROL);
  await s.carol.page.locator('#preview-frame[data-camera="on"]').waitFor();
  await s.carol.screenshot(artifact('lobby-phone.png'));
  await s.carol.joinMeeting(CAROL, { camOff: true });

  for (const u of [s.alice, s.bob, s.carol]) {
    await until(async () => (await cameraTiles(u)) === 3, { what: `${u.label} sees three participants` });
  }
  assert.equal(s.alice.you.role, 'host');
  assert.equal(s.bob.you.role, 'participant');
  await until(async () => (await s.alice.tile(CAROL).getAttribute('data-cam')) === 'off', { what: "Carol's tile shows camera off" });
  assert.equal(await s.alice.tile(CAROL).locator('.tile-avatar').innerText(), 'CP');
});

step("everyone sees the others' camera video (decoded frames keep rising)", async () => {
  await s.alice.expectVideo(BOB);
  await s.bob.expectVideo(ALICE);
  await s.carol.expectVideo(ALICE);
  await s.carol.expectVideo(BOB);
});

step("the active speaker is highlighted from the server's audio-levels (measured from the RTP audio-level extension)", async () => {
  await until(async () => (await s.alice.page.locator('#stage .tile[data-local="false"][data-speaking="true"]').count()) > 0, {
    what: "a remote tile highlighted as speaking on Alice's page",
  });
  const levels = (await s.alice.events('audio-levels')).filter((e) => e.data.levels.length > 0);
  assert.ok(levels.length > 0, 'the ring comes from the server: audio-levels received');
  assert.ok((await s.alice.events('active-speaker')).length > 0, 'active-speaker received');
});

step('chat: to everyone, a private message only its recipient sees, to the hosts; typing indicator', async () => {
  await s.alice.openPanel('chat');
  await s.bob.openPanel('chat');
  // Typing indicator: Bob types without sending.
  await s.bob.page.locator('#chat-input').pressSequentially('Hel', { delay: 50 });
  await until(async () => (await s.alice.page.locator('#typing').innerText()).includes(`${BOB} is typing`), { what: 'typing indicator on Alice' });
  await s.bob.page.fill('#chat-input', '');
  await s.bob.sendChat('Hello everyone');
  await s.alice.chatMessage('Hello everyone').waitFor();
  await s.carol.chatMessage('Hello everyone').waitFor({ state: 'attached' });
  // The typing indicator clears when the message arrives.
  await until(async () => (await s.alice.page.locator('#typing').innerText()) === '', { what: 'typing indicator cleared' });

  await s.alice.sendChat('psst Bob, this is private', `${BOB} (private)`);
  const onBob = s.bob.chatMessage('psst Bob, this is private');
  await onBob.waitFor();
  assert.equal(await onBob.getAttribute('data-recipient-type'), 'private');
  assert.match(await onBob.innerText(), /privately to you/);
  assert.match(await s.alice.chatMessage('psst Bob, this is private').innerText(), new RegExp(`privately to ${BOB}`));

  await s.carol.sendChat('Question for the hosts', 'Hosts and moderators');
  await s.alice.chatMessage('Question for the hosts').waitFor();
  await sleep(1000); // time for anything misdelivered to arrive
  assert.equal(await s.carol.chatMessage('psst Bob').count(), 0, 'Carol must not see the private message to Bob');
  assert.equal(await s.bob.chatMessage('Question for the hosts').count(), 0, 'Bob (a participant) must not see the message to the hosts');
  // Unread badge on a closed chat panel.
  await s.carol.closePanel();
  await s.bob.sendChat('One more for everyone');
  await until(async () => (await s.carol.page.locator('#btn-chat .badge').innerText()) === '1', { what: "unread badge on Carol's chat button" });
});

step('reactions float over the stage for everyone, with an animation', async () => {
  await s.bob.closePanel();
  await s.bob.page.click('#btn-react');
  await s.bob.page.click('#reaction-menu [data-emoji="🎉"]');
  await s.bob.page.keyboard.press('Escape'); // the picker stays open for more reactions until closed
  await s.bob.page.locator('#reaction-menu').waitFor({ state: 'hidden' });
  for (const u of [s.alice, s.carol]) {
    const float = u.page.locator('#reactions .reaction-float', { hasText: '🎉' });
    await float.first().waitFor({ timeout: 5000 });
    assert.match(await float.first().innerText(), new RegExp(BOB));
    assert.equal(await float.first().evaluate((el) => getComputedStyle(el).animationName), 'float-up');
  }
  // It is removed after the animation.
  await until(async () => (await s.alice.page.locator('#reactions .reaction-float').count()) === 0, { timeoutMs: 8000, what: 'reaction removed' });
});

step('raising and lowering a hand toggles the hand icon for everyone', async () => {
  await s.carol.page.click('#btn-hand');
  await until(async () => (await s.alice.tile(CAROL).getAttribute('data-hand')) === 'up', { what: "hand on Carol's tile (Alice)" });
  await until(async () => (await s.bob.tile(CAROL).getAttribute('data-hand')) === 'up', { what: "hand on Carol's tile (Bob)" });
  assert.ok(await s.alice.tile(CAROL).locator('.tile-hand').isVisible());
  await until(async () => (await s.carol.page.getAttribute('#btn-hand', 'aria-pressed')) === 'true', { what: "Carol's hand button pressed=true" });
  await s.alice.openPanel('people');
  await until(async () => (await s.alice.person(CAROL).getAttribute('data-hand')) === 'up', { what: 'hand in the participant list' });
  await s.carol.page.click('#btn-hand');
  await until(async () => (await s.alice.tile(CAROL).getAttribute('data-hand')) === 'down', { what: 'hand lowered (Alice)' });
  assert.equal(await s.alice.tile(CAROL).locator('.tile-hand').isVisible(), false);
  await until(async () => (await s.carol.page.getAttribute('#btn-hand', 'aria-pressed')) === 'false', { what: "Carol's hand button pressed=false" });
});

step('keyboard: labelled controls, arrow keys along the toolbar, shortcuts and menus without a mouse', async () => {
  const { page } = s.bob;
  const unnamed = await page.$$eval('.toolbar button, #stage button', (bs) =>
    bs.filter((b) => b.offsetParent !== null && !(b.getAttribute('aria-label') || b.textContent.trim())).map((b) => b.id || b.className));
  assert.deepEqual(unnamed, [], 'every visible button has an accessible name');
  // Focus moves are polled, not read once: under CPU load the page applies them a frame later.
  const focused = (want, what) => until(async () => (await page.evaluate(() => document.activeElement?.id)) === want, { what });
  await page.focus('#btn-mic');
  await page.keyboard.press('ArrowRight');
  await focused('btn-cam', 'ArrowRight moves to the camera button');
  await page.keyboard.press('Alt+KeyH');
  await until(async () => (await s.alice.tile(BOB).getAttribute('data-hand')) === 'up', { what: 'Alt+H raised Bob\'s hand' });
  await page.keyboard.press('Alt+KeyH');
  await until(async () => (await s.alice.tile(BOB).getAttribute('data-hand')) === 'down', { what: 'Alt+H lowered it' });
  await page.focus('#btn-react');
  await page.keyboard.press('Enter');
  await page.locator('#reaction-menu').waitFor({ state: 'visible' });
  await until(async () => (await page.evaluate(() => document.activeElement?.dataset?.emoji)) === '👍', { what: 'focus moves into the menu' });
  assert.equal(await page.getAttribute('#btn-react', 'aria-expanded'), 'true');
  await page.keyboard.press('Escape');
  await page.locator('#reaction-menu').waitFor({ state: 'hidden' });
  await focused('btn-react', 'focus returns to the button');
});

step("the host mutes a participant: everyone sees the muted mic, the server pauses the producer; without self-unmute the host allows unmuting", async () => {
  assert.equal(await s.carol.tile(BOB).getAttribute('data-mic'), 'on');
  await s.alice.openPanel('people');
  await s.alice.person(BOB).locator('[data-action="mute"]').click();
  for (const u of [s.alice, s.carol, s.bob]) {
    await until(async () => (await u.tile(BOB).getAttribute('data-mic')) === 'off', { what: `${u.label}: Bob's mic shown muted` });
  }
  assert.equal(await s.bob.page.getAttribute('#btn-mic', 'data-state'), 'off');
  const paused = (await s.carol.events('producer:paused')).map((e) => e.data);
  assert.ok(paused.some((d) => d.userId === s.bob.you.userId && d.kind === 'audio' && d.byModerator === true), `producer:paused from the server: ${JSON.stringify(paused)}`);
  assert.ok((await s.bob.page.locator('#toasts').innerText()).includes(`${ALICE} turned off your microphone`));
  // The meeting does not let participants unmute themselves: Bob's mic stays off, with a message saying why.
  await s.bob.page.click('#btn-mic');
  await until(async () => (await s.bob.page.locator('#toasts').innerText()).includes('You can unmute once they allow it'), { what: 'Bob told why he cannot unmute' });
  assert.equal(await s.bob.page.getAttribute('#btn-mic', 'data-state'), 'off');
  assert.equal(await s.alice.tile(BOB).getAttribute('data-mic'), 'off');
  // The host allows it (participant:unmute): Bob is told; lifting does not turn his mic on.
  const allow = s.alice.person(BOB).locator('[data-action="allow-unmute"]');
  await allow.click();
  await until(async () => (await s.bob.page.locator('#toasts').innerText()).includes(`${ALICE} allowed you to turn your microphone back on`), { what: 'Bob told he may unmute' });
  const lifted = (await s.carol.events('participant:unmuted')).map((e) => e.data);
  assert.ok(lifted.some((d) => d.targetUserId === s.bob.you.userId && d.muteType === 'audio'), `participant:unmuted: ${JSON.stringify(lifted)}`);
  await until(async () => (await allow.count()) === 0, { what: 'the allow control goes once the mute is lifted' });
  assert.equal(await s.alice.tile(BOB).getAttribute('data-mic'), 'off');
  // Now Bob unmutes himself: producer:resume on the server, everyone sees the mic on.
  await s.bob.page.click('#btn-mic');
  await until(async () => (await s.alice.tile(BOB).getAttribute('data-mic')) === 'on', { what: "Bob's mic on again (Alice)" });
  const resumed = (await s.carol.events('producer:resumed')).map((e) => e.data);
  assert.ok(resumed.some((d) => d.userId === s.bob.you.userId && d.kind === 'audio' && d.byModerator === false));
  // Self mute / camera off are visible to others too.
  await s.bob.page.click('#btn-cam');
  await until(async () => (await s.alice.tile(BOB).getAttribute('data-cam')) === 'off', { what: "Bob's camera off (Alice)" });
  await s.bob.page.click('#btn-cam');
  await s.alice.expectVideo(BOB);
});

step('one participant shares the screen: the others get a screen tile in presentation layout', async () => {
  await s.alice.closePanel();
  await s.bob.page.click('#btn-share');
  await s.bob.page.locator('#btn-share[aria-pressed="true"]').waitFor();
  for (const u of [s.alice, s.carol]) {
    await u.expectVideo(BOB, 'screen');
    assert.equal(await u.page.getAttribute('#stage', 'data-layout'), 'presentation');
    assert.equal(await u.page.locator('#stage-main .tile[data-source="screen"]').count(), 1, 'the shared screen is the large tile');
  }
  const started = (await s.alice.events('screen:started')).map((e) => e.data);
  assert.ok(started.some((d) => d.userId === s.bob.you.userId));
  await s.alice.screenshot(artifact('meeting-desktop-presentation.png'));
  await s.carol.screenshot(artifact('meeting-phone-presentation.png'));
  await s.bob.page.click('#btn-share');
  for (const u of [s.alice, s.carol]) {
    await until(async () => (await u.tile(BOB, 'screen').count()) === 0, { what: `${u.label}: screen tile removed` });
    await until(async () => (await u.page.getAttribute('#stage', 'data-layout')) === 'grid', { what: `${u.label}: back to grid` });
  }
});

step('host controls: layout for everyone, spotlight, make moderator', async () => {
  await s.alice.page.click('#btn-more');
  await s.alice.page.click('#more-menu [data-layout="speaker"]');
  await until(async () => (await s.bob.page.getAttribute('#stage', 'data-layout')) === 'speaker', { what: 'Bob follows layout:changed' });
  await s.alice.page.click('#btn-more');
  await s.alice.page.click('#more-menu [data-layout="grid"]');
  await until(async () => (await s.carol.page.getAttribute('#stage', 'data-layout')) === 'grid', { what: 'Carol back to grid' });

  await s.alice.openPanel('people');
  await s.alice.person(CAROL).locator('[data-action="spotlight"]').click();
  await until(async () => (await s.bob.tile(CAROL).getAttribute('data-spotlight')) === 'true', { what: 'Carol spotlighted (Bob)' });
  assert.equal(await s.bob.page.locator('#stage-main .tile[data-source="camera"] .tile-name').innerText(), CAROL);
  await s.alice.person(CAROL).locator('[data-action="spotlight"]').click();
  await until(async () => (await s.bob.tile(CAROL).getAttribute('data-spotlight')) === 'false', { what: 'spotlight removed (Bob)' });

  // Pin is personal: only Bob's view changes.
  await s.bob.tile(ALICE).hover();
  await s.bob.tile(ALICE).locator('.tile-pin').click();
  await until(async () => (await s.bob.tile(ALICE).getAttribute('data-pinned')) === 'true', { what: 'Alice pinned on Bob' });
  assert.equal(await s.carol.tile(ALICE).getAttribute('data-pinned'), 'false');
  await s.bob.tile(ALICE).locator('.tile-pin').click();

  await s.alice.person(BOB).locator('[data-action="role"]').click();
  await until(async () => (await s.carol.tile(BOB).locator('.tile-role').textContent()) === 'Moderator', { what: 'Bob shown as moderator' });
  await until(async () => (await s.alice.person(BOB).getAttribute('data-role')) === 'moderator', { what: 'Bob listed as moderator' });
  await until(() => s.bob.page.evaluate(() => window.meetDebug.state().you.role === 'moderator'), { what: 'Bob is a moderator' });
  await s.bob.openPanel('people');
  assert.ok(await s.bob.person(CAROL).locator('[data-action="mute"], [data-action="stop-video"]').count(), 'moderators get mute controls');
  await s.bob.closePanel();
});

step('recording controls where the meeting allows them: the host starts, pauses, resumes and stops; everyone sees the REC indicator; then status and downloads', async () => {
  await s.alice.page.click('#btn-more');
  await s.alice.page.click('#btn-record');
  for (const p of [s.alice, s.bob, s.carol]) {
    await p.page.locator('#rec-indicator').waitFor({ state: 'visible' });
  }
  await s.carol.page.click('#btn-more');
  assert.equal(await s.carol.page.locator('#recording-section').isVisible(), false, 'participants get no recording control');
  await s.carol.page.keyboard.press('Escape');
  const menu = async () => {
    if (!(await s.alice.page.locator('#btn-record').isVisible())) await s.alice.page.click('#btn-more');
  };
  // pause and resume: the indicator stays for everyone
  await menu();
  await s.alice.page.locator('#btn-rec-pause', { hasText: 'Pause recording' }).click();
  await until(() => s.bob.page.evaluate(() => window.meetDebug.state().recording === 'paused'), { what: 'Bob sees the pause' });
  assert.equal(await s.carol.page.locator('#rec-indicator').isVisible(), true);
  await menu();
  await s.alice.page.locator('#btn-rec-pause', { hasText: 'Resume recording' }).click();
  await until(() => s.bob.page.evaluate(() => window.meetDebug.state().recording === 'recording'), { what: 'Bob sees the resume' });
  await menu();
  await s.alice.page.locator('#btn-record', { hasText: 'Stop recording' }).click();
  for (const p of [s.alice, s.bob, s.carol]) {
    await p.page.locator('#rec-indicator').waitFor({ state: 'hidden' });
  }
  // after the stop the host sees the recording's status and its download links
  await menu();
  await s.alice.page.locator('#rec-files .rec-status[data-status="ready"]').waitFor({ timeout: 60_000 });
  await s.alice.page.locator('#rec-files a[data-file="manifest.json"]').waitFor();
  if (await s.alice.page.locator('#btn-record').isVisible()) await s.alice.page.keyboard.press('Escape');
});

step('the connection-quality indicator is fed by stats:report every 5 s', async () => {
  await until(async () => (await s.alice.events('ack:stats:report')).filter((e) => e.data.ok).length >= 2, { timeoutMs: 15_000, what: 'two accepted stats reports' });
  const acks = (await s.alice.events('ack:stats:report')).filter((e) => e.data.ok);
  assert.ok(acks[1].t - acks[0].t >= 5000, `reports 5 s apart: ${acks.map((e) => e.t)}`);
  const quality = await s.alice.page.getAttribute('#quality', 'data-quality');
  assert.ok(['good', 'fair', 'poor'].includes(quality), quality);
  const st = await s.alice.state();
  for (const k of ['rtt', 'packetLoss', 'jitter', 'bitrate']) assert.equal(typeof st.stats[k], 'number', `${k} in ${JSON.stringify(st.stats)}`);
  assert.match(await s.alice.page.getAttribute('#quality', 'aria-label'), /Connection quality: (good|fair|poor) \(round trip/);
});

step('screenshots of the meeting view (desktop 1280x800, phone 390x844)', async () => {
  await s.alice.page.mouse.move(0, 0);
  await s.alice.screenshot(artifact('meeting-desktop-grid.png'));
  await s.alice.openPanel('chat');
  await s.alice.screenshot(artifact('meeting-desktop-chat.png'));
  await s.carol.closePanel();
  await s.carol.screenshot(artifact('meeting-phone-grid.png'));
  await s.carol.openPanel('chat');
  await s.carol.screenshot(artifact('meeting-phone-chat.png'));
  await s.carol.closePanel();
});

step('a participant leaves: their tile disappears for the others', async () => {
  await s.bob.page.click('#btn-leave');
  await s.bob.page.locator('#ended').waitFor();
  assert.equal(await s.bob.page.locator('#ended-title').innerText(), 'You left the meeting');
  for (const u of [s.alice, s.carol]) {
    await until(async () => (await u.tile(BOB).count()) === 0, { what: `${u.label}: Bob's tile removed` });
    assert.equal(await cameraTiles(u), 2);
  }
  assert.equal(await s.alice.page.getAttribute('#participant-count', 'aria-label'), '2 participants');
});

step('the host ends the meeting for everyone; the ended meeting cannot be joined again', async () => {
  await s.alice.page.click('#btn-leave');
  await s.alice.page.click('#btn-end-all');
  await s.alice.page.click('#confirm-ok');
  for (const u of [s.alice, s.carol]) {
    await u.page.locator('#ended').waitFor();
    assert.equal(await u.page.locator('#ended-title').innerText(), 'The meeting has ended');
  }
  assert.match(await s.carol.page.locator('#ended-text').innerText(), new RegExp(`${ALICE} ended the meeting`));
  // Bob tries to rejoin from his "you left" screen.
  await s.bob.page.click('#rejoin-btn');
  await s.bob.page.locator('#lobby').waitFor();
  await s.bob.page.click('#join-btn');
  await s.bob.page.locator('#lobby-error', { hasText: 'This meeting has ended.' }).waitFor();
});
