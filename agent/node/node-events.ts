/**
 * Kubernetes Events about this node's Node object, posted with the node's own identity (which may
 * write Events whose involvedObject is its own Node, nothing else).
 *
 *  - record() never blocks and never throws: events go into a bounded queue posted in order by one
 *    pump, so a slow or unreachable API server never stalls the datapath;
 *  - like client-go's event recorder, a repeat of the same (type, reason, message) bumps `count`
 *    and `lastTimestamp` of the Event already posted instead of creating a new one;
 *  - transport errors (API down, 5xx, 429) are retried with backoff; other refusals (4xx) are
 *    logged and the event dropped; when the queue is full the oldest event is dropped;
 *  - events live in namespace `default` (kubelet does the same for Node events) and reference the
 *    Node's uid, so `kubectl describe node NODE` and `kubectl get events` show them.
 */
import { randomBytes } from 'node:crypto';
import { KubeApiError, R, type KubeClient } from '../../lib/kube/client.js';
import type { EventType, KubeObject } from '../../lib/kube/types.js';
import { errorMessage } from './module.js';

export const AGENT_COMPONENT = 'egresslab-agent';
export const NODE_EVENTS_NAMESPACE = 'default';

interface Pending {
  type: EventType;
  reason: string;
  message: string;
  at: Date;
}

export interface NodeEventRecorderOptions {
  client: KubeClient;
  node: string;
  log: (line: string) => void;
  maxQueue?: number;
  backoff?: { initialMs: number; maxMs: number };
}

export interface EventStats {
  recorded: number;
  posted: number;
  deduplicated: number;
  dropped: number;
  queued: number;
  lastError: string | null;
}

function k8sTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function retriable(e: unknown): boolean {
  if (!(e instanceof KubeApiError)) return true; // connection refused/reset, timeout, TLS...
  return e.code >= 500 || e.code === 429;
}

export class NodeEventRecorder {
  private readonly queue: Pending[] = [];
  private readonly posted = new Map<string, { name: string; count: number }>();
  private pumping: Promise<void> | null = null;
  private stopped = false;
  private wake: (() => void) | null = null;
  private nodeRef: { apiVersion: string; kind: string; name: string; uid: string } | null = null;
  private readonly maxQueue: number;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly s: EventStats = { recorded: 0, posted: 0, deduplicated: 0, dropped: 0, queued: 0, lastError: null };

  constructor(private readonly o: NodeEventRecorderOptions) {
    this.maxQueue = o.maxQueue ?? 200;
    this.backoff = o.backoff ?? { initialMs: 200, maxMs: 5000 };
  }

  stats(): EventStats {
    return { ...this.s, queued: this.queue.length };
  }

  record(type: EventType, reason: string, message: string): void {
    if (this.stopped) return;
    this.s.recorded++;
    if (this.queue.length >= this.maxQueue) {
      const d = this.queue.shift();
      this.s.dropped++;
      this.o.log(`queue full, dropped ${d?.reason ?? '?'}`);
    }
    this.queue.push({ type, reason, message, at: new Date() });
    if (!this.pumping) this.pumping = this.pump().finally(() => (this.pumping = null));
  }

  /** Waits until the queue is empty (or `timeoutMs` passed); then stops accepting events. */
  async stop(timeoutMs = 2000): Promise<void> {
    if (this.pumping) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.pumping, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
      if (timer) clearTimeout(timer);
    }
    this.stopped = true;
    this.wake?.();
    if (this.queue.length) this.o.log(`${this.queue.length} event(s) not posted at stop`);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      const t = setTimeout(() => {
        this.wake = null;
        r();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = null;
        r();
      };
    });
  }

  private async ref(): Promise<{ apiVersion: string; kind: string; name: string; uid: string }> {
    if (this.nodeRef) return this.nodeRef;
    const node = await this.o.client.tryGet(R.nodes, this.o.node);
    // kubelet uses the node name as uid; the real uid when we know it (kubectl describe finds both)
    this.nodeRef = { apiVersion: 'v1', kind: 'Node', name: this.o.node, uid: node?.metadata.uid ?? this.o.node };
    return this.nodeRef;
  }

  private async pump(): Promise<void> {
    let delay = this.backoff.initialMs;
    while (this.queue.length && !this.stopped) {
      const ev = this.queue[0]!;
      try {
        await this.post(ev);
        this.queue.shift();
        delay = this.backoff.initialMs;
        if (this.s.lastError) this.o.log('posting works again');
        this.s.lastError = null;
      } catch (e) {
        const msg = errorMessage(e);
        if (!retriable(e)) {
          this.queue.shift();
          this.s.dropped++;
          this.s.lastError = msg;
          this.o.log(`${ev.reason} refused by the API server, dropped: ${msg}`);
          continue;
        }
        if (this.s.lastError !== msg) this.o.log(`cannot post ${ev.reason} (will retry): ${msg}`);
        this.s.lastError = msg;
        if (e instanceof KubeApiError === false) this.nodeRef = null;
        await this.sleep(delay);
        delay = Math.min(delay * 2, this.backoff.maxMs);
      }
    }
  }

  private async post(ev: Pending): Promise<void> {
    const involvedObject = await this.ref();
    const key = `${ev.type}|${ev.reason}|${ev.message}`;
    const prev = this.posted.get(key);
    const ts = k8sTime(ev.at);
    if (prev) {
      try {
        await this.o.client.patch(R.events, prev.name, { count: prev.count + 1, lastTimestamp: ts }, { namespace: NODE_EVENTS_NAMESPACE });
        prev.count++;
        this.s.posted++;
        this.s.deduplicated++;
        return;
      } catch (e) {
        if (!(e instanceof KubeApiError) || e.code !== 404) throw e;
        this.posted.delete(key); // deleted meanwhile (TTL, kubectl delete): post a new one
      }
    }
    const name = `${this.o.node}.${randomBytes(8).toString('hex')}`;
    const obj = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace: NODE_EVENTS_NAMESPACE },
      involvedObject,
      reason: ev.reason,
      message: ev.message,
      type: ev.type,
      count: 1,
      firstTimestamp: ts,
      lastTimestamp: ts,
      source: { component: AGENT_COMPONENT, host: this.o.node },
      reportingComponent: AGENT_COMPONENT,
      reportingInstance: this.o.node,
    } as unknown as KubeObject;
    await this.o.client.create(R.events, obj, NODE_EVENTS_NAMESPACE);
    this.posted.set(key, { name, count: 1 });
    if (this.posted.size > 1000) this.posted.delete(this.posted.keys().next().value as string);
    this.s.posted++;
  }
}
