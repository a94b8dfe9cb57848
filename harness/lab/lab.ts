/**
 * The lab façade: brings a topology up as containers wired by the lab itself (veth pairs, a bridge
 * per L2 segment, pods as network namespaces inside their node), and composes what a scenario does
 * with it — probes, captures, faults, handles, the cluster's API — over the lab runtime.
 *
 * The layers (no import loop): harness/lab/runtime.ts is the interface features depend on;
 * harness/lab/docker-runtime.ts implements it on Docker; probes, captures, faults, responders,
 * managed processes and the cluster's programs are written against the interface; this file
 * composes them, and nothing it imports imports it back.
 */
import { docker, LABEL, assertEngine } from '../docker/client.js';
import { ensureImage, type Progress } from '../docker/image.js';
import { choosePayloadMode, payloadVolumeName, type PayloadMode } from './payload.js';
import type { Topology } from '../topology/types.js';
import { nodeAddress } from '../topology/lookup.js';
import { parseTopology } from '../topology/validate.js';
import { LabError, ValidationError } from '../util/errors.js';
import { assertBuilt } from '../util/paths.js';
import { BUILDING_KEY, markBuilding, markBuilt, removeLab } from './registry.js';
import { prepareCluster, startCluster, startConcurrency } from '../cluster/cluster.js';
import { clusterApi, clusterKubeconfig, closeClusterAccess } from '../cluster/access.js';
import type { KubeClient } from '../../lib/kube/client.js';
import type { KubeObject } from '../../lib/kube/types.js';
import { applyAll, loadManifests, type ApplyResult, type Manifest } from '../cluster/apply.js';
import { setPodLabels } from '../cluster/pods.js';
import { Faults } from '../faults/faults.js';
import { nodeHandle, podHandle, type NodeHandle, type PodHandle } from './handles.js';
import { Capture, type CaptureOptions } from '../capture/capture.js';
import { ContinuousProbe, probe, type ContinuousProbeOptions, type ProbeOptions, type ProbeResult } from '../probe/probe.js';
import { DockerRuntime, preparePayload } from './docker-runtime.js';
import { labNodeMode, type LabNodeMode } from '../docker/lab-node.js';
import { ensureResponder, observedLogOf, responderFor, responderProcess, responderReadyFileOf, type ResponderTarget } from './responders.js';
import type { Place } from './runtime.js';

export { containerName, inPlace, type ContainerRuntime, type LabRuntime, type Place } from './runtime.js';
export { endpointFor } from './responders.js';
export type { LabPayload } from './docker-runtime.js';

const LAB_ID = /^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/;

/** Options of Lab.up: the topology, the lab id, and how containers get the code. */
export interface LabUpOptions {
  topology: Topology;
  /** Lab id (DNS label, ≤ 32 characters); random when absent. */
  id?: string;
  /** Kept when the creating process exits (`egresslab up`); otherwise `prune` may remove it once its owner is gone. */
  persistent?: boolean;
  progress?: Progress;
  /** Abort and tear down when this signal fires (SIGINT handling in the CLI). */
  signal?: AbortSignal;
  /**
   * How containers get the in-lab code: "bundle" (the bundled payload, unpacked in the host cache,
   * read-only), "bind" (the checkout, read-only: a rebuilt dist/ is live in every new process),
   * "volume" (the payload in a volume shipped through the Docker API: remote engines) or "auto"
   * (default: EGRESSLAB_PAYLOAD, else volume when DOCKER_HOST is another machine, else bundle).
   * See harness/lab/payload.ts.
   */
  payload?: PayloadMode | 'auto';
  /**
   * Which Node.js runs the in-lab programs: "image" (the base image's), "host" (this machine's,
   * mounted over /usr/bin/node) or "auto" (default: EGRESSLAB_LAB_NODE, else the host's when it
   * runs in the image). See harness/docker/lab-node.ts.
   */
  node?: LabNodeMode;
}

/** A fresh random lab id (`lab-xxxxxx`). */
export function randomLabId(): string {
  return `lab-${Math.random().toString(36).slice(2, 8)}`;
}

function checkLabId(id: string): void {
  if (!LAB_ID.test(id)) {
    throw new ValidationError('lab', [{ path: '--lab', value: id, message: 'must be a DNS label of at most 32 characters (a-z, 0-9, "-")' }]);
  }
}

