import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { KubeClient, R } from './client.js';
import { startLeaseRenewer } from './lease.js';
import { unreachablePort } from './testing.js';
import type { WatchEvent } from './types.js';

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** An HTTP server that answers a watch with `chunks`, written one by one (each write a separate chunk). */
async function serveChunks(chunks: Buffer[]): Promise<string> {
  server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    let i = 0;
    const next = (): void => {
      if (i === chunks.length) return void res.end();
      res.write(chunks[i++], () => setImmediate(next));
    };
    next();
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('KubeClient.watch: one event per line, whatever the chunking', () => {
  it('decodes a large event split over many chunks, a character cut between two chunks, and two events in one chunk', async () => {
    const big = {
      type: 'MODIFIED',
      object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'big', namespace: 'kube-system' }, data: { config: `ä€😀 ${'x'.repeat(200_000)} ü` } },
    };
    const small = (n: string) => ({ type: 'ADDED', object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: n, namespace: 'default' } } });
    const bytes = Buffer.from(`${JSON.stringify(big)}\n${JSON.stringify(small('a'))}\n${JSON.stringify(small('b'))}\n`, 'utf8');
    // cut inside the 4-byte 😀 of the big event's text (offset of its 2nd byte), then in 1 KiB pieces,
    // and keep the last two events together in the final chunk
    const emoji = bytes.indexOf(Buffer.from('😀', 'utf8'));
    const endOfBig = bytes.indexOf(0x0a) + 1;
    const chunks: Buffer[] = [bytes.subarray(0, emoji + 2)];
    for (let o = emoji + 2; o < endOfBig + 10; o += 1024) chunks.push(bytes.subarray(o, Math.min(o + 1024, endOfBig + 10)));
    chunks.push(bytes.subarray(endOfBig + 10));
    const url = await serveChunks(chunks);
    const client = new KubeClient({ server: url });
    const seen: WatchEvent[] = [];
    const w = client.watch(R.configmaps, {}, (e) => seen.push(e));
    await w.done;
    client.close();
    expect(seen).toEqual([big, small('a'), small('b')]);
  });
});

describe('KubeClient.onRecovered and the informer: a watch that lived through an outage starts again on a new connection', () => {
  it('a request answered after unanswered ones calls the listeners once; the informer then resumes its stalled watch from its resourceVersion', async () => {
    const watches: string[] = [];
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ip-masq-agent', namespace: 'kube-system', resourceVersion: '7' } };
    let reset = true;
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname.endsWith('/probe')) {
        // no answer at all while `reset`: the connection is cut
        if (reset) return void req.socket.destroy();
        res.writeHead(404, { 'Content-Type': 'application/json' });
        return void res.end('{"kind":"Status","code":404}');
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      if (url.searchParams.get('watch') !== 'true')
        return void res.end(JSON.stringify({ kind: 'ConfigMapList', metadata: { resourceVersion: '5' }, items: [] }));
      watches.push(url.searchParams.get('resourceVersion') ?? '');
      // the first watch stalls (what it would say is stuck behind a backed-off connection); the second delivers the change
      if (watches.length === 1) res.write('');
      else res.write(`${JSON.stringify({ type: 'ADDED', object: cm })}\n`);
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const client = new KubeClient({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, timeoutMs: 2000 });
    let recovered = 0;
    const off = client.onRecovered(() => recovered++);
    const added: string[] = [];
    const inf = client.informer(R.configmaps, { namespace: 'kube-system' }, { onAdd: (o) => added.push(o.metadata.name ?? '') });
    await inf.hasSynced();
    await waitUntil(() => watches.length === 1);
    const probe = () => client.request('GET', '/api/v1/namespaces/kube-system/configmaps/probe');
    // answered requests (the list, a 404) recover nothing: nothing went unanswered before them
    await expect(probe()).rejects.toThrow();
    expect(recovered).toBe(0);
    expect(inf.recoveries).toBe(0);
    reset = false;
    await expect(probe()).rejects.toThrow(/404/);
    expect(recovered).toBe(1);
    await waitUntil(() => added.length === 1);
    expect(watches).toEqual(['5', '5']);
    expect(added).toEqual(['ip-masq-agent']);
    expect(inf.recoveries).toBe(1);
    expect(inf.connections).toBe(2);
    // once recovered, another answer is no recovery
    await expect(probe()).rejects.toThrow(/404/);
    expect(recovered).toBe(1);
    // a request its caller gave up on before the client's own timeout counts too (noteUnanswered)
    client.noteUnanswered();
    await expect(probe()).rejects.toThrow(/404/);
    expect(recovered).toBe(2);
    await waitUntil(() => watches.length === 3);
    off();
    await inf.stop();
    client.close();
  });
});

/** Polls `cond` every 10 ms until it holds (2 s at most). */
async function waitUntil(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met within 2000 ms');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('requests to an API server that never completes a handshake (a partition)', () => {
  it("a request times out after the client's timeoutMs, not when the kernel gives up its SYNs (Node's own timeout counts from the connection only)", async () => {
    const u = await unreachablePort();
    const client = new KubeClient({ server: `http://127.0.0.1:${u.port}`, timeoutMs: 400 });
    try {
      const t0 = performance.now();
      await expect(client.list(R.configmaps, { namespace: 'kube-system' })).rejects.toThrow(/request timed out after 400 ms: GET/);
      expect(performance.now() - t0).toBeLessThan(3000);
    } finally {
      client.close();
      u.close();
    }
  });

  it('an informer that stops gives up its list in flight, and a lease renewer its renewal in flight', async () => {
    const u = await unreachablePort();
    const client = new KubeClient({ server: `http://127.0.0.1:${u.port}`, timeoutMs: 60_000 });
    try {
      const errors: unknown[] = [];
      const inf = client.informer(R.configmaps, { namespace: 'kube-system' }, { onError: (e) => errors.push(e) });
      const renewer = startLeaseRenewer(client, 'node-1', 10_000, (e) => errors.push(e));
      await new Promise((r) => setTimeout(r, 200)); // both requests are in flight (connecting)
      const t0 = performance.now();
      await Promise.all([inf.stop(), renewer.stop()]);
      // without the aborts, both would wait for the client's 60 s deadline
      expect(performance.now() - t0).toBeLessThan(2000);
      // given up, not failed: nothing reported as a watch or renewal error
      expect(errors).toEqual([]);
    } finally {
      client.close();
      u.close();
    }
  });
});
