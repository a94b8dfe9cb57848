// Wires the store, the API server and the controller together (used by main.ts, tests, benchmarks).
import { readFileSync } from 'node:fs';
import { TokenAuthenticator, parseTokensFile } from './api/auth.js';
import { FilePersistence, MemoryPersistence, type Persistence } from './api/persistence.js';
import { Registry, RESOURCES } from './api/resources.js';
import { EventLimits } from './api/event-limits.js';
import { ApiServer } from './api/server.js';
import { ResourceService } from './api/service.js';
import { Store } from './api/store.js';
import type { ControllerConfig } from './config.js';
import { join } from 'node:path';
import { ensureServingPki } from './tls/selfsigned.js';
import { installAdmission } from './reconcile/admission.js';
import { Controller } from './reconcile/controller.js';
import { BeaconReceiver, type BeaconKey } from './reconcile/beacon-receiver.js';

export interface RunningController {
  url: string;
  port: number;
  /** CA certificate (PEM) clients must trust, when TLS is on */
  caCert?: string;
  caFile?: string;
  store: Store;
  service: ResourceService;
  controller: Controller;
  server: ApiServer;
  stop(): Promise<void>;
}

export interface StartOptions {
  log?: (line: string) => void;
  clock?: () => number;
  /** in-memory persistence instead of cfg.dataDir (benchmarks of the API alone) */
  persistence?: Persistence;
  /** tokens instead of cfg.tokensFile */
  tokens?: string;
}

export async function startController(cfg: ControllerConfig, opts: StartOptions = {}): Promise<RunningController> {
  const log = opts.log ?? ((l: string) => console.log(`${new Date().toISOString()} ${l}`));
  const persistence = opts.persistence ?? new FilePersistence(cfg.dataDir, cfg.fsync, (w) => log(`persistence: ${w}`));
  const store = new Store({ persistence });
  // EgressNATPolicy: v1alpha1 (gateway policy) is the preferred version of networking.gke.io in a
  // standard cluster, v1 (Autopilot NoSNAT) in an Autopilot cluster.
  const registry = new Registry(RESOURCES, { 'networking.gke.io': cfg.flavour === 'autopilot' ? 'v1' : 'v1alpha1' });
  const service = new ResourceService(store, registry);
  const controller = new Controller({ service, config: cfg, log, clock: opts.clock });
  installAdmission(service, { flavour: cfg.flavour, managedPolicyName: controller.managedPolicyName });
  service.gatewayNamespace = cfg.gatewayNamespace;
  const eventLimits = new EventLimits(service, cfg.api, log);
  eventLimits.start();
  const tokens = parseTokensFile(opts.tokens ?? readFileSync(cfg.tokensFile, 'utf8'));
  const authenticator = new TokenAuthenticator(tokens);
  let tls: { cert: string | Buffer; key: string | Buffer } | undefined;
  let caFile: string | undefined;
  if (cfg.tls && cfg.tls.mode === 'files') tls = { cert: readFileSync(cfg.tls.certFile), key: readFileSync(cfg.tls.keyFile) };
  else if (cfg.tls && cfg.tls.mode === 'auto') {
    const pki = ensureServingPki(join(cfg.dataDir, 'pki'), cfg.tls.altNames);
    tls = { cert: pki.cert, key: pki.key };
    caFile = pki.caFile;
  }
  const server = new ApiServer({ service, authenticator, log, tls, bookmarkIntervalMs: cfg.bookmarkIntervalMs, limits: cfg.api });
  controller.start();
  let heartbeats: BeaconReceiver | undefined;
  if (cfg.heartbeatPort > 0) {
    // node -> (token, address): a heartbeat counts only from the node's own address with its own token
    const keys = new Map<string, BeaconKey>();
    for (const [token, user] of tokens) {
      const m = /^system:node:(.+)$/.exec(user.name);
      const node = m && cfg.nodes.find((n) => n.name === m[1]);
      if (node) keys.set(node.name, { token, ip: node.ip });
    }
    heartbeats = new BeaconReceiver({
      host: cfg.listen.host,
      port: cfg.heartbeatPort,
      keys: () => keys,
      onBeat: (n, e, q, i) => controller.observeHeartbeat(n, e, q, i),
      log,
    });
    try {
      const port = await heartbeats.start();
      log(`liveness: heartbeats on udp ${cfg.listen.host}:${port} from ${keys.size} node(s)`);
    } catch (e) {
      heartbeats = undefined;
      log(
        `liveness: cannot listen for heartbeats on udp ${cfg.listen.host}:${cfg.heartbeatPort} (${e instanceof Error ? e.message : String(e)}): Lease renewals only`,
      );
    }
  }
  const addr = await server.listen(cfg.listen.port, cfg.listen.host);
  log(
    `api: serving on ${addr.url} (flavour ${cfg.flavour}${caFile ? `, CA ${caFile}` : ''}, data ${opts.persistence ? 'in memory' : cfg.dataDir}, rv ${store.resourceVersion})`,
  );
  let stopped = false;
  return {
    url: addr.url,
    port: addr.port,
    caFile,
    caCert: caFile ? readFileSync(caFile, 'utf8') : undefined,
    store,
    service,
    controller,
    server,
    async stop() {
      if (stopped) return;
      stopped = true;
      controller.stop();
      eventLimits.stop();
      heartbeats?.stop();
      await server.close();
      store.close();
      log('controller: stopped');
    },
  };
}

export { MemoryPersistence };
