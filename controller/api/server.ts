// The HTTP front end: routing, authentication, discovery, JSON bodies, watch streaming.
import { decodeKubeProtobuf } from './protobuf.js';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { parse as parseYaml } from 'yaml';
import type { TokenAuthenticator, UserInfo } from './auth.js';
import { apiGroup, apiGroupList, apiResourceList, apiVersions, openApiV3GroupVersion, openApiV3Root, SERVER_VERSION } from './discovery.js';
import { ApiError, errors } from './errors.js';
import type { ResourceDef } from './resources.js';
import type { ResourceService, Selectors } from './service.js';
import { DEFAULT_API_LIMITS, type ApiLimits } from './limits.js';
import { toTable, wantsTable } from './table.js';
import { WatchHub, type WatchStats } from './watch.js';
import type { KubeObject } from '../../lib/kube/types.js';

/** The longest watch a client may ask for (setTimeout's limit, 2^31-1 ms). */
export const MAX_WATCH_TIMEOUT_SECONDS = 2_147_483;
/** Request bodies nesting deeper than this are refused with 400 (a Kubernetes object nests ~10 levels). */
export const MAX_BODY_DEPTH = 256;

/** Whether a parsed JSON value nests deeper than `max` levels (iterative: no recursion on hostile input). */
export function nestingDepthExceeds(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d > max) return true;
    for (const x of Array.isArray(v) ? v : Object.values(v)) if (typeof x === 'object' && x !== null) stack.push([x, d + 1]);
  }
  return false;
}

export interface ApiServerOptions {
  service: ResourceService;
  authenticator: TokenAuthenticator;
  /** one line per significant action */
  log?: (line: string) => void;
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** interval of BOOKMARK events for watches that allow them (ms; default 60 s, about what kube-apiserver does: every bookmark wakes every watcher) */
  bookmarkIntervalMs?: number;
  /** watch limits (defaults: DEFAULT_API_LIMITS) */
  limits?: Partial<ApiLimits>;
  /** random source of the watch duration's jitter (tests) */
  random?: () => number;
}

const MAX_BODY = 3 * 1024 * 1024;
const PUBLIC_PATHS = new Set(['/version', '/healthz', '/livez', '/readyz']);

interface Target {
  def: ResourceDef;
  version: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

export class ApiServer {
  readonly server: Server;
  private readonly sockets = new Set<import('node:net').Socket>();
  private readonly hub: WatchHub;
  private readonly log: (line: string) => void;

