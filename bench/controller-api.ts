// Benchmark of the controller's API server (in-process, https on loopback, file persistence with
// fdatasync): create -> watch-event latency, and lease-expiry -> reassignment-in-status latency.
// Run: npm run build && node dist/bench/controller-api.js [createRuns] [failoverRuns]
import { performance } from 'node:perf_hooks';
import { R } from '../lib/kube/client.js';
import { startLeaseRenewer, type LeaseRenewer } from '../lib/kube/lease.js';
import { startTestController, waitFor } from '../controller/testing.js';
import type { WatchEvent } from '../lib/kube/types.js';
import { programArgs } from '../harness/util/args.js';

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}
const fmt = (xs: number[]): string =>
  `p50 ${pct(xs, 50).toFixed(2)} ms, p95 ${pct(xs, 95).toFixed(2)} ms, max ${Math.max(...xs).toFixed(2)} ms (n=${xs.length})`;

async function createToWatch(runs: number): Promise<number[]> {
  const t = await startTestController({}, { log: () => {} });
  try {
    const pending = new Map<string, (at: number) => void>();
    const h = t.admin.watch(R.configmaps, { namespace: 'default', resourceVersion: String(t.running.store.resourceVersion) }, (e: WatchEvent) => {
      if (e.type === 'ADDED') pending.get(e.object.metadata.name!)?.(performance.now());
    });
    const out: number[] = [];
    for (let i = 0; i < runs + 10; i++) {
      const name = `bench-${i}`;
      const seen = new Promise<number>((resolve) => pending.set(name, resolve));
      const t0 = performance.now();
      await t.admin.create(R.configmaps, { metadata: { name, namespace: 'default' }, data: { i: String(i) } });
      const t1 = await seen;
      if (i >= 10) out.push(t1 - t0); // first 10 warm up connections and JIT
    }
    h.abort();
    return out;
  } finally {
    await t.close();
  }
}

async function failover(runs: number): Promise<{ fromExpiry: number[]; fromStop: number[]; expiryMs: number; renewMs: number }> {
  const t = await startTestController({}, { log: () => {} });
  const renewMs = t.config.lease.renewIntervalMs;
  const expiryMs = t.config.lease.expiryMs;
  const renewers = new Map<string, LeaseRenewer>();
  const nodes = ['cp-1', 'worker1', 'worker2'];
  const start = (n: string) => renewers.set(n, startLeaseRenewer(t.node(n), n, renewMs));
  try {
    for (const n of nodes) start(n);
    const ip = '192.168.1.100';
    type Gw = { status?: { nodes?: Record<string, string>; floatingIPs?: Record<string, string> } };
    let status: Gw['status'] = {};
    const changes: { at: number; holder: string | undefined }[] = [];
    const h = t.admin.watch(R.anthosNetworkGateways, { namespace: 'kube-system' }, (e) => {
      status = (e.object as Gw).status ?? {};
      changes.push({ at: performance.now(), holder: status.floatingIPs?.[ip] });
    });
    await waitFor(
      async () =>
        (await t.admin.list(R.anthosNetworkGatewayNodes, { namespace: 'kube-system' })).items.every((o) => (o.status as { state?: string }).state === 'Up'),
      'nodes Up',
    );
    await t.admin.create(R.anthosNetworkGateways, { metadata: { name: 'default', namespace: 'kube-system' }, spec: { floatingIPs: [ip] } });
    await waitFor(() => status?.floatingIPs?.[ip], 'assignment', 5000);
    const fromExpiry: number[] = [];
    const fromStop: number[] = [];
    for (let i = 0; i < runs; i++) {
      const holder = status!.floatingIPs![ip]!;
      const r = renewers.get(holder)!;
      const tStop = performance.now();
      await r.stop();
      // the server saw the last renewal no later than its acknowledgement
      const lastAckPerf = tStop - (Date.now() - r.lastRenewal);
      const expiry = lastAckPerf + expiryMs;
      renewers.delete(holder);
      const moved = await waitFor(() => changes.find((c) => c.at > tStop && c.holder !== undefined && c.holder !== holder), 'reassignment', 5000);
      fromExpiry.push(moved.at - expiry);
      fromStop.push(moved.at - tStop);
      start(holder);
      await waitFor(() => status?.nodes?.[holder] === 'Up', `${holder} Up again`, 5000);
    }
    h.abort();
    return { fromExpiry, fromStop, expiryMs, renewMs };
  } finally {
    for (const r of renewers.values()) await r.stop();
    await t.close();
  }
}

async function main(): Promise<void> {
  const { positionals } = programArgs('dist/bench/controller-api.js', {
    flags: {},
    args: '[CREATE_RUNS] [FAILOVER_RUNS]',
    maxPositionals: 2,
    intPositionals: true,
    about: '  The in-process API server: create -> watch event latency (default 300 runs) and lease failover (default 20 runs).',
  });
  const createRuns = Number(positionals[0] ?? 300);
  const failoverRuns = Number(positionals[1] ?? 20);
  console.log(`controller API benchmark (node ${process.version}, https on 127.0.0.1, fdatasync per write)`);
  const c = await createToWatch(createRuns);
  console.log(`create -> watch event:               ${fmt(c)}`);
  const f = await failover(failoverRuns);
  console.log(`lease expiry -> reassignment in status: ${fmt(f.fromExpiry)}  [renew ${f.renewMs} ms, expiry ${f.expiryMs} ms]`);
  console.log(`agent stops -> reassignment in status:  ${fmt(f.fromStop)}  (detection floor = expiry - time since last renewal)`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
