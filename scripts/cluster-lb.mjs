// A small TCP load balancer for trying cluster mode on one machine (scripts/cluster): each incoming connection goes
// to the next backend in turn (round robin), skipping backends that refuse. Websocket connections work through it
// (one TCP connection per socket); socket.io's HTTP long-polling would need sticky sessions, which this is not.
// Usage: node scripts/cluster-lb.mjs LISTEN_PORT BACKEND_PORT...
import net from 'node:net';

const [listen, ...backends] = process.argv.slice(2).map(Number);
if (!listen || backends.length === 0 || [listen, ...backends].some((p) => !Number.isInteger(p))) {
  console.error('usage: node scripts/cluster-lb.mjs LISTEN_PORT BACKEND_PORT...');
  process.exit(2);
}
let next = 0;

function forward(client, tries) {
  const port = backends[next % backends.length];
  next += 1;
  const upstream = net.connect({ host: '127.0.0.1', port });
  upstream.once('connect', () => {
    client.pipe(upstream).pipe(client);
    client.resume();
  });
  upstream.once('error', (err) => {
    if (tries + 1 < backends.length && !upstream.writableFinished) {
      forward(client, tries + 1); // that node is down: the next one
    } else {
      console.error(`lb: no backend answered (${err.message})`);
      client.destroy();
    }
  });
  client.once('error', () => upstream.destroy());
  client.once('close', () => upstream.destroy());
}

net.createServer({ pauseOnConnect: true }, (client) => forward(client, 0))
  .listen(listen, '127.0.0.1', () => {
    console.log(`lb listening on http://127.0.0.1:${listen} → ${backends.map((p) => `:${p}`).join(' ')}`);
  });
