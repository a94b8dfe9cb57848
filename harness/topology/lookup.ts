/**
 * Looking things up in a topology by name, so that scenarios never hard-code an address that a
 * topology file already says (pure: unit-tested without a lab).
 */
import type { Topology } from './types.js';

/**
 * The lab address of a node (its eth0 on the node segment), by node name or by the key of a pod on
 * it ("ns/name", or "name" in the default namespace): a pod's traffic masqueraded by its node
 * leaves with this address. Throws naming the unknown name and the ones that exist.
 *
 * @example
 * ```ts
 * nodeAddress(lab.topology, 'node-1');            // '192.168.1.2' in the default fixture
 * nodeAddress(lab.topology, 'alice/frontend-1');  // the address of the pod's node
 * ```
 */
export function nodeAddress(topology: Pick<Topology, 'name' | 'nodes' | 'pods'>, nodeOrPod: string): string {
  const pod = topology.pods.find(
    (p) => `${p.namespace}/${p.name}` === nodeOrPod || (!nodeOrPod.includes('/') && p.namespace === 'default' && p.name === nodeOrPod),
  );
  const nodeName = topology.nodes.some((n) => n.name === nodeOrPod) ? nodeOrPod : pod?.node;
  const node = topology.nodes.find((n) => n.name === nodeName);
  if (node) return node.address;
  if (pod) throw new Error(`topology ${topology.name}: pod ${nodeOrPod} is on node ${JSON.stringify(pod.node)}, which the topology does not have`);
  throw new Error(
    `topology ${topology.name} has no node or pod ${JSON.stringify(nodeOrPod)} (nodes: ${topology.nodes.map((n) => n.name).join(', ') || 'none'}; pods: ${topology.pods.map((p) => `${p.namespace}/${p.name}`).join(', ') || 'none'})`,
  );
}
