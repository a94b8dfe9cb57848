/**
 * Chaos schedules as data (issue 15): a list of timed steps — node faults, partitions, agent and
 * controller restarts, link loss, rate limits, a black hole towards the gateway, policy, ConfigMap
 * and floating-IP churn — drawn from a seed with fast-check, constrained by the topology, and
 * (de)serialised to JSON with validation that names every bad field and value. Pure: nothing here
 * touches a lab (executor.ts runs a schedule).
 */
import fc from 'fast-check';
import { ValidationError, type FieldIssue } from '../util/errors.js';
import { isIPv4, nthAddress, parseCidr4 } from '../../lib/net/addresses.js';
import type { Topology } from '../topology/types.js';
import type { PartitionDirection } from '../faults/faults.js';

export type { PartitionDirection };

/** How a link loses packets: random drops at a rate, or bursts (every packet lost for a while). */
export type LossMode = 'random' | 'burst';

/** What a policy churn step does to one EgressNATPolicy (or the pod it selects). */
export type PolicyAction = 'create' | 'relabel-pod' | 'change-destinations' | 'delete';

/**
 * The action of one step, by kind. Node faults are undone after the step's duration (kill and stop
 * by a start, pause by an unpause, partition by a heal, loss / rate limit / black hole by removing
 * them); restarts are instant; churn is undone by the inverse change (a created policy deleted, a
 * floating IP added is removed again, ...).
 */
export type StepAction =
  | { kind: 'node-kill'; node: string }
  | { kind: 'node-stop'; node: string }
  | { kind: 'node-pause'; node: string }
  | { kind: 'partition'; node: string; direction: PartitionDirection }
  | { kind: 'agent-restart'; node: string }
  | { kind: 'controller-restart' }
  | { kind: 'link-loss'; node: string; mode: LossMode; lossPercent: number }
  | { kind: 'rate-limit'; node: string; kbitPerSecond: number }
  | { kind: 'blackhole-gateway'; node: string; floatingIP: string }
  | { kind: 'policy'; action: PolicyAction; policy: string; pod: string; destinations: string[] }
  | { kind: 'configmap'; nonMasqueradeCIDRs: string[] }
  | { kind: 'floating-ip'; action: 'add' | 'remove'; ip: string };

/** The kinds of step, in the order the generator and the docs list them. */
export const STEP_KINDS = [
  'node-kill',
  'node-stop',
  'node-pause',
  'partition',
  'agent-restart',
  'controller-restart',
  'link-loss',
  'rate-limit',
  'blackhole-gateway',
  'policy',
  'configmap',
  'floating-ip',
] as const satisfies readonly StepAction['kind'][];

/** One kind of step. */
export type StepKind = (typeof STEP_KINDS)[number];

const PARTITION_DIRECTIONS: readonly PartitionDirection[] = ['both', 'outbound', 'inbound'];
const LOSS_MODES: readonly LossMode[] = ['random', 'burst'];
const POLICY_ACTIONS: readonly PolicyAction[] = ['create', 'relabel-pod', 'change-destinations', 'delete'];

/**
 * Every variant of step the generator can draw, in STEP_KINDS order: the kind, with the partition's
 * direction, the loss's mode or the churn's action where the kind has them ("partition outbound",
 * "policy relabel-pod"). What a campaign's coverage counts (campaign.ts stepCoverage).
 */
export const STEP_VARIANTS: readonly string[] = STEP_KINDS.flatMap((k): string[] => {
  if (k === 'partition') return PARTITION_DIRECTIONS.map((d) => `${k} ${d}`);
  if (k === 'link-loss') return LOSS_MODES.map((m) => `${k} ${m}`);
  if (k === 'policy') return POLICY_ACTIONS.map((a) => `${k} ${a}`);
  if (k === 'floating-ip') return ['add', 'remove'].map((a) => `${k} ${a}`);
  return [k];
});

/** The variant of a step (one of STEP_VARIANTS). */
export function stepVariant(s: StepAction): string {
  switch (s.kind) {
    case 'partition':
      return `${s.kind} ${s.direction}`;
    case 'link-loss':
      return `${s.kind} ${s.mode}`;
    case 'policy':
    case 'floating-ip':
      return `${s.kind} ${s.action}`;
    default:
      return s.kind;
  }
}

/** Kinds that happen at one instant (no duration, nothing to undo). */
export const INSTANT_KINDS: ReadonlySet<StepKind> = new Set(['agent-restart', 'controller-restart']);

