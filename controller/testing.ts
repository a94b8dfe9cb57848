// Helpers for tests and benchmarks: an in-process controller on 127.0.0.1 with a random port, a
// temporary data dir and tokens, plus polling with a deadline (never sleeps for synchronisation).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startController, type RunningController, type StartOptions } from './app.js';
import { KubeClient } from '../lib/kube/client.js';
import { kubeconfigYaml } from '../lib/kube/kubeconfig.js';
import { parseConfig, type ControllerConfig } from './config.js';

export const ADMIN_TOKEN = 'admin-token-0123456789';
export const VIEWER_TOKEN = 'viewer-token-0123456789';
export const nodeToken = (node: string): string => `node-token-${node}`;

export const DEFAULT_TEST_NODES = [
  { name: 'cp-1', role: 'control-plane', ip: '192.168.1.10', subnet: '192.168.1.0/24', podCIDR: '10.10.0.0/24' },
  { name: 'worker1', role: 'worker', ip: '192.168.1.1', subnet: '192.168.1.0/24', podCIDR: '10.10.10.0/24' },
  { name: 'worker2', role: 'worker', ip: '192.168.1.2', subnet: '192.168.1.0/24', podCIDR: '10.10.11.0/24' },
];

export interface TestController {
  running: RunningController;
  config: ControllerConfig;
  dir: string;
  admin: KubeClient;
  client(token: string): KubeClient;
  node(name: string): KubeClient;
  kubeconfigPath: string;
  /** stop (keeping the data dir) and start again on the same data dir */
  restart(): Promise<void>;
  close(): Promise<void>;
  logs: string[];
}

export async function startTestController(overrides: Record<string, unknown> = {}, opts: StartOptions = {}): Promise<TestController> {
  const dir = mkdtempSync(join(tmpdir(), 'egresslab-ctl-'));
  const nodes = (overrides.nodes as typeof DEFAULT_TEST_NODES | undefined) ?? DEFAULT_TEST_NODES;
  const tokens = [
    `${ADMIN_TOKEN},admin,admin,"system:masters"`,
    `${VIEWER_TOKEN},viewer,viewer,"viewers"`,
    ...nodes.map((n) => `${nodeToken(n.name)},system:node:${n.name},${n.name},"system:nodes"`),
  ].join('\n');
  writeFileSync(join(dir, 'tokens.csv'), tokens);
  const config = parseConfig({
    listen: { host: '127.0.0.1', port: 0 },
    dataDir: join(dir, 'data'),
    tokensFile: join(dir, 'tokens.csv'),
    serviceCIDRs: ['10.96.0.0/12'],
    nodes,
    // no heartbeat port: unit-test controllers run side by side on 127.0.0.1 (a test may override it)
    heartbeatPort: 0,
    ...overrides,
  });
  const logs: string[] = [];
  const log = opts.log ?? ((l: string) => logs.push(l));
  let running = await startController(config, { ...opts, log });
  const clients: KubeClient[] = [];
  const mk = (token: string): KubeClient => {
    const c = new KubeClient({ server: running.url, token, ca: running.caCert });
    clients.push(c);
    return c;
  };
  const kubeconfigPath = join(dir, 'kubeconfig');
  const writeKubeconfig = (): void => writeFileSync(kubeconfigPath, kubeconfigYaml({ server: running.url, caCert: running.caCert, token: ADMIN_TOKEN }));
  writeKubeconfig();
  const t: TestController = {
    get running() {
      return running;
    },
    config,
    dir,
    admin: mk(ADMIN_TOKEN),
    client: mk,
    node: (n) => mk(nodeToken(n)),
    kubeconfigPath,
    logs,
    async restart() {
      await running.stop();
      const port = running.port;
      running = await startController({ ...config, listen: { host: '127.0.0.1', port } }, { ...opts, log });
    },
    async close() {
      for (const c of clients) c.close();
      await running.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return t;
}

/** Polls `fn` until it returns a truthy value (or stops throwing); fails after `timeoutMs`. */
export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 5000, intervalMs = 10): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
