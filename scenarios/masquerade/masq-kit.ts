/**
 * Shared by the masquerade scenarios (SPEC 1): run a matrix of probes (TCP, UDP and ICMP for every
 * flow, several at once) and assert, with the egresslab matchers, the source the far end observed
 * and whether the reply reached the pod; write / delete the ip-masq-agent ConfigMap; read the
 * agents' status files; wait for a new config to be in force by probing, with a deadline.
 */
import { expect } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { PROTOS, type Proto } from '../../harness/inlab/protocol.js';
import type { ProbeResult } from '../../harness/probe/probe.js';
import { R, KubeApiError, type KubeClient } from '../../lib/kube/client.js';
import type { KubeObject } from '../../lib/kube/types.js';
import { pollUntil } from '../../harness/util/poll.js';
import {
  MASQ_CONFIGMAP,
  masqConfigYaml,
  podNodes as harnessPodNodes,
  readAgentStatus,
  untilMasqConfigApplied,
  type AgentStatusFile,
  type MasqConfigInput,
} from '../../harness/cluster/masq-applied.js';

export const VPC = '172.16.100.10';
export const METADATA = '169.254.169.254';
/**
 * One address in each of the 11 default non-masquerade ranges (SPEC 1, in SPEC order), away from
 * the lab's own ranges (node segment 192.168.1.0/24, pod CIDRs 10.10.x.0/24, VPC subnet
 * 172.16.100.0/24, transit 100.127.255.252/30): the VPC endpoint answers on all of them.
 */
export const DEFAULT_RANGE_ADDRESSES: readonly (readonly [cidr: string, ip: string])[] = [
  ['10.0.0.0/8', '10.200.0.1'],
  ['172.16.0.0/12', '172.20.0.1'],
  ['192.168.0.0/16', '192.168.50.1'],
  ['100.64.0.0/10', '100.64.5.1'],
  ['192.0.0.0/24', '192.0.0.50'],
  ['192.0.2.0/24', '192.0.2.50'],
  ['192.88.99.0/24', '192.88.99.50'],
  ['198.18.0.0/15', '198.18.5.1'],
  ['198.51.100.0/24', '198.51.100.50'],
  ['203.0.113.0/24', '203.0.113.50'],
  ['240.0.0.0/4', '240.0.0.50'],
];

/** What a flow must look like at the far end. */
export interface Flow {
  from: string;
  to: string;
  /** the source the far end must observe */
  source: string;
  /** whether the reply must reach the sender */
  reply: boolean;
}

export function nodeOf(lab: Lab, pod: string): string {
  return lab.pod(pod).node;
}

export function nodeIP(lab: Lab, podOrNode: string): string {
  return lab.nodeAddress(podOrNode);
}

export function podIP(lab: Lab, pod: string): string {
  const p = lab.pod(pod);
  if (!p.ip) throw new Error(`${pod} has no pod IP (hostNetwork?)`);
  return p.ip;
}

/** Flows from `from` to each of `to`, observed with the pod IP (reply as given). */
export function keep(lab: Lab, from: string, to: readonly string[], reply: boolean): Flow[] {
  return to.map((t) => ({ from, to: t, source: podIP(lab, from), reply }));
}

/** Flows from `from` to each of `to`, masqueraded to the node IP (the reply always comes back). */
export function masq(lab: Lab, from: string, to: readonly string[]): Flow[] {
  return to.map((t) => ({ from, to: t, source: nodeIP(lab, from), reply: true }));
}

