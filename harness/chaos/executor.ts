/**
 * Running one chaos schedule on a fresh lab (issue 15): bring the lab up with the seed's gateway
 * and policy, start the observers — continuous probes (UDP, TCP, a long-lived TCP stream) from
 * pods on every node, a capture at the far ends (internet and VPC), and an ARP observer on the node
 * segment (a capture on the router's segment interface while arping asks the segment, from the
 * router, who has each floating IP) — execute the schedule's steps at their times (each undone after
 * its duration), undo whatever is left, give the cluster its convergence bound, stop the observers,
 * read the API objects, and check the invariants on that recorded evidence only.
 *
 * Steps run on lanes (harness/chaos/plan.ts): one per node and one for the API, so a slow undo (a
 * node booting again) delays only what comes next on that node; every action's scheduled and actual
 * times are recorded, and the evidence is judged against the actual ones. Probes of a node that is
 * killed or stopped are read just before (its /run is a tmpfs) and started again once it is back,
 * so a flow's timeline may have several segments.
 */
import { Lab } from '../lab/lab.js';
import type { Topology } from '../topology/types.js';
import { INTERNET, ROUTER } from '../topology/plan.js';
import { stableMac } from '../lab/wiring.js';
import { startProcess, stopProcess } from '../lab/process.js';
import { RESPONDER_PORT } from '../inlab/protocol.js';
import type { Capture, CaptureResult } from '../capture/capture.js';
import type { ContinuousProbe } from '../probe/probe.js';
import type { Timeline } from '../probe/timeline.js';
import { applyAll, loadManifests } from '../cluster/apply.js';
import { everyNodeUp, gatewayOf, type GatewayStatus } from '../cluster/cluster-status.js';
import { AGENT_PROCESS, CONTROLLER_PROCESS, controlPlaneNode } from '../cluster/cluster.js';
import { masqConfigYaml } from '../cluster/masq-applied.js';
import { NODE_FAULTS } from '../faults/faults.js';
import { R, type KubeClient } from '../../lib/kube/client.js';
import { IP_MASQ_KEY, IP_MASQ_NAME, IP_MASQ_NAMESPACE } from '../../lib/kube/well-known.js';
import { LabError, ValidationError } from '../util/errors.js';
import { pollUntil } from '../util/poll.js';
import { projectRoot } from '../util/paths.js';
import { join } from 'node:path';
import { constraintIssues, describeStep, universeOf, type Schedule, type Step } from './schedule.js';
import { executionPlan, pendingUndos, type PlannedAction } from './plan.js';
import {
  allowedWindows,
  conntrackRules,
  BASE_MANIFESTS,
  chaosFlows,
  chaosTopology,
  doChurn,
  expectedSource,
  initialState,
  policyObject,
  podConnectionEnds,
  replyExcuses,
  undoChurn,
  type ActiveSpan,
  type ChurnSaved,
  type ClusterState,
  type FlowSpec,
  type StateChange,
} from './model.js';
import { arpClaims, edgeEvidence, finalApiFrom, mergeSegments, type EdgeFlow } from './evidence.js';
import { checkInvariants, type ChaosEvidence, type FlowEvidence, type Violation } from './invariants.js';

/** The bounds a run is judged by (ms); see docs/chaos.md for where each comes from. */
export interface ChaosBounds {
  /** after the last undo, every flow answered again (and the API converged) within this */
  boundMs: number;
  /** how long after the bound the probes keep running: the packets invariant 3 judges */
  tailMs: number;
  /** how long after an API change the old sources may still be seen (longer if a fault overlaps it) */
  transitionMs: number;
  /** two nodes may answer ARP for one IP at most this long (the ARP fence's element timeout) */
  fenceMs: number;
  /** ARP claims of two MACs less than this apart conflict (just over the observer's interval between who-has) */
  arpWindowMs: number;
  /** a probe gives up on a packet after this */
  probeTimeoutMs: number;
  /** the time a reply may take from the far end to the pod */
  replyTransitMs: number;
  /**
   * how much longer than the tail the probes keep running while a TCP stream has not been answered
   * since the bound (its TCP in retransmission back-off: see streamsInBackoff); once it is answered,
   * one more tail: at most streamBackoffMs + tailMs more
   */
  streamBackoffMs: number;
}

