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

export interface PodHandle extends Readonly<PodPlan> {
  /** One probe from this pod. */
  probe(to: string, options?: ProbeOptions): Promise<ProbeResult>;
  continuousProbe(to: string, options?: ContinuousProbeOptions): Promise<ContinuousProbe>;
  /** Runs a command in the pod's network namespace (the node's, for hostNetwork pods). */
  exec(cmd: string[], options?: ExecOptions): Promise<ExecResult>;
  /** Captures on the pod's interface (eth0; the node's eth0 for hostNetwork pods). */
  capture(iface?: string, options?: CaptureOptions): Promise<Capture>;
}

export interface NodeHandle extends Readonly<NodeSpec> {
  probe(to: string, options?: ProbeOptions): Promise<ProbeResult>;
  continuousProbe(to: string, options?: ContinuousProbeOptions): Promise<ContinuousProbe>;
  exec(cmd: string[], options?: ExecOptions): Promise<ExecResult>;
  capture(iface?: string, options?: CaptureOptions): Promise<Capture>;
  kill(): Promise<void>;
  stop(graceSeconds?: number): Promise<void>;
  start(): Promise<void>;
  pause(): Promise<void>;
  unpause(): Promise<void>;
  partition(): Promise<void>;
  heal(): Promise<void>;
  degrade(d: Degradation): Promise<void>;
  restore(): Promise<void>;
}

export function podHandle(lab: HandleHost, plan: PodPlan): PodHandle {
  return Object.freeze({
    ...plan,
    probe: (to: string, options?: ProbeOptions) => lab.probe(plan.key, to, options),
    continuousProbe: (to: string, options?: ContinuousProbeOptions) => lab.continuousProbe(plan.key, to, options),
    exec: (cmd: string[], options?: ExecOptions) => lab.exec(plan.key, cmd, options),
    capture: (iface = 'eth0', options?: CaptureOptions) => lab.capture(plan.key, iface, options),
  });
}

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
