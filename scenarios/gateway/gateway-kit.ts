/**
 * Shared by the egress-gateway scenarios (SPEC 2): apply manifests, read the gateway status, wait
 * until a policy is served (the holder has the IP on eth0 and a probe leaves with it), MACs,
 * EgressNATPolicy objects built in code, and the hop-by-hop capture of the seed's 7-step path.
 */
import { NODE_FAULTS, type NodeFaultName } from '../../harness/faults/faults.js';
import { expect } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import type { ProbeResult } from '../../harness/probe/probe.js';
import { R, type KubeClient } from '../../lib/kube/client.js';
import type { KubeObject } from '../../lib/kube/types.js';
import { applyAll, loadManifests } from '../../harness/cluster/apply.js';
import { everyNodeUp, gatewayOf, type GatewayStatus } from '../../harness/cluster/cluster-status.js';
import { holderOf as harnessHolderOf } from '../../harness/cluster/holder.js';
import { pollUntil } from '../../harness/util/poll.js';
import { describePacket, type DecodedPacket } from '../../harness/pcap/pcap.js';
import { startTestLab } from '../../harness/testing/lab.js';
import type { CaptureResult } from '../../harness/capture/capture.js';
import type { Timeline } from '../../harness/probe/timeline.js';
import type { StreamOutcome } from '../../harness/probe/stream.js';
import type { ContinuousProbe } from '../../harness/probe/probe.js';
import { recordTimeline } from '../../harness/testing/artifacts.js';
import { podRegistration, type PodRegistration } from '../../harness/cluster/pods.js';

export const SEED_DIR = 'fixtures/manifests/seed-000';
export const SEED_IP = '192.168.1.100';
export const FLOATING_IPS = ['192.168.1.100', '192.168.1.101', '192.168.1.102'];
export const INTERNET_IP = '8.8.8.8';

export async function applySeed(api: KubeClient): Promise<void> {
  await applyAll(api, loadManifests(SEED_DIR));
}

export const gw = (api: KubeClient): Promise<GatewayStatus> => gatewayOf(api);

export const allUp = (g: GatewayStatus, n = 4) => everyNodeUp(g, n);

/** Polls the API (every 20 ms, 15 s at most) until `ip` is assigned to a node other than `holder`; returns that node. */
export async function waitMovedOff(api: KubeClient, ip: string, holder: string): Promise<string> {
  const g = await pollUntil(() => gw(api), {
    what: `${ip} to move off ${holder}`,
    timeoutMs: 15_000,
    intervalMs: 20,
    accept: (s) => !!s.assignments[ip] && s.assignments[ip] !== holder,
  });
  return g.assignments[ip]!;
}

/** Waits until `ip` is assigned to an Up node (every node Up) and returns that node. */
export async function holderOf(api: KubeClient, ip: string, timeoutMs = 15_000): Promise<string> {
  return harnessHolderOf(api, ip, { timeoutMs, intervalMs: 20, nodeCount: 4 });
}

/** Floating IPs a node has on eth0 (as /32). */
export async function ipsOnEth0(lab: Lab, node: string): Promise<string[]> {
  const r = await lab.exec(node, ['ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0']);
  const j = JSON.parse(r.stdout) as { addr_info: { local: string; prefixlen: number }[] }[];
  return j.flatMap((l) => l.addr_info.filter((a) => a.prefixlen === 32).map((a) => a.local));
}

export async function waitIPOn(lab: Lab, node: string, ip: string, timeoutMs = 15_000): Promise<void> {
  await pollUntil(() => ipsOnEth0(lab, node), { what: `${ip} on ${node}'s eth0`, timeoutMs, intervalMs: 50, accept: (ips) => ips.includes(ip) });
}

/** Waits until `ip` is no longer on `node`'s eth0 (the old holder released it). */
export async function waitIPOff(lab: Lab, node: string, ip: string, timeoutMs = 15_000): Promise<void> {
  await pollUntil(() => ipsOnEth0(lab, node), { what: `${ip} off ${node}'s eth0`, timeoutMs, intervalMs: 50, accept: (ips) => !ips.includes(ip) });
}

export async function macOf(lab: Lab, where: string, iface = 'eth0'): Promise<string> {
  // ip (netlink): right in a pod's network namespace too, where /sys is its node's
  const [link] = JSON.parse((await lab.exec(where, ['ip', '-j', 'link', 'show', 'dev', iface])).stdout) as { address: string }[];
  return link!.address.toLowerCase();
}

