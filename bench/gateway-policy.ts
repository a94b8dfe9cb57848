/**
 * Benchmark (issue 6): EgressNATPolicy change -> first packet through the gateway, and back.
 *
 * Default topology, an AnthosNetworkGateway with one floating IP (192.168.1.100), held by a worker
 * (workerHolder). The probed pod runs on another worker (first of alice/frontend-1,
 * paul/frontend-2, default/client-3 not on the holder; --pod to choose). Per run: a continuous
 * probe (UDP by default: one socket, one flow; a packet every --interval ms) from the pod to
 * 8.8.8.8 (the fake internet) is started and must settle on the node IP (masquerade, SPEC 1); then
 *   "on":  the policy is written (--change create: created, selecting the pod's namespace, to
 *          8.8.8.0/24; --change cidr: an existing policy's destinationCIDRs go 8.8.4.0/24 -> 8.8.8.0/24)
 *          and the probe must settle on the egress IP (5 newest packets);
 *   "off": the policy is deleted (cidr: back to 8.8.4.0/24) and the probe must settle on the node IP.
 *
 * The figure, per direction: host clock when the API write request is *sent* -> send time of the
 * first probe packet the internet endpoint observed with the new source (its capture or its reply
 * says which source it saw; the containers share the host's clock). It contains: the API write
 * (request through the 127.0.0.1 forward, commit; its round trip is printed apart — the agents'
 * watches may deliver the change before the response is back, so "write returned" is not a safe
 * reference: a loaded run measured -51 ms from it), the watch delivery to the agents of the
 * pod's node and of the holder, the agent's debounce (10 ms), the plan and the one `nft -f`
 * transaction (+ ip rule/route changes), and on the pod's node the conntrack deletion of the flow
 * (the UDP flow had a masquerade/route binding: without the flush it would keep its old source);
 * then up to one probe interval before the next packet is sent (the figure is quantised upward by
 * at most --interval ms, 5 by default), plus the send/observe path itself (< 1 ms here).
 * "agents committed" columns: each agent's status `gateway.lastApplyAt` (stamped after its commit and
 * the conntrack flush) minus the same reference, for the pod's node and for the holder.
 *
 * Also counted: packets observed with a source that is neither the old nor the new expected one
 * (pod IP, another node's IP... must be 0), the drop counters of egresslab_gw on both nodes (fail-closed
 * drops and guard drops since their last commit), packets lost in the transition (sent after the write
 * and before the first packet with the new source, never answered: fail-closed drops or a holder
 * that has not caught up), and packets that went back to the old source after the first new one.
 *
 * Measured at c76b58b (2 shared cores, load 10-20): "off" leaks the pod IP to the internet in most
 * changes. A capture on the pod node's eth0 shows them leaving *that* node towards the router, un-NATed,
 * after its nft commit and before its conntrack flush: the flow's entry (routed to the holder, so no
 * NAT binding) outlives the policy, the masquerade is never evaluated for it, and the guard went
 * with the policy. The holder's forward fence does not cover this; "on" is fail-closed (guard drops).
 *
 *   npm run build && node dist/bench/gateway-policy.js [--runs 30] [--interval 5] [--proto udp|tcp]
 *        [--change create|cidr] [--pod NS/NAME]
 */
import { R, type KubeClient } from '../lib/kube/client.js';
import type { KubeObject } from '../lib/kube/types.js';
import { DEFAULT_LAB_PATHS } from '../harness/cluster/lab-config.js';
import type { Lab } from '../harness/lab/lab.js';
import type { ContinuousProbe } from '../harness/probe/probe.js';
import { leaks, type Timeline, type TimelinePacket } from '../harness/probe/timeline.js';
import type { ClientRecord, Proto } from '../harness/inlab/protocol.js';
import { workerHolder } from '../harness/cluster/holder.js';
import { pollUntil } from '../harness/util/poll.js';
import { pct, withLab } from './lab-guard.js';
import { programArgs } from '../harness/util/args.js';

