/** The pure part of cluster-ready.ts: which nodes are not Up yet, and why. */
import type { KubeObject } from '../../lib/kube/types.js';

/** Each of `nodes` whose AnthosNetworkGatewayNode is missing or not Up, as "name (state)". */
export function nodesNotUp(nodes: readonly string[], items: readonly KubeObject[]): string[] {
  const state = new Map(items.map((o) => [o.metadata.name, (o as { status?: { state?: string } }).status?.state ?? '?']));
  return nodes.filter((n) => state.get(n) !== 'Up').map((n) => `${n} (${state.get(n) ?? 'no AnthosNetworkGatewayNode'})`);
}
