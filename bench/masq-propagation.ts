/**
 * Benchmark: ip-masq-agent ConfigMap change -> first packet that leaves with the new source.
 *
 * A lab (standard-agent: Standard cluster, ip-masq-agent on every node) runs a continuous probe from
 * one pod on EVERY worker (alice/frontend-1 on node-1, paul/frontend-2 on node-2, default/client-3 on
 * node-3) to the VPC endpoint 172.16.100.10 (which answers the pod IP and the node IP alike, and says
 * which source it saw). The benchmark toggles 172.16.100.0/24 in and out of `nonMasqueradeCIDRs`
 * through the API (ConfigMap update) and, for each change, measures from the moment the write request
 * is sent (judged; the figure from the write's answer is shown beside it) to the send time of the
 * first probe packet the VPC observed with the new source (pod IP after an "in", node IP after an
 * "out"), per node; the judged figure is the LAST node's: every node programmed. (Until session 19
 * it probed from node-1 only.) It also reports when node-1's agent had the new rules in the kernel
 * (`masq.appliedAt` in its status file).
 *
 * The probe is TCP: every packet is a new connection. NAT is decided on a connection's first packet
 * and conntrack keeps that decision (as with upstream's iptables rules), so a single long-lived flow
 * (one UDP socket) would keep its old source until its conntrack entry expires; `--proto udp` shows
 * exactly that (the change is then seen only by new flows).
 *
 *   npm run build && node dist/bench/masq-propagation.js [--changes 20] [--interval 10] [--proto tcp|udp]
 */
import { randomBytes } from 'node:crypto';
import { Lab } from '../harness/lab/lab.js';
import { topologyFromArg } from '../harness/topology/load.js';
import { pollUntil } from '../harness/util/poll.js';
import { R, type KubeClient } from '../lib/kube/client.js';
import type { KubeObject } from '../lib/kube/types.js';
import { DEFAULT_LAB_PATHS } from '../harness/cluster/lab-config.js';
import type { ClientRecord, Proto } from '../harness/inlab/protocol.js';
import { programArgs } from '../harness/util/args.js';
import { masqConfigYaml } from '../harness/cluster/masq-applied.js';

const { flags } = programArgs('dist/bench/masq-propagation.js', {
  flags: { changes: { value: true, int: true }, interval: { value: true, int: true, arg: 'MS' }, proto: { value: true, oneOf: ['tcp', 'udp'] } },
  about: '  From a ConfigMap update of nonMasqueradeCIDRs to the first packet leaving with the new source.',
});
const CHANGES = flags.changes ?? 20;
const INTERVAL_MS = flags.interval ?? 10;
const PROTO: Proto = (flags.proto as Proto | undefined) ?? 'tcp';
/** the probed pod of each worker */
const PODS = ['alice/frontend-1', 'paul/frontend-2', 'default/client-3'];
const VPC = '172.16.100.10';
const base = ['10.0.0.0/8'];