  constructor(private readonly opts: ApiServerOptions) {
    this.log = opts.log ?? (() => {});
    this.hub = new WatchHub(opts.service, { ...DEFAULT_API_LIMITS, ...opts.limits }, this.log, opts.bookmarkIntervalMs ?? 60_000, opts.random);
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.handle(req, res).catch((err: unknown) => this.fail(res, err));
    };
    this.server = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, handler) : createHttpServer(handler);
    this.server.keepAliveTimeout = 65_000;
    this.server.on('connection', (s) => {
      s.setNoDelay(true);
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async listen(port: number, host = '127.0.0.1'): Promise<{ host: string; port: number; url: string }> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const a = this.server.address() as AddressInfo;
    const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return { host: a.address, port: a.port, url: `${this.opts.tls ? 'https' : 'http'}://${h}:${a.port}` };
  }

  async close(): Promise<void> {
    this.hub.closeAll();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }

  /** Open watches (a test ends them to simulate dropped streams). */
  get watchers(): ReadonlySet<{ end(): void }> {
    return this.hub.watchers;
  }

  /** Watch counters: open, dropped, refused, encodings, peak bytes waiting. */
  watchStats(): WatchStats {
    return this.hub.stats();
  }

  private get service(): ResourceService {
    return this.opts.service;
  }

  // ------------------------------------------------------------------ request handling

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    if (PUBLIC_PATHS.has(path)) {
      if (path === '/version') return this.json(res, 200, SERVER_VERSION);
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
      return;
    }
    const user = this.opts.authenticator.authenticate(req.headers.authorization);
    if (!user) throw errors.unauthorized();
    const seg = path.split('/').filter(Boolean);
    const reg = this.service.registry;
    if (method === 'GET') {
      if (path === '/api') return this.json(res, 200, apiVersions(`${req.socket.localAddress ?? '127.0.0.1'}:${req.socket.localPort ?? 0}`));
      if (path === '/apis') return this.json(res, 200, apiGroupList(reg));
      if (seg[0] === 'api' && seg.length === 2) return this.jsonOr404(res, apiResourceList(reg, '', seg[1]!), path);
      if (seg[0] === 'apis' && seg.length === 2) return this.jsonOr404(res, apiGroup(reg, seg[1]!), path);
      if (seg[0] === 'apis' && seg.length === 3) return this.jsonOr404(res, apiResourceList(reg, seg[1]!, seg[2]!), path);
      if (path === '/openapi/v3') return this.json(res, 200, openApiV3Root(reg));
      if (seg[0] === 'openapi' && seg[1] === 'v3') {
        const key = seg.slice(2);
        const doc =
          key[0] === 'api'
            ? openApiV3GroupVersion(reg, '', key[1] ?? '')
            : key[0] === 'apis'
              ? openApiV3GroupVersion(reg, key[1] ?? '', key[2] ?? '')
              : undefined;
        return this.jsonOr404(res, doc, path);
      }
    }
    const target = this.route(seg);
    if (!target) throw errors.pathNotFound(path);
    await this.dispatch(req, res, method, url, target, user);
  }

