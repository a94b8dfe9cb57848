/**
 * The Docker side of a lab: its containers (started with `--network none`, wired by the lab
 * itself), the in-lab helpers, and the runtime operations every feature uses (harness/lab/runtime.ts):
 * place, exec, spawn, helper; container, wire and the pause bookkeeping for faults. `Lab`
 * (harness/lab/lab.ts) extends it with the features a scenario uses: probes, captures, faults, the
 * cluster's API. Nothing here imports a feature, so features can import the runtime types without a loop.
 *
 * Isolation: every container starts with `--network none`; links are created straight into the
 * containers' namespaces by a short-lived helper (the "wirer", host PID namespace + nsenter); no
 * interface, route or firewall rule is ever added to the host's network namespace: the wiring
 * script refuses a container pid in the host's namespace before wiring, and a guard checks the
 * host's links, addresses, routes and rules on every way out (harness/lab/wiring.ts).
 *
 * Everything goes through the Docker API (harness/docker/client.ts), so the engine may be remote
 * (DOCKER_HOST); the in-lab code then reaches the containers as a payload volume instead of a bind
 * mount of the checkout (harness/lab/payload.ts).
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { docker, LABEL, isNotFound } from '../docker/client.js';
import { execIn, execDetached, type ExecOptions, type ExecResult } from '../docker/exec.js';
import type { Progress } from '../docker/image.js';
import { labCpuShares, startLabContainer, type LabContainerSpec, type LabMount } from '../docker/containers.js';
import {
  buildPayload,
  bundledPayloadDir,
  createPayloadVolume,
  fillPayloadVolume,
  payloadBindSource,
  payloadVolumeName,
  type Payload,
  type PayloadDir,
  type PayloadMode,
  type PayloadModeChoice,
} from './payload.js';
import { renderWiringScript } from './wiring.js';
import { checkNodeInImage, chooseLabNode, labNodeLabel, labNodeMode, labNodeMounts, type LabNode, type LabNodeMode } from '../docker/lab-node.js';
import { stateDir } from '../cluster/background-forward.js';
import { planLab, WIRER, INTERNET, PAYLOAD_LOADER, type LabPlan, type PodPlan } from '../topology/plan.js';
import type { Topology } from '../topology/types.js';
import { LabError } from '../util/errors.js';
import { pollUntil } from '../util/poll.js';
import { IN_LAB_ROOT, inLabProgram } from '../util/paths.js';
import { RUN_DIR } from '../inlab/protocol.js';
import { HelperChannel } from './helper-channel.js';
import { NODE_INIT_COMMAND } from './node-init.js';
import { forgetResponders } from './responders.js';
import { containerName, inPlace, type ContainerRuntime, type Place } from './runtime.js';

/** How this lab's containers got the in-lab code. */
export interface LabPayload {
  mode: PayloadMode;
  /** bundle and volume modes: sha256 of the payload archive ("prebuilt": an installed package's dist/payload/) */
  hash?: string;
  /** bundle mode: the host folder mounted at /opt/egresslab */
  dir?: string;
  /** volume mode: the Docker volume mounted at /opt/egresslab */
  volume?: string;
}

/** The unpacked payloads (12 hex digits of their hash) that lab containers, of any lab, mount in bundle mode. */
async function payloadsInUse(): Promise<Set<string>> {
  const cs = await docker().listContainers({ all: true, filters: { label: [LABEL.payload] } });
  return new Set(cs.map((c) => /^bundle:([0-9a-f]{12})$/.exec(c.Labels[LABEL.payload] ?? '')?.[1]).filter((h): h is string => !!h));
}

/**
 * Starts getting the payload ready (host work, overlapping the engine round trips of Lab.up): the
 * archive in volume mode, the unpacked folder in bundle mode, nothing in bind mode.
 */
export function preparePayload(choice: PayloadModeChoice): Promise<Payload | PayloadDir> | undefined {
  if (choice.mode === 'volume') return buildPayload();
  if (choice.mode === 'bundle') return bundledPayloadDir({ inUse: payloadsInUse });
  return undefined;
}

