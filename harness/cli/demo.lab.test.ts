/**
 * The README's main job, end to end: `egresslab demo` on the default lab (cluster on) prints what
 * each probe observed against the SNAT flavour's promise, then the seed's gateway act: a matched pod
 * leaves as 192.168.1.100, the gateway node is killed, the IP moves with zero leaked packets and the
 * timeline SVG is written. The lab is removed at the end.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { artifactsDir } from '../util/paths.js';
import { listLabs, removeLabObjects } from '../lab/registry.js';
import { runCli } from '../testing/run.js';

const lab = `demo-${Date.now().toString(36)}`;

afterAll(async () => {
  await removeLabObjects(lab);
});

describe('egresslab demo (README command one ends with it)', () => {
  it('observes every SNAT promise, fails the seed gateway over with zero leaks, writes the timeline, removes the lab', async () => {
    const r = await runCli(['demo', '--lab', lab], { timeoutMs: 180_000 });
    expect(r.stdout, r.stderr).not.toContain('UNEXPECTED');
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/udp default\/client-1 -> 8\.8\.8\.8:\d+: observed 192\.168\.1\.1:\d+ \(at internet\), reply received/);
    expect(r.stdout).toMatch(/udp (alice\/frontend-1|paul\/frontend-2) -> 8\.8\.8\.8:\d+: observed 192\.168\.1\.100:\d+ \(at internet\), reply received/);
    const kill = /kill (node-\d): 192\.168\.1\.100 moved to (node-\d); .*leaked 0/.exec(r.stdout);
    expect(kill, r.stdout).not.toBeNull();
    expect(kill![2]).not.toBe(kill![1]);
    const svg = join(artifactsDir(), 'demo', 'gateway-failover.svg');
    expect(existsSync(svg)).toBe(true);
    expect(readFileSync(svg, 'utf8')).toContain(`SIGKILL of gateway node ${kill![1]}`);
    expect((await listLabs()).map((l) => l.id)).not.toContain(lab);
  }, 200_000);
});