/** Kinds that break a node while they last (counted against "never every worker broken at once"). */
export const NODE_BREAKING_KINDS: ReadonlySet<StepKind> = new Set([
  'node-kill',
  'node-stop',
  'node-pause',
  'partition',
  'link-loss',
  'rate-limit',
  'blackhole-gateway',
]);

/** One timed step: at `at` ms after the schedule starts, do `action`; undo it `durationMs` later unless `keep`. */
export type Step = StepAction & {
  /** ms after the start of the schedule */
  at: number;
  /** ms after which the step is undone (0 for instant kinds) */
  durationMs: number;
  /** never undone (the schedule ends with it in place) */
  keep?: boolean;
};

/** A schedule: the seed it came from (if any), the topology it was drawn for, and its steps in time order. */
export interface Schedule {
  version: 1;
  /** fast-check seed it was generated from; absent for a hand-written or shrunk schedule */
  seed?: number;
  topology: string;
  steps: Step[];
}

/**
 * What a schedule may name: the lab's nodes (and which are workers), pods, floating IPs and
 * destinations. `universeOf` derives it from a topology.
 */
export interface ChaosUniverse {
  topology: string;
  /** every node with its role; only workers get node faults, the control plane only a controller restart */
  nodes: { name: string; role: 'worker' | 'control-plane' }[];
  /** pods ("ns/name") policy churn may select and relabel (pods with their own IP) */
  pods: string[];
  /** floating IPs the gateway starts with */
  floatingIPs: string[];
  /** floating IPs churn may add (not in floatingIPs) */
  spareFloatingIPs: string[];
  /** destination CIDRs policies and the ConfigMap may name */
  destinations: string[];
}

/** Limits of generated schedules. */
export interface GenerateOptions {
  /** how many steps (default 8) */
  steps?: number;
  /** latest start of a step, ms (default 30 000) */
  horizonMs?: number;
  /** shortest and longest duration of a step that is undone, ms (default 500 and 10 000) */
  minDurationMs?: number;
  maxDurationMs?: number;
}

/** Shortest duration of an undone step (a fault shorter than this is not observable in a lab). */
export const MIN_DURATION_MS = 100;

const DEFAULTS = { steps: 8, horizonMs: 30_000, minDurationMs: 500, maxDurationMs: 10_000 } as const;

/**
 * The universe of a topology: its nodes and roles, its pods with an IP, the floating IPs of the
 * seed's gateway (the node subnet's .100-.102, as fixtures/manifests/seed-000) and two spare ones.
 */
export function universeOf(t: Pick<Topology, 'name' | 'nodes' | 'pods' | 'nodeSubnet'>): ChaosUniverse {
  const fip = (n: number) => nthAddress(t.nodeSubnet, n);
  return {
    topology: t.name,
    nodes: t.nodes.map((n) => ({ name: n.name, role: n.role })),
    pods: t.pods.filter((p) => !p.hostNetwork).map((p) => `${p.namespace}/${p.name}`),
    floatingIPs: [fip(100), fip(101), fip(102)],
    spareFloatingIPs: [fip(103), fip(104)],
    destinations: ['0.0.0.0/0', '8.8.8.0/24', '172.16.100.0/24', '10.0.0.0/8'],
  };
}

/** The workers of a universe (the nodes faults may hit). */
export function workersOf(u: ChaosUniverse): string[] {
  return u.nodes.filter((n) => n.role === 'worker').map((n) => n.name);
}

/** The node a step acts on, if it acts on one. */
export function stepNode(s: StepAction): string | undefined {
  return 'node' in s ? s.node : undefined;
}

/** When the step is undone: `at + durationMs`, or Infinity for a kept step. */
export function undoneAt(s: Step): number {
  return s.keep ? Infinity : s.at + s.durationMs;
}

/**
 * When the schedule's last step is undone (or, with kept steps, the last change happens): the time
 * after which invariant 3 expects every flow to be answered again within its bound.
 */
export function settledAt(schedule: Schedule): number {
  let t = 0;
  for (const s of schedule.steps) t = Math.max(t, s.keep ? s.at : s.at + s.durationMs);
  return t;
}

// ---------------------------------------------------------------------------------------------
// constraints

