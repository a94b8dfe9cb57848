/**
 * Lab lifecycle and isolation: labs with the same addresses side by side, teardown (also after
 * SIGINT mid-setup) leaving nothing behind, a probe to a public address never leaving the lab,
 * and bad input refused before anything is created.
 */
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { Lab } from './lab.js';
import { LABEL, docker } from '../docker/client.js';
import { startTestLab, randomPublicAddress } from '../testing/lab.js';
import { projectRoot } from '../util/paths.js';
import { pollUntil } from '../util/poll.js';
import { LINK_ALIAS_PREFIX } from './wiring.js';
import { stateDir } from '../cluster/background-forward.js';
import { topologyFromArg } from '../topology/load.js';

const started: Lab[] = [];
afterAll(async () => {
  await Promise.all(started.map((l) => l.down()));
});

async function labObjects(id: string): Promise<number> {
  const filters = { label: [`${LABEL.lab}=${id}`] };
  const [c, n, v] = await Promise.all([docker().listContainers({ all: true, filters }), docker().listNetworks({ filters }), docker().listVolumes({ filters })]);
  return c.length + n.length + (v.Volumes ?? []).length;
}

/** Reading the host's interfaces (never changing them): no lab link may ever appear there. */
function hostLabLinks(): string[] {
  return execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(LINK_ALIAS_PREFIX));
}

describe('two labs with the same addresses', () => {
  it('run side by side without interfering', async () => {
    const [a, b] = await Promise.all([startTestLab('foundation', 'twa'), startTestLab('foundation', 'twb')]);
    started.push(a, b);
    const to = randomPublicAddress();
    const [ra, rb] = await Promise.all([a.probe('node-1', to, { proto: 'udp' }), b.probe('node-1', to, { proto: 'udp' })]);
    expect(ra).toMatchObject({ observedSource: '192.168.1.1', replyReceived: true, observedBy: 'internet' });
    expect(rb).toMatchObject({ observedSource: '192.168.1.1', replyReceived: true, observedBy: 'internet' });
    // A fault in one lab is invisible in the other.
    await a.faults.partition('node-1');
    const [ca, cb] = await Promise.all([a.probe('node-1', to, { proto: 'udp', timeoutMs: 400 }), b.probe('node-1', to, { proto: 'udp' })]);
    expect(ca.replyReceived).toBe(false);
    expect(cb.replyReceived).toBe(true);
    expect(hostLabLinks()).toEqual([]);
  });

  it('a probe to a public address never leaves the lab: the host sees none of it', async () => {
    const lab = started[1]!;
    const to = randomPublicAddress();
    const cap = await lab.capture('wirer', 'any', { hostNetns: true, filter: `host ${to}` });
    const results = await Promise.all([
      lab.probe('node-1', to, { proto: 'tcp' }),
      lab.probe('default/client-1', to, { proto: 'udp' }),
      lab.probe('default/host-1', to, { proto: 'icmp' }),
    ]);
    const { packets, file } = await cap.stop();
    // The probes did reach the lab's internet...
    expect(results.map((r) => r.observedBy)).toEqual(['internet', 'internet', 'internet']);
    // ...and the host's own network namespace carried none of their packets.
    expect(packets, `host capture ${file}`).toEqual([]);
  });
});

