/**
 * The CLI's API forward: one detached background process per lab (background-forward-main.ts), so that the
 * kubeconfig `egresslab kubeconfig` writes keeps working after the CLI exits. Its state file
 * (<project>/.egresslab/forward-<lab>.json: pid, port) lets later calls find it, reuse it, or stop
 * it (`egresslab down`). It exits by itself when the lab is gone.
 */
import { execa } from 'execa';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot, workspaceRoot } from '../util/paths.js';
import { pollUntil } from '../util/poll.js';
import { LabError } from '../util/errors.js';

/** The state file of a lab's background API forwarder (pid and local port). */
export interface ForwarderState {
  lab: string;
  pid: number;
  port: number;
  startedAt: string;
}

/** Where lab state files live (EGRESSLAB_STATE_DIR, default .egresslab/ of the project: the repository that installed egresslab, or the checkout). */
export function stateDir(): string {
  return process.env.EGRESSLAB_STATE_DIR ?? join(workspaceRoot(), '.egresslab');
}

/** The forwarder state file of a lab. */
export function forwarderStatePath(labId: string): string {
  return join(stateDir(), `forward-${labId}.json`);
}

/** The forwarder log file of a lab. */
export function forwarderLogPath(labId: string): string {
  return join(stateDir(), `forward-${labId}.log`);
}

/** Where `egresslab kubeconfig` writes a lab's admin kubeconfig by default. */
export function kubeconfigPath(labId: string): string {
  return join(stateDir(), `${labId}.kubeconfig`);
}

/**
 * Which of the state dir's file `names` belong to the lab: its kubeconfig, its forwarder's state
 * and log, and a state file a forwarder left half-written (`forward-<lab>.json.<pid>.tmp`). Exact
 * names: lab `demo` does not take `demo-2`'s files. Pure.
 */
export function labStateFiles(labId: string, names: readonly string[]): string[] {
  const own = new Set([`${labId}.kubeconfig`, `forward-${labId}.json`, `forward-${labId}.log`]);
  const tmp = `forward-${labId}.json.`;
  return names.filter((n) => own.has(n) || (n.startsWith(tmp) && /^\d+\.tmp$/.test(n.slice(tmp.length))));
}

/** Removes the lab's state files (labStateFiles) from the state dir; returns their paths. */
export function removeLabState(labId: string): string[] {
  let names: string[];
  try {
    names = readdirSync(stateDir());
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const paths = labStateFiles(labId, names).map((n) => join(stateDir(), n));
  for (const p of paths) rmSync(p, { force: true });
  return paths;
}

/** The forwarder state of a lab, or undefined when it has none. */
export function readForwarderState(labId: string): ForwarderState | undefined {
  try {
    return JSON.parse(readFileSync(forwarderStatePath(labId), 'utf8')) as ForwarderState;
  } catch {
    return undefined;
  }
}

/** Whether `pid` is a live forwarder process of ours (not a recycled pid). */
export function isForwarderProcess(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('background-forward-main.js') || cmdline.includes('harness/cluster/forward-main.js');
  } catch {
    // No /proc (not Linux): trust the pid.
    return true;
  }
}

/** The running forwarder of a lab, if any. */
export function runningForwarder(labId: string): ForwarderState | undefined {
  const s = readForwarderState(labId);
  return s && isForwarderProcess(s.pid) ? s : undefined;
}

/** Makes sure a forwarder runs for the lab; returns its state (port). */
export async function ensureForwarder(labId: string): Promise<ForwarderState> {
  const running = runningForwarder(labId);
  if (running) return running;
  const previous = readForwarderState(labId);
  rmSync(forwarderStatePath(labId), { force: true });
  mkdirSync(stateDir(), { recursive: true });
  const entry = join(projectRoot(), 'dist/harness/cluster/background-forward-main.js');
  if (!existsSync(entry)) throw new LabError(`${entry} is missing: run "npm run build" first`);
  // A file descriptor (execa's types take only a literal one) given to the child as it is: no pipe through this process.
  const log = openSync(forwarderLogPath(labId), 'a') as 3;
  const args = [entry, '--lab', labId, '--state', forwarderStatePath(labId), ...(previous ? ['--port', String(previous.port)] : [])];
  // Detached, its output to the log file; it outlives this process (reject: false: an early exit is reported below).
  const child = execa(process.execPath, args, { detached: true, stdin: 'ignore', stdout: log, stderr: log, reject: false });
  closeSync(log);
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code ?? -1));
  child.unref();
  try {
    const state = await pollUntil(
      () => {
        if (exited !== null) throw new LabError(`the forwarder exited (${exited}); see ${forwarderLogPath(labId)}`);
        const s = readForwarderState(labId);
        return s && s.pid === child.pid ? s : undefined;
      },
      { what: `the API forwarder of lab ${labId} to listen`, timeoutMs: 15_000, intervalMs: 25 },
    );
    return state!;
  } catch (error) {
    const tail = existsSync(forwarderLogPath(labId)) ? readFileSync(forwarderLogPath(labId), 'utf8').trim().split('\n').slice(-5).join('\n') : '';
    throw new LabError(`lab ${labId}: the API forwarder did not start: ${(error as Error).message}${tail ? `\n${tail}` : ''}`, { cause: error });
  }
}

/** Stops the lab's forwarder (by the pid in its state file); true if one was running. */
export async function stopForwarder(labId: string): Promise<boolean> {
  const s = runningForwarder(labId);
  rmSync(forwarderStatePath(labId), { force: true });
  if (!s) return false;
  try {
    process.kill(s.pid, 'SIGTERM');
  } catch {
    return false;
  }
  await pollUntil(() => !isForwarderProcess(s.pid), { what: `forwarder pid ${s.pid} to exit`, timeoutMs: 5_000, intervalMs: 20 }).catch(() => {
    process.kill(s.pid, 'SIGKILL');
  });
  return true;
}
