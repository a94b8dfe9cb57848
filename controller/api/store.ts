// The object store: objects keyed by (resource, namespace, name), a global resourceVersion counter,
// a bounded history of committed events for watch resumption, and synchronous subscribers.
// Every mutation is persisted (see persistence.ts) before subscribers are notified.
import { randomUUID } from 'node:crypto';
import { objectKey, type CommittedType, type LogEntry, type Persistence } from './persistence.js';
import type { KubeObject } from '../../lib/kube/types.js';

export interface StoreEvent {
  rv: number;
  type: CommittedType;
  rkey: string;
  object: KubeObject;
  /** previous state for MODIFIED/DELETED (undefined for ADDED) */
  old?: KubeObject;
}

export type StoreListener = (e: StoreEvent) => void;

export interface StoreOptions {
  persistence: Persistence;
  /** number of events kept for watch resumption */
  historyLimit?: number;
  /** snapshot + truncate the log after this many entries */
  compactEvery?: number;
  now?: () => Date;
}

export class Store {
  private readonly objects = new Map<string, { rkey: string; object: KubeObject }>();
  private readonly history: StoreEvent[] = [];
  private readonly listeners = new Set<StoreListener>();
  private rvCounter: number;
  /** watches may resume from any rv >= this */
  private oldestResumable: number;
  private readonly historyLimit: number;
  private readonly compactEvery: number;
  private readonly persistence: Persistence;
  readonly now: () => Date;

  constructor(opts: StoreOptions) {
    this.persistence = opts.persistence;
    this.historyLimit = opts.historyLimit ?? 20000;
    this.compactEvery = opts.compactEvery ?? 20000;
    this.now = opts.now ?? (() => new Date());
    const loaded = this.persistence.load();
    for (const [k, v] of loaded.objects) this.objects.set(k, v);
    this.rvCounter = loaded.rv;
    this.oldestResumable = loaded.snapshotRV;
    // rebuild the watch history from the log (with the previous state of each object)
    const replay = new Map<string, KubeObject>();
    for (const e of loaded.log) {
      const k = objectKey(e.rkey, e.object.metadata.namespace, e.object.metadata.name!);
      const old = replay.get(k);
      this.pushHistory({ rv: e.rv, type: e.type, rkey: e.rkey, object: e.object, old });
      if (e.type === 'DELETED') replay.delete(k);
      else replay.set(k, e.object);
    }
  }

  get resourceVersion(): number {
    return this.rvCounter;
  }

  get oldestResumableRV(): number {
    return this.oldestResumable;
  }

  get(rkey: string, ns: string | undefined, name: string): KubeObject | undefined {
    const o = this.objects.get(objectKey(rkey, ns, name));
    return o ? structuredClone(o.object) : undefined;
  }

  /** Objects of a resource, optionally in one namespace, sorted by namespace then name. */
  list(rkey: string, ns?: string): KubeObject[] {
    const out: KubeObject[] = [];
    for (const o of this.objects.values()) {
      if (o.rkey !== rkey) continue;
      if (ns !== undefined && o.object.metadata.namespace !== ns) continue;
      out.push(structuredClone(o.object));
    }
    return out.sort((a, b) => {
      const an = `${a.metadata.namespace ?? ''}/${a.metadata.name}`;
      const bn = `${b.metadata.namespace ?? ''}/${b.metadata.name}`;
      return an < bn ? -1 : an > bn ? 1 : 0;
    });
  }

  /**
   * Like list(), but the stored objects themselves, not copies (for watch streams, which only
   * serialize them): callers must not modify them. Stored objects are never modified in place (each
   * write stores a new object), so the array is a consistent snapshot.
   */
  listShared(rkey: string, ns?: string): readonly KubeObject[] {
    const out: KubeObject[] = [];
    for (const o of this.objects.values()) {
      if (o.rkey !== rkey) continue;
      if (ns !== undefined && o.object.metadata.namespace !== ns) continue;
      out.push(o.object);
    }
    return out.sort((a, b) => {
      const an = `${a.metadata.namespace ?? ''}/${a.metadata.name}`;
      const bn = `${b.metadata.namespace ?? ''}/${b.metadata.name}`;
      return an < bn ? -1 : an > bn ? 1 : 0;
    });
  }

  /** Stores a new object; fills uid, creationTimestamp, resourceVersion. Caller checked it is absent. */
  create(rkey: string, obj: KubeObject): KubeObject {
    const o = structuredClone(obj);
    o.metadata.uid = randomUUID();
    o.metadata.creationTimestamp = this.timestamp();
    return this.commit('ADDED', rkey, o, undefined);
  }

  /** Replaces an existing object (caller handled preconditions/semantics); bumps resourceVersion. */
  update(rkey: string, obj: KubeObject): KubeObject {
    const k = objectKey(rkey, obj.metadata.namespace, obj.metadata.name!);
    const old = this.objects.get(k);
    if (!old) throw new Error(`update of missing object ${k}`);
    return this.commit('MODIFIED', rkey, structuredClone(obj), old.object);
  }

  delete(rkey: string, ns: string | undefined, name: string): KubeObject | undefined {
    const k = objectKey(rkey, ns, name);
    const old = this.objects.get(k);
    if (!old) return undefined;
    return this.commit('DELETED', rkey, structuredClone(old.object), old.object);
  }

  subscribe(l: StoreListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Events with rv > since, or 'expired' when the history no longer reaches back that far. */
  eventsSince(since: number): StoreEvent[] | 'expired' {
    // a watch from the current resourceVersion (e.g. right after a list) never misses anything
    if (since < this.oldestResumable && since < this.rvCounter) return 'expired';
    // binary search for the first event with rv > since
    let lo = 0;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.history[mid]!.rv <= since) lo = mid + 1;
      else hi = mid;
    }
    return this.history.slice(lo);
  }

  timestamp(): string {
    return this.now()
      .toISOString()
      .replace(/\.\d{3}Z$/, 'Z');
  }

  close(): void {
    this.persistence.close();
  }

  private commit(type: CommittedType, rkey: string, obj: KubeObject, old: KubeObject | undefined): KubeObject {
    const rv = this.rvCounter + 1;
    obj.metadata.resourceVersion = String(rv);
    const entry: LogEntry = { rv, type, rkey, object: obj };
    this.persistence.append(entry); // durable before visible
    this.rvCounter = rv;
    const k = objectKey(rkey, obj.metadata.namespace, obj.metadata.name!);
    if (type === 'DELETED') this.objects.delete(k);
    else this.objects.set(k, { rkey, object: obj });
    const ev: StoreEvent = { rv, type, rkey, object: obj, old };
    this.pushHistory(ev);
    if (this.persistence.entriesSinceSnapshot >= this.compactEvery) {
      this.persistence.snapshot(this.rvCounter, this.objects.values());
    }
    for (const l of [...this.listeners]) {
      try {
        l(ev);
      } catch (err) {
        console.error('store listener failed:', err);
      }
    }
    return structuredClone(obj);
  }

  private pushHistory(e: StoreEvent): void {
    this.history.push(e);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.oldestResumable = Math.max(this.oldestResumable, dropped[dropped.length - 1]!.rv);
    }
  }
}
