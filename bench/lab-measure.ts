/**
 * What the lab benchmarks measure from the engine's side, in one place: the floor (the same number
 * of bare containers created and started, --network none, no wiring, no processes) and every lab
 * container's CPU time (Docker stats: cgroup v1 and v2, local or remote engine).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
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
  const id = `bench-floor-${randomBytes(3).toString('hex')}`;
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
    return performance.now() - t0;
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
  const list = await docker().listContainers({ filters: { label: [`${LABEL.lab}=${labId}`] } });
  const files = list.map((c) => {
    const v1 = `/sys/fs/cgroup/cpuacct/docker/${c.Id}/cpuacct.usage`;
    const v2 = `/sys/fs/cgroup/system.slice/docker-${c.Id}.scope/cpu.stat`;
    return { key: keyOf(c.Names[0] ?? c.Id), v1, v2 };
  });
  const readNs = (f: { v1: string; v2: string }): number | null => {
    try {
      return Number(readFileSync(f.v1, 'utf8'));
    } catch {
      try {
        const m = /^usage_usec (\d+)$/m.exec(readFileSync(f.v2, 'utf8'));
        return m ? Number(m[1]) * 1000 : null;
      } catch {
        return null;
      }
    }
  };
  if (files.length === 0 || files.some((f) => readNs(f) === null)) return null;
  return () => new Map(files.map((f) => [f.key, readNs(f) ?? 0]));
}
