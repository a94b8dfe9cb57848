/**
 * vitest globalSetup for the lab project: one engine check and one image build before any lab test
 * file starts (they run in parallel), and removal of leftovers of crashed earlier runs.
 */
import { assertEngine } from '../docker/client.js';
import { ensureImage } from '../docker/image.js';
import { prune } from '../lab/registry.js';
import { assertBuilt } from '../util/paths.js';
import { resetAudits, summarizeAudits } from './liveness-audit.js';

export default async function setup(): Promise<() => void> {
  assertBuilt();
  resetAudits();
  await assertEngine();
  const removed = await prune();
  if (removed.length) process.stderr.write(`egresslab: pruned leftovers of crashed runs: ${removed.join(', ')}\n`);
  await ensureImage((m) => process.stderr.write(`${m}\n`));
  return () => {
    const summary = summarizeAudits();
    if (summary) process.stdout.write(`\n${summary}\n`);
  };
}
