// JWT helpers: good tokens via the npm `jsonwebtoken` package, bad ones by hand where the library refuses.
import jwt from 'jsonwebtoken';
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';

const nowSec = () => Math.floor(Date.now() / 1000);

export function b64url(input) {
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(typeof input === 'string' ? input : JSON.stringify(input));
  return buf.toString('base64url');
}

let counter = 0;
/** A fresh identity. Every test uses its own users so per-user rate limits never leak between tests. */
export function makeUser({ name, campusId = 'campus_a', userId } = {}) {
  counter += 1;
  const tag = `${process.pid}_${counter}_${randomBytes(3).toString('hex')}`;
  const base = name ?? `user${counter}`;
  return {
    userId: userId ?? `u_${base}_${tag}`,
    userName: `${base[0].toUpperCase()}${base.slice(1)} Test`,
    email: `${base}.${tag}@example.com`,
    campusId,
  };
}

/** JWT claims of a user (the server reads user_id, campus_id, userName, email; exp is one hour ahead). */
export function claimsFor(user, extra = {}) {
  return {
    user_id: user.userId,
    campus_id: user.campusId,
    userName: user.userName,
    email: user.email,
    exp: nowSec() + 3600,
    ...extra,
  };
}

export function signHS256(claims, secret, options = {}) {
  return jwt.sign(claims, secret, { algorithm: 'HS256', noTimestamp: false, ...options });
}

export function signWith(claims, key, algorithm, options = {}) {
  return jwt.sign(claims, key, { algorithm, ...options });
}

/** `alg: none`: header + payload + empty signature. */
export function algNoneToken(claims) {
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`;
}

/** An HS256-signed token built by hand from raw header/payload strings (for bad JSON, odd headers). */
export function rawHS256(headerText, payloadText, secret) {
  const signingInput = `${b64url(headerText)}.${b64url(payloadText)}`;
  const sig = createHmac('sha256', secret).update(signingInput).digest('base64url');
  return `${signingInput}.${sig}`;
}

/** Token with exp one hour in the past (well beyond any default leeway). */
export function expiredToken(user, secret) {
  const iat = nowSec() - 7200;
  return signHS256(claimsFor(user, { iat, exp: nowSec() - 3600 }), secret);
}

/** Token whose nbf is one hour in the future. */
export function notYetValidToken(user, secret) {
  return signHS256(claimsFor(user, { nbf: nowSec() + 3600 }), secret);
}

export function rsaKeyPair() {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

export function ecKeyPair() {
  return generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

/** Decode a JWT payload without verifying it. */
export function decodePayload(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}
