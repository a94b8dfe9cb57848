// API semantics over HTTP against the in-process server: watch resume/410, persistence across a
// restart, authentication and authorization, conflicts, patches, Status objects.
import { afterEach, describe, expect, it } from 'vitest';
import { R, type KubeClient } from '../../lib/kube/client.js';
import { renewLease } from '../../lib/kube/lease.js';
import { expectApiError } from './expect-api-error.js';
import { startTestController, VIEWER_TOKEN, waitFor, type TestController } from '../testing.js';
import type { KubeObject, WatchEvent } from '../../lib/kube/types.js';

let t: TestController | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const cm = (name: string, data: Record<string, string> = { a: '1' }, labels?: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'default', ...(labels ? { labels } : {}) },
  data,
});

function collect(client: KubeClient, opts: Parameters<KubeClient['watch']>[1]) {
  const events: WatchEvent[] = [];
  const h = client.watch(R.configmaps, opts, (e) => events.push(e));
  return { events, h };
}

describe('watch', () => {
  it('resumes from a resourceVersion: only later events, in order', async () => {
    t = await startTestController();
    const a = await t.admin.create(R.configmaps, cm('w1'));
    await t.admin.patch(R.configmaps, 'w1', { data: { a: '2' } }, { namespace: 'default' });
    await t.admin.create(R.configmaps, cm('w2'));
    await t.admin.delete(R.configmaps, 'w1', 'default');
    const { events, h } = collect(t.admin, { namespace: 'default', resourceVersion: a.metadata.resourceVersion });
    await waitFor(() => events.length >= 3, '3 watch events');
    h.abort();
    expect(events.map((e) => [e.type, e.object.metadata.name])).toEqual([
      ['MODIFIED', 'w1'],
      ['ADDED', 'w2'],
      ['DELETED', 'w1'],
    ]);
    const rvs = events.map((e) => Number(e.object.metadata.resourceVersion));
    expect(rvs).toEqual([...rvs].sort((x, y) => x - y));
    expect(rvs[0]).toBeGreaterThan(Number(a.metadata.resourceVersion));
  });

  it('without a resourceVersion sends the current objects as ADDED, then live events', async () => {
    t = await startTestController();
    await t.admin.create(R.configmaps, cm('x1'));
    const { events, h } = collect(t.admin, { namespace: 'default', labelSelector: 'app=x' });
    await t.admin.create(R.configmaps, cm('x2', {}, { app: 'x' }));
    // relabelling out of the selector is a DELETED for this watch
    await t.admin.patch(R.configmaps, 'x2', { metadata: { labels: { app: 'y' } } }, { namespace: 'default' });
    await waitFor(() => events.length >= 2, 'two events');
    h.abort();
    expect(events.map((e) => [e.type, e.object.metadata.name])).toEqual([
      ['ADDED', 'x2'],
      ['DELETED', 'x2'],
    ]);
  });

  it('answers a too-old resourceVersion with an ERROR event carrying 410 Expired', async () => {
    t = await startTestController();
    // simulate a compacted history (what a snapshot or the history limit does)
    const store = t.running.store as unknown as { oldestResumable: number };
    await t.admin.create(R.configmaps, cm('old'));
    store.oldestResumable = t.running.store.resourceVersion; // history before now is gone
    const { events, h } = collect(t.admin, { namespace: 'default', resourceVersion: '1' });
    await h.done;
    expect(events).toHaveLength(1);
    expect(events[0]!.type).toBe('ERROR');
    expect(events[0]!.object).toMatchObject({ kind: 'Status', code: 410, reason: 'Expired' });
  });

  it('the informer relists after 410 and resumes after a dropped stream', async () => {
    t = await startTestController();
    const seen: string[] = [];
    const inf = t.admin.informer(
      R.configmaps,
      { namespace: 'default' },
      { onAdd: (o) => seen.push(`add:${o.metadata.name}`), onDelete: (o) => seen.push(`del:${o.metadata.name}`) },
    );
    await inf.hasSynced();
    await t.admin.create(R.configmaps, cm('i1'));
    await waitFor(() => seen.includes('add:i1'), 'informer add');
    // restart the server: the stream drops, the informer reconnects and resumes from its rv
    await t.restart();
    await t.admin.create(R.configmaps, cm('i2'));
    await t.admin.delete(R.configmaps, 'i1', 'default');
    await waitFor(() => seen.includes('add:i2') && seen.includes('del:i1'), 'informer events after restart');
    expect(inf.connections).toBeGreaterThanOrEqual(2);
    expect(inf.relists).toBe(1);
    // the stream drops, and before the informer can reconnect two changes happen and the history
    // is compacted past its resourceVersion: the resume gets 410 -> relist, and the diff is emitted
    await t.admin.create(R.configmaps, cm('i3'));
    await waitFor(() => seen.includes('add:i3'), 'i3');
    for (const w of (t.running.server as unknown as { watchers: Set<{ end(): void }> }).watchers) w.end();
    const svc = t.running.service;
    const ctx = { user: { name: 'test', uid: 'test', groups: ['system:masters'] }, internal: true };
    svc.delete(svc.def('', 'configmaps'), 'v1', 'default', 'i3', ctx);
    svc.create(svc.def('', 'configmaps'), 'v1', 'default', cm('i4'), ctx);
    (t.running.store as unknown as { oldestResumable: number }).oldestResumable = t.running.store.resourceVersion;
    await waitFor(() => inf.relists === 2 && seen.includes('del:i3') && seen.includes('add:i4'), 'relist after 410');
    expect([...inf.cache.keys()].sort()).toEqual(['default/i2', 'default/i4']);
    await inf.stop();
  });
});

