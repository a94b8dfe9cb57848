/**
 * Keeping a test's lab for inspection. EGRESSLAB_KEEP (set by `egresslab run`):
 *   unset / "0"        labs are removed after their test file (the default)
 *   "1" / "on-failure" a lab whose test file had a failing test is kept
 *   "always"           every lab is kept
 * A kept lab is announced on stderr with how to reach it, and its id appended to the file named by
 * EGRESSLAB_KEPT_FILE (so `egresslab run` can print it once vitest is done).
 */
import { appendFileSync } from 'node:fs';

/** What happens to a test's lab at the end of its file (from EGRESSLAB_KEEP, see keepMode). */
export type KeepMode = 'never' | 'on-failure' | 'always';

const failed: string[] = [];

/**
 * The keep mode EGRESSLAB_KEEP asks for. Values (case-insensitive): unset, "", "0", "false", "no",
 * "never" -> `never`; "always" -> `always`; anything else ("1", "on-failure", "yes") -> `on-failure`.
 *
 * @example
 * ```sh
 * EGRESSLAB_KEEP=always npx vitest run scenarios/foundation/faults.test.ts   # keep every lab
 * EGRESSLAB_KEEP=on-failure npx vitest run scenarios/gateway                   # keep failing files' labs
 * npx egresslab run scenarios/gateway --keep                                  # the CLI sets it for you
 * ```
 */
export function keepMode(env: NodeJS.ProcessEnv = process.env): KeepMode {
  const v = (env.EGRESSLAB_KEEP ?? '').trim().toLowerCase();
  if (v === 'always') return 'always';
  if (v === '' || v === '0' || v === 'false' || v === 'no' || v === 'never') return 'never';
  return 'on-failure';
}

/** Called by the setup file for every failing test of this test file (worker). */
export function noteFailure(testName: string): void {
  failed.push(testName);
}

/** Forgets the failures noted so far: the setup file calls it as each test file starts (files may share a worker). */
export function resetFailures(): void {
  failed.length = 0;
}

/** The failing tests of this test file so far. */
export function failedTests(): readonly string[] {
  return failed;
}

/** Whether this file's lab is kept: always, or on-failure and a test failed. */
export function shouldKeep(mode: KeepMode = keepMode()): boolean {
  return mode === 'always' || (mode === 'on-failure' && failed.length > 0);
}

/** Hint lines for a kept lab. */
export function keptLabHint(labId: string): string {
  return [
    `egresslab: lab ${labId} kept${failed.length ? ` (failed: ${failed.join('; ')})` : ''}; poke at it with`,
    `  npx egresslab status --lab ${labId}`,
    `  npx egresslab exec --lab ${labId} node-1 -- ip route`,
    `  npx egresslab timeline --lab ${labId} --from default/client-1 --to 8.8.8.8 --seconds 10 --svg /tmp/t.svg`,
    `  npx egresslab down --lab ${labId}`,
  ].join('\n');
}

/** Tells the user a lab was kept (through EGRESSLAB_KEPT_FILE for `egresslab run`, else on stderr). */
export function announceKept(labId: string): void {
  const file = process.env.EGRESSLAB_KEPT_FILE;
  // `egresslab run` prints the hint itself once vitest is done.
  if (file) appendFileSync(file, `${JSON.stringify({ lab: labId, failed: [...failed] })}\n`);
  else process.stderr.write(`${keptLabHint(labId)}\n`);
}
