// The published documents (issue 12): GET /api/openapi.json (OpenAPI 3.1, REST) and GET /api/asyncapi.json
// (AsyncAPI 3.0, Socket.IO) from the running server validate with the npm validators (@readme/openapi-parser,
// @asyncapi/parser); every documented REST operation is served and answers with a status the document lists; the
// viewer page at /api/docs names no external URL. (Its rendering in Chromium: tests/browser/api-docs.test.mjs.)
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { validate, compileErrors } from '@readme/openapi-parser';
import { Parser } from '@asyncapi/parser';
import { useServer } from './lib/harness.mjs';

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
