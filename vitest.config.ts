import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

/** The run report (artifacts/report.html): harness/testing/report-reporter.ts. */
const RUN_REPORT = './harness/testing/report-reporter.ts';

function labWorkers(): number {
  const raw = process.env.EGRESSLAB_LAB_WORKERS;
  if (raw === undefined || raw === '') return Math.min(2, availableParallelism());
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`EGRESSLAB_LAB_WORKERS must be a whole number from 1 to 64, got ${JSON.stringify(raw)}`);
  return n;
}

// Two projects:
//  - unit: pure logic, no Docker; fast.
//  - lab:  end-to-end through real lab containers (needs a Docker engine). Each test file brings up
//          its own lab (own containers, own links), so files run in parallel: two at once by default
//          (one on a 1-core machine). Two labs at once used to starve the agents (load 15-25,
//          spurious NodeDowns, failover verdicts that changed from run to run); with the light
//          harness and a system under test that holds up with a core busy, the whole suite on
//          2 cores took 424 s with two workers (1.41 cores busy on average) against 706-723 s with
//          one, every test passing and no spurious NodeDown (docs/lab.md, "What a lab's lifecycle
//          costs, and how many labs run at once"). EGRESSLAB_LAB_WORKERS=N sets another count
//          (1: one lab at a time), or shard the suite across machines (README).
/**
 * A shard (`npm test -- --shard=K/N`, one CI machine each) also leaves vitest's blob report
 * (.vitest-reports/blob-K-N.json); `npm run test:merge` turns the shards' blobs into one run: the
 * summary, artifacts/report.html and, with CI set, one artifacts/junit.xml (README: "Sharding").
 */
const SHARDED = process.argv.some((a) => a === '--shard' || a.startsWith('--shard='));

export default defineConfig({
  test: {
    // 'default' prints; the report reporter leaves artifacts/report.html (and run.json) after every
    // run; with CI set, 'junit' writes artifacts/junit.xml too.
    reporters: ['default', RUN_REPORT, ...(process.env.CI ? ['junit'] : []), ...(SHARDED ? ['blob'] : [])],
    outputFile: { junit: 'artifacts/junit.xml' },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['**/*.test.ts'],
          // templates/: what `egresslab init` writes into a user's project (type-checked and run there);
          // artifacts/: output, e.g. the regression scenarios the chaos explorer writes (artifacts/chaos/<id>/chaos-<id>.test.ts)
          exclude: ['**/*.lab.test.ts', 'scenarios/**', 'templates/**', 'node_modules/**', 'dist/**', 'artifacts/**'],
          environment: 'node',
          setupFiles: ['harness/testing/setup.ts'],
          // One worker per core (vitest's default leaves one core idle: 1 worker on 2 cores), files
          // sharing their worker's module graph like the lab's: a fresh graph per file re-imported
          // and re-transformed the harness 112 times, most of the unit phase's CPU. On 2 cores the
          // unit phase took 119.6 s of wall time (132 s CPU) with vitest's defaults, 78.7 s with 2
          // workers, 38.3 s (61 s CPU) with 2 workers sharing their graph. No unit test mocks a
          // module (vi.mock); the spies and stubs they use are restored after each test, and the
          // environment variables they set are put back.
          maxWorkers: availableParallelism(),
          isolate: false,
          // Unit tests run first, then the lab (projects with different worker counts need their own group).
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'lab',
          include: ['**/*.lab.test.ts', 'scenarios/**/*.test.ts'],
          exclude: ['templates/**', 'node_modules/**', 'dist/**', 'artifacts/**'],
          environment: 'node',
          globalSetup: ['harness/testing/global-setup.ts'],
          setupFiles: ['harness/testing/setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          maxWorkers: labWorkers(),
          // The lab files share their worker process (no fresh module graph per file): a fresh one
          // cost each file about 1-2 s of importing the harness (dockerode, testcontainers) and of
          // its code running cold, on the suite's critical path (5 lab files: 58.5 s -> 48.5 s,
          // import 4.9 s -> 1.5 s). Every lab file has its own lab; per-file state of the harness is
          // reset by the setup file (harness/testing/setup.ts), which vitest runs again per file.
          isolate: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
