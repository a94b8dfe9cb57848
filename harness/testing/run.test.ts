import { describe, expect, it } from 'vitest';
import { run, runCli } from './run.js';

describe('run and runCli (execa)', () => {
  it('a non-zero exit is a result; output and input pass through', async () => {
    const r = await runCli(['statsu'], { timeoutMs: 60_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "statsu"');
    expect(await run('sh', ['-c', 'cat; exit 3'], { input: 'in\n' })).toEqual({ code: 3, stdout: 'in\n', stderr: '' });
  }, 60_000);
  it('a program that cannot start fails with the command and the cause', async () => {
    await expect(run('egresslab-no-such-program', ['x'])).rejects.toThrow(/egresslab-no-such-program x[\s\S]*ENOENT/);
  });
});
