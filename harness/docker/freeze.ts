/**
 * `docker pause` that a busy machine does not make fail.
 *
 * On cgroup v1, runc 1.1 freezes a container by writing FROZEN to its freezer cgroup and reading
 * the state back in a bounded loop that thaws the cgroup every 50 attempts and gives up with
 * "unable to freeze" after about 0.2 s of sleeps. Every task must be scheduled once to enter the
 * freezer; on 2 cores held by other work a container of Node processes needs longer than each of
 * runc's windows, and each thaw undoes the progress (measured: 12 of 60 `docker pause` failed while
 * 8 busy loops ran and the container's Node processes spawned `nft`; `bench/pause-freeze.ts`).
 *
 * A stopped task (SIGSTOP) is frozen by the kernel at once, without running. So this first stops
 * every process of the container's cgroup, as often as new ones appear, and waits with its own
 * deadline until every thread shows the state `T`; then `docker pause` finds nothing left to wait
 * for, and the engine records the container as paused (exec refused, `docker unpause` thaws it, a
 * forced removal works). SIGCONT is sent right after: it stays pending while the cgroup is frozen,
 * and the processes run again when `docker unpause` thaws them. A process whose parent waits for it
 * with WUNTRACED would see it stop and continue; Node, tini and the lab's programs do not.
 *
 * Where this cannot be done (cgroup v2, whose freezer does not give up; a harness that is not root,
 * or cannot see the engine's processes) it is plain `docker pause`.
 */
import { readFile } from 'node:fs/promises';
import { LabError, TimeoutError } from '../util/errors.js';
import { type Clock, pollUntil } from '../util/poll.js';

/** How long every process of a container may take to stop before the pause is given up. */
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
}

const realHost: FreezeHost = {
  read: (path) => readFile(path, 'utf8'),
  kill: (pid, signal) => process.kill(pid, signal),
};

/** The container's side: its main process and the engine's pause. */
export interface Pausable {
  id: string;
  inspect(): Promise<{ State: { Pid: number } }>;
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

/** How the container was paused: `stopped` when its processes were stopped first, else why not. */
export type PauseHow = { stopped: number } | { plain: string };

function code(e: unknown): string | undefined {
  return (e as { code?: string } | null)?.code;
}

/**
 * Pauses a container (docker pause) after stopping every process in it (see the module's comment).
 * Throws LabError, with every process sent SIGCONT again and the container not paused, when some
 * thread has not stopped within the deadline (the message names them).
 */
export async function pauseContainer(container: Pausable, o: PauseOptions = {}): Promise<PauseHow> {
  const host = o.host ?? realHost;
  const where = o.where ?? container.id.slice(0, 12);
  const pid = (await container.inspect()).State.Pid;
  let dir: string | undefined;
  try {
    const rel = freezerPath(await host.read(`/proc/${pid}/cgroup`));
    if (rel !== undefined) dir = `${o.freezerRoot ?? '/sys/fs/cgroup/freezer'}${rel === '/' ? '' : rel}`;
  } catch (e) {
    await container.pause();
    return { plain: `cannot read /proc/${pid}/cgroup (${code(e) ?? e})` };
  }
  if (dir === undefined) {
    await container.pause();
    return { plain: 'no freezer cgroup (cgroup v2)' };
  }
  try {
    await host.read(`${dir}/cgroup.procs`);
  } catch (e) {
    await container.pause();
    return { plain: `cannot read ${dir}/cgroup.procs (${code(e) ?? e})` };
  }
  const signalled = new Set<number>();
  const resume = () => {
    for (const p of signalled) {
      try {
        host.kill(p, 'SIGCONT');
      } catch {
        // gone
      }
    }
  };
  let denied: string | undefined;
  /** one round: stop the processes not stopped yet, then the threads that are not in state T */
  const round = async (): Promise<string[]> => {
    for (const line of (await host.read(`${dir}/cgroup.procs`)).split('\n')) {
      const p = Number(line);
      if (!line || signalled.has(p)) continue;
      try {
        host.kill(p, 'SIGSTOP');
        signalled.add(p);
      } catch (e) {
        if (code(e) === 'EPERM') {
          denied = `not allowed to signal process ${p} (${code(e)})`;
          return [];
        }
        // ESRCH: it exited meanwhile
      }
    }
    const running: string[] = [];
    for (const line of (await host.read(`${dir}/tasks`)).split('\n')) {
      if (!line) continue;
      let stat: string;
      try {
        stat = await host.read(`/proc/${line}/stat`);
      } catch (e) {
        if (code(e) === 'ENOENT' || code(e) === 'ESRCH') continue; // exited
        throw e;
      }
      const state = statState(stat);
      if (state !== 'T') running.push(`${line} ${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))} ${state ?? '?'}`);
    }
    return running;
  };
  let lastRunning: string[] = [];
  try {
    await pollUntil(
      async () => {
        lastRunning = await round();
        return lastRunning;
      },
      { what: `every process of ${where} stopped`, timeoutMs: o.deadlineMs ?? STOP_DEADLINE_MS, intervalMs: 5, clock: o.clock, accept: (r) => r.length === 0 },
    );
  } catch (e) {
    resume();
    if (e instanceof TimeoutError)
      throw new LabError(
        `pause ${where}: ${lastRunning.length} thread(s) had not stopped after ${o.deadlineMs ?? STOP_DEADLINE_MS} ms (tid, command, state: ${lastRunning.slice(0, 8).join('; ')}); the container was not paused`,
        { cause: e },
      );
    throw e;
  }
  if (denied !== undefined) {
    resume();
    await container.pause();
    return { plain: denied };
  }
  try {
    await container.pause();
  } finally {
    resume();
  }
  return { stopped: signalled.size };
}
