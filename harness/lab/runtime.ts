/**
 * The lab runtime: the small interface every feature of a lab (probes, captures, faults, managed
 * processes, the cluster's programs) is written against, instead of the `Lab` façade that composes
 * them. As in Calico felix FV's `Runtime`, it exists to avoid import loops: features import this
 * module (types only, plus a pure helper), `harness/lab/lab.ts` imports the features, never the
 * reverse. A unit test hands a feature a fake runtime (harness/probe/probe.test.ts).
 *
 *   id, plan, topology  which lab, and what it is made of
 *   place               a name (pod, node, endpoint, router, switch) -> where a command runs
 *   exec                run a command there and wait for it
 *   spawn               start a command there and return (see harness/lab/process.ts for a pid file)
 *   helper              the container's in-lab helper (a faster transport), or undefined
 *
 * `ContainerRuntime` adds what faults need from the engine (the Docker container, re-wiring, the
 * pause bookkeeping of the helpers).
 */
import type Docker from 'dockerode';
import type { ExecOptions, ExecResult } from '../docker/exec.js';
import type { LabPlan } from '../topology/plan.js';
import type { Topology } from '../topology/types.js';
import type { HelperChannel } from './helper-channel.js';

/** Where a command runs: a container, optionally inside a pod's network namespace. */
export interface Place {
  container: string;
  netns?: string;
  /** Human name for messages: "node-1", "default/client-1". */
  label: string;
}

/** What features need of a running lab. `Lab` implements it; tests fake it. */
export interface LabRuntime {
  readonly id: string;
  readonly plan: LabPlan;
  readonly topology: Topology;
  /** Resolves a name to where it runs: a pod (ns/name), a node, an endpoint, router or switch. */
  place(name: string): Place;
  /** Runs a command in a lab container (or a pod's netns); throws CommandError on failure unless check=false. */
  exec(where: string | Place, cmd: string[], options?: ExecOptions): Promise<ExecResult>;
  /** Starts a command at `where` and returns without waiting for it. */
  spawn(where: string | Place, cmd: string[]): Promise<void>;
  /** The container's in-lab helper, or undefined where none runs (callers then use exec). */
  helper(container: string): Promise<HelperChannel | undefined>;
}

/** A runtime that also reaches the engine: faults kill, stop, pause and re-wire containers. */
export interface ContainerRuntime extends LabRuntime {
  /** The Docker container of a node or other container key. */
  container(key: string): Docker.Container;
  /** Wires links, pods, addresses and routes again; `only`: just those (restarted) nodes. */
  wire(only?: ReadonlySet<string>): Promise<void>;
  /** Faults call this around docker pause/unpause: a frozen helper cannot answer. */
  notePaused(key: string, paused: boolean): void;
}

/** The Docker container name of a lab container (`egl-<lab>-<key>`). */
export function containerName(labId: string, key: string): string {
  return `egl-${labId}-${key}`;
}

/**
 * `argv` as run at `place`: inside the pod's network namespace (`nsenter --net=/run/netns/NS`) when
 * the place has one, else unchanged. The one place that prefix is built. nsenter only enters the
 * network namespace (setns); `ip netns exec` would also make a mount namespace and remount /sys,
 * which lab containers may not do (no mount system call: harness/docker/containers.ts). So /sys in a
 * pod shows its node's: read a pod's links with `ip`, not /sys/class/net.
 */
export function inPlace(place: Pick<Place, 'netns'>, argv: readonly string[]): string[] {
  return place.netns ? ['nsenter', `--net=/run/netns/${place.netns}`, '--', ...argv] : [...argv];
}
