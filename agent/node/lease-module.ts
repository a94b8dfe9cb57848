/**
 * Node liveness: the beacon (beacon.ts: authenticated UDP heartbeats to the controller every
 * heartbeatIntervalMs while this node holds a floating IP, every idleHeartbeatIntervalMs otherwise,
 * from a thread of its own) is what the controller's failure detector listens
 * to; the Lease kube-node-lease/<node> is renewed every leaseRenewIntervalMs as well (10 s, like
 * kubelet: what `kubectl get lease` shows, and a second liveness signal). The controller declares
 * the node Down when neither arrived for its expiry. Logs the first renewal, the first failure of a
 * run of failures and the recovery.
 */
import { readFileSync } from 'node:fs';
import { Beacon } from './beacon.js';
import { NODE_LEASE_NAMESPACE, startLeaseRenewer, type LeaseRenewer } from '../../lib/kube/lease.js';
import { errorMessage, type NodeModule, type NodeModuleContext } from './module.js';
import { settleWithin } from '../../lib/time/settle.js';

export class LeaseModule implements NodeModule {
  readonly name = 'lease';
  private renewer: LeaseRenewer | null = null;
  private watch: NodeJS.Timeout | null = null;
  private failures = 0;
  private lastError: { at: string; message: string } | null = null;
  private seenRenewals = 0;
  private stopped = false;
  private beacon: Beacon | null = null;

  constructor(
    private readonly ctx: NodeModuleContext,
    private readonly o: { beacon?: boolean } = {},
  ) {}

  async start(): Promise<void> {
    const { nodeName, leaseRenewIntervalMs, heartbeatIntervalMs } = this.ctx.config;
    if ((this.o.beacon ?? true) && heartbeatIntervalMs > 0) {
      const c = this.ctx.config;
      const target = new URL(c.apiServer).hostname.replace(/^\[|\]$/g, '');
      this.beacon = new Beacon({
        node: nodeName,
        token: readFileSync(c.tokenFile, 'utf8').trim(),
        bind: c.nodeIP,
        target,
        port: c.heartbeatPort,
        intervalMs: heartbeatIntervalMs,
        idleIntervalMs: c.idleHeartbeatIntervalMs,
        log: (m) => this.ctx.log(this.name, m),
      });
      const beacon = this.beacon;
      beacon.setFast(this.ctx.holding.value);
      this.ctx.holding.on((holds) => {
        beacon.setFast(holds);
        this.ctx.log(
          this.name,
          holds
            ? `holding a floating IP: heartbeats every ${heartbeatIntervalMs} ms`
            : `holding no floating IP: heartbeats every ${c.idleHeartbeatIntervalMs} ms`,
        );
      });
      beacon.start();
      this.ctx.licence.setSource({ until: () => beacon.licenceUntil(), downs: () => beacon.downsSeen(), arm: (f) => beacon.setFence(f) });
      // the first Lease renewal must not come before the heartbeats: a renewal alone marks the node
      // Up, and a heartbeat thread still starting (a busy machine) would then let it expire once
      const first = await settleWithin(this.beacon.first, 5000, this.ctx.stopping);
      if (first === 'stopped') return;
      this.ctx.log(
        this.name,
        `heartbeats to ${target}:${c.heartbeatPort} every ${heartbeatIntervalMs} ms while holding a floating IP, else every ${c.idleHeartbeatIntervalMs} ms${first === 'done' ? '' : ' (none sent within 5 s: renewing the Lease anyway)'}`,
      );
    }
    this.ctx.log(this.name, `renewing ${NODE_LEASE_NAMESPACE}/${nodeName} every ${leaseRenewIntervalMs} ms`);
    // the Lease says whether this agent beats: the controller then brings the node back Up by a heartbeat only
    this.renewer = startLeaseRenewer(this.ctx.client, nodeName, leaseRenewIntervalMs, (e) => this.onError(e), this.beacon ? heartbeatIntervalMs : 0);
    // Observe successes (the renewer only reports failures) to log the first renewal and recoveries.
    this.watch = setInterval(() => this.observe(), Math.max(10, Math.floor(leaseRenewIntervalMs / 2)));
    this.watch.unref();
  }

  private observe(): void {
    const r = this.renewer;
    if (!r || r.renewals === this.seenRenewals) return;
    const first = this.seenRenewals === 0;
    this.seenRenewals = r.renewals;
    if (first) {
      this.ctx.log(this.name, `first renewal of ${NODE_LEASE_NAMESPACE}/${this.ctx.config.nodeName} acknowledged`);
      this.ctx.statusChanged();
    }
    if (this.failures > 0) {
      this.ctx.log(this.name, `renewals resumed after ${this.failures} failure(s)`);
      this.failures = 0;
      this.ctx.statusChanged();
    }
  }

  private onError(e: unknown): void {
    if (this.stopped) return;
    this.observe();
    this.failures++;
    const message = errorMessage(e);
    if (this.failures === 1 || this.lastError?.message !== message) {
      this.ctx.log(this.name, `renewal failed (will retry every ${this.ctx.config.leaseRenewIntervalMs} ms): ${message}`);
      this.ctx.statusChanged();
    }
    this.lastError = { at: new Date().toISOString(), message };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.beacon?.stop();
    if (this.watch) clearInterval(this.watch);
    if (this.renewer) {
      await this.renewer.stop();
      this.ctx.log(this.name, `stopped renewing after ${this.renewer.renewals} renewal(s)`);
    }
  }

  status(): Record<string, unknown> {
    const r = this.renewer;
    return {
      lease: `${NODE_LEASE_NAMESPACE}/${this.ctx.config.nodeName}`,
      renewIntervalMs: this.ctx.config.leaseRenewIntervalMs,
      renewals: r?.renewals ?? 0,
      lastRenewedAt: r?.lastRenewal ? new Date(r.lastRenewal).toISOString() : null,
      consecutiveFailures: this.failures,
      lastError: this.lastError,
      running: !!r && !this.stopped,
      ...(this.beacon ? { heartbeat: this.beacon.status() } : {}),
    };
  }
}
