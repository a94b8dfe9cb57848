// A small typed Kubernetes client (node:http/https only; runs on Node 18): get/list/create/update/
// patch/delete with a bearer token, raw watches, and an informer (list + watch) that reconnects and
// resumes from the last resourceVersion, relisting when the server answers 410 Expired.
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { LineDecoder } from './json-lines.js';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { KubeList, KubeObject, Status, WatchEvent } from './types.js';
import { sleepUnless } from '../time/settle.js';

/** Informers retry a refused connection every REFUSED_RETRY_MS for up to REFUSED_FAST_RETRY_FOR_MS. */
const REFUSED_RETRY_MS = 25;
const REFUSED_FAST_RETRY_FOR_MS = 5_000;

/** Which resource a call addresses: API group, version, plural and whether it is namespaced (see `R` for the lab's). */
export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
}

/**
 * The resources of the lab's API server, to pass to KubeClient calls.
 *
 * @example
 * ```ts
 * const nodes = await api.list(R.nodes);
 * const cm = await api.get(R.configmaps, 'ip-masq-agent', 'kube-system');
 * ```
 */
export const R = {
  namespaces: { group: '', version: 'v1', plural: 'namespaces', namespaced: false },
  nodes: { group: '', version: 'v1', plural: 'nodes', namespaced: false },
  pods: { group: '', version: 'v1', plural: 'pods', namespaced: true },
  configmaps: { group: '', version: 'v1', plural: 'configmaps', namespaced: true },
  events: { group: '', version: 'v1', plural: 'events', namespaced: true },
  leases: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespaced: true },
  networkpolicies: { group: 'networking.k8s.io', version: 'v1', plural: 'networkpolicies', namespaced: true },
  anthosNetworkGateways: { group: 'networking.gke.io', version: 'v1alpha1', plural: 'anthosnetworkgateways', namespaced: true },
  anthosNetworkGatewayNodes: { group: 'networking.gke.io', version: 'v1alpha1', plural: 'anthosnetworkgatewaynodes', namespaced: true },
  egressNATPolicies: { group: 'networking.gke.io', version: 'v1alpha1', plural: 'egressnatpolicies', namespaced: false },
  egressNATPoliciesV1: { group: 'networking.gke.io', version: 'v1', plural: 'egressnatpolicies', namespaced: false },
} as const satisfies Record<string, ResourceRef>;

/** How to reach the API server: URL, bearer token and CA certificate. */
export interface ClientOptions {
  /** https://host:port or http://host:port */
  server: string;
  token?: string;
  /** PEM of the CA that signed the server certificate */
  ca?: string | Buffer;
  insecureSkipTLSVerify?: boolean;
  /** per-request timeout for non-watch requests (ms, default 10 s) */
  timeoutMs?: number;
}

/** A non-2xx answer of the API server, with its HTTP status and Status body. */
export class KubeApiError extends Error {
  constructor(
    readonly code: number,
    readonly status: Status | undefined,
    message: string,
  ) {
    super(message);
  }
  /** The Status reason (`NotFound`, `Conflict`, `AlreadyExists`, ...), when the server sent one. */
  get reason(): string | undefined {
    return this.status?.reason;
  }
}

export type PatchType = 'merge' | 'json' | 'strategic';
const PATCH_CT: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
};

/** Selectors and paging for list and watch. */
export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/** List options plus where a watch resumes (resourceVersion) and whether to ask for bookmarks. */
export interface WatchOptions extends ListOptions {
  resourceVersion?: string;
  allowWatchBookmarks?: boolean;
  timeoutSeconds?: number;
}

/** A running watch; `abort()` ends it. */
export interface WatchHandle {
  /** resolves when the stream ends (server closed, error, or abort) */
  done: Promise<void>;
  /** Ends the watch (its handler sees no more events). */
  abort(): void;
}

