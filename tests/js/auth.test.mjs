// Authentication: every token failure from protocol.md's table (HS256 server), and REST bearer checks.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { connectError, assertConnected, sleep } from './lib/client.mjs';
import {
  makeUser, claimsFor, signHS256, signWith, algNoneToken, rawHS256, b64url,
  expiredToken, notYetValidToken, rsaKeyPair,
} from './lib/tokens.mjs';

function assertPrefix(err, prefix) {
  assert.ok(err instanceof Error, `expected a connect_error, got ${err}`);
  assert.ok(
    typeof err.message === 'string' && err.message.startsWith(prefix),
    `connect_error message must start with ${JSON.stringify(prefix)}, got ${JSON.stringify(err.message)}`,
  );
}

describe('auth (HS256)', () => {
  const ctx = useServer();

  ctx.test('a valid HS256 token connects and the socket stays connected', async () => {
    const socket = await ctx.connect(ctx.user());
    await sleep(200);
    assertConnected(socket);
  });

  ctx.test('no auth at all → authentication required', async () => {
    const err = await connectError(ctx.url, undefined);
    assertPrefix(err, 'authentication required: ');
  });

  ctx.test('auth object without token → authentication required', async () => {
    const err = await connectError(ctx.url, undefined, { auth: {} });
    assertPrefix(err, 'authentication required: ');
    const err2 = await connectError(ctx.url, undefined, { auth: { jwt: 'x' } });
    assertPrefix(err2, 'authentication required: ');
  });

  ctx.test('not a JWT → invalid token', async () => {
    for (const token of ['not-a-jwt', 'a.b', '....', 'x.y.z']) {
      const err = await connectError(ctx.url, token);
      assertPrefix(err, 'invalid token: ');
    }
  });

  ctx.test('bad base64 / bad JSON → invalid token', async () => {
    const secret = ctx.server.secret;
    const payload = JSON.stringify(claimsFor(makeUser()));
    const badB64 = `%%%.${b64url(payload)}.sig`;
    assertPrefix(await connectError(ctx.url, badB64), 'invalid token: ');
    const badHeaderJson = rawHS256('{"alg":"HS256",', payload, secret);
    assertPrefix(await connectError(ctx.url, badHeaderJson), 'invalid token: ');
    const badPayloadJson = rawHS256('{"alg":"HS256","typ":"JWT"}', '{"user_id": ', secret);
    assertPrefix(await connectError(ctx.url, badPayloadJson), 'invalid token: ');
  });

  ctx.test('alg none → invalid token', async () => {
    const err = await connectError(ctx.url, algNoneToken(claimsFor(makeUser())));
    assertPrefix(err, 'invalid token: ');
  });

  ctx.test('wrong secret → invalid token: signature', async () => {
    const token = signHS256(claimsFor(makeUser()), 'another-secret-that-is-long-enough-1234567890');
    assertPrefix(await connectError(ctx.url, token), 'invalid token: signature');
  });

  ctx.test('tampered payload with the original signature → invalid token: signature', async () => {
    const good = signHS256(claimsFor(makeUser()), ctx.server.secret);
    const [h, , s] = good.split('.');
    const forged = `${h}.${b64url(claimsFor(makeUser({ name: 'mallory' })))}.${s}`;
    assertPrefix(await connectError(ctx.url, forged), 'invalid token: signature');
  });

  ctx.test('another algorithm (HS384, HS512, RS256) → invalid token: algorithm', async () => {
    const claims = claimsFor(makeUser());
    assertPrefix(await connectError(ctx.url, signWith(claims, ctx.server.secret, 'HS384')), 'invalid token: algorithm');
    assertPrefix(await connectError(ctx.url, signWith(claims, ctx.server.secret, 'HS512')), 'invalid token: algorithm');
    const { privateKey } = rsaKeyPair();
    assertPrefix(await connectError(ctx.url, signWith(claims, privateKey, 'RS256')), 'invalid token: algorithm');
  });

  ctx.test('expired → token expired', async () => {
    const err = await connectError(ctx.url, expiredToken(makeUser(), ctx.server.secret));
    assertPrefix(err, 'token expired');
  });

  ctx.test('nbf in the future → token not yet valid', async () => {
    const err = await connectError(ctx.url, notYetValidToken(makeUser(), ctx.server.secret));
    assertPrefix(err, 'token not yet valid');
  });

  ctx.test('nbf in the past is accepted', async () => {
    const token = signHS256(claimsFor(makeUser(), { nbf: Math.floor(Date.now() / 1000) - 60 }), ctx.server.secret);
    const socket = await ctx.connect(token);
    assertConnected(socket);
  });

  ctx.test('claims missing or of the wrong type → invalid token: claims', async () => {
    const base = claimsFor(makeUser());
    const variants = {
      'no user_id': (({ user_id, ...c }) => c)(base),
      'no campus_id': (({ campus_id, ...c }) => c)(base),
      'no userName': (({ userName, ...c }) => c)(base),
      'numeric user_id': { ...base, user_id: 12345 },
      'object campus_id': { ...base, campus_id: { id: 'c' } },
      'array userName': { ...base, userName: ['a'] },
    };
    for (const [what, claims] of Object.entries(variants)) {
      const err = await connectError(ctx.url, signHS256(claims, ctx.server.secret));
      assert.ok(err.message.startsWith('invalid token: claims'),
        `${what}: message must start with "invalid token: claims", got ${JSON.stringify(err.message)}`);
    }
  });

  ctx.test('a payload that is not a JSON object → invalid token', async () => {
    const token = rawHS256('{"alg":"HS256","typ":"JWT"}', '"just a string"', ctx.server.secret);
    assertPrefix(await connectError(ctx.url, token), 'invalid token: ');
  });

  ctx.test('connect_error also arrives over the polling transport', async () => {
    const err = await connectError(ctx.url, 'garbage', { transports: ['polling'] });
    assertPrefix(err, 'invalid token: ');
    const err2 = await connectError(ctx.url, undefined, { transports: ['polling'] });
    assertPrefix(err2, 'authentication required: ');
  });

  ctx.test('REST: missing or bad bearer → 401 UNAUTHORIZED', async () => {
    const good = ctx.user();
    const meeting = await ctx.createMeeting(good, { title: 'auth' });
    const id = meeting.meetingId;
    const wrongSecret = signHS256(claimsFor(makeUser()), 'another-secret-that-is-long-enough-1234567890');
    const cases = [
      ['no header', {}, 'authentication required: '],
      ['garbage bearer', { token: 'garbage' }, 'invalid token: '],
      ['alg none', { token: algNoneToken(claimsFor(makeUser())) }, 'invalid token: '],
      ['wrong secret', { token: wrongSecret }, 'invalid token: signature'],
      ['expired', { token: expiredToken(makeUser(), ctx.server.secret) }, 'token expired'],
      ['basic scheme', { headers: { authorization: 'Basic dXNlcjpwYXNz' } }, null],
    ];
    const routes = [
      ['POST', '/api/meetings', { title: 'x' }],
      ['GET', `/api/meetings/${id}`],
      ['POST', `/api/meetings/${id}/end`],
      ['GET', `/api/meetings/${id}/participants`],
      ['GET', `/api/meetings/${id}/messages`],
      ['PUT', `/api/meetings/${id}/roles/${good.userId}`, { role: 'moderator' }],
    ];
    for (const [method, path, body] of routes) {
      for (const [what, opts, prefix] of cases) {
        const res = await ctx.api(method, path, { ...opts, body });
        assert.equal(res.status, 401, `${method} ${path} with ${what}: expected 401, got ${res.status} ${res.text}`);
        assert.equal(res.body?.error?.code, 'UNAUTHORIZED', `${method} ${path} with ${what}: ${res.text}`);
        assert.equal(typeof res.body.error.message, 'string');
        if (prefix) {
          assert.ok(res.body.error.message.startsWith(prefix),
            `${method} ${path} with ${what}: message should start with ${prefix}: ${res.text}`);
        }
      }
    }
    // nothing was changed by the refused requests
    const after = await ctx.api('GET', `/api/meetings/${id}`, { user: good });
    assert.equal(after.status, 200);
    assert.equal(after.body.status, 'active');
  });
});
