// The controller loops (I/O glue around the pure logic): node liveness from Leases, floating-IP
// allocation into the AnthosNetworkGateway status and the AnthosNetworkGatewayNodes, policy
// conditions and UnknownEgressIP Events, and in Autopilot the EgressNATPolicy -> ip-masq-agent
// ConfigMap projection with the `default` and managed `gke-<hash>` policies.
import type { HeartbeatGrant } from '../../lib/liveness/heartbeat.js';
import { CONTROLLER_USER, SYSTEM_NAMESPACES, type RequestContext, type ResourceService } from '../api/service.js';
import type { StoreEvent } from '../api/store.js';
import type { KubeObject } from '../../lib/kube/types.js';
import type { ControllerConfig } from '../config.js';
import type { AllocNode, NodeState } from '../logic/allocator.js';
import {
  defaultPolicy,
  ipMasqAgentConfig,
  managedPolicy,
  managedPolicyName,
  MANAGED_BY_LABEL,
  MANAGER,
  noSnatDestinations,
  DEFAULT_POLICY_NAME,
} from '../logic/autopilot.js';
import { reconcileGateway, type PolicyState } from '../logic/gateway-reconcile.js';
import { LivenessTracker } from '../logic/liveness.js';
import { StallAwareClock } from '../../lib/liveness/stall-aware-clock.js';
import {
  GATEWAY_ANNOTATION,
  GATEWAY_NAME,
  IP_MASQ_NAME,
  IP_MASQ_NAMESPACE,
  LEASE_HEARTBEAT_ANNOTATION,
  NODE_LEASE_NAMESPACE,
  SUBNET_ANNOTATION,
} from '../../lib/kube/well-known.js';
import { EventRecorder } from './event-recorder.js';

export { GATEWAY_ANNOTATION, SUBNET_ANNOTATION };
/** unassigned reasons that are about the address itself (not the nodes' liveness): one Event each */
const ADDRESS_PROBLEMS: readonly string[] = ['InvalidIP', 'ReservedAddress', 'NoMatchingSubnet'];
const GKE = 'networking.gke.io';
const V1A1 = 'v1alpha1';

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export interface ControllerOptions {
  service: ResourceService;
  config: ControllerConfig;
  /** milliseconds; injected for tests */
  clock?: () => number;
  log?: (line: string) => void;
  /** run the timers (false in unit tests that drive reconcile() by hand) */
  timers?: boolean;
}

export class Controller {
  private readonly service: ResourceService;
  private readonly cfg: ControllerConfig;
  private readonly clock: () => number;
  private readonly log: (line: string) => void;
  private readonly liveness: LivenessTracker;
  private readonly events: EventRecorder;
  private readonly ctx: RequestContext = { user: CONTROLLER_USER, internal: true };
  private readonly timers: boolean;
  private unsubscribe: (() => void) | undefined;
  private pending: NodeJS.Immediate | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private readonly stallAware: StallAwareClock | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private tickerMs = 0;
  /** the interval each node's latest heartbeat announced */
  private readonly beatIntervals = new Map<string, number>();
  private assignments: Record<string, string> | undefined;
  private readonly nodeStates = new Map<string, NodeState>();
  private readonly policyReports = new Map<string, string>();
  /** floating IPs that cannot be assigned for a reason of their own, as last reported (ip -> why) */
  private addressProblems = new Map<string, string>();
  private stopped = false;
  readonly managedPolicyName: string;
  /** number of completed reconcile passes (tests, benchmark) */
  passes = 0;

  constructor(opts: ControllerOptions) {
    this.service = opts.service;
    this.cfg = opts.config;
    // the failure detector does not count time the controller itself was stalled (StallAwareClock)
    const stallAware = opts.clock ? undefined : new StallAwareClock();
    this.clock = opts.clock ?? (() => stallAware!.now());
    this.stallAware = stallAware;
    this.log = opts.log ?? (() => {});
    this.timers = opts.timers ?? true;
    this.liveness = new LivenessTracker(this.cfg.lease, (node) =>
      this.log(`liveness: node ${node} renewed its Lease while Down; it beats, so it comes back Up by its next heartbeat`),
    );
    this.events = new EventRecorder(this.service, this.log);
    this.managedPolicyName = managedPolicyName(this.cfg.clusterName);
  }