export { waitSeenFrom } from '../../harness/probe/probe.js';

export interface PolicyOptions {
  name: string;
  egressSourceIP: string;
  destinationCIDRs: string[];
  rules: { namespaceSelector?: Record<string, string>; podSelector?: Record<string, string> }[];
}

export function policy(o: PolicyOptions): KubeObject {
  return {
    apiVersion: 'networking.gke.io/v1alpha1',
    kind: 'EgressNATPolicy',
    metadata: { name: o.name },
    spec: {
      egress: o.rules.map((r) => ({ namespaceSelector: { matchLabels: r.namespaceSelector ?? {} }, podSelector: { matchLabels: r.podSelector ?? {} } })),
      destinationCIDRs: o.destinationCIDRs,
      egressSourceIP: o.egressSourceIP,
    },
  };
}

export async function createPolicy(api: KubeClient, o: PolicyOptions): Promise<void> {
  await api.create(R.egressNATPolicies, policy(o) as KubeObject & { metadata: KubeObject['metadata'] });
}

export async function deletePolicy(api: KubeClient, name: string): Promise<void> {
  await api.delete(R.egressNATPolicies, name).catch(() => {});
}

export async function setFloatingIPs(api: KubeClient, ips: string[]): Promise<void> {
  await api.patch(R.anthosNetworkGateways, 'default', { spec: { floatingIPs: ips } }, { namespace: 'cluster-cluster1' });
}

/** Events recorded on an EgressNATPolicy (any namespace), by reason. */
export async function policyEvents(api: KubeClient, name: string, reason: string): Promise<KubeObject[]> {
  const list = await api.list(R.events, { fieldSelector: `reason=${reason}` });
  return list.items.filter((e) => (e.involvedObject as { name?: string; kind?: string } | undefined)?.name === name);
}

// ------------------------------------------------------------------ the 7-step path

export interface PathCase {
  pod: string;
  dst: string;
  port: number;
  egressIP: string;
  holder: string;
}

export interface PathEvidence {
  probe: ProbeResult;
  steps: { step: string; ok: boolean; packet?: string }[];
  dump: string;
}

function udpTo(p: DecodedPacket, port: number): boolean {
  return p.ip?.udp?.dport === port;
}
function udpFrom(p: DecodedPacket, port: number): boolean {
  return p.ip?.udp?.sport === port;
}

/**
 * Captures the pod's veth (host side), the pod node's eth0 and the holder's eth0 while one UDP
 * probe goes from the pod to `dst:port`, and checks each of the seed's 7 steps in the pcaps.
 */
