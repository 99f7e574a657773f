// Minimal REST client on Node's fetch.

/**
 * request(baseUrl, method, path, {token, body, rawBody, headers}) → {status, body, text, headers}
 * `body` is JSON-encoded; `rawBody` is sent as is (with content-type application/json unless given).
 */
export async function request(baseUrl, method, path, { token, body, rawBody, headers = {} } = {}) {
  const h = { ...headers };
  if (token !== undefined && token !== null) h.authorization = `Bearer ${token}`;
  let payload;
  if (rawBody !== undefined) {
    payload = rawBody;
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  const res = await fetch(baseUrl + path, { method, headers: h, body: payload });
  const text = await res.text();
  let parsed = null;
  try { parsed = text.length ? JSON.parse(text) : null; } catch { parsed = null; }
  return { status: res.status, body: parsed, text, headers: res.headers };
}

export const describeRes = (res) => `HTTP ${res.status} ${res.text.slice(0, 300)}`;
