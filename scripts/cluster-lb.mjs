// A small TCP load balancer for trying cluster mode on one machine (scripts/cluster): each incoming connection goes
// to the next backend in turn (round robin), skipping backends that refuse. Websocket connections work through it
// (one TCP connection per socket); socket.io's HTTP long-polling would need sticky sessions, which this is not.
// With --failover every connection goes to the first backend that accepts (a primary and its stand-bys), so a page
// and its socket land on one node until that node dies, then on the next (tests/browser/cluster-media.test.mjs).
// Usage: node scripts/cluster-lb.mjs [--failover] LISTEN_PORT BACKEND_PORT...
import net from 'node:net';

const args = process.argv.slice(2);
const failover = args[0] === '--failover';
const [listen, ...backends] = (failover ? args.slice(1) : args).map(Number);
if (!listen || backends.length === 0 || [listen, ...backends].some((p) => !Number.isInteger(p))) {
  console.error('usage: node scripts/cluster-lb.mjs [--failover] LISTEN_PORT BACKEND_PORT...');
  process.exit(2);
}
let next = 0;

function forward(client, index, tries) {
  const port = backends[index % backends.length];
  const upstream = net.connect({ host: '127.0.0.1', port });
  let connected = false;
  upstream.once('connect', () => {
    connected = true;
    client.pipe(upstream).pipe(client);
    client.resume();
  });
  upstream.once('error', (err) => {
    if (!connected && tries + 1 < backends.length) {
      forward(client, index + 1, tries + 1); // that node is down: the next one
    } else if (!connected) {
      console.error(`lb: no backend answered (${err.message})`);
      client.destroy();
    } else {
      client.destroy(); // the node went away mid-connection: the client reconnects (and lands elsewhere)
    }
  });
  upstream.once('close', () => { if (connected) client.destroy(); });
  client.once('error', () => upstream.destroy());
  client.once('close', () => upstream.destroy());
}

net.createServer({ pauseOnConnect: true }, (client) => {
  const first = failover ? 0 : next++;
  forward(client, first, 0);
}).listen(listen, '127.0.0.1', () => {
  const mode = failover ? 'failover' : 'round robin';
  console.log(`lb listening on http://127.0.0.1:${listen} → ${backends.map((p) => `:${p}`).join(' ')} (${mode})`);
});