/**
 * A running lab: its containers, links and pods, and everything a scenario does with them (probes, faults, exec, captures).
 *
 * @example
 * ```ts
 * await using lab = await Lab.up({ topology: topologyFromArg('foundation') });
 * const r = await lab.probe('alice/frontend-1', '172.16.100.10', { proto: 'udp' });
 * ```
 */
export class Lab extends DockerRuntime implements AsyncDisposable {
  /** Fault injection on this lab's nodes. */
  readonly faults: Faults;

  private constructor(id: string, topology: Topology, image: string) {
    super(id, topology, image);
    this.faults = new Faults(this);
  }

  /** One probe from a pod, node or hostNetwork pod to `to`; see ProbeResult. */
  probe(from: string, to: string, options?: ProbeOptions): Promise<ProbeResult> {
    return probe(this, from, to, options);
  }

  /** A probe sending sequence-numbered packets until stopped; stop() gives the timeline. */
  continuousProbe(from: string, to: string, options?: ContinuousProbeOptions): Promise<ContinuousProbe> {
    return ContinuousProbe.start(this, from, to, options);
  }

  /** Starts tcpdump on `iface` of a node, pod, endpoint, router or switch. */
  capture(where: string, iface: string, options?: CaptureOptions): Promise<Capture> {
    return Capture.start(this, where, iface, options);
  }

  /** Admin client for the lab's API server (topology with cluster: true), through a forward on 127.0.0.1. */
  api(options?: { timeoutMs?: number }): Promise<KubeClient> {
    return clusterApi(this, options);
  }

  /**
   * Sets a pod's labels to exactly `labels`, in the API (the agents re-read them) and in this Lab's
   * plan. Cluster labs only.
   */
  async labelPod(key: string, labels: Record<string, string>): Promise<void> {
    const pod = this.podPlan(key);
    await setPodLabels(await this.api(), pod.namespace, pod.name, labels);
    pod.labels = { ...labels };
  }

  /**
   * Applies manifests as `kubectl apply` does (client-side, last-applied annotation): a file or
   * directory path, or objects. Cluster labs only.
   */
  async apply(source: string | KubeObject | KubeObject[]): Promise<ApplyResult[]> {
    const manifests: Manifest[] =
      typeof source === 'string' ? loadManifests(source) : (Array.isArray(source) ? source : [source]).map((object, i) => ({ source: `object ${i}`, object }));
    return applyAll(await this.api(), manifests);
  }

  /** Admin kubeconfig (https://127.0.0.1:<forward port>) for kubectl and other clients; valid while this Lab object is up. */
  kubeconfig(): Promise<string> {
    return clusterKubeconfig(this);
  }

  /** Brings a lab up. On any failure (or abort) everything it created is removed before the error is thrown. */
  static async up(options: LabUpOptions): Promise<Lab> {
    const progress = options.progress ?? (() => {});
    const id = options.id ?? randomLabId();
    checkLabId(id);
    const payloadChoice = choosePayloadMode(options.payload);
    const nodeChoice = labNodeMode(options.node);
    assertBuilt();
    // a bad EGRESSLAB_START_CONCURRENCY is refused before anything is created
    if (options.topology.cluster) startConcurrency();
    // Bundling the payload is host work: it overlaps the engine round trips below.
    const payload = preparePayload(payloadChoice);
    payload?.catch(() => {});
    await assertEngine();
    const existing = await docker().listContainers({ all: true, filters: { label: [`${LABEL.lab}=${id}`] } });
    if (existing.length > 0)
      throw new LabError(`lab ${id} already exists (${existing.length} containers): pick another --lab, or "egresslab down --lab ${id}"`);
    const image = await ensureImage(progress);
    const lab = new Lab(id, options.topology, image);
    const persistent = options.persistent ?? false;
    const abortCheck = () => {
      if (options.signal?.aborted) throw new LabError(`lab ${id}: set-up interrupted`);
    };
    try {
      // a persistent lab outlives this process: until it is up, it says so, and prune removes it if this process dies
      if (persistent) await markBuilding(id, lab.labels(BUILDING_KEY, 'marker', true));
      abortCheck();
      await lab.startContainers(persistent, progress, options.signal, payloadChoice, payload, nodeChoice);
      abortCheck();
      // The cluster's first half (files, controller boot) needs no network: it overlaps the wiring.
      const prepared = lab.topology.cluster ? prepareCluster(lab) : undefined;
      prepared?.catch(() => {});
      await lab.wire();
      abortCheck();
      // the endpoints' responders get ready (their capture starts on the wired link) while the cluster starts
      const responders = lab.waitResponders();
      responders.catch(() => {});
      if (lab.topology.cluster) await startCluster(lab, progress, prepared);
      await responders;
      abortCheck();
      if (persistent) await markBuilt(id);
      return lab;
    } catch (error) {
      await removeLab(id).catch(() => {});
      throw error;
    }
  }

