/**
 * Shared by the benchmarks: the percentile and median of their figures, and (the gateway
 * benchmarks) bring a lab up, run the body, and remove the lab on every way out — normal end,
 * error, SIGINT/SIGTERM (also while the lab is still coming up: Lab.up is aborted through its
 * signal and removes what it created). Exit code 130 after a signal.
 */
import { randomBytes } from 'node:crypto';
import { Lab } from '../harness/lab/lab.js';
import { topologyFromArg } from '../harness/topology/load.js';

export function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** The median (the mean of the two middle figures for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export async function withLab(topology: string, idPrefix: string, body: (lab: Lab) => Promise<void>): Promise<void> {
  const ac = new AbortController();
  let lab: Lab | undefined;
  let interrupted = false;
  let downing: Promise<void> | undefined;
  const down = (): Promise<void> =>
    (downing ??= lab ? lab.down().catch((e: Error) => console.error(`removing lab ${lab!.id}: ${e.message}`)) : Promise.resolve());
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n${sig}: stopping and removing the lab\n`);
    ac.abort();
    // Before Lab.up returned: it sees the abort and removes its objects itself; main() exits then.
    if (lab) void down().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const t0 = Date.now();
    lab = await Lab.up({ topology: topologyFromArg(topology), id: `${idPrefix}-${randomBytes(3).toString('hex')}`, signal: ac.signal });
    if (interrupted) {
      await down();
      process.exit(130);
    }
    console.log(`lab ${lab.id} (${topology}) up in ${Date.now() - t0} ms`);
    await body(lab);
  } catch (e) {
    if (interrupted) {
      // the body fails as the lab disappears under it: finish removing it, then leave
      await down();
      process.exit(130);
    }
    throw e;
  } finally {
    if (!interrupted) await down();
  }
}
