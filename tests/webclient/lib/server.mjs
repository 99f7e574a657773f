// The real meet-server for the web client tests: tests/lib/meet-server.mjs serving the real built client
// (<repo>/web/dist) at `/`.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MeetServer, REPO_ROOT, SERVER_BIN } from '../../lib/meet-server.mjs';

export const TESTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const WEB_DIST = path.join(REPO_ROOT, 'web', 'dist');
export { REPO_ROOT, SERVER_BIN };

export class Server extends MeetServer {
  /** `env`: extra MEET_* settings for this server (e.g. MEET_MEETINGS__RECENT_MESSAGES). */
  constructor(env = {}) {
    super({ webDir: WEB_DIST, buildHint: 'run tests/webclient/setup.sh or web/build.sh', label: 'webclient', env });
  }
}
