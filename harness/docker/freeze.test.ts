import { describe, expect, it } from 'vitest';
import { LabError } from '../util/errors.js';
import type { Clock } from '../util/poll.js';
import { continueContainer, type FreezeHost, freezerPath, pauseContainer, statState } from './freeze.js';

const V1_CGROUP = `12:pids:/docker/abc
11:freezer:/docker/abc
10:cpu,cpuacct:/docker/abc
0::/system.slice/containerd.service
`;

describe('freezerPath', () => {
  it('reads the freezer line of a cgroup v1 /proc/PID/cgroup', () => {
    expect(freezerPath(V1_CGROUP)).toBe('/docker/abc');
  });
  it('finds freezer among several controllers of one line', () => {
    expect(freezerPath('4:cpuset,freezer:/lab/x\n')).toBe('/lab/x');
  });
  it('is undefined on cgroup v2 (one line, no controller)', () => {
    expect(freezerPath('0::/system.slice/docker-abc.scope\n')).toBeUndefined();
  });
  it('keeps a path that itself holds colons', () => {
    expect(freezerPath('7:freezer:/a:b\n')).toBe('/a:b');
  });
});

describe('statState', () => {
  it('takes the letter after the command, even when the command holds ") "', () => {
    expect(statState('42 (node) S 1 42 42 0 -1')).toBe('S');
    expect(statState('43 (we) ird) T 1 43 43 0 -1')).toBe('T');
  });
  it('is undefined for text that is not a stat line', () => {
    expect(statState('garbage')).toBeUndefined();
  });
});

/** A clock whose sleep advances virtual time at once. */
function fakeClock(): Clock {
  const c = { t: 0, now: () => c.t, sleep: async (ms: number) => void (c.t += ms) };
  return c;
}

const ID = 'abc';

interface Proc {
  pid: number;
  threads: number[];
  /** rounds (reads of `tasks`) a stopped process still runs before its threads show T; Infinity: never */
  lag: number;
  stopped: boolean;
  stoppedAtRound?: number;
  /** a process that appears in the cgroup at this round (forked meanwhile) */
  bornAtRound?: number;
  gone?: boolean;
  /** its threads' state when not stopped (default R) */
  state?: string;
}

/** A container's freezer cgroup on a stand-in machine, with the order of everything done to it. */
function machine(procs: Proc[], o: { cgroup?: string; deny?: number[]; paused?: boolean; local?: boolean; self?: number } = {}) {
  const log: string[] = [];
  let round = 0;
  const visible = () => procs.filter((p) => (p.bornAtRound ?? 0) <= round && !p.gone);
  const shows = (p: Proc) => (p.stopped && round - p.stoppedAtRound! >= p.lag ? 'T' : (p.state ?? 'R'));
  const host: FreezeHost = {
    local: o.local ?? true,
    self: o.self ?? 1,
    read: async (path) => {
      if (path === '/proc/100/cgroup') return o.cgroup ?? V1_CGROUP;
      if (path === '/fz/docker/abc/cgroup.procs')
        return visible()
          .map((p) => `${p.pid}\n`)
          .join('');
      if (path === '/fz/docker/abc/tasks') {
        round++;
        return visible()
          .flatMap((p) => p.threads)
          .map((t) => `${t}\n`)
          .join('');
      }
      const m = /^\/proc\/(\d+)\/stat$/.exec(path);
      const p = m && procs.find((q) => q.threads.includes(Number(m[1])) && !q.gone);
      if (p) return `${m![1]} (node) ${shows(p)} 1 ${p.pid} 0`;
      throw Object.assign(new Error(`ENOENT ${path}`), { code: 'ENOENT' });
    },
    kill: (pid, signal) => {
      const p = procs.find((q) => q.pid === pid);
      if (!p || p.gone) throw Object.assign(new Error('ESRCH'), { code: 'ESRCH' });
      if (o.deny?.includes(pid)) throw Object.assign(new Error('EPERM'), { code: 'EPERM' });
      if (signal === 'SIGSTOP') {
        if (!p.stopped) {
          log.push(`${signal} ${pid}`);
          p.stopped = true;
          p.stoppedAtRound = round;
        }
      } else {
        log.push(`${signal} ${pid}`);
        p.stopped = false;
      }
    },
  };
  const container = {
    id: 'egl-lab-node-1',
    inspect: async () => ({ Id: ID, State: { Pid: 100, Paused: o.paused ?? false, Running: true } }),
    pause: async (): Promise<unknown> => {
      // the threads the engine's freeze would have to wait for: those not stopped
      const notStopped = visible()
        .filter((p) => shows(p) !== 'T')
        .flatMap((p) => p.threads);
      log.push(`pause (${notStopped.length} thread(s) not stopped)`);
      return undefined;
    },
  };
  return { host, container, log, procs, opts: { host, freezerRoot: '/fz', clock: fakeClock(), where: 'lab/node-1' } };
}

