// HS256 JWTs with the claims the server reads: user_id, campus_id, userName, email, exp.
import jwt from 'jsonwebtoken';
import { randomBytes } from 'node:crypto';

export const CAMPUS = 'campus_browser';
let counter = 0;

/** A fresh user (unique id per run) on the shared test campus. */
export function makeUser(name) {
  counter += 1;
  const tag = `${process.pid}_${counter}_${randomBytes(3).toString('hex')}`;
  return {
    userId: `u_${name}_${tag}`,
    userName: `${name[0].toUpperCase()}${name.slice(1)} Browser`,
    email: `${name}.${tag}@example.com`,
    campusId: CAMPUS,
  };
}

export function mintToken(secret, user, ttlSeconds = 3600) {
  return jwt.sign(
    {
      user_id: user.userId,
      campus_id: user.campusId,
      userName: user.userName,
      email: user.email,
      exp: Math.floor(Date.now() / 1000) + ttlSeconds,
    },
    secret,
    { algorithm: 'HS256', noTimestamp: true },
  );
}

export function meetingId(label) {
  return `meeting_browser_${label}_${randomBytes(4).toString('hex')}`;
}
