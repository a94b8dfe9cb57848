/**
 * What the chaos explorer expects of the cluster, as a pure model (issue 15): the lab it runs on
 * (the topology with a pod on every node), the probe flows, the API state the schedule's churn steps
 * move through (policies, pod labels, the ip-masq-agent ConfigMap, the gateway's floating IPs),
 * the sources each flow may leave with in a state (docs/contract.md SPEC 1 and 2, docs/gateway.md),
 * and the allowed-source windows the no-leak invariant reads. The executor applies the same
 * transitions to the API that this model applies to its state, so what is expected and what was
 * done cannot drift apart. Nothing here reads what the agent or the controller say about
 * themselves.
 */
import { cidrTextContains, LINK_LOCAL_CIDR, overlaps } from '../../lib/net/addresses.js';
import { parseTopology } from '../topology/validate.js';
import { DEFAULT_NON_MASQUERADE_CIDRS } from '../../lib/kube/well-known.js';
import type { KubeObject } from '../../lib/kube/types.js';
import type { Topology } from '../topology/types.js';
import type { Proto } from '../inlab/protocol.js';
import { INSTANT_KINDS, type ChaosUniverse, type Step } from './schedule.js';
import type { AllowedWindow } from './invariants.js';

// ---------------------------------------------------------------------------------------------
// the lab

/**
 * The topology a chaos run uses: `base` with a pod on every node that has none (in the default
 * topology: cp-1, which can hold a floating IP too, so "the holder's own pods" exist wherever the
 * IP lands): the node gets the first free 10.10.N.0/24 as pod CIDR if it has none, and a pod
 * `default/client-<node>`. The schedule is drawn for this topology (`--dry-run` prints the same).
 */
export function chaosTopology(base: Topology): Topology {
  const withPod = new Set(base.pods.filter((p) => !p.hostNetwork).map((p) => p.node));
  const bare = base.nodes.filter((n) => !withPod.has(n.name));
  if (!bare.length) return base;
  const used = base.nodes.map((n) => n.podCIDR).filter((c): c is string => !!c);
  const free = Array.from({ length: 256 }, (_, i) => `10.10.${i}.0/24`).filter((c) => !used.some((u) => overlaps(u, c)));
  const nodes = base.nodes.map((n) => (n.podCIDR || !bare.includes(n) ? n : { ...n, podCIDR: free.shift()! }));
  const pods = [...base.pods, ...bare.map((n) => ({ namespace: 'default', name: `client-${n.name}`, node: n.name, labels: {} }))];
  return parseTopology({ ...base, nodes, pods }, `${base.name} with a pod on every node (chaos)`);
}

/** The manifests a chaos run starts from: the seed's gateway and policy (as the demo applies them). */
export const BASE_MANIFESTS = 'fixtures/manifests/seed-000';

/** One probe flow: a continuous probe from a pod to a destination (a stream: one long-lived TCP connection). */
export interface FlowSpec {
  /** its name in the evidence: "udp alice/frontend-1 -> 8.8.8.8" ("stream ..." for the long-lived TCP one) */
  name: string;
  pod: string;
  node: string;
  to: string;
  proto: Extract<Proto, 'udp' | 'tcp'>;
  stream: boolean;
  intervalMs: number;
}

/** The internet destination every pod probes, and the probe intervals (ms). */
export const INTERNET_DST = '8.8.8.8';
export const FLOW_INTERVALS = { udp: 100, vpcUdp: 200, tcp: 200, stream: 200 } as const;

/**
 * The probes of a chaos run: UDP to the internet from every pod (non-hostNetwork), and from the
 * first pod of every node UDP to the first VPC endpoint, TCP (a connection per packet) and one
 * long-lived TCP stream to the internet. Pods on every node: the holder's own pods included,
 * wherever the floating IPs land.
 */
