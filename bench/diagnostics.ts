/**
 * Benchmark (issue 16): what collecting a lab's diagnostics costs, and whether it disturbs the lab.
 * A default lab with fixtures/manifests/gateway/failover.yaml (two floating IPs served), or the lab
 * named by --lab (left as it is). Per run: collectLabDiagnostics into a fresh folder while the
 * gateway's node states are read every 50 ms; reported: the collection's duration, the CPU time
 * spent meanwhile in the lab's containers (their cgroups), in the engine (dockerd, containerd, the
 * shims and the runc they ran) and on the whole host (/proc/stat: other work on the machine too), the samples that showed a node not Up, the NodeDown
 * and FloatingIPMoved Events added (Event.count summed) and the agents' "main loop silent" log lines
 * added (the heartbeat watchdog: an agent starved for 2 s stops beating). Between runs, every node
 * is Up again. The lab's own CPU use while idle (measured for 1 s before each run) is subtracted
 * from its containers' figure. --busy: a busy loop holds one core throughout, as a noisy CI runner would.
 * Usage: node dist/bench/diagnostics.js [--runs 5] [--lab NAME] [--busy]
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { docker, LABEL } from '../harness/docker/client.js';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { programArgs } from '../harness/util/args.js';
import { Lab } from '../harness/lab/lab.js';
import { topologyFromArg } from '../harness/topology/load.js';
import { applyAll, loadManifests } from '../harness/cluster/apply.js';
import { gatewayOf } from '../harness/cluster/cluster-status.js';
import { holderOf } from '../harness/cluster/holder.js';
import { pollUntil } from '../harness/util/poll.js';
import { R, type KubeClient } from '../lib/kube/client.js';
import { collectLabDiagnostics } from '../harness/testing/diagnostics.js';
import { LOG_DIR } from '../harness/lab/process.js';
import { cgroupCpuNs } from './lab-measure.js';

const { flags } = programArgs('dist/bench/diagnostics.js', {
  flags: { runs: { value: true, int: true }, lab: { value: true, arg: 'NAME' }, busy: {} },
  about:
    '  What collecting diagnostics costs (duration, host CPU) and whether it disturbs the lab (nodes not Up, NodeDown/FloatingIPMoved Events, starved agents).',
  check: (f) => (f.runs !== undefined && f.runs < 1 ? [{ path: '--runs', value: f.runs, message: 'must be at least 1' }] : []),
});
const runs = flags.runs ?? 5;

/** Busy CPU time of every core so far (s): /proc/stat's first line minus idle and iowait. */
function hostCpuSeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f as number[];
  return (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) / 100;
}

/** CPU time (s) of the lab's containers (cgroup v1 cpuacct or v2 cpu.stat), and of the engine: dockerd, containerd and the shims with their reaped children (runc exec). */
function labCpuSeconds(ids: string[]): { containers: number; engine: number } {
  let containers = 0;
  // not readable here: counted as 0
  for (const id of ids) containers += (cgroupCpuNs(id) ?? 0) / 1e9;
  let engine = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const name = /\(([^)]*)\)/.exec(stat)?.[1] ?? '';
      if (name !== 'dockerd' && name !== 'containerd' && !name.startsWith('containerd-shim')) continue;
      const f = stat
        .slice(stat.lastIndexOf(')') + 2)
        .split(' ')
        .map(Number);
      engine += (f[11]! + f[12]! + f[13]! + f[14]!) / 100; // utime stime cutime cstime
    } catch {
      // gone meanwhile
    }
  }
  return { containers, engine };
}

async function eventCounts(api: KubeClient): Promise<{ nodeDown: number; moved: number }> {
  const items = (await api.list(R.events)).items as { reason?: string; count?: number }[];
  const sum = (reason: string) => items.filter((e) => e.reason === reason).reduce((s, e) => s + (e.count && e.count > 0 ? e.count : 1), 0);
  return { nodeDown: sum('NodeDown'), moved: sum('FloatingIPMoved') };
}

async function silentLines(lab: Lab, nodes: string[]): Promise<number> {
  let n = 0;
  for (const node of nodes) {
    const r = await lab.exec(node, ['sh', '-c', `cat ${LOG_DIR}/*.log 2>/dev/null | grep -c 'main loop silent' || true`], { check: false });
    n += Number(r.stdout.trim()) || 0;
  }
  return n;
}

