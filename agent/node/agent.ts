/**
 * The node agent: the process every lab node runs (agent/main.ts is its entry point). It starts one
 * module per feature, in order, and stops them in reverse order:
 *
 *   lease       node liveness: authenticated UDP heartbeats to the controller from a thread of their
 *               own (beacon.ts), and the Lease kube-node-lease/<node> renewed every leaseRenewIntervalMs
 *   projection  ConfigMap kube-system/ip-masq-agent[config] -> file, kubelet-style
 *               (flavours ip-masq-agent and autopilot only)
 *   gateway     the egress NAT gateway datapath (gateway-module.ts, docs/gateway.md), before masq so that
 *               a matched pod is never masqueraded while the agent starts
 *   masq        the masquerade datapath for the flavour (MasqAgent / default SNAT / none)
 *
 * plus the shared pieces every module gets through NodeModuleContext: the API client (node
 * identity), the Event recorder (Events on this node's Node) and the status file.
 */
import { readFile } from 'node:fs/promises';
import { KubeClient } from '../../lib/kube/client.js';
import type { AgentConfig } from '../config.js';
import { BOOT_GUARD_TABLE } from '../gateway/constants.js';
import { ExecHost } from '../host/exec-host.js';
import type { Host } from '../host/host.js';
import { ConfigMapVolumeModule } from './configmap-volume.js';
import { NodeEventRecorder } from './node-events.js';
import { LeaseModule } from './lease-module.js';
import { MasqModule } from './masq-module.js';
import { GatewayModule } from './gateway-module.js';
import { errorMessage, Licence, Signal, type NodeModule, type NodeModuleContext } from './module.js';
import { StatusWriter } from './status-file.js';

export interface NodeAgentDeps {
  /**
   * the node's kernel (default: the real one, ExecHost with config.nftPath). An injected host (a
   * test's FakeHost) also turns off what would reach the real network: the lease beacon, the
   * gateway's heartbeats and conntrackd.
   */
  host?: Host;
  /** writes one finished log line (default: stdout) */
  write?: (line: string) => void;
  /** how often to look for missing credential files (default 200 ms) */
  credentialsPollMs?: number;
  /** how long a stop waits for queued Events to be posted (default 2000 ms) */
  eventsFlushMs?: number;
}

export type AgentPhase = 'waiting-for-credentials' | 'starting' | 'running' | 'stopping' | 'stopped';

/** How often a node whose modules have not all programmed it checks again before lifting its boot guard. */
export const BOOT_GUARD_RECHECK_MS = 500;

export function buildModules(ctx: NodeModuleContext, host: Host): NodeModule[] {
  const real = host instanceof ExecHost;
  const mods: NodeModule[] = [new LeaseModule(ctx, { beacon: real })];
  if (ctx.config.flavour === 'ip-masq-agent' || ctx.config.flavour === 'autopilot') mods.push(new ConfigMapVolumeModule(ctx));
  // egress NAT gateway (issue 6, docs/gateway.md): before masq, so that a matched pod is never
  // masqueraded while the agent starts (its fail-closed/marks are in place first)
  mods.push(new GatewayModule(ctx, real ? { host, conntrackSync: ctx.config.gatewayConntrackSync } : { host, heartbeat: false, conntrackSync: false }));
  mods.push(new MasqModule(ctx, host));
  return mods;
}

