/**
 * The CLI's public contract, end to end: up, probe --json, status --json, down, prune, and errors
 * that name what is wrong.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../testing/run.js';
import { removeLabObjects } from '../lab/registry.js';

const lab = `cli-${Date.now().toString(36)}`;

const cli = (...args: string[]) => runCli(args);

afterAll(async () => {
  await removeLabObjects(lab);
});

describe('egresslab CLI', () => {
  it('up --json brings a lab up and describes it', async () => {
    const r = await cli('up', '--topology', 'foundation', '--lab', lab, '--json');
    expect(r.stderr).toContain(`starting`);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { lab: string; nodes: { name: string; address: string }[]; pods: { pod: string; ip: string }[] };
    expect(out.lab).toBe(lab);
    expect(out.nodes.map((n) => n.address)).toEqual(['192.168.1.1', '192.168.1.2', '192.168.1.3', '192.168.1.10']);
    expect(out.pods).toContainEqual(expect.objectContaining({ pod: 'alice/frontend-1', ip: '10.10.10.1' }));
  });

  it('probe --json prints observedSource, observedPort, replyReceived and rttMs', async () => {
    const r = await cli('probe', '--lab', lab, '--from', 'default/client-1', '--to', '172.16.100.10', '--proto', 'udp', '--port', '5353', '--json');
    expect(r.code).toBe(0);
    const p = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(p).toMatchObject({ observedSource: '10.10.10.2', replyReceived: true, proto: 'udp', port: 5353 });
    expect(typeof p.observedPort).toBe('number');
    expect(typeof p.rttMs).toBe('number');
  });

  it('probe in human form says what was observed and whether the reply came', async () => {
    const r = await cli('probe', '--lab', lab, '--from', 'default/client-1', '--to', '8.8.8.8', '--proto', 'tcp', '--timeout-ms', '500');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/observed 10\.10\.10\.2:\d+ \(at internet\), reply NOT received/);
  });

  it('status --json lists the containers of the lab', async () => {
    const r = await cli('status', '--lab', lab, '--json');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as { lab: string; containers: { key: string; state: string }[] };
    expect(s.lab).toBe(lab);
    expect(s.containers.map((c) => c.key).sort()).toEqual(['cp-1', 'internet', 'node-1', 'node-2', 'node-3', 'router', 'switch', 'vpc', 'wirer']);
    expect(s.containers.every((c) => c.state === 'running')).toBe(true);
  });

  it('bad flags and unknown names are refused with what to do next', async () => {
    const bad = await cli('probe', '--lab', lab, '--from', 'default/client-1', '--to', '8.8.8.300');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--to');
    expect(bad.stderr).toContain('8.8.8.300');
    const unknown = await cli('probe', '--lab', lab, '--from', 'default/nope', '--to', '8.8.8.8');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/has no pod default\/nope/);
    const noLab = await cli('status', '--lab', 'no-such-lab');
    expect(noLab.code).toBe(1);
    expect(noLab.stderr).toMatch(/no lab named no-such-lab/);
    const help = await cli('help', 'probe');
    expect(help.stdout).toMatch(/Example: npx egresslab probe/);
  });

  it('down removes the lab; prune finds nothing of it left', async () => {
    const r = await cli('down', '--lab', lab);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`lab ${lab} removed`);
    const s = await cli('status', '--lab', lab);
    expect(s.code).toBe(1);
    const p = await cli('prune');
    expect(p.code).toBe(0);
    expect(p.stdout).not.toContain(lab);
  });
});
