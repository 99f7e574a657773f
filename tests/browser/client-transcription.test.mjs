// page/client.js must carry the integration guide's "Complete Integration Example" MeetingClient class unchanged
// (only the server URL becomes the page's origin), so the browser tests prove the guide's own code works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { BROWSER_DIR, PAGE_DIR } from './build.mjs';

const REPO_ROOT = path.resolve(BROWSER_DIR, '..', '..');
const GUIDE = [
  process.env.MEET_API_GUIDE,
  path.join(REPO_ROOT, '..', 'shared', 'spec', 'api-guide.md'),
  '/work/shared/spec/api-guide.md',
].filter(Boolean).find((p) => existsSync(p));

function guideClass(text) {
  const start = text.indexOf('## Complete Integration Example');
  const code = text.slice(text.indexOf('```javascript', start) + '```javascript\n'.length);
  const body = code.slice(0, code.indexOf('\n```'));
  return body.slice(0, body.indexOf('\n// Usage')).trimEnd();
}

test('page/client.js contains the guide\'s MeetingClient verbatim (URL = location.origin)', { skip: !GUIDE && 'api-guide.md not found' }, () => {
  const expected = guideClass(readFileSync(GUIDE, 'utf8'))
    .replace("io('https://your-domain.com', {", 'io(location.origin, {');
  const page = readFileSync(path.join(PAGE_DIR, 'client.js'), 'utf8');
  assert.ok(page.includes(expected), 'the guide\'s imports + MeetingClient class must appear unchanged in page/client.js');
});
