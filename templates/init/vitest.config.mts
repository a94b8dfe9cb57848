import { defineConfig } from 'vitest/config';

// Lab scenarios (written by `npx egresslab init`). Each test file brings up its own lab.
export default defineConfig({
  test: {
    include: ['scenarios/**/*.test.ts'],
    environment: 'node',
    // Before the first file: checks the Docker engine, removes leftovers of crashed runs, builds
    // the lab's base image on first use (with progress). Per file: the egresslab matchers
    // (toBeSeenFrom, toFailOverWithin, toHaveNoLeaks, ...) and failure notes for EGRESSLAB_KEEP.
    globalSetup: ['egresslab/vitest-global-setup'],
    setupFiles: ['egresslab/vitest-setup'],
    // A lab takes tens of seconds to come up and a failover several more.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // One lab at a time: a cluster lab keeps a 2-core machine busy on its own. Raise it on a
    // bigger machine, or shard the files across CI jobs (.github/workflows/egress.yml).
    maxWorkers: 1,
    // CI gets a JUnit report beside the diagnostics of failing tests, all under artifacts/.
    reporters: process.env.CI ? ['default', 'junit'] : ['default'],
    outputFile: { junit: 'artifacts/junit.xml' },
  },
});
