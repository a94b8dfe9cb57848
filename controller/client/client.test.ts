import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestController, waitFor, type TestController } from '../testing.js';
import { R } from './client.js';
import { projectConfigMapKey } from './projection.js';

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
    await t.admin.create(R.configmaps, { metadata: { name: 'ip-masq-agent', namespace: 'kube-system' }, data: { config: 'nonMasqueradeCIDRs: [10.0.0.0/8]\n' } });
    await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').includes('10.0.0.0/8'), 'file written');
    await t.admin.patch(R.configmaps, 'ip-masq-agent', { data: { config: 'nonMasqueradeCIDRs: []\n' } }, { namespace: 'kube-system' });
    await waitFor(() => readFileSync(file, 'utf8') === 'nonMasqueradeCIDRs: []\n', 'file updated');
    await t.admin.delete(R.configmaps, 'ip-masq-agent', 'kube-system');
    await waitFor(() => !existsSync(file), 'file removed');
    await p.stop();
  });
});
