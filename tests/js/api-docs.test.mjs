// The published documents (issue 12): GET /api/openapi.json (OpenAPI 3.1, REST) and GET /api/asyncapi.json
// (AsyncAPI 3.0, Socket.IO) from the running server validate with the npm validators (@readme/openapi-parser,
// @asyncapi/parser); every documented REST operation is served and answers with a status the document lists; what
// the server really sends (REST bodies, socket events and acks) matches the documents' schemas (ajv); the viewer page
// at /api/docs names no external URL. (Its rendering in Chromium: tests/browser/api-docs.test.mjs.)
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { validate, compileErrors } from '@readme/openapi-parser';
import { Parser } from '@asyncapi/parser';
import Ajv2020 from 'ajv/dist/2020.js';
import { useServer } from './lib/harness.mjs';
import { emitAck, ok } from './lib/client.mjs';

/**
 * A validator for the schemas of one document: `check(value, '#/components/…')` asserts that `value` matches the
 * schema at that pointer (OpenAPI 3.1 schemas are JSON Schema 2020-12; AsyncAPI's default schemas are a subset).
 */
function schemaChecker(doc, id) {
  const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
  ajv.addSchema({ ...doc, $id: id });
  return (value, pointer, label) => {
    const validate = ajv.compile({ $ref: `${id}${pointer}` });
    assert.ok(validate(value), `${label} does not match ${pointer}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value).slice(0, 400)}`);
  };
}