/**
 * The constraints every schedule must meet for a topology, as FieldIssues (empty: it may run):
 * nodes exist, node faults hit workers only, one fault at a time per node, never every worker
 * broken at once (so the cluster can converge), the control plane only via controller-restart, no
 * agent restart on a node that is down or hung.
 */
export function constraintIssues(schedule: Schedule, u: ChaosUniverse): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const workers = new Set(workersOf(u));
  const allNodes = new Set(u.nodes.map((n) => n.name));
  const fips = new Set([...u.floatingIPs, ...u.spareFloatingIPs]);
  schedule.steps.forEach((s, i) => {
    const node = stepNode(s);
    if (node !== undefined) {
      if (!allNodes.has(node))
        issues.push({ path: `steps[${i}].node`, value: node, message: `is not a node of topology ${u.topology} (nodes: ${[...allNodes].join(', ')})` });
      else if (!workers.has(node))
        issues.push({ path: `steps[${i}].node`, value: node, message: 'is a control-plane node: the control plane is only faulted by a controller-restart' });
    }
    if (s.kind === 'policy' && !u.pods.includes(s.pod))
      issues.push({ path: `steps[${i}].pod`, value: s.pod, message: `is not a pod of topology ${u.topology}` });
    if ((s.kind === 'floating-ip' || s.kind === 'blackhole-gateway') && !fips.has(s.kind === 'floating-ip' ? s.ip : s.floatingIP)) {
      issues.push({
        path: `steps[${i}].${s.kind === 'floating-ip' ? 'ip' : 'floatingIP'}`,
        value: s.kind === 'floating-ip' ? s.ip : s.floatingIP,
        message: `is not a floating IP chaos may use (${[...fips].join(', ')})`,
      });
    }
    if (i > 0 && s.at < schedule.steps[i - 1]!.at)
      issues.push({ path: `steps[${i}].at`, value: s.at, message: `is before the previous step's (${schedule.steps[i - 1]!.at}): steps are in time order` });
  });
  // overlapping faults: per node, and how many workers at once
  const breaking = schedule.steps.map((s, i) => ({ s, i })).filter(({ s }) => NODE_BREAKING_KINDS.has(s.kind) && stepNode(s) !== undefined);
  for (const { s, i } of breaking) {
    const node = stepNode(s)!;
    const clash = breaking.find(({ s: o, i: j }) => j < i && stepNode(o) === node && o.at <= s.at && s.at < undoneAt(o));
    if (clash)
      issues.push({
        path: `steps[${i}].at`,
        value: s.at,
        message: `${node} is still under steps[${clash.i}] (${clash.s.kind}) then: one fault per node at a time`,
      });
    const broken = new Set(
      breaking
        .filter(({ s: o }) => o.at <= s.at && s.at < undoneAt(o))
        .map(({ s: o }) => stepNode(o)!)
        .filter((n) => workers.has(n)),
    );
    if (workers.size > 0 && broken.size >= workers.size) {
      issues.push({
        path: `steps[${i}]`,
        value: s.kind,
        message: `breaks every worker at once (${[...broken].sort().join(', ')}): at most ${workers.size - 1} of ${workers.size} so the cluster can converge`,
      });
    }
  }
  // an agent cannot be restarted on a node that is down or hung (its container runs nothing then)
  schedule.steps.forEach((s, i) => {
    if (s.kind !== 'agent-restart') return;
    const down = breaking.find(({ s: o }) => NODE_DOWN_KINDS.has(o.kind) && stepNode(o) === s.node && o.at <= s.at && s.at < undoneAt(o));
    if (down)
      issues.push({
        path: `steps[${i}].at`,
        value: s.at,
        message: `${s.node} is down or hung under steps[${down.i}] (${down.s.kind}) then: its agent cannot be restarted`,
      });
  });
  return issues;
}

/** Kinds that leave a node's container running nothing (killed, stopped) or frozen (paused). */
export const NODE_DOWN_KINDS: ReadonlySet<StepKind> = new Set(['node-kill', 'node-stop', 'node-pause']);

// ---------------------------------------------------------------------------------------------
// generation

