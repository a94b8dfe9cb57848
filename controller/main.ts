// egresslab controller: a Kubernetes-compatible API server plus the egress NAT controller loops.
// Usage: node dist/controller/main.js CONFIG.json   (or EGRESSLAB_CONTROLLER_CONFIG=CONFIG.json)
import { readFileSync } from 'node:fs';
import { startController } from './app.js';
import { ConfigError, parseConfig } from './config.js';
import { PersistenceError } from './api/persistence.js';

async function main(): Promise<void> {
  const path = process.argv[2] ?? process.env.EGRESSLAB_CONTROLLER_CONFIG;
  if (!path) {
    console.error('usage: controller CONFIG.json (or set EGRESSLAB_CONTROLLER_CONFIG)');
    process.exit(2);
  }
  let cfg: ReturnType<typeof parseConfig>;
  try {
    cfg = parseConfig(JSON.parse(readFileSync(path, 'utf8')));
  } catch (e) {
    console.error(`controller: bad config ${path}: ${e instanceof ConfigError || e instanceof SyntaxError ? e.message : String(e)}`);
    process.exit(2);
  }
  const running = await startController(cfg);
  let stopping = false;
  const shutdown = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    console.log(`${new Date().toISOString()} controller: ${sig}, shutting down`);
    running.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error('controller: shutdown failed:', err);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  // unusable data on disk: the message says which file, which line and what to do; no stack
  if (err instanceof PersistenceError) console.error(`controller: ${err.message}`);
  else console.error('controller: fatal:', err);
  process.exit(1);
});
