// Watch streaming with bounded cost (issue 12): one store subscription for all watchers, each event
// encoded once per (version, event type) whoever watches it, write() backpressure honoured (a
// watcher takes its backlog only as fast as its connection drains), a watcher whose waiting bytes
// pass a bound is dropped (its connection closed: the client resumes or relists, as kube clients
// do when kube-apiserver terminates an unresponsive watcher), a cap on open watches per identity
// (429), and a maximum duration with jitter (kube-apiserver's --min-request-timeout).
import type { ServerResponse } from 'node:http';
import { ApiError } from './errors.js';
import type { ApiLimits } from './limits.js';
import { apiVersionOf, resourceKey, type ResourceDef } from './resources.js';
import type { ResourceService, Selectors } from './service.js';
import type { Store, StoreEvent } from './store.js';
import { toTable } from './table.js';
import type { KubeObject, Status } from '../../lib/kube/types.js';

type WatchLimits = Pick<ApiLimits, 'maxWatchesPerUser' | 'watchBufferBytes' | 'minWatchTimeoutSeconds' | 'maxWatchTimeoutSeconds'>;

/** What one watch asks for. */
export interface WatchSpec {
  user: string;
  def: ResourceDef;
  version: string;
  namespace?: string;
  selectors: Selectors;
  /** server-side printing (kubectl get -w): Table rows instead of objects */
  table?: { include: string };
  /** events before this resourceVersion are not sent; undefined: start with the current objects */
  since?: number;
  sendInitialEvents?: boolean;
  allowWatchBookmarks?: boolean;
  /** the client's timeoutSeconds (0 or undefined: the server's default, with jitter) */
  timeoutSeconds?: number;
}

/** Counters for tests and the log. */
export interface WatchStats {
  /** open watches */
  active: number;
  /** watchers dropped because their connection did not take their events */
  dropped: number;
  /** watch requests refused with 429 */
  refused: number;
  /** JSON encodings of live store events (once per event and version/type, not per watcher) */
  encodings: number;
  /** the most bytes any watcher ever had waiting (queue + socket buffer) */
  peakBufferedBytes: number;
}

/** An item of a watcher's backlog, turned into a line only when the connection can take it. */
type Pending = { kind: 'object'; object: KubeObject } | { kind: 'event'; event: StoreEvent } | { kind: 'line'; line: Buffer };

const NL = '\n';

/** The stored object as served at `version`, without touching the stored copy. */
function served(def: ResourceDef, version: string, o: KubeObject): KubeObject {
  return { ...o, apiVersion: def.perVersionObjects ? o.apiVersion : apiVersionOf(def.group, version), kind: def.kind };
}

/** The event type a watcher with this visibility sees for a store event, or undefined. */
function transition(e: StoreEvent, visible: (o: KubeObject | undefined) => boolean): 'ADDED' | 'MODIFIED' | 'DELETED' | undefined {
  const now = visible(e.object);
  if (e.type === 'ADDED') return now ? 'ADDED' : undefined;
  if (e.type === 'DELETED') return now ? 'DELETED' : undefined;
  const before = visible(e.old);
  if (before && now) return 'MODIFIED';
  if (!before && now) return 'ADDED';
  if (before && !now) return 'DELETED';
  return undefined;
}

class Watcher {
  private readonly backlog: Pending[] = [];
  private head = 0;
  /** bytes of encoded lines waiting in the backlog (live events, bookmarks) */
  private queuedBytes = 0;
  private blocked = false;
  private ended = false;
  private tableHeaderSent = false;
  private readonly timers: NodeJS.Timeout[] = [];
  readonly rkey: string;

  constructor(
    private readonly hub: WatchHub,
    readonly res: ServerResponse,
    readonly spec: WatchSpec,
  ) {
    this.rkey = resourceKey(spec.def);
    res.on('drain', () => {
      this.blocked = false;
      this.pump();
    });
  }

  visible = (o: KubeObject | undefined): boolean =>
    o !== undefined && this.hub.service.visible(this.spec.def, this.spec.version, this.spec.namespace, this.spec.selectors, o);

  /** Backlog taken lazily (initial objects, history since a resourceVersion): never counted against the bound. */
  enqueueLazy(items: Pending[]): void {
    for (const p of items) this.backlog.push(p);
  }

  /** A live store event; `encode` shares the line with every other watcher of the same version. */
  offer(e: StoreEvent, encode: (def: ResourceDef, version: string, type: string, e: StoreEvent) => Buffer): void {
    if (this.ended) return;
    const type = transition(e, this.visible);
    if (!type) return;
    this.push(this.spec.table ? this.tableLine(type, e.object) : encode(this.spec.def, this.spec.version, type, e));
  }

