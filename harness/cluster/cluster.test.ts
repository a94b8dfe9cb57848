import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLUSTER_NAME, labDescription, prepareCluster, renderWriteScript, startCluster, startConcurrency } from './cluster.js';
import { generatedTopology } from '../topology/generated.js';
import { planLab } from '../topology/plan.js';
import type { Topology } from '../topology/types.js';
import type { LabPlan } from '../topology/plan.js';
import type { LabRuntime, Place } from '../lab/runtime.js';
import type { ExecResult } from '../docker/exec.js';
import type { HelperChannel } from '../lab/helper-channel.js';
import { topologyFromArg } from '../topology/load.js';
import { generateLabConfigs } from './lab-config.js';

describe('labDescription', () => {
  it('describes the default topology for the lab config generator', () => {
    const d = labDescription(topologyFromArg('default'));
    expect(d).toMatchObject({
      clusterName: CLUSTER_NAME,
      controlPlaneAddress: '192.168.1.10',
      nodeSubnet: '192.168.1.0/24',
      routerAddress: '192.168.1.254',
      flavour: 'ip-masq-agent',
      port: 6443,
    });
    expect(d.nodes.map((n) => [n.name, n.role, n.podCIDR ?? null])).toEqual([
      ['node-1', 'worker', '10.10.10.0/24'],
      ['node-2', 'worker', '10.10.11.0/24'],
      ['node-3', 'worker', '10.10.12.0/24'],
      ['cp-1', 'control-plane', null],
    ]);
    // the generator accepts it (it validates its output with the programs' parsers)
    const g = generateLabConfigs(d);
    expect(g.controller.container).toBe('cp-1');
    // the controller knows the router: it never hands its address out as a floating IP
    expect((g.controller.config.nodes as { gateway?: string }[]).map((n) => n.gateway)).toEqual([
      '192.168.1.254',
      '192.168.1.254',
      '192.168.1.254',
      '192.168.1.254',
    ]);
    expect(Object.keys(g.files).sort()).toEqual(['cp-1', 'node-1', 'node-2', 'node-3']);
  });

  it('needs a control-plane node', () => {
    const t = topologyFromArg('foundation');
    expect(() => labDescription({ ...t, nodes: t.nodes.filter((n) => n.role === 'worker') })).toThrow(/no control-plane node/);
  });
});

