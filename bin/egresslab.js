#!/usr/bin/env node
// The egresslab CLI: runs the compiled harness (npm run build).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/harness/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('egresslab: the build output is missing; run "npm run build" (or "npm install") first\n');
  process.exit(2);
}
// Output to a closed pipe (`egresslab status | head -3`) ends quietly, as every Unix tool does.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
