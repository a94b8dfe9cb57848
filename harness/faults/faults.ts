/**
 * Fault injection on lab nodes, each undoable:
 *  kill/start      SIGKILL the node's container (a hard crash); start boots it again, re-wires it and
 *                  (cluster labs) starts its agent / the controller again
 *  stop/start      a clean shutdown: SIGTERM to the node's programs, its links down once they have
 *                  exited (harness/lab/node-init.ts); past the grace period, powered off as kill does
 *  pause/unpause   freeze every process (a hung node: links stay up, nothing answers)
 *  partition/heal  cut the node off its L2 segment at the switch (its link stays up): both
 *                  directions, or only what it sends (outbound) or receives (inbound); `except`
 *                  keeps named members reachable (cut off the segment but not the API)
 *  degrade/restore packet loss (nft numgen, both directions) and delay (netem, where the kernel has
 *                  it); burstLoss (every frame dropped for a share of each period) and rateLimit
 *                  (nft limit per direction) are undone by restore too
 *  blackhole/unblackhole  drop every frame one node sends to another (at the switch)
 *  restartProcess  restart one managed process inside a node (responder, agent, controller)
 */
import type Docker from 'dockerode';
import type { ContainerRuntime } from '../lab/runtime.js';
import { SWITCH } from '../topology/plan.js';
import { LabError, ValidationError } from '../util/errors.js';
import { isNotFound } from '../docker/client.js';
import { pollUntil } from '../util/poll.js';
import { restartProcess, startProcess, stopProcess } from '../lab/process.js';
import { restartNodePrograms } from '../cluster/cluster.js';
import { runBootHooks } from '../lab/boot.js';
import { continueContainer, pauseContainer } from '../docker/freeze.js';

const TABLE = 'egresslab_faults';

/** The switch's drop sets of partitions, by direction: a port in `cut_out` loses what the node sends (frames entering the switch there). */
const CUT_SETS: Record<PartitionDirection, string> = { both: 'cut', outbound: 'cut_out', inbound: 'cut_in' };

/** The switch's fault table: partitions, burst loss; loss, rate-limit and black-hole rules are added to its chain. */
const FAULTS_TABLE = `table bridge ${TABLE} {
  set cut { type ifname; }
  set cut_out { type ifname; }
  set cut_in { type ifname; }
  set burst { type ifname; }
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname @cut drop
    oifname @cut drop
    iifname @cut_out drop
    oifname @cut_in drop
    iifname @burst drop
    oifname @burst drop
  }
}
`;

/** The managed process on the switch that toggles burst loss on a port. */
const burstProcess = (port: string) => `burst-loss-${port}`;

/** Loss and delay on a node's link (Faults.degrade). */
export interface Degradation {
  /** Share of packets dropped in each direction, 0-100. */
  lossPercent?: number;
  /** Added one-way delay in each direction (needs sch_netem). */
  delayMs?: number;
}

/** Which way a partition cuts a node off: everything, only what it sends, only what it receives. */
export type PartitionDirection = 'both' | 'outbound' | 'inbound';

/** A partition's exceptions: segment members (nodes, or the router) the node still reaches, both ways. */
export interface PartitionOptions {
  except?: readonly string[];
}

/** Burst loss on a node's link: every frame dropped for `lossPercent` of each `periodMs`. */
export interface BurstLoss {
  lossPercent: number;
  /** length of one on/off cycle (default 1000 ms) */
  periodMs?: number;
}

/** One fault injected on a node, for accounting (harness/testing/liveness-audit.ts). */
export interface InjectedFault {
  node: string;
  kind: string;
  at: number;
}

/** Fault injection on a lab's nodes (lab.faults), each undoable; every fault injected is recorded. */
export class Faults {
  /** Every fault this process injected on this lab, in order (undo steps are not listed). */
  readonly injected: InjectedFault[] = [];

  /** nodes boot() brought up without their programs (start() then only starts the programs) */
  private readonly bootedOnly = new Set<string>();

  constructor(private readonly lab: ContainerRuntime) {}

  /** Records a fault injected by other means (e.g. an agent stopped to move a floating IP). */
  note(node: string, kind: string): void {
    this.injected.push({ node, kind, at: Date.now() });
  }