describe('how the in-lab code gets in', () => {
  async function mountsOf(lab: Lab): Promise<{ code: string; node: string | undefined; labels: (string | undefined)[] }> {
    const [c] = await docker().listContainers({ all: true, filters: { label: [`${LABEL.lab}=${lab.id}`, `${LABEL.key}=node-1`] } });
    const info = await docker().getContainer(c!.Id).inspect();
    const m = info.Mounts.find((x) => x.Destination === '/opt/egresslab');
    const n = info.Mounts.find((x) => x.Destination === '/usr/bin/node');
    return { code: m?.Type === 'bind' ? m.Source : `${m?.Type}`, node: n?.Source, labels: [info.Config.Labels[LABEL.payload], info.Config.Labels[LABEL.node]] };
  }

  it("by default the bundled payload, unpacked once on the host, run by this machine's Node.js; bind mode mounts the checkout", async () => {
    const bundled = started[0]!;
    expect(bundled.payload.mode).toBe('bundle');
    const hash = bundled.payload.hash!.slice(0, 12);
    // this machine's node runs in the Debian image (lab-node.ts): mounted over the image's
    expect(bundled.nodeRuntime).toMatchObject({ kind: 'host', binary: realpathSync(process.execPath), version: process.version });
    expect(await mountsOf(bundled)).toEqual({
      code: join(stateDir(), 'payload', hash),
      node: realpathSync(process.execPath),
      labels: [`bundle:${hash}`, `host:${process.version}`],
    });
    // the programs run from there: a probe from node-1 runs the bundled probe client in the node
    const r = await bundled.exec('node-1', [
      'sh',
      '-c',
      'cat /opt/egresslab/payload.json; test ! -e /opt/egresslab/node_modules && echo no-node-modules; node --version',
    ]);
    expect(r.stdout).toContain('"harness/inlab/probe-client"');
    expect(r.stdout).toContain('no-node-modules');
    expect(r.stdout.trim().split('\n').pop()).toBe(process.version);
    const bind = await Lab.up({ topology: topologyFromArg('foundation'), id: `bm-${Date.now().toString(36)}`, payload: 'bind', node: 'image' });
    started.push(bind);
    expect(bind.payload).toEqual({ mode: 'bind' });
    expect(bind.nodeRuntime).toEqual({ kind: 'image', reason: 'Lab option node' });
    expect(await mountsOf(bind)).toEqual({ code: projectRoot(), node: undefined, labels: ['bind', 'image'] });
    const p = await bind.probe('node-1', randomPublicAddress(), { proto: 'udp' });
    expect(p).toMatchObject({ observedSource: '192.168.1.1', replyReceived: true, observedBy: 'internet' });
  });
});

describe('teardown', () => {
  it('down removes every container, network, volume and link of the lab', async () => {
    const lab = await startTestLab('foundation', 'td');
    expect(await labObjects(lab.id)).toBeGreaterThan(0);
    await lab.down();
    expect(await labObjects(lab.id)).toBe(0);
    expect(hostLabLinks()).toEqual([]);
  });

  it('await using tears the lab down at the end of the block', async () => {
    let id = '';
    {
      await using lab = await startTestLab('foundation', 'aw');
      id = lab.id;
      expect(await labObjects(id)).toBeGreaterThan(0);
    }
    expect(await labObjects(id)).toBe(0);
  });

  it('SIGINT in the middle of "egresslab up" cleans up and exits 130', async () => {
    const id = `sig-${Date.now().toString(36)}`;
    const child = spawn(process.execPath, [join(projectRoot(), 'bin/egresslab.js'), 'up', '--topology', 'foundation', '--lab', id], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // Interrupt once it is creating containers.
    await pollUntil(() => stderr.includes('starting'), { what: '"egresslab up" to start creating containers', timeoutMs: 60_000, intervalMs: 20 });
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toMatch(/SIGINT: stopping and cleaning up/);
    expect(await labObjects(id)).toBe(0);
    expect(hostLabLinks()).toEqual([]);
  });
});

describe('bad input changes nothing', () => {
  it('a bad topology is refused with a message naming the field, and no container is created', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egl-topo-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'nodes:\n  - { name: node-1, address: 192.168.2.1, podCIDR: 10.10.10.0/24 }\n');
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [join(projectRoot(), 'bin/egresslab.js'), 'up', '--topology', file, '--lab', 'never'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      c.on('exit', (code) => resolve({ code, stderr }));
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('nodes[0].address');
    expect(r.stderr).toContain('192.168.2.1');
    expect(r.stderr).toContain('nodeSubnet 192.168.1.0/24');
    expect(await labObjects('never')).toBe(0);
  });

  it('a second lab with a name already up is refused', async () => {
    const lab = started[0]!;
    await expect(startTestLabWithId(lab.id)).rejects.toThrow(/already exists/);
    expect(await labObjects(lab.id)).toBeGreaterThan(0);
  });
});

async function startTestLabWithId(id: string): Promise<Lab> {
  return Lab.up({ topology: topologyFromArg('foundation'), id });
}