  /** Reattaches to a running lab (another process brought it up). Without an id, the only lab up. */
  static async attach(id?: string): Promise<Lab> {
    const filters = { label: [id ? `${LABEL.lab}=${id}` : LABEL.lab, `${LABEL.role}=router`] };
    const routers = await docker().listContainers({ all: true, filters });
    if (routers.length === 0)
      throw new LabError(id ? `no lab named ${id} is up ("egresslab status" lists labs)` : 'no lab is up: start one with "egresslab up"');
    if (routers.length > 1) {
      const ids = routers.map((r) => r.Labels[LABEL.lab]).join(', ');
      throw new LabError(`several labs are up (${ids}): say which one with --lab`);
    }
    const labels = routers[0]!.Labels;
    const topology = parseTopology(JSON.parse(labels[LABEL.topology] ?? '{}'), `lab ${labels[LABEL.lab]} topology label`);
    const lab = new Lab(labels[LABEL.lab]!, topology, routers[0]!.Image);
    const payload = /^(volume|bundle):([0-9a-f]+|prebuilt)$/.exec(labels[LABEL.payload] ?? '');
    if (payload?.[1] === 'volume') lab.payload = { mode: 'volume', hash: payload[2], volume: payloadVolumeName(lab.id) };
    else if (payload?.[1] === 'bundle') lab.payload = { mode: 'bundle', hash: payload[2] };
    const node = /^host:(.+)$/.exec(labels[LABEL.node] ?? '');
    if (node) lab.nodeRuntime = { kind: 'host', version: node[1], reason: 'label of the running lab' };
    return lab;
  }

  /** A handle on a pod: its plan (ip, node, netns, labels) and what a scenario does from it. */
  pod(key: string): PodHandle {
    return podHandle(this, this.podPlan(key));
  }

  /**
   * The lab address of a node, by node name or by a pod on it ("ns/name"): the source a pod's
   * masqueraded traffic leaves with. Use it instead of hard-coding addresses (see nodeAddress).
   *
   * @example
   * ```ts
   * expect(await lab.probe('alice/frontend-1', '8.8.8.8')).toBeSeenFrom(lab.nodeAddress('alice/frontend-1'));
   * ```
   */
  nodeAddress(nodeOrPod: string): string {
    return nodeAddress(this.topology, nodeOrPod);
  }

  /** A handle on a node: its spec (address, role, podCIDR), probes from it and faults on it. */
  node(name: string): NodeHandle {
    const spec = this.topology.nodes.find((n) => n.name === name);
    if (!spec) throw new LabError(`lab ${this.id} has no node ${name} (nodes: ${this.topology.nodes.map((n) => n.name).join(', ')})`);
    return nodeHandle(this, spec);
  }

  /**
   * Who answers a probe to `ip`, or undefined when nothing in the lab owns that address:
   * a pod, a node, a VPC endpoint (its answer ranges, longest prefix) or else the internet.
   */
  responderFor(ip: string): ResponderTarget | undefined {
    return responderFor(this.plan, ip);
  }

  /** Name of the managed responder process serving `target` (pods and nodes only). */
  static responderProcess(target: Place): string {
    return responderProcess(target);
  }

  /** Starts a responder in a pod or node on first use (endpoints run theirs from the start). */
  ensureResponder(target: ResponderTarget): Promise<void> {
    return ensureResponder(this, target);
  }

  /** The observation log of the responder that answers for `target`. */
  observedLogOf(target: Place): string {
    return observedLogOf(this.plan, target);
  }

  /** The ready file (it holds the pid) of the responder that answers for `target`. */
  responderReadyFileOf(target: Place): string {
    return responderReadyFileOf(this.plan, target);
  }

  /** Removes every container, network and volume labelled with this lab's id. */
  async down(): Promise<void> {
    this.disposed = true;
    await this.release();
    await removeLab(this.id);
  }

  /**
   * Lets this process go of the lab, which stays up (a kept lab): its in-lab helpers and its API
   * access (clients, port forward) are closed, so nothing of the lab keeps the process alive.
   */
  async release(): Promise<void> {
    this.closeHelpers();
    await closeClusterAccess(this).catch(() => {});
  }

  /** Removes the lab (`await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.disposed) await this.down();
  }
}