  private route(seg: string[]): Target | undefined {
    let group: string;
    let version: string;
    let rest: string[];
    if (seg[0] === 'api' && seg.length >= 3) {
      group = '';
      version = seg[1]!;
      rest = seg.slice(2);
    } else if (seg[0] === 'apis' && seg.length >= 4) {
      group = seg[1]!;
      version = seg[2]!;
      rest = seg.slice(3);
    } else return undefined;
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3 && rest[2] !== 'status' && rest[2] !== 'finalize') {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const def = this.service.registry.find(group, version, rest[0]!);
    if (!def || rest.length > 3) return undefined;
    if (namespace !== undefined && !def.namespaced) return undefined;
    const name = rest[1];
    const subresource = rest[2];
    if (subresource !== undefined && !(subresource === 'status' && def.statusSubresource)) return undefined;
    if (def.namespaced && name !== undefined && namespace === undefined) return undefined;
    return { def, version, namespace, name, subresource };
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse, method: string, url: URL, t: Target, user: UserInfo): Promise<void> {
    const qp = url.searchParams;
    const ctx = { user, dryRun: qp.get('dryRun') === 'All' };
    const { def, version, namespace: ns, name } = t;
    const accept = req.headers.accept;
    if (name === undefined) {
      if (method === 'GET') {
        if (qp.get('watch') === 'true' || qp.get('watch') === '1') return this.watch(req, res, t, qp, wantsTable(accept), user);
        const list = this.service.list(def, version, {
          namespace: ns,
          labelSelector: qp.get('labelSelector') ?? undefined,
          fieldSelector: qp.get('fieldSelector') ?? undefined,
          limit: qp.has('limit') ? Number(qp.get('limit')) : undefined,
          continue: qp.get('continue') ?? undefined,
        });
        if (wantsTable(accept)) {
          const table = toTable(
            list.items,
            { apiVersion: list.apiVersion, kind: def.kind, metadata: {} },
            list.metadata.resourceVersion,
            qp.get('includeObject') ?? 'Metadata',
            this.service.store.now(),
          );
          if (list.metadata.continue) (table.metadata as Record<string, unknown>).continue = list.metadata.continue;
          return this.json(res, 200, table);
        }
        return this.json(res, 200, list);
      }
      if (method === 'POST') {
        if (def.namespaced && ns === undefined)
          throw errors.methodNotAllowed(`POST ${url.pathname}: ${def.plural} are namespaced; use /namespaces/{namespace}/${def.plural}`);
        const body = await this.body(req);
        const created = this.service.create(def, version, ns, body, ctx);
        this.logWrite(user, 'create', def, created);
        return this.json(res, 201, created);
      }
      if (method === 'DELETE') {
        const list = this.service.list(def, version, {
          namespace: ns,
          labelSelector: qp.get('labelSelector') ?? undefined,
          fieldSelector: qp.get('fieldSelector') ?? undefined,
        });
        const items = list.items.map((o) => this.service.delete(def, version, o.metadata.namespace, o.metadata.name!, ctx));
        for (const o of items) this.logWrite(user, 'delete', def, o);
        return this.json(res, 200, { ...list, items });
      }
      throw errors.methodNotAllowed(`${method} is not supported on ${url.pathname}`);
    }
    switch (method) {
      case 'GET': {
        const o = this.service.get(def, version, ns, name);
        if (wantsTable(accept))
          return this.json(res, 200, toTable([o], o, o.metadata.resourceVersion ?? '', qp.get('includeObject') ?? 'Metadata', this.service.store.now()));
        return this.json(res, 200, o);
      }
      case 'PUT': {
        const body = await this.body(req);
        const o = this.service.update(def, version, ns, name, body, ctx, t.subresource);
        this.logWrite(user, t.subresource ? 'update status' : 'update', def, o);
        return this.json(res, 200, o);
      }
      case 'PATCH': {
        const ct = req.headers['content-type'] ?? '';
        const body = await this.body(req, true);
        const o = this.service.patch(def, version, ns, name, ct, body, ctx, t.subresource);
        this.logWrite(user, t.subresource ? 'patch status' : 'patch', def, o);
        return this.json(res, 200, o);
      }
      case 'DELETE': {
        if (t.subresource) throw errors.methodNotAllowed('DELETE is not supported on a subresource');
        const raw = await this.body(req, true, true);
        const pre = (raw as { preconditions?: { uid?: string; resourceVersion?: string } } | undefined)?.preconditions;
        const o = this.service.delete(def, version, ns, name, ctx, pre);
        this.logWrite(user, 'delete', def, o);
        return this.json(res, 200, o);
      }
      default:
        throw errors.methodNotAllowed(`${method} is not supported on ${url.pathname}`);
    }
  }

  // ------------------------------------------------------------------ watch

  private watch(req: IncomingMessage, res: ServerResponse, t: Target, qp: URLSearchParams, table: boolean, user: UserInfo): void {
    const { def, version, namespace: ns } = t;
    const selectors: Selectors = this.service.parseSelectors(qp.get('labelSelector') ?? undefined, qp.get('fieldSelector') ?? undefined);
    const rvParam = qp.get('resourceVersion') ?? '';
    let since: number | undefined;
    if (rvParam !== '' && rvParam !== '0') {
      if (!/^\d+$/.test(rvParam)) throw errors.badRequest(`invalid resourceVersion ${JSON.stringify(rvParam)}`);
      since = Number(rvParam);
    }
    // checked before the headers go out: a bad value is a 400, not a watch that ends after 1 ms
    // (setTimeout fires at once beyond 2^31-1 ms)
    const timeoutParam = qp.get('timeoutSeconds');
    if (timeoutParam !== null && (!/^\d+$/.test(timeoutParam) || Number(timeoutParam) > MAX_WATCH_TIMEOUT_SECONDS)) {
      throw errors.badRequest(
        `timeoutSeconds: Invalid value: ${JSON.stringify(timeoutParam)}: must be a whole number of seconds from 0 to ${MAX_WATCH_TIMEOUT_SECONDS}`,
      );
    }
    this.hub.admit(user.name); // 429 over the identity's cap, before any header
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders(); // clients wait for the headers before reading events
    this.hub.open(
      res,
      {
        user: user.name,
        def,
        version,
        namespace: ns,
        selectors,
        table: table ? { include: qp.get('includeObject') ?? 'Metadata' } : undefined,
        since,
        sendInitialEvents: qp.get('sendInitialEvents') === 'true',
        allowWatchBookmarks: qp.get('allowWatchBookmarks') === 'true',
        timeoutSeconds: timeoutParam === null ? undefined : Number(timeoutParam),
      },
      (fn) => {
        req.on('close', fn);
        res.on('close', fn);
      },
    );
  }