describe('persistence', () => {
  it('a restart restores objects, uids and the resourceVersion counter', async () => {
    t = await startTestController();
    const a = await t.admin.create(R.configmaps, cm('p1', { k: 'v' }));
    const rvBefore = t.running.store.resourceVersion;
    await t.restart();
    expect(t.running.store.resourceVersion).toBeGreaterThanOrEqual(rvBefore);
    const b = await t.admin.get(R.configmaps, 'p1', 'default');
    expect(b.metadata.uid).toBe(a.metadata.uid);
    expect((b as KubeObject & { data: unknown }).data).toEqual({ k: 'v' });
    const c = await t.admin.create(R.configmaps, cm('p2'));
    expect(Number(c.metadata.resourceVersion)).toBeGreaterThan(rvBefore);
    // and a watch from before the restart resumes
    const { events, h } = collect(t.admin, { namespace: 'default', resourceVersion: a.metadata.resourceVersion });
    await waitFor(() => events.some((e) => e.object.metadata.name === 'p2'), 'resumed watch');
    h.abort();
  });

  it('survives a torn last log line (crash mid-write)', async () => {
    t = await startTestController();
    await t.admin.create(R.configmaps, cm('t1'));
    await t.running.stop();
    const { appendFileSync } = await import('node:fs');
    appendFileSync(`${t.config.dataDir}/log.jsonl`, '{"rv":99999,"type":"ADDED","rke');
    await t.restart();
    expect((await t.admin.get(R.configmaps, 't1', 'default')).metadata.name).toBe('t1');
    expect(t.logs.filter((l) => l.includes('dropped a torn last line'))).toEqual([
      expect.stringMatching(/^persistence: .*log\.jsonl: dropped a torn last line \(line \d+, 31 bytes: /),
    ]);
    const n = await t.admin.create(R.configmaps, cm('t2'));
    expect(Number(n.metadata.resourceVersion)).toBeLessThan(99999);
    await t.restart();
    expect((await t.admin.get(R.configmaps, 't2', 'default')).metadata.name).toBe('t2');
  });

  it('a snapshot + truncated log restores the same state', async () => {
    t = await startTestController();
    await t.admin.create(R.configmaps, cm('s1'));
    const store = t.running.store as unknown as { persistence: { snapshot(rv: number, o: unknown): void }; objects: Map<string, unknown> };
    store.persistence.snapshot(t.running.store.resourceVersion, store.objects.values());
    await t.admin.create(R.configmaps, cm('s2'));
    const rv = t.running.store.resourceVersion;
    await t.restart();
    expect(t.running.store.resourceVersion).toBe(rv);
    expect((await t.admin.list(R.configmaps, { namespace: 'default' })).items.map((o) => o.metadata.name)).toEqual(['s1', 's2']);
  });
});

describe('authentication and authorization', () => {
  it('401 without or with a wrong token; /version stays public', async () => {
    t = await startTestController();
    await expectApiError(t.client('').list(R.configmaps), 401);
    await expectApiError(t.client('wrong').get(R.nodes, 'worker1'), 401);
    const v = await t.client('').request<{ major: string }>('GET', '/version');
    expect(v.major).toBe('1');
  });

  it('a node writes only its own Lease, AnthosNetworkGatewayNode and Events about itself', async () => {
    t = await startTestController();
    const n1 = t.node('worker1');
    await renewLease(n1, 'worker1');
    const e = await expectApiError(renewLease(n1, 'worker2'), 403);
    expect(e.message).toContain('User "system:node:worker1" cannot patch resource "leases"');
    expect(e.message).toContain('a node may only write its own Lease');
    await n1.patch(R.anthosNetworkGatewayNodes, 'worker1', { status: { programmed: true } }, { namespace: 'kube-system', subresource: 'status' });
    await expectApiError(
      n1.patch(R.anthosNetworkGatewayNodes, 'worker2', { status: { programmed: true } }, { namespace: 'kube-system', subresource: 'status' }),
      403,
    );
    const ev = (node: string) => ({
      metadata: { name: `ev-${node}-${Math.random().toString(16).slice(2)}`, namespace: 'default' },
      involvedObject: { kind: 'Node', name: node },
      reason: 'Test',
      message: 'm',
      type: 'Warning',
    });
    await n1.create(R.events, ev('worker1'));
    const e2 = await expectApiError(n1.create(R.events, ev('worker2')), 403);
    expect(e2.message).toContain(`involvedObject is Node "worker2"`);
    await expectApiError(n1.create(R.configmaps, cm('nope')), 403);
    // reads are allowed
    expect((await n1.list(R.nodes)).items.length).toBe(3);
  });

  it('a non-admin, non-node identity is read-only', async () => {
    t = await startTestController();
    const v = t.client(VIEWER_TOKEN);
    expect((await v.list(R.namespaces)).items.length).toBeGreaterThan(0);
    await expectApiError(v.create(R.configmaps, cm('v')), 403);
  });
});

describe('object semantics', () => {
  it('409 on a stale resourceVersion and on AlreadyExists; 404 Status for missing objects', async () => {
    t = await startTestController();
    const a = await t.admin.create(R.configmaps, cm('c1'));
    await t.admin.update(R.configmaps, { ...a, data: { a: 'new' } } as KubeObject);
    const stale = await expectApiError(t.admin.update(R.configmaps, { ...a, data: { a: 'stale' } } as KubeObject), 409);
    expect(stale.reason).toBe('Conflict');
    expect((await expectApiError(t.admin.create(R.configmaps, cm('c1')), 409)).reason).toBe('AlreadyExists');
    expect((await expectApiError(t.admin.get(R.configmaps, 'missing', 'default'), 404)).message).toBe('configmaps "missing" not found');
    await expectApiError(t.admin.create(R.configmaps, { ...cm('c2'), metadata: { name: 'c2', namespace: 'nope' } }), 404);
  });

  it('422 Invalid with details.causes[].field for a bad EgressNATPolicy', async () => {
    t = await startTestController();
    const e = await expectApiError(
      t.admin.create(R.egressNATPolicies, {
        apiVersion: 'networking.gke.io/v1alpha1',
        kind: 'EgressNATPolicy',
        metadata: { name: 'bad' },
        spec: { egress: [{ podSelector: {} }], destinationCIDRs: ['8.8.8.0/24'], egressSourceIP: '1.2.3' },
      }),
      422,
    );
    expect(e.status?.details?.causes).toEqual([
      { reason: 'FieldValueInvalid', field: 'spec.egressSourceIP', message: 'Invalid value: "1.2.3": must be a valid IPv4 address' },
    ]);
  });

  it('422 for a ConfigMap whose data values are not strings (a YAML map where a | block was meant); nothing stored or changed', async () => {
    t = await startTestController();
    const asMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'ip-masq-agent', namespace: 'default' },
      data: { config: { nonMasqueradeCIDRs: ['10.0.0.0/8'] } },
    };
    const e = await expectApiError(t.admin.create(R.configmaps, asMap), 422);
    expect(e.status?.details?.causes).toEqual([
      {
        reason: 'FieldValueInvalid',
        field: 'data[config]',
        message: expect.stringMatching(/^Invalid value: \{"nonMasqueradeCIDRs":\["10\.0\.0\.0\/8"\]\}: must be a string \(got a map\)/),
      },
    ]);
    await expectApiError(t.admin.get(R.configmaps, 'ip-masq-agent', 'default'), 404);
    const good = await t.admin.create(R.configmaps, cm('ip-masq-agent', { config: 'nonMasqueradeCIDRs: [10.0.0.0/8]\n' }));
    const bad = { ...good, data: { config: 42, 'bad key!': 'x' } };
    const u = await expectApiError(t.admin.update(R.configmaps, bad as unknown as KubeObject), 422);
    expect(u.status?.details?.causes?.map((c) => c.field)).toEqual(['data[config]', 'data[bad key!]']);
    expect((await t.admin.get(R.configmaps, 'ip-masq-agent', 'default')).data).toEqual({ config: 'nonMasqueradeCIDRs: [10.0.0.0/8]\n' });
  });

  it('400 (not a 1 ms watch, not a 500) for a watch timeoutSeconds beyond 2147483 and for a body nested 2000 levels deep', async () => {
    t = await startTestController();
    for (const v of ['2147484', '99999999999', '-1', 'abc']) {
      const e = await expectApiError(t.admin.request('GET', `/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=${v}`), 400);
      expect(e.message).toBe(`timeoutSeconds: Invalid value: ${JSON.stringify(v)}: must be a whole number of seconds from 0 to 2147483`);
    }
    let deep: unknown = 'x';
    for (let i = 0; i < 2000; i++) deep = { a: deep };
    const e = await expectApiError(
      t.admin.create(R.configmaps, { ...cm('deep'), metadata: { name: 'deep', namespace: 'default', labels: {} }, extra: deep } as unknown as KubeObject),
      400,
    );
    expect(e.message).toBe('the request body nests deeper than 256 levels');
    expect(t.logs.join('\n')).not.toMatch(/RangeError|Maximum call stack/);
    await expectApiError(t.admin.get(R.configmaps, 'deep', 'default'), 404);
  });

  it('no-op writes keep the resourceVersion; spec changes bump generation; status is a subresource', async () => {
    t = await startTestController();
    const gw = await t.admin.create(R.anthosNetworkGateways, { metadata: { name: 'other', namespace: 'default' }, spec: { floatingIPs: ['192.168.1.100'] } });
    expect(gw.metadata.generation).toBe(1);
    const same = await t.admin.patch(R.anthosNetworkGateways, 'other', { spec: { floatingIPs: ['192.168.1.100'] } }, { namespace: 'default' });
    expect(same.metadata.resourceVersion).toBe(gw.metadata.resourceVersion);
    const withStatus = await t.admin.patch(
      R.anthosNetworkGateways,
      'other',
      { spec: { floatingIPs: ['192.168.1.101'] }, status: { x: 1 } },
      { namespace: 'default' },
    );
    expect(withStatus.metadata.generation).toBe(2);
    expect(withStatus.status).toBeUndefined();
    const st = await t.admin.patch(
      R.anthosNetworkGateways,
      'other',
      { status: { x: 1 }, spec: { floatingIPs: [] } },
      { namespace: 'default', subresource: 'status' },
    );
    expect(st.status).toEqual({ x: 1 });
    expect(st.spec).toEqual({ floatingIPs: ['192.168.1.101'] });
    expect(st.metadata.generation).toBe(2);
  });

  it('JSON patch and strategic merge patch (core types); strategic refused for custom resources', async () => {
    t = await startTestController();
    await t.admin.create(R.configmaps, cm('j1', { a: '1', b: '2' }));
    const j = await t.admin.patch(
      R.configmaps,
      'j1',
      [
        { op: 'remove', path: '/data/a' },
        { op: 'add', path: '/data/c', value: '3' },
      ],
      { namespace: 'default', type: 'json' },
    );
    expect((j as KubeObject & { data: unknown }).data).toEqual({ b: '2', c: '3' });
    await t.admin.create(R.pods, {
      metadata: { name: 'p', namespace: 'default' },
      spec: {
        containers: [
          { name: 'a', image: 'x' },
          { name: 'b', image: 'y' },
        ],
      },
    });
    const s = await t.admin.patch(R.pods, 'p', { spec: { containers: [{ name: 'b', image: 'z' }] } }, { namespace: 'default', type: 'strategic' });
    expect((s.spec as { containers: unknown[] }).containers).toEqual([
      { name: 'a', image: 'x' },
      { name: 'b', image: 'z' },
    ]);
    await expectApiError(t.admin.patch(R.egressNATPolicies, 'x', {}, { type: 'strategic' }), 404);
    await t.admin.create(R.anthosNetworkGateways, { metadata: { name: 'g', namespace: 'default' }, spec: { floatingIPs: [] } });
    await expectApiError(t.admin.patch(R.anthosNetworkGateways, 'g', { spec: {} }, { namespace: 'default', type: 'strategic' }), 415);
  });

  it('list supports labelSelector, fieldSelector metadata.name and pagination', async () => {
    t = await startTestController();
    for (const n of ['l1', 'l2', 'l3']) await t.admin.create(R.configmaps, cm(n, {}, { tier: n === 'l2' ? 'b' : 'a' }));
    expect((await t.admin.list(R.configmaps, { namespace: 'default', labelSelector: 'tier=a' })).items.map((o) => o.metadata.name)).toEqual(['l1', 'l3']);
    expect((await t.admin.list(R.configmaps, { fieldSelector: 'metadata.name=l2' })).items.map((o) => o.metadata.name)).toEqual(['l2']);
    const page = await t.admin.request<{ items: KubeObject[]; metadata: { continue?: string } }>('GET', '/api/v1/namespaces/default/configmaps?limit=2');
    expect(page.items).toHaveLength(2);
    const rest = await t.admin.request<{ items: KubeObject[] }>('GET', `/api/v1/namespaces/default/configmaps?limit=2&continue=${page.metadata.continue}`);
    expect(rest.items.map((o) => o.metadata.name)).toEqual(['l3']);
    await expectApiError(t.admin.list(R.configmaps, { labelSelector: 'a in b' }), 400);
  });

  it('EgressNATPolicy versions share one name space and each version serves its own objects', async () => {
    t = await startTestController();
    await t.admin.create(R.egressNATPolicies, {
      metadata: { name: 'shared' },
      spec: { egress: [{ podSelector: {} }], destinationCIDRs: ['8.8.8.0/24'], egressSourceIP: '192.168.1.100' },
    });
    const clash = await expectApiError(
      t.admin.create(R.egressNATPoliciesV1, { metadata: { name: 'shared' }, spec: { action: 'NoSNAT', destinations: [] } }),
      409,
    );
    expect(clash.message).toContain('as networking.gke.io/v1alpha1');
    const nf = await expectApiError(t.admin.get(R.egressNATPoliciesV1, 'shared'), 404);
    expect(nf.message).toContain('egressnatpolicies.v1alpha1.networking.gke.io');
    expect((await t.admin.list(R.egressNATPoliciesV1)).items).toEqual([]);
    expect((await t.admin.list(R.egressNATPolicies)).items.map((o) => o.metadata.name)).toEqual(['shared']);
  });
});

describe('namespaces', () => {
  it('carry kubernetes.io/metadata.name=<name> as kube-apiserver sets it, even when a write drops it', async () => {
    t = await startTestController();
    const ns = await t.admin.create(R.namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a', labels: { user: 'a' } } });
    expect(ns.metadata.labels).toEqual({ user: 'a', 'kubernetes.io/metadata.name': 'team-a' });
    const cur = await t.admin.get(R.namespaces, 'team-a');
    const updated = await t.admin.update(R.namespaces, { ...cur, metadata: { ...cur.metadata, labels: { user: 'b' } } });
    expect(updated.metadata.labels).toEqual({ user: 'b', 'kubernetes.io/metadata.name': 'team-a' });
  });
});