  private node(name: string): string {
    const node = this.lab.topology.nodes.find((n) => n.name === name);
    if (!node) {
      throw new ValidationError('fault', [
        { path: 'node', value: name, message: `is not a node of lab ${this.lab.id} (nodes: ${this.lab.topology.nodes.map((n) => n.name).join(', ')})` },
      ]);
    }
    return node.name;
  }

  private port(name: string): string {
    return this.lab.plan.switchPorts[this.node(name)]!;
  }

  /**
   * SIGKILL the node's container: every process dies at once, its links vanish. A dead node sends
   * nothing, so the switch drops its port first: the kernel tears the namespace down some time
   * after its processes died, and meanwhile it went on forwarding, then answered a server's segment
   * for a floating IP with a RST of its own once its nft tables were gone (seen in a full run: a
   * synced connection reset by the dying holder 200 ms after its agent's last heartbeat). With its
   * frames dropped the namespace would linger (its orphaned TCP sockets, which hold it, retransmit
   * into the void for minutes), so once the processes are dead its links are deleted from the peer
   * side. Undone by start() (or boot()).
   */
  async kill(name: string): Promise<void> {
    const n = this.node(name);
    this.note(n, 'kill');
    this.bootedOnly.delete(n);
    await this.powerOff(n);
    await this.unplug(n);
  }

  /**
   * The power-off of kill() (and of a stop past its grace): the switch drops the node's port, then
   * SIGKILL. `endedIsFine`: a container that has ended meanwhile is not an error.
   */
  private async powerOff(n: string, endedIsFine = false): Promise<void> {
    await this.ensureTable();
    await this.dropBothWays(this.port(n), '', 'dead');
    const c = this.lab.container(n);
    await c.kill({ signal: 'SIGKILL' }).catch(async (e: unknown) => {
      if (!endedIsFine || (await running(c))) throw e;
    });
  }

  /** Deletes the ended node's links from the peer side (a namespace held by orphaned sockets would linger) and waits until they are gone. */
  private async unplug(n: string): Promise<void> {
    for (const p of this.peersOf(n)) await this.lab.exec(p.container, ['ip', 'link', 'del', 'dev', p.ifname], { check: false }).catch(() => undefined);
    await this.untilOffTheWire(n);
  }

  /** The far ends of node `n`'s links (the switch's port, ...). */
  private peersOf(n: string): { container: string; ifname: string }[] {
    return this.lab.plan.veths.flatMap((v) => (v.a.container === n ? [v.b] : v.b.container === n ? [v.a] : []));
  }

  /**
   * Clean shutdown of the node, as a machine shuts down: its init (harness/lab/node-init.ts) gets
   * SIGTERM, sends it to the node's programs and waits for them to exit, then sets every link down
   * (power-off: the kernel keeps its conntrack table and rules until then) and ends the container.
   * A node with a program still running `graceSeconds` after the SIGTERM (default 10, as `docker
   * stop`) is powered off as kill() does it (a hung shutdown is cut short). Its links are then
   * deleted from the peer side, as kill()'s are: with them down, sockets the programs left closing
   * would hold the namespace. Returns which of the two it was. Undone by start() (or boot()).
   */
  async stop(name: string, graceSeconds = DEFAULT_STOP_GRACE_S): Promise<'clean' | 'powered-off'> {
    const n = this.node(name);
    this.note(n, 'stop');
    this.bootedOnly.delete(n);
    const c = this.lab.container(n);
    await c.kill({ signal: 'SIGTERM' }).catch(async (e: unknown) => {
      if (await running(c)) throw e; // not running: stopped already
    });
    const how = (await exitedWithin(c, graceSeconds * 1000)) ? 'clean' : 'powered-off';
    if (how === 'powered-off') await this.powerOff(n, true);
    await this.unplug(n);
    return how;
  }

  /**
   * Returns once every link of node `n` is gone from its peer (the switch's port, ...). The engine
   * reports a container stopped (or a kill sent) before the kernel has torn its network namespace
   * down, and until then the node still answers on the segment: seen once in six full runs, a ping
   * answered right after `stop` returned.
   */
  private async untilOffTheWire(n: string): Promise<void> {
    const peers = this.peersOf(n);
    const present = async (p: { container: string; ifname: string }): Promise<boolean> => {
      try {
        return (await this.lab.exec(p.container, ['ip', 'link', 'show', 'dev', p.ifname], { check: false })).exitCode === 0;
      } catch {
        return false; // the peer's container is not running either: nothing there answers
      }
    };
    await pollUntil(async () => !(await Promise.all(peers.map(present))).some(Boolean), {
      what: `${n}'s links to leave their peers`,
      timeoutMs: 10_000,
      intervalMs: 50,
    });
  }

