/**
 * Where things are when egresslab runs from a checkout and when it is installed under a user's
 * node_modules: the package root, the user's project (artifacts/, .egresslab/), installed or not.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { installedPackage, projectRoot, workspaceRoot } from './paths.js';

const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

describe('workspaceRoot', () => {
  it('an installed package works for the project whose node_modules holds it; a checkout for itself', () => {
    expect(workspaceRoot('/home/me/egress-tests/node_modules/egresslab')).toBe('/home/me/egress-tests');
    expect(workspaceRoot('/home/me/egress-tests/node_modules/@acme/egresslab')).toBe('/home/me/egress-tests');
    // a workspace member's dependency hoisted to the monorepo root
    expect(workspaceRoot('/repo/node_modules/egresslab')).toBe('/repo');
    // pnpm's store layout, and a dependency of a dependency: the outermost project
    expect(workspaceRoot('/home/me/t/node_modules/.pnpm/egresslab@0.2.0/node_modules/egresslab')).toBe('/home/me/t');
    expect(workspaceRoot('/home/me/t/node_modules/some-kit/node_modules/egresslab')).toBe('/home/me/t');
    expect(workspaceRoot('/node_modules/egresslab')).toBe('/');
    expect(workspaceRoot('/work/egresslab')).toBe('/work/egresslab');
    expect(workspaceRoot('/')).toBe('/');
    // this checkout
    expect(workspaceRoot()).toBe(projectRoot());
  });
});

describe('installedPackage', () => {
  it('a folder without the TypeScript sources is an installed package; this checkout is not', () => {
    expect(installedPackage()).toBe(false);
    const root = mkdtempSync(join(tmpdir(), 'egl-installed-'));
    temps.push(root);
    mkdirSync(join(root, 'dist/harness/lab'), { recursive: true });
    writeFileSync(join(root, 'dist/harness/lab/payload.js'), '');
    expect(installedPackage(root)).toBe(true);
    mkdirSync(join(root, 'harness/lab'), { recursive: true });
    writeFileSync(join(root, 'harness/lab/payload.ts'), '');
    expect(installedPackage(root)).toBe(false);
  });
});