async function mapLimit<T, U>(items: readonly T[], limit: number, fn: (t: T) => Promise<U>): Promise<U[]> {
  const out: U[] = new Array<U>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Probes every flow over every protocol (a few at a time) and asserts each with the matchers
 * (soft, so one run reports every wrong flow). A flow whose reply must not come back gets a short
 * timeout: the far end's capture tells the source anyway.
 */
export async function expectFlows(lab: Lab, flows: readonly Flow[], protos: readonly Proto[] = PROTOS): Promise<ProbeResult[]> {
  const jobs = flows.flatMap((f) => protos.map((proto) => ({ f, proto })));
  const results = await mapLimit(jobs, 6, async ({ f, proto }) => {
    // On a loaded machine the far end's capture log can trail a lost reply by more than the probe
    // waits for it: a probe that nothing observed says nothing about the source, so it is sent
    // again (at most twice). A packet that really never arrives still fails below.
    let r = await lab.probe(f.from, f.to, { proto, timeoutMs: f.reply ? 2000 : 1000 });
    for (let i = 0; i < 2 && r.observedSource === undefined; i++) r = await lab.probe(f.from, f.to, { proto, timeoutMs: 2000 });
    return r;
  });
  results.forEach((r, i) => {
    const { f } = jobs[i]!;
    expect.soft(r).toBeSeenFrom(f.source);
    if (f.reply) expect.soft(r).toReachPod();
    else expect.soft(r).not.toReachPod();
  });
  return results;
}

/**
 * Polls (a fresh UDP probe each time: a new flow, so no conntrack entry carries the previous
 * decision) until the far end observes `source`; returns how long it took.
 */
export async function untilSeenFrom(lab: Lab, from: string, to: string, source: string, timeoutMs = 5_000): Promise<number> {
  const t0 = Date.now();
  await pollUntil(() => lab.probe(from, to, { proto: 'udp', timeoutMs: 300 }), {
    what: `${from} -> ${to} to be observed from ${source}`,
    timeoutMs,
    intervalMs: 0,
    accept: (r) => r.observedSource === source,
  });
  return Date.now() - t0;
}

// ---- the ip-masq-agent ConfigMap -------------------------------------------------------------

export { MASQ_CONFIGMAP };

export type MasqConfig = MasqConfigInput;

/** The ConfigMap's `config` key as a user writes it (YAML). */
export const configYaml = masqConfigYaml;

export function configMapObject(config: string): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { ...MASQ_CONFIGMAP }, data: { config } };
}

/** Creates or replaces kube-system/ip-masq-agent (key `config`) through the API. */
export async function putMasqConfig(api: KubeClient, config: MasqConfig | string): Promise<void> {
  const text = typeof config === 'string' ? config : configYaml(config);
  const cur = await api.tryGet(R.configmaps, MASQ_CONFIGMAP.name, MASQ_CONFIGMAP.namespace);
  if (!cur) {
    await api.create(R.configmaps, configMapObject(text));
    return;
  }
  await api.update(R.configmaps, { ...cur, data: { config: text } });
}

export async function deleteMasqConfig(api: KubeClient): Promise<void> {
  try {
    await api.delete(R.configmaps, MASQ_CONFIGMAP.name, MASQ_CONFIGMAP.namespace);
  } catch (e) {
    if (!(e instanceof KubeApiError && e.code === 404)) throw e;
  }
}

// ---- the agents' status files ----------------------------------------------------------------

export type { AgentStatusFile } from '../../harness/cluster/masq-applied.js';
export const agentStatus = readAgentStatus;

/** The nodes that run pods (the control-plane node has no pod CIDR: nothing to masquerade). */
export function podNodes(lab: Lab): string[] {
  return harnessPodNodes(lab.topology);
}

/** Waits until every pod node's agent reports a masquerade state accepted by `accept`. */
export async function untilAgents(
  lab: Lab,
  what: string,
  accept: (m: NonNullable<AgentStatusFile['masq']>, node: string) => boolean,
  timeoutMs = 5_000,
): Promise<AgentStatusFile[]> {
  const nodes = podNodes(lab);
  return pollUntil(() => Promise.all(nodes.map((n) => agentStatus(lab, n))), {
    what: `every agent (${nodes.join(', ')}) to report ${what}`,
    timeoutMs,
    intervalMs: 50,
    accept: (all) => all.every((s) => s.masq !== undefined && accept(s.masq, s.node)),
  });
}

/** Every pod node back on the 11 default CIDRs (no ConfigMap). */
export async function untilDefaults(lab: Lab): Promise<void> {
  await untilAgents(lab, 'the default list (no ConfigMap)', (m) => m.configSource === 'defaults' && m.setElements === 11 && m.lastError === null);
}

/**
 * Every pod node runs the config the API holds now (ConfigMap kube-system/ip-masq-agent key
 * `config`; the defaults when it is absent). The expected hash comes from the API object, so the
 * wait cannot latch onto a node's stale status (it used to copy node-1's hash, read a moment before
 * node-1 rewrote its status file, and then wait for every node to go back to the old config).
 */
export async function untilSameConfig(lab: Lab, api: KubeClient): Promise<void> {
  await untilMasqConfigApplied(lab, api, { timeoutMs: 5_000 });
}

/** Events about a Node (the agent records them in namespace default). */
export async function nodeEvents(api: KubeClient, node: string, reason?: string): Promise<KubeObject[]> {
  const list = await api.list(R.events, { namespace: 'default' });
  return list.items.filter((e) => {
    const io = e.involvedObject as { kind?: string; name?: string } | undefined;
    return io?.kind === 'Node' && io.name === node && (!reason || e.reason === reason);
  });
}
