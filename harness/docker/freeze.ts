/**
 * `docker pause` that a busy machine does not make fail.
 *
 * On cgroup v1, runc 1.1 freezes a container by writing FROZEN to its freezer cgroup and reading
 * the state back in a bounded loop that thaws the cgroup every 50 attempts and gives up with
 * "unable to freeze" after about 0.2 s of sleeps. Every task must be scheduled once to enter the
 * freezer; on 2 cores held by other work a container of Node processes needs longer than each of
 * runc's windows, and each thaw undoes the progress (bench/pause-freeze.ts).
 *
 * A stopped task (SIGSTOP) is frozen by the kernel at once, without running. So this first stops
 * every process of the container's cgroup, every round until none is left running, and waits with
 * its own deadline until every thread is stopped; then `docker pause` finds nothing left to wait
 * for, and the engine records the container as paused (exec refused, `docker unpause` thaws it, a
 * forced removal works). SIGCONT is sent right after the pause, and again by `continueContainer`
 * after the unpause: depending on the kernel, a SIGCONT sent while the cgroup is frozen either waits
 * for the thaw or is used up (6.1-6.6 without a 2025 fix), and the second one makes sure no process
 * stays stopped. A process whose parent waits for it with WUNTRACED would see it stop and continue;
 * Node, tini and the lab's programs do not.
 *
 * Only where it is safe and possible (a local engine, whose container process ids are this
 * machine's; cgroup v1; a freezer cgroup of the container's own, holding its main process; the right
 * to signal): otherwise it is plain `docker pause`, with the reason returned.
 */
import { readFile } from 'node:fs/promises';
import { LabError, TimeoutError } from '../util/errors.js';
import { type Clock, pollUntil } from '../util/poll.js';

/** How long every process of a container may take to stop before the pause is tried as it is. */
export const STOP_DEADLINE_MS = 10_000;

/** The freezer cgroup's path (relative to the freezer hierarchy's mount) in /proc/PID/cgroup, or undefined (cgroup v2). */
export function freezerPath(procCgroup: string): string | undefined {
  for (const line of procCgroup.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line.trim());
    if (m && m[1]!.split(',').includes('freezer')) return m[2];
  }
  return undefined;
}

/** The state letter of /proc/TID/stat (the field after the command in parentheses), or undefined. */
export function statState(stat: string): string | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  return stat.slice(close + 2, close + 3) || undefined;
}

/** What pauseContainer needs from the machine (the real one by default; tests pass a stand-in). */
export interface FreezeHost {
  /** a file's text (throws like fs.readFile: code ENOENT when a process is gone) */
  read(path: string): Promise<string>;
  /** process.kill: throws with code ESRCH (gone) or EPERM (not allowed) */
  kill(pid: number, signal: 'SIGSTOP' | 'SIGCONT'): void;
  /** whether the engine's container process ids are this machine's (a local engine, this harness not in a container of its own) */
  local: boolean;
  /** this process's id: never signalled */
  self: number;
}

const realHost = (): FreezeHost => ({
  read: (path) => readFile(path, 'utf8'),
  kill: (pid, signal) => process.kill(pid, signal),
  local: !process.env.DOCKER_HOST || /^unix:\/\//i.test(process.env.DOCKER_HOST),
  self: process.pid,
});

/** The container's side: its state and main process, and the engine's pause. */
export interface Pausable {
  id: string;
  inspect(): Promise<{ Id: string; State: { Pid: number; Paused?: boolean; Running?: boolean } }>;
  pause(): Promise<unknown>;
}

export interface PauseOptions {
  /** for messages: which lab container this is */
  where?: string;
  deadlineMs?: number;
  host?: FreezeHost;
  /** the freezer hierarchy's mount */
  freezerRoot?: string;
  clock?: Clock;
}

/** How the container was paused: `stopped` processes first, or `plain` docker pause and why. */
export type PauseHow = { stopped: number } | { plain: string };

function code(e: unknown): string {
  return (e as { code?: string } | null)?.code ?? String((e as Error)?.message ?? e);
}

const numbers = (text: string) =>
  text
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);

/** The container's own freezer cgroup directory, or why it cannot be used (see the module's comment). */
async function containerCgroup(
  info: Awaited<ReturnType<Pausable['inspect']>>,
  host: FreezeHost,
  root: string,
): Promise<{ dir: string; pid: number } | { why: string }> {
  if (!host.local) return { why: 'the engine is not local (DOCKER_HOST): its process ids are not this machine' };
  const pid = info.State.Pid;
  let rel: string | undefined;
  try {
    rel = freezerPath(await host.read(`/proc/${pid}/cgroup`));
  } catch (e) {
    return { why: `cannot read /proc/${pid}/cgroup (${code(e)})` };
  }
  if (rel === undefined) return { why: 'no freezer cgroup (cgroup v2)' };
  if (rel === '/' || !info.Id || !rel.includes(info.Id)) return { why: `process ${pid}'s freezer cgroup ${rel} is not the container's own` };
  const dir = `${root}${rel}`;
  let procs: number[];
  try {
    procs = numbers(await host.read(`${dir}/cgroup.procs`));
  } catch (e) {
    return { why: `cannot read ${dir}/cgroup.procs (${code(e)})` };
  }
  if (!procs.includes(pid)) return { why: `${dir} does not hold the container's main process ${pid}` };
  return { dir, pid };
}

