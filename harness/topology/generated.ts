/**
 * Generated topologies for large labs (bench/lab-scale, tests of the cluster start): N nodes, a pod
 * on every worker, the cluster on.
 */
import { parseTopology } from './validate.js';
import type { Topology } from './types.js';

/** N nodes: workers node-1..node-(N-1) at 192.168.0.1.. with pod CIDRs 10.20.i.0/24, cp-1 last. */
export function generatedTopology(n: number): Topology {
  const workers = Array.from({ length: n - 1 }, (_, k) => k + 1);
  const addr = (i: number) => `192.168.${i >> 8}.${i & 255}`;
  return parseTopology(
    {
      apiVersion: 'egresslab/v1',
      kind: 'Topology',
      name: `scale-${n}`,
      nodeSubnet: '192.168.0.0/22',
      routerAddress: '192.168.3.254',
      snat: 'ip-masq-agent',
      cluster: true,
      nodes: [
        ...workers.map((i) => ({ name: `node-${i}`, role: 'worker', address: addr(i), podCIDR: `10.${20 + (i >> 8)}.${i & 255}.0/24` })),
        { name: 'cp-1', role: 'control-plane', address: '192.168.3.250' },
      ],
      pods: workers.map((i) => ({ namespace: 'default', name: `pod-${i}`, node: `node-${i}`, ip: `10.${20 + (i >> 8)}.${i & 255}.1` })),
    },
    `generated topology of ${n} nodes`,
  );
}
