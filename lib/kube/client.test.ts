import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { KubeClient, R } from './client.js';
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