const busy = flags.busy ? execa(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore', reject: false }) : undefined;
process.on('exit', () => busy?.kill('SIGKILL'));
const own = !flags.lab;
const lab = own ? await Lab.up({ topology: topologyFromArg('default'), id: `bench-diag-${randomBytes(3).toString('hex')}` }) : await Lab.attach(flags.lab);
try {
  const api = await lab.api();
  if (own) {
    await applyAll(api, loadManifests('fixtures/manifests/gateway/failover.yaml'));
    for (const ip of ['192.168.1.100', '192.168.1.101']) await holderOf(api, ip, { timeoutMs: 30_000 });
  }
  const nodes = lab.topology.nodes.map((n) => n.name);
  const allUp = async () => {
    const g = await gatewayOf(api);
    return nodes.every((n) => g.nodes[n] === 'Up');
  };
  const ids = (await docker().listContainers({ filters: { label: [`${LABEL.lab}=${lab.id}`] } })).map((c) => c.Id);
  const rows: {
    ms: number;
    cpu: number;
    inLab: number;
    engine: number;
    notUp: number;
    samples: number;
    nodeDown: number;
    moved: number;
    silent: number;
    files: number;
  }[] = [];
  for (let i = 0; i < runs; i++) {
    await pollUntil(allUp, { what: 'every node Up before a collection', timeoutMs: 60_000, intervalMs: 100, accept: (up) => up });
    const ev0 = await eventCounts(api);
    const silent0 = await silentLines(lab, nodes);
    const dir = join(tmpdir(), `egresslab-bench-diag-${randomBytes(3).toString('hex')}`);
    let done = false;
    let samples = 0;
    let notUp = 0;
    const sampler = (async () => {
      while (!done) {
        const t = Date.now();
        try {
          if (!(await allUp())) notUp++;
        } catch {
          notUp++;
        }
        samples++;
        await new Promise((r) => setTimeout(r, Math.max(0, 50 - (Date.now() - t))));
      }
    })();
    const idle0 = labCpuSeconds(ids).containers;
    const idleT0 = Date.now();
    await new Promise((r) => setTimeout(r, 1000)); // the lab's idle CPU rate, not a synchronisation
    const idleRate = (labCpuSeconds(ids).containers - idle0) / ((Date.now() - idleT0) / 1000);
    const cpu0 = hostCpuSeconds();
    const lab0 = labCpuSeconds(ids);
    const report = await collectLabDiagnostics(lab, dir);
    const cpu = hostCpuSeconds() - cpu0;
    const lab1 = labCpuSeconds(ids);
    done = true;
    await sampler;
    // a NodeDown is recorded up to the grace period after the silence began: read the Events once it has passed
    await pollUntil(allUp, { what: 'every node Up after a collection', timeoutMs: 60_000, intervalMs: 100, accept: (up) => up });
    const ev1 = await eventCounts(api);
    const silent1 = await silentLines(lab, nodes);
    rmSync(dir, { recursive: true, force: true });
    const row = {
      ms: report.durationMs,
      cpu,
      inLab: lab1.containers - lab0.containers - (idleRate * report.durationMs) / 1000,
      engine: lab1.engine - lab0.engine,
      notUp,
      samples,
      nodeDown: ev1.nodeDown - ev0.nodeDown,
      moved: ev1.moved - ev0.moved,
      silent: silent1 - silent0,
      files: report.files.length,
    };
    rows.push(row);
    process.stderr.write(
      `run ${i + 1}/${runs}: ${row.ms} ms, CPU: in the lab's containers (beyond idle) ${row.inLab.toFixed(2)} s, engine ${row.engine.toFixed(2)} s, host (every process) ${row.cpu.toFixed(2)} s, ${row.files} files, samples with a node not Up ${row.notUp}/${row.samples}, NodeDown +${row.nodeDown}, FloatingIPMoved +${row.moved}, "main loop silent" +${row.silent}${report.problems.length ? `, problems: ${report.problems.join('; ')}` : ''}\n`,
    );
  }
  const ms = rows.map((r) => r.ms).sort((a, b) => a - b);
  const mean = (k: 'inLab' | 'engine' | 'cpu') => (rows.reduce((s, r) => s + r[k], 0) / runs).toFixed(2);
  const sum = (k: 'notUp' | 'nodeDown' | 'moved' | 'silent') => rows.reduce((s, r) => s + r[k], 0);
  console.log(`diagnostics benchmark: lab ${lab.id} (${lab.plan.containers.length} containers), ${runs} runs${flags.busy ? ', one core held busy' : ''}`);
  console.log(
    `  duration: median ${ms[ms.length >> 1]} ms, min ${ms[0]}, max ${ms[ms.length - 1]}; CPU per collection (mean): lab containers ${mean('inLab')} s, engine ${mean('engine')} s, host ${mean('cpu')} s`,
  );
  console.log(
    `  disturbance: ${sum('notUp')} samples with a node not Up, ${sum('nodeDown')} NodeDown, ${sum('moved')} FloatingIPMoved, ${sum('silent')} "main loop silent"`,
  );
  api.close();
} finally {
  busy?.kill('SIGKILL');
  if (own) await lab.down();
  else lab.closeHelpers();
}
