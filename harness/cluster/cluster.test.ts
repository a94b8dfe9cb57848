import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLUSTER_NAME, labDescription, renderWriteScript } from './cluster.js';
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
    execFileSync('sh', [], { input: renderWriteScript(files) });
    for (const f of files) {
      expect(readFileSync(f.path, 'utf8')).toBe(f.content);
      expect(statSync(f.path).mode & 0o777).toBe(f.mode);
    }
  });
});
