/**
 * Benchmark (issue 6): egress-gateway failover after a hard kill of the holder (or, with --fault,
 * a clean stop of its node, or a restart of its agent alone). Default topology,
 * fixtures/manifests/gateway/failover.yaml (fo-a on 192.168.1.100 to 8.8.8.0/24). Per iteration: a
 * UDP probe every 10 ms from a matched pod on another node to 8.8.8.8; SIGKILL the holder's
 * container; wait for 30 answered packets after the kill; start the node again and wait until every
 * node is Up. Interruption = the longest outage of the timeline (last answered packet before it to
 * the first answered after it); leaks = packets the internet observed with a source other than the
 * egress IP. Prints p50/p95/max beside the configured lease (the detection floor), for each mode:
 * `quiet` (nothing else on the machine) and `busy` (a busy loop holds one core for the whole mode,
 * as a noisy CI runner would), side by side from the same run and the same lab.
 * `--fault kill` (default) SIGKILLs the holder's container; `stop` stops it cleanly (SIGTERM to every
 * process, as a node shutdown does; started again after); `agent-restart` restarts its agent
 * process alone (SIGTERM, then a new agent: a DaemonSet rollout), the node and its datapath stay.
 * Usage: node dist/bench/gateway-failover.js [--kills 10] [--interval-ms 10] [--modes quiet,busy] [--fault kill|stop|agent-restart]
 */
import { execa, type ResultPromise } from 'execa';
import { programArgs } from '../harness/util/args.js';
import { Lab } from '../harness/lab/lab.js';
import { topologyFromArg } from '../harness/topology/load.js';
import { applyAll, loadManifests } from '../harness/cluster/apply.js';
import { everyNodeUp, gatewayOf } from '../harness/cluster/cluster-status.js';
import { AGENT_PROCESS } from '../harness/cluster/cluster.js';
import { readAgentStatusIfAny } from '../harness/cluster/masq-applied.js';
import { pct } from './lab-guard.js';
import { workerHolder } from '../harness/cluster/holder.js';
import { pollUntil } from '../harness/util/poll.js';
import { summarize } from '../harness/report/failover.js';
import { DEFAULT_LAB_PATHS } from '../harness/cluster/lab-config.js';

const FAULT_TITLE: Record<string, string> = {
  kill: 'SIGKILL of the holder',
  stop: 'a clean stop of the holder',
  'agent-restart': "a restart of the holder's agent",
};
const FAULTS = Object.keys(FAULT_TITLE);
const { flags } = programArgs('dist/bench/gateway-failover.js', {
  flags: {
    kills: { value: true, int: true },
    'interval-ms': { value: true, int: true },
    modes: { value: true, arg: 'quiet,busy' },
    fault: { value: true, arg: 'kill|stop|agent-restart' },
  },
  about:
    '  Egress-gateway failover after a kill (or clean stop, or agent restart) of the holder: interruption p50/p95/max beside the lease, quiet and with one core busy.',
  check: (f) => [
    ...(f.kills !== undefined && f.kills < 1 ? [{ path: '--kills', value: f.kills, message: 'must be at least 1' }] : []),
    ...(f['interval-ms'] !== undefined && f['interval-ms'] < 1 ? [{ path: '--interval-ms', value: f['interval-ms'], message: 'must be at least 1' }] : []),
    ...(f.modes ?? 'quiet,busy')
      .split(',')
      .filter((m) => m !== 'quiet' && m !== 'busy')
      .map((m) => ({ path: '--modes', value: m, message: 'is not quiet or busy' })),
    ...(f.fault !== undefined && !FAULTS.includes(f.fault) ? [{ path: '--fault', value: f.fault, message: `is not ${FAULTS.join(', ')}` }] : []),
  ],
});
const kills = flags.kills ?? 10;
const fault = flags.fault ?? 'kill';
const modes = (flags.modes ?? 'quiet,busy').split(',');

