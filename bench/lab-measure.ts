/**
 * What the lab benchmarks measure from the engine's side, in one place: the floor (the same number
 * of bare containers created and started, --network none, no wiring, no processes) and every lab
 * container's CPU time (Docker stats: cgroup v1 and v2, local or remote engine).
 */
import { randomBytes } from 'node:crypto';
import { docker, LABEL } from '../harness/docker/client.js';
import { removeLabObjects } from '../harness/lab/registry.js';

/** Milliseconds to create and start `count` bare containers of `image` in parallel (removed after). */
export async function bareContainersMs(image: string, count: number): Promise<number> {
  const id = `bench-floor-${randomBytes(3).toString('hex')}`;
  const t0 = performance.now();
  try {
    await Promise.all(
      Array.from({ length: count }, async () => {
        const c = await docker().createContainer({ Image: image, Cmd: ['sleep', 'infinity'], Labels: { [LABEL.lab]: id }, HostConfig: { NetworkMode: 'none', Init: true } });
        await c.start();
      }),
    );
    return performance.now() - t0;
  } finally {
    await removeLabObjects(id);
  }
}

/** CPU time (ns) of every container of lab `labId`, by its key in the lab (node-1, cp-1, router, ...). */
export async function labCpuNs(labId: string): Promise<Map<string, number>> {
  const list = await docker().listContainers({ filters: { label: [`${LABEL.lab}=${labId}`] } });
  const out = new Map<string, number>();
  await Promise.all(
    list.map(async (c) => {
      const s = (await docker().getContainer(c.Id).stats({ stream: false })) as unknown as { cpu_stats: { cpu_usage: { total_usage: number } } };
      out.set((c.Names[0] ?? c.Id).replace(/^\/egl-[^-]+-[^-]+-/, ''), s.cpu_stats.cpu_usage.total_usage);
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
