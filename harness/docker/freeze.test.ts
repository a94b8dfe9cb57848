import { describe, expect, it } from 'vitest';
import { LabError } from '../util/errors.js';
import type { Clock } from '../util/poll.js';
import { type FreezeHost, freezerPath, pauseContainer, statState } from './freeze.js';

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
}

/** A container's freezer cgroup on a stand-in machine, with the order of everything done to it. */
function machine(procs: Proc[], o: { cgroup?: string; deny?: boolean } = {}) {
  const log: string[] = [];
  let round = 0;
  const visible = () => procs.filter((p) => (p.bornAtRound ?? 0) <= round && !p.gone);
  const host: FreezeHost = {
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
      const p = m && procs.find((q) => q.threads.includes(Number(m[1])));
      if (p) {
        const shows = p.stopped && round - p.stoppedAtRound! >= p.lag;
        return `${m![1]} (node) ${shows ? 'T' : 'R'} 1 ${p.pid} 0`;
      }
      throw Object.assign(new Error(`ENOENT ${path}`), { code: 'ENOENT' });
    },
    kill: (pid, signal) => {
      const p = procs.find((q) => q.pid === pid);
      if (!p || p.gone) throw Object.assign(new Error('ESRCH'), { code: 'ESRCH' });
      if (o.deny) throw Object.assign(new Error('EPERM'), { code: 'EPERM' });
      log.push(`${signal} ${pid}`);
      if (signal === 'SIGSTOP') {
        p.stopped = true;
        p.stoppedAtRound = round;
      } else p.stopped = false;
    },
  };
  const container = {
    id: 'abc0123456789',
    inspect: async () => ({ State: { Pid: 100 } }),
    pause: async () => {
      const running = visible().filter((p) => !p.stopped);
      log.push(`pause (${running.length} running)`);
    },
  };
  return { host, container, log, opts: { host, freezerRoot: '/fz', clock: fakeClock(), where: 'lab/node-1' } };
}

describe('pauseContainer', () => {
  it('stops every process, waits until every thread shows T, pauses, then sends SIGCONT', async () => {
    const m = machine([
      { pid: 100, threads: [100], lag: 0, stopped: false },
      { pid: 200, threads: [200, 201, 202], lag: 3, stopped: false },
    ]);
    const how = await pauseContainer(m.container, m.opts);
    expect(how).toEqual({ stopped: 2 });
    expect(m.log).toEqual(['SIGSTOP 100', 'SIGSTOP 200', 'pause (0 running)', 'SIGCONT 100', 'SIGCONT 200']);
  });

  it('stops a process forked after the first round too, before pausing', async () => {
    const m = machine([
      { pid: 100, threads: [100], lag: 0, stopped: false },
      { pid: 300, threads: [300], lag: 1, stopped: false, bornAtRound: 2 },
      { pid: 200, threads: [200], lag: 2, stopped: false },
    ]);
    await pauseContainer(m.container, m.opts);
    expect(m.log.indexOf('SIGSTOP 300')).toBeGreaterThan(m.log.indexOf('SIGSTOP 200'));
    expect(m.log).toContain('pause (0 running)');
    expect(m.log.slice(-3).sort()).toEqual(['SIGCONT 100', 'SIGCONT 200', 'SIGCONT 300']);
  });

  it('a process that exits while being stopped is no obstacle', async () => {
    const procs: Proc[] = [
      { pid: 100, threads: [100], lag: 0, stopped: false },
      { pid: 200, threads: [200], lag: Number.POSITIVE_INFINITY, stopped: false },
    ];
    const m = machine(procs);
    const kill = m.host.kill;
    m.host.kill = (pid, signal) => {
      kill(pid, signal);
      if (pid === 200 && signal === 'SIGSTOP') procs[1]!.gone = true;
    };
    await expect(pauseContainer(m.container, m.opts)).resolves.toEqual({ stopped: 2 });
    expect(m.log).toContain('pause (0 running)');
  });

  it('gives up at the deadline: names the threads, resumes every process, does not pause', async () => {
    const m = machine([
      { pid: 100, threads: [100], lag: 0, stopped: false },
      { pid: 200, threads: [200, 201], lag: Number.POSITIVE_INFINITY, stopped: false },
    ]);
    const err = await pauseContainer(m.container, { ...m.opts, deadlineMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LabError);
    expect((err as Error).message).toMatch(/^pause lab\/node-1: 2 thread\(s\) had not stopped after 200 ms \(tid, command, state: 200 node R; 201 node R\)/);
    expect(m.log.some((l) => l.startsWith('pause'))).toBe(false);
    expect(m.log.slice(-2)).toEqual(['SIGCONT 100', 'SIGCONT 200']);
  });

  it('is plain docker pause on cgroup v2', async () => {
    const m = machine([{ pid: 100, threads: [100], lag: 0, stopped: false }], { cgroup: '0::/system.slice/docker-abc.scope\n' });
    expect(await pauseContainer(m.container, m.opts)).toEqual({ plain: 'no freezer cgroup (cgroup v2)' });
    expect(m.log).toEqual(['pause (1 running)']);
  });

  it('is plain docker pause when the harness may not signal the processes (not root)', async () => {
    const m = machine([{ pid: 100, threads: [100], lag: 0, stopped: false }], { deny: true });
    expect(await pauseContainer(m.container, m.opts)).toEqual({ plain: 'not allowed to signal process 100 (EPERM)' });
    expect(m.log).toEqual(['pause (1 running)']);
  });

  it('is plain docker pause when the freezer cgroup is not visible from here', async () => {
    const m = machine([{ pid: 100, threads: [100], lag: 0, stopped: false }]);
    const how = await pauseContainer(m.container, { ...m.opts, freezerRoot: '/elsewhere' });
    expect(how).toEqual({ plain: 'cannot read /elsewhere/docker/abc/cgroup.procs (ENOENT)' });
    expect(m.log).toEqual(['pause (1 running)']);
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
