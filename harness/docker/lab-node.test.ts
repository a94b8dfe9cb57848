/**
 * Which Node.js runs the in-lab programs: the mode's validation, the decision (payload, platform,
 * the check in the image) and its cache, with a fake check (no Docker).
 */
import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chooseLabNode, labNodeLabel, labNodeMode, labNodeMounts, type ChooseLabNodeArgs, type NodeCheck } from './lab-node.js';
import { LabError, ValidationError } from '../util/errors.js';
import { useTempDirs } from '../testing/temp-dirs.js';

const tmp = useTempDirs();

describe('labNodeMode', () => {
  it('the Lab option wins, then EGRESSLAB_LAB_NODE, then auto', () => {
    expect(labNodeMode(undefined, {})).toEqual({ mode: 'auto', from: 'default' });
    expect(labNodeMode(undefined, { EGRESSLAB_LAB_NODE: '' })).toEqual({ mode: 'auto', from: 'default' });
    expect(labNodeMode(undefined, { EGRESSLAB_LAB_NODE: 'image' })).toEqual({ mode: 'image', from: 'EGRESSLAB_LAB_NODE=image' });
    expect(labNodeMode('host', { EGRESSLAB_LAB_NODE: 'image' })).toEqual({ mode: 'host', from: 'Lab option node' });
  });

  it('a bad value is refused, naming the variable or option and the value', () => {
    expect(() => labNodeMode(undefined, { EGRESSLAB_LAB_NODE: 'Host' })).toThrow(ValidationError);
    expect(() => labNodeMode(undefined, { EGRESSLAB_LAB_NODE: 'Host' })).toThrow(/EGRESSLAB_LAB_NODE: expected "image", "host" or "auto" \(value: "Host"\)/);
    expect(() => labNodeMode('v20', {})).toThrow(/lab options: node: expected "image", "host" or "auto" \(value: "v20"\)/);
  });
});

