/**
 * Commands for poking at a running lab and reproducing a failover bug by hand:
 *   exec, kill/stop/start/pause/unpause/partition/heal, degrade/restore, capture, timeline, run.
 * Each attaches to a running lab (--lab optional with one lab up), explains itself with --help and
 * an example, and says what to do next when it fails. Steps that take more than a second say so on
 * stderr.
 */
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { Lab, inPlace, type Place } from '../lab/lab.js';
import { parseCommand, type CommandSpec } from '../util/args.js';
import { LabError, ValidationError } from '../util/errors.js';
import { pollUntil } from '../util/poll.js';
import { DEFAULT_STOP_GRACE_S } from '../faults/faults.js';
import { artifactsDir, installedPackage, projectRoot, workspaceRoot } from '../util/paths.js';
import { describePacket } from '../pcap/pcap.js';
import type { Timeline } from '../probe/timeline.js';
import { summarize } from '../report/failover.js';
import { renderTimelineSvg } from '../report/timeline-svg.js';
import { describeOutage, describeTimeline } from '../testing/matchers.js';
import type { Proto } from '../inlab/protocol.js';

const out = (s: string) => process.stdout.write(`${s}\n`);
const progress = (s: string) => process.stderr.write(`${s}\n`);

/** Runs a step; says so on stderr when it takes more than a second, and how long it took. */
export async function step<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  let shown = false;
  const timer = setTimeout(() => {
    shown = true;
    progress(`${label}...`);
  }, 1000);
  try {
    const r = await fn();
    if (shown) progress(`${label}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return r;
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms`, or as soon as SIGINT/SIGTERM arrives (true when interrupted). */
function waitOrInterrupt(ms: number | undefined): Promise<boolean> {
  return new Promise((resolveWait) => {
    let timer: NodeJS.Timeout | undefined;
    const done = (interrupted: boolean) => {
      if (timer) clearTimeout(timer);
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
      resolveWait(interrupted);
    };
    const onSig = () => done(true);
    process.on('SIGINT', onSig);
    process.on('SIGTERM', onSig);
    if (ms !== undefined) timer = setTimeout(() => done(false), ms);
  });
}

const attach = (flags: Record<string, unknown>) => step('attaching to the lab', () => Lab.attach(flags.lab as string | undefined));

const LAB_FLAG = { lab: { value: true, arg: 'NAME' } } as const;

/** A fault command on one node: --lab and the node. */
const nodeCommand = (about: string, flags: CommandSpec['flags'] = {}): CommandSpec => ({
  flags: { ...LAB_FLAG, ...flags },
  args: 'NODE',
  maxPositionals: 1,
  about,
});

/** The lab commands' flags and help (the parsers and `egresslab help` read this table). */
export const LAB_SPECS: Record<string, CommandSpec> = {
  exec: {
    flags: { ...LAB_FLAG, stdin: { short: 'i' } },
    args: 'NODE|POD|ENDPOINT -- CMD [ARGS...]',
    maxPositionals: 1,
    about: `  Runs a command in a node, in a pod's network namespace (ns/name), or in the router, switch,
  internet or a VPC endpoint; streams its output and exits with its exit code. -i forwards stdin.
  Example: npx egresslab exec --lab demo node-1 -- nft list ruleset
           npx egresslab exec alice/frontend-1 -- ip route`,
  },
  kill: nodeCommand(`  SIGKILLs the node's container (a hard crash: every process dies, its links vanish).
  Undo with "egresslab start NODE". Example: npx egresslab kill --lab demo node-2`),
  stop: nodeCommand(
    `  Shuts the node down cleanly: SIGTERM to its programs, its links down once they have exited, then
  its container ends; a program still running after the grace period (default 10 s) gets it powered off as kill does.
  Undo with "egresslab start NODE". Example: npx egresslab stop node-2 --grace 5`,
    { grace: { value: true, int: true, arg: 'SECONDS' } },
  ),
  start: nodeCommand(`  Boots a killed or stopped node, re-wires its links, pods and routes and (cluster labs) starts its
  agent again. Example: npx egresslab start --lab demo node-2`),
  pause: nodeCommand(`  Freezes every process of the node (a hung node: its kernel still answers ARP and ping).
  Undo with "egresslab unpause NODE". Example: npx egresslab pause node-2`),
  unpause: nodeCommand(`  Thaws a paused node. Example: npx egresslab unpause node-2`),
  partition: nodeCommand(`  Cuts the node off its L2 segment at the switch (its link stays up). Undo with "egresslab heal NODE".
  Example: npx egresslab partition --lab demo node-1`),
  heal: nodeCommand(`  Reconnects a partitioned node. Example: npx egresslab heal node-1`),
  degrade: nodeCommand(
    `  Drops PCT % of the packets on the node's link in each direction (and/or delays them, where the
  kernel has sch_netem). Replaces an earlier degradation; undo with "egresslab restore NODE".
  Example: npx egresslab degrade node-2 --loss 30`,
    { loss: { value: true, arg: 'PCT' }, delay: { value: true, int: true, arg: 'MS' } },
  ),
  restore: nodeCommand(`  Removes loss and delay from the node's link. Example: npx egresslab restore node-2`),
  capture: {
    flags: { ...LAB_FLAG, filter: { value: true, arg: 'EXPR' }, seconds: { value: true, int: true }, json: {} },
    args: 'WHERE IFACE',
    maxPositionals: 2,
    about: `  Captures packets with tcpdump on an interface of a node, pod, endpoint, router or switch for N
  seconds (or until Ctrl-C), copies the pcap to artifacts/<lab>/captures/ and prints its path and a
  short summary (--json: {file, packets, summary}).
  Example: npx egresslab capture --lab demo node-1 eth0 --filter "udp or icmp" --seconds 5`,
  },
  timeline: {
    flags: {
      ...LAB_FLAG,
      from: { value: true, required: true, arg: 'POD|NODE' },
      to: { value: true, required: true, arg: 'IP' },
      proto: { value: true, oneOf: ['tcp', 'udp', 'icmp'] },
      port: { value: true, int: true },
      'interval-ms': { value: true, int: true, arg: 'MS' },
      'timeout-ms': { value: true, int: true, arg: 'MS' },
      seconds: { value: true, int: true },
      allow: { value: true, arg: 'IP,...' },
      svg: { value: true, arg: 'FILE' },
      json: {},
    },
    about: `  Sends sequence-numbered packets every MS ms (default 20; --timeout-ms: how long each waits for its
  reply) for N seconds (or until Ctrl-C), then prints the outages (seq ranges, times, durations), the
  sources the far end observed and, with --allow, the packets seen with any other source (leaks).
  --svg writes the timeline as an SVG (packets coloured by source, outages shaded, leaks in red).
  Run a fault in another terminal meanwhile.
  Example: npx egresslab timeline --from alice/frontend-1 --to 8.8.8.8 --seconds 20 --allow 192.168.1.100 --svg failover.svg`,
  },
  run: {
    flags: { keep: {}, test: { value: true, short: 't', arg: 'PATTERN' }, 'no-build': {} },
    args: 'SCENARIO [-- VITEST ARGS...]',
    maxPositionals: 1,
    about: `  Builds (tsc) and runs one scenario file through vitest (project "lab"). SCENARIO is a path or a
  name under scenarios/ ("foundation/faults"). A lab whose file has a failing test is kept (--keep:
  kept anyway) with how to reach it printed; failures leave artifacts under artifacts/<lab>/.
  Installed as a dependency, it runs your project's vitest on your scenarios/ (nothing to build).
  Example: npx egresslab run foundation/timeline --keep`,
  },
};

// ---------------------------------------------------------------- exec

/** Runs `cmd` at `place`, streaming its output to ours; its exit code. */
async function streamExec(lab: Lab, place: Place, cmd: string[], stdin: boolean): Promise<number> {
  const full = inPlace(place, cmd);
  const container = lab.container(place.container);
  let exec: Awaited<ReturnType<typeof container.exec>>;
  try {
    exec = await container.exec({ Cmd: full, AttachStdout: true, AttachStderr: true, AttachStdin: stdin });
  } catch (error) {
    const msg = (error as Error).message;
    const state = await container.inspect().then(
      (i) => i.State.Status + (i.State.Paused ? ' (paused)' : ''),
      () => 'missing',
    );
    throw new LabError(
      `cannot run a command in ${place.label} of lab ${lab.id} (container ${state}): ${msg.split('\n')[0]}\n` +
        (state.includes('paused')
          ? `unpause it first: npx egresslab unpause --lab ${lab.id} ${place.container}`
          : `start it first: npx egresslab start --lab ${lab.id} ${place.container}`),
    );
  }
  const stream = await exec.start({ hijack: true, stdin });
  // Our reader went away (egresslab exec ... | head): stop quietly, as a shell pipeline would.
  let brokenPipe = false;
  const onPipeError = (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    brokenPipe = true;
    stream.destroy();
  };
  process.stdout.on('error', onPipeError);
  container.modem.demuxStream(stream, process.stdout, process.stderr);
  if (stdin) {
    process.stdin.pipe(stream);
    process.stdin.on('end', () => (stream as unknown as { end(): void }).end());
  }
  await new Promise<void>((res) => {
    stream.on('end', res);
    stream.on('close', res);
    stream.on('error', () => res());
  });
  if (stdin) {
    process.stdin.unpipe(stream);
    process.stdin.pause();
  }
  process.stdout.off('error', onPipeError);
  if (brokenPipe) return 141;
  const info = await pollUntil(() => exec.inspect(), { what: `the exit code of ${cmd.join(' ')}`, timeoutMs: 2000, intervalMs: 10, accept: (i) => !i.Running });
  return info.ExitCode ?? 1;
}

async function execCmd(argv: string[]): Promise<number> {
  const { flags, positionals, rest } = parseCommand('exec', LAB_SPECS.exec!, argv);
  const where = positionals[0];
  if (!where || rest.length === 0) {
    throw new ValidationError('exec', [
      {
        path: where ? 'CMD' : 'NODE|POD',
        value: where,
        message: `${where ? 'give the command after "--"' : 'say where to run it'}, e.g. egresslab exec node-1 -- ip route`,
      },
    ]);
  }
  const lab = await attach(flags);
  return streamExec(lab, lab.place(where), rest, Boolean(flags.stdin));
}

// ---------------------------------------------------------------- faults

function nodeArg(command: string, positionals: string[]): string {
  const node = positionals[0];
  if (!node)
    throw new ValidationError(command, [
      { path: 'NODE', value: undefined, message: `is required, e.g. egresslab ${command} node-2 ("egresslab status" lists nodes)` },
    ]);
  return node;
}

type FaultName = 'kill' | 'stop' | 'start' | 'pause' | 'unpause' | 'partition' | 'heal';

const FAULT_TEXT: Record<FaultName, { doing: string; done: string; undo?: FaultName }> = {
  kill: { doing: 'killing', done: 'killed (SIGKILL)', undo: 'start' },
  stop: { doing: 'stopping', done: 'stopped', undo: 'start' },
  start: { doing: 'starting and re-wiring', done: 'started and re-wired' },
  pause: { doing: 'pausing', done: 'paused (processes frozen; the kernel still answers ARP and ping)', undo: 'unpause' },
  unpause: { doing: 'unpausing', done: 'unpaused' },
  partition: { doing: 'partitioning', done: 'partitioned (cut off the segment at the switch)', undo: 'heal' },
  heal: { doing: 'healing', done: 'healed (back on the segment)' },
};

function faultCmd(name: FaultName): (argv: string[]) => Promise<number> {
  return async (argv) => {
    const { flags, positionals } = parseCommand(name, LAB_SPECS[name]!, argv);
    const node = nodeArg(name, positionals);
    const grace = (flags.grace as number | undefined) ?? DEFAULT_STOP_GRACE_S;
    if (name === 'stop' && !(grace >= 0 && grace <= 3600))
      throw new ValidationError('stop', [{ path: '--grace', value: grace, message: 'must be a whole number of seconds from 0 to 3600' }]);
    const lab = await attach(flags);
    const t = FAULT_TEXT[name];
    const started = Date.now();
    let how = '';
    await step(`${t.doing} ${node}`, async () => {
      if (name === 'stop') {
        if ((await lab.faults.stop(node, grace)) === 'powered-off') how = ` (powered off: a program was still running ${grace} s after the SIGTERM)`;
        return;
      }
      return lab.faults[name](node);
    });
    out(`${node} ${t.done}${how} in ${Date.now() - started} ms${t.undo ? `; undo: npx egresslab ${t.undo} --lab ${lab.id} ${node}` : ''}`);
    return 0;
  };
}

async function degradeCmd(argv: string[]): Promise<number> {
  const { flags, positionals } = parseCommand('degrade', LAB_SPECS.degrade!, argv);
  const node = nodeArg('degrade', positionals);
  const loss = flags.loss === undefined ? undefined : Number(flags.loss);
  if (loss === undefined && flags.delay === undefined) {
    throw new ValidationError('degrade', [
      { path: '--loss', value: undefined, message: 'give --loss PCT and/or --delay MS, e.g. egresslab degrade node-2 --loss 30' },
    ]);
  }
  if (loss !== undefined && Number.isNaN(loss))
    throw new ValidationError('degrade', [{ path: '--loss', value: flags.loss, message: 'must be a number 0-100' }]);
  const lab = await attach(flags);
  await step(`degrading ${node}`, () =>
    lab.faults.degrade(node, {
      ...(loss !== undefined ? { lossPercent: loss } : {}),
      ...(flags.delay !== undefined ? { delayMs: flags.delay as number } : {}),
    }),
  );
  const what = [loss !== undefined ? `${loss}% loss` : '', flags.delay !== undefined ? `${flags.delay as number} ms delay` : ''].filter(Boolean).join(' and ');
  out(`${node}: ${what} on its link, both directions; undo: npx egresslab restore --lab ${lab.id} ${node}`);
  return 0;
}

async function restoreCmd(argv: string[]): Promise<number> {
  const { flags, positionals } = parseCommand('restore', LAB_SPECS.restore!, argv);
  const node = nodeArg('restore', positionals);
  const lab = await attach(flags);
  await step(`restoring ${node}`, () => lab.faults.restore(node));
  out(`${node}: link restored (no loss, no delay)`);
  return 0;
}

// ---------------------------------------------------------------- capture

async function captureCmd(argv: string[]): Promise<number> {
  const { flags, positionals } = parseCommand('capture', LAB_SPECS.capture!, argv);
  const [where, iface] = positionals;
  if (!where || !iface) {
    throw new ValidationError('capture', [
      { path: where ? 'IFACE' : 'WHERE', value: undefined, message: 'is required, e.g. egresslab capture node-1 eth0 --seconds 5' },
    ]);
  }
  const seconds = flags.seconds as number | undefined;
  if (seconds !== undefined && !(seconds > 0 && seconds <= 3600))
    throw new ValidationError('capture', [{ path: '--seconds', value: seconds, message: 'must be 1-3600' }]);
  const lab = await attach(flags);
  const cap = await step(`starting tcpdump on ${where}:${iface}`, () => lab.capture(where, iface, flags.filter ? { filter: flags.filter as string } : {}));
  progress(
    `capturing on ${where}:${iface}${flags.filter ? ` (${flags.filter as string})` : ''} ${seconds ? `for ${seconds} s (Ctrl-C stops early)` : 'until Ctrl-C'}`,
  );
  await waitOrInterrupt(seconds === undefined ? undefined : seconds * 1000);
  const r = await step('stopping the capture and copying the pcap', () => cap.stop());
  const summary = r.packets.map(
    (p) => `${new Date(p.t).toISOString().slice(11, 23)} ${p.direction === 'unknown' ? '' : `${p.direction} `}${describePacket(p)}`,
  );
  if (flags.json) {
    out(JSON.stringify({ lab: lab.id, where, iface, file: r.file, packets: r.packets.length, summary: summary.slice(0, 200) }));
    return 0;
  }
  out(`${r.file}`);
  out(`${r.packets.length} packet(s)${r.packets.length > 20 ? ', the first 20:' : r.packets.length ? ':' : ''}`);
  for (const l of summary.slice(0, 20)) out(`  ${l}`);
  if (r.packets.length > 20) out(`  ... (tcpdump -nr ${relative(process.cwd(), r.file) || r.file} shows them all)`);
  return 0;
}

// ---------------------------------------------------------------- timeline

function timelineReport(lab: Lab, t: Timeline, allowed: string[] | undefined, svg: string | undefined) {
  const r = summarize(t, allowed);
  const l = r.leaks;
  return {
    lab: lab.id,
    from: t.from,
    to: t.to,
    proto: t.proto,
    ...(t.port ? { port: t.port } : {}),
    intervalMs: t.intervalMs,
    packets: r.packets,
    answered: r.answered,
    deliveryRatio: Math.round(r.deliveryRatio * 1000) / 1000,
    start: r.start ?? null,
    outages: r.outages,
    longestOutageMs: r.longestOutageMs,
    sources: r.sources,
    allowedSources: allowed ?? null,
    leaks: l ? { count: l.count, packets: l.packets.map((p) => ({ seq: p.seq, t: p.t, sources: p.observedSources })), unattributed: l.unattributed } : null,
    svg: svg ?? null,
    timeline: t,
  };
}

async function timelineCmd(argv: string[]): Promise<number> {
  const { flags } = parseCommand('timeline', LAB_SPECS.timeline!, argv);
  const seconds = flags.seconds as number | undefined;
  const interval = (flags['interval-ms'] as number | undefined) ?? 20;
  const issues = [];
  if (seconds !== undefined && !(seconds > 0 && seconds <= 3600)) issues.push({ path: '--seconds', value: seconds, message: 'must be 1-3600' });
  if (!(interval >= 1 && interval <= 10_000)) issues.push({ path: '--interval-ms', value: interval, message: 'must be 1-10000' });
  const allowed = flags.allow
    ? String(flags.allow)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : undefined;
  if (issues.length) throw new ValidationError('timeline', issues);
  const lab = await attach(flags);
  const probe = await step(`starting the probe ${flags.from as string} -> ${flags.to as string}`, () =>
    lab.continuousProbe(flags.from as string, flags.to as string, {
      proto: (flags.proto as Proto | undefined) ?? 'udp',
      intervalMs: interval,
      ...(flags.port !== undefined ? { port: flags.port as number } : {}),
      ...(flags['timeout-ms'] !== undefined ? { timeoutMs: flags['timeout-ms'] as number } : {}),
    }),
  );
  progress(
    `probing ${probe.proto} ${flags.from as string} -> ${probe.to}${probe.port ? `:${probe.port}` : ''} every ${interval} ms ${seconds ? `for ${seconds} s (Ctrl-C stops early)` : 'until Ctrl-C'}`,
  );
  await waitOrInterrupt(seconds === undefined ? undefined : seconds * 1000);
  const t = await step('stopping the probe and reading what the far end observed', () => probe.stop());
  let svgFile: string | undefined;
  if (flags.svg) {
    svgFile = resolve(flags.svg as string);
    mkdirSync(dirname(svgFile), { recursive: true });
    writeFileSync(
      svgFile,
      renderTimelineSvg({ timeline: t, ...(allowed ? { allowedSources: allowed } : {}) }, { title: `lab ${lab.id}: ${describeTimeline(t)}` }),
    );
  }
  const report = timelineReport(lab, t, allowed, svgFile);
  if (flags.json) {
    out(JSON.stringify(report));
    return 0;
  }
  out(describeTimeline(t));
  out(`answered ${report.answered}/${report.packets} (${(report.deliveryRatio * 100).toFixed(1)}%)`);
  out(
    report.outages.length
      ? `outages:\n${report.outages.map((o) => `  ${describeOutage(o, report.start ?? undefined, o.lastSeq === t.packets[t.packets.length - 1]?.seq)}`).join('\n')}`
      : 'no outage',
  );
  out(
    `observed sources: ${
      Object.entries(report.sources)
        .map(([s, n]) => `${s} x${n}`)
        .join(', ') || 'none'
    }`,
  );
  if (report.leaks) {
    out(
      report.leaks.count ? `LEAKS (source not in ${allowed!.join(', ')}): ${report.leaks.count}` : `no leak (every observed source in ${allowed!.join(', ')})`,
    );
    for (const p of report.leaks.packets.slice(0, 20))
      out(`  seq ${p.seq} at +${((p.t - (report.start ?? p.t)) / 1000).toFixed(3)} s from ${p.sources.join(', ')}`);
    if (report.leaks.packets.length > 20) out(`  ... and ${report.leaks.packets.length - 20} more (--json lists them all)`);
  }
  if (svgFile) out(`svg: ${svgFile}`);
  return 0;
}

// ---------------------------------------------------------------- run

function walk(dir: string, found: string[] = []): string[] {
  if (!existsSync(dir)) return found;
  for (const e of readdirSync(dir)) {
    const full = join(dir, e);
    if (e === 'node_modules' || e === 'dist' || e.startsWith('.')) continue;
    if (statSync(full).isDirectory()) walk(full, found);
    else if (e.endsWith('.test.ts')) found.push(full);
  }
  return found;
}

/** A scenario argument -> one test file of the lab project. */
export function resolveScenario(arg: string, root = projectRoot()): string {
  const candidates = [
    arg,
    join(root, arg),
    join(root, 'scenarios', arg),
    join(root, 'scenarios', `${arg}.test.ts`),
    join(root, `${arg}.test.ts`),
    join(root, `${arg}.lab.test.ts`),
  ];
  for (const c of candidates) if (existsSync(c) && statSync(c).isFile()) return resolve(c);
  const all = [...walk(join(root, 'scenarios')), ...walk(join(root, 'harness')).filter((f) => f.endsWith('.lab.test.ts'))];
  const matches = all.filter((f) => relative(root, f).includes(arg));
  if (matches.length === 1) return matches[0]!;
  const list = (fs: string[]) => fs.map((f) => `  ${relative(root, f)}`).join('\n');
  if (matches.length > 1) throw new LabError(`"${arg}" matches several scenario files; name one:\n${list(matches)}`);
  throw new LabError(`no scenario file matches "${arg}"; scenarios:\n${list(all.filter((f) => f.includes(`${join(root, 'scenarios')}`)))}`);
}

/** Runs a command on the terminal; its exit code (130 when a signal ended it). Fails (command and cause named) when it cannot start. */
async function spawnInherit(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<number> {
  // Ctrl-C reaches vitest through the terminal's process group; keep running until it exits.
  const ignore = () => {};
  process.on('SIGINT', ignore);
  try {
    const r = await execa(cmd, args, { cwd, env, stdio: 'inherit', reject: false });
    if (r.exitCode === undefined && !r.signal) throw r; // did not start: the error names the command and the cause
    return r.exitCode ?? 130;
  } finally {
    process.off('SIGINT', ignore);
  }
}

async function runCmd(argv: string[]): Promise<number> {
  const { flags, positionals, rest } = parseCommand('run', LAB_SPECS.run!, argv);
  const scenario = positionals[0];
  if (!scenario) throw new ValidationError('run', [{ path: 'SCENARIO', value: undefined, message: 'is required, e.g. egresslab run foundation/timeline' }]);
  // a checkout runs its own scenarios (project "lab", built first); an installed package, the user's
  const installed = installedPackage();
  const root = installed ? workspaceRoot() : projectRoot();
  const file = resolveScenario(scenario, root);
  const vitest = join(root, 'node_modules/vitest/vitest.mjs');
  if (!existsSync(vitest)) throw new LabError(`vitest is not installed in ${root}: run "npm install" first`);
  if (!flags['no-build'] && !installed) {
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    progress('building (tsc -p tsconfig.json): in-lab programs run from dist/ ...');
    const code = await spawnInherit(process.execPath, [tsc, '-p', 'tsconfig.json'], process.env, root);
    if (code !== 0) {
      progress(`the build failed (exit ${code}): fix the errors above, or run the existing build with --no-build`);
      return code;
    }
  }
  const keptDir = mkdtempSync(join(tmpdir(), 'egresslab-run-'));
  const keptFile = join(keptDir, 'kept.jsonl');
  const env = { ...process.env, EGRESSLAB_KEEP: flags.keep ? 'always' : 'on-failure', EGRESSLAB_KEPT_FILE: keptFile };
  const args = [vitest, 'run', ...(installed ? [] : ['--project', 'lab']), relative(root, file), ...(flags.test ? ['-t', flags.test as string] : []), ...rest];
  progress(`running ${relative(root, file)} (a lab of a failing file is kept${flags.keep ? '; --keep: kept anyway' : ''})`);
  const code = await spawnInherit(process.execPath, args, env, root);
  const kept = existsSync(keptFile)
    ? readFileSync(keptFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { lab: string; failed: string[] })
    : [];
  rmSync(keptDir, { recursive: true, force: true });
  for (const k of kept) {
    const lab = await Lab.attach(k.lab).catch(() => undefined);
    const node = lab?.topology.nodes[0]?.name ?? 'node-1';
    const pod = lab?.plan.pods.find((p) => !p.hostNetwork)?.key ?? 'default/client-1';
    out(`\nlab ${k.lab} kept${k.failed.length ? ` after ${k.failed.length} failing test(s): ${k.failed.join('; ')}` : ''}; poke at it:`);
    out(`  npx egresslab status --lab ${k.lab}`);
    out(`  npx egresslab exec --lab ${k.lab} ${node} -- ip route`);
    out(`  npx egresslab timeline --lab ${k.lab} --from ${pod} --to 8.8.8.8 --seconds 10 --svg timeline.svg`);
    if (existsSync(join(artifactsDir(), k.lab))) out(`  artifacts: ${relative(process.cwd(), join(artifactsDir(), k.lab)) || '.'}/`);
    out(`  npx egresslab down --lab ${k.lab}     (when done)`);
  }
  if (code !== 0 && kept.length === 0)
    out(
      `\nno lab was kept: a failure before the lab came up, or the vitest config lacks setupFiles ${installed ? "'egresslab/vitest-setup'" : 'harness/testing/setup.ts'} (needed to notice failures); --keep keeps it anyway`,
    );
  return code;
}

export const LAB_COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  exec: execCmd,
  kill: faultCmd('kill'),
  stop: faultCmd('stop'),
  start: faultCmd('start'),
  pause: faultCmd('pause'),
  unpause: faultCmd('unpause'),
  partition: faultCmd('partition'),
  heal: faultCmd('heal'),
  degrade: degradeCmd,
  restore: restoreCmd,
  capture: captureCmd,
  timeline: timelineCmd,
  run: runCmd,
};