export const DEFAULT_BOUNDS: ChaosBounds = {
  boundMs: 10_000,
  tailMs: 3_000,
  transitionMs: 3_000,
  fenceMs: 1_000,
  arpWindowMs: 600,
  probeTimeoutMs: 1_000,
  replyTransitMs: 300,
  streamBackoffMs: 60_000,
};

/** arping processes per watched IP, started this far apart: one who-has per IP every ARP_INTERVAL_MS / ARPINGS_PER_IP. */
const ARPINGS_PER_IP = 2;
const ARP_INTERVAL_MS = 1000;

/** Options of runSchedule. */
export interface RunOptions {
  /** the topology the schedule was drawn for (before chaosTopology) */
  topology: Topology;
  /** lab id (default chaos-<random>) */
  labId?: string;
  /** leave the lab up afterwards */
  keep?: boolean;
  bounds?: Partial<ChaosBounds>;
  /** manifests applied before the run (default: the seed's gateway and policy) */
  baseManifests?: string;
  progress?: (line: string) => void;
  signal?: AbortSignal;
  /** called with the lab still up once the verdict is in (e.g. to collect diagnostics of a violation) */
  beforeDown?: (lab: Lab, run: ChaosRun) => Promise<void>;
  /**
   * Actions of the caller at schedule times (ms after the schedule's start), run alongside the
   * steps: what a regression scenario needs to make its premise certain rather than a matter of
   * timing (e.g. the far end holding back its answers across a pause: regressions/
   * paused-holder-deleted-policy). Not faults: they are not in the schedule, the explorer never
   * draws them, and one that fails fails the run (a LabError naming it).
   */
  at?: readonly { at: number; what: string; run: (lab: Lab) => Promise<void> }[];
}

/** One action as it ran: step, do or undo, when it was due and when it ran (ms since the epoch). */
export interface ExecutedAction {
  step: number;
  phase: 'do' | 'undo';
  /** due at, ms after the start of the schedule */
  dueAt: number;
  startedAt: number;
  endedAt: number;
  /** what it did when that depends on the lab (e.g. which node a black hole cut) */
  note?: string;
  /** the step changed nothing in this lab (a black hole towards a holder that does not exist, or is the node itself; a churn to the state the cluster was in): `note` says why */
  noEffect?: true;
  error?: string;
}

/** What a run recorded and what the invariants say about it. */
export interface ChaosRun {
  labId: string;
  schedule: Schedule;
  bounds: ChaosBounds;
  /** the probe flows */
  flows: FlowSpec[];
  /** ms since the epoch: the schedule's time 0 */
  startedAt: number;
  /** when the last step was undone (or done, for kept and instant steps) */
  settledAt: number;
  /** when every flow was answered again under its final source and the API had converged; absent: not within the bound */
  convergedAt?: number;
  actions: ExecutedAction[];
  violations: Violation[];
  evidence: ChaosEvidence;
  /** every flow's merged timeline, with the sources it was allowed at some point */
  timelines: { name: string; timeline: Timeline & { segments: { seqOffset: number; lastSeq: number; start?: number }[] }; allowedSources: string[] }[];
  /** the captures (pcap files on the host) */
  captures: { what: string; file: string; packets: number }[];
  /** how long each phase took (ms) */
  timing: { labUpMs: number; setupMs: number; scheduleMs: number; observeMs: number; collectMs: number; totalMs: number };
}

/**
 * The streams (long-lived TCP connections) that wrote after `since` and have had no answer since:
 * their TCP is in retransmission back-off. After a long loss the pod's TCP waits longer and longer
 * between tries (RTO doubling from 0.2 s: after 30 s of loss the next try may come 25 s later), and
 * the writes made meanwhile wait in its socket. When it sends again is the pod's TCP's doing, not
 * the system's: the run keeps observing until these streams are answered (their queued writes then
 * reach the pod's interface, which the convergence invariant counts), for at most
 * ChaosBounds.streamBackoffMs. `records` holds each stream's probe records (`t`: when written).
 */
