import { defineConfig } from 'vitest/config';

// Two projects:
//  - unit: pure logic, no Docker; fast.
//  - lab:  end-to-end through real lab containers (needs a Docker engine). Each test file brings up
//          its own lab (own containers, own links), so files run in parallel safely; 2 workers fit
//          the 2-core machines this project targets.
export default defineConfig({
  test: {
    reporters: process.env.CI ? ['default', 'junit'] : ['default'],
    outputFile: { junit: 'artifacts/junit.xml' },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['**/*.test.ts'],
          exclude: ['**/*.lab.test.ts', 'scenarios/**', 'node_modules/**', 'dist/**'],
          environment: 'node',
          setupFiles: ['harness/testing/setup.ts'],
          // Unit tests run first, then the lab (projects with different worker counts need their own group).
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'lab',
          include: ['**/*.lab.test.ts', 'scenarios/**/*.test.ts'],
          exclude: ['node_modules/**', 'dist/**'],
          environment: 'node',
          globalSetup: ['harness/testing/global-setup.ts'],
          setupFiles: ['harness/testing/setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
