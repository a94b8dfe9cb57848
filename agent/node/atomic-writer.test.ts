import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DATA_DIR_NAME, readProjected, writePayload } from './atomic-writer.js';

let root: string;
let dir: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'egresslab-aw-'));
  dir = join(root, 'ip-masq-agent');
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const tsDirs = (): string[] => readdirSync(dir).filter((n) => /^\.\.\d{4}_/.test(n));

describe('kubelet-style atomic writer', () => {
  it('lays out ..<timestamp>/file, ..data -> ..<timestamp> and file -> ..data/file', () => {
    expect(writePayload(dir, { config: 'a: 1\n' }, new Date(Date.UTC(2025, 0, 2, 3, 4, 5)))).toBe(true);
    const target = readlinkSync(join(dir, DATA_DIR_NAME));
    expect(target).toMatch(/^\.\.2025_01_02_03_04_05\.\d+$/);
    expect(readlinkSync(join(dir, 'config'))).toBe('..data/config');
    expect(readFileSync(join(dir, 'config'), 'utf8')).toBe('a: 1\n');
    expect(tsDirs()).toEqual([target]);
  });

  it('swaps the content through ..data, keeps one timestamped dir, and is a no-op when nothing changed', () => {
    writePayload(dir, { config: 'one' });
    const first = readlinkSync(join(dir, DATA_DIR_NAME));
    expect(writePayload(dir, { config: 'one' })).toBe(false);
    expect(readlinkSync(join(dir, DATA_DIR_NAME))).toBe(first);
    expect(writePayload(dir, { config: 'two' })).toBe(true);
    const second = readlinkSync(join(dir, DATA_DIR_NAME));
    expect(second).not.toBe(first);
    expect(readFileSync(join(dir, 'config'), 'utf8')).toBe('two');
    expect(tsDirs()).toEqual([second]);
  });

  it('an empty payload removes the file (the ConfigMap was deleted) and can be filled again', () => {
    writePayload(dir, { config: 'x' });
    writePayload(dir, {});
    expect(existsSync(join(dir, 'config'))).toBe(false);
    expect(() => lstatSync(join(dir, 'config'))).toThrow(/ENOENT/);
    expect(readProjected(dir).files).toEqual({});
    writePayload(dir, { config: 'y' });
    expect(readFileSync(join(dir, 'config'), 'utf8')).toBe('y');
  });

  it('replaces a plain file in the way by the symlink, and leaves foreign files alone', () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config'), 'written by hand');
    writeFileSync(join(dir, 'README'), 'not ours');
    writePayload(dir, { config: 'projected' });
    expect(lstatSync(join(dir, 'config')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dir, 'config'), 'utf8')).toBe('projected');
    writePayload(dir, {});
    expect(readFileSync(join(dir, 'README'), 'utf8')).toBe('not ours');
  });

  it('refuses file names that would escape or clash with the bookkeeping', () => {
    for (const bad of ['../x', '..data', 'a/b', '']) expect(() => writePayload(dir, { [bad]: 'x' })).toThrow(/invalid file name/);
  });
});