export function chaosFlows(t: Pick<Topology, 'nodes' | 'pods' | 'vpcEndpoints'>): FlowSpec[] {
  const pods = t.pods.filter((p) => !p.hostNetwork);
  const out: FlowSpec[] = [];
  const flow = (pod: (typeof pods)[number], to: string, proto: 'udp' | 'tcp', stream: boolean, intervalMs: number): FlowSpec => {
    const key = `${pod.namespace}/${pod.name}`;
    return { name: `${stream ? 'stream' : proto} ${key} -> ${to}`, pod: key, node: pod.node, to, proto, stream, intervalMs };
  };
  for (const p of pods) out.push(flow(p, INTERNET_DST, 'udp', false, FLOW_INTERVALS.udp));
  const vpc = t.vpcEndpoints[0]?.address;
  for (const n of t.nodes) {
    const p = pods.find((x) => x.node === n.name);
    if (!p) continue;
    if (vpc) out.push(flow(p, vpc, 'udp', false, FLOW_INTERVALS.vpcUdp));
    out.push(flow(p, INTERNET_DST, 'tcp', false, FLOW_INTERVALS.tcp));
    out.push(flow(p, INTERNET_DST, 'tcp', true, FLOW_INTERVALS.stream));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// the API state

/** The label chaos policies select pods by (value: the policy's name). */
export const CHAOS_LABEL = 'chaos.egresslab.io/policy';
/** The label relabel-pod toggles (the seed policy selects role=frontend in alice and paul). */
export const ROLE_LABEL = 'role';
export const ROLE_VALUE = 'frontend';

/** One EgressNATPolicy: its selectors (matchLabels only), destinations and egress IP. */
export interface PolicyState {
  name: string;
  egressSourceIP: string;
  destinationCIDRs: string[];
  rules: { namespaceSelector: Record<string, string>; podSelector: Record<string, string> }[];
}

/** The API objects chaos changes, as data. */
export interface ClusterState {
  policies: Record<string, PolicyState>;
  /** labels of every pod ("ns/name") */
  podLabels: Record<string, Record<string, string>>;
  /** the ip-masq-agent ConfigMap's nonMasqueradeCIDRs; null: no ConfigMap (the default list) */
  nonMasqueradeCIDRs: string[] | null;
  /** the served gateway's spec.floatingIPs */
  floatingIPs: string[];
  /** the served gateway (namespace/name), as the manifests created it */
  gateway: { namespace: string; name: string };
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});

/** A PolicyState from an EgressNATPolicy object (matchLabels selectors). */
export function policyFromObject(o: KubeObject): PolicyState {
  const spec = obj(o.spec);
  const rules = (Array.isArray(spec.egress) ? spec.egress : []).map((r) => ({
    namespaceSelector: { ...(obj(obj(obj(r).namespaceSelector).matchLabels) as Record<string, string>) },
    podSelector: { ...(obj(obj(obj(r).podSelector).matchLabels) as Record<string, string>) },
  }));
  return {
    name: o.metadata.name!,
    egressSourceIP: String(spec.egressSourceIP),
    destinationCIDRs: [...((spec.destinationCIDRs as string[] | undefined) ?? [])],
    rules,
  };
}

/** The EgressNATPolicy object of a PolicyState (what the executor applies). */
export function policyObject(p: PolicyState): KubeObject {
  return {
    apiVersion: 'networking.gke.io/v1alpha1',
    kind: 'EgressNATPolicy',
    metadata: { name: p.name },
    spec: {
      egress: p.rules.map((r) => ({ namespaceSelector: { matchLabels: { ...r.namespaceSelector } }, podSelector: { matchLabels: { ...r.podSelector } } })),
      destinationCIDRs: [...p.destinationCIDRs],
      egressSourceIP: p.egressSourceIP,
    },
  };
}

/**
 * The state a run starts in: the topology's pod labels and the objects of the base manifests (the
 * gateway's floating IPs, the policies, an ip-masq-agent ConfigMap if they hold one).
 */
export function initialState(t: Pick<Topology, 'pods'>, manifests: readonly KubeObject[]): ClusterState {
  const s: ClusterState = { policies: {}, podLabels: {}, nonMasqueradeCIDRs: null, floatingIPs: [], gateway: { namespace: 'kube-system', name: 'default' } };
  for (const p of t.pods) s.podLabels[`${p.namespace}/${p.name}`] = { ...p.labels };
  for (const o of manifests) {
    if (o.kind === 'EgressNATPolicy') s.policies[o.metadata.name!] = policyFromObject(o);
    if (o.kind === 'AnthosNetworkGateway') {
      s.floatingIPs = [...((obj(o.spec).floatingIPs as string[] | undefined) ?? [])];
      s.gateway = { namespace: o.metadata.namespace ?? 'kube-system', name: o.metadata.name ?? 'default' };
    }
    if (o.kind === 'ConfigMap' && o.metadata.name === 'ip-masq-agent') {
      const m = /nonMasqueradeCIDRs:\s*\n((?:\s*-\s*\S+\s*\n?)*)/.exec(String(obj(o.data).config ?? ''));
      s.nonMasqueradeCIDRs = m ? [...m[1]!.matchAll(/-\s*(\S+)/g)].map((x) => x[1]!) : null;
    }
  }
  return s;
}

/**
 * The egress IP of a chaos policy `chaos-N`: the universe's floating IPs after the first (which the
 * seed's policy uses), then the spare ones — chaos-1 and chaos-2 get served IPs, chaos-3 one that
 * only a floating-ip add makes servable (UnknownEgressIP until then).
 */
export function chaosPolicyIP(u: Pick<ChaosUniverse, 'floatingIPs' | 'spareFloatingIPs'>, policy: string): string {
  const n = Number(/^chaos-(\d+)$/.exec(policy)?.[1] ?? NaN);
  const ips = [...u.floatingIPs.slice(1), ...u.spareFloatingIPs];
  if (!Number.isInteger(n) || n < 1 || n > ips.length) throw new Error(`no egress IP for chaos policy ${policy} (chaos-1 .. chaos-${ips.length})`);
  return ips[n - 1]!;
}

/** What a churn step saved when it was done, to undo exactly its own change. */
export type ChurnSaved =
  | { kind: 'policy'; policy: PolicyState | null; labels: Record<string, string | undefined> }
  | { kind: 'configmap'; nonMasqueradeCIDRs: string[] | null }
  | { kind: 'floating-ip'; wasPresent: boolean }
  | { kind: 'none' };

const clone = (s: ClusterState): ClusterState => structuredClone(s);

function setLabels(s: ClusterState, pod: string, changes: Record<string, string | undefined>): void {
  const l = { ...(s.podLabels[pod] ?? {}) };
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) delete l[k];
    else l[k] = v;
  }
  s.podLabels[pod] = l;
}

