import { describe, expect, it } from 'vitest';
import { OBSERVED_LOG, PROTOS, RESPONDER_PORT, RUN_DIR, decodeProbe, encodeProbe, icmpToken, newToken, synKey } from './protocol.js';

describe('probe wire protocol', () => {
  it('newToken: 16 lower-case hex characters (8 bytes, ping fill pattern size), fresh each time', () => {
    const a = newToken();
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(newToken()).not.toBe(a);
  });

  it('encodes EGL <token> <seq> and a newline', () => {
    expect(encodeProbe('0123456789abcdef', 7)).toBe('EGL 0123456789abcdef 7\n');
  });

  it('decodes what it encodes, from a string or a Buffer', () => {
    for (const seq of [0, 1, 65535, 1_000_000]) {
      const token = newToken();
      expect(decodeProbe(encodeProbe(token, seq))).toEqual({ token, seq });
      expect(decodeProbe(Buffer.from(encodeProbe(token, seq)))).toEqual({ token, seq });
    }
  });

  it('tolerates trailing bytes and a missing newline', () => {
    expect(decodeProbe('EGL 0123456789abcdef 12 trailing')).toEqual({ token: '0123456789abcdef', seq: 12 });
    expect(decodeProbe(Buffer.concat([Buffer.from('EGL 0123456789abcdef 3'), Buffer.alloc(1000, 0x41)]))).toEqual({ token: '0123456789abcdef', seq: 3 });
  });

  it('refuses anything else', () => {
    for (const bad of [
      '',
      'EGL',
      'EGL 0123456789abcdef',
      'EGL 0123456789ABCDEF 1', // upper case
      'EGL 0123456789abcde 1', // 15 chars
      'EGL 0123456789abcdef0 1', // 17 chars
      'EGL 0123456789abcdef -1',
      ' EGL 0123456789abcdef 1',
      'egl 0123456789abcdef 1',
    ]) {
      expect(decodeProbe(bad), bad).toBeUndefined();
    }
    expect(decodeProbe(Buffer.alloc(0))).toBeUndefined();
  });

  it('icmpToken reads the pattern after ping’s 16-byte timestamp', () => {
    const token = '0011223344556677';
    const pattern = Buffer.from(token, 'hex');
    const payload = Buffer.concat([Buffer.alloc(16, 0xaa), pattern, pattern, pattern, pattern, pattern]);
    expect(icmpToken(payload)).toBe(token);
    expect(icmpToken(payload.subarray(0, 24))).toBe(token);
    expect(icmpToken(payload.subarray(0, 23))).toBeUndefined();
    expect(icmpToken(Buffer.alloc(0))).toBeUndefined();
  });

  it('synKey and constants', () => {
    expect(synKey('8.8.8.8', 443)).toBe('tcp 8.8.8.8:443');
    expect(PROTOS).toEqual(['tcp', 'udp', 'icmp']);
    expect(RESPONDER_PORT).toBe(7007);
    expect(OBSERVED_LOG).toBe(`${RUN_DIR}/observed.jsonl`);
  });
});
