/**
 * Topology: the lab described as data (fixtures/topologies/*.yaml). `TopologyInput` is what a user
 * writes; `Topology` is the validated, defaulted form the planner works from.
 */

/** A node's role: workers run pods; the control-plane node runs the controller (API server) and may run pods. */
export type NodeRole = 'worker' | 'control-plane';

/**
 * How the cluster SNATs pod traffic (SPEC 1). The foundation knows `none` (no SNAT anywhere: the
 * source an endpoint sees is the pod IP), which is the same datapath as Standard with
 * `disableDefaultSnat: true`. Agent-driven flavours plug in here.
 */
export type SnatFlavour = 'none' | 'default-snat' | 'ip-masq-agent' | 'autopilot';

/** One node of the lab: its name, role, address on the node segment and pod CIDR. */
export interface NodeSpec {
  name: string;
  role: NodeRole;
  address: string;
  /** Absent for a node that runs no pods. */
  podCIDR?: string;
}

/** A namespace of the cluster and its labels (policies select pods by them). */
export interface NamespaceSpec {
  name: string;
  labels: Record<string, string>;
}

/** A pod: its namespace, name, node, IP (or hostNetwork) and labels. */
export interface PodSpec {
  namespace: string;
  name: string;
  node: string;
  /** Absent for hostNetwork pods. */
  ip?: string;
  hostNetwork: boolean;
  labels: Record<string, string>;
}

/** An endpoint standing for "the VPC": its address, subnet and the destinations it answers on. */
export interface VpcEndpointSpec {
  name: string;
  /** The endpoint's own address, e.g. 172.16.100.10. */
  address: string;
  /** Its subnet; the router takes the first address. */
  subnet: string;
  /** Destinations it answers on (AnyIP). The router sends these ranges to it. */
  answers: string[];
}

/** A validated topology with every default filled in (parseTopology, topologyFrom); docs/topology.md describes each field. */
export interface Topology {
  name: string;
  nodeSubnet: string;
  routerAddress: string;
  /** Router <-> internet point-to-point link (a /30 or /31). */
  transitCIDR: string;
  serviceCIDR: string;
  snat: SnatFlavour;
  /**
   * Whether the lab runs the cluster's programs: the controller (API server) on the first
   * control-plane node and the agent on every node. Default: true when the topology has a
   * control-plane node. The foundation fixture turns them off.
   */
  cluster: boolean;
  /**
   * Node liveness timings of the cluster (agents renew their Lease every renewIntervalMs; the
   * controller marks a node Down when its lease is older than expiryMs). Absent: the controller's
   * defaults (100 ms heartbeats while holding a floating IP / 600 ms, chosen so a failover completes within 1 s).
   */
  lease?: { renewIntervalMs: number; expiryMs: number };
  nodes: NodeSpec[];
  namespaces: NamespaceSpec[];
  pods: PodSpec[];
  vpcEndpoints: VpcEndpointSpec[];
}

/** What a topology file may contain (validated by `parseTopology`). */
export type TopologyInput = unknown;
