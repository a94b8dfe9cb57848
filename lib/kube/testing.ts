// Test helpers for code that talks to an API server (used by unit and integration tests).
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';

/**
 * A TCP port on 127.0.0.1 where no connection is ever established: a child process listens with the
 * smallest backlog and then blocks its event loop (it never accepts), and the accept queue is
 * filled; the kernel then drops every new SYN, as a partition does. Returns the port and a cleanup.
 */
export async function unreachablePort(): Promise<{ port: number; close: () => void }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const s = require('node:net').createServer();
       s.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
         process.stdout.write(s.address().port + '\\n');
         // blocks the event loop: nothing is ever accepted; gone after 2 min even if nobody kills it
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120000);
         process.exit(0);
       });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
    child.once('exit', (code) => reject(new Error(`listener exited (${code})`)));
    child.once('error', reject);
  });
  const fillers: Socket[] = [];
  const close = () => {
    for (const s of fillers) s.destroy();
    child.kill('SIGKILL');
  };
  // connect until a handshake does not complete: the accept queue is full
  for (let i = 0; i < 32; i++) {
    const s = connect(port, '127.0.0.1');
    fillers.push(s);
    const state = await new Promise<'connected' | 'pending' | Error>((resolve) => {
      let done = false;
      s.once('connect', () => ((done = true), resolve('connected')));
      s.once('error', (e) => resolve(e));
      // judged after the next I/O poll, not by the timer alone: a test process that stalled past the
      // timer still sees a handshake that completed meanwhile (and keeps filling)
      setTimeout(() => setImmediate(() => resolve(done ? 'connected' : 'pending')), 300);
    });
    if (state instanceof Error) {
      close();
      throw new Error(`a connection to the non-accepting listener failed: ${state.message}`);
    }
    if (state === 'pending') return { port, close };
  }
  close();
  throw new Error('every connection to the non-accepting listener was established: cannot make an unreachable port here');
}