function actionArb(u: ChaosUniverse): fc.Arbitrary<StepAction> {
  const workers = workersOf(u);
  const node = fc.constantFrom(...(workers.length ? workers : ['(no worker)']));
  const fip = fc.constantFrom(...u.floatingIPs);
  const pods = u.pods.length ? u.pods : ['default/(no pod)'];
  const dests = fc.uniqueArray(fc.constantFrom(...u.destinations), { minLength: 1, maxLength: 2 });
  const all = [...u.floatingIPs, ...u.spareFloatingIPs];
  return fc.oneof(
    node.map((n): StepAction => ({ kind: 'node-kill', node: n })),
    node.map((n): StepAction => ({ kind: 'node-stop', node: n })),
    node.map((n): StepAction => ({ kind: 'node-pause', node: n })),
    fc.record({ node, direction: fc.constantFrom<PartitionDirection>('both', 'outbound', 'inbound') }).map((r): StepAction => ({ kind: 'partition', ...r })),
    node.map((n): StepAction => ({ kind: 'agent-restart', node: n })),
    fc.constant<StepAction>({ kind: 'controller-restart' }),
    fc
      .record({ node, mode: fc.constantFrom<LossMode>('random', 'burst'), lossPercent: fc.integer({ min: 5, max: 100 }) })
      .map((r): StepAction => ({ kind: 'link-loss', ...r })),
    fc.record({ node, kbitPerSecond: fc.constantFrom(64, 256, 1024, 8192) }).map((r): StepAction => ({ kind: 'rate-limit', ...r })),
    fc.record({ node, floatingIP: fip }).map((r): StepAction => ({ kind: 'blackhole-gateway', ...r })),
    fc
      .record({
        action: fc.constantFrom<PolicyAction>('create', 'relabel-pod', 'change-destinations', 'delete'),
        n: fc.integer({ min: 1, max: 3 }),
        pod: fc.constantFrom(...pods),
        destinations: dests,
      })
      .map(({ n, ...r }): StepAction => ({ kind: 'policy', policy: `chaos-${n}`, ...r })),
    dests.map((d): StepAction => ({ kind: 'configmap', nonMasqueradeCIDRs: d })),
    fc
      .record({ action: fc.constantFrom<'add' | 'remove'>('add', 'remove'), ip: fc.constantFrom(...all) })
      .map((r): StepAction => ({ kind: 'floating-ip', ...r })),
  );
}

/**
 * The fast-check arbitrary of schedules for a universe: candidate steps drawn at random, sorted by
 * time, then kept in order while the schedule still meets `constraintIssues` (a candidate that would
 * break every worker at once, or hit a node already under a fault, is dropped), up to `steps`.
 */
export function scheduleArbitrary(u: ChaosUniverse, o: GenerateOptions = {}): fc.Arbitrary<Schedule> {
  const { steps, horizonMs, minDurationMs, maxDurationMs } = { ...DEFAULTS, ...o };
  const step = fc
    .record({
      action: actionArb(u),
      at: fc.integer({ min: 0, max: horizonMs }),
      durationMs: fc.integer({ min: minDurationMs, max: maxDurationMs }),
      keep: fc.integer({ min: 0, max: 9 }),
    })
    .map(({ action, at, durationMs, keep }): Step => {
      if (INSTANT_KINDS.has(action.kind)) return { ...action, at, durationMs: 0 };
      // kept steps are rare (1 in 10) and only for churn: a node fault is always undone
      const kept = keep === 0 && (action.kind === 'policy' || action.kind === 'configmap' || action.kind === 'floating-ip');
      return { ...action, at, durationMs, ...(kept ? { keep: true } : {}) };
    });
  return fc.array(step, { minLength: steps * 3, maxLength: steps * 3 }).map((candidates) => {
    const sorted = [...candidates].sort((a, b) => a.at - b.at);
    const chosen: Step[] = [];
    for (const c of sorted) {
      if (chosen.length === steps) break;
      const trial: Schedule = { version: 1, topology: u.topology, steps: [...chosen, c] };
      if (constraintIssues(trial, u).length === 0) chosen.push(c);
    }
    return { version: 1, topology: u.topology, steps: chosen };
  });
}

/** The schedule of a seed: same seed, universe and options → the same schedule. */
export function generateSchedule(seed: number, u: ChaosUniverse, o: GenerateOptions = {}): Schedule {
  // noBias: fast-check favours small integers (edge cases) — good for properties, but a lab run wants starts and durations spread over the horizon
  const [s] = fc.sample(fc.noBias(scheduleArbitrary(u, o)), { seed, numRuns: 1 });
  return { ...s!, seed };
}