/** A lab's containers and the runtime operations on them (see the file comment). */
export class DockerRuntime implements ContainerRuntime {
  readonly plan: LabPlan;
  /** In-lab helpers (harness/inlab/helper.ts), one per container, opened on first use. */
  private readonly helpers = new Map<string, Promise<HelperChannel | undefined>>();
  /** Containers this process paused: their (frozen) helper is not used until unpaused. */
  private readonly pausedByUs = new Set<string>();
  protected disposed = false;
  /** How the containers got the in-lab code (bind mount or payload volume). */
  payload: LabPayload = { mode: 'bind' };
  /** Which Node.js runs the in-lab programs (set by Lab.up; an attached lab: read from its labels). */
  nodeRuntime: LabNode = { kind: 'image', reason: 'default' };

  protected constructor(
    readonly id: string,
    readonly topology: Topology,
    readonly image: string,
  ) {
    this.plan = planLab(topology);
  }

  /** The Docker labels of a lab object (lab id, role, key, owner, persistence, creation time). */
  protected labels(key: string, role: string, persistent: boolean): Record<string, string> {
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
   * The in-lab code's mount: the checkout or an installed package's bundled payload (bind), or the lab's payload volume — created here, and
   * filled through the Docker API by `filled` (containers that run in-lab code at start wait for it).
   */
  protected async payloadMount(
    persistent: boolean,
    progress: Progress,
    choice: PayloadModeChoice,
    build?: Promise<Payload | PayloadDir>,
  ): Promise<{ mount: LabMount; filled: Promise<void> }> {
    if (choice.mode === 'bind') {
      this.payload = { mode: 'bind' };
      return { mount: { type: 'bind', source: payloadBindSource(), target: IN_LAB_ROOT }, filled: Promise.resolve() };
    }
    const t0 = Date.now();
    if (choice.mode === 'bundle') {
      const b = (await (build ?? preparePayload(choice))) as PayloadDir;
      this.payload = { mode: 'bundle', hash: b.hash, dir: b.dir };
      const p = b.payload;
      progress(
        p
          ? `payload ${b.hash.slice(0, 12)} (${p.cached ? `cached, checked in ${p.checkMs.toFixed(0)} ms` : `bundled in ${p.bundleMs.toFixed(0)} ms`}${b.unpacked ? ', unpacked' : ''}) ` +
              `bind-mounted from ${b.dir} after ${Date.now() - t0} ms (${choice.reason})`
          : `payload: the installed package's ${b.dir} bind-mounted (${choice.reason})`,
      );
      return { mount: { type: 'bind', source: b.dir, target: IN_LAB_ROOT }, filled: Promise.resolve() };
    }
    const p = (await (build ?? preparePayload(choice))) as Payload;
    const volume = payloadVolumeName(this.id);
    const labels = { ...this.labels('payload', 'payload', persistent), [LABEL.payload]: `volume:${p.hash.slice(0, 12)}` };
    await createPayloadVolume(volume, labels);
    this.payload = { mode: 'volume', hash: p.hash, volume };
    const filled = fillPayloadVolume({ volume, loaderName: containerName(this.id, PAYLOAD_LOADER), image: this.image, labels, payload: p }).then(() =>
      progress(
        `payload ${p.hash.slice(0, 12)} (${(p.tar.length / 1024).toFixed(0)} kB, ${p.cached ? `cached, checked in ${p.checkMs.toFixed(0)} ms` : `bundled in ${p.bundleMs.toFixed(0)} ms`}) ` +
          `in volume ${volume} after ${Date.now() - t0} ms (${choice.reason})`,
      ),
    );
    filled.catch(() => {});
    return { mount: { type: 'volume', source: volume, target: IN_LAB_ROOT }, filled };
  }

  /** Which Node.js the lab's containers run (harness/docker/lab-node.ts): the host's when it runs in the image, unless told otherwise. */
  private async chooseNode(nodeChoice: { mode: LabNodeMode; from: string }, payload: PayloadModeChoice, persistent: boolean): Promise<LabNode> {
    if (nodeChoice.mode === 'image') return { kind: 'image', reason: nodeChoice.from };
    const imageId = (await docker().getImage(this.image).inspect()).Id;
    return chooseLabNode({
      ...nodeChoice,
      payload: payload.mode,
      image: this.image,
      imageId,
      cacheFile: join(stateDir(), 'lab-node.json'),
      check: (image, binary) => checkNodeInImage(image, binary, this.labels('node-check', 'check', persistent)),
    });
  }

  /** Starts every container of the plan and the wirer (endpoints once the payload is in place). */
  protected async startContainers(
    persistent: boolean,
    progress: Progress,
    signal: AbortSignal | undefined,
    choice: PayloadModeChoice,
    build?: Promise<Payload | PayloadDir>,
    nodeChoice?: { mode: LabNodeMode; from: string },
  ): Promise<void> {
    const started = Date.now();
    const [{ mount, filled }, labNode] = await Promise.all([
      this.payloadMount(persistent, progress, choice, build),
      this.chooseNode(nodeChoice ?? labNodeMode(undefined), choice, persistent),
    ]);
    this.nodeRuntime = labNode;
    progress(
      labNode.kind === 'host'
        ? `in-lab Node.js: this machine's ${labNode.version} (${labNode.binary}; ${labNode.reason})`
        : `in-lab Node.js: the image's (${labNode.reason})`,
    );
    if (signal?.aborted) return;
    const weight = (key: string): { cpuShares?: number } => {
      const cpuShares = labCpuShares(this.topology, key);
      return cpuShares === undefined ? {} : { cpuShares };
    };
    const payloadLabel = this.payload.mode === 'bind' ? 'bind' : `${this.payload.mode}:${this.payload.hash!.slice(0, 12)}`;
    const specs: (LabContainerSpec & { runsCode: boolean })[] = this.plan.containers.map((c) => {
      const isEndpoint = c.role === 'internet' || c.role === 'vpc';
      const labels: Record<string, string> = { ...this.labels(c.key, c.role, persistent), [LABEL.payload]: payloadLabel, [LABEL.node]: labNodeLabel(labNode) };
      if (c.role === 'router') labels[LABEL.topology] = JSON.stringify(this.topology);
      return {
        name: containerName(this.id, c.key),
        image: this.image,
        hostname: c.hostname,
        labels,
        mounts: [mount, ...labNodeMounts(labNode)],
        command: isEndpoint
          ? ['node', inLabProgram('harness/inlab/responder.js'), '--name', c.key, '--redirect-all', '--ready', `${RUN_DIR}/responder.ready`]
          : c.role === 'node'
            ? [...NODE_INIT_COMMAND]
            : ['sleep', 'infinity'],
        runsCode: isEndpoint,
        ...weight(c.key),
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
      ...weight(WIRER),
    });
    progress(`starting ${specs.length} containers for lab ${this.id}`);
    // Only the endpoints run in-lab code from the start: the others start while the payload is put in place.
    const results = await Promise.allSettled([
      filled,
      ...specs.map(async (s) => (s.runsCode ? filled.then(() => startLabContainer(s)) : startLabContainer(s))),
    ]);
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
    // the isolation guard is part of the script: it checks the namespaces before wiring and the host on every way out
    const script = renderWiringScript(this.plan, pids, this.id, only);
    // on stdin, not as an argument: a 50-node lab's script is longer than the kernel's argument limit
    const r = await execIn(this.container(WIRER), ['sh', '-s'], { stdin: script, check: false, where: `${this.id}/wirer` });
    if (r.exitCode === 97 || r.exitCode === 98) throw new LabError(`lab ${this.id}: refusing to run: ${r.stderr.trim()}`);
    if (r.exitCode !== 0) throw new LabError(`lab ${this.id}: wiring failed (exit ${r.exitCode}):\n${r.stderr.trim().split('\n').slice(-10).join('\n')}`);
    if (only) forgetResponders(this, only);
  }

  /** Endpoint responders start with their containers, in parallel with the wiring; wait until they are ready. */
  protected async waitResponders(): Promise<void> {
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
    return execIn(this.container(place.container), inPlace(place, cmd), { where: `${this.id}/${place.label}`, ...options });
  }

  /** Starts a command at `where` and returns without waiting for it. */
  async spawn(where: string | Place, cmd: string[]): Promise<void> {
    const place = typeof where === 'string' ? this.place(where) : where;
    const ch = await this.helper(place.container);
    if (ch?.alive) return ch.spawn(cmd, place.netns);
    await execDetached(this.container(place.container), inPlace(place, cmd));
  }

  /** Same as spawn (its older name). */
  execDetached(where: string | Place, cmd: string[]): Promise<void> {
    return this.spawn(where, cmd);
  }

  /** The plan entry of a pod ("ns/name", or "name" in the default namespace). */
  podPlan(key: string): PodPlan {
    const pod = this.plan.pods.find((p) => p.key === key || (!key.includes('/') && p.key === `default/${key}`));
    if (!pod) throw new LabError(`lab ${this.id} has no pod ${key} (pods: ${this.plan.pods.map((p) => p.key).join(', ')})`);
    return pod;
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