  /**
   * Boots a killed or stopped node and re-wires its links, pods, addresses and routes. In a lab that
   * runs a cluster, the node's agent (and the controller on the control-plane node), which died with
   * the container, is started again; this returns once the agent runs.
   */
  async start(name: string): Promise<void> {
    const n = this.node(name);
    if (!this.bootedOnly.delete(n)) await this.bootNode(n);
    await restartNodePrograms(this.lab, n);
  }

  /**
   * The first half of start(): boots a killed or stopped node, runs its boot hooks
   * (harness/lab/boot.ts) and re-wires it, but starts none of its programs: the node as its init leaves it before
   * the agent runs. start() later starts the programs. For scenarios about what a node does
   * between its boot and its agent's start.
   */
  async boot(name: string): Promise<void> {
    const n = this.node(name);
    await this.bootNode(n);
    this.bootedOnly.add(n);
  }

  private async bootNode(n: string): Promise<void> {
    const info = await this.lab.container(n).inspect();
    if (info.State.Paused) throw new LabError(`${n} is paused: unpause it instead of starting it`);
    // the node's init runs its boot hooks before anything is wired, as a real node's init runs
    // before its kubelet and CNI wire the pods: a pod wired first could send (an RST to a far end
    // still talking to it, a new connection) before the hooks fence it (chaos seed 1419845312).
    // Only a node that really boots runs them: start() on a running node ("undo whatever was
    // done") must not put a boot guard on a node whose agent runs and will not lift it.
    if (!info.State.Running) {
      await this.lab.container(n).start();
      await runBootHooks(this.lab, n);
    }
    await this.lab.wire(new Set([n]));
    // back on the segment (kill cut its port)
    await this.deleteRules(new RegExp(`comment "dead:${this.port(n)}" # handle (\\d+)`, 'g'));
  }

  /** Freezes every process of the node (docker pause, after stopping them: harness/docker/freeze.ts): a hung node. */
  async pause(name: string): Promise<void> {
    this.note(this.node(name), 'pause');
    const n = this.node(name);
    this.lab.notePaused(n, true);
    try {
      await pauseContainer(this.lab.container(n), { where: `${this.lab.id}/${n}` });
    } catch (e) {
      // paused already (a second pause), or not: the engine says which
      this.lab.notePaused(
        n,
        await this.lab
          .container(n)
          .inspect()
          .then(
            (i) => i.State.Paused,
            () => false,
          ),
      );
      throw e;
    }
  }

  /** Undoes pause. */
  async unpause(name: string): Promise<void> {
    const n = this.node(name);
    await this.lab.container(n).unpause();
    await continueContainer(this.lab.container(n));
    this.lab.notePaused(n, false);
  }

  /** The switch's fault table exists (the switch is never faulted, so once seen it stays). */
  private tableReady = false;

  private async ensureTable(): Promise<void> {
    if (this.tableReady) return;
    const exists = await this.lab.exec(SWITCH, ['nft', 'list', 'table', 'bridge', TABLE], { check: false });
    if (exists.exitCode !== 0) await this.lab.exec(SWITCH, ['nft', '-f', '-'], { stdin: FAULTS_TABLE });
    this.tableReady = true;
  }

  /** Creates the switch's fault table now, so that the first partition or loss costs one command less. */
  prepare(): Promise<void> {
    return this.ensureTable();
  }

