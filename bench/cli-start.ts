/**
 * Benchmark: what one `egresslab` command costs to start, beside the floor of a bare `node -e 0`,
 * interleaved, over several runs. Every CLI call in a test (exec, partition, capture, status,
 * apply, down, ...) pays it, and so does a user at a prompt. Timed per command: wall time and the
 * CPU time of the child (user + system, from this process's reaped-children counters in
 * /proc/self/stat), medians. The commands start no container and need no lab: `--help`, and
 * `status` / `down` of a lab that does not exist (they load the lab runtime and ask the engine).
 * Each command's answer is checked (exit code, message): one that fails early (no build, no
 * engine) would otherwise time nothing. `--bin` times another checkout's CLI (e.g. a build of main before a change) in the same run,
 * interleaved with this one's, for a before/after.
 *   npm run build && node dist/bench/cli-start.js [--runs 7] [--bin /path/to/other/bin/egresslab.js]
 */
import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { programArgs } from '../harness/util/args.js';
import { projectRoot } from '../harness/util/paths.js';
import { median } from './lab-guard.js';

const { flags } = programArgs('dist/bench/cli-start.js', {
  flags: { runs: { value: true, int: true }, bin: { value: true, arg: 'FILE' } },
  about: '  What one egresslab command costs to start (wall and CPU), beside a bare node -e 0, interleaved.',
  check: (f) => (f.runs !== undefined && f.runs < 1 ? [{ path: '--runs', value: f.runs, message: 'must be at least 1' }] : []),
});
const runs = flags.runs ?? 7;
const HZ = 100;
const LAB = 'cli-start-bench-none';

/** CPU seconds of this process's reaped children so far (cutime + cstime). */
function childrenCpu(): number {
  const s = readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / HZ;
}

interface Case {
  what: string;
  argv: string[];
  /** what the command must answer: a command that fails early (no build, no engine) would time nothing */
  expect: { exitCode: number; stderr?: string };
}

async function timed(c: Case): Promise<{ wallMs: number; cpuMs: number }> {
  const c0 = childrenCpu();
  const t0 = performance.now();
  const r = await execa(process.execPath, c.argv, { reject: false, stdin: 'ignore' });
  const wallMs = performance.now() - t0;
  if (r.exitCode !== c.expect.exitCode || (c.expect.stderr && !r.stderr.includes(c.expect.stderr)))
    throw new Error(
      `${c.what}: expected exit ${c.expect.exitCode}${c.expect.stderr ? ` and "${c.expect.stderr}"` : ''}, got exit ${r.exitCode}: ${r.stderr.trim().slice(0, 300)}`,
    );
  return { wallMs, cpuMs: (childrenCpu() - c0) * 1000 };
}

const bins: { name: string; file: string }[] = [{ name: 'this checkout', file: `${projectRoot()}/bin/egresslab.js` }];
if (flags.bin) bins.push({ name: flags.bin, file: flags.bin });
// status and down of a lab that is not up: they load the lab runtime, ask the engine, and say so
const NO_LAB = { exitCode: 1, stderr: `no lab named ${LAB} is up` };
const cases: Case[] = [
  { what: 'node -e 0 (floor)', argv: ['-e', '0'], expect: { exitCode: 0 } },
  ...bins.flatMap((b) => [
    { what: `${b.name}: --help`, argv: [b.file, '--help'], expect: { exitCode: 0 } },
    { what: `${b.name}: status --lab (none)`, argv: [b.file, 'status', '--lab', LAB], expect: NO_LAB },
    { what: `${b.name}: down --lab (none)`, argv: [b.file, 'down', '--lab', LAB], expect: NO_LAB },
  ]),
];
const results = new Map<string, { wall: number[]; cpu: number[] }>(cases.map((c) => [c.what, { wall: [], cpu: [] }]));
// one untimed warm-up of each (file cache)
for (const c of cases) await timed(c);
for (let i = 0; i < runs; i++) {
  for (const c of cases) {
    const r = await timed(c);
    results.get(c.what)!.wall.push(r.wallMs);
    results.get(c.what)!.cpu.push(r.cpuMs);
  }
}
const floor = results.get(cases[0]!.what)!;
console.log(`egresslab CLI start, ${runs} runs each, interleaved (medians; ratio to the floor's wall time)`);
for (const c of cases) {
  const r = results.get(c.what)!;
  const w = median(r.wall);
  console.log(
    `  ${c.what.padEnd(Math.max(...cases.map((x) => x.what.length)))}  wall ${w.toFixed(0).padStart(5)} ms  CPU ${median(r.cpu).toFixed(0).padStart(5)} ms  x${(w / median(floor.wall)).toFixed(1)}`,
  );
}
