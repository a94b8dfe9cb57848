/**
 * Well-known names and defaults that the agent, the controller and the harness agree on: the
 * namespaces and objects every side reads or writes by name, and the ip-masq-agent defaults.
 */

/** The namespace of the cluster's system objects. */
export const KUBE_SYSTEM = 'kube-system';

/** Where each node's Lease lives (kube-node-lease/<node>). */
export const NODE_LEASE_NAMESPACE = 'kube-node-lease';

/**
 * Annotation on a node's Lease: the interval (ms) at which its agent sends heartbeats while it holds
 * a floating IP, "0" when it sends none. The controller's failure detector reads it: a Down node
 * whose Lease says it beats comes back Up by a heartbeat only (controller/logic/liveness.ts).
 */
export const LEASE_HEARTBEAT_ANNOTATION = 'egresslab.io/heartbeat-interval-ms';

/**
 * The AnthosNetworkGateway the agents follow: kube-system/default (the controller mirrors the
 * cluster namespace's `default` there, docs/controller.md).
 */
/** A Node's L2 subnet (CIDR): written by the controller from its config, read by the agents and the allocator. */
export const SUBNET_ANNOTATION = 'networking.egresslab.io/subnet';

/** A Node's default gateway (the router of its subnet), from the controller's config: never a floating IP. */
export const GATEWAY_ANNOTATION = 'networking.egresslab.io/gateway';

export const GATEWAY_NAMESPACE = KUBE_SYSTEM;
/** The name of the served AnthosNetworkGateway, in its namespace. */
export const GATEWAY_NAME = 'default';

/** The ip-masq-agent ConfigMap: kube-system/ip-masq-agent, key `config` (projected to the agent's config file). */
export const IP_MASQ_NAMESPACE = KUBE_SYSTEM;
/** The ip-masq-agent ConfigMap's name. */
export const IP_MASQ_NAME = 'ip-masq-agent';
/** The ip-masq-agent ConfigMap's key holding the config. */
export const IP_MASQ_KEY = 'config';

/**
 * Default non-masquerade destinations (SPEC section 1): the 11 ranges upstream uses with
 * `--nomasq-all-reserved-ranges=true`, which is what GKE runs with.
 */
export const DEFAULT_NON_MASQUERADE_CIDRS: readonly string[] = Object.freeze([
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '240.0.0.0/4',
]);
