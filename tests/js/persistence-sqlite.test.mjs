// Persistence on SQLite: meeting and chat history survive a server restart on the same database file.
import { test } from 'node:test';
import { startServer } from './lib/server.mjs';
import { withDiagnostics } from './lib/harness.mjs';
import { persistenceScenario } from './lib/persistence.mjs';

test('sqlite: meeting, chat history (incl. private), paging and recentMessages survive a restart', async () => {
  const server = await startServer(); // fresh SQLite file in a mkdtemp dir
  try {
    await persistenceScenario(server);
  } catch (err) {
    throw withDiagnostics(err, [server]);
  } finally {
    await server.cleanup();
  }
});
