/**
 * Runs inside a lab container (Node 18): connects to HOST:PORT and pipes stdin -> socket and
 * socket -> stdout, like `nc`. The host side of an API forward (harness/cluster/forward.ts) runs
 * one per forwarded connection through a docker exec with hijacked stdin/stdout.
 * Usage: node tcp-pipe.js HOST PORT
 * Exit 0 when the connection closed normally, 1 on a connection error (message on stderr).
 */
import { connect } from 'node:net';

const [host, portText] = process.argv.slice(2);
const port = Number(portText);
if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('usage: tcp-pipe HOST PORT\n');
  process.exit(2);
}

const socket = connect({ host, port });
socket.setNoDelay(true);
// stdin EOF half-closes the connection (the far end still answers); the far end closing ends us.
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on('error', (e) => {
  process.stderr.write(`tcp-pipe ${host}:${port}: ${e.message}\n`);
  process.exit(1);
});
socket.on('close', () => {
  process.stdin.destroy();
  process.exit(0);
});
process.stdout.on('error', () => {
  // The host side went away: nobody reads any more.
  socket.destroy();
  process.exit(0);
});
