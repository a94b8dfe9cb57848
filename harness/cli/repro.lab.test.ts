/**
 * The repro CLI end to end against a foundation lab: up, exec (node and pod, exit codes),
 * partition/heal, degrade/restore, capture, timeline --json --svg through a partition, down.
 */
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeLabObjects } from '../lab/registry.js';
import { Lab } from '../lab/lab.js';
import { pollUntil } from '../util/poll.js';
import { runCli } from '../testing/run.js';
import { RUN_DIR } from '../inlab/protocol.js';
import type { Outage } from '../probe/timeline.js';

const id = `rp-${Date.now().toString(36)}`;
let lab: Lab;

const cli = (...args: string[]) => runCli(args);

const reachable = async (to = '192.168.1.2') => (await lab.probe('node-1', to, { proto: 'icmp', timeoutMs: 400 })).replyReceived;
const becomesReachable = () => pollUntil(() => reachable(), { what: 'node-2 to answer node-1 again', timeoutMs: 15_000, intervalMs: 100 });

/** Lines of a file in a lab container matching a glob (0 when absent). */
async function lines(container: string, glob: string, grep?: string): Promise<number> {
  const r = await lab.exec(container, ['sh', '-c', `cat ${glob} 2>/dev/null ${grep ? `| grep -c '${grep}'` : '| wc -l'}`], { check: false });
  return Number(r.stdout.trim()) || 0;
}

beforeAll(async () => {
  const r = await cli('up', '--topology', 'foundation', '--lab', id, '--json');
  expect(r.code, r.stderr).toBe(0);
  lab = await Lab.attach(id);
});
afterAll(async () => {
  await removeLabObjects(id);
});