describe('chooseLabNode', () => {
  function setup(over: Partial<ChooseLabNodeArgs> = {}, answer: NodeCheck = { ok: true, output: '/usr/bin/node\nv20.1.0 x64\n' }) {
    const dir = tmp('egl-labnode-');
    const binary = join(dir, 'node');
    writeFileSync(binary, 'not really node');
    const calls: string[] = [];
    const args: ChooseLabNodeArgs = {
      mode: 'auto',
      from: 'default',
      payload: 'bundle',
      image: 'egresslab-base:x',
      imageId: 'sha256:aaa',
      binary,
      expect: 'v20.1.0 x64',
      platform: 'linux',
      cacheFile: join(dir, 'lab-node.json'),
      check: async (image, b) => {
        calls.push(`${image} ${b}`);
        return answer;
      },
      ...over,
    };
    return { args, calls, binary };
  }

  it('auto: the host binary when it runs in the image; checked once, then remembered', async () => {
    const { args, calls, binary } = setup();
    const n = await chooseLabNode(args);
    expect(n).toMatchObject({ kind: 'host', binary, version: 'v20.1.0' });
    expect(labNodeMounts(n)).toEqual([{ type: 'bind', source: binary, target: '/usr/bin/node' }]);
    expect(labNodeLabel(n)).toBe('host:v20.1.0');
    expect(calls).toEqual([`egresslab-base:x ${binary}`]);
    expect(await chooseLabNode(args)).toMatchObject({ kind: 'host', binary });
    expect(calls).toHaveLength(1);
    // another image, or the binary replaced: checked again
    await chooseLabNode({ ...args, imageId: 'sha256:bbb' });
    expect(calls).toHaveLength(2);
    utimesSync(binary, new Date(), new Date(Date.now() + 5000));
    await chooseLabNode(args);
    expect(calls).toHaveLength(3);
  });

  it('auto: the image node when the binary does not run there or prints something else, and why', async () => {
    const fails = setup({}, { ok: false, message: 'exit 127: error while loading shared libraries: libnode.so.115' });
    const n = await chooseLabNode(fails.args);
    expect(n.kind).toBe('image');
    expect(n.reason).toMatch(/did not run in egresslab-base:x: exit 127: error while loading shared libraries/);
    expect(labNodeMounts(n)).toEqual([]);
    expect(labNodeLabel(n)).toBe('image');
    // remembered: not checked again
    expect((await chooseLabNode(fails.args)).reason).toMatch(/did not run in egresslab-base:x \(checked .*\): exit 127/);
    expect(fails.calls).toHaveLength(1);
    // an image whose PATH finds another node first would not run the mounted one: refused, remembered
    const path = setup({}, { ok: true, output: '/usr/local/bin/node\nv20.1.0 x64' });
    expect((await chooseLabNode(path.args)).reason).toMatch(/in egresslab-base:x "node" is "\/usr\/local\/bin\/node", not \/usr\/bin\/node/);
    expect((await chooseLabNode(path.args)).kind).toBe('image');
    expect(path.calls).toHaveLength(1);
  });

  it('another version than this process (the binary replaced meanwhile) is refused but checked again next time', async () => {
    const other = setup({}, { ok: true, output: '/usr/bin/node\nv18.20.4 x64' });
    expect((await chooseLabNode(other.args)).reason).toMatch(/printed "v18.20.4 x64", expected "v20.1.0 x64"/);
    expect((await chooseLabNode(other.args)).kind).toBe('image');
    expect(other.calls).toHaveLength(2);
    // the process that has the new version takes it from the cache
    expect(await chooseLabNode({ ...other.args, expect: 'v18.20.4 x64' })).toMatchObject({ kind: 'host', version: 'v18.20.4' });
    expect(other.calls).toHaveLength(2);
  });

  it('a check the engine did not run (API error, removed by a teardown, timeout) is not remembered', async () => {
    for (const message of ['no answer within 60000 ms', 'No such container: 5f1e', 'bind source path does not exist: /usr/bin/node']) {
      const s = setup({}, { ok: false, message, transient: true });
      expect((await chooseLabNode(s.args)).reason).toContain(message);
      expect((await chooseLabNode(s.args)).kind).toBe('image');
      expect(s.calls).toHaveLength(2);
    }
  });

  it('never with a volume payload or on another platform; "host" then fails naming why, "image" never checks', async () => {
    const vol = setup({ payload: 'volume' });
    expect(await chooseLabNode(vol.args)).toMatchObject({ kind: 'image', reason: expect.stringMatching(/payload volume/) });
    const mac = setup({ platform: 'darwin' });
    expect((await chooseLabNode(mac.args)).reason).toMatch(/this machine runs darwin, lab containers run Linux/);
    await expect(chooseLabNode({ ...vol.args, mode: 'host', from: 'EGRESSLAB_LAB_NODE=host' })).rejects.toThrow(LabError);
    await expect(chooseLabNode({ ...vol.args, mode: 'host', from: 'EGRESSLAB_LAB_NODE=host' })).rejects.toThrow(
      /EGRESSLAB_LAB_NODE=host: the host's Node.js cannot run the in-lab programs: .*payload volume/,
    );
    const broken = setup({ mode: 'host', from: 'Lab option node' }, { ok: false, message: 'exit 1: boom' });
    await expect(chooseLabNode(broken.args)).rejects.toThrow(
      /Lab option node: the host's Node.js cannot run the in-lab programs: .* did not run in egresslab-base:x: exit 1: boom/,
    );
    const img = setup({ mode: 'image', from: 'EGRESSLAB_LAB_NODE=image' });
    expect(await chooseLabNode(img.args)).toEqual({ kind: 'image', reason: 'EGRESSLAB_LAB_NODE=image' });
    expect([vol, mac, img].map((s) => s.calls.length)).toEqual([0, 0, 0]);
  });
});