// ---------------------------------------------------------------------------------------------
// JSON

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The fields each kind takes besides at/durationMs/keep, with a check of each (the message when bad). */
const FIELDS: Record<StepKind, Record<string, (v: unknown) => string | null>> = (() => {
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? null : 'must be a non-empty string');
  const oneOf =
    (...xs: string[]) =>
    (v: unknown) =>
      typeof v === 'string' && xs.includes(v) ? null : `must be one of ${xs.join(', ')}`;
  const intIn = (lo: number, hi: number) => (v: unknown) =>
    Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi ? null : `must be a whole number from ${lo} to ${hi}`;
  const ip = (v: unknown) => (isIPv4(v) ? null : 'must be an IPv4 address');
  const cidrs = (v: unknown) => (Array.isArray(v) && v.length > 0 && v.every((c) => parseCidr4(c, false).ok) ? null : 'must be a non-empty list of IPv4 CIDRs');
  return {
    'node-kill': { node: str },
    'node-stop': { node: str },
    'node-pause': { node: str },
    partition: { node: str, direction: oneOf('both', 'outbound', 'inbound') },
    'agent-restart': { node: str },
    'controller-restart': {},
    'link-loss': { node: str, mode: oneOf('random', 'burst'), lossPercent: intIn(1, 100) },
    'rate-limit': { node: str, kbitPerSecond: intIn(1, 10_000_000) },
    'blackhole-gateway': { node: str, floatingIP: ip },
    policy: {
      action: oneOf('create', 'relabel-pod', 'change-destinations', 'delete'),
      policy: str,
      pod: (v) => (typeof v === 'string' && /^[^/]+\/[^/]+$/.test(v) ? null : 'must be "namespace/name"'),
      destinations: cidrs,
    },
    configmap: { nonMasqueradeCIDRs: cidrs },
    'floating-ip': { action: oneOf('add', 'remove'), ip },
  };
})();

/** The problems of one step read from JSON, each naming the field (`steps[i].field`) and value. */
function stepIssues(raw: unknown, i: number): FieldIssue[] {
  const at = `steps[${i}]`;
  if (!isObj(raw)) return [{ path: at, value: raw, message: 'must be an object' }];
  const kind = raw.kind;
  if (typeof kind !== 'string' || !(STEP_KINDS as readonly string[]).includes(kind))
    return [{ path: `${at}.kind`, value: kind, message: `must be one of ${STEP_KINDS.join(', ')}` }];
  const fields = FIELDS[kind as StepKind];
  const issues: FieldIssue[] = [];
  if (!Number.isInteger(raw.at) || (raw.at as number) < 0) issues.push({ path: `${at}.at`, value: raw.at, message: 'must be a whole number of ms, 0 or more' });
  if (INSTANT_KINDS.has(kind as StepKind)) {
    if (raw.durationMs !== undefined && raw.durationMs !== 0)
      issues.push({ path: `${at}.durationMs`, value: raw.durationMs, message: `must be 0 (or absent): ${kind} is instant` });
    if (raw.keep !== undefined) issues.push({ path: `${at}.keep`, value: raw.keep, message: `is meaningless for ${kind} (instant)` });
  } else {
    if (!Number.isInteger(raw.durationMs) || (raw.durationMs as number) < MIN_DURATION_MS)
      issues.push({ path: `${at}.durationMs`, value: raw.durationMs, message: `must be a whole number of ms, ${MIN_DURATION_MS} or more` });
    if (raw.keep !== undefined && typeof raw.keep !== 'boolean') issues.push({ path: `${at}.keep`, value: raw.keep, message: 'must be true or false' });
  }
  for (const [f, check] of Object.entries(fields)) {
    const m = check(raw[f]);
    if (m) issues.push({ path: `${at}.${f}`, value: raw[f], message: m });
  }
  for (const f of Object.keys(raw)) {
    if (!['kind', 'at', 'durationMs', 'keep', ...Object.keys(fields)].includes(f))
      issues.push({
        path: `${at}.${f}`,
        value: raw[f],
        message: `is not a field of a ${kind} step (fields: at, durationMs, keep${Object.keys(fields)
          .map((k) => `, ${k}`)
          .join('')})`,
      });
  }
  return issues;
}

/**
 * Checks a parsed JSON value as a schedule: every problem, each naming the field and the value
 * (with a universe, also the topology constraints of `constraintIssues`). Empty: it is valid.
 */
