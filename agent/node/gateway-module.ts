/**
 * Egress NAT gateway datapath of this node (issue 6; docs/gateway.md).
 *
 * Follows, through the API (informers: list + watch, reconnect, relist on 410), the served
 * AnthosNetworkGateway (kube-system/default: status.floatingIPs and status.nodes), EgressNATPolicies
 * v1alpha1, pods, namespaces, nodes and NetworkPolicies; on any change (debounced 10 ms) it
 * recomputes the plan (agent/gateway/model.ts, pure) and applies it:
 *
 *   1. routing tables + fwmark rules a new mark may point at (ip -batch; usually nothing: one table
 *      per other node exists all the time)
 *   2. ONE nft transaction: NetworkPolicy, marks, fail-closed drops, SNAT, guard, ARP fence
 *   3. floating IPs on the uplink (add/del) + gratuitous ARP (repeated on a schedule)
 *   4. rules/tables nothing points at any more; conntrack entries of flows whose treatment changed
 *
 * With conntrack sync (agent config `gatewayConntrackSync`, default on; agent/gateway/
 * conntrack-sync.ts) a conntrackd per node replicates the holders' SNAT bindings, and a node about
 * to take a floating IP commits them into its kernel BEFORE step 2, so established connections
 * keep their binding (same floating IP and port) on the new holder.
 *
 * It is started BEFORE the masquerade module (a matched pod is never masqueraded while the agent
 * starts). A clean stop leaves the datapath as programmed, as a crash does (an agent restart must
 * not drop or leak matched traffic; the ARP fence stops this node answering for its floating IPs
 * ARP_ALIVE_TIMEOUT_MS after the last refresh, so a failover meanwhile has one owner); with
 * removeRulesOnStop it leaves a fail-closed table (no floating IP, every policy dropping) rather than
 * nothing: a node going away must not forward matched traffic with a pod IP.
 */
import { sha16 } from '../hash.js';
import { R, type Informer } from '../../lib/kube/client.js';
import type { KubeObject } from '../../lib/kube/types.js';
import {
  ARP_ALIVE_REFRESH_MS,
  ARP_ALIVE_TIMEOUT_MS,
  ARP_FENCE_MARGIN_MS,
  DAD_PROBE_MS,
  DAD_REPORT_AFTER_MS,
  DAD_RETRY_MS,
  GARP_SCHEDULE_MS,
  GW_TABLE,
  STALE_AFTER_MS,
} from '../gateway/constants.js';
import { Heartbeat } from '../gateway/heartbeat.js';
import {
  computeGatewayPlan,
  gatewayFromObject,
  namespaceFromObject,
  networkPolicyFromObject,
  nodeFromObject,
  podFromObject,
  policyFromObject,
  samePlanInput,
  type GatewayPlan,
  type ModelInput,
  type PlanInputKind,
  type NodeInfo,
} from '../gateway/model.js';
import {
  addressOps,
  changedPairs,
  leavingPairs,
  transitionPlan,
  type Treatments,
  treatmentsAfter,
  treatmentsAfterFailure,
  conntrackFlushArgs,
  bindingDeleteArgs,
  forwardedSnats,
  staleForwardedBindings,
  misboundBindings,
  type MisboundBinding,
  type StaleForwardedBinding,
  parseIpAddrs,
  parseIpRules,
  parseRouteTables,
  renderAliveRefresh,
  renderBootFence,
  renderGateway,
  renderStrayReplyFence,
  renderChangeoverWindow,
  renderTakeoverWindow,
  renderTakeoverWindowEnd,
  routingOps,
  type RuleSpec,
} from '../gateway/render.js';
import { posix } from 'node:path';
import { ExecHost } from '../host/exec-host.js';
import type { Host } from '../host/host.js';
import {
  ConntrackStartAbandoned,
  ConntrackSync,
  stopLeftoverConntrackd,
  CTSYNC_BULK_MS,
  CTSYNC_TABLE,
  FLOATING_HISTORY_FILE,
  FloatingIPHistory,
  floatingHistoryText,
  keptBindingsAt,
  mergeKept,
  parseFloatingHistory,
  renderCtSyncTable,
  strayEntryPurgeArgs,
  type ConntrackSyncOptions,
  type KeptBindings,
} from '../gateway/conntrack-sync.js';
import { errorMessage, type NodeModule, type NodeModuleContext } from './module.js';
import { settleWithin } from '../../lib/time/settle.js';
import { confirmCutOff, tcpAnswers } from './cut-off.js';
import { GATEWAY_NAME, GATEWAY_NAMESPACE } from '../../lib/kube/well-known.js';
import { realClock, type Clock } from '../../lib/time/clock.js';

/** The forward fence's file in the node's boot-hook directory (AgentConfig.bootHookDir). */
export const BOOT_FENCE_HOOK = '50-gateway-forward-fence.sh';

export interface GatewayModuleOptions {
  /** the node's kernel (default: the real one); an injected host turns conntrack sync off unless `conntrackSync` asks for it */
  host?: Host;
  debounceMs?: number;
  /** full re-apply (repairs drift) every resyncMs while this node holds a floating IP (default 10 s) */
  resyncMs?: number;
  /** ... and every idleResyncMs while it holds none (default 90 s, as Calico felix refreshes its rules) */
  idleResyncMs?: number;
  /** how long start() waits for the first list of every resource */
  startupSyncTimeoutMs?: number;
  /** liveness heartbeats (default on); `false` disables them (unit tests) */
  heartbeat?: boolean | { port?: number; intervalMs?: number; misses?: number; isolationMs?: number };
  /** source nodes drop a policy's traffic as soon as its holder misses heartbeats (default false) */
  failClosedOnSuspect?: boolean;
  /** override the uplink detection */
  uplink?: string;
  garpScheduleMs?: readonly number[];
  /** address conflict probe before answering for a floating IP (DAD_PROBE_MS; 0: off) */
  dadProbeMs?: number;
  /** tests: DAD_RETRY_MS, DAD_REPORT_AFTER_MS */
  dadRetryMs?: number;
  dadReportAfterMs?: number;
  /** what the apply latencies are measured with (default: the real clock) */
  clock?: Pick<Clock, 'now'>;
  /**
   * conntrack state sync (default: the agent config's gatewayConntrackSync); an object overrides
   * conntrackd's settings (tests)
   */
  conntrackSync?: boolean | Partial<Omit<ConntrackSyncOptions, 'nodeIP' | 'uplink' | 'log' | 'host'>>;
  /** tests: whether the API server's host answers a TCP handshake (default: tcpAnswers to the apiServer's host and port) */
  apiHostAnswers?: (timeoutMs: number) => Promise<boolean>;
}

/** What the module watches through the API (one informer each). */
type WatchedResource = PlanInputKind;
type ConntrackSyncWanted = NonNullable<GatewayModuleOptions['conntrackSync']>;

interface PolicyStatus {
  name: string;
  egressSourceIP: string;
  holder: string | null;
  action: string;
  localSources: string[];
  allSources: number;
  snatHere: boolean;
  reason: string;
}

/** A floating IP's conflict probing (GatewayModule.probe): since when, who answered, the probe in flight or the retry due. */
interface ProbeState {
  since: number;
  mac: string | null;
  reported: boolean;
  retry: NodeJS.Timeout | null;
  /** the probe in flight: a result carrying another number belongs to an earlier take of the IP */
  seq: number;
}

/** Back-off of the retries after a failed apply (GatewayModule.retryAfterFailure). */
export const APPLY_RETRY_MIN_MS = 500;
export const APPLY_RETRY_MAX_MS = 10_000;
/** a failed start of conntrackd is tried again at an apply this long after it */
export const CTSYNC_RETRY_MS = 30_000;