/** Whether a step changes the API (policy, ConfigMap or floating-IP churn). */
export function isChurn(s: Step): s is Step & { kind: 'policy' | 'configmap' | 'floating-ip' } {
  return s.kind === 'policy' || s.kind === 'configmap' || s.kind === 'floating-ip';
}

/**
 * A churn step done on `state`: the next state and what to keep for its undo.
 *  - policy create P (pod X, destinations D): P = {egressSourceIP chaosPolicyIP(P), destinations D,
 *    selecting pods labelled CHAOS_LABEL=P in any namespace}; X gets CHAOS_LABEL=P;
 *  - policy relabel-pod P X: X gets CHAOS_LABEL=P and its role=frontend label toggled (it enters P
 *    if P exists, leaves another chaos policy, and enters or leaves the seed policy's selection);
 *  - policy change-destinations P D: P's destinations become D (nothing when P does not exist);
 *  - policy delete P: P deleted (nothing when it does not exist);
 *  - configmap C: the ip-masq-agent ConfigMap with nonMasqueradeCIDRs C;
 *  - floating-ip add/remove IP: the gateway's floating IPs with / without IP.
 */
export function doChurn(
  state: ClusterState,
  step: Step,
  u: Pick<ChaosUniverse, 'floatingIPs' | 'spareFloatingIPs'>,
): { next: ClusterState; saved: ChurnSaved } {
  const s = clone(state);
  switch (step.kind) {
    case 'policy': {
      const before = state.policies[step.policy] ?? null;
      const labels = state.podLabels[step.pod] ?? {};
      if (step.action === 'create') {
        s.policies[step.policy] = {
          name: step.policy,
          egressSourceIP: chaosPolicyIP(u, step.policy),
          destinationCIDRs: [...step.destinations],
          rules: [{ namespaceSelector: {}, podSelector: { [CHAOS_LABEL]: step.policy } }],
        };
        setLabels(s, step.pod, { [CHAOS_LABEL]: step.policy });
        return { next: s, saved: { kind: 'policy', policy: before, labels: { [CHAOS_LABEL]: labels[CHAOS_LABEL] } } };
      }
      if (step.action === 'relabel-pod') {
        setLabels(s, step.pod, { [CHAOS_LABEL]: step.policy, [ROLE_LABEL]: labels[ROLE_LABEL] === undefined ? ROLE_VALUE : undefined });
        return { next: s, saved: { kind: 'policy', policy: before, labels: { [CHAOS_LABEL]: labels[CHAOS_LABEL], [ROLE_LABEL]: labels[ROLE_LABEL] } } };
      }
      if (step.action === 'change-destinations') {
        if (before) s.policies[step.policy] = { ...before, destinationCIDRs: [...step.destinations] };
        return { next: s, saved: { kind: 'policy', policy: before, labels: {} } };
      }
      delete s.policies[step.policy];
      return { next: s, saved: { kind: 'policy', policy: before, labels: {} } };
    }
    case 'configmap':
      s.nonMasqueradeCIDRs = [...step.nonMasqueradeCIDRs];
      return { next: s, saved: { kind: 'configmap', nonMasqueradeCIDRs: state.nonMasqueradeCIDRs } };
    case 'floating-ip': {
      const wasPresent = state.floatingIPs.includes(step.ip);
      if (step.action === 'add' && !wasPresent) s.floatingIPs.push(step.ip);
      if (step.action === 'remove') s.floatingIPs = s.floatingIPs.filter((ip) => ip !== step.ip);
      return { next: s, saved: { kind: 'floating-ip', wasPresent } };
    }
    default:
      return { next: s, saved: { kind: 'none' } };
  }
}

