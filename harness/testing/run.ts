/**
 * Running a program from a test the way a user would (execa): the CLI (bin/egresslab.js) or any
 * command. A non-zero exit is a result to check, not an error; a program that cannot start at all
 * still fails with execa's error, which names the command and the cause.
 */
import { join } from 'node:path';
import { execa } from 'execa';
import { projectRoot } from '../util/paths.js';

/** What a program did: its exit code (1 when a signal or the timeout ended it) and its output. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** How to run it: deadline (default 120 s), directory (default the project root), extra environment, standard input. */
export interface RunOptions {
  timeoutMs?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
}

/** Runs `cmd args`, output kept as it was printed. */
export async function run(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const r = await execa(cmd, args, {
    cwd: options.cwd ?? projectRoot(),
    ...(options.env ? { env: options.env } : {}),
    ...(options.input !== undefined ? { input: options.input } : {}),
    timeout: options.timeoutMs ?? 120_000,
    reject: false,
    stripFinalNewline: false,
  });
  if (r.exitCode === undefined && !r.signal && !r.timedOut) throw r; // did not start
  return { code: r.exitCode ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the CLI, `egresslab ARGS`, with this Node. */
export function runCli(args: string[], options: RunOptions = {}): Promise<RunResult> {
  return run(process.execPath, [join(projectRoot(), 'bin/egresslab.js'), ...args], options);
}