const { flags } = programArgs('dist/bench/gateway-policy.js', {
  flags: {
    runs: { value: true, int: true },
    interval: { value: true, int: true, arg: 'MS' },
    proto: { value: true, oneOf: ['udp', 'tcp'] },
    change: { value: true, oneOf: ['create', 'cidr'] },
    pod: { value: true, arg: 'NS/NAME' },
  },
  about: '  From an EgressNATPolicy change to the first packet leaving with the egress IP.',
});
const RUNS = flags.runs ?? 30;
const INTERVAL_MS = flags.interval ?? 5;
const PROTO: Proto = (flags.proto as Proto | undefined) ?? 'udp';
const CHANGE = (flags.change as 'create' | 'cidr' | undefined) ?? 'create';
const POD_ARG = flags.pod ?? '';
const IP = '192.168.1.100';
const DST = '8.8.8.8';
const ON_CIDRS = ['8.8.8.0/24'];
const OFF_CIDRS = ['8.8.4.0/24'];
const NAME = 'bench-policy';
const CANDIDATES = ['alice/frontend-1', 'paul/frontend-2', 'default/client-3'];

function policyObject(namespace: string, cidrs: string[]): KubeObject {
  return {
    apiVersion: 'networking.gke.io/v1alpha1',
    kind: 'EgressNATPolicy',
    metadata: { name: NAME },
    spec: {
      egress: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } }, podSelector: { matchLabels: {} } }],
      destinationCIDRs: cidrs,
      egressSourceIP: IP,
    },
  } as KubeObject;
}

async function lastApplyAt(lab: Lab, node: string): Promise<number> {
  const r = await lab.exec(node, ['cat', DEFAULT_LAB_PATHS.agentStatus]);
  const s = JSON.parse(r.stdout) as { gateway?: { lastApplyAt?: string | null } };
  return Date.parse(s.gateway?.lastApplyAt ?? '');
}

/** Sum of the packet counters of the drop rules in the node's egresslab_gw table (reset by each commit: the table is re-created). */
async function drops(lab: Lab, node: string): Promise<number> {
  const r = await lab.exec(node, ['nft', 'list', 'table', 'ip', 'egresslab_gw'], { check: false });
  return [...r.stdout.matchAll(/counter packets (\d+) bytes \d+ drop/g)].reduce((s, x) => s + Number(x[1]), 0);
}

/** Waits until the newest 5 packets (all sent after `since`) were answered by way of `source`. */
async function settleOn(probe: ContinuousProbe, source: string, since: number, what: string): Promise<void> {
  await pollUntil(() => probe.records(), {
    what,
    timeoutMs: 20_000,
    intervalMs: 20,
    accept: (l: ClientRecord[]) => {
      const last = l.slice(-5);
      return last.length === 5 && last.every((r) => r.t >= since && r.observedSource === source);
    },
  });
}

interface Transition {
  /** write returned -> first packet with the new source */
  ms: number;
  writeMs: number;
  podNodeCommitMs: number;
  holderCommitMs: number;
  lost: number;
  backToOld: number;
  /** packets of this window observed with a source neither old nor new, and when they were sent (ms after the write returned) */
  unexpected: number;
  unexpectedAt: string;
  /** packets counted by the drop rules of egresslab_gw (fail-closed/guard) on the pod's node and the holder since their last commit */
  drops: number[];
}

function analyse(
  t: Timeline,
  w0: number,
  w: number,
  oldSrc: string,
  newSrc: string,
  until: number,
): Omit<Transition, 'podNodeCommitMs' | 'holderCommitMs' | 'drops'> {
  const pk = [...t.packets].sort((a, b) => a.seq - b.seq).filter((p) => p.t >= w0 && p.t < until);
  const first = pk.find((p) => p.observedSources.includes(newSrc));
  if (!first) throw new Error(`no packet with ${newSrc} after the write`);
  const lost = pk.filter((p: TimelinePacket) => p.t < first.t && !p.replied).length;
  const backToOld = pk.filter((p) => p.seq > first.seq && p.observedSources.includes(oldSrc)).length;
  const odd = pk.filter((p) => p.observedSources.some((s) => s !== oldSrc && s !== newSrc));
  const unexpectedAt = odd.length ? `${odd[0]!.t - w0}..${odd.at(-1)!.t - w0} ms` : '-';
  return { ms: first.t - w0, writeMs: w - w0, lost, backToOld, unexpected: odd.length, unexpectedAt };
}

