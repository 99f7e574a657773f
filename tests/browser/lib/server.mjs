// The real meet-server for the browser tests: tests/lib/meet-server.mjs serving the test page (tests/browser/dist,
// same-origin at `/`), with the media core's layer switches and keyframe requests in the log (a failing test's
// diagnostics show them).
import { MeetServer, REPO_ROOT, SERVER_BIN } from '../../lib/meet-server.mjs';
import { DIST_DIR } from '../build.mjs';

export { REPO_ROOT, SERVER_BIN };

export class Server extends MeetServer {
  constructor(env = {}) {
    super({ webDir: DIST_DIR, buildHint: 'run tests/browser/setup.sh', label: 'browser', rustLog: 'warn,sfu::core=debug', env });
  }
}