  /**
   * Cuts the node off the L2 segment: the switch drops everything to and from its port (`both`),
   * only what the node sends (`outbound`) or only what it receives (`inbound`).
   */
  async partition(name: string, direction: PartitionDirection = 'both', o: PartitionOptions = {}): Promise<void> {
    const node = this.node(name);
    const except = o.except ?? [];
    const ports = this.members(except, 'except');
    if (except.includes(node)) throw new ValidationError('fault', [{ path: 'except', value: node, message: 'is the partitioned node itself' }]);
    this.note(node, (direction === 'both' ? 'partition' : `partition-${direction}`) + (except.length ? '-except' : ''));
    await this.ensureTable();
    const port = this.port(node);
    if (!ports.length) {
      await this.lab.exec(SWITCH, ['nft', 'add', 'element', 'bridge', TABLE, CUT_SETS[direction], `{ ${port} }`]);
      return;
    }
    // with exceptions: drop rules of their own (drops add up: a fault on an excepted member, or on
    // the pair, still applies), one transaction
    const others = `{ ${ports.map((p) => `"${p}"`).join(', ')} }`;
    const rules = [
      ...(direction !== 'inbound' ? [`add rule bridge ${TABLE} forward iifname "${port}" oifname != ${others} drop comment "cut:${port}"`] : []),
      ...(direction !== 'outbound' ? [`add rule bridge ${TABLE} forward oifname "${port}" iifname != ${others} drop comment "cut:${port}"`] : []),
    ];
    await this.lab.exec(SWITCH, ['nft', '-f', '-'], { stdin: [...rules, ''].join('\n') });
  }

  /** Undoes partition (whichever direction, with its exceptions). */
  async heal(name: string): Promise<void> {
    await this.ensureTable();
    const port = this.port(name);
    for (const set of Object.values(CUT_SETS)) await this.lab.exec(SWITCH, ['nft', 'delete', 'element', 'bridge', TABLE, set, `{ ${port} }`], { check: false });
    await this.deleteRules(new RegExp(`comment "cut:${port}" # handle (\\d+)`, 'g'));
  }

  /** The switch ports of segment members (nodes or the router), every unknown name refused at once. */
  private members(names: readonly string[], field: string): string[] {
    const ports = this.lab.plan.switchPorts;
    const unknown = names.filter((n) => !ports[n]);
    if (unknown.length) {
      throw new ValidationError(
        'fault',
        unknown.map((n) => ({ path: field, value: n, message: `is not on lab ${this.lab.id}'s segment (members: ${Object.keys(ports).join(', ')})` })),
      );
    }
    return names.map((n) => ports[n]!);
  }

  /**
   * Burst loss on the node's link, both directions: every frame dropped for lossPercent% of each
   * period (a process on the switch adds and removes the port from a drop set). Undone by restore.
   */
  async burstLoss(name: string, b: BurstLoss): Promise<void> {
    const periodMs = b.periodMs ?? 1000;
    const issues = [];
    if (!(Number.isInteger(b.lossPercent) && b.lossPercent >= 1 && b.lossPercent <= 100))
      issues.push({ path: 'lossPercent', value: b.lossPercent, message: 'must be a whole number 1-100' });
    if (!(Number.isInteger(periodMs) && periodMs >= 100 && periodMs <= 60_000))
      issues.push({ path: 'periodMs', value: periodMs, message: 'must be a whole number 100-60000' });
    if (issues.length) throw new ValidationError('burst loss', issues);
    this.note(this.node(name), 'burst-loss');
    const port = this.port(name);
    await this.restore(name);
    await this.ensureTable();
    const add = `nft add element bridge ${TABLE} burst { ${port} }`;
    if (b.lossPercent >= 100) {
      await this.lab.exec(SWITCH, ['sh', '-c', add]);
      return;
    }
    const on = ((periodMs * b.lossPercent) / 100 / 1000).toFixed(3);
    const off = ((periodMs * (100 - b.lossPercent)) / 100 / 1000).toFixed(3);
    const del = `nft delete element bridge ${TABLE} burst { ${port} }`;
    await startProcess(this.lab, { container: SWITCH, label: SWITCH }, burstProcess(port), [
      'sh',
      '-c',
      `while :; do ${add}; sleep ${on}; ${del}; sleep ${off}; done`,
    ]);
  }

  /** Limits what the node's link carries to `kbitPerSecond` in each direction (nft limit at the switch; the excess is dropped). Undone by restore. */
  async rateLimit(name: string, kbitPerSecond: number): Promise<void> {
    if (!(Number.isInteger(kbitPerSecond) && kbitPerSecond >= 1 && kbitPerSecond <= 10_000_000)) {
      throw new ValidationError('rate limit', [{ path: 'kbitPerSecond', value: kbitPerSecond, message: 'must be a whole number 1-10000000' }]);
    }
    this.note(this.node(name), 'rate-limit');
    const port = this.port(name);
    await this.restore(name);
    await this.ensureTable();
    const bytes = Math.max(1, Math.round((kbitPerSecond * 1000) / 8));
    // a burst of at least two full frames: a limit below one frame per second would pass nothing at all
    const burst = Math.max(3000, Math.round(bytes / 10));
    const limit = `limit rate over ${bytes} bytes/second burst ${burst} bytes`;
    await this.dropBothWays(port, `${limit} `, 'rate');
  }

