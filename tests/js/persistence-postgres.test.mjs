// Persistence on PostgreSQL: same scenario as SQLite, on a fresh database created for this test.
// Needs PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres). Set MEET_TEST_SKIP_PG=1 to skip when it is absent;
// otherwise an unreachable server fails the test.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startServer } from './lib/server.mjs';
import { withDiagnostics } from './lib/harness.mjs';
import { persistenceScenario } from './lib/persistence.mjs';

const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' };

async function adminClient() {
  const client = new pg.Client({ ...PG, connectionTimeoutMillis: 5000 });
  await client.connect();
  return client;
}

test('postgres: meeting, chat history (incl. private), paging and recentMessages survive a restart', async (t) => {
  let admin;
  try {
    admin = await adminClient();
  } catch (err) {
    if (process.env.MEET_TEST_SKIP_PG) {
      t.skip(`PostgreSQL not reachable at ${PG.host}:${PG.port} (${err.message}); skipped because MEET_TEST_SKIP_PG is set`);
      return;
    }
    assert.fail(`PostgreSQL is not reachable at ${PG.host}:${PG.port} as user postgres (${err.message}). ` +
      'Start it, or set MEET_TEST_SKIP_PG=1 to skip the PostgreSQL tests.');
  }
  const db = `meet_test_${Date.now()}_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${db}`);
  let server;
  try {
    server = await startServer({ databaseUrl: `postgres://postgres@127.0.0.1:5432/${db}` });
    await persistenceScenario(server);
  } catch (err) {
    throw withDiagnostics(err, [server]);
  } finally {
    if (server) await server.cleanup();
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => {});
    await admin.end();
  }
});
