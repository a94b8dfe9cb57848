/**
 * Benchmark: what an idle lab costs. Brings up a topology (default: the default cluster lab), lets it
 * settle, then reads every lab container's CPU time from the engine (Docker stats: works on cgroup
 * v1 and v2 and on a remote engine) twice, `--seconds` apart, and prints the CPU share of one core
 * per container and in total, beside the target (3 % of one core for the whole default lab).
 * `--gateway` applies the seed's AnthosNetworkGateway and EgressNATPolicy first (holders refresh
 * their ARP fence, conntrackd runs), so both cases can be compared.
 *   npm run build && node dist/bench/idle-cost.js [--topology default] [--seconds 30] [--settle 10] [--gateway]
 */
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { Lab } from '../harness/lab/lab.js';
import { topologyFromArg } from '../harness/topology/load.js';
import { applyAll, loadManifests } from '../harness/cluster/apply.js';
import { docker, LABEL } from '../harness/docker/client.js';

const { values } = parseArgs({
  options: {
    topology: { type: 'string', default: 'default' },
    seconds: { type: 'string', default: '30' },
    settle: { type: 'string', default: '10' },
    gateway: { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const settle = Number(values.settle);
if (!(seconds > 0) || !(settle >= 0)) throw new Error(`--seconds and --settle must be positive numbers (got ${values.seconds}, ${values.settle})`);

async function cpuNs(labId: string): Promise<Map<string, number>> {
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

async function main(): Promise<void> {
  const lab = await Lab.up({ topology: topologyFromArg(values.topology!), id: `bidle-${randomBytes(3).toString('hex')}` });
  try {
    if (values.gateway) await applyAll(await lab.api(), loadManifests('fixtures/manifests/seed-000'));
    lab.closeHelpers(); // the harness's own helpers must not count (nor keep running)
    await new Promise((r) => setTimeout(r, settle * 1000));
    const a = await cpuNs(lab.id);
    const t0 = process.hrtime.bigint();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const b = await cpuNs(lab.id);
    const wallNs = Number(process.hrtime.bigint() - t0);
    let total = 0;
    console.log(`idle lab ${lab.id} (${values.topology}${values.gateway ? ', seed gateway and policy applied' : ''}), ${seconds} s after ${settle} s to settle; CPU as % of one core:`);
    for (const [name, ns] of [...b].sort()) {
      const pct = ((ns - (a.get(name) ?? ns)) / wallNs) * 100;
      total += pct;
      console.log(`  ${name.padEnd(10)} ${pct.toFixed(2).padStart(6)} %`);
    }
    console.log(`  ${'total'.padEnd(10)} ${total.toFixed(2).padStart(6)} %   (target: <= 3 % for the default lab)`);
  } finally {
    await lab.down();
  }
}

main().catch((e: unknown) => {
  console.error((e as Error).stack ?? String(e));
  process.exit(1);
});