export class GatewayModule implements NodeModule {
  readonly name = 'gateway';
  private readonly host: Host;
  /** the API state the plan is computed from, by name (empty until start()) */
  private informers: Partial<Record<WatchedResource, Informer>> = {};
  private debounce: NodeJS.Timeout | null = null;
  private resync: NodeJS.Timeout | null = null;
  /** a failed apply is tried again after APPLY_RETRY_MIN_MS, doubling up to APPLY_RETRY_MAX_MS */
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelayMs = 0;
  private bulkTimer: NodeJS.Timeout | null = null;
  /**
   * Set when this agent finds it did not run for a while (a hung or paused node, a long stall):
   * the controller may have moved its floating IPs meanwhile, so the ARP fence is not refreshed and
   * no gratuitous ARP is sent until a fresh read of the gateway status confirms what it holds.
   */
  private stale: { since: number; gapMs: number } | null = null;
  /** a post-stall read found an IP moved: the fence stays down until the next apply released it */
  private releaseThenFresh = false;
  private lastAliveTick = 0;
  /** the licence's Down count already acted on (a change: the controller had this node Down, re-read first) */
  private downsSeen = 0;
  /** the licence ran out and the lapse was logged (logged again when it comes back) */
  private lapsed = false;
  private aliveTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private dirty = false;
  private forceNext = true;
  private stopped = false;
  private synced = false;
  /** true until start() has waited for the informers' first lists (changed() then only records) */
  private starting = true;
  /** the caches are incomplete and a datapath from the previous agent is in place: no apply until synced */
  private keepUntilSynced = false;
  private uplink = 'eth0';
  /** the boot hook's text as last written or found (undefined: not looked at yet) */
  private bootFence: string | undefined;
  private lastPlan: GatewayPlan | null = null;
  /**
   * The plan the gateway table in the kernel was rendered from, when known: the transition plan
   * while one is in place, the last plan otherwise; null after a failed or partial program() and
   * for a just-started agent (its predecessor's table). A rule inserted into the table references
   * its sets by name: they must be this plan's (renderStrayReplyFence).
   */
  private tablePlan: GatewayPlan | null = null;
  /** what this node's pairs' conntrack entries were made under (render.ts treatmentsAfter) */
  private treatments: Treatments | null = null;
  /** holder: the SNAT of the pairs it forwards for other nodes' pods, as last committed (render.ts forwardedSnats) */
  private forwarded: Map<string, string> | null = null;
  private lastRuleset = '';
  /** a program() of a plan made from complete caches completed (NodeModule.programmed) */
  private programmedOnce = false;
  private kernel: { rules: RuleSpec[]; routes: Map<number, string>; addrs: string[] } | null = null;
  private owned = new Set<string>();
  private garpTimers = new Map<string, NodeJS.Timeout[]>();
  /**
   * Floating IPs being taken whose conflict probe has not come back clean yet: the ARP fence keeps
   * them unanswered and unannounced (aliveLine, announce). With the first answer seen (its MAC and
   * when) while another host answers for it.
   */
  private probing = new Map<string, ProbeState>();
  private probeSeq = 0;
  private heartbeat: Heartbeat | null = null;
  private ctsync: ConntrackSync | null = null;
  private ctsyncError: string | null = null;
  /** the conntrackd this agent's stop left running for the next agent (its pid) */
  private ctsyncLeft: number | null = null;
  /** after a failed start of conntrackd, not before this time (ensureConntrackSync) */
  private ctsyncNextTryAt = 0;
  /** this node's bindings kept from the release of a floating IP (its pods' and the ones it forwarded), by IP (keepReleased), loaded at its next take */
  private readonly kept = new Map<string, KeptBindings>();
  /** every floating IP the gateway had (conntrack commits purge their bindings), kept in a file across agent restarts */
  private floatingHistory: FloatingIPHistory | null = null;
  private floatingHistoryFileText: string | null = null;
  private floatingHistoryError: string | null = null;
  private fenced = false;
  private confirming = false;
  /** the current isolation episode's "not cut off, a busy machine" was logged */
  private busyLogged = false;
  /** fenced, re-reads of the gateway status that failed since the last success, and the last error logged */
  private rereads = { failed: 0, logged: '' };
  private triggerAt: number | null = null;
  private triggerWhat = 'start';
  private readonly st = {
    /** plans computed (changes that may matter, resyncs); `applies` are those that changed the kernel */
    plans: 0,
    /** watch updates that left what the plan reads unchanged (samePlanInput): no plan */
    updatesIgnored: 0,
    applies: 0,
    nftApplies: 0,
    lastApplyAt: null as string | null,
    lastApplyMs: null as number | null,
    lastTriggerToCommitMs: null as number | null,
    lastError: null as { at: string; message: string } | null,
    rulesetHash: null as string | null,
    garps: 0,
    /** scheduled gratuitous ARPs not sent: licence lapsed, a re-read pending, or the IP's conflict probe not clean */
    garpsWithheld: 0,
    conntrackFlushes: 0,
    /** holder: bindings of forwarded pairs removed because their policy no longer SNATs them to that IP here (forwardedFlushArgs) */
    forwardedFlushes: 0,
    fences: 0,
    /** isolation episodes (no peer heard, API read failed) in which the API server's host still answered: not fenced (cut-off.ts) */
    fencesAvoided: 0,
    /** times this agent found it had not run for longer than STALE_AFTER_MS while holding IPs */
    staleConfirms: 0,
    /** times the controller's acknowledged grace ran out while this node held IPs (its ARP fence lapsed) */
    licenceLapses: 0,
    /** address conflict probes sent, and those another host answered */
    dadProbes: 0,
    dadConflicts: 0,
  };

  constructor(
    private readonly ctx: NodeModuleContext,
    private readonly o: GatewayModuleOptions = {},
  ) {
    this.host = o.host ?? new ExecHost({ nftPath: ctx.config.nftPath, onError: (m) => this.ctx.log(this.name, `nft session: ${m}`) });
  }

  private now(): number {
    return (this.o.clock ?? realClock).now();
  }

  async start(): Promise<void> {
    const c = this.ctx.config;
    this.uplink = this.o.uplink ?? (await this.detectUplink());
    await this.kernelSettings();
    // conntrackd starts with the first plan that has a floating IP (ensureConntrackSync), or now when
    // the previous agent's sync table is still in the kernel (its datapath may still SNAT; the
    // conntrackd it left running is adopted, caches and all); with sync off, a conntrackd a
    // previous agent left is stopped
    if (this.conntrackSyncWanted()) await this.ensureConntrackSync(await this.host.nftTableExists('ip', CTSYNC_TABLE).catch(() => false));
    else await stopLeftoverConntrackd(this.host, (m) => this.ctx.log(this.name, m));
    const client = this.ctx.client;
    const on = (what: WatchedResource) => ({
      onAdd: () => this.changed(what),
      // an update that leaves what the plan reads of the object unchanged (a Node's Ready condition,
      // an annotation, a policy's status) does not re-plan: in a cluster's start every node's Ready
      // patch reached every agent, and each re-planned for nothing (N x N plans)
      onUpdate: (o: KubeObject, old: KubeObject) => {
        if (!samePlanInput(what, o, old)) this.changed(what);
        else this.st.updatesIgnored++;
      },
      onDelete: () => this.changed(what),
      onError: (e: unknown) => this.ctx.log(this.name, `watch ${what}: ${errorMessage(e)}`),
    });
    this.informers = {
      gateway: client.informer(R.anthosNetworkGateways, { namespace: GATEWAY_NAMESPACE, fieldSelector: `metadata.name=${GATEWAY_NAME}` }, on('gateway')),
      policies: client.informer(R.egressNATPolicies, {}, on('policies')),
      pods: client.informer(R.pods, {}, on('pods')),
      namespaces: client.informer(R.namespaces, {}, on('namespaces')),
      nodes: client.informer(R.nodes, {}, on('nodes')),
      networkpolicies: client.informer(R.networkpolicies, {}, on('networkpolicies')),
    };
    const hb = this.o.heartbeat ?? true;
    if (hb) {
      this.heartbeat = new Heartbeat({
        node: c.nodeName,
        bind: c.nodeIP,
        ...(typeof hb === 'object' ? hb : {}),
        onChange: () => this.onLiveness(),
        log: (m) => this.ctx.log(this.name, m),
      });
      await this.heartbeat.start();
    }
    const timeout = this.o.startupSyncTimeoutMs ?? Math.min(c.startupSyncTimeoutMs, 2000);
    const all = Promise.all(Object.values(this.informers).map((i) => i.hasSynced())).then(() => true);
    const sync = await settleWithin(all, timeout, this.ctx.stopping);
    // told to stop meanwhile: nothing is programmed from half-filled caches, the datapath stays as it is
    if (sync === 'stopped') return;
    const ok = sync === 'done';
    this.synced = ok;
    if (ok) this.ctx.log(this.name, `API state synced; uplink ${this.uplink}`);
    else {
      // a plan from half-filled caches is not fail-closed: a policy whose pods or namespaces are not
      // listed yet matches nothing, so its pods' traffic would leave un-NATed (seen: 10 SYNs of a
      // restarting node's pod reached the internet with the pod IP). What the previous agent left
      // (fail-closed after a clean stop) stays until the caches are complete; only a node with no
      // datapath at all gets the best that is known.
      this.keepUntilSynced = await this.host.nftTableExists('ip', GW_TABLE).catch(() => false);
      this.ctx.log(
        this.name,
        `API not synced after ${timeout} ms: ${this.keepUntilSynced ? `keeping table ${GW_TABLE} as the previous agent left it` : 'programming fail-closed from what is known'} until it is`,
      );
      // forced: a plan from the complete caches may equal the half-synced one (nothing listed late
      // changed it) and must still be committed as this node's programming (programmed())
      void all.then(() => ((this.synced = true), (this.forceNext = true), this.changed('initial sync')));
    }
    this.starting = false;
    await this.kick('start', true);
    // a full re-apply (repairs drift) every resyncMs while this node holds a floating IP, every
    // idleResyncMs otherwise (each one spawns ip and nft five times, ~15 ms of CPU each: an idle node
    // must stay cheap; 90 s is Calico felix's default refresh of its own rules)
    const resyncMs = this.o.resyncMs ?? 10_000;
    const idleResyncMs = Math.max(resyncMs, this.o.idleResyncMs ?? 90_000);
    let lastResync = this.now();
    this.resync = setInterval(() => {
      if (this.owned.size === 0 && this.now() - lastResync < idleResyncMs - resyncMs / 2) return;
      lastResync = this.now();
      void this.kick('resync', true);
    }, resyncMs);
    this.resync.unref();
    this.setHolding(this.owned.size > 0);
  }

