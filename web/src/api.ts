// REST calls and tokens. Same origin: the server serves this client.
import { RequestError } from './errors';
import type { ChatMessage, Meeting } from './types';
import type { ErrorCode } from '../../clients/ts/src/index';

async function call<T>(method: string, path: string, token: string | null, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new RequestError({ code: 'NETWORK', message: 'Cannot reach the meeting server. Check your connection.' });
  }
  const text = await res.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = (data as { error?: { code?: ErrorCode; message?: string } } | null)?.error;
    throw new RequestError({ code: err?.code ?? `HTTP_${res.status}`, message: err?.message ?? `${res.status} ${res.statusText}` });
  }
  return data as T;
}

/** Development mode only: a token for `userName` from POST /dev/token (404 when the server does not offer it). */
export async function devToken(userName: string, userId?: string): Promise<{ token: string; userId: string }> {
  try {
    return await call('POST', '/dev/token', null, userId ? { userName, userId } : { userName });
  } catch (e) {
    if (e instanceof RequestError && (e.code === 'NOT_FOUND' || e.code === 'HTTP_404')) {
      throw new RequestError({
        code: 'NO_DEV_TOKENS',
        message: 'This server does not hand out development tokens. Paste a token (JWT) from your organisation instead.',
      });
    }
    throw e;
  }
}

export interface NewMeeting {
  title?: string;
  recordingEnabled?: boolean;
  allowSelfUnmute?: boolean;
}

export function createMeeting(token: string, body: NewMeeting): Promise<Meeting> {
  return call('POST', '/api/meetings', token, body);
}

export function getMeeting(token: string, meetingId: string): Promise<Meeting> {
  return call('GET', `/api/meetings/${encodeURIComponent(meetingId)}`, token);
}

export function getMessages(
  token: string,
  meetingId: string,
  before?: string,
  limit = 50,
): Promise<{ messages: ChatMessage[]; nextBefore: string | null }> {
  const q = new URLSearchParams({ limit: String(limit) });
  if (before) q.set('before', before);
  return call('GET', `/api/meetings/${encodeURIComponent(meetingId)}/messages?${q}`, token);
}

export function getWebrtcConfig(meetingId: string): Promise<{ rtpCapabilities: unknown }> {
  return call('GET', `/meeting/${encodeURIComponent(meetingId)}/webrtc-config`, null);
}

export interface TokenClaims {
  user_id?: string;
  campus_id?: string;
  userName?: string;
  email?: string;
  exp?: number;
}

/** The claims of a JWT, unverified (only to show who the pasted token is for). Null when it is not a JWT. */
export function readClaims(token: string): TokenClaims | null {
  const parts = token.trim().split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(
      Array.from(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, '=')))
        .map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
        .join(''),
    );
    const claims = JSON.parse(json) as TokenClaims;
    return typeof claims === 'object' && claims ? claims : null;
  } catch {
    return null;
  }
}

const MEETING_ID_RE = /^[A-Za-z0-9_-]{1,128}$/;

/** A meeting id from what the user typed: a bare id, or a link carrying `?m=<id>`. Null when neither. */
export function parseMeetingInput(input: string): string | null {
  const s = input.trim();
  if (!s) return null;
  if (MEETING_ID_RE.test(s)) return s;
  try {
    const url = new URL(s, location.origin);
    const m = url.searchParams.get('m');
    if (m && MEETING_ID_RE.test(m)) return m;
  } catch {
    /* not a URL */
  }
  return null;
}

export function meetingLink(meetingId: string): string {
  return `${location.origin}/?m=${encodeURIComponent(meetingId)}`;
}

/** A recording as `GET /api/meetings/{id}/recordings/{recordingId}` returns it. */
export interface RecordingView {
  recordingId: string;
  status: 'recording' | 'processing' | 'ready' | 'failed';
  durationMs: number | null;
  failureReason: string | null;
  files?: Array<{ name: string; size: number; url: string }>;
}

export function getRecording(token: string, meetingId: string, recordingId: string): Promise<RecordingView> {
  return call('GET', `/api/meetings/${encodeURIComponent(meetingId)}/recordings/${encodeURIComponent(recordingId)}`, token);
}

/** Downloads a recording's file with the bearer token (a plain link cannot send it) and saves it. */
export async function downloadFile(token: string, url: string, name: string): Promise<void> {
  const res = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw new RequestError({ code: `HTTP_${res.status}`, message: `download failed (${res.status})` });
  const blob = await res.blob();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
