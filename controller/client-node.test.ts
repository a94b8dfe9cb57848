// @kubernetes/client-node (the official JavaScript client) lists and watches against the server.
import * as k8s from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { R } from '../lib/kube/client.js';
import { startTestController, waitFor, type TestController } from './testing.js';

let t: TestController | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('@kubernetes/client-node', () => {
  it('lists core and custom resources and watches custom resources', async () => {
    t = await startTestController();
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(t.kubeconfigPath);

    const core = kc.makeApiClient(k8s.CoreV1Api);
    const nodes = await core.listNode();
    expect(nodes.items.map((n) => n.metadata?.name)).toEqual(['cp-1', 'worker1', 'worker2']);
    const ns = await core.listNamespace({ labelSelector: 'kubernetes.io/metadata.name=kube-system' });
    expect(ns.items.map((n) => n.metadata?.name)).toEqual(['kube-system']);

    const events: { type: string; name: string | undefined }[] = [];
    const watch = new k8s.Watch(kc);
    const list = await kc
      .makeApiClient(k8s.CustomObjectsApi)
      .listClusterCustomObject({ group: 'networking.gke.io', version: 'v1alpha1', plural: 'egressnatpolicies' });
    const rv = (list as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    let ended: unknown = 'open';
    const ctl = await watch.watch(
      '/apis/networking.gke.io/v1alpha1/egressnatpolicies',
      { resourceVersion: rv, allowWatchBookmarks: true },
      (type: string, obj: { metadata?: { name?: string } }) => events.push({ type, name: obj.metadata?.name }),
      (err: unknown) => (ended = err),
    );
    await t.admin.create(R.egressNATPolicies, {
      metadata: { name: 'watched' },
      spec: { egress: [{ podSelector: { matchLabels: { role: 'frontend' } } }], destinationCIDRs: ['8.8.8.0/24'], egressSourceIP: '192.168.1.100' },
    });
    await waitFor(() => events.some((e) => e.type === 'ADDED' && e.name === 'watched'), 'ADDED via client-node watch');
    await t.admin.delete(R.egressNATPolicies, 'watched');
    await waitFor(() => events.some((e) => e.type === 'DELETED' && e.name === 'watched'), 'DELETED via client-node watch');
    expect(ended).toBe('open'); // the stream stayed open (no error) until we abort it
    ctl.abort();

    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const gws = await custom.listNamespacedCustomObject({
      group: 'networking.gke.io',
      version: 'v1alpha1',
      namespace: 'kube-system',
      plural: 'anthosnetworkgatewaynodes',
    });
    expect((gws as { items: unknown[] }).items).toHaveLength(3);
  });
});