describe('pauseContainer', () => {
  it('stops every process, waits until every thread shows T, pauses, then sends SIGCONT', async () => {
    const m = machine([
      { pid: 100, threads: [100], lag: 0, stopped: false },
      { pid: 200, threads: [200, 201, 202], lag: 3, stopped: false },
    ]);
    const how = await pauseContainer(m.container, m.opts);
    expect(how).toEqual({ stopped: 2 });
    expect(m.log).toEqual(['SIGSTOP 100', 'SIGSTOP 200', 'pause (0 thread(s) not stopped)', 'SIGCONT 100', 'SIGCONT 200']);
  });

  it('stops a process forked after the first round too, before pausing', async () => {
    const m = machine([
      { pid: 100, threads: [100], lag: 0, stopped: false },
      { pid: 300, threads: [300], lag: 1, stopped: false, bornAtRound: 2 },
      { pid: 200, threads: [200], lag: 2, stopped: false },
    ]);
    await pauseContainer(m.container, m.opts);
    expect(m.log.indexOf('SIGSTOP 300')).toBeGreaterThan(m.log.indexOf('SIGSTOP 200'));
    expect(m.log).toContain('pause (0 thread(s) not stopped)');
    expect(m.log.slice(-3).sort()).toEqual(['SIGCONT 100', 'SIGCONT 200', 'SIGCONT 300']);
  });

  it('stops again a process someone else continued meanwhile', async () => {
    const m = machine([
      { pid: 100, threads: [100], lag: 0, stopped: false },
      { pid: 200, threads: [200], lag: 2, stopped: false },
    ]);
    const read = m.host.read;
    let continued = false;
    m.host.read = async (path) => {
      const text = await read(path);
      if (path.endsWith('/tasks') && !continued) {
        continued = true;
        m.procs[0]!.stopped = false; // a SIGCONT from elsewhere
      }
      return text;
    };
    await pauseContainer(m.container, m.opts);
    expect(m.log.filter((l) => l === 'SIGSTOP 100')).toHaveLength(2);
    expect(m.log).toContain('pause (0 thread(s) not stopped)');
  });

  it('a thread that exits between the list and its state is no obstacle', async () => {
    const m = machine([
      { pid: 100, threads: [100], lag: 0, stopped: false },
      { pid: 200, threads: [200, 201], lag: 0, stopped: false },
    ]);
    const read = m.host.read;
    m.host.read = async (path) => {
      if (path === '/proc/201/stat') throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return read(path);
    };
    await expect(pauseContainer(m.container, m.opts)).resolves.toEqual({ stopped: 2 });
    expect(m.log).toContain('pause (0 thread(s) not stopped)');
  });

  it('at the deadline tries the engine anyway: the kernel may freeze what a signal does not stop', async () => {
    const m = machine([
      { pid: 100, threads: [100], lag: 0, stopped: false },
      { pid: 200, threads: [200], lag: Number.POSITIVE_INFINITY, stopped: false, state: 'D' },
    ]);
    expect(await pauseContainer(m.container, { ...m.opts, deadlineMs: 200 })).toEqual({ stopped: 2 });
    expect(m.log.slice(-3)).toEqual(['pause (1 thread(s) not stopped)', 'SIGCONT 100', 'SIGCONT 200']);
  });

  it('when the engine then refuses too: names the threads, resumes every process, passes the engine on', async () => {
    const m = machine([
      { pid: 100, threads: [100], lag: 0, stopped: false },
      { pid: 200, threads: [200, 201], lag: Number.POSITIVE_INFINITY, stopped: false },
    ]);
    m.container.pause = async () => {
      m.log.push('pause refused');
      throw new Error('OCI runtime pause failed: unable to freeze');
    };
    const err = await pauseContainer(m.container, { ...m.opts, deadlineMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LabError);
    expect((err as Error).message).toBe(
      'pause lab/node-1: 2 thread(s) had not stopped after 200 ms (tid, command, state: 200 node R; 201 node R) and the engine could not freeze it: OCI runtime pause failed: unable to freeze; the container was not paused',
    );
    expect(m.log.slice(-3)).toEqual(['pause refused', 'SIGCONT 100', 'SIGCONT 200']);
  });

  it('a pause of a paused container is refused at once, nothing signalled', async () => {
    const m = machine([{ pid: 100, threads: [100], lag: 0, stopped: false }], { paused: true });
    await expect(pauseContainer(m.container, m.opts)).rejects.toThrow('pause lab/node-1: it is paused already (unpause it first)');
    expect(m.log).toEqual([]);
  });

  it('the container vanishing while it waits ends the wait with the cause, every process continued', async () => {
    const m = machine([
      { pid: 100, threads: [100], lag: 0, stopped: false },
      { pid: 200, threads: [200], lag: Number.POSITIVE_INFINITY, stopped: false },
    ]);
    const read = m.host.read;
    let tasksReads = 0;
    m.host.read = async (path) => {
      if (path.endsWith('/tasks') && ++tasksReads === 3) throw Object.assign(new Error('ENOENT tasks'), { code: 'ENOENT' });
      return read(path);
    };
    await expect(pauseContainer(m.container, { ...m.opts, deadlineMs: 10_000 })).rejects.toThrow(
      'pause lab/node-1: stopping its processes failed (ENOENT); the container was not paused',
    );
    expect(m.log.some((l) => l.startsWith('pause'))).toBe(false);
    expect(m.log.slice(-2)).toEqual(['SIGCONT 100', 'SIGCONT 200']);
  });

  it('is plain docker pause on cgroup v2', async () => {
    const m = machine([{ pid: 100, threads: [100], lag: 0, stopped: false }], { cgroup: '0::/system.slice/docker-abc.scope\n' });
    expect(await pauseContainer(m.container, m.opts)).toEqual({ plain: 'no freezer cgroup (cgroup v2)' });
    expect(m.log).toEqual(['pause (1 thread(s) not stopped)']);
  });

  it('is plain docker pause with a remote engine: its process ids are not this machine', async () => {
    const m = machine([{ pid: 100, threads: [100], lag: 0, stopped: false }], { local: false });
    expect(await pauseContainer(m.container, m.opts)).toEqual({ plain: 'the engine is not local (DOCKER_HOST): its process ids are not this machine' });
    expect(m.log).toEqual(['pause (1 thread(s) not stopped)']);
  });

  it("never signals a cgroup that is not the container's own (the root, another container's)", async () => {
    for (const cgroup of ['11:freezer:/\n', '11:freezer:/docker/other\n']) {
      const m = machine([{ pid: 100, threads: [100], lag: 0, stopped: false }], { cgroup });
      const how = await pauseContainer(m.container, m.opts);
      expect(how).toEqual({ plain: `process 100's freezer cgroup ${cgroup.slice(11, -1)} is not the container's own` });
      expect(m.log).toEqual(['pause (1 thread(s) not stopped)']);
    }
  });

  it('never signals this process, even listed in the cgroup', async () => {
    const m = machine(
      [
        { pid: 100, threads: [100], lag: 0, stopped: false },
        { pid: 4242, threads: [4242], lag: 0, stopped: false },
      ],
      { self: 4242 },
    );
    expect(await pauseContainer(m.container, { ...m.opts, deadlineMs: 100 })).toEqual({ stopped: 2 });
    expect(m.log.filter((l) => l.includes('4242'))).toEqual([]);
  });

  it('not allowed to signal one process: continues those already stopped, then plain docker pause, saying why', async () => {
    const m = machine(
      [
        { pid: 100, threads: [100], lag: 0, stopped: false },
        { pid: 200, threads: [200], lag: 0, stopped: false },
      ],
      { deny: [200] },
    );
    expect(await pauseContainer(m.container, m.opts)).toEqual({ plain: 'not allowed to signal process 200 (EPERM): run the harness as root' });
    expect(m.log).toEqual(['SIGSTOP 100', 'SIGCONT 100', 'pause (2 thread(s) not stopped)']);
  });

  it('a plain pause the engine refuses says why the processes were not stopped first', async () => {
    const m = machine([{ pid: 100, threads: [100], lag: 0, stopped: false }], { deny: [100] });
    m.container.pause = async () => {
      throw new Error('OCI runtime pause failed: unable to freeze');
    };
    await expect(pauseContainer(m.container, m.opts)).rejects.toThrow(
      'pause lab/node-1: OCI runtime pause failed: unable to freeze (its processes were not stopped first: not allowed to signal process 100 (EPERM): run the harness as root)',
    );
  });

  it('is plain docker pause when the freezer cgroup is not visible from here', async () => {
    const m = machine([{ pid: 100, threads: [100], lag: 0, stopped: false }]);
    const how = await pauseContainer(m.container, { ...m.opts, freezerRoot: '/elsewhere' });
    expect(how).toEqual({ plain: 'cannot read /elsewhere/docker/abc/cgroup.procs (ENOENT)' });
    expect(m.log).toEqual(['pause (1 thread(s) not stopped)']);
  });

  it('resumes every process when the engine refuses the pause, and passes its error on', async () => {
    const m = machine([{ pid: 100, threads: [100], lag: 0, stopped: false }]);
    m.container.pause = async () => {
      m.log.push('pause refused');
      throw new Error('OCI runtime pause failed');
    };
    await expect(pauseContainer(m.container, m.opts)).rejects.toThrow('OCI runtime pause failed');
    expect(m.log).toEqual(['SIGSTOP 100', 'pause refused', 'SIGCONT 100']);
  });
});

describe('continueContainer', () => {
  it('sends SIGCONT to every process of the container (after unpause: none stays stopped)', async () => {
    const m = machine([
      { pid: 100, threads: [100], lag: 0, stopped: true, stoppedAtRound: 0 },
      { pid: 200, threads: [200], lag: 0, stopped: true, stoppedAtRound: 0 },
    ]);
    await continueContainer(m.container, m.opts);
    expect(m.log).toEqual(['SIGCONT 100', 'SIGCONT 200']);
    expect(m.procs.every((p) => !p.stopped)).toBe(true);
  });
  it('does nothing where pauseContainer would not have stopped anything', async () => {
    const m = machine([{ pid: 100, threads: [100], lag: 0, stopped: true, stoppedAtRound: 0 }], { local: false });
    await continueContainer(m.container, m.opts);
    expect(m.log).toEqual([]);
  });
});
