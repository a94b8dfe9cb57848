/** The pure part of cluster-ready.ts, which the harness shares: which nodes are not Up yet, and the exit codes. */
import type { KubeObject } from '../../lib/kube/types.js';

/** Each of `nodes` whose AnthosNetworkGatewayNode is missing or not Up, as "name (state)". */
export function nodesNotUp(nodes: readonly string[], items: readonly KubeObject[]): string[] {
  const state = new Map(items.map((o) => [o.metadata.name, (o as { status?: { state?: string } }).status?.state ?? '?']));
  return nodes.filter((n) => state.get(n) !== 'Up').map((n) => `${n} (${state.get(n) ?? 'no AnthosNetworkGatewayNode'})`);
}

/** cluster-ready's exit code when the pods could not be registered by the deadline (1: a node not Up; 2: bad flags). */
export const REGISTER_FAILED = 3;