describe('renderWriteScript', () => {
  it('writes every file byte for byte with its mode', () => {
    const dir = mkdtempSync(join(tmpdir(), 'egl-write-'));
    const files = [
      { path: join(dir, 'a/b/secret'), content: "tok'en\n$HOME `x`\n", mode: 0o600 },
      { path: join(dir, 'c.json'), content: '{"x": "\\u00e9 é"}', mode: 0o644 },
    ];
    try {
      execFileSync('sh', [], { input: renderWriteScript(files) });
      for (const f of files) {
        expect(readFileSync(f.path, 'utf8')).toBe(f.content);
        expect(statSync(f.path).mode & 0o777).toBe(f.mode);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('startConcurrency', () => {
  it('is 4 per CPU, at least 8; EGRESSLAB_START_CONCURRENCY overrides it', () => {
    expect(startConcurrency({}, 1)).toBe(8);
    expect(startConcurrency({}, 2)).toBe(8);
    expect(startConcurrency({}, 6)).toBe(24);
    expect(startConcurrency({ EGRESSLAB_START_CONCURRENCY: '' }, 2)).toBe(8);
    expect(startConcurrency({ EGRESSLAB_START_CONCURRENCY: '3' }, 2)).toBe(3);
  });

  it('refuses a bad override, naming the variable and the value', () => {
    for (const bad of ['0', '-1', '1.5', 'x', '1001'])
      expect(() => startConcurrency({ EGRESSLAB_START_CONCURRENCY: bad }, 2)).toThrow(
        `EGRESSLAB_START_CONCURRENCY must be a whole number from 1 to 1000, got "${bad}"`,
      );
  });
});

/**
 * A stand-in for a lab: every exec takes a few ms; it records, per node, when its work started
 * and the most nodes busy at once (a node is busy from its first exec to its last one's end).
 */
class CountingRuntime implements LabRuntime {
  readonly id = 'count';
  readonly plan: LabPlan;
  readonly order: string[] = [];
  readonly agentStartedAt = new Map<string, number>();
  inFlight = new Map<string, number>();
  maxBusy = 0;
  constructor(readonly topology: Topology) {
    this.plan = planLab(topology);
  }
  place(name: string): Place {
    return { container: name, label: name };
  }
  private async run<T>(container: string, work: () => T): Promise<T> {
    if (!this.order.includes(container)) this.order.push(container);
    this.inFlight.set(container, (this.inFlight.get(container) ?? 0) + 1);
    this.maxBusy = Math.max(this.maxBusy, this.inFlight.size);
    try {
      await new Promise((r) => setTimeout(r, 5));
      return work();
    } finally {
      const left = this.inFlight.get(container)! - 1;
      if (left === 0) this.inFlight.delete(container);
      else this.inFlight.set(container, left);
    }
  }
  failOn?: string;
  exec(where: string | Place, _cmd: string[]): Promise<ExecResult> {
    const c = typeof where === 'string' ? where : where.container;
    if (c === this.failOn)
      return this.run(c, () => {
        throw new Error(`exec in ${c} failed`);
      });
    // every command succeeds: files written, pid files there, agents running, cluster-ready sees every node Up
    return this.run(c, () => ({ exitCode: 0, stdout: '', stderr: '' }));
  }
  spawn(where: string | Place, cmd: string[]): Promise<void> {
    const c = typeof where === 'string' ? where : where.container;
    if (cmd.join(' ').includes('agent/main.js')) this.agentStartedAt.set(c, Date.now());
    return this.run(c, () => undefined);
  }
  async helper(): Promise<HelperChannel | undefined> {
    return undefined;
  }
}

describe('a cluster start works on a bounded number of nodes at once', () => {
  it('writes files and starts agents on at most startConcurrency() nodes at once, the control-plane node first', async () => {
    const saved = process.env.EGRESSLAB_START_CONCURRENCY;
    process.env.EGRESSLAB_START_CONCURRENCY = '3';
    try {
      const lab = new CountingRuntime(generatedTopology(12));
      const prepared = await prepareCluster(lab);
      expect(lab.order[0]).toBe('cp-1');
      expect(lab.maxBusy).toBe(3);
      lab.maxBusy = 0;
      await startCluster(lab, () => {}, prepared);
      expect(lab.agentStartedAt.size).toBe(12);
      // cp-1's exec for cluster-ready runs beside the pool: at most 3 nodes' agents + cp-1
      expect(lab.maxBusy).toBeLessThanOrEqual(4);
      expect(lab.maxBusy).toBeGreaterThanOrEqual(3);
      const first = [...lab.agentStartedAt.entries()].sort((a, b) => a[1] - b[1])[0]![0];
      expect(first).toBe('cp-1');
    } finally {
      if (saved === undefined) delete process.env.EGRESSLAB_START_CONCURRENCY;
      else process.env.EGRESSLAB_START_CONCURRENCY = saved;
    }
  });

  it('starts no more nodes once one failed, and throws its error', async () => {
    const saved = process.env.EGRESSLAB_START_CONCURRENCY;
    process.env.EGRESSLAB_START_CONCURRENCY = '2';
    try {
      const lab = new CountingRuntime(generatedTopology(12));
      lab.failOn = 'node-1';
      await expect(prepareCluster(lab)).rejects.toThrow('exec in node-1 failed');
      // cp-1 and node-1 ran; node-1 failed while cp-1 held the other slot: at most one more started
      expect(lab.order.length).toBeLessThanOrEqual(3);
    } finally {
      if (saved === undefined) delete process.env.EGRESSLAB_START_CONCURRENCY;
      else process.env.EGRESSLAB_START_CONCURRENCY = saved;
    }
  });
});