/**
 * Undoes a churn step on `state` (which later steps may have changed since): only what the step
 * itself changed is put back — the policy as it was before the step (create, change-destinations,
 * delete: for change-destinations only while the policy still exists), the labels it set, the
 * ConfigMap as it was, the floating IP it added or removed.
 */
export function undoChurn(state: ClusterState, step: Step, saved: ChurnSaved): ClusterState {
  const s = clone(state);
  if (step.kind === 'policy' && saved.kind === 'policy') {
    if (step.action === 'create' || step.action === 'delete') {
      if (saved.policy) s.policies[step.policy] = structuredClone(saved.policy);
      else delete s.policies[step.policy];
    }
    if (step.action === 'change-destinations' && saved.policy && s.policies[step.policy])
      s.policies[step.policy] = { ...s.policies[step.policy]!, destinationCIDRs: [...saved.policy.destinationCIDRs] };
    if (Object.keys(saved.labels).length) setLabels(s, step.pod, saved.labels);
  }
  if (step.kind === 'configmap' && saved.kind === 'configmap') s.nonMasqueradeCIDRs = saved.nonMasqueradeCIDRs ? [...saved.nonMasqueradeCIDRs] : null;
  if (step.kind === 'floating-ip' && saved.kind === 'floating-ip') {
    if (step.action === 'add' && !saved.wasPresent) s.floatingIPs = s.floatingIPs.filter((ip) => ip !== step.ip);
    if (step.action === 'remove' && saved.wasPresent && !s.floatingIPs.includes(step.ip)) s.floatingIPs.push(step.ip);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// sources

/** Where a flow's packets may leave with, and whether its replies must come back, in one state. */
export interface FlowExpectation {
  /** the sources the far end may see (a single one; dropped traffic is allowed too) */
  sources: string[];
  /** whether every packet must be answered once the cluster converged on this state */
  answered: boolean;
  /** why, in words: "policy egress (192.168.1.100)", "masquerade: node IP", ... */
  why: string;
}

function matches(want: Record<string, string>, have: Record<string, string>): boolean {
  return Object.entries(want).every(([k, v]) => have[k] === v);
}

/** Whether a VPC endpoint answers `dst` (it routes pod CIDRs back); otherwise the internet does, which cannot reach pod IPs. */
function answersPodIPs(t: Pick<Topology, 'vpcEndpoints'>, dst: string): boolean {
  return t.vpcEndpoints.some((e) => e.address === dst || e.answers.some((c) => cidrTextContains(c, dst)));
}

/**
 * The source flow (pod → dst) leaves with in `state`, per the contract: the first policy by name
 * that selects the pod (namespaceSelector AND podSelector, OR across rules, matchLabels) and whose
 * destinationCIDRs hold dst → its egressSourceIP, answered only while that IP is one of the
 * gateway's floating IPs used by no other policy (otherwise the traffic is dropped: fail-closed);
 * no policy → ip-masq-agent: the pod IP for a non-masquerade destination (the ConfigMap's list, or
 * the default list without one; link-local always), the node IP otherwise. The internet cannot
 * answer a pod IP; the VPC can.
 */
export function expectedSource(
  t: Pick<Topology, 'nodes' | 'pods' | 'namespaces' | 'vpcEndpoints'>,
  state: ClusterState,
  pod: string,
  dst: string,
): FlowExpectation {
  const spec = t.pods.find((p) => `${p.namespace}/${p.name}` === pod);
  if (!spec) throw new Error(`no pod ${pod} in the topology`);
  const nsLabels = { ...(t.namespaces.find((n) => n.name === spec.namespace)?.labels ?? {}), 'kubernetes.io/metadata.name': spec.namespace };
  const labels = state.podLabels[pod] ?? spec.labels;
  const policy = Object.values(state.policies)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .find(
      (p) =>
        p.rules.some((r) => matches(r.namespaceSelector, nsLabels) && matches(r.podSelector, labels)) &&
        p.destinationCIDRs.some((c) => cidrTextContains(c, dst)),
    );
  if (policy) {
    const ip = policy.egressSourceIP;
    const duplicate = Object.values(state.policies).some((p) => p.name !== policy.name && p.egressSourceIP === ip);
    const served = state.floatingIPs.includes(ip) && !duplicate;
    return {
      sources: [ip],
      answered: served,
      why: `policy ${policy.name} (${ip}${served ? '' : duplicate ? ': used by another policy, dropped' : ': not a floating IP, dropped'})`,
    };
  }
  const list = state.nonMasqueradeCIDRs ?? [...DEFAULT_NON_MASQUERADE_CIDRS];
  if ([...list, LINK_LOCAL_CIDR].some((c) => cidrTextContains(c, dst))) {
    return { sources: [spec.ip!], answered: answersPodIPs(t, dst), why: `masquerade: ${dst} is non-masquerade (pod IP)` };
  }
  const node = t.nodes.find((n) => n.name === spec.node)!;
  return { sources: [node.address], answered: true, why: 'masquerade: node IP' };
}

// ---------------------------------------------------------------------------------------------
// allowed windows

/** The state in force from `t` on (ms since the epoch: when the executor began writing it to the API). */
export interface StateChange {
  t: number;
  state: ClusterState;
}

/** A span during which a step was in force, as executed (ms since the epoch). */
export interface ActiveSpan {
  step: number;
  kind: Step['kind'];
  node?: string;
  from: number;
  /** when its do finished (a kill has surely taken effect by then; it may not have at `from`) */
  doneAt?: number;
  /** when its undo finished (or, for an instant step, when it finished); undefined: never undone */
  to?: number;
}

/**
 * The end of the transition that a change at `t` starts: `t + transitionMs`, pushed past every
 * fault span that overlaps the transition (a node that is down, hung, cut off or lossy cannot learn
 * the change until it is back) to its end + transitionMs, until nothing more overlaps.
 */
export function transitionEnd(t: number, spans: readonly ActiveSpan[], transitionMs: number): number {
  let end = t + transitionMs;
  for (let changed = true; changed; ) {
    changed = false;
    for (const s of spans) {
      const sEnd = s.to ?? Infinity;
      if (s.from <= end && sEnd >= t && sEnd + transitionMs > end) {
        end = sEnd + transitionMs;
        changed = true;
      }
    }
  }
  return end;
}

/**
 * The parts of the cluster state an agent learns through separate watches: Kubernetes orders the
 * events of one watch, not those of different watches, so during a transition a node may combine
 * the policies, the pods' labels and the ConfigMap from different moments.
 */
const WATCHED_KINDS = ['policies', 'podLabels', 'nonMasqueradeCIDRs'] as const;
type WatchedKind = (typeof WATCHED_KINDS)[number];

/**
 * The allowed-source windows of every flow over a run (invariant 1): each state's sources from the
 * moment it was written until the next state's transition ended (so during a change both the old
 * and the new sources are allowed); the last state's window stays open. Where the transitions of
 * changes to different watched kinds overlap (WATCHED_KINDS), the sources of every combination of
 * their values in transition are allowed too (mixedViewWindows): chaos seed 848037986, a node cut
 * off outbound learned a ConfigMap change and a pod's relabel made after its undo, but neither
 * undo, until the partition healed (each watch stalled at its own point).
 */
export function allowedWindows(
  t: Pick<Topology, 'nodes' | 'pods' | 'namespaces' | 'vpcEndpoints'>,
  flows: readonly Pick<FlowSpec, 'name' | 'pod' | 'to'>[],
  changes: readonly StateChange[],
  spans: readonly ActiveSpan[],
  transitionMs: number,
): AllowedWindow[] {
  const out: AllowedWindow[] = [];
  const sorted = [...changes].sort((a, b) => a.t - b.t);
  for (const f of flows) {
    sorted.forEach((c, i) => {
      const next = sorted[i + 1];
      const from = i === 0 ? 0 : c.t;
      const w = { flow: f.name, from, sources: expectedSource(t, c.state, f.pod, f.to).sources };
      out.push(next ? { ...w, to: transitionEnd(next.t, spans, transitionMs) } : w);
    });
  }
  return [...out, ...mixedViewWindows(t, flows, sorted, spans, transitionMs)];
}

/**
 * The windows of mixed views (allowedWindows), per flow: it is the pod's node that decides whether
 * the flow is masqueraded, left un-NATed or sent to a holder. Per watched kind, each value is in
 * force from its write until the transition of that kind's next change ended, a transition
 * stretched only by the faults that can hold back that node's watches: those on the node itself,
 * on a control-plane node (the API server's) and those of no node (a controller restart). In every
 * interval where two or more kinds have more than one value in force, each combination of them is a
 * state the node may have seen; only sources that no state written to the API allows at that moment
 * are listed.
 */
export function mixedViewWindows(
  t: Pick<Topology, 'nodes' | 'pods' | 'namespaces' | 'vpcEndpoints'>,
  flows: readonly Pick<FlowSpec, 'name' | 'pod' | 'to'>[],
  sorted: readonly StateChange[],
  spans: readonly ActiveSpan[],
  transitionMs: number,
): AllowedWindow[] {
  if (sorted.length < 2) return [];
  const out: AllowedWindow[] = [];
  const apiNodes = new Set(t.nodes.filter((n) => n.role === 'control-plane').map((n) => n.name));
  for (const f of flows) {
    const node = t.pods.find((p) => `${p.namespace}/${p.name}` === f.pod)?.node;
    const nodeSpans = spans.filter((s) => s.node === undefined || s.node === node || apiNodes.has(s.node));
    out.push(...mixedViewWindowsOf(t, f, sorted, nodeSpans, transitionMs));
  }
  return out;
}

function mixedViewWindowsOf(
  t: Pick<Topology, 'nodes' | 'pods' | 'namespaces' | 'vpcEndpoints'>,
  f: Pick<FlowSpec, 'name' | 'pod' | 'to'>,
  sorted: readonly StateChange[],
  spans: readonly ActiveSpan[],
  transitionMs: number,
): AllowedWindow[] {
  // per kind: the indexes of the changes that changed it, each value's window
  const values = new Map<WatchedKind, { i: number; from: number; to: number }[]>();
  for (const kind of WATCHED_KINDS) {
    const starts = sorted.flatMap((c, i) => (i === 0 || JSON.stringify(c.state[kind]) !== JSON.stringify(sorted[i - 1]!.state[kind]) ? [i] : []));
    values.set(
      kind,
      starts.map((i, k) => {
        const next = starts[k + 1];
        return { i, from: i === 0 ? 0 : sorted[i]!.t, to: next === undefined ? Infinity : transitionEnd(sorted[next]!.t, spans, transitionMs) };
      }),
    );
  }
  const cuts = [...new Set([...values.values()].flat().flatMap((v) => [v.from, v.to]))].filter(Number.isFinite).sort((a, b) => a - b);
  // each state written to the API and its window (allowedWindows' own, under these spans)
  const written = sorted.map((c, i) => ({
    c,
    from: i === 0 ? 0 : c.t,
    to: i + 1 < sorted.length ? transitionEnd(sorted[i + 1]!.t, spans, transitionMs) : Infinity,
  }));
  const out: AllowedWindow[] = [];
  for (let k = 0; k < cuts.length; k++) {
    const from = cuts[k]!;
    const to = cuts[k + 1] ?? Infinity;
    const inForce = WATCHED_KINDS.map((kind) => ({ kind, vs: values.get(kind)!.filter((v) => v.from <= from && v.to >= to) }));
    if (inForce.filter((x) => x.vs.length > 1).length < 2) continue; // one kind in transition: the API's own states
    // the API's latest state at `from` carries the kinds that are not in transition
    const base = sorted.filter((c) => c.t <= from).at(-1) ?? sorted[0]!;
    let combos: { state: ClusterState; mixed: Record<string, number> }[] = [{ state: base.state, mixed: {} }];
    for (const { kind, vs } of inForce) {
      if (vs.length < 2) continue;
      combos = combos.flatMap((c) => vs.map((v) => ({ state: { ...c.state, [kind]: sorted[v.i]!.state[kind] }, mixed: { ...c.mixed, [kind]: v.i } })));
    }
    // the states written to the API whose windows cover this interval
    const covering = written.filter((w) => w.from <= from && w.to >= to);
    const apiSources = new Set(covering.flatMap((w) => expectedSource(t, w.c.state, f.pod, f.to).sources));
    for (const c of combos) {
      const extra = expectedSource(t, c.state, f.pod, f.to).sources.filter((s) => !apiSources.has(s));
      if (!extra.length) continue;
      // one window for the same combination over adjacent intervals
      const prev = out.findLast((w) => w.to === from && JSON.stringify([w.sources, w.mixed]) === JSON.stringify([extra, c.mixed]));
      if (prev) {
        if (Number.isFinite(to)) prev.to = to;
        else delete prev.to;
      } else out.push({ flow: f.name, from, ...(Number.isFinite(to) ? { to } : {}), sources: extra, mixed: c.mixed });
    }
  }
  return out;
}

/**
 * When conntrack keeps an established flow's NAT binding, per flow (invariants 1 and 3 read it with
 * the far end's capture: `conntrackKeeps` in invariants.ts). NAT is decided on a flow's first packet
 * and the masquerade agent flushes no conntrack entry on an ip-masq-agent ConfigMap change
 * (docs/masquerade.md: "established connections keep the SNAT they started with", as upstream), so a
 * change that moves the flow's expected source from one masquerade source to another (node IP ↔ pod
 * IP) `keeps` the bindings made before it; the gateway module deletes the conntrack entries of every
 * (pod, destination) pair whose treatment changed (docs/gateway.md, "Conntrack"), so a change that
 * moves the flow into, out of or between policies `ends` them, and so does a kill or stop of the
 * flow's node (its conntrack table is gone; from when the kill or stop finished). A change that leaves the flow's expected source as it
 * was does neither. `lossy`: the spans during which what the flow's node sends may be lost after its
 * conntrack made an entry for it (a partition, a loss, a rate limit or a black hole on its node: all
 * at the switch, outside the node).
 */
export function conntrackRules(
  t: Pick<Topology, 'nodes' | 'pods' | 'namespaces' | 'vpcEndpoints'>,
  flows: readonly Pick<FlowSpec, 'name' | 'pod' | 'to' | 'node'>[],
  changes: readonly StateChange[],
  spans: readonly ActiveSpan[],
): { flow: string; keeps: number[]; ends: number[]; lossy: { from: number; to: number }[] }[] {
  const sorted = [...changes].sort((a, b) => a.t - b.t);
  const LOSSY: ReadonlySet<string> = new Set(['partition', 'link-loss', 'rate-limit', 'blackhole-gateway']);
  return flows.map((f) => {
    const keeps: number[] = [];
    const ends: number[] = [];
    sorted.forEach((c, i) => {
      if (i === 0) return;
      const before = expectedSource(t, sorted[i - 1]!.state, f.pod, f.to);
      const after = expectedSource(t, c.state, f.pod, f.to);
      if (before.sources.join() === after.sources.join() && before.why === after.why) return;
      (before.why.startsWith('masquerade:') && after.why.startsWith('masquerade:') ? keeps : ends).push(c.t);
    });
    // when the node is surely gone: packets on its old bindings still leave until the kill lands
    // (chaos seed 2000706335: two of a stream's segments 15 ms after `docker kill` was sent)
    for (const s of spans) if ((s.kind === 'node-kill' || s.kind === 'node-stop') && s.node === f.node) ends.push(s.doneAt ?? s.from);
    const lossy = spans.filter((s) => LOSSY.has(s.kind) && s.node === f.node).map((s) => ({ from: s.from, to: s.to ?? Infinity }));
    return { flow: f.name, keeps, ends: ends.sort((a, b) => a - b), lossy };
  });
}

/**
 * When each flow's pod lost every connection it had: each stop or kill of its node, from the moment
 * it was issued (the probe and its sockets die with the container, and the node's new network
 * namespace has none of its conntrack bindings). The far end may go on retransmitting its answers on
 * such a connection for tens of seconds (TCP's back-off); those answers cannot reach the pod, which
 * is not a loss invariant 4 judges (chaos seed 848038040: node-1 stopped at +12.2 s, rate-limited
 * before, and 8.8.8.8's last retransmission of an answer sent to alice/frontend-1 at +5.6 s left at
 * +35.0 s, past the fault's grace).
 */
export function podConnectionEnds(flows: readonly Pick<FlowSpec, 'name' | 'node'>[], spans: readonly ActiveSpan[]): { flow: string; at: number }[] {
  return flows.flatMap((f) =>
    spans.filter((s) => (s.kind === 'node-kill' || s.kind === 'node-stop') && s.node === f.node).map((s) => ({ flow: f.name, at: s.from })),
  );
}

/**
 * The spans during which a reply may be lost without breaking invariant 4, per flow: every fault on
 * the flow's node, every fault anywhere while the flow goes through the gateway (its holder may be
 * any node), each until its end + graceMs; and every churn change until its transition ended.
 * A controller restart excuses nothing, nor does an agent restart for a flow that does not go through
 * the gateway: the kernel keeps the datapath as programmed while the agent is away (docs/agent.md,
 * "Stop and restart"). An agent restart on a node that holds a floating IP is a failover (its
 * heartbeats stop for longer than the controller's expiry: docs/agent.md), so it excuses the gateway
 * flows' replies from the restart until graceMs after it, like any fault while a flow goes through
 * the gateway (its holder may be any node).
 */
export function replyExcuses(
  t: Pick<Topology, 'nodes' | 'pods' | 'namespaces' | 'vpcEndpoints'>,
  flows: readonly Pick<FlowSpec, 'name' | 'pod' | 'to' | 'node'>[],
  changes: readonly StateChange[],
  spans: readonly ActiveSpan[],
  o: { transitionMs: number; graceMs: number },
): { flow: string; from: number; to: number }[] {
  const out: { flow: string; from: number; to: number }[] = [];
  const faults = spans.filter((s) => !INSTANT_KINDS.has(s.kind as never) && s.kind !== 'policy' && s.kind !== 'configmap' && s.kind !== 'floating-ip');
  const sorted = [...changes].sort((a, b) => a.t - b.t);
  for (const f of flows) {
    const viaGateway = sorted.some((c) => expectedSource(t, c.state, f.pod, f.to).why.startsWith('policy '));
    for (const s of faults) {
      if (viaGateway || s.node === undefined || s.node === f.node) out.push({ flow: f.name, from: s.from, to: (s.to ?? Infinity) + o.graceMs });
    }
    if (viaGateway) for (const s of spans) if (s.kind === 'agent-restart') out.push({ flow: f.name, from: s.from, to: (s.to ?? s.from) + o.graceMs });
    for (const c of sorted.slice(1)) out.push({ flow: f.name, from: c.t, to: transitionEnd(c.t, spans, o.transitionMs) });
  }
  return out;
}
