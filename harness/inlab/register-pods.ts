/**
 * Runs inside the control-plane container (Node 18): registers the topology's namespaces and pods
 * in the local API server (harness/cluster/pods.ts), retrying until the API answers, with a deadline.
 * Usage: node register-pods.js --info /etc/egresslab/harness.json [--timeout-ms 20000] < registration.json
 * Exit 0 when done; 1 with the last error on stderr at the deadline.
 */
import { readFileSync } from 'node:fs';
import { KubeClient } from '../../controller/client/client.js';
import { registerPods, type PodRegistration } from '../cluster/pods.js';

function arg(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

async function main(): Promise<number> {
  const info = JSON.parse(readFileSync(arg('info', '/etc/egresslab/harness.json')!, 'utf8')) as { port: number; adminToken: string; caCert: string };
  const reg = JSON.parse(readFileSync(0, 'utf8')) as PodRegistration;
  const deadline = Date.now() + Number(arg('timeout-ms', '20000'));
  const client = new KubeClient({ server: `https://127.0.0.1:${info.port}`, token: info.adminToken, ca: info.caCert, timeoutMs: 2000 });
  let last = 'no attempt';
  try {
    for (;;) {
      try {
        await registerPods(client, reg);
        return 0;
      } catch (e) {
        last = (e as Error).message;
      }
      if (Date.now() >= deadline) {
        process.stderr.write(`register-pods: ${last}\n`);
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
    process.stderr.write(`register-pods: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