export async function capturePath(lab: Lab, c: PathCase): Promise<PathEvidence> {
  const pod = lab.pod(c.pod);
  const podIP = pod.ip!;
  const sameNode = pod.node === c.holder;
  const filter = `udp port ${c.port}`;
  const [podMac, holderMac] = await Promise.all([macOf(lab, pod.node), macOf(lab, c.holder)]);
  const caps = await Promise.all([
    lab.capture(pod.node, pod.hostVeth!, { filter }),
    lab.capture(pod.node, 'eth0', { filter }),
    ...(sameNode ? [] : [lab.capture(c.holder, 'eth0', { filter })]),
  ]);
  const probe = await lab.probe(c.pod, c.dst, { proto: 'udp', port: c.port, timeoutMs: 2_000 });
  const [veth, srcEth, gwEthOrUndef] = (await Promise.all(caps.map((x) => x.stop()))) as [CaptureResult, CaptureResult, CaptureResult?];
  const gwEth = sameNode ? srcEth : gwEthOrUndef!;
  const pick = (ps: DecodedPacket[], f: (p: DecodedPacket) => boolean) => ps.find(f);
  const out = (p: DecodedPacket) => udpTo(p, c.port);
  const back = (p: DecodedPacket) => udpFrom(p, c.port);
  const steps: PathEvidence['steps'] = [];
  const check = (step: string, p: DecodedPacket | undefined) => steps.push({ step, ok: !!p, ...(p ? { packet: describePacket(p) } : {}) });

  check(
    `1. ${c.pod} sends from ${podIP} on its veth ${pod.hostVeth}`,
    pick(veth.packets, (p) => out(p) && p.ip!.src === podIP && p.ip!.dst === c.dst),
  );
  if (!sameNode) {
    check(
      `2. ${pod.node} eth0 forwards it to ${c.holder} (dst MAC ${holderMac}) with src still ${podIP}`,
      pick(srcEth.packets, (p) => out(p) && p.ip!.src === podIP && p.srcMac === podMac && p.dstMac === holderMac),
    );
    check(
      `3. ${c.holder} eth0 receives it (src ${podIP})`,
      pick(gwEth.packets, (p) => out(p) && p.ip!.src === podIP && p.dstMac === holderMac),
    );
  } else {
    check(
      `2/3. pod on the gateway node: nothing leaves ${pod.node} eth0 with ${podIP}`,
      srcEth.packets.some((p) => out(p) && p.ip!.src === podIP) ? undefined : veth.packets[0],
    );
  }
  check(
    `4. ${c.holder} eth0 sends it SNATed to ${c.egressIP}`,
    pick(gwEth.packets, (p) => out(p) && p.ip!.src === c.egressIP && p.srcMac === holderMac),
  );
  check(
    `5. the reply comes back to ${c.egressIP} on ${c.holder}`,
    pick(gwEth.packets, (p) => back(p) && p.ip!.dst === c.egressIP && p.dstMac === holderMac),
  );
  if (!sameNode) {
    check(
      `6. ${c.holder} de-NATs it to ${podIP} and sends it to ${pod.node} (dst MAC ${podMac})`,
      pick(gwEth.packets, (p) => back(p) && p.ip!.dst === podIP && p.srcMac === holderMac && p.dstMac === podMac),
    );
  }
  check(
    `7. delivered to ${c.pod} on its veth (dst ${podIP})`,
    pick(veth.packets, (p) => back(p) && p.ip!.dst === podIP),
  );
  const dump = [
    `-- ${pod.node}:${pod.hostVeth}`,
    ...veth.packets.map(describePacket),
    `-- ${pod.node}:eth0 (mac ${podMac})`,
    ...srcEth.packets.map((p) => `${p.srcMac} > ${p.dstMac} ${describePacket(p)}`),
    ...(sameNode ? [] : [`-- ${c.holder}:eth0 (mac ${holderMac})`, ...gwEth.packets.map((p) => `${p.srcMac} > ${p.dstMac} ${describePacket(p)}`)]),
  ].join('\n');
  return { probe, steps, dump };
}

export function expectPath(e: PathEvidence, c: PathCase): void {
  const report = `${e.steps.map((s) => `${s.ok ? 'ok  ' : 'MISS'} ${s.step}${s.packet ? `   [${s.packet}]` : ''}`).join('\n')}\n${e.dump}`;
  expect(e.probe).toBeSeenFrom(c.egressIP);
  expect(e.probe).toGetReply();
  expect(
    e.steps.filter((s) => !s.ok).map((s) => s.step),
    report,
  ).toEqual([]);
}

/** The failover fixture: the gateway with FAILOVER_IPS and the policies fo-a and fo-b. */
export const FAILOVER_MANIFESTS = 'fixtures/manifests/gateway/failover.yaml';

/** The failover fixture's two IPs (fixtures/manifests/gateway/failover.yaml). */
export const FAILOVER_IPS = ['192.168.1.100', '192.168.1.101'] as const;

/** An EgressNATPolicy of a manifest file (or directory), by name. */
export function policyOf(source: string, name: string): KubeObject {
  const hit = loadManifests(source).find((m) => m.object.kind === 'EgressNATPolicy' && m.object.metadata?.name === name);
  if (!hit) throw new Error(`${source} has no EgressNATPolicy ${name}`);
  return hit.object;
}

type MatchLabels = Record<string, string>;
const labelsMatch = (want: MatchLabels, have: Record<string, string>) => Object.entries(want).every(([k, v]) => have[k] === v);

/**
 * The pods (`ns/name`) a policy selects among `reg` (the lab's pods and namespaces as the cluster
 * registers them: harness/cluster/pods.ts), by the policy's own selectors, independently of the
 * agent's code (docs/gateway.md: namespaceSelector AND podSelector, OR across rules; hostNetwork pods
 * never). Only `matchLabels` selectors (what the fixtures use); anything else is refused.
 */
