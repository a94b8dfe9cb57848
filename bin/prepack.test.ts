/**
 * The prepack step's stale-output pruning: build outputs whose TypeScript source is gone are found
 * (and would not ship); outputs of existing sources, and anything outside the shipped folders, are not.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SHIPPED, staleOutputs } from './prepack.js';

const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

describe('staleOutputs', () => {
  it('lists .js, .d.ts and their maps under dist/{lib,agent,controller,harness} whose .ts source is gone', () => {
    const root = mkdtempSync(join(tmpdir(), 'egl-prepack-'));
    temps.push(root);
    const touch = (rel: string) => {
      mkdirSync(dirname(join(root, rel)), { recursive: true });
      writeFileSync(join(root, rel), '');
    };
    for (const f of ['harness/lab/lab.ts', 'lib/net/addresses.ts']) touch(f);
    for (const f of ['dist/harness/lab/lab.js', 'dist/harness/lab/lab.d.ts', 'dist/harness/lab/lab.js.map', 'dist/lib/net/addresses.js']) touch(f);
    // gone from the sources
    for (const f of [
      'dist/harness/lab/old.js',
      'dist/harness/lab/old.d.ts',
      'dist/harness/lab/old.js.map',
      'dist/agent/renamed/x.js',
      'dist/controller/y.d.ts.map',
    ])
      touch(f);
    // not shipped, or not a build output: left alone
    for (const f of ['dist/bench/gone.js', 'dist/payload/dist/agent/main.js', 'dist/harness/lab/notes.txt']) touch(f);
    expect(staleOutputs(root)).toEqual([
      'dist/agent/renamed/x.js',
      'dist/controller/y.d.ts.map',
      'dist/harness/lab/old.d.ts',
      'dist/harness/lab/old.js',
      'dist/harness/lab/old.js.map',
    ]);
    expect(SHIPPED).toEqual(['lib', 'agent', 'controller', 'harness']);
  });
});
