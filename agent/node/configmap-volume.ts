/**
 * ConfigMap kube-system/ip-masq-agent, key `config`, projected into a file the way a kubelet mounts
 * a ConfigMap volume (agent/node/atomic-writer.ts: `..data` symlink swap), kept in sync through an
 * informer (list + watch, reconnect, resume). Deleting the ConfigMap (or the key) removes the file,
 * so the masquerade agent falls back to its defaults. While the API server is unreachable the last
 * projected content stays (as with a kubelet).
 *
 * The masquerade module starts after this one's first sync (or after startupSyncTimeoutMs), so the
 * node never programs the defaults for a moment when a ConfigMap exists.
 */
import { sha16 as hash } from '../hash.js';
import { basename, dirname } from 'node:path';
import { R, type Informer } from '../../lib/kube/client.js';
import type { KubeObject } from '../../lib/kube/types.js';
import { readProjected, writePayload } from './atomic-writer.js';
import { errorMessage, type NodeModule, type NodeModuleContext } from './module.js';
import { settleWithin } from '../../lib/time/settle.js';

export class ConfigMapVolumeModule implements NodeModule {
  readonly name = 'projection';
  private informer: Informer | null = null;
  private synced = false;
  private present: boolean | null = null;
  private contentHash: string | null = null;
  private lastChangeAt: string | null = null;
  private changes = 0;
  private lastError: { at: string; message: string } | null = null;
  private readonly dir: string;
  private readonly file: string;

  constructor(private readonly ctx: NodeModuleContext) {
    this.dir = dirname(ctx.config.ipMasqAgentConfigPath);
    this.file = basename(ctx.config.ipMasqAgentConfigPath);
  }

  private get ref(): string {
    const m = this.ctx.config.ipMasqConfigMap;
    return `${m.namespace}/${m.name}[${m.key}]`;
  }

  async start(): Promise<void> {
    const { namespace, name } = this.ctx.config.ipMasqConfigMap;
    // Leave a previous run's projection in place until the API says otherwise.
    const prev = readProjected(this.dir).files[this.file];
    if (prev !== undefined) {
      this.present = true;
      this.contentHash = hash(prev);
    }
    writePayload(this.dir, prev === undefined ? {} : { [this.file]: prev });
    this.ctx.log(
      this.name,
      `projecting ${this.ref} into ${this.ctx.config.ipMasqAgentConfigPath}${prev !== undefined ? ` (keeping the previous projection ${this.contentHash} until the first sync)` : ''}`,
    );
    const apply = (cm: KubeObject | undefined, why: string): void => this.apply(cm, why);
    this.informer = this.ctx.client.informer(
      R.configmaps,
      { namespace, fieldSelector: `metadata.name=${name}` },
      {
        onAdd: (o) => apply(o, 'added'),
        onUpdate: (o) => apply(o, 'updated'),
        onDelete: () => apply(undefined, 'deleted'),
        onSync: (items) => {
          apply(
            items.find((o) => o.metadata.name === name),
            'listed',
          );
          if (!this.synced) {
            this.synced = true;
            this.ctx.log(this.name, `first sync done: ConfigMap ${namespace}/${name} ${items.length ? 'exists' : 'absent'}`);
            this.ctx.statusChanged();
          }
        },
        onError: (e) => {
          const message = errorMessage(e);
          if (this.lastError?.message !== message) this.ctx.log(this.name, `watch ${namespace}/${name} failed (retrying): ${message}`);
          this.lastError = { at: new Date().toISOString(), message };
          this.ctx.statusChanged();
        },
      },
    );
    const timeout = this.ctx.config.startupSyncTimeoutMs;
    if ((await settleWithin(this.informer.hasSynced(), timeout, this.ctx.stopping)) === 'timeout')
      this.ctx.log(
        this.name,
        `no sync with the API server within ${timeout} ms: going on with ${this.present ? 'the previous projection' : 'no file (defaults)'}; the file follows the ConfigMap once the API answers`,
      );
  }

  private apply(cm: KubeObject | undefined, why: string): void {
    const key = this.ctx.config.ipMasqConfigMap.key;
    const data = (cm as { data?: Record<string, unknown> } | undefined)?.data;
    const v = data?.[key];
    const value = typeof v === 'string' ? v : undefined;
    try {
      const changed = writePayload(this.dir, value === undefined ? {} : { [this.file]: value });
      if (this.lastError) {
        this.lastError = null;
        this.ctx.statusChanged();
      }
      if (!changed) return;
      this.changes++;
      this.present = value !== undefined;
      this.contentHash = value === undefined ? null : hash(value);
      this.lastChangeAt = new Date().toISOString();
      this.ctx.log(
        this.name,
        value === undefined
          ? `removed ${this.ctx.config.ipMasqAgentConfigPath} (ConfigMap ${cm ? `has no key ${key}` : why === 'deleted' ? 'deleted' : 'absent'})`
          : `wrote ${this.ctx.config.ipMasqAgentConfigPath} (${Buffer.byteLength(value)} bytes, sha256 ${this.contentHash}, ConfigMap ${why}, rv ${cm?.metadata.resourceVersion ?? '?'})`,
      );
      this.ctx.statusChanged();
    } catch (e) {
      this.lastError = { at: new Date().toISOString(), message: `projection failed: ${errorMessage(e)}` };
      this.ctx.log(this.name, this.lastError.message);
      this.ctx.statusChanged();
    }
  }

  async stop(): Promise<void> {
    await this.informer?.stop();
    this.ctx.log(this.name, 'stopped watching (the projected file stays, as after a kubelet restart)');
  }

  status(): Record<string, unknown> {
    return {
      configMap: this.ref,
      path: this.ctx.config.ipMasqAgentConfigPath,
      synced: this.synced,
      present: this.present ?? false,
      contentSha256: this.contentHash,
      lastChangeAt: this.lastChangeAt,
      changes: this.changes,
      lastError: this.lastError,
    };
  }
}