  /** Drops every frame node `from` sends to node `to` at the switch (the other way is untouched). */
  async blackhole(from: string, to: string): Promise<void> {
    this.note(this.node(from), 'blackhole');
    const [a, b] = [this.port(from), this.port(to)];
    await this.ensureTable();
    await this.lab.exec(SWITCH, ['nft', 'add', 'rule', 'bridge', TABLE, 'forward', 'iifname', a, 'oifname', b, 'drop', 'comment', `"bh:${a}:${b}"`]);
  }

  /** Undoes blackhole. */
  async unblackhole(from: string, to: string): Promise<void> {
    const [a, b] = [this.port(from), this.port(to)];
    await this.deleteRules(new RegExp(`comment "bh:${a}:${b}" # handle (\\d+)`, 'g'));
  }

  /**
   * One nft transaction at the switch: frames from and to switch port `port` that match `match`
   * (empty: all; otherwise ending with a space) are dropped, each rule commented `<tag>:<port>`.
   */
  private async dropBothWays(port: string, match: string, tag: string): Promise<void> {
    await this.lab.exec(SWITCH, ['nft', '-f', '-'], {
      stdin: [
        `add rule bridge ${TABLE} forward iifname "${port}" ${match}drop comment "${tag}:${port}"`,
        `add rule bridge ${TABLE} forward oifname "${port}" ${match}drop comment "${tag}:${port}"`,
        '',
      ].join('\n'),
    });
  }

  private async deleteRules(re: RegExp): Promise<void> {
    const listed = await this.lab.exec(SWITCH, ['nft', '-a', 'list', 'chain', 'bridge', TABLE, 'forward'], { check: false });
    if (listed.exitCode !== 0) return;
    const handles = [...listed.stdout.matchAll(re)].map((m) => m[1]!);
    for (const h of handles) await this.lab.exec(SWITCH, ['nft', 'delete', 'rule', 'bridge', TABLE, 'forward', 'handle', h]);
  }

  /** Whether the node is cut off the segment (in either direction). */
  async partitioned(name: string): Promise<boolean> {
    const rules = await this.lab.exec(SWITCH, ['nft', 'list', 'chain', 'bridge', TABLE, 'forward'], { check: false });
    if (rules.exitCode === 0 && rules.stdout.includes(`comment "cut:${this.port(name)}"`)) return true;
    for (const set of Object.values(CUT_SETS)) {
      const r = await this.lab.exec(SWITCH, ['nft', 'list', 'set', 'bridge', TABLE, set], { check: false });
      if (r.exitCode === 0 && new RegExp(`"${this.port(name)}"|\\b${this.port(name)}\\b`).test(r.stdout.split('elements')[1] ?? '')) return true;
    }
    return false;
  }

  /** Loss and/or delay on the node's link, both directions. Replaces a previous degradation. */
  async degrade(name: string, d: Degradation): Promise<void> {
    this.note(this.node(name), 'degrade');
    const issues = [];
    if (d.lossPercent !== undefined && !(d.lossPercent >= 0 && d.lossPercent <= 100))
      issues.push({ path: 'lossPercent', value: d.lossPercent, message: 'must be 0-100' });
    if (d.delayMs !== undefined && !(d.delayMs >= 0 && d.delayMs <= 60_000)) issues.push({ path: 'delayMs', value: d.delayMs, message: 'must be 0-60000' });
    if (issues.length) throw new ValidationError('degrade', issues);
    const n = this.node(name);
    const port = this.port(n);
    await this.restore(n);
    if (d.delayMs) {
      for (const [where, dev] of [
        [SWITCH, port],
        [n, 'eth0'],
      ] as const) {
        const r = await this.lab.exec(where, ['tc', 'qdisc', 'replace', 'dev', dev, 'root', 'netem', 'delay', `${d.delayMs}ms`], { check: false });
        if (r.exitCode !== 0) {
          await this.restore(n);
          if (/unknown|not supported|No such file/i.test(r.stderr)) {
            throw new LabError(
              `delay faults need the kernel's sch_netem module, which this kernel lacks (${r.stderr.trim()}); loss faults (lossPercent) work without it`,
            );
          }
          throw new LabError(`tc netem on ${where}/${dev} failed: ${r.stderr.trim()}`);
        }
      }
    }
    if (d.lossPercent) {
      await this.ensureTable();
      const pct = Math.round(d.lossPercent);
      const match = pct >= 100 ? '' : `numgen random mod 100 < ${pct} `;
      await this.dropBothWays(port, match, 'loss');
    }
  }