  bookmark(annotations?: Record<string, string>): void {
    if (this.ended) return;
    const md: Record<string, unknown> = { resourceVersion: String(this.hub.store.resourceVersion) };
    if (annotations) md.annotations = annotations;
    const { def, version } = this.spec;
    this.push(Buffer.from(JSON.stringify({ type: 'BOOKMARK', object: { kind: def.kind, apiVersion: apiVersionOf(def.group, version), metadata: md } }) + NL));
  }

  addTimer(t: NodeJS.Timeout): void {
    this.timers.push(t);
  }

  /** Writes what the connection takes now; stops at the first write() that asks to wait for 'drain'. */
  pump(): void {
    while (!this.ended && !this.blocked && this.head < this.backlog.length) {
      const p = this.backlog[this.head]!;
      this.backlog[this.head++] = undefined as unknown as Pending; // let it go as soon as written
      let line: Buffer | undefined;
      if (p.kind === 'line') {
        line = p.line;
        this.queuedBytes -= line.length;
      } else if (p.kind === 'object') {
        line = this.encodeOwn('ADDED', p.object);
      } else {
        const type = transition(p.event, this.visible);
        if (type) line = this.encodeOwn(type, p.event.object);
      }
      if (line && !this.res.write(line)) this.blocked = true;
    }
    if (this.head === this.backlog.length) {
      this.backlog.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.backlog.length) {
      this.backlog.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Ends the stream cleanly (timeout, server stop); a connection that does not drain is closed. */
  end(): void {
    if (this.ended) return;
    if (this.blocked || this.queuedBytes > 0) return this.drop(undefined);
    this.finish();
    if (!this.res.writableEnded) this.res.end();
  }

  /** Ends with one final line (the ERROR of a 410). */
  endWith(line: string): void {
    this.finish();
    if (!this.res.writableEnded) this.res.end(line);
  }

  /** Closes the connection at once, whatever is buffered (frees it). */
  drop(why: string | undefined): void {
    if (this.ended) return;
    this.finish();
    if (why) this.hub.droppedOne(this, why);
    this.res.destroy();
  }

  /** Bytes waiting for this connection: the backlog's encoded lines plus the socket's buffer. */
  get bufferedBytes(): number {
    return this.queuedBytes + this.res.writableLength;
  }

  finish(): void {
    if (this.ended) return;
    this.ended = true;
    for (const t of this.timers) clearTimeout(t);
    this.backlog.length = 0;
    this.head = 0;
    this.queuedBytes = 0;
    this.hub.remove(this);
  }

  private push(line: Buffer): void {
    if (!this.blocked && this.head === this.backlog.length) {
      if (!this.res.write(line)) this.blocked = true;
    } else {
      this.backlog.push({ kind: 'line', line });
      this.queuedBytes += line.length;
    }
    this.hub.notePeak(this.bufferedBytes);
    // only the queue counts: the connection itself holds at most its 16 KiB buffer plus the one
    // line it took last (nothing is written while it asks to wait), so one large event never drops
    // a watcher that reads
    const limit = this.hub.limits.watchBufferBytes;
    if (this.queuedBytes > limit)
      this.drop(`${this.queuedBytes} bytes of events waiting for the connection, more than the limit of ${limit} (api.watchBufferBytes)`);
  }

  private encodeOwn(type: string, o: KubeObject): Buffer {
    if (this.spec.table) return this.tableLine(type, o);
    return Buffer.from(JSON.stringify({ type, object: served(this.spec.def, this.spec.version, o) }) + NL);
  }

  private tableLine(type: string, o: KubeObject): Buffer {
    const s = served(this.spec.def, this.spec.version, o);
    const tb = toTable([s], s, s.metadata.resourceVersion ?? '', this.spec.table!.include, this.hub.store.now());
    if (this.tableHeaderSent) (tb as Record<string, unknown>).columnDefinitions = [];
    this.tableHeaderSent = true;
    return Buffer.from(JSON.stringify({ type, object: tb }) + NL);
  }
}

/** All open watches of one API server. */
export class WatchHub {
  /** open watchers (a test ends them all to simulate dropped streams) */
  readonly watchers = new Set<Watcher>();
  private readonly byResource = new Map<string, Set<Watcher>>();
  private readonly perUser = new Map<string, number>();
  private unsubscribe: (() => void) | undefined;
  private readonly counters = { dropped: 0, refused: 0, encodings: 0, peakBufferedBytes: 0 };

  constructor(
    readonly service: ResourceService,
    readonly limits: WatchLimits,
    private readonly log: (line: string) => void,
    private readonly bookmarkIntervalMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  get store(): Store {
    return this.service.store;
  }

  stats(): WatchStats {
    return { active: this.watchers.size, ...this.counters };
  }

  /** Refuses a watch over the identity's cap (call before any header goes out). */
  admit(user: string): void {
    const n = this.perUser.get(user) ?? 0;
    const max = this.limits.maxWatchesPerUser;
    if (n >= max) {
      this.counters.refused++;
      throw new ApiError(
        429,
        'TooManyRequests',
        `too many watches: user "${user}" already has ${n} open watches, the limit (api.maxWatchesPerUser) is ${max}; end one or retry later`,
        { retryAfterSeconds: 1 },
      );
    }
  }

  /** The watch's length in ms: the client's timeoutSeconds up to the maximum, else the default with jitter. */
  durationMs(timeoutSeconds: number | undefined): number {
    if (timeoutSeconds && timeoutSeconds > 0) return Math.min(timeoutSeconds, this.limits.maxWatchTimeoutSeconds) * 1000;
    return Math.round(this.limits.minWatchTimeoutSeconds * (1 + this.random()) * 1000);
  }

  /** Starts streaming to `res` (headers already sent). `expired` is the 410 Status when `since` is too old. */
  open(res: ServerResponse, spec: WatchSpec, onClose: (fn: () => void) => void): void {
    const w = new Watcher(this, res, spec);
    this.add(w);
    const store = this.store;
    if (spec.since === undefined || spec.sendInitialEvents) {
      w.enqueueLazy(
        store
          .listShared(w.rkey, spec.def.namespaced ? spec.namespace : undefined)
          .filter((o) => w.visible(o))
          .map((object) => ({ kind: 'object' as const, object })),
      );
      if (spec.sendInitialEvents && spec.allowWatchBookmarks) w.bookmark({ 'k8s.io/initial-events-end': 'true' });
    } else {
      const past = store.eventsSince(spec.since);
      if (past === 'expired') {
        const err: Status = new ApiError(410, 'Expired', `too old resource version: ${spec.since} (${store.oldestResumableRV})`).toStatus();
        w.endWith(`${JSON.stringify({ type: 'ERROR', object: err })}\n`);
        return;
      }
      w.enqueueLazy(past.filter((e) => e.rkey === w.rkey).map((event) => ({ kind: 'event' as const, event })));
    }
    if (spec.allowWatchBookmarks) {
      const iv = setInterval(() => w.bookmark(), this.bookmarkIntervalMs);
      iv.unref();
      w.addTimer(iv);
    }
    const to = setTimeout(() => w.end(), this.durationMs(spec.timeoutSeconds));
    to.unref();
    w.addTimer(to);
    onClose(() => w.finish());
    w.pump();
  }

  /** Ends every watch (server stop). */
  closeAll(): void {
    for (const w of [...this.watchers]) w.end();
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  notePeak(bytes: number): void {
    if (bytes > this.counters.peakBufferedBytes) this.counters.peakBufferedBytes = bytes;
  }

  droppedOne(w: Watcher, why: string): void {
    this.counters.dropped++;
    const { def, namespace } = w.spec;
    this.log(`api: dropped the watch of ${w.spec.user} on ${def.plural}${def.group ? `.${def.group}` : ''}${namespace ? ` in ${namespace}` : ''}: ${why}`);
  }

  remove(w: Watcher): void {
    if (!this.watchers.delete(w)) return;
    this.byResource.get(w.rkey)?.delete(w);
    const n = (this.perUser.get(w.spec.user) ?? 1) - 1;
    if (n > 0) this.perUser.set(w.spec.user, n);
    else this.perUser.delete(w.spec.user);
  }

  private add(w: Watcher): void {
    this.watchers.add(w);
    let set = this.byResource.get(w.rkey);
    if (!set) this.byResource.set(w.rkey, (set = new Set()));
    set.add(w);
    this.perUser.set(w.spec.user, (this.perUser.get(w.spec.user) ?? 0) + 1);
    this.unsubscribe ??= this.store.subscribe((e) => this.dispatch(e));
  }

  /** One store event to every watcher of its resource, each distinct line encoded once. */
  private dispatch(e: StoreEvent): void {
    const set = this.byResource.get(e.rkey);
    if (!set || set.size === 0) return;
    const lines = new Map<string, Buffer>();
    const encode = (def: ResourceDef, version: string, type: string, ev: StoreEvent): Buffer => {
      const k = `${version}\0${type}`;
      let b = lines.get(k);
      if (!b) {
        b = Buffer.from(JSON.stringify({ type, object: served(def, version, ev.object) }) + NL);
        this.counters.encodings++;
        lines.set(k, b);
      }
      return b;
    };
    for (const w of [...set]) w.offer(e, encode);
  }
}
