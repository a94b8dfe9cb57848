// lab.apply's engine (harness/cluster/apply.ts) against the real API server in-process: a second
// apply of the same manifests is "unchanged" even when the controller writes the objects in
// between (its status), and a changed manifest is "configured".
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { startTestController, type TestController } from '../controller/testing.js';
import { applyAll, loadManifests } from '../harness/cluster/apply.js';
import { projectRoot } from '../harness/util/paths.js';

let t: TestController | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('applyAll (kubectl apply semantics)', () => {
  it('created, then unchanged although the object was written meanwhile, then configured when the manifest changes', async () => {
    const c = await startTestController();
    t = c;
    const manifests = loadManifests(join(projectRoot(), 'fixtures/manifests/seed-000'));
    const first = await applyAll(c.admin, manifests);
    expect(first.map((r) => r.action ?? r.error)).toEqual(first.map(() => 'created'));
    // another writer (the controller's status) bumps each object's version between apply's read and its patch
    const racing = Object.create(c.admin) as typeof c.admin;
    racing.tryGet = (async (ref: Parameters<typeof c.admin.tryGet>[0], name: string, namespace?: string) => {
      const live = await c.admin.tryGet(ref, name, namespace);
      if (live)
        await c.admin.patch(ref, name, { metadata: { labels: { touched: String(Date.now()) } } }, { ...(namespace ? { namespace } : {}), type: 'merge' });
      return live;
    }) as typeof c.admin.tryGet;
    const again = await applyAll(racing, manifests);
    expect(again.map((r) => r.action ?? r.error)).toEqual(again.map(() => 'unchanged'));
    const gwm = manifests.find((m) => m.object.kind === 'AnthosNetworkGateway')!;
    const changed = manifests.map((m) =>
      m === gwm ? { ...m, object: { ...m.object, metadata: { ...m.object.metadata, labels: { ...(m.object.metadata.labels ?? {}), env: 'test' } } } } : m,
    );
    const third = await applyAll(c.admin, changed);
    expect(third.find((r) => r.name.startsWith('anthosnetworkgateway'))?.action).toBe('configured');
  }, 20_000);
});
