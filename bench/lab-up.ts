/**
 * Benchmark: time to bring a lab up (warm image) beside the floor of the same containers started
 * bare (create + start, --network none, no wiring, no processes), interleaved, over several runs.
 * Usage: node dist/bench/lab-up.js [--runs N] [--topology NAME|FILE]
 */
import { randomBytes } from 'node:crypto';
import { ensureImage } from '../harness/docker/image.js';
import { Lab } from '../harness/lab/lab.js';
import { bareContainersMs } from './lab-measure.js';
import { topologyFromArg } from '../harness/topology/load.js';
import { planLab } from '../harness/topology/plan.js';
import { programArgs } from '../harness/util/args.js';

const { flags } = programArgs('dist/bench/lab-up.js', {
  flags: { runs: { value: true, int: true }, topology: { value: true, arg: 'NAME|FILE' } },
  about: '  Time to bring a lab up (warm image) beside the floor of the same containers started bare, interleaved.',
  check: (f) => (f.runs !== undefined && f.runs < 1 ? [{ path: '--runs', value: f.runs, message: 'must be at least 1' }] : []),
});
const runs = flags.runs ?? 5;
const topoArg = flags.topology ?? 'default';
const topology = topologyFromArg(topoArg);
const count = planLab(topology).containers.length + 1; // + the wirer

const floor = (image: string): Promise<number> => bareContainersMs(image, count);
const sandboxed = (image: string): Promise<number> => bareContainersMs(image, count, { sandbox: true });

async function lab(): Promise<number> {
  const t0 = performance.now();
  const l = await Lab.up({ topology, id: `bench-${randomBytes(3).toString('hex')}` });
  const ms = performance.now() - t0;
  await l.down();
  return ms;
}

function stats(xs: number[]): { median: number; mean: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return {
    median: s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2,
    mean: xs.reduce((a, b) => a + b, 0) / xs.length,
    min: s[0]!,
    max: s[s.length - 1]!,
  };
}

const image = await ensureImage((m) => process.stderr.write(`${m}\n`));
// One untimed warm-up of each.
await floor(image);
await sandboxed(image);
await lab();
const floors: number[] = [];
const sandboxes: number[] = [];
const labs: number[] = [];
for (let i = 0; i < runs; i++) {
  floors.push(await floor(image));
  sandboxes.push(await sandboxed(image));
  labs.push(await lab());
  process.stderr.write(
    `run ${i + 1}/${runs}: floor ${floors[i]!.toFixed(0)} ms, with sandboxes ${sandboxes[i]!.toFixed(0)} ms, lab ${labs[i]!.toFixed(0)} ms\n`,
  );
}
const f = stats(floors);
const l = stats(labs);
const fmt = (s: ReturnType<typeof stats>) => `median ${s.median.toFixed(0)} ms, mean ${s.mean.toFixed(0)} ms, min ${s.min.toFixed(0)}, max ${s.max.toFixed(0)}`;
console.log(`lab-up benchmark: topology ${topoArg} (${count} containers, cluster ${topology.cluster ? 'on' : 'off'}), ${runs} runs, warm image`);
console.log(`  floor (bare containers): ${fmt(f)}`);
console.log(`  bare containers with the engine's network sandbox (reference: how lab containers were created before): ${fmt(stats(sandboxes))}`);
console.log(`  lab up (wired, ready):   ${fmt(l)}`);
console.log(`  ratio lab/floor (median): ${(l.median / f.median).toFixed(2)}  (target <= 1.5; lab up target <= 3000 ms)`);