  /** The holder's timers: the ARP fence refresh (which also notices this agent's own stalls) and the conntrack bulk re-send. */
  private startHolderTimers(): void {
    if (this.aliveTimer || this.stopped) return;
    // counted from now: a stall before the first tick (right after a takeover, when nodes are busy)
    // must still be noticed by refreshAlive
    this.lastAliveTick = Date.now();
    this.aliveTimer = setInterval(() => void this.refreshAlive(), ARP_ALIVE_REFRESH_MS);
    this.aliveTimer.unref();
    // a holder re-sends its replicated bindings now and then: NOTRACK loses datagrams for good
    // (one at a time, and never while an apply, which may commit the cache on takeover, runs)
    let bulkRunning = false;
    this.bulkTimer = setInterval(() => {
      if (!this.ctsync || !this.owned.size || this.stopped || this.running || bulkRunning) return;
      bulkRunning = true;
      void this.ctsync.bulkSend().finally(() => (bulkRunning = false));
    }, CTSYNC_BULK_MS);
    this.bulkTimer.unref();
  }

  private stopHolderTimers(): void {
    if (this.aliveTimer) clearInterval(this.aliveTimer);
    if (this.bulkTimer) clearInterval(this.bulkTimer);
    this.aliveTimer = null;
    this.bulkTimer = null;
  }

  /** conntrack sync is wanted (the config; with an injected kernel fake only when asked for: never the host's conntrackd) */
  private conntrackSyncWanted(): ConntrackSyncWanted {
    return this.o.conntrackSync ?? (this.o.host ? false : this.ctx.config.gatewayConntrackSync);
  }

  /**
   * Starts conntrackd when it is `needed` and not running: before the apply of the first plan with a
   * floating IP, or at start when a previous agent's sync table is still in the kernel. A failed
   * start is reported, the gateway runs without sync, and an apply CTSYNC_RETRY_MS later tries again.
   * Until a gateway has a floating IP there is nothing to replicate, and every node's conntrackd
   * hears every other's multicast once a second (N x N datagrams: 17 % of a core for an idle 50-node
   * lab, more than its 50 agents). Replication still starts before this node SNATs anything: the
   * holder's apply that takes an IP starts it first; a standby that starts later asks the others
   * for their bindings (StartupResync).
   */
  private async ensureConntrackSync(needed: boolean): Promise<void> {
    if (!needed || this.ctsync || this.stopped || this.now() < this.ctsyncNextTryAt || !this.conntrackSyncWanted()) return;
    await this.startConntrackSync();
    if (!this.ctsync) this.ctsyncNextTryAt = this.now() + CTSYNC_RETRY_MS;
  }

  private async startConntrackSync(): Promise<void> {
    const want = this.conntrackSyncWanted();
    if (!want) return;
    const c = this.ctx.config;
    const sync = new ConntrackSync({
      ...(typeof want === 'object' ? want : {}),
      host: this.host,
      nodeIP: c.nodeIP,
      uplink: this.uplink,
      log: (m) => this.ctx.log(this.name, m),
      signal: this.ctx.stopping,
    });
    try {
      await sync.start();
      this.ctsync = sync;
      this.ctsyncError = null;
    } catch (e) {
      await sync.stop().catch(() => undefined);
      if (e instanceof ConntrackStartAbandoned) {
        // not a failure of conntrackd: the agent is stopping (its SIGTERM is not held up by the start)
        this.ctx.log(this.name, `conntrack sync: ${errorMessage(e)}`);
        return;
      }
      this.ctsyncError = errorMessage(e);
      this.ctx.log(this.name, `conntrack sync disabled: ${this.ctsyncError}`);
      this.ctx.events.record(
        'Warning',
        'EgressGatewayConntrackSyncFailed',
        `conntrackd could not start: established connections will be picked up loosely on failover: ${this.ctsyncError}`,
      );
    }
  }

  private async detectUplink(): Promise<string> {
    try {
      const arr = JSON.parse(await this.host.ipJson(['-4', 'addr', 'show'])) as { ifname?: string; addr_info?: { local?: string }[] }[];
      const hit = arr.find((l) => (l.addr_info ?? []).some((a) => a.local === this.ctx.config.nodeIP));
      if (hit?.ifname) return hit.ifname;
    } catch (e) {
      this.ctx.log(this.name, `cannot list addresses: ${errorMessage(e)}`);
    }
    return 'eth0';
  }

  /** ICMP redirects would send a source node straight to the router, around the gateway (a leak). */
  private async kernelSettings(): Promise<void> {
    const u = this.uplink;
    const settings: [string, string][] = [
      ['net/ipv4/conf/all/send_redirects', '0'],
      [`net/ipv4/conf/${u}/send_redirects`, '0'],
      ['net/ipv4/conf/all/accept_redirects', '0'],
      [`net/ipv4/conf/${u}/accept_redirects`, '0'],
      // ARP requests use the node IP as sender, never a floating IP (the ARP fence would drop those)
      [`net/ipv4/conf/${u}/arp_announce`, '2'],
      // TCP window tracking marks only out-of-window RSTs INVALID. A floating IP moves between
      // nodes while its flows carry on elsewhere: an entry a node kept from an earlier tenure (another
      // node's pod's flow), or one loaded back (conntrack -R: no window state, no liberal flag), sees
      // segments far past the windows it knew; strict tracking marked them INVALID, no NAT applied,
      // and the guard dropped every one (chaos seed 970228019: a stream stuck after the IP came back).
      // conntrackd's commits (TCPWindowTracking no) and the kernel's own mid-stream pickups are
      // liberal already; this makes every entry so (docs/gateway.md).
      ['net/netfilter/nf_conntrack_tcp_be_liberal', '1'],
    ];
    for (const [k, v] of settings) {
      try {
        await this.host.sysctl(k, v);
      } catch (e) {
        this.ctx.log(this.name, `sysctl ${k}=${v}: ${errorMessage(e)}`);
      }
    }
  }

