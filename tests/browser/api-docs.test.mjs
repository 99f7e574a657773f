// The API viewer (GET /api/docs) renders in Debian's Chromium from the server alone: every request the page makes
// goes to the server itself (no CDN, font or script from elsewhere), and it shows the REST routes, the Socket.IO
// events with their acks, and the schemas of both documents.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './lib/browser.mjs';
import { Server } from './lib/server.mjs';

let browser;
let server;
before(async () => {
  server = new Server();
  await server.start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the API viewer renders offline in Chromium', { timeout: 60_000 }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const requested = [];
  page.on('request', (r) => requested.push(r.url()));
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  try {
    await page.goto(`${server.url}/api/docs`);
    await page.waitForSelector('body[data-rendered="true"]', { timeout: 20_000 });
    const origin = new URL(server.url).origin;
    const foreign = requested.filter((u) => new URL(u).origin !== origin);
    assert.deepEqual(foreign, [], 'every request goes to the server itself');
    assert.ok(requested.some((u) => u.endsWith('/api/openapi.json')), 'fetched openapi.json');
    assert.ok(requested.some((u) => u.endsWith('/api/asyncapi.json')), 'fetched asyncapi.json');
    assert.deepEqual(pageErrors, []);
    const seen = await page.evaluate(() => ({
      error: document.getElementById('error').textContent,
      restOps: document.querySelectorAll('#rest .op').length,
      createMeeting: [...document.querySelectorAll('#rest .op')].some((o) => o.textContent.includes('POST /api/meetings')),
      joinAck: document.querySelector('[id="event-join-meeting"]')?.textContent ?? '',
      meetingState: !!document.querySelector('[id="event-meeting-state"]'),
      schema: document.getElementById('schema-MeetingView')?.textContent ?? '',
      joinLinks: [...document.querySelectorAll('[id="event-join-meeting"] a')].map((a) => a.getAttribute('href')),
    }));
    assert.equal(seen.error, '');
    assert.ok(seen.restOps >= 15, `${seen.restOps} REST operations shown`);
    assert.ok(seen.createMeeting, 'POST /api/meetings is shown');
    assert.match(seen.joinAck, /JoinMeeting/);
    assert.match(seen.joinAck, /JoinAck/);
    assert.ok(seen.meetingState, 'meeting-state is shown');
    assert.match(seen.schema, /participantCount/);
    assert.ok(seen.joinLinks.includes('#schema-JoinMeeting'), `links: ${seen.joinLinks}`);
    // The links lead somewhere: every schema link has its section.
    const dangling = await page.evaluate(() => [...document.querySelectorAll('a[href^="#schema-"]')]
      .map((a) => a.getAttribute('href').slice(1)).filter((id) => !document.getElementById(id)));
    assert.deepEqual([...new Set(dangling)], [], 'schema links resolve');
  } finally {
    await context.close();
  }
});
