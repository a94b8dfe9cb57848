import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestController, waitFor, type TestController } from '../controller/testing.js';
import { R } from '../lib/kube/client.js';
import { projectConfigMapKey } from '../lib/kube/projection.js';

let t: TestController | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('ConfigMap projection into a file', () => {
  it('writes the key on create and change, removes the file when the ConfigMap is deleted', async () => {
    t = await startTestController();
    const file = join(t.dir, 'node', 'ip-masq-agent', 'config');
    const p = projectConfigMapKey(t.node('worker1'), { namespace: 'kube-system', name: 'ip-masq-agent', key: 'config' }, file);
    await p.informer.hasSynced();
    expect(existsSync(file)).toBe(false);
    await t.admin.create(R.configmaps, {
      metadata: { name: 'ip-masq-agent', namespace: 'kube-system' },
      data: { config: 'nonMasqueradeCIDRs: [10.0.0.0/8]\n' },
    });
    await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').includes('10.0.0.0/8'), 'file written');
    await t.admin.patch(R.configmaps, 'ip-masq-agent', { data: { config: 'nonMasqueradeCIDRs: []\n' } }, { namespace: 'kube-system' });
    await waitFor(() => readFileSync(file, 'utf8') === 'nonMasqueradeCIDRs: []\n', 'file updated');
    await t.admin.delete(R.configmaps, 'ip-masq-agent', 'kube-system');
    await waitFor(() => !existsSync(file), 'file removed');
    await p.stop();
  });
});

describe('informer while the API server is down (refused connections)', () => {
  it('retries a refused connection at a short pace, reports the run of refusals once, and resumes as soon as the server is back', async () => {
    t = await startTestController();
    const errors: string[] = [];
    const seen: string[] = [];
    const inf = t.admin.informer(
      R.configmaps,
      { namespace: 'default' },
      { onAdd: (o) => seen.push(o.metadata.name!), onError: (e) => errors.push((e as NodeJS.ErrnoException).code ?? String(e)) },
    );
    await inf.hasSynced();
    await t.running.stop();
    const before = inf.connections;
    // exponential back-off (100, 200, 400, 800 ms...) would make 10 attempts take > 20 s
    await waitFor(() => inf.connections - before >= 10, '10 reconnection attempts while the server is down', 3000);
    expect(errors.filter((c) => c === 'ECONNREFUSED')).toHaveLength(1);
    await t.restart();
    await t.admin.create(R.configmaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'after-restart', namespace: 'default' }, data: {} });
    await waitFor(() => seen.includes('after-restart'), 'the informer to see an object created after the restart', 3000);
    inf.stop();
  });
});

describe('informer stopped by its own handler', () => {
  it('stop() from onSync resolves, and no watch is opened after the list', async () => {
    t = await startTestController();
    let stopped: Promise<void> | undefined;
    const inf = t.admin.informer(R.configmaps, { namespace: 'default' }, { onSync: () => (stopped ??= inf.stop()) });
    await inf.hasSynced();
    await waitFor(() => stopped !== undefined, 'onSync to stop the informer', 3000);
    // stop() waits for the informer's loop: before, the loop went on to open a watch and never ended
    const settled = await Promise.race([stopped!.then(() => 'stopped'), new Promise((r) => setTimeout(() => r('still running after 2 s'), 2000))]);
    expect(settled).toBe('stopped');
    expect(inf.connections).toBe(0);
  });
});