describe('repro CLI', () => {
  it('exec runs in a node or a pod, streams the output and passes the exit code on', async () => {
    const node = await cli('exec', '--lab', id, 'node-1', '--', 'ip', 'route');
    expect(node.code).toBe(0);
    expect(node.stdout).toContain('10.10.11.0/24 via 192.168.1.2');
    const pod = await cli('exec', '--lab', id, 'alice/frontend-1', '--', 'sh', '-c', 'ip -4 -o addr show eth0; echo oops >&2; exit 3');
    expect(pod.code).toBe(3);
    expect(pod.stdout).toContain('10.10.10.1/32');
    expect(pod.stderr).toContain('oops');
    // "--help" after "--" belongs to the command.
    const help = await cli('exec', '--lab', id, 'node-1', '--', 'ip', '--help');
    expect(help.stderr).toMatch(/Usage: ip/);
    const noCmd = await cli('exec', '--lab', id, 'node-1');
    expect(noCmd.code).toBe(2);
    expect(noCmd.stderr).toContain('give the command after "--"');
    const unknown = await cli('exec', '--lab', id, 'node-9', '--', 'true');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/has nothing named node-9 \(known: .*node-1/);
  });

  it('partition cuts a node off and heal brings it back', async () => {
    expect(await reachable()).toBe(true);
    const p = await cli('partition', '--lab', id, 'node-2');
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toContain(`undo: npx egresslab heal --lab ${id} node-2`);
    expect(await reachable()).toBe(false);
    const h = await cli('heal', '--lab', id, 'node-2');
    expect(h.code, h.stderr).toBe(0);
    await becomesReachable();
    const bad = await cli('partition', '--lab', id, 'router');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/is not a node of lab .*nodes: node-1/);
  });

  it('degrade --loss 100 drops everything and restore brings it back; bad values are refused', async () => {
    const d = await cli('degrade', '--lab', id, 'node-2', '--loss', '100');
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toContain('100% loss');
    expect(await reachable()).toBe(false);
    const r = await cli('restore', '--lab', id, 'node-2');
    expect(r.code, r.stderr).toBe(0);
    await becomesReachable();
    const bad = await cli('degrade', '--lab', id, 'node-2', '--loss', '150');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('lossPercent: must be 0-100');
    const none = await cli('degrade', '--lab', id, 'node-2');
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--loss PCT and/or --delay MS');
  });

  it('capture records packets on a lab interface for N seconds and prints the pcap and a summary', async () => {
    // captures whose pcap has its file header: tcpdump writes it once the capture is live (its pid
    // file appears earlier, when it is spawned: a probe sent then is not seen, as on a busy machine)
    const live = async () =>
      Number(
        (
          await lab.exec(
            'node-1',
            ['sh', '-c', `n=0; for f in ${RUN_DIR}/cap-*.pcap; do [ -f "$f" ] && [ $(stat -c %s "$f") -ge 24 ] && n=$((n+1)); done; echo $n`],
            { check: false },
          )
        ).stdout.trim(),
      ) || 0;
    const before = await live();
    const running = cli('capture', '--lab', id, 'node-1', 'eth0', '--filter', 'icmp', '--seconds', '4', '--json');
    await pollUntil(live, { what: 'the capture to be live', timeoutMs: 15_000, intervalMs: 50, accept: (n) => n > before });
    const probe = await lab.probe('node-1', '9.9.9.9', { proto: 'icmp' });
    expect(probe.replyReceived).toBe(true);
    const r = await running;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/capturing on node-1:eth0 \(icmp\) for 4 s/);
    const c = JSON.parse(r.stdout) as { file: string; packets: number; summary: string[] };
    expect(existsSync(c.file)).toBe(true);
    expect(c.packets).toBeGreaterThanOrEqual(2);
    expect(c.summary.join('\n')).toMatch(/ICMP 192\.168\.1\.1 > 9\.9\.9\.9 type 8/);
    expect(c.summary.join('\n')).toMatch(/ICMP 9\.9\.9\.9 > 192\.168\.1\.1 type 0/);
  });

  it('timeline --json --svg: an outage while node-1 is partitioned, every packet from the pod IP', async () => {
    const svg = join(tmpdir(), `${id}-timeline.svg`);
    // a continuous probe's records file appears when it starts (whether it runs in the node's helper or as a process)
    const probeFiles = async () => Number((await lab.exec('node-1', ['sh', '-c', `ls ${RUN_DIR}/probe-*.jsonl 2>/dev/null | wc -l`])).stdout.trim()) || 0;
    const before = await probeFiles();
    const running = cli(
      'timeline',
      '--lab',
      id,
      '--from',
      'alice/frontend-1',
      '--to',
      '172.16.100.10',
      '--proto',
      'udp',
      '--interval-ms',
      '20',
      '--timeout-ms',
      '200',
      '--seconds',
      '6',
      '--allow',
      '10.10.10.1',
      '--svg',
      svg,
      '--json',
    );
    await pollUntil(async () => (await probeFiles()) > before, { what: 'the timeline probe to start', timeoutMs: 15_000, intervalMs: 50 });
    const probeOut = `${RUN_DIR}/probe-*.jsonl`;
    await pollUntil(async () => (await lines('node-1', probeOut, '"replied":true')) >= 10, { what: '10 answered packets', timeoutMs: 15_000, intervalMs: 50 });
    await lab.faults.partition('node-1');
    await pollUntil(async () => (await lines('node-1', probeOut, '"replied":false')) >= 5, { what: '5 lost packets', timeoutMs: 15_000, intervalMs: 50 });
    await lab.faults.heal('node-1');
    const r = await running;
    expect(r.code, r.stderr).toBe(0);
    const t = JSON.parse(r.stdout) as {
      packets: number;
      answered: number;
      outages: Outage[];
      sources: Record<string, number>;
      leaks: { count: number };
      svg: string;
      timeline: { packets: unknown[] };
    };
    expect(t.packets).toBeGreaterThan(50);
    expect(t.outages.length).toBeGreaterThanOrEqual(1);
    expect(t.outages.some((o) => o.lost >= 5)).toBe(true);
    expect(Object.keys(t.sources)).toEqual(['10.10.10.1']);
    expect(t.leaks.count).toBe(0);
    expect(t.timeline.packets).toHaveLength(t.packets);
    expect(t.svg).toBe(svg);
    const text = readFileSync(svg, 'utf8');
    expect(text).toContain('<svg');
    expect(text).toContain('10.10.10.1 (');
    expect(text).toMatch(/\d+ ms \(\d+ lost\)|\d\.\d+ s \(\d+ lost\)/);
  });

  it('the commands explain themselves; down removes the lab', async () => {
    const commands = ['exec', 'kill', 'partition', 'degrade', 'capture', 'timeline', 'run'];
    const helps = await Promise.all(commands.map((c) => cli(c, '--help')));
    helps.forEach((h, i) => {
      expect(h.code).toBe(0);
      expect(h.stdout, commands[i]).toMatch(/Example: npx egresslab /);
    });
    const d = await cli('down', '--lab', id);
    expect(d.code).toBe(0);
    expect(d.stdout).toContain(`lab ${id} removed`);
  });
});
