// Watch limits (issue 12): paused watchers cannot stall the API server or grow its memory without
// bound, each event is encoded once for all watchers, one identity's watches are capped (429), and
// every watch ends some day.
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { KubeApiError, R } from '../../lib/kube/client.js';
import { startTestController, VIEWER_TOKEN, waitFor, type TestController } from '../testing.js';
import { DEFAULT_API_LIMITS, parseApiLimits } from './limits.js';
import { WatchHub } from './watch.js';
import type { ResourceService } from './service.js';
import type { WatchEvent } from '../../lib/kube/types.js';

let t: TestController | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await t?.close();
  t = undefined;
});

/** A watch whose client never reads: the socket is paused right after the request goes out. */
function pausedWatch(port: number, token: string, path = '/api/v1/namespaces/default/configmaps?watch=true'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`);
      s.pause();
      resolve(s);
    });
    s.on('error', reject);
    sockets.push(s);
  });
}

const big = (name: string, bytes: number) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'default' },
  data: { blob: 'x'.repeat(bytes) },
});

/** ~50 KB of JSON in 2000 small keys: costly to copy and encode per watcher, cheap to write once encoded. */
const manyKeys = (name: string) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'default' },
  data: Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`key-${i}`, `v${i}`])),
});

async function creates(tc: TestController, prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await tc.admin.create(R.configmaps, manyKeys(`${prefix}-${i}`));
}

describe('watch limits', () => {
  it('200 paused watchers: each event is encoded once, not once per watcher', { timeout: 20_000 }, async () => {
    t = await startTestController({ tls: false, fsync: false, api: { maxWatchesPerUser: 200 } });
    for (let i = 0; i < 200; i++) await pausedWatch(t.running.port, VIEWER_TOKEN);
    const server = t.running.server;
    await waitFor(() => server.watchStats().active === 200, '200 watches open');
    const before = server.watchStats().encodings;
    await creates(t, 'load', 7);
    // one JSON encoding per event for all 200 watchers (before: 200 copies and encodings per event,
    // a create of this 2000-key ConfigMap took ~160 ms instead of ~19 ms; no timing asserted here)
    expect(server.watchStats().encodings - before).toBe(7);
  });

  it('a watcher whose connection does not take its events is dropped once the bytes waiting pass the bound; memory stays bounded; readers get every event', async () => {
    const limit = 64 * 1024;
    const size = 100_000;
    t = await startTestController({ tls: false, fsync: false, api: { watchBufferBytes: limit } });
    for (let i = 0; i < 10; i++) await pausedWatch(t.running.port, VIEWER_TOKEN);
    const server = t.running.server;
    const seen: WatchEvent[] = [];
    const reader = t.admin.watch(R.configmaps, { namespace: 'default' }, (e) => seen.push(e));
    let readerFailed: unknown;
    reader.done.catch((e: unknown) => (readerFailed = e));
    await waitFor(() => server.watchStats().active === 11, '11 watches open');
    // the loopback socket buffers absorb ~4 MB per connection before write() asks to wait
    let n = 0;
    while (server.watchStats().dropped < 10 && n < 200) await t.admin.create(R.configmaps, big(`b-${n++}`, size));
    const st = server.watchStats();
    expect(st.dropped).toBe(10);
    expect(st.active).toBe(1); // the reader
    // bytes held for one watcher never went beyond the bound plus the line that crossed it and the socket's own buffer
    expect(st.peakBufferedBytes).toBeLessThan(limit + 2 * (size + 1000));
    expect(t.logs.join('\n')).toMatch(
      /api: dropped the watch of viewer on configmaps in default: \d+ bytes of events waiting for the connection, more than the limit of 65536 \(api\.watchBufferBytes\)/,
    );
    await waitFor(() => seen.filter((e) => e.type === 'ADDED').length === n, 'the reader got every event');
    expect(readerFailed).toBeUndefined();
    reader.abort();
  });

  it('caps the open watches of one identity with a 429 naming the limit; other identities are not affected; a closed watch frees its slot', async () => {
    t = await startTestController({ tls: false, api: { maxWatchesPerUser: 3 } });
    const v = t.client(VIEWER_TOKEN);
    const hs = [0, 1, 2].map(() => v.watch(R.configmaps, { namespace: 'default' }, () => {}));
    await waitFor(() => t!.running.server.watchStats().active === 3, '3 watches');
    const fourth = v.watch(R.configmaps, { namespace: 'default' }, () => {});
    const e = await fourth.done.then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(KubeApiError);
    const err = e as KubeApiError;
    expect(err.code).toBe(429);
    expect(err.status).toMatchObject({ kind: 'Status', code: 429, reason: 'TooManyRequests', details: { retryAfterSeconds: 1 } });
    expect(err.message).toBe('too many watches: user "viewer" already has 3 open watches, the limit (api.maxWatchesPerUser) is 3; end one or retry later');
    const res = await fetch(`${t.running.url}/api/v1/configmaps?watch=true`, { headers: { Authorization: `Bearer ${VIEWER_TOKEN}` } });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('1');
    await res.text();
    // another identity still watches
    const a = t.admin.watch(R.configmaps, { namespace: 'default' }, () => {});
    await waitFor(() => t!.running.server.watchStats().active === 4, 'admin watch');
    a.abort();
    hs[0]!.abort();
    await waitFor(() => t!.running.server.watchStats().active === 2, 'slot freed');
    const again = v.watch(R.configmaps, { namespace: 'default' }, () => {});
    await waitFor(() => t!.running.server.watchStats().active === 3, 'slot reused');
    for (const h of [...hs, again]) h.abort();
    expect(t.running.server.watchStats().refused).toBe(2);
  });

  it('every watch ends: the default length is minWatchTimeoutSeconds with up to 2x jitter, a longer timeoutSeconds is cut to maxWatchTimeoutSeconds', async () => {
    t = await startTestController({ tls: false, api: { minWatchTimeoutSeconds: 0.2, maxWatchTimeoutSeconds: 0.3 } });
    const t0 = performance.now();
    await t.admin.watch(R.configmaps, { namespace: 'default' }, () => {}).done; // before: 30 minutes
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
    const t1 = performance.now();
    await t.admin.watch(R.configmaps, { namespace: 'default', timeoutSeconds: 100_000 }, () => {}).done;
    expect(performance.now() - t1).toBeGreaterThanOrEqual(290);
    expect(t.running.server.watchStats().active).toBe(0);
    // the durations themselves, without waiting for them
    const hub = (r: number) =>
      new WatchHub(
        undefined as unknown as ResourceService,
        DEFAULT_API_LIMITS,
        () => {},
        60_000,
        () => r,
      );
    expect(hub(0).durationMs(undefined)).toBe(1_800_000);
    expect(hub(0.999).durationMs(0)).toBe(3_598_200);
    expect(hub(0.5).durationMs(60)).toBe(60_000);
    expect(hub(0.5).durationMs(2_147_483)).toBe(3_600_000);
  });

  it('limits are configured in the controller config api object, each checked by name', () => {
    expect(parseApiLimits(undefined)).toEqual(DEFAULT_API_LIMITS);
    expect(parseApiLimits({ maxWatchesPerUser: 7 }).maxWatchesPerUser).toBe(7);
    expect(() => parseApiLimits({ maxWatchesPerUser: 0 })).toThrow('api.maxWatchesPerUser: Invalid value: 0: must be a positive whole number');
    expect(() => parseApiLimits({ maxWatches: 1 })).toThrow(/^api\.maxWatches: unknown limit/);
    expect(() => parseApiLimits({ maxWatchTimeoutSeconds: 3e6 })).toThrow(/must be at most 2147483/);
  });
});
