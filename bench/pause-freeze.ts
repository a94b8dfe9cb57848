/**
 * Benchmark: does pausing a container survive a busy machine? One container of the lab's image and
 * create options (no network) runs `--spawners` Node processes that each spawn `nft` every 5 ms
 * (new processes keep appearing, as in an agent applying rules), while `--busy` busy loops on the
 * host hold its cores. It is then paused and unpaused `--pauses` times, alternating plain
 * `docker pause` and egresslab's pause (harness/docker/freeze.ts: stop every process, then docker
 * pause), and prints side by side how many pauses failed and how long they took. After each
 * unpause it checks that no thread of the container is left stopped.
 *   npm run build:code && node dist/bench/pause-freeze.js [--pauses 40] [--busy 8] [--spawners 6]
 * The container and the busy loops are this bench's: it removes the container by its name and ends
 * the loops by their process ids when it ends, fails, or gets SIGINT, SIGTERM or SIGHUP.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { docker, LABEL } from '../harness/docker/client.js';
import { startLabContainer } from '../harness/docker/containers.js';
import { continueContainer, freezerPath, pauseContainer, statState } from '../harness/docker/freeze.js';
import { defaultImageTag } from '../harness/docker/image.js';
import { programArgs } from '../harness/util/args.js';
import { pct } from './lab-guard.js';

const { flags } = programArgs('dist/bench/pause-freeze.js', {
  flags: {
    pauses: { value: true, int: true },
    busy: { value: true, int: true },
    spawners: { value: true, int: true },
  },
  about: "  Pauses a container whose processes keep spawning, on a machine held busy: docker pause against egresslab's pause.",
  check: (f) => [
    ...(f.pauses !== undefined && (f.pauses < 2 || f.pauses > 1000)
      ? [{ path: '--pauses', value: f.pauses, message: 'must be a whole number from 2 to 1000' }]
      : []),
    ...(f.busy !== undefined && (f.busy < 0 || f.busy > 64) ? [{ path: '--busy', value: f.busy, message: 'must be a whole number from 0 to 64' }] : []),
    ...(f.spawners !== undefined && (f.spawners < 0 || f.spawners > 32)
      ? [{ path: '--spawners', value: f.spawners, message: 'must be a whole number from 0 to 32' }]
      : []),
  ],
});
const pauses = flags.pauses ?? 40;
const busy = flags.busy ?? 8;
const spawners = flags.spawners ?? 6;

const SPAWNER = `const { execFile } = require('child_process'); setInterval(() => execFile('nft', ['list', 'ruleset'], () => {}), 5);`;

interface Row {
  ms: number[];
  failed: number;
  errors: Set<string>;
  leftStopped: number;
}

async function stoppedThreads(pid: number): Promise<number> {
  const rel = freezerPath(await readFile(`/proc/${pid}/cgroup`, 'utf8'));
  if (rel === undefined) return 0;
  let n = 0;
  for (const t of (await readFile(`/sys/fs/cgroup/freezer${rel}/tasks`, 'utf8')).split('\n').filter(Boolean)) {
    const stat = await readFile(`/proc/${t}/stat`, 'utf8').catch(() => '');
    if (statState(stat) === 'T') n++;
  }
  return n;
}

async function main(): Promise<void> {
  const id = `bpause-${randomBytes(3).toString('hex')}`;
  const name = `egl-${id}`;
  const loops: ChildProcess[] = [];
  const cleanup = async () => {
    for (const l of loops) if (l.exitCode === null) l.kill('SIGKILL');
    await docker()
      .getContainer(name)
      .remove({ force: true })
      .catch(() => {});
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void cleanup().finally(() => process.exit(130)));
  try {
    const workload = `for i in $(seq 1 ${spawners}); do node -e "${SPAWNER.replace(/"/g, '\\"')}" & done; wait`;
    const container = await startLabContainer({
      name,
      image: defaultImageTag(),
      hostname: 'pause-bench',
      command: ['sh', '-c', workload],
      labels: { [LABEL.lab]: id, [LABEL.role]: 'bench' },
      mounts: [],
    });
    const pid = (await container.inspect()).State.Pid;
    for (let i = 0; i < busy; i++) loops.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
    await new Promise((r) => setTimeout(r, 2000)); // let the spawners and the loops get going
    const rows: Record<'docker pause' | 'egresslab pause', Row> = {
      'docker pause': { ms: [], failed: 0, errors: new Set(), leftStopped: 0 },
      'egresslab pause': { ms: [], failed: 0, errors: new Set(), leftStopped: 0 },
    };
    for (let i = 0; i < pauses; i++) {
      const mode = i % 2 === 0 ? 'docker pause' : 'egresslab pause';
      const row = rows[mode];
      const t0 = performance.now();
      try {
        if (mode === 'docker pause') await container.pause();
        else await pauseContainer(container, { where: id });
        row.ms.push(performance.now() - t0);
        if (!(await container.inspect()).State.Paused) throw new Error('the engine does not say paused');
      } catch (e) {
        row.failed++;
        row.errors.add(
          String((e as Error).message)
            .replace(/[0-9a-f]{64}/g, '<id>')
            .slice(0, 120),
        );
      }
      // as Faults.unpause does (egresslab) or docker unpause alone; then no thread may be left stopped
      if ((await container.inspect()).State.Paused) await container.unpause();
      if (mode === 'egresslab pause') await continueContainer(container);
      if ((await stoppedThreads(pid)) > 0) row.leftStopped++;
      process.stdout.write('.');
    }
    process.stdout.write('\n');
    console.log(`${pauses} pauses of one container (${spawners} Node processes spawning nft every 5 ms) while ${busy} busy loops ran on ${id}`);
    console.log('| pause | pauses | failed | median ms | p95 ms | max ms | unpaused with a thread left stopped |');
    console.log('|---|---|---|---|---|---|---|');
    for (const [mode, r] of Object.entries(rows)) {
      const n = r.ms.length + r.failed;
      const f = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(0));
      console.log(
        `| ${mode} | ${n} | ${r.failed} | ${f(r.ms.length ? pct(r.ms, 50) : undefined)} | ${f(r.ms.length ? pct(r.ms, 95) : undefined)} | ${f(r.ms.length ? Math.max(...r.ms) : undefined)} | ${r.leftStopped} |`,
      );
      for (const e of r.errors) console.log(`  ${mode} error: ${e}`);
    }
  } finally {
    await cleanup();
  }
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
