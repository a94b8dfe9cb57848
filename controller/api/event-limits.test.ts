// Event limits, node authorization on existing objects and finalizers (issue 12): every refusal is
// a Status naming the field or rule and the value, and changes nothing that is stored.
import { afterEach, describe, expect, it } from 'vitest';
import { R } from '../../lib/kube/client.js';
import { expectApiError } from './expect-api-error.js';
import { startTestController, waitFor, type TestController } from '../testing.js';
import type { KubeObject } from '../../lib/kube/types.js';

let t: TestController | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const ev = (name: string, node: string, extra: Record<string, unknown> = {}) =>
  ({
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name, namespace: 'default' },
    involvedObject: { kind: 'Node', name: node },
    reason: 'Test',
    message: 'm',
    type: 'Normal',
    count: 1,
    ...extra,
  }) as unknown as KubeObject;

async function stored(tc: TestController): Promise<string> {
  return JSON.stringify((await tc.admin.list(R.events)).items);
}

describe('Event limits', () => {
  it('an Event over api.maxEventBytes is a 422 naming the biggest field, the size and the limit, on create and on update; nothing changes', async () => {
    t = await startTestController();
    const n1 = t.node('worker1');
    const before = await stored(t);
    const e = await expectApiError(n1.create(R.events, ev('big', 'worker1', { message: 'y'.repeat(20_000) })), 422);
    expect(e.status?.details?.causes).toEqual([
      {
        reason: 'FieldValueInvalid',
        field: 'message',
        message: expect.stringMatching(
          /^Invalid value: "y{40}\.\.\.": the Event is 20\d{3} bytes, more than the limit of 16384 bytes \(api\.maxEventBytes\); this field is 20002 bytes$/,
        ),
      },
    ]);
    expect(await stored(t)).toBe(before);
    await n1.create(R.events, ev('small', 'worker1'));
    const kept = await stored(t);
    const u = await expectApiError(n1.patch(R.events, 'small', { metadata: { annotations: { a: 'z'.repeat(20_000) } } }, { namespace: 'default' }), 422);
    expect(u.status?.details?.causes?.[0]?.field).toBe('metadata.annotations');
    expect(await stored(t)).toBe(kept);
  });

  it('a node may keep api.maxEventsPerNode Events about itself: one more is a 429 naming the limit; updates (count) still work; other nodes are not affected', async () => {
    t = await startTestController({ api: { maxEventsPerNode: 3 } });
    const n1 = t.node('worker1');
    for (const i of [1, 2, 3]) await n1.create(R.events, ev(`e${i}`, 'worker1'));
    const before = await stored(t);
    const e = await expectApiError(n1.create(R.events, ev('e4', 'worker1')), 429);
    expect(e.reason).toBe('TooManyRequests');
    expect(e.message).toBe(
      'events is forbidden: too many Events about Node "worker1": 3 are stored, the limit (api.maxEventsPerNode) is 3; update an existing one (count) or wait: each expires 3600 s after its last write (api.eventTTLSeconds)',
    );
    expect(await stored(t)).toBe(before);
    await n1.patch(R.events, 'e1', { count: 2 }, { namespace: 'default' });
    await t.node('worker2').create(R.events, ev('w2', 'worker2'));
    await t.admin.delete(R.events, 'e2', 'default');
    await n1.create(R.events, ev('e4', 'worker1'));
  });

  it('Events expire api.eventTTLSeconds after their last write, as kube-apiserver --event-ttl', async () => {
    t = await startTestController({ api: { eventTTLSeconds: 0.4 } });
    await t.node('worker1').create(R.events, ev('short', 'worker1'));
    await waitFor(async () => (await t!.admin.list(R.events)).items.every((o) => o.metadata.name !== 'short'), 'expired Event deleted', 5000);
    expect(t.logs.join('\n')).toMatch(/api: 1 Event\(s\) expired \(0\.4 s after their last write, api\.eventTTLSeconds\)/);
  });
});

describe('node authorization on existing objects (NodeRestriction)', () => {
  it("a node cannot take over another node's Event by changing its involvedObject", async () => {
    t = await startTestController();
    await t.node('worker2').create(R.events, ev('theirs', 'worker2'));
    const before = await stored(t);
    const n1 = t.node('worker1');
    const e = await expectApiError(
      n1.patch(R.events, 'theirs', { involvedObject: { kind: 'Node', name: 'worker1' }, message: 'mine now' }, { namespace: 'default' }),
      403,
    );
    expect(e.message).toContain(`User "system:node:worker1" cannot update resource "events"`);
    expect(e.message).toContain(`the stored Event's involvedObject is Node "worker2"`);
    const cur = await t.admin.get(R.events, 'theirs', 'default');
    await expectApiError(n1.update(R.events, { ...cur, involvedObject: { kind: 'Node', name: 'worker1' } } as KubeObject), 403);
    expect(await stored(t)).toBe(before);
    // and its own Event cannot be turned into another node's
    await n1.create(R.events, ev('mine', 'worker1'));
    const m = await expectApiError(n1.patch(R.events, 'mine', { involvedObject: { kind: 'Node', name: 'worker2' } }, { namespace: 'default' }), 403);
    expect(m.message).toContain(`this Event's involvedObject is Node "worker2"`);
  });

  it('a node writes its AnthosNetworkGatewayNode in the gateway namespace only', async () => {
    t = await startTestController();
    const n1 = t.node('worker1');
    const e = await expectApiError(n1.create(R.anthosNetworkGatewayNodes, { metadata: { name: 'worker1', namespace: 'default' }, spec: {} }), 403);
    expect(e.message).toContain('in namespace kube-system only (not "default")');
    await expectApiError(t.admin.get(R.anthosNetworkGatewayNodes, 'worker1', 'default'), 404);
    await n1.patch(R.anthosNetworkGatewayNodes, 'worker1', { status: { programmed: true } }, { namespace: 'kube-system', subresource: 'status' });
  });
});

describe('finalizers', () => {
  it('are refused with 422 (DELETE is immediate here); deletionTimestamp cannot be set by a client', async () => {
    t = await startTestController();
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'f', namespace: 'default', finalizers: ['example.com/keep'] }, data: {} };
    const e = await expectApiError(t.admin.create(R.configmaps, cm), 422);
    expect(e.status?.details?.causes).toEqual([
      {
        reason: 'FieldValueInvalid',
        field: 'metadata.finalizers',
        message:
          'Invalid value: ["example.com/keep"]: finalizers are not supported by this API server (DELETE removes an object at once, it would never wait for them); remove them',
      },
    ]);
    await expectApiError(t.admin.get(R.configmaps, 'f', 'default'), 404);
    await t.admin.create(R.configmaps, { ...cm, metadata: { name: 'f', namespace: 'default' } });
    const kept = await t.admin.get(R.configmaps, 'f', 'default');
    await expectApiError(t.admin.patch(R.configmaps, 'f', { metadata: { finalizers: ['example.com/keep'] } }, { namespace: 'default' }), 422);
    expect(await t.admin.get(R.configmaps, 'f', 'default')).toEqual(kept);
    const ts = await t.admin.patch(R.configmaps, 'f', { metadata: { deletionTimestamp: '2020-01-01T00:00:00Z' }, data: { a: '1' } }, { namespace: 'default' });
    expect(ts.metadata.deletionTimestamp).toBeUndefined();
  });
});
