/**
 * What the lab benchmarks measure from the engine's side, in one place: the floor (the same number
 * of bare containers created and started, --network none, no wiring, no processes) and every lab
 * container's CPU time (Docker stats: cgroup v1 and v2, local or remote engine).
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { docker, LABEL } from '../harness/docker/client.js';
import { LAB_CONFIG, labSysctls } from '../harness/docker/containers.js';
import { removeLabObjects } from '../harness/lab/registry.js';

/**
 * Milliseconds to create and start `count` bare containers of `image` in parallel (removed after),
 * with the lab's network options (harness/docker/containers.ts: `--network none` with networking
 * disabled, IPv6 off); the rest of the lab's create request (capabilities, seccomp, mounts) is left
 * out. `sandbox: true` leaves NetworkDisabled out: the engine then also
 * builds a libnetwork sandbox per container, as lab containers had until networking was disabled
 * (printed beside the floor for reference, never used as the floor).
 */
export async function bareContainersMs(image: string, count: number, options: { sandbox?: boolean } = {}): Promise<number> {
  return (await bareContainers(image, count, options)).ms;
}

/** bareContainersMs, with the machine's busy CPU time over the same interval (null where /proc/stat cannot be read). */
export async function bareContainers(image: string, count: number, options: { sandbox?: boolean } = {}): Promise<{ ms: number; cpuMs: number | null }> {
  const id = `bench-floor-${randomBytes(3).toString('hex')}`;
  const c0 = machineBusyMs();
  const t0 = performance.now();
  try {
    await Promise.all(
      Array.from({ length: count }, async () => {
        const c = await docker().createContainer({
          Image: image,
          Cmd: ['sleep', 'infinity'],
          Labels: { [LABEL.lab]: id },
          ...(options.sandbox ? {} : { NetworkDisabled: LAB_CONFIG.NetworkDisabled }),
          HostConfig: { NetworkMode: 'none', Init: true, ...(options.sandbox ? {} : { Sysctls: labSysctls() }) },
        });
        await c.start();
      }),
    );
    const ms = performance.now() - t0;
    const c1 = machineBusyMs();
    return { ms, cpuMs: c0 === null || c1 === null ? null : c1 - c0 };
  } finally {
    await removeLabObjects(id);
  }
}

/** A lab container's key in the lab (node-1, cp-1, router, ...) from its engine name. */
const keyOf = (name: string): string => name.replace(/^\/egl-[^-]+-[^-]+-/, '');

/** CPU time (ns) of every container of lab `labId`, by its key in the lab (node-1, cp-1, router, ...). */
export async function labCpuNs(labId: string): Promise<Map<string, number>> {
  const list = await docker().listContainers({ filters: { label: [`${LABEL.lab}=${labId}`] } });
  const out = new Map<string, number>();
  await Promise.all(
    list.map(async (c) => {
      const s = (await docker().getContainer(c.Id).stats({ stream: false })) as unknown as { cpu_stats: { cpu_usage: { total_usage: number } } };
      out.set(keyOf(c.Names[0] ?? c.Id), s.cpu_stats.cpu_usage.total_usage);
    }),
  );
  return out;
}

/** Percent of one core the lab's containers used over `seconds` (all containers summed), from two stats readings. */
export async function labIdleCpuPercent(labId: string, seconds: number): Promise<number> {
  const a = { at: process.hrtime.bigint(), cpu: await labCpuNs(labId) };
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const b = { at: process.hrtime.bigint(), cpu: await labCpuNs(labId) };
  let ns = 0;
  for (const [k, v] of b.cpu) ns += v - (a.cpu.get(k) ?? v);
  return (ns / Number(b.at - a.at)) * 100;
}

/**
 * The lab's containers' cgroup CPU counters, read from the host's cgroup files (cgroup v1
 * cpuacct.usage, or v2 cpu.stat usage_usec) when the engine is local: a read costs microseconds, so
 * it can bracket a sub-second event without disturbing it (a Docker stats call takes ~1 s of engine
 * work per container). Returns a reader to call at each point of time, or null when the files are
 * not there (remote engine, another cgroup layout): then use labCpuNs.
 */
export async function labCpuReader(labId: string): Promise<(() => Map<string, number>) | null> {
  return cgroupReader(await labContainers(labId));
}

/** The lab's running containers: engine id and key in the lab (node-1, cp-1, router, ...). */
async function labContainers(labId: string): Promise<{ id: string; key: string }[]> {
  const list = await docker().listContainers({ filters: { label: [`${LABEL.lab}=${labId}`] } });
  return list.map((c) => ({ id: c.Id, key: keyOf(c.Names[0] ?? c.Id) }));
}

