// Asymmetric algorithms (RS256, ES256) and configured issuer / audience.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { connectError, assertConnected } from './lib/client.mjs';
import { makeUser, claimsFor, signHS256, signWith, rsaKeyPair, ecKeyPair } from './lib/tokens.mjs';

function assertPrefix(err, prefix) {
  assert.ok(err.message.startsWith(prefix),
    `connect_error message must start with ${JSON.stringify(prefix)}, got ${JSON.stringify(err.message)}`);
}

describe('auth (RS256 server)', () => {
  const keys = rsaKeyPair();
  const ctx = useServer({
    algorithm: 'RS256',
    publicKeyPem: keys.publicKey,
    sign: (claims) => signWith(claims, keys.privateKey, 'RS256'),
  });

  ctx.test('a valid RS256 token connects, creates a meeting over REST and joins it', async () => {
    const user = ctx.user();
    const socket = await ctx.connect(user);
    assertConnected(socket);
    const meeting = await ctx.createMeeting(user, { title: 'rs256' });
    const state = await ctx.join(socket, meeting.meetingId);
    assert.equal(state.you.userId, user.userId);
    assert.equal(state.you.role, 'host');
  });

  ctx.test('an HS256 token is refused with invalid token: algorithm', async () => {
    const claims = claimsFor(makeUser());
    assertPrefix(await connectError(ctx.url, signHS256(claims, 'some-secret-that-is-long-enough-0123456789')),
      'invalid token: algorithm');
    // the classic confusion attack: HS256 keyed with the server's public key PEM
    assertPrefix(await connectError(ctx.url, signHS256(claims, keys.publicKey)), 'invalid token: algorithm');
  });

  ctx.test('an ES256 token is refused with invalid token: algorithm', async () => {
    const ec = ecKeyPair();
    assertPrefix(await connectError(ctx.url, signWith(claimsFor(makeUser()), ec.privateKey, 'ES256')),
      'invalid token: algorithm');
  });

  ctx.test('RS256 signed with another key → invalid token: signature', async () => {
    const other = rsaKeyPair();
    assertPrefix(await connectError(ctx.url, signWith(claimsFor(makeUser()), other.privateKey, 'RS256')),
      'invalid token: signature');
  });

  ctx.test('REST with an HS256 bearer → 401', async () => {
    const res = await ctx.api('POST', '/api/meetings', {
      token: signHS256(claimsFor(makeUser()), 'some-secret-that-is-long-enough-0123456789'),
      body: { title: 'x' },
    });
    assert.equal(res.status, 401, res.text);
    assert.equal(res.body?.error?.code, 'UNAUTHORIZED');
  });
});

describe('auth (ES256 server)', () => {
  const keys = ecKeyPair();
  const ctx = useServer({
    algorithm: 'ES256',
    publicKeyPem: keys.publicKey,
    sign: (claims) => signWith(claims, keys.privateKey, 'ES256'),
  });

  ctx.test('a valid ES256 token connects and can join a meeting it created', async () => {
    const user = ctx.user();
    const socket = await ctx.connect(user);
    const meeting = await ctx.createMeeting(user, {});
    const state = await ctx.join(socket, meeting.meetingId);
    assert.equal(state.you.role, 'host');
    assertConnected(socket);
  });

  ctx.test('RS256 token → invalid token: algorithm; ES256 with another key → signature', async () => {
    const rsa = rsaKeyPair();
    assertPrefix(await connectError(ctx.url, signWith(claimsFor(makeUser()), rsa.privateKey, 'RS256')),
      'invalid token: algorithm');
    const other = ecKeyPair();
    assertPrefix(await connectError(ctx.url, signWith(claimsFor(makeUser()), other.privateKey, 'ES256')),
      'invalid token: signature');
  });
});

describe('auth (issuer and audience configured)', () => {
  const ctx = useServer({ issuer: 'https://idp.example.test', audience: 'meet-tests' });

  ctx.test('matching iss/aud connects; wrong or missing iss/aud is refused', async () => {
    const user = makeUser();
    const good = signHS256(claimsFor(user, { iss: 'https://idp.example.test', aud: 'meet-tests' }), ctx.server.secret);
    const socket = await ctx.connect(good);
    assertConnected(socket);

    const bad = {
      'wrong iss': { iss: 'https://evil.example.test', aud: 'meet-tests' },
      'wrong aud': { iss: 'https://idp.example.test', aud: 'someone-else' },
      'no iss': { aud: 'meet-tests' },
      'no aud': { iss: 'https://idp.example.test' },
    };
    for (const [what, extra] of Object.entries(bad)) {
      const err = await connectError(ctx.url, signHS256(claimsFor(user, extra), ctx.server.secret));
      assert.ok(err.message.startsWith('invalid token'), `${what}: got ${JSON.stringify(err.message)}`);
    }
  });
});
