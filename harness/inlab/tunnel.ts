/**
 * The in-lab end of a forward (harness/cluster/port-forward.ts): ONE process per forward, started by one
 * `docker exec` with standard input and output attached, carrying every forwarded TCP connection as
 * numbered streams (before: one exec and one Node start per connection). Usage:
 *   node tunnel.js HOST PORT        every stream connects to HOST:PORT inside this container
 *
 * Frames, both ways: type (1 byte), stream id (uint32 BE), length (uint32 BE), payload.
 *   OPEN  1  host -> lab   open a connection (empty payload)
 *   DATA  2  both          bytes of the stream
 *   END   3  both          half-close (no more data from this side)
 *   CLOSE 4  both          the stream is gone (payload: an error message, may be empty)
 * Runs on Node 18 inside lab containers: no dependencies.
 */
import { connect, type Socket } from 'node:net';
import { FRAME, FrameReader, encodeFrame } from './tunnel-frames.js';
import { programArgs } from '../util/args.js';

const { positionals } = programArgs('tunnel.js', {
  flags: {},
  args: 'HOST PORT',
  maxPositionals: 2,
  about: '  Carries every forwarded TCP connection, as numbered streams on standard input and output, to HOST:PORT.',
});
const host = positionals[0] ?? '127.0.0.1';
const port = Number(positionals[1]);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write(
    `tunnel: PORT: must be a port number 1-65535 (value: ${JSON.stringify(positionals[1] ?? '(absent)')})\nusage: node tunnel.js HOST PORT\n`,
  );
  process.exit(2);
}

const streams = new Map<number, Socket>();

function send(type: number, id: number, payload?: Buffer | string): void {
  process.stdout.write(encodeFrame(type, id, payload));
}

function open(id: number): void {
  const s = connect({ host, port });
  s.setNoDelay(true);
  streams.set(id, s);
  s.on('data', (b: Buffer) => send(FRAME.DATA, id, b));
  s.on('end', () => send(FRAME.END, id));
  s.on('error', (e: NodeJS.ErrnoException) => {
    if (!streams.has(id)) return;
    streams.delete(id);
    send(FRAME.CLOSE, id, `${host}:${port}: ${e.code ?? e.message}`);
  });
  s.on('close', () => {
    if (!streams.delete(id)) return;
    send(FRAME.CLOSE, id);
  });
}

const reader = new FrameReader((type, id, payload) => {
  const s = streams.get(id);
  switch (type) {
    case FRAME.OPEN:
      if (!s) open(id);
      break;
    case FRAME.DATA:
      s?.write(payload);
      break;
    case FRAME.END:
      s?.end();
      break;
    case FRAME.CLOSE:
      if (s) {
        streams.delete(id);
        s.destroy();
      }
      break;
    default:
      process.stderr.write(`tunnel: unknown frame type ${type}\n`);
  }
});
process.stdin.on('data', (b: Buffer) => reader.push(b));
process.stdin.on('end', () => {
  for (const s of streams.values()) s.destroy();
  process.exit(0);
});
process.stdout.on('error', () => process.exit(0));