export function scheduleIssues(raw: unknown, u?: ChaosUniverse): FieldIssue[] {
  if (!isObj(raw)) return [{ path: '(schedule)', value: raw, message: 'must be an object with version, topology and steps' }];
  const issues: FieldIssue[] = [];
  if (raw.version !== 1) issues.push({ path: 'version', value: raw.version, message: 'must be 1' });
  if (typeof raw.topology !== 'string' || raw.topology === '') issues.push({ path: 'topology', value: raw.topology, message: 'must be a topology name' });
  else if (u && raw.topology !== u.topology)
    issues.push({ path: 'topology', value: raw.topology, message: `was drawn for another topology than ${u.topology}` });
  if (raw.seed !== undefined && !Number.isInteger(raw.seed)) issues.push({ path: 'seed', value: raw.seed, message: 'must be a whole number (or absent)' });
  for (const f of Object.keys(raw))
    if (!['version', 'seed', 'topology', 'steps'].includes(f))
      issues.push({ path: f, value: raw[f], message: 'is not a field of a schedule (fields: version, seed, topology, steps)' });
  if (!Array.isArray(raw.steps)) {
    issues.push({ path: 'steps', value: raw.steps, message: 'must be a list of steps' });
    return issues;
  }
  const stepProblems = raw.steps.flatMap((s, i) => stepIssues(s, i));
  issues.push(...stepProblems);
  if (u && stepProblems.length === 0 && issues.length === 0) issues.push(...constraintIssues(raw as unknown as Schedule, u));
  return issues;
}

/** A schedule from a parsed JSON value; a ValidationError names every bad field and value. */
export function parseSchedule(raw: unknown, u?: ChaosUniverse, source = 'schedule'): Schedule {
  const issues = scheduleIssues(raw, u);
  if (issues.length) throw new ValidationError(source, issues);
  const r = raw as Obj;
  const steps = (r.steps as Obj[]).map((s) => {
    const step = { ...s, durationMs: INSTANT_KINDS.has(s.kind as StepKind) ? 0 : s.durationMs } as Step;
    if (step.keep === false) delete step.keep;
    return step;
  });
  return { version: 1, ...(r.seed !== undefined ? { seed: r.seed as number } : {}), topology: r.topology as string, steps };
}

/** A schedule from JSON text (a syntax error is a ValidationError too). */
export function scheduleFromJson(text: string, u?: ChaosUniverse, source = 'schedule.json'): Schedule {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ValidationError(source, [{ path: '(file)', value: text.slice(0, 40), message: `is not JSON: ${(error as Error).message}` }]);
  }
  return parseSchedule(raw, u, source);
}

/** A schedule as JSON text (two-space indented, one step per line block), the format `scheduleFromJson` reads. */
export function scheduleToJson(s: Schedule): string {
  return `${JSON.stringify(s, null, 2)}\n`;
}

/** One step in words: "+1.200 s for 3.000 s: partition node-2 (inbound)". */
export function describeStep(s: Step): string {
  const when = `+${(s.at / 1000).toFixed(3)} s`;
  const span = INSTANT_KINDS.has(s.kind) ? '' : s.keep ? ' (kept)' : ` for ${(s.durationMs / 1000).toFixed(3)} s`;
  const what = (() => {
    switch (s.kind) {
      case 'node-kill':
      case 'node-stop':
      case 'node-pause':
        return `${s.kind.slice(5)} ${s.node}`;
      case 'partition':
        return `partition ${s.node} (${s.direction})`;
      case 'agent-restart':
        return `restart the agent on ${s.node}`;
      case 'controller-restart':
        return 'restart the controller';
      case 'link-loss':
        return `${s.mode} loss ${s.lossPercent}% on ${s.node}'s link`;
      case 'rate-limit':
        return `rate-limit ${s.node} to ${s.kbitPerSecond} kbit/s`;
      case 'blackhole-gateway':
        return `black-hole ${s.node}'s traffic to ${s.floatingIP}`;
      case 'policy':
        return `policy ${s.policy}: ${s.action} (pod ${s.pod}, destinations ${s.destinations.join(', ')})`;
      case 'configmap':
        return `ConfigMap: nonMasqueradeCIDRs ${s.nonMasqueradeCIDRs.join(', ')}`;
      case 'floating-ip':
        return `floating IP ${s.ip} ${s.action === 'add' ? 'added' : 'removed'}`;
    }
  })();
  return `${when}${span}: ${what}`;
}
