/**
 * Responders: who answers a probe to an address, and the responder processes pods and nodes run on
 * first use (endpoints — the internet, VPC endpoints — run theirs from their start). Written against
 * the lab runtime (harness/lab/runtime.ts), so probes use it without importing the Lab.
 */
import { cidrTextContains } from '../../lib/net/addresses.js';
import { RESPONDER_PORT, RUN_DIR } from '../inlab/protocol.js';
import { INTERNET, type LabPlan } from '../topology/plan.js';
import { inLabProgram } from '../util/paths.js';
import { pollUntil } from '../util/poll.js';
import { startProcess } from './process.js';
import type { LabRuntime, Place } from './runtime.js';

/** Where the responder for an address runs; `key` tells responders apart ("container|netns"). */
export type ResponderTarget = Place & { key: string; port?: number };

/** Longest-prefix choice between VPC endpoints' answer ranges; else the internet; lab ranges answer nothing. */
export function endpointFor(plan: LabPlan, ip: string): (Place & { key: string }) | undefined {
  const t = plan.topology;
  const inLabRange = [t.nodeSubnet, ...t.vpcEndpoints.map((e) => e.subnet), ...t.nodes.flatMap((n) => (n.podCIDR ? [n.podCIDR] : []))];
  let best: { name: string; bits: number } | undefined;
  for (const e of t.vpcEndpoints) {
    if (e.address === ip) return { container: e.name, label: e.name, key: `${e.name}|` };
    for (const a of e.answers) {
      const bits = Number(a.split('/')[1]);
      if (cidrTextContains(a, ip) && (!best || bits > best.bits)) best = { name: e.name, bits };
    }
  }
  // The router's directly connected ranges come first, as in its routing table.
  if (ip === plan.transit.internet) return { container: INTERNET, label: INTERNET, key: `${INTERNET}|` };
  if (cidrTextContains(t.transitCIDR, ip) || inLabRange.some((r) => cidrTextContains(r, ip))) return undefined;
  if (best) return { container: best.name, label: best.name, key: `${best.name}|` };
  return { container: INTERNET, label: INTERNET, key: `${INTERNET}|` };
}

/**
 * Who answers a probe to `ip`, or undefined when nothing in the lab owns that address:
 * a pod, a node, a VPC endpoint (its answer ranges, longest prefix) or else the internet.
 */
export function responderFor(plan: LabPlan, ip: string): ResponderTarget | undefined {
  const pod = plan.pods.find((p) => p.ip === ip);
  if (pod) return { container: pod.node, netns: pod.netns!, label: pod.key, key: `${pod.node}|${pod.netns}`, port: RESPONDER_PORT };
  const node = plan.topology.nodes.find((n) => n.address === ip);
  if (node) return { container: node.name, label: node.name, key: `${node.name}|`, port: RESPONDER_PORT };
  return endpointFor(plan, ip);
}

/** Name of the managed responder process serving `target` (pods and nodes only). */
export function responderProcess(target: Place): string {
  return `responder-${target.netns ?? 'host'}`;
}

function onNode(plan: LabPlan, target: Place): boolean {
  return plan.containers.some((c) => c.key === target.container && c.role === 'node');
}

/** The observation log of the responder that answers for `target`. */
export function observedLogOf(plan: LabPlan, target: Place): string {
  return onNode(plan, target) ? `${RUN_DIR}/observed-${target.netns ?? 'host'}.jsonl` : `${RUN_DIR}/observed.jsonl`;
}

/** The ready file (it holds the pid) of the responder that answers for `target`. */
export function responderReadyFileOf(plan: LabPlan, target: Place): string {
  return onNode(plan, target) ? `${RUN_DIR}/responder-${target.netns ?? 'host'}.ready` : `${RUN_DIR}/responder.ready`;
}

/** Responders this process started or found running, per runtime: target key -> ready. */
const started = new WeakMap<LabRuntime, Map<string, Promise<void>>>();

/** Starts a responder in a pod or node on first use (endpoints run theirs from the start). */
export async function ensureResponder(lab: LabRuntime, target: ResponderTarget): Promise<void> {
  if (!onNode(lab.plan, target)) return;
  let byKey = started.get(lab);
  if (!byKey) started.set(lab, (byKey = new Map()));
  const responders = byKey;
  let ready = responders.get(target.key);
  if (!ready) {
    const tag = target.netns ?? 'host';
    const readyFile = `${RUN_DIR}/responder-${tag}.ready`;
    ready = (async () => {
      // Another process (an earlier CLI call) may have started it already: its ready file holds its pid.
      const running = await lab.exec(target.container, ['sh', '-c', `kill -0 $(cat ${readyFile} 2>/dev/null) 2>/dev/null`], { check: false });
      if (running.exitCode === 0) return;
      await lab.exec(target.container, ['rm', '-f', readyFile]);
      await startProcess(lab, target, `responder-${tag}`, [
        'node',
        inLabProgram('harness/inlab/responder.js'),
        '--name',
        target.label,
        '--log',
        `${RUN_DIR}/observed-${tag}.jsonl`,
        '--ready',
        readyFile,
      ]);
      await pollUntil(async () => (await lab.exec(target.container, ['test', '-f', readyFile], { check: false })).exitCode === 0, {
        what: `responder in ${target.label}`,
        timeoutMs: 10_000,
      });
    })();
    responders.set(target.key, ready);
    ready.catch(() => responders.delete(target.key));
  }
  await ready;
}

/** Forgets the responders of these (restarted) containers: they died with them and start again on next use. */
export function forgetResponders(lab: LabRuntime, containers: Iterable<string>): void {
  const responders = started.get(lab);
  if (!responders) return;
  for (const k of containers) for (const key of [...responders.keys()]) if (key.startsWith(`${k}|`)) responders.delete(key);
}
