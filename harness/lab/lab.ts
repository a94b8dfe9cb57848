/**
 * The lab engine: brings a topology up as containers wired by the lab itself (veth pairs, a bridge
 * per L2 segment, pods as network namespaces inside their node), and gives handles to act on it.
 *
 * Isolation: every container starts with `--network none`; links are created straight into the
 * containers' namespaces by a short-lived helper (the "wirer", host PID namespace + nsenter); no
 * interface, route or firewall rule is ever added to the host's network namespace, and a guard
 * checks that after wiring.
 *
 * Everything goes through the Docker API (harness/docker/client.ts), so the engine may be remote
 * (DOCKER_HOST); the in-lab code then reaches the containers as a payload volume instead of a bind
 * mount of the checkout (harness/lab/payload.ts).
 */
import { hostname } from 'node:os';
import type Docker from 'dockerode';
import { docker, LABEL, isNotFound, assertEngine } from '../docker/client.js';
import { execIn, execDetached, type ExecOptions, type ExecResult } from '../docker/exec.js';
import { ensureImage, type Progress } from '../docker/image.js';
import { startLabContainer, type LabContainerSpec, type LabMount } from '../docker/containers.js';
import { buildPayload, choosePayloadMode, createPayloadVolume, fillPayloadVolume, payloadVolumeName, type Payload, type PayloadMode, type PayloadModeChoice } from './payload.js';
import { renderHostGuardScript, renderWiringScript } from './wiring.js';
import { planLab, WIRER, INTERNET, type LabPlan, type PodPlan } from '../topology/plan.js';
import type { Topology } from '../topology/types.js';
import { nodeAddress } from '../topology/lookup.js';
import { parseTopology } from '../topology/validate.js';
import { LabError, ValidationError } from '../util/errors.js';
import { cidrTextContains } from '../../lib/net/addresses.js';
import { pollUntil } from '../util/poll.js';
import { IN_LAB_ROOT, assertBuilt, inLabProgram, projectRoot } from '../util/paths.js';
import { RESPONDER_PORT, RUN_DIR } from '../inlab/protocol.js';
import { removeLabObjects } from './registry.js';
import { startProcess } from './process.js';
import { prepareCluster, startCluster } from '../cluster/cluster.js';
import { clusterApi, clusterKubeconfig, closeClusterAccess } from '../cluster/access.js';
import type { KubeClient } from '../../lib/kube/client.js';
import type { KubeObject } from '../../lib/kube/types.js';
import { applyAll, loadManifests, type ApplyResult, type Manifest } from '../cluster/apply.js';
import { setPodLabels } from '../cluster/pods.js';
import { Faults } from '../faults/faults.js';
import { nodeHandle, podHandle, type NodeHandle, type PodHandle } from './handles.js';
import { Capture, type CaptureOptions } from '../capture/capture.js';
import { HelperChannel } from './helper-channel.js';
import { ContinuousProbe, probe, type ContinuousProbeOptions, type ProbeOptions, type ProbeResult } from '../probe/probe.js';

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
   * How containers get the in-lab code: "bind" (the checkout, read-only), "volume" (a payload
   * volume shipped through the Docker API: remote engines) or "auto" (default: EGRESSLAB_PAYLOAD,
   * else volume when DOCKER_HOST is another machine). See harness/lab/payload.ts.
   */
  payload?: PayloadMode | 'auto';
}

/** How this lab's containers got the in-lab code. */
export interface LabPayload {
  mode: PayloadMode;
  /** volume mode: sha256 of the payload archive */
  hash?: string;
  /** volume mode: the Docker volume mounted at /opt/egresslab */
  volume?: string;
}

/** Where a command runs: a container, optionally inside a pod's network namespace. */
export interface Place {
  container: string;
  netns?: string;
  /** Human name for messages: "node-1", "default/client-1". */
  label: string;
}

