// Event limits (issue 12), as kube-apiserver bounds Events: a size limit (its request limit; here
// much lower, api.maxEventBytes, since an Event is a short note), a time to live after the last
// write (--event-ttl, 1 h) so old Events go away by themselves, and a cap on the Events one node
// may have stored, refused with 429 like kube's EventRateLimit admission plugin refuses a source
// over its budget (refusing keeps what is stored: evicting the oldest would let a noisy node erase
// the history that explains it). Writes by the controller itself are not limited.
import type { FieldProblem } from '../logic/validation.js';
import { nodeNameOf } from './auth.js';
import { ApiError } from './errors.js';
import type { ApiLimits } from './limits.js';
import { objectKey } from './persistence.js';
import { resourceKey } from './resources.js';
import { CONTROLLER_USER, type ResourceService } from './service.js';
import type { StoreEvent } from './store.js';
import type { KubeObject } from '../../lib/kube/types.js';

const EVENTS = { group: '', plural: 'events' } as const;
const RKEY = resourceKey(EVENTS);

type EventLimitsConfig = Pick<ApiLimits, 'maxEventBytes' | 'maxEventsPerNode' | 'eventTTLSeconds'>;

/** The Node an Event is about (its involvedObject), if any. */
function nodeOf(o: KubeObject | undefined): string | undefined {
  const io = (o as { involvedObject?: { kind?: unknown; name?: unknown } } | undefined)?.involvedObject;
  return io && io.kind === 'Node' && typeof io.name === 'string' ? io.name : undefined;
}

const bytes = (v: unknown): number => Buffer.byteLength(JSON.stringify(v) ?? '');

/** The field that makes an oversized Event big: the largest top-level field, or metadata's largest. */
function largestField(o: KubeObject): { field: string; value: unknown; size: number } {
  let best = { field: '', value: undefined as unknown, size: -1 };
  const consider = (field: string, value: unknown): void => {
    const size = bytes(value);
    if (size > best.size) best = { field, value, size };
  };
  for (const [k, v] of Object.entries(o)) if (k !== 'metadata' && k !== 'apiVersion' && k !== 'kind') consider(k, v);
  for (const [k, v] of Object.entries(o.metadata ?? {})) consider(`metadata.${k}`, v);
  return best;
}

function preview(v: unknown): unknown {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 40)}...` : v;
}

/** Admission of Events (size, count per node) and their expiry. */
export class EventLimits {
  /** node -> keys of the stored Events about it */
  private readonly byNode = new Map<string, Set<string>>();
  /** key -> ms of the last write */
  private readonly lastWrite = new Map<string, number>();
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly service: ResourceService,
    private readonly limits: EventLimitsConfig,
    private readonly log: (line: string) => void = () => {},
  ) {
    const now = service.store.now().getTime();
    for (const o of service.store.listShared(RKEY)) {
      const k = objectKey(RKEY, o.metadata.namespace, o.metadata.name!);
      this.index(k, o);
      const times = [o.metadata.creationTimestamp, (o as { lastTimestamp?: unknown }).lastTimestamp, (o as { eventTime?: unknown }).eventTime]
        .map((x) => (typeof x === 'string' ? Date.parse(x) : NaN))
        .filter((x) => Number.isFinite(x) && x <= now);
      this.lastWrite.set(k, times.length ? Math.max(...times) : now);
    }
    this.unsubscribe = service.store.subscribe((e) => this.observe(e));
    service.addAdmission(EVENTS, (req) => {
      if (req.ctx.internal || req.op === 'delete' || !req.object) return;
      const problems = this.sizeProblems(req.object);
      if (problems.length) return problems;
      const node = nodeNameOf(req.ctx.user);
      if (req.op === 'create' && node !== undefined) this.checkCount(nodeOf(req.object) ?? node);
    });
  }

  /** Starts the expiry sweep (every min(60 s, TTL/2)). */
  start(): void {
    const every = Math.min(60_000, (this.limits.eventTTLSeconds * 1000) / 2);
    this.timer = setInterval(() => this.expire(), every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** Stored Events about a node. */
  countFor(node: string): number {
    return this.byNode.get(node)?.size ?? 0;
  }

  /** Deletes the Events whose last write is older than the TTL; returns how many. */
  expire(): number {
    const cutoff = this.service.store.now().getTime() - this.limits.eventTTLSeconds * 1000;
    const def = this.service.def('', 'events');
    let n = 0;
    for (const [k, at] of [...this.lastWrite]) {
      if (at > cutoff) continue;
      const [, ns, name] = /^[^|]*\|([^|]*)\|(.*)$/.exec(k) ?? [];
      this.lastWrite.delete(k);
      if (name === undefined) continue;
      try {
        this.service.delete(def, 'v1', ns || undefined, name, { user: CONTROLLER_USER, internal: true });
        n++;
      } catch {
        // gone meanwhile
      }
    }
    if (n) this.log(`api: ${n} Event(s) expired (${this.limits.eventTTLSeconds} s after their last write, api.eventTTLSeconds)`);
    return n;
  }

  private sizeProblems(o: KubeObject): FieldProblem[] {
    const size = bytes(o);
    const max = this.limits.maxEventBytes;
    if (size <= max) return [];
    const f = largestField(o);
    return [
      {
        field: f.field,
        value: preview(f.value),
        type: 'FieldValueInvalid',
        detail: `the Event is ${size} bytes, more than the limit of ${max} bytes (api.maxEventBytes); this field is ${f.size} bytes`,
      },
    ];
  }

  private checkCount(node: string): void {
    const n = this.countFor(node);
    const max = this.limits.maxEventsPerNode;
    if (n < max) return;
    throw new ApiError(
      429,
      'TooManyRequests',
      `events is forbidden: too many Events about Node "${node}": ${n} are stored, the limit (api.maxEventsPerNode) is ${max}; update an existing one (count) or wait: each expires ${this.limits.eventTTLSeconds} s after its last write (api.eventTTLSeconds)`,
      { kind: 'events', retryAfterSeconds: 10 },
    );
  }

  private observe(e: StoreEvent): void {
    if (e.rkey !== RKEY) return;
    const k = objectKey(RKEY, e.object.metadata.namespace, e.object.metadata.name!);
    const before = nodeOf(e.old);
    if (before !== undefined) this.byNode.get(before)?.delete(k);
    if (e.type === 'DELETED') {
      this.lastWrite.delete(k);
      return;
    }
    this.index(k, e.object);
    this.lastWrite.set(k, this.service.store.now().getTime());
  }

  private index(k: string, o: KubeObject): void {
    const node = nodeOf(o);
    if (node === undefined) return;
    let s = this.byNode.get(node);
    if (!s) this.byNode.set(node, (s = new Set()));
    s.add(k);
  }
}
