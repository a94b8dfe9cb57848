/**
 * Benchmark: time to bring a lab up (warm image) beside the floor of the same containers started
 * bare (create + start, --network none, no wiring, no processes), interleaved, over several runs.
 * Usage: node dist/bench/lab-up.js [--runs N] [--topology NAME|FILE]
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { ensureImage } from '../harness/docker/image.js';
import { Lab } from '../harness/lab/lab.js';
import { bareContainers, bareContainersMs, labCpuSplitReader, machineBusyMs } from './lab-measure.js';
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

const floor = (image: string) => bareContainers(image, count);
const sandboxed = (image: string): Promise<number> => bareContainersMs(image, count, { sandbox: true });

/** Where one lab up's CPU went (ms): null parts where they cannot be read (remote engine, no /proc). */
interface LabCpu {
  machine: number | null;
  /** the system under test: every agent, the controller */
  sut: { agents: number; controller: number } | null;
  /** the harness inside the lab: helpers, responders, processes that ended (wiring, execs, readiness check, tools the agents ran), other live processes */
  inLab: { helpers: number; responders: number; wiring: number; exited: number; other: number } | null;
  /** this bench's process: the harness's host side */
  host: number;
}

async function lab(): Promise<{ ms: number; cpu: LabCpu }> {
  const id = `bench-${randomBytes(3).toString('hex')}`;
  const c0 = machineBusyMs();
  const h0 = process.cpuUsage();
  const t0 = performance.now();
  const l = await Lab.up({ topology, id });
  const ms = performance.now() - t0;
  // one engine list call (~10 ms), then every counter read together
  const split = await labCpuSplitReader(id);
  const c1 = machineBusyMs();
  const h = process.cpuUsage(h0);
  const p = split?.() ?? null;
  await l.down();
  return {
    ms,
    cpu: {
      machine: c0 === null || c1 === null ? null : c1 - c0,
      sut: p && { agents: p.byProgram.agent, controller: p.byProgram.controller },
      inLab: p && { helpers: p.byProgram.helper, responders: p.byProgram.responder, wiring: p.wiring, exited: p.exited, other: p.byProgram.other },
      host: (h.user + h.system) / 1000,
    },
  };
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
const floorCpus: number[] = [];
const sandboxes: number[] = [];
const labs: number[] = [];
const labCpus: LabCpu[] = [];
for (let i = 0; i < runs; i++) {
  const f = await floor(image);
  floors.push(f.ms);
  if (f.cpuMs !== null) floorCpus.push(f.cpuMs);
  sandboxes.push(await sandboxed(image));
  const l = await lab();
  labs.push(l.ms);
  labCpus.push(l.cpu);
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

// Where the CPU went, and what that allows on this machine's cores.
const cores = availableParallelism();
const med = (xs: number[]): number => stats(xs).median;
const ms = (x: number): string => `${x.toFixed(0)} ms`;
const machine = labCpus.map((c) => c.machine).filter((x): x is number => x !== null);
if (floorCpus.length === runs && machine.length === runs) {
  const fc = med(floorCpus);
  console.log(`  CPU time, median per run (this machine, ${cores} cores; /proc/stat, 10 ms steps):`);
  console.log(`    floor:  ${ms(fc)} of CPU in ${ms(f.median)} (${(fc / f.median).toFixed(2)} cores busy on average)`);
  console.log(`    lab up: ${ms(med(machine))} of CPU in ${ms(l.median)} (${(med(machine) / l.median).toFixed(2)} cores busy on average)`);
  const parts = labCpus.flatMap((c) => (c.machine !== null && c.sut && c.inLab ? [{ machine: c.machine, sut: c.sut, inLab: c.inLab, host: c.host }] : []));
  if (parts.length === runs) {
    const agents = med(parts.map((p) => p.sut.agents));
    const controller = med(parts.map((p) => p.sut.controller));
    const sut = agents + controller;
    const nodes = topology.nodes.length;
    const rest = parts.map(
      (p) => p.machine - p.sut.agents - p.sut.controller - p.inLab.helpers - p.inLab.responders - p.inLab.wiring - p.inLab.exited - p.inLab.other - p.host,
    );
    console.log(`      system under test: ${ms(sut)} (${nodes} agents ${ms(agents)}, ${ms(agents / nodes)} each; controller ${ms(controller)})`);
    console.log(
      `      harness in the lab: helpers ${ms(med(parts.map((p) => p.inLab.helpers)))}, responders ${ms(med(parts.map((p) => p.inLab.responders)))}, ` +
        `wiring ${ms(med(parts.map((p) => p.inLab.wiring)))}, other processes that ended (execs, the readiness check, the agents' nft and ip) ${ms(med(parts.map((p) => p.inLab.exited)))}, ` +
        `other ${ms(med(parts.map((p) => p.inLab.other)))}`,
    );
    console.log(
      `      harness host process: ${ms(med(parts.map((p) => p.host)))}; the rest (the engine and the kernel, the containers' start as in the floor; anything else the machine ran) ${ms(med(rest))}`,
    );
    // Lower bound: the floor's CPU plus the system under test's own, spread perfectly over every core,
    // with a harness that costs nothing. And what 1.5x the floor leaves for everything but the containers.
    const boundMs = Math.max(f.median, (fc + sut) / cores);
    const budget = 1.5 * f.median * cores - fc;
    console.log(
      `    bound: the floor's CPU plus the system under test's (${ms(fc + sut)}) on ${cores} cores: lab up >= ${ms(boundMs)}, ratio >= ${(boundMs / f.median).toFixed(2)} with a harness that cost nothing`,
    );
    console.log(
      `    1.5x the floor leaves ${ms(Math.max(0, budget))} of CPU beyond the floor's for the system under test and the harness together (the system under test alone: ${ms(sut)})`,
    );
  }
}