/** The REST path of a resource, e.g. `/apis/networking.gke.io/v1/namespaces/default/egressnatpolicies/egress/status`. */
export function resourcePath(ref: ResourceRef, namespace?: string, name?: string, subresource?: string): string {
  const base = ref.group ? `/apis/${ref.group}/${ref.version}` : `/api/${ref.version}`;
  let p = base;
  if (ref.namespaced && namespace !== undefined) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${ref.plural}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}

function query(params: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * A small Kubernetes API client (JSON over HTTPS with a bearer token).
 *
 * @example
 * ```ts
 * const api = await lab.api();
 * const gw = await api.get(R.anthosNetworkGateways, 'default', 'kube-system');
 * await api.create(R.configmaps, { metadata: { name: 'ip-masq-agent' }, data: { config: '...' } }, 'kube-system');
 * ```
 */
export class KubeClient {
  private readonly url: URL;
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly https: boolean;
  /** since when requests have got no answer at all (a network failure: refused, reset, timed out) */
  private unansweredSince: number | undefined;
  private readonly recoveredListeners = new Set<() => void>();

  constructor(readonly opts: ClientOptions) {
    this.url = new URL(opts.server);
    this.https = this.url.protocol === 'https:';
    this.agent = this.https
      ? new HttpsAgent({ keepAlive: true, ca: opts.ca, rejectUnauthorized: !opts.insecureSkipTLSVerify })
      : new HttpAgent({ keepAlive: true });
  }

  /** Closes the client's connections (pending requests fail). */
  close(): void {
    this.agent.destroy();
  }

  /**
   * Calls `listener` each time a request is answered again after one or more got no answer at all
   * (refused, reset, timed out): the network to the API server came back. Informers restart their
   * watches then: a watch stream that lived through the outage may sit on a TCP connection whose
   * retransmission timer has backed off to seconds, and deliver what the server sent meanwhile only
   * that much later (chaos seed 2000706312: a ConfigMap deletion reached a node 12 s after it was
   * made, 6.8 s after 53 % loss on its link ended; a fresh connection resumes at once). Returns the
   * unsubscribe function.
   */
  onRecovered(listener: () => void): () => void {
    this.recoveredListeners.add(listener);
    return () => this.recoveredListeners.delete(listener);
  }

  /**
   * Notes that a request got no answer within its caller's own deadline (one shorter than the
   * client's timeout, e.g. a liveness check's): the next answer is then a recovery too.
   */
  noteUnanswered(): void {
    this.unansweredSince ??= Date.now();
  }

  private answered(): void {
    if (this.unansweredSince === undefined) return;
    this.unansweredSince = undefined;
    for (const l of [...this.recoveredListeners]) l();
  }

  private open(
    method: string,
    path: string,
    body: string | undefined,
    contentType: string | undefined,
    timeoutMs: number | undefined,
    signal?: AbortSignal,
  ): Promise<IncomingMessage> & { abort?: () => void } {
    let abort: (() => void) | undefined;
    const p = new Promise<IncomingMessage>((resolve, reject) => {
      const headers: Record<string, string> = { Accept: 'application/json' };
      if (this.opts.token) headers.Authorization = `Bearer ${this.opts.token}`;
      if (body !== undefined) {
        headers['Content-Type'] = contentType ?? 'application/json';
        headers['Content-Length'] = String(Buffer.byteLength(body));
      }
      const req = (this.https ? httpsRequest : httpRequest)(
        {
          protocol: this.url.protocol,
          hostname: this.url.hostname,
          port: this.url.port,
          path,
          method,
          headers,
          agent: this.agent,
          ...(signal ? { signal } : {}),
        },
        resolve,
      );
      req.on('error', reject);
      if (timeoutMs) {
        const timedOut = () => req.destroy(new Error(`request timed out after ${timeoutMs} ms: ${method} ${path}`));
        // Node's request timeout counts only once the socket is connected: a request on a new
        // connection to an API server behind a partition waited for the kernel's SYN
        // retransmissions (up to ~2 min) with no timeout at all (chaos seed 627642971: an agent
        // restarted during a partition did not exit within 10 s of SIGTERM, its first list of a
        // ConfigMap hung 19.6 s, until 7.4 s after the heal). So the answer's headers have a
        // deadline from the start too (watches have none: they end by abort).
        const deadline = setTimeout(timedOut, timeoutMs);
        deadline.unref();
        req.once('response', () => clearTimeout(deadline));
        req.once('close', () => clearTimeout(deadline));
        req.setTimeout(timeoutMs, timedOut);
      }
      abort = () => req.destroy();
      req.end(body);
    });
    return Object.assign(p, { abort: () => abort?.() });
  }

  /** One raw request: method, path and JSON (or patch) body; throws KubeApiError on a non-2xx answer. */
  async request<T>(method: string, path: string, body?: unknown, contentType?: string, signal?: AbortSignal): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let res: IncomingMessage;
    try {
      try {
        res = await this.open(method, path, payload, contentType, this.opts.timeoutMs ?? 10_000, signal);
      } catch (e) {
        // a kept-alive socket closed by the server (e.g. after a restart): retry once on a new one
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ECONNRESET' && code !== 'EPIPE') throw e;
        res = await this.open(method, path, payload, contentType, this.opts.timeoutMs ?? 10_000, signal);
      }
    } catch (e) {
      // given up by its caller (signal): says nothing about the network
      if (!signal?.aborted) this.noteUnanswered();
      throw e;
    }
    this.answered();
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    const code = res.statusCode ?? 0;
    if (code >= 400) {
      const st = parsed && (parsed as { kind?: string }).kind === 'Status' ? (parsed as Status) : undefined;
      throw new KubeApiError(code, st, st?.message ?? `${method} ${path}: HTTP ${code} ${text.slice(0, 200)}`);
    }
    return parsed as T;
  }

  /** Reads one object by name. */
  get<T extends KubeObject = KubeObject>(ref: ResourceRef, name: string, namespace?: string): Promise<T> {
    return this.request<T>('GET', resourcePath(ref, namespace, name));
  }

  /** get, but undefined on 404 */
  async tryGet<T extends KubeObject = KubeObject>(ref: ResourceRef, name: string, namespace?: string): Promise<T | undefined> {
    try {
      return await this.get<T>(ref, name, namespace);
    } catch (e) {
      if (e instanceof KubeApiError && e.code === 404) return undefined;
      throw e;
    }
  }

  /** Lists the objects of a resource (in one namespace, or all when `opts.namespace` is absent); `signal` gives the request up. */
  list<T extends KubeObject = KubeObject>(ref: ResourceRef, opts: ListOptions = {}, signal?: AbortSignal): Promise<KubeList<T>> {
    return this.request<KubeList<T>>(
      'GET',
      resourcePath(ref, opts.namespace) + query({ labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector }),
      undefined,
      undefined,
      signal,
    );
  }

  /** Creates an object (in `namespace` for namespaced resources). */
  create<T extends KubeObject = KubeObject>(ref: ResourceRef, obj: Partial<KubeObject> & { metadata: KubeObject['metadata'] }, namespace?: string): Promise<T> {
    return this.request<T>('POST', resourcePath(ref, namespace ?? obj.metadata.namespace), obj);
  }

  /** Replaces an object (or its status subresource); fails with 409 Conflict on a stale resourceVersion. */
  update<T extends KubeObject = KubeObject>(ref: ResourceRef, obj: KubeObject, subresource?: 'status'): Promise<T> {
    return this.request<T>('PUT', resourcePath(ref, obj.metadata.namespace, obj.metadata.name, subresource), obj);
  }

  /** Patches an object (merge patch unless told otherwise). */
  patch<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    name: string,
    patch: unknown,
    opts: { namespace?: string; type?: PatchType; subresource?: 'status'; signal?: AbortSignal } = {},
  ): Promise<T> {
    return this.request<T>('PATCH', resourcePath(ref, opts.namespace, name, opts.subresource), patch, PATCH_CT[opts.type ?? 'merge'], opts.signal);
  }

  /** Deletes an object by name. */
  delete<T extends KubeObject = KubeObject>(ref: ResourceRef, name: string, namespace?: string): Promise<T> {
    return this.request<T>('DELETE', resourcePath(ref, namespace, name));
  }

  /**
   * One watch stream (no reconnect). `onEvent` gets every event, including BOOKMARK and ERROR
   * (an ERROR with code 410 means the resourceVersion is too old: relist).
   */
  watch(ref: ResourceRef, opts: WatchOptions, onEvent: (e: WatchEvent) => void): WatchHandle {
    const path =
      resourcePath(ref, opts.namespace) +
      query({
        watch: 'true',
        resourceVersion: opts.resourceVersion,
        labelSelector: opts.labelSelector,
        fieldSelector: opts.fieldSelector,
        allowWatchBookmarks: opts.allowWatchBookmarks ? 'true' : undefined,
        timeoutSeconds: opts.timeoutSeconds,
      });
    const pending = this.open('GET', path, undefined, undefined, undefined);
    let aborted = false;
    const done = (async () => {
      let res: IncomingMessage;
      try {
        res = await pending;
      } catch (e) {
        if (aborted) return;
        throw e;
      }
      if ((res.statusCode ?? 0) >= 400) {
        const chunks: Buffer[] = [];
        for await (const c of res) chunks.push(c as Buffer);
        let st: Status | undefined;
        try {
          st = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Status;
        } catch {
          st = undefined;
        }
        throw new KubeApiError(res.statusCode ?? 0, st, st?.message ?? `watch ${path}: HTTP ${res.statusCode}`);
      }
      const lines = new LineDecoder();
      try {
        for await (const c of res) for (const line of lines.push(c as Buffer)) onEvent(JSON.parse(line) as WatchEvent);
      } catch (e) {
        if (!aborted) throw e;
      }
    })();
    return {
      done,
      abort: () => {
        aborted = true;
        pending.abort?.();
      },
    };
  }

  /** Lists then watches, keeping a cache; see Informer. */
  informer<T extends KubeObject = KubeObject>(ref: ResourceRef, opts: ListOptions, handlers: InformerHandlers<T>): Informer<T> {
    const inf = new Informer<T>(this, ref, opts, handlers);
    inf.start();
    return inf;
  }
}