function line(name: string, xs: Transition[]): string {
  const ms = xs.map((x) => x.ms);
  const fmt = (v: number[]) => (v.some(Number.isNaN) || v.length === 0 ? 'n/a' : `p50 ${pct(v, 50)} / p95 ${pct(v, 95)} / max ${Math.max(...v)} ms`);
  return (
    `${name} (n=${xs.length}): first packet p50 ${pct(ms, 50)} ms, p95 ${pct(ms, 95)} ms, max ${Math.max(...ms)} ms, min ${Math.min(...ms)} ms\n` +
    `    API write round trip ${fmt(xs.map((x) => x.writeMs))}; pod node committed ${fmt(xs.map((x) => x.podNodeCommitMs))}; holder committed ${fmt(xs.map((x) => x.holderCommitMs))}\n` +
    `    packets lost in the transition: ${xs.reduce((s, x) => s + x.lost, 0)} (max ${Math.max(...xs.map((x) => x.lost))} in one change); back to the old source after the first new one: ${xs.reduce((s, x) => s + x.backToOld, 0)}; ` +
    `observed with an unexpected source: ${xs.reduce((s, x) => s + x.unexpected, 0)} packets in ${xs.filter((x) => x.unexpected > 0).length}/${xs.length} changes\n` +
    `    egresslab_gw drop counters after the change (pod node / holder): ${xs.reduce((s, x) => s + (x.drops[0] ?? 0), 0)} / ${xs.reduce((s, x) => s + (x.drops[1] ?? 0), 0)}`
  );
}

