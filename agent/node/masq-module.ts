/**
 * Pod-traffic SNAT on this node, per the cluster flavour (SPEC 1):
 *
 *  - ip-masq-agent / autopilot: the MasqAgent (agent/masq/agent.ts) reading the projected ConfigMap
 *    file; its events become Kubernetes Events on this node's Node object;
 *  - default-snat (no agent, disableDefaultSnat: false): the default-list ruleset, applied once
 *    (retried until nft accepts it);
 *  - none (disableDefaultSnat: true): no SNAT; leftovers of another flavour's table are removed.
 *
 * A node without a pod CIDR has nothing to masquerade: its table is removed and nothing else runs.
 * stop() (SIGTERM) leaves the rules in the kernel (an agent restart must not leave the node without
 * them); with removeRulesOnStop: true it removes them (decommission).
 */
import { sha16 } from '../hash.js';
import { MasqAgent } from '../masq/agent.js';
import { canonicalConfigJson, defaultMasqConfig } from '../masq/config.js';
import { MASQ_TABLE } from '../masq/constants.js';
import type { Host } from '../host/host.js';
import { renderFlavour, renderMasqRemoval } from '../masq/render.js';
import { errorMessage, type NodeModule, type NodeModuleContext } from './module.js';

type Mode = 'ip-masq-agent' | 'default-snat' | 'none';

interface OneShotState {
  configHash: string | null;
  rulesetHash: string | null;
  appliedAt: string | null;
  ruleCount: number;
  setElements: number;
  lastError: { at: string; reason: string; message: string } | null;
  status: 'starting' | 'running' | 'stopped';
  rulesRemoved?: boolean;
}

export class MasqModule implements NodeModule {
  readonly name = 'masq';
  private readonly mode: Mode;
  private agent: MasqAgent | null = null;
  private readonly one: OneShotState = {
    configHash: null,
    rulesetHash: null,
    appliedAt: null,
    ruleCount: 0,
    setElements: 0,
    lastError: null,
    status: 'starting',
  };
  private retry: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly reason: string;

  constructor(
    private readonly ctx: NodeModuleContext,
    private readonly host: Host,
  ) {
    const f = ctx.config.flavour;
    const noPods = ctx.config.podCIDRs.length === 0;
    this.mode = noPods ? 'none' : f === 'ip-masq-agent' || f === 'autopilot' ? 'ip-masq-agent' : f;
    this.reason = noPods && f !== 'none' ? 'node has no pod CIDR: nothing to masquerade' : `flavour ${f}`;
  }

  async start(): Promise<void> {
    const c = this.ctx.config;
    this.ctx.log(this.name, `mode ${this.mode} (${this.reason})`);
    if (this.mode === 'ip-masq-agent') {
      this.agent = new MasqAgent({
        host: this.host,
        podCidrs: c.podCIDRs,
        configPath: c.ipMasqAgentConfigPath,
        statePath: c.masqStatePath,
        log: (line) => {
          this.ctx.log('ip-masq-agent', line.replace(/^ip-masq-agent: /, ''));
          this.ctx.statusChanged();
        },
        onEvent: (reason, message, type) => this.ctx.events.record(type, reason, message),
      });
      await this.agent.start();
      return;
    }
    await this.applyOneShot();
  }

  private async applyOneShot(): Promise<void> {
    if (this.stopped) return;
    const c = this.ctx.config;
    const r = this.mode === 'default-snat' ? renderFlavour({ kind: 'default-snat' }, { podCidrs: c.podCIDRs }) : null;
    const ruleset = r ? r.ruleset : renderMasqRemoval();
    try {
      await this.host.nftApply(ruleset);
    } catch (e) {
      const message = errorMessage(e);
      const first = this.one.lastError?.message !== message;
      this.one.lastError = { at: new Date().toISOString(), reason: 'MasqApplyFailed', message };
      if (first) {
        this.ctx.log(this.name, `nft failed (retrying every 2 s): ${message}`);
        this.ctx.events.record('Warning', 'MasqApplyFailed', `${this.mode}: ${message}`);
      }
      this.ctx.statusChanged();
      this.retry = setTimeout(() => void this.applyOneShot(), 2000);
      return;
    }
    this.one.lastError = null;
    this.one.status = 'running';
    this.one.appliedAt = new Date().toISOString();
    this.one.rulesetHash = r ? sha16(r.ruleset) : null;
    this.one.configHash = r ? sha16(canonicalConfigJson(defaultMasqConfig())) : null;
    this.one.ruleCount = r?.ruleCount ?? 0;
    this.one.setElements = r?.nonMasqElements.length ?? 0;
    if (r) {
      const msg = `default SNAT (disableDefaultSnat: false): ${r.nonMasqElements.length} default non-masquerade CIDRs, table ${MASQ_TABLE}`;
      this.ctx.log(this.name, `applied ${msg}`);
      this.ctx.events.record('Normal', 'DefaultSnatApplied', msg);
    } else {
      this.ctx.log(this.name, `no SNAT: table ${MASQ_TABLE} absent (${this.reason})`);
    }
    this.ctx.statusChanged();
  }

  programmed(): boolean {
    return (this.agent ? this.agent.getState().appliedAt : this.one.appliedAt) !== null;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    const remove = this.ctx.config.removeRulesOnStop;
    if (this.agent) {
      await this.agent.stop({ removeRules: remove });
      return;
    }
    this.one.status = 'stopped';
    if (this.mode !== 'default-snat') return;
    if (!remove) {
      this.ctx.log(this.name, 'stopped: default SNAT rules left in place');
      return;
    }
    try {
      await this.host.nftApply(renderMasqRemoval());
      this.one.rulesRemoved = true;
      this.ctx.log(this.name, 'stopped: default SNAT rules removed');
    } catch (e) {
      this.one.rulesRemoved = false;
      this.ctx.log(this.name, `stop: failed to remove rules: ${errorMessage(e)}`);
    }
  }

  status(): Record<string, unknown> {
    if (this.agent) {
      const s = this.agent.getState();
      return {
        mode: this.mode,
        status: s.status,
        configSource: s.configSource,
        configHash: s.configHash,
        rulesetHash: s.rulesetHash,
        appliedAt: s.appliedAt,
        ruleCount: s.ruleCount,
        setElements: s.setElements,
        masqLinkLocal: s.masqLinkLocal,
        applies: s.applies,
        repairs: s.repairs,
        lastApply: s.lastApply,
        lastSyncAt: s.lastSyncAt,
        lastError: s.lastError ? { at: s.lastError.at, reason: s.lastError.reason, message: s.lastError.message } : null,
        warnings: s.warnings.length,
        statePath: this.ctx.config.masqStatePath,
        ...(s.rulesRemoved !== undefined ? { rulesRemoved: s.rulesRemoved } : {}),
      };
    }
    return {
      mode: this.mode,
      reason: this.reason,
      status: this.one.status,
      configSource: this.mode === 'default-snat' ? 'defaults' : null,
      configHash: this.one.configHash,
      rulesetHash: this.one.rulesetHash,
      appliedAt: this.one.appliedAt,
      ruleCount: this.one.ruleCount,
      setElements: this.one.setElements,
      lastError: this.one.lastError,
      ...(this.one.rulesRemoved !== undefined ? { rulesRemoved: this.one.rulesRemoved } : {}),
    };
  }
}