  start(): void {
    this.bootstrap();
    this.seedLiveness();
    this.unsubscribe = this.service.store.subscribe((e) => this.onEvent(e));
    this.reconcile();
  }

  /** A verified liveness heartbeat of `node` (controller/reconcile/beacon-receiver.ts). */
  /** this controller process's start (base 36): part of every heartbeat acknowledgement's `downs` */
  private readonly incarnation = Date.now().toString(36);

  /** Returns what this heartbeat granted, which the agent is told (its ARP fence stays within it). */
  observeHeartbeat(node: string, epoch: number, seq: number, intervalMs = this.cfg.lease.renewIntervalMs): HeartbeatGrant | undefined {
    if (this.stopped) return undefined;
    const prev = this.beatIntervals.get(node);
    this.beatIntervals.set(node, intervalMs);
    const changed = prev !== intervalMs;
    if (changed) this.tune();
    if (this.liveness.heartbeat(node, `hb ${epoch} ${seq}`, intervalMs, this.clock())) this.schedule();
    // Another interval, another grace: a node that starts holding an IP beats fast, and its grace
    // drops from 2.4 s to 600 ms while the expiry timer is still armed for the deadlines of the
    // last reconcile (an idle node's, seconds away). A holder killed in the first seconds after its
    // take was declared Down when that timer fired: up to 1.8 s late (the failover bench's first kill
    // in a fresh lab: 1.08-1.62 s of outage, the next ones 0.7-0.8 s). The timer follows the new grace.
    else if (changed) this.armExpiryTimer();
    return { graceMs: this.liveness.graceFor(intervalMs), minGraceMs: this.liveness.graceFor(0), downs: `${this.incarnation}.${this.liveness.revivals(node)}` };
  }

  /**
   * The stall-aware clock needs a sample more often than its longest counted step. While some Up
   * node beats at the fast interval (it holds a floating IP: its death must be seen within 600 ms)
   * the ticker samples every 50 ms (steps up to 150 ms count); otherwise every 1000 ms (steps up
   * to 1500 ms count: the idle grace is 2.4 s, and every heartbeat is a sample too): an idle
   * cluster wakes the controller once a second for the clock, not twenty times.
   */
  private tune(): void {
    if (!this.stallAware || !this.timers || this.stopped) return;
    const now = this.clock();
    const fastLimit = this.cfg.lease.renewIntervalMs;
    const fast = [...this.beatIntervals].some(([n, i]) => i <= fastLimit && this.liveness.state(n, now) === 'Up');
    const ms = fast ? 50 : 1000;
    if (ms === this.tickerMs) return;
    this.stallAware.setMaxStep(fast ? 150 : 1500);
    if (this.ticker) clearInterval(this.ticker);
    this.tickerMs = ms;
    this.ticker = setInterval(() => this.clock(), ms);
    this.ticker.unref();
  }