/**
 * A container's cgroup CPU counter in ns, from the host's cgroup files (v1 cpuacct.usage, or v2
 * cpu.stat usage_usec), or null when neither is there (remote engine, another cgroup layout).
 */
export function cgroupCpuNs(id: string): number | null {
  try {
    return Number(readFileSync(`/sys/fs/cgroup/cpuacct/docker/${id}/cpuacct.usage`, 'utf8'));
  } catch {
    try {
      const m = /^usage_usec (\d+)$/m.exec(readFileSync(`/sys/fs/cgroup/system.slice/docker-${id}.scope/cpu.stat`, 'utf8'));
      return m ? Number(m[1]) * 1000 : null;
    } catch {
      return null;
    }
  }
}

/** labCpuReader for containers already listed. */
function cgroupReader(containers: readonly { id: string; key: string }[]): (() => Map<string, number>) | null {
  if (containers.length === 0 || containers.some((c) => cgroupCpuNs(c.id) === null)) return null;
  return () => new Map(containers.map((c) => [c.key, cgroupCpuNs(c.id) ?? 0]));
}

/**
 * This machine's busy CPU time so far in ms, all CPUs summed (/proc/stat: user, nice, system, irq,
 * softirq; idle, iowait and steal left out), or null where it cannot be read. Its unit is the
 * kernel's USER_HZ, 100 per second on Linux: 10 ms steps.
 */
export function machineBusyMs(): number | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    return ((f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0)) * 10;
  } catch {
    return null;
  }
}

/** Who a lab process is, from its command line. */
export type LabProgram = 'agent' | 'controller' | 'helper' | 'responder' | 'other';
export function labProgramOf(cmdline: string): LabProgram {
  if (/\/agent\/main\.js(\s|$)/.test(cmdline)) return 'agent';
  if (/\/controller\/main\.js(\s|$)/.test(cmdline)) return 'controller';
  if (/\/inlab\/helper\.js(\s|$)/.test(cmdline)) return 'helper';
  if (/\/inlab\/responder\.js(\s|$)/.test(cmdline)) return 'responder';
  return 'other';
}

/** Where a lab's CPU went so far (ms). */
export interface LabCpuSplit {
  /** live processes' own CPU, by program (the wirer's left out) */
  byProgram: Record<LabProgram, number>;
  /** the wirer container's whole count: the wiring script and the commands it ran */
  wiring: number;
  /**
   * processes that ended (the wirer's left out): what each container's cgroup counted beyond its
   * live processes (execs, the cluster's readiness check, the commands the agents ran)
   */
  exited: number;
  /** every lab container's count */
  containers: number;
}

/** A live process's own CPU time in ms: its threads' run time (schedstat, ns), else its ticks (10 ms steps). */
function processCpuMs(pid: string): number {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    if (Number.isFinite(ns)) return ns / 1e6;
  } catch {
    // no schedstat (a kernel without CONFIG_SCHED_INFO), or the process ended: ticks below
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime, stime (fields 14, 15): its own; its ended children are in the cgroup's count (exited)
  return (Number(f[11]) + Number(f[12])) * 10;
}

/**
 * Prepares a reading of where a local engine's lab's CPU went (the engine's list of its containers,
 * their cgroup files), and returns it: a synchronous reader, so that a caller can take it together
 * with its other counters (machineBusyMs, process.cpuUsage) with nothing in between. Every live
 * process of the lab's containers (the host's /proc) by program; the wirer's container as a whole;
 * the rest of each container's count as processes that ended. Null when the engine is not local or
 * the files cannot be read.
 */
export async function labCpuSplitReader(labId: string): Promise<(() => LabCpuSplit) | null> {
  const containers = await labContainers(labId);
  const read = cgroupReader(containers);
  if (!read) return null;
  const keys = new Map(containers.map((c) => [c.id, c.key]));
  return () => {
    const byProgram: Record<LabProgram, number> = { agent: 0, controller: 0, helper: 0, responder: 0, other: 0 };
    const live = new Map<string, number>();
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
        const id = [...keys.keys()].find((k) => cgroup.includes(k));
        if (!id) continue;
        const key = keys.get(id)!;
        const ms = processCpuMs(pid);
        live.set(key, (live.get(key) ?? 0) + ms);
        if (key !== 'wirer') byProgram[labProgramOf(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '))] += ms;
      } catch {
        // the process ended meanwhile
      }
    }
    let containers = 0;
    let exited = 0;
    let wiring = 0;
    for (const [key, ns] of read()) {
      const ms = ns / 1e6;
      containers += ms;
      if (key === 'wirer') wiring = ms;
      else exited += Math.max(0, ms - (live.get(key) ?? 0));
    }
    return { byProgram, wiring, exited, containers };
  };
}