export function streamsInBackoff(records: ReadonlyMap<string, readonly { t: number; replied: boolean }[]>, since: number): string[] {
  const out: string[] = [];
  for (const [flow, recs] of records) {
    const after = recs.filter((r) => r.t >= since);
    if (after.length > 0 && !after.some((r) => r.replied)) out.push(flow);
  }
  return out;
}

/**
 * Waits until `t` (ms since the epoch): the schedule's own clock (the time a step is due), not a
 * synchronisation. A Node timer may fire up to a millisecond before its delay has passed on
 * Date.now() (libuv counts on its own truncated monotonic clock): a step was once undone 1 ms
 * before its duration ended. So it waits again until Date.now() has reached `t`.
 */
export async function sleepUntil(t: number, signal?: AbortSignal): Promise<void> {
  for (let ms = t - Date.now(); ms > 0 && !signal?.aborted; ms = t - Date.now()) {
    await new Promise<void>((resolve) => {
      const onAbort = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Runs `schedule` on a fresh lab and judges it (see the file's header). */
export async function runSchedule(schedule: Schedule, o: RunOptions): Promise<ChaosRun> {
  const bounds: ChaosBounds = { ...DEFAULT_BOUNDS, ...o.bounds };
  const progress = o.progress ?? (() => {});
  const topology = chaosTopology(o.topology);
  const u = universeOf(topology);
  const issues = constraintIssues(schedule, u);
  if (issues.length) throw new ValidationError('schedule', issues);
  const t0 = Date.now();
  const lab = await Lab.up({
    topology,
    id: o.labId ?? `chaos-${Math.random().toString(36).slice(2, 8)}`,
    persistent: o.keep ?? false,
    progress,
    ...(o.signal ? { signal: o.signal } : {}),
  });
  let run: ChaosRun | undefined;
  try {
    run = await runOnLab(lab, schedule, topology, bounds, { ...o, progress }, t0);
    if (o.beforeDown) await o.beforeDown(lab, run);
    return run;
  } finally {
    // a kept lab: this process lets go of it (its API access kept `egresslab chaos --keep` from exiting)
    if (!o.keep) await lab.down();
    else await lab.release();
  }
}

async function runOnLab(
  lab: Lab,
  schedule: Schedule,
  topology: Topology,
  bounds: ChaosBounds,
  o: RunOptions & { progress: (s: string) => void },
  t0: number,
): Promise<ChaosRun> {
  const { progress, signal } = o;
  const u = universeOf(topology);
  const api = await lab.api();
  const manifests = loadManifests(join(projectRoot(), o.baseManifests ?? BASE_MANIFESTS));
  await applyAll(api, manifests);
  let state = initialState(
    topology,
    manifests.map((m) => m.object),
  );
  const nodes = topology.nodes.map((n) => n.name);
  await pollUntil(() => gatewayOf(api), {
    what: 'every node Up and every floating IP assigned',
    timeoutMs: 60_000,
    intervalMs: 100,
    accept: (g) => everyNodeUp(g, nodes.length) && state.floatingIPs.every((ip) => !!g.assignments[ip]),
  });
  const labUpMs = Date.now() - t0;

  // observers: far-end captures, the ARP observer, the probes
  const tSetup = Date.now();
  const vpc = topology.vpcEndpoints[0];
  const farEnd: { what: string; cap: Capture }[] = [
    { what: `${INTERNET}:eth0`, cap: await lab.capture(INTERNET, 'eth0', { filter: `port ${RESPONDER_PORT}` }) },
  ];
  if (vpc) farEnd.push({ what: `${vpc.name}:eth0`, cap: await lab.capture(vpc.name, 'eth0', { filter: `port ${RESPONDER_PORT}` }) });
  const arpCap = await lab.capture(ROUTER, 'eth-nodes', { filter: 'arp' });
  const watched = [...u.floatingIPs, ...u.spareFloatingIPs];
  const arpings = watched.flatMap((ip) =>
    Array.from({ length: ARPINGS_PER_IP }, (_, k) => ({
      ip,
      name: `chaos-arping-${ip.replace(/\./g, '-')}-${k}`,
      delay: (k * ARP_INTERVAL_MS) / ARPINGS_PER_IP,
    })),
  );
  await Promise.all(
    arpings.map((a) =>
      startProcess(lab, { container: ROUTER, label: ROUTER }, a.name, [
        'sh',
        '-c',
        `sleep ${(a.delay / 1000).toFixed(3)}; exec arping -b -q -i ${ARP_INTERVAL_MS / 1000} -I eth-nodes ${a.ip}`,
      ]),
    ),
  );

  await lab.faults.prepare();
  const flows = chaosFlows(topology);
  // the witness that a reply reached a pod, and of what its TCP sent: a capture on the pod's own interface (host side of its veth)
  const podCaps = new Map<string, Capture>();
  const podCapResults: { pod: string; result: CaptureResult }[] = [];
  const startPodCapture = async (pod: string) => {
    const h = lab.pod(pod);
    podCaps.set(pod, await lab.capture(h.node, h.hostVeth!, { filter: `port ${RESPONDER_PORT}` }));
  };
  const stopPodCapture = async (pod: string) => {
    const c = podCaps.get(pod);
    if (!c) return;
    podCaps.delete(pod);
    podCapResults.push({ pod, result: await c.stop() });
  };
  const podsOn = (node: string) => [...new Set(flows.filter((f) => f.node === node).map((f) => f.pod))];
  await Promise.all([...new Set(flows.map((f) => f.pod))].map(startPodCapture));
  const segments = new Map<string, ContinuousProbe[]>(flows.map((f) => [f.name, []]));
  const startFlow = async (f: FlowSpec) => {
    const p = await lab.continuousProbe(f.pod, f.to, {
      proto: f.proto,
      intervalMs: f.intervalMs,
      timeoutMs: bounds.probeTimeoutMs,
      port: RESPONDER_PORT,
      ...(f.stream ? { stream: true, reconnect: true } : {}),
    });
    segments.get(f.name)!.push(p);
  };
  await Promise.all(flows.map(startFlow));
  const current = (f: FlowSpec) => segments.get(f.name)!.at(-1)!;
  const expectNow = (f: FlowSpec) => expectedSource(topology, state, f.pod, f.to);
  await pollUntil(async () => Promise.all(flows.map(async (f) => !expectNow(f).answered || (await current(f).answeredAfter(0)) >= 3)), {
    what: 'every flow answered 3 times before the schedule starts',
    timeoutMs: 30_000,
    intervalMs: 250,
    accept: (xs) => xs.every(Boolean),
  });
  const setupMs = Date.now() - tSetup;

  // the schedule
  const start = Date.now();
  progress(`schedule starts (lab ${lab.id}, ${schedule.steps.length} step(s), ${flows.length} probes)`);
  const changes: StateChange[] = [{ t: 0, state }];
  const spans: ActiveSpan[] = [];
  const actions: ExecutedAction[] = [];
  const saved = new Map<number, ChurnSaved>();
  const blackholed = new Map<number, string>();
  const done = new Set<number>();
  const undone = new Set<number>();
  const cp = controlPlaneNode(topology).name;

  const setApi = async (next: ClusterState): Promise<void> => {
    await syncApi(lab, api, state, next);
    state = next;
  };

  /** inject's answer for a step that changes nothing in this lab */
  const noEffect = (note: string) => ({ note, noEffect: true as const });
  const inject = async (s: Step, i: number): Promise<string | { note: string; noEffect: true } | undefined> => {
    switch (s.kind) {
      case 'node-kill':
      case 'node-stop':
        // what the node's probes and pod captures hold is lost with it (/run is a tmpfs): read it first
        await Promise.all([...flows.filter((f) => f.node === s.node).map((f) => current(f).halt()), ...podsOn(s.node).map(stopPodCapture)]);
        await NODE_FAULTS[s.kind === 'node-kill' ? 'kill' : 'stop'].inject(lab.faults, s.node);
        return undefined;
      case 'node-pause':
        await NODE_FAULTS.pause.inject(lab.faults, s.node);
        return undefined;
      case 'partition':
        await lab.faults.partition(s.node, s.direction);
        return undefined;
      case 'agent-restart':
        await lab.faults.restartProcess(s.node, AGENT_PROCESS);
        return undefined;
      case 'controller-restart':
        await lab.faults.restartProcess(cp, CONTROLLER_PROCESS);
        await pollUntil(
          () =>
            api.list(R.nodes).then(
              () => true,
              () => false,
            ),
          { what: 'the API to answer after the controller restarted', timeoutMs: 30_000, intervalMs: 100, accept: Boolean },
        );
        return undefined;
      case 'link-loss':
        if (s.mode === 'random') await lab.faults.degrade(s.node, { lossPercent: s.lossPercent });
        else await lab.faults.burstLoss(s.node, { lossPercent: s.lossPercent });
        return undefined;
      case 'rate-limit':
        await lab.faults.rateLimit(s.node, s.kbitPerSecond);
        return undefined;
      case 'blackhole-gateway': {
        const g = await pollUntil(() => gatewayOf(api), { what: 'the gateway status (the holder to black-hole)', timeoutMs: 15_000, intervalMs: 100 });
        const holder = g.assignments[s.floatingIP];
        if (!holder) return noEffect(`${s.floatingIP} held by no node: nothing to black-hole`);
        if (holder === s.node) return noEffect(`${s.node} holds ${s.floatingIP} itself: nothing to black-hole`);
        await lab.faults.blackhole(s.node, holder);
        blackholed.set(i, holder);
        return `${s.node} -> ${holder} (holder of ${s.floatingIP})`;
      }
      case 'policy':
      case 'configmap':
      case 'floating-ip': {
        const r = doChurn(state, s, u);
        // (a churn may ask for the state the cluster is in: an IP added that it has, a list it already has)
        const same = JSON.stringify(r.next) === JSON.stringify(state);
        saved.set(i, r.saved);
        changes.push({ t: Date.now(), state: r.next });
        await setApi(r.next);
        return same ? noEffect('the cluster already was in that state') : undefined;
      }
    }
  };

  const undo = async (s: Step, i: number): Promise<string | undefined> => {
    switch (s.kind) {
      case 'node-kill':
      case 'node-stop':
        await NODE_FAULTS[s.kind === 'node-kill' ? 'kill' : 'stop'].undo(lab.faults, s.node);
        await Promise.all(podsOn(s.node).map(startPodCapture));
        await Promise.all(flows.filter((f) => f.node === s.node).map(startFlow));
        return undefined;
      case 'node-pause':
        await NODE_FAULTS.pause.undo(lab.faults, s.node);
        return undefined;
      case 'partition':
        await lab.faults.heal(s.node);
        return undefined;
      case 'link-loss':
      case 'rate-limit':
        await lab.faults.restore(s.node);
        return undefined;
      case 'blackhole-gateway': {
        const to = blackholed.get(i);
        if (to) await lab.faults.unblackhole(s.node, to);
        return undefined;
      }
      case 'policy':
      case 'configmap':
      case 'floating-ip': {
        const next = undoChurn(state, s, saved.get(i)!);
        changes.push({ t: Date.now(), state: next });
        await setApi(next);
        return undefined;
      }
      default:
        return undefined;
    }
  };

  const perform = async (a: Pick<PlannedAction, 'step' | 'phase' | 'at'>): Promise<void> => {
    const s = schedule.steps[a.step]!;
    const startedAt = Date.now();
    const rec: ExecutedAction = { step: a.step, phase: a.phase, dueAt: a.at, startedAt, endedAt: startedAt };
    try {
      const r = a.phase === 'do' ? await inject(s, a.step) : await undo(s, a.step);
      if (typeof r === 'string') rec.note = r;
      else if (r) Object.assign(rec, r);
    } catch (e) {
      rec.error = errText(e);
    }
    rec.endedAt = Date.now();
    actions.push(rec);
    if (a.phase === 'do') {
      done.add(a.step);
      spans.push({
        step: a.step,
        kind: s.kind,
        ...('node' in s ? { node: s.node } : {}),
        from: startedAt,
        doneAt: rec.endedAt,
        ...(s.durationMs === 0 ? { to: rec.endedAt } : {}),
      });
    } else {
      undone.add(a.step);
      const span = spans.find((x) => x.step === a.step);
      if (span) span.to = rec.endedAt;
    }
    const late = startedAt - (start + a.at);
    progress(
      `  +${((startedAt - start) / 1000).toFixed(3)} s${late > 50 ? ` (due +${(a.at / 1000).toFixed(3)} s)` : ''}: ${a.phase === 'undo' ? 'undo ' : ''}${describeStep(s).replace(/^\+[\d.]+ s( for [\d.]+ s| \(kept\))?: /, '')}${rec.note ? ` [${rec.note}]` : ''}${rec.error ? ` FAILED: ${rec.error}` : ''} (${rec.endedAt - startedAt} ms)`,
    );
  };

  const lanes = new Map<string, Promise<void>>();
  // the caller's actions (RunOptions.at): not steps, so neither in `actions` nor in settledAt
  const callerFailed: string[] = [];
  const callerTasks = (o.at ?? []).map(async (h) => {
    await sleepUntil(start + h.at, signal);
    if (signal?.aborted) return;
    const startedAt = Date.now();
    const error = await h.run(lab).then(() => undefined, errText);
    if (error) callerFailed.push(`${h.what} (+${h.at} ms): ${error}`);
    progress(`  +${((startedAt - start) / 1000).toFixed(3)} s: (caller) ${h.what}${error ? ` FAILED: ${error}` : ''} (${Date.now() - startedAt} ms)`);
  });
  const tasks: Promise<void>[] = [];
  for (const a of executionPlan(schedule)) {
    await sleepUntil(start + a.at, signal);
    if (signal?.aborted) break;
    const task = (lanes.get(a.lane) ?? Promise.resolve()).then(() => perform(a));
    lanes.set(a.lane, task);
    tasks.push(task);
  }
  await Promise.all(tasks);
  // an aborted run (or a failed undo) leaves steps in force: undo them, latest first
  for (const i of pendingUndos(schedule, done, undone)) await perform({ step: i, phase: 'undo', at: Date.now() - start });
  const failed = actions.filter((a) => a.error);
  if (signal?.aborted) throw new LabError('chaos run interrupted');
  if (failed.length) {
    throw new LabError(
      `the schedule could not be executed as written: ${failed.map((a) => `step ${a.step} ${a.phase} (${describeStep(schedule.steps[a.step]!)}): ${a.error}`).join('; ')}`,
    );
  }
  const settledAt = Math.max(start, ...actions.map((a) => a.endedAt));

  // convergence: within the bound, then the tail the invariant judges
  const deadline = settledAt + bounds.boundMs;
  const finalState = state;
  const final = new Map(flows.map((f) => [f.name, expectedSource(topology, finalState, f.pod, f.to)]));
  let convergedAt: number | undefined;
  await pollUntil(
    async () => {
      const g = await gatewayOf(api).catch(() => undefined);
      if (!g || !everyNodeUp(g, nodes.length) || !finalState.floatingIPs.every((ip) => g.assignments[ip])) return false;
      const ok = await Promise.all(
        flows.map(async (f) => {
          if (!final.get(f.name)!.answered) return true;
          const recs = (await current(f).records()).filter((r) => r.t > settledAt);
          const lastFive = recs.slice(-5);
          return lastFive.length === 5 && lastFive.every((r) => r.replied && (!r.observedSource || final.get(f.name)!.sources.includes(r.observedSource)));
        }),
      );
      return ok.every(Boolean);
    },
    {
      what: 'every flow answered under its final source and the API converged',
      timeoutMs: Math.max(0, deadline - Date.now()),
      intervalMs: 1000,
      accept: Boolean,
    },
  ).then(
    () => (convergedAt = Date.now()),
    () => undefined,
  );
  progress(
    convergedAt
      ? `converged ${convergedAt - settledAt} ms after the last step was undone`
      : `NOT converged within ${bounds.boundMs} ms of the last step's undo`,
  );
  await sleepUntil(deadline + bounds.tailMs, signal);
  if (signal?.aborted) throw new LabError('chaos run interrupted');
  await Promise.all(callerTasks);
  if (callerFailed.length) throw new LabError(`the caller's actions failed: ${callerFailed.join('; ')}`);
  // a stream in TCP back-off is judged on what it sends next: keep observing until it is answered
  const streams = flows.filter((f) => f.stream && final.get(f.name)!.answered);
  // (a probe whose records cannot be read is not waited for: the invariants judge what it recorded)
  const backingOff = async () =>
    streamsInBackoff(
      new Map(
        await Promise.all(
          streams.map(
            async (f) =>
              [
                f.name,
                await current(f)
                  .records()
                  .catch(() => []),
              ] as const,
          ),
        ),
      ),
      deadline,
    );
  const waiting = await backingOff();
  if (waiting.length && bounds.streamBackoffMs > 0 && !signal?.aborted) {
    const t = Date.now();
    progress(`${waiting.join(', ')}: no answer since the bound (TCP retransmission back-off); observing until answered, at most ${bounds.streamBackoffMs} ms`);
    const left = await pollUntil(backingOff, {
      what: 'every stream answered after the bound',
      timeoutMs: bounds.streamBackoffMs,
      intervalMs: 500,
      accept: (w) => w.length === 0 || !!signal?.aborted,
    }).catch(() => undefined);
    if (signal?.aborted) throw new LabError('chaos run interrupted');
    progress(left ? `answered after ${Date.now() - t} ms more` : `still unanswered after ${bounds.streamBackoffMs} ms more`);
    // the writes after its first try are judged too: the tail again
    if (left) await sleepUntil(Date.now() + bounds.tailMs, signal);
    if (signal?.aborted) throw new LabError('chaos run interrupted');
  }
  const observeMs = Date.now() - settledAt;

  // collect
  const tCollect = Date.now();
  const timelinesByFlow = new Map<string, Timeline[]>();
  await Promise.all(flows.map(async (f) => timelinesByFlow.set(f.name, await Promise.all(segments.get(f.name)!.map((p) => p.stop())))));
  await Promise.all(arpings.map((a) => stopProcess(lab, ROUTER, a.name)));
  const far: CaptureResult[] = await Promise.all(farEnd.map((x) => x.cap.stop()));
  // after the far end's: a reply it saw leave has had its time to arrive
  await Promise.all([...podCaps.keys()].map(stopPodCapture));
  const arp = await arpCap.stop();
  const gateway: GatewayStatus = await gatewayOf(api);
  const policies = (await api.list(R.egressNATPolicies)).items;

  const faultSpans = spans.filter((s) => s.kind !== 'policy' && s.kind !== 'configmap' && s.kind !== 'floating-ip');
  const merged = new Map(flows.map((f) => [f.name, mergeSegments(timelinesByFlow.get(f.name)!)]));
  const edgeFlows: EdgeFlow[] = flows.map((f) => ({
    name: f.name,
    to: f.to,
    port: RESPONDER_PORT,
    proto: f.proto,
    segments: segments.get(f.name)!.map((p, i) => ({ token: p.token, seqOffset: merged.get(f.name)!.segments[i]!.seqOffset })),
    ...(lab.pod(f.pod).ip ? { podIP: lab.pod(f.pod).ip! } : {}),
  }));
  const { edgePackets, edgeReplies } = edgeEvidence(
    far.flatMap((r) => r.packets),
    edgeFlows,
  );
  const podEvidence = edgeEvidence(
    podCapResults.flatMap((x) => x.result.packets),
    edgeFlows,
  );
  const macs = new Map(nodes.map((n) => [stableMac(n, 'eth0'), n]));
  const allowed = allowedWindows(topology, flows, changes, faultSpans, bounds.transitionMs);
  const flowEvidence: FlowEvidence[] = flows.map((f) => ({
    flow: f.name,
    timeline: merged.get(f.name)!,
    finalSources: final.get(f.name)!.sources,
    finalAnswered: final.get(f.name)!.answered,
    timeoutMs: bounds.probeTimeoutMs,
  }));
  const evidence: ChaosEvidence = {
    edgePackets,
    allowed,
    arpReplies: arpClaims(arp.packets, watched, macs),
    edgeReplies,
    flows: flowEvidence,
    finalApi: finalApiFrom(gateway, policies, nodes),
    replyExcuses: replyExcuses(topology, flows, changes, faultSpans, { transitionMs: bounds.transitionMs, graceMs: bounds.boundMs }),
    podReplies: podEvidence.edgeReplies,
    podSent: podEvidence.edgePackets,
    podResets: podEvidence.edgeResets,
    conntrack: conntrackRules(topology, flows, changes, faultSpans),
    podConnectionEnds: podConnectionEnds(flows, faultSpans),
  };
  const violations = checkInvariants(evidence, {
    fenceMs: bounds.fenceMs,
    arpWindowMs: bounds.arpWindowMs,
    settledAt,
    boundMs: bounds.boundMs,
    replyTransitMs: bounds.replyTransitMs,
  });
  const collectMs = Date.now() - tCollect;
  return {
    labId: lab.id,
    schedule,
    bounds,
    flows,
    startedAt: start,
    settledAt,
    ...(convergedAt !== undefined ? { convergedAt } : {}),
    actions: actions.sort((a, b) => a.startedAt - b.startedAt),
    violations,
    evidence,
    timelines: flows.map((f) => ({
      name: f.name,
      timeline: merged.get(f.name)!,
      allowedSources: [...new Set(allowed.filter((w) => w.flow === f.name).flatMap((w) => w.sources))].sort(),
    })),
    captures: [
      ...farEnd.map((x, i) => ({ what: x.what, file: far[i]!.file, packets: far[i]!.packets.length })),
      { what: `${ROUTER}:eth-nodes (ARP)`, file: arp.file, packets: arp.packets.length },
      ...podCapResults.map((x) => ({ what: `${x.pod} (its interface)`, file: x.result.file, packets: x.result.packets.length })),
    ],
    timing: { labUpMs, setupMs, scheduleMs: settledAt - start, observeMs, collectMs, totalMs: Date.now() - t0 },
  };
}

/**
 * Writes the difference between two states to the API: pod labels, policies (created or replaced,
 * deleted), the ip-masq-agent ConfigMap (written, or deleted: the default list), the gateway's
 * floating IPs.
 */
async function syncApi(lab: Lab, api: KubeClient, before: ClusterState, after: ClusterState): Promise<void> {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  for (const [pod, labels] of Object.entries(after.podLabels)) if (!same(labels, before.podLabels[pod])) await lab.labelPod(pod, labels);
  const changed = Object.values(after.policies).filter((p) => !same(p, before.policies[p.name]));
  if (changed.length)
    await applyAll(
      api,
      changed.map((p) => ({ source: `chaos policy ${p.name}`, object: policyObject(p) })),
    );
  for (const name of Object.keys(before.policies)) if (!after.policies[name]) await api.delete(R.egressNATPolicies, name);
  if (!same(after.nonMasqueradeCIDRs, before.nonMasqueradeCIDRs)) {
    if (after.nonMasqueradeCIDRs === null) await api.delete(R.configmaps, IP_MASQ_NAME, IP_MASQ_NAMESPACE);
    else {
      const object = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { namespace: IP_MASQ_NAMESPACE, name: IP_MASQ_NAME },
        data: { [IP_MASQ_KEY]: masqConfigYaml({ nonMasqueradeCIDRs: after.nonMasqueradeCIDRs }) },
      };
      await applyAll(api, [{ source: 'chaos ip-masq-agent ConfigMap', object }]);
    }
  }
  if (!same(after.floatingIPs, before.floatingIPs))
    await api.patch(R.anthosNetworkGateways, after.gateway.name, { spec: { floatingIPs: after.floatingIPs } }, { namespace: after.gateway.namespace });
}
