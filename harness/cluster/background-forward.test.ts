// What `egresslab down` and `prune` remove of a lab outside the engine (issue 12): its kubeconfig
// (it holds the admin token) and its API forward's state and log.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { labStateFiles, removeLabState } from './background-forward.js';

describe("a lab's state files (kubeconfig with the admin token, API forward state and log)", () => {
  const dirs: string[] = [];
  const saved = process.env.EGRESSLAB_STATE_DIR;
  afterEach(() => {
    if (saved === undefined) delete process.env.EGRESSLAB_STATE_DIR;
    else process.env.EGRESSLAB_STATE_DIR = saved;
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it("labStateFiles picks exactly the lab's files, not another lab's whose id starts the same", () => {
    const names = [
      'demo.kubeconfig',
      'forward-demo.json',
      'forward-demo.log',
      'forward-demo.json.4242.tmp',
      'demo-2.kubeconfig',
      'forward-demo-2.json',
      'forward-demo-2.log',
      'payload',
      'notes.txt',
    ];
    expect(labStateFiles('demo', names).sort()).toEqual(['demo.kubeconfig', 'forward-demo.json', 'forward-demo.json.4242.tmp', 'forward-demo.log']);
  });

  it('removeLabState removes them from the state dir and leaves everything else; a missing dir is nothing to remove', () => {
    const dir = mkdtempSync(join(tmpdir(), 'egresslab-state-'));
    dirs.push(dir);
    process.env.EGRESSLAB_STATE_DIR = dir;
    for (const f of ['demo.kubeconfig', 'forward-demo.json', 'forward-demo.log', 'demo-2.kubeconfig', 'forward-demo-2.log']) writeFileSync(join(dir, f), 'x');
    mkdirSync(join(dir, 'payload'));
    expect(removeLabState('demo').sort()).toEqual(['demo.kubeconfig', 'forward-demo.json', 'forward-demo.log'].map((f) => join(dir, f)));
    expect(readdirSync(dir).sort()).toEqual(['demo-2.kubeconfig', 'forward-demo-2.log', 'payload']);
    process.env.EGRESSLAB_STATE_DIR = join(dir, 'absent');
    expect(removeLabState('demo')).toEqual([]);
  });
});
