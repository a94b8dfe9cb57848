/**
 * The skeleton of a small program run inside the control-plane container (Node 18) against the
 * local API server: credentials from the harness file, one attempt retried every 20 ms until it
 * succeeds or the deadline passes, exit 0 on success and 1 with the last reason on stderr.
 */
import { readFileSync } from 'node:fs';
import { KubeClient } from '../../lib/kube/client.js';
import type { FlagSpec, Flags } from '../util/args.js';

/** The flags every API program takes: the harness file with the API's credentials, and the deadline. */
export const API_PROGRAM_FLAGS = {
  info: { value: true, arg: 'FILE' },
  'timeout-ms': { value: true, int: true },
} as const satisfies Record<string, FlagSpec>;

/** `attempt` returns undefined when done, or why it is not done yet (it may also throw). */
export function runApiProgram(name: string, flags: Flags<typeof API_PROGRAM_FLAGS>, attempt: (client: KubeClient) => Promise<string | undefined>): void {
  const main = async (): Promise<number> => {
    const info = JSON.parse(readFileSync(flags.info ?? '/etc/egresslab/harness.json', 'utf8')) as { port: number; adminToken: string; caCert: string };
    const deadline = Date.now() + (flags['timeout-ms'] ?? 20_000);
    // A request may wait behind a whole lab's agents starting at once (19 workers: 2 s was not
    // enough and every attempt timed out); the deadline above still bounds the whole program.
    const client = new KubeClient({ server: `https://127.0.0.1:${info.port}`, token: info.adminToken, ca: info.caCert, timeoutMs: 10_000 });
    let last = 'no attempt';
    try {
      for (;;) {
        try {
          const notYet = await attempt(client);
          if (notYet === undefined) return 0;
          last = notYet;
        } catch (e) {
          last = (e as Error).message;
        }
        if (Date.now() >= deadline) {
          process.stderr.write(`${name}: ${last}\n`);
          return 1;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      client.close();
    }
  };
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`${name}: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
