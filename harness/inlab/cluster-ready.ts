/**
 * Runs inside the control-plane container (Node 18): waits until every listed node is Up in the
 * API (its AnthosNetworkGatewayNode state), polling the local API server every 20 ms, with a deadline.
 * Usage: node cluster-ready.js --info /etc/egresslab/harness.json --nodes a,b,c [--timeout-ms 20000]
 * Exit 0 when all are Up; 1 with what is missing on stderr at the deadline.
 */
import { readFileSync } from 'node:fs';
import { KubeClient, R } from '../../controller/client/client.js';

function arg(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

interface Info {
  port: number;
  adminToken: string;
  caCert: string;
}

async function main(): Promise<number> {
  const info = JSON.parse(readFileSync(arg('info', '/etc/egresslab/harness.json')!, 'utf8')) as Info;
  const nodes = (arg('nodes') ?? '').split(',').filter(Boolean);
  const timeoutMs = Number(arg('timeout-ms', '20000'));
  const deadline = Date.now() + timeoutMs;
  const client = new KubeClient({ server: `https://127.0.0.1:${info.port}`, token: info.adminToken, ca: info.caCert, timeoutMs: 2000 });
  let last = 'no answer yet';
  try {
    for (;;) {
      try {
        const list = await client.list(R.anthosNetworkGatewayNodes, { namespace: 'kube-system' });
        const state = new Map(list.items.map((o) => [o.metadata.name, (o as { status?: { state?: string } }).status?.state ?? '?']));
        const notUp = nodes.filter((n) => state.get(n) !== 'Up');
        if (notUp.length === 0) return 0;
        last = `not Up: ${notUp.map((n) => `${n} (${state.get(n) ?? 'no AnthosNetworkGatewayNode'})`).join(', ')}`;
      } catch (e) {
        last = `API: ${(e as Error).message}`;
      }
      if (Date.now() >= deadline) {
        process.stderr.write(`${last}\n`);
        return 1;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    client.close();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`cluster-ready: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
