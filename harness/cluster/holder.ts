/**
 * A floating IP's holder, made safe to break. The lab runs the controller on the control-plane
 * node, so breaking that node (kill, pause, partition) takes the controller down with it and
 * nothing can move the IP: that is a controller outage, not a gateway failover. Rule 2 puts IPs
 * on workers first, but after lease flaps on a loaded machine an IP can land on the control-plane
 * node; `workerHolder` then moves it to a worker the way a real failover would (the agent on the
 * control-plane node stops renewing its lease), restarts that agent, and returns the new holder.
 */
import type { Lab } from '../lab/lab.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { pollUntil, type Clock } from '../util/poll.js';
import { startProcess, stopProcess } from '../lab/process.js';
import { AGENT_PROCESS, agentCommand, controlPlaneNode } from './cluster.js';
import { everyNodeUp, gatewayOf, type GatewayStatus } from './cluster-status.js';
import { isIPv4 } from '../../lib/net/addresses.js';
import { ValidationError } from '../util/errors.js';

/**
 * Waits for every node Up and `ip` assigned; if its holder is the control-plane node, moves it to a
 * worker first. Returns the name of the worker node that holds `ip` (e.g. `node-2`); throws a
 * TimeoutError after `timeoutMs` when the IP is never assigned.
 *
 * @example
 * ```ts
 * const api = await lab.api();
 * const holder = await workerHolder(lab, api, '203.0.113.10'); // a worker (node-1, node-2 or node-3 in the default lab), never the control plane
 * await lab.faults.partition(holder);
 * ```
 */
export async function workerHolder(lab: Lab, api: KubeClient, ip: string, timeoutMs = 30_000): Promise<string> {
  const cp = controlPlaneNode(lab.topology).name;
  const ready = () =>
    pollUntil(() => gatewayOf(api), {
      what: `every node Up and ${ip} assigned`,
      timeoutMs,
      intervalMs: 50,
      accept: (g) => everyNodeUp(g, lab.topology.nodes.length) && !!g.assignments[ip],
    });
  const g = await ready();
  if (g.assignments[ip] !== cp) return g.assignments[ip]!;
  lab.faults.note(cp, 'stop-agent');
  await stopProcess(lab, cp, AGENT_PROCESS);
  try {
    await pollUntil(() => gatewayOf(api), {
      what: `${ip} to move off ${cp} once its agent stopped`,
      timeoutMs,
      intervalMs: 50,
      accept: (s) => !!s.assignments[ip] && s.assignments[ip] !== cp,
    });
  } finally {
    await startProcess(lab, { container: cp, label: cp }, AGENT_PROCESS, agentCommand());
  }
  const after = await ready();
  if (after.assignments[ip] === cp) throw new Error(`${ip} moved back to ${cp} after its agent restarted (rule 5 says it must not)`);
  return after.assignments[ip]!;
}

/** The node `ip` is assigned to in the gateway status, if that node is Up; else undefined. */
export function upHolder(g: GatewayStatus, ip: string): string | undefined {
  const node = g.assignments[ip];
  return node !== undefined && g.nodes[node] === 'Up' ? node : undefined;
}

/** Options of holderOf. */
export interface HolderOptions {
  /** Deadline (default 15 000 ms). */
  timeoutMs?: number;
  /** Poll interval (default 50 ms). */
  intervalMs?: number;
  /** Also wait until exactly this many nodes are in the gateway status, every one Up (a settled gateway). */
  nodeCount?: number;
  /** Namespace of the gateway object the agents follow (default kube-system). */
  namespace?: string;
  /** Injectable clock (tests). */
  clock?: Clock;
}

/**
 * The current holder of floating IP `ip`: waits until the gateway status assigns it to a node that
 * is Up (with `nodeCount`: and every node Up) and returns that node's name. Unlike workerHolder it
 * moves nothing: the holder may be the control-plane node.
 *
 * @example
 * ```ts
 * const api = await lab.api();
 * const holder = await holderOf(api, '192.168.1.100', { nodeCount: lab.topology.nodes.length });
 * expect(await lab.probe('alice/frontend-1', '8.8.8.8')).toBeSeenFrom('192.168.1.100');
 * await lab.faults.kill(holder);
 * ```
 */
export async function holderOf(api: KubeClient, ip: string, options: HolderOptions = {}): Promise<string> {
  if (!isIPv4(ip)) throw new ValidationError('holderOf', [{ path: 'ip', value: ip, message: 'must be an IPv4 address (a floating IP of the gateway)' }]);
  const { nodeCount } = options;
  if (nodeCount !== undefined && !(Number.isInteger(nodeCount) && nodeCount > 0)) {
    throw new ValidationError('holderOf', [{ path: 'nodeCount', value: nodeCount, message: "must be a whole number above 0 (the lab's node count)" }]);
  }
  const g = await pollUntil(() => gatewayOf(api, options.namespace), {
    what: `${ip} assigned to an Up node${nodeCount !== undefined ? ` with all ${nodeCount} nodes Up` : ''}`,
    timeoutMs: options.timeoutMs ?? 15_000,
    intervalMs: options.intervalMs ?? 50,
    ...(options.clock ? { clock: options.clock } : {}),
    accept: (s) => upHolder(s, ip) !== undefined && (nodeCount === undefined || everyNodeUp(s, nodeCount)),
  });
  return upHolder(g, ip)!;
}
