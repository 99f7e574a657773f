// page/client.js must carry the integration guide's "Complete Integration Example" MeetingClient class unchanged
// (only the server URL becomes the page's origin), so the browser tests prove the guide's own code works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// Paths computed here (not imported from build.mjs) so this check runs without the bundler installed.
const BROWSER_DIR = path.dirname(fileURLToPath(import.meta.url));
const PAGE_DIR = path.join(BROWSER_DIR, 'page');

// The guide lives beside the repository (CI clones main into a folder with shared/ next to it): found relative to
// the repository root only, never by an absolute path. A missing guide fails this test: without it nothing proves
// the page still carries the guide's code.
const REPO_ROOT = path.resolve(BROWSER_DIR, '..', '..');
const GUIDE = path.join(REPO_ROOT, '..', 'shared', 'spec', 'api-guide.md');

function guideClass(text) {
  const start = text.indexOf('## Complete Integration Example');
  const code = text.slice(text.indexOf('```javascript', start) + '```javascript\n'.length);
  const body = code.slice(0, code.indexOf('\n```'));
  return body.slice(0, body.indexOf('\n// Usage')).trimEnd();
}

test('page/client.js contains the guide\'s MeetingClient verbatim (URL = location.origin)', () => {
  assert.ok(existsSync(GUIDE),
    `the integration guide must be at ${GUIDE} (../shared/spec/api-guide.md beside the repository); it is missing`);
  const expected = guideClass(readFileSync(GUIDE, 'utf8'))
    .replace("io('https://your-domain.com', {", 'io(location.origin, {');
  const page = readFileSync(path.join(PAGE_DIR, 'client.js'), 'utf8');
  assert.ok(page.includes(expected), 'the guide\'s imports + MeetingClient class must appear unchanged in page/client.js');
});