function signalAll(host: FreezeHost, pids: readonly number[], signal: 'SIGSTOP' | 'SIGCONT'): string | undefined {
  for (const p of pids) {
    if (p === host.self) continue;
    try {
      host.kill(p, signal);
    } catch (e) {
      if (code(e) === 'EPERM') return `not allowed to signal process ${p} (EPERM): run the harness as root`;
      // ESRCH: it exited meanwhile
    }
  }
  return undefined;
}

/**
 * Pauses a container (docker pause) after stopping every process in it (see the module's comment).
 * A container already paused is refused at once. When some thread has not stopped by the deadline,
 * docker pause is tried as it is (the kernel may freeze what did not stop, such as a parent waiting
 * in vfork); if the engine refuses, every process is continued and the error names the threads.
 */
export async function pauseContainer(container: Pausable, o: PauseOptions = {}): Promise<PauseHow> {
  const host = o.host ?? realHost();
  const where = o.where ?? container.id.slice(0, 12);
  // (a container looked up by name has its name as id: the cgroup is matched on inspect's Id)
  const info = await container.inspect();
  const state = info.State;
  if (state.Paused) throw new LabError(`pause ${where}: it is paused already (unpause it first)`);
  if (state.Running === false) {
    await container.pause(); // the engine's own error
    return { plain: 'not running' };
  }
  const cg = await containerCgroup(info, host, o.freezerRoot ?? '/sys/fs/cgroup/freezer');
  if ('why' in cg) {
    await plainPause(container, where, cg.why);
    return { plain: cg.why };
  }
  const listed = async () => numbers(await host.read(`${cg.dir}/cgroup.procs`));
  const resume = async () => {
    // only the processes still in the container: a number that left it may be another process's now
    signalAll(host, await listed().catch(() => []), 'SIGCONT');
  };
  let denied: string | undefined;
  let failed: unknown;
  let running: string[] = [];
  /** one round: stop every process of the container (again: harmless), then list the threads not stopped */
  const round = async (): Promise<string[]> => {
    try {
      denied = signalAll(host, await listed(), 'SIGSTOP');
      if (denied) return [];
      const out: string[] = [];
      for (const tid of numbers(await host.read(`${cg.dir}/tasks`))) {
        let stat: string;
        try {
          stat = await host.read(`/proc/${tid}/stat`);
        } catch (e) {
          if (code(e) === 'ENOENT' || code(e) === 'ESRCH') continue; // exited
          throw e;
        }
        const s = statState(stat);
        if (s !== 'T' && s !== 't') out.push(`${tid} ${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))} ${s ?? '?'}`);
      }
      return out;
    } catch (e) {
      failed = e;
      return [];
    }
  };
  const deadlineMs = o.deadlineMs ?? STOP_DEADLINE_MS;
  const timedOut = await pollUntil(
    async () => {
      running = await round();
      return running;
    },
    { what: `every process of ${where} stopped`, timeoutMs: deadlineMs, intervalMs: 5, clock: o.clock, accept: (r) => r.length === 0 },
  ).then(
    () => undefined,
    (e: unknown) => (e instanceof TimeoutError ? e : Promise.reject(e)),
  );
  if (failed !== undefined) {
    await resume();
    throw new LabError(`pause ${where}: stopping its processes failed (${code(failed)}); the container was not paused`, { cause: failed });
  }
  if (denied !== undefined) {
    await resume();
    await plainPause(container, where, denied);
    return { plain: denied };
  }
  const stopped = (await listed().catch(() => [])).length;
  try {
    await container.pause();
  } catch (e) {
    await resume();
    if (timedOut)
      throw new LabError(
        `pause ${where}: ${running.length} thread(s) had not stopped after ${deadlineMs} ms (tid, command, state: ${running.slice(0, 8).join('; ')}${running.length > 8 ? '; ...' : ''}) and the engine could not freeze it: ${(e as Error).message}; the container was not paused`,
        { cause: e },
      );
    throw e;
  }
  await resume();
  return { stopped };
}

async function plainPause(container: Pausable, where: string, why: string): Promise<void> {
  try {
    await container.pause();
  } catch (e) {
    throw new LabError(`pause ${where}: ${(e as Error).message} (its processes were not stopped first: ${why})`, { cause: e });
  }
}

/**
 * After `docker unpause`: SIGCONT to every process of the container, so that none stays stopped
 * where the kernel used up pauseContainer's SIGCONT during the freeze. A no-op where pauseContainer
 * would not have stopped anything.
 */
export async function continueContainer(container: Pausable, o: { host?: FreezeHost; freezerRoot?: string } = {}): Promise<void> {
  const host = o.host ?? realHost();
  const cg = await containerCgroup(await container.inspect(), host, o.freezerRoot ?? '/sys/fs/cgroup/freezer');
  if ('why' in cg) return;
  signalAll(host, numbers(await host.read(`${cg.dir}/cgroup.procs`).catch(() => '')), 'SIGCONT');
}
