import { describe, expect, it } from 'vitest';
import { slug } from './artifacts.js';

describe('artifact folder names', () => {
  it('short names: lower-case words joined by "-"', () => {
    expect(slug('SIGKILL of the holder')).toBe('sigkill-of-the-holder');
    expect(slug('???')).toBe('test');
  });

  it('long names are cut at a word boundary and stay unique', () => {
    const a = 'a long-lived TCP connection through the gateway survives the failover of its holder > SIGKILL of the holder';
    const b = 'a long-lived TCP connection through the gateway survives the failover of its holder > clean stop of the holder';
    const sa = slug(a);
    const sb = slug(b);
    expect(sa.length).toBeLessThanOrEqual(80);
    expect(sa).not.toBe(sb);
    // every word kept is whole: the part before the hash is a prefix of the full slug ending at a "-"
    const body = sa.slice(0, sa.lastIndexOf('-'));
    const full = 'a-long-lived-tcp-connection-through-the-gateway-survives-the-failover-of-its-holder-sigkill-of-the-holder';
    expect(full.startsWith(`${body}-`)).toBe(true);
    expect(sa).toMatch(/^a-long-lived-tcp-connection-through-the-gateway-survives-the-failover-of-[0-9a-f]{6}$/);
  });
});
