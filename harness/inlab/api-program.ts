/**
 * The skeleton of a small program run inside the control-plane container (Node 18) against the
 * local API server: credentials from the harness file, a time budget per step (--timeout-ms), exit 0
 * when `main` is done, else a step's exit code (1 unless it says otherwise) with its reason on stderr.
 */
import { readFileSync } from 'node:fs';
import { KubeClient } from '../../lib/kube/client.js';
import type { FlagSpec, Flags } from '../util/args.js';

/** The flags every API program takes: the harness file with the API's credentials, and the deadline. */
export const API_PROGRAM_FLAGS = {
  info: { value: true, arg: 'FILE' },
  'timeout-ms': { value: true, int: true },
} as const satisfies Record<string, FlagSpec>;

/** A step that did not finish by the deadline: the program exits with `exitCode`, printing the message. */
export class StepFailed extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** What `main` gets: the client and each step's time budget (--timeout-ms). */
export interface ApiProgram {
  client: KubeClient;
  timeoutMs: number;
  /**
   * Calls `attempt` every 20 ms until it does not throw; throws StepFailed(its last error, exitCode)
   * when timeoutMs have passed since the call.
   */
  retry(attempt: () => Promise<unknown>, exitCode?: number): Promise<void>;
}

export function runApiProgram(name: string, flags: Flags<typeof API_PROGRAM_FLAGS>, main: (p: ApiProgram) => Promise<void>): void {
  const info = JSON.parse(readFileSync(flags.info ?? '/etc/egresslab/harness.json', 'utf8')) as { port: number; adminToken: string; caCert: string };
  const timeoutMs = flags['timeout-ms'] ?? 20_000;
  // A request may wait behind a whole lab's agents starting at once (19 workers: 2 s was not
  // enough and every attempt timed out); each step's budget still bounds it.
  const client = new KubeClient({ server: `https://127.0.0.1:${info.port}`, token: info.adminToken, ca: info.caCert, timeoutMs: 10_000 });
  const retry = async (attempt: () => Promise<unknown>, exitCode = 1): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await attempt();
        return;
      } catch (e) {
        if (Date.now() >= deadline) throw new StepFailed((e as Error).message, exitCode);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  main({ client, timeoutMs, retry }).then(
    () => {
      client.close();
      process.exit(0);
    },
    (e: unknown) => {
      client.close();
      process.stderr.write(`${name}: ${e instanceof StepFailed ? e.message : ((e as Error).stack ?? String(e))}\n`);
      process.exit(e instanceof StepFailed ? e.exitCode : 1);
    },
  );
}
