import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyPatch, describeApiError, loadManifests, mergePatchChanges, sortedJson } from './apply.js';
import { KubeApiError } from '../../lib/kube/client.js';
import { ValidationError } from '../util/errors.js';
import { useTempDirs } from '../testing/temp-dirs.js';

const tmp = useTempDirs();

describe('loadManifests', () => {
  it('reads a directory in file-name order, multi-document YAML, JSON and List', () => {
    const dir = tmp('egl-apply-');
    writeFileSync(
      join(dir, '02-b.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n',
    );
    writeFileSync(
      join(dir, '01-a.json'),
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a' } }] }),
    );
    writeFileSync(join(dir, 'README.md'), 'not a manifest');
    expect(loadManifests(dir).map((m) => m.object.metadata.name)).toEqual(['a', 'b', 'c']);
  });

  it('refuses documents without apiVersion, kind or name, naming the file and document', () => {
    const dir = tmp('egl-apply-');
    const f = join(dir, 'x.yaml');
    writeFileSync(f, 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\nkind: ConfigMap\nmetadata: {}\n');
    expect(() => loadManifests(f)).toThrow(ValidationError);
    expect(() => loadManifests(f)).toThrow(/document 2.*lacks apiVersion, metadata\.name/s);
    expect(() => loadManifests(join(dir, 'missing.yaml'))).toThrow(/cannot be read \(ENOENT\)/);
  });
});

describe('applyPatch', () => {
  it("keeps the manifest's fields and nulls what only the last applied manifest had", () => {
    const last = { metadata: { name: 'x', labels: { a: '1', b: '2' } }, spec: { f: 1, g: [1, 2] } };
    const desired = { metadata: { name: 'x', labels: { a: '1' } }, spec: { g: [3] } };
    expect(applyPatch(last, desired)).toEqual({ metadata: { name: 'x', labels: { a: '1', b: null } }, spec: { f: null, g: [3] } });
    expect(applyPatch(undefined, desired)).toEqual(desired);
  });
});

describe('sortedJson', () => {
  it('sorts object keys at every level, as Go encodes maps', () => {
    expect(sortedJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: 2 } })).toBe('{"a":{"c":2,"d":[{"y":2,"z":1}]},"b":1}');
  });
});

describe('describeApiError', () => {
  it('shows the reason and message, and causes the message does not name', () => {
    const e = new KubeApiError(
      422,
      {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        reason: 'Invalid',
        code: 422,
        message: 'X is invalid: spec.a: bad',
        details: {
          causes: [
            { field: 'spec.a', message: 'bad' },
            { field: 'spec.b', message: 'worse' },
          ],
        },
      } as never,
      'X is invalid: spec.a: bad',
    );
    expect(describeApiError(e)).toBe('Error from server (Invalid): X is invalid: spec.a: bad\n  spec.b: worse');
  });
});

describe('mergePatchChanges (apply decides "unchanged" from the objects, not from resource versions)', () => {
  const live = {
    metadata: { name: 'default', resourceVersion: '12', annotations: { a: 'x' } },
    spec: { floatingIPs: ['192.168.1.100'], nested: { k: 1 } },
    status: { assignments: { '192.168.1.100': 'node-1' } },
  };
  it('a patch of values the object already has changes nothing, whatever else (status, version) moved', () => {
    expect(mergePatchChanges(live, { metadata: { annotations: { a: 'x' } }, spec: { floatingIPs: ['192.168.1.100'], nested: { k: 1 } } })).toBe(false);
  });
  it('a new value, a new key, a deletion of a present key, or an object over a scalar is a change', () => {
    expect(mergePatchChanges(live, { spec: { floatingIPs: ['192.168.1.101'] } })).toBe(true);
    expect(mergePatchChanges(live, { metadata: { annotations: { b: 'y' } } })).toBe(true);
    expect(mergePatchChanges(live, { spec: { nested: null } })).toBe(true);
    expect(mergePatchChanges(live, { spec: { floatingIPs: { x: 1 } } })).toBe(true);
  });
  it('deleting an absent key changes nothing', () => {
    expect(mergePatchChanges(live, { spec: { gone: null } })).toBe(false);
  });
});