/** One core held busy by a child process (ended with the mode, or with this process). */
function busyLoop(): ResultPromise {
  const c = execa(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore', reject: false });
  process.on('exit', () => c.kill('SIGKILL'));
  return c;
}
const intervalMs = flags['interval-ms'] ?? 10;
const IP = '192.168.1.100';
const PODS = ['alice/frontend-1', 'paul/frontend-2', 'default/client-3'];

async function main(): Promise<void> {
  const lab = await Lab.up({ topology: topologyFromArg('default'), id: `bgf-${Math.random().toString(36).slice(2, 7)}` });
  try {
    const api = await lab.api();
    await applyAll(api, loadManifests('fixtures/manifests/gateway/failover.yaml'));
    const ctl = JSON.parse((await lab.exec('cp-1', ['cat', DEFAULT_LAB_PATHS.controllerConfig])).stdout) as Record<string, unknown>;
    const leaseInfo = JSON.stringify(Object.fromEntries(Object.entries(ctl).filter(([k]) => /lease|expiry|renew/i.test(k))));
    const gw = () => gatewayOf(api);
    type Row = { holder: string; to: string; interruptionMs: number; lost: number; leaked: number; outages: number; poweredOff: boolean };
    const results: { mode: string; rows: Row[] }[] = [];
    for (const mode of modes) {
      const busy = mode === 'busy' ? busyLoop() : undefined;
      try {
        results.push({ mode, rows: await runKills(mode) });
      } finally {
        busy?.kill('SIGKILL');
      }
    }
    console.log(`\ngateway failover after ${FAULT_TITLE[fault]} (UDP every ${intervalMs} ms), same lab, same run`);
    console.log(`  configured lease (controller): ${leaseInfo}`);
    for (const { mode, rows } of results) {
      const xs = rows.map((r) => r.interruptionMs);
      console.log(
        `  ${mode.padEnd(5)} ${rows.length} x ${fault}: interruption p50 ${pct(xs, 50)} ms, p95 ${pct(xs, 95)} ms, max ${Math.max(...xs)} ms, min ${Math.min(...xs)} ms; leaked packets (source != ${IP}): ${rows.reduce((s, r) => s + r.leaked, 0)}` +
          (fault === 'agent-restart' ? `; the IP moved in ${rows.filter((r) => r.to !== r.holder).length}` : '') +
          (fault === 'stop' ? `; powered off (the clean stop overran its grace): ${rows.filter((r) => r.poweredOff).length}` : ''),
      );
    }
    async function runKills(mode: string): Promise<Row[]> {
      const rows: Row[] = [];
      for (let i = 0; i < kills; i++) {
        // never break cp-1 (it runs the controller): an IP that flapped onto it is moved to a worker first
        const holder = await workerHolder(lab, api, IP, 60_000);
        await pollUntil(async () => (await lab.exec(holder, ['ip', '-4', 'addr', 'show', 'dev', 'eth0'])).stdout.includes(`${IP}/32`), {
          what: `${IP} on ${holder}`,
          timeoutMs: 15_000,
        });
        const pod = PODS.find((p) => lab.pod(p).node !== holder)!;
        const probe = await lab.continuousProbe(pod, '8.8.8.8', { proto: 'udp', intervalMs, timeoutMs: 300 });
        let to = '?';
        let how: 'clean' | 'powered-off' | undefined;
        try {
          await pollUntil(() => probe.answeredAfter(), { what: '20 answered before the kill', timeoutMs: 15_000, accept: (n) => n >= 20 });
          if (fault === 'kill') await lab.faults.kill(holder);
          else if (fault === 'stop') how = await lab.faults.stop(holder);
          else {
            const oldPid = (await readAgentStatusIfAny(lab, holder))?.pid;
            await lab.faults.restartProcess(holder, AGENT_PROCESS);
            // The new agent runs and the controller has acknowledged one of its heartbeats: whether
            // the node went Down in between (the restart outlasted the controller's grace) is decided
            // by then, and a move it caused is under way. restartProcess alone returns when the
            // process is started, inside the grace, before anything could be decided.
            await pollUntil(() => readAgentStatusIfAny(lab, holder), {
              what: `the new agent on ${holder} running, a heartbeat of it acknowledged`,
              timeoutMs: 20_000,
              intervalMs: 50,
              accept: (st) => !!st && st.pid !== oldPid && st.phase === 'running' && (st.lease?.heartbeat?.acknowledged ?? 0) > 0,
            });
          }
          // a restarted agent may keep its IPs (back within the controller's grace): then nothing
          // moves, and the outage is whatever the restart cost
          await pollUntil(gw, {
            what: fault === 'agent-restart' ? `every node Up and ${IP} assigned` : `${IP} to move off ${holder}`,
            timeoutMs: 20_000,
            intervalMs: 20,
            accept: (s) =>
              fault === 'agent-restart'
                ? everyNodeUp(s, lab.topology.nodes.length) && !!s.assignments[IP]
                : !!s.assignments[IP] && s.assignments[IP] !== holder,
          });
          const tMoved = Date.now();
          await pollUntil(() => probe.answeredAfter(tMoved), { what: '30 answered after the move', timeoutMs: 20_000, accept: (n) => n >= 30 });
          // where the IP is now (after an agent restart: the holder still, or where a failover took it)
          to = (await gw()).assignments[IP] ?? '?';
        } finally {
          if (fault !== 'agent-restart') await lab.faults.start(holder).catch((e: Error) => console.error(`start ${holder}: ${e.message}`));
        }
        const t = await probe.stop();
        // the next break starts from a whole cluster (the broken node back Up)
        await pollUntil(gw, { what: 'every node Up again', timeoutMs: 30_000, intervalMs: 100, accept: (s) => everyNodeUp(s, lab.topology.nodes.length) });
        const r = summarize(t, [IP]);
        rows.push({
          holder,
          to,
          interruptionMs: r.longestOutageMs,
          lost: r.longestLost,
          leaked: r.leaks!.count,
          outages: r.outages.length,
          poweredOff: how === 'powered-off',
        });
        console.log(
          `${mode} ${fault}${how === 'powered-off' ? ' (not down within its grace: powered off)' : ''} ${i + 1}/${kills}: ${holder} -> ${to}, probe from ${pod}: interruption ${r.longestOutageMs} ms (${r.longestLost} lost, ${r.outages.length} outage(s)), leaked ${r.leaks!.count}, sources ${JSON.stringify(r.sources)}`,
        );
      }
      return rows;
    }
  } finally {
    await lab.down();
  }
}

main().catch((e: unknown) => {
  console.error((e as Error).stack ?? String(e));
  process.exit(1);
});