  /** Removes loss (random and burst), rate limits and delay from the node's link. */
  async restore(name: string): Promise<void> {
    const n = this.node(name);
    const port = this.port(n);
    await stopProcess(this.lab, SWITCH, burstProcess(port), 'KILL');
    await this.lab.exec(SWITCH, ['nft', 'delete', 'element', 'bridge', TABLE, 'burst', `{ ${port} }`], { check: false });
    await this.lab.exec(SWITCH, ['tc', 'qdisc', 'del', 'dev', port, 'root'], { check: false });
    // a node that is down has no eth0 to clean (its qdisc went with it)
    await this.lab.exec(n, ['tc', 'qdisc', 'del', 'dev', 'eth0', 'root'], { check: false }).catch(() => undefined);
    await this.deleteRules(new RegExp(`comment "(?:loss|rate):${port}" # handle (\\d+)`, 'g'));
  }

  /** Restarts a managed process (started with startProcess) inside a node. */
  async restartProcess(name: string, processName: string): Promise<void> {
    this.note(this.node(name), 'restart-process');
    await restartProcess(this.lab, this.node(name), processName);
  }

  /** Stops a managed process (e.g. to fail an agent without failing its node). */
  async stopProcess(name: string, processName: string, signal: 'TERM' | 'KILL' = 'TERM'): Promise<void> {
    this.note(this.node(name), 'stop-process');
    await stopProcess(this.lab, this.node(name), processName, signal);
  }
}

/** The name of a node fault that can be injected and undone (see NODE_FAULTS). */
export type NodeFaultName = 'kill' | 'stop' | 'pause' | 'partition';

/** A node fault as data: its name, a title for test names, how to inject it and how to undo it. */
export interface NodeFault {
  name: NodeFaultName;
  /** what it does to a node, in words ("SIGKILL", "clean stop", ...) */
  title: string;
  /** breaks `node` */
  inject(faults: Faults, node: string): Promise<void>;
  /** back to a running, connected node (a killed or stopped node boots again, its agent included) */
  undo(faults: Faults, node: string): Promise<void>;
}

/**
 * Every node fault with its undo, written once: scenarios iterate over them (`describe.each`) and
 * look one up by name. Stop gives the node the default grace (DEFAULT_STOP_GRACE_S).
 */
export const NODE_FAULTS: Readonly<Record<NodeFaultName, NodeFault>> = Object.freeze({
  kill: { name: 'kill', title: 'SIGKILL', inject: (f, n) => f.kill(n), undo: (f, n) => f.start(n) },
  stop: {
    name: 'stop',
    title: 'clean stop',
    inject: async (f, n) => {
      await f.stop(n);
    },
    undo: (f, n) => f.start(n),
  },
  pause: { name: 'pause', title: 'hung (paused)', inject: (f, n) => f.pause(n), undo: (f, n) => f.unpause(n) },
  partition: { name: 'partition', title: 'cut off the segment (partition)', inject: (f, n) => f.partition(n), undo: (f, n) => f.heal(n) },
});

/** How long a clean stop waits for the node's programs to exit before it powers the node off (s): `docker stop`'s default. */
export const DEFAULT_STOP_GRACE_S = 10;

/** Whether the container runs (false once the engine no longer knows it). */
async function running(c: Docker.Container): Promise<boolean> {
  try {
    return (await c.inspect()).State.Running;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/**
 * Whether the container has ended within `ms` (the engine's wait, against a timer). A wait that
 * fails is judged by the container's state: ended, or the wait's error.
 */
async function exitedWithin(c: Docker.Container, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const waited = c.wait({ condition: 'not-running' }).then(
    () => true,
    async (e: unknown) => {
      if (await running(c)) throw e;
      return true;
    },
  );
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([waited, timedOut]);
  } finally {
    clearTimeout(timer);
    waited.catch(() => undefined);
  }
}
