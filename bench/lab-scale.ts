/**
 * Benchmark: large labs on one machine (issue 13). For each size N (nodes, counting the one
 * control-plane node) a topology is generated: N-1 workers, a pod on each, the cluster on
 * (controller on cp-1, the agent on every node, ip-masq-agent). Printed per size, side by side:
 * the floor (the same number of bare containers started), time to `up` (every agent Up in the API,
 * the lab's own readiness), a UDP probe from the last worker's pod to 8.8.8.8 whose source the far
 * end observed (must be that node's IP: masquerade works on the last node too), and the idle CPU of
 * the whole lab over one window after a settle time; then how each grows with N (ratio to the
 * smallest size, per node).
 *
 *   npm run build && node dist/bench/lab-scale.js [--sizes 10,25,50,100] [--settle 10] [--seconds 20]
 */
import { randomBytes } from 'node:crypto';
import { ensureImage } from '../harness/docker/image.js';
import { Lab } from '../harness/lab/lab.js';
import { generatedTopology } from '../harness/topology/generated.js';
import { planLab } from '../harness/topology/plan.js';
import { programArgs } from '../harness/util/args.js';
import { bareContainersMs, labIdleCpuPercent } from './lab-measure.js';

const { flags } = programArgs('dist/bench/lab-scale.js', {
  flags: { sizes: { value: true, arg: 'N,N,...' }, settle: { value: true, int: true }, seconds: { value: true, int: true } },
  about: '  Large labs: time to up, a probe from the last node, and idle CPU for several node counts.',
  check: (f) => {
    const bad = (f.sizes ?? '10').split(',').filter((x) => !/^\d+$/.test(x) || Number(x) < 2 || Number(x) > 200);
    return bad.length ? [{ path: '--sizes', value: f.sizes, message: `every size must be a whole number from 2 to 200 (not ${bad.join(', ')})` }] : [];
  },
});
const SIZES = (flags.sizes ?? '10,25,50,100').split(',').map(Number);
const SETTLE_S = flags.settle ?? 10;
const WINDOW_S = flags.seconds ?? 20;

interface Row {
  n: number;
  containers: number;
  floorMs: number;
  upMs: number | null;
  error?: string;
  probe?: string;
  idlePct?: number;
}

// SIGINT/SIGTERM: a lab coming up is aborted (Lab.up removes what it created), one that is up is removed; exit 130.
const ac = new AbortController();
let current: Lab | undefined;
const onSignal = (sig: NodeJS.Signals): void => {
  if (ac.signal.aborted) {
    process.stderr.write(`\n${sig} again: leaving now; "egresslab prune" removes what is left\n`);
    process.exit(130);
  }
  process.stderr.write(`\n${sig}: stopping and removing the lab\n`);
  ac.abort();
  if (current) void current.down().finally(() => process.exit(130));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

async function measure(image: string, n: number): Promise<Row> {
  if (ac.signal.aborted) process.exit(130); // between two sizes
  const topology = generatedTopology(n);
  const containers = planLab(topology).containers.length + 1; // + the wirer
  const floorMs = await bareContainersMs(image, containers);
  if (ac.signal.aborted) process.exit(130);
  const t0 = performance.now();
  let lab: Lab;
  try {
    lab = await Lab.up({ topology, id: `bscale-${n}-${randomBytes(2).toString('hex')}`, signal: ac.signal });
  } catch (e) {
    if (ac.signal.aborted) process.exit(130);
    return { n, containers, floorMs, upMs: null, error: (e as Error).message.split('\n')[0]! };
  }
  current = lab;
  if (ac.signal.aborted) {
    await lab.down();
    process.exit(130);
  }
  const upMs = performance.now() - t0;
  try {
    const last = n - 1;
    const r = await lab.probe(`default/pod-${last}`, '8.8.8.8', { proto: 'udp', port: 53 });
    const want = topology.nodes.find((x) => x.name === `node-${last}`)!.address;
    const probe = `${r.observedSource ?? 'nothing observed'}${r.observedSource === want ? ' (its node IP: ok)' : ` (expected ${want}: WRONG)`}`;
    lab.closeHelpers(); // the harness's own helpers must not count
    await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
    const idlePct = await labIdleCpuPercent(lab.id, WINDOW_S);
    return { n, containers, floorMs, upMs, probe, idlePct };
  } finally {
    // interrupted: the signal handler removes the lab and exits; nothing may end the process before
    if (ac.signal.aborted) await new Promise(() => {});
    current = undefined;
    await lab.down();
  }
}

const image = await ensureImage((m) => process.stderr.write(`${m}\n`));
await bareContainersMs(image, 4); // warm-up
const rows: Row[] = [];
for (const n of SIZES) {
  const row = await measure(image, n);
  if (ac.signal.aborted) process.exit(130); // during the lab's removal
  rows.push(row);
  process.stderr.write(
    `${n} nodes: ${row.upMs === null ? `FAILED: ${row.error}` : `up in ${row.upMs.toFixed(0)} ms (floor ${row.floorMs.toFixed(0)} ms), probe ${row.probe}, idle ${row.idlePct!.toFixed(1)} % of one core`}\n`,
  );
}
console.log(`lab-scale: generated topologies (N-1 workers + cp-1, a pod per worker, cluster on), warm image, idle over ${WINDOW_S} s after ${SETTLE_S} s`);
console.log(
  `  ${'nodes'.padStart(5)} ${'containers'.padStart(10)} ${'floor'.padStart(9)} ${'up'.padStart(9)} ${'up/floor'.padStart(8)} ${'idle CPU'.padStart(9)} ${'idle/node'.padStart(9)}  probe from the last node's pod`,
);
for (const r of rows) {
  if (r.upMs === null) {
    console.log(`  ${String(r.n).padStart(5)} ${String(r.containers).padStart(10)} ${`${r.floorMs.toFixed(0)} ms`.padStart(9)}  did not come up: ${r.error}`);
    continue;
  }
  console.log(
    `  ${String(r.n).padStart(5)} ${String(r.containers).padStart(10)} ${`${r.floorMs.toFixed(0)} ms`.padStart(9)} ${`${r.upMs.toFixed(0)} ms`.padStart(9)} ${(r.upMs / r.floorMs).toFixed(2).padStart(8)} ${`${r.idlePct!.toFixed(1)} %`.padStart(9)} ${`${(r.idlePct! / r.n).toFixed(2)} %`.padStart(9)}  ${r.probe}`,
  );
}
const ok = rows.filter((r) => r.upMs !== null);
if (ok.length > 1) {
  const a = ok[0]!;
  const b = ok.at(-1)!;
  const k = b.n / a.n;
  console.log(
    `  from ${a.n} to ${b.n} nodes (x${k.toFixed(1)}): time to up x${(b.upMs! / a.upMs!).toFixed(2)}, idle CPU x${(b.idlePct! / a.idlePct!).toFixed(2)} (linear would be x${k.toFixed(1)})`,
  );
}
const fifty = rows.find((r) => r.n === 50);
if (fifty) console.log(`  50 nodes up in <= 60 s: ${fifty.upMs !== null && fifty.upMs <= 60_000 ? 'met' : 'NOT met'}`);
const hundred = rows.find((r) => r.n === 100);
if (hundred) console.log(`  100 nodes come up at all: ${hundred.upMs !== null ? 'yes' : 'NO'}`);