  /** Wall time the failure detector did not count because the controller was stalled (ms). */
  get stalledMs(): number {
    return this.stallAware?.stalled ?? 0;
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.pending) clearImmediate(this.pending);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    if (this.ticker) clearInterval(this.ticker);
  }

  // ------------------------------------------------------------------ bootstrap

  private def(group: string, plural: string) {
    return this.service.def(group, plural);
  }

  private bootstrap(): void {
    const nsDef = this.def('', 'namespaces');
    for (const ns of [...SYSTEM_NAMESPACES, this.cfg.clusterNamespace]) {
      if (!this.service.tryGet(nsDef, 'v1', undefined, ns)) {
        this.service.create(
          nsDef,
          'v1',
          undefined,
          { metadata: { name: ns, labels: { 'kubernetes.io/metadata.name': ns } }, status: { phase: 'Active' } },
          this.ctx,
        );
        this.log(`bootstrap: created namespace ${ns}`);
      }
    }
    const nodeDef = this.def('', 'nodes');
    for (const n of this.cfg.nodes) {
      const labels: Record<string, string> = { 'kubernetes.io/hostname': n.name, 'kubernetes.io/os': 'linux' };
      if (n.role === 'control-plane') labels['node-role.kubernetes.io/control-plane'] = '';
      else labels['node-role.kubernetes.io/worker'] = '';
      const annotations: Record<string, string> = { [SUBNET_ANNOTATION]: n.subnet, ...(n.gateway ? { [GATEWAY_ANNOTATION]: n.gateway } : {}) };
      const desired = {
        metadata: { name: n.name, labels, annotations },
        spec: n.podCIDR ? { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR] } : {},
        status: {
          addresses: [
            { type: 'InternalIP', address: n.ip },
            { type: 'Hostname', address: n.name },
          ],
        },
      };
      const cur = this.service.tryGet(nodeDef, 'v1', undefined, n.name);
      if (!cur) {
        this.service.create(nodeDef, 'v1', undefined, desired, this.ctx);
        this.log(`bootstrap: registered node ${n.name} (${n.role}, ${n.ip} in ${n.subnet})`);
      } else {
        // null removes a gateway the config no longer names (merge patch)
        const metadata = { ...desired.metadata, annotations: { [GATEWAY_ANNOTATION]: null, ...annotations } };
        this.service.patch(nodeDef, 'v1', undefined, n.name, 'application/merge-patch+json', { metadata, spec: desired.spec }, this.ctx);
        this.service.patch(nodeDef, 'v1', undefined, n.name, 'application/merge-patch+json', { status: desired.status }, this.ctx, 'status');
      }
    }
  }

  private seedLiveness(): void {
    const now = this.clock();
    const served = this.servedGateway();
    const prevNodes = (isObj(served?.status) && isObj(served.status.nodes) ? served.status.nodes : {}) as Record<string, NodeState>;
    const prevIPs = isObj(served?.status) && isObj(served.status.floatingIPs) ? (served.status.floatingIPs as Record<string, string>) : undefined;
    this.assignments = prevIPs ? { ...prevIPs } : undefined;
    const leaseDef = this.def('coordination.k8s.io', 'leases');
    for (const n of this.nodeNames()) {
      const lease = this.service.tryGet(leaseDef, 'v1', NODE_LEASE_NAMESPACE, n);
      this.liveness.seed(n, prevNodes[n], lease?.metadata.resourceVersion, now);
      if (prevNodes[n]) this.nodeStates.set(n, prevNodes[n]);
    }
    for (const p of this.policies()) {
      const cond = this.readyCondition(p);
      if (cond) this.policyReports.set(p.metadata.uid!, `${String(cond.reason)}|${String(cond.message)}|${String(cond.observedGeneration)}`);
    }
  }

  // ------------------------------------------------------------------ events

  private onEvent(e: StoreEvent): void {
    if (this.stopped) return;
    const [group, plural] = e.rkey.split('/') as [string, string];
    if (group === 'coordination.k8s.io' && plural === 'leases') {
      if (e.object.metadata.namespace !== NODE_LEASE_NAMESPACE) return;
      const name = e.object.metadata.name!;
      if (e.type === 'DELETED') {
        this.liveness.forget(name);
        this.schedule();
      } else if (
        this.liveness.observe(
          name,
          e.object.metadata.resourceVersion,
          this.clock(),
          Number(e.object.metadata.annotations?.[LEASE_HEARTBEAT_ANNOTATION] ?? 0) > 0,
        )
      ) {
        this.schedule();
      }
      return;
    }
    if (group === '' && plural === 'configmaps' && this.cfg.flavour !== 'autopilot') return;
    if (group === '' && plural === 'events') return;
    if (group === '' && plural !== 'nodes' && plural !== 'configmaps') return;
    if (group !== '' && group !== GKE) return;
    this.schedule();
  }

  private schedule(): void {
    if (this.pending || this.stopped) return;
    this.pending = setImmediate(() => {
      this.pending = undefined;
      this.reconcile();
    });
  }

  // ------------------------------------------------------------------ reconcile

  reconcile(): void {
    if (this.stopped) return;
    try {
      this.reconcileGateway();
      if (this.cfg.flavour === 'autopilot') this.reconcileAutopilot();
    } catch (err) {
      this.log(`reconcile failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    this.passes++;
    this.tune();
    this.armExpiryTimer();
  }

  private armExpiryTimer(): void {
    if (!this.timers || this.stopped) return;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    const now = this.clock();
    const next = this.liveness.nextExpiry(now);
    if (next === undefined) return;
    this.expiryTimer = setTimeout(() => this.reconcile(), Math.max(0, next - now) + 1);
  }

  private nodeNames(): string[] {
    return this.service.store.list('/nodes').map((n) => n.metadata.name!);
  }

  private allocNodes(now: number): AllocNode[] {
    return this.service.store.list('/nodes').map((n) => {
      const labels = n.metadata.labels ?? {};
      const cp = 'node-role.kubernetes.io/control-plane' in labels || 'node-role.kubernetes.io/master' in labels;
      const subnet = n.metadata.annotations?.[SUBNET_ANNOTATION];
      const gateway = n.metadata.annotations?.[GATEWAY_ANNOTATION];
      const addresses = ((n.status as { addresses?: { address?: unknown }[] } | undefined)?.addresses ?? [])
        .map((a) => a.address)
        .filter((a): a is string => typeof a === 'string');
      return {
        name: n.metadata.name!,
        role: cp ? 'control-plane' : 'worker',
        subnets: subnet ? [subnet] : [],
        state: this.liveness.state(n.metadata.name!, now),
        addresses,
        gateways: gateway ? [gateway] : [],
      };
    });
  }

  private servedGateway(): KubeObject | undefined {
    const gw = this.def(GKE, 'anthosnetworkgateways');
    return this.service.tryGet(gw, V1A1, this.cfg.clusterNamespace, GATEWAY_NAME) ?? this.service.tryGet(gw, V1A1, this.cfg.gatewayNamespace, GATEWAY_NAME);
  }

  private policies(): KubeObject[] {
    return this.service.list(this.def(GKE, 'egressnatpolicies'), V1A1).items;
  }

  private readyCondition(p: KubeObject): Obj | undefined {
    const conds = isObj(p.status) ? p.status.conditions : undefined;
    return Array.isArray(conds) ? (conds.find((c) => isObj(c) && c.type === 'Ready') as Obj | undefined) : undefined;
  }

  private reconcileGateway(): void {
    const now = this.clock();
    const gwDef = this.def(GKE, 'anthosnetworkgateways');
    const clusterGw = this.service.tryGet(gwDef, V1A1, this.cfg.clusterNamespace, GATEWAY_NAME);
    let systemGw = this.service.tryGet(gwDef, V1A1, this.cfg.gatewayNamespace, GATEWAY_NAME);
    // The cluster namespace's gateway is the source of truth when present: mirror its spec into the
    // gateway namespace (as Anthos on bare metal syncs the cluster namespace into kube-system).
    if (clusterGw && this.cfg.clusterNamespace !== this.cfg.gatewayNamespace) {
      const spec = clusterGw.spec ?? {};
      if (!systemGw) {
        systemGw = this.service.create(
          gwDef,
          V1A1,
          this.cfg.gatewayNamespace,
          { metadata: { name: GATEWAY_NAME, labels: { [MANAGED_BY_LABEL]: MANAGER } }, spec },
          this.ctx,
        );
        this.log(`gateway: mirrored ${this.cfg.clusterNamespace}/${GATEWAY_NAME} into ${this.cfg.gatewayNamespace}/${GATEWAY_NAME}`);
      } else if (!same(systemGw.spec, spec)) {
        systemGw = this.service.patch(
          gwDef,
          V1A1,
          this.cfg.gatewayNamespace,
          GATEWAY_NAME,
          'application/json-patch+json',
          [{ op: 'add', path: '/spec', value: spec }],
          this.ctx,
        );
        this.log(`gateway: mirrored spec of ${this.cfg.clusterNamespace}/${GATEWAY_NAME} into ${this.cfg.gatewayNamespace}/${GATEWAY_NAME}`);
      }
    }
    const served = clusterGw ?? systemGw;
    const floatingIPs =
      isObj(served?.spec) && Array.isArray(served.spec.floatingIPs)
        ? (served.spec.floatingIPs as unknown[]).filter((x): x is string => typeof x === 'string')
        : [];
    const nodes = this.allocNodes(now);
    const policies = this.policies();
    const result = reconcileGateway({
      gateway: served ? { namespace: served.metadata.namespace!, name: GATEWAY_NAME, floatingIPs } : undefined,
      nodes,
      previous: this.assignments ?? {},
      policies: policies.map((p) => ({ name: p.metadata.name!, egressSourceIP: String((p.spec as Obj | undefined)?.egressSourceIP ?? '') })),
    });

    // node state transitions
    for (const n of nodes) {
      const prev = this.nodeStates.get(n.name);
      if (prev !== n.state) {
        this.nodeStates.set(n.name, n.state);
        const node = this.service.tryGet(this.def('', 'nodes'), 'v1', undefined, n.name);
        if (prev !== undefined || n.state === 'Up') {
          const seen = this.liveness.lastSeen(n.name);
          const by = this.liveness.lastSignal(n.name);
          const why =
            n.state === 'Down'
              ? seen !== undefined
                ? `: last signal ${now - seen} ms ago on the failure detector's clock (controller stalled ${this.stalledMs} ms in all)`
                : ''
              : by
                ? ` by a ${by === 'lease' ? 'Lease renewal' : 'heartbeat'}`
                : '';
          this.log(`liveness: node ${n.name} is ${n.state}${prev ? ` (was ${prev})` : ''}${why}`);
          if (node)
            this.events.record(
              node,
              n.state === 'Up' ? 'Normal' : 'Warning',
              n.state === 'Up' ? 'NodeUp' : 'NodeDown',
              n.state === 'Up'
                ? `node ${n.name} is Up: ${by === 'lease' ? 'its Lease was renewed' : by === 'heartbeat' ? 'its heartbeat arrived' : 'it was Up before the controller started (start-up grace)'}`
                : `node ${n.name} sent no heartbeat and no Lease renewal within its grace period (${this.cfg.lease.expiryMs} ms when it holds a floating IP): Down`,
            );
        }
        if (node) this.setNodeReady(node, n.state);
      }
    }

    // gateway status (served gateway first, then its mirror)
    if (served) {
      const status: Obj = { nodes: result.status.nodes, floatingIPs: result.status.floatingIPs };
      if (result.allocation.unassignable.length) status.unassigned = Object.fromEntries(result.allocation.unassignable.map((u) => [u.ip, u.message]));
      for (const gw of [served, clusterGw && systemGw && served !== systemGw ? systemGw : undefined]) {
        if (!gw || same(gw.status, status)) continue;
        this.service.update(gwDef, V1A1, gw.metadata.namespace, GATEWAY_NAME, { ...gw, status }, this.ctx, 'status');
      }
      for (const m of result.allocation.moves) {
        const msg = m.from === null ? `floating IP ${m.ip} assigned to node ${m.to}` : `floating IP ${m.ip} moved from node ${m.from} to node ${m.to}`;
        this.log(`allocator: ${msg}`);
        this.events.record(served, 'Normal', m.from === null ? 'FloatingIPAssigned' : 'FloatingIPMoved', msg);
      }
      for (const r of result.allocation.released) {
        const why = result.allocation.unassignable.find((u) => u.ip === r.ip)?.message ?? 'removed from spec.floatingIPs';
        const msg = `floating IP ${r.ip} released from node ${r.from}: ${why}`;
        this.log(`allocator: ${msg}`);
        this.events.record(served, 'Warning', 'FloatingIPUnassigned', msg);
      }
      // an address that cannot be assigned at all (reserved, invalid, in no node's subnet): one
      // Event when it appears or its reason changes (a released one has its Event above)
      const problems = new Map(result.allocation.unassignable.filter((u) => ADDRESS_PROBLEMS.includes(u.reason)).map((u) => [u.ip, u.message]));
      for (const [ip, why] of problems) {
        if (this.addressProblems.get(ip) === why) continue;
        if (!result.allocation.released.some((r) => r.ip === ip)) {
          const msg = `floating IP ${ip} is not assigned: ${why}`;
          this.log(`allocator: ${msg}`);
          this.events.record(served, 'Warning', 'FloatingIPUnassignable', msg);
        }
      }
      this.addressProblems = problems;
    }
    if (!served) this.addressProblems.clear();
    this.assignments = result.status.floatingIPs;

    // one AnthosNetworkGatewayNode per node
    const gwnDef = this.def(GKE, 'anthosnetworkgatewaynodes');
    for (const n of nodes) {
      let o = this.service.tryGet(gwnDef, V1A1, this.cfg.gatewayNamespace, n.name);
      if (!o) o = this.service.create(gwnDef, V1A1, this.cfg.gatewayNamespace, { metadata: { name: n.name }, spec: { nodeName: n.name } }, this.ctx);
      const want = { state: n.state, floatingIPs: result.nodeIPs[n.name] ?? [] };
      const cur = isObj(o.status) ? o.status : {};
      if (cur.state !== want.state || !same(cur.floatingIPs, want.floatingIPs)) {
        this.service.patch(gwnDef, V1A1, this.cfg.gatewayNamespace, n.name, 'application/merge-patch+json', { status: want }, this.ctx, 'status');
      }
    }

    // policy conditions and UnknownEgressIP events
    const byName = new Map(result.policies.map((p) => [p.name, p]));
    for (const p of policies) {
      const st = byName.get(p.metadata.name!);
      if (st) this.updatePolicy(p, st);
    }
  }

  private setNodeReady(node: KubeObject, state: NodeState): void {
    const ts = this.service.store.timestamp();
    const cond =
      state === 'Up'
        ? { type: 'Ready', status: 'True', reason: 'LeaseRenewed', message: 'the node agent renews its lease', lastHeartbeatTime: ts, lastTransitionTime: ts }
        : {
            type: 'Ready',
            status: 'Unknown',
            reason: 'NodeStatusUnknown',
            message: 'the node agent stopped renewing its lease',
            lastHeartbeatTime: ts,
            lastTransitionTime: ts,
          };
    // a controller restart re-derives the state it had: no write unless the condition changes
    // (a rewrite with a new timestamp moved the resourceVersion on every restart that crossed a second)
    const conds = isObj(node.status) && Array.isArray(node.status.conditions) ? (node.status.conditions as unknown[]) : [];
    const old = conds.find((c): c is Obj => isObj(c) && c.type === 'Ready');
    if (old && old.status === cond.status && old.reason === cond.reason) return;
    this.service.patch(
      this.def('', 'nodes'),
      'v1',
      undefined,
      node.metadata.name!,
      'application/strategic-merge-patch+json',
      { status: { conditions: [cond] } },
      this.ctx,
      'status',
    );
  }

  private updatePolicy(p: KubeObject, st: PolicyState): void {
    const def = this.def(GKE, 'egressnatpolicies');
    const old = this.readyCondition(p);
    const status = st.served ? 'True' : 'False';
    const cond: Obj = {
      type: 'Ready',
      status,
      reason: st.reason,
      message: st.message,
      observedGeneration: p.metadata.generation ?? 1,
      lastTransitionTime: old && old.status === status ? old.lastTransitionTime : this.service.store.timestamp(),
    };
    const want: Obj = { conditions: [cond] };
    if (st.node) want.gatewayNode = st.node;
    if (!same(p.status, want)) this.service.update(def, V1A1, undefined, p.metadata.name!, { ...p, status: want }, this.ctx, 'status');
    const key = `${st.reason}|${st.message}|${String(cond.observedGeneration)}`;
    const prev = this.policyReports.get(p.metadata.uid!);
    if (prev === key) return;
    this.policyReports.set(p.metadata.uid!, key);
    if (!st.served) this.events.record(p, 'Warning', 'UnknownEgressIP', st.message);
    else if (prev === undefined || prev.startsWith('UnknownEgressIP|')) this.events.record(p, 'Normal', 'EgressSourceIPServed', st.message);
  }

  // ------------------------------------------------------------------ autopilot

  private reconcileAutopilot(): void {
    const def = this.def(GKE, 'egressnatpolicies');
    const ranges = {
      podCIDRs: [...this.cfg.podCIDRs, ...this.cfg.nodes.flatMap((n) => (n.podCIDR ? [n.podCIDR] : []))],
      serviceCIDRs: this.cfg.serviceCIDRs,
      nodeCIDRs: [...new Set(this.cfg.nodes.map((n) => n.subnet))],
    };
    const managed = managedPolicy(this.cfg.clusterName, ranges);
    const cur = this.service.store.get('networking.gke.io/egressnatpolicies', undefined, managed.metadata.name);
    if (!cur) {
      this.service.create(def, 'v1', undefined, managed, this.ctx);
      this.log(`autopilot: created managed EgressNATPolicy ${managed.metadata.name}`);
    } else if (cur.apiVersion !== managed.apiVersion || !same(cur.spec, managed.spec) || !same(cur.metadata.labels, managed.metadata.labels)) {
      if (cur.apiVersion !== managed.apiVersion) this.service.delete(def, cur.apiVersion.split('/')[1]!, undefined, cur.metadata.name!, this.ctx);
      else
        this.service.update(
          def,
          'v1',
          undefined,
          managed.metadata.name,
          { ...cur, metadata: { ...cur.metadata, labels: managed.metadata.labels }, spec: managed.spec },
          this.ctx,
        );
      if (cur.apiVersion !== managed.apiVersion) this.service.create(def, 'v1', undefined, managed, this.ctx);
      this.log(`autopilot: restored managed EgressNATPolicy ${managed.metadata.name}`);
    }
    if (!this.service.store.get('networking.gke.io/egressnatpolicies', undefined, DEFAULT_POLICY_NAME)) {
      this.service.create(def, 'v1', undefined, defaultPolicy(), this.ctx);
      this.log(`autopilot: created default EgressNATPolicy ${DEFAULT_POLICY_NAME}`);
    }
    const cidrs = noSnatDestinations(this.service.list(def, 'v1').items);
    const data = { config: ipMasqAgentConfig(cidrs) };
    const cmDef = this.def('', 'configmaps');
    const cm = this.service.tryGet(cmDef, 'v1', IP_MASQ_NAMESPACE, IP_MASQ_NAME);
    const labels = { [MANAGED_BY_LABEL]: MANAGER };
    if (!cm) {
      this.service.create(cmDef, 'v1', IP_MASQ_NAMESPACE, { metadata: { name: IP_MASQ_NAME, labels }, data }, this.ctx);
      this.log(`autopilot: wrote ConfigMap ${IP_MASQ_NAMESPACE}/${IP_MASQ_NAME} (${cidrs.length} nonMasqueradeCIDRs)`);
    } else if (!same(cm.data, data)) {
      this.service.update(cmDef, 'v1', IP_MASQ_NAMESPACE, IP_MASQ_NAME, { ...cm, data }, this.ctx);
      this.log(`autopilot: updated ConfigMap ${IP_MASQ_NAMESPACE}/${IP_MASQ_NAME} (${cidrs.length} nonMasqueradeCIDRs)`);
    }
  }
}