/** The Docker container name of a lab container (`egl-<lab>-<key>`). */
export function containerName(labId: string, key: string): string {
  return `egl-${labId}-${key}`;
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
export class Lab implements AsyncDisposable {
  readonly plan: LabPlan;
  private readonly responders = new Map<string, Promise<void>>();
  /** In-lab helpers (harness/inlab/helper.ts), one per container, opened on first use. */
  private readonly helpers = new Map<string, Promise<HelperChannel | undefined>>();
  /** Containers this process paused: their (frozen) helper is not used until unpaused. */
  private readonly pausedByUs = new Set<string>();
  private disposed = false;
  /** Fault injection on this lab's nodes. */
  readonly faults: Faults;
  /** How the containers got the in-lab code (bind mount or payload volume). */
  payload: LabPayload = { mode: 'bind' };

  private constructor(
    readonly id: string,
    readonly topology: Topology,
    readonly image: string,
  ) {
    this.plan = planLab(topology);
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
      typeof source === 'string'
        ? loadManifests(source)
        : (Array.isArray(source) ? source : [source]).map((object, i) => ({ source: `object ${i}`, object }));
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
    assertBuilt();
    // Bundling the payload is host work: it overlaps the engine round trips below.
    const payload = payloadChoice.mode === 'volume' ? buildPayload() : undefined;
    payload?.catch(() => {});
    await assertEngine();
    const existing = await docker().listContainers({ all: true, filters: { label: [`${LABEL.lab}=${id}`] } });
    if (existing.length > 0) throw new LabError(`lab ${id} already exists (${existing.length} containers): pick another --lab, or "egresslab down --lab ${id}"`);
    const image = await ensureImage(progress);
    const lab = new Lab(id, options.topology, image);
    const abortCheck = () => {
      if (options.signal?.aborted) throw new LabError(`lab ${id}: set-up interrupted`);
    };
    try {
      abortCheck();
      await lab.startContainers(options.persistent ?? false, progress, options.signal, payloadChoice, payload);
      abortCheck();
      // The cluster's first half (files, controller boot) needs no network: it overlaps the wiring.
      const prepared = lab.topology.cluster ? prepareCluster(lab) : undefined;
      prepared?.catch(() => {});
      await lab.wire();
      abortCheck();
      await lab.waitResponders();
      abortCheck();
      if (lab.topology.cluster) await startCluster(lab, progress, prepared);
      return lab;
    } catch (error) {
      await removeLabObjects(id).catch(() => {});
      throw error;
    }
  }

  /** Reattaches to a running lab (another process brought it up). Without an id, the only lab up. */
  static async attach(id?: string): Promise<Lab> {
    const filters = { label: [id ? `${LABEL.lab}=${id}` : LABEL.lab, `${LABEL.role}=router`] };
    const routers = await docker().listContainers({ all: true, filters });
    if (routers.length === 0) throw new LabError(id ? `no lab named ${id} is up ("egresslab status" lists labs)` : 'no lab is up: start one with "egresslab up"');
    if (routers.length > 1) {
      const ids = routers.map((r) => r.Labels[LABEL.lab]).join(', ');
      throw new LabError(`several labs are up (${ids}): say which one with --lab`);
    }
    const labels = routers[0]!.Labels;
    const topology = parseTopology(JSON.parse(labels[LABEL.topology] ?? '{}'), `lab ${labels[LABEL.lab]} topology label`);
    const lab = new Lab(labels[LABEL.lab]!, topology, routers[0]!.Image);
    const payload = /^volume:([0-9a-f]+)$/.exec(labels[LABEL.payload] ?? '');
    if (payload) lab.payload = { mode: 'volume', hash: payload[1], volume: payloadVolumeName(lab.id) };
    return lab;
  }

  private labels(key: string, role: string, persistent: boolean): Record<string, string> {
    return {
      [LABEL.lab]: this.id,
      [LABEL.role]: role,
      [LABEL.key]: key,
      [LABEL.owner]: `${hostname()}:${process.pid}`,
      [LABEL.persistent]: String(persistent),
      [LABEL.created]: new Date().toISOString(),
    };
  }

  /**
   * The in-lab code's mount: the checkout (bind), or the lab's payload volume — created here, and
   * filled through the Docker API by `filled` (containers that run in-lab code at start wait for it).
   */
  private async payloadMount(
    persistent: boolean,
    progress: Progress,
    choice: PayloadModeChoice,
    build?: Promise<Payload>,
  ): Promise<{ mount: LabMount; filled: Promise<void> }> {
    if (choice.mode === 'bind') {
      this.payload = { mode: 'bind' };
      return { mount: { type: 'bind', source: projectRoot(), target: IN_LAB_ROOT }, filled: Promise.resolve() };
    }
    const t0 = Date.now();
    const p = await (build ?? buildPayload());
    const volume = payloadVolumeName(this.id);
    const labels = { ...this.labels('payload', 'payload', persistent), [LABEL.payload]: `volume:${p.hash.slice(0, 12)}` };
    await createPayloadVolume(volume, labels);
    this.payload = { mode: 'volume', hash: p.hash, volume };
    const filled = fillPayloadVolume({ volume, loaderName: containerName(this.id, 'payload-loader'), image: this.image, labels, payload: p }).then(() =>
      progress(
        `payload ${p.hash.slice(0, 12)} (${(p.tar.length / 1024).toFixed(0)} kB, ${p.cached ? `cached, checked in ${p.checkMs.toFixed(0)} ms` : `bundled in ${p.bundleMs.toFixed(0)} ms`}) ` +
          `in volume ${volume} after ${Date.now() - t0} ms (${choice.reason})`,
      ),
    );
    filled.catch(() => {});
    return { mount: { type: 'volume', source: volume, target: IN_LAB_ROOT }, filled };
  }

  private async startContainers(persistent: boolean, progress: Progress, signal: AbortSignal | undefined, choice: PayloadModeChoice, build?: Promise<Payload>): Promise<void> {
    const started = Date.now();
    const { mount, filled } = await this.payloadMount(persistent, progress, choice, build);
    if (signal?.aborted) return;
    const payloadLabel = this.payload.mode === 'volume' ? `volume:${this.payload.hash!.slice(0, 12)}` : 'bind';
    const specs: (LabContainerSpec & { runsCode: boolean })[] = this.plan.containers.map((c) => {
      const isEndpoint = c.role === 'internet' || c.role === 'vpc';
      const labels: Record<string, string> = { ...this.labels(c.key, c.role, persistent), [LABEL.payload]: payloadLabel };
      if (c.role === 'router') labels[LABEL.topology] = JSON.stringify(this.topology);
      return {
        name: containerName(this.id, c.key),
        image: this.image,
        hostname: c.hostname,
        labels,
        mounts: [mount],
        command: isEndpoint
          ? ['node', inLabProgram('harness/inlab/responder.js'), '--name', c.key, '--redirect-all', '--ready', `${RUN_DIR}/responder.ready`]
          : ['sleep', 'infinity'],
        runsCode: isEndpoint,
      };
    });
    specs.push({
      name: containerName(this.id, WIRER),
      image: this.image,
      hostname: WIRER,
      labels: this.labels(WIRER, 'wirer', persistent),
      mounts: [],
      command: ['sleep', 'infinity'],
      pidHost: true,
      runsCode: false,
    });
    progress(`starting ${specs.length} containers for lab ${this.id}`);
    // Only the endpoints run in-lab code from the start: the others start while the payload is put in place.
    const results = await Promise.allSettled([filled, ...specs.map(async (s) => (s.runsCode ? filled.then(() => startLabContainer(s)) : startLabContainer(s)))]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw new LabError(`lab ${this.id}: a container failed to start: ${(failed.reason as Error).message}`, { cause: failed.reason });
    if (signal?.aborted) return;
    progress(`containers up in ${Date.now() - started} ms`);
  }

  /** The Docker container of a node or other container key. */
  container(key: string): Docker.Container {
    return docker().getContainer(containerName(this.id, key));
  }

  /** The host pid of a container's init process (for nsenter). */
  async pidOf(key: string): Promise<number> {
    const info = await this.container(key).inspect();
    if (!info.State.Running || info.State.Paused) throw new LabError(`lab ${this.id}: ${key} is not running (${info.State.Status})`);
    return info.State.Pid;
  }

  /** Wires links, pods, addresses and routes. `only` re-wires just those (restarted) nodes. */
  async wire(only?: ReadonlySet<string>): Promise<void> {
    const keys = this.plan.containers.map((c) => c.key).filter((k) => !only || only.has(k) || k === 'switch');
    const pids: Record<string, number> = {};
    await Promise.all(keys.map(async (k) => (pids[k] = await this.pidOf(k))));
    const script = renderWiringScript(this.plan, pids, this.id, only);
    const guard = renderHostGuardScript();
    const full = `${script}\n${guard}\n`;
    const r = await execIn(this.container(WIRER), ['sh', '-c', full], { check: false, where: `${this.id}/wirer` });
    if (r.exitCode === 97 || r.exitCode === 98) throw new LabError(`lab ${this.id}: refusing to run: ${r.stderr.trim()}`);
    if (r.exitCode !== 0) throw new LabError(`lab ${this.id}: wiring failed (exit ${r.exitCode}):\n${r.stderr.trim().split('\n').slice(-10).join('\n')}`);
    if (only) for (const k of only) for (const key of [...this.responders.keys()]) if (key.startsWith(`${k}|`)) this.responders.delete(key);
  }

  /** Endpoint responders start with their containers, in parallel with the wiring; wait until they are ready. */
  private async waitResponders(): Promise<void> {
    const keys = [INTERNET, ...this.topology.vpcEndpoints.map((e) => e.name)];
    await Promise.all(
      keys.map((k) =>
        pollUntil(async () => (await this.exec(k, ['test', '-f', `${RUN_DIR}/responder.ready`], { check: false })).exitCode === 0, {
          what: `the responder in ${k} to be ready`,
          timeoutMs: 15_000,
          intervalMs: 20,
        }),
      ),
    );
  }

  /**
   * The in-lab helper of a container (harness/inlab/helper.ts), started on first use; undefined
   * where none can run (the wirer, a container that is paused, stopped or gone, or
   * EGRESSLAB_HELPER=off): callers then fall back to `docker exec`.
   */
  async helper(key: string): Promise<HelperChannel | undefined> {
    if (key === WIRER || this.pausedByUs.has(key) || this.disposed || process.env.EGRESSLAB_HELPER === 'off') return undefined;
    const existing = this.helpers.get(key);
    if (existing) {
      const ch = await existing;
      if (ch?.alive) return ch;
      if (this.helpers.get(key) === existing) this.helpers.delete(key);
      return this.helper(key);
    }
    const opening = HelperChannel.open(this.container(key), inLabProgram('harness/inlab/helper.js'), `${this.id}/${key}`).catch(() => undefined);
    this.helpers.set(key, opening);
    const ch = await opening;
    if (!ch && this.helpers.get(key) === opening) this.helpers.delete(key);
    return ch;
  }

  /** Faults call this around docker pause/unpause: a frozen helper cannot answer. */
  notePaused(key: string, paused: boolean): void {
    if (paused) this.pausedByUs.add(key);
    else this.pausedByUs.delete(key);
  }

  /** Closes this process's helper channels (the helpers exit; the lab keeps running). */
  closeHelpers(): void {
    for (const p of this.helpers.values()) void p.then((ch) => ch?.close());
    this.helpers.clear();
  }

  /** Runs a command in a lab container (or a pod's netns); throws CommandError on failure unless check=false. */
  async exec(where: string | Place, cmd: string[], options: ExecOptions = {}): Promise<ExecResult> {
    const place = typeof where === 'string' ? this.place(where) : where;
    const ch = await this.helper(place.container);
    if (ch?.alive) return ch.exec(cmd, { where: `${this.id}/${place.label}`, ...options, ...(place.netns ? { netns: place.netns } : {}) });
    const full = place.netns ? ['ip', 'netns', 'exec', place.netns, ...cmd] : cmd;
    return execIn(this.container(place.container), full, { where: `${this.id}/${place.label}`, ...options });
  }

  /** Starts a command at `where` and returns without waiting for it. */
  async execDetached(where: string | Place, cmd: string[]): Promise<void> {
    const place = typeof where === 'string' ? this.place(where) : where;
    const ch = await this.helper(place.container);
    if (ch?.alive) return ch.spawn(cmd, place.netns);
    const full = place.netns ? ['ip', 'netns', 'exec', place.netns, ...cmd] : cmd;
    await execDetached(this.container(place.container), full);
  }

  /** The plan entry of a pod ("ns/name", or "name" in the default namespace). */
  podPlan(key: string): PodPlan {
    const pod = this.plan.pods.find((p) => p.key === key || (!key.includes('/') && p.key === `default/${key}`));
    if (!pod) throw new LabError(`lab ${this.id} has no pod ${key} (pods: ${this.plan.pods.map((p) => p.key).join(', ')})`);
    return pod;
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

  /** Resolves a name to where it runs: a pod (ns/name), a node, an endpoint, router or switch. */
  place(name: string): Place {
    if (this.plan.containers.some((c) => c.key === name) || name === WIRER) return { container: name, label: name };
    if (name.includes('/') || this.plan.pods.some((p) => p.name === name)) {
      const pod = this.podPlan(name);
      return pod.hostNetwork ? { container: pod.node, label: pod.key } : { container: pod.node, netns: pod.netns!, label: pod.key };
    }
    const known = [...this.plan.containers.map((c) => c.key), ...this.plan.pods.map((p) => p.key)];
    throw new LabError(`lab ${this.id} has nothing named ${name} (known: ${known.join(', ')})`);
  }

  /**
   * Who answers a probe to `ip`, or undefined when nothing in the lab owns that address:
   * a pod, a node, a VPC endpoint (its answer ranges, longest prefix) or else the internet.
   */
  responderFor(ip: string): (Place & { port?: number; key: string }) | undefined {
    const pod = this.plan.pods.find((p) => p.ip === ip);
    if (pod) return { container: pod.node, netns: pod.netns!, label: pod.key, key: `${pod.node}|${pod.netns}`, port: RESPONDER_PORT };
    const node = this.topology.nodes.find((n) => n.address === ip);
    if (node) return { container: node.name, label: node.name, key: `${node.name}|`, port: RESPONDER_PORT };
    return endpointFor(this.plan, ip);
  }

  /** Name of the managed responder process serving `target` (pods and nodes only). */
  static responderProcess(target: Place): string {
    return `responder-${target.netns ?? 'host'}`;
  }

  /** Starts a responder in a pod or node on first use (endpoints run theirs from the start). */
  async ensureResponder(target: Place & { key: string }): Promise<void> {
    if (!this.plan.containers.some((c) => c.key === target.container && c.role === 'node')) return;
    let ready = this.responders.get(target.key);
    if (!ready) {
      const tag = target.netns ?? 'host';
      const readyFile = `${RUN_DIR}/responder-${tag}.ready`;
      ready = (async () => {
        // Another process (an earlier CLI call) may have started it already: its ready file holds its pid.
        const running = await this.exec(target.container, ['sh', '-c', `kill -0 $(cat ${readyFile} 2>/dev/null) 2>/dev/null`], { check: false });
        if (running.exitCode === 0) return;
        await this.exec(target.container, ['rm', '-f', readyFile]);
        await startProcess(this, target, `responder-${tag}`, [
          'node', inLabProgram('harness/inlab/responder.js'), '--name', target.label,
          '--log', `${RUN_DIR}/observed-${tag}.jsonl`, '--ready', readyFile,
        ]);
        await pollUntil(async () => (await this.exec(target.container, ['test', '-f', readyFile], { check: false })).exitCode === 0, {
          what: `responder in ${target.label}`,
          timeoutMs: 10_000,
        });
      })();
      this.responders.set(target.key, ready);
      ready.catch(() => this.responders.delete(target.key));
    }
    await ready;
  }

  /** The observation log of the responder that answers for `target`. */
  observedLogOf(target: Place & { key: string }): string {
    const isNode = this.plan.containers.some((c) => c.key === target.container && c.role === 'node');
    return isNode ? `${RUN_DIR}/observed-${target.netns ?? 'host'}.jsonl` : `${RUN_DIR}/observed.jsonl`;
  }

  /** The ready file (it holds the pid) of the responder that answers for `target`. */
  responderReadyFileOf(target: Place & { key: string }): string {
    const isNode = this.plan.containers.some((c) => c.key === target.container && c.role === 'node');
    return isNode ? `${RUN_DIR}/responder-${target.netns ?? 'host'}.ready` : `${RUN_DIR}/responder.ready`;
  }

  /** Removes every container, network and volume labelled with this lab's id. */
  async down(): Promise<void> {
    this.disposed = true;
    this.closeHelpers();
    await closeClusterAccess(this).catch(() => {});
    await removeLabObjects(this.id);
  }

  /** Removes the lab (`await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.disposed) await this.down();
  }

  /** Whether a container exists (for status and tests). */
  async exists(key: string): Promise<boolean> {
    try {
      await this.container(key).inspect();
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }
}

/** Longest-prefix choice between VPC endpoints' answer ranges; else the internet; lab ranges answer nothing. */
export function endpointFor(plan: LabPlan, ip: string): (Place & { key: string }) | undefined {
  const t = plan.topology;
  const inLabRange = [t.nodeSubnet, ...t.vpcEndpoints.map((e) => e.subnet), ...t.nodes.flatMap((n) => (n.podCIDR ? [n.podCIDR] : []))];
  let best: { name: string; bits: number } | undefined;
  for (const e of t.vpcEndpoints) {
    if (e.address === ip) return { container: e.name, label: e.name, key: `${e.name}|` };
    for (const a of e.answers) {
      const bits = Number(a.split('/')[1]);
      if (cidrTextContains(a, ip) && (!best || bits > best.bits)) best = { name: e.name, bits };
    }
  }
  // The router's directly connected ranges come first, as in its routing table.
  if (ip === plan.transit.internet) return { container: INTERNET, label: INTERNET, key: `${INTERNET}|` };
  if (cidrTextContains(t.transitCIDR, ip) || inLabRange.some((r) => cidrTextContains(r, ip))) return undefined;
  if (best) return { container: best.name, label: best.name, key: `${best.name}|` };
  return { container: INTERNET, label: INTERNET, key: `${INTERNET}|` };
}