export function podsSelectedBy(policy: KubeObject, reg: PodRegistration): string[] {
  const name = policy.metadata?.name ?? '?';
  const rules = ((policy.spec as { egress?: unknown[] } | undefined)?.egress ?? []) as {
    namespaceSelector?: Record<string, unknown>;
    podSelector?: Record<string, unknown>;
  }[];
  const selector = (s: Record<string, unknown> | undefined, what: string): MatchLabels => {
    if (s === undefined) return {};
    const extra = Object.keys(s).filter((k) => k !== 'matchLabels');
    if (extra.length) throw new Error(`policy ${name}: ${what} uses ${extra.join(', ')}; podsSelectedBy only understands matchLabels`);
    return (s.matchLabels ?? {}) as MatchLabels;
  };
  const nsLabels = new Map(reg.namespaces.map((n) => [n.name, n.labels]));
  return reg.pods
    .filter((p) => !p.hostNetwork)
    .filter((p) =>
      rules.some(
        (r) =>
          labelsMatch(selector(r.namespaceSelector, 'namespaceSelector'), nsLabels.get(p.namespace) ?? {}) &&
          labelsMatch(selector(r.podSelector, 'podSelector'), p.labels),
      ),
    )
    .map((p) => `${p.namespace}/${p.name}`);
}

/** The lab's pods (`ns/name`) that a policy selects (labels as this Lab knows them: Lab.labelPod keeps them). */
export function matchedPods(lab: Lab, policy: KubeObject): string[] {
  return podsSelectedBy(policy, podRegistration(lab.plan));
}

/** Who announces floating IPs on the node segment, seen from the router: harness/cluster/segment-arp.ts. */
export { segmentArp, type SegmentArp } from '../../harness/cluster/segment-arp.js';

/** A default lab with the seed's gateway and policy applied and the seed IP on its holder. */
export async function startSeedLab(prefix: string): Promise<{ lab: Lab; api: KubeClient }> {
  const lab = await startTestLab('default', prefix);
  const api = await lab.api();
  await applySeed(api);
  await waitIPOn(lab, await holderOf(api, SEED_IP), SEED_IP);
  return { lab, api };
}

/** A default lab with fixtures/manifests/gateway/failover.yaml applied and both IPs on their holders. */
export async function startFailoverLab(prefix: string, overrides: Record<string, unknown> = {}): Promise<{ lab: Lab; api: KubeClient }> {
  const lab = await startTestLab('default', prefix, overrides);
  const api = await lab.api();
  await applyAll(api, loadManifests(FAILOVER_MANIFESTS));
  for (const ip of FAILOVER_IPS) await waitIPOn(lab, await holderOf(api, ip), ip);
  return { lab, api };
}

/** The four ways the failover scenarios break a gateway node (SPEC 2 rule 4). */
export type NodeFault = NodeFaultName;

/** SIGKILL, clean stop (2 s grace), pause (a hung node: its kernel still forwards), partition (NODE_FAULTS). */
export async function breakNode(lab: Lab, fault: NodeFault, node: string): Promise<void> {
  await NODE_FAULTS[fault].inject(lab.faults, node);
}

/** Undoes breakNode: start (agent included), unpause, heal (NODE_FAULTS). */
export async function restoreNode(lab: Lab, fault: NodeFault, node: string): Promise<void> {
  await NODE_FAULTS[fault].undo(lab.faults, node);
}

/**
 * A long-lived stream carried on through a failover as ONE connection: recorded on the report, not
 * broken, never replaced, one local port, the far end saw one source IP:port and it is `ip`'s.
 */
export function expectSameConnection(t: Timeline, o: StreamOutcome, ip: string): void {
  recordTimeline(o.label, t, [ip]);
  expect(t.stream!.survived, `${o.label}: ${t.stream!.reason}`).toBe(true);
  expect(t.stream!.connections).toHaveLength(1);
  expect(new Set(t.packets.map((p) => p.localPort)).size, `${o.label}: one local port`).toBe(1);
  expect(o.endpoints, `${o.label}: the far end saw one source IP:port`).toHaveLength(1);
  expect(o.endpoints[0]!.startsWith(`${ip}:`)).toBe(true);
}

/**
 * Polls (15 s at most) until every stream has `n` lines answered after `t` (ms since the epoch),
 * or has reported its break: no waiting on a dead connection (the verdict says it broke).
 */
export async function streamsAnsweredOrBroken(streams: readonly ContinuousProbe[], t: number, n: number, what: string): Promise<void> {
  const broken = async (p: ContinuousProbe) => (await p.records()).some((r) => r.connectionError !== undefined);
  await pollUntil(async () => Promise.all(streams.map(async (p) => (await broken(p)) || (await p.answeredAfter(t)) >= n)), {
    what: `every stream answered ${n} lines ${what}, or broken`,
    timeoutMs: 15_000,
    accept: (xs) => xs.every(Boolean),
  });
}