export class NodeAgent {
  private phase: AgentPhase = 'starting';
  private readonly startedAt = new Date().toISOString();
  private client: KubeClient | null = null;
  private events: NodeEventRecorder | null = null;
  private status: StatusWriter;
  private modules: NodeModule[] = [];
  private started: NodeModule[] = [];
  private stopRequested = false;
  private starting: Promise<void> | null = null;
  /** aborted by stop(): NodeModuleContext.stopping */
  private readonly stopper = new AbortController();
  private stopping: Promise<void> | null = null;
  private readonly write: (line: string) => void;
  private guardTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly config: AgentConfig,
    private readonly deps: NodeAgentDeps = {},
  ) {
    this.write = deps.write ?? ((l) => process.stdout.write(`${l}\n`));
    this.status = new StatusWriter(
      config.statusPath,
      () => this.collectStatus(),
      config.statusIntervalMs,
      (m) => this.log('status', m),
    );
  }

  log(module: string, message: string): void {
    this.write(`${new Date().toISOString()} agent[${this.config.nodeName}] ${module}: ${message}`);
  }

  /** Starts everything; resolves once every module has started (or the agent was stopped meanwhile). */
  start(): Promise<void> {
    if (!this.starting) this.starting = this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<void> {
    const c = this.config;
    this.log('agent', `starting: node ${c.nodeName} (${c.nodeIP}), flavour ${c.flavour}, pod CIDRs ${c.podCIDRs.join(',') || '(none)'}, API ${c.apiServer}`);
    this.status.start();
    const creds = await this.readCredentials();
    if (!creds) return;
    this.client = new KubeClient({
      server: c.apiServer,
      token: creds.token,
      ...(creds.ca ? { ca: creds.ca } : {}),
      insecureSkipTLSVerify: c.insecureSkipTLSVerify,
      timeoutMs: 5000,
    });
    this.events = new NodeEventRecorder({ client: this.client, node: c.nodeName, log: (m) => this.log('events', m) });
    const ctx: NodeModuleContext = {
      config: c,
      client: this.client,
      events: this.events,
      log: (m, msg) => this.log(m, msg),
      statusChanged: () => this.status.changed(),
      holding: new Signal(false),
      licence: new Licence(),
      stopping: this.stopper.signal,
    };
    const host = this.deps.host ?? new ExecHost({ nftPath: c.nftPath, onError: (m) => this.log('gateway', `nft session: ${m}`) });
    this.modules = buildModules(ctx, host);
    this.phase = 'starting';
    const failed: string[] = [];
    for (const m of this.modules) {
      if (this.stopRequested) return;
      this.started.push(m);
      try {
        await m.start();
      } catch (e) {
        failed.push(m.name);
        this.log(m.name, `failed to start: ${errorMessage(e)}`);
        this.events.record('Warning', 'AgentModuleFailed', `module ${m.name} failed to start: ${errorMessage(e)}`);
      }
      this.status.changed();
    }
    if (this.stopRequested) return;
    await this.liftBootGuard(host, failed);
    this.phase = 'running';
    this.log('agent', `running (${this.modules.map((m) => m.name).join(', ')}); status in ${c.statusPath}`);
    this.status.changed();
  }

  /**
   * Deletes the boot hook's pod guard (gateway/render.ts renderBootGuard) once every module that
   * programs the pods' traffic (NodeModule.programmed) has programmed the node: from then on the
   * node's own rules decide what its pods' traffic leaves with. Until then (a first apply that
   * failed and is being retried, a gateway still waiting for complete API caches) the guard stays:
   * the pods reach the cluster's pods only (fail closed). Checked again every BOOT_GUARD_RECHECK_MS.
   * A programming module that failed to start keeps it for good (logged). A node that did not boot
   * with the hook (an agent restarted on a running node) has no guard.
   */
  private async liftBootGuard(host: Host, failed: readonly string[]): Promise<void> {
    const programming = this.modules.filter((m) => m.programmed);
    const dead = failed.filter((name) => programming.some((m) => m.name === name));
    let said = '';
    const say = (msg: string): void => {
      if (msg !== said) this.log('agent', msg);
      said = msg;
    };
    const attempt = async (): Promise<void> => {
      this.guardTimer = null;
      if (this.stopRequested) return;
      try {
        if (!(await host.nftTableExists('ip', BOOT_GUARD_TABLE))) return;
        if (dead.length) {
          say(`the boot hook's pod guard (table ip ${BOOT_GUARD_TABLE}) stays: ${dead.join(', ')} did not start`);
          return;
        }
        const pending = programming.filter((m) => !m.programmed!()).map((m) => m.name);
        if (!pending.length) {
          await host.nftApply(`delete table ip ${BOOT_GUARD_TABLE}\n`);
          this.log('agent', `lifted the boot hook's pod guard (table ip ${BOOT_GUARD_TABLE}): this node's pods are programmed`);
          return;
        }
        say(`the boot hook's pod guard (table ip ${BOOT_GUARD_TABLE}) stays until ${pending.join(', ')} programmed this node`);
      } catch (e) {
        say(`the boot hook's pod guard (table ip ${BOOT_GUARD_TABLE}): ${errorMessage(e)} (trying again)`);
      }
      if (this.stopRequested) return; // stopped meanwhile: doStop cleared the timer already
      this.guardTimer = setTimeout(() => void attempt(), BOOT_GUARD_RECHECK_MS);
      this.guardTimer.unref?.();
    };
    await attempt();
  }

  private async readCredentials(): Promise<{ token: string; ca: string | null } | null> {
    const c = this.config;
    let logged = false;
    for (;;) {
      if (this.stopRequested) return null;
      try {
        const token = (await readFile(c.tokenFile, 'utf8')).trim();
        if (!token) throw Object.assign(new Error(`${c.tokenFile} is empty`), { code: 'ENOENT' });
        const ca = c.caFile ? await readFile(c.caFile, 'utf8') : null;
        if (logged) this.log('agent', 'credentials found');
        return { token, ca };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        if (!logged) {
          this.phase = 'waiting-for-credentials';
          this.log('agent', `waiting for credentials: ${errorMessage(e)}`);
          this.status.changed();
          logged = true;
        }
        await new Promise((r) => setTimeout(r, this.deps.credentialsPollMs ?? 200));
      }
    }
  }

  /**
   * Clean stop (SIGTERM): modules in reverse order; the lease is no longer renewed and the datapath
   * stays as programmed (removeRulesOnStop: true removes the masquerade table and leaves the gateway
   * fail-closed).
   */
  stop(): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.stopRequested = true;
    // a module still starting gives up its wait (first sync, first heartbeat) instead of holding the stop up
    this.stopper.abort();
    this.phase = 'stopping';
    this.log('agent', 'stopping');
    this.status.changed();
    if (this.guardTimer) clearTimeout(this.guardTimer);
    // a module that is still starting (e.g. waiting for the first ConfigMap sync) finishes first
    await this.starting?.catch(() => undefined);
    for (const m of [...this.started].reverse()) {
      try {
        await m.stop();
      } catch (e) {
        this.log(m.name, `stop failed: ${errorMessage(e)}`);
      }
    }
    await this.events?.stop(this.deps.eventsFlushMs ?? 2000);
    this.client?.close();
    this.phase = 'stopped';
    this.status.stop();
    this.log('agent', 'stopped');
  }

  collectStatus(): Record<string, unknown> {
    const c = this.config;
    const out: Record<string, unknown> = {
      component: 'egresslab-agent',
      pid: process.pid,
      node: c.nodeName,
      nodeIP: c.nodeIP,
      flavour: c.flavour,
      podCIDRs: c.podCIDRs,
      apiServer: c.apiServer,
      phase: this.phase,
      startedAt: this.startedAt,
    };
    for (const m of this.modules) {
      try {
        out[m.name] = m.status();
      } catch (e) {
        out[m.name] = { error: errorMessage(e) };
      }
    }
    if (this.events) out.events = this.events.stats();
    return out;
  }
}
