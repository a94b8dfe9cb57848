import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { confirmCutOff, tcpAnswers } from './cut-off.js';

let servers: Server[] = [];
afterEach(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
  servers = [];
});

function listen(): Promise<number> {
  const s = createServer((c) => c.destroy());
  servers.push(s);
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port)));
}

/** A socket whose handshake never completes (a host that drops every frame), or that fails with `code`. */
function fakeSocket(code?: string): Socket {
  const e = new EventEmitter() as unknown as Socket & { destroyed: boolean };
  e.destroy = (() => {
    e.destroyed = true;
    return e;
  }) as Socket['destroy'];
  if (code) setTimeout(() => e.emit('error', Object.assign(new Error(code), { code })), 5);
  return e;
}

describe('tcpAnswers: the API server host answers a handshake from its kernel', () => {
  it('a listener answers; a closed port answers too (a RST is an answer)', async () => {
    const port = await listen();
    expect(await tcpAnswers('127.0.0.1', port, 500)).toBe(true);
    const closed = await listen();
    await new Promise((r) => servers.pop()!.close(r));
    expect(await tcpAnswers('127.0.0.1', closed, 500)).toBe(true);
  });

  it('a handshake that never completes is silence, after the deadline; so is an unreachable host', async () => {
    let opened: Socket | undefined;
    const t0 = performance.now();
    expect(await tcpAnswers('192.0.2.1', 6443, 80, () => (opened = fakeSocket()))).toBe(false);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(75);
    expect(opened!.destroyed).toBe(true);
    expect(await tcpAnswers('192.0.2.1', 6443, 1000, () => fakeSocket('EHOSTUNREACH'))).toBe(false);
    expect(await tcpAnswers('192.0.2.1', 6443, 1000, () => fakeSocket('ECONNREFUSED'))).toBe(true);
  });
});

describe('confirmCutOff: cut off only when the read and the handshake both go unanswered', () => {
  const fail = (ms: number) => new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`no answer within ${ms} ms`)), 10));
  const msg = (e: unknown) => (e as Error).message;

  it('the API answered: not cut off, with what it read', async () => {
    expect(await confirmCutOff({ read: async () => 'gw', apiHostAnswers: async () => false }, 500, msg)).toEqual({ cutOff: false, read: 'gw' });
  });

  it('the read failed but the host answered: a busy machine, not cut off', async () => {
    const v = await confirmCutOff({ read: fail, apiHostAnswers: async () => true }, 500, msg);
    expect(v).toEqual({ cutOff: false, busy: "no answer within 500 ms, but the API server's host answered a TCP handshake" });
  });

  it('neither answered: cut off, saying both; a handshake probe that throws counts as silence', async () => {
    const v = await confirmCutOff({ read: fail, apiHostAnswers: async () => false }, 500, msg);
    expect(v).toEqual({ cutOff: true, why: "no answer within 500 ms; the API server's host did not answer a TCP handshake either" });
    const w = await confirmCutOff({ read: fail, apiHostAnswers: () => Promise.reject(new Error('boom')) }, 500, msg);
    expect(w.cutOff).toBe(true);
  });

  it('both start at once: the deadline is not paid twice', async () => {
    let readSettled = false;
    let hostAskedBeforeReadFailed: boolean | undefined;
    await confirmCutOff(
      {
        read: (ms) => fail(ms).finally(() => (readSettled = true)),
        apiHostAnswers: async () => ((hostAskedBeforeReadFailed = !readSettled), false),
      },
      500,
      msg,
    );
    expect(hostAskedBeforeReadFailed).toBe(true);
  });
});
