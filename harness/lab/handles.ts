/**
 * Handles: what a scenario holds to act on one pod or one node
 * (`lab.pod('default/client-1').probe('8.8.8.8')`, `lab.node('node-2').kill()`).
 */
import type { PodPlan } from '../topology/plan.js';
import type { NodeSpec } from '../topology/types.js';
import type { ExecOptions, ExecResult } from '../docker/exec.js';
import type { ContinuousProbe, ContinuousProbeOptions, ProbeOptions, ProbeResult } from '../probe/probe.js';
import type { Capture, CaptureOptions } from '../capture/capture.js';
import type { Degradation, Faults } from '../faults/faults.js';

/** What handles act through: the Lab façade, which composes probes, captures and faults (no import of lab.ts, so no cycle). */
export interface HandleHost {
  probe(from: string, to: string, options?: ProbeOptions): Promise<ProbeResult>;
  continuousProbe(from: string, to: string, options?: ContinuousProbeOptions): Promise<ContinuousProbe>;
  exec(where: string, cmd: string[], options?: ExecOptions): Promise<ExecResult>;
  capture(where: string, iface: string, options?: CaptureOptions): Promise<Capture>;
  readonly faults: Faults;
}

/** A pod and what a scenario does from it: `lab.pod('alice/frontend-1')`. Its plan's fields (ip, node, namespace, labels...) too. */
export interface PodHandle extends Readonly<PodPlan> {
  /** One probe from this pod. */
  probe(to: string, options?: ProbeOptions): Promise<ProbeResult>;
  /** A continuous probe from this pod; stop() gives the timeline. */
  continuousProbe(to: string, options?: ContinuousProbeOptions): Promise<ContinuousProbe>;
  /** Runs a command in the pod's network namespace (the node's, for hostNetwork pods). */
  exec(cmd: string[], options?: ExecOptions): Promise<ExecResult>;
  /** Captures on the pod's interface (eth0; the node's eth0 for hostNetwork pods). */
  capture(iface?: string, options?: CaptureOptions): Promise<Capture>;
}

/** A node and what a scenario does with it: `lab.node('node-2')`; its spec's fields (name, role, address, podCIDR) too. Faults: see Faults. */
export interface NodeHandle extends Readonly<NodeSpec> {
  /** One probe from the node itself (its own network namespace). */
  probe(to: string, options?: ProbeOptions): Promise<ProbeResult>;
  /** A continuous probe from the node; stop() gives the timeline. */
  continuousProbe(to: string, options?: ContinuousProbeOptions): Promise<ContinuousProbe>;
  /** Runs a command on the node. */
  exec(cmd: string[], options?: ExecOptions): Promise<ExecResult>;
  /** Captures on one of the node's interfaces (default eth0). */
  capture(iface?: string, options?: CaptureOptions): Promise<Capture>;
  /** SIGKILL of the node's container (Faults.kill). */
  kill(): Promise<void>;
  /** Clean stop with a grace period (Faults.stop): 'powered-off' when a program outlived the grace. */
  stop(graceSeconds?: number): Promise<'clean' | 'powered-off'>;
  /** Starts a killed or stopped node again, its agent included (Faults.start: returns once its agent runs, before the node is Up in the cluster). */
  start(): Promise<void>;
  /** Freezes the node's processes: a hung node whose kernel still forwards (Faults.pause). */
  pause(): Promise<void>;
  /** Undoes pause. */
  unpause(): Promise<void>;
  /** Cuts the node off the segment (Faults.partition). */
  partition(): Promise<void>;
  /** Undoes partition. */
  heal(): Promise<void>;
  /** Loss and delay on the node's link (Faults.degrade). */
  degrade(d: Degradation): Promise<void>;
  /** Undoes degrade. */
  restore(): Promise<void>;
}

/** The handle of a pod (Lab.pod builds it). */
export function podHandle(lab: HandleHost, plan: PodPlan): PodHandle {
  return Object.freeze({
    ...plan,
    probe: (to: string, options?: ProbeOptions) => lab.probe(plan.key, to, options),
    continuousProbe: (to: string, options?: ContinuousProbeOptions) => lab.continuousProbe(plan.key, to, options),
    exec: (cmd: string[], options?: ExecOptions) => lab.exec(plan.key, cmd, options),
    capture: (iface = 'eth0', options?: CaptureOptions) => lab.capture(plan.key, iface, options),
  });
}

/** The handle of a node (Lab.node builds it). */
export function nodeHandle(lab: HandleHost, spec: NodeSpec): NodeHandle {
  const n = spec.name;
  return Object.freeze({
    ...spec,
    probe: (to: string, options?: ProbeOptions) => lab.probe(n, to, options),
    continuousProbe: (to: string, options?: ContinuousProbeOptions) => lab.continuousProbe(n, to, options),
    exec: (cmd: string[], options?: ExecOptions) => lab.exec(n, cmd, options),
    capture: (iface = 'eth0', options?: CaptureOptions) => lab.capture(n, iface, options),
    kill: () => lab.faults.kill(n),
    stop: (graceSeconds?: number) => lab.faults.stop(n, graceSeconds),
    start: () => lab.faults.start(n),
    pause: () => lab.faults.pause(n),
    unpause: () => lab.faults.unpause(n),
    partition: () => lab.faults.partition(n),
    heal: () => lab.faults.heal(n),
    degrade: (d: Degradation) => lab.faults.degrade(n, d),
    restore: () => lab.faults.restore(n),
  });
}