/** Callbacks of an Informer: every change of its cache, and watch errors. */
export interface InformerHandlers<T> {
  /** An object appeared. */
  onAdd?: (o: T) => void;
  /** An object changed (new, old). */
  onUpdate?: (o: T, old: T) => void;
  /** An object was removed. */
  onDelete?: (o: T) => void;
  /** after each (re)list has been applied to the cache */
  onSync?: (items: T[]) => void;
  /** A watch or list failed (the informer retries). */
  onError?: (e: unknown) => void;
}

function cacheKey(o: KubeObject): string {
  return `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

/**
 * List + watch with reconnect: on a dropped stream the watch resumes from the last
 * resourceVersion seen (events or bookmarks); on 410 Expired the informer relists and emits the
 * differences, so consumers never miss a change.
 */
export class Informer<T extends KubeObject = KubeObject> {
  readonly cache = new Map<string, T>();
  private rv: string | undefined;
  private stopped = false;
  private handle: WatchHandle | undefined;
  private loop: Promise<void> | undefined;
  private synced!: Promise<void>;
  private resolveSynced!: () => void;
  /** number of watch (re)connections, for tests */
  connections = 0;
  relists = 0;
  /** times the client recovered from unanswered requests (each restarts the watch) */
  recoveries = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly ref: ResourceRef,
    private readonly opts: ListOptions,
    private readonly h: InformerHandlers<T>,
    private readonly backoff = { initialMs: 100, maxMs: 2000 },
  ) {
    this.synced = new Promise((r) => (this.resolveSynced = r));
  }

  private unsubscribe: (() => void) | undefined;

  /** Lists, then watches in the background; the watch starts again on a new connection when the client recovers (KubeClient.onRecovered). */
  start(): void {
    this.unsubscribe = this.client.onRecovered(() => {
      this.recoveries++;
      // the loop resumes from the last resourceVersion seen, on a new connection
      this.handle?.abort();
    });
    this.loop = this.run();
  }

  /** resolves after the first list has been applied */
  hasSynced(): Promise<void> {
    return this.synced;
  }

  /** The last resourceVersion seen (where a watch resumes). */
  get resourceVersion(): string | undefined {
    return this.rv;
  }

  /** The cached objects. */
  list(): T[] {
    return [...this.cache.values()];
  }

  /** gives up a list in flight and a wait between retries when the informer stops */
  private readonly stopper = new AbortController();

  /** Ends the watch (and a list or a retry wait in flight) and waits for its loop to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.handle?.abort();
    this.stopper.abort();
    await this.loop?.catch(() => {});
  }

  private async relist(): Promise<void> {
    const list = await this.client.list<T>(this.ref, this.opts, this.stopper.signal);
    this.relists++;
    const seen = new Set<string>();
    for (const o of list.items) {
      const k = cacheKey(o);
      seen.add(k);
      const old = this.cache.get(k);
      this.cache.set(k, o);
      if (!old) this.h.onAdd?.(o);
      else if (old.metadata.resourceVersion !== o.metadata.resourceVersion) this.h.onUpdate?.(o, old);
    }
    for (const [k, o] of [...this.cache]) {
      if (!seen.has(k)) {
        this.cache.delete(k);
        this.h.onDelete?.(o);
      }
    }
    this.rv = list.metadata.resourceVersion;
    this.h.onSync?.(this.list());
    this.resolveSynced();
  }

  private refusedSince: number | undefined;
  private lastRefusal: number | undefined;

  private async run(): Promise<void> {
    let delay = this.backoff.initialMs;
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.relist();
          needList = false;
          // stopped by a handler of that list (onSync, onAdd...): no watch to open
          if (this.stopped) break;
        }
        let expired = false;
        this.connections++;
        this.handle = this.client.watch(this.ref, { ...this.opts, resourceVersion: this.rv, allowWatchBookmarks: true }, (e) => {
          delay = this.backoff.initialMs;
          if (e.type === 'ERROR') {
            const st = e.object as unknown as Status;
            if (st.code === 410) expired = true;
            return;
          }
          const o = e.object as T;
          if (o.metadata?.resourceVersion) this.rv = o.metadata.resourceVersion;
          if (e.type === 'BOOKMARK') return;
          const k = cacheKey(o);
          const old = this.cache.get(k);
          if (e.type === 'DELETED') {
            this.cache.delete(k);
            this.h.onDelete?.(o);
          } else {
            this.cache.set(k, o);
            if (old) this.h.onUpdate?.(o, old);
            else this.h.onAdd?.(o);
          }
        });
        await this.handle.done;
        if (expired) needList = true;
      } catch (e) {
        if (this.stopped) break;
        if (e instanceof KubeApiError && e.code === 410) needList = true;
        // nothing listens yet (the API server is starting, or restarting): trying again is a
        // refused SYN, so retry at a short fixed pace for a while instead of backing off (an
        // agent starting with its API server would otherwise sync up to ~700 ms late); only the
        // first refusal of a run of them is reported
        const refused = (e as NodeJS.ErrnoException)?.code === 'ECONNREFUSED';
        if (refused) {
          const now = Date.now();
          // a new run of refusals (none in the last second): report it, and retry fast for a while
          if (this.lastRefusal === undefined || now - this.lastRefusal > 1000) {
            this.refusedSince = now;
            this.h.onError?.(e);
          }
          this.lastRefusal = now;
          if (now - this.refusedSince! < REFUSED_FAST_RETRY_FOR_MS) {
            await sleepUnless(REFUSED_RETRY_MS, this.stopper.signal);
            continue;
          }
        } else this.h.onError?.(e);
        await sleepUnless(delay, this.stopper.signal);
        delay = Math.min(delay * 2, this.backoff.maxMs);
      }
    }
  }
}