  private changed(what: string): void {
    if (this.stopped) return;
    if (this.triggerAt === null) {
      this.triggerAt = this.now();
      this.triggerWhat = what;
    }
    // the informers' first lists arrive one by one: start() programs once they all have (or once
    // it gave up waiting), never from a half-filled cache
    if (this.starting || this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      void this.kick(this.triggerWhat, false);
    }, this.o.debounceMs ?? 10);
  }

  /**
   * A holder's liveness is on the failover's critical path: while this node holds a floating IP its
   * peer heartbeats tick (isolation check) and its beacon to the controller beats fast; a node that
   * holds nothing only answers peers and beats slowly.
   */
  private setHolding(holds: boolean): void {
    // a fenced node keeps ticking although it released its IPs: its peers' echoes are what tells it
    // it is no longer cut off (an idle peer only answers a heartbeat it hears)
    this.heartbeat?.setActive(holds || this.fenced);
    this.ctx.holding.set(holds);
    // holding nothing, there is nothing to re-confirm: a later Down spell is what counts
    if (!holds) this.downsSeen = this.ctx.licence.downs();

    if (!this.resync) return; // still starting: start() sets the timers once running
    if (holds) this.startHolderTimers();
    else this.stopHolderTimers();
  }

  /**
   * Heartbeat news. Suspects only change the plan with failClosedOnSuspect; isolation (no peer heard
   * for isolationMs) fences this node only once a short read of the gateway status FAILS too (a
   * node whose agent is merely starved of CPU still reaches the API and is not fenced). Unfencing
   * needs a successful fresh read (the watch may still be catching up with a reassignment made
   * while this node was cut off).
   */
  private onLiveness(): void {
    const hb = this.heartbeat;
    if (!hb || this.stopped) return;
    this.ctx.statusChanged();
    const iso = hb.isolated();
    if (this.o.failClosedOnSuspect) this.changed('liveness');
    if (!iso) this.busyLogged = false;
    if (this.confirming || iso === this.fenced) return;
    this.confirming = true;
    const started = this.now();
    const done = (): void => {
      this.confirming = false;
      this.changed('liveness');
      // the state may have moved on while we were reading
      if (hb.isolated() !== this.fenced) setTimeout(() => this.onLiveness(), 50).unref();
    };
    if (!iso) {
      void this.readGateway(2000)
        .then(
          (o) => {
            this.cacheGateway(o);
            this.fenced = false;
            const failed = this.rereads.failed ? ` (after ${this.rereads.failed} failed re-read(s))` : '';
            this.rereads = { failed: 0, logged: '' };
            this.ctx.log(this.name, `peers heard again and gateway status re-read: unfenced${failed}`);
          },
          (e) => {
            // tried again at every heartbeat heard while the API is down: logged when the reason changes
            const why = errorMessage(e);
            this.rereads.failed++;
            if (why !== this.rereads.logged)
              this.ctx.log(this.name, `still fenced: cannot re-read the gateway status: ${why} (logged again only if the reason changes)`);
            this.rereads.logged = why;
          },
        )
        .finally(done);
      return;
    }
    // a cut-off node's read fails by timeout; 500 ms keeps a merely slow API (a busy machine) from
    // fencing a healthy holder, and still fences a cut-off one well before the IP can come back. The
    // API server's host answering a TCP handshake meanwhile says the node is not cut off (cut-off.ts).
    void confirmCutOff({ read: (ms) => this.readGateway(ms), apiHostAnswers: (ms) => this.apiHostAnswers(ms) }, 500, errorMessage)
      .then((v) => {
        if ('read' in v) return this.cacheGateway(v.read);
        if (!v.cutOff) {
          this.st.fencesAvoided++;
          if (!this.busyLogged)
            this.ctx.log(this.name, `no heartbeat from any peer and ${v.busy} (${this.now() - started} ms): not cut off, a busy machine; not fenced`);
          this.busyLogged = true;
          return;
        }
        this.fenced = true;
        this.st.fences++;
        this.ctx.log(
          this.name,
          `no heartbeat from any peer and the API unreachable (${v.why}, ${this.now() - started} ms): this node is cut off, giving up its floating IPs (fenced)`,
        );
        this.ctx.events.record(
          'Warning',
          'EgressGatewayFenced',
          'no heartbeat from any peer node and the API unreachable: floating IPs released until the API confirms the assignment',
        );
      })
      .finally(done);
  }

  /**
   * Puts a gateway object read outside the watch into the informer's cache; re-plans when what the
   * plan reads of it changed (the watch delivering that version later finds it cached: no re-plan then).
   */
  private cacheGateway(o: KubeObject | undefined): void {
    const informer = this.informers.gateway;
    if (!o || !informer) return;
    const key = `${GATEWAY_NAMESPACE}/${GATEWAY_NAME}`;
    const old = informer.cache.get(key);
    informer.cache.set(key, o);
    if (!old || !samePlanInput('gateway', o, old)) this.changed('gateway re-read');
  }

  /** Whether the API server's host answers a TCP handshake (its kernel, whatever its processes do: cut-off.ts). */
  private apiHostAnswers(timeoutMs: number): Promise<boolean> {
    if (this.o.apiHostAnswers) return this.o.apiHostAnswers(timeoutMs);
    const u = new URL(this.ctx.config.apiServer);
    return tcpAnswers(u.hostname, Number(u.port || (u.protocol === 'https:' ? 443 : 80)), timeoutMs);
  }

  private async readGateway(timeoutMs: number): Promise<KubeObject | undefined> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.ctx.client.tryGet(R.anthosNetworkGateways, GATEWAY_NAME, GATEWAY_NAMESPACE),
        // the timeout gives up only after the next I/O poll: after a stall of this process, timers
        // run before the poll phase, and an answer already waiting in the socket must win
        new Promise<never>(
          (_, rej) =>
            (timer = setTimeout(
              () =>
                setImmediate(() => {
                  // the next answer restarts the informers' watches (KubeClient.onRecovered)
                  this.ctx.client.noteUnanswered();
                  rej(new Error(`no answer within ${timeoutMs} ms`));
                }),
              timeoutMs,
            )),
        ),
      ]);
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  /** Serialises applies: one at a time, and one more if something changed meanwhile. */
  private kick(what: string, force: boolean): Promise<void> {
    if (force) this.forceNext = true;
    if (this.running) {
      this.dirty = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.dirty = false;
        const f = this.forceNext;
        this.forceNext = false;
        const trig = this.triggerAt;
        const trigWhat = this.triggerWhat;
        this.triggerAt = null;
        try {
          await this.applyOnce(f, trig, trigWhat || what);
          this.retryDelayMs = 0;
          if (this.retryTimer) clearTimeout(this.retryTimer);
          this.retryTimer = null;
        } catch (e) {
          const message = errorMessage(e);
          this.retryAfterFailure();
          if (this.st.lastError?.message !== message) {
            this.ctx.log(this.name, `apply failed (retrying with back-off from ${APPLY_RETRY_MIN_MS} to ${APPLY_RETRY_MAX_MS} ms): ${message}`);
            this.ctx.events.record('Warning', 'EgressGatewayApplyFailed', message);
          }
          this.st.lastError = { at: new Date().toISOString(), message };
          this.ctx.statusChanged();
        }
      } while (this.dirty && !this.stopped);
    })().finally(() => (this.running = null));
    return this.running;
  }

  /**
   * A failed apply is tried again soon (a full re-apply), not only at the next change or resync:
   * until this node's first apply succeeds, the boot hook's pod guard holds its pods' traffic.
   */
  private retryAfterFailure(): void {
    if (this.stopped || this.retryTimer) return;
    this.retryDelayMs = Math.min(APPLY_RETRY_MAX_MS, Math.max(APPLY_RETRY_MIN_MS, this.retryDelayMs * 2));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.kick('retry after a failed apply', true);
    }, this.retryDelayMs);
    this.retryTimer.unref?.();
  }

  input(): ModelInput {
    const c = this.ctx.config;
    const objs = (name: WatchedResource): KubeObject[] => this.informers[name]?.list() ?? [];
    const nodes = objs('nodes')
      .map(nodeFromObject)
      .filter((n): n is NodeInfo => n !== null);
    const self = nodes.find((n) => n.name === c.nodeName);
    const merged = self
      ? nodes.map((n) => (n.name === c.nodeName ? { ...n, ip: c.nodeIP, podCIDRs: c.podCIDRs } : n))
      : [...nodes, { name: c.nodeName, ip: c.nodeIP, podCIDRs: c.podCIDRs }];
    return {
      self: { name: c.nodeName, ip: c.nodeIP },
      nodes: merged,
      gateway: this.synced ? gatewayFromObject(this.informers.gateway?.cache.get(`${GATEWAY_NAMESPACE}/${GATEWAY_NAME}`)) : null,
      policies: objs('policies')
        .map(policyFromObject)
        .filter((p) => p !== null),
      pods: objs('pods')
        .map(podFromObject)
        .filter((p) => p !== null),
      namespaces: objs('namespaces')
        .map(namespaceFromObject)
        .filter((p) => p !== null),
      networkPolicies: objs('networkpolicies')
        .map(networkPolicyFromObject)
        .filter((p) => p !== null),
      suspects: this.heartbeat?.suspects() ?? [],
      failClosedOnSuspect: !!this.o.failClosedOnSuspect,
      fenced: this.fenced,
    };
  }

  private async applyOnce(force: boolean, triggerAt: number | null, trigger: string): Promise<void> {
    if (this.stopped) return;
    const t0 = this.now();
    const input = this.input();
    this.heartbeat?.setPeers(input.nodes.filter((n) => n.ip).map((n) => ({ name: n.name, ip: n.ip })));
    if (!this.synced && this.keepUntilSynced) return;
    const plan = computeGatewayPlan(input);
    this.st.plans++;
    if (!force && this.lastPlan && JSON.stringify(plan) === JSON.stringify(this.lastPlan)) return;
    await this.ensureConntrackSync(plan.floatingIPs.length > 0);
    try {
      await this.program(plan, force);
    } catch (e) {
      this.treatments = treatmentsAfterFailure(this.treatments, plan);
      throw e;
    }
    const t1 = this.now();
    this.st.applies++;
    this.st.lastApplyAt = new Date().toISOString();
    this.st.lastApplyMs = t1 - t0;
    if (triggerAt !== null) this.st.lastTriggerToCommitMs = t1 - triggerAt;
    this.st.lastError = null;
    this.report(this.lastPlan, plan, trigger, triggerAt === null ? null : t1 - triggerAt);
    this.treatments = treatmentsAfter(this.treatments, plan);
    this.forwarded = forwardedSnats(plan);
    this.lastPlan = plan;
    if (this.releaseThenFresh) {
      this.releaseThenFresh = false;
      this.stale = null;
      const alive = this.aliveLine([...this.owned]);
      if (alive) await this.host.nftLine(alive).catch((e: unknown) => this.ctx.log(this.name, `ARP fence refresh: ${errorMessage(e)}`));
    }
    this.ctx.statusChanged();
  }

  /**
   * Keeps the node's boot hook (render.ts renderBootFence) in step with the forward fence this
   * apply just installed: written when it changes, never on every apply. A failed write is logged
   * and tried again at the next apply; it never fails the apply.
   */
  private keepBootFence(plan: GatewayPlan): void {
    const dir = this.ctx.config.bootHookDir;
    if (!dir) return;
    const text = renderBootFence(plan.podCIDRs, plan.peerPodCIDRs, this.uplink);
    if (text === this.bootFence) return;
    const path = posix.join(dir, BOOT_FENCE_HOOK);
    try {
      if (this.bootFence !== undefined || this.host.readFile(path) !== text) {
        this.host.writeFile(path, text);
        this.ctx.log(this.name, `boot hook ${path}: forward fence for ${plan.peerPodCIDRs.length} peer pod CIDR(s), pod guard for ${plan.podCIDRs.length} own`);
      }
      this.bootFence = text;
    } catch (e) {
      this.ctx.log(this.name, `boot hook ${path}: ${errorMessage(e)}`);
    }
  }

  /**
   * Notes the gateway's floating IPs in the history (conntrack-sync.ts FloatingIPHistory), read from
   * the file a previous agent left on first use and written back when it changed (a failed write is
   * logged and tried again at the next plan); the IPs a commit purges.
   */
  private noteFloatingIPs(current: readonly string[]): string[] {
    const path = posix.join(posix.dirname(this.ctx.config.statusPath), FLOATING_HISTORY_FILE);
    if (!this.floatingHistory) {
      // readFile never throws: an unreadable file reads as a missing one (null)
      this.floatingHistoryFileText = this.host.readFile(path);
      this.floatingHistory = new FloatingIPHistory(64, parseFloatingHistory(this.floatingHistoryFileText));
    }
    const ips = this.floatingHistory.note(current);
    const text = floatingHistoryText(ips);
    // nothing to keep yet: no file (a node without a gateway writes none)
    if (text !== (this.floatingHistoryFileText ?? '')) {
      try {
        this.host.writeFile(path, text);
        this.floatingHistoryFileText = text;
      } catch (e) {
        // tried again at the next plan; said once per distinct error
        const msg = `floating IP history ${path}: ${errorMessage(e)}`;
        if (msg !== this.floatingHistoryError) this.ctx.log(this.name, msg);
        this.floatingHistoryError = msg;
      }
    }
    return ips;
  }

  /** Kernel side of one plan (also used by stop() with a fail-closed plan). */
  private async program(plan: GatewayPlan, force: boolean): Promise<void> {
    // a plan from half-filled caches (the API not synced in time) is not this node's programming:
    // the boot hook's pod guard stays until one from complete caches is in the kernel
    const complete = this.synced;
    // a commit deletes the committed bindings of every floating IP this node will not hold: the
    // gateway's and those it had before (conntrack-sync.ts FloatingIPHistory)
    // never a node's address (a history file an older agent wrote may hold one the gateway listed)
    const purgeIPs = this.noteFloatingIPs(plan.floatingIPs).filter((ip) => !plan.nodeAddresses.includes(ip));
    // the ruleset never carries @alive elements (its text stays the same from one apply to the next);
    // they are added in the same transaction, with the timeout licensed at that moment
    const r = renderGateway(plan, { uplink: this.uplink, aliveTimeoutMs: 0 });
    const ruleset =
      r.ruleset +
      renderCtSyncTable(
        plan.ownedIPs.map((o) => o.ip),
        { enabled: !!this.ctsync },
      );
    // What the kernel has: read on start/resync (force) or after a failure; otherwise what we
    // programmed last time. Keeps the failover path free of listings (nft applies go through the
    // host's long-lived apply session; ip addr is one spawn).
    let k = this.kernel;
    if (force || !k) {
      const [rulesJson, routesJson, addrJson] = await Promise.all([
        this.host.ipJson(['rule', 'show']),
        this.host.ipJson(['route', 'show', 'table', 'all']),
        this.host.ipJson(['-4', 'addr', 'show', 'dev', this.uplink]),
      ]);
      k = { rules: parseIpRules(rulesJson), routes: parseRouteTables(routesJson), addrs: parseIpAddrs(addrJson) };
    }
    this.kernel = null; // unknown until this apply completes
    // floating IPs this node holds until this apply releases them: what this agent took, and for a
    // restarted agent (which knows of none) what the previous one left on the uplink
    const ownedAfter = new Set(plan.ownedIPs.map((o) => o.ip));
    // (the gateway's IPs only: an address this apply leaves on the uplink would be "released" again
    // at every apply; and an IP the table in the kernel SNATs though its address add failed)
    const heldNow = new Set([
      ...this.owned,
      ...(this.tablePlan?.ownedIPs.map((o) => o.ip) ?? []),
      ...k.addrs.map((a) => a.split('/')[0]!).filter((ip) => plan.floatingIPs.includes(ip)),
    ]);
    const releasing = [...heldNow].filter((ip) => !ownedAfter.has(ip));
    // the bindings this node made as a holder are in its conntrackd's internal cache, and deleting
    // one (the flush of its own pods' pairs, the purge of a released IP) sends its deletion to every
    // peer, whose external cache then loses it: a new holder that commits after that, or commits
    // again (a restarted agent), has no binding of those connections and they are reset (session
    // 38: node-1 released 192.168.1.100 while node-3 took it; 5 of 20 connections through it died).
    // Forgotten first (`conntrackd -f internal`: no message to the peers), its deletions stay local.
    if (this.ctsync && releasing.length) await this.ctsync.forgetOwn(releasing);
    // before anything of this apply flushes or purges them: own pods' bindings to IPs released now
    await this.keepReleased(plan);
    // pairs whose entries stand for another treatment than the plan's: flushed after the final ruleset
    const flush = changedPairs(this.treatments, plan);
    // pairs leaving gateway treatment altogether: fail closed first, flush their conntrack entries,
    // then commit the final plan (render.ts transitionPlan: otherwise their next packets would
    // leave with the pod IP until the flush)
    const transit = transitionPlan(this.lastPlan, plan);
    if (transit) {
      this.tablePlan = null;
      await this.host.nftApply(
        renderGateway(transit, { uplink: this.uplink, aliveTimeoutMs: 0 }).ruleset +
          // the transition table already makes the plan's new local pairs local: their reply-made
          // entries' segments are held from here (its first policies are the plan's: the same sets)
          (renderChangeoverWindow(plan, flush) ?? '') +
          // only the IPs held already: one being taken is answered for after its conflict probe
          (this.aliveLine(transit.ownedIPs.map((o) => o.ip).filter((ip) => this.owned.has(ip))) ?? ''),
      );
      this.tablePlan = transit;
      this.lastRuleset = '';
      this.st.nftApplies++;
      await this.flushPairs(leavingPairs(transit, plan));
    }
    // taking floating IPs: commit the replicated bindings BEFORE this node starts to SNAT and
    // attracts the traffic, so no segment of an established flow is picked up as a new flow here
    const taking = plan.ownedIPs.map((o) => o.ip).filter((ip) => !this.owned.has(ip));
    // every commit brings the whole external cache in again: each one removes the bindings it
    // brought to a held IP other than their flows' (render.ts misboundBindings)
    const misbound = this.ctsync && taking.length ? misboundBindings(plan) : [];
    const unbind = misbound.map(bindingDeleteArgs);
    let committed = false;
    if (this.ctsync && taking.length) {
      // rules inserted into the current table (naming ITS sets, or written out when its
      // plan is not known); they must not outlive this program(): the final ruleset, which drops
      // them with the table, is applied below whatever else changed (a routed pair's fence left in
      // place would drop the replies that recover its connections after the commit's purge)
      const pre = renderStrayReplyFence(this.tablePlan, { uplink: this.uplink, next: plan });
      if (pre) {
        this.lastRuleset = '';
        this.tablePlan = null;
      }
      // the IPs this node still holds until the final ruleset are spared too: it still SNATs them,
      // and their bindings are the live connections it carries (session 38: node-1 released
      // 192.168.1.100 and took .101 in one plan; this commit's purge deleted its bindings of the
      // forwarded connections through .100 while its old table still SNATed them, their next
      // segments were SNATed again to new ports and the far end reset 5 of 20 connections). The
      // re-commit after the final ruleset purges them when there is one (its table no longer SNATs
      // them); otherwise a later take's commit does, as after a release without a take
      const c = await this.ctsync.commit(purgeIPs, [...new Set([...ownedAfter, ...heldNow])], { pre, flush: strayEntryPurgeArgs(taking), unbind });
      committed = c.ok;
      if (c.ok)
        this.ctx.log(
          this.name,
          `conntrack sync: committed ${c.entries ?? '?'} replicated binding(s) in ${c.ms} ms before taking ${taking.join(', ')}${
            misbound.length ? `; then deleted its bindings to a held IP that is not their flows' (${describeMisbound(misbound)})` : ''
          }`,
        );
    }
    // no commit shell ran (sync off, conntrackd not running, its commit failed): the entries this
    // node made towards an IP it takes (strayEntryPurgeArgs) are deleted on their own, before the
    // kept bindings are loaded and before the pods' next segments pick their ports
    if (!committed && taking.length) await this.purgeStray(taking);
    // an IP taken that is not on the uplink yet is probed first (an agent restarted on its holder
    // finds its IPs there and answers on at once): it stays fenced until nobody else answers for it
    for (const ip of taking) if (!k.addrs.some((a) => a.split('/')[0] === ip)) this.probe(ip);
    const cmds = routingOps(r, { rules: k.rules, tables: [...k.routes.keys()] });
    const routes = k.routes;
    // routes that already point at the right node need no replace
    const before = cmds.before.filter((o) => o.op !== 'route-replace' || force || routes.get(o.table) !== `${o.via} ${o.dev}`);
    await this.host.ipBatch(before);
    this.keepBootFence(plan);
    // flows whose treatment changed are decided again: flushed right after the commit and BEFORE a
    // floating IP is added. A node taking an IP for its own pods' flows (route -> local) must have
    // their bindings back (replicated ones re-committed) before replies to the IP can arrive:
    // a reply finding no entry would be delivered to this node's own stack, which answers RST and
    // kills the connection at the far end (seen with a paused holder, whose traffic never pauses).
    // Between the flush and that commit, the takeover window (render.ts renderTakeoverWindow)
    // keeps the pods' own segments from making entries of their own, and the replies of their
    // connections through IPs held elsewhere from being picked up against the bindings the
    // re-commit brings back until its purge.
    // without a re-commit, the window holds only the pods' segments of entries made by a reply
    // (render.ts renderChangeoverWindow), deleted after the flush below
    const recommit = committed && !!this.ctsync;
    const window = recommit ? renderTakeoverWindow(plan, flush, { uplink: this.uplink }) : renderChangeoverWindow(plan, flush);
    // this node's own bindings kept when it released an IP it takes again, for the pairs it SNATs
    // to that IP again: loaded after the replicated ones (conntrack-sync.ts keptBindingLines)
    const after = treatmentsAfter(this.treatments, plan);
    // (the forwarded pairs are worked out only when an IP taken has kept bindings)
    const forwardedAfter = this.ctsync && taking.some((ip) => this.kept.has(ip)) ? forwardedSnats(plan) : null;
    const load = forwardedAfter
      ? taking.flatMap((ip) => {
          const k = this.kept.get(ip);
          return k ? keptBindingsAt(k, ip, this.now(), after, forwardedAfter) : [];
        })
      : [];
    const keptNote = (failed: boolean | undefined) =>
      load.length ? `; ${load.length} binding(s) of its own kept from the release ${failed ? 'NOT loaded (conntrack -R failed)' : 'loaded after them'}` : '';
    // resync: re-apply only if the table is gone (a full re-apply would reset the counters)
    const drift = force && ruleset === this.lastRuleset && !(await this.host.nftTableExists('ip', GW_TABLE).catch(() => false));
    if (drift) this.ctx.log(this.name, `table ${GW_TABLE} missing: re-created`);
    if (drift || ruleset !== this.lastRuleset || window) {
      this.lastRuleset = '';
      this.tablePlan = null;
      const alive = this.aliveLine(plan.ownedIPs.map((o) => o.ip)) ?? '';
      await this.host.nftApply((window ? ruleset + window : ruleset) + alive);
      this.lastRuleset = ruleset;
      this.tablePlan = plan;
      this.st.nftApplies++;
      this.st.rulesetHash = sha16(ruleset);
    }
    if (window && recommit && this.ctsync) {
      const end = renderTakeoverWindowEnd();
      const c = await this.ctsync.commit(
        purgeIPs,
        plan.ownedIPs.map((o) => o.ip),
        { flush: conntrackFlushArgs(flush), post: end, load, unbind },
      );
      if (c.ok) {
        this.st.conntrackFlushes += flush.length;
        this.ctx.log(
          this.name,
          `conntrack sync: re-committed the bindings of ${flush.length} changed pair(s) of this node's pods in ${c.ms} ms (takeover window)${keptNote(c.loadFailed)}`,
        );
      } else {
        await this.flushPairs(flush);
        if (load.length) await this.loadKept(load);
      }
      // the window must not outlive the commit: without it, loose pickup is what keeps flows
      if (!c.ok || c.postFailed) await this.endWindow(ruleset, plan);
    } else {
      await this.flushPairs(flush);
      if (window) await this.endWindow(ruleset, plan);
      if (committed && this.ctsync && flush.length) {
        const c = await this.ctsync.commit(
          purgeIPs,
          plan.ownedIPs.map((o) => o.ip),
          { load, unbind },
        );
        if (!c.ok && load.length) await this.loadKept(load);
      } else if (load.length) await this.loadKept(load);
    }
    // a holder's forwarded flows whose policy no longer SNATs them to the IP of their binding (the
    // IP staying here): decided again by their next packet, under the rules just committed
    await this.flushForwarded(staleForwardedBindings(this.forwarded, plan));
    // a peer's address held here (an older agent took one a hand-written status assigned) is a leftover too
    const known = [...new Set([...plan.floatingIPs, ...this.owned, ...plan.nodeAddresses.filter((ip) => ip !== plan.nodeIP)])];
    const addrs = addressOps(r.addresses, k.addrs, known, plan.nodeIP, this.uplink);
    await this.host.ipBatch([...addrs.del, ...addrs.add]);
    const nowOwned = new Set(r.addresses.map((a) => a.split('/')[0]!));
    for (const ip of nowOwned) if (!this.owned.has(ip) || addrs.add.some((a) => a.cidr.split('/')[0] === ip)) this.announce(ip);
    for (const ip of this.owned) if (!nowOwned.has(ip)) this.cancelAnnounce(ip);
    for (const ip of [...this.probing.keys()]) if (!nowOwned.has(ip)) this.endProbe(ip);
    this.owned = nowOwned;
    // kept bindings are for the next take of a released IP: none for an IP held now (loaded, or
    // not loadable any more) or one no longer in the gateway's history (purgeIPs). An IP out of the
    // gateway for a while keeps them: when it comes back, its connections are still there
    // (regressions/removed-ip-retaken-after-another-take); the take loads only the lines whose
    // timeout has not run out
    for (const ip of [...this.kept.keys()]) if (nowOwned.has(ip) || !purgeIPs.includes(ip)) this.kept.delete(ip);
    this.setHolding(nowOwned.size > 0);
    await this.host.ipBatch(cmds.after);
    const addrsNow = [...k.addrs.filter((a) => !addrs.del.some((d) => d.cidr === a)), ...addrs.add.map((a) => a.cidr)];
    this.kernel = { rules: r.rules, routes: new Map(r.routes.map((x) => [x.table, `${x.via} ${x.dev}`])), addrs: addrsNow };
    if (complete) this.programmedOnce = true;
  }

  /** Deletes the takeover (or changeover) window's chain; on failure the ruleset, which has none, replaces the table. */
  private async endWindow(ruleset: string, plan: GatewayPlan): Promise<void> {
    await this.host.nftApply(renderTakeoverWindowEnd()).catch(async (e: unknown) => {
      this.ctx.log(this.name, `ending the takeover window: ${errorMessage(e)}; re-applying the ruleset`);
      this.lastRuleset = '';
      // with the licensed @alive elements: the ruleset re-creates the ARP fence's table empty
      await this.host.nftApply(ruleset + (this.aliveLine(plan.ownedIPs.map((o) => o.ip)) ?? ''));
      this.lastRuleset = ruleset;
    });
  }

  programmed(): boolean {
    return this.programmedOnce;
  }

  /**
   * Before the flush of pairs leaving local treatment because their floating IP is released: lists
   * this node's bindings of those pods to that IP, and of the other nodes' pods whose pairs it
   * forwarded to that IP, and keeps them for the next take of the IP (a quiet connection's binding
   * is otherwise lost for good: see conntrack-sync.ts keptBindingLines). Only with conntrack sync
   * (the take loads them in its commit); a failed listing keeps what an earlier attempt of the same
   * release kept (mergeKept), nothing more. A restarted agent knows of
   * no forwarded pair before its first apply: what the previous one forwarded is not kept.
   */
  private async keepReleased(plan: GatewayPlan): Promise<void> {
    if (!this.ctsync) return;
    const after = new Set(plan.ownedIPs.map((o) => o.ip));
    const sources = new Map<string, Set<string>>();
    const add = (ip: string, src: string) => {
      const s = sources.get(ip) ?? new Set<string>();
      s.add(src);
      sources.set(ip, s);
    };
    for (const [pair, t] of this.forwarded ?? []) {
      const ip = t.slice(t.lastIndexOf('@') + 1);
      if (!after.has(ip)) add(ip, pair.split('>')[0]!);
    }
    for (const { src, dst } of this.treatments ? changedPairs(this.treatments, plan) : []) {
      const ip = /:local@([0-9.]+)$/.exec(this.treatments?.get(`${src}>${dst}`) ?? '')?.[1];
      // not `this.owned`: a fenced holder lets the address go while its pairs stay `local` under a
      // drop (their entries kept: treatmentsAfter), and routes them only at a later apply
      if (!ip || after.has(ip)) continue;
      add(ip, src);
    }
    if (!sources.size) return;
    const at = this.now();
    const kept = await this.ctsync.keep(sources);
    // merged with what an earlier attempt of the same release kept (mergeKept); a failed listing
    // keeps what there was
    for (const ip of sources.keys()) {
      const lines = kept?.get(ip);
      if (lines) this.kept.set(ip, mergeKept(this.kept.get(ip), lines, at));
    }
    this.ctx.log(
      this.name,
      kept
        ? `conntrack sync: kept ${[...sources.keys()].map((ip) => `${kept.get(ip)?.length ?? 0} binding(s) to ${ip}`).join(', ')} (of this node's pods and of the connections it forwarded) for when it takes the IP back (listed in ${this.now() - at} ms)`
        : `conntrack sync: could not list this node's bindings before releasing ${[...sources.keys()].join(', ')}: their quiet connections will not survive a move back`,
    );
  }

  /** Loads kept bindings outside a commit (conntrackd not running, or its commit failed). */
  private async loadKept(lines: readonly string[]): Promise<void> {
    if (this.ctsync && (await this.ctsync.loadKept(lines)))
      this.ctx.log(this.name, `conntrack sync: ${lines.length} binding(s) of its own kept from the release loaded`);
  }

  /** Deletes the holder's stale forwarded bindings (render.ts staleForwardedBindings); a failure is logged, the rest go on. */
  private async flushForwarded(stale: readonly StaleForwardedBinding[]): Promise<void> {
    if (!stale.length) return;
    const ok = await Promise.all(
      stale.map((b) => {
        const a = bindingDeleteArgs(b);
        return this.host.conntrack(a).then(
          () => true,
          (e: unknown) => (this.ctx.log(this.name, `conntrack ${a.join(' ')}: ${errorMessage(e)}`), false),
        );
      }),
    );
    const done = ok.filter(Boolean).length;
    this.st.forwardedFlushes += done;
    this.ctx.log(
      this.name,
      `conntrack: removed the bindings of ${done} forwarded pair(s) to an IP their policy no longer SNATs them to here (${stale.map((b) => `${b.src} -> ${b.net} mask ${b.mask}, SNATed to ${b.ip}`).join('; ')})`,
    );
  }

  /** Deletes the pairs' entries (both orientations: conntrackFlushArgs); counts a pair once all its deletions went through. */
  /** strayEntryPurgeArgs without a commit; a failure is logged ("0 flow entries" is not one). */
  private async purgeStray(taking: readonly string[]): Promise<void> {
    await Promise.all(
      strayEntryPurgeArgs(taking).map((a) =>
        this.host.conntrack(a).catch((e: unknown) => this.ctx.log(this.name, `conntrack ${a.join(' ')}: ${errorMessage(e)}`)),
      ),
    );
  }

  private async flushPairs(pairs: readonly { src: string; dst: string }[]): Promise<void> {
    await Promise.all(
      pairs.map(async (pair) => {
        const ok = await Promise.all(
          conntrackFlushArgs([pair]).map((a) =>
            this.host.conntrack(a).then(
              () => true,
              (e: unknown) => (this.ctx.log(this.name, `conntrack ${a.join(' ')}: ${errorMessage(e)}`), false),
            ),
          ),
        );
        if (ok.every(Boolean)) this.st.conntrackFlushes++;
      }),
    );
  }

  /** Gratuitous ARP on a schedule, so a lost announcement does not strand traffic. */
  private announce(ip: string): void {
    this.cancelAnnounce(ip);
    const timers = (this.o.garpScheduleMs ?? GARP_SCHEDULE_MS).map((ms) =>
      setTimeout(() => {
        if (!this.owned.has(ip) || this.stopped) return;
        if (this.stale || this.probing.has(ip) || !this.licensed()) {
          this.st.garpsWithheld++;
          return;
        }
        this.host.arping(this.uplink, ip).then(
          () => void this.st.garps++,
          (e) => this.ctx.log(this.name, `gratuitous ARP for ${ip}: ${errorMessage(e)}`),
        );
      }, ms),
    );
    this.garpTimers.set(ip, timers);
  }

  private cancelAnnounce(ip: string): void {
    for (const t of this.garpTimers.get(ip) ?? []) clearTimeout(t);
    this.garpTimers.delete(ip);
  }

  /**
   * Whether this node may claim its IPs on the segment now: the same licence as the ARP fence's
   * (aliveLine). A gratuitous ARP goes out through a packet socket, past the nft ARP fence, so the
   * announcement schedule must check it itself: before, a holder cut off from the controller went
   * on announcing its IP from its schedule after its fence had closed and the IP had moved
   * (split-brain.test.ts, counting announcements as claims: the old holder's announcement 0.8 s after
   * the new holder's first claim).
   */
  private licensed(): boolean {
    if (this.ctx.licence.downs() !== this.downsSeen) return false;
    const until = this.ctx.licence.until();
    return until === undefined || until - ARP_FENCE_MARGIN_MS > Date.now();
  }

  private get dadMs(): number {
    return this.o.dadProbeMs ?? DAD_PROBE_MS;
  }

  /**
   * Address conflict detection for a floating IP being taken (DAD_PROBE_MS): until a probe comes
   * back unanswered the IP stays out of the ARP fence's @alive set and is not announced, and a probe
   * that another host answered is tried again every DAD_RETRY_MS. An answer from a cooperating old
   * holder ends within its fence time; one that goes on past DAD_REPORT_AFTER_MS is a Warning Event
   * (EgressIPConflict) naming the MAC. A probe that cannot be sent (arping missing) does not hold
   * the IP: logged, and the IP is answered for as before.
   */
  private probe(ip: string): void {
    if (this.dadMs <= 0 || this.stopped) return;
    const existing = this.probing.get(ip);
    if (existing && !existing.retry) return; // one on its way
    const state: ProbeState = existing ?? { since: Date.now(), mac: null, reported: false, retry: null, seq: 0 };
    if (state.retry) clearTimeout(state.retry);
    state.retry = null;
    state.seq = ++this.probeSeq;
    const seq = state.seq;
    this.probing.set(ip, state);
    this.st.dadProbes++;
    void this.host.arpProbe(this.uplink, ip, this.dadMs).then(
      (mac) => this.probed(ip, seq, mac),
      (e: unknown) => {
        this.ctx.log(this.name, `address conflict probe for ${ip}: ${errorMessage(e)} (answering for it without one)`);
        this.probed(ip, seq, null);
      },
    );
  }

  private probed(ip: string, seq: number, mac: string | null): void {
    const state = this.probing.get(ip);
    // released (and maybe taken again) since: the result is not this take's
    if (!state || state.seq !== seq || this.stopped) return;
    if (!mac) {
      this.endProbe(ip);
      if (state.mac) {
        this.ctx.log(
          this.name,
          `floating IP ${ip}: ${state.mac} no longer answers for it (after ${Date.now() - state.since} ms): answering and announcing it here`,
        );
        if (state.reported)
          this.ctx.events.record('Normal', 'EgressIPConflictResolved', `floating IP ${ip}: ${state.mac} no longer answers for it; announced here`);
      }
      // after the apply under way, if any (it may be adding the address, or rebuilding the table
      // and with it the fence's elements)
      const answer = (): void => {
        if (this.stopped || !this.owned.has(ip) || this.probing.has(ip)) return;
        void this.refreshAliveNow();
        this.announce(ip);
      };
      if (this.running) void this.running.then(answer, answer);
      else answer();
      return;
    }
    this.st.dadConflicts++;
    if (state.mac !== mac) {
      state.mac = mac;
      this.ctx.log(
        this.name,
        `floating IP ${ip} is answered by ${mac}: not answered or announced here until that stops (probing every ${this.o.dadRetryMs ?? DAD_RETRY_MS} ms)`,
      );
    }
    const lasting = Date.now() - state.since;
    if (!state.reported && lasting >= (this.o.dadReportAfterMs ?? DAD_REPORT_AFTER_MS)) {
      state.reported = true;
      this.ctx.events.record(
        'Warning',
        'EgressIPConflict',
        `floating IP ${ip} assigned to this node is answered on ${this.uplink} by ${mac} for ${lasting} ms: not answered or announced here until that stops`,
      );
    }
    state.retry = setTimeout(() => this.probe(ip), this.o.dadRetryMs ?? DAD_RETRY_MS);
  }

  /** The IP's probing ends (clean, released, or the module stops): its retry with it. */
  private endProbe(ip: string): void {
    const state = this.probing.get(ip);
    if (state?.retry) clearTimeout(state.retry);
    this.probing.delete(ip);
  }

  /** Refreshes the ARP fence now (a probe came back clean): the same line as the refresh timer's. */
  private async refreshAliveNow(): Promise<void> {
    const text = this.aliveLine([...this.owned]);
    if (!text) return;
    await this.host.nftLine(text).catch((e: unknown) => this.ctx.log(this.name, `ARP fence refresh: ${errorMessage(e)}`));
  }

  private async refreshAlive(): Promise<void> {
    const now = Date.now();
    const gap = this.lastAliveTick ? now - this.lastAliveTick : 0;
    this.lastAliveTick = now;
    // with a licence, a stall needs no re-read: the heartbeat thread went on refreshing only while
    // the controller kept the node Up, and a Down in between is seen in the acknowledgements
    if (gap > STALE_AFTER_MS && this.owned.size && !this.stale && !this.stopped && this.ctx.licence.until() === undefined) this.confirmAfterStall(gap);
    if (this.stopped || this.running || this.owned.size === 0 || this.stale) return;
    const text = this.aliveLine([...this.owned]);
    if (!text) return;
    try {
      // one line, five times a second: through the long-lived nft session where the system has one
      await this.host.nftLine(text);
    } catch (e) {
      this.ctx.log(this.name, `ARP fence refresh: ${errorMessage(e)}`);
    }
  }

  /**
   * How long the ARP fence may keep an owned IP alive from `now` (ms): ARP_ALIVE_TIMEOUT_MS, but
   * never past the controller's licence less ARP_FENCE_MARGIN_MS (keepalived's rule: the fence is
   * shorter than the decision it protects); 0 once the licence has run out (aliveLine, its one
   * caller, has already refused while a re-read is pending). A controller that never acknowledged a
   * heartbeat (no beacon) leaves the fixed bound.
   */
  private aliveBudgetMs(now: number): number {
    const until = this.ctx.licence.until();
    if (until === undefined) return ARP_ALIVE_TIMEOUT_MS;
    return Math.max(0, Math.min(ARP_ALIVE_TIMEOUT_MS, Math.floor(until - ARP_FENCE_MARGIN_MS - now)));
  }

  /**
   * The one way the ARP fence is kept alive (refresh timer, applies): the nft line that keeps `ips`
   * answered for the licensed time, or null. Null while a re-read is pending, while the licence has
   * run out (the elements expire by themselves in the kernel, whether or not this agent runs), and
   * when the acknowledgements say the controller had this node Down since the last look: the
   * controller may have moved the IPs meanwhile, so a fresh read of the gateway status comes first
   * (confirmAfterStall; an IP that moved is released by the apply that follows).
   */
  private aliveLine(all: readonly string[]): string | null {
    // an IP whose conflict probe has not come back clean is not answered for yet
    const ips = this.probing.size ? all.filter((ip) => !this.probing.has(ip)) : all;
    if (this.stopped || this.stale || !ips.length) {
      this.ctx.licence.arm(null);
      return null;
    }
    const downs = this.ctx.licence.downs();
    if (downs !== this.downsSeen) {
      this.ctx.licence.arm(null);
      this.downsSeen = downs;
      this.confirmAfterStall(0, 'the controller had this node Down since its previous acknowledgement');
      return null;
    }
    // the heartbeat thread keeps these IPs' elements refreshed on every acknowledgement too: a
    // stall of this loop longer than the licensed element time does not silence a healthy holder
    this.ctx.licence.arm({ table: GW_TABLE, ips, marginMs: ARP_FENCE_MARGIN_MS, maxMs: ARP_ALIVE_TIMEOUT_MS, downs });
    const now = Date.now();
    const budget = this.aliveBudgetMs(now);
    if (budget <= 0) {
      if (!this.lapsed) {
        this.lapsed = true;
        this.st.licenceLapses++;
        this.ctx.log(
          this.name,
          `the controller has acknowledged no heartbeat recently enough (licence ran out ${now - (this.ctx.licence.until() ?? now)} ms ago, ` +
            `margin ${ARP_FENCE_MARGIN_MS} ms): ARP fence lapsed for ${ips.join(', ')} until heartbeats are acknowledged again`,
        );
      }
      return null;
    }
    if (this.lapsed) {
      this.lapsed = false;
      this.ctx.log(this.name, `heartbeats acknowledged again (the controller did not have this node Down): ARP fence refreshed for ${ips.join(', ')}`);
    }
    return renderAliveRefresh(ips, { aliveTimeoutMs: budget });
  }

  /**
   * This agent did not run for `gapMs` (longer than a refresh period allows): it may have been
   * paused past the controller's expiry, and its floating IPs may be held by another node now. Its
   * ARP fence lapses (no refresh, no gratuitous ARP) until a fresh read of the gateway status
   * says what it holds; if an IP moved, the apply that follows releases it before the fence could
   * be refreshed again. A node that was merely slow confirms within one read and loses nothing (the
   * fence element outlives the read).
   */
  private confirmAfterStall(gapMs: number, why = `did not run for ${gapMs} ms`): void {
    this.stale = { since: Date.now(), gapMs };
    this.st.staleConfirms++;
    this.ctx.log(this.name, `${why}: ARP fence and announcements held until the gateway status is re-read`);
    const attempt = (): void => {
      if (this.stopped) return;
      const downs = this.ctx.licence.downs();
      void this.readGateway(2000).then(
        (o) => {
          this.cacheGateway(o);
          if (this.ctx.licence.downs() !== downs) {
            // the controller had this node Down while the read was on its way: read again
            this.downsSeen = this.ctx.licence.downs();
            attempt();
            return;
          }
          const assignments = gatewayFromObject(o)?.assignments ?? {};
          const lost = [...this.owned].filter((ip) => assignments[ip] !== this.ctx.config.nodeName);
          if (lost.length) {
            // released by the apply this triggers; the fence stays down until then
            this.ctx.log(this.name, `after the stall: ${lost.join(', ')} now held elsewhere (or unassigned): releasing`);
            this.releaseThenFresh = true;
            void this.kick('stall', true);
          } else {
            this.ctx.log(this.name, `after the stall: still the holder of ${[...this.owned].join(', ') || 'nothing'}; ARP fence refreshed again`);
            this.stale = null;
            void this.refreshAlive();
          }
        },
        (e) => {
          this.ctx.log(this.name, `after the stall: cannot re-read the gateway status (${errorMessage(e)}): retrying`);
          setTimeout(attempt, 250).unref();
        },
      );
    };
    attempt();
  }

  private report(prev: GatewayPlan | null, plan: GatewayPlan, trigger: string, latencyMs: number | null): void {
    const lat = latencyMs === null ? '' : ` ${latencyMs} ms after the ${trigger} change`;
    const prevOwned = new Set(prev?.ownedIPs.map((o) => o.ip) ?? []);
    const nextOwned = new Set(plan.ownedIPs.map((o) => o.ip));
    for (const ip of nextOwned)
      if (!prevOwned.has(ip)) {
        this.ctx.log(this.name, `took floating IP ${ip} on ${this.uplink}${lat}`);
        this.ctx.events.record('Normal', 'EgressGatewayIPTaken', `floating IP ${ip} added to ${this.uplink} and announced (gratuitous ARP)`);
      }
    for (const ip of prevOwned)
      if (!nextOwned.has(ip)) {
        this.ctx.log(this.name, `released floating IP ${ip}${lat}`);
        this.ctx.events.record('Normal', 'EgressGatewayIPReleased', `floating IP ${ip} removed from ${this.uplink}`);
      }
    const before = new Map((prev?.policies ?? []).map((p) => [p.name, p]));
    for (const p of plan.policies) {
      const b = before.get(p.name);
      const sig = (x: typeof p): string => `${x.action}|${x.holder}|${x.snatHere}|${x.localSources.join(',')}`;
      if (b && sig(b) === sig(p)) continue;
      this.ctx.log(
        this.name,
        `policy ${p.name}: ${p.action} for ${p.localSources.length} local pod(s) [${p.localSources.join(' ')}]${p.snatHere ? `, SNAT of ${p.allSources.length} source(s) to ${p.egressSourceIP} here` : ''} — ${p.reason}${lat}`,
      );
      if (p.action === 'drop' && p.localSources.length && b?.action !== 'drop') {
        this.ctx.events.record('Warning', 'EgressTrafficFailClosed', `policy ${p.name}: traffic of ${p.localSources.length} local pod(s) dropped: ${p.reason}`);
      }
    }
    for (const w of plan.warnings) if (!prev?.warnings.includes(w)) this.ctx.log(this.name, `warning: ${w}`);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.debounce) clearTimeout(this.debounce);
    if (this.resync) clearInterval(this.resync);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.stopHolderTimers();
    for (const ip of [...this.garpTimers.keys()]) this.cancelAnnounce(ip);
    for (const ip of [...this.probing.keys()]) this.endProbe(ip);
    this.heartbeat?.stop();
    await this.running?.catch(() => undefined);
    this.host.close();
    await Promise.all(Object.values(this.informers).map((i) => i.stop()));
    // conntrackd is part of the datapath left as programmed: the next agent adopts it (its caches
    // survive the restart); removeRulesOnStop ends it
    this.ctsyncLeft =
      (await this.ctsync?.stop({ leave: !this.ctx.config.removeRulesOnStop }).catch((e: unknown) => {
        this.ctx.log(this.name, `stopping conntrackd: ${errorMessage(e)}`);
        return null;
      })) ?? null;
    this.ctsync = null; // the fail-closed leftover below removes its nft table too
    if (!this.ctx.config.removeRulesOnStop || !this.lastPlan) {
      this.ctx.log(this.name, 'stopped: datapath left as it is');
      return;
    }
    // fail-closed leftover: no floating IP, every policy dropping, guard on
    const input = this.input();
    const closed = computeGatewayPlan({ ...input, gateway: null, fenced: true });
    // decommissioning: no entry is kept for a next treatment (a drop keeps them otherwise), so a
    // pair that leaves every policy before the next agent runs has no stale binding left
    this.treatments = null;
    this.forwarded = null;
    this.kept.clear();
    try {
      await this.program(closed, true);
      this.ctx.log(this.name, `stopped: floating IPs released; table ${GW_TABLE} left fail-closed (matched traffic dropped)`);
    } catch (e) {
      this.ctx.log(this.name, `stop: ${errorMessage(e)}`);
    }
  }

  status(): Record<string, unknown> {
    const p = this.lastPlan;
    const policies: PolicyStatus[] = (p?.policies ?? []).map((x) => ({
      name: x.name,
      egressSourceIP: x.egressSourceIP,
      holder: x.holder,
      action: x.action,
      localSources: x.localSources,
      allSources: x.allSources.length,
      snatHere: x.snatHere,
      reason: x.reason,
    }));
    return {
      uplink: this.uplink,
      synced: this.synced,
      fenced: this.fenced,
      table: GW_TABLE,
      ownedIPs: [...this.owned].sort(),
      /** owned IPs not answered for yet: their conflict probe has not come back clean (with the MAC that answered) */
      probing: Object.fromEntries([...this.probing].sort().map(([ip, s]) => [ip, s.mac])),
      policies,
      routes: (p?.routes ?? []).map((r) => ({ node: r.node, via: r.ip, fwmark: `0x${r.fwmark.toString(16)}`, table: r.table })),
      networkPolicyIsolatedPods: (p?.netpol.pods ?? []).map((x) => ({ ip: x.ip, pod: x.pod, policies: x.policies })),
      warnings: p?.warnings ?? [],
      ...this.st,
      conntrackSync: this.ctsync
        ? this.ctsync.status()
        : this.ctsyncLeft !== null
          ? { enabled: true, running: false, leftForNextAgent: this.ctsyncLeft }
          : this.conntrackSyncWanted() && !this.ctsyncError
            ? { enabled: true, running: false, waiting: 'for a gateway with a floating IP' }
            : { enabled: false, ...(this.ctsyncError ? { error: this.ctsyncError } : {}) },
      ...(this.heartbeat ? { heartbeat: this.heartbeat.status() } : {}),
    };
  }
}

/** A short account of misboundBindings for the log: how many, and the first few. */
function describeMisbound(list: readonly MisboundBinding[]): string {
  const one = (b: MisboundBinding) => `${b.src}${b.net ? ` -> ${b.net} mask ${b.mask}` : ''}: not ${b.ip}`;
  return `${list.length} deletion(s): ${list.slice(0, 4).map(one).join('; ')}${list.length > 4 ? `; ${list.length - 4} more` : ''}`;
}