async function run(lab: Lab): Promise<void> {
  const api: KubeClient = await lab.api({ timeoutMs: 30_000 });
  await lab.apply({
    apiVersion: 'networking.gke.io/v1alpha1',
    kind: 'AnthosNetworkGateway',
    metadata: { namespace: 'cluster-cluster1', name: 'default' },
    spec: { floatingIPs: [IP] },
  } as KubeObject);
  const holder = await workerHolder(lab, api, IP, 60_000);
  await pollUntil(async () => (await lab.exec(holder, ['ip', '-4', 'addr', 'show', 'dev', 'eth0'])).stdout.includes(`${IP}/32`), {
    what: `${IP} on ${holder}`,
    timeoutMs: 15_000,
  });
  const podKey = POD_ARG || CANDIDATES.find((p) => lab.pod(p).node !== holder)!;
  const pod = lab.pod(podKey);
  if (pod.node === holder) throw new Error(`${podKey} runs on the holder ${holder}: pick a pod on another node`);
  const nodeIP = lab.topology.nodes.find((n) => n.name === pod.node)!.address;
  console.log(
    `holder of ${IP}: ${holder}; probe ${podKey} (${pod.ip} on ${pod.node}, node IP ${nodeIP}) -> ${DST}, ${PROTO} every ${INTERVAL_MS} ms; change=${CHANGE}; ${RUNS} runs`,
  );

  if (CHANGE === 'cidr') await api.create(R.egressNATPolicies, policyObject(pod.namespace, OFF_CIDRS) as KubeObject & { metadata: KubeObject['metadata'] });
  const write = async (on: boolean): Promise<void> => {
    if (CHANGE === 'create') {
      if (on) await api.create(R.egressNATPolicies, policyObject(pod.namespace, ON_CIDRS) as KubeObject & { metadata: KubeObject['metadata'] });
      else await api.delete(R.egressNATPolicies, NAME);
    } else {
      await api.patch(R.egressNATPolicies, NAME, { spec: { destinationCIDRs: on ? ON_CIDRS : OFF_CIDRS } });
    }
  };
  const committed = async (before: number[], w0: number): Promise<[number, number]> => {
    const after = await pollUntil(() => Promise.all([lastApplyAt(lab, pod.node), lastApplyAt(lab, holder)]), {
      what: `${pod.node} and ${holder} to commit`,
      timeoutMs: 5_000,
      intervalMs: 50,
      accept: (a) => a[0]! !== before[0] && a[1]! !== before[1],
    }).catch(() => [NaN, NaN]);
    return [after[0]! - w0, after[1]! - w0];
  };

  const ons: Transition[] = [];
  const offs: Transition[] = [];
  let unexpected = 0;
  const unexpectedSources = new Map<string, number>();
  for (let i = 0; i < RUNS; i++) {
    const probe = await lab.continuousProbe(podKey, DST, { proto: PROTO, intervalMs: INTERVAL_MS, timeoutMs: 300 });
    let t: Timeline;
    let m: { w0: number; w: number; d0: number; d: number; on: [number, number]; off: [number, number]; onDrops: number[]; offDrops: number[] };
    try {
      const s0 = Date.now();
      await settleOn(probe, nodeIP, s0, `run ${i + 1}: the probe to settle on ${nodeIP} (no policy)`);
      let before = await Promise.all([lastApplyAt(lab, pod.node), lastApplyAt(lab, holder)]);
      const w0 = Date.now();
      await write(true);
      const w = Date.now();
      await settleOn(probe, IP, w0, `run ${i + 1}: the probe to settle on ${IP} after the policy write`);
      const on = await committed(before, w0);
      const onDrops = await Promise.all([drops(lab, pod.node), drops(lab, holder)]);
      before = await Promise.all([lastApplyAt(lab, pod.node), lastApplyAt(lab, holder)]);
      const d0 = Date.now();
      await write(false);
      const d = Date.now();
      await settleOn(probe, nodeIP, d0, `run ${i + 1}: the probe to settle back on ${nodeIP} after the policy removal`);
      const off = await committed(before, d0);
      const offDrops = await Promise.all([drops(lab, pod.node), drops(lab, holder)]);
      m = { w0, w, d0, d, on, off, onDrops, offDrops };
    } finally {
      t = await probe.stop();
    }
    const a = analyse(t, m.w0, m.w, nodeIP, IP, m.d0);
    const b = analyse(t, m.d0, m.d, IP, nodeIP, Infinity);
    ons.push({ ...a, podNodeCommitMs: m.on[0], holderCommitMs: m.on[1], drops: m.onDrops });
    offs.push({ ...b, podNodeCommitMs: m.off[0], holderCommitMs: m.off[1], drops: m.offDrops });
    const l = leaks(t, [nodeIP, IP]);
    for (const p of l.packets)
      for (const s of p.observedSources.filter((x) => x !== nodeIP && x !== IP)) unexpectedSources.set(s, (unexpectedSources.get(s) ?? 0) + 1);
    for (const o of l.unattributed) unexpectedSources.set(o.src, (unexpectedSources.get(o.src) ?? 0) + 1);
    const n = l.packets.length + l.unattributed.length;
    unexpected += n;
    console.log(
      `run ${String(i + 1).padStart(2)}: on +${a.ms} ms (write ${a.writeMs} ms, commit ${pod.node} +${m.on[0]} ${holder} +${m.on[1]}, lost ${a.lost}, nft drops ${m.onDrops.join('/')}, unexpected ${a.unexpected} sent ${a.unexpectedAt}) | ` +
        `off +${b.ms} ms (write ${b.writeMs} ms, commit ${pod.node} +${m.off[0]} ${holder} +${m.off[1]}, lost ${b.lost}, nft drops ${m.offDrops.join('/')}, unexpected ${b.unexpected} sent ${b.unexpectedAt}) | ${t.packets.length} packets, unexpected sources ${n}`,
    );
  }
  console.log(
    `\npolicy change -> first packet with the new source (${PROTO} every ${INTERVAL_MS} ms, change=${CHANGE}, reference: API write request sent, host clock)`,
  );
  console.log(line(`on  (policy ${CHANGE === 'create' ? 'created' : 'destination added'}: ${nodeIP} -> ${IP})`, ons));
  console.log(line(`off (policy ${CHANGE === 'create' ? 'deleted' : 'destination removed'}: ${IP} -> ${nodeIP})`, offs));
  console.log(
    `packets observed with a source neither ${nodeIP} nor ${IP}: ${unexpected}${unexpected ? ` ${JSON.stringify(Object.fromEntries(unexpectedSources))}` : ''}`,
  );
}

withLab('default', 'bgp', run).catch((e: unknown) => {
  console.error((e as Error).stack ?? String(e));
  process.exit(1);
});