  // ------------------------------------------------------------------ helpers

  private async body(req: IncomingMessage, raw = false, optional = false): Promise<unknown> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY) throw new ApiError(413, 'RequestEntityTooLarge', 'request body too large');
      chunks.push(c as Buffer);
    }
    const bytes = Buffer.concat(chunks);
    const text = bytes.toString('utf8');
    if (text.trim() === '') {
      if (optional) return undefined;
      throw errors.badRequest('the request body is empty');
    }
    const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (ct === 'application/vnd.kubernetes.protobuf' && !raw) {
      // kubectl's `create configmap|secret|namespace` send protobuf whatever the server prefers
      try {
        return decodeKubeProtobuf(bytes);
      } catch (e) {
        const msg = (e as Error).message;
        throw /are decoded for/.test(msg)
          ? new ApiError(415, 'UnsupportedMediaType', msg)
          : errors.badRequest(`the protobuf request body cannot be decoded: ${msg}`);
      }
    }
    if (ct.includes('protobuf') || ct.includes('cbor')) {
      throw errors.unsupportedMediaType(ct, [
        'application/json',
        'application/yaml',
        'application/merge-patch+json',
        'application/json-patch+json',
        'application/strategic-merge-patch+json',
      ]);
    }
    let body: unknown;
    try {
      body = !raw && (ct === 'application/yaml' || ct === 'application/x-yaml') ? parseYaml(text) : JSON.parse(text);
    } catch (e) {
      throw errors.badRequest(`the request body is not valid ${ct.includes('yaml') && !raw ? 'YAML' : 'JSON'}: ${(e as Error).message}`);
    }
    // every later step (copies, patches, validation) recurses: refuse depth before any of them
    if (nestingDepthExceeds(body, MAX_BODY_DEPTH)) throw errors.badRequest(`the request body nests deeper than ${MAX_BODY_DEPTH} levels`);
    return body;
  }

  private logWrite(user: UserInfo, verb: string, def: ResourceDef, o: KubeObject): void {
    if (def.plural === 'leases') return; // renewals every few hundred ms: too chatty
    const ns = o.metadata.namespace ? `${o.metadata.namespace}/` : '';
    this.log(`api: ${user.name} ${verb} ${def.plural}${def.group ? `.${def.group}` : ''} ${ns}${o.metadata.name} rv=${o.metadata.resourceVersion}`);
  }

  private json(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private' });
    res.end(text);
  }

  private jsonOr404(res: ServerResponse, body: unknown, path: string): void {
    if (body === undefined) throw errors.pathNotFound(path);
    this.json(res, 200, body);
  }

  private fail(res: ServerResponse, err: unknown): void {
    const e = err instanceof ApiError ? err : errors.internal(err instanceof Error ? err.message : String(err));
    if (!(err instanceof ApiError)) console.error('api: internal error:', err);
    if (res.headersSent) {
      if (!res.writableEnded) res.end();
      return;
    }
    const headers: Record<string, string> = {};
    if (e.code === 401) headers['WWW-Authenticate'] = 'Bearer realm="egresslab"';
    if (e.details?.retryAfterSeconds !== undefined) headers['Retry-After'] = String(e.details.retryAfterSeconds);
    const text = JSON.stringify(e.toStatus());
    res.writeHead(e.code, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(text)), ...headers });
    res.end(text);
  }
}