function configText(withVpc: boolean): string {
  const cidrs = withVpc ? [...base, '172.16.100.0/24'] : base;
  return masqConfigYaml({ nonMasqueradeCIDRs: cidrs, masqLinkLocal: false, resyncInterval: '60s' });
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

function summary(name: string, xs: number[]): string {
  if (xs.length === 0) return `${name}: no samples`;
  return `${name}: n=${xs.length} p50 ${pct(xs, 50).toFixed(0)} ms, p95 ${pct(xs, 95).toFixed(0)} ms, min ${Math.min(...xs).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;
}

async function appliedAt(lab: Lab): Promise<number> {
  const r = await lab.exec('node-1', ['cat', DEFAULT_LAB_PATHS.agentStatus]);
  const s = JSON.parse(r.stdout) as { masq?: { appliedAt?: string } };
  return Date.parse(s.masq?.appliedAt ?? '');
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const lab = await Lab.up({ topology: topologyFromArg('standard-agent'), id: `bench-prop-${randomBytes(3).toString('hex')}` });
  try {
    console.log(`lab ${lab.id} up in ${Date.now() - t0} ms; ${CHANGES} changes, ${PROTO} probe every ${INTERVAL_MS} ms`);
    const api: KubeClient = await lab.api();
    let cm: KubeObject = await api.create(R.configmaps, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'ip-masq-agent', namespace: 'kube-system' },
      data: { config: configText(true) },
    });
    const targets = PODS.map((key) => {
      const pod = lab.pod(key);
      const nodeIP = lab.topology.nodes.find((n) => n.name === pod.node)!.address;
      return { key, node: pod.node, podIP: pod.ip, nodeIP };
    });
    const probes = await Promise.all(targets.map((t) => lab.continuousProbe(t.key, VPC, { proto: PROTO, intervalMs: INTERVAL_MS, timeoutMs: 1000 })));
    const seen = (r: ClientRecord) => r.observedSource;
    // every packet answered with the pod IP before the first change, on every node
    await pollUntil(async () => Promise.all(probes.map(async (p) => (await p.records()).slice(-5))), {
      what: 'the probes to settle on the pod IPs',
      timeoutMs: 20_000,
      intervalMs: 50,
      accept: (ls) => ls.every((l, k) => l.length === 5 && l.every((r) => seen(r) === targets[k]!.podIP)),
    });
    const toFirst: number[] = [];
    const fromSent: number[] = [];
    const toApplied: number[] = [];
    const toStable: number[] = [];
    let withVpc = true;
    for (let i = 0; i < CHANGES; i++) {
      withVpc = !withVpc;
      const wants = targets.map((t) => (withVpc ? t.podIP : t.nodeIP));
      const before = await appliedAt(lab);
      const w0 = Date.now();
      cm = await api.update(R.configmaps, { ...cm, data: { config: configText(withVpc) } });
      const w = Date.now();
      // until, on every node, 5 packets in a row (the newest) came back with the new source
      let all: ClientRecord[][];
      try {
        all = await pollUntil(() => Promise.all(probes.map((p) => p.records())), {
          what: `change ${i + 1}: the probes to show ${wants.join(', ')}`,
          timeoutMs: 15_000,
          intervalMs: 20,
          accept: (ls) =>
            ls.every((l, k) => {
              const last = l.slice(-5);
              return last.length === 5 && last.every((r) => seen(r) === wants[k] && r.t > w0);
            }),
        });
      } catch (e) {
        const applied = await appliedAt(lab);
        console.log(
          `change ${i + 1}: ${(e as Error).message.split('; last seen')[0]} (agent status appliedAt +${applied - w} ms): ` +
            `a long-lived ${PROTO} flow keeps the NAT decision of its first packet (conntrack); stopping`,
        );
        break;
      }
      // per node: its first packet with the new source, and its last one still with the old
      const firsts = all.map((recs, k) => recs.filter((r) => r.t >= w0 && seen(r) === wants[k]).sort((a, b) => a.t - b.t)[0]!.t);
      const lastOlds = all.map((recs, k) => recs.filter((r) => r.t >= w0 && r.replied && seen(r) !== wants[k]).sort((a, b) => b.t - a.t)[0]?.t ?? 0);
      const first = Math.max(...firsts);
      const lastOld = Math.max(first, ...lastOlds);
      const applied = await pollUntil(() => appliedAt(lab), { what: 'node-1 appliedAt to move', timeoutMs: 5_000, accept: (a) => a !== before });
      toFirst.push(first - w);
      fromSent.push(first - w0);
      toApplied.push(applied - w);
      toStable.push(lastOld - w);
      console.log(
        `change ${String(i + 1).padStart(2)} (${withVpc ? 'in ' : 'out'}): API write ${w - w0} ms; node-1 status appliedAt +${applied - w} ms; ` +
          `first packet with the new source, per node ${targets.map((t, k) => `${t.node} +${firsts[k]! - w0}`).join(' / ')} ms from the request sent (every node +${first - w0} ms)` +
          (lastOld > first ? ` (a packet sent +${lastOld - w} ms still left with an old source)` : ''),
      );
    }
    for (const [k, p] of probes.entries()) {
      const t = await p.stop();
      console.log(`probe from ${targets[k]!.key} (${targets[k]!.node}): ${t.packets.length} packets, ${t.packets.filter((x) => !x.replied).length} unanswered`);
    }
    console.log(summary("API write SENT -> every node's first packet with the new source (judged)", fromSent));
    console.log(summary("API write returned -> every node's first packet with the new source", toFirst));
    console.log(summary('API write returned -> node-1 status appliedAt (stamped after nft -f and the verification listing)', toApplied));
    console.log(summary('API write returned -> last packet with an old source, any node', toStable));
    console.log(
      `target p95 <= 250 ms from the request sent: ${fromSent.length === 0 ? 'n/a (no change observed)' : pct(fromSent, 95) <= 250 ? 'met' : 'NOT met'}`,
    );
  } finally {
    await lab.down();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
