/**
 * The in-lab helper as a program (dist/harness/inlab/helper.js, built by `npm test`'s pretest), on
 * this machine: nothing here touches a network namespace or the host's network (no netns request,
 * no probe to anything but loopback).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, writeFileSync, appendFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../util/paths.js';

let child: ChildProcessWithoutNullStreams;
let dir: string;
let nextId = 1;
const waiting = new Map<number, (m: { ok: boolean; result?: unknown; error?: string }) => void>();

function call(msg: Record<string, unknown>): Promise<{ ok: boolean; result?: unknown; error?: string }> {
  const id = nextId++;
  return new Promise((resolve) => {
    waiting.set(id, resolve);
    child.stdin.write(`${JSON.stringify({ ...msg, id })}\n`);
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'egl-helper-'));
  child = spawn(process.execPath, [join(projectRoot(), 'dist/harness/inlab/helper.js')], { stdio: ['pipe', 'pipe', 'pipe'] });
  let buf = '';
  let ready: () => void = () => undefined;
  const readyP = new Promise<void>((r) => (ready = r));
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const m = JSON.parse(buf.slice(0, nl)) as { id?: number; ready?: boolean; ok: boolean };
      buf = buf.slice(nl + 1);
      if (m.ready) ready();
      else waiting.get(m.id!)?.(m);
    }
  });
  await readyP;
});

afterAll(() => {
  child.stdin.end();
  rmSync(dir, { recursive: true, force: true });
});

describe('in-lab helper', () => {
  it('runs commands with stdin, exit codes and the docker exec answer for a missing program', async () => {
    expect(await call({ op: 'exec', argv: ['sh', '-c', 'cat; echo err >&2; exit 3'], stdin: 'hello' })).toEqual({
      id: expect.any(Number),
      ok: true,
      result: { exitCode: 3, stdout: 'hello', stderr: 'err\n' },
    });
    const missing = await call({ op: 'exec', argv: ['no-such-program-egl'] });
    expect(missing.result).toMatchObject({ exitCode: 127, stderr: expect.stringContaining('executable file not found') });
    expect(await call({ op: 'exec', argv: ['sleep', '5'], timeoutMs: 100 })).toMatchObject({ ok: false, error: 'timed out after 100 ms' });
    expect(await call({ op: 'nope' })).toMatchObject({ ok: false, error: 'unknown op "nope"' });
  });

  it('waits for a matching observation line in-process, and answers [] when none comes in time', async () => {
    const f = join(dir, 'observed.jsonl');
    writeFileSync(f, `${JSON.stringify({ t: 1, tok: 'old' })}\n`);
    const pending = call({ op: 'watch', file: f, needle: '"tok":"abc"', since: 100, timeoutMs: 3000 });
    setTimeout(() => appendFileSync(f, `${JSON.stringify({ t: 50, tok: 'abc' })}\n${JSON.stringify({ t: 200, tok: 'abc' })}\n`), 50);
    expect((await pending).result).toEqual([JSON.stringify({ t: 200, tok: 'abc' })]);
    expect((await call({ op: 'watch', file: f, needle: '"tok":"zzz"', since: 0, timeoutMs: 60 })).result).toEqual([]);
  });

  it("watch returns the window's capture statistics lines too, in file order, without resolving on them", async () => {
    const f = join(dir, 'observed-stats.jsonl');
    const stats = (t: number, drops = 0) => JSON.stringify({ t, p: 'stats', drops, total: drops, pending: 0 });
    writeFileSync(f, `${stats(50, 1)}\n${stats(150)}\n`);
    const started = Date.now();
    const pending = call({ op: 'watch', file: f, needle: '"tok":"abc"', since: 100, timeoutMs: 3000 });
    setTimeout(() => appendFileSync(f, `${stats(160)}\n${JSON.stringify({ t: 170, tok: 'abc' })}\n`), 150);
    expect((await pending).result).toEqual([stats(150), stats(160), JSON.stringify({ t: 170, tok: 'abc' })]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140); // the stats lines alone did not end the wait
    // nothing matched: the statistics alone, after the deadline
    expect((await call({ op: 'watch', file: f, needle: '"tok":"zzz"', since: 100, timeoutMs: 60 })).result).toEqual([stats(150), stats(160)]);
  });

  it('watch with ports keeps, of the TCP segments, those that matter to connections from those ports', async () => {
    const f = join(dir, 'observed-ports.jsonl');
    const seg = (t: number, sport: number, flags: number, src = '192.168.1.100') =>
      JSON.stringify({ t, p: 'tcp', src, dst: '8.8.8.8', sport, dport: 7007, k: 'tcp 8.8.8.8:7007', f: flags });
    const lines = [
      seg(100, 40001, 2),
      seg(101, 40002, 2),
      seg(102, 40001, 24),
      seg(103, 40002, 24),
      seg(104, 40002, 16),
      seg(105, 40001, 16),
      JSON.stringify({ t: 106, p: 'stats', drops: 0, total: 0, pending: 0 }),
    ];
    writeFileSync(f, `${lines.join('\n')}\n`);
    const r = await call({ op: 'watch', file: f, needle: '"k":"tcp 8.8.8.8:7007"', since: 0, timeoutMs: 0, ports: [40001] });
    expect(r.result).toEqual([lines[0], lines[1], lines[2], lines[3], lines[5], lines[6]]);
    expect((await call({ op: 'watch', file: f, needle: '"k":"tcp 8.8.8.8:7007"', since: 0, timeoutMs: 0 })).result).toEqual(lines);
  });

  it('waits until a file matches a pattern (the agent status), false after the deadline', async () => {
    const f = join(dir, 'status.json');
    const pending = call({ op: 'wait-match', file: f, pattern: '"phase": *"running"', timeoutMs: 3000 });
    setTimeout(() => writeFileSync(f, '{"phase": "running"}'), 50);
    expect((await pending).result).toBe(true);
    expect((await call({ op: 'wait-match', file: f, pattern: 'stopped', timeoutMs: 60 })).result).toBe(false);
  });
});