describe('published API documents', () => {
  // Development mode and the debug hooks on, so the development-only routes answer too.
  const ctx = useServer({ devMode: true, env: { MEET_MEDIA__DEBUG_HOOKS: 'true' } });

  const getJson = async (path) => {
    const res = await fetch(`${ctx.url}${path}`);
    assert.equal(res.status, 200, path);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/, path);
    return res.json();
  };

  ctx.test('GET /api/openapi.json is a valid OpenAPI 3.1 document', async (t) => {
    const doc = await getJson('/api/openapi.json');
    assert.equal(doc.openapi, '3.1.0');
    const result = await validate(structuredClone(doc));
    assert.ok(result.valid, compileErrors(result));
    for (const w of result.warnings ?? []) t.diagnostic(`warning: ${w.message}`);
    assert.ok(doc.paths['/api/meetings'].post, 'POST /api/meetings documented');
    assert.deepEqual(doc.paths['/dev/token'].post['x-dev-only'], true);
    assert.equal(doc.components.securitySchemes.bearer.scheme, 'bearer');
  });

  ctx.test('GET /api/asyncapi.json is a valid AsyncAPI 3.0 document', async (t) => {
    const raw = await getJson('/api/asyncapi.json');
    assert.equal(raw.asyncapi, '3.0.0');
    const { document, diagnostics } = await new Parser().parse(raw);
    const errors = diagnostics.filter((d) => d.severity === 0);
    for (const d of diagnostics.filter((d) => d.severity !== 0)) t.diagnostic(`${d.code}: ${d.message} at ${d.path.join('.')}`);
    assert.deepEqual(errors.map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`), []);
    assert.ok(document, 'the parser returns a document');
    // The parsed model: requests are received with an ack reply, events are sent.
    const join = document.operations().all().find((op) => op.messages().all().some((m) => m.name() === 'join-meeting'));
    assert.ok(join?.action() === 'receive', 'join-meeting is a receive operation');
    assert.ok(join.reply()?.messages().all().length === 1, 'join-meeting has an ack reply');
    const state = document.operations().all().find((op) => op.messages().all().some((m) => m.name() === 'meeting-state'));
    assert.ok(state?.action() === 'send', 'meeting-state is a send operation');
    assert.ok(document.components().securitySchemes().all().length >= 1, 'the handshake token is a security scheme');
  });

  ctx.test('every documented REST operation is served and answers with a documented status', async () => {
    const doc = await getJson('/api/openapi.json');
    const ops = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) ops.push({ path, method, op });
    }
    assert.ok(ops.length >= 15, `${ops.length} operations`);
    for (const { path, method, op } of ops) {
      const url = path.replace('{id}', 'meeting_docs').replace('{userId}', 'user_docs');
      // No token and an empty body: a route that exists answers from its own handler (200, 400, 401, …); an
      // undocumented status, a 405 or the `/api` catch-all's 404 means the document and the router disagree.
      const res = await fetch(`${ctx.url}${url}`, {
        method: method.toUpperCase(),
        headers: method === 'get' ? {} : { 'content-type': 'application/json' },
        body: method === 'get' ? undefined : '{}',
      });
      const text = await res.text();
      assert.ok(String(res.status) in op.responses,
        `${method.toUpperCase()} ${path} answered ${res.status} (documented: ${Object.keys(op.responses)}): ${text.slice(0, 200)}`);
    }
  });

  ctx.test('what the server sends matches the documents (REST bodies, socket events and acks)', async () => {
    const rest = schemaChecker(await getJson('/api/openapi.json'), 'openapi');
    const rio = schemaChecker(await getJson('/api/asyncapi.json'), 'asyncapi');
    const body = (path, method, status) =>
      `#/paths/${path.replaceAll('~', '~0').replaceAll('/', '~1')}/${method}/responses/${status}/content/application~1json/schema`;

    const { meetingId, host, members: [, guest] } = await ctx.meeting({ participants: 1 });
    const created = await ctx.api('POST', '/api/meetings', { user: host.user, body: { title: 'docs' } });
    rest(created.body, body('/api/meetings', 'post', 201), 'POST /api/meetings');
    const got = await ctx.api('GET', `/api/meetings/${meetingId}`, { user: host.user });
    rest(got.body, body('/api/meetings/{id}', 'get', 200), 'GET /api/meetings/{id}');
    const people = await ctx.api('GET', `/api/meetings/${meetingId}/participants`, { user: host.user });
    rest(people.body, body('/api/meetings/{id}/participants', 'get', 200), 'participants');
    const unauthorized = await ctx.api('GET', `/api/meetings/${meetingId}`);
    rest(unauthorized.body, body('/api/meetings/{id}', 'get', 401), '401');
    const config = await ctx.api('GET', `/meeting/${meetingId}/webrtc-config`);
    rest(config.body, body('/meeting/{id}/webrtc-config', 'get', 200), 'webrtc-config');
    const dev = await ctx.api('POST', '/dev/token', { body: { userName: 'Docs' } });
    rest(dev.body, body('/dev/token', 'post', 200), 'dev token');

    // Socket.IO: a joiner's meeting-state and ack, a chat message, a failed request's ack and error event.
    const newcomer = await ctx.connect(ctx.user({ name: 'newcomer', campusId: 'campus_a' }));
    const joinAck = await emitAck(newcomer, 'join-meeting', { meetingId });
    rio(joinAck, '#/components/messages/ack.join-meeting/payload', 'join-meeting ack');
    rio(await newcomer.rec.waitFor('meeting-state'), '#/components/messages/emit.meeting-state/payload', 'meeting-state');
    rio(await guest.socket.rec.waitFor('participant-joined'), '#/components/messages/emit.participant-joined/payload', 'participant-joined');
    const sent = await ok(guest.socket, 'send-message', { meetingId, message: 'hello docs' });
    rio(sent, '#/components/messages/ack.send-message/payload', 'send-message ack');
    rio(await host.socket.rec.waitFor('new-message'), '#/components/messages/emit.new-message/payload', 'new-message');
    const transport = await ok(guest.socket, 'create-transport', { meetingId, direction: 'recv' });
    rio(transport, '#/components/messages/ack.create-transport/payload', 'create-transport ack');
    const failed = await emitAck(guest.socket, 'participant:mute', { meetingId, targetUserId: host.user.userId, muteType: 'audio' });
    assert.equal(failed.ok, false, 'a participant may not mute');
    rio(failed, '#/components/messages/ack.participant_mute/payload', 'failed ack');
    rio(await guest.socket.rec.waitFor('error'), '#/components/messages/emit.error/payload', 'error event');
  });

  ctx.test('GET /api/docs is an HTML page with no external URL', async () => {
    const res = await fetch(`${ctx.url}/api/docs`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const html = await res.text();
    assert.match(html, /\/api\/openapi\.json/);
    assert.match(html, /\/api\/asyncapi\.json/);
    assert.doesNotMatch(html, /https?:\/\//i, 'no absolute URL');
    assert.doesNotMatch(html, /(src|href)\s*=\s*["']?\/\//i, 'no protocol-relative URL');
    assert.doesNotMatch(html, /@import|url\(/i, 'no stylesheet import or url() in CSS');
  });
});
