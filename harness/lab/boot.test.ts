import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_BOOT_HOOK_DIR } from '../../agent/config.js';
import { bootHooksScript, NODE_BOOT_HOOK_DIR } from './boot.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "egresslab boot'd-"));
  dirs.push(d);
  return d;
}

describe('node boot hooks', () => {
  it('the lab runs them where the agent writes them by default', () => {
    expect(NODE_BOOT_HOOK_DIR).toBe(DEFAULT_BOOT_HOOK_DIR);
  });

  it('runs every *.sh hook in name order and nothing else (a directory with a quote in its name)', () => {
    const d = tempDir();
    const log = join(d, 'log');
    writeFileSync(join(d, '20-b.sh'), `echo b >> '${log.replace(/'/g, `'\\''`)}'\n`);
    writeFileSync(join(d, '10-a.sh'), `echo a >> '${log.replace(/'/g, `'\\''`)}'\n`);
    writeFileSync(join(d, 'README'), 'echo never >> /dev/null; exit 1\n');
    execFileSync('sh', ['-c', bootHooksScript(d)]);
    expect(readFileSync(log, 'utf8')).toBe('a\nb\n');
  });

  it('an empty or missing directory boots (a fresh node has no hooks)', () => {
    expect(spawnSync('sh', ['-c', bootHooksScript(tempDir())]).status).toBe(0);
    expect(spawnSync('sh', ['-c', bootHooksScript('/nonexistent/boot.d')]).status).toBe(0);
  });

  it('a failing hook stops the boot: exit 1, its name and its output on stderr, later hooks not run', () => {
    const d = tempDir();
    writeFileSync(join(d, '10-bad.sh'), 'echo "RTNETLINK answers: File exists"; exit 2\n');
    writeFileSync(join(d, '20-after.sh'), `touch '${join(d, 'ran').replace(/'/g, `'\\''`)}'\n`);
    const r = spawnSync('sh', ['-c', bootHooksScript(d)], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`boot hook ${join(d, '10-bad.sh')} failed: RTNETLINK answers: File exists`);
    expect(() => readFileSync(join(d, 'ran'))).toThrow();
  });
});
